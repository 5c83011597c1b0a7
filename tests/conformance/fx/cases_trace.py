"""Tracing cases (Tracer, Proxy, symbolic_trace, concrete_args, wrap),
rewritten from torch's test/test_fx.py (``TestFX.test_<name>``)."""

import contextlib
import functools
import math
import pickle
from collections import namedtuple
from math import sqrt
from typing import List, NamedTuple  # noqa: UP035 (annotations as torch's tests write them)

import torch
import torch.fx
import torch.utils._pytree as pytree

import graphlift.fx

from .adapter import Raised, case, ops


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


def traced_run(fx, module, *args, **kwargs):
    """checkGraphModule: trace, lint, run; returns (result, ops)."""
    gm = fx.symbolic_trace(module)
    gm.graph.lint()
    return gm(*args, **kwargs), ops(gm)


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


def tensor_pair_class(metaclass=type):
    class TensorPair(metaclass=metaclass):
        def __init__(self, left, right):
            self.left, self.right = left, right

        def add(self, other):
            return TensorPair(self.left + other.left, self.right + other.right)

        def mul(self, other):
            return TensorPair(self.left * other.left, self.right * other.right)

    return TensorPair


@case("test_custom_proxy_type")
def custom_proxy_type(fx):
    TensorPair = tensor_pair_class()

    def use_tensor_pair(x: TensorPair, y: TensorPair):
        return x.add(y).mul(x)

    x = TensorPair(torch.randn(5, 3), torch.randn(5, 3))
    y = TensorPair(torch.randn(5, 3), torch.randn(5, 3))
    out = fx.symbolic_trace(use_tensor_pair)(x, y)
    return out.left, out.right


@case("test_custom_proxy_type_literal")
def custom_proxy_type_literal(fx):
    TensorPair = tensor_pair_class(fx.ProxyableClassMeta)

    def use_tensor_pair_literal(x: TensorPair):
        return x.add(TensorPair(torch.zeros(5, 3), torch.zeros(5, 3))).mul(x)

    x = TensorPair(torch.randn(5, 3), torch.randn(5, 3))
    out, ref = fx.symbolic_trace(use_tensor_pair_literal)(x), use_tensor_pair_literal(x)
    return out.left, out.right, ref.left, ref.right


@case("test_custom_proxy_dynamic_value")
def custom_proxy_dynamic_value(fx):
    TensorPair = tensor_pair_class(fx.ProxyableClassMeta)

    def use_tensor_pair_ctor(x: TensorPair, y: torch.Tensor):
        return x.add(TensorPair(y, y)).mul(x)

    x, y = TensorPair(torch.randn(5, 3), torch.randn(5, 3)), torch.randn(5, 3)
    traced = fx.symbolic_trace(use_tensor_pair_ctor)
    out = traced(x, y)
    return out.left, out.right, [op for op, _ in ops(traced)]


@case("test_custom_proxy_input_dependent_control_flow")
def custom_proxy_input_dependent_control_flow(fx):
    class ZeroTensor(metaclass=fx.ProxyableClassMeta):
        def __init__(self, inp):
            if inp.sum() == 0:
                self.is_zero, self.tensor = True, torch.tensor([])
            else:
                self.is_zero, self.tensor = False, inp

    def use_zero_tensor(x: torch.Tensor, y: torch.Tensor):
        return ZeroTensor(x + y)

    x, y = torch.randn(5, 3), torch.randn(5, 3)
    out = fx.symbolic_trace(use_zero_tensor)(x, y)
    return out.is_zero, out.tensor


@case("test_nonetype_annotation")
def nonetype_annotation(fx):
    eb = torch.nn.EmbeddingBag(10, 3, mode="sum")
    traced = fx.symbolic_trace(eb)
    loaded = pickle.loads(pickle.dumps(traced))
    loaded.graph.lint()
    inp, offsets = torch.LongTensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.LongTensor([0, 4])
    return loaded(inp, offsets), eb(inp, offsets)


@case("test_return_tuple")
def return_tuple(fx):
    class M(torch.nn.Module):
        def forward(self, x: torch.Tensor):
            return (x, x + x)

    return traced_run(fx, M(), torch.ones(1))


@case("test_symbolic_trace_assert", raises=True)
def symbolic_trace_assert(fx):
    class AssertsTensorShape(torch.nn.Module):
        def forward(self, x):
            torch._assert(x.shape[1] > 4, "assert_foobar")
            return x

    traced = fx.symbolic_trace(AssertsTensorShape())
    traced(torch.rand(4, 5))
    return traced(torch.rand(4, 3))


@case("test_fx_create_arg")
def fx_create_arg(fx):
    class CustomArgObject:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __fx_create_arg__(self, tracer):
            return tracer.create_node(
                "call_function", CustomArgObject,
                args=(tracer.create_arg(self.x), tracer.create_arg(self.y)), kwargs={},
            )  # fmt: skip

    class HasCustomArgObjectWhenLeaf(torch.nn.Module):
        def forward(self, o: CustomArgObject):
            for x in o.x:
                o.y += x
            return o.y

    class Root(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = HasCustomArgObjectWhenLeaf()

        def forward(self, x, y):
            return self.inner(CustomArgObject(x, y))

    class CreateArgTracer(fx.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            return type(m) is HasCustomArgObjectWhenLeaf

    m = Root()
    gm = fx.GraphModule(m, CreateArgTracer().trace(m))
    x, y = torch.randn(3, 2), torch.randn(2)
    return "CustomArgObject(" in gm.code, gm(x, y)


@case("test_trace_fn_constant")
def trace_fn_constant(fx):
    some_constant = torch.rand(3, 4)

    def add_const(x):
        return some_constant + x

    inp = torch.rand(3, 4)
    return fx.symbolic_trace(add_const)(inp), add_const(inp)


@case("test_wrapped_method")
def wrapped_method(fx):
    def wrap_with_relu(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return torch.relu(fn(*args, **kwargs))

        return wrapper

    class Foo(torch.nn.Module):
        @wrap_with_relu
        def forward(self, x, w):
            return torch.matmul(x, w)

    traced = fx.symbolic_trace(Foo())
    x, w = torch.rand(3, 4), torch.rand(4, 4)
    return any(n.target == torch.relu for n in traced.graph.nodes), traced(x, w)


@case("test_ctx_mgr")
def ctx_mgr(fx):
    @contextlib.contextmanager
    def do_nothing():
        yield

    class M(torch.nn.Module):
        @do_nothing()
        def forward(self, x):
            return torch.relu(x)

    return traced_run(fx, M(), torch.rand(3, 4))


@case("test_layout")
def layout(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.empty_like(x, layout=torch.strided, pin_memory=False).fill_(0)

    return traced_run(fx, M(), torch.rand(5, 9, 3, 4))


@case("test_ellipsis")
def ellipsis(fx):
    class M(torch.nn.Module):
        def forward(self, x, y):
            return x + y[:, 1:10, ...]

    return traced_run(fx, M(), torch.rand(5, 9, 3, 4), torch.rand(5, 15, 3, 4))


@case("test_inf_nan")
def inf_nan(fx):
    class FooMod(torch.nn.Module):
        def forward(self, x):
            return x + float("inf"), x + float("-inf"), x + float("nan")

    return traced_run(fx, FooMod(), torch.rand(3, 4))


@case("test_trace_dict_int_keys")
def trace_dict_int_keys(fx):
    class ModWithDictArg(torch.nn.Module):
        def forward(self, d: dict[int, torch.Tensor]):
            return d[42]

    class CallsModWithDict(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = ModWithDictArg()

        def forward(self, x):
            return self.m({42: x})

    class MyTracer(fx.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            return isinstance(m, ModWithDictArg)

    root = CallsModWithDict()
    gm = fx.GraphModule(root, MyTracer().trace(root))
    x = torch.randn(2)
    return gm(x), ops(gm)


@case("test_trace_dict_proxy_keys", raises=True)
def trace_dict_proxy_keys(fx):
    class ModWithDictArg(torch.nn.Module):
        def forward(self, d):
            return d[42]

    class CallsModWithDict(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = ModWithDictArg()

        def forward(self, x):
            return self.m({x: x})

    class MyTracer(fx.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            return isinstance(m, ModWithDictArg)

    return MyTracer().trace(CallsModWithDict())


@case("test_direct_param_use")
def direct_param_use(fx):
    class TransposeTest(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.rand(4, 3))

        def forward(self, x):
            return self.b

    class Foo(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = TransposeTest()

        def forward(self, x):
            return self.a.b, self.a.b.t(), self.a.b.view(12)

    traced = fx.symbolic_trace(Foo())
    return all("constant" not in str(node.target) for node in traced.graph.nodes), ops(traced)


@case("test_single_default_arg")
def single_default_arg(fx):
    class M(torch.nn.Module):
        def forward(self, y=1):
            return y

    gm = fx.symbolic_trace(M())
    return gm(), gm(3)


@case("test_multiple_default_args")
def multiple_default_args(fx):
    class M(torch.nn.Module):
        def forward(self, y=1, z=2):
            return y + z

    gm = fx.symbolic_trace(M())
    return gm(), gm(3), gm(3, 4)


@case("test_regular_and_default_args")
def regular_and_default_args(fx):
    class M(torch.nn.Module):
        def forward(self, x, y=1):
            return x + y

    gm = fx.symbolic_trace(M())
    return gm(2), gm(2, 3)


@case("test_string_literal_return")
def string_literal_return(fx):
    class M(torch.nn.Module):
        def forward(self):
            return "foo"

    return fx.symbolic_trace(M())()


@case("test_namedtuple_return_trace")
def namedtuple_return_trace(fx):
    class NamedTupReturn(torch.nn.Module):
        def forward(self, x):
            return Pair(x, x)

    inp = torch.rand(3, 4)
    out = fx.symbolic_trace(NamedTupReturn())(inp)
    return out, type(out) is Pair


@case("test_snake_case")
def snake_case(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.activations = torch.nn.ModuleDict(
                [["snake_case", torch.nn.ReLU()], ["PascalCase", torch.nn.LeakyReLU()],
                 ["ALL_CAPS", torch.nn.PReLU()]]
            )  # fmt: skip

        def forward(self, x):
            a = self.activations["snake_case"](x)
            b = self.activations["PascalCase"](x)
            c = self.activations["ALL_CAPS"](x)
            return a, b, c

    traced = fx.symbolic_trace(M())
    return [(n.name, n.target) for n in traced.graph.nodes if n.op == "call_module"]


@case("test_partial_trace")
def partial_trace(fx):
    class Foo(torch.nn.Module):
        def forward(self, x, y):
            return 2 * x if y else x

    mod_true = fx.symbolic_trace(Foo(), concrete_args={"y": True})
    mod_false = fx.symbolic_trace(Foo(), concrete_args={"y": False})
    has_assert = any(n.target == torch._assert for n in mod_true.graph.nodes)
    return mod_true(3, True), mod_false(3, False), has_assert


@case("test_partial_trace (a specialized input gets another value)", raises=True)
def partial_trace_mismatch(fx):
    class Foo(torch.nn.Module):
        def forward(self, x, y):
            return 2 * x if y else x

    return fx.symbolic_trace(Foo(), concrete_args={"y": True})(3, False)


@case("test_partial_trace (higher-order concrete arg)")
def partial_trace_higher_order(fx):
    def f_higher(a, f):
        return f(a)

    nf = fx.symbolic_trace(f_higher, concrete_args={"f": lambda x: x * 2})
    return nf(3, lambda x: x * 2)


class Doubler:
    def __call__(self, x: torch.Tensor):
        return torch.add(x, x)


class PlainAnnotations(torch.nn.Module):
    def forward(self, x: torch.Tensor, a: Doubler) -> torch.Tensor:
        return a(x)


class ForwardReferences(torch.nn.Module):
    def forward(self, x: "torch.Tensor", a: "Doubler") -> "torch.Tensor":
        return a(x)


class InternalForwardReferences(torch.nn.Module):
    def forward(self, x: List["torch.Tensor"], a: Doubler) -> "torch.Tensor":  # noqa: UP006
        return a(x)[0]


@case("test_annotations_with_no_forward_references")
def annotations_no_forward_references(fx):
    return fx.symbolic_trace(PlainAnnotations())(torch.rand(2, 3), Doubler())


@case("test_annotations_with_forward_references")
def annotations_forward_references(fx):
    gm = fx.symbolic_trace(ForwardReferences())
    return gm(torch.rand(2, 3), Doubler()), [str(n.type) for n in gm.graph.nodes]


@case("test_annotations_with_non_torch_reference_and_internal_forward_references")
def annotations_internal_forward_references(fx):
    return fx.symbolic_trace(InternalForwardReferences())(torch.rand(2, 3), Doubler())


def f_sum(x):
    return sum(x)


def f_sum_dict(x):
    out = 0
    for _, v in x.items():
        out += v
    return out


def f_dict_list_map(x):
    return {k: [i + 1 for i in v] for k, v in x.items()}


def f_dict_add(x):
    return x["a"] + sum(x["z"])


def f_namedtuple_add(x):
    return x.x + x.y


def f_custom(x):
    return x.a + x.b


def f_custom_dict(x):
    return f_sum_dict(x.a) + x.b


def pytree_case(fn, make_structure):
    """test_pytree: PH leaves become placeholders; the traced function, its
    retrace and a retrace with the same concrete_args all compute ``fn``."""

    def run(fx):
        structure = make_structure(fx.PH)
        leaves = pytree.tree_leaves(structure, is_leaf=lambda v: v is fx.PH)
        value = pytree.tree_map(
            lambda v: torch.randn(3) if v is fx.PH else v, structure,
            is_leaf=lambda v: v is fx.PH,
        )  # fmt: skip
        nf = fx.symbolic_trace(fn, concrete_args={"x": structure})
        placeholders = sum(n.op == "placeholder" for n in nf.graph.nodes)
        retraced = fx.symbolic_trace(nf)
        again = fx.symbolic_trace(retraced, concrete_args={"x": structure})
        return (nf(value), retraced(value), again(value), fn(value),
                placeholders == len(leaves) or not leaves)  # fmt: skip

    return run


PYTREE_CASES = {
    "sum_list": (f_sum, lambda PH: [PH, PH, PH]),
    "sum_dict": (f_sum_dict, lambda PH: {"a": PH, "b": PH, "c": PH}),
    "dict_list_map": (f_dict_list_map, lambda PH: {"a": (PH, PH), "b": [PH], "c": []}),
    "dict_int_keys": (f_dict_list_map, lambda PH: {5: (PH, PH, PH)}),
    "dict_add": (f_dict_add, lambda PH: {"a": PH, "z": (PH, PH, PH)}),
    "dict_add_empty": (f_dict_add, lambda PH: {"a": PH, "z": []}),
    "custom": (f_custom, lambda PH: Foo(PH, PH)),
    "custom_constant_leaf": (f_custom, lambda PH: Foo(PH, 3)),
    "custom_dict": (f_custom_dict, lambda PH: Foo({"a": PH, "b": PH}, PH)),
    "namedtuple": (f_namedtuple_add, lambda PH: Point(PH, PH)),
}
for _name, (_fn, _make) in PYTREE_CASES.items():
    case(f"test_pytree ({_name})", name=f"pytree_{_name}")(pytree_case(_fn, _make))


@case("test_pytree_concrete")
def pytree_concrete(fx):
    def f(b, a):
        return a["a"] if b else a["z"]

    inp = {"a": {"a": fx.PH, "z": fx.PH}, "b": True}
    nf = fx.symbolic_trace(f, concrete_args=inp)
    val = {"a": {"a": torch.randn(3), "z": torch.randn(3)}, "b": True}
    return nf(**val), fx.symbolic_trace(nf)(**val), f(**val)


@case("test_pytree (a structure without a traced key is refused)", raises=True)
def pytree_missing_key(fx):
    nf = fx.symbolic_trace(f_sum_dict, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    return nf({"a": torch.ones(1), "c": torch.ones(1)})


@case(
    "test_pytree (a structure with an extra key)",
    eager=lambda: Raised(ValueError, "refused"),
    why="torch.fx's tree_flatten_spec reads the traced keys and ignores the rest: "
    "summing {a, b, c} traced with {a, b} silently returns a + b",
)
def pytree_extra_key(fx):
    nf = fx.symbolic_trace(f_sum_dict, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    return nf({"a": torch.ones(1), "b": torch.ones(1), "c": torch.ones(1)})


@case("test_pytree (a list with fewer items)", raises=True)
def pytree_fewer_items(fx):
    nf = fx.symbolic_trace(f_sum, concrete_args={"x": [fx.PH, fx.PH]})
    return nf([torch.ones(1)])


@case(
    "test_pytree (a list with more items)",
    eager=lambda: Raised(ValueError, "refused"),
    why="torch.fx reads the traced number of items and ignores the rest: "
    "sum([a, b, c]) traced with two items silently returns a + b",
)
def pytree_more_items(fx):
    nf = fx.symbolic_trace(f_sum, concrete_args={"x": [fx.PH, fx.PH]})
    return nf([torch.ones(1), torch.ones(1), torch.ones(1)])


def scale_by_weight(x):
    return x["a"] * x["w"]


@case(
    "test_pytree (a tensor leaf that is not PH)",
    eager=lambda: Raised(ValueError, "refused"),
    why="torch.fx bakes the traced tensor in with a warning: later calls with "
    "another tensor silently compute with the old one",
)
def pytree_tensor_leaf(fx):
    structure = {"a": fx.PH, "w": torch.ones(2)}
    nf = fx.symbolic_trace(scale_by_weight, concrete_args={"x": structure})
    return nf({"a": torch.ones(2), "w": torch.zeros(2)})


@case("test_tensor_constant (custom tracer, GraphModule(tracer.root, graph))")
def custom_tracer_constant(fx):
    class ConstTensor(torch.nn.Module):
        def forward(self, x):
            return x + torch.arange(4.0)

    root = ConstTensor()
    tracer = fx.Tracer()
    graph = tracer.trace(root)
    gm = fx.GraphModule(tracer.root, graph)
    x = torch.randn(4)
    return gm(x), root(x), ops(gm)


@case("test_concrete_arg_none_assert", raises=True)
def concrete_arg_none_assert(fx):
    class Foo(torch.nn.Module):
        def forward(self, x, val=None):
            return x if val is None else x + val

    f = Foo()
    traced = fx.symbolic_trace(f, concrete_args={"val": None})
    x = torch.randn(5)
    return traced(x, None), traced(x, torch.randn(5))


@case("test_ph_subclass_metadata")
def ph_subclass_metadata(fx):
    class PHWithMeta(fx.PHBase):
        def __init__(self, ph_key=None):
            super().__init__()
            self.ph_key = ph_key

    def f(a, b):
        return a + b

    traced = fx.symbolic_trace(f, concrete_args={"a": PHWithMeta(ph_key="a"), "b": PHWithMeta("b")})
    keys = [getattr(n, "ph_key", None) for n in traced.graph.nodes if n.op == "placeholder"]
    return keys, traced(torch.ones(2), torch.ones(2))


@case("test_proxy_iteration (for loop over a traced value)", raises=True)
def proxy_iteration(fx):
    def f(x):
        return [t + 1 for t in x]

    return fx.symbolic_trace(f)


@case("test_proxy_control_flow", raises=True)
def proxy_control_flow(fx):
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    return fx.symbolic_trace(f)


@case("test_proxy_repr_and_graph_membership")
def proxy_in_graph(fx):
    graph = fx.Graph()
    x = fx.Proxy(graph.placeholder("x"))
    y = (x * 2).sum(dim=0, keepdim=True)
    graph.output(y.node)
    return y.node.graph is graph, ops(graph)
