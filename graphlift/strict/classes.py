"""User classes the interpreter runs itself: ``class`` statements inside the
captured code, and properties defined in user code.

A ``class`` statement compiles to ``LOAD_BUILD_CLASS`` and a call of
``__build_class__(body, name, *bases, **keywords)``, where ``body`` is a
function whose code fills the class namespace (``STORE_NAME``). CPython would
run that body natively; ``build_class`` interprets it over the namespace the
metaclass prepares, then calls the metaclass as CPython does (``type.__new__``
fills the ``__class__`` cell zero-argument ``super()`` reads). What the
metaclass itself runs (``__init_subclass__``, ``__set_name__``) is library or
builtin code and runs natively.

A property whose getter or setter is user code is interpreted too (``LOAD_ATTR``
/ ``STORE_ATTR`` look it up on the type first): a getter that reads a global or
writes an attribute is then guarded or logged like any other user code.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from graphlift.source import is_user_file
from graphlift.strict.frame import Frame

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter


def is_user_function(fn: Any) -> bool:
    """User code, or a library decorator's wrapper around user code
    (``@torch.no_grad()``, ``functools.wraps``): the wrapper is interpreted too,
    so the user function it calls is, and does not escape into CPython."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    if is_user_file(code.co_filename):
        return True
    wrapped = getattr(fn, "__wrapped__", None)
    return wrapped is not None and wrapped is not fn and is_user_function(wrapped)


def user_property(owner: Any, name: str) -> property | None:
    """The property ``name`` of ``type(owner)`` when its getter is user code, else None.

    Only for types that look attributes up the ordinary way (no custom
    ``__getattribute__``), where a property on the type always wins."""
    cls = type(owner)
    lookup: Any = cls.__getattribute__
    if lookup is not object.__getattribute__:
        return None
    for klass in cls.__mro__:
        attribute = klass.__dict__.get(name)
        if attribute is not None:
            if isinstance(attribute, property) and is_user_function(attribute.fget):
                return attribute
            return None
    return None


def build_class(interp: Interpreter, body: types.FunctionType, name: str, *bases: Any,
                **keywords: Any) -> type:  # fmt: skip
    """``__build_class__`` with the class body interpreted."""
    resolved = types.resolve_bases(bases)
    metaclass, namespace, keywords = types.prepare_class(name, resolved, keywords)
    interp.provenance.created(namespace)
    frame = Frame(body.__code__, body.__globals__, namespace, body.__closure__ or (), interp.frame)
    yielded, _ = interp.execute(frame)
    assert not yielded
    if resolved is not bases:
        namespace["__orig_bases__"] = bases
    cls = metaclass(name, resolved, namespace, **keywords)
    return interp.provenance.created(cls)  # type: ignore[no-any-return]
