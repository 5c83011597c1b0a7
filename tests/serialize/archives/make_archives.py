"""Writes the frozen archive of the *current* schema version (run once per new version).

    python tests/serialize/archives/make_archives.py

Each ``v<N>.gl`` is committed and never rewritten: tests/serialize/test_back_compat.py
loads every one of them with the current code and checks the outputs recorded
next to it (``v<N>.expected.safetensors``: inputs ``input_<i>`` at two sizes and
the outputs ``output_<i>``). The model lives only here, so loading proves the
archive alone is enough.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

import graphlift as gl
from graphlift.serialize import SCHEMA_VERSION

HERE = Path(__file__).resolve().parent


class Frozen(nn.Module):
    """Tied weights, a transposed buffer and a view of it, a lifted constant,
    two dynamic dims with a guard (the reshape needs an even batch*length)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.embed = nn.Linear(6, 6)
        self.head = nn.Linear(6, 6)
        self.head.weight = self.embed.weight
        self.norm = nn.LayerNorm(6)
        base = torch.randn(6, 10)
        self.register_buffer("transposed", base.t())
        self.register_buffer("window", base[1:4, ::3])
        self.offset = torch.tensor([0.5, -0.5, 0.25, 0.0, 1.0, 2.0])

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, width = x.shape
        h = self.norm(torch.relu(self.embed(x)) + self.offset)
        h = self.head(h) @ self.transposed.t()[:, :6] + self.window.mean()
        h = h.masked_fill(mask[:, :, None] == 0, 0.0)
        pairs = h.reshape(batch * length // 2, 2 * width).softmax(-1)
        return pairs, h.sum(dim=1)


def inputs(batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch * 1000 + length)
    mask = (torch.rand(batch, length, generator=generator) > 0.2).long()
    return torch.randn(batch, length, 6, generator=generator), mask


def main() -> None:
    model = Frozen().eval()
    batch, length = gl.Dim("batch", min=2, max=32), gl.Dim("length", min=2, max=64)
    spec = {"x": {0: batch, 1: length}, "mask": {0: batch, 1: length}}
    ep = gl.export(model, inputs(3, 4), dynamic_shapes=spec)
    gl.save(ep, HERE / f"v{SCHEMA_VERSION}.gl")
    tensors: dict[str, torch.Tensor] = {}
    for run, sizes in enumerate([(3, 4), (5, 6)]):
        x, mask = inputs(*sizes)
        with torch.no_grad():
            outputs = model(x, mask)
        tensors |= {f"run{run}.input_0": x, f"run{run}.input_1": mask}
        tensors |= {f"run{run}.output_{i}": out.contiguous() for i, out in enumerate(outputs)}
    save_file(tensors, HERE / f"v{SCHEMA_VERSION}.expected.safetensors")


if __name__ == "__main__":
    main()
