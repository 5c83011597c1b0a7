"""Differential tests of graphlift's fx-style tracing against torch.fx.

A package (not a bare directory) so that module names here cannot collide with
test modules of the same basename elsewhere under ``tests/``.
"""
