"""Where in the *user's* code something happened.

Tracing runs the user's model through layers of torch and graphlift code. A
guard, an error or a recorded node should name the user's line, so we walk the
Python stack and skip frames that belong to torch, graphlift or the standard
library. Walking frames is cheap (no source is read until a location is
formatted), so this can run once per recorded node.
"""

from __future__ import annotations

import dis
import functools
import linecache
import os
import site
import sys
import sysconfig
import types
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch

_GRAPHLIFT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_EXAMPLES_DIR = os.path.join(_GRAPHLIFT_DIR, "examples") + os.sep
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_TORCH_NN_DIR = os.path.join(_TORCH_DIR, "nn") + os.sep
_STRICT_DIR = os.path.join(_GRAPHLIFT_DIR, "strict")
_STDLIB_DIR = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
# site-packages usually lives *inside* the stdlib directory; third-party model
# code there (transformers, timm) is user code.
# Installed packages are user code (transformers, a user's own library), also the
# base interpreter's site-packages that a virtualenv made with
# --system-site-packages sees (they lie under the base stdlib directory).
_SITE_DIRS = tuple(
    dict.fromkeys(
        os.path.abspath(path) + os.sep
        for path in (
            *(sysconfig.get_paths()[key] for key in ("purelib", "platlib")),
            *site.getsitepackages(),
        )
    )
)


@dataclass(frozen=True)
class SourceLocation:
    """A line of user code: file, line number, function name and the code text."""

    filename: str
    lineno: int
    function: str

    @property
    def code(self) -> str:
        return linecache.getline(self.filename, self.lineno).strip()

    @property
    def position(self) -> str:
        """``file:line in function``, without the code line."""
        return f"{self.filename}:{self.lineno} in {self.function}"

    def __str__(self) -> str:
        text = self.position
        code = self.code
        return f"{text}\n    {code}" if code else text

    @property
    def stack_trace(self) -> str:
        """What a node records as ``meta["stack_trace"]``: like ``str(self)``, but the
        file named relative to the ``sys.path`` entry it was imported from, so that
        printouts and archives are the same on every machine and in every clone."""
        text = f"{import_relative_path(self.filename)}:{self.lineno} in {self.function}"
        code = self.code
        return f"{text}\n    {code}" if code else text


def import_relative_path(filename: str) -> str:
    """``filename`` relative to the ``sys.path`` entry it was imported from
    (``transformers/models/llama/modeling_llama.py``, ``model.py``), with ``/``
    separators; its base name if no entry holds it. Remembered per file, search
    path and working directory (it runs once per recorded node)."""
    return _import_relative_path(filename, tuple(sys.path), os.getcwd())


@functools.lru_cache(maxsize=1024)
def _import_relative_path(filename: str, search_path: tuple[str, ...], cwd: str) -> str:
    path = os.path.abspath(filename)
    roots = [os.path.abspath(entry or cwd) for entry in search_path]
    # the innermost entry holding the file is the one a module name resolves against
    holding = [root for root in roots if path.startswith(root.rstrip(os.sep) + os.sep)]
    if not holding:
        return os.path.basename(path)
    relative = os.path.relpath(path, max(holding, key=len))
    return relative.replace(os.sep, "/")


def is_user_file(filename: str) -> bool:
    """True unless ``filename`` belongs to torch, graphlift or the standard library.

    Tests under ``tests/`` count as user code even though they live in the
    graphlift repository: only the installed package directory is skipped.
    """
    return _file_kind(filename).user


@dataclass(frozen=True)
class _FileKind:
    """Where a code object's file lies, as the stack walk asks about it."""

    user: bool
    strict: bool  # graphlift/strict: the bytecode interpreter
    torch_nn: bool
    torch: bool
    graphlift: bool


def _file_kind(filename: str) -> _FileKind:
    """The kind of ``filename``, remembered for absolute names (a relative one
    depends on the working directory): the stack walk asks it for every frame of
    every recorded node."""
    kind = _ABSOLUTE_KINDS.get(filename)
    if kind is not None:
        return kind
    if not os.path.isabs(filename):
        return _classify(filename, os.path.abspath(filename))
    if len(_ABSOLUTE_KINDS) >= 4096:
        _ABSOLUTE_KINDS.clear()
    kind = _ABSOLUTE_KINDS[filename] = _classify(filename, os.path.normpath(filename))
    return kind


_ABSOLUTE_KINDS: dict[str, _FileKind] = {}


def _classify(filename: str, path: str) -> _FileKind:
    return _FileKind(
        user=_is_user_path(filename, path),
        strict=path.startswith(_STRICT_DIR),
        torch_nn=path.startswith(_TORCH_NN_DIR),
        torch=path.startswith(_TORCH_DIR),
        graphlift=path.startswith(_GRAPHLIFT_DIR),
    )


def user_frame(start: FrameType | None = None) -> FrameType | None:
    """The innermost frame of user code on the current stack, or None.

    A model made only of torch.nn code (``nn.TransformerEncoder``) has no
    user frame inside its forward: the first user frame is the caller of
    ``export``, which says nothing. There the innermost ``torch/nn`` frame
    (``functional.py:6236 in _in_projection_packed``) is reported instead: we
    notice that we have walked out of the model when a graphlift frame follows
    torch frames.
    """
    interpreted: Any = INTERPRETED_FRAME.get()
    frame: FrameType | None = start if start is not None else sys._getframe(1)
    library: FrameType | None = None
    in_torch = False
    while frame is not None:
        kind = _file_kind(frame.f_code.co_filename)
        if kind.user:
            return frame
        if interpreted is not None and kind.strict:
            # strict capture: below here the user's code runs in the interpreter
            return interpreted  # type: ignore[no-any-return]
        if kind.torch_nn and library is None:
            library = frame
        if kind.torch:
            in_torch = True
        elif in_torch and library is not None and kind.graphlift:
            return library  # back in graphlift: the code that called the model
        frame = frame.f_back
    return library


def _is_user_path(filename: str, path: str) -> bool:
    if filename.startswith("<"):  # <string>, <frozen ...>, generated code
        return False
    if path.startswith(_EXAMPLES_DIR):  # the bundled example models are user code
        return True
    if path.startswith((_GRAPHLIFT_DIR, _TORCH_DIR)):
        return False
    return path.startswith(_SITE_DIRS) or not path.startswith(_STDLIB_DIR)


#: The innermost frame of user code that strict capture is interpreting (it has
#: ``f_code``, ``f_lineno``, ``f_lasti`` and ``f_back`` like a real frame), or None.
INTERPRETED_FRAME: ContextVar[Any] = ContextVar("interpreted_frame", default=None)


def user_location(start: FrameType | None = None) -> SourceLocation | None:
    """The user's current source location, or None when no user frame is on the stack."""
    frame = user_frame(start if start is not None else sys._getframe(1))
    if frame is None:
        return None
    return SourceLocation(frame.f_code.co_filename, frame.f_lineno or 0, frame.f_code.co_name)


def user_where(start: FrameType | None = None) -> str | None:
    """:func:`user_location` as the text errors carry in ``where``, or None."""
    location = user_location(start if start is not None else sys._getframe(1))
    return str(location) if location else None


def at_assert(frame: FrameType | None) -> bool:
    """True when ``frame`` is evaluating the condition of an ``assert`` statement.

    CPython compiles ``assert c`` to a conditional jump over
    ``LOAD_ASSERTION_ERROR``; the truth test of ``c`` runs inside that jump,
    so the instruction after ``f_lasti`` tells an assert from an ``if``.
    """
    if frame is None:
        return False
    instructions = _instructions(frame.f_code)
    index = instructions.get(frame.f_lasti)
    if index is None:
        return False
    listing = _listing(frame.f_code)
    return index + 1 < len(listing) and listing[index + 1].opname == "LOAD_ASSERTION_ERROR"


def _listing(code: types.CodeType) -> list[dis.Instruction]:
    found = _LISTINGS.get(code)
    if found is None:
        found = _LISTINGS[code] = list(dis.get_instructions(code))
    return found


def _instructions(code: types.CodeType) -> dict[int, int]:
    """Instruction offset -> index in the listing."""
    return {instruction.offset: i for i, instruction in enumerate(_listing(code))}


_LISTINGS: dict[types.CodeType, list[dis.Instruction]] = {}


def traceback_frames(error: BaseException) -> list[FrameType]:
    """The frames ``error`` passed through, outermost first."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def raised_in_graphlift(error: BaseException) -> bool:
    """Whether ``error`` was raised by graphlift's own code: its innermost frame
    outside the standard library is a graphlift frame (a ``KeyError`` from a
    dict lookup in graphlift counts; one raised by the model or by torch does not)."""
    for frame in reversed(traceback_frames(error)):
        path = os.path.abspath(frame.f_code.co_filename)
        if path.startswith(_STDLIB_DIR) and not path.startswith(_SITE_DIRS):
            continue
        return path.startswith(_GRAPHLIFT_DIR) and not path.startswith(_EXAMPLES_DIR)
    return False


def user_location_of(error: BaseException) -> SourceLocation | None:
    """The innermost user frame ``error`` passed through (the model line being traced)."""
    for frame in reversed(traceback_frames(error)):
        if is_user_file(frame.f_code.co_filename):
            return SourceLocation(
                frame.f_code.co_filename, frame.f_lineno or 0, frame.f_code.co_name
            )
    return None
