"""Malformed archives raise ArchiveError saying what is wrong; loading runs no archive code."""

from __future__ import annotations

import builtins
import dataclasses
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import graphlift as gl
from graphlift.errors import ArchiveError, GraphliftError, SerializationError
from graphlift.serialize import CHANGELOG, SCHEMA_VERSION
from graphlift.serialize.schema import Limits
from graphlift.serialize.shape_env_state import SAVED_FIELDS, UNSAVED_FIELDS
from graphlift.symbolic.env_state import ShapeEnvState
from tests.serialize.mutate import DELETE, entries, program, replace_at, rezip, with_program
from tests.serialize.programs import export_tiny


@pytest.fixture(scope="module")
def archive() -> bytes:
    buffer = io.BytesIO()
    gl.save(export_tiny(), buffer)
    return buffer.getvalue()


def load_error(data: bytes, match: str) -> ArchiveError:
    with pytest.raises(ArchiveError, match=match) as info:
        gl.load(io.BytesIO(data))
    return info.value


def test_archive_error_is_a_graphlift_and_runtime_error() -> None:
    assert issubclass(ArchiveError, GraphliftError) and issubclass(ArchiveError, RuntimeError)


def test_paths_files_and_buffers_and_extra_files(archive: bytes, tmp_path: Path) -> None:
    ep = export_tiny()
    path = tmp_path / "tiny.gl"
    gl.save(ep, path, extra_files={"notes.txt": "hello", "blob": b"\xff\x00"})
    with open(tmp_path / "tiny2.gl", "wb") as f:
        gl.save(ep, f, extra_files={"notes.txt": "hello", "blob": b"\xff\x00"})
    assert path.read_bytes() == (tmp_path / "tiny2.gl").read_bytes()
    extra: dict[str, object] = {"notes.txt": "", "blob": b"", "absent": None}
    with open(path, "rb") as f:
        loaded = gl.load(f, extra_files=extra)
    assert extra == {"notes.txt": "hello", "blob": b"\xff\x00", "absent": None}
    assert str(gl.load(str(path))) == str(ep) == str(gl.load(io.BytesIO(archive)))
    x = torch.randn(10, 4)
    assert torch.equal(loaded.module()(x), ep.module()(x))
    with pytest.raises(FileNotFoundError):
        gl.load(tmp_path / "missing.gl")
    with pytest.raises(SerializationError, match="plain name"):
        gl.save(ep, io.BytesIO(), extra_files={"../evil": "x"})


def test_version_entry_and_changelog(archive: bytes) -> None:
    assert entries(archive)["version"] == f"{SCHEMA_VERSION}\n".encode()
    assert program(archive)["torch_version"] == torch.__version__
    assert sorted(CHANGELOG) == list(range(1, SCHEMA_VERSION + 1))
    contents = entries(archive)
    contents["version"] = b"99\n"
    load_error(rezip(contents), "schema version 99; this graphlift reads versions 1 to")
    load_error(with_program(archive, {**program(archive), "schema_version": 1}), "schema_version")


@pytest.mark.parametrize("size", [0, 10, 100, 1000, -100, -10, -1])
def test_truncated(archive: bytes, size: int) -> None:
    load_error(archive[:size], "not a graphlift archive|corrupted|no '")


def test_not_a_zip_and_bad_crc(archive: bytes) -> None:
    load_error(b"PK\x03\x04 definitely not a zip", "not a graphlift archive")
    index = archive.index(b'"graphs"')
    flipped = archive[:index] + b"X" + archive[index + 1 :]
    load_error(flipped, "corrupted")


def test_compressed_entries_are_refused_so_no_zip_bomb_expands(archive: bytes) -> None:
    contents = entries(archive)
    contents["program.json"] += b" " * 50_000_000  # compresses to almost nothing
    bomb = rezip(contents, zipfile.ZIP_DEFLATED)
    assert len(bomb) < 1_000_000
    load_error(bomb, "compressed")


def test_unknown_and_missing_entries(archive: bytes) -> None:
    contents = entries(archive)
    load_error(rezip({**contents, "evil.pkl": pickle.dumps(1)}), "unexpected entry 'evil.pkl'")
    del contents["tensors.safetensors"]
    load_error(rezip(contents), "no 'tensors.safetensors' entry")


def test_bad_json(archive: bytes) -> None:
    contents = entries(archive)
    for text, match in [(b"{", "not valid JSON"), (b"[1, 2]", "holds a list"),
                        (b'{"a": NaN}', "not valid JSON"), (b'{"a": 1, "a": 2}', "duplicate"),
                        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON|nested")]:  # fmt: skip
        load_error(rezip({**contents, "program.json": text}), match)


def test_json_depth_limit(archive: bytes) -> None:
    """The depth limit is enforced: a real program nests a few levels deep."""
    with pytest.raises(ArchiveError, match=r"nests \d+ levels deep \(at most 3\)"):
        gl.load(io.BytesIO(archive), limits=Limits(max_json_depth=3))
    deep = b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}"
    load_error(rezip({**entries(archive), "program.json": deep}), "levels deep")


def test_extra_file_size_limit(archive: bytes) -> None:
    big = rezip({**entries(archive), "extra/notes.txt": b"x" * 1000})
    with pytest.raises(ArchiveError, match=r"extra file 'notes.txt' is 1000 bytes \(at most 999\)"):
        gl.load(io.BytesIO(big), limits=Limits(max_extra_file_bytes=999))
    gl.load(io.BytesIO(big), limits=Limits(max_extra_file_bytes=1000))


def test_json_size_limit(archive: bytes) -> None:
    with pytest.raises(ArchiveError, match="at most 100"):
        gl.load(io.BytesIO(archive), limits=Limits(max_json_bytes=100))
    with pytest.raises(ArchiveError, match="nodes"):
        gl.load(io.BytesIO(archive), limits=Limits(max_nodes=3))


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("graphs", "root", "nodes", 0, "op"), 3, "expected a string"),
        (("graphs", "root", "nodes", 0, "op"), "call_everything", "unknown name"),
        (("graphs", "root", "nodes", 5, "target"), "os::system", "not registered"),
        (("graphs", "root", "nodes", 5, "target"), "builtins.eval", "unknown call target"),
        (("graphs", "root", "nodes", 5, "args", 0), {"node": "nowhere"}, "not defined before"),
        (("graphs", "root", "nodes", 5, "args", 0), {"pickle": "x"}, "unexpected"),
        (("graphs", "root", "nodes", 1, "name"), "p_linear_weight", "fresh identifier"),
        (("signature", "inputs", 0, "kind"), "SECRET", "unknown name 'SECRET'"),
        (("shape_env", "guards", 0, "expr"), "__import__('os')", "bad expression"),
        (("shape_env", "guards", 0, "expr"), "s0 + 1", "expected a bool expression"),
        (("shape_env", "guards", 0, "code"), "__import__('os').system('true')", "does not match"),
        (("shape_env", "symbols", 0, "source"), "os.system('true')", "access path"),
        (("graphs", "root", "nodes", 0, "target"), "x=print('hi')", "not a plain name"),
        (("shape_env", "symbols", 0, "name"), "x0", "bad symbol name"),
        (("storages", "t0", "dtype"), "float64", "in tensors.safetensors"),
        (("storages", "t0", "length"), 10**12, "in tensors.safetensors"),
        (("state_dict", "linear.weight", "sizes"), [4, 4000000], "does not fit"),
        (("state_dict", "linear.weight", "strides"), [1], "expected 2 items"),
        (("state_dict", "linear.weight", "storage_offset"), -1, "out of range"),
        (("state_dict", "linear.weight", "storage"), "t9", "unknown storage"),
        (("module_call_graph",), [], "no entry for the root module"),
        (
            ("graphs", "root", "nodes", 0, "meta", "val", "tensor_meta", "sizes", 0),
            {"sym_int": "s0 * " * 30_000 + "s0"},
            "characters",
        ),
    ],
)
def test_field_mutations_are_reported_with_their_path(archive: bytes, path, value, match) -> None:  # type: ignore[no-untyped-def]
    document = program(archive)
    load_error(with_program(archive, replace_at(document, path, value)), match)


def test_missing_and_extra_tensors(archive: bytes) -> None:
    contents = entries(archive)
    tensors = load_safetensors(contents["tensors.safetensors"])
    extra = {**tensors, "t99": torch.ones(4)}
    load_error(rezip({**contents, "tensors.safetensors": save_safetensors(extra)}), "does not list")
    missing = {k: v for k, v in tensors.items() if k != "t1"}
    load_error(
        rezip({**contents, "tensors.safetensors": save_safetensors(missing)}), "missing from"
    )
    load_error(
        rezip({**contents, "tensors.safetensors": b"\x08" + b"\x00" * 7 + b"{}"}), "corrupted"
    )
    document = program(archive)
    state = document["state_dict"]
    del state["linear.bias"]
    load_error(with_program(archive, document), "no tensor uses them|missing")


def test_loading_never_unpickles_or_evaluates(archive: bytes, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("load() must not run archive code")

    for module, name in [(pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"),
                         (builtins, "eval"), (torch, "load")]:  # fmt: skip
        monkeypatch.setattr(module, name, refuse)
    ep = gl.load(io.BytesIO(archive))
    monkeypatch.undo()
    assert len(ep.graph.nodes) > 5


def test_saving_refuses_what_it_cannot_encode() -> None:
    ep = export_tiny()
    node = next(n for n in ep.graph.nodes if n.op == "call_function")
    node.args = (*node.args[:-1], object())
    with pytest.raises(SerializationError, match="cannot save a value of type object"):
        gl.save(ep, io.BytesIO())


def test_every_shape_env_field_is_saved() -> None:
    """A field added to ShapeEnvState must be saved or deliberately left out
    (graphlift/serialize/shape_env_state.py)."""
    names = {f.name for f in dataclasses.fields(ShapeEnvState)}
    assert names == SAVED_FIELDS | UNSAVED_FIELDS
    assert not SAVED_FIELDS & UNSAVED_FIELDS


def test_the_rebuilt_shape_env_knows_what_the_original_knew() -> None:
    ep = export_tiny()
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    env, loaded = ep._shape_env, gl.load(io.BytesIO(buffer.getvalue()))._shape_env
    assert env is not None and loaded is not None
    assert loaded.symbols == env.symbols and loaded.ranges == env.ranges
    assert [(g.expr, g.code, str(g.where)) for g in loaded.guards] == [
        (g.expr, g.code, str(g.where)) for g in env.guards
    ]
    assert {k: (r.value, str(r.where)) for k, r in loaded.replacements.items()} == {
        k: (r.value, str(r.where)) for k, r in env.replacements.items()
    }
    assert loaded._facts == env._facts and loaded._pinned == env._pinned
    assert loaded._counts == env._counts
    symbol = loaded.create_symbol(5, min=2, max=9, source="y.size()[0]")  # no name clash
    assert str(symbol) == f"s{env._counts['s']}"
    assert json.dumps(program(buffer.getvalue())["shape_env"])


def test_a_loaded_program_can_be_exported_again_and_saved() -> None:
    ep = export_tiny()
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    loaded = gl.load(io.BytesIO(buffer.getvalue()))
    x = torch.randn(8, 4)
    again = gl.export(loaded.module(), (x,), dynamic_shapes=({0: gl.Dim.AUTO},))
    second = io.BytesIO()
    gl.save(again, second)
    reloaded = gl.load(io.BytesIO(second.getvalue()))
    for rows in (4, 8, 30):
        x = torch.randn(rows, 4)
        assert torch.equal(reloaded.module()(x), ep.module()(x))
    with pytest.raises(gl.errors.InputMismatchError):
        reloaded.module()(torch.randn(3, 4))  # odd row counts were refused before, too


def test_source_lines_come_from_the_archive_not_from_the_files_it_names(archive: bytes) -> None:
    document = program(archive)
    guard = document["shape_env"]["guards"][0]
    guard["where"] = {**guard["where"], "file": "/dev/zero", "code": "x = make(x)"}
    loaded = gl.load(io.BytesIO(with_program(archive, document)))
    where = loaded._shape_env.guards[0].where  # type: ignore[union-attr]
    assert str(where) == f"/dev/zero:{where.lineno} in forward\n    x = make(x)"
    assert "/dev/zero" in loaded.module().input_checks  # never opened


LEAF = {"type": None, "context": None, "children_spec": []}


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("graphs", "root", "nodes", -1, "args", 0), 1099511627776, "returns a tuple or list"),
        # found by the long fuzz run:
        (("graphs", "root", "nodes", -1), DELETE, "not a valid exported program|malformed"),
        (("graphs", "root", "nodes", 0, "meta", "val", "tensor_meta", "sizes", 0), {"sym_int": "s1"},
         "unknown symbols"),
        (("shape_env", "symbols", 0, "source"), "x.size()[5]", "no input dimension"),
        (("shape_env", "symbols", 0, "source"), "y.size()[0]", "no input dimension"),
        (("module_call_graph", 0, "out_spec"), {"type": "builtins.tuple", "context": "null",
                                                "children_spec": [LEAF, LEAF]}, "specs have"),
    ],
)  # fmt: skip
def test_inconsistent_programs_are_refused(archive: bytes, path, value, match) -> None:  # type: ignore[no-untyped-def]
    document = replace_at(program(archive), ("shape_env", "guards"), [])  # their code names sources
    load_error(with_program(archive, replace_at(document, path, value)), match)
