"""A picture of a program: a self-contained interactive HTML page, or SVG through graphviz
(run by ``graphlift.fx.passes.graphviz``, which ``FxGraphDrawer`` shares).

The page embeds the graph as JSON, the dagre layout library (vendored from
the npm package ``@dagrejs/dagre``, see ``assets/VENDORED.md``) and a small
viewer script: modules are collapsible clusters, hovering a node shows its
shape, dtype, source line and module path, and a search box finds nodes. It
loads nothing from the network.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

import graphlift as gl
from graphlift.errors import GraphDrawingError
from graphlift.fx.passes import graphviz
from graphlift.ir.node import describe_target, describe_value
from graphlift.trace.block_inlining import has_blocks

# a picture of the program cannot be made (e.g. graphviz is not installed)
GraphViewError = GraphDrawingError


def _flat(program: gl.ExportedProgram) -> gl.ExportedProgram:
    """The picture shows every module's nodes: shared block bodies are inlined."""
    return program.inline_subgraphs() if has_blocks(program.graph_module) else program


def graph_data(program: gl.ExportedProgram) -> dict[str, Any]:
    """Nodes (name, op, target, value, source line, module path) and edges of the top graph."""
    program = _flat(program)
    nodes, edges = [], []
    module_of = _module_paths(program.graph)
    for node in program.graph.nodes:
        target = node.target if isinstance(node.target, str) else describe_target(node.target)
        nodes.append(
            {
                "id": node.name,
                "op": node.op,
                "label": _short_label(node.op, target, node.name),
                "target": target,
                "value": describe_value(node.meta.get("val")),
                "source": node.meta.get("stack_trace") or "",
                "module": module_of.get(node.name, []),
            }
        )
        edges += [[used.name, node.name] for used in node.all_input_nodes]
    return {"nodes": nodes, "edges": edges}


def _short_label(op: str, target: str, name: str) -> str:
    if op == "call_function":
        parts = target.split(".")
        return parts[1] if target.startswith("aten.") and len(parts) > 1 else parts[-1]
    return "output" if op == "output" else name


def _module_paths(graph: gl.Graph) -> dict[str, list[str]]:
    """Node name -> module path (outermost first); a lifted placeholder joins its first user's."""
    paths: dict[str, list[str]] = {}
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        paths[node.name] = [path for path, _ in stack.values()]
    for node in graph.nodes:
        lifted = node.op == "placeholder" and node.name.startswith(("p_", "b_", "c_"))
        if lifted and node.users:
            paths[node.name] = paths[next(iter(node.users)).name]
    return paths


def write_html(program: gl.ExportedProgram, path: str, title: str = "graphlift program") -> None:
    """Write the interactive page to ``path``."""
    with open(path, "w", encoding="utf-8") as file:
        file.write(render_html(program, title))


def render_html(program: gl.ExportedProgram, title: str) -> str:
    assets = resources.files("graphlift.cli") / "assets"
    data = json.dumps(graph_data(program), sort_keys=True).replace("</", "<\\/")
    template = (assets / "view.html").read_text(encoding="utf-8")
    replacements = {
        "{{TITLE}}": html.escape(title),
        "{{STYLE}}": (assets / "view.css").read_text(encoding="utf-8"),
        "{{DAGRE}}": (assets / "dagre.min.js").read_text(encoding="utf-8"),
        "{{VIEWER}}": (assets / "view.js").read_text(encoding="utf-8"),
        "{{DATA}}": data,
        "{{PROGRAM}}": html.escape(str(program)),
    }
    for key, value in replacements.items():
        template = template.replace(key, value)
    return template


def render_dot(program: gl.ExportedProgram) -> str:
    """The graph in graphviz's dot language, modules as clusters."""
    data = graph_data(program)
    lines = [
        "digraph program {",
        "  rankdir=TB; node [shape=box, style=rounded, fontname=Helvetica];",
    ]
    clusters: dict[str, list[str]] = {}
    for node in data["nodes"]:
        label = f"{node['label']}\\n{node['value']}" if node["value"] else node["label"]
        tooltip = node["source"].replace('"', "'").replace("\n", " ")
        line = f'"{node["id"]}" [label="{label}", tooltip="{tooltip}"];'
        clusters.setdefault(".".join(node["module"][-1:]), []).append(line)
    for index, (module, members) in enumerate(sorted(clusters.items())):
        if not module:
            lines += [f"  {member}" for member in members]
            continue
        lines.append(f'  subgraph cluster_{index} {{ label="{module}"; style=dashed;')
        lines += [f"    {member}" for member in members]
        lines.append("  }")
    lines += [f'  "{a}" -> "{b}";' for a, b in data["edges"]]
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_svg(program: gl.ExportedProgram, path: str) -> None:
    """Lay the graph out with graphviz's ``dot`` and write SVG to ``path``."""
    svg = graphviz.render(render_dot(program), "svg")
    with open(path, "wb") as file:
        file.write(svg)
