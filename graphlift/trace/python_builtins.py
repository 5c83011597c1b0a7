"""Python's ``min`` and ``max`` over symbolic sizes, while a model is traced.

``min(n, 4)`` with ``n = x.item()`` compares ``n < 4`` in Python, which is a
data-dependent branch; torch.export's non-strict tracing replaces the builtins
so that two symbolic operands give ``torch.sym_min`` / ``torch.sym_max``, an
expression the graph records instead of a guard. The same is done here, for
exactly that case: every other call (iterables, keys, defaults, tensors, plain
numbers) goes to the original builtin unchanged.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from graphlift.patching import Patcher

_SYMBOLIC = (torch.SymInt, torch.SymFloat)
_NUMBERS = (int, float, torch.SymInt, torch.SymFloat)


def _symbolic_extremum(original: Callable[..., Any], symbolic: Callable[..., Any]) -> Any:
    def extremum(*args: Any, **kwargs: Any) -> Any:
        if (
            len(args) == 2
            and not kwargs
            and all(isinstance(a, _NUMBERS) and not isinstance(a, bool) for a in args)
            and any(isinstance(a, _SYMBOLIC) for a in args)
        ):
            return symbolic(*args)
        return original(*args, **kwargs)

    extremum.__name__ = original.__name__
    extremum.__doc__ = original.__doc__
    return extremum


@contextmanager
def symbolic_min_max() -> Iterator[None]:
    """``min``/``max`` of two numbers, one of them symbolic, record an expression."""
    with Patcher() as patcher:
        patcher.patch_attribute(builtins, "min", _symbolic_extremum(builtins.min, torch.sym_min))
        patcher.patch_attribute(builtins, "max", _symbolic_extremum(builtins.max, torch.sym_max))
        yield
