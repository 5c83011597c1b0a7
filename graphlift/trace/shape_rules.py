"""Result metadata for ops whose ATen meta kernels would specialize sizes.

The meta implementations of the recurrent ops (``aten.lstm``, ``aten.gru``,
``aten.rnn_tanh``, ``aten.rnn_relu``) unroll the recurrence in Python, one
step per time step, which turns a symbolic sequence length into a constant.
Their result shapes follow from the arguments directly, so these rules compute
them without running the kernel; the op stays one node, as the model called
it, and the sequence length stays dynamic. The classification losses' reference
kernels index with ``arange(batch)`` and specialize the batch the same way.
The batch-norm and 2-d convolution kernels' meta strides differ from the
kernels' own (rules correct them, so a later ``view`` or ``contiguous`` decided
on them holds at run time).
Each rule takes the op's shadow (meta) arguments and returns shadow results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._prims_common import suggest_memory_format

aten = torch.ops.aten


def _recurrent_output(
    input: torch.Tensor, hidden: torch.Tensor, bidirectional: bool
) -> torch.Tensor:
    """``[..., directions * hidden_size]`` over the input's leading dims (time and
    batch in either order, or time alone for unbatched input)."""
    directions = 2 if bidirectional else 1
    shape = [*input.shape[:-1], directions * hidden.shape[-1]]
    return input.new_empty(shape)


def lstm(
    input: torch.Tensor,
    hx: list[torch.Tensor],
    params: list[torch.Tensor],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, h_n, c_n); h_n and c_n are shaped like h_0 and c_0 (with
    ``proj_size``, h has the projected size, which output follows)."""
    h0, c0 = hx
    return _recurrent_output(input, h0, bidirectional), torch.empty_like(h0), torch.empty_like(c0)


def recurrent(
    input: torch.Tensor,
    hx: torch.Tensor,
    params: list[torch.Tensor],
    has_biases: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    batch_first: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, h_n) for GRU and the Elman RNNs."""
    return _recurrent_output(input, hx, bidirectional), torch.empty_like(hx)


def classification_loss(
    input: torch.Tensor, target: torch.Tensor, weight: Any = None, reduction: int = 1,
    *rest: Any, **options: Any,
) -> torch.Tensor:  # fmt: skip
    """``cross_entropy_loss`` / ``nll_loss`` / ``nll_loss_nd``: their meta kernel
    (torch's Python reference) indexes with ``arange(batch_size)``, which turns a
    symbolic batch into a constant. The loss is a scalar when reduced (mean, sum),
    else one value per sample: the input without its class dim (dim 1, or dim 0
    for an unbatched input), for class-index and probability targets alike."""
    if input.dim() >= 2 and target.dim() == input.dim() - 1:  # class indices: same batch
        torch._check(  # type: ignore[no-untyped-call]  # torch._check is unannotated
            target.shape[0] == input.shape[0],
            lambda: f"expected a target batch of {input.shape[0]}, got {target.shape[0]}",
        )
    if reduction != 0:
        return input.new_empty(())
    shape = list(input.shape)
    del shape[1 if input.dim() >= 2 else 0]
    return input.new_empty(shape)


def batch_norm_layout(op: Any) -> Callable[..., Any]:
    """The op's meta kernel, with the normalized output laid out as the CPU and CUDA
    kernels lay it out: dense in the input's suggested memory format. The meta
    kernel keeps the input's strides instead (a transposed ``[N, L, C]`` -> ``[N, C,
    L]`` input gives a transposed output), so ``output.transpose(1, 2).view(-1, C)``
    traced as a view fails in the real program (PatchTST's batch norm does this)."""

    def rule(input: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        output, *stats = op(input, *args, **kwargs)
        dense = torch.empty_like(output, memory_format=suggest_memory_format(input))
        return (dense, *stats)

    return rule


def convolution_layout(op: Any) -> Callable[..., Any]:
    """The op's meta kernel, with a 2-d convolution's output channels-last when its
    input or weight is, as the CPU kernels (mkldnn and the slow ones) and cuDNN lay it
    out; the meta kernel returns it contiguous. torch's FakeTensor corrects it the same
    way (``fake_impls.conv``). Without this, a channels-last activation (diffusers'
    attention reshapes one) reaches ``group_norm``'s ``contiguous(memory_format)``,
    which the trace then skips, and the real ``native_group_norm`` refuses its input.
    Checked against the CPU kernels over 1-d and 2-d convolutions (batch, groups,
    kernel, dilation, transposed, layouts of input and weight); 3-d convolutions are
    left as the meta kernel lays them out, since whether the CPU picks mkldnn (and a
    channels-last-3d output) depends on the sizes."""

    def rule(input: torch.Tensor, weight: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        output = op(input, weight, *args, **kwargs)
        layouts = (suggest_memory_format(input), suggest_memory_format(weight))
        if input.dim() == 4 and torch.channels_last in layouts:
            return torch.empty_like(output, memory_format=torch.channels_last)
        return output

    return rule


CONVOLUTIONS = (aten.convolution.default, aten._convolution.default)

BATCH_NORMS = (
    aten.native_batch_norm.default, aten._native_batch_norm_legit.default,
    aten._native_batch_norm_legit.no_stats, aten._native_batch_norm_legit_no_training.default,
    aten._native_batch_norm_legit_functional.default,
)  # fmt: skip

SHAPE_RULES: dict[Any, Callable[..., Any]] = {
    **{op: batch_norm_layout(op) for op in BATCH_NORMS},
    **{op: convolution_layout(op) for op in CONVOLUTIONS},
    aten.cross_entropy_loss.default: classification_loss,
    aten.nll_loss.default: classification_loss,
    aten.nll_loss_nd.default: classification_loss,
    aten.lstm.input: lstm,
    aten.gru.input: recurrent,
    aten.rnn_tanh.input: recurrent,
    aten.rnn_relu.input: recurrent,
}
