"""Property tests: random hand-built graphs mean the same thing however they run.

Hypothesis draws a small program over one to three tensor inputs: a sequence of
steps (operator.add/mul/sub/neg, torch.relu/tanh/sigmoid, torch.cat of two,
getitem on a chunk, ``.sum(dim)``, ``.transpose(0, 1)``, int constants, and
exact repeats of earlier steps so that CSE has work to do). The same program is
evaluated three ways, and must agree:

* eagerly, step by step, with torch — the oracle, independent of any graph code;
* by the generated Python code of ``GraphModule(nn.Module(), graph)``;
* by ``Interpreter(gm).run``.

Dead-code and common-subexpression elimination must preserve the results and
erase exactly the nodes an independent count says they should. Deep copies and
pickles compute the same; printing is deterministic; and constants of every kind
(nan, -0.0, big ints, strings, slices, dtypes, devices, nested containers) come
back unchanged through the generated code.

The library is chosen in one place below: graphlift's IR by default, torch.fx
when ``GRAPHLIFT_TEST_ORACLE_ONLY=1`` (every test must pass there too).
"""

from __future__ import annotations

import copy
import operator
import os
import pickle
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.fx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.fx.passes.dialect.common.cse_pass import CSEPass

# --- the library under test (the one place it is chosen) -------------------------


def _torch_fx_dce(graph) -> int:
    before = len(graph.nodes)
    graph.eliminate_dead_code()
    return before - len(graph.nodes)


def _torch_fx_cse(gm):
    """torch.fx's CSE returns a new GraphModule; returns (module, nodes erased)."""
    result = CSEPass()(gm)
    return result.graph_module, len(gm.graph.nodes) - len(result.graph_module.graph.nodes)


def _graphlift_cse(gm):
    erased = PASSES.eliminate_common_subexpressions(gm.graph)
    gm.recompile()
    return gm, erased


ORACLE_ONLY = os.environ.get("GRAPHLIFT_TEST_ORACLE_ONLY") == "1"
if ORACLE_ONLY:
    IR = torch.fx
    PASSES = SimpleNamespace(eliminate_dead_code=_torch_fx_dce)
    cse = _torch_fx_cse
else:
    IR = pytest.importorskip("graphlift.ir")
    PASSES = pytest.importorskip("graphlift.ir.passes")
    cse = _graphlift_cse


# --- programs --------------------------------------------------------------------

MAX_DIM = 16
UNARY = {"neg": operator.neg, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
BINARY = {"add": operator.add, "mul": operator.mul, "sub": operator.sub}


@dataclass(frozen=True)
class Step:
    """One operation. ``operands`` index earlier values (inputs first, then steps)."""

    kind: str
    operands: tuple[int, ...]
    constant: Any = None  # int operand, dim, (dim, keepdim), or getitem index
    constant_first: bool = False  # for binary ops with an int: ``c - x`` instead of ``x - c``


@dataclass(frozen=True)
class Program:
    input_shape: tuple[int, ...]
    num_inputs: int
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]


def _with_dim(shape: tuple[int, ...], dim: int, size: int | None) -> tuple[int, ...]:
    """``shape`` with dimension ``dim`` resized, or removed when ``size`` is None."""
    return (*shape[:dim], *(() if size is None else (size,)), *shape[dim + 1 :])


def _result_shape(step: Step, shapes: list[Any]) -> Any:
    """Shape of a step's value: a tuple for tensors, ("chunks", shape) for chunk()."""
    first = shapes[step.operands[0]]
    if step.kind in UNARY or step.kind in BINARY:
        return first
    if step.kind == "cat":
        dim = step.constant
        return _with_dim(first, dim, first[dim] * 2)
    if step.kind == "chunk":
        dim = step.constant
        return ("chunks", _with_dim(first, dim, first[dim] // 2))
    if step.kind == "getitem":
        return first[1]
    if step.kind == "sum":
        dim, keepdim = step.constant
        return _with_dim(first, dim, 1) if keepdim else _with_dim(first, dim, None)
    if step.kind == "transpose":
        return (first[1], first[0], *first[2:])
    raise AssertionError(step.kind)


@st.composite
def programs(draw) -> Program:
    input_shape = draw(st.sampled_from([(4,), (2, 4), (4, 4), (3, 2), (2, 2, 2)]))
    num_inputs = draw(st.integers(1, 3))
    shapes: list[Any] = [input_shape] * num_inputs
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 12))):
        tensors = [i for i, s in enumerate(shapes) if s[0] != "chunks"]
        chunks = [i for i, s in enumerate(shapes) if s[0] == "chunks"]
        kinds = [*UNARY, *BINARY, "cat", "chunk", "sum", "transpose"]
        kinds += ["getitem"] * bool(chunks) + ["repeat"] * bool(steps)
        kind = draw(st.sampled_from(kinds))
        if kind == "repeat":
            step = draw(st.sampled_from(steps))
        elif kind == "getitem":
            step = Step("getitem", (draw(st.sampled_from(chunks)),), draw(st.integers(0, 1)))
        else:
            step = _draw_tensor_step(draw, kind, tensors, shapes)
            if step is None:
                continue
        steps.append(step)
        shapes.append(_result_shape(step, shapes))
    tensors = [i for i, s in enumerate(shapes) if s[0] != "chunks"]
    outputs = draw(st.lists(st.sampled_from(tensors), min_size=1, max_size=3, unique=True))
    return Program(input_shape, num_inputs, tuple(steps), tuple(outputs))


def _draw_tensor_step(draw, kind: str, tensors: list[int], shapes: list[Any]) -> Step | None:
    """A step of ``kind`` over drawn tensor operands, or None if no operand fits."""
    x = draw(st.sampled_from(tensors))
    shape = shapes[x]
    if kind in UNARY:
        return Step(kind, (x,))
    if kind in BINARY:
        partners = [i for i in tensors if shapes[i] == shape]
        if draw(st.booleans()):
            return Step(kind, (x,), draw(st.integers(-3, 3)), constant_first=draw(st.booleans()))
        return Step(kind, (x, draw(st.sampled_from(partners))))
    dim = draw(st.integers(0, len(shape) - 1))
    if kind == "cat":
        partners = [i for i in tensors if shapes[i] == shape]
        fits = shape[dim] * 2 <= MAX_DIM
        return Step("cat", (x, draw(st.sampled_from(partners))), dim) if fits else None
    if kind == "chunk":
        return Step("chunk", (x,), dim) if shape[dim] % 2 == 0 else None
    if kind == "sum":
        keepdim = draw(st.booleans()) or len(shape) == 1
        return Step("sum", (x,), (dim, keepdim))
    if kind == "transpose":
        return Step("transpose", (x,)) if len(shape) >= 2 else None
    raise AssertionError(kind)


# --- three ways to run a program --------------------------------------------------


def evaluate_eagerly(program: Program, inputs: tuple[torch.Tensor, ...]) -> tuple:
    """The oracle: plain torch, no graph involved."""
    values: list[Any] = list(inputs)
    for step in program.steps:
        args = [values[i] for i in step.operands]
        if step.kind in UNARY:
            value = UNARY[step.kind](args[0])
        elif step.kind in BINARY:
            if len(args) == 2:
                value = BINARY[step.kind](*args)
            elif step.constant_first:
                value = BINARY[step.kind](step.constant, args[0])
            else:
                value = BINARY[step.kind](args[0], step.constant)
        elif step.kind == "cat":
            value = torch.cat([args[0], args[1]], step.constant)
        elif step.kind == "chunk":
            value = args[0].chunk(2, dim=step.constant)
        elif step.kind == "getitem":
            value = args[0][step.constant]
        elif step.kind == "sum":
            dim, keepdim = step.constant
            value = args[0].sum(dim, keepdim=keepdim)
        else:
            value = args[0].transpose(0, 1)
        values.append(value)
    return tuple(values[i] for i in program.outputs)


def build_graph(program: Program):
    graph = IR.Graph()
    values: list[Any] = [graph.placeholder(f"x{i}") for i in range(program.num_inputs)]
    for step in program.steps:
        args = tuple(values[i] for i in step.operands)
        if step.kind in UNARY:
            node = graph.call_function(UNARY[step.kind], args)
        elif step.kind in BINARY:
            if len(args) == 1:
                args = (step.constant, *args) if step.constant_first else (*args, step.constant)
            node = graph.call_function(BINARY[step.kind], args)
        elif step.kind == "cat":
            node = graph.call_function(torch.cat, ([args[0], args[1]], step.constant))
        elif step.kind == "chunk":
            node = graph.call_method("chunk", (args[0], 2), {"dim": step.constant})
        elif step.kind == "getitem":
            node = graph.call_function(operator.getitem, (args[0], step.constant))
        elif step.kind == "sum":
            dim, keepdim = step.constant
            node = graph.call_method("sum", (args[0], dim), {"keepdim": keepdim})
        else:
            node = graph.call_method("transpose", (args[0], 0, 1))
        values.append(node)
    graph.output(tuple(values[i] for i in program.outputs))
    return graph


def make_inputs(program: Program) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(len(program.steps))
    return tuple(
        torch.randn(program.input_shape, generator=generator) for _ in range(program.num_inputs)
    )


def graph_module(program: Program):
    return IR.GraphModule(torch.nn.Module(), build_graph(program))


# --- independent counts ----------------------------------------------------------


def count_dead_steps(program: Program) -> int:
    """Steps whose value does not reach an output (walking operands back from outputs)."""
    live = set(program.outputs)
    for index in range(len(program.steps) - 1, -1, -1):
        value = program.num_inputs + index
        if value in live:
            live.update(program.steps[index].operands)
    return sum(program.num_inputs + i not in live for i in range(len(program.steps)))


def count_duplicate_steps(program: Program) -> int:
    """Steps equal to an earlier one once their operands are canonicalized (hash-consing)."""
    canonical = list(range(program.num_inputs))
    seen: dict[tuple, int] = {}
    duplicates = 0
    for index, step in enumerate(program.steps):
        key = (
            step.kind,
            tuple(canonical[i] for i in step.operands),
            step.constant,
            step.constant_first,
        )
        value = program.num_inputs + index
        if key in seen:
            duplicates += 1
            canonical.append(seen[key])
        else:
            seen[key] = value
            canonical.append(value)
    return duplicates


# --- properties ------------------------------------------------------------------

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(programs())
def test_generated_code_and_interpreter_match_eager(program):
    gm = graph_module(program)
    gm.graph.lint()
    inputs = make_inputs(program)
    expected = evaluate_eagerly(program, inputs)
    torch.testing.assert_close(gm(*inputs), expected)
    torch.testing.assert_close(tuple(IR.Interpreter(gm).run(*inputs)), expected)
    for clone in (copy.deepcopy(gm), pickle.loads(pickle.dumps(gm))):
        torch.testing.assert_close(clone(*inputs), expected)


@SETTINGS
@given(programs())
def test_printing_is_deterministic(program):
    """Building the same program twice prints the same graph and the same code."""
    first, second = build_graph(program), build_graph(program)
    assert str(first) == str(second)
    assert first.python_code("self").src == second.python_code("self").src


@SETTINGS
@given(programs())
def test_dead_code_elimination_preserves_results(program):
    gm = graph_module(program)
    before = len(gm.graph.nodes)
    erased = PASSES.eliminate_dead_code(gm.graph)
    gm.graph.lint()
    gm.recompile()
    assert erased == before - len(gm.graph.nodes) == count_dead_steps(program)
    assert PASSES.eliminate_dead_code(gm.graph) == 0  # a fixed point
    inputs = make_inputs(program)
    torch.testing.assert_close(gm(*inputs), evaluate_eagerly(program, inputs))


@SETTINGS
@given(programs())
def test_common_subexpression_elimination_preserves_results(program):
    gm, erased = cse(graph_module(program))
    gm.graph.lint()
    assert erased == count_duplicate_steps(program)
    inputs = make_inputs(program)
    torch.testing.assert_close(gm(*inputs), evaluate_eagerly(program, inputs))
    torch.testing.assert_close(
        tuple(IR.Interpreter(gm).run(*inputs)), evaluate_eagerly(program, inputs)
    )


def test_programs_exercise_every_kind_of_step():
    """The strategy is not vacuous: over a fixed sample it draws every step kind,
    dead code and duplicates."""
    seen: set[str] = set()
    dead = duplicated = 0

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(programs())
    def collect(program):
        nonlocal dead, duplicated
        seen.update(step.kind for step in program.steps)
        dead += count_dead_steps(program) > 0
        duplicated += count_duplicate_steps(program) > 0

    collect()
    assert seen == {*UNARY, *BINARY, "cat", "chunk", "getitem", "sum", "transpose"}
    assert dead > 20 and duplicated > 20


# --- constants survive code generation --------------------------------------------


def echo(*args):
    """A plain function the graph calls; returns exactly what the generated code passed."""
    return args


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.just(Ellipsis),
    st.sampled_from([torch.float32, torch.int64, torch.bool, torch.bfloat16, torch.complex64]),
    st.sampled_from([torch.device("cpu"), torch.contiguous_format, torch.channels_last]),
    st.builds(slice, st.none() | st.integers(-3, 3), st.none() | st.integers(-3, 3)),
)
CONSTANTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4) | st.integers(-3, 3), inner, max_size=3),
        st.lists(st.integers(0, 5), max_size=3).map(torch.Size),
    ),
    max_leaves=8,
)


def same_constant(actual, expected) -> bool:
    """Equal, of the same type, and for floats the same sign of zero and nan-ness.

    Allowed: a torch.Size may come back as a plain tuple (torch.fx's codegen writes
    it as one), and a list or dict as a subclass (fx's Interpreter hands out its
    immutable_list / immutable_dict).
    """
    if isinstance(expected, torch.Size) and type(actual) is tuple:
        expected = tuple(expected)
    if isinstance(expected, list | dict) and type(expected) is not type(actual):
        if not isinstance(actual, type(expected)):
            return False
    elif type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        if expected != expected:
            return actual != actual
        return actual == expected and str(actual)[0] == str(expected)[0]
    if isinstance(expected, list | tuple):
        return len(actual) == len(expected) and all(map(same_constant, actual, expected))
    if isinstance(expected, dict):
        return list(actual) == list(expected) and all(
            same_constant(actual[key], expected[key]) for key in expected
        )
    if isinstance(expected, slice):
        return (actual.start, actual.stop, actual.step) == (
            expected.start,
            expected.stop,
            expected.step,
        )
    return actual == expected


@settings(max_examples=150, deadline=None, derandomize=True)
@given(CONSTANTS)
def test_constant_arguments_round_trip_through_generated_code(constant):
    graph = IR.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(echo, (x, constant)))
    gm = IR.GraphModule(torch.nn.Module(), graph)
    value = torch.ones(1)
    returned = gm(value)
    assert returned[0] is value
    assert same_constant(returned[1], constant), f"{constant!r} came back as {returned[1]!r}"
    interpreted = IR.Interpreter(gm).run(value)
    assert same_constant(interpreted[1], constant)
