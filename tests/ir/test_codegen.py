"""Golden printouts of graphs and generated code, and running generated code."""

from __future__ import annotations

import copy
import operator
import os
import pickle
import traceback
from pathlib import Path

import pytest
import torch

import graphlift as gl
from graphlift.ir.passes import eliminate_common_subexpressions, eliminate_dead_code

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/ir/golden/<name>; GRAPHLIFT_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("GRAPHLIFT_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden {path}; write it with GRAPHLIFT_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"{name} changed; rerun with GRAPHLIFT_UPDATE_GOLDEN=1 if intended"
    )


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(8)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(8, 8) for _ in range(2)])
        self.register_buffer("scale", torch.full((8,), 0.5))

    def forward(self, x, mask=None):
        h = self.norm(x)
        for layer in self.layers:
            h = torch.nn.functional.gelu(layer(h))
        q, k = h.chunk(2, dim=-1)
        out = (q.transpose(-2, -1) @ k)[:, 0, ...] * self.scale[:4]
        return {"out": out, "rows": x.shape[0] - 1}


def test_golden_traced_block() -> None:
    gm = gl.symbolic_trace(Block())
    check_golden("block.graph.txt", str(gm.graph) + "\n")
    check_golden("block.code.py", gm.code)


def test_golden_hand_built_graph_with_meta() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    w = g.placeholder("w", default_value=2.0)
    neg = g.call_function(operator.neg, (x,))
    powed = g.call_function(operator.pow, (-1, neg))
    mean = g.call_method("mean", (powed,), {"dim": (0, 1), "keepdim": True})
    sl = g.call_function(operator.getitem, (mean, (slice(None), slice(1, None, 2), None, Ellipsis)))
    g.output((sl, w, torch.float16, float("inf")))
    gm = gl.GraphModule(torch.nn.Module(), g)
    gl.ShapeProp(gm).propagate(torch.randn(3, 5, 4))
    check_golden("hand_built.graph.txt", str(g) + "\n")
    check_golden("hand_built.code.py", gm.code)


def test_generated_code_matches_interpreter_and_eager() -> None:
    block = Block().eval()
    gm = gl.symbolic_trace(block)
    x = torch.randn(3, 5, 8)
    expected = block(x)
    for result in (gm(x), gl.Interpreter(gm).run(x)):
        torch.testing.assert_close(result["out"], expected["out"])
        assert result["rows"] == 2


def test_traceback_shows_the_generated_line() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    g.output(g.call_function(torch.matmul, (x, x)))
    gm = gl.GraphModule(torch.nn.Module(), g)
    with pytest.raises(RuntimeError) as info:
        gm(torch.randn(2, 3))
    text = "".join(traceback.format_exception(info.value))
    assert "matmul = torch.matmul(x, x)" in text


def test_interpreter_error_names_the_node_and_user_line() -> None:
    def f(x):
        return x @ x

    gm = gl.symbolic_trace(f)
    with pytest.raises(RuntimeError) as info:
        gl.Interpreter(gm).run(torch.randn(2, 3))
    notes = "\n".join(info.value.__notes__)
    assert "%matmul = call_function[operator.matmul](%x, %x)" in notes
    assert "test_codegen.py" in notes and "return x @ x" in notes


def test_deepcopy_and_pickle_are_independent_and_equal() -> None:
    gm = gl.symbolic_trace(Block().eval())
    x = torch.randn(2, 3, 8)
    for clone in (copy.deepcopy(gm), pickle.loads(pickle.dumps(gm))):
        assert clone.code == gm.code
        assert type(clone).__name__ == "Block"
        torch.testing.assert_close(clone(x)["out"], gm(x)["out"])
        assert clone.graph is not gm.graph and clone.graph.owning_module is clone
    # Editing the copy does not touch the original's class or graph.
    clone = copy.deepcopy(gm)
    output = next(reversed(clone.graph.nodes))
    output.args = ({"out": output.args[0]["out"], "rows": 0},)
    clone.recompile()
    assert gm(x)["rows"] == 1 and clone(x)["rows"] == 0


def test_dead_code_and_common_subexpressions() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    a = g.call_function(torch.sin, (x,))
    b = g.call_function(torch.sin, (x,))
    g.call_function(torch.cos, (x,))  # dead
    g.call_function(torch.rand, ((2,),))  # dead but random: kept
    g.call_function(torch._assert, (True, "kept"))  # side effect: kept
    s1 = g.call_function(operator.add, (a, 1))
    s2 = g.call_function(operator.add, (b, True))  # 1 vs True promote differently
    g.output((s1, s2))
    assert eliminate_common_subexpressions(g) == 1  # b merged into a
    assert eliminate_dead_code(g) == 1  # cos
    names = [n.name for n in g.nodes]
    assert names == ["x", "sin", "rand", "assert_1", "add", "add_1", "output"]


def test_cse_leaves_graphs_with_mutation_alone() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    a = g.call_method("clone", (x,))
    b = g.call_method("clone", (x,))
    g.call_method("add_", (a, 1))
    g.output(b)
    assert eliminate_common_subexpressions(g) == 0
    gm = gl.GraphModule(torch.nn.Module(), g)
    torch.testing.assert_close(gm(torch.zeros(2)), torch.zeros(2))


def _counting_codegen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    generate = gl.Graph.python_code

    def counted(graph: gl.Graph, root_module: str) -> object:
        calls.append(1)
        return generate(graph, root_module)

    monkeypatch.setattr(gl.Graph, "python_code", counted)
    return calls


def test_code_is_generated_when_first_read_not_when_built(monkeypatch) -> None:
    calls = _counting_codegen(monkeypatch)
    model = Block()
    ep = gl.export(model, (torch.randn(3, 2, 8),))
    assert calls == []  # building the program generated no Python
    code = ep.graph_module.code
    assert len(calls) == 1 and "def forward(self, " in code
    assert ep.graph_module.code == code and len(calls) == 1  # generated once
    x = torch.randn(3, 2, 8)
    torch.testing.assert_close(ep.module()(x)["out"], model(x)["out"])


def test_forward_read_from_the_class_is_the_generated_one() -> None:
    g = gl.Graph()
    x, y = g.placeholder("x"), g.placeholder("y")
    g.output(g.call_function(operator.mul, (x, y)))
    gm = gl.GraphModule(torch.nn.Module(), g)
    forward = type(gm).forward  # what tracers read: the generated function
    assert forward.__code__.co_varnames[: forward.__code__.co_argcount] == ("self", "x", "y")
    other = gl.GraphModule(torch.nn.Module(), copy.deepcopy(g))  # one class per instance
    assert other.forward.__func__ is type(other).forward is not forward
    assert gm(torch.tensor(2.0), torch.tensor(3.0)) == 6.0


def test_graph_edited_before_first_read_is_the_code_generated() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    out = g.output(g.call_function(torch.sin, (x,)))
    gm = gl.GraphModule(torch.nn.Module(), g)
    with g.inserting_before(out):
        cos = g.call_function(torch.cos, (x,))
    out.args = (cos,)
    assert "torch.cos" in gm.code and "torch.sin" in gm.code
    gm.recompile()  # explicit recompile still regenerates at once
    torch.testing.assert_close(gm(torch.zeros(2)), torch.ones(2))
