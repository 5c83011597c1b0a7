"""Programs with nested inputs and outputs and specialized Python inputs round-trip."""

from __future__ import annotations

import io

import pytest
import torch

import graphlift as gl
from graphlift.errors import InputMismatchError


class Structured(torch.nn.Module):
    def forward(self, x, n, inputs, flag=False, scale=None):  # type: ignore[no-untyped-def]
        y = x * n + inputs["a"]
        return {"out": y if flag else -y, "pair": (y.sum(), inputs["b"] + 1)}


def test_nested_inputs_outputs_and_constants() -> None:
    x, inputs = torch.randn(3, 4), {"a": torch.randn(3, 4), "b": torch.arange(3)}
    ep = gl.export(Structured(), (x, 3, inputs), {"flag": True, "scale": 2.5})
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    loaded = gl.load(io.BytesIO(buffer.getvalue()))
    assert str(loaded) == str(ep)
    assert loaded.example_inputs[1] == {"flag": True, "scale": 2.5}
    assert loaded.call_spec_in == ep.call_spec_in and loaded.call_spec_out == ep.call_spec_out
    expected = ep.module()(x, 3, inputs, flag=True, scale=2.5)
    actual = loaded.module()(x, 3, inputs, flag=True, scale=2.5)
    assert torch.equal(actual["out"], expected["out"])
    assert torch.equal(actual["pair"][1], expected["pair"][1])
    with pytest.raises(InputMismatchError):  # n was specialized to 3
        loaded.module()(x, 4, inputs, flag=True, scale=2.5)
    again = io.BytesIO()
    gl.save(loaded, again)
    assert again.getvalue() == buffer.getvalue()
