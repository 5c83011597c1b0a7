"""Output and mutation cases: what a program returns, and the state it updates.

Rewritten from ``test/export/test_export.py`` (``test_export_*_output``,
``test_no_tensor_computation*``, ``test_symint_output``, ``test_mutate_*``,
``test_buffer_*``, ``test_input_mutation*``) and the mutations part of
``docs/source/export/programming_model.md``.
"""

from __future__ import annotations

import torch

from tests.conformance.builders import case, randn
from tests.conformance.cases_signature import (
    Point,
    ReturnConstantInt,
    T,
    one,
    refuses,
    sig_views,
    two,
)
from tests.conformance.harness import Run

# --- outputs ----------------------------------------------------------------------


class ReturnInput(torch.nn.Module):
    def forward(self, x):
        return x


class ReturnTwice(torch.nn.Module):
    def forward(self, x):
        y = x + 1
        return y, y


class ReturnView(torch.nn.Module):
    def forward(self, x):
        return x[0], x.view(-1), x.t()


class ReturnParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3))

    def forward(self, x):
        return x + 1, self.w


class ReturnBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("b", torch.randn(3))

    def forward(self, x):
        return self.b, x * self.b


class ReturnNone(torch.nn.Module):
    def forward(self, x):
        return x + 1, None


class ReturnNested(torch.nn.Module):
    def forward(self, x):
        return {"out": [x + 1, (x * 2, {"z": x - 1})], "n": x.sum()}


class ReturnNamedTuple(torch.nn.Module):
    def forward(self, x):
        return Point(x + 1, x - 1)


class ReturnShape(torch.nn.Module):
    def forward(self, x):
        return x.shape[0]


class ReturnShapeTuple(torch.nn.Module):
    def forward(self, x):
        z, y = x.size()
        return z + y + x[0], z


class ReturnFloat(torch.nn.Module):
    def forward(self, x):
        return x + 1, 0.5


class ReturnEmpty(torch.nn.Module):
    def forward(self, x):
        return ()


# --- mutations --------------------------------------------------------------------


class BufferAdd(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("count", torch.zeros(3))

    def forward(self, x):
        self.count.add_(1)
        return x + self.count


class BufferAssign(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("state", torch.zeros(3))

    def forward(self, x):
        self.state = self.state + x.sum(0)
        return x * self.state


class NonPersistentMutation(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("tmp", torch.zeros(3), persistent=False)

    def forward(self, x):
        self.tmp.mul_(0.5).add_(x.mean(0))
        return x - self.tmp


class InputAdd(torch.nn.Module):
    def forward(self, x):
        x.add_(1)
        return x * 2


class InputViewMutation(torch.nn.Module):
    def forward(self, x):
        x[:, 0] += 1
        return x.sum()


class InputSetitem(torch.nn.Module):
    def forward(self, x, idx):
        x[idx] = 0.0
        return x


class ParamMutationNoGrad(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def forward(self, x):
        with torch.no_grad():
            self.w.mul_(0.9)
        return x * self.w


class TwoBufferMutations(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("a", torch.zeros(3))
        self.register_buffer("b", torch.zeros(3))

    def forward(self, x):
        self.b.add_(x.sum(0))
        self.a.add_(1)
        return x + self.a - self.b


class MutateThenReturnInput(torch.nn.Module):
    def forward(self, x, y):
        y.copy_(x * 2)
        return y


class BatchNormTrain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(x)


class IndexPutBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("cache", torch.zeros(8, 3))

    def forward(self, x, pos):
        self.cache.index_copy_(0, pos, x)
        return self.cache.sum(0)


def output_cases() -> list:
    s = sig_views
    return [
        case("return-input", ReturnInput, one(2, 3), source=f"{T}::test_return_input", observe=s),
        case(
            "return-same-twice",
            ReturnTwice,
            one(2, 3),
            source=f"{T}::test_return_duplicate",
            observe=s,
        ),
        case("return-views", ReturnView, one(2, 3), source=f"{T}::test_return_view"),
        case(
            "return-parameter", ReturnParam, one(2, 3), source=f"{T}::test_return_param", observe=s
        ),
        case(
            "return-buffer", ReturnBuffer, one(2, 3), source=f"{T}::test_return_buffer", observe=s
        ),
        case(
            "return-constant-int",
            ReturnConstantInt,
            two(2, 3),
            source=f"{T}::test_no_tensor_computation_3",
        ),
        case("return-none", ReturnNone, one(2, 3), source=f"{T}::test_return_none"),
        case("return-nested", ReturnNested, one(2, 3), source=f"{T}::test_nested_output"),
        case(
            "return-namedtuple", ReturnNamedTuple, one(2, 3), source=f"{T}::test_namedtuple_output"
        ),
        case("return-shape-static", ReturnShape, one(2, 3), source=f"{T}::test_symint_output"),
        case("return-shape-tuple", ReturnShapeTuple, one(2, 3), source=f"{T}::test_symint_output"),
        case("return-float", ReturnFloat, one(2, 3), source=f"{T}::test_float_output"),
        case("return-empty", ReturnEmpty, one(2, 3), source=f"{T}::test_empty_output"),
    ]


def mutation_cases() -> list:
    s = sig_views
    M = "docs/source/export/programming_model.md (mutations)"
    return [
        case(
            "buffer-add-inplace",
            BufferAdd,
            one(2, 3),
            source=f"{T}::test_buffer_mutation",
            observe=s,
            runs=lambda: (Run((randn(2, 3),)),),
        ),
        case(
            "buffer-reassign",
            BufferAssign,
            one(2, 3),
            source=f"{T}::test_buffer_reassign",
            observe=s,
            runs=lambda: (Run((randn(2, 3),)),),
        ),
        case(
            "nonpersistent-buffer-mutation",
            NonPersistentMutation,
            one(2, 3),
            source=f"{T}::test_non_persistent_buffer_mutation",
            observe=s,
            runs=lambda: (Run((randn(2, 3),)),),
        ),
        case(
            "input-add-inplace", InputAdd, one(2, 3), source=f"{T}::test_input_mutation", observe=s
        ),
        case(
            "input-view-mutation",
            InputViewMutation,
            one(2, 3),
            source=f"{T}::test_input_view_mutation",
            observe=s,
        ),
        case(
            "input-setitem",
            InputSetitem,
            lambda: (randn(4, 3), 1),
            source=f"{T}::test_setitem",
            observe=s,
        ),
        case(
            "param-mutation-no-grad",
            ParamMutationNoGrad,
            one(2, 3),
            source=f"{M}",
            observe=s,
            difference=refuses(
                "torch's module() raises RuntimeError (in-place update of a leaf "
                "parameter that requires grad) on the program it exported; graphlift "
                "writes the update back under no_grad, as eager does",
                "ok",
                "ok",
            ),
            runs=lambda: (Run((randn(2, 3),)),),
        ),
        case(
            "two-buffer-mutations-order",
            TwoBufferMutations,
            one(2, 3),
            source=f"{T}::test_mutation_order",
            observe=s,
        ),
        case(
            "copy-into-input",
            MutateThenReturnInput,
            two(2, 3),
            source=f"{T}::test_copy_input",
            observe=s,
        ),
        case(
            "batchnorm-train-stats",
            lambda: BatchNormTrain().train(),
            one(4, 3),
            source=f"{T}::test_batchnorm_training",
            observe=s,
            runs=lambda: (Run((randn(4, 3),)),),
        ),
        case(
            "index-copy-cache",
            IndexPutBuffer,
            lambda: (randn(2, 3), torch.tensor([1, 5])),
            source=f"{T}::test_kv_cache_index_copy",
            observe=s,
            runs=lambda: (Run((randn(2, 3), torch.tensor([0, 7]))),),
        ),
    ]


def cases() -> list:
    return output_cases() + mutation_cases()
