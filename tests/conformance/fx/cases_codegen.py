"""Custom code generation (``CodeGen``, ``graph.set_codegen``, ``on_generate_code``)
and ``Graph(tracer_cls=...)``, rewritten from torch's test/test_fx.py
(``test_custom_codegen*``, ``test_interpreter_with_codegen``, ``test_pytree``,
``test_lineno_map``, ``test_deepcopy_graph_with_tracer_cls``) and
test/fx/test_fx_codegen_api.py."""

from __future__ import annotations

import copy
import pickle

import torch

from .adapter import case, names


def list_codegen(fx, *, list_output: bool = False):
    """torch's ListCodeGen: forward takes one list of the inputs (and returns a list)."""

    class ListCodeGen(fx.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return f"""
def forward(self, args_list: List[torch.Tensor]){maybe_return_annotation}:
    {", ".join(free_vars)} = args_list"""

        def additional_globals(self):
            return [("List", list)]

        def process_inputs(self, *inputs):
            assert len(inputs) == 1
            return inputs[0]

    class ListOutputCodeGen(ListCodeGen):
        def generate_output(self, output_args):
            return f"return list({output_args!r})"

        def process_outputs(self, outputs):
            return list(outputs)

    return ListOutputCodeGen() if list_output else ListCodeGen()


def add(a, b):
    return a + b


def traced_taking_a_list(fx, fn, *, list_output: bool = False):
    gm = fx.symbolic_trace(fn)
    gm.graph.set_codegen(list_codegen(fx, list_output=list_output))
    gm.recompile()
    return gm


def add_twice(a, b):
    a = a + b
    b = a + b
    return a, b


@case("test_custom_codegen")
def custom_codegen(fx):
    nf = fx.symbolic_trace(add)
    vals = [torch.randn(3), torch.randn(3)]
    before = nf(*vals)
    nf.graph.set_codegen(list_codegen(fx))
    nf.recompile()
    bare = fx.GraphModule({}, copy.deepcopy(nf.graph))
    bare.graph.set_codegen(fx.CodeGen())
    bare.recompile()
    processed = nf.graph.process_outputs(bare(*nf.graph.process_inputs(vals)))
    return before, nf(vals), processed, add(*vals), "args_list" in nf.code


@case("test_custom_codegen (the old calling convention is gone)", raises=True)
def custom_codegen_refuses_old_call(fx):
    nf = traced_taking_a_list(fx, add)
    return nf(torch.randn(3), torch.randn(3))


@case("test_custom_codegen_with_transformer")
def custom_codegen_with_transformer(fx):
    nf = traced_taking_a_list(fx, add)
    vals = [torch.randn(3), torch.randn(3)]
    transformed = fx.Transformer(nf).transform()
    return nf(vals), transformed(vals), "args_list" in transformed.code


@case("test_interpreter_with_codegen")
def interpreter_with_codegen(fx):
    nf = traced_taking_a_list(fx, add_twice, list_output=True)
    vals = [torch.randn(3), torch.randn(3)]
    interpreted = fx.Interpreter(nf).run(vals)
    return type(interpreted).__name__, interpreted, nf(vals), list(add_twice(*vals))


@case("test_interpreter_with_codegen (enable_io_processing=False)")
def interpreter_without_io_processing(fx):
    nf = traced_taking_a_list(fx, add_twice, list_output=True)
    vals = [torch.randn(3), torch.randn(3)]
    raw = fx.Interpreter(nf).run(*vals, enable_io_processing=False)
    return type(raw).__name__, raw


@case("TestFXCodegenAPI.test_graph_set_codegen")
def graph_set_codegen_processing_error(fx):
    class StrictListCodeGen(fx.CodeGen):
        def gen_fn_def(self, free_vars, maybe_return_annotation):
            return f"""def forward(self, args_list){maybe_return_annotation}:
    {", ".join(free_vars)} = args_list"""

        def process_inputs(self, *inputs):
            if len(inputs) != 1:
                raise RuntimeError("Expected exactly one input")
            return inputs[0]

    gm = fx.symbolic_trace(add)
    gm.graph.set_codegen(StrictListCodeGen())
    gm.recompile()
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    try:
        gm.graph.process_inputs(x, y)
        refused = False
    except RuntimeError:
        refused = True
    return gm([x, y]), x + y, refused, fx.Interpreter(gm).run([x, y])


@case("TestFXCodegenAPI.test_graph_python_code_returns_python_code")
def graph_python_code_object(fx):
    def fn(x, y):
        return torch.relu(x + y)

    code = fx.symbolic_trace(fn).graph.python_code("self")
    return isinstance(code.src, str), isinstance(code.globals, dict), "def forward" in code.src


@case("test_pytree (a plain CodeGen flattens a structured input's graph)")
def plain_codegen_on_structured_inputs(fx):
    def f_dict_add(x):
        return x["a"] + sum(x["z"])

    structure = {"a": fx.PH, "z": (fx.PH, fx.PH)}
    nf = fx.symbolic_trace(f_dict_add, concrete_args={"x": structure})
    val = {"a": torch.randn(3), "z": (torch.randn(3), torch.randn(3))}
    bare = fx.GraphModule({}, copy.deepcopy(nf.graph))
    bare.graph.set_codegen(fx.CodeGen())
    bare.recompile()
    flat = nf.graph.process_inputs(val)
    result = nf.graph.process_outputs(bare(*flat))
    return len(flat), result, nf(val), f_dict_add(val)


@case("test_lineno_map (on_generate_code)")
def on_generate_code_transforms_the_body(fx):
    def fn(a, b):
        return torch.sin(a) + torch.cos(b)

    gm = fx.symbolic_trace(fn)
    gm.graph.on_generate_code(lambda _: lambda body: ["marker = 1\n", *body])
    gm.recompile()
    marked = "marker = 1" in gm.code
    x = torch.randn(3)
    result = gm(x, x)
    with gm.graph.on_generate_code(lambda previous: lambda body: ["other = 2\n", *previous(body)]):
        gm.recompile()
        both = ("other = 2" in gm.code, "marker = 1" in gm.code)
    gm.recompile()
    return marked, result, fn(x, x), both, "other = 2" in gm.code, "marker = 1" in gm.code


@case("test_deepcopy_graph_with_tracer_cls")
def deepcopy_graph_with_tracer_cls(fx):
    class TestTracer(fx.Tracer):
        def is_leaf_module(self, module, name):
            return True

    g = fx.Graph(tracer_cls=TestTracer)
    g.output(g.placeholder("x"))
    h = copy.deepcopy(g)
    return h._tracer_cls is not None, g._tracer_cls == h._tracer_cls, names(h)


@case("Graph(tracer_cls=...) is the tracer that made the graph")
def traced_graph_knows_its_tracer(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1

    graph = fx.Tracer().trace(M())
    return graph._tracer_cls is fx.Tracer


@case("set_codegen survives deepcopy and pickling of the GraphModule")
def codegen_survives_copies(fx):
    gm = fx.symbolic_trace(add)
    gm.graph.set_codegen(fx.CodeGen())
    gm.recompile()
    vals = (torch.randn(3), torch.randn(3))
    copied = copy.deepcopy(gm)
    loaded = pickle.loads(pickle.dumps(gm))
    return copied(*vals), loaded(*vals), type(copied.graph._codegen).__name__ == "CodeGen"
