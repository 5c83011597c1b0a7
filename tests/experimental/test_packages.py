"""export_methods: several programs of one model over one shared state; a
package archive stores each weight once and loads back as a package."""

from __future__ import annotations

import io

import pytest
import torch

import graphlift as gl
from graphlift.cli import main as cli_main
from graphlift.errors import ArchiveError, ExportError, InputMismatchError, SerializationError
from graphlift.serialize.archive import read_archive, write_archive
from graphlift.serialize.schema import LIMITS


class TwoHeads(torch.nn.Module):
    """``encode`` and ``forward`` share the embedding; a buffer counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 2)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def encode(self, x):
        self.steps += 1
        return self.embed(x).tanh()

    def forward(self, x, *, scale=1.0):
        self.steps += 10
        return self.head(self.embed(x)) * scale


def package_of(model: TwoHeads) -> gl.ExportPackage:
    x = torch.randn(3, 4)
    return gl.export_methods(
        model,
        {"encode": ((x,), {}), "predict": ((x,), {"scale": 2.0})},
        dynamic_shapes={"encode": {"x": {0: gl.Dim("rows")}}},
    )


def test_methods_share_the_models_tensors() -> None:
    model = TwoHeads()
    package = package_of(model)
    assert list(package) == ["encode", "predict"] and len(package) == 2
    encode, predict = package["encode"], package["predict"]
    assert encode.state_dict["embed.weight"] is predict.state_dict["embed.weight"]
    assert encode.state_dict["embed.weight"] is model.embed.weight
    assert "head.weight" in predict.graph_signature.parameters  # forward, under the name "predict"
    with pytest.raises(KeyError, match="has no method 'decode'"):
        package["decode"]


def test_modules_of_a_package_share_buffers_as_the_model_does() -> None:
    model, eager = TwoHeads(), TwoHeads()
    eager.load_state_dict(model.state_dict())
    package = package_of(model)
    model.steps.zero_()
    eager.steps.zero_()
    encode, predict = package["encode"].module(), package["predict"].module()
    for rows in (1, 5):
        x = torch.randn(rows, 4)
        torch.testing.assert_close(encode(x), eager.encode(x))
    x = torch.randn(3, 4)
    torch.testing.assert_close(predict(x, scale=2.0), eager(x, scale=2.0))
    assert int(predict.steps) == int(encode.steps) == int(eager.steps) == 12


def test_save_stores_each_weight_once_and_load_gives_the_package() -> None:
    package = package_of(TwoHeads())
    whole, single = io.BytesIO(), io.BytesIO()
    gl.save(package, whole)
    gl.save(package["predict"], single)
    whole.seek(0)
    loaded = gl.load(whole)
    assert isinstance(loaded, gl.ExportPackage) and list(loaded) == ["encode", "predict"]
    weight = loaded["encode"].state_dict["embed.weight"]
    assert weight is loaded["predict"].state_dict["embed.weight"]  # shared again
    again = io.BytesIO()
    gl.save(loaded, again)
    assert again.getvalue() == whole.getvalue()  # deterministic, also after loading
    x = torch.randn(2, 4)
    torch.testing.assert_close(loaded["encode"].module()(x), package["encode"].module()(x))
    assert len(whole.getvalue()) < 2 * len(single.getvalue())


def test_a_tampered_package_is_an_archive_error() -> None:
    package = package_of(TwoHeads())
    buffer = io.BytesIO()
    gl.save(package, buffer)
    contents = read_archive(buffer.getvalue(), LIMITS)
    for name in ("encode!", "encode"):  # not an identifier; a duplicate
        contents.program["methods"][1][0] = name
        tampered = io.BytesIO()
        write_archive(tampered, contents.program, contents.tensors, {})
        with pytest.raises(ArchiveError, match="not a new identifier"):
            gl.load(io.BytesIO(tampered.getvalue()))
    contents.program["methods"][1][0] = "predict"
    del contents.program["methods"][1][1]["graphs"]
    tampered = io.BytesIO()
    write_archive(tampered, contents.program, contents.tensors, {})
    with pytest.raises(ArchiveError, match="graphs"):
        gl.load(io.BytesIO(tampered.getvalue()))


def test_arguments_are_checked() -> None:
    model = TwoHeads()
    x = torch.randn(3, 4)
    with pytest.raises(ExportError, match=r"\(args, kwargs\)"):
        gl.export_methods(model, {"encode": (x,)})
    with pytest.raises(ExportError, match="not exported"):
        gl.export_methods(model, {"encode": ((x,), {})}, dynamic_shapes={"decode": {}})
    with pytest.raises(ExportError, match="at least one method"):
        gl.export_methods(model, {})
    with pytest.raises(SerializationError, match="ExportPackage"):
        gl.save({"encode": None}, io.BytesIO())  # type: ignore[arg-type]


def test_nn_module_methods_are_never_taken_for_the_name() -> None:
    model = TwoHeads()
    package = gl.export_methods(model, {"eval": ((torch.randn(3, 4),), {})})
    assert "head.weight" in package["eval"].graph_signature.parameters  # forward, not Module.eval


def test_the_cli_shows_a_package(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "two_heads.gl"
    gl.save(package_of(TwoHeads()), path)
    assert cli_main(["show", str(path), "--checks"]) == 0
    text = capsys.readouterr().out
    assert "=== method encode ===" in text and "=== method predict ===" in text
    assert text.count("def check_inputs(x") == 2
    assert cli_main(["report", str(path)]) == 1  # one program per report
    assert "package of methods ['encode', 'predict']" in " ".join(capsys.readouterr().out.split())


def short(x, *, scale=1.0):
    assert x.shape[0] == 1
    return None


def long(x, *, scale=1.0):
    assert x.shape[0] > 1
    return {"x": {0: gl.Dim("rows", min=2)}}


def test_overloads_are_chosen_by_predicates_when_exporting_and_by_checks_when_running() -> None:
    model, eager = TwoHeads(), TwoHeads()
    eager.load_state_dict(model.state_dict())
    package = gl.export_methods(
        model,
        {"predict": [((torch.randn(3, 4),), {}), ((torch.randn(1, 4),), {})]},
        overloads={"predict": {"short": short, "long": long}},
    )
    assert list(package) == ["predict.long", "predict.short"]
    assert list(package.overloads("predict")) == ["long", "short"]
    buffer = io.BytesIO()
    gl.save(package, buffer)
    buffer.seek(0)
    for each in (package, gl.load(buffer)):
        predict = each.module("predict")
        for rows in (1, 2, 6):
            x = torch.randn(rows, 4)
            torch.testing.assert_close(predict(x), eager(x))
        with pytest.raises(InputMismatchError, match=r"predict\.long: .*\n.*predict\.short"):
            predict(torch.randn(0, 4))  # no overload covers 0 rows


def test_overload_arguments_are_checked() -> None:
    model, x = TwoHeads(), torch.randn(3, 4)
    overloads = {"predict": {"long": long}}
    with pytest.raises(ExportError, match="list of"):
        gl.export_methods(model, {"predict": ((x,), {})}, overloads=overloads)
    with pytest.raises(ExportError, match="no overload of 'predict'"):
        gl.export_methods(model, {"predict": [((x[:1],), {})]}, overloads=overloads)
    with pytest.raises(ExportError, match="fall under overload"):
        gl.export_methods(model, {"predict": [((x,), {}), ((x,), {})]}, overloads=overloads)
    with pytest.raises(ExportError, match="not exported"):
        gl.export_methods(model, {"encode": ((x,), {})}, overloads=overloads)
