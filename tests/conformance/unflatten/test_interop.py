"""An unflattened module converts to torch.fx (``gl.interop.to_fx``) with its
preserved calls still structured, so the fx module can be swapped into too."""

from __future__ import annotations

import copy

import pytest
import torch

import graphlift as gl
from tests.conformance.unflatten import models
from tests.conformance.unflatten.oracle import assert_same

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_to_fx_of_an_unflattened_module_with_a_preserved_call() -> None:
    args = (torch.rand(2, 3), torch.rand(2, 3))
    ep = gl.export(models.PreserveSignature(), args,
                   preserve_module_call_signature=("foo.nested",))  # fmt: skip
    unflat = gl.unflatten(ep)
    converted = gl.interop.to_fx(unflat)
    assert isinstance(converted.foo.nested, torch.fx.GraphModule)
    expected = models.PreserveSignature()(*args)
    assert_same(converted(*args), expected)
    converted.foo.nested = models.DictChild()  # the fx module keeps the call signature
    assert_same(converted(*args), expected)
    assert_same(copy.deepcopy(unflat)(*args), expected)
