"""The container: a deterministic zip of JSON, safetensors and extra files.

Writing fixes every timestamp, permission and the entry order, and stores
entries uncompressed, so the same program always gives the same bytes.

Reading trusts nothing: only the entries of :mod:`.schema` may appear, each
stored uncompressed (no zip bomb can expand), with sizes within
:class:`~.schema.Limits`; zip CRCs are checked; the JSON parser refuses
NaN/Infinity, duplicate keys and runaway nesting; safetensors validates its
own header and offsets. Every failure is an :class:`ArchiveError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

import safetensors
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from graphlift.errors import ArchiveError
from graphlift.serialize.schema import (
    EXTRA_PREFIX,
    PROGRAM_ENTRY,
    SCHEMA_VERSION,
    TENSORS_ENTRY,
    VERSION_ENTRY,
    Limits,
)

FileLike = str | os.PathLike[str] | IO[bytes]
_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError,
               NotImplementedError, zlib.error, UnicodeDecodeError, OverflowError, KeyError)  # fmt: skip


@dataclass(frozen=True)
class Contents:
    """What an archive holds, parsed but not yet interpreted."""

    version: int
    program: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    extra_files: dict[str, bytes]


def write_archive(
    f: FileLike,
    program: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    extra_files: dict[str, bytes],
) -> None:
    text = json.dumps(program, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    entries = [
        (VERSION_ENTRY, f"{SCHEMA_VERSION}\n".encode()),
        (PROGRAM_ENTRY, text.encode()),
        (TENSORS_ENTRY, save_safetensors(tensors) if tensors else b""),
        *((EXTRA_PREFIX + name, data) for name, data in sorted(extra_files.items())),
    ]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    if isinstance(f, str | os.PathLike):
        with open(f, "wb") as out:
            out.write(buffer.getvalue())
    else:
        f.write(buffer.getvalue())


def read_bytes(f: FileLike) -> bytes:
    """The whole file (a missing path raises FileNotFoundError, as open() does)."""
    if isinstance(f, str | os.PathLike):
        with open(f, "rb") as source:
            return source.read()
    data = f.read()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ArchiveError(
            f"load() needs a binary file, got one whose read() returns {type(data).__name__}"
        )
    return bytes(data)


def read_archive(data: bytes, limits: Limits) -> Contents:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as error:
        raise ArchiveError(f"not a graphlift archive (unreadable zip: {error})") from None
    with archive:
        entries = _checked_entries(archive, len(data), limits)
        version = _version(_read(archive, VERSION_ENTRY, entries))
        program = parse_json(_read(archive, PROGRAM_ENTRY, entries), limits)
        tensors = _tensors(_read(archive, TENSORS_ENTRY, entries))
        extra = {name[len(EXTRA_PREFIX):]: _read(archive, name, entries)
                 for name in entries if name.startswith(EXTRA_PREFIX)}  # fmt: skip
    return Contents(version, program, tensors, extra)


def _checked_entries(
    archive: zipfile.ZipFile, total: int, limits: Limits
) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveError(f"the archive has {len(infos)} entries (at most {limits.max_entries})")
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if name in entries:
            raise ArchiveError(f"the archive holds {name!r} twice")
        known = name in (VERSION_ENTRY, PROGRAM_ENTRY, TENSORS_ENTRY)
        if not known and not (name.startswith(EXTRA_PREFIX) and len(name) > len(EXTRA_PREFIX)):
            raise ArchiveError(f"unexpected entry {name!r} in the archive")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ArchiveError(
                f"entry {name!r} is compressed; graphlift archives store entries as is"
            )
        if name.startswith(EXTRA_PREFIX) and info.file_size > limits.max_extra_file_bytes:
            raise ArchiveError(
                f"extra file {name[len(EXTRA_PREFIX) :]!r} is {info.file_size} bytes "
                f"(at most {limits.max_extra_file_bytes})"
            )
        if info.file_size > total:
            raise ArchiveError(
                f"entry {name!r} declares {info.file_size} bytes, more than the file has"
            )
        entries[name] = info
    for required in (VERSION_ENTRY, PROGRAM_ENTRY, TENSORS_ENTRY):
        if required not in entries:
            raise ArchiveError(
                f"the archive has no {required!r} entry (truncated or not graphlift)"
            )
    return entries


def _read(archive: zipfile.ZipFile, name: str, entries: dict[str, zipfile.ZipInfo]) -> bytes:
    try:
        return archive.read(entries[name])
    except _ZIP_ERRORS as error:
        raise ArchiveError(f"entry {name!r} is corrupted ({error})") from None


def _version(data: bytes) -> int:
    text = data.decode("ascii", errors="replace").strip()
    if not text.isdigit() or len(text) > 6:
        raise ArchiveError(f"the archive's version entry is not a number: {text[:40]!r}")
    version = int(text)
    if version > SCHEMA_VERSION or version < 1:
        raise ArchiveError(
            f"the archive has schema version {version}; this graphlift reads versions 1 to "
            f"{SCHEMA_VERSION} (upgrade graphlift to load newer archives)"
        )
    return version


def parse_json(data: bytes, limits: Limits) -> dict[str, Any]:
    if len(data) > limits.max_json_bytes:
        raise ArchiveError(f"program.json is {len(data)} bytes (at most {limits.max_json_bytes})")
    try:
        value = json.loads(data, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError too
        raise ArchiveError(f"program.json is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"program.json holds a {type(value).__name__}, not an object")
    depth = _nesting_depth(value)
    if depth > limits.max_json_depth:
        raise ArchiveError(
            f"program.json nests {depth} levels deep (at most {limits.max_json_depth})"
        )
    return value


def _nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (without recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("an object has a duplicate key")
    return result


def _tensors(data: bytes) -> dict[str, torch.Tensor]:
    if not data:
        return {}
    try:
        return load_safetensors(data)
    except (
        safetensors.SafetensorError,
        ValueError,
        TypeError,
        RuntimeError,
        OverflowError,
    ) as error:
        raise ArchiveError(f"tensors.safetensors is corrupted: {error}") from None
