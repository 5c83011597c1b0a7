"""Every real model of the zoo through graphlift.export, against eager and torch.export.

For each case: ``ep.module()`` equals eager within 1e-5 on the example inputs;
the signature lists the same kinds in the same order as torch.export's; the
number of call nodes is within 15% of torch.export's. Models whose control flow
depends on tensor values fail in torch.export: by default graphlift says so with
a typed error that names the line; Mixtral exports with
``data_dependent="specialize"`` and nn.Transformer's causal-mask detection is
answered without reading data (both compared with eager only).
"""

from __future__ import annotations

import pytest
import torch

import graphlift as gl
from graphlift.errors import DataDependentError, RuntimeAssertError
from tests.zoo.models import CASES

DATA_DEPENDENT = {"mixtral", "nn_transformer"}  # torch.export fails on both


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
    flat = ep.inline_subgraphs()  # repeated layers as torch.export records them
    ours_count, theirs_count = call_nodes(flat.graph), call_nodes(reference.graph)
    assert abs(ours_count - theirs_count) <= 0.15 * theirs_count, (ours_count, theirs_count)


def test_mixtral_routing_fails_with_a_typed_error_naming_the_loop() -> None:
    case = next(c for c in CASES if c.name == "mixtral")
    args, kwargs = case.make_inputs()
    with pytest.raises(DataDependentError) as info:
        gl.export(case.make_model(), args, kwargs)
    assert info.value.where and "modeling_mixtral.py" in info.value.where
    assert "nonzero()" in str(info.value) and "torch._check" in str(info.value)


def test_nn_transformer_with_a_tensor_mask_matches_eager() -> None:
    case = next(c for c in CASES if c.name == "nn_transformer")
    model = case.make_model()
    args, kwargs = case.make_inputs()
    ep = gl.export(model, args, kwargs)
    with torch.no_grad():
        assert_outputs_close(ep.module()(*args, **kwargs), model(*args, **kwargs))
    assert not any("local_scalar_dense" in str(n.target) for n in ep.graph.nodes)


def test_mixtral_with_specialized_routing_matches_eager_on_two_inputs() -> None:
    """Routing decisions come from the example's data and become runtime asserts:
    another input with the same routing structure runs; one that routes
    differently is refused with a typed error instead of a wrong result."""
    case = next(c for c in CASES if c.name == "mixtral")
    model = case.make_model()
    _, kwargs = case.make_inputs()
    ids = kwargs["input_ids"]
    ep = gl.export(model, (), kwargs, data_dependent="specialize")
    other = torch.randint(
        0, int(ids.max()) + 1, ids.shape, generator=torch.Generator().manual_seed(7)
    )
    assert not torch.equal(other, ids)
    module = ep.module()
    with torch.no_grad():
        for tokens in (ids, other):
            assert_outputs_close(module(input_ids=tokens), model(input_ids=tokens))
    assert any("_assert_scalar" in str(n.target) for n in ep.graph.nodes)
    with pytest.raises(RuntimeAssertError, match=r"modeling_mixtral\.py"):
        module(input_ids=torch.zeros_like(ids))  # every token routed alike: fewer experts hit
