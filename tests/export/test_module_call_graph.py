"""``ep.module_call_graph``: an entry per module and per call, with the values
crossing each call's boundary, compared with torch.export's and kept through
``run_decompositions`` and save/load."""

from __future__ import annotations

import io

import pytest
import torch

import graphlift as gl
from graphlift.export.program.signature import ConstantArgument, TensorArgument
from graphlift.trace.block_inlining import inlined_names
from tests.conformance.unflatten import models
from tests.conformance.unflatten.oracle import assert_same
from tests.zoo.models import CASES_BY_NAME

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

CASES = {  # model, example args, preserved fqns
    "nested": (models.Nested, (torch.rand(2, 3),), ()),
    "shared": (models.SharedSubmodule, (torch.rand(10),), ()),
    "ordering": (models.SubmoduleOrdering, (torch.rand(3, 4),), ()),
    "double_nested": (models.DoubleNested, (torch.rand(2, 3),), ()),
    "structured": (models.PreserveSignature, (torch.rand(2, 3), torch.rand(2, 3)), ("foo.nested",)),
    "unused_input": (models.UnusedInput, (torch.randn(2), torch.randn(5)), ("m1",)),
    "repeated": (models.DuplicatePlaceholder, (torch.rand(1, 2, 2, 3),), ()),
    "linear": (models.ContainerType, (torch.randn(4, 4), [torch.randn(4, 4)] * 2), ("bar.leaf",)),
}


def _fqns(entries: object, preserved: tuple[str, ...]) -> list[str]:
    """torch lists ``fqn@n`` only for preserved modules; graphlift for every call.

    One known difference: a module registered under several names (a shared
    LayerNorm at ``norms.0``/``norms.1``) is, for graphlift, one module called
    several times (``norms.0``, ``norms.0@1``; ``norms.1`` is an alias entry);
    torch gives its n-th call the n-th name. Both list every name."""
    return [e.fqn for e in entries if "@" not in e.fqn or e.fqn.split("@")[0] in preserved]


@pytest.mark.parametrize("name", list(CASES))
def test_entries_match_torch_export(name: str) -> None:
    make, args, preserved = CASES[name]
    ours = gl.export(make(), args, preserve_module_call_signature=preserved)
    theirs = torch.export.export(make(), args, strict=False,
                                 preserve_module_call_signature=preserved)  # fmt: skip
    assert _fqns(ours.module_call_graph, preserved) == [e.fqn for e in theirs.module_call_graph]
    by_fqn = {e.fqn: e for e in ours.module_call_graph}
    for entry in theirs.module_call_graph:
        if entry.signature is None or not entry.fqn:
            continue
        mine = by_fqn[entry.fqn].signature
        assert mine is not None
        assert mine.in_spec.num_leaves == entry.signature.in_spec.num_leaves
        assert mine.out_spec.num_leaves == entry.signature.out_spec.num_leaves
        assert [type(a).__name__ for a in mine.inputs] == [
            type(a).__name__ for a in entry.signature.inputs
        ]
        assert [type(a).__name__ for a in mine.outputs] == [
            type(a).__name__ for a in entry.signature.outputs
        ]


def test_every_call_has_its_own_entry() -> None:
    ep = gl.export(models.DuplicatePlaceholder(), (torch.rand(1, 2, 2, 3),))
    entries = {e.fqn: e for e in ep.module_call_graph}
    assert ["norms.0", "norms.0@1", "norms.0@2"] == [f for f in entries if f.startswith("norms.0")]
    assert entries["norms.1"].alias_of == "norms.0" and entries["norms.1"].signature is None
    # call n's input is call n-1's output
    assert entries["norms.0@1"].inputs == entries["norms.0"].outputs
    assert entries["norms.0@2"].inputs == entries["norms.0@1"].outputs
    assert entries[""].forward_arg_names == ("x",)


def test_uncalled_modules_have_no_signature() -> None:
    ep = gl.export(models.DoubleNested(), (torch.rand(2, 3),))
    entries = {e.fqn: e for e in ep.module_call_graph}
    assert entries["submod"].signature is None  # only its child is called
    assert entries["submod.subsubmod"].signature is not None


def _names(ep: gl.ExportedProgram) -> set[str]:
    """Graph nodes, and nodes of shared block bodies by the names inlining gives
    them (the call graph names a reused layer's inner values so)."""
    return {node.name for node in ep.graph.nodes} | inlined_names(ep.graph_module)


def _resolves(ep: gl.ExportedProgram, dropped: bool = False) -> None:
    """Every value the call graph names is a node (``dropped``: or "", unnamed)."""
    names = _names(ep) | ({""} if dropped else set())
    for entry in ep.module_call_graph:
        for arg in (*entry.inputs, *entry.outputs):
            assert isinstance(arg, ConstantArgument) or arg.name in names, (entry.fqn, arg)


def _round_trip(ep: gl.ExportedProgram) -> gl.ExportedProgram:
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    buffer.seek(0)
    return gl.load(buffer)


def test_kept_through_decompositions_and_save_load_and_still_swappable() -> None:
    args = (torch.randn(4, 4), [torch.randn(4, 4), torch.randn(4, 4)])
    model = models.ContainerType()
    ep = gl.export(model, args, preserve_module_call_signature=("bar.leaf",))
    core = ep.run_decompositions()  # aten.linear becomes permute + addmm: new names
    loaded = _round_trip(core)
    assert loaded.module_call_graph == core.module_call_graph
    leaf = {e.fqn: e for e in ep.module_call_graph}["bar.leaf"]
    core_leaf = {e.fqn: e for e in core.module_call_graph}["bar.leaf"]
    assert leaf.outputs == (TensorArgument("linear"),)
    assert core_leaf.outputs == (TensorArgument("addmm"),)
    expected = model(*args)
    for program in (ep, core, loaded):
        _resolves(program)
        unflat = gl.unflatten(program)
        unflat.bar.leaf = model.bar.leaf
        assert_same(unflat(*args), expected)


def test_a_preserved_input_nothing_else_reads_survives_dead_code_elimination() -> None:
    args = (torch.randn(2), torch.randn(5))
    ep = gl.export(models.UnusedInput(), args, preserve_module_call_signature=("m1",))
    for program in (ep, ep.run_decompositions(), _round_trip(ep)):
        m1 = {e.fqn: e for e in program.module_call_graph}["m1"]
        assert all(isinstance(a, TensorArgument) and a.name for a in m1.inputs)
        _resolves(program)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "llama", "nn_mlp", "nn_lstm"])
def test_zoo_entries_match_torch_export(name: str) -> None:
    case = CASES_BY_NAME[name]
    args, kwargs = case.make_inputs()
    ours = gl.export(case.make_model(), args, kwargs)
    theirs = torch.export.export(case.make_model(), args, kwargs, strict=False)
    assert _fqns(ours.module_call_graph, ()) == [e.fqn for e in theirs.module_call_graph]
    _resolves(ours)
    _resolves(ours.inline_subgraphs().run_decompositions())
    # a decomposed body's nodes are new: a reused call's inner values lose their names
    _resolves(ours.run_decompositions(), dropped=True)
    flat = ours.inline_subgraphs()  # the names given to body values are graph nodes there
    assert not inlined_names(flat.graph_module)
    _resolves(flat)
