"""The archive format's version, its dated changelog, and the loader's limits.

A graphlift archive is a zip (entries stored uncompressed, fixed timestamps
and order, so equal programs give equal bytes) holding:

``version``              the schema version as text (read first)
``program.json``         the program: graphs, signature, symbols, call graph
``tensors.safetensors``  every distinct tensor storage, once, as a flat tensor
``extra/<name>``         the caller's ``extra_files``

Rules for changing the format (see docs/serialization.md):

- Anything a loader of an older version could misread is a new version: bump
  :data:`SCHEMA_VERSION`, add a dated :data:`CHANGELOG` entry, commit a frozen
  archive of the new version under ``tests/serialize/archives/`` and keep
  loading the old ones.
- *Extending* a table is not a format change: a new op or Python target in
  :mod:`.targets`, a new enum member (kinds are stored by name), a new node
  meta key, a new subgraph in the ``graphs`` table. Old archives never use
  them, and an archive that does gives an old loader a clear ArchiveError.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 2

#: Each version with the date it was introduced and what changed.
CHANGELOG: dict[int, tuple[str, str]] = {
    1: (
        "2026-11-24",
        "First version: JSON program (graphs table with a root and named subgraphs; "
        "nodes with typed arguments and meta; ops by qualified name and overload; "
        "signature kinds by name; shape env symbols, ranges, replacements, facts, "
        "guards and runtime asserts as Python expression text), storages in safetensors.",
    ),
    2: (
        "2026-12-07",
        "The shape env's `auto` field: the symbols of dims declared Dim.AUTO, so a loaded "
        "program's run_decompositions narrows them (announced) as its source's would. "
        "Version-1 archives load with no AUTO dims (a narrowing is refused, as before).",
    ),
}

PROGRAM_ENTRY = "program.json"
TENSORS_ENTRY = "tensors.safetensors"
VERSION_ENTRY = "version"
EXTRA_PREFIX = "extra/"


@dataclass(frozen=True)
class Limits:
    """What the loader refuses before doing work proportional to it.

    Sizes declared inside an archive are never trusted for allocation: a
    tensor must fit in bytes the archive actually holds, and JSON size and
    node counts are capped so a malicious file cannot exhaust memory.
    """

    max_json_bytes: int = 256 * 2**20
    max_nodes: int = 1_000_000
    max_entries: int = 10_000
    max_json_depth: int = 200
    max_expression_chars: int = 100_000
    max_extra_file_bytes: int = 1 * 2**30


LIMITS = Limits()
