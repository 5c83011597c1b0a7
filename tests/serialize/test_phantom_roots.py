"""A program with a phantom root (``{1: 32 * h}``, ``h`` on no input) saves and
loads: its symbol source ``(x.size()[1] // 32)`` passes the archive's source
whitelist, the loaded program prints and runs the same, and still refuses
sizes not of the form. Sources outside the whitelist are refused on load."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import ArchiveError, InputMismatchError


class Patches(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        patches = x.unflatten(-1, (-1, 32)).sum(-1)
        return patches * (x.shape[-1] // 32) + y[:-1].unflatten(0, (-1, 2)).sum(1).T


def _export() -> gl.ExportedProgram:
    h = gl.Dim("h", min=1, max=4)
    spec = {"x": {1: 32 * h}, "y": {0: 2 * h + 1}}
    return gl.export(Patches(), (torch.randn(2, 64), torch.randn(5, 2)), dynamic_shapes=spec)


def _saved(program: gl.ExportedProgram) -> bytes:
    buffer = io.BytesIO()
    gl.save(program, buffer)
    return buffer.getvalue()


def test_a_phantom_root_round_trips() -> None:
    ep = _export()
    saved = _saved(ep)
    loaded = gl.load(io.BytesIO(saved))
    assert str(loaded) == str(ep)
    assert loaded.module().input_checks == ep.module().input_checks
    assert "(x.size()[1] // 32)" in loaded.module().input_checks
    for h in (1, 3, 4):
        x, y = torch.randn(2, 32 * h), torch.randn(2 * h + 1, 2)
        torch.testing.assert_close(loaded.module()(x, y), Patches()(x, y))
    with pytest.raises(InputMismatchError, match="32\\*k at dim 1"):
        loaded.module()(torch.randn(2, 48), torch.randn(3, 2))
    with pytest.raises(InputMismatchError):
        loaded.module()(torch.randn(2, 64), torch.randn(7, 2))
    assert _saved(loaded) == saved


@pytest.mark.parametrize(
    "source",
    [
        "(x.size()[1] // 32) or __import__('os')",
        "(x.size()[1] * 32)",
        "(x.size()[1] // 0)",
        "(y.size()[5] // 32)",  # names no input dimension
        "(z.size()[0] // 32)",
    ],
)
def test_a_tampered_phantom_source_is_refused(source: str) -> None:
    saved = _saved(_export())
    with zipfile.ZipFile(io.BytesIO(saved)) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    target = b"(x.size()[1] // 32)"
    changed = {name: data.replace(target, source.encode()) for name, data in files.items()}
    assert changed != files
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in changed.items():
            archive.writestr(name, data)
    with pytest.raises(ArchiveError, match=r"an access path|no input dimension"):
        gl.load(io.BytesIO(out.getvalue()))
