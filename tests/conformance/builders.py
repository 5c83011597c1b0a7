"""Short ways to write cases: a function as a module, seeded tensors, common specs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.export import Dim

from tests.conformance.harness import Case, Difference, Run


class Fn(torch.nn.Module):
    """``forward(x)`` calls ``fn``: one case per function, no class per case."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Any) -> Any:
        return self.fn(x)


class Fn2(Fn):
    def forward(self, x: Any, y: Any) -> Any:  # type: ignore[override]
        return self.fn(x, y)


class Fn3(Fn):
    def forward(self, x: Any, y: Any, z: Any) -> Any:  # type: ignore[override]
        return self.fn(x, y, z)


def function_module(fn: Callable[..., Any], arity: int) -> torch.nn.Module:
    """``fn`` as a module whose forward takes ``arity`` named inputs."""
    return (Fn, Fn2, Fn3)[arity - 1](fn)


def randn(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


def tensors(*shapes: tuple[int, ...]) -> Callable[[], tuple[torch.Tensor, ...]]:
    """A factory of seeded float inputs, one per shape (the harness seeds before calling)."""
    return lambda: tuple(torch.randn(*shape) for shape in shapes)


def batch_spec(
    shapes: tuple[tuple[int, ...], ...], *, name: str = "batch", lo: int = 2, hi: int = 64
) -> Callable[[], Any]:
    """Dim 0 is one dynamic dim on every input whose dim 0 is the first input's."""
    return lambda: tuple(
        {0: Dim(name, min=lo, max=hi)} if shape and shape[0] == shapes[0][0] else None
        for shape in shapes
    )


def with_batch(shapes: tuple[tuple[int, ...], ...], batch: int) -> tuple[torch.Tensor, ...]:
    """New inputs where every dim 0 equal to the first input's becomes ``batch``."""
    return tuple(
        torch.randn(batch, *shape[1:])
        if shape and shape[0] == shapes[0][0]
        else torch.randn(*shape)
        for shape in shapes
    )


def function_cases(
    name: str,
    fn: Callable[..., Any],
    shapes: tuple[tuple[int, ...], ...],
    *,
    source: str,
    dynamic: bool = True,
    difference: Difference | None = None,
    dynamic_difference: Difference | None = None,
) -> list[Case]:
    """A static case (another batch is refused) and a dynamic-batch case (other
    in-range batches run and equal eager; one above the range is refused)."""
    static = Case(
        f"{name}-static",
        lambda: function_module(fn, len(shapes)),
        tensors(*shapes),
        runs=lambda: (Run(tensors(*shapes)()), Run(with_batch(shapes, shapes[0][0] + 1))),
        source=source,
        difference=difference,
    )
    if not dynamic:
        return [static]
    dyn = Case(
        f"{name}-dynamic",
        lambda: function_module(fn, len(shapes)),
        tensors(*shapes),
        dynamic_shapes=batch_spec(shapes),
        runs=lambda: (
            Run(with_batch(shapes, 3)),
            Run(with_batch(shapes, 17)),
            Run(with_batch(shapes, 65)),
        ),
        source=source,
        difference=dynamic_difference,
    )
    return [static, dyn]


def module_cases(
    name: str,
    factory: Callable[[], torch.nn.Module],
    shapes: tuple[tuple[int, ...], ...],
    *,
    source: str,
    modes: tuple[str, ...] = ("export",),
    dynamic: bool = True,
    train: bool = False,
    difference: Difference | None = None,
) -> list[Case]:
    """Like ``function_cases`` for an nn.Module, in each of ``modes``."""

    def make() -> torch.nn.Module:
        module = factory()
        return module.train(train)

    cases = []
    for mode in modes:
        suffix = "" if mode == "export" else f"-{mode}"
        cases.append(
            Case(
                f"{name}-static{suffix}",
                make,
                tensors(*shapes),
                runs=lambda: (Run(tensors(*shapes)()), Run(with_batch(shapes, shapes[0][0] + 1))),
                mode=mode,
                source=source,
                difference=difference,
            )
        )
        if dynamic:
            cases.append(
                Case(
                    f"{name}-dynamic{suffix}",
                    make,
                    tensors(*shapes),
                    dynamic_shapes=batch_spec(shapes),
                    runs=lambda: (Run(with_batch(shapes, 3)), Run(with_batch(shapes, 65))),
                    mode=mode,
                    source=source,
                    difference=difference,
                )
            )
    return cases


def case(
    name: str,
    module: Callable[[], torch.nn.Module],
    args: Callable[[], tuple[Any, ...]],
    *,
    source: str,
    kwargs: Callable[[], dict[str, Any]] = dict,
    spec: Callable[[], Any] | None = None,
    runs: Callable[[], tuple[Run, ...]] = tuple,
    observe: Callable[[Any], Any] | None = None,
    mode: str = "export",
    difference: Difference | None = None,
) -> Case:
    """A Case with keyword names short enough for a table of hundreds."""
    return Case(
        name,
        module,
        args,
        kwargs=kwargs,
        dynamic_shapes=spec,
        runs=runs,
        observe=observe,
        mode=mode,
        source=source,
        difference=difference,
    )


def ranges(program: Any) -> list[tuple[Any, Any]]:
    """``range_constraints`` as sorted (lower, upper) pairs, unbounded as "inf"
    (torch's symbols are sympy, graphlift's are names: only the ranges compare).

    Lower bounds up to 2 compare equal ("<=2"): torch assumes sizes 0 and 1 away
    for hint dims and reports them from 2, graphlift keeps sizes 0 and 1 where
    the program is correct for them (docs/differences.md, "Sizes 0 and 1").
    """
    result = []
    for value in program.range_constraints.values():
        upper = value.upper
        text = str(upper)
        bound = "inf" if text in ("int_oo", "oo", "inf") else int(upper)
        lower = int(value.lower)
        result.append(("<=2" if lower <= 2 else lower, bound))
    return sorted(result, key=repr)
