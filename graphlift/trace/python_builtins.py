"""Python's ``min`` and ``max``, and ``torch.tensor``, over symbolic values while a model is traced.

``min(n, 4)`` with ``n = x.item()`` compares ``n < 4`` in Python, which is a
data-dependent branch; torch.export's non-strict tracing replaces the builtins
so that two symbolic operands give ``torch.sym_min`` / ``torch.sym_max``, an
expression the graph records instead of a guard. The same is done here, for
exactly that case: every other call (iterables, keys, defaults, tensors, plain
numbers) goes to the original builtin unchanged.

``torch.tensor([a * 2, b + 1])`` over ``.item()`` values is C++ that reads each
number as a plain int, a data-dependent guard. torch.export's non-strict
tracing sends such data to ``torch._refs.tensor`` (``scalar_tensor`` per element,
then ``stack``); so does :func:`symbolic_tensor_data`. Other data goes to
``torch.tensor`` unchanged (the Python version does not handle empty data).
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch._refs
from torch.utils._pytree import tree_leaves

from graphlift.patching import Patcher

_SYMBOLIC = (torch.SymInt, torch.SymFloat)
_NUMBERS = (int, float, torch.SymInt, torch.SymFloat)


def _symbolic_extremum(original: Callable[..., Any], symbolic: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def extremum(*args: Any, **kwargs: Any) -> Any:
        if (
            len(args) == 2
            and not kwargs
            and all(isinstance(a, _NUMBERS) and not isinstance(a, bool) for a in args)
            and any(isinstance(a, _SYMBOLIC) for a in args)
        ):
            return symbolic(*args)
        return original(*args, **kwargs)

    return extremum


@contextmanager
def symbolic_min_max() -> Iterator[None]:
    """``min``/``max`` of two numbers, one of them symbolic, record an expression."""
    with Patcher() as patcher:
        patcher.patch_attribute(builtins, "min", _symbolic_extremum(builtins.min, torch.sym_min))
        patcher.patch_attribute(builtins, "max", _symbolic_extremum(builtins.max, torch.sym_max))
        yield


def _tensor_of_symbolic_data(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def tensor(data: Any, *args: Any, **kwargs: Any) -> Any:
        if any(isinstance(leaf, (*_SYMBOLIC, torch.SymBool)) for leaf in tree_leaves(data)):
            return torch._refs.tensor(data, *args, **kwargs)  # type: ignore[no-untyped-call]  # torch's is unannotated
        return original(data, *args, **kwargs)

    return tensor


@contextmanager
def symbolic_tensor_data() -> Iterator[None]:
    """``torch.tensor`` of data holding symbolic numbers records the elements."""
    with Patcher() as patcher:
        patcher.patch_attribute(torch, "tensor", _tensor_of_symbolic_data(torch.tensor))
        yield
