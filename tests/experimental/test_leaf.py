"""``graphlift.leaf_function``: one opaque node per call, the real function at
run time, the fake implementation for metadata, saving only by name.
(torch's ``leaf_function`` exists for torch.compile only, so eager is the oracle.)"""

from __future__ import annotations

import io

import pytest
import torch

import graphlift as gl
from graphlift.errors import ArchiveError, RuntimeAssertError, SerializationError, TraceError
from graphlift.trace.leaf import LEAF_FUNCTIONS, LeafFunction

CALLS: list[tuple[int, ...]] = []


@gl.leaf_function(name="tests.experimental.row_stats")
def row_stats(x, scale=1.0):
    CALLS.append(tuple(x.shape))
    mean = x.mean(dim=1) * scale
    if bool(mean.sum() > 0):  # data-dependent Python: untraceable, fine in a leaf
        mean = mean + 0.5
    return mean, x.amax()


@row_stats.register_fake
def _row_stats_fake(x, scale=1.0):
    return x.new_empty(x.shape[0]), x.new_empty(())


@gl.leaf_function
def unnamed_double(x):
    return x * 2


@unnamed_double.register_fake
def _unnamed_double_fake(x):
    return torch.empty_like(x)


class UsesLeaves(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)

    def forward(self, x):
        mean, peak = row_stats(self.linear(x), scale=2.0)
        row_stats(x)  # unused result: still called (it may log)
        return mean + 1, peak


def leaf_nodes(ep) -> list:
    return [n for n in ep.graph.nodes if isinstance(n.target, LeafFunction)]


def test_one_opaque_node_per_call_and_the_real_function_runs() -> None:
    model = UsesLeaves()
    ep = gl.export(model, (torch.randn(4, 3),), dynamic_shapes={"x": {0: gl.Dim("batch")}})
    nodes = leaf_nodes(ep)
    assert [n.kwargs for n in nodes] == [{"scale": 2.0}, {}]
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "aten.mean.dim" not in targets and "aten.amax.default" not in targets  # body unseen
    for rows in (1, 6):
        x = torch.randn(rows, 3)
        CALLS.clear()
        got = ep.module()(x)
        assert CALLS == [(rows, 3), (rows, 3)]
        for ours, expected in zip(got, model(x), strict=True):
            torch.testing.assert_close(ours, expected)


def test_decomposition_keeps_the_call_whole() -> None:
    ep = gl.export(UsesLeaves(), (torch.randn(4, 3),), dynamic_shapes={"x": {0: gl.Dim("b")}})
    core = ep.run_decompositions()
    assert len(leaf_nodes(core)) == 2
    x = torch.randn(5, 3)
    torch.testing.assert_close(core.module()(x)[0], ep.module()(x)[0])


def test_save_and_load_by_name() -> None:
    model = UsesLeaves()
    ep = gl.export(model, (torch.randn(4, 3),))
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    buffer.seek(0)
    loaded = gl.load(buffer)
    assert leaf_nodes(loaded)[0].target is row_stats
    x = torch.randn(4, 3)
    torch.testing.assert_close(loaded.module()(x)[0], model(x)[0])
    del LEAF_FUNCTIONS["tests.experimental.row_stats"]  # a process that never declared it
    try:
        buffer.seek(0)
        with pytest.raises(ArchiveError, match=r"leaf function 'tests\.experimental\.row_stats'"):
            gl.load(buffer)
    finally:
        LEAF_FUNCTIONS["tests.experimental.row_stats"] = row_stats


def test_save_refuses_an_unnamed_leaf_function() -> None:
    ep = gl.export(lambda x: unnamed_double(x) + 1, (torch.randn(2),))
    with pytest.raises(SerializationError, match=r"leaf_function\(name="):
        gl.save(ep, io.BytesIO())


def test_missing_or_wrong_fake_is_a_trace_error_at_the_users_line() -> None:
    @gl.leaf_function
    def no_fake(x):
        return x

    with pytest.raises(TraceError, match="register_fake") as info:
        gl.export(lambda x: no_fake(x), (torch.randn(2),))
    assert "test_leaf.py" in str(info.value)

    @gl.leaf_function
    def bad_fake(x):
        return x

    bad_fake.register_fake(lambda x: 3)
    with pytest.raises(TraceError, match="returned int"):
        gl.export(lambda x: bad_fake(x), (torch.randn(2),))
    bad_fake.register_fake(lambda x: x.view(3, -1))
    with pytest.raises(TraceError, match="failed on the traced shapes") as info:
        gl.export(lambda x: bad_fake(x), (torch.randn(2),))
    assert "test_leaf.py" in str(info.value)


def test_names_are_checked() -> None:
    with pytest.raises(TraceError, match="already registered"):
        gl.leaf_function(name="tests.experimental.row_stats")(lambda x: x)
    with pytest.raises(TraceError, match="dotted Python identifiers"):
        gl.leaf_function(name="not a name")


def test_outside_tracing_it_is_the_function() -> None:
    CALLS.clear()
    mean, _ = row_stats(torch.ones(2, 3))
    torch.testing.assert_close(mean, torch.full((2,), 1.5))
    assert CALLS == [(2, 3)]


def test_a_leaf_call_inside_a_cond_branch() -> None:
    """(Eager torch.cond runs its branches under dynamo, which cannot run any
    leaf function, so the expected values are computed by hand.)"""

    def branchy(x):
        return torch.cond(x.sum() > 0, lambda x: unnamed_double(x) + 1, lambda x: x - 1, (x,))

    ep = gl.export(branchy, (torch.randn(3),))
    body_targets = [n.target for n in ep.graph_module.true_graph_0.graph.nodes]
    assert unnamed_double in body_targets
    for module in (ep.module(), ep.run_decompositions().module()):
        torch.testing.assert_close(module(torch.ones(3)), torch.full((3,), 3.0))
        torch.testing.assert_close(module(-torch.ones(3)), torch.full((3,), -2.0))


def test_a_wrong_fake_is_caught_when_the_program_runs() -> None:
    @gl.leaf_function
    def first_rows(x):
        return x[:2]

    first_rows.register_fake(lambda x: x.new_empty(x.shape))  # wrong: claims all rows
    ep = gl.export(lambda x: first_rows(x) + 1, (torch.randn(4, 3),))
    with pytest.raises(RuntimeAssertError, match=r"returned float32\[2, 3\] where its fake"):
        ep.module()(torch.randn(4, 3))
    with pytest.raises(RuntimeAssertError):
        first_rows(torch.randn(4, 3))  # eager calls are checked the same way
