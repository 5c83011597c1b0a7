"""Small random programs over dynamic-shape inputs, for the soundness fuzzer.

A program is a list of op descriptors applied in turn to a running tensor
``h`` (it starts as the first input; ops may read the other inputs). Each op
is a frozen dataclass whose ``apply`` is ordinary eager PyTorch, written with
sizes read from ``h.shape``, so export sees the same Python size arithmetic
and branches a user would write. Axes are stored as small integers and taken
modulo the running rank, so any op fits any tensor.

A ``FuzzCase`` adds input layouts (each dim a static size or ``scale * var +
offset`` over named dim variables), the example values to export with and the
trial values to run with. Everything has a short ``repr`` so a shrunk
counterexample reads as a program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

import graphlift as gl

INPUT_NAMES = ("x", "y", "z")
MAX_RANK = 4


def _axis(h: torch.Tensor, axis: int) -> int:
    return axis % h.dim()


def _along(h: torch.Tensor, axis: int, index: Any) -> torch.Tensor:
    """``h[:, ..., index]`` with ``index`` at ``axis``."""
    key = [slice(None)] * h.dim()
    key[axis] = index
    return h[tuple(key)]


# --- ops: each is ``h = op.apply(h, inputs)`` -----------------------------------------


@dataclass(frozen=True)
class SliceHalf:
    """``h[..., : h.shape[axis] // 2]``"""

    axis: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        return _along(h, a, slice(None, h.shape[a] // 2))


@dataclass(frozen=True)
class SliceFrom:
    """``h[..., start:]`` (empty when the dim is shorter than ``start``)."""

    axis: int
    start: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return _along(h, _axis(h, self.axis), slice(self.start, None))


@dataclass(frozen=True)
class SliceLast:
    """``h[..., -count:]``"""

    axis: int
    count: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return _along(h, _axis(h, self.axis), slice(-self.count, None))


@dataclass(frozen=True)
class Flatten:
    """``h.reshape(-1)``"""

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h.reshape(-1)


@dataclass(frozen=True)
class MergeLeading:
    """``h.view(h.shape[0] * h.shape[1], *h.shape[2:])`` (``reshape`` unless ``view``)."""

    view: bool

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if h.dim() < 2:
            return h
        shape = (h.shape[0] * h.shape[1], *h.shape[2:])
        return h.view(shape) if self.view else h.reshape(shape)


@dataclass(frozen=True)
class SplitLast:
    """``h.reshape(*h.shape[:-1], -1, parts)``: eager fails when it does not divide."""

    parts: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if h.dim() >= MAX_RANK:
            return h
        return h.reshape(*h.shape[:-1], -1, self.parts)


@dataclass(frozen=True)
class CatSelf:
    """``torch.cat([h, part], axis)`` with part ``h``, its first half or first row."""

    axis: int
    part: str  # "whole" | "half" | "first"

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        if self.part == "whole":
            other = h
        elif self.part == "half":
            other = _along(h, a, slice(None, h.shape[a] // 2))
        else:
            other = _along(h, a, slice(None, 1))
        return torch.cat([h, other], a)


@dataclass(frozen=True)
class CatInput:
    """``torch.cat([h, inputs[index]], axis)``: needs the other dims to agree."""

    index: int
    axis: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.cat([h, inputs[self.index % len(inputs)]], _axis(h, self.axis))


@dataclass(frozen=True)
class AddInput:
    """``h + inputs[index]`` (or ``*``), broadcasting."""

    index: int
    multiply: bool

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        other = inputs[self.index % len(inputs)]
        return h * other if self.multiply else h + other


@dataclass(frozen=True)
class AddInputPrefix:
    """``h + inputs[index].reshape(-1)[: h.shape[-1]]``: a slice bound from another tensor."""

    index: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h + inputs[self.index % len(inputs)].reshape(-1)[: h.shape[-1]]


@dataclass(frozen=True)
class AddReduced:
    """``h + h.<kind>(axis, keepdim=True)``: broadcasting against a size-1 dim."""

    axis: int
    kind: str  # "sum" | "mean" | "amax"

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h + getattr(h, self.kind)(_axis(h, self.axis), keepdim=True)


@dataclass(frozen=True)
class Reduce:
    """``h.<kind>(axis)``"""

    axis: int
    kind: str  # "sum" | "mean"

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return getattr(h, self.kind)(_axis(h, self.axis))


@dataclass(frozen=True)
class Transpose:
    """``h.transpose(first, second)``"""

    first: int
    second: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h.transpose(_axis(h, self.first), _axis(h, self.second))


@dataclass(frozen=True)
class Reverse:
    """``h.permute(*reversed(range(h.dim())))``"""

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h.permute(*reversed(range(h.dim())))


@dataclass(frozen=True)
class Expand:
    """``h.unsqueeze(0).expand(inputs[index].shape[0], *h.shape)``, or with ``first_only``
    ``h.narrow(axis, 0, 1).expand(h.shape)`` (a size-1 dim expanded back)."""

    index: int
    axis: int
    first_only: bool

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.first_only:
            return h.narrow(_axis(h, self.axis), 0, 1).expand(h.shape)
        if h.dim() >= MAX_RANK:
            return h
        return h.unsqueeze(0).expand(inputs[self.index % len(inputs)].shape[0], *h.shape)


@dataclass(frozen=True)
class Unsqueeze:
    """``h.unsqueeze(axis)``"""

    axis: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if h.dim() >= MAX_RANK:
            return h
        return h.unsqueeze(self.axis % (h.dim() + 1))


@dataclass(frozen=True)
class Squeeze:
    """``h.squeeze(axis)``: removes the dim only when it is 1, a size-dependent rank."""

    axis: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h.squeeze(_axis(h, self.axis))


@dataclass(frozen=True)
class NewFromSizes:
    """Tensors made from sizes: ``cat([h.reshape(-1), zeros(h.shape[0] * factor)])``, or
    ``h + arange(h.shape[-1])``, or ``h * h.shape[axis]`` (a size used as a value)."""

    kind: str  # "zeros" | "arange" | "scale"
    factor: int
    axis: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.kind == "zeros":
            return torch.cat([h.reshape(-1), torch.zeros(h.shape[0] * self.factor)])
        if self.kind == "arange":
            return h + torch.arange(h.shape[-1])
        return h * h.shape[_axis(h, self.axis)] / (h.shape[0] + self.factor)


@dataclass(frozen=True)
class Matmul:
    """``h @ h.transpose(-1, -2)`` (``h @ h`` on vectors), or ``h @ inputs[index].mT``."""

    index: int | None

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.index is not None:
            other = inputs[self.index % len(inputs)]
            return h @ (other.transpose(-1, -2) if other.dim() >= 2 else other)
        return h @ (h.transpose(-1, -2) if h.dim() >= 2 else h)


@dataclass(frozen=True)
class Pad:
    """``F.pad(h, (left, right))`` on the last dim, or also ``(top, bottom)`` on the one
    before; negative amounts crop (eager fails when nothing would be left)."""

    amounts: tuple[int, ...]

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        amounts = self.amounts[: 2 * min(h.dim(), len(self.amounts) // 2)]
        return F.pad(h, amounts)


@dataclass(frozen=True)
class IndexSelect:
    """``h.index_select(axis, torch.arange(...))``: every other row, reversed, or all."""

    axis: int
    kind: str  # "even" | "reversed" | "all"

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        size = h.shape[a]
        if self.kind == "even":
            index = torch.arange(0, size, 2)
        elif self.kind == "reversed":
            index = torch.arange(size - 1, -1, -1)
        else:
            index = torch.arange(size)
        return h.index_select(a, index)


@dataclass(frozen=True)
class SplitChunks:
    """``torch.cat([c.sum(axis, keepdim=True) for c in h.split(size, axis)], axis)``, or
    ``h.chunk(2, axis)[-1]``: how many pieces there are depends on the size."""

    axis: int
    size: int
    chunk: bool

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        if self.chunk:
            return h.chunk(self.size, a)[-1]
        return torch.cat([c.sum(a, keepdim=True) for c in h.split(self.size, a)], a)


@dataclass(frozen=True)
class Select:
    """``h.select(axis, index)`` with index ``-1``, ``h.shape[axis] // 2`` or ``h.shape[axis] - 1``."""

    axis: int
    kind: str  # "last" | "middle" | "size_minus_one"

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        index = {"last": -1, "middle": h.shape[a] // 2, "size_minus_one": h.shape[a] - 1}
        return h.select(a, index[self.kind])


@dataclass(frozen=True)
class StepSlice:
    """``h[..., offset::step]``: a ceil-divided size."""

    axis: int
    offset: int
    step: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return _along(h, _axis(h, self.axis), slice(self.offset, None, self.step))


@dataclass(frozen=True)
class SizeArithmetic:
    """Python arithmetic on sizes feeding a factory: ``zeros(max(n, k))``,
    ``zeros(n // m)``, ``zeros(n % k)`` or ``zeros(min(n, k))``, added to ``h.sum()``."""

    kind: str  # "max" | "floordiv" | "mod" | "min"
    constant: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        n, m = h.shape[0], h.shape[-1]
        sizes = {
            "max": lambda: max(n, self.constant),
            "floordiv": lambda: n // max(m, 1),
            "mod": lambda: n % self.constant,
            "min": lambda: min(n, self.constant),
        }
        return torch.zeros(sizes[self.kind]()) + h.sum()


@dataclass(frozen=True)
class TopK:
    """``h.topk(max(h.shape[axis] // 2, 1), axis).values``, or ``h.sort(axis).values``."""

    axis: int
    sort: bool

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        if self.sort:
            return h.sort(a).values
        return h.topk(max(h.shape[a] // 2, 1), a).values


@dataclass(frozen=True)
class Shift:
    """``h.roll(h.shape[axis] // 2, axis)``, ``h.flip(axis)`` or ``h.cumsum(axis)``."""

    axis: int
    kind: str  # "roll" | "flip" | "cumsum"

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _axis(h, self.axis)
        if self.kind == "roll":
            return h.roll(h.shape[a] // 2, a)
        return h.flip(a) if self.kind == "flip" else h.cumsum(a)


@dataclass(frozen=True)
class Window:
    """``h.unfold(axis, size, 1).sum(-1)``: ``n - size + 1`` windows (eager fails if n < size)."""

    axis: int
    size: int

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return h.unfold(_axis(h, self.axis), self.size, 1).sum(-1)


@dataclass(frozen=True)
class TriangleMask:
    """``h.masked_fill(arange(rows)[:, None] < arange(cols), 0)`` on the last two dims."""

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if h.dim() < 2:
            return h
        rows, cols = h.shape[-2], h.shape[-1]
        return h.masked_fill(torch.arange(rows)[:, None] < torch.arange(cols), 0.0)


@dataclass(frozen=True)
class Repeat:
    """``h.repeat(times, 1, ...)``, or ``h.repeat_interleave(times, axis)``."""

    axis: int
    times: int
    interleave: bool

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if self.interleave:
            return h.repeat_interleave(self.times, _axis(h, self.axis))
        return h.repeat(self.times, *[1] * (h.dim() - 1))


@dataclass(frozen=True)
class Branch:
    """``if h.shape[axis] > threshold`` (or ``% 2 == 0`` when ``threshold`` is None):
    ``then`` else ``otherwise``."""

    axis: int
    threshold: int | None
    then: Any
    otherwise: Any

    def apply(self, h: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        size = h.shape[_axis(h, self.axis)]
        taken = size % 2 == 0 if self.threshold is None else size > self.threshold
        return (self.then if taken else self.otherwise).apply(h, inputs)


# --- programs ------------------------------------------------------------------------


class Program(nn.Module):
    """Runs ``ops`` over ``h = inputs[0]``; returns ``h`` (and ``h.shape[0]`` if asked)."""

    def __init__(self, ops: tuple[Any, ...], return_size: bool = False) -> None:
        super().__init__()
        self.ops = ops
        self.return_size = return_size

    def run(self, *inputs: torch.Tensor) -> Any:
        h = inputs[0]
        for op in self.ops:
            if h.dim() == 0:
                h = h.reshape(1)
            h = op.apply(h, inputs)
        if self.return_size:
            return h, (h.shape[0] if h.dim() else 1) * 2 + 1
        return h

    def __repr__(self) -> str:
        ops = "".join(f"\n    {op!r}," for op in self.ops)
        return f"Program([{ops}\n], return_size={self.return_size})"


class Program1(Program):
    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.run(x)


class Program2(Program):
    def forward(self, x, y):  # type: ignore[no-untyped-def]
        return self.run(x, y)


class Program3(Program):
    def forward(self, x, y, z):  # type: ignore[no-untyped-def]
        return self.run(x, y, z)


PROGRAM_CLASSES = (Program1, Program2, Program3)


def make_program(ops: tuple[Any, ...], inputs: int, return_size: bool = False) -> Program:
    return PROGRAM_CLASSES[inputs - 1](ops, return_size)


# --- dims, layouts, cases --------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """A dim variable: exported as ``gl.Dim(name, min=min, max=max)``."""

    name: str
    min: int
    max: int | None

    def dim(self) -> gl.Dim:
        return gl.Dim(self.name, min=self.min, max=self.max)


@dataclass(frozen=True)
class Size:
    """One dim of an input layout: ``static``, or ``scale * var + offset``."""

    var: str | None = None
    scale: int = 1
    offset: int = 0
    static: int = 0

    def value(self, values: dict[str, int]) -> int:
        return self.static if self.var is None else self.scale * values[self.var] + self.offset

    def __repr__(self) -> str:
        if self.var is None:
            return str(self.static)
        text = self.var if self.scale == 1 else f"{self.scale}*{self.var}"
        return text + (f"+{self.offset}" if self.offset else "")


@dataclass(frozen=True)
class Trial:
    """Values for the vars, then optionally one input dim nudged by ``delta``
    (breaking a tie or a static size)."""

    values: tuple[tuple[str, int], ...]
    nudge: tuple[int, int, int] | None = None  # (input, axis, delta)


@dataclass(frozen=True)
class FuzzCase:
    program: Program
    variables: tuple[Var, ...]
    layouts: tuple[tuple[Size, ...], ...]
    example: tuple[tuple[str, int], ...]
    trials: tuple[Trial, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return INPUT_NAMES[: len(self.layouts)]

    def shapes(self, trial: Trial) -> tuple[tuple[int, ...], ...]:
        values = dict(trial.values)
        shapes = [[size.value(values) for size in layout] for layout in self.layouts]
        if trial.nudge is not None:
            index, axis, delta = trial.nudge
            shapes[index][axis] = max(0, shapes[index][axis] + delta)
        return tuple(tuple(shape) for shape in shapes)

    def example_shapes(self) -> tuple[tuple[int, ...], ...]:
        return self.shapes(Trial(self.example))

    def spec(self) -> dict[str, dict[int, Any]]:
        dims = {var.name: var.dim() for var in self.variables}
        return {
            name: {
                axis: dims[size.var] * size.scale + size.offset
                if (size.scale, size.offset) != (1, 0)
                else dims[size.var]
                for axis, size in enumerate(layout)
                if size.var is not None
            }
            for name, layout in zip(self.names, self.layouts)
        }


def make_inputs(shapes: tuple[tuple[int, ...], ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed + hash(shapes) % 10_000)
    return tuple(torch.randn(shape, generator=generator) for shape in shapes)


# --- strategies ------------------------------------------------------------------------

axes = st.integers(0, 3)
SIZE_TENSORS = ["zeros", "arange", "scale"]
SIZE_MATH = ["max", "floordiv", "mod", "min"]


def pad_amounts(count: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[st.integers(-1, 2)] * count)


def simple_ops(inputs: int, exclude: frozenset[type] = frozenset()) -> st.SearchStrategy[Any]:
    """One non-branching op; ``exclude`` leaves out op types (known bugs)."""
    index = st.integers(0, inputs - 1)
    options = [
        (SliceHalf, st.builds(SliceHalf, axes)),
        (SliceFrom, st.builds(SliceFrom, axes, st.integers(1, 2))),
        (SliceLast, st.builds(SliceLast, axes, st.integers(1, 3))),
        (Flatten, st.just(Flatten())),
        (MergeLeading, st.builds(MergeLeading, st.booleans())),
        (SplitLast, st.builds(SplitLast, st.integers(2, 3))),
        (CatSelf, st.builds(CatSelf, axes, st.sampled_from(["whole", "half", "first"]))),
        (CatInput, st.builds(CatInput, index, axes)),
        (AddInput, st.builds(AddInput, index, st.booleans())),
        (AddInputPrefix, st.builds(AddInputPrefix, index)),
        (AddReduced, st.builds(AddReduced, axes, st.sampled_from(["sum", "mean", "amax"]))),
        (Reduce, st.builds(Reduce, axes, st.sampled_from(["sum", "mean"]))),
        (Transpose, st.builds(Transpose, axes, axes)),
        (Reverse, st.just(Reverse())),
        (Expand, st.builds(Expand, index, axes, st.booleans())),
        (Unsqueeze, st.builds(Unsqueeze, axes)),
        (Squeeze, st.builds(Squeeze, axes)),
        (
            NewFromSizes,
            st.builds(NewFromSizes, st.sampled_from(SIZE_TENSORS), st.integers(1, 2), axes),
        ),
        (Matmul, st.builds(Matmul, st.none() | index)),
        (Pad, st.builds(Pad, st.sampled_from([2, 4]).flatmap(pad_amounts))),
        (IndexSelect, st.builds(IndexSelect, axes, st.sampled_from(["even", "reversed", "all"]))),
        (SplitChunks, st.builds(SplitChunks, axes, st.integers(2, 3), st.booleans())),
        (Select, st.builds(Select, axes, st.sampled_from(["last", "middle", "size_minus_one"]))),
        (StepSlice, st.builds(StepSlice, axes, st.integers(0, 1), st.integers(2, 3))),
        (SizeArithmetic, st.builds(SizeArithmetic, st.sampled_from(SIZE_MATH), st.integers(2, 5))),
        (TopK, st.builds(TopK, axes, st.booleans())),
        (Shift, st.builds(Shift, axes, st.sampled_from(["roll", "flip", "cumsum"]))),
        (Window, st.builds(Window, axes, st.integers(2, 3))),
        (TriangleMask, st.just(TriangleMask())),
        (Repeat, st.builds(Repeat, axes, st.integers(2, 3), st.booleans())),
    ]
    return st.one_of([strategy for op, strategy in options if op not in exclude])


def ops_for(inputs: int, exclude: frozenset[type] = frozenset()) -> st.SearchStrategy[Any]:
    simple = simple_ops(inputs, exclude)
    branch = st.builds(Branch, axes, st.none() | st.integers(1, 10), simple, simple)
    return st.one_of(simple, branch)


@st.composite
def variables(draw: st.DrawFn) -> tuple[Var, ...]:
    count = draw(st.integers(1, 3))
    out = []
    for name in "abc"[:count]:
        low = draw(st.sampled_from([2, 2, 2, 3, 1, 1, 0, 0]))  # 0/1: docs/zero_one.md
        high = (
            draw(st.none() | st.integers(low + 2, 16))
            if draw(st.integers(0, 5)) == 0
            else draw(st.integers(max(low, 2) + 2, 16))
        )
        out.append(Var(name, low, high))
    return tuple(out)


@st.composite
def layouts(draw: st.DrawFn, names: list[str], count: int) -> tuple[tuple[Size, ...], ...]:
    size = st.one_of(
        st.builds(Size, st.sampled_from(names)),
        st.builds(Size, st.sampled_from(names)),
        st.builds(Size, st.sampled_from(names), st.integers(1, 2), st.integers(0, 1)),
        st.builds(Size, st.none(), static=st.sampled_from([1, 2, 3, 4])),
    )
    first = tuple(draw(st.lists(size, min_size=1, max_size=3)))
    if all(s.var is None for s in first):
        first = (Size(names[0]), *first[1:])
    out = [first]
    for _ in range(count - 1):
        # Mostly like the first input (so broadcasting and cat fit), some dims 1 or dropped.
        related = st.lists(
            st.sampled_from([0, 0, 0, 1]), min_size=len(first), max_size=len(first)
        ).map(lambda ones, f=first: tuple(Size(static=1) if one else s for s, one in zip(f, ones)))
        layout = draw(
            st.one_of(
                related,
                related.map(lambda t: t[1:] or t),
                st.lists(size, min_size=1, max_size=3).map(tuple),
            )
        )
        out.append(layout)
    return _with_roots(tuple(out))


def _with_roots(layouts: tuple[tuple[Size, ...], ...]) -> tuple[tuple[Size, ...], ...]:
    """Make each var's first use plain: graphlift needs a derived dim's root on some input."""
    plain = {s.var for layout in layouts for s in layout if (s.scale, s.offset) == (1, 0)}
    fixed = []
    for layout in layouts:
        new = []
        for s in layout:
            if s.var is not None and s.var not in plain:
                plain.add(s.var)
                s = Size(s.var)
            new.append(s)
        fixed.append(tuple(new))
    return tuple(fixed)


def _value_in(var: Var) -> st.SearchStrategy[int]:
    return st.integers(var.min, var.max if var.max is not None else 20)


def _value_anywhere(var: Var) -> st.SearchStrategy[int]:
    edges = [var.min, var.min - 1, 0, 1, 2, (var.max or 20) + 1, (var.max or 20) + 3]
    return st.one_of(_value_in(var), st.sampled_from([e for e in edges if e >= 0]))


@st.composite
def fuzz_cases(
    draw: st.DrawFn, trials: int = 8, exclude: frozenset[type] = frozenset()
) -> FuzzCase:
    variables_ = draw(variables())
    count = draw(st.integers(1, 3))
    layouts_ = draw(layouts([v.name for v in variables_], count))
    ops = tuple(draw(st.lists(ops_for(count, exclude), min_size=2, max_size=6)))
    program = make_program(ops, count, draw(st.integers(0, 7)) == 0)
    example = tuple(
        (v.name, draw(st.integers(max(v.min, 2), v.max if v.max is not None else 12)))
        for v in variables_
    )
    drawn = []
    for i in range(trials):
        values = tuple(
            (v.name, draw(_value_in(v) if i < trials // 2 else _value_anywhere(v)))
            for v in variables_
        )
        nudge = None
        if i == trials - 1:
            index = draw(st.integers(0, count - 1))
            nudge = (
                index,
                draw(st.integers(0, len(layouts_[index]) - 1)),
                draw(st.sampled_from([-1, 1])),
            )
        drawn.append(Trial(values, nudge))
    return FuzzCase(program, variables_, layouts_, example, tuple(drawn))
