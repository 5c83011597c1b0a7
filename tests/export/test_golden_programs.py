"""Golden printouts of exported programs: a refactor that claims "no behaviour
change" leaves every byte of these equal.

Each case prints the program (``str(ep)``), the generated code of its graph and
the input-check prologue of ``module()``, for the stages users see: static and
dynamic export, buffer mutations, control flow, and the decomposed program.
A missing golden file is a failure, not a fresh golden: write them on purpose
with ``GRAPHLIFT_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import graphlift as gl
from graphlift.examples.tiny_gpt import make_example
from tests.capability_models import CondLinear, TrainBatchNorm

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GRAPHLIFT_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden {path}; write it with GRAPHLIFT_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} changed; rerun with GRAPHLIFT_UPDATE_GOLDEN=1 if intended"
    )


def printout(ep: gl.ExportedProgram) -> str:
    return "\n".join(
        [
            str(ep),
            "# --- code",
            ep.graph_module.code,
            "# --- input checks",
            ep.module().input_checks,
        ]
    )


def tiny_gpt_static() -> gl.ExportedProgram:
    model, (tokens,) = make_example()
    return gl.export(model, (tokens,))


def tiny_gpt_dynamic() -> gl.ExportedProgram:
    model, (tokens,) = make_example()
    spec = {"tokens": {0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=31)}}
    return gl.export(model, (tokens,), dynamic_shapes=spec)


def batch_norm_training() -> gl.ExportedProgram:
    torch.manual_seed(0)
    model = TrainBatchNorm().train()
    return gl.export(model, (torch.randn(6, 4),), dynamic_shapes=({0: gl.Dim("b", min=2)},))


def cond_linear() -> gl.ExportedProgram:
    torch.manual_seed(0)
    return gl.export(CondLinear(), (torch.randn(3, 4),))


def mlp_auto() -> gl.ExportedProgram:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    return gl.export(model, (torch.randn(5, 8),), dynamic_shapes=({0: gl.Dim.AUTO},))


CASES: dict[str, Callable[[], gl.ExportedProgram]] = {
    "tiny_gpt_static": tiny_gpt_static,
    "tiny_gpt_dynamic": tiny_gpt_dynamic,
    "batch_norm_training": batch_norm_training,
    "cond_linear": cond_linear,
    "mlp_auto": mlp_auto,
}


@pytest.mark.parametrize("name", CASES)
def test_exported_printout(name: str) -> None:
    check_golden(f"{name}.txt", printout(CASES[name]()))


@pytest.mark.parametrize("name", CASES)
def test_decomposed_printout(name: str) -> None:
    check_golden(f"{name}.core.txt", printout(CASES[name]().run_decompositions()))
