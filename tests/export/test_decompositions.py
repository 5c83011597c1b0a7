"""run_decompositions on the zoo, against eager and torch.export's run_decompositions.

Per zoo model (static shapes): the decomposed program equals eager, calls only
core ATen ops (``torch.Tag.core``), leaves the original program untouched and
has a node count within 10% of torch.export's. torch.export's counts come from
``benchmarks/decomp_speed.py`` (recorded in ``benchmarks/results/decomp_speed.json``,
same torch) because running torch's decomposition on every model takes about a
minute; three small models are also checked live against torch.export here.
"""

from __future__ import annotations

import functools
import json
import operator
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._decomp import decomposition_table

import graphlift as gl
from graphlift.errors import ConstraintViolationError
from graphlift.export.program.decompositions import run_decompositions
from graphlift.trace.control_flow import CONTROL_FLOW_TARGETS
from tests.export.test_models import DATA_DEPENDENT, assert_outputs_close, call_nodes
from tests.zoo.models import CASES, get_case

aten = torch.ops.aten
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "decomp_speed.json"
SIZE_TARGETS = {aten.sym_size.int, operator.getitem, operator.mul, operator.add, operator.sub,
                operator.floordiv, operator.mod, torch.sym_max, torch.sym_min}  # fmt: skip
MODELS = [c for c in CASES if c.name not in DATA_DEPENDENT]


def recorded_torch_counts() -> dict[str, int | None]:
    """torch.export's node counts from the committed benchmark results (None where
    its run_decompositions failed). The file is part of the repository."""
    assert RESULTS.exists(), f"{RESULTS} is missing: run benchmarks/decomp_speed.py"
    cases = json.loads(RESULTS.read_text())["cases"]
    return {name: record["static"]["torch"].get("nodes") for name, record in cases.items()}


#: Zoo models whose run_decompositions fails in torch.export (recorded as None):
#: nothing to compare with. Any other model without a count fails the test.
TORCH_DECOMPOSITION_FAILS = {"gpt2", "nn_transformer"}


def non_core_targets(program) -> set[str]:  # type: ignore[no-untyped-def]
    """Targets outside core ATen in the graph and in its bodies (shared block
    bodies: the call of a body is a graph callable, like cond)."""
    graphs = [program.graph, *(body.graph for _, body in program.graph_module.named_children())]
    return {
        str(node.target)
        for graph in graphs
        for node in graph.nodes
        if node.op == "call_function"
        and node.target not in SIZE_TARGETS | CONTROL_FLOW_TARGETS
        and not (
            isinstance(node.target, torch._ops.OpOverload) and torch.Tag.core in node.target.tags
        )
    }


@functools.cache
def decomposed(name: str):  # type: ignore[no-untyped-def]
    """(model, inputs, exported, decomposed, printout of exported before) per zoo case, once."""
    case = get_case(name)
    model = case.make_model()
    args, kwargs = case.make_inputs()
    ep = gl.export(model, args, kwargs)
    before = str(ep)
    return model, (args, kwargs), ep, ep.run_decompositions(), before


@pytest.mark.parametrize("case", MODELS, ids=lambda c: c.name)
def test_zoo_model_decomposes_to_core_aten_equal_to_eager(case) -> None:  # type: ignore[no-untyped-def]
    model, (args, kwargs), ep, core, before = decomposed(case.name)
    assert str(ep) == before, "run_decompositions changed the original program"
    assert non_core_targets(core) == set()
    with torch.no_grad():
        assert_outputs_close(core.module()(*args, **kwargs), model(*args, **kwargs))
    assert core.graph_signature.input_specs == ep.graph_signature.input_specs
    assert [s.kind for s in core.graph_signature.output_specs] == [
        s.kind for s in ep.graph_signature.output_specs
    ]
    assert core.state_dict.keys() == ep.state_dict.keys()
    assert core.constants.keys() >= ep.constants.keys()


@pytest.mark.parametrize(
    "case", [c for c in MODELS if c.name not in TORCH_DECOMPOSITION_FAILS], ids=lambda c: c.name
)
def test_zoo_node_count_within_ten_percent_of_torch_export(case) -> None:  # type: ignore[no-untyped-def]
    theirs = recorded_torch_counts().get(case.name)
    assert theirs is not None, f"no torch.export node count for {case.name} in {RESULTS.name}"
    ours = call_nodes(decomposed(case.name)[3].inline_subgraphs().graph)  # flat, as torch's
    assert abs(ours - theirs) <= 0.10 * theirs, (ours, theirs)


@pytest.mark.parametrize("name", ["nn_mlp", "nn_conv_bn", "nn_multihead_attention"])
def test_node_count_within_ten_percent_of_torch_export_live(name: str) -> None:
    case = get_case(name)
    model = case.make_model()
    args, kwargs = case.make_inputs()
    ours = call_nodes(gl.export(model, args, kwargs).run_decompositions().inline_subgraphs().graph)
    theirs = call_nodes(torch.export.export(model, args, kwargs).run_decompositions().graph)
    assert abs(ours - theirs) <= 0.10 * theirs, (ours, theirs)


def dynamic_gpt2():  # type: ignore[no-untyped-def]
    case = get_case("gpt2")
    model = case.make_model()
    args, kwargs = case.make_inputs()
    dims = {d.name: gl.Dim(d.name, min=2, max=d.max) for d in case.dims}
    spec = {p: {a: dims[d.name] for a, d in axes.items()} for p, axes in case.dynamic_dims.items()}
    return case, model, gl.export(model, args, kwargs, dynamic_shapes=spec)


def test_dynamic_gpt2_decomposes_and_runs_on_several_shapes() -> None:
    # torch.export 2.13 fails here: "Cannot view a tensor with shape [s43, s53, 128] ..."
    case, model, ep = dynamic_gpt2()
    core = ep.run_decompositions()
    assert non_core_targets(core) == set()
    assert core.range_constraints == ep.range_constraints
    assert any(n.target is aten.sym_size.int for n in core.graph.nodes)
    module = core.module()
    for batch, seq in [(2, 5), (3, 11), (4, 2)]:
        args, kwargs = case.make_inputs(batch=batch, seq=seq)
        with torch.no_grad():
            assert_outputs_close(module(*args, **kwargs), model(*args, **kwargs))
    args, kwargs = case.make_inputs(batch=1, seq=5)
    with pytest.raises(AssertionError):  # the input checks survive decomposition
        module(*args, **kwargs)


def test_the_template_cache_changes_nothing_in_the_graph() -> None:
    _, _, ep = dynamic_gpt2()
    cached = run_decompositions(ep, None)
    uncached = run_decompositions(ep, None, cache=False)
    assert str(cached.graph) == str(uncached.graph)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return nn.functional.gelu(self.norm(self.fc(x))).reshape(-1)


def targets(program) -> set:  # type: ignore[no-untyped-def]
    return {n.target for n in program.graph.nodes if n.op == "call_function"}


def test_deleting_an_entry_preserves_the_op() -> None:
    model, x = MLP().eval(), torch.randn(3, 4)
    ep = gl.export(model, (x,))
    table = gl.default_decompositions()
    del table[aten.linear.default]
    core = ep.run_decompositions(table)
    assert aten.linear.default in targets(core)
    assert aten.addmm.default not in targets(core)
    assert aten.reshape.default not in targets(core)  # aliasing CIA ops always decompose
    torch.testing.assert_close(core.module()(x), model(x))
    assert aten.linear.default in gl.default_decompositions()  # a fresh table each call


def test_an_empty_table_keeps_functional_composites_and_decomposes_aliasing_ones() -> None:
    model, x = MLP().eval(), torch.randn(3, 4)
    core = gl.export(model, (x,)).run_decompositions({})
    assert {aten.linear.default, aten.layer_norm.default} <= targets(core)
    assert aten.reshape.default not in targets(core) and aten.view.default in targets(core)


def test_a_user_callable_replaces_the_op() -> None:
    model, x = MLP().eval(), torch.randn(3, 4)
    table = gl.default_decompositions()
    table[aten.gelu.default] = lambda x, approximate="none": x * torch.sigmoid(1.702 * x)
    core = gl.export(model, (x,)).run_decompositions(table)
    assert aten.gelu.default not in targets(core) and aten.sigmoid.default in targets(core)
    hidden = model.norm(model.fc(x))
    torch.testing.assert_close(
        core.module()(x), (hidden * torch.sigmoid(1.702 * hidden)).reshape(-1)
    )


@torch.library.custom_op("graphlift_decomp_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class UsesCustomOp(nn.Module):
    def forward(self, x):
        return twice(x).relu()


def test_custom_ops_are_preserved_unless_listed() -> None:
    x = torch.randn(3, 4)
    ep = gl.export(UsesCustomOp(), (x,))
    op = torch.ops.graphlift_decomp_test.twice.default
    assert op in targets(ep.run_decompositions())
    table = gl.default_decompositions()
    table[op] = lambda x: x + x
    listed = ep.run_decompositions(table)
    assert op not in targets(listed) and aten.add.Tensor in targets(listed)
    torch.testing.assert_close(listed.module()(x), (x * 2).relu())


def test_metadata_is_carried_to_every_node_a_decomposition_makes() -> None:
    model, x = MLP().eval(), torch.randn(3, 4)
    ep = gl.export(model, (x,))
    core = ep.run_decompositions()
    addmm = next(n for n in core.graph.nodes if n.target is aten.addmm.default)
    linear = next(n for n in ep.graph.nodes if n.target is aten.linear.default)
    assert addmm.meta["stack_trace"] == linear.meta["stack_trace"]
    assert "self.fc(x)" in addmm.meta["stack_trace"]
    assert addmm.meta["nn_module_stack"] == linear.meta["nn_module_stack"]
    for node in core.graph.nodes:
        if node.op == "call_function":
            assert "val" in node.meta and "stack_trace" in node.meta, node.format_node()


class BufferedConstant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor([2.0, 3.0, 4.0, 5.0]))
        self.offset = torch.tensor([1.0, 1.0, 1.0, 1.0])

    def forward(self, x):
        return torch.addcmul(x, x, self.scale) + self.offset


def test_state_constants_and_signature_are_carried() -> None:
    model, x = BufferedConstant(), torch.randn(3, 4)
    ep = gl.export(model, (x,))
    core = ep.run_decompositions()
    assert aten.addcmul.default not in targets(core)
    assert core.graph_signature.input_specs == ep.graph_signature.input_specs
    assert core.state_dict["scale"] is ep.state_dict["scale"]
    assert core.constants.keys() == ep.constants.keys()
    torch.testing.assert_close(core.module()(x), model(x))


def test_a_decomposition_that_would_specialize_a_dynamic_dim_is_refused() -> None:
    case = get_case("nn_gru")
    model = case.make_model()
    args, kwargs = case.make_inputs()
    seq = next(iter(case.dims))
    spec = {p: {a: gl.Dim(d.name, min=2, max=d.max) for a, d in axes.items()}
            for p, axes in case.dynamic_dims.items()}  # fmt: skip
    ep = gl.export(model, args, kwargs, dynamic_shapes=spec)
    guards, ranges = ep._shape_env.guards, dict(ep.range_constraints)
    # A user's own decomposition that unrolls over the length (torch's own, called
    # through a function of the user's: graphlift's scan form replaces torch's only).
    unrolling = gl.default_decompositions()
    unrolling[aten.gru.input] = lambda *a, **k: decomposition_table[aten.gru.input](*a, **k)
    with pytest.raises(ConstraintViolationError) as info:
        ep.run_decompositions(unrolling)
    assert "aten.gru.input" in str(info.value) and info.value.where
    # the guard went to run_decompositions' fork of the ShapeEnv, not to the program's
    assert ep._shape_env.guards == guards and ep._shape_env.ranges.items() >= ranges.items()
    table = gl.default_decompositions()
    del table[aten.gru.input]
    kept = ep.run_decompositions(table)
    assert aten.gru.input in targets(kept)
    other_args, other_kwargs = case.make_inputs(**{seq.name: seq.other})
    with torch.no_grad():
        assert_outputs_close(
            kept.module()(*other_args, **other_kwargs), model(*other_args, **other_kwargs)
        )
