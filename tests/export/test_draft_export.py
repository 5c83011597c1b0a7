"""``graphlift.draft_export``: what export would refuse becomes a report line,
and the program stays sound (narrower than asked, every assumption checked)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import InputMismatchError, RuntimeAssertError
from tests.zoo.models import CASES_BY_NAME


class Window(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 4:  # narrows seq to [5, ...]
            return x[:, :4] * 2
        return x


class Threshold(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # a decision on data: export raises DataDependentError
            return x * 2
        return -x


def test_a_clean_export_has_an_empty_report() -> None:
    ep = gl.draft_export(nn.Linear(4, 2), (torch.randn(3, 4),), dynamic_shapes=({0: gl.Dim("b")},))
    assert ep.draft_report.successful() and ep._report is ep.draft_report
    assert "no issues" in str(ep.draft_report)


def test_a_constraint_violation_is_refined_and_reported() -> None:
    spec = {"x": {0: gl.Dim("b", min=1, max=8), 1: gl.Dim("seq", min=2, max=16)}}
    with pytest.raises(gl.errors.ConstraintViolationError):
        gl.export(Window(), (torch.randn(2, 6),), dynamic_shapes=spec)
    ep = gl.draft_export(Window(), (torch.randn(2, 6),), dynamic_shapes=spec)
    (issue,) = ep.draft_report.issues
    assert issue.kind == "constraint violation" and "x.size()[1]" in issue.message
    assert ep.draft_report.dynamic_shapes["x"][1] == gl.Dim("seq", min=5, max=16)
    module = ep.module()
    for seq in (5, 16):
        x = torch.randn(3, seq)
        torch.testing.assert_close(module(x), Window()(x))
    with pytest.raises(InputMismatchError):
        module(torch.randn(3, 4))


def test_a_data_dependent_decision_is_specialized_under_a_runtime_assert() -> None:
    x = torch.ones(3)
    with pytest.raises(gl.errors.DataDependentError):
        gl.export(Threshold(), (x,))
    ep = gl.draft_export(Threshold(), (x,))
    (issue,) = ep.draft_report.issues
    assert issue.kind == "data-dependent decision" and "test_draft_export.py" in str(issue.where)
    module = ep.module()
    torch.testing.assert_close(module(torch.full((3,), 2.0)), torch.full((3,), 4.0))
    with pytest.raises(RuntimeAssertError):
        module(-torch.ones(3))  # decides the other way: refused, not answered wrongly


def test_mixtral_drafts_with_its_routing_reported() -> None:
    case = CASES_BY_NAME["mixtral"]
    model = case.make_model()
    _, kwargs = case.make_inputs()
    ep = gl.draft_export(model, (), kwargs)
    kinds = {issue.kind for issue in ep.draft_report.issues}
    assert kinds == {"data-dependent decision"}
    assert any("modeling_mixtral.py" in str(issue.where) for issue in ep.draft_report.issues)
    with torch.no_grad():
        actual, expected = ep.module()(**kwargs), model(**kwargs)
    for a, e in zip(gl.pytree.tree_leaves(actual), gl.pytree.tree_leaves(expected), strict=True):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
