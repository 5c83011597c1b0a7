"""Fuzzing the loader: whatever the bytes, load() returns a program or raises ArchiveError.

Four attacks on a small dynamic program's archive: every truncation, random
byte flips of the raw file (zip structure and CRCs), byte flips inside one
entry re-zipped with valid CRCs (so the JSON and safetensors parsers see
them), and JSON field mutations (a value replaced by another type, a
plausible wrong value, a value from elsewhere in the document, or deleted).

The suite runs about 14k cases (every truncation, 1500 of each other kind) in
~20 s. The long run (100k+ cases) is::

    GRAPHLIFT_FUZZ_EXAMPLES=32000 python -m pytest tests/serialize/test_fuzz.py -q -p no:xdist

(each of the three Hypothesis tests runs that many examples; truncation is exhaustive).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphlift as gl
from graphlift.errors import ArchiveError
from tests.serialize.mutate import DELETE, entries, paths, replace_at, rezip
from tests.serialize.programs import export_tiny

EXAMPLES = int(os.environ.get("GRAPHLIFT_FUZZ_EXAMPLES", "1500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _archive() -> bytes:
    buffer = io.BytesIO()
    gl.save(export_tiny(), buffer)
    return buffer.getvalue()


ARCHIVE = _archive()
CONTENTS = entries(ARCHIVE)
DOCUMENT = json.loads(CONTENTS["program.json"])
PATHS = paths(DOCUMENT)[1:]


def _all_values(value: Any) -> list[Any]:
    found = [value]
    if isinstance(value, dict):
        for item in value.values():
            found += _all_values(item)
    elif isinstance(value, list):
        for item in value:
            found += _all_values(item)
    return found


VALUES = [v for v in _all_values(DOCUMENT) if len(json.dumps(v)) < 2000]


def load_only_archive_errors(data: bytes) -> None:
    try:
        gl.load(io.BytesIO(data))
    except ArchiveError:
        pass


def test_every_truncation() -> None:
    for size in range(len(ARCHIVE)):
        with pytest.raises(ArchiveError):
            gl.load(io.BytesIO(ARCHIVE[:size]))
    assert len(ARCHIVE) > 3000  # thousands of cases


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(ARCHIVE) - 1), st.integers(1, 255)), min_size=1, max_size=4
    )
)
def test_byte_flips(flips: list[tuple[int, int]]) -> None:
    data = bytearray(ARCHIVE)
    for index, xor in flips:
        data[index] ^= xor
    load_only_archive_errors(bytes(data))


@FUZZ
@given(
    st.sampled_from(sorted(CONTENTS)),
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_byte_flips_inside_entries(name: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(CONTENTS[name])
    for index, xor in flips:
        if data:
            data[index % len(data)] ^= xor
    load_only_archive_errors(rezip({**CONTENTS, name: bytes(data)}))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["inf", "-inf", "s0", "u0", "s0 + 1", "s0 >= 2", "aten::add.Tensor",
                       "x", "linear", "t0", "float32", "PARAMETER", "call_function", "root"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["node", "tuple", "list", "sym_int", "tensor_meta", "tensor", "dtype", "x"]),
        children, max_size=2),
    max_leaves=6,
)  # fmt: skip


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(PATHS), st.one_of(JSON_VALUES, st.sampled_from(VALUES), st.just(DELETE))
        ),
        min_size=1,
        max_size=3,
    )
)
def test_json_field_mutations(mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    document = DOCUMENT
    for path, value in mutations:
        try:
            document = replace_at(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the path
    program = json.dumps(document).encode()
    load_only_archive_errors(rezip({**CONTENTS, "program.json": program}))
