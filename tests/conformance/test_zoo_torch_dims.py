"""Every zoo model exports unchanged with ``dynamic_shapes`` written with torch.export.Dim.

Libraries build specs with torch's classes, so graphlift must take them as they
are: the program exported from a spec of ``torch.export.Dim`` prints exactly as
the one from the same spec written with ``graphlift.Dim`` (graph, signature,
range constraints), and runs at the case's other sizes like eager. Where the
zoo declares a wider range than a model supports (GPT-2's batch of 1, Swin's
free image sides), both specs raise the same ConstraintViolationError.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import graphlift as gl
from graphlift.errors import ConstraintViolationError
from graphlift.export.spec.torch_specs import from_torch_spec
from tests.conformance.harness import difference
from tests.zoo.models import CASES

DATA_DEPENDENT = {"mixtral", "nn_transformer"}  # need data_dependent="specialize"


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name not in DATA_DEPENDENT], ids=lambda c: c.name
)
def test_torch_dims_export_as_graphlift_dims(case) -> None:  # type: ignore[no-untyped-def]
    model = case.make_model()
    args, kwargs = case.make_inputs(**case.sizes("example"))
    with_torch_dims = _export(model, args, kwargs, case.dynamic_shapes(torch.export.Dim))
    with_our_dims = _export(model, args, kwargs, case.dynamic_shapes(gl.Dim))
    assert str(with_torch_dims) == str(with_our_dims)
    if isinstance(with_our_dims, ConstraintViolationError):
        return  # the zoo's range is wider than the model supports: the same error either way
    assert not isinstance(with_torch_dims, ConstraintViolationError)
    other_args, other_kwargs = case.make_inputs(**case.sizes("other"))
    with torch.no_grad():
        got = with_torch_dims.module()(*other_args, **other_kwargs)
        expected = model(*other_args, **other_kwargs)
    assert difference(got, expected) is None


def _export(model: Any, args: Any, kwargs: Any, spec: Any) -> Any:
    """The program, or the ConstraintViolationError (compared by its text)."""
    try:
        return gl.export(model, args, kwargs, dynamic_shapes=spec)
    except ConstraintViolationError as error:
        return error


def test_torch_dim_objects_become_graphlift_dims() -> None:
    """Named, bounded, derived and hint entries, each as graphlift reads it."""
    d = torch.export.Dim("d", min=2, max=32)
    spec = {
        "x": {0: d, 1: 2 * d + 1, 2: torch.export.Dim.AUTO},
        "y": (torch.export.Dim.STATIC, torch.export.Dim.DYNAMIC(min=1, max=9), None),
        "n": torch.export.Dim("n"),
    }
    converted = from_torch_spec(spec)
    root = gl.Dim("d", min=2, max=32)
    assert converted["x"] == {0: root, 1: 2 * root + 1, 2: gl.Dim.AUTO}
    assert converted["y"] == (gl.Dim.STATIC, gl.Dim.DYNAMIC(min=1, max=9), None)
    assert converted["n"] == gl.Dim("n", min=0, max=None)
