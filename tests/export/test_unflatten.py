"""``graphlift.unflatten``: the exported program with the original module tree.

Checked on a hand-made hierarchy (repeated calls, ModuleList, buffers, a dynamic
dim) and on real transformers models: same state_dict keys as the model, same
submodule classes, outputs equal eager, and a submodule can be swapped for the
original module.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from tests.zoo.models import CASES_BY_NAME


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x).relu() * self.scale


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = Block()
        self.layers = nn.ModuleList([Block(), Block()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.first(x)
        for layer in self.layers:
            y = layer(y)
        return self.first(y) + x.shape[0]  # `first` is called twice


def test_the_module_tree_state_and_outputs_match_the_model() -> None:
    model = Stack()
    ep = gl.export(model, (torch.randn(3, 4),), dynamic_shapes={"x": {0: gl.Dim("b")}})
    unflat = gl.unflatten(ep)
    assert sorted(unflat.state_dict()) == sorted(model.state_dict())
    assert type(unflat.first).__name__ == "Block" and type(unflat.first.lin).__name__ == "Linear"
    assert type(unflat.layers[1]).__name__ == "Block"
    # the second call of `first` traced the same code: it calls the same submodule
    assert unflat.code.count("self.first(") == 2
    assert "aten.linear" not in unflat.code and "aten.linear" in unflat.first.lin.code
    for size in (1, 3, 8):
        x = torch.randn(size, 4)
        torch.testing.assert_close(unflat(x), model(x))


def test_a_submodule_can_be_swapped_for_the_original() -> None:
    model = Stack()
    unflat = gl.unflatten(gl.export(model, (torch.randn(3, 4),)))
    replacement = Block()
    unflat.layers[0] = replacement  # same interface: one tensor in, one out
    model.layers[0] = replacement
    x = torch.randn(3, 4)
    torch.testing.assert_close(unflat(x), model(x))


def test_input_checks_are_kept() -> None:
    unflat = gl.unflatten(gl.export(Stack(), (torch.randn(3, 4),)))
    with pytest.raises(gl.errors.InputMismatchError):
        unflat(torch.randn(5, 4))


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_real_models_unflatten_to_their_layers(name: str) -> None:
    case = CASES_BY_NAME[name]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    unflat = gl.unflatten(gl.export(model, args, kwargs))
    assert sorted(unflat.state_dict()) == sorted(model.state_dict())
    originals = dict(model.named_modules())
    layers = [n for n, m in unflat.named_modules() if n and type(m).__name__.endswith("Layer")]
    assert layers and all(
        type(originals[n]).__name__ == type(unflat.get_submodule(n)).__name__ for n in layers
    )
    with torch.no_grad():
        actual, expected = unflat(*args, **kwargs), model(*args, **kwargs)
    for a, e in zip(gl.pytree.tree_leaves(actual), gl.pytree.tree_leaves(expected)):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)
