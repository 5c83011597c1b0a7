"""Data-dependent programs and control flow: graphlift against torch.export, same run.

For each case: export time (median of ``--repeat``; graphlift and torch.export
alternate), whether torch.export succeeds (its error type otherwise), and
``ep.module()`` time over eager (median of batches of calls). graphlift exports
Mixtral with ``data_dependent="specialize"``; torch.export gets its defaults.

    python benchmarks/data_dependent.py [--repeat 3] [--json benchmarks/results/data_dependent.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphlift as gl
from benchmarks.tables import print_table
from tests.export.test_control_flow import CondModel
from tests.export.test_data_dependent import TinyExperts
from tests.zoo.models import CASES


def zoo(name: str) -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
    case = next(c for c in CASES if c.name == name)
    args, kwargs = case.make_inputs()
    return case.make_model(), args, kwargs


def cases() -> dict[str, tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any], dict[str, Any]]]:
    def batch(make_dim: Any) -> tuple[dict[int, Any], ...]:
        dim = make_dim("batch", min=2, max=64)
        return ({0: dim}, {0: dim})

    experts_inputs = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    return {
        "expert routing, dynamic batch": (
            TinyExperts(), experts_inputs, {}, {"dynamic_shapes": batch}
        ),
        "torch.cond over params": (CondModel(), (torch.randn(3, 4), torch.randn(2, 4)), {}, {}),
        "nn.Transformer, tensor mask": (*zoo("nn_transformer"), {}),
        "Mixtral, eager experts": (*zoo("mixtral"), {"data_dependent": "specialize"}),
    }  # fmt: skip


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def per_call(fn: Callable[[], Any], budget: float = 0.2) -> float:
    rounds = []
    for _ in range(3):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget:
            fn()
            count += 1
        rounds.append((time.perf_counter() - start) / count)
    return statistics.median(rounds)


def measure(
    model: torch.nn.Module, args: Any, kwargs: Any, options: dict[str, Any], repeat: int
) -> dict[str, Any]:
    make = options.get("dynamic_shapes")
    ours_options = {**options, "dynamic_shapes": make(gl.Dim) if make else None}
    torch_options = {"dynamic_shapes": make(torch.export.Dim) if make else None}
    ours, theirs, torch_error = [], [], None
    for _ in range(repeat):
        seconds, ep = timed(functools.partial(gl.export, model, args, kwargs, **ours_options))
        ours.append(seconds)
        if torch_error is None:
            try:
                reference = functools.partial(
                    torch.export.export, model, args, kwargs, **torch_options
                )
                theirs.append(timed(reference)[0])
            except Exception as error:  # recorded, not retried
                torch_error = type(error).__name__
    module = ep.module()
    with torch.no_grad():
        ratio = per_call(lambda: module(*args, **kwargs)) / per_call(lambda: model(*args, **kwargs))
    return {
        "graphlift_s": statistics.median(ours),
        "torch_export_s": statistics.median(theirs) if torch_error is None else None,
        "torch_export_error": torch_error,
        "module_over_eager": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/results/data_dependent.json")
    options = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    rows, record = [], {}
    for name, (model, args, kwargs, export_options) in cases().items():
        result = record[name] = measure(model, args, kwargs, export_options, options.repeat)
        mine, theirs = result["graphlift_s"], result["torch_export_s"]
        torch_text = (
            f"{theirs:.2f} s ({mine / theirs:.2f}x)"
            if theirs
            else f"fails: {result['torch_export_error']}"
        )
        rows.append([name, f"{mine:.2f} s", torch_text, f"{result['module_over_eager']:.2f}x"])
    header = ["case", "graphlift export", "torch.export", "module()/eager"]
    print_table("data-dependent programs", header, rows)
    Path(options.json).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
