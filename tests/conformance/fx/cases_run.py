"""Interpreter, Transformer, ShapeProp, GraphModule and subgraph-rewriter
cases, rewritten from torch's test/test_fx.py and test/fx/test_subgraph_rewriter.py."""

from __future__ import annotations

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


@case("test_transformer_noop (structured PH input)")
def transformer_structured_input(fx):
    def f(x):
        return x["a"] - x["b"]

    gm = fx.symbolic_trace(f, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    new_gm = fx.Transformer(gm).transform()
    value = {"a": torch.randn(3), "b": torch.randn(3)}
    return new_gm(value), f(value), ops(new_gm)


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
