"""Small training models for the joint export tests, each with a loss in its forward.

Each case builds a fresh model (seeded) and makes inputs from a seed, so a test
can check a program on inputs other than the ones it was exported with.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class LinearCrossEntropy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.fc(x), labels)


class CifarCNN(nn.Module):
    """conv, relu, max-pool twice, then a linear classifier over int64 labels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(images)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.cross_entropy(self.fc(x.flatten(1)), labels)


class TiedEmbeddings(nn.Module):
    """The output projection is the embedding matrix (one tensor, two names)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.hidden = nn.Linear(8, 8)
        self.head = nn.Linear(8, 16, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.head(torch.tanh(self.hidden(self.embed(tokens)))), labels)


class UnusedParameter(nn.Module):
    """An expert the loss never reaches (as in a mixture of experts)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.idle_expert = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.fc(x), labels)


class TrainBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.norm = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 1)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.fc2(torch.relu(self.norm(self.fc1(x)))), target)


class LossSecond(nn.Module):
    """Returns (logits, loss): the loss is user output 1, the logits require grad."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.fc(x)
        return logits, F.cross_entropy(logits, labels)


class Regression(nn.Module):
    """A batch-size-agnostic regression (its loss is a mean over the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (self.fc2(torch.relu(self.fc1(x))) - target).pow(2).mean()


class LlamaWithLabels(nn.Module):
    """transformers' Llama at toy size, returning (loss, logits) for labels."""

    def __init__(self) -> None:
        super().__init__()
        import transformers  # optional: only the transformers cases need it

        config = transformers.LlamaConfig(
            vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
            use_cache=False, pad_token_id=0,
        )  # fmt: skip
        self.model = transformers.LlamaForCausalLM(config)

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids=ids, labels=labels, return_dict=True)
        return out.loss, out.logits


def _classes(seed: int, batch: int, features: int = 4, classes: int = 3) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, features, generator=gen), torch.randint(
        0, classes, (batch,), generator=gen
    )


def _regression(seed: int, batch: int, outputs: int) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, generator=gen), torch.randn(batch, outputs, generator=gen)


def _images(seed: int, batch: int) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 32, 32, generator=gen), torch.randint(
        0, 10, (batch,), generator=gen
    )


def _tokens(seed: int, batch: int) -> tuple[Any, ...]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 16, (batch,), generator=gen), torch.randint(
        0, 16, (batch,), generator=gen
    )


def llama_inputs(seed: int, batch: int = 2, seq: int = 7) -> tuple[Any, ...]:
    """Token ids that are also the labels (transformers shifts them)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (batch, seq), generator=gen)
    return ids, ids


@dataclass(frozen=True)
class JointCase:
    name: str
    make_model: Callable[[], nn.Module]
    make_inputs: Callable[[int], tuple[Any, ...]]  # seed -> inputs
    loss_index: int = 0
    train: bool = True


CASES = [
    JointCase("linear_cross_entropy", LinearCrossEntropy, lambda s: _classes(s, 5)),
    JointCase("cifar_cnn", CifarCNN, lambda s: _images(s, 2)),
    JointCase("tied_embeddings", TiedEmbeddings, lambda s: _tokens(s, 6)),
    JointCase("unused_parameter", UnusedParameter, lambda s: _classes(s, 5)),
    JointCase("train_batch_norm", TrainBatchNorm, lambda s: _regression(s, 6, 1)),
    JointCase("loss_at_index_1", LossSecond, lambda s: _classes(s, 5), loss_index=1),
    JointCase("custom_autograd_function", lambda: QuantizedLinear(), lambda s: _classes(s, 5)),
]


def build(case: JointCase) -> nn.Module:
    torch.manual_seed(0)
    model = case.make_model()
    return model.train(case.train)


class RoundStraightThrough(torch.autograd.Function):
    """Rounds in the forward; passes the gradient through, scaled (not round's zero)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.round()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return grad * ctx.scale, None


class QuantizedLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(RoundStraightThrough.apply(self.fc(x) * 4, 0.5), labels)
