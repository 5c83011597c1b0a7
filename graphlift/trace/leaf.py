"""Leaf functions: Python functions the tracer calls as one opaque graph node.

``@graphlift.leaf_function`` marks a function whose body must not be traced
(logging, a call into another library, code with data-dependent Python). Its
``register_fake`` implementation computes the result's metadata from the
arguments' metadata; the graph gets one ``call_function`` node whose target
is the `LeafFunction` itself, so ``module()`` runs the real function eagerly.

Contract, as torch's ``leaf_function``: arguments and results are tensors,
Python scalars and (nested) tuples/lists/dicts of them; the result is a tensor
or a tuple/list of tensors; the function does not mutate its arguments. Each
real call checks its result's shapes and dtypes against the fake's for the
same arguments (RuntimeAssertError on a mismatch), so a wrong fake cannot
make a program silently compute something else. A leaf
call is never erased or merged by graph passes (it may have side effects).

Serialization names a leaf function only when it was given a ``name``: an
archive then stores ``graphlift.leaf:<name>``, and loading looks the name up
in :data:`LEAF_FUNCTIONS` (filled by the decorator in the loading process,
like ``torch.library`` ops), never importing anything.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes, _get_current_dispatch_mode_stack

from graphlift.errors import RuntimeAssertError, TraceError
from graphlift.ir.effects import register_side_effect
from graphlift.pytree import tree_leaves, tree_map
from graphlift.source import user_where
from graphlift.trace.mode import TraceMode
from graphlift.trace.recorder import META, Recorder

#: name -> leaf function, for archives (filled by ``leaf_function(name=...)``).
LEAF_FUNCTIONS: dict[str, LeafFunction] = {}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class LeafFunction:
    """A function called as one graph node; see the module docstring."""

    __qualname__: str  # the wrapped function's, set by functools.update_wrapper

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.fake: Callable[..., Any] | None = None
        self.name = name

    def register_fake(self, fake: Callable[..., Any]) -> Callable[..., Any]:
        """Set the function computing the result's metadata (usable as a decorator).
        It receives meta tensors with the arguments' (possibly symbolic) sizes."""
        self.fake = fake
        return fake

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorder = _active_recorder()
        if recorder is not None:
            return _record_leaf_call(recorder, self, args, kwargs)
        result = self.fn(*args, **kwargs)
        if self.fake is not None:
            _check_against_fake(self, self.fake, result, args, kwargs)
        return result

    def __repr__(self) -> str:
        return f"<leaf function {self.name or self.__qualname__}>"


def leaf_function(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Decorator: ``@leaf_function`` or ``@leaf_function(name="mylib.stats")``.

    A ``name`` (dotted identifiers, unique in the process) lets programs that
    call the function be saved; loading needs the same decorator to have run.
    """
    if name is not None:
        if not _NAME.match(name):
            raise TraceError(f"leaf function name {name!r} must be dotted Python identifiers")
        if name in LEAF_FUNCTIONS:
            raise TraceError(f"a leaf function named {name!r} is already registered")

    def decorate(function: Callable[..., Any]) -> LeafFunction:
        leaf = LeafFunction(function, name)
        if name is not None:
            LEAF_FUNCTIONS[name] = leaf
        register_side_effect(leaf)
        return leaf

    return decorate if fn is None else decorate(fn)


def _active_recorder() -> Recorder | None:
    """The Recorder of the innermost TraceMode on the dispatch-mode stack, if any."""
    for mode in reversed(_get_current_dispatch_mode_stack()):
        if isinstance(mode, TraceMode):
            return mode.recorder
    return None


def _record_leaf_call(
    recorder: Recorder, leaf: LeafFunction, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """One node calling ``leaf``; its fake implementation gives the result metadata."""
    label = leaf.name or leaf.__qualname__
    if leaf.fake is None:
        raise TraceError(
            f"leaf function {label} has no fake implementation, so the tracer cannot know "
            f"its result's shapes; add one with @{leaf.fn.__name__}.register_fake",
            where=user_where(),
        )
    shadow_args, shadow_kwargs = tree_map(lambda v: _shadow(recorder, v), (args, kwargs))
    try:
        with _disable_current_modes():  # the fake impl runs on plain meta tensors, unrecorded
            result = leaf.fake(*shadow_args, **shadow_kwargs)
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as error:
        raise TraceError(
            f"the fake implementation of leaf function {label} failed on the traced shapes: "
            f"{error}",
            where=user_where(),
        ) from error
    shadow_result = _checked_result(label, result)
    traced = recorder.record_call(leaf, args, kwargs, shadow_result)
    if recorder.symbolic is not None:
        recorder.symbolic.bind_sizes(traced)
    return traced


def _check_against_fake(
    leaf: LeafFunction,
    fake: Callable[..., Any],
    result: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """The real result has the shapes and dtypes the fake gives for these
    arguments: programs were traced with the fake's, so a wrong fake would
    make them compute something else than eager without this check."""
    meta_args, meta_kwargs = tree_map(_meta_like, (args, kwargs))
    expected = [_describe(t) for t in tree_leaves(fake(*meta_args, **meta_kwargs))]
    actual = [_describe(t) for t in tree_leaves(result)]
    if actual != expected:
        label = leaf.name or leaf.__qualname__
        raise RuntimeAssertError(
            f"leaf function {label} returned {', '.join(actual)} where its fake "
            f"implementation says {', '.join(expected)}; programs that call it were traced "
            "with the fake's shapes and dtypes, so fix the fake to match the function"
        )


def _meta_like(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=META)
    return value


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__


def _shadow(recorder: Recorder, value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return recorder.traced(value).shadow
    if isinstance(value, torch.nn.Module):
        raise TraceError(
            "a leaf function takes tensors and Python values; pass the module's tensors, "
            "not the module",
            where=user_where(),
        )
    return value


def _checked_result(label: str, result: Any) -> Any:
    """The fake result as meta tensors: a tensor, or a tuple/list of tensors."""
    items = result if isinstance(result, tuple | list) else (result,)
    if not items or not all(isinstance(item, torch.Tensor) for item in items):
        raise TraceError(
            f"the fake implementation of leaf function {label} returned "
            f"{type(result).__name__}; it must return a tensor or a tuple/list of tensors "
            "with the real function's shapes and dtypes",
            where=user_where(),
        )
    metas = [
        item if item.device == META else
        torch.empty_strided(item.shape, item.stride(), dtype=item.dtype, device=META)
        for item in items
    ]  # fmt: skip
    return type(result)(metas) if isinstance(result, tuple | list) else metas[0]
