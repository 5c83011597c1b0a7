"""More of torch's test/test_fx.py: Proxy and Tracer copies, tracing entry points,
node pickling and printing, Interpreter calling conventions, GraphModule copies,
serialization and submodule handling (``TestFX.test_<name>`` is each case's source)."""

from __future__ import annotations

import copy
import enum
import functools
import gc
import io
import operator
import pickle
import typing
import weakref
from collections import namedtuple

import torch

import graphlift.fx

from .adapter import case, names, ops, users


def my_decorator(f):
    @functools.wraps(f)
    def wrapper_inside_decorator(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper_inside_decorator


@my_decorator
def wrapped_decorated_fn(x):
    return x


class Pair(typing.NamedTuple):
    x: typing.Any
    y: typing.Any


def wrapped_named_tup(p1, *, p2):
    return p1.x + p2.y


def side_effect_func(x):
    print(x.shape)


# wrap() registers a module-level name with each library (both patch this module).
for _library in (torch.fx, graphlift.fx):
    _library.wrap("wrapped_decorated_fn")
    _library.wrap(wrapped_named_tup)
    _library.wrap(side_effect_func)
    _library.wrap("getattr")
    _library.has_side_effect(side_effect_func)

MyNamedTup = namedtuple("MyNamedTup", ["i", "f"])


class SimpleTest(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x + 3.0)


class Double(torch.nn.Module):
    def forward(self, x):
        return 2 * x


class Add(torch.nn.Module):
    def forward(self, x):
        return x + x


@case("test_varargs_concrete")
def varargs_concrete(fx):
    class T(torch.nn.Module):
        def forward(self, *args, **kwargs):
            return args[0] + args[1]

    args = (torch.rand(1), torch.rand(1))
    gm = fx.symbolic_trace(T(), concrete_args=(fx.PH, fx.PH))
    gm.graph.lint()
    return gm(*args), T()(*args)


@case("test_wrap_decorated_function")
def wrap_decorated_function(fx):
    def to_trace(y):
        return wrapped_decorated_fn(y)

    m = fx.symbolic_trace(to_trace)
    return "wrapped_decorated_fn" in m.code, m(1), ops(m)


@case("test_proxy_deepcopy_without_tracer")
def proxy_deepcopy_without_tracer(fx):
    traced = fx.symbolic_trace(Double())
    node = list(traced.graph.nodes)[-2]
    p = fx.Proxy(node, None)
    node.proxy = p
    p2 = copy.deepcopy(p)
    return isinstance(p2, fx.Proxy), p2.node.name, p2.node.target == node.target, p2.node is node


@case("test_proxy_deepcopy_with_tracer")
def proxy_deepcopy_with_tracer(fx):
    class TestTracer(fx.Tracer):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def is_leaf_module(self, module, name):
            return True

    tracer = TestTracer("mytracer")
    node = list(fx.symbolic_trace(Double()).graph.nodes)[-2]
    p = fx.Proxy(node, tracer)
    node.proxy = p
    p2 = copy.deepcopy(p)
    return (
        isinstance(p2.tracer, fx.Tracer), p2.tracer.name, p2.node.name,
        p2.node is node, p2.tracer is tracer,
    )  # fmt: skip


class ThreeForwards(torch.nn.Module):
    def forward(self, x, y):
        return x + y

    def minus_forward(self, x, y):
        return x - y

    def multiply_forward(self, x, y):
        return x * y


@case("test_trace_multiple_funcs")
def trace_multiple_funcs(fx):
    f = ThreeForwards()
    x, y = torch.randn(5), torch.randn(5)
    tracer = fx.Tracer()
    results = [fx.GraphModule(f, tracer.trace(f))(x, y)]
    for name in ("minus_forward", "multiply_forward"):
        tracer.traced_func_name = name
        results.append(fx.GraphModule(f, tracer.trace(f))(x, y))
    return results, [f(x, y), f.minus_forward(x, y), f.multiply_forward(x, y)]


@case("test_trace_multiple_funcs (a method the module lacks)", raises=True)
def trace_missing_func(fx):
    tracer = fx.Tracer()
    tracer.traced_func_name = "add_forward"
    return tracer.trace(ThreeForwards())


@case("test_stack_traces_with_transformer")
def stack_traces_with_transformer(fx):
    class M(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    tracer = fx.Tracer()
    tracer.record_stack_traces = True
    graph = tracer.trace(M())
    gm = fx.GraphModule(tracer.root, graph)
    new_gm = fx.Transformer(gm).transform()
    kept = [
        node.stack_trace is not None and "cases_api.py" in node.stack_trace
        for node in new_gm.graph.nodes
        if node.op not in ("placeholder", "output")
    ]
    return kept


@case("test_node_pickle_type_preservation")
def node_pickle_type_preservation(fx):
    g = fx.Graph()
    n = g.placeholder("x")
    n.type = torch.Tensor
    restored = pickle.loads(pickle.dumps(n))
    restored_graph = pickle.loads(pickle.dumps(g))
    return restored.type is torch.Tensor, next(iter(restored_graph.nodes)).type is torch.Tensor


@case("test_pretty_print_node")
def pretty_print_node(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.param = torch.nn.Parameter(torch.rand(3, 4))
            self.linear = torch.nn.Linear(4, 5)

        def forward(self, x: torch.Tensor, y: int = 2):
            return self.linear(x[y] + self.param).clamp(min=0.0, max=1.0)

    traced = fx.symbolic_trace(M())
    return [
        (node.name in node.format_node(), node.op in node.format_node())
        for node in traced.graph.nodes
        if node.op != "output"
    ]


@case("test_print_readable_no_trailing_whitespace_with_inner_graph")
def print_readable_without_trailing_whitespace(fx):
    outer = torch.nn.Module()
    outer.subgraph_0 = fx.symbolic_trace(Add())
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(torch.mul, (graph.call_module("subgraph_0", (x,)), 2)))
    outer_gm = fx.GraphModule(outer, graph)
    text = outer_gm.print_readable(print_output=False)
    return all(line == line.rstrip() for line in text.split("\n")), outer_gm(torch.ones(2))


@case("test_tuple_no_subscript")
def tuple_no_subscript(fx):
    def foo(x):
        return x[0]

    foo.__annotations__ = {
        "x": tuple
    }  # the class itself, not the text this module's annotations are
    traced = fx.symbolic_trace(foo)
    x = (torch.randn(5, 3),)
    buffer = io.BytesIO()
    torch.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    return traced(x), loaded(x), x[0]


@case("test_torch_fx_getattr")
def torch_fx_getattr(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return getattr(x, "nonexistent_attr", torch.Tensor([2, 3]))

    return fx.symbolic_trace(M())(torch.rand(3, 4))


@case("test_torch_op_overloads")
def torch_op_overloads(fx):
    class M(torch.nn.Module):
        def forward(self, a):
            return torch.ops.aten.add.Tensor(a, a)

    gm = fx.symbolic_trace(M())
    gm.graph.lint()
    x = torch.randn(3)
    targets = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"]
    return gm(x), x + x, targets


@case("test_pickle_torch_custom_ops")
def pickle_torch_custom_ops(fx):
    class M(torch.nn.Module):
        def forward(self, a):
            b = torch.ops.aten.sigmoid(a)
            c = torch.ops.aten.cat([a, b])
            return torch.ops.aten.cat((c, c))

    gm = fx.symbolic_trace(M())
    x = torch.randn(3)
    return pickle.loads(pickle.dumps(gm))(x), gm(x), M()(x)


@case("test_prepend_does_not_leak")
def prepend_does_not_leak(fx):
    g = fx.Graph()
    x = g.placeholder("x")
    relu = g.call_function(torch.relu, (x,))
    neg = g.call_function(torch.neg, (x,))
    relu.prepend(neg)
    ref = weakref.ref(neg)
    g.erase_node(neg)
    del g, x, relu, neg
    gc.collect()
    return ref() is None


@case("test_remove_uses_with_custom_filter")
def remove_uses_with_custom_filter(fx):
    g = fx.Graph()
    x = g.placeholder("x")
    relu = g.call_function(torch.relu, (x,))
    neg = g.call_function(torch.neg, (relu,))
    g.output(neg)
    neg.replace_all_uses_with(relu, lambda user: user != neg)
    return neg in relu.users, users(relu)


@case("test_pickle_nonetype_annotation")
def pickle_nonetype_annotation(fx):
    traced = fx.symbolic_trace(torch.nn.EmbeddingBag(10, 3, mode="sum"))
    loaded = pickle.loads(pickle.dumps(traced))
    loaded.graph.lint()
    indices, offsets = torch.LongTensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.LongTensor([0, 4])
    return loaded(indices, offsets), traced(indices, offsets)


@case("test_transformer_preserves_nn_module_stack_for_get_attr")
def transformer_preserves_get_attr_meta(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1, 1))

        def forward(self, x):
            return self.weight + x

    tracer = fx.Tracer()
    graph = tracer.trace(M())
    gm = fx.GraphModule(tracer.root, graph)
    for node in gm.graph.find_nodes(op="get_attr"):
        node.meta["nn_module_stack"] = "self"
        node.meta["stack_trace"] = "stack_trace"
        node.meta["source_fn_stack"] = "source_fn_stack"
    new_gm = fx.Transformer(gm).transform()
    return [
        (n.meta["nn_module_stack"], n.meta["stack_trace"], n.meta["source_fn_stack"])
        for n in new_gm.graph.find_nodes(op="get_attr")
    ]


@case("test_fn_type_annotations")
def fn_type_annotations(fx):
    class Foo(torch.nn.Module):
        def forward(self, p: Pair, z: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
            return {"a": p.x + p.y + z + i}

    p, z = Pair(torch.rand(5), torch.rand(5)), torch.rand(5)
    return fx.symbolic_trace(Foo())(p, z, 3), Foo()(p, z, 3)


@case("test_fn_type_annotation_empty")
def fn_type_annotation_empty(fx):
    def forward(a: list[torch.Tensor]):
        return a[0]

    a = [torch.rand(2), torch.rand(3)]
    return fx.symbolic_trace(forward)(a), a[0]


@case("test_typename_print_union")
def typename_print_union(fx):
    graph = fx.Graph()
    x = graph.create_node("placeholder", "x")
    relu = graph.create_node(
        "call_function", target=torch.relu, args=(x,), type_expr=float | torch.Tensor | None
    )
    graph.output(relu)
    return "float | torch.Tensor | None" in str(graph)


@case("test_trace_function")
def trace_function(fx):
    def foo(x, y):
        return torch.relu(x) + y

    x, y = torch.randn(3, 4), torch.randn(3, 4)
    gm = fx.symbolic_trace(foo)
    gm.graph.lint()
    return gm(x, y), foo(x, y), ops(gm)


@case("test_update_args_kwargs_yells_at_you", raises=True)
def update_args_kwargs_is_private(fx):
    node = next(iter(fx.symbolic_trace(SimpleTest()).graph.nodes))
    node.__update_args_kwargs((), {})


@case("test_named_tuple_inlined")
def named_tuple_inlined(fx):
    class M(torch.nn.Module):
        def forward(self, inp):
            return wrapped_named_tup(Pair(inp, 1.2), p2=Pair(3.4, inp))

    m, x = M(), torch.rand(3, 4)
    traced = fx.symbolic_trace(m)
    first = traced(x)
    placeholder = traced.graph.find_nodes(op="placeholder")[0]
    call = traced.graph.find_nodes(op="call_function", target=wrapped_named_tup)[0]
    call.update_arg(0, Pair(placeholder, 1.2))
    call.update_kwarg("p2", Pair(3.4, placeholder))
    traced.graph.eliminate_dead_code()
    traced.recompile()
    kinds = type(call.args[0]).__name__, type(call.kwargs["p2"]).__name__
    return first, traced(x), m(x), kinds, users(placeholder)


@case("test_metadata_on_ph")
def metadata_on_ph(fx):
    class PHWithMeta(fx.PHBase):
        def __init__(self, ph_key):
            super().__init__()
            self.ph_key = ph_key

    def f_sum(a: int, b: int) -> int:
        return a + b

    def f_dict(a: dict[str, str]) -> bool:
        return a["f1"] == a["f2"]

    gm = fx.symbolic_trace(f_sum, concrete_args={"a": PHWithMeta("a"), "b": PHWithMeta("b")})
    structured = {"a": {"f1": PHWithMeta("f1"), "f2": PHWithMeta("f2")}}
    gm2 = fx.symbolic_trace(f_dict, concrete_args=structured)
    keys = [n.ph_key for g in (gm, gm2) for n in g.graph.find_nodes(op="placeholder")]
    return keys, [n.name for g in (gm, gm2) for n in g.graph.find_nodes(op="placeholder")]


def imul_graph_meaning():
    """The graph run node by node: ``imul(a, b)`` returns a new int; ``a`` stays 2."""
    a, b = 2, 3
    operator.imul(a, b)
    x = torch.ones(2)
    operator.imul(x, torch.full((2,), 3.0))  # a tensor is updated in place
    return a, a, x


@case(
    "test_imul_code_print",
    eager=imul_graph_meaning,
    why="torch.fx prints imul as `a *= b`, which rebinds an immutable `a`: its code "
    "returns 6 where its own Interpreter returns 2",
)
def imul_code_print(fx):
    graph = fx.Graph()
    a, b = graph.placeholder("a"), graph.placeholder("b")
    graph.call_function(operator.imul, (a, b), {})
    graph.output(a)
    gm = fx.GraphModule({}, graph)
    gm.recompile()
    x = torch.ones(2)
    gm(x, torch.full((2,), 3.0))
    return gm(2, 3), fx.Interpreter(gm).run(2, 3), x


@case("test_deepcopy_tracer")
def deepcopy_tracer(fx):
    def fn(x, y):
        return (x + y).relu().sin()

    tracer = fx.Tracer()
    copy.deepcopy(tracer)  # before tracing
    tracer.trace(fn)
    after = copy.deepcopy(tracer)
    return str(tracer.graph) == str(after.graph), names(after.graph)


class Letter(enum.Enum):
    A = 1
    B = 2


@case("test_enum")
def enum_argument(fx):
    def leaf_fn(arr, enum_val):
        arr.append(enum_val)
        return arr[-1].value

    def foo(x):
        return leaf_fn(x, Letter.A)

    return fx.symbolic_trace(foo)([]), foo([])


@case("test_adding_side_effect_function")
def adding_side_effect_function(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            side_effect_func(x)
            return x

    gm = fx.symbolic_trace(M())
    before = len(gm.graph.nodes)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return before, len(gm.graph.nodes), ops(gm)


@case("test_annotations_with_non_torch_reference_and_no_internal_forward_references")
def annotations_non_torch_reference(fx):
    class A:
        def __call__(self, x: torch.Tensor):
            return torch.add(x, x)

    class M(torch.nn.Module):
        def forward(self, x: list[torch.Tensor], a: A) -> torch.Tensor:
            return a(x[0])

    x = [torch.rand(2, 3)]
    gm = fx.symbolic_trace(M())
    gm.graph.lint()
    return gm(x, A()), M()(x, A())


@case("test_script_method_trace")
def script_method_trace(fx):
    class Scripted(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.s = torch.jit.script(Scripted())

        def forward(self, x):
            return self.s(x)

    h = Holder()
    traced = fx.symbolic_trace(h)
    x = torch.randn(3, 4)
    # torch.fx calls the compiled module's forward method, graphlift the module: both stay whole
    traced_through = any(node.op == "call_function" for node in traced.graph.nodes)
    return traced(x), h(x), traced_through
