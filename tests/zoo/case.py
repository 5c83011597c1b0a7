"""The vocabulary of the zoo: a model case, its dynamic dimensions, seeded helpers.

A :class:`ModelCase` is everything a test or benchmark needs to run one real model:
how to build it (eval mode, weights from a fixed seed), how to make inputs at any
size inside the declared ranges, and which input dimensions may vary. Nothing here
knows about graphlift or torch.export; :meth:`ModelCase.dynamic_shapes` takes the
``Dim`` constructor of whichever exporter is being exercised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

SEED = 0
"""The one seed for every model's weights and every case's inputs."""

Inputs = tuple[tuple[Any, ...], dict[str, Any]]
"""``(args, kwargs)`` for ``model(*args, **kwargs)``."""


@dataclass(frozen=True)
class DimSpec:
    """A named input dimension that may vary between calls.

    ``min``/``max`` bound the sizes the model supports (the range a ``Dim`` gets);
    ``example`` is the default size used by ``make_inputs()`` and ``other`` is a
    second size in range, so tests can check that a case really runs at two shapes.
    Dimensions sharing a name are the same symbol (e.g. input_ids and
    attention_mask share ``seq``).
    """

    name: str
    min: int
    max: int
    example: int
    other: int
    multiple: int = 1
    """Every size is a multiple of this (Swin's images: whole 32-pixel blocks). The
    exporter then declares ``multiple * Dim(name, min=min // multiple, max=max //
    multiple)``, a derived dim whose root is on no input; sizes stay in elements."""

    def __post_init__(self) -> None:
        for size in (self.min, self.max, self.example, self.other):
            if size % self.multiple:
                raise ValueError(f"{self.name}: size {size} is not a multiple of {self.multiple}")
        for size in (self.example, self.other):
            if not self.min <= size <= self.max:
                raise ValueError(f"{self.name}: size {size} outside [{self.min}, {self.max}]")
        if self.example == self.other:
            raise ValueError(f"{self.name}: example and other must differ")


DynamicDims = Mapping[str, Mapping[int, DimSpec]]
"""Forward-parameter name -> axis -> the dimension living on that axis."""


@dataclass(frozen=True)
class ModelCase:
    """One real model, ready to build, feed and export.

    ``make_model()`` returns a fresh ``nn.Module`` in eval mode whose weights depend
    only on :data:`SEED`. ``make_inputs(**sizes)`` takes one keyword per dimension
    name in ``dynamic_dims`` (all optional) and returns ``(args, kwargs)``.
    ``dynamic_dims`` is keyed by the names of ``forward``'s parameters, which is the
    form torch.export's ``dynamic_shapes`` dict accepts.
    """

    name: str
    make_model: Callable[[], nn.Module]
    make_inputs: Callable[..., Inputs]
    dynamic_dims: DynamicDims
    tags: frozenset[str] = field(default_factory=frozenset)

    @property
    def dims(self) -> tuple[DimSpec, ...]:
        """The distinct dimensions, in order of first appearance."""
        seen: dict[str, DimSpec] = {}
        for axes in self.dynamic_dims.values():
            for dim in axes.values():
                if seen.setdefault(dim.name, dim) != dim:
                    raise ValueError(f"{self.name}: two different DimSpecs named {dim.name}")
        return tuple(seen.values())

    def sizes(self, which: str = "example") -> dict[str, int]:
        """Keyword sizes for ``make_inputs``: every dim at its ``example`` or ``other``."""
        return {dim.name: getattr(dim, which) for dim in self.dims}

    def dynamic_shapes(self, make_dim: Callable[..., Any]) -> dict[str, dict[int, Any]]:
        """The ``dynamic_shapes`` dict for an exporter, one ``make_dim(name, min=, max=)``
        per distinct dimension, shared by every axis that carries it (times its
        ``multiple``, if any)."""
        made = {
            dim.name: make_dim(dim.name, min=dim.min // dim.multiple, max=dim.max // dim.multiple)
            for dim in self.dims
        }
        return {
            param: {
                axis: made[dim.name] * dim.multiple if dim.multiple != 1 else made[dim.name]
                for axis, dim in axes.items()
            }
            for param, axes in self.dynamic_dims.items()
        }


@contextlib.contextmanager
def seeded(seed: int = SEED) -> Iterator[None]:
    """Run the block with the global RNG seeded, restoring the caller's RNG state after.

    Model constructors (torch.nn and transformers alike) draw initial weights from
    the global generator; forking keeps building a case from disturbing the caller.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build(construct: Callable[[], nn.Module]) -> nn.Module:
    """Construct a module under :func:`seeded` and put it in eval mode."""
    with seeded():
        module = construct()
    return module.eval()


def generator(*sizes: int) -> torch.Generator:
    """A private generator for inputs, seeded from :data:`SEED` and the requested
    sizes, so equal sizes give equal tensors and the global RNG is never touched."""
    seed = SEED
    for size in sizes:
        seed = seed * 1_000_003 + size
    return torch.Generator().manual_seed(seed % 2**63)


def token_ids(gen: torch.Generator, vocab: int, *shape: int) -> torch.Tensor:
    """Random token ids in ``[0, vocab)``, int64 like a tokenizer's output."""
    return torch.randint(0, vocab, shape, generator=gen, dtype=torch.long)


def padding_mask(gen: torch.Generator, batch: int, seq: int) -> torch.Tensor:
    """A 0/1 int64 attention mask with right padding: row ``i`` keeps a random
    number of leading tokens (at least one), the first row keeps all of them."""
    lengths = torch.randint(1, max(seq, 1) + 1, (batch,), generator=gen).clamp(max=seq)
    if batch:
        lengths[0] = seq
    return (torch.arange(seq)[None, :] < lengths[:, None]).long()
