"""``split_module``: cut a GraphModule into one submodule per partition
(torch.fx.passes.split_module's API, graph shape and naming).

``split_callback(node)`` gives each computing node a partition number. Each
partition becomes ``submod_<n>``, a GraphModule whose inputs
are the values it reads from outside (named as there), and whose outputs are the values other
partitions or the result read (one value returned as is, several as a tuple
unpacked with ``getitem``). Placeholders and ``get_attr`` nodes stay in the
top graph; a module read by ``get_attr`` and every ``call_module`` target are
installed in the partition under its dotted name with ``.`` replaced by ``_``.
Partitions are called in a topological order of their dependencies, in the
order torch.fx picks; a cycle between partitions raises GraphError.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from graphlift.errors import GraphError
from graphlift.fx.proxy import Proxy
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg


@dataclass
class Partition:
    name: str
    nodes: list[Node] = field(default_factory=list)
    inputs: dict[Node, None] = field(default_factory=dict)
    outputs: dict[Node, None] = field(default_factory=dict)
    dependencies: dict[str, None] = field(default_factory=dict)
    dependents: dict[str, None] = field(default_factory=dict)
    graph: Graph = field(default_factory=Graph)
    environment: dict[Node, Node] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)

    @property
    def submod_name(self) -> str:
        return f"submod_{self.name}"


def split_module(
    m: GraphModule,
    root_m: torch.nn.Module,
    split_callback: Callable[[Node], int],
    qualname_map: dict[str, str] | None = None,
) -> GraphModule:
    """Split ``m`` by ``split_callback``; ``qualname_map`` (if given) receives
    ``submod_<n>.<name>`` -> original qualified name for each moved module."""
    partitions = _assign_partitions(m.graph, split_callback)
    for partition in partitions.values():
        _build_partition(partition, m, qualname_map)
    base = Graph()
    env: dict[Node, Node] = {}
    attributes: dict[str, Any] = {}
    for node in m.graph.nodes:
        if node.op == "placeholder":
            default = node.args[0] if node.args else ...
            env[node] = base.placeholder(str(node.target), node.type, default_value=default)
            env[node].meta = dict(node.meta)
        elif node.op == "get_attr":
            env[node] = base.get_attr(str(node.target))
            attributes[str(node.target)] = _fetch(m, str(node.target))
    for name in _topological_order(partitions):
        partition = partitions[name]
        attributes[partition.submod_name] = GraphModule(partition.targets, partition.graph)
        call = base.call_module(partition.submod_name, tuple(env[n] for n in partition.inputs))
        if len(partition.outputs) > 1:
            for i, produced in enumerate(partition.outputs):
                env[produced] = Proxy(call)[i].node
        elif partition.outputs:
            env[next(iter(partition.outputs))] = call
    base.output(map_arg(m.graph.output_node().args[0], env.__getitem__))
    return GraphModule(attributes, base)


def _assign_partitions(graph: Graph, split_callback: Callable[[Node], int]) -> dict[str, Partition]:
    partitions: dict[str, Partition] = {}
    owner: dict[Node, Partition] = {}
    for node in graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            continue
        if node.op == "output":
            map_arg(node.args[0], lambda used: _record_use(owner, used, None))
            continue
        name = str(split_callback(node))
        partition = partitions.setdefault(name, Partition(name))
        partition.nodes.append(node)
        owner[node] = partition
        map_arg((node.args, node.kwargs), functools.partial(_record_use, owner, user=partition))
    return partitions


def _record_use(owner: dict[Node, Partition], used: Node, user: Partition | None) -> None:
    defined = owner.get(used)
    if defined is user:
        return
    if defined is not None:
        defined.outputs.setdefault(used)
        if user is not None:
            defined.dependents.setdefault(user.name)
            user.dependencies.setdefault(defined.name)
    if user is not None:
        user.inputs.setdefault(used)


def _topological_order(partitions: dict[str, Partition]) -> list[str]:
    waiting = {name: dict(p.dependencies) for name, p in partitions.items()}
    ready = [name for name, deps in waiting.items() if not deps]
    order: list[str] = []
    while ready:
        name = ready.pop()  # last ready first, as torch.fx orders them
        order.append(name)
        for dependent in partitions[name].dependents:
            waiting[dependent].pop(name)
            if not waiting[dependent]:
                ready.append(dependent)
    if len(order) != len(partitions):
        raise GraphError("cycle exists between partitions: split_callback must respect data flow")
    return order


def _build_partition(
    partition: Partition, m: GraphModule, qualname_map: dict[str, str] | None
) -> None:
    graph, env = partition.graph, partition.environment
    modules_read = [n for n in partition.inputs if _reads_module(m, n)]
    values_read = [n for n in partition.inputs if n not in modules_read]
    for used in values_read:
        env[used] = graph.placeholder(used.name, used.type)
        env[used].meta = dict(used.meta)
    for used in modules_read:
        env[used] = graph.get_attr(str(used.target))
        partition.targets[str(used.target)] = _fetch(m, str(used.target))
    for node in partition.nodes:
        target = node.target
        if node.op in ("call_module", "get_attr"):
            target = str(node.target).replace(".", "_")
            partition.targets[target] = _fetch(m, str(node.target))
            if qualname_map is not None:
                qualname_map[f"{partition.submod_name}.{target}"] = str(node.target)
        args, kwargs = map_arg((node.args, node.kwargs), env.__getitem__)
        env[node] = graph.create_node(node.op, target, args, kwargs, type_expr=node.type)
        env[node].meta = dict(node.meta)
    results = tuple(env[n] for n in partition.outputs)
    graph.output(results[0] if len(results) == 1 else results)


def _reads_module(m: GraphModule, node: Node) -> bool:
    return node.op == "get_attr" and isinstance(_fetch(m, str(node.target)), torch.nn.Module)


def _fetch(root: torch.nn.Module, qualified_name: str) -> Any:
    value: Any = root
    for atom in qualified_name.split("."):
        value = getattr(value, atom)
    return value
