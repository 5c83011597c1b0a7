"""``graphlift.fx.passes.graph_drawer.FxGraphDrawer`` draws what torch.fx's draws.

Differential: torch.fx's ``FxGraphDrawer`` is the oracle. On the same graph
(graphlift's trace handed to torch.fx with ``to_fx``, which keeps node names,
targets and ``meta``) both drawers must give the same graphs, boxes, edges and
label fields; on torch.fx's own trace of a module whose trace graphlift
reproduces, the same boxes and edges. The SVG graphviz makes must be XML that
names every node.
"""

from __future__ import annotations

import operator
import shutil
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

import graphlift as gl
from graphlift.errors import GraphDrawingError, GraphvizNotFoundError
from graphlift.fx.passes import graphviz
from graphlift.fx.passes.graph_drawer import FxGraphDrawer
from graphlift.interop import to_fx

from .corpus import CASES
from .harness import build_module, fresh_inputs

pydot = pytest.importorskip("pydot")
torch_drawer = pytest.importorskip("torch.fx.passes.graph_drawer")
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz's dot is not installed"
)

# fields of a label whose text both drawers derive the same way from the node
COMPARED_FIELDS = ("name", "op_code", "num_users", "dtype", "shape", "requires_grad", "stride")
DRAWN_CASES = [case for case in CASES if case.concrete_args is None][:24]


def boxes_and_edges(dot_graph) -> tuple[set[str], set[tuple[str, str]]]:
    boxes = {node.get_name().strip('"') for node in dot_graph.get_nodes()}
    boxes -= {"node", "edge", "graph"}  # pydot's default-attribute pseudo nodes
    edges = {
        (edge.get_source().strip('"'), edge.get_destination().strip('"'))
        for edge in dot_graph.get_edges()
    }
    return boxes, edges


def label_fields(dot_graph) -> dict[str, dict[str, str]]:
    """Box name -> {field: text} for the ``key=value`` fields of its record label."""
    fields: dict[str, dict[str, str]] = {}
    for node in dot_graph.get_nodes():
        label = (node.get("label") or "").strip('"')
        if not label.startswith("{name="):
            continue  # parameter and buffer boxes: torch.fx's buffer labels lose the name
        parts = label.strip("{}").replace("\\n", "").replace("\n", "").split("|")
        pairs = (part.split("=", 1) for part in parts if "=" in part)
        fields[node.get_name().strip('"')] = {
            key: value for key, value in pairs if key in COMPARED_FIELDS
        }
    return fields


def drawn_pair(case):
    torch.manual_seed(0)
    module = build_module(case)
    gm = gl.symbolic_trace(module)
    fx_gm = to_fx(gm, checks=False)
    gl.ShapeProp(gm).propagate(*fresh_inputs(case))
    ShapeProp(fx_gm).propagate(*fresh_inputs(case))
    return gm, FxGraphDrawer(gm, case.name), torch_drawer.FxGraphDrawer(fx_gm, case.name)


@pytest.mark.parametrize("case", DRAWN_CASES, ids=lambda case: case.name)
def test_same_drawing_as_torch_fx_on_the_same_graph(case) -> None:
    gm, ours, theirs = drawn_pair(case)
    assert ours.get_all_dot_graphs().keys() == theirs.get_all_dot_graphs().keys()
    for key, dot_graph in theirs.get_all_dot_graphs().items():
        drawn = ours.get_all_dot_graphs()[key]
        assert boxes_and_edges(drawn) == boxes_and_edges(dot_graph), key
        labels = label_fields(drawn)
        drawn_module = gm if key == case.name else getattr(gm, key.removeprefix(f"{case.name}_"))
        assert labels.keys() == {node.name for node in drawn_module.graph.nodes}
        assert labels == label_fields(dot_graph), key


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 5)
        self.norm = nn.BatchNorm1d(5)

    def forward(self, x, y):
        hidden = torch.relu(self.norm(self.linear(x)))
        return hidden.sum(dim=-1, keepdim=True) + y.view(-1, 1).clamp(min=0.0)


@pytest.mark.parametrize("options", [{}, {"ignore_parameters_and_buffers": True}])
def test_same_boxes_and_edges_as_torch_fx_on_its_own_trace(options) -> None:
    ours = FxGraphDrawer(gl.symbolic_trace(Net()), "net", **options).get_dot_graph()
    theirs = torch_drawer.FxGraphDrawer(torch.fx.symbolic_trace(Net()), "net", **options)
    assert boxes_and_edges(ours) == boxes_and_edges(theirs.get_dot_graph())
    labels = label_fields(ours)
    assert labels["linear"]["op_code"].startswith("call_moduletorch.nn.modules.linear.Linear")
    assert "linear.weight" in boxes_and_edges(ours)[0] or options


def test_submodule_graphs_of_split_module() -> None:
    gm = gl.symbolic_trace(Net())
    split = gl.fx.passes.split_module(gm, gm, lambda node: 0 if node.name != "add" else 1)
    fx_split = to_fx(split, checks=False)
    for submodule in ("submod_0", "submod_1"):
        setattr(fx_split, submodule, to_fx(getattr(split, submodule), checks=False))
    ours = FxGraphDrawer(split, "split")
    theirs = torch_drawer.FxGraphDrawer(fx_split, "split")
    assert set(ours.get_all_dot_graphs()) == {"split", "split_submod_0", "split_submod_1"}
    assert ours.get_all_dot_graphs().keys() == theirs.get_all_dot_graphs().keys()
    for submodule in ("submod_0", "submod_1"):
        drawn = ours.get_submod_dot_graph(submodule)
        assert boxes_and_edges(drawn) == boxes_and_edges(theirs.get_submod_dot_graph(submodule))
    assert ours.get_dot_graph("submod_1") is ours.get_submod_dot_graph("submod_1")
    assert ours.get_dot_graph() is ours.get_main_dot_graph()


def test_the_svg_is_xml_naming_every_node(tmp_path) -> None:
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed")
    gm = gl.symbolic_trace(Net())
    drawer = FxGraphDrawer(gm, "net")
    svg = drawer.get_dot_graph().create_svg()
    titles = {
        element.text for element in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}title")
    }
    assert {node.name for node in gm.graph.nodes} <= titles
    assert {"linear.weight", "norm.running_mean", "linear->norm"} <= titles
    drawer.get_dot_graph().write_svg(str(tmp_path / "net.svg"))
    assert ET.parse(tmp_path / "net.svg").getroot().tag.endswith("svg")


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 4)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda a: a.sin(), lambda a: a.cos(), (self.linear(x),))


def test_exported_program_with_symbolic_shapes_and_bodies() -> None:
    batch = gl.Dim("batch", min=2, max=64)
    ep = gl.export(Branchy(), (torch.randn(2, 3),), dynamic_shapes={"x": {0: batch}})
    drawer = FxGraphDrawer(ep, "ep", parse_stack_trace=True)
    assert set(drawer.get_all_dot_graphs()) == {"ep", "ep_true_graph_0", "ep_false_graph_0"}
    boxes, edges = boxes_and_edges(drawer.get_dot_graph())
    assert boxes == {node.name for node in ep.graph.nodes}
    assert ("p_linear_weight", "linear") in edges
    labels = label_fields(drawer.get_dot_graph())
    symbol = str(ep.graph.find_nodes(op="placeholder")[-1].meta["val"].shape[0])
    assert labels["x"]["shape"] == f"({symbol}, 3)"
    assert labels["linear"]["dtype"] == "torch.float32"
    assert "|file=" in drawer.get_dot_graph().get_node("linear")[0].get("label")
    assert "target=aten.sin.default" in drawer.get_dot_graph("true_graph_0").to_string()


@needs_dot
def test_arguments_with_record_specials_still_lay_out() -> None:
    graph = gl.Graph()
    x = graph.placeholder("x")
    picked = graph.call_function(operator.getitem, (x, '<{"a|b"}>'))
    graph.output(graph.call_method("get", (picked, [1] * 12, {"k": "|"})))
    dot_graph = FxGraphDrawer(gl.GraphModule(nn.Module(), graph), "specials").get_dot_graph()
    svg = ET.fromstring(dot_graph.create_svg())  # dot refuses an unbalanced record label
    texts = " ".join(element.text or "" for element in svg.iter())
    assert '<{"a|b"}>' in texts and "total_len=12" in texts


def test_missing_pydot_is_a_typed_error(monkeypatch) -> None:
    monkeypatch.setattr(graphviz, "pydot", None)
    with pytest.raises(GraphDrawingError, match="pip install pydot") as caught:
        FxGraphDrawer(gl.symbolic_trace(Net()), "net")
    assert isinstance(caught.value, RuntimeError)  # as torch.fx's drawer raises


def test_missing_dot_program_is_a_typed_error(monkeypatch, tmp_path) -> None:
    dot_graph = FxGraphDrawer(gl.symbolic_trace(Net()), "net").get_dot_graph()
    source = dot_graph.to_string()  # the dot source needs no graphviz
    assert source.startswith("digraph net {")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz") as caught:
        dot_graph.create_svg()
    assert isinstance(caught.value, FileNotFoundError)  # as pydot raises
    with pytest.raises(GraphvizNotFoundError):
        dot_graph.write_svg(str(tmp_path / "net.svg"))


def test_something_not_a_graph_is_refused() -> None:
    with pytest.raises(AttributeError, match="GraphModule or an ExportedProgram"):
        FxGraphDrawer(Net(), "net")
