"""Zoo cases built from ``torch.nn`` modules: attention, recurrence, convolution.

These are the library's own building blocks, used as-is with small widths, so a
failure here points at one well-known module rather than at a model zoo.
"""

from __future__ import annotations

import torch
from torch import nn

from .case import DimSpec, Inputs, ModelCase, build, generator, padding_mask

WIDTH = 32
FEATURES = 16

BATCH = DimSpec("batch", min=1, max=16, example=2, other=3)
SEQ = DimSpec("seq", min=2, max=64, example=8, other=13)
TGT_SEQ = DimSpec("tgt_seq", min=2, max=64, example=5, other=9)
HEIGHT = DimSpec("height", min=8, max=128, example=16, other=24)
IMAGE_WIDTH = DimSpec("width", min=8, max=128, example=16, other=20)


def make_transformer_encoder() -> nn.Module:
    """Two encoder layers. Under ``no_grad`` eager takes the fused fast path; nested
    tensors are off because that path writes zeros at padded positions, where any
    traced (slow-path) graph computes ordinary values, so outputs would differ there."""

    def construct() -> nn.Module:
        layer = nn.TransformerEncoderLayer(
            d_model=WIDTH, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)

    return build(construct)


def make_transformer() -> nn.Module:
    return build(
        lambda: nn.Transformer(
            d_model=WIDTH,
            nhead=4,
            num_encoder_layers=2,
            num_decoder_layers=2,
            dim_feedforward=64,
            dropout=0.0,
            batch_first=True,
        )
    )


def make_lstm() -> nn.Module:
    return build(lambda: nn.LSTM(FEATURES, WIDTH, num_layers=2, batch_first=True))


def make_gru() -> nn.Module:
    return build(lambda: nn.GRU(FEATURES, WIDTH, batch_first=True, bidirectional=True))


def make_multihead_attention() -> nn.Module:
    return build(lambda: nn.MultiheadAttention(WIDTH, num_heads=4, batch_first=True))


def make_conv_bn() -> nn.Module:
    """Two conv/batch-norm/ReLU blocks and a linear classifier; the batch-norm running
    statistics are randomized so eval mode does real (non-identity) normalization."""

    def construct() -> nn.Module:
        model = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        )
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        return model

    return build(construct)


def make_mlp() -> nn.Module:
    return build(
        lambda: nn.Sequential(
            nn.Linear(FEATURES, 64),
            nn.GELU(),
            nn.Linear(64, 64),
            nn.LayerNorm(64),
            nn.GELU(),
            nn.Linear(64, 10),
        )
    )


def sequence(batch: int = BATCH.example, seq: int = SEQ.example) -> Inputs:
    """``(batch, seq, WIDTH)`` embeddings and a right-padding key mask (True = pad)."""
    gen = generator(batch, seq)
    src = torch.randn(batch, seq, WIDTH, generator=gen)
    pad = padding_mask(gen, batch, seq) == 0
    return (src,), {"src_key_padding_mask": pad}


def source_and_target(
    batch: int = BATCH.example, seq: int = SEQ.example, tgt_seq: int = TGT_SEQ.example
) -> Inputs:
    """Encoder and decoder embeddings plus the usual causal mask for the decoder."""
    gen = generator(batch, seq, tgt_seq)
    src = torch.randn(batch, seq, WIDTH, generator=gen)
    tgt = torch.randn(batch, tgt_seq, WIDTH, generator=gen)
    return (src, tgt), {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(tgt_seq)}


def features(batch: int = BATCH.example, seq: int = SEQ.example) -> Inputs:
    return (torch.randn(batch, seq, FEATURES, generator=generator(batch, seq)),), {}


def query_key_value(
    batch: int = BATCH.example, tgt_seq: int = TGT_SEQ.example, seq: int = SEQ.example
) -> Inputs:
    """Cross-attention shapes: ``tgt_seq`` queries attend over ``seq`` keys/values."""
    gen = generator(batch, tgt_seq, seq)
    query = torch.randn(batch, tgt_seq, WIDTH, generator=gen)
    key = torch.randn(batch, seq, WIDTH, generator=gen)
    value = torch.randn(batch, seq, WIDTH, generator=gen)
    return (query, key, value), {}


def images(
    batch: int = BATCH.example, height: int = HEIGHT.example, width: int = IMAGE_WIDTH.example
) -> Inputs:
    return (torch.randn(batch, 3, height, width, generator=generator(batch, height, width)),), {}


def vectors(batch: int = BATCH.example) -> Inputs:
    return (torch.randn(batch, FEATURES, generator=generator(batch)),), {}


NN = "torch.nn"

TORCH_CASES = (
    ModelCase("nn_transformer_encoder", make_transformer_encoder, sequence,
              {"src": {0: BATCH, 1: SEQ}, "src_key_padding_mask": {0: BATCH, 1: SEQ}},
              frozenset({NN, "attention", "encoder", "padding-mask", "fast-path"})),
    ModelCase("nn_transformer", make_transformer, source_and_target,
              {"src": {0: BATCH, 1: SEQ}, "tgt": {0: BATCH, 1: TGT_SEQ},
               "tgt_mask": {0: TGT_SEQ, 1: TGT_SEQ}},
              frozenset({NN, "attention", "encoder-decoder", "data-dependent"})),
    ModelCase("nn_lstm", make_lstm, features, {"input": {0: BATCH, 1: SEQ}},
              frozenset({NN, "rnn"})),
    ModelCase("nn_gru", make_gru, features, {"input": {0: BATCH, 1: SEQ}},
              frozenset({NN, "rnn", "bidirectional"})),
    ModelCase("nn_multihead_attention", make_multihead_attention, query_key_value,
              {"query": {0: BATCH, 1: TGT_SEQ}, "key": {0: BATCH, 1: SEQ},
               "value": {0: BATCH, 1: SEQ}},
              frozenset({NN, "attention"})),
    ModelCase("nn_conv_bn", make_conv_bn, images, {"input": {0: BATCH, 2: HEIGHT, 3: IMAGE_WIDTH}},
              frozenset({NN, "conv", "batchnorm"})),
    ModelCase("nn_mlp", make_mlp, vectors, {"input": {0: BATCH}},
              frozenset({NN, "mlp"})),
)  # fmt: skip
