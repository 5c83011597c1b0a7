"""Every ``graphlift`` command end to end on a model file: once in a fresh process
(the installed entry point), and its other paths in this process (fast).

Each ``--json`` output is validated against the command's schema
(``graphlift/cli/schemas.py``), then its facts are checked against the
program itself or eager PyTorch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import safetensors.torch
import torch

import graphlift as gl
from graphlift.cli import main, run_command
from graphlift.cli.model_file import CommandLineError
from tests.cli.harness import BRANCHY, run_graphlift, run_in_process, validate
from tests.cli.models.branchy import make_example

SPEC = "x:0=batch[1,64],1=seq[2,32]"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """branchy.py exported by the command (in this process) with --refine."""
    path = tmp_path_factory.mktemp("archives") / "branchy.gl"
    assert main(["export", BRANCHY, "-o", str(path), "--dynamic", SPEC, "--refine"]) == 0
    return path


@pytest.mark.slow
def test_export_refines_in_a_fresh_process(tmp_path: Path) -> None:
    result = run_graphlift(
        tmp_path, "export", BRANCHY, "-o", "branchy.gl", "--dynamic", SPEC, "--refine", "--json"
    )
    assert result.returncode == 0, result.stderr
    facts = validate("export", result.stdout)
    assert facts["range_constraints"] == {"s0": "[1, 64]", "s1": "[4, 32]"}
    assert facts["refinements"] == ['--dynamic "x:0=batch[1,64],1=seq[4,32]"']
    assert gl.load(tmp_path / "branchy.gl").range_constraints.keys() == {"s0", "s1"}


def test_export_without_refine_prints_the_fix_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, result = run_in_process(capsys, "export", BRANCHY, "-o", "m.gl", "--dynamic", SPEC)
    assert code == 1 and result["ok"] is False
    assert result["error"]["type"] == "ConstraintViolationError"
    assert result["error"]["fixes"] == {"x.size()[1]": "Dim('seq', min=4, max=32)"}
    assert "x.size()[1] >= 4" in result["error"]["message"]
    assert result["error"]["hint"] == (
        'rerun with --refine, or with --dynamic "x:0=batch[1,64],1=seq[4,32]"'
    )
    assert not (tmp_path / "m.gl").exists()


def test_exported_archive_is_the_program_the_api_exports(archive: Path) -> None:
    model, _ = make_example()
    loaded = gl.load(archive)
    for shape in ((1, 4, 16), (7, 32, 16), (2, 5, 16)):
        sample = torch.randn(shape)
        torch.testing.assert_close(loaded.module()(sample), model(sample))
    with pytest.raises(gl.errors.InputMismatchError):
        loaded.module()(torch.randn(2, 3, 16))


def test_export_decompose_named_factory_and_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, result = run_in_process(
        capsys, "export", f"{BRANCHY}:make_other", "-o", "core.gl", "--decompose"
    )
    assert code == 0 and result["range_constraints"] == {}
    targets = {str(n.target) for n in gl.load(tmp_path / "core.gl").graph.nodes}
    assert "aten.addmm.default" in targets and "aten.linear.default" not in targets
    # exported with x as a keyword: inputs given by name are passed the same way
    code, result = run_in_process(capsys, "run", "core.gl", "--random", "x=3x6x16")
    assert code == 0 and result["outputs"][0]["shape"] == [3, 6, 4]
    for arguments, message in [
        ((f"{BRANCHY}:make_nothing",), "return (model, args) or (model, args, kwargs)"),
        ((f"{BRANCHY}:missing",), "defines no function missing()"),
        (("nowhere.py",), "no model file"),
        ((BRANCHY, "--dynamic", "x:0=batch[1"), "expected DIM=NAME or DIM=NAME[MIN,MAX]"),
        ((BRANCHY, "--dynamic", "x:0=b[1,4]", "--dynamic", "x:1=b[2,8]"), "declared twice"),
    ]:
        code, result = run_in_process(capsys, "export", *arguments, "-o", "x.gl")
        assert code == 1
        assert result["error"]["type"] == "CommandLineError"
        assert message in result["error"]["message"]


def test_export_strict_is_refused_with_a_typed_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strict capture is another issue's; until it lands the flag gets a typed error."""
    monkeypatch.chdir(tmp_path)
    code, result = run_in_process(capsys, "export", BRANCHY, "-o", "s.gl", "--strict")
    if code == 0:  # strict mode has landed
        assert gl.load(tmp_path / "s.gl").graph_signature.user_inputs == ("x",)
    else:
        assert result["error"]["type"] == "ExportError" and "strict" in result["error"]["message"]


@pytest.mark.slow
def test_run_checked_against_eager(archive: Path, tmp_path: Path) -> None:
    result = run_graphlift(
        tmp_path, "run", str(archive), "--random", "x=3x7x16", "--check-against", BRANCHY
    )
    assert result.returncode == 0, result.stderr
    assert "(3, 7, 4)" in result.stdout and "match" in result.stdout
    assert "MISMATCH" not in result.stdout


def test_run_on_saved_and_file_inputs(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, facts = run_in_process(capsys, "run", str(archive))
    assert code == 0 and facts["inputs"] == "example inputs saved with the program"
    assert facts["outputs"][0]["shape"] == [2, 5, 4]
    assert facts["outputs"][0]["mean"] == pytest.approx(0.25)  # softmax over 4
    x = torch.randn(4, 9, 16)
    safetensors.torch.save_file({"x": x}, tmp_path / "in.safetensors")
    code, facts = run_in_process(
        capsys, "run", str(archive), "--inputs", str(tmp_path / "in.safetensors")
    )
    expected = make_example()[0](x)
    assert code == 0 and facts["outputs"][0]["shape"] == [4, 9, 4]
    assert facts["outputs"][0]["max"] == pytest.approx(expected.max().item())
    code, facts = run_in_process(capsys, "run", str(archive), "--random", "y=2x4x16")
    assert code == 1 and "no input named 'y'" in facts["error"]["message"]


def test_run_says_when_an_archive_has_no_example_inputs(archive: Path) -> None:
    """torch.export archives may come without example inputs: say so, ask for inputs."""
    program = gl.load(archive)
    program.example_inputs = ((), {})
    arguments = argparse.Namespace(archive="x.gl", inputs=None, random=[])
    with pytest.raises(CommandLineError, match=r"x\.gl has no example inputs saved with it"):
        run_command._inputs(program, arguments)


class _TwoMethods(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2

    def halve(self, x: torch.Tensor) -> torch.Tensor:
        return x / 2


def test_run_refuses_a_package_of_methods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run`` runs one program; a package archive gets a typed error naming its methods
    (it used to crash with an AttributeError)."""
    x = torch.randn(2, 3)
    package = gl.export_methods(_TwoMethods(), {"forward": ((x,), {}), "halve": ((x,), {})})
    gl.save(package, tmp_path / "methods.gl")
    code, facts = run_in_process(capsys, "run", str(tmp_path / "methods.gl"))
    assert code == 1 and facts["error"]["type"] == "ArchiveError"
    assert "a package of methods ['forward', 'halve']" in facts["error"]["message"]


def test_run_refuses_inputs_outside_the_program_and_reports_a_mismatch(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, facts = run_in_process(capsys, "run", str(archive), "--random", "x=3x2x16")
    assert code == 1
    error = facts["error"]
    assert error["type"] == "InputMismatchError" and "size in [4, 32] at dim 1" in error["message"]
    other = tmp_path / "other.py"  # same architecture, different forward: eager disagrees
    other.write_text(Path(BRANCHY).read_text().replace("h = h * 2", "h = h * 3"), encoding="utf-8")
    code, facts = run_in_process(capsys, "run", str(archive), "--check-against", str(other))
    assert code == 1
    assert facts["check"]["match"] is False and facts["check"]["outputs"][0]["max_abs_error"] > 0


@pytest.mark.slow
def test_show_prints_source_lines_checks_and_writes_pictures(archive: Path, tmp_path: Path) -> None:
    result = run_graphlift(
        tmp_path, "show", str(archive), "--checks", "--html", "p.html", "--core", "--json"
    )
    assert result.returncode == 0, result.stderr
    facts = validate("show", result.stdout)
    assert "aten.addmm.default" in facts["program"]  # --core
    assert (
        "# File: branchy.py:" in facts["program"]
        and "code: h = self.encoder(x)" in facts["program"]
    )
    assert "def check_inputs(x):" in facts["checks"]
    page = (tmp_path / "p.html").read_text()
    assert '"target": "aten.addmm.default"' in page and "dagre" in page
    assert "aten.linear.default" in str(gl.load(archive)) and "aten.linear" not in facts["program"]


def test_show_refuses_a_broken_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.gl").write_bytes(b"PK\x03\x04 not really a zip")
    code, facts = run_in_process(capsys, "show", str(tmp_path / "broken.gl"))
    assert code == 1 and facts["error"]["type"] == "ArchiveError"


@pytest.mark.slow
def test_report_summarizes_the_program(archive: Path, tmp_path: Path) -> None:
    result = run_graphlift(tmp_path, "report", str(archive), "--json")
    assert result.returncode == 0, result.stderr
    facts = validate("report", result.stdout)
    assert facts["ops"] == {  # the refined program: seq >= 4 took the `h * 2` branch
        "aten.linear.default": 2, "aten.mul.Tensor": 1, "aten.relu.default": 1,
        "aten.softmax.int": 1,
    }  # fmt: skip
    assert facts["state"]["parameters"] == {"count": 4, "elements": 676, "bytes": 2704}
    assert facts["dynamic_dims"] == [
        {"source": "x.size()[0]", "symbol": "s0", "range": "[1, 64]"},
        {"source": "x.size()[1]", "symbol": "s1", "range": "[4, 32]"},
    ]
    assert facts["archive_bytes"] == archive.stat().st_size


@pytest.mark.slow
def test_diff_names_what_changed(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, args = make_example()
    gl.save(gl.export(model, args), tmp_path / "static.gl")
    code, facts = run_in_process(capsys, "diff", str(archive), str(archive))
    assert code == 0 and facts["identical"] is True
    result = run_graphlift(tmp_path, "diff", str(archive), "static.gl", "--json")
    assert result.returncode == 1
    facts = validate("diff", result.stdout)
    assert facts["identical"] is False and facts["ops"] == {}
    assert facts["ranges"] == {"removed": ["s0: [1, 64]", "s1: [4, 32]"], "added": []}
    assert (
        "if x.shape != (2, 5, 16): fail('x', 'shape [2, 5, 16]', list(x.shape))"
        in (facts["guards"]["added"])
    )
    assert any("f32[s0, s1, 32]" in line for line in facts["nodes"]["removed"])
