"""`wrap`: functions recorded as one ``call_function`` node instead of traced through.

``wrap("name")`` (or ``wrap(fn)``), called at the top level of a module, registers
that module's global ``name``; while a Tracer runs, it patches each registered
name (and the functions of ``autowrap_modules``) with a recording wrapper.
"""

from __future__ import annotations

import builtins
import functools
import sys
from collections.abc import Callable
from typing import Any

from graphlift.errors import UnsupportedTraceError
from graphlift.fx.proxy import _proxies_in
from graphlift.source import user_where

# (module globals, name) pairs registered with wrap().
WRAPPED_FUNCTIONS: list[tuple[dict[str, Any], str]] = []


def wrap(fn_or_name: str | Callable[..., Any]) -> str | Callable[..., Any]:
    """Record calls of a module-level function as one ``call_function`` node
    instead of tracing through it. Call at the top level of the module that
    defines (or imports) the function::

        def box_area(boxes): ...          # Python control flow inside is fine
        graphlift.wrap("box_area")        # or graphlift.wrap(box_area)
    """
    caller = sys._getframe(1)
    if caller.f_code.co_name != "<module>":
        raise UnsupportedTraceError(
            "wrap() must be called at the top level of a module", where=user_where()
        )
    name = fn_or_name if isinstance(fn_or_name, str) else fn_or_name.__name__
    if (caller.f_globals, name) not in ((g, n) for g, n in WRAPPED_FUNCTIONS):
        WRAPPED_FUNCTIONS.append((caller.f_globals, name))
    return fn_or_name


def wrapped_builtins() -> set[str]:
    """The builtin names registered with wrap() (e.g. ``wrap("len")``)."""
    return {
        name
        for namespace, name in WRAPPED_FUNCTIONS
        if name not in namespace and hasattr(builtins, name)
    }


def wrapped_function_ids() -> set[int]:
    """The functions registered with wrap(), by identity: a GraphModule's
    generated code refers to them directly, so retracing it must record them too."""
    found = set()
    for namespace, name in WRAPPED_FUNCTIONS:
        target = namespace.get(name, getattr(builtins, name, None))
        if target is not None:
            found.add(id(target))
    return found


def recording_wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that records a node when any argument is a Proxy, else just runs."""

    @functools.wraps(fn)
    def recording(*args: Any, **kwargs: Any) -> Any:
        proxies = _proxies_in((args, kwargs))
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", fn, args, kwargs)
        return fn(*args, **kwargs)

    return recording
