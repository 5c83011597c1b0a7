"""Every ``graphlift`` command end to end, in a fresh process, on a model file.

Each ``--json`` output is validated against the command's schema
(``graphlift/cli/schemas.py``), then its facts are checked against the
program itself or eager PyTorch.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors.torch
import torch

import graphlift as gl
from tests.cli.harness import BRANCHY, run_graphlift, validate
from tests.cli.models.branchy import make_example

pytestmark = pytest.mark.slow  # each test starts Python processes that import torch

SPEC = "x:0=batch[1,64],1=seq[2,32]"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """branchy.py exported with --refine (seq narrowed to [4, 32])."""
    directory = tmp_path_factory.mktemp("archives")
    result = run_graphlift(
        directory, "export", BRANCHY, "-o", "branchy.gl", "--dynamic", SPEC, "--refine", "--json"
    )
    assert result.returncode == 0, result.stderr
    facts = validate("export", result.stdout)
    assert facts["range_constraints"] == {"s0": "[1, 64]", "s1": "[4, 32]"}
    assert facts["refinements"] == ['--dynamic "x:0=batch[1,64],1=seq[4,32]"']
    return directory / "branchy.gl"


def test_export_without_refine_prints_the_fix_and_fails(tmp_path: Path) -> None:
    result = run_graphlift(tmp_path, "export", BRANCHY, "-o", "m.gl", "--dynamic", SPEC)
    assert result.returncode == 1
    assert "x.size()[1] >= 4" in result.stdout and "if x.shape[1] > 3:" in result.stdout
    assert "Dim('seq', min=4, max=32)" in result.stdout
    assert 'rerun with --refine, or with --dynamic "x:0=batch[1,64],1=seq[4,32]"' in result.stdout
    assert not (tmp_path / "m.gl").exists()
    result = run_graphlift(tmp_path, "export", BRANCHY, "-o", "m.gl", "--dynamic", SPEC, "--json")
    error = validate("export", result.stdout)["error"]
    assert error["type"] == "ConstraintViolationError"
    assert error["fixes"] == {"x.size()[1]": "Dim('seq', min=4, max=32)"}


def test_exported_archive_is_the_program_the_api_exports(archive: Path) -> None:
    model, _ = make_example()
    loaded = gl.load(archive)
    for shape in ((1, 4, 16), (7, 32, 16), (2, 5, 16)):
        sample = torch.randn(shape)
        torch.testing.assert_close(loaded.module()(sample), model(sample))
    with pytest.raises(gl.errors.InputMismatchError):
        loaded.module()(torch.randn(2, 3, 16))


def test_export_decompose_named_factory_and_bad_files(tmp_path: Path) -> None:
    result = run_graphlift(
        tmp_path, "export", f"{BRANCHY}:make_other", "-o", "core.gl", "--decompose", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert validate("export", result.stdout)["range_constraints"] == {}
    targets = {str(n.target) for n in gl.load(tmp_path / "core.gl").graph.nodes}
    assert "aten.addmm.default" in targets and "aten.linear.default" not in targets
    for reference, message in [
        (f"{BRANCHY}:make_nothing", "return (model, args) or (model, args, kwargs)"),
        (f"{BRANCHY}:missing", "defines no function missing()"),
        ("nowhere.py", "no model file"),
    ]:
        result = run_graphlift(tmp_path, "export", reference, "-o", "x.gl", "--json")
        assert result.returncode == 1
        error = validate("export", result.stdout)["error"]
        assert error["type"] == "CommandLineError" and message in error["message"]


def test_run_on_saved_random_and_file_inputs_checked_against_eager(
    archive: Path, tmp_path: Path
) -> None:
    result = run_graphlift(tmp_path, "run", str(archive), "--json")
    assert result.returncode == 0, result.stderr
    facts = validate("run", result.stdout)
    assert facts["inputs"] == "example inputs saved with the program"
    assert facts["outputs"][0]["shape"] == [2, 5, 4]
    assert facts["outputs"][0]["mean"] == pytest.approx(0.25)  # softmax over 4
    result = run_graphlift(
        tmp_path, "run", str(archive), "--random", "x=3x7x16", "--check-against", BRANCHY, "--json"
    )
    assert result.returncode == 0, result.stderr
    facts = validate("run", result.stdout)
    assert facts["check"]["match"] and facts["outputs"][0]["shape"] == [3, 7, 4]
    safetensors.torch.save_file({"x": torch.randn(4, 9, 16)}, tmp_path / "in.safetensors")
    result = run_graphlift(tmp_path, "run", str(archive), "--inputs", "in.safetensors")
    assert result.returncode == 0, result.stderr
    assert "(4, 9, 4)" in result.stdout and "torch.float32" in result.stdout


def test_run_refuses_inputs_outside_the_program_and_reports_a_mismatch(
    archive: Path, tmp_path: Path
) -> None:
    result = run_graphlift(tmp_path, "run", str(archive), "--random", "x=3x2x16", "--json")
    assert result.returncode == 1
    error = validate("run", result.stdout)["error"]
    assert error["type"] == "InputMismatchError" and "size in [4, 32] at dim 1" in error["message"]
    other = tmp_path / "other.py"  # same architecture, different forward: eager disagrees
    other.write_text(
        Path(BRANCHY).read_text().replace("h = h * 2", "h = h * 3"), encoding="utf-8"
    )
    result = run_graphlift(tmp_path, "run", str(archive), "--check-against", str(other), "--json")
    assert result.returncode == 1
    facts = validate("run", result.stdout)
    assert facts["check"]["match"] is False and facts["check"]["outputs"][0]["max_abs_error"] > 0


def test_show_prints_source_lines_checks_and_writes_pictures(archive: Path, tmp_path: Path) -> None:
    result = run_graphlift(
        tmp_path, "show", str(archive), "--checks", "--html", "p.html", "--core", "--json"
    )
    assert result.returncode == 0, result.stderr
    facts = validate("show", result.stdout)
    assert "aten.addmm.default" in facts["program"]  # --core
    assert "# File: branchy.py:" in facts["program"] and "code: h = self.encoder(x)" in facts["program"]
    assert "def check_inputs(x):" in facts["checks"]
    page = (tmp_path / "p.html").read_text()
    assert '"target": "aten.addmm.default"' in page and "dagre" in page
    result = run_graphlift(tmp_path, "show", str(archive))
    assert result.returncode == 0 and str(gl.load(archive)).splitlines()[2].strip() in result.stdout


def test_show_refuses_a_broken_archive(tmp_path: Path) -> None:
    (tmp_path / "broken.gl").write_bytes(b"PK\x03\x04 not really a zip")
    result = run_graphlift(tmp_path, "show", "broken.gl", "--json")
    assert result.returncode == 1
    assert validate("show", result.stdout)["error"]["type"] == "ArchiveError"


def test_report_summarizes_the_program(archive: Path, tmp_path: Path) -> None:
    result = run_graphlift(tmp_path, "report", str(archive), "--json")
    assert result.returncode == 0, result.stderr
    facts = validate("report", result.stdout)
    assert facts["ops"] == {
        "aten.linear.default": 2, "aten.mul.Tensor": 1, "aten.relu.default": 1,
        "aten.softmax.int": 1,
    }  # fmt: skip
    assert facts["state"]["parameters"] == {"count": 4, "elements": 676, "bytes": 2704}
    assert facts["dynamic_dims"] == [
        {"source": "x.size()[0]", "symbol": "s0", "range": "[1, 64]"},
        {"source": "x.size()[1]", "symbol": "s1", "range": "[4, 32]"},
    ]
    assert facts["archive_bytes"] == archive.stat().st_size


def test_diff_names_what_changed(archive: Path, tmp_path: Path) -> None:
    result = run_graphlift(tmp_path, "export", BRANCHY, "-o", "static.gl")
    assert result.returncode == 0, result.stderr
    same = run_graphlift(tmp_path, "diff", str(archive), str(archive), "--json")
    assert same.returncode == 0 and validate("diff", same.stdout)["identical"] is True
    result = run_graphlift(tmp_path, "diff", str(archive), "static.gl", "--json")
    assert result.returncode == 1
    facts = validate("diff", result.stdout)
    assert facts["identical"] is False and facts["ops"] == {}
    assert facts["ranges"] == {"removed": ["s0: [1, 64]", "s1: [4, 32]"], "added": []}
    assert "if x.shape != (2, 5, 16): fail('x', 'shape [2, 5, 16]', list(x.shape))" in (
        facts["guards"]["added"]
    )
    assert any("f32[s0, s1, 32]" in line for line in facts["nodes"]["removed"])
