"""Every real model of the zoo through graphlift.export, against eager and torch.export.

For each case: ``ep.module()`` equals eager within 1e-5 on the example inputs;
the signature lists the same kinds in the same order as torch.export's; the
number of call nodes is within 15% of torch.export's. Models whose control flow
depends on tensor values fail in torch.export too; graphlift must say so with
a typed error that names the line (data-dependent export is issue #8).
"""

from __future__ import annotations

import pytest
import torch

import graphlift as gl
from graphlift.errors import DataDependentError
from tests.zoo.models import CASES

DATA_DEPENDENT = {"mixtral", "nn_transformer"}


def call_nodes(graph) -> int:  # type: ignore[no-untyped-def]
    return sum(node.op == "call_function" for node in graph.nodes)


def assert_outputs_close(actual, expected) -> None:  # type: ignore[no-untyped-def]
    actual_leaves = gl.pytree.tree_leaves(actual)
    expected_leaves = gl.pytree.tree_leaves(expected)
    assert len(actual_leaves) == len(expected_leaves)
    for a, e in zip(actual_leaves, expected_leaves):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name not in DATA_DEPENDENT], ids=lambda c: c.name
)
def test_export_matches_eager_and_torch_export(case) -> None:  # type: ignore[no-untyped-def]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    ep = gl.export(model, args, kwargs)
    with torch.no_grad():
        assert_outputs_close(ep.module()(*args, **kwargs), model(*args, **kwargs))

    reference = torch.export.export(model, args, kwargs)
    ours = [spec.kind.name for spec in ep.graph_signature.input_specs]
    theirs = [spec.kind.name for spec in reference.graph_signature.input_specs]
    assert ours == theirs
    assert [s.target for s in ep.graph_signature.input_specs if s.target] == [
        s.target for s in reference.graph_signature.input_specs if s.target
    ]
    ours_count, theirs_count = call_nodes(ep.graph), call_nodes(reference.graph)
    assert abs(ours_count - theirs_count) <= 0.15 * theirs_count, (ours_count, theirs_count)


@pytest.mark.parametrize("name", sorted(DATA_DEPENDENT))
def test_data_dependent_models_fail_with_a_typed_error(name: str) -> None:
    case = next(c for c in CASES if c.name == name)
    args, kwargs = case.make_inputs()
    with pytest.raises(DataDependentError) as info:
        gl.export(case.make_model(), args, kwargs)
    assert info.value.where and ".py:" in info.value.where
