"""Saving and loading exported programs: ``graphlift.save`` / ``graphlift.load``.

An archive is a zip of a JSON program and a safetensors file (see
:mod:`.schema` for the layout and versioning rules, docs/serialization.md for
the format and the safety model). Loading runs no code from the archive: no
pickle, no eval of archive text (expressions go through the whitelist parser),
ops are found by ``torch.ops`` lookups and Python targets in one fixed table.
A malformed archive raises :class:`~graphlift.errors.ArchiveError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphlift.errors import ArchiveError, SerializationError, reports_internal_errors
from graphlift.export.package import ExportPackage
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.serialize.archive import FileLike, read_archive, read_bytes, write_archive
from graphlift.serialize.decode import decode_package, decode_program
from graphlift.serialize.encode import encode_package, encode_program
from graphlift.serialize.schema import CHANGELOG, LIMITS, SCHEMA_VERSION, Limits
from graphlift.serialize.targets import PYTHON_TARGETS


@reports_internal_errors
def save(
    ep: ExportedProgram | ExportPackage,
    f: FileLike,
    extra_files: Mapping[str, str | bytes] | None = None,
) -> None:
    """Write ``ep`` to ``f`` (a path, or a binary file / buffer opened for writing).

    ``ep`` may be an ExportPackage (``graphlift.export_methods``): its programs
    are stored together and every tensor storage they share is stored once.

    ``extra_files`` maps names to text or bytes stored alongside the program;
    ``load(f, extra_files=...)`` reads them back. Saving the same program
    twice, or saving a loaded program again, gives byte-identical archives.
    """
    if not isinstance(ep, ExportedProgram | ExportPackage):
        raise SerializationError(
            f"save() takes an ExportedProgram or an ExportPackage, got {type(ep).__name__}"
        )
    extras: dict[str, bytes] = {}
    for name, content in (extra_files or {}).items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise SerializationError(f"extra file name {name!r} must be a non-empty plain name")
        extras[name] = content.encode() if isinstance(content, str) else bytes(content)
    program, tensors = encode_program(ep) if isinstance(ep, ExportedProgram) else encode_package(ep)
    write_archive(f, program, tensors, extras)


@reports_internal_errors
def load(
    f: FileLike, *, extra_files: dict[str, Any] | None = None, limits: Limits = LIMITS
) -> ExportedProgram | ExportPackage:
    """Read an archive written by :func:`save` (a program, or a package).

    If ``extra_files`` is given, each of its keys is filled with that extra
    file's content (text when it is UTF-8, else bytes), as torch.export.load
    does. Raises ArchiveError for anything that is not a valid archive.
    """
    contents = read_archive(read_bytes(f), limits)
    if extra_files is not None:
        for name in list(extra_files):
            if name in contents.extra_files:
                data = contents.extra_files[name]
                try:
                    extra_files[name] = data.decode()
                except UnicodeDecodeError:
                    extra_files[name] = data
    try:
        if "methods" in contents.program:
            methods = decode_package(contents.program, contents.tensors, contents.version, limits)
            return ExportPackage(methods)
        return decode_program(contents.program, contents.tensors, contents.version, limits)
    except RecursionError:
        raise ArchiveError("program.json is nested too deeply") from None


__all__ = [
    "CHANGELOG",
    "PYTHON_TARGETS",
    "SCHEMA_VERSION",
    "ArchiveError",
    "Limits",
    "load",
    "save",
]
