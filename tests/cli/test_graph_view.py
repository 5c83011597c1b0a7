"""The picture of a program: graph data, the self-contained HTML page in headless
Chromium (when installed), and SVG through graphviz (when installed)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import graphlift as gl
from graphlift.cli import graph_view, main
from graphlift.examples.tiny_gpt import make_example

ASSETS = Path(graph_view.__file__).parent / "assets"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: What tools/vendor_dagre.py writes; a hand edit of the vendored file fails here.
DAGRE_SHA256 = "413e0ebe0fe7bfe47140ad029d7ebf9296f6867d181e1d4a12db87b99feaaf61"


@pytest.fixture(scope="module")
def tiny_gpt() -> gl.ExportedProgram:
    model, (tokens,) = make_example()
    spec = {"tokens": {0: gl.Dim("batch", min=2, max=64), 1: gl.Dim("seq", min=2, max=31)}}
    return gl.export(model, (tokens,), dynamic_shapes=spec)


def test_graph_data_has_values_sources_and_module_paths(tiny_gpt: gl.ExportedProgram) -> None:
    data = graph_view.graph_data(tiny_gpt)
    nodes = {node["id"]: node for node in data["nodes"]}
    # the picture shows the flat program: shared block bodies inlined (issue 18)
    flat = tiny_gpt.inline_subgraphs().graph
    assert len(nodes) == len(flat.nodes) > len(tiny_gpt.graph.nodes)
    qkv = nodes["linear"]
    assert qkv["target"] == "aten.linear.default" and qkv["label"] == "linear"
    assert qkv["value"] == "f32[s0, s1, 96]"
    assert qkv["module"] == ["blocks.0", "blocks.0.attn", "blocks.0.attn.qkv"]
    assert re.match(
        r"graphlift/examples/tiny_gpt\.py:\d+ in forward\n    q, k, v = ", qkv["source"]
    )
    # a lifted weight joins the module of its first user, so collapsing hides it too
    assert nodes["p_blocks_0_attn_qkv_weight"]["module"] == qkv["module"]
    assert ["layer_norm", "linear"] in data["edges"]
    assert len(data["edges"]) == sum(len(n.all_input_nodes) for n in flat.nodes)


def test_the_page_is_self_contained(tiny_gpt: gl.ExportedProgram) -> None:
    page = graph_view.render_html(tiny_gpt, "tiny <gpt>")
    assert "<title>tiny &lt;gpt&gt;</title>" in page and "{{" not in page
    assert not re.search(r"<(script|link|img)[^>]*(src|href)=", page)  # nothing loaded
    assert "https://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert (ASSETS / "dagre.min.js").read_text() in page
    data = re.search(r'<script id="graph-data" type="application/json">(.*?)</script>', page, re.S)
    assert data is not None and '"id": "linear"' in data.group(1)


def test_the_vendored_layout_library_is_the_npm_release() -> None:
    digest = hashlib.sha256((ASSETS / "dagre.min.js").read_bytes()).hexdigest()
    assert digest == DAGRE_SHA256
    assert "Chris Pettitt" in (ASSETS / "dagre.LICENSE.txt").read_text()


def _render(page: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran, in headless Chromium (no network)."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={page.parent / 'chromium-profile'}", "--dump-dom",
         page.as_uri() + fragment],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_page_renders_in_headless_chromium_without_errors(
    tiny_gpt: gl.ExportedProgram, tmp_path: Path
) -> None:
    page = tmp_path / "tiny_gpt.html"
    graph_view.write_html(tiny_gpt, str(page))
    dom = _render(page)
    assert "data-errors" not in dom, re.findall(r'data-errors="([^"]*)"', dom)
    rendered = re.search(r'data-rendered="(\d+)"', dom)
    assert rendered is not None and int(rendered.group(1)) > 20
    # a large program opens with its inner modules collapsed
    assert 'data-id="module:blocks.0.attn"' in dom and 'data-id="linear"' not in dom
    assert 'data-module="blocks.0"' in dom  # an expanded module is a cluster
    searched = _render(page, "#q=qkv")
    assert "data-errors" not in searched
    assert re.search(r'class="node call_function  match" data-id="linear"', searched)
    assert 'id="matches">6 matches' in searched


def test_svg_through_graphviz_or_a_typed_error(
    tiny_gpt: gl.ExportedProgram, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dot = graph_view.render_dot(tiny_gpt)
    assert "subgraph cluster_" in dot and 'label="blocks.0.attn.qkv"' in dot
    assert '"layer_norm" -> "linear";' in dot
    if shutil.which("dot"):
        graph_view.write_svg(tiny_gpt, str(tmp_path / "g.svg"))
        assert "<svg" in (tmp_path / "g.svg").read_text()
    monkeypatch.setenv("PATH", str(tmp_path))  # no graphviz there
    with pytest.raises(graph_view.GraphViewError, match="apt-get install graphviz"):
        graph_view.write_svg(tiny_gpt, str(tmp_path / "h.svg"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_a_zoo_model_through_the_command_line_renders(tmp_path: Path) -> None:
    """BERT (transformers, small config) exported and drawn by the CLI, shown in Chromium."""
    model_file = str(Path(__file__).parent / "models" / "zoo_bert.py")
    archive, page = tmp_path / "bert.gl", tmp_path / "bert.html"
    assert main(["export", model_file, "-o", str(archive)]) == 0
    assert main(["show", str(archive), "--html", str(page)]) == 0
    dom = _render(page)
    assert "data-errors" not in dom, re.findall(r'data-errors="([^"]*)"', dom)
    assert 'data-module="encoder.layer.0"' in dom or 'data-id="module:encoder.layer.0' in dom
    searched = _render(page, "#q=scaled_dot_product")
    assert "data-errors" not in searched and re.search(
        r'class="node call_function  match"', searched
    )
