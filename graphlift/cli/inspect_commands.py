"""``graphlift show``, ``report`` and ``diff``: read saved programs, no model code needed."""

from __future__ import annotations

import argparse
import difflib
import os
from typing import Any

from rich.markup import escape
from rich.table import Table

import graphlift as gl
from graphlift.cli import graph_view, summary
from graphlift.cli.output import Output
from graphlift.errors import ArchiveError, GraphliftError


def add_parsers(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="print a saved program (or write it as an interactive HTML page or SVG)",
        description="Print an archive: graph with source lines, signature, ranges.",
        epilog="example: graphlift show model.gl --html model.html",
    )
    show.add_argument("archive", help="the archive (e.g. model.gl)")
    show.add_argument("--html", metavar="OUT.html", help="write a self-contained interactive graph")
    show.add_argument("--svg", metavar="OUT.svg", help="write the graph as SVG (needs graphviz)")
    show.add_argument("--checks", action="store_true", help="also print module()'s input checks")
    show.add_argument("--core", action="store_true", help="decompose to core ATen first")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    report = commands.add_parser(
        "report",
        help="summarize a saved program: ops, state, dynamic dims, specializations, size",
    )
    report.add_argument("archive", help="the archive (e.g. model.gl)")
    report.add_argument("--json", action="store_true", help="print one JSON object")
    diff = commands.add_parser(
        "diff",
        help="what changed between two saved programs (exit 1 if they differ)",
    )
    diff.add_argument("old", help="the first archive")
    diff.add_argument("new", help="the second archive")
    diff.add_argument("--json", action="store_true", help="print one JSON object")


def load(path: str, out: Output) -> gl.ExportedProgram:
    loaded = load_any(path, out)
    if isinstance(loaded, gl.ExportPackage):
        raise ArchiveError(
            f"{path} holds a package of methods {list(loaded)}; this command takes a single "
            "program (save package[name] on its own, or use graphlift show)"
        )
    return loaded


def load_any(path: str, out: Output) -> gl.ExportedProgram | gl.ExportPackage:
    with out.step(f"loading {path}"):
        return gl.load(path)


def run_show(args: argparse.Namespace, out: Output) -> int:
    try:
        loaded = load_any(args.archive, out)
        if isinstance(loaded, gl.ExportPackage) and not (args.core or args.html or args.svg):
            return _show_package(loaded, args.checks, out)
        program = load(args.archive, out) if isinstance(loaded, gl.ExportPackage) else loaded
        if args.core:
            with out.step("decomposing to core ATen"):
                program = program.run_decompositions()
        out.result["program"] = str(program)
        out.plain(str(program))
        if args.checks:
            checks = summary.input_checks(program)
            out.result["checks"] = checks
            out.plain(checks)
        if args.html:
            graph_view.write_html(program, args.html, title=os.path.basename(args.archive))
            out.result["html"] = args.html
            out.say(f"wrote {escape(args.html)}")
        if args.svg:
            graph_view.write_svg(program, args.svg)
            out.result["svg"] = args.svg
            out.say(f"wrote {escape(args.svg)}")
    except (GraphliftError, OSError) as error:
        return out.fail(error)
    return 0


def _show_package(package: gl.ExportPackage, checks: bool, out: Output) -> int:
    """A package (graphlift.export_methods): each method's program, and its checks."""
    out.result["program"] = str(package)
    out.plain(str(package))
    if checks:
        out.result["checks"] = "\n".join(summary.input_checks(p) for p in package.values())
        out.plain(out.result["checks"])
    return 0


def run_report(args: argparse.Namespace, out: Output) -> int:
    try:
        program = load(args.archive, out)
    except (GraphliftError, OSError) as error:
        return out.fail(error)
    facts: dict[str, Any] = {
        "archive_bytes": os.path.getsize(args.archive),
        "nodes": sum(n.op == "call_function" for n in program.graph.nodes),
        "ops": summary.op_histogram(program),
        "state": summary.state_summary(program),
        "dynamic_dims": summary.dynamic_dims(program),
        "specializations": [str(s) for s in program.specializations],
    }
    out.result.update(facts)
    out.say(
        f"[bold]{escape(args.archive)}[/bold]: {facts['archive_bytes']:,} bytes, {facts['nodes']} calls"
    )
    state = Table("state", "count", "elements", "bytes")
    for kind, numbers in facts["state"].items():
        state.add_row(kind, *(f"{numbers[k]:,}" for k in ("count", "elements", "bytes")))
    out.say(state)
    dims = Table("dynamic dim", "symbol", "range")
    for dim in facts["dynamic_dims"]:
        dims.add_row(dim["source"], dim["symbol"], dim["range"])
    out.say(dims if facts["dynamic_dims"] else "no dynamic dims")
    for line in facts["specializations"]:
        out.say(f"specialized: {escape(line)}")
    ops = Table("op", "calls")
    for target, count in facts["ops"].items():
        ops.add_row(escape(target), str(count))
    out.say(ops)
    return 0


def run_diff(args: argparse.Namespace, out: Output) -> int:
    try:
        old, new = load(args.old, out), load(args.new, out)
    except (GraphliftError, OSError) as error:
        return out.fail(error)
    sections = {
        "signature": _changes(summary.signature_lines(old), summary.signature_lines(new)),
        "nodes": _changes(summary.node_lines(old), summary.node_lines(new)),
        "ranges": _changes(_ranges(old), _ranges(new)),
        "guards": _changes(summary.guard_lines(old), summary.guard_lines(new)),
    }
    old_ops, new_ops = summary.op_histogram(old), summary.op_histogram(new)
    ops = {
        target: [old_ops.get(target, 0), new_ops.get(target, 0)]
        for target in sorted(set(old_ops) | set(new_ops))
        if old_ops.get(target, 0) != new_ops.get(target, 0)
    }
    identical = not ops and not any(s["added"] or s["removed"] for s in sections.values())
    out.result.update(sections, ops=ops, identical=identical)
    out.result["ok"] = True
    if identical:
        out.say("the programs are the same")
        return 0
    for name, change in sections.items():
        if change["added"] or change["removed"]:
            out.say(f"[bold]{name}[/bold]")
            for line in change["removed"]:
                out.say(f"[red]- {escape(line)}[/red]")
            for line in change["added"]:
                out.say(f"[green]+ {escape(line)}[/green]")
    if ops:
        table = Table("op", escape(args.old), escape(args.new))
        for target, (before, after) in ops.items():
            table.add_row(escape(target), str(before), str(after))
        out.say(table)
    return 1


def _ranges(program: gl.ExportedProgram) -> list[str]:
    return [f"{name}: {value}" for name, value in program.range_constraints.items()]


def _changes(old: list[str], new: list[str]) -> dict[str, list[str]]:
    """Lines only in ``old`` (removed) and only in ``new`` (added), in order."""
    removed, added = [], []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += old[i1:i2]
            added += new[j1:j2]
    return {"removed": removed, "added": added}
