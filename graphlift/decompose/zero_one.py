"""Sizes 0 and 1 in decompositions: check the recorded ops against the op, on numbers.

A decomposition is Python code that records several ops; a 0/1 question it
asks (``aten.matmul``'s decomposition broadcasts batch dims with
``guard_or_false(b == 1)``) shapes the recorded graph, so the per-op metadata
check of export (``trace/zero_one.py``) does not cover it. Here the question
is assumed away while the node is decomposed, and then checked: first
without data (``zero_one_structure.py``: the decomposition run again on
concrete sizes records the same ops), else the direct way: for each assumed symbol at 0 and at 1 (others at their example values),
small random inputs of those sizes go through the original op (its real
kernel) and through the ops just recorded (interpreted), and the results must
agree. If they do, the decomposition is right at those sizes and needs no
guard; if not — or if anything cannot be evaluated — the assumption becomes a
guard, which run_decompositions then refuses as before.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes

from graphlift.decompose.zero_one_structure import Rerun, same_as_concrete
from graphlift.ir.node import Node, map_arg
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import Scalar, free_symbols
from graphlift.symbolic.guards import Assumption
from graphlift.symbolic.substitute import EvaluationError
from graphlift.trace.tensor import TraceTensor
from graphlift.trace.zero_one import guard_unless_agreed, number_at


class _Unavailable(Exception):
    """A value the check cannot produce (an input it has no data for)."""


def check_decomposition(
    env: ShapeEnv,
    op: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    recorded: list[Node],
    constants: dict[str, Any],
    assumptions: list[Assumption],
    rerun: Rerun,
) -> None:
    """Guard each assumption the decomposition of ``op`` made that does not hold
    up at sizes 0 and 1. ``constants`` holds the lifted constants and the
    control-flow bodies the recorded nodes read, by name. Each size is decided
    structurally first (``rerun`` records the decomposition on concrete inputs,
    ``zero_one_structure.py``: no data, no kernel); only where that recording
    differs from the symbolic one do the numbers decide."""

    def agrees(at: dict[str, Scalar]) -> bool:
        return same_as_concrete(
            env, op, args, kwargs, result, recorded, constants, at, rerun
        ) or _agrees(env, op, args, kwargs, result, recorded, constants, at)

    guard_unless_agreed(env, assumptions, agrees, per_size=True)


def _agrees(
    env: ShapeEnv,
    op: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    recorded: list[Node],
    constants: dict[str, Any],
    at: dict[str, Scalar],
) -> bool:
    generator = torch.Generator().manual_seed(0)
    values: dict[Node, Any] = {}
    try:
        # Real tensors through real kernels: the modes that record are off.
        with _disable_current_modes(), torch.no_grad():
            concrete_args = _inputs(env, args, at, generator, values)
            concrete_kwargs = _inputs(env, kwargs, at, generator, values)
            expected = op(*concrete_args, **concrete_kwargs)
            for node in recorded:
                values[node] = _run(env, node, values, constants, at)
            return _close(expected, _pick(result, values))
    except (_Unavailable, EvaluationError, RuntimeError, ValueError, IndexError, TypeError,
            ZeroDivisionError):  # fmt: skip
        return False


def _inputs(
    env: ShapeEnv, value: Any, at: Mapping[str, Scalar], generator: torch.Generator,
    values: dict[Node, Any],
) -> Any:  # fmt: skip
    """Random concrete tensors for the op's traced arguments (bound to their nodes),
    laid out as recorded: a decomposition chooses ``view`` over ``reshape`` from
    its input's strides, which the per-op check held to the real ones (on dims
    larger than 1, the only ones a view's validity depends on)."""
    if isinstance(value, TraceTensor):
        if value.node in values:  # one tensor passed twice (q, k and v of self-attention)
            return values[value.node]
        shape = [number_at(env, s, at) for s in value.shape]
        strides = [number_at(env, s, at) for s in value.stride()]
        offset = number_at(env, value.storage_offset(), at)
        if 0 in shape or min(strides, default=0) < 0:
            offset, strides = 0, list(torch.empty(shape).stride())
        extent = offset + sum((n - 1) * st for n, st in zip(shape, strides)) + 1
        storage = _random([extent if 0 not in shape else 0], value.dtype, generator)
        tensor = storage.as_strided(shape, strides, offset)
        values[value.node] = tensor
        return tensor
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        return number_at(env, value, at)
    if isinstance(value, tuple | list):
        return type(value)(_inputs(env, v, at, generator, values) for v in value)
    if isinstance(value, dict):
        return {k: _inputs(env, v, at, generator, values) for k, v in value.items()}
    return value


#: Random data past this many elements repeats a block of this (prime) length:
#: a weight of a large config (an lm_head of 128256 x 8192) would otherwise cost
#: seconds of ``randn``; a prime period lines up with no layout of the data.
RANDOM_PERIOD = 1_048_573


def _random(shape: list[int], dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    numel = math.prod(shape)
    if numel > RANDOM_PERIOD:
        block = _random([RANDOM_PERIOD], dtype, generator)
        return block.repeat(-(-numel // RANDOM_PERIOD))[:numel].reshape(shape)
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(shape, generator=generator, dtype=dtype)
    if dtype is torch.bool:
        return torch.rand(shape, generator=generator) > 0.5
    return torch.randint(0, 2, shape, generator=generator, dtype=dtype)


def _run(
    env: ShapeEnv, node: Node, values: dict[Node, Any], constants: dict[str, Any],
    at: dict[str, Scalar],
) -> Any:  # fmt: skip
    def value_of(arg: Node) -> Any:
        if arg in values:
            return values[arg]
        if arg.op == "placeholder" and arg.name in constants:
            return constants[arg.name]
        known = arg.meta.get("val")
        if isinstance(known, torch.SymInt | torch.SymFloat | torch.SymBool):
            return number_at(env, known, at)  # a size computed before this decomposition
        raise _Unavailable(arg.name)

    if node.op == "get_attr" and str(node.target) in constants:
        return constants[str(node.target)]  # a control-flow body the decomposition made
    own = node.meta.get("val")
    if node.op == "placeholder" and isinstance(own, torch.Tensor):
        # An outer tensor lifted into a control-flow body for a size the
        # decomposition needs there (replay.py): its sizes are what is read.
        shape = [number_at(env, s, at) for s in own.shape]
        return _random(shape, own.dtype, torch.Generator().manual_seed(1))
    if node.op != "call_function":
        raise _Unavailable(node.name)
    if isinstance(own, torch.SymInt | torch.SymFloat | torch.SymBool):
        return number_at(env, own, at)  # a size (of an input the check has no data for)
    call_args, call_kwargs = map_arg((node.args, node.kwargs), value_of)
    if _is_meta(call_kwargs.get("device")):
        # The check's tensors live on the CPU; a factory of the meta program
        # (``full_like(..., device="meta")``) makes its tensor there too.
        call_kwargs = {**call_kwargs, "device": torch.device("cpu")}
    target = node.target
    assert callable(target), node.format_node()  # call_function targets are callables
    return target(*call_args, **call_kwargs)


def _is_meta(device: Any) -> bool:
    return isinstance(device, torch.device | str) and torch.device(device).type == "meta"


def _pick(result: Any, values: dict[Node, Any]) -> Any:
    if isinstance(result, TraceTensor):
        if result.node not in values:
            raise _Unavailable(result.node.name)
        return values[result.node]
    if isinstance(result, tuple | list):
        return tuple(_pick(r, values) for r in result)
    return result


def _close(expected: Any, actual: Any) -> bool:
    if isinstance(expected, torch.Tensor):
        return (
            isinstance(actual, torch.Tensor)
            and expected.shape == actual.shape
            and expected.dtype == actual.dtype
            and torch.allclose(expected, actual, rtol=1e-4, atol=1e-5, equal_nan=True)
        )
    if isinstance(expected, tuple | list):
        return (
            isinstance(actual, tuple | list)
            and len(expected) == len(actual)
            and all(map(_close, expected, actual))
        )
    return bool(operator.eq(expected, actual))


def excludes_only_failing_sizes(
    env: ShapeEnv, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any], fact: Any,
    before: list[Any],
) -> bool:  # fmt: skip
    """Whether the guard ``fact`` a decomposition of ``op`` added fails only at
    sizes where ``op`` itself raises (``reshape(b, -1, ...)`` of an empty tensor
    is ambiguous, so its decomposition asks ``b >= 1``): there the original
    program raises anyway, and the decomposed one refuses instead (sizes a
    guard in ``before`` already refuses are excused as well). Each symbol
    of ``fact`` is tried alone at sizes 0 to 8, the others at their examples;
    no failing size at all also counts as no. Facts are read as recorded, not
    simplified: the env has already learned ``fact``, which would make it hold
    everywhere (T5's cross attention adds ``s0 == 1 or s0 == s2``)."""
    failing = [
        {name: v}
        for name in sorted(free_symbols(fact))
        for v in range(9)  # not filtered by range: the env may be narrowed already
        if env.holds_at(fact, {name: v}, simplified=False) is not True
    ]
    refused_before = [
        at
        for at in failing
        if any(env.holds_at(g, at, simplified=False) is not True for g in before)
    ]
    return bool(failing) and all(
        at in refused_before or _raises(env, op, args, kwargs, at) for at in failing
    )


def _raises(
    env: ShapeEnv, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any], at: dict[str, int]
) -> bool:
    generator = torch.Generator().manual_seed(0)
    try:
        with _disable_current_modes(), torch.no_grad():
            op(*_inputs(env, args, at, generator, {}), **_inputs(env, kwargs, at, generator, {}))
    except _Unavailable:
        return False  # no data to run it on: unknown, so not excused
    except (RuntimeError, ValueError, IndexError, TypeError, ZeroDivisionError, EvaluationError):
        return True
    return False
