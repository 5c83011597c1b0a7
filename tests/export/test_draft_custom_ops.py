"""``draft_export`` of a custom op without a fake kernel (torch's
test/export/test_draft_export.py::test_missing_meta_kernel_custom_op).

Both exporters run the op on the example inputs and report MISSING_FAKE_KERNEL.
graphlift specializes the op's input sizes, takes its outputs' metadata from the
real run and checks it when the program runs: an op's output size may depend on
its inputs' values, so a program that assumed the example's is refused
(RuntimeAssertError) where the real output differs, never computed wrongly.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import ExportError, InputMismatchError, RuntimeAssertError


@torch.library.custom_op("gltest_draft::sin_plus_one", mutates_args=())
def sin_plus_one(x: torch.Tensor) -> torch.Tensor:
    return x.sin() + 1


@torch.library.custom_op("gltest_draft::positives", mutates_args=())
def positives(x: torch.Tensor) -> torch.Tensor:
    return x[x > 0]


@torch.library.custom_op("gltest_draft::split_halves", mutates_args=())
def split_halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[: x.shape[0] // 2].clone(), x[x.shape[0] // 2 :].t().contiguous().t()


@torch.library.custom_op("gltest_draft::with_fake", mutates_args=())
def with_fake(x: torch.Tensor) -> torch.Tensor:
    return x * 3


@with_fake.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("gltest_draft::scale_into", mutates_args={"out"})
def scale_into(x: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(x * 2)


class Calls(nn.Module):
    def __init__(self, op: object) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x) * 2  # type: ignore[operator]


def failure_types(ep: object) -> list[str]:
    return sorted(f.failure_type.name for f in ep._report.failures)  # type: ignore[attr-defined]


def torch_draft(model: nn.Module, args: tuple[torch.Tensor, ...]) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.draft_export(model, args)


def test_the_op_runs_on_the_example_and_is_reported_as_in_torch() -> None:
    model, x = Calls(sin_plus_one), torch.randn(3)
    with pytest.raises(ExportError, match="fake"):
        gl.export(model, (x,))
    ep, theirs = gl.draft_export(model, (x,)), torch_draft(model, (x,))
    assert failure_types(ep) == failure_types(theirs) == ["MISSING_FAKE_KERNEL"]
    (issue,) = ep.draft_report.issues
    assert "float32[3]" in issue.message and "specialized" in issue.message
    assert issue.where is not None and "forward" in issue.where
    for _ in range(3):
        y = torch.randn(3)
        torch.testing.assert_close(ep.module()(y), model(y))
        torch.testing.assert_close(theirs.module()(y), model(y))  # type: ignore[attr-defined]
    other = torch.randn(5)
    with pytest.raises(AssertionError):  # both: the input size was specialized
        theirs.module()(other)  # type: ignore[attr-defined]
    with pytest.raises(InputMismatchError):
        ep.module()(other)


def test_an_output_size_that_depends_on_values_is_checked_when_the_program_runs() -> None:
    model, x = Calls(positives), torch.tensor([1.0, -1.0, 2.0])
    ep = gl.draft_export(model, (x,))
    same_count = torch.tensor([3.0, -4.0, 5.0])
    torch.testing.assert_close(ep.module()(same_count), model(same_count))
    more = torch.tensor([3.0, 4.0, 5.0])  # eager returns 3 values, the example 2
    with pytest.raises(RuntimeAssertError, match=r"size is \[3\].*assumed \[2\]"):
        ep.module()(more)
    theirs = torch_draft(model, (x,))  # torch gives the output a data-dependent size
    torch.testing.assert_close(theirs.module()(more), model(more))  # type: ignore[attr-defined]


def test_several_outputs_with_their_strides_are_checked() -> None:
    model = Calls(lambda x: torch.cat(split_halves(x)))
    x = torch.randn(4, 3)
    ep = gl.draft_export(model, (x,))
    assert failure_types(ep) == ["MISSING_FAKE_KERNEL"]
    y = torch.randn(4, 3)
    torch.testing.assert_close(ep.module()(y), model(y))
    checks = [n for n in ep.graph.nodes if "assert_tensor_metadata" in str(n.target)]
    assert [n.kwargs["size"] for n in checks] == [[2, 3], [2, 3]]


def test_dynamic_dims_feeding_the_op_are_specialized_and_reported() -> None:
    model, x = Calls(sin_plus_one), torch.randn(4)
    ep = gl.draft_export(model, (x,), dynamic_shapes=({0: gl.Dim("n")},))
    assert failure_types(ep) == ["GUARD_ADDED", "MISSING_FAKE_KERNEL"]
    torch.testing.assert_close(ep.module()(x), model(x))
    with pytest.raises(InputMismatchError):
        ep.module()(torch.randn(6))
    auto = gl.draft_export(model, (x,), dynamic_shapes=({0: gl.Dim.AUTO},))
    assert [(s.source, s.change) for s in auto.specializations] == [("x.size()[0]", "static: 4")]


def test_the_check_survives_save_and_load() -> None:
    model = Calls(positives)
    ep = gl.draft_export(model, (torch.tensor([1.0, -1.0, 2.0]),))
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    loaded = gl.load(io.BytesIO(buffer.getvalue()))
    same_count = torch.tensor([-3.0, 4.0, 5.0])
    torch.testing.assert_close(loaded.module()(same_count), model(same_count))
    with pytest.raises(RuntimeAssertError):
        loaded.module()(torch.tensor([3.0, 4.0, 5.0]))


def test_ops_with_a_fake_kernel_and_mutating_ops_are_not_profiled() -> None:
    ep = gl.draft_export(Calls(with_fake), (torch.randn(3),), dynamic_shapes=({0: gl.Dim("n")},))
    assert ep.draft_report.successful()
    y = torch.randn(7)
    torch.testing.assert_close(ep.module()(y), y * 6)

    class Mutates(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros_like(x)
            scale_into(x, out)
            return out

    # torch.library gives a mutating op returning None a fake of its own: nothing to profile
    mutates = gl.draft_export(Mutates(), (torch.randn(3),))
    assert mutates.draft_report.successful()
    y = torch.randn(3)
    torch.testing.assert_close(mutates.module()(y), y * 2)
