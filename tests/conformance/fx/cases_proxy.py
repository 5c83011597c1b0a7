"""Tracing cases about what crosses the trace boundary: custom classes and
ProxyableClassMeta, module arguments, constants, decorators, layouts and
special values; rewritten from torch's test/test_fx.py (``TestFX.test_<name>``)."""

import contextlib
import functools
import pickle

import torch

from .adapter import case, ops, traced_run


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
