"""Example values of recorded nodes, for ``data_dependent="specialize"`` exports.

By default a Python decision on a data-dependent value (``if t.sum() > 0``,
``for row in t.nonzero()``) raises DataDependentError: the program would be
wrong for other data. With ``gl.export(..., data_dependent="specialize")`` the
decision is taken from the *example inputs* instead and recorded as a runtime
assert, so the exported program refuses (with RuntimeAssertError) any input
whose data would have decided differently: it stays sound, it is only narrower.

The example value of a node is computed by running the recorded graph on the
example inputs, parameters and constants, incrementally (each node at most
once) and with the trace mode switched off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch.utils._python_dispatch import _disable_current_modes

from graphlift.ir.graph import Graph
from graphlift.ir.node import Node


class ExampleValues:
    """Real values of the nodes of ``graph`` on the example inputs."""

    def __init__(self, graph: Graph, subgraphs: dict[str, Any]) -> None:
        self.graph = graph
        self.subgraphs = subgraphs  # get_attr target -> GraphModule (control-flow bodies)
        self._values: dict[Node, Any] = {}

    def bind(self, node: Node, value: Any) -> None:
        """``node`` (a placeholder) has the real example ``value``."""
        if isinstance(value, torch.Tensor) and value.device.type == "meta":
            return  # a meta example has no data
        self._values[node] = value

    def value_of(self, node: Node) -> Any:
        """The example value of ``node``; None when it cannot be computed (no
        data for an input, or a node inside a control-flow body)."""
        if node in self._values:
            return self._values[node]
        if node.graph is not self.graph:
            return None
        with _disable_current_modes(), torch.no_grad():
            for current in self.graph.nodes:
                if current not in self._values and not self._compute(current):
                    return None
                if current is node:
                    break
        return self._values.get(node)

    def _compute(self, node: Node) -> bool:
        if node.op == "placeholder":
            value = node.meta.get("val")
            if isinstance(value, int | float | bool | str) or value is None:
                self._values[node] = value  # a specialized Python input
                return True
            return False  # an input without example data
        if node.op == "get_attr":
            self._values[node] = self.subgraphs[str(node.target)]
            return True
        if node.op != "call_function":
            return True  # output
        args = _map(node.args, self._values)
        kwargs = _map(node.kwargs, self._values)
        try:
            function = cast(Callable[..., Any], node.target)  # a call_function's target
            self._values[node] = function(*args, **kwargs)
        except Exception:
            return False
        return True


def _map(value: Any, values: dict[Node, Any]) -> Any:
    if isinstance(value, Node):
        return values[value]
    if isinstance(value, tuple | list):
        return type(value)(_map(v, values) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, values) for k, v in value.items()}
    return value
