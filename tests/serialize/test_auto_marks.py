"""Which dims were ``Dim.AUTO`` survives save/load (schema version 2).

``run_decompositions`` may narrow a ``Dim.AUTO`` dim a decomposition branches on,
announcing it in the new program's ``specializations``; a named Dim is never
narrowed. The archive keeps the AUTO marks, so a loaded program decomposes
exactly as the program it was saved from. A version-1 archive has no marks:
its dims count as named (a narrowing is refused, as it always was).
"""

from __future__ import annotations

import io
import itertools
import json

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import ArchiveError, ConstraintViolationError, NarrowingWarning
from tests.serialize.mutate import entries, program, rezip

AUTO = gl.Dim.AUTO


class IsIn(nn.Module):
    """``isin``'s decomposition picks an algorithm by the sizes of both inputs."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.isin(x, y)


def isin_args() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, 5, (6,)), torch.randint(0, 5, (4,))


def archive(ep: gl.ExportedProgram) -> bytes:
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    return buffer.getvalue()


def load(data: bytes) -> gl.ExportedProgram:
    return gl.load(io.BytesIO(data))


def decompose_announcing(ep: gl.ExportedProgram) -> gl.ExportedProgram:
    with pytest.warns(NarrowingWarning, match="isin"):
        return ep.run_decompositions()


def as_version_1(data: bytes) -> bytes:
    """``data`` as a version-1 archive says it: no ``auto`` field, version 1."""
    contents = entries(data)
    document = program(data)
    document["schema_version"] = 1
    del document["shape_env"]["auto"]
    contents["version"] = b"1\n"
    contents["program.json"] = json.dumps(document).encode()
    return rezip(contents)


def test_a_loaded_program_decomposes_as_the_program_it_was_saved_from() -> None:
    ep = gl.export(IsIn(), isin_args(), dynamic_shapes=({0: AUTO}, {0: AUTO}))
    saved = archive(ep)
    loaded = load(saved)
    before = (str(ep), str(loaded), archive(loaded))
    core, core_of_loaded = decompose_announcing(ep), decompose_announcing(loaded)
    assert str(core_of_loaded) == str(core)
    assert core_of_loaded.specializations == core.specializations
    assert core.specializations  # the narrowing is announced, after the round trip too
    assert archive(core_of_loaded) == archive(core)
    assert (str(ep), str(loaded), archive(loaded)) == before  # sources unchanged
    assert archive(ep) == saved
    for n, m in itertools.product((0, 1, 2, 6, 40), (0, 1, 4, 40)):
        x, y = torch.randint(0, 5, (n,)), torch.randint(0, 5, (m,))
        expected = torch.isin(x, y)
        try:
            got = core.module()(x, y)
        except gl.errors.InputMismatchError:
            with pytest.raises(gl.errors.InputMismatchError):
                core_of_loaded.module()(x, y)
            continue
        assert torch.equal(got, expected)
        assert torch.equal(core_of_loaded.module()(x, y), expected)


def test_the_archive_lists_the_auto_symbols_and_only_them() -> None:
    ep = gl.export(IsIn(), isin_args(), dynamic_shapes=({0: AUTO}, {0: gl.Dim("m")}))
    env = program(archive(ep))["shape_env"]
    by_source = {s["source"]: s["name"] for s in env["symbols"]}
    assert env["auto"] == [by_source["x.size()[0]"]]
    named = gl.export(IsIn(), isin_args(), dynamic_shapes=({0: gl.Dim("n")}, {0: gl.Dim("m")}))
    assert program(archive(named))["shape_env"]["auto"] == []


def test_a_named_dim_is_still_refused_after_the_round_trip() -> None:
    ep = gl.export(IsIn(), isin_args(), dynamic_shapes=({0: gl.Dim("n")}, {0: gl.Dim("m")}))
    with pytest.raises(ConstraintViolationError, match="isin"):
        load(archive(ep)).run_decompositions()


def test_a_version_1_archive_loads_with_its_dims_counted_as_named() -> None:
    ep = gl.export(IsIn(), isin_args(), dynamic_shapes=({0: AUTO}, {0: AUTO}))
    old = load(as_version_1(archive(ep)))
    assert str(old) == str(ep)
    x, y = torch.randint(0, 5, (9,)), torch.randint(0, 5, (3,))
    assert torch.equal(old.module()(x, y), torch.isin(x, y))
    with pytest.raises(ConstraintViolationError, match="isin"):  # refused, as before version 2
        old.run_decompositions()


def test_auto_marks_that_do_not_fit_their_version_or_symbols_are_refused() -> None:
    data = archive(gl.export(IsIn(), isin_args(), dynamic_shapes=({0: AUTO}, {0: AUTO})))
    document = program(data)
    contents = entries(data)
    contents["version"] = b"1\n"
    contents["program.json"] = json.dumps({**document, "schema_version": 1}).encode()
    with pytest.raises(ArchiveError, match=r"unexpected.*auto"):
        load(rezip(contents))
    document["shape_env"]["auto"] = ["s99"]
    contents = entries(data)
    contents["program.json"] = json.dumps(document).encode()
    with pytest.raises(ArchiveError, match="unknown symbol 's99'"):
        load(rezip(contents))


def test_a_package_keeps_the_auto_marks_of_each_method() -> None:
    package = gl.export_methods(
        IsIn(),
        {"auto": (isin_args(), {}), "named": (isin_args(), {})},
        dynamic_shapes={"auto": ({0: AUTO}, {0: AUTO}), "named": ({0: gl.Dim("n")}, None)},
    )
    buffer = io.BytesIO()
    gl.save(package, buffer)
    loaded = gl.load(io.BytesIO(buffer.getvalue()))
    for name in ("auto", "named"):
        source_env, loaded_env = package[name]._shape_env, loaded[name]._shape_env
        assert source_env is not None and loaded_env is not None
        assert loaded_env.snapshot().auto == source_env.snapshot().auto
    assert loaded["auto"]._shape_env.snapshot().auto  # type: ignore[union-attr]
    assert not loaded["named"]._shape_env.snapshot().auto  # type: ignore[union-attr]
    core = decompose_announcing(loaded["auto"])
    assert core.specializations == decompose_announcing(package["auto"]).specializations
