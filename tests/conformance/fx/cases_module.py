"""GraphModule and Interpreter cases from torch's test/test_fx.py: the boxed and
default-argument calling conventions, returned dataclasses and namedtuples,
copies, pickling, ``torch.save``, data-parallel replicas, ``functional_call``
and graph edits on a traced module (``TestFX.test_<name>`` is each case's source)."""

from __future__ import annotations

import copy
import dataclasses
import io

import torch
import torch.utils._pytree as pytree

from .adapter import case
from .cases_api import Add, MyNamedTup, Pair, SimpleTest
from .cases_run import ParamLinear


@case("test_interpreter_boxed_run_argument_validation")
def interpreter_boxed_run(fx):
    gm = fx.symbolic_trace(AddTwo())
    lhs, rhs = torch.tensor(1.0), torch.tensor(2.0)
    good = [lhs.clone(), rhs.clone()]
    result = fx.Interpreter(gm).boxed_run(good)
    return result, lhs + rhs, good


class AddTwo(torch.nn.Module):
    def forward(self, lhs, rhs):
        return lhs + rhs


@case("test_interpreter_boxed_run_argument_validation (extra)", raises=True)
def interpreter_boxed_run_extra(fx):
    gm = fx.symbolic_trace(AddTwo())
    return fx.Interpreter(gm).boxed_run([torch.tensor(1.0)] * 3)


@case("test_interpreter_boxed_run_argument_validation (missing)", raises=True)
def interpreter_boxed_run_missing(fx):
    gm = fx.symbolic_trace(AddTwo())
    return fx.Interpreter(gm).boxed_run([torch.tensor(1.0)])


@case("test_interpreter_other_graph")
def interpreter_other_graph(fx):
    m = ParamLinear()
    gm = fx.symbolic_trace(m)
    x = torch.randn(3, 4)
    return fx.Interpreter(gm, graph=gm.graph).run(x), m(x)


@case("test_interpreter_default_args")
def interpreter_default_args(fx):
    class Model(torch.nn.Module):
        def forward(self, x, y=3.14159):
            return x + y

    x = torch.randn(5, 3)
    return fx.Interpreter(fx.symbolic_trace(Model())).run(x), x + 3.14159


@case("test_interpreter_not_enough_args", raises=True)
def interpreter_not_enough_args(fx):
    return fx.Interpreter(fx.symbolic_trace(AddTwo())).run(torch.randn(5, 3))


@case("test_sequential")
def sequential_deepcopy(fx):
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    gm_copy = copy.deepcopy(fx.symbolic_trace(m))
    x = torch.randn(1, 1, 3, 3)
    return gm_copy(x), m(x)


@dataclasses.dataclass
class MyOutput:
    foo: torch.Tensor
    bar: torch.Tensor


class ReturnsDataclass(torch.nn.Module):
    def forward(self, d: torch.Tensor):
        return MyOutput(foo=d + d, bar=d * 3)


def outputs_of_rebuilt_trace(fx, module):
    """test_trace_return_*: a GraphModule built from the traced graph returns what the module does."""
    gm = fx.GraphModule(module, fx.symbolic_trace(module).graph)
    x = torch.rand(1)
    result, expected = gm(x), module(x)
    if dataclasses.is_dataclass(expected):
        return type(result).__name__, dataclasses.astuple(result), dataclasses.astuple(expected)
    return type(result).__name__, result, expected


@case("test_trace_return_dataclass")
def trace_return_dataclass(fx):
    return outputs_of_rebuilt_trace(fx, ReturnsDataclass())


@case("test_trace_return_dataclass_nested")
def trace_return_dataclass_nested(fx):
    class CallsModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = ReturnsDataclass()

        def forward(self, x):
            tmp = self.m(x)
            return MyOutput(foo=tmp.foo, bar=tmp.bar)

    return outputs_of_rebuilt_trace(fx, CallsModule())


@case("test_trace_return_namedtuple")
def trace_return_namedtuple(fx):
    class M(torch.nn.Module):
        def forward(self, d: torch.Tensor):
            return Pair(x=d, y=d)

    return outputs_of_rebuilt_trace(fx, M())


@case("test_namedtuple_return_qualname")
def namedtuple_return_qualname(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return MyNamedTup(x, x)

    x = torch.rand(3, 4)
    return fx.symbolic_trace(M())(x), MyNamedTup(x, x)


@case("test_graph_module_replicate_for_dp")
def graph_module_replicate_for_dp(fx):
    class Foo(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    gm = fx.symbolic_trace(Foo())
    x = torch.randn(5, 3)
    return gm._replicate_for_data_parallel()(x), gm(x)


@case("test_fx_stateless")
def fx_stateless(fx):
    class MockModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l1 = torch.nn.Linear(1, 1)
            self.buffer = torch.nn.Buffer(torch.ones(1))

        def forward(self, x):
            return self.l1(x) + self.buffer

    module = MockModule()
    weight = torch.tensor([[1.0]], requires_grad=True)
    bias = torch.tensor([0.0], requires_grad=True)
    parameters = {"l1.weight": weight, "l1.bias": bias, "buffer": torch.tensor([0.0])}
    result = torch.func.functional_call(fx.symbolic_trace(module), parameters, torch.ones(1, 1))
    result.backward()
    return weight.grad, bias.grad, module.l1.weight.grad is None


@case("test_deepcopy_graphmodule")
def deepcopy_graphmodule_meta(fx):
    m = fx.symbolic_trace(SimpleTest())
    m.meta["hello"] = "world"
    return copy.deepcopy(m).meta["hello"]


@case("test_deepcopy_no_recursion")
def deepcopy_no_recursion(fx):
    m = fx.symbolic_trace(SimpleTest())
    m.meta["hello"] = m
    copied = copy.deepcopy(m)
    return copied.meta["hello"] is copied


@case("test_insert_arg")
def insert_arg(fx):
    m = fx.symbolic_trace(SimpleTest())
    m.buf = torch.nn.Buffer(torch.tensor(0))
    output_node = next(iter(reversed(m.graph.nodes)))
    with m.graph.inserting_before(output_node):
        a = m.graph.get_attr("buf")
    before = len(output_node.args)
    output_node.insert_arg(0, a)
    first = len(output_node.args) - before, len(a.users), output_node.args[0] is a
    output_node.insert_arg(2, a)
    m.graph.lint()
    return first, len(output_node.args) - before, len(a.users), output_node.args[2] is a


@case("test_preserve_unused_attr_after_unpickle")
def preserve_unused_attr_after_unpickle(fx):
    gm = fx.symbolic_trace(Add())
    gm.add_submodule("foo", Add())
    gm.dummy_buffer = torch.nn.Buffer(torch.empty(1))
    gm.register_parameter("dummy_parameter", torch.nn.Parameter(torch.empty(1)))
    buffer = io.BytesIO()
    torch.save(gm, buffer)
    buffer.seek(0)
    reloaded = torch.load(buffer, weights_only=False)
    return [hasattr(reloaded, name) for name in ("foo", "dummy_buffer", "dummy_parameter")]


def cat_node(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    return graph.call_function(torch.cat, ([x, x],), {"dim": 0})


@case("test_no_mutation", raises=True)
def no_mutation_of_arguments(fx):
    cat_node(fx).args[0][0] = 4


@case("test_no_mutation (kwargs)", raises=True)
def no_mutation_of_keyword_arguments(fx):
    cat_node(fx).kwargs["dim"] = 1


@case("test_immutable_list_pytree_ops / test_immutable_dict_pytree_ops")
def immutable_arguments_as_pytrees(fx):
    node = cat_node(fx)
    arguments, keywords = node.args[0], node.kwargs
    flat, spec = pytree.tree_flatten(arguments)
    rebuilt = pytree.tree_unflatten(flat, spec)
    flat_kw, spec_kw = pytree.tree_flatten(keywords)
    rebuilt_kw = pytree.tree_unflatten(flat_kw, spec_kw)
    return (
        [n.name for n in flat], rebuilt == arguments, type(rebuilt) is type(arguments),
        flat_kw, type(rebuilt_kw) is type(keywords),
    )  # fmt: skip


@case("test_copy_it")
def copy_immutable_arguments(fx):
    node = cat_node(fx)
    copied_list, copied_dict = copy.deepcopy(node.args[0]), copy.deepcopy(node.kwargs)
    return copied_dict == node.kwargs, len(copied_list), type(copied_list) is type(node.args[0])
