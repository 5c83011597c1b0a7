"""A table of models that fx-style symbolic tracing must handle exactly as torch.fx does.

Each :class:`Case` builds a fresh module (``make_module``) and fresh inputs
(``make_inputs``); tests seed torch's RNG before calling either. Modules are
returned in eval mode unless a case says otherwise. Classes live at module level
so GraphModules that reference them (leaf modules, namedtuples, wrapped
functions) pickle.

fx's leaf rule (torch 2.13, ``Tracer.is_leaf_module``): a module whose class lives
in ``torch.nn`` / ``torch.ao.nn`` is a leaf (one ``call_module`` node) unless it is
an ``nn.Sequential``, which is traced through. So ``nn.TransformerEncoder`` is a
leaf too; a stack whose container structure is traced through has to be a user
module iterating an ``nn.ModuleList`` (``user_transformer_stack``).
"""

from __future__ import annotations

import functools
import math
import operator
import typing
from collections import namedtuple
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from .subject import GRAPHLIFT_FX


@dataclass(frozen=True)
class Case:
    name: str
    make_module: Callable[[], nn.Module]
    make_inputs: Callable[[], tuple[Any, ...]]
    concrete_args: Mapping[str, Any] | None = None
    leaf_modules: tuple[type[nn.Module], ...] = ()
    notes: str = ""


# --- wrapped free functions ------------------------------------------------------
# fx.wrap must be called at module scope; register with every library under test.


def clip_if_large(x: torch.Tensor, limit: float) -> torch.Tensor:
    """Data-dependent Python: cannot be traced, so it is wrapped (one call_function node)."""
    if x.abs().max() > limit:
        return x.clamp(-limit, limit)
    return x


def count_positive_rows(x: torch.Tensor) -> torch.Tensor:
    """Iterates over a tensor: wrapped by function object rather than by name."""
    total = 0
    for row in x:
        total += int((row > 0).all())
    return x * total


torch.fx.wrap("clip_if_large")
torch.fx.wrap(count_positive_rows)
torch.fx.wrap("len")  # a builtin: len(proxy) in this module is recorded, not an error
if GRAPHLIFT_FX is not None:
    GRAPHLIFT_FX.wrap("clip_if_large")
    GRAPHLIFT_FX.wrap(count_positive_rows)
    GRAPHLIFT_FX.wrap("len")


Pair = namedtuple("Pair", ["first", "second"])


# --- small helpers ---------------------------------------------------------------


def randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


def evaluated(module: nn.Module) -> nn.Module:
    return module.eval()


class Calls(nn.Module):
    """A user module that calls a torch.nn leaf and post-processes its result."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x).relu()


# --- torch.nn building blocks ----------------------------------------------------


class LSTMLast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(6, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1]) + h[0].sum() + c.mean()


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        out, weights = self.attn(x, x, x, need_weights=True)
        return out, weights


class UserTransformerStack(nn.Module):
    """Container structure traced through; each TransformerEncoderLayer is a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
            for _ in range(2)
        )
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class EmbeddingBag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=0)

    def forward(self, ids):
        return self.emb(ids).sum(dim=1)


# --- containers ------------------------------------------------------------------


class ModuleListLoop(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))

    def forward(self, x):
        for i, block in enumerate(self.blocks):
            x = block(x) + i
        return self.blocks[-1](x)


class ModuleDictRoute(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "reg": nn.Linear(4, 1)})
        self.trunk = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Tanh(), nn.Linear(4, 4)))

    def forward(self, x):
        h = self.trunk(x)
        return {name: head(h) for name, head in self.heads.items()}


# --- user models with submodules, parameters, buffers, constants -----------------


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.gain = nn.Parameter(torch.randn(width))

    def forward(self, x):
        return F.gelu(self.fc(x)) * self.gain + x


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(Block(6), Block(6))
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(self.blocks(x))


class ParamsAndBuffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(5, 3))
        self.bias = nn.Parameter(torch.randn(3))
        self.register_buffer("running", torch.randn(3))
        self.register_buffer("not_saved", torch.ones(3), persistent=False)

    def forward(self, x):
        return (x @ self.weight + self.bias - self.running) * self.not_saved


class TensorConstant(nn.Module):
    """A plain tensor attribute (neither parameter nor buffer): fx makes _tensor_constant0."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = torch.randn(4)
        self.scale = 3.0

    def forward(self, x):
        return x * self.scale + self.offset + torch.tensor([1.0, 2.0, 3.0, 4.0])


# --- functional, torch.* and tensor methods --------------------------------------


class Functional(nn.Module):
    def forward(self, x):
        y = F.relu(x) + F.gelu(x) - F.silu(x)
        y = F.softmax(y, dim=-1) + F.log_softmax(x, -1)
        y = F.layer_norm(y, (x.shape[-1],))
        return F.pad(y, (1, 2), value=0.5)


class TorchCalls(nn.Module):
    def forward(self, x, y):
        s = torch.stack([x, y], dim=0).sum(0)
        c = torch.cat((x, y), dim=-1)
        w = torch.where(x > y, x, y)
        e = torch.einsum("ij,kj->ik", x, y)
        r = torch.arange(x.shape[1]) * 1.0
        return torch.clamp(s, min=-1.0, max=1.0), c, w + r, e.tanh(), torch.flatten(c)


class TensorMethods(nn.Module):
    def forward(self, x):
        b = x.size(0)
        y = x.view(b, -1).reshape(b, 3, 4).permute(2, 0, 1).transpose(0, 1).contiguous()
        y = y.sum(dim=-1, keepdim=True) + y.mean(-1, keepdim=True)
        return y.flatten(1).softmax(-1).to(torch.float64), x.unsqueeze(1).expand(-1, 2, -1)


class ChunkUnpack(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        q, k, v = torch.split(x, [2, 2, 4], dim=-1)
        return a * torch.sigmoid(b), (q + k).repeat(1, 2) * v


class ShapeIndexing(nn.Module):
    def forward(self, x):
        batch, seq, width = x.shape
        y = x.reshape(batch * seq, width)
        z = y.view(x.size(0), x.size()[1], -1)
        return z + x.shape[-1] + x.new_zeros(x.size()), x.new_ones(x.shape[0], 3) * seq


class Slicing(nn.Module):
    def forward(self, x):
        a = x[..., 1:3]
        b = x[:, None, 0]
        c = x[0, ::2]
        d = x[..., None][:, -1]
        return a, b, c, d, x[1:, ..., :-1]


class Arithmetic(nn.Module):
    def forward(self, x, y):
        pos = x.abs() + 1
        out = x + y - x * y / pos
        out = out + (2 - x) + (3 * y) + (1 / pos) + (2**y) + (x**2) + (-x) + abs(y)
        return out, x // 2, x % 3, pos.rsqrt()


class IntegerAndShapeOperators(nn.Module):
    """Bitwise/shift operators on integer tensors and shape ints, reflected forms, and
    autowrapped math.floor/ceil/trunc/isfinite/log2 on shape arithmetic."""

    def forward(self, x, i):
        n = x.shape[0]
        a = (i << 1) + (i >> 1) + (2 << i) + (~i) + (i & 3) + (3 | i) + (i ^ 5) + (i % 3)
        a = a + 7 // (i.abs() + 1)
        b = math.floor(n / 2) + math.ceil(n / 3) + math.trunc(n / 2) + (n << 1) + (+n) - abs(-n)
        c = x**n + (n**2) * x
        return a, b, c, math.isfinite(n), math.log2(n) * x


class Comparisons(nn.Module):
    def forward(self, x, y):
        masks = (x > y, x >= 0, x < y, x <= 0.5, x == y, x != y)
        return [m.float() for m in masks], torch.where(~(x > 0) & (y > 0) | (x < -1), x, y)


class Matmul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 5))
        self.left = torch.randn(3, 2)

    def forward(self, x):
        return self.left @ (x @ self.w), torch.matmul(x, self.w).mT


# --- structured inputs and outputs -----------------------------------------------


class DictInOut(nn.Module):
    def forward(self, inputs):
        total = inputs["a"] + inputs["b"]
        return {"total": total, "parts": [inputs["a"], inputs["b"] * 2]}


class ListTupleInOut(nn.Module):
    def forward(self, xs, pair):
        first, second = pair
        return (xs[0] + xs[1], [first * second, xs[2]]), pair[1]


class NamedTupleInOut(nn.Module):
    def forward(self, pair):
        return Pair(first=pair.first + 1, second=pair.second * pair.first)


class KwargsAndDefaults(nn.Module):
    def forward(self, x, alpha=0.5, *, beta=2.0):
        return torch.add(x, x, alpha=alpha) * beta, F.softmax(x, dim=-1)


class ConcreteFlag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, use_relu=True):
        if use_relu:
            return F.relu(self.fc(x))
        return torch.tanh(self.fc(x))


class ConcreteNone(nn.Module):
    def forward(self, x, mask=None):
        if mask is not None:
            x = x.masked_fill(mask, 0.0)
        return x * 2


# --- wrap, autowrapped math, asserts, in-place -----------------------------------


class AssertStatement(nn.Module):
    """Not in CASES (see test_assert_statement_on_a_proxy). Kept here, outside any
    test module, because pytest rewrites ``assert`` statements in test modules."""

    def forward(self, x):
        assert x.sum() > 0, "sum must be positive"
        return x * 2


class UsesWrapped(nn.Module):
    def forward(self, x):
        return clip_if_large(x * 10, 3.0) + count_positive_rows(x)


class WrapCorners(nn.Module):
    """A wrapped builtin, keyword arguments, and a call with no Proxy (runs eagerly)."""

    def forward(self, x):
        constant = clip_if_large(torch.ones(2, 3) * 3, 2.0)
        return x * len(x) + clip_if_large(x, limit=0.5) + constant


class MathOnShape(nn.Module):
    def forward(self, x):
        return x / math.sqrt(x.shape[-1]) + math.log(x.size(0) + 1)


class TorchAssert(nn.Module):
    def forward(self, x):
        torch._assert(x.shape[-1] == 4, "last dim must be 4")
        torch._assert(x.dim() > 1, "need a matrix")
        return x + 1


class InPlace(nn.Module):
    def forward(self, x):
        y = x * 2
        y.add_(1)
        y += 1
        y *= x
        y.relu_()
        return y


class DropoutEval(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        y = F.dropout(x, p=0.5, training=self.training)
        return self.drop(y) + torch.nn.functional.dropout(x, 0.3, self.training)


# --- reuse and sharing -----------------------------------------------------------


class SameSubmoduleTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = Block(4)

    def forward(self, x):
        return self.act(self.fc(self.act(self.fc(x))))


class TiedWeights(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        h = self.emb(ids)
        return self.head(h), F.linear(h, self.emb.weight)


# --- custom leaf -----------------------------------------------------------------


class Untraceable(nn.Module):
    """Data-dependent control flow: fails to trace unless it is a leaf."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -x


class WithCustomLeaf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.leaf = Untraceable()
        self.post = nn.Linear(4, 2)

    def forward(self, x):
        return self.post(self.leaf(x) + self.leaf(-x))


# --- small architectures ---------------------------------------------------------


class ResNetBlock(nn.Module):
    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class HandAttention(nn.Module):
    def __init__(self, width: int = 8, heads: int = 2, max_len: int = 6) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        mask = torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len)
        self.register_buffer("causal", mask)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        # fx cannot slice a real buffer with a Proxy bound (T), so the mask is full
        # size: `self.causal == 0` runs eagerly at trace time and becomes a constant.
        att = att.masked_fill(self.causal == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class SubmoduleAttributes(nn.Module):
    """Reads plain Python attributes of submodules (no nodes) and self.training."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.use_bias = True

    def forward(self, x):
        y = self.fc(x)
        if self.use_bias and not self.training:
            y = y + self.fc.out_features
        return y.new_full((x.shape[0], self.fc.in_features), 0.5) + y.sum()


# --- more corners: attributes, varargs, constants in outputs, newer F.* ------------


class TensorIndexingAndAttributes(nn.Module):
    """Tensor-valued indices, and lazily recorded attributes (x.T, x.ndim, x.dtype)."""

    def forward(self, x, idx):
        filled = x.clone().index_fill(1, idx, 0.0)
        return filled, x[x > 0], x[idx], x.T, x.to(x.dtype), x.ndim, x.dim()


class VarArgs(nn.Module):
    def forward(self, x, *rest, **extra):
        return x + rest[0] * rest[1]


class ConstantsInOutput(nn.Module):
    def forward(self, x, unused):
        return x, None, 3, (x * 2, [1.5])


class NewerFunctional(nn.Module):
    def forward(self, q, k, v):
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        up = F.interpolate(attended, scale_factor=2.0, mode="nearest")
        return up, F.relu(q.clone(), inplace=True), F.gelu(k, approximate="tanh")


class NestedParameterAccess(nn.Module):
    """Parameters reached through a submodule path become get_attr "inner.fc.weight"."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = MLP()
        self.inner.table = torch.arange(6.0)  # a tensor constant on a submodule

    def forward(self, x):
        fc = self.inner.out
        return F.linear(x, fc.weight, fc.bias), x + self.inner.table, self.inner.blocks[0].gain


class LeafWithKeywords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8, elementwise_affine=False)

    def forward(self, x):
        mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
        out = self.attn(query=x, key=x, value=x, attn_mask=mask, need_weights=False)[0]
        return self.norm(input=out + x)


class AwkwardNames(nn.Module):
    """Arguments named like the modules generated code uses, odd submodule keys, one
    submodule under two names, a None buffer, a dict output key that is no identifier."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({"my-head": nn.Linear(3, 3), "0": nn.Linear(3, 3)})
        self.heads["self"] = nn.Linear(3, 3)
        self.a = nn.Linear(3, 3)
        self.b = self.a
        self.register_buffer("nothing", None)

    def forward(self, torch_, operator, add, math_=1):
        y = self.heads["my-head"](torch_) + self.heads["0"](operator) + self.heads["self"](add)
        z = self.b(self.a(add)) + torch.relu(y)
        return {"a-b": z + add, "pi": z * math.pi}, z * math_


class ConstantArguments(nn.Module):
    """dtypes, devices, nan/inf, memory formats and slices holding a Proxy as arguments."""

    def forward(self, x):
        a = x.to(torch.float64).to(device=torch.device("cpu"))
        b = torch.zeros_like(x, dtype=torch.int64) + x.new_zeros(2, dtype=torch.bool)[0]
        c = torch.full_like(x, float("nan")).nan_to_num(nan=0.0, posinf=math.inf)
        d = x[:, : x.shape[1] // 2, ...]
        e = x.clamp(max=math.inf, min=-math.inf)
        return a, b, c, d, e, x.contiguous(memory_format=torch.contiguous_format)


def passthrough_decorator(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


class QuotedAndComplexConstants(nn.Module):
    """Quotes, escapes and non-ASCII in a string argument; a complex scalar; a tensor
    constant inside a list argument."""

    def forward(self, x):
        torch._assert(x.shape[0] > 0, 'it\'s "bad"\nreally\t\\ bad \u2713')
        return torch.stack([x, torch.ones(3)]) * 1j, x.flip(0)[..., None]


class DecoratedForward(nn.Module):
    """fx reads the signature through functools.wraps (inspect.unwrap)."""

    @passthrough_decorator
    def forward(self, x, scale=2.0):
        return x * scale


class AnnotatedSignature(nn.Module):
    """Annotations reach placeholder ``type`` and the generated signature. This file
    uses ``from __future__ import annotations``, so here they are strings."""

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        sizes: list[int] = (1,),
        pair: Pair | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return x + 1, x * 2


class EvaluatedAnnotations(nn.Module):
    """The same signature with real typing objects as annotations."""

    def forward(self, x, mask=None, sizes=(1,), pair=None):
        return x + 1, x * 2


EvaluatedAnnotations.forward.__annotations__ = {
    "x": torch.Tensor,
    "mask": typing.Optional[torch.Tensor],  # noqa: UP045 - the typing spelling on purpose
    "sizes": typing.List[int],  # noqa: UP006
    "pair": Pair,
    "return": typing.Tuple[torch.Tensor, torch.Tensor],  # noqa: UP006
}


class HookedBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x)


def double_output(module, args, output):
    return output * 2


def shift_input(module, args):
    return (args[0] + 1,)


class ModuleHooks(nn.Module):
    """A forward hook on a traced-through module is traced; a leaf's pre-hook runs later."""

    def __init__(self) -> None:
        super().__init__()
        self.block = HookedBlock()
        self.leaf = nn.Linear(3, 3)
        self.block.register_forward_hook(double_output)
        self.leaf.register_forward_pre_hook(shift_input)

    def forward(self, x):
        return self.leaf(self.block(x))


class SideEffectsAndRandomness(nn.Module):
    """Repeated random calls and stateful leaves, some with unused results: passes must
    neither merge nor drop any of them (training mode, seeded runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        a = self.drop(x) - self.drop(x)
        b = F.dropout(x, 0.5, True) - F.dropout(x, 0.5, True)
        c = torch.rand_like(x) - torch.rand_like(x)
        d = x.bernoulli(0.5) - x.bernoulli(0.5)
        e = self.bn(x) + self.bn(x)
        self.bn(x)  # unused, but it updates the running statistics
        torch.rand_like(x)  # unused, but it advances the random stream
        return a, b, c, d, e


class DirectForwardCalls(nn.Module):
    """``self.fc.forward(x)`` bypasses __call__, so even a torch.nn leaf is traced
    through; helper methods of submodules are traced like any Python code."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.block = Block(4)

    def forward(self, x):
        return self.fc.forward(x) + self.block.forward(x) + self.block.fc(x).softmax(-1)


class TrainingMode(nn.Module):
    """Left in training mode: batch statistics, running-stat updates, seeded dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return F.dropout(self.drop(self.bn(self.fc(x))), 0.2, self.training)


CASES: tuple[Case, ...] = (
    Case(
        "linear_root",
        lambda: nn.Linear(5, 3),
        lambda: (randn(2, 5),),
        notes="root is a torch.nn module: its forward is traced (F.linear + get_attr)",
    ),
    Case(
        "conv1d_leaf",
        lambda: evaluated(Calls(nn.Conv1d(3, 4, 3, padding=1))),
        lambda: (randn(2, 3, 7),),
    ),
    Case(
        "conv2d_leaf",
        lambda: evaluated(Calls(nn.Conv2d(3, 4, 3, stride=2))),
        lambda: (randn(2, 3, 9, 9),),
    ),
    Case(
        "batchnorm_eval_leaf",
        lambda: evaluated(Calls(nn.BatchNorm1d(4))),
        lambda: (randn(5, 4),),
        notes="eval mode: running stats, no mutation",
    ),
    Case("layernorm_leaf", lambda: evaluated(Calls(nn.LayerNorm(6))), lambda: (randn(2, 3, 6),)),
    Case(
        "embedding_leaf", lambda: evaluated(EmbeddingBag()), lambda: (torch.randint(0, 10, (3, 5)),)
    ),
    Case(
        "lstm_leaf",
        lambda: evaluated(LSTMLast()),
        lambda: (randn(2, 4, 6),),
        notes="leaf returning nested tuples, unpacked by getitem",
    ),
    Case("multihead_attention_leaf", lambda: evaluated(SelfAttention()), lambda: (randn(2, 5, 8),)),
    Case(
        "transformer_encoder_layer_leaf",
        lambda: evaluated(
            Calls(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True))
        ),
        lambda: (randn(2, 5, 8),),
    ),
    Case(
        "transformer_encoder_leaf",
        lambda: evaluated(
            Calls(
                nn.TransformerEncoder(
                    nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                    2,
                    enable_nested_tensor=False,
                )
            )
        ),
        lambda: (randn(2, 5, 8),),
        notes="nn.TransformerEncoder is a leaf under fx's rule",
    ),
    Case(
        "user_transformer_stack",
        lambda: evaluated(UserTransformerStack()),
        lambda: (randn(2, 5, 8),),
        notes="ModuleList traced through, layers are leaves",
    ),
    Case(
        "sequential_root",
        lambda: evaluated(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))),
        lambda: (randn(3, 4),),
        notes="Sequential is the one torch.nn module traced through",
    ),
    Case("modulelist_loop", lambda: evaluated(ModuleListLoop()), lambda: (randn(2, 4),)),
    Case(
        "moduledict_and_nested_sequential",
        lambda: evaluated(ModuleDictRoute()),
        lambda: (randn(2, 4),),
    ),
    Case("user_submodules", lambda: evaluated(MLP()), lambda: (randn(3, 6),)),
    Case("parameters_and_buffers", lambda: evaluated(ParamsAndBuffers()), lambda: (randn(2, 5),)),
    Case("tensor_constants", lambda: evaluated(TensorConstant()), lambda: (randn(2, 4),)),
    Case("functional_calls", lambda: evaluated(Functional()), lambda: (randn(2, 5),)),
    Case("torch_calls", lambda: evaluated(TorchCalls()), lambda: (randn(3, 4), randn(3, 4))),
    Case("tensor_methods", lambda: evaluated(TensorMethods()), lambda: (randn(2, 12),)),
    Case("chunk_and_split_unpacking", lambda: evaluated(ChunkUnpack()), lambda: (randn(3, 8),)),
    Case("shape_and_size_indexing", lambda: evaluated(ShapeIndexing()), lambda: (randn(2, 3, 4),)),
    Case("slicing_ellipsis_none", lambda: evaluated(Slicing()), lambda: (randn(3, 4, 5),)),
    Case(
        "arithmetic_and_reflected",
        lambda: evaluated(Arithmetic()),
        lambda: (randn(3, 4), randn(3, 4)),
    ),
    Case(
        "integer_and_shape_operators",
        lambda: evaluated(IntegerAndShapeOperators()),
        lambda: (randn(4, 3), torch.randint(0, 5, (4,))),
    ),
    Case(
        "comparisons_and_logic",
        lambda: evaluated(Comparisons()),
        lambda: (randn(3, 4), randn(3, 4)),
    ),
    Case(
        "matmul_operator",
        lambda: evaluated(Matmul()),
        lambda: (randn(2, 4),),
        notes="tensor @ proxy goes through __torch_function__ / __rmatmul__",
    ),
    Case(
        "dict_input_and_output",
        lambda: evaluated(DictInOut()),
        lambda: ({"a": randn(2, 3), "b": randn(2, 3)},),
    ),
    Case(
        "list_tuple_input_and_output",
        lambda: evaluated(ListTupleInOut()),
        lambda: ([randn(2), randn(2), randn(2)], (randn(2), randn(2))),
    ),
    Case(
        "namedtuple_input_and_output",
        lambda: evaluated(NamedTupleInOut()),
        lambda: (Pair(randn(3), randn(3)),),
    ),
    Case(
        "kwargs_and_defaults",
        lambda: evaluated(KwargsAndDefaults()),
        lambda: (randn(2, 3),),
        notes="defaults become placeholder default values; kw-only argument too",
    ),
    Case(
        "concrete_bool_flag_true",
        lambda: evaluated(ConcreteFlag()),
        lambda: (randn(2, 4), True),
        concrete_args={"use_relu": True},
    ),
    Case(
        "concrete_bool_flag_false",
        lambda: evaluated(ConcreteFlag()),
        lambda: (randn(2, 4), False),
        concrete_args={"use_relu": False},
    ),
    Case(
        "concrete_none_argument",
        lambda: evaluated(ConcreteNone()),
        lambda: (randn(2, 4), None),
        concrete_args={"mask": None},
    ),
    Case(
        "wrapped_functions",
        lambda: evaluated(UsesWrapped()),
        lambda: (randn(3, 4),),
        notes="wrap('name') and wrap(fn): each is one call_function node",
    ),
    Case(
        "wrap_corners",
        lambda: evaluated(WrapCorners()),
        lambda: (randn(2, 3),),
        notes="the Proxy-free call becomes a tensor constant",
    ),
    Case(
        "math_on_shape",
        lambda: evaluated(MathOnShape()),
        lambda: (randn(3, 4),),
        notes="math.* is autowrapped when called with a Proxy",
    ),
    Case("torch_assert", lambda: evaluated(TorchAssert()), lambda: (randn(2, 4),)),
    Case(
        "in_place_ops",
        lambda: evaluated(InPlace()),
        lambda: (randn(3, 4),),
        notes="graphlift records x += y as operator.iadd, torch.fx as operator.add",
    ),
    Case("dropout_in_eval", lambda: evaluated(DropoutEval()), lambda: (randn(4, 6),)),
    Case("same_submodule_twice", lambda: evaluated(SameSubmoduleTwice()), lambda: (randn(2, 4),)),
    Case("tied_weights", lambda: evaluated(TiedWeights()), lambda: (torch.randint(0, 11, (2, 3)),)),
    Case(
        "custom_leaf_module",
        lambda: evaluated(WithCustomLeaf()),
        lambda: (randn(2, 4),),
        leaf_modules=(Untraceable,),
        notes="Tracer subclass overriding is_leaf_module",
    ),
    Case(
        "resnet_block",
        lambda: evaluated(ResNetBlock()),
        lambda: (randn(2, 4, 6, 6),),
        notes="out += identity on a leaf output; ReLU(inplace=True) leaf",
    ),
    Case("hand_written_attention", lambda: evaluated(HandAttention()), lambda: (randn(2, 6, 8),)),
    Case(
        "submodule_attributes_and_training_flag",
        lambda: evaluated(SubmoduleAttributes()),
        lambda: (randn(2, 4),),
    ),
    Case(
        "tensor_indexing_and_attributes",
        lambda: evaluated(TensorIndexingAndAttributes()),
        lambda: (randn(3, 4), torch.tensor([0, 2])),
        notes="fx records Proxy attributes lazily, at first use",
    ),
    Case(
        "varargs_and_kwargs",
        lambda: evaluated(VarArgs()),
        lambda: (randn(3), randn(3), randn(3)),
        notes="*rest and **extra become placeholders",
    ),
    Case(
        "constants_in_output_and_unused_input",
        lambda: evaluated(ConstantsInOutput()),
        lambda: (randn(3), randn(3)),
    ),
    Case(
        "sdpa_interpolate_inplace_relu",
        lambda: evaluated(NewerFunctional()),
        lambda: (randn(1, 2, 3, 4), randn(1, 2, 3, 4), randn(1, 2, 3, 4)),
    ),
    Case(
        "nested_parameter_access",
        lambda: evaluated(NestedParameterAccess()),
        lambda: (randn(2, 6),),
    ),
    Case(
        "leaf_called_with_keywords",
        lambda: evaluated(LeafWithKeywords()),
        lambda: (randn(2, 5, 8),),
        notes="a tensor made at trace time (the mask) is baked in as a constant",
    ),
    Case(
        "awkward_names",
        lambda: evaluated(AwkwardNames()),
        lambda: (randn(2, 3), randn(2, 3), randn(2, 3)),
        notes="the aliased Linear is called as self.a both times (first name wins)",
    ),
    Case(
        "constant_arguments",
        lambda: evaluated(ConstantArguments()),
        lambda: (randn(2, 4),),
    ),
    Case(
        "quoted_and_complex_constants",
        lambda: evaluated(QuotedAndComplexConstants()),
        lambda: (randn(3),),
    ),
    Case("decorated_forward", lambda: evaluated(DecoratedForward()), lambda: (randn(2, 3),)),
    Case("annotated_signature", lambda: evaluated(AnnotatedSignature()), lambda: (randn(2, 3),)),
    Case(
        "evaluated_annotations", lambda: evaluated(EvaluatedAnnotations()), lambda: (randn(2, 3),)
    ),
    Case("module_hooks", lambda: evaluated(ModuleHooks()), lambda: (randn(2, 3),)),
    Case(
        "direct_forward_calls",
        lambda: evaluated(DirectForwardCalls()),
        lambda: (randn(2, 4),),
    ),
    Case(
        "side_effects_and_randomness",
        lambda: SideEffectsAndRandomness(),
        lambda: (randn(4, 3),),
        notes="training mode; see test_passes_on_traced.py",
    ),
    Case(
        "training_mode",
        lambda: TrainingMode(),
        lambda: (randn(6, 4),),
        notes="outputs agree because every run is seeded; buffers must update alike",
    ),
)

CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"

# Targets that differ between graphlift and torch.fx on purpose, normalized before comparing.
DELIBERATE_TARGET_DIFFERENCES = {
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv,
    operator.ifloordiv: operator.floordiv,
    operator.imod: operator.mod,
    operator.ipow: operator.pow,
    operator.imatmul: operator.matmul,
    operator.iand: operator.and_,
    operator.ior: operator.or_,
    operator.ixor: operator.xor,
    operator.ilshift: operator.lshift,
    operator.irshift: operator.rshift,
}
