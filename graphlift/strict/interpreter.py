"""A symbolic interpreter for CPython 3.11 bytecode: strict capture's engine.

``Interpreter.call(fn, args, kwargs)`` runs a call the way CPython would, one
instruction at a time, with these differences:

- **User code is interpreted, library code runs.** A Python function whose
  file is user code (``graphlift.source.is_user_file``: not torch, graphlift
  or the standard library) is interpreted in a new ``Frame``; anything else
  (torch functions, tensor methods, builtins) is called. Tensor operations
  therefore reach the dispatch-level tracer exactly as in non-strict export,
  and strict and non-strict produce the same ATen graph.
- **Writes to what existed before are refused** (``effects.py``): ``STORE_ATTR``
  / ``STORE_SUBSCR`` on an object the call did not create, ``STORE_GLOBAL``,
  a write to a closure cell from outside, a mutating method of a pre-existing
  list, dict or set. A tensor may be written (that is a traced in-place op).
- **What it reads, it guards** (``guards.py``): globals and closure cells that
  hold Python values become ``PythonGuard``s checked by ``ep.module()``.
- **Module calls are emulated**: a user module's ``__call__`` runs its hooks
  and ``forward`` in the interpreter (hooks are traced, not fired natively),
  graphlift's own bookkeeping hooks run as they are.
- Generators are resumable interpreted frames (``InterpretedGenerator``);
  ``yield from`` delegates through ``SEND``.
- **Data-dependent control flow becomes graph control flow**: an ``if`` on a
  tensor becomes ``cond`` (``branches.py``); a ``for`` over a tensor of
  data-dependent length becomes ``scan`` and a ``while`` on a tensor
  ``while_loop`` (``loops.py``). Their bodies run as *traced regions*
  (``regions.py``), where writes to Python objects made before are refused.

Anything it does not model is a ``StrictCaptureError`` naming the reason and
the user's line — never a silent fallback to running the code.
"""

from __future__ import annotations

import builtins
import inspect
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, cast

import torch

from graphlift.errors import SideEffectError, StrictCaptureError
from graphlift.source import INTERPRETED_FRAME
from graphlift.strict import opcodes, opcodes_values  # noqa: F401 - they fill OPCODES
from graphlift.strict.classes import is_user_function
from graphlift.strict.effects import Provenance, SideEffectLog, mutated_container
from graphlift.strict.frame import Frame
from graphlift.strict.guards import PythonGuard, needs_guard
from graphlift.strict.instructions import NEXT, OPCODES, YIELD

_CO_GENERATOR = inspect.CO_GENERATOR


class InterpretedGenerator:
    """A generator whose frame the interpreter runs: each ``next()`` resumes it up
    to its next yield, so its work interleaves with its consumer's as in CPython."""

    def __init__(self, interpreter: Interpreter, frame: Frame) -> None:
        self._interpreter = interpreter
        self._frame: Frame | None = frame
        self._started = False

    def __iter__(self) -> InterpretedGenerator:
        return self

    def __next__(self) -> Any:
        if self._frame is None:
            raise StopIteration
        if self._started:
            self._frame.push(None)  # the value of the paused yield expression
        self._started = True
        yielded, value = self._interpreter.execute(self._frame)
        if not yielded:
            self._frame = None
            raise StopIteration(value)
        return value


class Interpreter:
    def __init__(self) -> None:
        self.provenance = Provenance()
        self.log = SideEffectLog()
        self.guards: list[PythonGuard] = []
        self._guarded: set[tuple[int, str]] = set()
        self.frame: Frame | None = None
        #: What the code being run becomes, inside a loop body or an if path
        #: converted to graph control flow (None outside them).
        self.region: str | None = None

    # --- calls ----------------------------------------------------------------------------

    def call(self, fn: Any, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> Any:
        args = tuple(args)
        mutated = mutated_container(fn)
        if mutated is not None:
            self.will_change_contents(mutated[0])
        if isinstance(fn, torch.nn.Module) and is_user_function(type(fn).forward):
            return self._call_module(fn, args, kwargs)
        if isinstance(fn, types.MethodType) and is_user_function(fn.__func__):
            return self._interpret(
                cast(types.FunctionType, fn.__func__), (fn.__self__, *args), kwargs
            )
        if isinstance(fn, types.FunctionType) and is_user_function(fn):
            return self._interpret(fn, args, kwargs)
        if fn is builtins.next and args and self.region is not None:
            self._fresh(args[0])  # advancing an iterator made before a loop body: refused
        if fn is builtins.super and not args:
            return self._zero_argument_super()
        if fn in (builtins.setattr, builtins.delattr, object.__setattr__, object.__delattr__):
            self.will_set_attribute(args[0], args[1])
        if isinstance(fn, type) and _is_user_class(fn):
            return self._construct(fn, args, kwargs)
        result = fn(*args, **kwargs)
        if isinstance(fn, type) and fn in (list, dict, set, bytearray):
            self.provenance.created(result)
        return result

    def _call_module(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: Any) -> Any:
        """``nn.Module._call_impl``: pre hooks, forward, hooks; user hooks interpreted."""
        hooks = torch.nn.modules.module
        with_kwargs = module._forward_pre_hooks_with_kwargs
        for hook_id, hook in (*hooks._global_forward_pre_hooks.items(),
                              *module._forward_pre_hooks.items()):  # fmt: skip
            if hook_id in with_kwargs:  # registered with with_kwargs=True: (args, kwargs)
                result = self.call(hook, (module, args, kwargs), {})
                if result is not None:
                    args, kwargs = result
                continue
            result = self.call(hook, (module, args), {})
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.call(module.forward, args, kwargs)
        for hook in (*hooks._global_forward_hooks.values(), *module._forward_hooks.values()):
            result = self.call(hook, (module, args, output), {})
            if result is not None:
                output = result
        return output

    def _construct(self, cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        new: Any = cls.__new__
        instance = new(cls) if new is object.__new__ else new(cls, *args, **kwargs)
        self.provenance.created(instance)
        if isinstance(instance, cls):
            self.call(type(instance).__init__, (instance, *args), kwargs)
        return instance

    def _zero_argument_super(self) -> Any:
        frame = self.frame
        assert frame is not None
        cell = frame.cells.get("__class__")
        first = frame.f_code.co_varnames[0] if frame.f_code.co_argcount else None
        if cell is None or first is None:
            self._refuse_unsupported("super() without a __class__ cell")
        return builtins.super(cell.cell_contents, frame.locals[first])

    def _interpret(self, fn: types.FunctionType, args: tuple[Any, ...], kwargs: Any) -> Any:
        try:
            bound = inspect.signature(fn, follow_wrapped=False).bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{fn.__qualname__}(): {error}") from None
        bound.apply_defaults()
        code = fn.__code__
        parameters = bound.signature.parameters
        local_values: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                value = tuple(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                value = self.provenance.created(dict(value))
            # inspect calls a comprehension's implicit iterator argument ".0" "implicit0"
            local_values[".0" if name == "implicit0" and ".0" in code.co_varnames else name] = value
        frame = Frame(code, fn.__globals__, local_values, fn.__closure__ or (), self.frame)
        if code.co_flags & _CO_GENERATOR:
            return self.provenance.created(InterpretedGenerator(self, frame))
        yielded, value = self.execute(frame)
        assert not yielded
        return value

    # --- the loop -------------------------------------------------------------------------

    def execute(self, frame: Frame) -> tuple[bool, Any]:
        """Run ``frame`` until it returns ``(False, value)`` or yields ``(True, value)``;
        a yielded frame resumes where it stopped on the next call."""
        caller = self.frame
        frame.f_back = caller
        self.frame = frame
        token = INTERPRETED_FRAME.set(frame)
        try:
            while True:
                instruction = frame.listing.instructions[frame.index]
                if instruction.offset == frame.stop_offset:
                    frame.stopped = True
                    return False, None
                frame.f_lasti = instruction.offset
                frame.index += 1
                try:
                    handler = OPCODES.get(instruction.opname)
                    if handler is None:
                        self._refuse_unsupported(f"the instruction {instruction.opname}")
                    result = handler(self, frame, instruction)
                except StrictCaptureError:
                    raise
                except Exception as error:
                    if not self._handle(frame, instruction.offset, error):
                        raise
                    continue
                if result is YIELD:
                    return True, frame.pop()
                if result is not NEXT:
                    return False, result
        finally:
            self.frame = caller
            INTERPRETED_FRAME.reset(token)

    def _handle(self, frame: Frame, offset: int, error: BaseException) -> bool:
        handler = frame.handler_for(offset)
        if handler is None:
            return False
        del frame.stack[handler.depth :]
        if handler.lasti:
            frame.push(offset)
        frame.push(error)
        frame.jump(handler.target)
        return True

    # --- refusals and guards --------------------------------------------------------------

    def will_set_attribute(self, owner: Any, name: str) -> None:
        if not self._fresh(owner):
            self.log.attribute(owner, name, self._where())

    def will_set_item(self, owner: dict[Any, Any], name: Any) -> None:
        self._fresh(owner)
        self.log.item(owner, name, self._where())

    def will_set_cell(self, cell: Any, name: str) -> None:
        if not self._fresh(cell):
            self.log.cell(cell, name, self._where())

    def will_change_contents(self, container: Any) -> None:
        """Before a write into ``container`` (an item, a mutating method)."""
        if isinstance(container, torch.Tensor) or self._fresh(container):
            return
        if not isinstance(container, list | dict | set):
            self._refuse(f"writing into a {type(container).__name__} that existed before the call")
        self.log.contents(container, self._where())

    def _fresh(self, owner: Any) -> bool:
        """May ``owner`` be written freely? Inside a traced region only what the
        region created may: anything else is refused at once."""
        if self.provenance.is_fresh_in_region(owner):
            return True
        if self.region is not None:
            raise StrictCaptureError(
                f"{self.region} changes a Python object ({type(owner).__name__}) made before "
                "it: that code becomes a graph of tensor operations, so a Python effect "
                "would happen once at export instead of on every run; keep its results "
                "in tensors (or export with strict=False and data_dependent='specialize')",
                where=self._where(),
            )
        return self.provenance.is_fresh(owner)

    @contextmanager
    def traced_region(self, description: str) -> Iterator[None]:
        """Run code that becomes a control-flow body (``description``: what it is)."""
        saved, self.region = self.region, description
        try:
            with self.provenance.region():
                yield
        finally:
            self.region = saved

    def finish(self) -> None:
        """Undo every net change to what existed before; raise if there was one."""
        changed = self.log.undo()
        if changed:
            first = changed[0]
            raise SideEffectError(
                f"{first.describe()}; strict capture leaves Python state as it found it "
                "(it was restored: return the value instead, or export with strict=False)",
                where=first.where,
            )

    def _where(self) -> str:
        return self.frame.where() if self.frame else "?"

    def _refuse(self, what: str) -> NoReturn:
        raise SideEffectError(
            f"{what}: strict capture does not change Python state that existed before the "
            "call (return the value instead, or export with strict=False)",
            where=self.frame.where() if self.frame else None,
        )

    def _refuse_unsupported(self, what: str) -> NoReturn:
        raise StrictCaptureError(
            f"{what} is not supported yet (docs/strict.md lists what is; strict=False runs "
            "this code as it is)",
            where=self.frame.where() if self.frame else None,
        )

    def guard(self, kind: str, owner: Any, name: str, value: Any) -> None:
        key = (id(owner), name)
        if key in self._guarded or not needs_guard(value) or self.log.wrote(owner, name):
            return
        self._guarded.add(key)
        where = self.frame.where() if self.frame else "?"
        self.guards.append(PythonGuard(kind, owner, name, value, where))


def _is_user_class(cls: type) -> bool:
    init = cls.__dict__.get("__init__")
    return init is not None and is_user_function(init) and not issubclass(cls, BaseException)
