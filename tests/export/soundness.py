"""A reusable soundness harness for dynamic-shape exports.

``check_soundness(case)`` exports a zoo case with its dynamic dims, then runs
the program on random sizes inside the declared ranges (it must equal eager)
and on sizes just outside them (it must refuse with InputMismatchError before
computing). Any model case can use it; the same harness will gain cases as
capabilities land.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

import graphlift as gl
from graphlift.errors import InputMismatchError
from tests.zoo.case import ModelCase


@dataclass(frozen=True)
class SoundnessReport:
    checked_shapes: list[dict[str, int]]
    refused_shapes: list[dict[str, int]]


def dims_for(case: ModelCase, min_size: int) -> dict[str, gl.Dim]:
    """gl.Dims for the case's dims, with min raised to ``min_size`` (see docs/zero_one.md).
    A dim with a ``multiple`` gets the Dim of its root (sizes in blocks: ``multiple * k``)."""
    return {
        d.name: gl.Dim(d.name, min=max(d.min, min_size) // d.multiple, max=d.max // d.multiple)
        for d in case.dims
    }


def _multiples(case: ModelCase) -> dict[str, int]:
    return {d.name: d.multiple for d in case.dims}


def _entry(dim: gl.Dim, multiple: int) -> object:
    return dim * multiple if multiple != 1 else dim


def trial_sizes(
    case: ModelCase, dims: dict[str, gl.Dim], rng: random.Random, count: int
) -> list[dict[str, int]]:
    """``count`` size assignments: every dim at its minimum (where sizes 0 and 1
    live), each dim alone at its minimum, then random sizes in range."""
    example, multiple = case.sizes(), _multiples(case)
    corners = [{name: dim.min * multiple[name] for name, dim in dims.items()}]
    corners += [{**example, name: dim.min * multiple[name]} for name, dim in dims.items()]
    randoms = [
        {name: rng.randint(dim.min, int(dim.upper)) * multiple[name] for name, dim in dims.items()}
        for _ in range(3 * count)
    ]
    unique = {tuple(sorted(s.items())): s for s in corners + randoms}
    return list(unique.values())[:count]


def assert_same(actual: object, expected: object, sizes: dict[str, int]) -> None:
    actual_leaves, expected_leaves = gl.pytree.tree_leaves(actual), gl.pytree.tree_leaves(expected)
    assert len(actual_leaves) == len(expected_leaves), sizes
    for a, e in zip(actual_leaves, expected_leaves):
        torch.testing.assert_close(a, e, atol=2e-5, rtol=2e-5, msg=lambda m: f"{sizes}: {m}")


def check_soundness(
    case: ModelCase, *, shapes: int = 5, min_size: int = 0, seed: int = 0
) -> SoundnessReport:
    model = case.make_model()
    dims = dims_for(case, min_size)
    multiple = _multiples(case)
    spec = {
        param: {axis: _entry(dims[dim.name], dim.multiple) for axis, dim in axes.items()}
        for param, axes in case.dynamic_dims.items()
    }
    args, kwargs = case.make_inputs(**case.sizes())
    module = gl.export(model, args, kwargs, dynamic_shapes=spec).module()
    rng = random.Random(seed)
    checked: list[dict[str, int]] = []
    for sizes in trial_sizes(case, dims, rng, shapes):
        args, kwargs = case.make_inputs(**sizes)
        with torch.no_grad():
            assert_same(module(*args, **kwargs), model(*args, **kwargs), sizes)
        checked.append(sizes)
    refused: list[dict[str, int]] = []
    for name, dim in dims.items():
        m = multiple[name]
        outside_sizes = [(dim.min - 1) * m, None if dim.max is None else (dim.max + 1) * m]
        outside_sizes += [case.sizes()[name] + 1] if m != 1 else []  # not a multiple
        for outside in outside_sizes:
            if outside is None or outside < 0:
                continue
            sizes = {**case.sizes(), name: outside}
            args, kwargs = case.make_inputs(**sizes)
            try:
                module(*args, **kwargs)
            except InputMismatchError:
                refused.append(sizes)
            else:
                raise AssertionError(
                    f"{case.name}: {sizes} is outside the declared ranges but was accepted"
                )
    return SoundnessReport(checked, refused)
