"""`Interpreter`: run a GraphModule node by node.

``run_node`` dispatches on the opcode by name (``getattr(self, node.op)``), so
a subclass changes how one kind of node runs by overriding one method — the
opcode names are the method names, as in torch.fx. Values are dropped from the
environment after their last use unless ``garbage_collect_values=False``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from graphlift.errors import GraphError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Argument, Node, Target, last_uses, map_arg


class Interpreter:
    def __init__(
        self,
        module: torch.nn.Module,
        garbage_collect_values: bool = True,
        graph: Graph | None = None,
    ) -> None:
        self.module = module
        self.submodules = dict(module.named_modules())
        # nn.Module.__getattr__ is typed Tensor | Module for every attribute
        self.graph: Graph = graph if graph is not None else module.graph  # type: ignore[assignment]
        self.env: dict[Node, Any] = {}
        self.garbage_collect_values = garbage_collect_values
        self.args_iter: Iterator[Any] = iter(())
        self.user_to_last_uses = last_uses(self.graph.nodes) if garbage_collect_values else {}

    def run(
        self,
        *args: Any,
        initial_env: dict[Node, Any] | None = None,
        enable_io_processing: bool = True,
    ) -> Any:
        """Run the graph on ``args``; returns what its output node returns.

        ``args`` are what the generated ``forward`` takes: the graph's codegen
        turns them into placeholder values and the output back into what
        ``forward`` returns, unless ``enable_io_processing=False``."""
        self.env = dict(initial_env) if initial_env else {}
        self.args_iter = iter(self.graph.process_inputs(*args) if enable_io_processing else args)
        for node in self.graph.nodes:
            if node in self.env:
                continue
            try:
                self.env[node] = self.run_node(node)
            except Exception as error:
                error.add_note(f"While running node {node.format_node()}")
                if node.stack_trace:
                    error.add_note(f"  which came from {node.stack_trace}")
                raise
            for dead in self.user_to_last_uses.get(node, ()):
                del self.env[dead]
            if node.op == "output":
                output = self.env[node]
                return self.graph.process_outputs(output) if enable_io_processing else output
        return None

    def boxed_run(self, args_list: list[Any]) -> Any:
        """Run with the boxed calling convention: one value per placeholder in
        ``args_list``, which is cleared so the inputs can be freed early."""
        placeholders = self.graph.find_nodes(op="placeholder")
        if len(args_list) != len(placeholders):
            detail = (
                "extra arguments" if len(args_list) > len(placeholders) else "missing arguments"
            )
            raise GraphError(
                f"Interpreter.boxed_run expected {len(placeholders)} arguments for placeholders "
                f"but received {len(args_list)} ({detail})"
            )
        env = dict(zip(placeholders, args_list))
        args_list.clear()
        return self.run(initial_env=env)

    def run_node(self, n: Node) -> Any:
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        return getattr(self, n.op)(n.target, args, kwargs)

    # --- one method per opcode ---------------------------------------------------------

    def placeholder(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        name = str(target)
        if name.startswith("*"):  # *args and **kwargs take the remaining values, as in torch.fx
            return list(self.args_iter)
        try:
            return next(self.args_iter)
        except StopIteration:
            if args:
                return args[0]
            raise GraphError(
                f"missing a value for input {name!r}: run() got too few arguments"
            ) from None

    def get_attr(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.fetch_attr(str(target))

    def call_function(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not callable(target):
            raise GraphError(f"call_function target {target!r} is not callable")
        return target(*args, **kwargs)

    def call_method(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        receiver, *rest = args
        return getattr(receiver, str(target))(*rest, **kwargs)

    def call_module(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.fetch_attr(str(target))(*args, **kwargs)

    def output(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return args[0]

    # --- helpers -------------------------------------------------------------------------

    def fetch_attr(self, target: str) -> Any:
        value: Any = self.module
        for i, atom in enumerate(target.split(".")):
            if not hasattr(value, atom):
                done = ".".join(target.split(".")[:i]) or "the root module"
                raise GraphError(f"{done} has no attribute {atom!r} (looking up {target!r})")
            value = getattr(value, atom)
        return value

    def fetch_args_kwargs_from_env(self, n: Node) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = self.map_nodes_to_values(n.args, n)
        kwargs = self.map_nodes_to_values(n.kwargs, n)
        return tuple(args), dict(kwargs)

    def map_nodes_to_values(self, args: Argument, n: Node) -> Any:
        def load(used: Node) -> Any:
            if used not in self.env:
                raise GraphError(
                    f"node {n.name!r} reads {used.name!r}, which has no value "
                    "(was it freed early or defined later?)"
                )
            return self.env[used]

        return map_arg(args, load)
