"""Source lines in printouts: ``# File: <path relative to its sys.path entry>:<line>``,
the same on every machine and in every clone (no absolute path, ever)."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import pytest
import torch

import graphlift as gl
from graphlift.examples.tiny_gpt import make_example
from graphlift.source import import_relative_path


def test_a_path_is_relative_to_the_innermost_sys_path_entry_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(tmp_path / "src"), "/elsewhere"])
    assert import_relative_path(str(package / "model.py")) == "pkg/model.py"
    assert import_relative_path(str(tmp_path / "top.py")) == "top.py"
    assert import_relative_path("/nowhere/on/the/path/model.py") == "model.py"
    monkeypatch.chdir(tmp_path / "src")
    monkeypatch.setattr(sys, "path", [""])  # `python -c` and `python -m` put the cwd first
    assert import_relative_path(str(package / "model.py")) == "pkg/model.py"


def test_printouts_name_lines_without_absolute_paths() -> None:
    model, (tokens,) = make_example()
    ep = gl.export(model, (tokens,))
    text = str(ep)
    pattern = (
        r"# File: graphlift/examples/tiny_gpt\.py:\d+ in forward, code: q, k, v = self\.qkv\(x\)"
    )
    assert re.search(pattern, text)
    checkout = str(Path(gl.__file__).resolve().parents[1])
    assert checkout not in text and os.sep + "site-packages" not in text
    assert all(not line.strip().startswith("# File: /") for line in text.splitlines())
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    assert str(gl.load(io.BytesIO(buffer.getvalue()))) == text  # archives carry them as is


def test_a_source_comment_precedes_each_run_of_nodes_from_one_line() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.relu().neg()
            return y * 2

    graph = str(gl.export(Model(), (torch.randn(3),)).graph).splitlines()
    comments = [i for i, line in enumerate(graph) if line.strip().startswith("# File:")]
    assert [graph[i].strip().rsplit("code: ", 1)[1] for i in comments] == [
        "y = x.relu().neg()",
        "return y * 2",
    ]
    assert graph[comments[0] + 1].strip().startswith("%relu") and "%neg" in graph[comments[0] + 2]
