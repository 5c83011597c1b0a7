"""The behaviours issue #17 lists, each as a case on both libraries: editing
through proxies outside a tracer, argument setters, PH structures, signatures,
copying and inlining graphs, GraphModule construction, printing. Cases whose
source is a torch test name rewrite that test; the others follow the
documented torch.fx API."""

import inspect
import operator
from collections import namedtuple

import torch

from .adapter import Raised, case, names, ops, users

Span = namedtuple("Span", ["start", "end"])


def two_input_graph(fx):
    graph = fx.Graph()
    x, y = graph.placeholder("x"), graph.placeholder("y")
    return graph, x, y


@case("Proxy(node) under inserting_after")
def proxy_inserting_after(fx):
    graph, x, y = two_input_graph(fx)
    out = graph.call_function(operator.mul, (x, y))
    graph.output(out)
    with graph.inserting_after(x):
        doubled = fx.Proxy(x) * 2
    out.update_arg(0, doubled.node)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return names(graph), gm(torch.ones(2), torch.full((2,), 3.0))


@case("Proxy(node): methods, torch functions and indexing record nodes")
def proxy_methods_and_indexing(fx):
    graph = fx.Graph()
    x = fx.Proxy(graph.placeholder("x"))
    y = torch.cat([x.softmax(dim=-1), x[:, :1]], dim=1).transpose(0, 1)
    graph.output(y.node)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    t = torch.randn(2, 3)
    return gm(t), ops(gm)


@case("Proxy(node): extending a copied graph (test_graph_edit_with_proxy, traced module)")
def extend_copied_graph(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.linear(x).relu()

    m = M()
    gm = fx.symbolic_trace(m)
    new_graph = fx.Graph()
    result = fx.Proxy(new_graph.graph_copy(gm.graph, {}))
    new_graph.output((result.sum(dim=0) + 1).node)
    extended = fx.GraphModule(gm, new_graph)
    extended.graph.lint()
    x = torch.randn(4, 3)
    return extended(x), m(x).sum(dim=0) + 1, ops(extended)


@case(
    "Proxy(node): two proxies of one graph combine in a torch function",
    eager=lambda: [
        ("placeholder", "x"),
        ("placeholder", "y"),
        ("call_function", torch.add),
        ("output", "output"),
    ],
    why="torch.fx gives each Proxy(node) its own GraphAppendingTracer and refuses "
    "to combine them (RuntimeError), though both record into the same graph",
)
def proxies_of_one_graph_combine(fx):
    graph, x, y = two_input_graph(fx)
    result = torch.add(fx.Proxy(x), fx.Proxy(y))
    graph.output(result.node)
    return ops(graph)


@case("node.kwargs setter keeps users")
def kwargs_setter(fx):
    graph, x, y = two_input_graph(fx)
    out = graph.call_function(torch.add, (x,), {"other": x})
    graph.output(out)
    out.kwargs = {"other": y, "alpha": 2}
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return users(x), users(y), gm(torch.ones(1), torch.ones(1))


@case("node.args setter with nested containers keeps users")
def args_setter_nested(fx):
    graph, x, y = two_input_graph(fx)
    out = graph.call_function(torch.cat, ([x, x],))
    graph.output(out)
    out.args = ([x, y, y], 0)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return users(x), users(y), out.all_input_nodes == [x, y], gm(torch.ones(1), torch.zeros(1))


@case("update_arg on the output node")
def update_arg_output(fx):
    graph, x, y = two_input_graph(fx)
    graph.output(x)
    output = next(reversed(graph.nodes))
    output.update_arg(0, (y, x))
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return users(x), users(y), gm(torch.ones(1), torch.zeros(1))


@case("concrete_args with PH: namedtuple leaves")
def ph_namedtuple(fx):
    def f(span):
        return span.end - span.start

    gm = fx.symbolic_trace(f, concrete_args={"span": Span(fx.PH, fx.PH)})
    value = Span(torch.ones(2), torch.full((2,), 5.0))
    placeholders = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    return placeholders, gm(value), list(inspect.signature(gm.forward).parameters)


@case("concrete_args with PH: a constant inside the structure is checked", raises=True)
def ph_constant_leaf_checked(fx):
    def f(x):
        return x[0] * x[1]

    gm = fx.symbolic_trace(f, concrete_args={"x": [fx.PH, 3]})
    return gm([torch.ones(2), 3]), gm([torch.ones(2), 4])


@case("concrete_args with PH: nested dict with a concrete bool")
def ph_nested_bool(fx):
    def f(cfg):
        return cfg["x"] * 2 if cfg["flags"]["double"] else cfg["x"]

    gm = fx.symbolic_trace(f, concrete_args={"cfg": {"x": fx.PH, "flags": {"double": True}}})
    value = {"x": torch.ones(2), "flags": {"double": True}}
    return gm(value), [n.target for n in gm.graph.nodes if n.op == "placeholder"]


@case("concrete_args with PH: two structured inputs and a plain one")
def ph_two_structures(fx):
    def f(a, b, c):
        return a[0] + b["k"] * c

    gm = fx.symbolic_trace(f, concrete_args={"a": (fx.PH,), "b": {"k": fx.PH}})
    args = ((torch.ones(1),), {"k": torch.full((1,), 2.0)}, torch.full((1,), 3.0))
    return gm(*args), [n.target for n in gm.graph.nodes if n.op == "placeholder"]


@case("concrete_args with PH: the retraced GraphModule takes the structure")
def ph_retrace_signature(fx):
    def f(x):
        return x["a"] - x["b"]

    gm = fx.symbolic_trace(f, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    retraced = fx.symbolic_trace(gm)
    value = {"a": torch.ones(2), "b": torch.ones(2)}
    return retraced(value), sum(n.op == "placeholder" for n in retraced.graph.nodes)


@case(
    "codegen: lambda default",
    eager=lambda: torch.ones(1) * 3,
    why="torch.fx cannot record a function as a placeholder default "
    "(NotImplementedError) when concrete_args fixes a parameter that has one",
)
def codegen_lambda_default(fx):
    def f(x, act=lambda t: t * 3):
        return act(x)

    gm = fx.symbolic_trace(f, concrete_args={"act": lambda t: t * 3})
    return gm(torch.ones(1), lambda t: t * 3)


@case("codegen: keyword-only parameters with and without defaults")
def codegen_keyword_only(fx):
    def f(x, *, scale, shift=1.0):
        return x * scale + shift

    gm = fx.symbolic_trace(f)
    return gm(torch.ones(2), scale=2.0), gm(torch.ones(2), scale=2.0, shift=0.0)


@case("codegen: *args only")
def codegen_star_args(fx):
    def f(*tensors):
        return tensors[0] - tensors[1]

    gm = fx.symbolic_trace(f)
    return gm(torch.ones(1), torch.ones(1) * 2)


@case("codegen: **kwargs only")
def codegen_star_kwargs(fx):
    def f(**named):
        return named["a"] * named["b"]

    gm = fx.symbolic_trace(f)
    return gm(a=torch.ones(1) * 2, b=torch.ones(1) * 3)


@case("codegen: a parameter named like a builtin or module")
def codegen_shadowing_names(fx):
    def f(input, torch_, len_):
        return torch.relu(input) + torch_ * len_

    gm = fx.symbolic_trace(f)
    return gm(torch.ones(1), torch.ones(1), 2)


@case("codegen: a non-default parameter after a concrete one")
def codegen_default_before_required(fx):
    def f(flag, x):
        return x * 2 if flag else x

    gm = fx.symbolic_trace(f, concrete_args={"flag": True})
    return (gm(True, torch.ones(2)),)


@case("graph_copy with a value remap inlines one graph into another twice")
def inline_twice(fx):
    def double(x):
        return x * 2

    inner = fx.symbolic_trace(double).graph
    graph = fx.Graph()
    value = graph.placeholder("x")
    (placeholder,) = [n for n in inner.nodes if n.op == "placeholder"]
    for _ in range(2):
        value = graph.graph_copy(inner, {placeholder: value})
    graph.output(value)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return gm(torch.ones(1)), names(gm)


@case("graph_copy keeps val_map entries (old -> new node)")
def graph_copy_val_map(fx):
    src = fx.symbolic_trace(lambda x: torch.relu(x) + 1).graph
    val_map = {}
    dst = fx.Graph()
    dst.output(dst.graph_copy(src, val_map))
    return sorted((old.name, new.name) for old, new in val_map.items())


@case("lint: a node of another graph used as an argument (test_copy_no_remap variant)", raises=True)
def lint_foreign_argument(fx):
    graph, x, _ = two_input_graph(fx)
    other = fx.Graph()
    z = other.placeholder("z")
    out = graph.call_function(torch.relu, (x,))
    graph.output(out)
    out.args = (z,)
    graph.lint()


@case(
    "GraphModule over a graph that uses a node of another graph",
    eager=lambda: Raised(RuntimeError, "refused"),
    why="torch.fx generates code naming the foreign node; a node of this graph with "
    "the same name is silently read instead",
)
def codegen_foreign_node(fx):
    graph, x, _ = two_input_graph(fx)
    other = fx.Graph()
    other_x = other.placeholder("x")
    out = graph.call_function(torch.neg, (x,))
    graph.output(out)
    out.args = (other_x,)  # reads the other graph's x, named like this graph's x
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return gm(torch.ones(1), torch.zeros(1))


@case("GraphModule(root dict, graph, class_name)")
def graph_module_dict_class_name(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    w = graph.get_attr("block.weight")
    s = graph.call_module("block.act", (x,))
    graph.output(graph.call_function(operator.mul, (s, w)))
    root = {"block.weight": torch.nn.Parameter(torch.ones(2) * 3), "block.act": torch.nn.ReLU()}
    gm = fx.GraphModule(root, graph, class_name="Block")
    return (type(gm).__name__, sorted(dict(gm.named_parameters())),
            sorted(n for n, _ in gm.named_modules()), gm(torch.tensor([-1.0, 2.0])))  # fmt: skip


class ScaledWithScratch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0))
        self.register_buffer("scratch", torch.zeros(1), persistent=False)

    def forward(self, x):
        return x * self.scale + self.scratch


def buffers_and_state(module):
    return sorted(module.state_dict()), sorted(n for n, _ in module.named_buffers())


@case(
    "GraphModule(root module, graph, class_name) keeps buffers buffers",
    eager=lambda: ("Scaled", *buffers_and_state(ScaledWithScratch())),
    why="torch.fx re-registers a non-persistent buffer as persistent: it appears "
    "in the GraphModule's state_dict though not in the module's",
)
def graph_module_module_class_name(fx):
    m = ScaledWithScratch()
    gm = fx.GraphModule(m, fx.symbolic_trace(m).graph, class_name="Scaled")
    return (type(gm).__name__, *buffers_and_state(gm))


@case("GraphModule: a call_module target the root lacks", raises=True)
def graph_module_missing_submodule(fx):
    graph = fx.Graph()
    graph.output(graph.call_module("absent", (graph.placeholder("x"),)))
    return fx.GraphModule(torch.nn.Module(), graph)


@case("gm.code and python_code agree, and recompile follows edits")
def code_follows_edits(fx):
    gm = fx.symbolic_trace(lambda x: torch.sigmoid(x) * 2)
    before = gm.code
    for node in gm.graph.nodes:
        if node.target is torch.sigmoid:
            node.target = torch.tanh
    gm.recompile()
    t = torch.randn(3)
    return ("tanh" in gm.code, "sigmoid" in before, gm.graph.python_code("self").src == gm.code,
            gm(t))  # fmt: skip


@case("str(graph) names every placeholder")
def str_graph_lists_placeholders(fx):
    def f(first, second, third=3):
        return first + second * third

    text = str(fx.symbolic_trace(f).graph)
    return [name in text for name in ("first", "second", "third")]


@case("Tracer.trace of a plain function with a custom leaf module call inside")
def trace_function_with_modules(fx):
    layer = torch.nn.Linear(2, 2)

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x) * 2

    gm = fx.symbolic_trace(Wrapper())
    x = torch.randn(3, 2)
    return gm(x), layer(x) * 2, ops(gm)


@case("forward(self) taking no inputs")
def forward_without_inputs(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self):
            return self.w * 2

    gm = fx.symbolic_trace(M())
    return gm(), ops(gm)


@case("forward without self: only a variadic parameter", raises=True)
def forward_only_variadic(fx):
    class M(torch.nn.Module):
        def forward(*args):
            return args[1]

    return fx.symbolic_trace(M())


@case("erase_node of an already erased node")
def erase_twice(fx):
    graph, x, _ = two_input_graph(fx)
    dead = graph.call_function(torch.relu, (x,))
    graph.output(x)
    graph.erase_node(dead)
    return len(graph.nodes), Raised.of(RuntimeError()).kind
