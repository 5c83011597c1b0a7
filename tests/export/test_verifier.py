"""The verifier: each invariant it checks, broken on purpose, and the message it gives.

Every failure must name the offending node and, when the node has one, the
user's source line (``meta["stack_trace"]``: this file and the model's line).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import VerificationError
from graphlift.export.program.constraints import range_constraints
from graphlift.export.program.verifier import verify

aten = torch.ops.aten


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)  # the line failures name
        return torch.relu(y) + x.shape[0]


def exported(dynamic: bool = False):  # type: ignore[no-untyped-def]
    spec = {"x": {0: gl.Dim("batch", min=2, max=16)}} if dynamic else None
    return gl.export(Model(), (torch.randn(3, 4),), dynamic_shapes=spec)


def node(program, target):  # type: ignore[no-untyped-def]
    return next(n for n in program.graph.nodes if n.target is target)


def assert_names(error: VerificationError, name: str) -> None:
    assert f"%{name}" in str(error)
    assert error.where and "test_verifier.py" in error.where and "self.fc(x)" in error.where


def test_exported_and_decomposed_programs_verify() -> None:
    program = exported(dynamic=True)
    verify(program)
    verify(program.run_decompositions(), level="core")


def test_a_non_core_op_fails_the_core_level() -> None:
    program = exported()
    with pytest.raises(VerificationError, match="not in the core ATen opset") as info:
        verify(program, level="core")
    assert_names(info.value, "linear")


class NoDecomposition(nn.Module):
    def forward(self, x, y):
        return torch.addmv(x, y, x) + torch.cholesky(y @ y.mT + torch.eye(4)).sum(0)


def test_ops_without_a_decomposition_stay_in_a_core_program_as_in_torch() -> None:
    """aten.addmv and aten.cholesky are not core ATen, but no table decomposes them:
    torch.export's run_decompositions() keeps them, and so does the core level."""
    x, y = torch.randn(4), torch.randn(4, 4)
    spec = ({0: gl.Dim.AUTO}, {0: gl.Dim.AUTO, 1: gl.Dim.AUTO})
    core = gl.export(NoDecomposition(), (x, y), dynamic_shapes=spec).run_decompositions()
    kept = {n.target for n in core.graph.nodes}
    assert {aten.addmv.default, aten.cholesky.default} <= kept
    verify(core, level="core")
    reference = torch.export.export(NoDecomposition(), (x, y)).run_decompositions()
    assert {aten.addmv.default, aten.cholesky.default} <= {n.target for n in reference.graph.nodes}
    torch.testing.assert_close(core.module()(x, y), NoDecomposition()(x, y))


def test_an_in_place_op_fails() -> None:
    program = exported()
    relu = node(program, aten.relu.default)
    relu.target = aten.relu_.default
    relu.meta["stack_trace"] = node(program, aten.linear.default).meta["stack_trace"]
    with pytest.raises(VerificationError, match="in-place") as info:
        verify(program)
    assert_names(info.value, "relu")


def test_a_python_function_fails() -> None:
    program = exported()
    linear = node(program, aten.linear.default)
    linear.target = math.sqrt
    with pytest.raises(VerificationError, match="calls a Python function") as info:
        verify(program)
    assert_names(info.value, "linear")


def test_a_node_without_val_fails() -> None:
    program = exported()
    del node(program, aten.linear.default).meta["val"]
    with pytest.raises(VerificationError, match=r'meta\["val"\]') as info:
        verify(program)
    assert_names(info.value, "linear")


def test_placeholders_out_of_signature_order_fail() -> None:
    program = exported()
    specs = program.graph_signature.input_specs
    program.graph_signature = gl.ExportGraphSignature((specs[1], specs[0], *specs[2:]),
                                                      program.graph_signature.output_specs)  # fmt: skip
    with pytest.raises(VerificationError, match="signature order"):
        verify(program)


def test_a_symbol_without_a_range_fails() -> None:
    program = exported(dynamic=True)
    (symbol,) = program.range_constraints
    del program.range_constraints[symbol]
    with pytest.raises(VerificationError, match=f"symbol {symbol}, which has no range"):
        verify(program)


def test_an_unbound_symbol_fails() -> None:
    program = exported(dynamic=True)
    shape_env = program._shape_env
    stray = shape_env.create_symbol(5, min=2, max=9)
    program.range_constraints = range_constraints(shape_env)
    linear = node(program, aten.linear.default)
    linear.meta["val"] = torch.empty(stray, 4, device="meta")
    with pytest.raises(VerificationError, match="no input size or data-dependent op") as info:
        verify(program)
    assert_names(info.value, "linear")


def test_a_wrong_number_of_outputs_fails() -> None:
    program = exported()
    program.graph_signature = gl.ExportGraphSignature(program.graph_signature.input_specs, ())
    with pytest.raises(VerificationError, match="returns 1 values"):
        verify(program)
