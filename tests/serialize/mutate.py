"""Taking archives apart and putting them back together, for the error tests and the fuzzer."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any


def entries(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def rezip(contents: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A well-formed zip (valid CRCs) of ``contents``: what it holds is what is tested."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for name, data in contents.items():
            z.writestr(name, data)
    return buffer.getvalue()


def program(archive: bytes) -> dict[str, Any]:
    return json.loads(entries(archive)["program.json"])  # type: ignore[no-any-return]


def with_program(archive: bytes, data: Any) -> bytes:
    contents = entries(archive)
    contents["program.json"] = json.dumps(data).encode()
    return rezip(contents)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document (keys and indices)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replace_at(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced (``DELETE`` removes it).

    Only the containers along the path are copied; the rest is shared.
    """
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    if not rest and new is DELETE:
        del copy[head]
    else:
        copy[head] = replace_at(document[head], rest, new)
    return copy


DELETE = object()
