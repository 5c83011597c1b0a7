"""Graph editing with fx's vocabulary behaves as in torch.fx.

Each edit in ``EDITS`` is written once against the fx API and applied to a
graph traced by the library under test and to one traced by torch.fx. Both
must lint, produce the same nodes (op, name, target) in the same order, and
compute the same values as the edit's own eager definition.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from .corpus import DELIBERATE_TARGET_DIFFERENCES
from .subject import ORACLE


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, y):
        a = self.fc(x) + y
        b = torch.relu(a) + 1
        return b.sum(-1), a


def small_inputs():
    return torch.randn(2, 4), torch.randn(2, 4)


# --- edits (fx idioms) -----------------------------------------------------------


def replace_add_with_mul(lib, gm):
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is operator.add:
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(operator.mul, node.args, node.kwargs)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)


def expected_replace_add_with_mul(module, x, y):
    a = module.fc(x) * y
    b = torch.relu(a) * 1
    return b.sum(-1), a


def insert_tanh_after_linear(lib, gm):
    (linear,) = [n for n in gm.graph.nodes if n.op == "call_module"]
    with gm.graph.inserting_after(linear):
        tanh = gm.graph.call_function(torch.tanh, (linear,))
    linear.replace_all_uses_with(tanh)
    tanh.args = (linear,)  # the idiom: replace_all_uses_with also rewrote tanh's input


def expected_insert_tanh_after_linear(module, x, y):
    a = torch.tanh(module.fc(x)) + y
    return (torch.relu(a) + 1).sum(-1), a


def negate_before_output(lib, gm):
    output = next(n for n in gm.graph.nodes if n.op == "output")
    first = output.args[0][0]
    with gm.graph.inserting_before(output):
        neg = gm.graph.call_function(operator.neg, (first,))
    output.args = ((neg, output.args[0][1]),)


def expected_negate_before_output(module, x, y):
    total, a = module(x, y)
    return -total, a


def swap_method_target(lib, gm):
    """Edit a node in place: change a call_method's target and kwargs."""
    (method,) = [n for n in gm.graph.nodes if n.op == "call_method"]
    method.target = "mean"
    method.kwargs = {"keepdim": True}


def expected_swap_method_target(module, x, y):
    a = module.fc(x) + y
    return (torch.relu(a) + 1).mean(-1, keepdim=True), a


def drop_an_output_and_dce(lib, gm):
    output = next(n for n in gm.graph.nodes if n.op == "output")
    output.args = (output.args[0][0],)
    for node in reversed(list(gm.graph.nodes)):
        if node.op not in ("placeholder", "output") and not node.users:
            gm.graph.erase_node(node)


def expected_drop_an_output_and_dce(module, x, y):
    return module(x, y)[0]


def add_a_placeholder(lib, gm):
    (y,) = [n for n in gm.graph.nodes if n.op == "placeholder" and n.target == "y"]
    with gm.graph.inserting_after(y):
        scale = gm.graph.placeholder("scale")
    output = next(n for n in gm.graph.nodes if n.op == "output")
    with gm.graph.inserting_before(output):
        scaled = gm.graph.call_function(operator.mul, (output.args[0][0], scale))
    output.args = ((scaled, output.args[0][1]),)


def expected_add_a_placeholder(module, x, y, scale):
    total, a = module(x, y)
    return total * scale, a


@dataclass(frozen=True)
class Edit:
    name: str
    apply: Callable
    expected: Callable
    extra_inputs: tuple = ()


EDITS = (
    Edit("replace_add_with_mul", replace_add_with_mul, expected_replace_add_with_mul),
    Edit("insert_tanh_after_linear", insert_tanh_after_linear, expected_insert_tanh_after_linear),
    Edit("negate_before_output", negate_before_output, expected_negate_before_output),
    Edit("swap_method_target", swap_method_target, expected_swap_method_target),
    Edit("drop_an_output_and_dce", drop_an_output_and_dce, expected_drop_an_output_and_dce),
    Edit(
        "add_a_placeholder",
        add_a_placeholder,
        expected_add_a_placeholder,
        extra_inputs=(torch.tensor(3.0),),
    ),
)


def edited(lib, edit: Edit):
    torch.manual_seed(0)
    gm = lib.symbolic_trace(Small())
    edit.apply(lib, gm)
    gm.graph.lint()
    gm.recompile()
    return gm


def nodes_of(gm) -> list[tuple]:
    return [
        (node.op, node.name, DELIBERATE_TARGET_DIFFERENCES.get(node.target, node.target))
        for node in gm.graph.nodes
    ]


def users_of(graph) -> dict[str, list[str]]:
    return {node.name: [user.name for user in node.users] for node in graph.nodes}


@pytest.mark.parametrize("edit", EDITS, ids=[edit.name for edit in EDITS])
def test_edit_matches_torch_fx_and_eager(subject, edit):
    gm = edited(subject, edit)
    reference = edited(ORACLE, edit)
    assert nodes_of(gm) == nodes_of(reference), f"\n{gm.code}\ntorch.fx:\n{reference.code}"
    assert users_of(gm.graph) == users_of(reference.graph)
    x, y = small_inputs()
    torch.manual_seed(0)
    expected = edit.expected(Small(), x, y, *edit.extra_inputs)
    torch.testing.assert_close(gm(x, y, *edit.extra_inputs), expected)
    torch.testing.assert_close(copy.deepcopy(gm)(x, y, *edit.extra_inputs), expected)


def test_recompile_changes_code_and_forward(subject):
    torch.manual_seed(0)
    gm = subject.symbolic_trace(Small())
    before = gm.code
    replace_add_with_mul(subject, gm)
    gm.recompile()
    assert gm.code != before and "add" not in gm.code.split("def forward", 1)[1]
    x, y = small_inputs()
    torch.manual_seed(0)
    torch.testing.assert_close(gm(x, y), expected_replace_add_with_mul(Small(), x, y))


# --- errors ----------------------------------------------------------------------


def test_erasing_a_node_that_has_users_raises(subject):
    gm = subject.symbolic_trace(Small())
    linear = next(n for n in gm.graph.nodes if n.op == "call_module")
    with pytest.raises(RuntimeError, match=linear.name):
        gm.graph.erase_node(linear)
    gm.graph.lint()  # nothing was half-erased


def use_before_definition(gm):
    nodes = list(gm.graph.nodes)
    relu = next(n for n in nodes if n.target is torch.relu)
    linear = next(n for n in nodes if n.op == "call_module")
    linear.args = (relu,)


def dangling_target(gm):
    linear = next(n for n in gm.graph.nodes if n.op == "call_module")
    linear.target = "no_such_module"


def non_string_method(gm):
    method = next(n for n in gm.graph.nodes if n.op == "call_method")
    method.target = torch.sum


# breakage -> (the exception type torch.fx's lint raises, the node it must name)
BREAKAGES = {
    "use_before_definition": (use_before_definition, RuntimeError, "fc"),
    "dangling_call_module_target": (dangling_target, RuntimeError, "fc"),
    "call_method_target_not_a_string": (non_string_method, ValueError, "sum_1"),
}


@pytest.mark.parametrize("breakage, error, node", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_lint_rejects_broken_graphs(subject, breakage, error, node):
    """lint raises what torch.fx raises, and names the offending node."""
    for lib in (ORACLE, subject):  # the oracle proves each breakage is one fx rejects
        gm = lib.symbolic_trace(Small())
        breakage(gm)
        with pytest.raises(error, match=rf"\b{node}\b"):
            gm.graph.lint()


# --- building graphs by hand -----------------------------------------------------


def build_by_hand(lib):
    """The same construction script for both libraries; returns the graph."""
    graph = lib.Graph()
    x = graph.placeholder("x")
    y = graph.placeholder("y", default_value=2.0)
    weight = graph.get_attr("fc.weight")
    linear = graph.call_module("fc", (x,))
    add = graph.call_function(operator.add, (linear, y))
    weight_sum = graph.call_method("sum", (weight,))
    add_1 = graph.call_function(operator.add, (add, weight_sum))
    summed = graph.call_method("sum", (add_1,), {"dim": -1})
    relu = graph.call_function(torch.relu, (summed,))
    first = graph.call_function(operator.getitem, (relu, 0))
    graph.output({"first": first, "all": [relu, add]})
    return graph


class WithFc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)


def test_hand_built_graph_names_and_code_match_torch_fx(subject):
    graph = build_by_hand(subject)
    reference = build_by_hand(ORACLE)
    graph.lint()
    assert [(n.op, n.name) for n in graph.nodes] == [(n.op, n.name) for n in reference.nodes]
    assert users_of(graph) == users_of(reference)
    torch.manual_seed(0)
    gm = subject.GraphModule(WithFc(), graph)
    torch.manual_seed(0)
    gm_reference = ORACLE.GraphModule(WithFc(), reference)
    x = torch.randn(2, 3)
    out, expected = gm(x), gm_reference(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(gm(x, 5.0), gm_reference(x, 5.0))
    source = graph.python_code("self").src
    compile(source, "<graphlift code>", "exec")
    assert "def forward(self, x, y" in source


def test_graph_module_from_a_dict_root_builds_submodule_paths(subject):
    graph = subject.Graph()
    x = graph.placeholder("x")
    fc = graph.call_module("encoder.fc", (x,))
    scale = graph.get_attr("encoder.scale")
    graph.output(graph.call_function(operator.mul, (fc, scale)))
    linear = nn.Linear(3, 3)
    scale_value = torch.tensor([1.0, 2.0, 3.0])
    gm = subject.GraphModule({"encoder.fc": linear, "encoder.scale": scale_value}, graph)
    assert gm.encoder.fc is linear
    assert torch.equal(gm.encoder.scale, scale_value)
    x_value = torch.randn(2, 3)
    torch.testing.assert_close(gm(x_value), linear(x_value) * scale_value)


def test_node_meta_survives_deepcopy(subject):
    gm = subject.symbolic_trace(Small())
    for node in gm.graph.nodes:
        node.meta["tag"] = ["original", node.name]
    clone = copy.deepcopy(gm)
    for node, copied in zip(gm.graph.nodes, clone.graph.nodes, strict=True):
        assert copied.meta["tag"] == node.meta["tag"]
        assert copied is not node


def test_shape_prop_sets_tensor_meta(subject):
    torch.manual_seed(0)
    gm = subject.symbolic_trace(Small())
    x, y = small_inputs()
    subject.ShapeProp(gm).propagate(x, y)
    metas = {n.name: n.meta.get("tensor_meta") for n in gm.graph.nodes}
    assert tuple(metas["fc"].shape) == (2, 4)
    assert metas["fc"].dtype == torch.float32
    assert tuple(metas["sum_1"].shape) == (2,)
    assert isinstance(metas["output"], tuple) or metas["output"] is None


def relu_plus_one(x):
    return torch.relu(x) + 1


def edit_insertion_points(lib):
    """inserting_before(None) means the start, inserting_after(None) the very end;
    replace_all_uses_with(..., delete_user_cb=...) spares the chosen users."""
    gm = lib.symbolic_trace(relu_plus_one)
    graph = gm.graph
    with graph.inserting_before(None):
        first = graph.placeholder("first")
    with graph.inserting_after(None):
        trailing = graph.call_function(torch.neg, (first,))
    order_with_trailing = [n.name for n in graph.nodes]
    graph.erase_node(trailing)
    relu = next(n for n in graph.nodes if n.target is torch.relu)
    with graph.inserting_after(relu):
        tanh = graph.call_function(torch.tanh, (relu,))
    relu.replace_all_uses_with(tanh, delete_user_cb=lambda user: user is not tanh)
    graph.lint()
    gm.recompile()
    return gm, order_with_trailing


def test_insertion_points_and_delete_user_cb(subject):
    gm, order = edit_insertion_points(subject)
    reference, reference_order = edit_insertion_points(ORACLE)
    assert order == reference_order
    assert nodes_of(gm) == nodes_of(reference)
    assert users_of(gm.graph) == users_of(reference.graph)
    x = torch.randn(3)
    torch.testing.assert_close(gm(None, x), torch.tanh(torch.relu(x)) + 1)


def edit_with_node_methods(lib):
    """Node-level editing: move with prepend/append, rewire with replace_input_with,
    update_arg and update_kwarg; walk with next/prev and all_input_nodes."""
    torch.manual_seed(0)
    gm = lib.symbolic_trace(Small())
    nodes = {n.name: n for n in gm.graph.nodes}
    add, relu, add_1 = nodes["add"], nodes["relu"], nodes["add_1"]
    walked = [relu.prev.name, relu.next.name, [n.name for n in add.all_input_nodes]]
    output = next(n for n in gm.graph.nodes if n.op == "output")
    with gm.graph.inserting_before(output):
        doubled = gm.graph.call_function(operator.mul, (add, 2))
    add.append(doubled)  # a real move: from just before the output to right after add
    relu.replace_input_with(add, doubled)
    add_1.update_arg(1, 3)
    nodes["sum_1"].update_kwarg("keepdim", True)
    gm.graph.lint()
    gm.recompile()
    return gm, walked


def expected_node_methods(module, x, y):
    a = module.fc(x) + y
    b = torch.relu(a * 2) + 3
    return b.sum(-1, keepdim=True), a


def test_node_methods_match_torch_fx(subject):
    gm, walked = edit_with_node_methods(subject)
    reference, reference_walked = edit_with_node_methods(ORACLE)
    assert walked == reference_walked
    assert nodes_of(gm) == nodes_of(reference), f"\n{gm.code}\ntorch.fx:\n{reference.code}"
    assert users_of(gm.graph) == users_of(reference.graph)
    x, y = small_inputs()
    torch.manual_seed(0)
    torch.testing.assert_close(gm(x, y), expected_node_methods(Small(), x, y))
