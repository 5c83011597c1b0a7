"""The recurrent ops (``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu``) as a ``scan``
over time steps, so a decomposed program keeps a dynamic sequence length.

torch's decompositions unroll the recurrence in Python, one copy of the cell
per time step: with a symbolic length that asks the length's value and adds a
guard, which ``run_decompositions`` refuses. When the length is symbolic, each
layer and direction becomes one control-flow ``scan`` instead, whose body is
one step of the cell in core ATen ops (``mm``, ``sigmoid``, ``tanh``, ...):

    h_n, ys = scan(cell, h_0, input, (w_ih, b_ih, w_hh, b_hh))

The reverse direction scans the time-flipped input and flips its outputs back;
layers feed each other as in torch (the directions' outputs concatenated).
With a static length torch's own decomposition runs unchanged (the program is
then the one torch.export makes). Training with dropout between layers keeps
torch's decomposition too: its random masks are drawn per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

aten = torch.ops.aten
Tensor = torch.Tensor
Cell = Callable[..., tuple[Tensor, ...]]


def lstm_cell(
    gates_x: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, *rest: Tensor, biased: bool
) -> tuple[Tensor, Tensor]:
    """One LSTM step; gates in torch's order i, f, g, o; ``rest`` is the hidden bias
    (when ``biased``) then the projection weight (``proj_size``), if any."""
    gates = gates_x + torch.mm(h, w_hh.t())
    if biased:
        gates = gates + rest[0]
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    projection = rest[1:] if biased else rest
    if projection:
        h = torch.mm(h, projection[0].t())
    return h, c


def gru_cell(
    gates_x: Tensor, h: Tensor, w_hh: Tensor, *rest: Tensor, biased: bool
) -> tuple[Tensor]:
    """One GRU step; gates in torch's order r, z, n; the hidden bias sits inside
    the reset gate's product, as in torch."""
    gates_h = torch.mm(h, w_hh.t())
    if biased:
        gates_h = gates_h + rest[0]
    r_x, z_x, n_x = gates_x.chunk(3, 1)
    r_h, z_h, n_h = gates_h.chunk(3, 1)
    r = torch.sigmoid(r_x + r_h)
    z = torch.sigmoid(z_x + z_h)
    n = torch.tanh(n_x + r * n_h)
    return ((h - n) * z + n,)


def elman_cell(activation: Callable[[Tensor], Tensor]) -> Cell:
    def cell(
        gates_x: Tensor, h: Tensor, w_hh: Tensor, *rest: Tensor, biased: bool
    ) -> tuple[Tensor]:
        pre = gates_x + torch.mm(h, w_hh.t())
        if biased:
            pre = pre + rest[0]
        return (activation(pre),)

    return cell


@dataclass(frozen=True)
class RecurrentCall:
    """The arguments every recurrent op shares, after ``hx``."""

    params: Sequence[Tensor]
    has_biases: bool
    num_layers: int
    dropout: float
    train: bool
    bidirectional: bool
    batch_first: bool

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def weights(self, layer: int, direction: int) -> Sequence[Tensor]:
        per = len(self.params) // (self.num_layers * self.directions)
        start = (layer * self.directions + direction) * per
        return self.params[start : start + per]


def scan_layers(cell: Cell, input: Tensor, hidden: Sequence[Tensor], call: RecurrentCall) -> Any:
    """``(output, *final_states)`` of the whole op, one scan per layer and direction."""
    unbatched = input.dim() == 2
    if unbatched:
        input, hidden = input.unsqueeze(1), [h.unsqueeze(1) for h in hidden]
    time = 1 if call.batch_first and not unbatched else 0
    finals: list[list[Tensor]] = [[] for _ in hidden]
    layer_input = input
    for layer in range(call.num_layers):
        outputs = []
        for direction in range(call.directions):
            index = layer * call.directions + direction
            ys, *last = _scan_direction(
                cell, layer_input, time, bool(direction), [h[index] for h in hidden],
                call.weights(layer, direction), call.has_biases,
            )  # fmt: skip
            outputs.append(ys)
            for final, state in zip(finals, last):
                final.append(state)
        layer_input, time = (torch.cat(outputs, -1) if len(outputs) > 1 else outputs[0]), 0
    states = [torch.stack(final) for final in finals]
    if unbatched:
        return (layer_input.squeeze(1), *[s.squeeze(1) for s in states])
    output = layer_input.transpose(0, 1) if call.batch_first else layer_input
    return (output, *states)


def _scan_direction(
    cell: Cell, steps: Tensor, time: int, reverse: bool, states: list[Tensor],
    weights: Sequence[Tensor], biased: bool,
) -> tuple[Tensor, ...]:  # fmt: skip
    """``(ys, *final_states)`` of one direction of one layer; ``steps`` has time in dim
    ``time``, ``ys`` [T, B, H] in time order. Each step projects its own input
    (``mm`` of a [B, I] slice): projecting all steps at once reshapes [T, B, I]
    to [T * B, I], whose strides at sizes 0 and 1 would ask for a guard."""
    w_ih, w_hh, *rest = weights
    b_ih = None
    if biased:
        b_ih, *rest = rest
    if time:
        steps = steps.transpose(0, 1)
    if reverse:
        steps = steps.flip(0)
    count = len(states)
    inputs = [w_ih] if b_ih is None else [w_ih, b_ih]

    def step(*values: Tensor) -> tuple[Tensor, ...]:
        carry, x, extra = values[:count], values[count], values[count + 1 :]
        gates_x = torch.mm(x, extra[0].t())
        if b_ih is not None:
            gates_x = gates_x + extra[1]
        new = cell(gates_x, *carry, *extra[len(inputs) :], biased=biased)
        return (*new, new[0].clone())

    results = torch.ops.higher_order.scan(step, list(states), [steps], [*inputs, w_hh, *rest])
    ys = results[count].flip(0) if reverse else results[count]
    return (ys, *results[:count])


def _length_is_symbolic(input: Tensor, batch_first: bool) -> bool:
    time = 1 if batch_first and input.dim() == 3 else 0
    return isinstance(input.shape[time], torch.SymInt)


def keeping_length(op: Any, unrolled: Callable[..., Any]) -> Callable[..., Any]:
    """``unrolled`` (torch's decomposition of ``op``) when the sequence length is
    static or dropout is drawn; the scan form when the length is symbolic."""
    cell, two_states = RECURRENT_CELLS[op]

    def decomposition(input: Tensor, hx: Any, *rest: Any) -> Any:
        call = RecurrentCall(*rest)
        if not _length_is_symbolic(input, call.batch_first) or (call.train and call.dropout):
            return unrolled(input, hx, *rest)
        hidden = list(hx) if two_states else [hx]
        return tuple(scan_layers(cell, input, hidden, call))

    return decomposition


# op -> (one step of its cell, whether hx is (h, c))
RECURRENT_CELLS: dict[Any, tuple[Cell, bool]] = {
    aten.lstm.input: (lstm_cell, True),
    aten.gru.input: (gru_cell, False),
    aten.rnn_tanh.input: (elman_cell(torch.tanh), False),
    aten.rnn_relu.input: (elman_cell(torch.relu), False),
}
