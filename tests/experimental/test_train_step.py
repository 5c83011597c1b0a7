"""The train-step recipe: SGD from a joint program matches eager training step by step."""

from __future__ import annotations

import copy

import pytest
import torch

import graphlift as gl
from graphlift.errors import JointExportError
from graphlift.experimental import export_forward_backward, train_step

from .models import CASES, JointCase, build


def sgd(parameters: object) -> torch.optim.Optimizer:
    return torch.optim.SGD(parameters, lr=0.05, momentum=0.9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name in ("cifar_cnn", "train_batch_norm", "tied_embeddings")],
    ids=lambda c: c.name,
)  # fmt: skip
def test_sgd_from_the_joint_program_matches_eager_training(case: JointCase) -> None:
    eager = build(case)
    exported = copy.deepcopy(eager)
    step = train_step(export_forward_backward(gl.export(exported, case.make_inputs(0))), sgd)
    optimizer = sgd(eager.parameters())
    for seed in range(1, 5):
        inputs = case.make_inputs(seed)
        optimizer.zero_grad()
        expected = eager(*inputs)
        expected.backward()
        optimizer.step()
        torch.testing.assert_close(step(*inputs), expected.detach(), rtol=1e-4, atol=1e-5)
    trained = dict(step.module.named_parameters(remove_duplicate=False))
    for name, parameter in eager.named_parameters():
        torch.testing.assert_close(trained[name], parameter.detach(), rtol=1e-4, atol=1e-5)
    for name, buffer in eager.named_buffers():
        torch.testing.assert_close(dict(step.module.named_buffers())[name], buffer)


def test_train_step_needs_a_joint_program() -> None:
    case = CASES[0]
    with pytest.raises(JointExportError, match="export_forward_backward"):
        train_step(gl.export(build(case), case.make_inputs(0)))
