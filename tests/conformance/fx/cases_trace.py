"""Tracing cases (Tracer, Proxy, symbolic_trace, concrete_args, wrap),
rewritten from torch's test/test_fx.py (``TestFX.test_<name>``)."""

import math
import pickle
from collections import namedtuple
from math import sqrt
from typing import NamedTuple

import torch
import torch.fx
import torch.utils._pytree as pytree

import graphlift.fx

from .adapter import case, ops, traced_run


def a_lifted_leaf(a, b):
    return a[0] + a[1] + b


def a_lifted_leaf2(a, b):
    return a[0] + a[1] + b


def wrapped_via_decorator(a):
    return a + 1


def wrapped_with_submodule(x, batchnorm1d):
    return batchnorm1d(x)


def fx_int(x: float) -> int:
    return int(x)


# wrap() registers a module-level name with each library (both patch this module).
for _library in (torch.fx, graphlift.fx):
    _library.wrap("a_lifted_leaf")
    _library.wrap(a_lifted_leaf2)
    _library.wrap("wrapped_via_decorator")
    _library.wrap("wrapped_with_submodule")
    _library.wrap("len")

Point = namedtuple("Point", ["x", "y"])


class Pair(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


class Foo:
    def __init__(self, a, b):
        self.a = a
        self.b = b


pytree.register_pytree_node(Foo, lambda x: ([x.a, x.b], None), lambda x, _: Foo(x[0], x[1]))
torch.fx._pytree.register_pytree_flatten_spec(Foo, lambda x, _: [x.a, x.b])


class SimpleTest(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x + 3.0)


@case("test_graph_module")
def graph_module(fx):
    class MySub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.rand(4, 3))

        def forward(self, x):
            return self.w + x

    class MyModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)
            self.sub_mod = MySub()
            self.w = torch.nn.Parameter(torch.rand(3))

        def forward(self, A, B, c):
            t = torch.sigmoid(A) + self.lin(c)
            return self.sub_mod(t.data + self.w + t + 1 - A + B // A + -A + A.add(B, alpha=3))

    a, b, c = torch.rand(4, 3) + 1, torch.rand(4, 3), torch.rand(4, 4)
    return traced_run(fx, MyModule(), a, b, c)


class VariadicSignature(torch.nn.Module):
    def forward(self, A, b=4, *args, c=5, **kwargs):
        return A + b + args[0] + c + kwargs["3"]


def call_variadic(module):
    return module(torch.ones(2), 4, torch.ones(2), c=5, **{"3": torch.ones(2)})


@case(
    "test_graph_module (forward(A, b=4, *args, c=5, **kwargs))",
    eager=lambda: call_variadic(VariadicSignature()),
    why="torch.fx's generated forward turns keyword-only c into a positional "
    "parameter before *args, so a call that works eagerly raises TypeError",
)
def graph_module_variadic(fx):
    return call_variadic(fx.symbolic_trace(VariadicSignature()))


@case("test_graph_module (re-init through __new__)")
def graph_module_reinit(fx):
    class M3(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    gm3 = fx.symbolic_trace(M3())
    new_instance = gm3.__new__(type(gm3))
    new_instance.__init__(gm3, gm3.graph)
    x = torch.randn(5, 3)
    return new_instance(x)


@case("test_args_kwargs")
def args_kwargs(fx):
    class T(torch.nn.Module):
        def forward(self, *args, **kwargs):
            return args[0] + kwargs["foo"]

    return traced_run(fx, T(), torch.rand(1), torch.rand(1), foo=torch.rand(1))


@case("test_args_kwargs_no_self", raises=True)
def args_kwargs_no_self(fx):
    class T(torch.nn.Module):
        def forward(*args, **kwargs):
            return torch.relu(args[1])

    return fx.symbolic_trace(T())


@case("test_fx_shifts")
def fx_shifts(fx):
    class MyModule(torch.nn.Module):
        def forward(self, x):
            return x << 3, x >> 3

    return traced_run(fx, MyModule(), torch.LongTensor(10).random_(0, 1024))


@case("test_fx_and_or")
def fx_and_or(fx):
    class MyModule(torch.nn.Module):
        def forward(self, x):
            return x & x, x | x

    return traced_run(fx, MyModule(), torch.LongTensor(10).random_(0, 1024))


@case("test_dict")
def dict_input(fx):
    class MyDictMod(torch.nn.Module):
        def forward(self, d):
            return d["3"].relu(), {"4": d["3"].neg()}

    return traced_run(fx, MyDictMod(), {"3": torch.rand(3, 4)})


@case("test_matmul_tracing")
def matmul_tracing(fx):
    const = torch.randn(3)

    def matmul_f(x):
        return x @ const

    def rmatmul_f(x):
        return const @ x

    inp = torch.randn(3)
    return fx.symbolic_trace(matmul_f)(inp), fx.symbolic_trace(rmatmul_f)(inp)


@case("test_disallow_override", raises=True)
def disallow_override(fx):
    class NoMutableCallTracer(fx.Tracer):
        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            name = target if isinstance(target, str) else torch.typename(target)
            if name[-1] == "_":
                raise RuntimeError("In-place operations are not supported")
            return super().create_node(kind, target, args, kwargs, name)

    class MyInplaceMod(torch.nn.Module):
        def forward(self, x):
            x.add_(3.0)
            return x

    return NoMutableCallTracer().trace(MyInplaceMod())


@case("test_disallow_override (free function)", raises=True)
def disallow_override_free_function(fx):
    class NoMutableCallTracer(fx.Tracer):
        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            name = target if isinstance(target, str) else torch.typename(target)
            if name[-1] == "_":
                raise RuntimeError("In-place operations are not supported")
            return super().create_node(kind, target, args, kwargs, name)

    class MyInplaceMod2(torch.nn.Module):
        def forward(self, x):
            torch.log_(x)
            return x

    return NoMutableCallTracer().trace(MyInplaceMod2())


@case("test_leaf_module")
def leaf_module(fx):
    class NoLeafModulesTracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return False

    class MyReluMod(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(x)

    graph = NoLeafModulesTracer().trace(MyReluMod())
    graph.lint()
    return [n.op for n in graph.nodes]


@case("test_leaf_module (a user module declared leaf)")
def user_module_leaf(fx):
    class Inner(torch.nn.Module):
        def forward(self, x):
            return x.sum() if x.dim() > 1 else x  # Python control flow: only as a leaf

    class Outer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x) + 1

    class LeafTracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return isinstance(m, Inner) or super().is_leaf_module(m, qualname)

    root = Outer()
    gm = fx.GraphModule(root, LeafTracer().trace(root))
    x = torch.randn(3, 4)
    return gm(x), ops(gm)


@case("test_wrap")
def wrap_by_name(fx):
    def to_trace(y):
        return a_lifted_leaf((4, y), 3) + a_lifted_leaf((3, 4), 5) + a_lifted_leaf((y, y), y)

    m = fx.symbolic_trace(to_trace)
    return "a_lifted_leaf" in m.code, m(2), a_lifted_leaf.__name__


@case("test_wrap_fn_directly")
def wrap_fn_directly(fx):
    def to_trace(y):
        return a_lifted_leaf2((4, y), 3) + a_lifted_leaf2((3, 4), 5) + a_lifted_leaf2((y, y), y)

    m = fx.symbolic_trace(to_trace)
    return "a_lifted_leaf2" in m.code, m(2)


@case("test_wrapped_via_decorator_and_transformed")
def wrapped_and_transformed(fx):
    def to_trace(y):
        return wrapped_via_decorator(y)

    m = fx.symbolic_trace(to_trace)
    transformed = fx.Transformer(m).transform()
    return "wrapped_via_decorator" in transformed.code, m(0), transformed(0)


@case("test_wrap_with_submodule")
def wrap_with_submodule(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.batchnorm1d = torch.nn.BatchNorm1d(2, affine=False)

        def forward(self, x):
            return wrapped_with_submodule(x, self.batchnorm1d)

    m = fx.symbolic_trace(M())
    x = torch.rand(3, 2)
    return "wrapped_with_submodule" in m.code, m(x), torch.nn.BatchNorm1d(2, affine=False)(x)


@case("test_wrapped_retrace")
def wrapped_retrace(fx):
    def to_trace(y):
        return wrapped_via_decorator(y)

    retraced = fx.symbolic_trace(fx.symbolic_trace(to_trace))
    return "wrapped_via_decorator" in retraced.code, retraced(0)


@case("test_stack_traces")
def stack_traces(fx):
    class M(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(M())
    return [
        node.stack_trace is not None and "cases_trace.py" in node.stack_trace
        for node in graph.nodes
        if node.op not in ("output", "placeholder")
    ]


@case("test_reserved_getattr")
def reserved_getattr(fx):
    class M(torch.nn.Module):
        def forward(self, a):
            return a.foo.bar.baz

    gm = fx.symbolic_trace(M())
    gm.graph.lint()
    return all(node.name != "getattr" for node in gm.graph.nodes), ops(gm)


@case("test_node_tagging")
def node_tagging(fx):
    class TaggingTracer(fx.Tracer):
        def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):
            n = super().create_node(kind, target, args, kwargs, name)
            n.tag = "foo"
            return n

    class M(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    g = TaggingTracer().trace(M())
    g.lint()
    return [getattr(n, "tag", None) for n in g.nodes]


@case("test_tensor_attribute")
def tensor_attribute(fx):
    class TensorAttribute(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tensor = torch.rand(3, 4)

        def forward(self, x):
            return torch.nn.functional.linear(x, self.tensor)

    class WrapperForQualname(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ta = TensorAttribute()

        def forward(self, x):
            return torch.nn.functional.linear(x, self.ta.tensor)

    x = torch.rand(4, 4)
    traced = fx.symbolic_trace(WrapperForQualname())
    traced.graph.lint()
    return fx.symbolic_trace(TensorAttribute())(x), traced(x), ops(traced)


@case("test_tensor_attribute_coalseced")
def tensor_attribute_coalesced(fx):
    val = torch.tensor(5)

    def f(x):
        return x + val + val

    val2 = torch.tensor(5)

    def g(x):
        local = torch.tensor(5)
        return x + local + val2

    counts = []
    for fn in (f, g):
        traced = fx.symbolic_trace(fn)
        traced.graph.lint()
        counts.append(len({n.target for n in traced.graph.nodes if n.op == "get_attr"}))
    return counts


@case("test_symbolic_trace_sequential")
def symbolic_trace_sequential(fx):
    class Simple(torch.nn.Module):
        def forward(self, x):
            return torch.neg(x)

    seq = torch.nn.Sequential(Simple(), Simple(), Simple())
    x = torch.rand(3, 4)
    return traced_run(fx, seq, x), seq(x)


@case("test_tensor_constant")
def tensor_constant(fx):
    class ConstTensor(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.linear(x, torch.zeros(3, 4))

    return traced_run(fx, ConstTensor(), torch.rand(4, 4))


@case("test_pickle_graphmodule")
def pickle_graphmodule(fx):
    class Nested(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.st = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.st(x)

    traced = fx.symbolic_trace(Nested())
    loaded = pickle.loads(pickle.dumps(traced))
    loaded.graph.lint()
    x = torch.rand(3, 4)
    return loaded(x), traced(x)


@case("test_unpack")
def unpack(fx):
    class M(torch.nn.Module):
        def forward(self, a, b):
            c, d = a
            return c + d + b

    return traced_run(fx, M(), (torch.rand(1), torch.rand(1)), torch.rand(1))


@case("test_unpack_list_better_error", raises=True)
def unpack_list_better_error(fx):
    class SomeArgs(torch.nn.Module):
        def forward(self, a, b):
            return torch.rand(3, 4)

    class UnpacksList(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sa = SomeArgs()

        def forward(self, x: list):
            return self.sa(*x)

    return fx.symbolic_trace(UnpacksList())


@case("test_unpack_dict_better_error", raises=True)
def unpack_dict_better_error(fx):
    class SomeKwargs(torch.nn.Module):
        def forward(self, x=3, y=4):
            return torch.rand(3, 4)

    class UnpacksDict(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sk = SomeKwargs()

        def forward(self, x: dict):
            return self.sk(**x)

    return fx.symbolic_trace(UnpacksDict())


@case("test_pretty_print")
def pretty_print(fx):
    printed = str(fx.symbolic_trace(SimpleTest()))
    return "SimpleTest()" in printed, "torch.relu" in printed


@case("test_autowrap_functions")
def autowrap_functions(fx):
    class AutowrapFnTest(torch.nn.Module):
        def forward(self, x):
            return fx_int(x.shape[0] / 2)

    tracer = fx.Tracer(autowrap_functions=(fx_int,))
    graph = tracer.trace(AutowrapFnTest())
    traced = fx.GraphModule(tracer.root, graph, "test")
    return traced(torch.rand(4)), type(traced).__name__, ops(traced)


@case("test_torch_fx_len")
def torch_fx_len(fx):
    class FXLenTest(torch.nn.Module):
        def forward(self, x):
            return len(x)

    class FXLenTest2(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = [3, 4, 5]

        def forward(self, x):
            return x + len(self.l)

    inp = torch.rand(3, 4)
    return fx.symbolic_trace(FXLenTest())(inp), fx.symbolic_trace(FXLenTest2())(inp)


@case("test_sqrt")
def sqrt_autowrap(fx):
    class Sqrt1(torch.nn.Module):
        def forward(self, x):
            return sqrt(x.size(0))

    class Sqrt2(torch.nn.Module):
        def forward(self, x):
            return math.sqrt(x.size(0))

    class Sqrt3(torch.nn.Module):
        def forward(self, x):
            return x + math.sqrt(2) + sqrt(2)

    x = torch.zeros(8)
    return [traced_run(fx, m(), x) for m in (Sqrt1, Sqrt2, Sqrt3)], math.sqrt is sqrt


@case("test_torch_custom_ops")
def torch_custom_ops(fx):
    class M(torch.nn.Module):
        def forward(self, a):
            b = torch.ops.aten.sigmoid(a)
            c = torch.ops.aten.cat([a, b])
            return torch.ops.aten.cat((c, c))

    m, inp = M(), torch.randn(3)
    gm = fx.symbolic_trace(m)
    loaded = pickle.loads(pickle.dumps(gm))
    return gm(inp), m(inp), loaded(inp), ops(gm)
