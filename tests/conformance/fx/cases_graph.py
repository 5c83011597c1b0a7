"""Graph and Node editing cases, rewritten from torch's test/test_fx.py
(``TestFX.test_<name>`` is each case's source)."""

from __future__ import annotations

import contextlib
import copy
import io
import operator
import pickle
import sys

import torch

from .adapter import case, names, ops, users


def a_non_torch_leaf(a, b):
    return a + b


class SimpleTest(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x + 3.0)


class AddModule(torch.nn.Module):
    def forward(self, a, b):
        return a + b


def relu_graph(fx):
    graph = fx.Graph()
    x = graph.create_node("placeholder", "x")
    relu = graph.create_node("call_function", target=torch.relu, args=(x,))
    graph.output(relu)
    return graph, x, relu


@case("test_custom_import")
def custom_import(fx):
    graph = fx.Graph()
    a, b = graph.placeholder("x"), graph.placeholder("y")
    c = graph.call_function(a_non_torch_leaf, (a, b))
    graph.output(graph.call_function(torch.sin, (c,)))
    gm = fx.GraphModule(torch.nn.Module(), graph)
    x, y = torch.rand(1), torch.rand(1)
    return gm(x, y), ops(gm)


@case("test_graph_edit_with_proxy")
def graph_edit_with_proxy(fx):
    g = fx.symbolic_trace(AddModule()).graph
    new_g = fx.Graph()
    output_val = new_g.graph_copy(g, {})
    t = fx.Proxy(output_val)
    new_g.output((t + t).node)
    gm = fx.GraphModule(AddModule(), new_g)
    gm.graph.lint()
    return gm(3, 4), ops(gm)


@case("test_graph_unique_names")
def graph_unique_names(fx):
    g = fx.symbolic_trace(AddModule()).graph
    new_g = fx.Graph()
    t = fx.Proxy(new_g.graph_copy(g, {}))
    new_g.output((t + t).node)
    all_names = names(new_g)
    return len(set(all_names)) == len(all_names), len(all_names)


@case("test_graph_unique_names_manual")
def graph_unique_names_manual(fx):
    graph = fx.Graph()
    a = graph.create_node("placeholder", "x")
    b = graph.create_node("call_module", "linear_mod", args=(a,), name="foo_1_1")
    c = graph.create_node("get_attr", "y_attr", name="foo_1")
    graph.output(graph.create_node("call_function", operator.add, args=(b, c)))
    graph2 = fx.Graph()
    graph2.graph_copy(graph, {})
    all_names = names(graph2)
    return len(set(all_names)) == len(all_names), names(graph)


@case("test_all_input_nodes")
def all_input_nodes(fx):
    graph = fx.Graph()
    a = graph.placeholder("x")
    b = graph.call_module("linear_mod", args=(a,))
    c = graph.get_attr("y_attr")
    d = graph.call_function(operator.add, args=(b, c))
    e = graph.call_function(torch.unsqueeze, args=(d, 0))
    graph.output(e)
    graph.lint()
    return [[n.name for n in node.all_input_nodes] for node in (b, c, d, e)]


@case("test_deepcopy_graphmodule_with_transform")
def deepcopy_graphmodule_with_transform(fx):
    traced = fx.symbolic_trace(SimpleTest())
    new_graph = fx.Graph()
    output_value = new_graph.graph_copy(traced.graph, {})
    neg = new_graph.create_node(op="call_method", target="neg", args=(output_value,), kwargs={})
    new_graph.output(neg)
    transformed = fx.GraphModule(traced, new_graph)
    transformed.graph.lint()
    copied = copy.deepcopy(transformed)
    x = torch.randn(3, 4)
    return type(copied) is not type(transformed), copied(x), transformed(x), ops(copied)


class Bar(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.param = torch.nn.Parameter(torch.rand(3, 4))

    def forward(self, x):
        return torch.relu(x) + self.param


class Baz(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.param = torch.nn.Parameter(torch.rand(3, 4))
        self.bar = Bar()

    def forward(self, x):
        return self.bar(x) - self.param


@case("test_deepcopy_with_submods_params")
def deepcopy_with_submods_params(fx):
    traced = fx.symbolic_trace(Baz())
    copied = copy.deepcopy(traced)
    copied.graph.lint()
    x = torch.rand(3, 4)
    return copied(x), sorted(dict(copied.named_parameters())), ops(copied)


@case("test_remove_uses")
def remove_uses(fx):
    g = fx.Graph()
    x = g.placeholder("x")
    relu = g.call_function(torch.relu, (x,))
    neg = g.call_function(torch.neg, (relu,))
    g.output(neg)
    neg.replace_all_uses_with(relu)
    g.erase_node(neg)
    return neg not in relu.users, users(relu), ops(g)


@case("test_construct_root_dict")
def construct_root_dict(fx):
    graph = fx.Graph()
    a = graph.create_node("placeholder", "x")
    b = graph.create_node("call_module", "foo.bar.baz", args=(a,))
    c = graph.create_node("get_attr", "zip.zap.zam")
    graph.output(graph.create_node("call_function", operator.add, args=(b, c)))
    linear, add_param = torch.nn.Linear(3, 4), torch.rand(3, 4)
    gm = fx.GraphModule({"foo.bar.baz": linear, "zip.zap.zam": add_param}, graph)
    gm.graph.lint()
    x = torch.rand(3, 3)
    return "self.foo.bar.baz" in gm.code, gm(x), linear(x) + add_param, sorted(gm.state_dict())


@case("test_construct_root_dict (missing key)", raises=True)
def construct_root_dict_missing_key(fx):
    graph = fx.Graph()
    graph.output(graph.create_node("get_attr", "zip.zap.zam"))
    return fx.GraphModule({"zip.zap": torch.rand(1)}, graph)


@case("test_copy_no_remap", raises=True)
def copy_no_remap(fx):
    traced = fx.symbolic_trace(SimpleTest())
    copied = fx.Graph()
    for node in traced.graph.nodes:
        copied.node_copy(node)
    copied.lint()


@case("test_wrong_topo", raises=True)
def wrong_topo(fx):
    graph = fx.Graph()
    a = graph.create_node("placeholder", "x")
    b = graph.create_node("call_module", "foo.bar.baz", args=(a,))
    c = graph.create_node("get_attr", "zip.zap.zam")
    graph.output(graph.create_node("call_function", operator.add, args=(b, c)))
    nodes = list(graph.nodes)
    nodes[3].append(nodes[2])
    graph.lint()


@case("test_wrong_target_type", raises=True)
def wrong_target_type(fx):
    return fx.Node(
        graph=fx.Graph(), name="foo", op="call_function", target="foo", args=(), kwargs={}
    )


@case("test_replace_input")
def replace_input(fx):
    graph = fx.Graph()
    x, y = graph.create_node("placeholder", "x"), graph.create_node("placeholder", "y")
    b = graph.create_node("call_function", target=torch.relu, args=(x,))
    graph.output(b)
    b.replace_input_with(x, y)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    return gm(torch.randn(3, 4), torch.randn(2, 2)).shape, users(x), users(y)


@case("test_insertion_point")
def insertion_point(fx):
    graph, x, b = relu_graph(fx)
    with graph.inserting_before(b):
        neg = graph.call_function(the_function=torch.neg, args=(x,))
        _, *relu_args = b.args
        b.args = (neg, *relu_args)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    x = torch.randn(33, 44)
    return gm(x), ops(gm), users(neg)


@case("test_update_args_api")
def update_args_api(fx):
    graph = fx.Graph()
    x, y = graph.create_node("placeholder", "x"), graph.create_node("placeholder", "y")
    b = graph.create_node("call_function", target=torch.relu, args=(x,))
    graph.output(b)
    inp_x, inp_y = torch.randn(5, 3), torch.randn(3, 5)
    before = fx.GraphModule(torch.nn.Module(), graph)(inp_x, inp_y)
    b.update_arg(0, y)
    after = fx.GraphModule(torch.nn.Module(), graph)(inp_x, inp_y)
    return before, after, users(x), users(y)


@case("test_update_kwargs_api")
def update_kwargs_api(fx):
    graph = fx.Graph()
    x, y = graph.create_node("placeholder", "x"), graph.create_node("placeholder", "y")
    b = graph.create_node("call_function", target=torch.relu, kwargs={"input": x})
    graph.output(b)
    inp_x, inp_y = torch.randn(5, 3), torch.randn(3, 5)
    before = fx.GraphModule(torch.nn.Module(), graph)(inp_x, inp_y)
    b.update_kwarg("input", y)
    after = fx.GraphModule(torch.nn.Module(), graph)(inp_x, inp_y)
    return before, after, users(x), users(y), dict(b.kwargs) == {"input": y}


@case("test_move_before")
def move_before(fx):
    graph, x, b = relu_graph(fx)
    neg = graph.call_function(the_function=torch.neg, args=(x,))
    _, *relu_args = b.args
    b.args = (neg, *relu_args)
    b.prepend(neg)
    gm = fx.GraphModule(torch.nn.Module(), graph)
    x = torch.randn(33, 44)
    return gm(x), names(gm)


@case("test_prepend_self")
def prepend_self(fx):
    graph, x, b = relu_graph(fx)
    b.prepend(b)
    x.append(b)
    return len(graph.nodes), names(graph)


@case("test_erase_node_error", raises=True)
def erase_node_error(fx):
    traced = fx.symbolic_trace(SimpleTest())
    for node in traced.graph.nodes:
        if node.target in (operator.add, torch.relu):
            traced.graph.erase_node(node)


@case("test_find_uses")
def find_uses(fx):
    graph = fx.Graph()
    x = fx.Proxy(graph.placeholder("x"))
    y, z, u = torch.relu(x), x + x, torch.neg(x)
    graph.output((y + z + u).node)
    graph.lint()
    gm = fx.GraphModule(torch.nn.Module(), graph)
    t = torch.randn(3)
    return len(x.node.users), sorted(users(x.node)), gm(t), ops(graph)


@case("test_inline_graph")
def inline_graph(fx):
    class InlineInto(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    class ToInline(torch.nn.Module):
        def forward(self, x):
            return torch.neg(x)

    inline_into, to_inline = fx.symbolic_trace(InlineInto()), fx.symbolic_trace(ToInline())
    combined = fx.Graph()
    output_node = combined.graph_copy(inline_into.graph, {})
    input_node = next(iter(to_inline.graph.nodes))
    output = combined.graph_copy(to_inline.graph, {input_node: output_node})
    combined.output(output)
    gm = fx.GraphModule(torch.nn.Module(), combined)
    x = torch.rand(3, 4)
    return gm(x), x.relu().neg(), ops(gm)


@case("test_multi_insert_point")
def multi_insert_point(fx):
    graph = fx.Graph()
    x = fx.Proxy(graph.placeholder("x"))
    relu = torch.relu(x)
    with graph.inserting_before(relu.node):
        y = torch.neg(x)
        z = torch.tanh(y)
    graph.output((relu.node, z.node))
    graph.lint()
    return names(graph), ops(graph)


@case("test_reassign_args_kwargs_uses")
def reassign_args_kwargs_uses(fx):
    graph = fx.Graph()
    x, y = fx.Proxy(graph.placeholder("x")), fx.Proxy(graph.placeholder("y"))
    z = x + y
    zed = z + z + z
    graph.output(zed.node)
    graph.lint()
    zed.node.args = (zed.node.args[0], x.node)
    first = users(x.node)
    z.node.args = (y.node, y.node)
    return first, users(x.node), users(y.node)


@case("test_typename_print")
def typename_print(fx):
    graph = fx.Graph()
    x = graph.create_node("placeholder", "x")
    b = graph.create_node("call_function", target=torch.relu, args=(x,), type_expr=list[float])
    graph.output(b)
    return "typing.List[float]" in str(graph)


@case("test_inf_nan_kwds")
def inf_nan_kwds(fx):
    graph = fx.Graph()
    x = graph.create_node("placeholder", "x")
    b = graph.create_node("call_function", operator.add, (x, float("inf")), {}, name="inf")
    c = graph.create_node("call_function", operator.add, (x, float("nan")), {}, name="nan")
    graph.output((b, c))
    gm = fx.GraphModule(torch.nn.Module(), graph)
    x = torch.rand(3, 4)
    return gm(x), (x + float("inf"), x + float("nan"))


@case("test_deepcopy_recursion_depth")
def deepcopy_recursion_depth(fx):
    g = fx.Graph()
    x = g.placeholder("x")
    for _ in range(sys.getrecursionlimit() + 20):
        x = g.call_function(torch.relu, (x,))
    g.output(x)
    copied = copy.deepcopy(g)
    val_map = dict(zip(g.nodes, copied.nodes))
    return all(
        {val_map[u] for u in orig.users} == set(new.users)
        for orig, new in zip(g.nodes, copied.nodes)
    )


@case("test_empty_graph_codegen")
def empty_graph_codegen(fx):
    return fx.GraphModule(torch.nn.Module(), fx.Graph())()


@case("test_graph_fns")
def graph_fns(fx):
    g = fx.Graph()
    a = g.placeholder("a")
    b = g.call_module("linear", (a,))
    c = g.get_attr("bias")
    d = g.call_method("add", (b, c))
    g.output(g.call_function(torch.sin, (d,)))
    mod = torch.nn.Module()
    mod.linear = torch.nn.Linear(3, 4)
    mod.bias = torch.rand(4)
    gm = fx.GraphModule(mod, g)
    gm.graph.lint()
    x = torch.rand(3)
    return gm(x), torch.sin(mod.linear(x) + mod.bias)


@case("test_pickle_custom_import")
def pickle_custom_import(fx):
    graph = fx.Graph()
    a, b = graph.placeholder("x"), graph.placeholder("y")
    c = graph.call_function(a_non_torch_leaf, (a, b))
    graph.output(graph.call_function(torch.sin, (c,)))
    gm = fx.GraphModule(torch.nn.Module(), graph)
    loaded = pickle.loads(pickle.dumps(gm))
    loaded.graph.lint()
    x, y = torch.rand(1), torch.rand(1)
    return loaded(x, y), gm(x, y)


@case("test_module_deepcopy_edit_nodes")
def module_deepcopy_edit_nodes(fx):
    class Foo(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x)

    traced = fx.symbolic_trace(Foo())
    copied = copy.deepcopy(traced)
    for node in copied.graph.nodes:
        if node.target == torch.relu:
            node.target = torch.neg
    copied.recompile()
    traced.recompile()
    x = torch.randn(15, 15)
    return traced(x), copied(x)


@case("test_profiler_ranges_side_effect")
def profiler_ranges_side_effect(fx):
    g = fx.Graph()
    handle = g.call_function(torch.ops.profiler._record_function_enter_new, ("test_range",))
    g.call_function(torch.ops.profiler._record_function_exit, (handle,))
    g.output(None)
    before = ops(g)
    g.eliminate_dead_code()
    return before, ops(g)


@case("test_eliminate_dead_code (unused relu)")
def eliminate_dead_code_unused(fx):
    g = fx.Graph()
    x = g.placeholder("x")
    g.call_function(torch.relu, (x,))
    g.output(g.call_function(torch.neg, (x,)))
    changed = g.eliminate_dead_code()
    return changed, ops(g)


@case("test_replace_all_uses_with (delete_user_cb)")
def replace_all_uses_with_callback(fx):
    g = fx.Graph()
    x = g.placeholder("x")
    a = g.call_function(torch.relu, (x,))
    b = g.call_function(torch.neg, (a,))
    c = g.call_function(torch.tanh, (a,))
    g.output((b, c))
    replaced = a.replace_all_uses_with(x, delete_user_cb=lambda user: user is b)
    return [n.name for n in replaced], users(a), users(x)


@case("test_node_copy (arg_transform)")
def node_copy_with_arg_transform(fx):
    src = fx.symbolic_trace(SimpleTest()).graph
    dst = fx.Graph()
    env = {}
    for node in src.nodes:
        env[node] = dst.node_copy(node, lambda n: env[n])
    dst.lint()
    gm = fx.GraphModule(torch.nn.Module(), dst)
    x = torch.randn(3)
    return gm(x), names(dst)


@case("Graph.output_node()")
def output_node_method(fx):
    graph, _, relu = relu_graph(fx)
    output = graph.output_node()
    with graph.inserting_before(output):
        neg = graph.call_function(torch.neg, (relu,))
    output.args = (neg,)
    return output.op, names(graph)


@case("test_find_nodes")
def find_nodes(fx):
    gm = fx.symbolic_trace(SimpleTest())
    found = gm.graph.find_nodes(op="call_function", target=torch.relu)
    return [n.name for n in found], [n.name for n in gm.graph.find_nodes(op="placeholder")]


@case("test_python_code")
def python_code(fx):
    gm = fx.symbolic_trace(SimpleTest())
    code = gm.graph.python_code(root_module="self")
    return "def forward(self, x)" in code.src, "torch.relu" in code.src, code.src == gm.code


@case("test_print_tabular")
def print_tabular(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_method("relu", (x,))
    z = graph.call_function(operator.add, (y, 1))
    w = graph.call_function(operator.getitem, ([z, y], 0))
    graph.output((w, x))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        graph.print_tabular()
    return buffer.getvalue()


@case("test_graph_str (placeholders and targets)")
def graph_str_lists_targets(fx):
    class M(torch.nn.Module):
        def forward(self, x, y):
            return torch.add(x.foo + x.bar, 3.0) + y

    text = str(fx.symbolic_trace(M()).graph)
    return [s in text for s in ("builtins.getattr", "operator.add", "torch.add", "x", "y")]


@case("test_output_erase_and_recreate")
def output_replaced(fx):
    graph, x, relu = relu_graph(fx)
    output = next(reversed(graph.nodes))
    graph.erase_node(output)
    graph.output((relu, x))
    gm = fx.GraphModule(torch.nn.Module(), graph)
    t = torch.randn(4)
    return gm(t), ops(gm)


@case("test_inserting_after (default: end)")
def inserting_after_default(fx):
    graph = fx.Graph()
    x = graph.placeholder("x")
    with graph.inserting_after():
        y = graph.call_function(torch.neg, (x,))
    with graph.inserting_after(x):
        z = graph.call_function(torch.relu, (x,))
    graph.output((y, z))
    return names(graph)
