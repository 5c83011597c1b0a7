"""Every unflattened module can be exported again by graphlift and computes
what the original model computes (issue #16)."""

from __future__ import annotations

import pytest
import torch

import graphlift as gl
from tests.conformance.unflatten import models
from tests.conformance.unflatten.oracle import assert_same
from tests.zoo.models import CASES_BY_NAME

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SMALL = [
    (models.Nested, (torch.rand(2, 3),), ()),
    (models.BufferMutation, (torch.rand(2, 3),), ()),
    (models.SharedSubmodule, (torch.rand(10),), ()),
    (models.PreserveSignature, (torch.rand(2, 3), torch.rand(2, 3)), ("foo.nested",)),
    (models.UnusedInput, (torch.randn(2), torch.randn(5)), ("m1",)),
    (models.SubmoduleOrdering, (torch.rand(3, 4),), ()),
    (models.AttrAsInput, (torch.rand(4, 8),), ()),
]


@pytest.mark.parametrize("index", range(len(SMALL)))
def test_unflattened_module_reexports(index: int) -> None:
    make, args, preserved = SMALL[index]
    model = make()
    eager, ours = make(), make()
    eager.load_state_dict(model.state_dict())
    ours.load_state_dict(model.state_dict())
    unflat = gl.unflatten(gl.export(ours, args, preserve_module_call_signature=preserved))
    again = gl.export(unflat, args, preserve_module_call_signature=preserved)
    for _ in range(2):  # buffers move on in both
        assert_same(again.module()(*args), eager(*args))
    assert sorted(again.state_dict) == sorted(model.state_dict())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "llama", "vit", "resnet", "nn_lstm", "t5"])
def test_unflattened_zoo_models_reexport(name: str) -> None:
    case = CASES_BY_NAME[name]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    unflat = gl.unflatten(gl.export(model, args, kwargs))
    again = gl.export(unflat, args, kwargs)
    with torch.no_grad():
        assert_same(again.module()(*args, **kwargs), model(*args, **kwargs))
    assert sorted(again.state_dict) == sorted(model.state_dict())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "swin",  # free height and width: refined to static (example 32) by err.fixes
        "whisper",
        "t5",
    ],
)
def test_dynamic_zoo_models_unflatten_after_decompositions(name: str) -> None:
    """Swin's window sizes are long chains of size computations shared by many
    calls: each call gets its own copy, in order (a regression: copies placed
    before the same node once came out of order)."""
    case = CASES_BY_NAME[name]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    spec = case.dynamic_shapes(gl.Dim)
    for _ in range(4):  # each refinement can uncover the next narrowing (Swin's windows)
        try:
            ep = gl.export(model, args, kwargs, dynamic_shapes=spec)
            break
        except gl.errors.ConstraintViolationError as error:
            spec = gl.refine_dynamic_shapes(spec, error, model, args, kwargs)
    else:
        ep = gl.export(model, args, kwargs, dynamic_shapes=spec)
    for program in (ep, ep.run_decompositions()):
        unflat = gl.unflatten(program)
        with torch.no_grad():
            assert_same(unflat(*args, **kwargs), model(*args, **kwargs))


@pytest.mark.slow
def test_swin_free_dims_are_refused_alike_with_and_without_reuse() -> None:
    """Block reuse changes nothing in what the spec check says: the flat export
    refuses the same sizes for the same reasons and suggests the same fixes. The
    height can only be the example's 32 (a multiple of 16, and <= 35 for the
    example's branch at modeling_swin.py:578, resolution <= window), so its fix
    is static; the width's is a derived dim."""
    case = CASES_BY_NAME["swin"]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    refusals = []
    for reuse in (True, False):
        with pytest.raises(gl.errors.ConstraintViolationError) as error:
            gl.export(model, args, kwargs, dynamic_shapes=case.dynamic_shapes(gl.Dim),
                      reuse_blocks=reuse)  # fmt: skip
        refusals.append((error.value.violations, error.value.fixes))
    assert refusals[0] == refusals[1]
    violations, fixes = refusals[0]
    assert [v.source for v in violations] == ["pixel_values.size()[2]", "pixel_values.size()[3]"]
    assert list(fixes) == ["pixel_values.size()[2]", "pixel_values.size()[3]"]
    assert fixes["pixel_values.size()[2]"] is None  # static: 32 is the one size left
    assert fixes["pixel_values.size()[3]"].scale == 16
