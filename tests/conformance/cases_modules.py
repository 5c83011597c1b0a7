"""torch.nn module cases, each exported, decomposed to core ATen, and saved/loaded.

Rewritten from ``test/export/test_export.py`` (``test_export_*`` over nn
layers: linear, conv, norms, recurrent, attention, pooling),
``test/export/test_serialize.py`` (round trips of the same layers) and
``test_passes.py``'s decomposition checks.
"""

from __future__ import annotations

from torch import nn

from tests.conformance.builders import module_cases

T = "test/export/test_export.py"
S = "test/export/test_serialize.py"

MODES = ("export", "decompose", "roundtrip")


class Recurrent(nn.Module):
    """An RNN layer's output without its hidden state (a tuple output is tested elsewhere)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


class Mha(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x, need_weights=False)[0]


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.1), nn.Linear(16, 8))
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return self.norm(x + self.net(x))


LAYERS = {
    "linear": (lambda: nn.Linear(8, 4), ((4, 8),)),
    "linear-no-bias": (lambda: nn.Linear(8, 4, bias=False), ((4, 8),)),
    "bilinear": (lambda: nn.Bilinear(8, 8, 3), ((4, 8), (4, 8))),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=1), ((2, 3, 10),)),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, stride=2), ((2, 3, 9, 9),)),
    "conv2d-groups": (lambda: nn.Conv2d(4, 4, 3, groups=2, padding="same"), ((2, 4, 6, 6),)),
    "conv3d": (lambda: nn.Conv3d(2, 2, 2), ((2, 2, 4, 4, 4),)),
    "conv-transpose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2), ((2, 3, 5, 5),)),
    "batchnorm1d-eval": (lambda: nn.BatchNorm1d(8), ((4, 8),)),
    "batchnorm2d-eval": (lambda: nn.BatchNorm2d(3), ((2, 3, 4, 4),)),
    "layernorm": (lambda: nn.LayerNorm(8), ((4, 8),)),
    "groupnorm": (lambda: nn.GroupNorm(2, 4), ((2, 4, 5),)),
    "instancenorm": (lambda: nn.InstanceNorm1d(3, affine=True), ((2, 3, 6),)),
    "embedding": (None, None),  # int inputs, below
    "lstm": (lambda: Recurrent(nn.LSTM(8, 6, batch_first=True)), ((2, 5, 8),)),
    "gru": (lambda: Recurrent(nn.GRU(8, 6, batch_first=True)), ((2, 5, 8),)),
    "rnn-tanh": (lambda: Recurrent(nn.RNN(8, 6, batch_first=True)), ((2, 5, 8),)),
    "multihead-attention": (Mha, ((2, 5, 8),)),
    "transformer-encoder-layer": (
        lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True, dropout=0.0),
        ((2, 5, 8),),
    ),
    "maxpool2d": (lambda: nn.MaxPool2d(2), ((2, 3, 6, 6),)),
    "avgpool2d": (lambda: nn.AvgPool2d(3, stride=1, padding=1), ((2, 3, 6, 6),)),
    "adaptive-avgpool2d": (lambda: nn.AdaptiveAvgPool2d((2, 2)), ((2, 3, 6, 6),)),
    "maxpool1d": (lambda: nn.MaxPool1d(2), ((2, 3, 8),)),
    "upsample-nearest": (lambda: nn.Upsample(scale_factor=2), ((2, 3, 4, 4),)),
    "upsample-bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), ((2, 3, 4, 4),)),
    "pixel-shuffle": (lambda: nn.PixelShuffle(2), ((2, 8, 3, 3),)),
    "flatten": (lambda: nn.Flatten(), ((2, 3, 4),)),
    "prelu": (lambda: nn.PReLU(), ((4, 8),)),
    "softmax2d": (lambda: nn.Softmax2d(), ((2, 3, 4, 4),)),
    "mlp-residual": (Mlp, ((4, 8),)),
    "identity": (lambda: nn.Identity(), ((4, 8),)),
    "cosine-embedding-loss": (lambda: nn.CosineSimilarity(dim=1), ((4, 8), (4, 8))),
}


def cases() -> list:
    result = []
    for name, (factory, shapes) in LAYERS.items():
        if factory is None:
            continue
        result += module_cases(f"nn-{name}", factory, shapes, source=f"{T} / {S}", modes=MODES)
    result += module_cases(
        "nn-batchnorm2d-train",
        lambda: nn.BatchNorm2d(3),
        ((2, 3, 4, 4),),
        source=f"{T}::test_batchnorm_train",
        modes=("export", "decompose"),
        train=True,
    )
    result += module_cases(
        "nn-dropout-train",
        lambda: nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.0)),
        ((2, 4),),
        source=f"{T}::test_dropout_train",
        modes=("export",),
        train=True,
    )
    return result
