"""Experimental features: joint forward-backward export and its train step (issue 19)."""

from graphlift.experimental.joint import _export_forward_backward, export_forward_backward
from graphlift.experimental.train_step import TrainStep, train_step

__all__ = ["TrainStep", "_export_forward_backward", "export_forward_backward", "train_step"]
