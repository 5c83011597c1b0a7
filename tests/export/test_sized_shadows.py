"""Ops whose C++ kernel reads concrete sizes of a symbolic tensor (trace/sized_shadow.py).

``kron``, ``linalg.multi_dot``, ``take_along_dim``, ``gradient`` (composite
kernels) and ``fractional_max_pool3d`` (a meta kernel) call ``sizes()`` in C++.
On a plain symbolic meta shadow that tripped torch's python_arg_parser
INTERNAL ASSERT. Like torch's FakeTensorMode, graphlift now answers the read
symbolically and the int C++ takes guards: the op is exported whole, its read
sizes specialized, exactly as torch.export does (compared live below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.export as te
from torch import nn

import graphlift as gl
from graphlift.errors import ConstraintViolationError, ExportError, InputMismatchError
from tests.export.op_modules import Call, auto_spec

AUTO = gl.Dim.AUTO


def fractional_pool(x: torch.Tensor) -> torch.Tensor:
    samples = torch.full((x.shape[0], x.shape[1], 3), 0.5)
    return nn.functional.fractional_max_pool3d(x, 2, output_size=(2, 2, 2), _random_samples=samples)


CASES: dict[str, tuple[Callable[..., Any], tuple[tuple[int, ...], ...]]] = {
    "kron": (torch.kron, ((2, 3), (4, 5))),
    "multi_dot": (lambda a, b, c: torch.linalg.multi_dot([a, b, c]), ((2, 3), (3, 4), (4, 5))),
    "take_along_dim": (lambda x: torch.take_along_dim(x, x.argsort(1), 1), ((3, 4),)),
    "gradient": (lambda x: torch.gradient(x)[0], ((5,),)),
    "fractional_max_pool3d": (fractional_pool, ((2, 3, 5, 5, 5),)),
}


def grown(shapes: tuple[tuple[int, ...], ...]) -> list[torch.Tensor]:
    return [torch.randn(*(s + 1 for s in shape)) for shape in shapes]


@pytest.mark.parametrize("name", sorted(CASES))
def test_exported_whole_and_specialized_like_torch(name: str) -> None:
    function, shapes = CASES[name]
    torch.manual_seed(0)
    inputs = [torch.randn(*shape) for shape in shapes]
    model = Call(function)
    ep = gl.export(model, tuple(inputs), dynamic_shapes=auto_spec(shapes, AUTO))
    torch.testing.assert_close(ep.module()(*inputs), model(*inputs))
    theirs = te.export(model, tuple(inputs), dynamic_shapes=auto_spec(shapes, te.Dim.AUTO))
    # every size the kernel read is specialized, as in torch's program
    assert not ep.range_constraints and not theirs.range_constraints
    assert ep.specializations
    with pytest.raises(InputMismatchError):
        ep.module()(*grown(shapes))


def test_op_recorded_whole() -> None:
    ep = gl.export(
        Call(torch.kron), (torch.randn(2, 3), torch.randn(4, 5)),
        dynamic_shapes=auto_spec(((2, 3), (4, 5)), AUTO),
    )  # fmt: skip
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert targets == ["aten.kron.default"]


def test_named_dim_read_by_the_kernel_is_a_violation() -> None:
    with pytest.raises(ConstraintViolationError, match=r"tensors_0.size\(\)\[0\].*static: 2"):
        gl.export(
            Call(lambda x, y: torch.kron(x, y)), (torch.randn(2, 3), torch.randn(4, 5)),
            dynamic_shapes=({0: gl.Dim("rows")}, None),
        )  # fmt: skip


def test_a_kernel_that_fails_on_its_inputs_still_reports_the_op() -> None:
    shapes = ((2, 3), (4, 5))  # 3 != 4: eager refuses as well
    with pytest.raises(ExportError, match=r"multi_dot|mm|size"):
        gl.export(
            Call(lambda a, b: torch.linalg.multi_dot([a, b])),
            tuple(torch.randn(*s) for s in shapes),
            dynamic_shapes=auto_spec(shapes, AUTO),
        )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_composite_kernel_runs_before_a_refs_meta_kernel(reduction: str, dynamic: bool) -> None:
    """torch registers its ``_refs`` function as the Meta kernel of hinge_embedding_loss;
    the python dispatcher picks it over the composite kernel, and it wants the
    reduction as a string, not ATen's enum ("0 is not a valid value for reduction")."""
    model = Call(
        lambda x, y: nn.functional.hinge_embedding_loss(x, y, margin=0.5, reduction=reduction)
    )
    shapes = ((4, 3), (4, 3))
    target = lambda *s: torch.randint(0, 2, s).float() * 2 - 1  # noqa: E731
    ep = gl.export(
        model, (torch.randn(*shapes[0]), target(*shapes[1])),
        dynamic_shapes=auto_spec(shapes, AUTO) if dynamic else None,
    )  # fmt: skip
    for program in (ep, ep.run_decompositions()):
        for rows in (4, 6, 9) if dynamic else (4,):
            x, y = torch.randn(rows, 3), target(rows, 3)
            torch.testing.assert_close(program.module()(x, y), model(x, y))


def test_meta_kernels_see_the_users_device() -> None:
    """torch's meta kernel of ``_scaled_mm`` checks CUDA's multiple-of-16 rule when
    ``device_hint`` says "cuda", which it says for every plain meta tensor; the
    shadows of CPU tensors now answer "cpu", so no such guard narrows the program."""
    fp8 = torch.float8_e4m3fn

    def scaled(a: torch.Tensor, b: torch.Tensor, sa: torch.Tensor, sb: torch.Tensor) -> Any:
        return torch._scaled_mm(a, b, sa, sb, out_dtype=torch.float32)

    def inputs(m: int, k: int, n: int) -> tuple[torch.Tensor, ...]:
        return (torch.randn(m, k).to(fp8), torch.randn(k, n).to(fp8), torch.tensor(0.5),
                torch.tensor(2.0))  # fmt: skip

    shapes = ((15, 16), (16, 32), (), ())
    ep = gl.export(Call(scaled), inputs(15, 16, 32), dynamic_shapes=auto_spec(shapes, AUTO))
    for m, k, n in ((15, 16, 32), (7, 17, 5), (3, 33, 9)):
        args = inputs(m, k, n)
        torch.testing.assert_close(ep.module()(*args), scaled(*args))


def test_an_op_without_meta_kernel_on_static_sizes_runs_its_cpu_kernel() -> None:
    """``histogram`` has no meta kernel; on static sizes its metadata comes from
    the CPU kernel on zeros (torch's FakeTensor fallback). On symbolic sizes that
    would specialize silently: refused, with the op named."""

    def histogram(x: torch.Tensor) -> Any:
        return torch.histogram(x, bins=4)

    ep = gl.export(Call(histogram), (torch.randn(6),))
    for program in (ep, ep.run_decompositions()):
        x = torch.randn(6)
        for got, expected in zip(program.module()(x), histogram(x)):
            torch.testing.assert_close(got, expected)
    with pytest.raises(ExportError, match="histogram"):
        gl.export(Call(histogram), (torch.randn(6),), dynamic_shapes=auto_spec(((6,),), AUTO))


def test_composite_op_needing_a_data_dependent_inner_op_is_recorded_decomposed() -> None:
    """``combinations`` calls ``masked_select`` (no meta kernel: its size depends on
    values); the op is recorded as its decomposition, traced under the mode, where
    masked_select makes an unbacked size. Its C++ kernel reads the length as an
    int, so with Dim.AUTO the length is specialized (announced), as in torch."""

    def pairs(x: torch.Tensor) -> Any:
        return torch.combinations(x, r=2)

    ep = gl.export(Call(pairs), (torch.randn(4),), dynamic_shapes=auto_spec(((4,),), AUTO))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "aten.combinations.default" not in targets and ep.specializations
    for program in (ep, ep.run_decompositions()):
        for _ in range(3):
            x = torch.randn(4)
            torch.testing.assert_close(program.module()(x), pairs(x))
        with pytest.raises(InputMismatchError):
            program.module()(torch.randn(6))
