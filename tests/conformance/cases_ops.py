"""Operator-level cases: each op exported with a static and a dynamic batch.

Rewritten from the op coverage torch's export tests exercise
(``test/export/test_export.py``: ``test_basic``, ``test_export_*`` over
elementwise, reduction and view ops; ``test_dynamic_shapes*`` over the same
ops with ``Dim``), one function per op.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.conformance.builders import function_cases

SOURCE = "test/export/test_export.py (op coverage)"

A = ((4, 8),)
AB = ((4, 8), (4, 8))
A3 = ((4, 6, 8),)

UNARY = {
    "abs": torch.abs,
    "neg": torch.neg,
    "exp": torch.exp,
    "log-abs": lambda x: torch.log(x.abs() + 1),
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": lambda x: torch.tan(x.clamp(-1, 1)),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
    "relu6": F.relu6,
    "gelu": F.gelu,
    "gelu-tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "mish": F.mish,
    "softplus": F.softplus,
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "leaky-relu": lambda x: F.leaky_relu(x, 0.2),
    "hardtanh": F.hardtanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
    "softsign": F.softsign,
    "sqrt": lambda x: torch.sqrt(x.abs()),
    "rsqrt": lambda x: torch.rsqrt(x.abs() + 1),
    "reciprocal": lambda x: 1 / (x.abs() + 1),
    "floor": torch.floor,
    "ceil": torch.ceil,
    "round": torch.round,
    "trunc": torch.trunc,
    "frac": torch.frac,
    "sign": torch.sign,
    "erf": torch.erf,
    "log1p": lambda x: torch.log1p(x.abs()),
    "expm1": torch.expm1,
    "atan": torch.atan,
    "asin": lambda x: torch.asin(x.clamp(-1, 1)),
    "clamp": lambda x: x.clamp(-0.5, 0.5),
    "clamp-min": lambda x: x.clamp(min=0.1),
    "square": torch.square,
    "pow-scalar": lambda x: x**3,
    "pow-half": lambda x: x.abs() ** 0.5,
    "rpow": lambda x: 2**x,
    "nan-to-num": lambda x: torch.nan_to_num(x / 0.0, posinf=1.0, neginf=-1.0),
    "softmax": lambda x: x.softmax(-1),
    "log-softmax": lambda x: F.log_softmax(x, dim=-1),
    "softmax-dim0": lambda x: x.softmax(0),
    "cumsum": lambda x: x.cumsum(1),
    "cumsum-dim0": lambda x: x.cumsum(0),
    "cumprod": lambda x: x.cumprod(1),
    "logcumsumexp": lambda x: torch.logcumsumexp(x, 1),
    "flip": lambda x: x.flip(1),
    "tril": torch.tril,
    "triu": lambda x: torch.triu(x, 1),
    "normalize": lambda x: F.normalize(x, dim=-1),
    "layer-norm-fn": lambda x: F.layer_norm(x, (8,)),
    "dropout-eval": lambda x: F.dropout(x, 0.5, training=False),
    "logit": lambda x: torch.logit(torch.sigmoid(x)),
    "sort-values": lambda x: x.sort(dim=1).values,
    "sort-both": lambda x: tuple(x.sort(dim=1, descending=True)),
    "argsort": lambda x: x.argsort(dim=1),
    "topk": lambda x: tuple(x.topk(3, dim=1)),
    "cummax": lambda x: tuple(x.cummax(1)),
    "bool-not": lambda x: ~(x > 0),
    "to-half-back": lambda x: x.half().float(),
    "to-int": lambda x: (x * 10).to(torch.int64),
    "type-as-double": lambda x: x.double() * 2,
    "mul-scalar-int": lambda x: x * 3,
    "add-scalar-float": lambda x: x + 0.5,
    "rsub": lambda x: 1 - x,
    "div-scalar": lambda x: x / 4,
    "floordiv-scalar": lambda x: x // 0.5,
    "mod-scalar": lambda x: x % 0.75,
    "isnan": lambda x: torch.isnan(x / (x - x)),
    "where-scalar": lambda x: torch.where(x > 0, x, 0.0),
    "masked-fill": lambda x: x.masked_fill(x < 0, -1.0),
    "zeros-like": lambda x: torch.zeros_like(x) + x,
    "full-like": lambda x: torch.full_like(x, 7.0),
    "clone": lambda x: x.clone() + 1,
    "contiguous-t": lambda x: x.t().contiguous(),
    "detach": lambda x: x.detach() * 2,
    "multi-output": lambda x: (x.sin(), x.cos(), x + 1),
    "dict-output": lambda x: {"a": x.sin(), "b": [x.cos(), x.exp()]},
}

REDUCTIONS = {
    "sum": lambda x: x.sum(),
    "sum-dim": lambda x: x.sum(1),
    "sum-dim0": lambda x: x.sum(0),
    "sum-keepdim": lambda x: x.sum(-1, keepdim=True),
    "mean": lambda x: x.mean(),
    "mean-dim": lambda x: x.mean(dim=(1,)),
    "mean-dim0": lambda x: x.mean(0),
    "var": lambda x: x.var(1),
    "std": lambda x: x.std(1, unbiased=False),
    "prod": lambda x: x.prod(1),
    "amax": lambda x: x.amax(1),
    "amin": lambda x: x.amin(0),
    "max-dim": lambda x: tuple(x.max(1)),
    "min-all": lambda x: x.min(),
    "argmax": lambda x: x.argmax(1),
    "argmin": lambda x: x.argmin(),
    "logsumexp": lambda x: x.logsumexp(1),
    "norm": lambda x: x.norm(dim=1),
    "norm-all": lambda x: torch.linalg.vector_norm(x),
    "any": lambda x: (x > 1).any(1),
    "all": lambda x: (x > -3).all(),
    "count-nonzero": lambda x: torch.count_nonzero(x > 0, dim=1),
    "median-dim": lambda x: x.median(1).values,
    "aminmax": lambda x: tuple(torch.aminmax(x, dim=1)),
}

BINARY = {
    "add": torch.add,
    "add-alpha": lambda x, y: torch.add(x, y, alpha=2),
    "sub": torch.sub,
    "mul": torch.mul,
    "div": lambda x, y: x / (y.abs() + 1),
    "div-floor": lambda x, y: torch.div(x, y.abs() + 1, rounding_mode="floor"),
    "div-trunc": lambda x, y: torch.div(x, y.abs() + 1, rounding_mode="trunc"),
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "pow": lambda x, y: x.abs() ** y,
    "atan2": torch.atan2,
    "fmod": lambda x, y: torch.fmod(x, y.abs() + 1),
    "remainder": lambda x, y: torch.remainder(x, y.abs() + 1),
    "hypot": torch.hypot,
    "logaddexp": torch.logaddexp,
    "copysign": torch.copysign,
    "lerp": lambda x, y: torch.lerp(x, y, 0.3),
    "addcmul": lambda x, y: torch.addcmul(x, x, y, value=0.5),
    "eq": lambda x, y: x == y,
    "lt": lambda x, y: x < y,
    "ge": lambda x, y: x >= y,
    "logical-and": lambda x, y: (x > 0) & (y > 0),
    "logical-xor": lambda x, y: torch.logical_xor(x > 0, y > 0),
    "where": lambda x, y: torch.where(x > y, x, y),
    "matmul-t": lambda x, y: x @ y.t(),
    "mul-t-matmul": lambda x, y: (x.t() @ y).sum(),
    "cat0": lambda x, y: torch.cat([x, y]),
    "cat1": lambda x, y: torch.cat([x, y], dim=1),
    "stack": lambda x, y: torch.stack([x, y]),
    "stack1": lambda x, y: torch.stack([x, y], dim=1),
    "mse-loss": F.mse_loss,
    "l1-loss": F.l1_loss,
    "smooth-l1": F.smooth_l1_loss,
    "huber": F.huber_loss,
    "kl-div": lambda x, y: F.kl_div(F.log_softmax(x, -1), F.softmax(y, -1), reduction="batchmean"),
    "bce-logits": lambda x, y: F.binary_cross_entropy_with_logits(x, torch.sigmoid(y)),
    "cosine-similarity": F.cosine_similarity,
    "pairwise-distance": F.pairwise_distance,
    "dist": lambda x, y: torch.dist(x, y),
    "complex-expr": lambda x, y: (x * y + x.sin()) / (1 + y.exp()),
    "inplace-chain": lambda x, y: x.clone().add_(y).mul_(2),
    "broadcast-row": lambda x, y: x + y[:1],
    "broadcast-col": lambda x, y: x * y[:, :1],
}

BROADCASTING = {
    "add-row-vector": (lambda x, v: x + v, ((4, 8), (8,))),
    "mul-col": (lambda x, c: x * c, ((4, 8), (4, 1))),
    "outer": (lambda a, b: torch.outer(a, b), ((4,), (5,))),
    "bmm": (torch.bmm, ((4, 3, 5), (4, 5, 2))),
    "baddbmm": (lambda a, b: torch.baddbmm(torch.zeros(1), a, b), ((4, 3, 5), (4, 5, 2))),
    "einsum-bij": (lambda a, b: torch.einsum("bij,bjk->bik", a, b), ((4, 3, 5), (4, 5, 2))),
    "einsum-trace": (lambda a: torch.einsum("bii->b", a), ((4, 3, 3),)),
    "linear-fn": (lambda x, w: F.linear(x, w), ((4, 8), (5, 8))),
    "cross-entropy": (
        lambda x, y: F.cross_entropy(x, y.softmax(-1)),
        ((4, 6), (4, 6)),
    ),
    "nll-loss": (lambda x, y: F.nll_loss(F.log_softmax(x, -1), y.argmax(-1)), ((4, 6), (4, 6))),
    "tensordot": (lambda a, b: torch.tensordot(a, b, dims=([1], [0])), ((4, 6), (6, 3))),
    "cdist": (torch.cdist, ((4, 3), (5, 3))),
    "scaled-dot-product": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
        ((4, 2, 5, 8), (4, 2, 5, 8), (4, 2, 5, 8)),
    ),
    "sdpa-causal": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        ((4, 2, 5, 8), (4, 2, 5, 8), (4, 2, 5, 8)),
    ),
    "addmm": (lambda b, x, w: torch.addmm(b, x, w), ((4, 3), (4, 5), (5, 3))),
}


def cases() -> list:
    result = []
    for name, fn in UNARY.items():
        result += function_cases(f"unary-{name}", fn, A, source=SOURCE)
    for name, fn in REDUCTIONS.items():
        result += function_cases(f"reduce-{name}", fn, A, source=SOURCE)
    for name, fn in BINARY.items():
        result += function_cases(f"binary-{name}", fn, AB, source=SOURCE)
    for name, (fn, shapes) in BROADCASTING.items():
        result += function_cases(f"bcast-{name}", fn, shapes, source=SOURCE)
    return result
