"""The differential adapter: run one case on torch.fx (the oracle) and on
graphlift's fx, and compare what each observed.

A case is a function of one argument, ``fx``: a namespace with torch.fx's
public names (``fx.symbolic_trace``, ``fx.Graph``, ``fx.Proxy``, ...) bound to
one library. It builds, traces, edits and runs, and returns an *observation*:
any nesting of tuples, lists and dicts of tensors, Python values and the
summaries below (``ops``, ``names``). If it raises, the observation is the
builtin exception type the error is an instance of; the subject passes when
its error is an instance of the oracle's builtin type (so ``except`` clauses
written for torch.fx still catch it).

Deliberate differences are cases whose oracle result is wrong: the case
declares ``eager=``, a function computing the right observation without fx.
The subject must match it, and the oracle must still differ (so this table
notices when torch.fx is fixed).
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.fx
import torch.fx.passes.shape_prop
import torch.fx.passes.split_module
import torch.fx.proxy
import torch.fx.subgraph_rewriter

import graphlift.fx
import graphlift.fx.passes
import graphlift.fx.subgraph_rewriter

ORACLE = SimpleNamespace(
    name="torch.fx",
    **{name: getattr(torch.fx, name) for name in (
        "symbolic_trace", "Tracer", "Graph", "GraphModule", "Interpreter", "Transformer",
        "Proxy", "Node", "wrap", "PH", "ProxyableClassMeta", "CodeGen",
    )},
    PHBase=torch.fx._symbolic_trace.PHBase,
    TraceError=torch.fx.proxy.TraceError,
    ShapeProp=torch.fx.passes.shape_prop.ShapeProp,
    replace_pattern=torch.fx.subgraph_rewriter.replace_pattern,
    replace_pattern_with_filters=torch.fx.subgraph_rewriter.replace_pattern_with_filters,
    split_module=torch.fx.passes.split_module.split_module,
)  # fmt: skip

SUBJECT = SimpleNamespace(
    name="graphlift.fx",
    **{name: getattr(graphlift.fx, name) for name in (
        "symbolic_trace", "Tracer", "Graph", "GraphModule", "Interpreter", "Transformer",
        "Proxy", "Node", "wrap", "PH", "PHBase", "ProxyableClassMeta", "TraceError", "ShapeProp",
        "CodeGen",
    )},
    replace_pattern=graphlift.fx.subgraph_rewriter.replace_pattern,
    replace_pattern_with_filters=graphlift.fx.subgraph_rewriter.replace_pattern_with_filters,
    split_module=graphlift.fx.passes.split_module,
)  # fmt: skip

LIBRARIES = (ORACLE, SUBJECT)


@dataclass(frozen=True)
class Raised:
    """The case raised; ``kind`` is the builtin exception type it is an instance of."""

    kind: type[BaseException]
    message: str

    @staticmethod
    def of(error: BaseException) -> Raised:
        kind = next(c for c in type(error).__mro__ if c.__module__ == "builtins")
        return Raised(kind, str(error).split("\n")[0][:200])


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[SimpleNamespace], Any]
    source: str  # the torch test it rewrites
    eager: Callable[[], Any] | None = None  # set for deliberate differences
    why: str = ""
    raises: bool = False  # the case is about an error torch.fx raises


CASES: list[Case] = []


def case(
    source: str,
    *,
    name: str | None = None,
    eager: Callable[[], Any] | None = None,
    why: str = "",
    raises: bool = False,
) -> Callable:
    """Register a case; ``source`` names the torch.fx test it comes from.
    ``raises`` marks a case whose point is the error torch.fx raises; any other
    case must run cleanly on torch.fx, so that agreeing on an accident passes nothing."""

    def register(fn: Callable[[SimpleNamespace], Any]) -> Callable[[SimpleNamespace], Any]:
        CASES.append(Case(name or fn.__name__, fn, source, eager, why, raises))
        return fn

    return register


def observe(run: Callable[[SimpleNamespace], Any], fx: SimpleNamespace) -> Any:
    torch.manual_seed(0)
    try:
        return run(fx)
    except Exception as error:  # the error type is the observation
        return Raised.of(error)


# --- summaries a case can return ---------------------------------------------------


def target_key(target: Any) -> Any:
    """A target both libraries can agree on: strings and callables as they are,
    each library's own helper functions by name."""
    module = getattr(target, "__module__", "") or ""
    if callable(target) and module.startswith(("torch.fx", "graphlift")):
        return ("library helper", target.__name__)
    return target


def ops(graph: Any) -> list[tuple[str, Any]]:
    """(opcode, target) per node, in order."""
    graph = getattr(graph, "graph", graph)
    return [(node.op, target_key(node.target)) for node in graph.nodes]


def traced_run(fx, module, *args, **kwargs):
    """checkGraphModule: trace, lint, run; returns (result, ops)."""
    gm = fx.symbolic_trace(module)
    gm.graph.lint()
    return gm(*args, **kwargs), ops(gm)


def names(graph: Any) -> list[str]:
    graph = getattr(graph, "graph", graph)
    return [node.name for node in graph.nodes]


def users(node: Any) -> list[str]:
    return [user.name for user in node.users]


# --- comparing observations --------------------------------------------------------


def assert_same(actual: Any, expected: Any, path: str = "observation") -> None:
    if isinstance(expected, Raised):
        assert isinstance(actual, Raised), f"{path}: torch.fx raised {expected}, got {actual!r}"
        assert issubclass(actual.kind, expected.kind), (
            f"{path}: torch.fx raised {expected.kind.__name__} ({expected.message}); "
            f"graphlift raised {actual.kind.__name__} ({actual.message})"
        )
        return
    assert not isinstance(actual, Raised), f"{path}: expected {expected!r}, but raised {actual}"
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{path}: expected a tensor, got {actual!r}"
        torch.testing.assert_close(actual, expected, equal_nan=True, msg=lambda m: f"{path}: {m}")
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a dict, got {type(actual).__name__}"
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
        return
    if isinstance(expected, list | tuple):
        assert isinstance(actual, list | tuple), f"{path}: expected a sequence, got {actual!r}"
        assert type(actual) is type(expected) or not hasattr(expected, "_fields"), path
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
        return
    assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def same(actual: Any, expected: Any) -> bool:
    try:
        assert_same(actual, expected)
    except AssertionError:
        return False
    return True


__all__ = ["CASES", "LIBRARIES", "ORACLE", "SUBJECT", "Raised", "assert_same", "builtins",
           "case", "names", "observe", "operator", "ops", "same", "traced_run", "users"]  # fmt: skip
