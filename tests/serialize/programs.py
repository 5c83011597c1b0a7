"""Small programs the serialization tests share: tied, transposed and sliced
state, a lifted constant, dynamic dims with guards, and a custom op."""

from __future__ import annotations

import torch
from torch import nn

import graphlift as gl


@torch.library.custom_op("graphlift_serialize_test::shift", mutates_args=())
def shift(x: torch.Tensor, amount: float) -> torch.Tensor:
    return x + amount


@shift.register_fake
def _(x: torch.Tensor, amount: float) -> torch.Tensor:
    return torch.empty_like(x)


class SharedState(nn.Module):
    """Tied weights, a non-contiguous (transposed) buffer, a buffer that views
    part of another, a lifted constant and a size-dependent reshape (guards)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(8, 8)
        self.head = nn.Linear(8, 8)
        self.head.weight = self.embed.weight  # tied
        base = torch.randn(8, 12)
        self.register_buffer("transposed", base.t())  # non-contiguous, shape (12, 8)
        self.register_buffer("window", base[2:6, ::2])  # a strided view of the same storage
        self.register_buffer("steps", torch.arange(4), persistent=False)
        self.offset = torch.tensor(0.25)  # lifted as a constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        h = self.head(torch.relu(self.embed(x))) + self.offset
        h = h @ self.transposed.t()[:, :8] + self.window.sum() + self.steps.sum()
        folded = h.reshape(batch * length // 2, 2 * width)
        return shift(folded, 1.5).reshape(batch, length, width)


def shared_state_inputs(batch: int = 3, length: int = 6) -> tuple[torch.Tensor]:
    generator = torch.Generator().manual_seed(batch * 100 + length)
    return (torch.randn(batch, length, 8, generator=generator),)


def export_shared_state(dynamic: bool = True) -> gl.ExportedProgram:
    # Dim.AUTO: reshaping to batch*length // 2 rows needs an even product (issue 14:
    # a named Dim would now be refused with that narrowing); the guards stay in the archive
    dims = {"x": {0: gl.Dim.AUTO, 1: gl.Dim.AUTO}}
    return gl.export(SharedState(), shared_state_inputs(), dynamic_shapes=dims if dynamic else None)


class Tiny(nn.Module):
    """The fuzz target: small, with every section of the format in use."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 4)
        self.register_buffer("scale", torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).reshape(-1, 8) * 2 + self.scale.sum()  # guards: even rows


def export_tiny() -> gl.ExportedProgram:
    # Dim.AUTO: the even-rows guards narrow the dim, which a named Dim would
    # refuse (issue 14); the archive keeps them as guards and specializations.
    return gl.export(Tiny(), (torch.randn(6, 4),), dynamic_shapes={"x": {0: gl.Dim.AUTO}})
