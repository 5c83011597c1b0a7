"""Typed values in an archive: node arguments and node ``meta["val"]``.

JSON scalars stand for themselves (``null``, booleans, integers, strings,
finite floats); everything else is an object with exactly one tag:

===================  ==============================================
``{"node": n}``      the value of node ``n`` (defined earlier)
``{"tuple": [...]}`` ``{"list": [...]}`` ``{"dict": [[k, v], ...]}``
``{"slice": [a, b, c]}``  ``{"float": "inf" | "-inf" | "nan"}``
``{"dtype": "float32"}`` ``{"device": "cpu"}`` ``{"layout": "strided"}``
``{"memory_format": "channels_last"}``  ``{"target": "aten::add.Tensor"}``
``{"sym_int": "s0 + 1"}`` (also ``sym_float``, ``sym_bool``): expression text
``{"tensor_meta": {...}}``  a traced tensor's metadata (dtype, sizes, strides,
                     storage offset, device, requires_grad), rebuilt as a
                     meta-device TraceTensor with symbolic sizes
===================  ==============================================

A new kind of value is a new tag here (old archives never use it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from graphlift.errors import ArchiveError, GraphliftError, SerializationError
from graphlift.ir.node import Node
from graphlift.serialize.reader import Data
from graphlift.serialize.shape_env_state import ExprReader, expr_text
from graphlift.serialize.targets import resolve_target, target_name
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic import algebra as E
from graphlift.symbolic.sym_node import SymNode, wrap
from graphlift.trace.tensor import TraceTensor

DTYPES: dict[str, torch.dtype] = {
    name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)
}
DTYPE_NAMES: dict[torch.dtype, str] = {}
for _name, _dtype in sorted(DTYPES.items()):
    DTYPE_NAMES.setdefault(_dtype, str(_dtype).removeprefix("torch."))
LAYOUTS = {
    str(v).removeprefix("torch."): v for v in vars(torch).values() if isinstance(v, torch.layout)
}
MEMORY_FORMATS = {
    str(v).removeprefix("torch."): v
    for v in vars(torch).values()
    if isinstance(v, torch.memory_format)
}
_DEVICE = re.compile(r"[a-z_]{1,20}(:\d{1,4})?$")
_SYMBOLIC: dict[type[torch.SymInt | torch.SymFloat | torch.SymBool], tuple[str, type]] = {
    torch.SymInt: ("sym_int", int),
    torch.SymFloat: ("sym_float", float),
    torch.SymBool: ("sym_bool", bool),
}
_EXPR_KINDS = {"sym_int": ("int", int), "sym_float": ("float", float), "sym_bool": ("bool", bool)}
_MAX_DIMS = 64
_MAX_SIZE = 2**62


def encode_value(value: Any) -> Any:
    """JSON for an argument or meta value; SerializationError for what has no encoding."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, Node):
        return {"node": value.name}
    if isinstance(value, TraceTensor):
        return {"tensor_meta": _tensor_meta(value)}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return {"list": [encode_value(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str | int) for k in value):
        return {"dict": [[k, encode_value(v)] for k, v in value.items()]}
    if isinstance(value, slice):
        return {"slice": [encode_value(v) for v in (value.start, value.stop, value.step)]}
    for kind, (tag, _) in _SYMBOLIC.items():
        if isinstance(value, kind):
            return {tag: expr_text(value.node.symbolic_expr)}
    simple = _simple_tag(value)
    if simple is not None:
        return simple
    raise SerializationError(f"cannot save a value of type {type(value).__name__}: {value!r:.80}")


def _simple_tag(value: Any) -> dict[str, str] | None:
    if isinstance(value, torch.dtype):
        return {"dtype": DTYPE_NAMES[value]}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if callable(value) and not isinstance(value, type):
        return {"target": target_name(value)}
    return None


def _tensor_meta(value: TraceTensor) -> dict[str, Any]:
    shadow = value.shadow
    return {
        "dtype": DTYPE_NAMES[value.dtype],
        "sizes": [encode_value(size) for size in shadow.shape],
        "strides": [encode_value(stride) for stride in shadow.stride()],
        "storage_offset": encode_value(shadow.storage_offset()),
        "device": str(value.device),
        "requires_grad": value.requires_grad,
    }


class ValueDecoder:
    """Turns archive values back into arguments and meta values of one program."""

    def __init__(self, shape_env: ShapeEnv | None, read_expr: ExprReader) -> None:
        self.shape_env = shape_env
        self.read_expr = read_expr
        self.nodes: dict[str, Node] = {}  # the graph being decoded, by name
        self.owner: Node | None = None  # the node whose meta is being decoded
        self._symbolic: dict[tuple[str, Any], Any] = {}  # one SymInt per expression text

    def __call__(self, data: Data) -> Any:
        value = data.value
        if value is None or isinstance(value, bool | int | str | float):
            return value
        if isinstance(value, list):
            raise data.fail(
                "a bare array; containers are tagged ({'tuple': [...]} or {'list': [...]})"
            )
        data.fields((), tuple(_DECODERS))
        if len(value) != 1:
            raise data.fail(f"expected one tag, found {sorted(value)[:6]}")
        ((tag, _),) = value.items()
        return _DECODERS[tag](self, data[tag])

    def node(self, data: Data) -> Node:
        name = data.str()
        if name not in self.nodes:
            raise data.fail(f"refers to node {name[:40]!r}, which is not defined before it")
        return self.nodes[name]

    def symbolic(self, data: Data, tag: str) -> Any:
        if self.shape_env is None:
            raise data.fail("a symbolic value in a program without symbols")
        key = (tag, data.str())
        known = self._symbolic.get(key)
        if known is None:
            kind, pytype = _EXPR_KINDS[tag]
            expr = self.read_expr(data, kind)
            unknown = sorted(E.free_symbols(expr) - {s.name for s in self.shape_env.symbols})
            if unknown:
                raise data.fail(f"unknown symbols {unknown[:3]}")
            known = wrap(SymNode(expr, self.shape_env, pytype, self.shape_env.hint_of(expr)))
            self._symbolic[key] = known
        return known

    def tensor_meta(self, data: Data) -> TraceTensor:
        data.fields(("dtype", "sizes", "strides", "storage_offset", "device", "requires_grad"))
        dtype = data["dtype"].choice(DTYPES)
        sizes = [self._size(item) for item in data["sizes"].items()]
        strides = [self._size(item) for item in data["strides"].items(len(sizes))]
        if len(sizes) > _MAX_DIMS:
            raise data.fail(f"{len(sizes)} dimensions (at most {_MAX_DIMS})")
        offset = self._size(data["storage_offset"])
        device = _device(data["device"])
        if self.owner is None:
            raise data.fail("a tensor value outside a node's meta")
        try:
            shadow = _shadow(sizes, strides, offset, dtype, self.shape_env)
            return TraceTensor(shadow, self.owner, device, data["requires_grad"].bool())
        except ArchiveError:
            raise
        except (
            GraphliftError,
            RuntimeError,
            ValueError,
            TypeError,
            ArithmeticError,
            LookupError,
        ) as error:
            raise data.fail(f"inconsistent tensor metadata: {str(error)[:200]}") from None

    def _size(self, item: Data) -> Any:
        value = self(item)
        if isinstance(value, torch.SymInt):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_SIZE:
            raise item.fail(
                f"expected a size (an integer in [0, 2**62) or a sym_int), found {value!r:.40}"
            )
        return value


def _shadow(
    sizes: list[Any], strides: list[Any], offset: Any, dtype: torch.dtype, env: ShapeEnv | None
) -> torch.Tensor:
    """The meta tensor a TraceTensor wraps; a nonzero offset needs a base big enough to
    view. A dim of size 0 adds nothing to that extent (``(size - 1) * stride`` would
    make it negative: an empty slice at an offset, ``h[1::2]`` of an empty ``h``)."""

    def build() -> torch.Tensor:
        if isinstance(offset, int) and offset == 0:
            return torch.empty_strided(sizes, strides, dtype=dtype, device="meta")
        extent = offset + 1
        for size, stride in zip(sizes, strides):
            extent = extent + torch.sym_max(size - 1, 0) * stride  # type: ignore[no-untyped-call]
        base = torch.empty_strided((extent,), (1,), dtype=dtype, device="meta")
        return base.as_strided(sizes, strides, offset)

    if env is None:
        return build()
    with env.suppress_guards():
        return build()


def _device(data: Data) -> torch.device:
    text = data.str()
    if not _DEVICE.match(text):
        raise data.fail(f"bad device {text[:40]!r}")
    try:
        return torch.device(text)
    except RuntimeError:
        raise data.fail(f"bad device {text[:40]!r}") from None


def _float(decoder: ValueDecoder, data: Data) -> float:
    text = data.str()
    if text not in ("inf", "-inf", "nan"):
        raise data.fail(f"bad float {text[:20]!r}")
    return float(text)


def _dict(decoder: ValueDecoder, data: Data) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for pair in data.items():
        key, value = pair.items(2)
        if not isinstance(key.value, str | int) or isinstance(key.value, bool):
            raise key.fail("dict keys are strings or integers")
        result[key.value] = decoder(value)
    return result


def _slice(decoder: ValueDecoder, data: Data) -> slice:
    start, stop, step = (decoder(item) for item in data.items(3))
    return slice(start, stop, step)


_DECODERS: dict[str, Callable[[ValueDecoder, Data], Any]] = {
    "node": ValueDecoder.node,
    "tuple": lambda d, data: tuple(d(item) for item in data.items()),
    "list": lambda d, data: [d(item) for item in data.items()],
    "dict": _dict,
    "slice": _slice,
    "float": _float,
    "dtype": lambda d, data: data.choice(DTYPES),
    "device": lambda d, data: _device(data),
    "layout": lambda d, data: data.choice(LAYOUTS),
    "memory_format": lambda d, data: data.choice(MEMORY_FORMATS),
    "target": lambda d, data: resolve_target(data.str(), data.path),
    "sym_int": lambda d, data: d.symbolic(data, "sym_int"),
    "sym_float": lambda d, data: d.symbolic(data, "sym_float"),
    "sym_bool": lambda d, data: d.symbolic(data, "sym_bool"),
    "tensor_meta": ValueDecoder.tensor_meta,
}
