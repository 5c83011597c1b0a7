"""torch.nn compositions the zoo does not have: a decoder stack and a plain RNN stack.

Like the zoo's torch.nn cases these are the library's own modules at small
widths, so a failure points at one well-known module.
"""

from __future__ import annotations

import torch
from torch import nn

from tests.zoo.case import Inputs, ModelCase, build
from tests.zoo.torch_models import (
    BATCH,
    FEATURES,
    SEQ,
    TGT_SEQ,
    WIDTH,
    features,
    source_and_target,
)

NN = "torch.nn"


def make_transformer_decoder() -> nn.Module:
    def construct() -> nn.Module:
        layer = nn.TransformerDecoderLayer(
            d_model=WIDTH, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True,
            norm_first=True,
        )  # fmt: skip
        return nn.TransformerDecoder(layer, num_layers=1)

    return build(construct)


def target_and_memory(
    batch: int = BATCH.example, tgt_seq: int = TGT_SEQ.example, seq: int = SEQ.example
) -> Inputs:
    """Decoder inputs attending causally over themselves and over encoder memory."""
    (memory, tgt), masks = source_and_target(batch, seq, tgt_seq)
    return (tgt, memory), masks


class RNNStack(nn.Module):
    """Two tanh RNN layers, a residual projection and a LayerNorm: recurrence in a block."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(FEATURES, WIDTH, num_layers=2, batch_first=True, nonlinearity="tanh")
        self.skip = nn.Linear(FEATURES, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(input)
        return self.norm(output + self.skip(input))


NN_CASES = (
    ModelCase("nn_transformer_decoder", make_transformer_decoder, target_and_memory,
              {"tgt": {0: BATCH, 1: TGT_SEQ}, "memory": {0: BATCH, 1: SEQ},
               "tgt_mask": {0: TGT_SEQ, 1: TGT_SEQ}},
              frozenset({NN, "attention", "decoder"})),
    ModelCase("nn_rnn_stack", lambda: build(RNNStack), features, {"input": {0: BATCH, 1: SEQ}},
              frozenset({NN, "rnn"})),
)  # fmt: skip
