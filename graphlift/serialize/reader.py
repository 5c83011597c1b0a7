"""Typed reading of untrusted JSON: every access checks the type and knows its path.

``Data(value, "graphs.root")["nodes"].items()`` either returns what the
decoder expects or raises :class:`ArchiveError` naming the path and what was
found, so a mutated field anywhere in ``program.json`` is reported as such
instead of surfacing as a ``KeyError`` deep inside the decoder.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from graphlift.errors import ArchiveError

T = TypeVar("T")


class Data:
    __slots__ = ("path", "value")

    def __init__(self, value: Any, path: str) -> None:
        self.value = value
        self.path = path

    def fail(self, problem: str) -> ArchiveError:
        return ArchiveError(f"malformed program.json: {problem}", path=self.path)

    def _expect(self, kind: type[T], name: str) -> T:
        if not isinstance(self.value, kind) or (kind is int and isinstance(self.value, bool)):
            raise self.fail(f"expected {name}, found {_describe(self.value)}")
        return self.value

    # --- objects ----------------------------------------------------------------------

    def fields(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Data:
        """Check this is an object with exactly these keys (optional ones may be missing)."""
        value = self._expect(dict, "an object")
        missing = [key for key in required if key not in value]
        extra = [key for key in value if key not in required and key not in optional]
        if missing or extra:
            raise self.fail(
                f"expected keys {list(required)}, missing {missing}, unexpected {extra}"
            )
        return self

    def __getitem__(self, key: str) -> Data:
        value = self._expect(dict, "an object")
        if key not in value:
            raise self.fail(f"missing key {key!r}")
        return Data(value[key], f"{self.path}.{key}")

    def get(self, key: str) -> Data | None:
        value = self._expect(dict, "an object")
        return Data(value[key], f"{self.path}.{key}") if key in value else None

    def entries(self) -> Iterator[tuple[str, Data]]:
        value = self._expect(dict, "an object")
        for key, item in value.items():
            yield key, Data(item, f"{self.path}.{key}")

    # --- arrays and scalars -----------------------------------------------------------

    def items(self, length: int | None = None) -> list[Data]:
        value = self._expect(list, "an array")
        if length is not None and len(value) != length:
            raise self.fail(f"expected {length} items, found {len(value)}")
        return [Data(item, f"{self.path}[{index}]") for index, item in enumerate(value)]

    def str(self) -> str:
        return self._expect(str, "a string")

    def int(self) -> int:
        return self._expect(int, "an integer")

    def bool(self) -> bool:
        return self._expect(bool, "a boolean")

    def optional_str(self) -> builtins.str | None:
        return None if self.value is None else self.str()

    def optional_int(self) -> builtins.int | None:
        return None if self.value is None else self.int()

    def choice(self, options: Mapping[builtins.str, Any]) -> Any:
        """The value named by this string in ``options`` (enum members by name)."""
        name = self.str()
        if name not in options:
            raise self.fail(f"unknown name {name!r}; expected one of {sorted(options)[:12]}")
        return options[name]


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
