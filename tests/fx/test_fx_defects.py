"""Where torch.fx 2.13 is wrong, graphlift must match eager PyTorch instead.

Each test states the torch.fx defect. In oracle mode the test pins torch.fx's
actual (wrong) behaviour, so the table notices when torch fixes it; against
graphlift it requires eager semantics.
"""

from __future__ import annotations

import copy
import importlib
import operator
import pickle
import sys

import pytest
import torch
from torch import nn

from .corpus import CASES, AnnotatedSignature, AssertStatement, ConcreteFlag, ParamsAndBuffers
from .harness import assert_same_result, build_module, run, trace
from .subject import IS_ORACLE, ORACLE, ORACLE_PROXIES_BUFFERS

# --- in-place addition through an alias ------------------------------------------


class AddThroughView(nn.Module):
    def forward(self, x):
        row = x[0]
        row += 1
        return x


def test_augmented_add_through_a_view_keeps_eager_semantics(subject):
    """graphlift records ``+=`` as operator.iadd; torch.fx records operator.add.

    With ``add`` the view's update never reaches ``x``, so torch.fx's graph returns
    the unmodified input. graphlift must match eager, including the mutated input.
    """
    gm = subject.symbolic_trace(AddThroughView())
    targets = [node.target for node in gm.graph.nodes if node.op == "call_function"]
    x = torch.randn(3, 4)
    expected, expected_inputs = run(AddThroughView(), (x,))
    actual, actual_inputs = run(gm, (x,))
    if IS_ORACLE:  # pin the torch.fx behaviour graphlift deliberately departs from
        assert operator.add in targets and operator.iadd not in targets
        assert not torch.equal(actual, expected)
        return
    assert operator.iadd in targets and operator.add not in targets
    assert_same_result(actual, expected)
    assert_same_result(actual_inputs, expected_inputs)


# --- assert statements -----------------------------------------------------------


def test_assert_statement_on_a_proxy(subject):
    """fx's documented rule: ``assert proxy_cond`` is recorded as ``torch._assert``.

    torch.fx 2.13 detects the assert by bytecode pattern (``POP_JUMP_IF_TRUE``),
    which Python 3.11 renamed (``POP_JUMP_FORWARD_IF_TRUE``), so on 3.11 torch.fx
    raises TraceError instead; oracle mode pins that. graphlift follows the rule.
    The model lives in corpus.py: pytest rewrites ``assert`` in test modules.
    """
    if IS_ORACLE and sys.version_info[:2] == (3, 11):
        with pytest.raises(ORACLE.TraceError):
            subject.symbolic_trace(AssertStatement())
        return
    gm = subject.symbolic_trace(AssertStatement())
    assert [n.target for n in gm.graph.nodes if n.op == "call_function"].count(torch._assert) == 1
    torch.testing.assert_close(gm(torch.ones(2)), torch.full((2,), 2.0))
    with pytest.raises(AssertionError, match="sum must be positive"):
        gm(-torch.ones(2))


def test_unpickling_leaves_later_traces_working(subject):
    """A pickled graph with a None concrete argument must not break the next
    ``symbolic_trace`` (torch.fx registers a bogus ``wrap`` when unpickling it)."""
    if IS_ORACLE:
        pytest.skip(
            "torch.fx 2.13 fails this (KeyError on the next trace); would poison the session"
        )
    case = next(case for case in CASES if case.name == "concrete_none_argument")
    gm = trace(subject, case, build_module(case))
    pickle.loads(pickle.dumps(gm))
    relu = subject.symbolic_trace(nn.ReLU())
    torch.testing.assert_close(relu(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))


# --- names torch.fx cannot generate code for -------------------------------------


class KeyedHeads(nn.Module):
    """A submodule and a parameter reached through container keys (call_module and
    get_attr targets ``heads.<key>`` and ``scales.<key>``)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.heads = nn.ModuleDict({key: nn.Linear(3, 3)})
        self.scales = nn.ParameterDict({key: nn.Parameter(torch.randn(3))})

    def forward(self, x):
        return self.heads[self.key](x).relu() * self.scales[self.key]


# torch.fx 2.13 generates ``self.heads.class(x)``: a SyntaxError for every keyword.
AWKWARD_KEYS = ("class", "lambda", "None", "import")


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_submodule_and_parameter_named_like_a_keyword(subject, key):
    module = KeyedHeads(key)
    if IS_ORACLE:
        with pytest.raises(SyntaxError):
            subject.symbolic_trace(module)
        return
    gm = subject.symbolic_trace(module)
    x = torch.randn(2, 3)
    torch.testing.assert_close(gm(x), module(x))
    torch.testing.assert_close(pickle.loads(pickle.dumps(gm))(x), module(x))
    torch.testing.assert_close(copy.deepcopy(gm)(x), module(x))


# --- concrete arguments keep their keyword ---------------------------------------


def test_concrete_argument_can_still_be_passed_by_keyword(subject):
    """torch.fx renames the placeholder (``use_relu`` -> ``use_relu_1``), so passing the
    argument by its own keyword raises TypeError."""
    torch.manual_seed(0)
    module = ConcreteFlag().eval()
    gm = subject.symbolic_trace(module, concrete_args={"use_relu": True})
    x = torch.randn(2, 4)
    if IS_ORACLE:
        with pytest.raises(TypeError, match="use_relu"):
            gm(x, use_relu=True)
        return
    torch.testing.assert_close(gm(x, use_relu=True), module(x, use_relu=True))


def test_string_annotations_pickle(subject):
    """With ``from __future__ import annotations`` placeholder types are strings;
    torch.fx's pickler then fails (AttributeError: 'str' has no ``__name__``)."""
    gm = subject.symbolic_trace(AnnotatedSignature())
    if IS_ORACLE:
        assert all(isinstance(n.type, str) for n in gm.graph.nodes if n.op == "placeholder")
        with pytest.raises(AttributeError, match="__name__"):
            pickle.dumps(gm)
        return
    x = torch.randn(2, 3)
    torch.testing.assert_close(pickle.loads(pickle.dumps(gm))(x), (x + 1, x * 2))


def test_non_persistent_buffers_stay_out_of_the_state_dict(subject):
    """torch.fx re-registers every buffer as persistent, so the GraphModule's
    state_dict gains keys the user's module does not have (strict loading fails)."""
    module = ParamsAndBuffers()
    gm = subject.symbolic_trace(module)
    if IS_ORACLE:
        assert "not_saved" in gm.state_dict() and "not_saved" not in module.state_dict()
        return
    assert "not_saved" not in gm.state_dict()
    gm.load_state_dict(module.state_dict(), strict=True)


def takes_self(self, x):
    """A plain function whose first parameter happens to be called ``self``."""
    return self * 2 + x


def test_function_root_with_a_parameter_named_self(subject):
    """torch.fx merges the parameter with the GraphModule's own ``self``: it generates
    ``def forward(self, x): mul = self * 2``, which takes one argument too few."""
    gm = subject.symbolic_trace(takes_self)
    a, b = torch.randn(2), torch.randn(2)
    if IS_ORACLE:
        with pytest.raises(TypeError, match="positional"):
            gm(a, b)
        return
    torch.testing.assert_close(gm(a, b), takes_self(a, b))


class SlicesBufferByLength(nn.Module):
    """The nanoGPT pattern: a registered causal mask sliced by the input's length."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.tril(torch.ones(8, 8, dtype=torch.bool)))

    def forward(self, x):
        length = x.shape[1]
        return x.masked_fill(~self.mask[:length, :length], 0.0)


def test_buffer_sliced_by_a_traced_length(subject):
    """torch.fx as shipped does not proxy buffers, so ``mask[:length]`` slices a real
    tensor with a Proxy: TypeError. (See ORACLE_PROXIES_BUFFERS in subject.py.)"""
    module = SlicesBufferByLength()
    if IS_ORACLE and not ORACLE_PROXIES_BUFFERS:
        with pytest.raises(TypeError, match="slice indices"):
            subject.symbolic_trace(module)
        return
    gm = subject.symbolic_trace(module)
    for length in (3, 8):
        x = torch.randn(2, length, length)
        torch.testing.assert_close(gm(x), module(x))


# placeholder target -> what torch.fx 2.13 raises when the GraphModule runs
SHADOWING_PLACEHOLDERS = {
    "torch": TypeError,  # ``def forward(self, torch, x)`` hides the torch module
    "float": None,  # graphlift's code writes float('inf'); torch.fx's writes inf
    "input": None,  # works in torch.fx: renamed inside the body, kept in the signature
    "operator": None,
}


@pytest.mark.parametrize("name", SHADOWING_PLACEHOLDERS)
def test_placeholder_named_like_a_global_of_the_generated_code(subject, name):
    """A hand-built graph's placeholder keeps its name as the keyword of ``forward``
    and must not shadow what the generated code refers to."""
    lib = ORACLE if IS_ORACLE else importlib.import_module("graphlift.ir")
    graph = lib.Graph()
    first, second = graph.placeholder(name), graph.placeholder("x")
    added = graph.call_function(operator.add, (first, second))
    graph.output(
        graph.call_function(operator.mul, (graph.call_function(torch.relu, (added,)), float("inf")))
    )
    gm = lib.GraphModule(torch.nn.Module(), graph)
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5])
    expected = torch.relu(a + b) * float("inf")
    if IS_ORACLE and SHADOWING_PLACEHOLDERS[name]:
        with pytest.raises(SHADOWING_PLACEHOLDERS[name]):
            gm(a, b)
        return
    torch.testing.assert_close(gm(a, b), expected)
    torch.testing.assert_close(gm(**{name: a, "x": b}), expected)


DEFAULT_SCALE = torch.tensor([2.0, 3.0])


class TensorDefault(nn.Module):
    def forward(self, x, scale=DEFAULT_SCALE, dims=(0,), dtype=torch.float64, fill=float("nan")):
        return (x * scale).to(dtype).sum(dims).nan_to_num(nan=fill)


def test_tensor_default_argument(subject):
    """A tensor as a parameter default: torch.fx generates ``scale = _tensor_constant0``
    in the signature, where that name does not exist (NameError)."""
    if IS_ORACLE:
        with pytest.raises(NameError, match="_tensor_constant0"):
            subject.symbolic_trace(TensorDefault())
        return
    gm = subject.symbolic_trace(TensorDefault())
    x = torch.randn(3, 2)
    torch.testing.assert_close(gm(x), TensorDefault()(x))
    torch.testing.assert_close(gm(x, torch.ones(2)), TensorDefault()(x, torch.ones(2)))
    torch.testing.assert_close(pickle.loads(pickle.dumps(gm))(x), TensorDefault()(x))


class ReshapeTo(nn.Module):
    def forward(self, x, shape=(2, 3)):
        return x.reshape(shape) * 2


def test_tuple_concrete_argument_is_specialized_and_checked(subject):
    """torch.fx generates invalid code for a tuple in concrete_args (SyntaxError).
    Like every other concrete value (``flag == True`` -> torch._assert), a tuple must
    be checked when the GraphModule runs, not silently baked in."""
    if IS_ORACLE:
        with pytest.raises(SyntaxError):
            subject.symbolic_trace(ReshapeTo(), concrete_args={"shape": (3, 2)})
        return
    gm = subject.symbolic_trace(ReshapeTo(), concrete_args={"shape": (3, 2)})
    x = torch.randn(6)
    torch.testing.assert_close(gm(x, (3, 2)), ReshapeTo()(x, (3, 2)))
    with pytest.raises(AssertionError):
        gm(x, (2, 3))


class MaskedAssignment(nn.Module):
    def forward(self, x):
        y = x.clone()
        y[y < 0] = 0.0
        return y * 2


def test_item_assignment_on_a_proxy(subject):
    """torch.fx's Proxy has no ``__setitem__`` (TypeError); graphlift records
    ``operator.setitem`` (README: deliberate differences)."""
    if IS_ORACLE:
        with pytest.raises(TypeError, match="item assignment"):
            subject.symbolic_trace(MaskedAssignment())
        return
    gm = subject.symbolic_trace(MaskedAssignment())
    assert operator.setitem in [n.target for n in gm.graph.nodes]
    x = torch.randn(4, 3)
    torch.testing.assert_close(gm(x), MaskedAssignment()(x))
    torch.testing.assert_close(pickle.loads(pickle.dumps(gm))(x), MaskedAssignment()(x))


def test_concrete_argument_defaults_to_the_traced_value(subject):
    """torch.fx keeps the user's default (``use_relu=True``) on a graph specialized to
    ``use_relu=False``, so ``gm(x)`` fails its own check; graphlift defaults the input
    to the traced value and still rejects other values (README)."""
    torch.manual_seed(0)
    module = ConcreteFlag().eval()
    gm = subject.symbolic_trace(module, concrete_args={"use_relu": False})
    x = torch.randn(2, 4)
    if IS_ORACLE:
        with pytest.raises(AssertionError):
            gm(x)
        return
    torch.testing.assert_close(gm(x), module(x, use_relu=False))
    with pytest.raises(AssertionError):
        gm(x, True)
