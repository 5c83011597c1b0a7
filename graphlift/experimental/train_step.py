"""A training step from a joint program: forward, backward and an optimizer update.

The recipe, in full::

    joint = gl.experimental.export_forward_backward(gl.export(model, example))
    step = gl.experimental.train_step(joint, lambda ps: torch.optim.SGD(ps, lr=0.1))
    for batch in data:
        loss = step(*batch)          # the program's outputs, after one update

Each call runs the joint program's ``module()`` (which checks the inputs and
writes buffer updates back, as eager training does), hands every parameter its
gradient as ``.grad`` and calls ``optimizer.step()``. Any ``torch.optim``
optimizer works; the graph itself knows nothing of the update.

The module holds the program's parameter tensors, which are the exported
model's own (as with torch.export): training updates them in place, as an
optimizer over ``model.parameters()`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import JointExportError

if TYPE_CHECKING:
    from graphlift.export.program.exported_program import ExportedProgram

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]


class TrainStep:
    """``step(*args, **kwargs)``: one forward, backward and update; returns the outputs."""

    def __init__(self, program: ExportedProgram, make_optimizer: OptimizerFactory) -> None:
        signature = program.backward_signature
        if signature is None:
            raise JointExportError(
                "train_step needs a joint program; make one with "
                "graphlift.experimental.export_forward_backward(program)"
            )
        self.module = program.module()
        self.parameter_names = tuple(dict.fromkeys(signature.gradients_to_parameters.values()))
        parameters = [self.module.get_parameter(name) for name in self.parameter_names]
        self.optimizer = make_optimizer(parameters)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            outputs, gradients = self.module(*args, **kwargs)
        for name in self.parameter_names:
            self.module.get_parameter(name).grad = gradients[name]
        self.optimizer.step()
        return outputs


def train_step(
    program: ExportedProgram, make_optimizer: OptimizerFactory | None = None
) -> TrainStep:
    """A training step over a joint program; SGD with ``lr=0.01`` unless
    ``make_optimizer(parameters)`` builds another optimizer."""
    factory = make_optimizer or (lambda parameters: torch.optim.SGD(parameters, lr=0.01))
    return TrainStep(program, factory)
