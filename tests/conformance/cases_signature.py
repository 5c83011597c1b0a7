"""Signature cases: parameters, buffers, constants, inputs, outputs and mutations.

Rewritten from ``test/export/test_export.py`` (``test_basic``,
``test_no_tensor_computation*``, ``test_not_registered_parameter``,
``test_constant_*``, ``test_lifted_constants``, ``test_buffer_*``,
``test_mutate_*``, ``test_nested_*``, ``test_kwargs*``, ``test_pytree_*``,
``test_export_*_output``) and the programming-model doc
(``docs/source/export/programming_model.md``: what is static, what is lifted).
"""

from __future__ import annotations

import collections
import dataclasses

import torch

from tests.conformance.builders import case, randn
from tests.conformance.harness import Difference, Run

#: torch.export runs inputs its program was not traced for and computes something else
UNCHECKED_INPUT = (
    "torch's module() does not check this property of the input and runs the graph anyway"
)


def refuses(reason: str, *runs: str) -> Difference:
    return Difference(reason, {"runs": list(runs)})


T = "test/export/test_export.py"
PM = "docs/source/export/programming_model.md"


def one(*shape: int):
    return lambda: (randn(*shape),)


def two(*shape: int):
    return lambda: (randn(*shape), randn(*shape))


def sig_views(program) -> dict:
    """The graph_signature views users read, as plain data."""
    s = program.graph_signature
    return {
        "user_inputs": list(s.user_inputs),
        "user_outputs": list(s.user_outputs),
        "parameters": list(s.parameters),
        "buffers": list(s.buffers),
        "inputs_to_parameters": dict(s.inputs_to_parameters),
        "inputs_to_buffers": dict(s.inputs_to_buffers),
        "buffers_to_mutate": dict(s.buffers_to_mutate),
        "user_inputs_to_mutate": dict(s.user_inputs_to_mutate),
        "non_persistent_buffers": list(s.non_persistent_buffers),
    }


# --- state ------------------------------------------------------------------------


class Basic(torch.nn.Module):
    def forward(self, x, y):
        return x[0] + y


class WithParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.param = torch.nn.Parameter(torch.randn(1, 3))

    def forward(self, x, y):
        return x[0] + y - self.param


class NotRegisteredParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.params = {"foo": torch.nn.Parameter(torch.ones(3, 3))}

    def forward(self, x):
        return x + self.params["foo"]


class TensorConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.randn(3)

    def forward(self, x):
        return x + self.c


class UnusedConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.randn(3)
        self.unused = torch.randn(3)

    def forward(self, x):
        return x * self.c


class AliasedConstant(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c = torch.randn(3)
        self.d = self.c

    def forward(self, x):
        return x + self.c + self.d


class ConstantBeforeParam(torch.nn.Module):
    """Placeholder order is params, buffers, constants, inputs whatever the use order."""

    def __init__(self):
        super().__init__()
        self.c = torch.randn(3)
        self.register_buffer("b", torch.randn(3))
        self.w = torch.nn.Parameter(torch.randn(3))

    def forward(self, x):
        return ((x + self.c) * self.b) - self.w


class BufferAndParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("buf", torch.ones(3))
        self.register_buffer("npb", torch.ones(3), persistent=False)
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(x) + self.buf + self.npb


class SharedParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(x))


class SharedSubmodule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        inner = torch.nn.Linear(3, 3)
        self.first = inner
        self.second = inner

    def forward(self, x):
        return self.second(self.first(x))


class WithNonPersistent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.full((3,), 2.0), persistent=False)

    def forward(self, x):
        return x * self.scale


class SharedNonPersistent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        inner = WithNonPersistent()
        self.a = inner
        self.b = inner

    def forward(self, x):
        return self.b(self.a(x))


class UnusedParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.used = torch.nn.Parameter(torch.randn(3))
        self.unused = torch.nn.Parameter(torch.randn(3))

    def forward(self, x):
        return x * self.used


class ParamList(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ps = torch.nn.ParameterList([torch.nn.Parameter(torch.randn(3)) for _ in range(3)])

    def forward(self, x):
        for p in self.ps:
            x = x * p
        return x


class ModuleDict(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleDict({"a": torch.nn.Linear(3, 3), "b": torch.nn.Linear(3, 3)})

    def forward(self, x):
        return self.layers["b"](self.layers["a"](x))


class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.outer = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU()), torch.nn.Linear(4, 3)
        )
        self.register_buffer("offset", torch.ones(3))

    def forward(self, x):
        return self.outer(x) + self.offset


class ScalarTensorConstant(torch.nn.Module):
    def forward(self, x):
        return x * torch.tensor(3.0)


class TensorFromList(torch.nn.Module):
    def forward(self, x):
        return x + torch.tensor([1.0, 2.0, 3.0])


class ConstantInSubmodule(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.sub = TensorConstant()

    def forward(self, x):
        return self.sub(x) * 2


class FrozenParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3), requires_grad=False)

    def forward(self, x):
        return x * self.w


class IntBuffer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("idx", torch.tensor([2, 0, 1]))

    def forward(self, x):
        return x[:, self.idx]


# --- inputs -----------------------------------------------------------------------


class ReturnConstantInt(torch.nn.Module):
    def forward(self, x, y):
        return 5


class Kwargs(torch.nn.Module):
    def forward(self, x, *, scale, bias=None):
        out = x * scale
        return out if bias is None else out + bias


class DefaultArg(torch.nn.Module):
    def forward(self, x, y=None, flag=True):
        if y is not None:
            x = x + y
        return x.relu() if flag else x


class DictInput(torch.nn.Module):
    def forward(self, inputs):
        return inputs["a"] * 2 + inputs["b"]


class NestedInput(torch.nn.Module):
    def forward(self, x, pair):
        (a, b), rest = pair
        return x + a * b + rest["c"]


class ListInput(torch.nn.Module):
    def forward(self, xs):
        return torch.stack(xs).sum(0)


Point = collections.namedtuple("Point", ["x", "y"])


class NamedTupleInput(torch.nn.Module):
    def forward(self, p):
        return p.x - p.y


class IntInput(torch.nn.Module):
    def forward(self, x, n):
        return x * n


class FloatInput(torch.nn.Module):
    def forward(self, x, alpha):
        return x * alpha


class BoolInput(torch.nn.Module):
    def forward(self, x, flag):
        return x.sin() if flag else x.cos()


class StrInput(torch.nn.Module):
    def forward(self, x, mode):
        return x.relu() if mode == "relu" else x.tanh()


class NoneInput(torch.nn.Module):
    def forward(self, x, y):
        return x if y is None else x + y


class SizeInput(torch.nn.Module):
    def forward(self, x, size):
        return x.reshape(size)


class VarArgs(torch.nn.Module):
    def forward(self, *args):
        return args[0] + args[1]


class VarKwargs(torch.nn.Module):
    def forward(self, x, **kwargs):
        return x + kwargs["y"] * kwargs["z"]


class UnusedInput(torch.nn.Module):
    def forward(self, x, y):
        return x * 2


class CallableInput(torch.nn.Module):
    def forward(self, x, fn):
        return fn(x)


@dataclasses.dataclass
class Batch:
    features: torch.Tensor
    mask: torch.Tensor


torch.export.register_dataclass(Batch, serialized_type_name="conformance.Batch")


class DataclassInput(torch.nn.Module):
    def forward(self, batch):
        return batch.features * batch.mask


def state_cases() -> list:
    s = sig_views
    return [
        case(
            "basic-list-input",
            Basic,
            lambda: ([randn(1, 3)], randn(1, 3)),
            source=f"{T}::test_basic",
            runs=lambda: (Run(([randn(1, 3)], randn(1, 3))),),
            observe=s,
        ),
        case(
            "basic-param",
            WithParam,
            lambda: ([randn(1, 3)], randn(1, 3)),
            source=f"{T}::test_basic_non_strict_real_tensor",
            observe=s,
        ),
        case(
            "not-registered-parameter",
            NotRegisteredParam,
            one(1, 3),
            source=f"{T}::test_not_registered_parameter",
            observe=lambda ep: (
                len(ep.graph_signature.lifted_tensor_constants),
                len(ep.graph_signature.parameters),
            ),
        ),
        case(
            "tensor-constant-lifted",
            TensorConstant,
            one(2, 3),
            source=f"{T}::test_constant_tensor",
            observe=lambda ep: len(ep.graph_signature.lifted_tensor_constants),
        ),
        case(
            "unused-constant-not-lifted",
            UnusedConstant,
            one(2, 3),
            source=f"{T}::test_lifted_constants",
            observe=lambda ep: len(ep.constants),
        ),
        case(
            "aliased-constant-lifted-once",
            AliasedConstant,
            one(2, 3),
            source=f"{T}::test_constant_aliasing",
            observe=lambda ep: len(ep.graph_signature.lifted_tensor_constants),
        ),
        case("placeholder-order", ConstantBeforeParam, one(2, 3), source=f"{PM} (lifting order)"),
        case(
            "buffer-param-nonpersistent",
            BufferAndParam,
            one(2, 3),
            source=f"{T}::test_non_persistent_buffer",
            observe=s,
        ),
        case(
            "shared-parameter", SharedParam, one(2, 3), source=f"{T}::test_tied_weights", observe=s
        ),
        case(
            "shared-submodule",
            SharedSubmodule,
            one(2, 3),
            source=f"{T}::test_shared_submodule",
            observe=s,
        ),
        case(
            "shared-nonpersistent-buffer",
            SharedNonPersistent,
            one(2, 3),
            source=f"{T}::test_nonpersistent_buffer_shared_submodule",
            observe=s,
        ),
        case(
            "unused-parameter",
            UnusedParam,
            one(2, 3),
            source=f"{T}::test_unused_parameter",
            observe=s,
        ),
        case("parameter-list", ParamList, one(2, 3), source=f"{T}::test_param_list", observe=s),
        case("module-dict", ModuleDict, one(2, 3), source=f"{T}::test_module_dict", observe=s),
        case("nested-submodules", Nested, one(2, 3), source=f"{T}::test_nested_module", observe=s),
        case(
            "scalar-tensor-constant",
            ScalarTensorConstant,
            one(2, 3),
            source=f"{T}::test_setgrad_lifted_tensor",
            observe=lambda ep: len(ep.graph_signature.lifted_tensor_constants),
        ),
        case(
            "tensor-from-list-constant",
            TensorFromList,
            one(2, 3),
            source=f"{T}::test_tensor_constant_list",
        ),
        case(
            "constant-in-submodule",
            ConstantInSubmodule,
            one(2, 3),
            source=f"{T}::test_constant_in_submodule",
            observe=lambda ep: len(ep.graph_signature.lifted_tensor_constants),
        ),
        case(
            "frozen-parameter",
            FrozenParam,
            one(2, 3),
            source=f"{T}::test_requires_grad_false_param",
            observe=s,
        ),
        case("int-buffer-index", IntBuffer, one(2, 3), source=f"{T}::test_buffer_index", observe=s),
    ]


def input_cases() -> list:
    s = sig_views
    return [
        case(
            "kwargs-only",
            Kwargs,
            one(2, 3),
            kwargs=lambda: {"scale": randn(2, 3)},
            source=f"{T}::test_kwargs",
            runs=lambda: (Run((randn(2, 3),), {"scale": randn(2, 3)}),),
            observe=s,
        ),
        case(
            "kwargs-with-bias",
            Kwargs,
            one(2, 3),
            kwargs=lambda: {"scale": randn(2, 3), "bias": randn(3)},
            source=f"{T}::test_kwargs",
            observe=s,
        ),
        case(
            "kwargs-reordered-run",
            Kwargs,
            one(2, 3),
            kwargs=lambda: {"scale": randn(2, 3), "bias": randn(3)},
            source=f"{T}::test_kwargs_reorder",
            runs=lambda: (Run((randn(2, 3),), {"bias": randn(3), "scale": randn(2, 3)}),),
        ),
        case(
            "default-args-omitted",
            DefaultArg,
            one(2, 3),
            source=f"{T}::test_default_args",
            runs=lambda: (Run((randn(2, 3),)),),
        ),
        case(
            "default-args-given",
            DefaultArg,
            lambda: (randn(2, 3), randn(2, 3), False),
            source=f"{T}::test_default_args",
            runs=lambda: (Run((randn(2, 3), randn(2, 3), True)),),
        ),
        case(
            "dict-input",
            DictInput,
            lambda: ({"a": randn(2, 3), "b": randn(2, 3)},),
            source=f"{T}::test_dict_input",
            observe=s,
            runs=lambda: (Run(({"a": randn(2, 3), "b": randn(2, 3)},)), Run(({"a": randn(2, 3)},))),
        ),
        case(
            "dict-input-key-order",
            DictInput,
            lambda: ({"a": randn(2, 3), "b": randn(2, 3)},),
            source=f"{T}::test_dict_key_order",
            runs=lambda: (Run(({"b": randn(2, 3), "a": randn(2, 3)},)),),
        ),
        case(
            "nested-input",
            NestedInput,
            lambda: (randn(3), ((randn(3), randn(3)), {"c": randn(3)})),
            source=f"{T}::test_nested_input",
            observe=s,
        ),
        case(
            "list-input",
            ListInput,
            lambda: ([randn(3), randn(3), randn(3)],),
            source=f"{T}::test_list_input",
            runs=lambda: (Run(([randn(3), randn(3)],)),),
        ),
        case(
            "namedtuple-input",
            NamedTupleInput,
            lambda: (Point(randn(3), randn(3)),),
            source=f"{T}::test_namedtuple_input",
            runs=lambda: (Run((Point(randn(3), randn(3)),)),),
        ),
        case(
            "int-input-specialized",
            IntInput,
            lambda: (randn(3), 3),
            source=f"{PM} (ints are specialized)",
            runs=lambda: (Run((randn(3), 3)), Run((randn(3), 4))),
        ),
        case(
            "float-input-specialized",
            FloatInput,
            lambda: (randn(3), 0.5),
            source=f"{PM} (floats are specialized)",
            runs=lambda: (Run((randn(3), 0.5)), Run((randn(3), 0.25))),
        ),
        case(
            "bool-input-specialized",
            BoolInput,
            lambda: (randn(3), True),
            source=f"{PM} (bools are specialized)",
            runs=lambda: (Run((randn(3), True)), Run((randn(3), False))),
        ),
        case(
            "str-input-specialized",
            StrInput,
            lambda: (randn(3), "relu"),
            source=f"{PM} (strings are specialized)",
            runs=lambda: (Run((randn(3), "relu")), Run((randn(3), "tanh"))),
        ),
        case(
            "none-input",
            NoneInput,
            lambda: (randn(3), None),
            source=f"{T}::test_none_input",
            difference=refuses(
                f"{UNCHECKED_INPUT}: a tensor where None was traced gives a wrong "
                "result (the branch on `y is None` was taken at export)",
                "ok",
                "ok",
                "ValueError",
            ),
            runs=lambda: (Run((randn(3), None)), Run((randn(3), randn(3)))),
        ),
        case(
            "size-input",
            SizeInput,
            lambda: (randn(2, 3), torch.Size([3, 2])),
            source=f"{T}::test_torch_size_input",
            runs=lambda: (Run((randn(2, 3), torch.Size([3, 2]))),),
        ),
        case("varargs-input", VarArgs, two(2, 3), source=f"{T}::test_varargs", observe=s),
        case(
            "varkwargs-input",
            VarKwargs,
            one(2, 3),
            kwargs=lambda: {"y": randn(2, 3), "z": randn(2, 3)},
            source=f"{T}::test_var_kwargs",
            observe=s,
        ),
        case(
            "unused-input",
            UnusedInput,
            two(2, 3),
            source=f"{T}::test_no_tensor_computation_2",
            observe=s,
        ),
        case(
            "callable-input",
            CallableInput,
            lambda: (randn(2, 3), torch.nn.ReLU()),
            source=f"{T}::test_callable_input",
        ),
        case(
            "dataclass-input-torch-registered",
            DataclassInput,
            lambda: (Batch(randn(2, 3), randn(2, 3)),),
            source=f"{T}::test_register_dataclass",
            runs=lambda: (Run((Batch(randn(2, 3), randn(2, 3)),)),),
            observe=s,
        ),
        case(
            "int-inputs-only",
            ReturnConstantInt,
            lambda: (2, 1),
            source=f"{T}::test_no_tensor_computation_3",
            observe=s,
            runs=lambda: (Run((2, 1)),),
        ),
        case(
            "list-and-int",
            Basic,
            lambda: ([randn(1, 3)], randn(1, 3)),
            source=f"{T}::test_no_tensor_computation_4",
            runs=lambda: (Run(([randn(1, 3), randn(1, 3)], randn(1, 3))),),
        ),
        case(
            "wrong-arity-run",
            UnusedInput,
            two(2, 3),
            source=f"{T}::test_input_arity",
            runs=lambda: (Run((randn(2, 3),)),),
        ),
        case(
            "wrong-dtype-run",
            UnusedInput,
            two(2, 3),
            source=f"{T}::test_input_dtype",
            difference=refuses(
                f"{UNCHECKED_INPUT}: dtype; ops traced for float32 (promotion, "
                "dtype-dependent branches) run on float64",
                "ok",
                "AssertionError",
            ),
            runs=lambda: (Run((randn(2, 3, dtype=torch.float64), randn(2, 3))),),
        ),
        case(
            "wrong-rank-run",
            UnusedInput,
            two(2, 3),
            source=f"{T}::test_input_rank",
            difference=refuses(
                f"{UNCHECKED_INPUT}: rank; a 3-d input runs a graph traced for 2-d "
                "(torch raises IndexError or broadcasts silently)",
                "ok",
                "AssertionError",
            ),
            runs=lambda: (Run((randn(2, 3, 1), randn(2, 3))),),
        ),
        case(
            "wrong-size-run",
            UnusedInput,
            two(2, 3),
            source=f"{T}::test_input_size",
            runs=lambda: (Run((randn(2, 4), randn(2, 3))),),
        ),
        case(
            "tensor-for-int-run",
            IntInput,
            lambda: (randn(3), 3),
            source=f"{T}::test_input_type",
            difference=refuses(
                f"{UNCHECKED_INPUT}: a tensor where the int 3 was specialized; "
                "another value would silently compute with 3",
                "ok",
                "AssertionError",
            ),
            runs=lambda: (Run((randn(3), torch.tensor(3))),),
        ),
    ]


def cases() -> list:
    return state_cases() + input_cases()
