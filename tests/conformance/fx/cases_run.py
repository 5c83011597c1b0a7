"""Interpreter, Transformer, ShapeProp, GraphModule and subgraph-rewriter
cases, rewritten from torch's test/test_fx.py and test/fx/test_subgraph_rewriter.py."""

from __future__ import annotations

import operator

import torch

from .adapter import case, ops


class ParamLinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.param = torch.nn.Parameter(torch.rand(3, 4))
        self.linear = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.linear(x + self.param).clamp(min=0.0, max=1.0)


@case("test_interpreter")
def interpreter(fx):
    m = ParamLinear()
    gm = fx.symbolic_trace(m)
    x = torch.randn(3, 4)
    return fx.Interpreter(gm).run(x), gm(x), m(x)


@case("test_interpreter_run_node_override")
def interpreter_run_node_override(fx):
    gm = fx.symbolic_trace(ParamLinear())

    class RunNodeInterpreter(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            n.cached_value = result
            return result

    RunNodeInterpreter(gm).run(torch.randn(3, 4))
    return all(hasattr(node, "cached_value") for node in gm.graph.nodes)


def sigmoid_neg(x):
    return torch.sigmoid(x).neg()


def neg_sigmoid_swapper(base):
    """The op-swapping subclass both torch tests define, of Interpreter or Transformer."""

    class NegSigmSwap(base):
        def call_function(self, target, args, kwargs):
            if target == torch.sigmoid:
                return torch.neg(*args, **kwargs)
            return super().call_function(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            if target == "neg":
                call_self, *args_tail = args
                return call_self.sigmoid(*args_tail, **kwargs)
            return super().call_method(target, args, kwargs)

    return NegSigmSwap


@case("test_interpreter_onthefly_swap")
def interpreter_onthefly_swap(fx):
    x = torch.randn(3, 4)
    swapper = neg_sigmoid_swapper(fx.Interpreter)
    return swapper(fx.symbolic_trace(sigmoid_neg)).run(x), torch.neg(x).sigmoid()


@case("test_interpreter_partial_eval")
def interpreter_partial_eval(fx):
    gm = fx.symbolic_trace(ParamLinear())
    env = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target == "linear":
            env[node] = torch.arange(0, 12, 1).reshape(3, 4) - 6.0
            break
    result = fx.Interpreter(gm).run(torch.randn(3, 4), initial_env=env)
    return result, (torch.arange(0, 12, 1).reshape(3, 4) - 6.0).clamp(0.0, 1.0)


@case("test_interpreter_star_args")
def interpreter_star_args(fx):
    def with_star_args(x, *args):
        return x + args[0]

    gm = fx.symbolic_trace(with_star_args)
    return fx.Interpreter(gm).run(torch.ones(3, 4), torch.ones(3, 4), torch.rand(3, 4))


@case("test_interpreter_gc_values")
def interpreter_gc_values(fx):
    interp = fx.Interpreter(fx.symbolic_trace(ParamLinear()))
    interp.run(torch.randn(3, 4))
    return sorted(n.name for n in interp.env)


@case("test_interpreter_no_gc")
def interpreter_no_gc(fx):
    interp = fx.Interpreter(fx.symbolic_trace(ParamLinear()), garbage_collect_values=False)
    interp.run(torch.randn(3, 4))
    return sorted(n.name for n in interp.env)


@case("test_interpreter (structured PH input)")
def interpreter_structured_input(fx):
    def f(x):
        return x["a"] * x["b"]

    gm = fx.symbolic_trace(f, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    value = {"a": torch.randn(3), "b": torch.randn(3)}
    return fx.Interpreter(gm).run(value), f(value)


@case("test_transformer_noop")
def transformer_noop(fx):
    gm = fx.symbolic_trace(ParamLinear())
    new_gm = fx.Transformer(gm).transform()
    x = torch.randn(3, 4)
    return new_gm(x), gm(x), ops(new_gm)


@case("test_transformer_op_swap")
def transformer_op_swap(fx):
    transformed = neg_sigmoid_swapper(fx.Transformer)(fx.symbolic_trace(sigmoid_neg)).transform()
    x = torch.randn(3, 4)
    return transformed(x), torch.neg(x).sigmoid(), ops(transformed)


@case("test_transformer_multi_outputs")
def transformer_multi_outputs(fx):
    class MyModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.param = torch.nn.Parameter(torch.rand(3, 4))
            self.linear = torch.nn.Linear(4, 5)

        def forward(self, x):
            x = x + self.param
            return x, self.linear(x)

    gm = fx.symbolic_trace(MyModule())
    new_gm = fx.Transformer(gm).transform()
    x = torch.randn(3, 4)
    return new_gm(x), gm(x)


@case("test_example_shape_prop")
def example_shape_prop(fx):
    class TestCase(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attr = torch.randn(3, 4)
            self.submod = torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.neg(self.submod(x.relu() + self.attr))

    traced = fx.symbolic_trace(TestCase())
    x = torch.rand(3, 4)
    fx.ShapeProp(traced).propagate(x)
    opcodes = sorted({n.op for n in traced.graph.nodes})
    out = next(n for n in traced.graph.nodes if n.op == "output").args[0]
    metas = [
        (tuple(n.meta["tensor_meta"].shape), n.meta["tensor_meta"].dtype, n.meta["tensor_meta"].stride)
        for n in traced.graph.nodes if n.op != "output"
    ]  # fmt: skip
    return opcodes, metas, out.meta["tensor_meta"].shape == traced(x).shape


@case("test_shape_prop_layout")
def shape_prop_layout(fx):
    class ConvTest(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_mod = torch.nn.Conv2d(5, 5, 3)

        def forward(self, x):
            return self.conv_mod(x)

    traced = fx.symbolic_trace(ConvTest())
    x = torch.randn(2, 5, 16, 16)
    fx.ShapeProp(traced).propagate(x)
    contiguous = [
        n.meta["tensor_meta"].memory_format for n in traced.graph.nodes if n.op != "output"
    ]
    traced.to(memory_format=torch.channels_last)
    fx.ShapeProp(traced).propagate(x.contiguous(memory_format=torch.channels_last))
    placeholder = next(iter(traced.graph.nodes))
    return contiguous, placeholder.meta["tensor_meta"].memory_format


@case("test_shape_prop_aggregate")
def shape_prop_aggregate(fx):
    class ReturnTwo(torch.nn.Module):
        def forward(self, x):
            return (3, torch.sum(x))

    class UnderTest(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rt = ReturnTwo()

        def forward(self, x):
            return self.rt(x)

    class RTTracer(fx.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            return type(m) is ReturnTwo

    ut = UnderTest()
    mod = fx.GraphModule(ut, RTTracer().trace(ut))
    fx.ShapeProp(mod).propagate(torch.rand(3, 4))
    meta = next(n for n in mod.graph.nodes if n.op == "call_module").meta["tensor_meta"]
    return meta[0], tuple(meta[1].shape)


@case("test_submodule_manipulation_API")
def submodule_manipulation(fx):
    class C(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(16, 33, 3, stride=2)
            self.param = torch.nn.Parameter(torch.rand(2, 3))

        def forward(self, x):
            return self.conv(torch.cat([self.param, x]))

    class B(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(100, 200)
            self.register_buffer("buf", torch.randn(2, 3))
            self.net_c = C()

        def forward(self, x):
            return self.linear(torch.cat([self.buf, self.net_c(x)]))

    class A(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net_b = B()
            self.param = torch.nn.Parameter(torch.rand(2, 3))

        def forward(self, x):
            return self.net_b(x) + self.param

    a = fx.symbolic_trace(A())
    a.add_submodule("net_b.net_c.dropout", torch.nn.Dropout(p=0.2))
    conv = [n for n in a.graph.nodes if n.target == "net_b.net_c.conv"][-1]
    with a.graph.inserting_before(conv):
        dropout = a.graph.call_module(module_name="net_b.net_c.dropout", args=conv.args)
    conv.replace_all_uses_with(dropout)
    a.graph.erase_node(conv)
    a.recompile()
    a.delete_submodule("net_b.net_c.conv")
    a.add_submodule("net_b.embedding", torch.nn.Embedding(10, 3))
    a.add_submodule("batch_norm_2d", torch.nn.BatchNorm2d(100))
    a.delete_all_unused_submodules()
    a.graph.lint()
    return sorted(name for name, _ in a.named_modules()), sorted(a.state_dict())


@case("test_submodule_manipulation_API (get_submodule of a deleted module)", raises=True)
def get_deleted_submodule(fx):
    class Sub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 1)

        def forward(self, x):
            return self.conv(x)

    gm = fx.symbolic_trace(Sub())
    gm.delete_submodule("conv")
    return gm.get_submodule("conv")


@case("test_delete_unused_submodules_leaf")
def delete_unused_submodules_leaf(fx):
    class SubModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(10, 10)
            self.relu = torch.nn.ReLU()

        def forward(self, x):
            return self.relu(self.linear(x))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.submod = SubModule()

        def forward(self, x):
            return self.submod(x)

    class MyCustomTracer(fx.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            return module_qualified_name == "submod"

    model = Model()
    gm = fx.GraphModule(model, MyCustomTracer().trace(model))
    gm.delete_all_unused_submodules()
    inputs = torch.randn(1, 10)
    return gm(inputs), model(inputs), sorted(n for n, _ in gm.named_modules())


@case("test_tracing_graphmodules_as_leaf_submodules")
def graphmodules_as_leaf_submodules(fx):
    class A(torch.nn.Module):
        def forward(self, t):
            return t + t

    class M(torch.nn.Module):
        def __init__(self, a):
            super().__init__()
            self.a = a

        def forward(self, t):
            return self.a(t) * 2

    class LeafTracer(fx.Tracer):
        def is_leaf_module(self, module, name):
            return True

    m = M(fx.symbolic_trace(A()))
    gm = fx.GraphModule(m, LeafTracer().trace(m))
    t = torch.randn(3)
    return isinstance(gm.get_submodule("a"), fx.GraphModule), gm(t), ops(gm)


def buffer_param_module():
    class MyModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("my_buff", torch.rand(3, 4))
            self.register_parameter("my_param", torch.nn.Parameter(torch.rand(3, 4)))

        def forward(self, x):
            return x + self.my_buff + self.my_param

    return MyModule()


@case("test_graph_module_init_buffer_param_copied_dict_init")
def init_buffer_param_copied_dict(fx):
    mod = buffer_param_module()
    traced = fx.symbolic_trace(mod)
    buff, param = traced.get_buffer("my_buff"), traced.get_parameter("my_param")
    new = fx.GraphModule({"my_buff": buff, "my_param": param}, traced.graph, class_name="Copied")
    x = torch.rand(3, 4)
    return (new.get_buffer("my_buff"), new.get_parameter("my_param"), new(x), traced(x),
            type(new).__name__)  # fmt: skip


@case("test_graph_module_init_buffer_param_copied_mod_init")
def init_buffer_param_copied_module(fx):
    mod = buffer_param_module()
    traced = fx.symbolic_trace(mod)
    new = fx.GraphModule(mod, traced.graph, class_name="Copied")
    x = torch.rand(3, 4)
    return new.get_buffer("my_buff"), new.get_parameter("my_param"), new(x), type(new).__name__


@case("test_graph_module (get_attr of a missing attribute)", raises=True)
def graph_module_missing_attribute(fx):
    graph = fx.Graph()
    graph.output(graph.get_attr("nowhere"))
    return fx.GraphModule(torch.nn.Module(), graph)


@case("test_custom_traceback_raised_when_exception_source_is_graphmodule", raises=True)
def error_from_generated_code(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W = torch.nn.Parameter(torch.randn(5))

        def forward(self, x):
            return torch.dot(self.W, x)

    traced = fx.symbolic_trace(M())
    out = [n for n in traced.graph.nodes if n.op == "output"][-1]
    with traced.graph.inserting_before(out):
        relu_out = traced.graph.call_method(method_name="relu", args=(out.args[0],))
    out.args = (relu_out,)
    traced.recompile()
    return traced(5)


# --- subgraph rewriter (test/fx/test_subgraph_rewriter.py) ---------------------------


@case("test_subgraph_rewriter_preserves_logic")
def rewriter_preserves_logic(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x) + torch.relu(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.neg(x) + torch.relu(x)

    traced = fx.symbolic_trace(M())
    x = torch.rand(1, 3)
    ref = traced(x)
    matches = fx.replace_pattern(traced, pattern, pattern)
    traced.graph.lint()
    return traced(x), ref, len(matches), ops(traced)


@case("test_subgraph_rewriter_with_oneliner_pattern")
def rewriter_oneliner(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.neg(x)

    def replacement(x):
        return torch.relu(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x = torch.randn(4, 4)
    return traced(x), torch.add(torch.relu(x), torch.relu(x)), ops(traced)


@case("test_subgraph_rewriter_single_pattern_match")
def rewriter_single_pattern_match(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x) + torch.relu(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.neg(x) + torch.relu(x)

    def replacement(x):
        return torch.relu(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(4, 4)
    return traced(x), torch.add(torch.relu(x), torch.relu(x)), ops(traced)


@case("test_subgraph_rewriter_multiple_pattern_match")
def rewriter_multiple_pattern_match(fx):
    class M(torch.nn.Module):
        def forward(self, x, w1, w2):
            m1 = torch.cat([w1, w2]).sum()
            m2 = torch.cat([w1, w2]).sum()
            return x + torch.max(m1) + torch.max(m2)

    def pattern(w1, w2):
        return torch.cat([w1, w2]).sum()

    def replacement(w1, w2):
        return torch.stack([w1, w2])

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x, w1, w2 = torch.rand(1, 3), torch.rand(1, 3), torch.rand(1, 3)
    expected = x + torch.max(torch.stack([w1, w2])) + torch.max(torch.stack([w1, w2]))
    return traced(x, w1, w2), expected, len(matches), ops(traced)


@case("test_subgraph_rewriter_graph_argument_order")
def rewriter_argument_order(fx):
    class M(torch.nn.Module):
        def forward(self, x, y):
            return torch.mm(x, y)

    def pattern(x, y):
        return torch.mm(x, y)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, pattern)
    x, y = torch.randn(3, 4), torch.randn(4, 5)
    return traced(x, y), torch.mm(x, y)


@case("test_subgraph_rewriter_correct_output_replacement")
def rewriter_output_replacement(fx):
    class M(torch.nn.Module):
        def forward(self, x, y):
            val = torch.neg(y) + torch.relu(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.relu(x)

    def replacement(x):
        return torch.neg(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x, y = torch.randn(4, 4), torch.randn(4, 4)
    val = torch.neg(y) + torch.neg(x)
    return traced(x, y), val + val


@case("test_subgraph_rewriter_traced_as_callable")
def rewriter_traced_as_callable(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x) + torch.relu(x)
            return torch.add(val, val)

    class Pattern(torch.nn.Module):
        def forward(self, x):
            return torch.neg(x) + torch.relu(x)

    class Replacement(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, fx.symbolic_trace(Pattern()), fx.symbolic_trace(Replacement()))
    x = torch.randn(3, 4)
    return traced(x), torch.add(torch.sigmoid(x), torch.sigmoid(x))


@case("test_subgraph_rewriter_pattern_is_entire_graph")
def rewriter_entire_graph(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            a = torch.neg(x)
            return torch.add(a, a)

    def pattern(x):
        a = torch.neg(x)
        return torch.add(a, a)

    def replacement(x):
        a = torch.sigmoid(x)
        return torch.cat([a, a])

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3, 4)
    return traced(x), torch.cat([torch.sigmoid(x), torch.sigmoid(x)])


@case("test_subgraph_rewriter_pattern_output_pattern_node_can_have_users_that_are_not_matched")
def rewriter_output_with_outside_users(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.relu(x)
            return torch.neg(y) - y

    def pattern(x):
        return torch.relu(x)

    def replacement(x):
        return torch.sigmoid(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3, 4)
    return traced(x), torch.neg(torch.sigmoid(x)) - torch.sigmoid(x)


@case("test_subgraph_rewriter_internal_pattern_nodes_cannot_have_users_that_are_not_matched")
def rewriter_internal_users_block_match(fx):
    class M(torch.nn.Module):
        def forward(self, x, w1, w2, b1, b2):
            m0 = torch.cat([w1, w2])  # noqa: F841 (as in torch's test)
            m1 = torch.cat([w1, w2])
            m2 = torch.cat([x, b2])
            t0 = torch.addmm(b1, m1, m2.t())  # noqa: F841
            t1 = torch.sum(w1, 1)
            t2 = torch.addmm(b1, m1, m2.t())
            return torch.sum(t1), torch.sum(t2)

    def pattern(x, w1, w2, b1, b2):
        m1 = torch.cat([w1, w2])
        m2 = torch.cat([x, b2])
        return torch.addmm(b1, m1, m2.t())

    def replacement(x, w1, w2, b1, b2):
        return torch.cat([x, w1, w2])

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    return len(matches), ops(traced)


@case("test_subgraph_rewriter_replaces_referenced_submodules")
def rewriter_referenced_submodules(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sigmoid = torch.nn.Sigmoid()
            self.submod = torch.nn.ReLU()

        def forward(self, x):
            return self.submod(self.sigmoid(x + 1))

    class Pattern(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sigmoid = torch.nn.Sigmoid()
            self.submod = torch.nn.ReLU()

        def forward(self, x):
            return self.submod(self.sigmoid(x))

    class Replacement(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tanh = torch.nn.Tanh()
            self.submod = torch.nn.ReLU()

        def forward(self, x):
            return self.submod(self.tanh(x))

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, Pattern(), Replacement())
    traced.graph.lint()
    x = torch.randn(3, 3)
    return traced(x), torch.relu(torch.tanh(x + 1)), ops(traced)


@case("test_subgraph_rewriter_literals")
def rewriter_literals(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1, x + 2

    def pattern(x):
        return x + 1

    def replacement(x):
        return x - 1

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3)
    return traced(x), (x - 1, x + 2)


@case("test_subgraph_rewriter_placeholder_matching")
def rewriter_placeholder_matching(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            x += 3
            x = x.dequantize()
            x = torch.sigmoid(x)
            return x.to(torch.float16)

    def pattern(x):
        x = x.dequantize()
        x = torch.sigmoid(x)
        return x.to(torch.float16)

    def replacement(x):
        return x

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3)
    return traced(x.clone()), x + 3, len(matches)


@case("test_subgraph_rewriter_multiple_outputs")
def rewriter_multiple_outputs(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.sigmoid(x)
            z = torch.relu(x)
            return y * z, y + z

    def pattern(a):
        return torch.sigmoid(a), torch.relu(a)

    def replacement(a):
        return torch.exp(a), torch.abs(a)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3)
    return traced(x), (torch.exp(x) * torch.abs(x), torch.exp(x) + torch.abs(x))


@case("test_subgraph_rewriter (placeholder count mismatch)", raises=True)
def rewriter_count_mismatch(fx):
    def pattern(x):
        return torch.relu(x)

    def replacement(x, y):
        return x + y

    traced = fx.symbolic_trace(lambda x: torch.relu(x) * 2)
    return fx.replace_pattern(traced, pattern, replacement)


# --- split_module (test/test_fx_experimental.py) -----------------------------------


@case("test_split_module")
def split_module_basic(fx):
    class MyModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.param = torch.nn.Parameter(torch.rand(3, 4))
            self.linear = torch.nn.Linear(4, 5)

        def forward(self, x, y):
            z = self.linear(x + self.param).clamp(min=0.0, max=1.0)
            w = self.linear(y).clamp(min=0.0, max=1.0)
            return z + w

    my_module = MyModule()
    traced = fx.symbolic_trace(my_module)
    partition_counter = 0
    partitions = 3

    def mod_partition(node):
        nonlocal partition_counter
        partition = partition_counter % partitions
        partition_counter = (partition_counter + 1) % partitions
        return partition

    qualname_map = {}
    split = fx.split_module(traced, my_module, mod_partition, qualname_map)
    x, y = torch.rand(3, 4), torch.rand(3, 4)
    submodules = sorted(n for n, m in split.named_children())
    return split(x, y), traced(x, y), ops(split), submodules, sorted(qualname_map.items())


@case("test_split_module (kwargs and multiple outputs)")
def split_module_multiple_outputs(fx):
    def f(x, y):
        a = torch.relu(x)
        b = torch.neg(y)
        c = a + b
        return torch.sigmoid(c), a * 2

    traced = fx.symbolic_trace(f)
    split = fx.split_module(traced, None, lambda node: 0 if node.name in ("relu", "neg") else 1)
    x, y = torch.randn(3), torch.randn(3)
    return split(x, y), f(x, y), ops(split), ops(split.submod_0)


@case("test_split_module (get_attr used in a partition)")
def split_module_get_attr(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(3))

        def forward(self, x):
            return torch.relu(x) * self.weight + 1

    m = M()
    traced = fx.symbolic_trace(m)
    split = fx.split_module(traced, m, lambda node: 0 if node.target is torch.relu else 1)
    x = torch.randn(3)
    return split(x), m(x), ops(split), ops(split.submod_1)


@case("test_split_module (operator.getitem across partitions)")
def split_module_getitem(fx):
    def f(x):
        a, b = x.chunk(2)
        return operator.add(a.relu(), b)

    traced = fx.symbolic_trace(f)
    split = fx.split_module(traced, None, lambda node: 0 if node.name == "chunk" else 1)
    x = torch.randn(4)
    return split(x), f(x)
