"""Sizes 0 and 1 in decompositions, decided without data: the recorded ops against
the decomposition run again at the concrete size.

``zero_one.py`` checks a decomposition's 0/1 assumptions by running the op and
the recorded ops on random numbers. That is sound but costs what the op costs:
a large config's ``lm_head`` (128256 x 8192) means 4 GB of data and seconds
of matmul per check, for ops whose decomposition never looked at the size.

This module decides most checks structurally. The decomposition is Python code
over sizes: run on *concrete* (meta) inputs of the checked sizes — each
argument laid out as recorded, with the symbol at 0 or 1 and the others at
their examples, exactly the inputs the numeric check would draw — it records
what it records for those sizes, taking every size-1 branch it really has. If
that recording equals the symbolic recording read at the same sizes (same
ops in the same order, over the same arguments, with each size argument
evaluated there, the same result shapes and dtypes, and the same outputs),
then at those sizes the decomposed program runs exactly the ops the
decomposition itself chooses there, so no assumption made a difference.

What is trusted: that a decomposition run on concrete sizes is right — the
trust ``run_decompositions`` puts in it for a static program, and torch's for
every program. What is not: the recording made under assumptions, which is
compared op by op. The original op's meta kernel runs too: where it refuses
the sizes (``reshape(b, -1)`` of an empty tensor) or computes another shape,
nothing is decided here; where an input is empty, so does its real kernel,
on uninitialized memory it does not read (``upsample_bicubic2d`` refuses a
height of 0 on the CPU only). At size 1 the real kernel's own refusals are
not looked for: its meta kernel's checks stand for them. Anything that differs or that this module cannot
read (control-flow bodies, a data-dependent size, a constant it cannot
compare) is left to the numeric check, so this only ever removes work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes

from graphlift.errors import GraphliftError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import Scalar
from graphlift.symbolic.substitute import EvaluationError
from graphlift.trace.tensor import TraceTensor
from graphlift.trace.zero_one import number_at

META = torch.device("meta")
_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)


@dataclass(frozen=True)
class ConcreteRun:
    """What a decomposition recorded on concrete inputs: its graph, the placeholder
    of each input (by ``id`` of the meta tensor given), its result (TraceTensors
    of ``graph``) and the constants it lifted, by placeholder name."""

    graph: Graph
    inputs: Mapping[int, Node]
    result: Any
    constants: Mapping[str, torch.Tensor]


#: Runs ``op`` decomposed on concrete meta arguments; the mapping gives each
#: argument tensor's device (by ``id``), as the traced tensor reports it.
Rerun = Callable[[Any, tuple[Any, ...], dict[str, Any], Mapping[int, torch.device]], ConcreteRun]


class _Differs(Exception):
    """The two recordings differ, or one cannot be read."""


def same_as_concrete(
    env: ShapeEnv, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
    recorded: list[Node], constants: Mapping[str, Any], at: dict[str, Scalar], rerun: Rerun,
) -> bool:  # fmt: skip
    """Whether ``recorded`` (the nodes decomposing ``op`` appended, symbolic) read at
    sizes ``at`` is what the decomposition records on concrete inputs of those sizes."""
    inputs = _ConcreteInputs(env, at)
    try:
        concrete_args = inputs.of(args)
        concrete_kwargs = inputs.of(kwargs)
        with _disable_current_modes(), torch.no_grad():
            expected = op(*concrete_args, **concrete_kwargs)  # its meta kernel
            if inputs.has_empty():
                op(*inputs.on_device(concrete_args), **inputs.on_device(concrete_kwargs))
        run = rerun(op, concrete_args, concrete_kwargs, inputs.devices)
        pairs = _Pairs(env, at, constants, run.constants)
        for node, placeholder in inputs.nodes.items():
            pairs.node_map[node] = run.inputs[placeholder]
        pairs.match_nodes(recorded, list(run.graph.nodes))
        pairs.match_result(result, run.result)
        pairs.match_metadata(expected, run.result)
    except (_Differs, GraphliftError, EvaluationError, ZeroDivisionError, RuntimeError,
            ValueError, IndexError, TypeError, AssertionError, NotImplementedError, KeyError):  # fmt: skip
        return False  # undecided here: the numeric check decides
    return True


@dataclass
class _ConcreteInputs:
    """Meta tensors for the op's traced arguments at ``at``, laid out as recorded;
    one per traced tensor (q, k and v of self-attention are one tensor)."""

    env: ShapeEnv
    at: dict[str, Scalar]
    nodes: dict[Node, int] = field(default_factory=dict)  # traced node -> id(meta tensor)
    devices: dict[int, torch.device] = field(default_factory=dict)
    _made: dict[Node, torch.Tensor] = field(default_factory=dict)

    def of(self, value: Any) -> Any:
        if isinstance(value, TraceTensor):
            if value.node not in self._made:
                self._made[value.node] = tensor = self._tensor(value)
                self.nodes[value.node] = id(tensor)
                self.devices[id(tensor)] = value.device
            return self._made[value.node]
        if isinstance(value, _SYMBOLIC):
            return number_at(self.env, value, self.at)
        if isinstance(value, tuple | list):
            return type(value)(self.of(v) for v in value)
        if isinstance(value, dict):
            return {k: self.of(v) for k, v in value.items()}
        if isinstance(value, torch.Tensor):
            raise _Differs("an argument that is not traced")
        return value

    def has_empty(self) -> bool:
        return any(tensor.numel() == 0 for tensor in self._made.values())

    def on_device(self, value: Any) -> Any:
        """``value`` with each meta tensor made on the CPU, uninitialized (same
        sizes and strides), unless the traced tensor is itself on the meta device.
        The real kernel refuses some empty inputs its meta kernel accepts
        (``upsample_bicubic2d`` of height 0); with an empty input it reads no
        data, so running it costs no more than allocating untouched memory."""
        if isinstance(value, torch.Tensor):
            if self.devices[id(value)].type == "meta":
                return value
            return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype)
        if isinstance(value, tuple | list):
            return type(value)(self.on_device(v) for v in value)
        if isinstance(value, dict):
            return {k: self.on_device(v) for k, v in value.items()}
        return value

    def _tensor(self, value: TraceTensor) -> torch.Tensor:
        shape = [number_at(self.env, s, self.at) for s in value.shape]
        strides = [number_at(self.env, s, self.at) for s in value.stride()]
        offset = number_at(self.env, value.storage_offset(), self.at)
        if min(shape, default=1) < 0:
            raise _Differs("a negative size")
        with _disable_current_modes():  # plain meta tensors, not recorded by the replay
            if 0 in shape or min(strides, default=0) < 0:
                offset, strides = 0, list(torch.empty(shape, device=META).stride())
            extent = offset + sum((n - 1) * st for n, st in zip(shape, strides)) + 1
            storage = torch.empty(extent if 0 not in shape else 0, dtype=value.dtype, device=META)
            return storage.as_strided(shape, strides, offset)


@dataclass
class _Pairs:
    """Matches symbolic nodes to concrete ones, raising ``_Differs`` at the first
    difference; ``node_map`` holds the pairs matched so far."""

    env: ShapeEnv
    at: dict[str, Scalar]
    constants: Mapping[str, Any]  # the symbolic graph's lifted constants, by name
    concrete_constants: Mapping[str, torch.Tensor]
    node_map: dict[Node, Node] = field(default_factory=dict)

    def match_nodes(self, recorded: list[Node], concrete: list[Node]) -> None:
        ops = [node for node in concrete if node.op != "placeholder"]
        if any(node.op != "call_function" for node in ops):
            raise _Differs("a control-flow body")
        for node in recorded:
            if not self._computes(node):
                continue
            if not ops:
                raise _Differs("more ops recorded than the concrete run made")
            other = ops.pop(0)
            if node.target is not other.target:
                raise _Differs(f"{node.target} against {other.target}")
            self.match(node.args, other.args)
            self.match(node.kwargs, other.kwargs)
            self.match_metadata(node.meta.get("val"), other.meta.get("val"))
            self.node_map[node] = other
        if ops:
            raise _Differs("the concrete run made more ops")

    def _computes(self, node: Node) -> bool:
        """Whether ``node`` computes a value (not a size, not a passing runtime assert)."""
        if node.op != "call_function":
            raise _Differs("a control-flow body")
        if isinstance(node.meta.get("val"), _SYMBOLIC):
            return False  # a size, read where it is used
        if node.target is torch.ops.aten._assert_scalar.default:
            if self.number(node.args[0]) is not True:
                raise _Differs("a runtime assert that fails at these sizes")
            return False
        return True

    def match(self, symbolic: Any, concrete: Any) -> None:
        if isinstance(symbolic, Node):
            if symbolic in self.node_map:
                if self.node_map[symbolic] is not concrete:
                    raise _Differs("another argument")
            elif isinstance(symbolic.meta.get("val"), _SYMBOLIC):
                _same_scalar(self.number(symbolic), concrete)
            else:
                self._match_constant(symbolic, concrete)
        elif isinstance(symbolic, tuple | list):
            if type(concrete) is not type(symbolic) or len(concrete) != len(symbolic):
                raise _Differs("another sequence")
            for a, b in zip(symbolic, concrete):
                self.match(a, b)
        elif isinstance(symbolic, dict):
            if not isinstance(concrete, dict) or symbolic.keys() != concrete.keys():
                raise _Differs("other keyword arguments")
            for key in symbolic:
                self.match(symbolic[key], concrete[key])
        elif isinstance(symbolic, _SYMBOLIC):
            _same_scalar(number_at(self.env, symbolic, self.at), concrete)
        else:
            _same_scalar(symbolic, concrete)

    def number(self, node: Any) -> Any:
        if isinstance(node, Node):
            node = node.meta.get("val")
        return number_at(self.env, node, self.at)

    def _match_constant(self, symbolic: Node, concrete: Any) -> None:
        """A lifted constant of the program: the same values in both."""
        mine = self.constants.get(symbolic.name) if symbolic.op == "placeholder" else None
        theirs = self.concrete_constants.get(getattr(concrete, "name", ""))
        if not (isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor)):
            raise _Differs("an argument that is neither an input nor a constant")
        if mine.is_meta or theirs.is_meta or not _equal_tensors(mine, theirs):
            raise _Differs("another constant")
        self.node_map[symbolic] = concrete

    def match_result(self, symbolic: Any, concrete: Any) -> None:
        if isinstance(symbolic, TraceTensor):
            if not isinstance(concrete, TraceTensor):
                raise _Differs("another result")
            self.match(symbolic.node, concrete.node)
        elif isinstance(symbolic, tuple | list):
            if not isinstance(concrete, tuple | list) or len(symbolic) != len(concrete):
                raise _Differs("another result")
            for a, b in zip(symbolic, concrete):
                self.match_result(a, b)
        else:
            self.match(symbolic, concrete)

    def match_metadata(self, symbolic: Any, concrete: Any) -> None:
        """Shapes (read at ``at``) and dtypes of two results, tensor by tensor."""
        if isinstance(symbolic, torch.Tensor):
            if not isinstance(concrete, torch.Tensor) or symbolic.dtype != concrete.dtype:
                raise _Differs("another dtype")
            shape = [number_at(self.env, s, self.at) for s in symbolic.shape]
            if shape != list(concrete.shape):
                raise _Differs("another shape")
        elif isinstance(symbolic, tuple | list):
            if not isinstance(concrete, tuple | list) or len(symbolic) != len(concrete):
                raise _Differs("another result")
            for a, b in zip(symbolic, concrete):
                self.match_metadata(a, b)
        elif isinstance(concrete, torch.Tensor):
            raise _Differs("a tensor against something else")


def _same_scalar(symbolic: Any, concrete: Any) -> None:
    """Equal plain values of the same kind (1, 1.0 and True are three different arguments)."""
    if isinstance(symbolic, Node) or isinstance(concrete, Node | torch.Tensor):
        raise _Differs("a value against a node")
    if _kind(symbolic) != _kind(concrete):
        raise _Differs("another kind of value")
    if isinstance(symbolic, float) and math.isnan(symbolic) and math.isnan(concrete):
        return
    if symbolic != concrete:
        raise _Differs(f"{symbolic!r} against {concrete!r}")


def _kind(value: Any) -> type:
    if isinstance(value, bool):
        return bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    return type(value)


def _equal_tensors(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.device == b.device
        and bool(torch.equal(a, b) or (a.is_floating_point() and torch.allclose(a, b, 0, 0, True)))
    )
