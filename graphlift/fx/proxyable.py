"""`ProxyableClassMeta`: classes whose construction is recorded as a node.

With this metaclass, ``Pair(a, b)`` called with any Proxy argument while
tracing becomes ``call_function[Pair](a, b)`` instead of building an object
around Proxies; called with real values it constructs normally, and an
instance so built that reaches a traced operation becomes a ``get_attr``
constant of the GraphModule (``_Pair_constant_0``), as in torch.fx.
"""

from __future__ import annotations

import weakref
from typing import Any

from graphlift.fx.proxy import _proxies_in

# Every class made with ProxyableClassMeta: an instance built outside the
# trace and passed to a traced operation is recorded as a constant.
# (weak: a class defined in a function may go away).
PROXYABLE_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()


class ProxyableClassMeta(type):
    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> None:
        super().__init__(name, bases, namespace)
        PROXYABLE_CLASSES.add(cls)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        proxies = _proxies_in((args, kwargs))
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", cls, args, kwargs)
        return super().__call__(*args, **kwargs)
