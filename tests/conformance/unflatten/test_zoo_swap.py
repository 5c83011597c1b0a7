"""Swapping a preserved submodule of a real model (issue #16).

For each case one layer is exported with ``preserve_module_call_signature``;
after ``unflatten`` the program equals eager, and it still does when the
layer is replaced by (a) the model's own eager layer and (b) the layer
exported separately by graphlift for the shapes it saw, which specializes
differently from the whole program (static where the program is dynamic).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

import graphlift as gl
from tests.conformance.unflatten.oracle import assert_same
from tests.zoo.models import CASES_BY_NAME

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SWAPS = {  # zoo case -> the layer to preserve and swap
    "llama": "model.model.layers.0",
    "bert": "encoder.layer.1",
    "vit": "model.vit.layers.0",
    "gpt2": "model.transformer.h.1",
    "nn_mlp": "2",
}
STATIC = {"gpt2"}  # its batch dim needs min=2 (transformers' mask code asks batch != 1)


def _replace(root: torch.nn.Module, fqn: str, module: torch.nn.Module) -> None:
    parent, _, leaf = fqn.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _layer_call(model: torch.nn.Module, fqn: str, args: Any, kwargs: Any) -> tuple[Any, Any]:
    """The arguments the layer ``fqn`` receives when ``model`` runs."""
    seen: list[tuple[Any, Any]] = []
    hook = model.get_submodule(fqn).register_forward_pre_hook(
        lambda module, a, k: seen.append((a, k)), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SWAPS))
def test_a_preserved_layer_swaps_for_eager_and_for_another_export(name: str) -> None:
    case, fqn = CASES_BY_NAME[name], SWAPS[name]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    dynamic = None if name in STATIC else case.dynamic_shapes(gl.Dim)
    ep = gl.export(model, args, kwargs, dynamic_shapes=dynamic,
                   preserve_module_call_signature=(fqn,))  # fmt: skip
    unflat = gl.unflatten(ep)
    with torch.no_grad():
        expected = model(*args, **kwargs)
        assert_same(unflat(*args, **kwargs), expected)
        assert type(unflat.get_submodule(fqn)).__name__ == type(model.get_submodule(fqn)).__name__

        # what the program passes the layer (transformers builds masks under tracing
        # that eager leaves None: the signature is the traced one)
        layer_args, layer_kwargs = _layer_call(unflat, fqn, args, kwargs)
        _replace(unflat, fqn, model.get_submodule(fqn))  # the original eager layer
        assert_same(unflat(*args, **kwargs), expected)

        separately = gl.export(copy.deepcopy(model.get_submodule(fqn)), layer_args, layer_kwargs)
        _replace(unflat, fqn, separately.module())  # static: specialized to these shapes
        assert_same(unflat(*args, **kwargs), expected)


def test_a_swapped_layer_with_another_signature_is_refused() -> None:
    case, fqn = CASES_BY_NAME["nn_mlp"], SWAPS["nn_mlp"]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    unflat = gl.unflatten(gl.export(model, args, kwargs, preserve_module_call_signature=(fqn,)))

    class ReturnsAPair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    _replace(unflat, fqn, ReturnsAPair())
    with pytest.raises(gl.errors.CallSignatureError, match="returned outputs structured as"):
        unflat(*args, **kwargs)
