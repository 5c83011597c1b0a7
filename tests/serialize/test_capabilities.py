"""Archives of programs that use every capability: mutations (buffers, inputs,
custom ops with ``mutates_args``), control-flow bodies, unbacked symbols with
runtime asserts, dynamic int inputs — exported and decomposed. Each loaded
program prints identically, saves back to the same bytes, and runs (outputs,
written-back state and inputs) exactly like the original."""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import torch
from torch import nn

import graphlift as gl
from tests.capability_models import CondLinear, TrainBatchNorm


class NonzeroAndItem(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = (x > 0).sum().item()
        torch._check(count <= x.shape[0])
        return torch.nonzero(x > 0).float().sum() + count


class Window(nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        return x[:n] * n


class BumpInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x[:, 0] += 1
        return x * 2


@torch.library.custom_op("glserialize::bump", mutates_args=("buf",))
def bump(buf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    buf.add_(x.sum())
    return x * 2


@bump.register_fake
def _(buf: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class CustomMutation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bump(self.total, x)


CASES: dict[str, tuple[nn.Module, tuple[Any, ...], Any, list[tuple[Any, ...]]]] = {
    "cond": (CondLinear(), (torch.randn(3, 4),), None, [(torch.ones(3, 4),), (-torch.ones(3, 4),)]),
    "batch_norm_train": (
        TrainBatchNorm().train(), (torch.randn(5, 4),), ({0: gl.Dim("b", min=2)},),
        [(torch.randn(6, 4),), (torch.randn(2, 4),)],
    ),
    "unbacked": (NonzeroAndItem(), (torch.randn(6),), None, [(torch.randn(6),)]),
    "dynamic_int": (
        Window(), (torch.randn(10, 3), 4), {"x": None, "n": gl.Dim("n", min=1, max=8)},
        [(torch.randn(10, 3), 6)],
    ),
    "input_mutation": (BumpInput(), (torch.randn(3, 4),), None, [(torch.randn(3, 4),)]),
    "custom_mutation": (CustomMutation(), (torch.randn(3),), None, [(torch.randn(3),)] * 2),
}  # fmt: skip


def _clone(values: tuple[Any, ...]) -> list[Any]:
    return [v.clone() if isinstance(v, torch.Tensor) else v for v in values]


@pytest.mark.parametrize("decompose", [False, True], ids=["export", "core"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_capability_round_trips(name: str, decompose: bool) -> None:
    model, args, dynamic_shapes, trials = CASES[name]
    ep = gl.export(copy.deepcopy(model), args, dynamic_shapes=dynamic_shapes)
    if decompose:
        ep = ep.run_decompositions()
    saved = io.BytesIO()
    gl.save(ep, saved)
    loaded = gl.load(io.BytesIO(saved.getvalue()))
    assert str(loaded) == str(ep)
    again = io.BytesIO()
    gl.save(loaded, again)
    assert again.getvalue() == saved.getvalue()
    original, restored = ep.module(), loaded.module()
    for trial in trials:
        first, second = _clone(trial), _clone(trial)
        torch.testing.assert_close(restored(*second), original(*first), rtol=0, atol=0)
        for a, b in zip(first, second):
            if isinstance(a, torch.Tensor):
                torch.testing.assert_close(b, a, rtol=0, atol=0)  # inputs written back alike
    for (key, a), (_, b) in zip(original.state_dict().items(), restored.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=key)
