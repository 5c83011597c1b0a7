"""Frozen archives, one per schema version, keep loading and computing the same outputs.

``archives/v<N>.gl`` was written by the graphlift of that version
(``archives/make_archives.py``) and is never regenerated; its model's code is
not importable from here.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import graphlift as gl
from graphlift.errors import InputMismatchError
from graphlift.serialize import SCHEMA_VERSION

ARCHIVES = Path(__file__).with_name("archives")
VERSIONS = sorted(int(p.stem[1:]) for p in ARCHIVES.glob("v*.gl"))


def test_there_is_a_frozen_archive_for_every_version() -> None:
    assert VERSIONS == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("version", VERSIONS)
def test_frozen_archive_loads_and_runs(version: int) -> None:
    ep = gl.load(ARCHIVES / f"v{version}.gl")
    expected = load_file(ARCHIVES / f"v{version}.expected.safetensors")
    module = ep.module()
    for run in ("run0", "run1"):
        x, mask = expected[f"{run}.input_0"], expected[f"{run}.input_1"]
        with torch.no_grad():
            outputs = module(x, mask)
        assert len(outputs) == 2
        for index, output in enumerate(outputs):
            torch.testing.assert_close(
                output, expected[f"{run}.output_{index}"], atol=1e-5, rtol=1e-5
            )
    assert ep.state_dict["embed.weight"] is ep.state_dict["head.weight"]
    with pytest.raises(InputMismatchError):  # batch * length must be even (a guard)
        module(torch.randn(3, 5, 6), torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(InputMismatchError):  # batch is at most 32
        module(torch.randn(34, 4, 6), torch.ones(34, 4, dtype=torch.long))


def test_the_current_version_saves_back_to_the_same_bytes() -> None:
    path = ARCHIVES / f"v{SCHEMA_VERSION}.gl"
    buffer = io.BytesIO()
    gl.save(gl.load(path), buffer)
    assert buffer.getvalue() == path.read_bytes()
