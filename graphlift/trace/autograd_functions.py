"""Custom ``torch.autograd.Function`` calls while a model is exported.

An exported (forward) program computes a Function's values with the ops its
``forward`` ran, recorded inline as usual. The Function's own ``backward`` is
not in those ops, so each node recorded during a call is tagged with
``meta["autograd_function"]``: which Function (its import path), which call,
how it was called (argument nodes by name, plain values) and which nodes are
its results. ``export_forward_backward`` reads the tag and calls the Function
again, so autograd uses the user's ``backward`` and not the derivative of the
forward's ops (a straight-through estimator's ``round`` has derivative zero).

The tag holds plain values only, so it survives ``save``/``load``. Functions
are also kept in ``FUNCTIONS`` by import path, for classes defined inside a
function, which no import path reaches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from graphlift.ir.node import Node
from graphlift.patching import Patcher
from graphlift.trace.recorder import Recorder
from graphlift.trace.tensor import TraceTensor

TAG = "autograd_function"

#: Import path ("module.Qualified.Name") -> the Function class exported under it.
FUNCTIONS: dict[str, type] = {}

_PLAIN = (bool, int, float, str, type(None))


def function_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@contextmanager
def tagged_autograd_functions(recorder: Recorder) -> Iterator[None]:
    """While the block runs, ``Function.apply`` tags what each outermost call records."""
    original = torch.autograd.Function.__dict__["apply"]
    calls = itertools.count()
    depth = 0

    def apply(cls: type, *args: Any, **kwargs: Any) -> Any:
        nonlocal depth
        if depth or recorder.graph is not recorder.root_graph:  # nested, or in a body
            return original.__func__(cls, *args, **kwargs)
        graph = recorder.graph
        last = next(reversed(graph.nodes), None)
        depth += 1
        try:
            result = original.__func__(cls, *args, **kwargs)
        finally:
            depth -= 1
        recorded = _nodes_after(graph, last)
        _tag(recorder, cls, next(calls), (args, kwargs), result, recorded)
        return result

    with Patcher() as patcher:
        patcher.patch_attribute(torch.autograd.Function, "apply", classmethod(apply))
        yield


def _nodes_after(graph: Any, last: Node | None) -> list[Node]:
    nodes = list(graph.nodes)
    start = 0 if last is None else nodes.index(last) + 1
    return [n for n in nodes[start:] if n.op == "call_function"]


def _tag(
    recorder: Recorder,
    cls: type,
    call: int,
    arguments: tuple[tuple[Any, ...], dict[str, Any]],
    result: Any,
    recorded: list[Node],
) -> None:
    FUNCTIONS[function_path(cls)] = cls
    args, kwargs = arguments
    results = result if isinstance(result, tuple) else (result,)
    tag = {
        "function": function_path(cls),
        "call": call,
        "args": tuple(_argument(recorder, a) for a in args),
        "kwargs": {k: _argument(recorder, v) for k, v in kwargs.items()},
        "outputs": tuple(
            recorder.current_node(r).name if isinstance(r, TraceTensor) else None for r in results
        ),
        "tuple": isinstance(result, tuple),
    }
    for node in recorded:
        node.meta[TAG] = tag


def _argument(recorder: Recorder, value: Any) -> tuple[str, Any]:
    """``("node", name)`` for a traced tensor, ``("value", v)`` for a plain value,
    ``("opaque", type name)`` for anything else (the joint export refuses those)."""
    if isinstance(value, TraceTensor):
        return ("node", recorder.current_node(value).name)
    if isinstance(value, _PLAIN):
        return ("value", value)
    return ("opaque", type(value).__name__)
