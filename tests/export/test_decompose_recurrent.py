"""LSTM / GRU / RNN with a dynamic sequence length decompose to a ``scan`` (#14 defect 5).

torch.export cannot export these with a dynamic length; graphlift exports them,
and its decomposed program keeps the length dynamic: one ``scan`` over time
steps per layer and direction, the cell in core ATen ops. Each program is
compared to eager at several lengths and batches (1 included), after save/load
too; a static length decomposes exactly as torch.export's does (unrolled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.export as te
from torch import nn
from torch.utils._pytree import tree_leaves

import graphlift as gl
from graphlift.trace.control_flow import scan
from tests.export.test_decompose_everyday import round_trip

RECURRENT_OPS = {torch.ops.aten.lstm.input, torch.ops.aten.gru.input,
                 torch.ops.aten.rnn_tanh.input, torch.ops.aten.rnn_relu.input}  # fmt: skip


class Outputs(nn.Module):
    """The recurrent module's output and final state(s), as a flat tuple."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(tree_leaves(self.rnn(x)))


def make(kind: type[nn.Module], **options: Any) -> nn.Module:
    torch.manual_seed(0)
    return Outputs(kind(5, 7, **options)).eval()


CASES: dict[str, Callable[[], nn.Module]] = {
    "lstm": lambda: make(nn.LSTM),
    "lstm_2_layers_bidirectional_batch_first": lambda: make(
        nn.LSTM, num_layers=2, bidirectional=True, batch_first=True
    ),
    "lstm_projections": lambda: make(nn.LSTM, proj_size=3),
    "gru_2_layers_bidirectional": lambda: make(nn.GRU, num_layers=2, bidirectional=True),
    "gru_batch_first": lambda: make(nn.GRU, batch_first=True),
    "rnn_tanh_batch_first": lambda: make(nn.RNN, batch_first=True),
    "rnn_relu_2_layers_no_bias": lambda: make(
        nn.RNN, nonlinearity="relu", bias=False, num_layers=2
    ),
}
SIZES = [(3, 6), (2, 1), (4, 11), (1, 20)]  # (batch, length)


def inputs(model: nn.Module, batch: int, length: int) -> torch.Tensor:
    if model.rnn.batch_first:
        return torch.randn(batch, length, 5)
    return torch.randn(length, batch, 5)


def spec(model: nn.Module) -> tuple[dict[int, gl.Dim], ...]:
    batch, length = gl.Dim("batch", min=1, max=16), gl.Dim("length", min=1, max=64)
    return ({0: batch, 1: length} if model.rnn.batch_first else {0: length, 1: batch},)


def calls(module: Any) -> list[Any]:
    """Every call target of a graph module and its bodies."""
    found = [n.target for n in module.graph.nodes if n.op == "call_function"]
    for child in module.children():
        if hasattr(child, "graph"):
            found += calls(child)
    return found


def check_against_eager(model: nn.Module, programs: list[gl.ExportedProgram]) -> None:
    for batch, length in SIZES:
        x = inputs(model, batch, length)
        with torch.no_grad():
            expected = model(x)
        for program in programs:
            torch.testing.assert_close(program.module()(x), expected, rtol=1e-4, atol=1e-5)


SLOW_CASES = {"lstm_2_layers_bidirectional_batch_first"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in CASES]
)
def test_a_dynamic_length_decomposes_to_a_scan_that_runs_any_length(name: str) -> None:
    model = CASES[name]()
    ep = gl.export(model, (inputs(model, 3, 6),), dynamic_shapes=spec(model))
    before = str(ep)
    core = ep.run_decompositions()
    targets = calls(core.graph_module)
    assert scan in targets
    assert not RECURRENT_OPS & set(targets)
    assert str(ep) == before  # the source program is untouched
    assert set(core.range_constraints) == set(ep.range_constraints)
    check_against_eager(model, [core, round_trip(core)])


def test_the_same_layer_called_twice_gets_its_own_scan_per_call() -> None:
    """The call cache copies op nodes only: a call that made a body is never replayed
    from a template (the second call would read the first one's scan)."""

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.rnn = nn.GRU(5, 7)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0] - self.rnn(y)[0]

    model = Twice().eval()
    length, batch = gl.Dim("length", min=1, max=64), gl.Dim("batch", min=1, max=16)
    dims = {0: length, 1: batch}
    ep = gl.export(model, (torch.randn(6, 3, 5), torch.randn(6, 3, 5)), dynamic_shapes=(dims, dims))
    core = ep.run_decompositions()
    assert calls(core.graph_module).count(scan) == 2
    for t, b in [(6, 3), (2, 1), (9, 4)]:
        x, y = torch.randn(t, b, 5), torch.randn(t, b, 5)
        torch.testing.assert_close(core.module()(x, y), model(x, y), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_static_length_decomposes_as_torch_export_does() -> None:
    """Unrolled, the same ops as torch.export's program (torch.export as the oracle)."""
    model = CASES["gru_2_layers_bidirectional"]()
    x = inputs(model, 3, 6)
    core = gl.export(model, (x,)).run_decompositions()
    theirs = te.export(model, (x,)).run_decompositions()
    ours = sorted(str(t) for t in calls(core.graph_module))
    torch_targets = sorted(str(n.target) for n in theirs.graph.nodes if n.op == "call_function")
    assert scan not in calls(core.graph_module)
    assert ours == torch_targets
    torch.testing.assert_close(core.module()(x), model(x), rtol=1e-4, atol=1e-5)


def test_torch_export_cannot_export_the_dynamic_length() -> None:
    """Why the scan form matters: torch.export refuses the dynamic length outright."""
    model = CASES["lstm"]()
    dims = ({0: te.Dim("length", min=1, max=64), 1: te.Dim("batch", min=1, max=16)},)
    with pytest.raises(Exception):  # noqa: B017 (torch raises several types here)
        te.export(model, (inputs(model, 3, 6),), dynamic_shapes=dims)


def test_keeping_the_op_whole_still_works() -> None:
    model = CASES["lstm"]()
    ep = gl.export(model, (inputs(model, 3, 6),), dynamic_shapes=spec(model))
    table = gl.default_decompositions()
    del table[torch.ops.aten.lstm.input]
    kept = ep.run_decompositions(table)
    assert torch.ops.aten.lstm.input in calls(kept.graph_module)
    check_against_eager(model, [kept])


def test_auto_on_every_dim_keeps_batch_zero_and_refuses_only_length_zero() -> None:
    """Dim.AUTO: the decomposed program runs every batch (0 too) and length; at
    length 0, where eager LSTM raises, it refuses the input instead."""

    class BatchFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.rnn = nn.LSTM(5, 7, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(x)[0]

    model = BatchFirst().eval()
    auto = gl.Dim.AUTO
    core = gl.export(model, (torch.randn(3, 6, 5),), dynamic_shapes=({0: auto, 1: auto},))
    core = core.run_decompositions()
    for batch, length in [(3, 6), (1, 1), (2, 9), (0, 4)]:
        x = torch.randn(batch, length, 5)
        torch.testing.assert_close(core.module()(x), model(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="sequence length"):
        model(torch.randn(2, 0, 5))
    with pytest.raises(gl.errors.InputMismatchError):
        core.module()(torch.randn(2, 0, 5))


def test_an_unbatched_sequence_decomposes_to_a_scan() -> None:
    torch.manual_seed(0)
    model = Outputs(nn.GRU(5, 7, num_layers=2)).eval()
    ep = gl.export(model, (torch.randn(6, 5),), dynamic_shapes=({0: gl.Dim("length", max=64)},))
    core = ep.run_decompositions()
    assert scan in calls(core.graph_module)
    for length in (6, 1, 13):
        x = torch.randn(length, 5)
        torch.testing.assert_close(core.module()(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_recurrent_op_inside_a_cond_branch_gets_its_scan_inside_the_branch() -> None:
    """The scan's body is a body of the branch (nested), named apart, saved and loaded."""

    class Branches(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.rnn, self.linear = nn.GRU(5, 7), nn.Linear(5, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cond(x.sum() > 0, lambda x: self.rnn(x)[0], self.linear, (x,))

    model = Branches().eval()
    dims = ({0: gl.Dim("length", min=1, max=64), 1: gl.Dim("batch", min=2, max=8)},)
    ep = gl.export(model, (torch.randn(6, 3, 5).abs(),), dynamic_shapes=dims)
    core = ep.run_decompositions()
    branch = core.graph_module.true_graph_0
    assert scan in [n.target for n in branch.graph.nodes]
    assert scan not in [n.target for n in core.graph.nodes]
    loaded = round_trip(core)
    for length, batch, sign in [(6, 3, 1.0), (1, 2, 1.0), (9, 2, -1.0)]:
        x = torch.randn(length, batch, 5).abs() * sign
        with torch.no_grad():  # eager torch.cond would compile, which refuses RNNs
            expected = model.rnn(x)[0] if sign > 0 else model.linear(x)
        for program in (core, loaded):
            torch.testing.assert_close(program.module()(x), expected, rtol=1e-4, atol=1e-5)
