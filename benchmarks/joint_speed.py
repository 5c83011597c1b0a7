"""Joint forward-backward export: graphlift against torch's, in one process.

For every training case of ``tests/experimental/models.py`` plus a toy
transformers Llama returning only its loss (torch refuses the logits output):

1. export the model with each library (not timed);
2. time the joint export (graphlift ``export_forward_backward``, torch
   ``torch.export.experimental._export_forward_backward``), the median of
   ``--repeat`` runs, the two libraries taking turns going first;
3. check graphlift's joint program against eager ``loss.backward()`` on the
   example inputs (largest gradient difference).

Target: graphlift's time <= 0.2x torch's (median over the cases both export).
Both are warmed up once on a Linear model first. torch runs with one thread.

    python benchmarks/joint_speed.py [--cases cifar_cnn,llama] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import graphlift as gl  # noqa: E402
from benchmarks import tables  # noqa: E402
from benchmarks.export_speed import (  # noqa: E402
    environment,
    quietly,
    short_reason,
    time_in_turns,
)
from tests.experimental.models import CASES, JointCase, LlamaWithLabels, build, llama_inputs  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "joint_speed.json"
TARGET = 0.2


class LlamaLoss(LlamaWithLabels):
    """Only the loss: torch's joint export refuses outputs that require grad."""

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(ids, labels)[0]


ALL_CASES = [*CASES, JointCase("llama", LlamaLoss, llama_inputs)]


def _torch_joint(program: Any, index: int) -> Any:
    from torch.export.experimental import _export_forward_backward

    return _export_forward_backward(program, joint_loss_index=index)


def _graphlift_core(program: Any, index: int) -> Any:
    return gl.experimental.export_forward_backward(program, index).run_decompositions()


# torch's joint program is in core ATen; "graphlift_core" decomposes ours to match.
LIBRARIES: dict[str, tuple[Callable[..., Any], Callable[[Any, int], Any]]] = {
    "graphlift": (gl.export, lambda p, i: gl.experimental.export_forward_backward(p, i)),
    "graphlift_core": (gl.export, _graphlift_core),
    "torch": (torch.export.export, _torch_joint),
}


def gradient_difference(case: JointCase, model: torch.nn.Module, joint: Any) -> float:
    """Largest |gradient - eager gradient| of graphlift's joint program."""
    inputs = case.make_inputs(0)
    eager = copy.deepcopy(model)
    outputs = eager(*inputs)
    (outputs if isinstance(outputs, torch.Tensor) else outputs[case.loss_index]).backward()
    with torch.no_grad():
        _, gradients = joint.module()(*inputs)
    return max(
        float((gradients[name] - (p.grad if p.grad is not None else 0)).abs().max())
        for name, p in eager.named_parameters()
    )


def measure(case: JointCase, repeat: int) -> dict[str, Any]:
    model = build(case)
    record: dict[str, Any] = {}
    programs: dict[str, Any] = {}
    for name, (export, _) in LIBRARIES.items():
        try:
            programs[name] = quietly(lambda e=export: e(copy.deepcopy(model), case.make_inputs(0)))
        except Exception as error:
            record[name] = {"ok": False, "error": "export: " + short_reason(error)}
    runs, joints = time_in_turns(
        programs, repeat, lambda name, program: LIBRARIES[name][1](program, case.loss_index), record
    )
    for name, joint in joints.items():
        if name in record:
            continue
        record[name] = {"ok": True, "seconds": round(statistics.median(runs[name]), 4),
                        "runs": [round(s, 4) for s in runs[name]],
                        "nodes": sum(n.op == "call_function" for n in joint.graph.nodes)}  # fmt: skip
    if record.get("graphlift", {}).get("ok"):
        difference = gradient_difference(case, model, joints["graphlift"])
        record["graphlift"]["max_grad_diff"] = float(f"{difference:.3g}")
    for ours, key in (("graphlift", "ratio"), ("graphlift_core", "ratio_core")):
        if record.get(ours, {}).get("ok") and record.get("torch", {}).get("ok"):
            record[key] = round(record[ours]["seconds"] / record["torch"]["seconds"], 3)
    return record


HEADER = ["case", "torch s", "graphlift s", f"ratio (≤{TARGET})", "graphlift→core s",
          "ratio core", "torch nodes", "graphlift nodes", "core nodes",
          "graphlift max |Δgrad| vs eager"]  # fmt: skip


def table_rows(cases: dict[str, dict[str, Any]]) -> list[list[str]]:
    def cell(result: dict[str, Any], key: str) -> str:
        if not result.get("ok"):
            return "fails"
        value = result[key]
        return f"{value:.3f}" if isinstance(value, float) and key == "seconds" else str(value)

    rows = []
    for name, record in cases.items():
        ours, theirs = record.get("graphlift", {}), record.get("torch", {})
        core = record.get("graphlift_core", {})
        ratio, ratio_core = record.get("ratio"), record.get("ratio_core")
        rows.append([
            name, cell(theirs, "seconds"), cell(ours, "seconds"),
            "-" if ratio is None else f"{ratio:.3f}x" + (" !" if ratio > TARGET else ""),
            cell(core, "seconds"), "-" if ratio_core is None else f"{ratio_core:.3f}x",
            cell(theirs, "nodes"), cell(ours, "nodes"), cell(core, "nodes"),
            cell(ours, "max_grad_diff"),
        ])  # fmt: skip
    return rows


def warm_up() -> None:
    model, args = torch.nn.Linear(4, 3), (torch.randn(2, 4),)

    class Loss(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x).sum()

    for export, joint in LIBRARIES.values():
        quietly(lambda e=export, j=joint: j(e(Loss(), args), 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    chosen = set(options.cases.split(",")) if options.cases else None
    torch.set_num_threads(1)
    torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
    warm_up()
    cases: dict[str, dict[str, Any]] = {}
    for case in ALL_CASES:
        if chosen is None or case.name in chosen:
            print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
            cases[case.name] = measure(case, options.repeat)
    ratios = [r["ratio"] for r in cases.values() if "ratio" in r]
    core_ratios = [r["ratio_core"] for r in cases.values() if "ratio_core" in r]
    summary = {"target": TARGET, "cases_both_ok": len(ratios),
               "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
               "ratio_core_median": round(statistics.median(core_ratios), 3) if core_ratios else None}  # fmt: skip
    tables.print_table("joint export: graphlift vs torch", HEADER, table_rows(cases))
    for name, record in cases.items():
        for library in LIBRARIES:
            if error := record.get(library, {}).get("error"):
                print(f"  {name}: {library} failed: {error}")
    print(f"median ratio graphlift/torch {summary['ratio_median']} (to core ATen: "
          f"{summary['ratio_core_median']}) over {len(ratios)} cases")  # fmt: skip
    report = {"environment": environment(), "options": vars(options) | {"json": str(options.json)},
              "cases": cases, "summary": summary}  # fmt: skip
    tables.write_results(options.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
