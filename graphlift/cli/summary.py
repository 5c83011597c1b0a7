"""Facts about a program as plain data: what ``report`` prints and ``diff`` compares.

Each function takes an ExportedProgram and returns JSON-able values, so the
same facts serve the human table, ``--json`` and the comparison of two programs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

import graphlift as gl


def op_histogram(program: gl.ExportedProgram) -> dict[str, int]:
    """Call target -> how many nodes call it, most frequent first (control-flow bodies too)."""
    counts: Counter[str] = Counter()
    for graph in _graphs(program):
        counts.update(str(n.target) for n in graph.nodes if n.op == "call_function")
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _graphs(program: gl.ExportedProgram) -> list[gl.Graph]:
    graphs = [program.graph]
    graphs += [
        m.graph for name, m in program.graph_module.named_modules() if name and hasattr(m, "graph")
    ]
    return graphs


def state_summary(program: gl.ExportedProgram) -> dict[str, Any]:
    """Counts and sizes of parameters, buffers and constants."""

    def describe(tensors: list[torch.Tensor]) -> dict[str, int]:
        return {
            "count": len(tensors),
            "elements": sum(t.numel() for t in tensors),
            "bytes": sum(t.numel() * t.element_size() for t in tensors),
        }

    buffers = [v for _, v in program.named_buffers()]
    signature_buffers = set(program.graph_signature.buffers)
    constants = [v for k, v in program.constants.items() if k not in signature_buffers]
    return {
        "parameters": describe([v for _, v in program.named_parameters()]),
        "buffers": describe(buffers),
        "constants": describe(constants),
    }


def dynamic_dims(program: gl.ExportedProgram) -> list[dict[str, str]]:
    """Each user input dim that is symbolic: its source, symbol and range."""
    dims = []
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        value = node.meta.get("val")
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        for index, size in enumerate(getattr(value, "shape", ())):
            if isinstance(size, torch.SymInt):
                symbol = str(size)
                limits = program.range_constraints.get(symbol)
                dims.append(
                    {
                        "source": f"{node.name}.size()[{index}]",
                        "symbol": symbol,
                        "range": str(limits) if limits is not None else "derived",
                    }
                )
    return dims


def signature_lines(program: gl.ExportedProgram) -> list[str]:
    return [line.strip() for line in str(program.graph_signature).splitlines() if line.strip()]


def input_checks(program: gl.ExportedProgram) -> str:
    """The generated source of ``module()``'s input checks."""
    return str(program.module().input_checks)


def guard_lines(program: gl.ExportedProgram) -> list[str]:
    """The statements of ``module()``'s input checks (what a program refuses)."""
    checks = input_checks(program)
    return [line.strip() for line in checks.splitlines()[1:] if line.strip()]


def node_lines(program: gl.ExportedProgram) -> list[str]:
    """The graph's printout, without source comments: what the program computes."""
    return [
        line.strip()
        for line in str(program.graph).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
