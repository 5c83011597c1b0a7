"""Export and decomposition time against depth, graphlift beside torch.export.

A Llama config (Llama-2-7B widths by default) on the meta device, so no weight
is ever materialized, with ``--layers`` decoder layers (default 4, 16, 64,
128). For each depth, in one process: export with a dynamic batch and sequence
length (both libraries' ``Dim(min=2)``, see export_speed.py), then
``run_decompositions()`` on the result; one run each (these are long), taking
turns going first. "graphlift" is the default (shared block bodies), "graphlift
flat" is ``reuse_blocks=False``.

Targets (issue 18): the 64-layer export + decomposition within 3x the 4-layer
one.

    python benchmarks/depth_speed.py [--layers 4,16,64,128] [--hidden 4096]
"""

from __future__ import annotations

import argparse
import gc
import logging
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import graphlift  # noqa: E402
from benchmarks import tables  # noqa: E402
from benchmarks.export_speed import environment, quietly, short_reason  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "depth_speed.json"
DEPTH_TARGET = 3.0


def make_model(layers: int, hidden: int) -> torch.nn.Module:
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
        num_hidden_layers=layers, num_attention_heads=hidden // 128,
        num_key_value_heads=hidden // 128, max_position_embeddings=4096, use_cache=False,
    )  # fmt: skip
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(config).eval()


def exporters() -> dict[str, Callable[..., Any]]:
    def spec(make_dim: Callable[..., Any]) -> dict[str, Any]:
        return {
            "input_ids": {0: make_dim("batch", min=2, max=64), 1: make_dim("seq", min=2, max=4096)}
        }

    def ours(model: Any, args: tuple, **options: Any) -> Any:
        return graphlift.export(model, args, dynamic_shapes=spec(graphlift.Dim), **options)

    def theirs(model: Any, args: tuple) -> Any:
        return torch.export.export(model, args, dynamic_shapes=spec(torch.export.Dim))

    def flat(model: Any, args: tuple) -> Any:
        return ours(model, args, reuse_blocks=False)

    return {"graphlift": ours, "graphlift flat": flat, "torch": theirs}


def timed(action: Callable[[], Any]) -> tuple[dict[str, float] | None, Any, str | None]:
    """Wall and CPU seconds of ``action`` (the machine is shared: one-thread CPU
    time is the steadier measure), its result, or its error."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        result = quietly(action)
    except Exception as error:
        return None, None, short_reason(error)
    seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    return {k: round(v, 3) for k, v in seconds.items()}, result, None


def measure(
    layers: int, hidden: int, exporters: dict[str, Callable[..., Any]], order: list[str],
    torch_max_layers: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    model = make_model(layers, hidden)
    args = (torch.zeros(4, 32, dtype=torch.long, device="meta"),)
    record: dict[str, Any] = {}
    for name in order:
        if name == "torch" and torch_max_layers is not None and layers > torch_max_layers:
            record[name] = {"export": None, "decompose": None, "error": "not run", "nodes": None}
            continue
        export = exporters[name]
        export_seconds, program, error = timed(lambda export=export: export(model, args))
        decompose_seconds = None
        if program is not None:
            decompose_seconds, _, error = timed(program.run_decompositions)
        record[name] = {
            "export": export_seconds, "decompose": decompose_seconds, "error": error,
            "nodes": None if program is None else len(program.graph.nodes),
        }  # fmt: skip
        del program
    return record


def total(record: dict[str, Any], clock: str) -> float | None:
    if record["decompose"] is None:
        return None
    return record["export"][clock] + record["decompose"][clock]


def rows(results: dict[int, dict[str, Any]], names: list[str]) -> list[list[str]]:
    """CPU seconds (wall seconds in parentheses for the totals)."""

    def cell(value: dict[str, float] | None) -> str:
        return "-" if value is None else f"{value['cpu']:.2f}"

    table = []
    for layers, record in results.items():
        row = [str(layers)]
        for name in names:
            r = record[name]
            cpu, wall = total(r, "cpu"), total(r, "wall")
            both = "-" if cpu is None else f"{cpu:.2f} ({wall:.2f})"
            row += [cell(r["export"]), cell(r["decompose"]), both]
        table.append(row)
    return table


def growth(results: dict[int, dict[str, Any]], name: str) -> float | None:
    """CPU time of export + decomposition at 64 layers over the same at 4 layers."""
    if 4 not in results or 64 not in results:
        return None
    totals = [total(results[layers][name], "cpu") for layers in (4, 64)]
    if None in totals:
        return None
    return round(totals[1] / totals[0], 2)  # type: ignore[operator]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="4,16,64,128")
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument(
        "--torch-max-layers",
        type=int,
        default=None,
        help="measure torch.export only up to this depth (it takes minutes)",
    )
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
    made = exporters()
    names = list(made)
    measure(1, options.hidden, made, names)  # warm-up: first-use costs of both libraries
    results: dict[int, dict[str, Any]] = {}
    for index, layers in enumerate(int(n) for n in options.layers.split(",")):
        print(f"measuring {layers} layers ...", file=sys.stderr, flush=True)
        order = names if index % 2 == 0 else list(reversed(names))
        results[layers] = measure(layers, options.hidden, made, order, options.torch_max_layers)
    header = ["layers"] + [
        f"{n} {what}"
        for n in names
        for what in ("export cpu s", "decomp cpu s", "total cpu (wall) s")
    ]
    tables.print_table(f"export + run_decompositions vs depth (Llama, hidden {options.hidden}, meta)",
                       header, rows(results, names))  # fmt: skip
    summary = {name: growth(results, name) for name in names}
    for name, value in summary.items():
        print(f"{name}: 64-layer total / 4-layer total = {value} (target <= {DEPTH_TARGET})")
    for layers, record in results.items():
        for name, r in record.items():
            if r["error"]:
                print(f"  {layers} layers: {name} failed: {r['error']}")
    report = {
        "environment": environment(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "options": {"layers": options.layers, "hidden": options.hidden},
        "results": {str(k): v for k, v in results.items()},
        "growth_64_over_4": summary,
    }
    tables.write_results(options.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
