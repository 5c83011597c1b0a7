"""`ProxyableClassMeta`: classes whose construction is recorded as a node.

With this metaclass, ``Pair(a, b)`` called with any Proxy argument while
tracing becomes ``call_function[Pair](a, b)`` instead of building an object
around Proxies; called with real values it constructs normally.
"""

from __future__ import annotations

from typing import Any

from graphlift.fx.proxy import _proxies_in


class ProxyableClassMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        proxies = _proxies_in((args, kwargs))
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", cls, args, kwargs)
        return super().__call__(*args, **kwargs)
