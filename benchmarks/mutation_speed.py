"""Programs that mutate state: export time and module() overhead, graphlift vs torch.export.

Cases: the zoo's conv/batch-norm model in *train* mode (running stats), a
static KV cache updated by ``index_copy_`` and setitem (tests/export), and
transformers' Llama decode step on a StaticCache. For each, in one process:

1. ``export``: median of ``--repeat`` runs of ``graphlift.export`` and of
   ``torch.export.export(...).run_decompositions({})`` (the functional form,
   which is what graphlift's graph is; plain ``torch.export.export`` is also
   timed, since its default IR keeps the in-place ops);
2. ``module``: per-call time of ``ep.module()`` (which copies every mutation
   back into buffers and inputs) against eager, median over ``--rounds``
   batches of at least ``--budget`` seconds each, rotating which goes first.

Targets: module() overhead <= 1.05x eager. torch runs with one thread.

    python benchmarks/mutation_speed.py [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import graphlift  # noqa: E402
from benchmarks import tables  # noqa: E402
from tests.export.test_mutations import StaticKVCache  # noqa: E402
from tests.zoo.torch_models import make_conv_bn  # noqa: E402
from tests.zoo.transformers_models import DECODER_ONLY  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "mutation_speed.json"
MODULE_TARGET = 1.05


def conv_bn_train() -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
    return make_conv_bn().train(), (torch.randn(2, 3, 16, 16),), {}


def kv_cache() -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
    k, v = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)
    return StaticKVCache(), (k, v, torch.tensor([3])), {}


def llama_static_cache() -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(**{**DECODER_ONLY, "use_cache": True})
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.cache_implementation = "static"
    wrapper = TorchExportableModuleWithStaticCache(model, batch_size=1, max_cache_len=16)
    return wrapper, (), {"input_ids": torch.tensor([[3]]), "cache_position": torch.tensor([2])}


CASES = {
    "conv_bn_train": conv_bn_train,
    "kv_cache": kv_cache,
    "llama_static_cache": llama_static_cache,
}

EXPORTERS: dict[str, Callable[..., Any]] = {
    "graphlift": graphlift.export,
    "torch.export": torch.export.export,
    "torch.export+functional": lambda m, a, k: torch.export.export(m, a, k).run_decompositions({}),
}


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def batch_seconds(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return time.perf_counter() - start


def per_call(calls: dict[str, Callable[[], Any]], budget: float, rounds: int) -> dict[str, float]:
    """Seconds per call of each callable: batches of at least ``budget`` seconds,
    median over ``rounds``; each round times every callable, in a rotating order."""
    counts = {}
    for label, call in calls.items():
        counts[label] = 1
        while batch_seconds(call, counts[label]) < budget:
            counts[label] *= 2
    samples: dict[str, list[float]] = {label: [] for label in calls}
    labels = list(calls)
    for round_ in range(rounds):
        for label in labels[round_ % len(labels) :] + labels[: round_ % len(labels)]:
            samples[label].append(batch_seconds(calls[label], counts[label]) / counts[label])
    return {label: statistics.median(values) for label, values in samples.items()}


def measure(name: str, options: argparse.Namespace) -> dict[str, Any]:
    model, args, kwargs = CASES[name]()
    result: dict[str, Any] = {"export_s": {}, "module_s": {}}
    modules: dict[str, Callable[[], Any]] = {}
    for exporter, export in EXPORTERS.items():
        programs = []

        def once(export: Callable[..., Any] = export, programs: list[Any] = programs) -> None:
            programs.append(export(copy.deepcopy(model), args, kwargs))

        try:
            result["export_s"][exporter] = median_seconds(once, options.repeat)
        except Exception as error:  # recorded, not retried: a failing exporter is a result
            result.setdefault("errors", {})[exporter] = f"{type(error).__name__}: {error}"[:200]
            continue
        module = programs[-1].module()
        modules[exporter] = lambda module=module: module(*args, **kwargs)
    eager = copy.deepcopy(model)
    modules["eager"] = lambda: eager(*args, **kwargs)
    with torch.no_grad():
        result["module_s"] = per_call(modules, options.budget, options.rounds)
    return result


def rows(results: dict[str, dict[str, Any]]) -> list[list[str]]:
    def ms(table: dict[str, float], key: str) -> str:
        return f"{table[key] * 1e3:.0f}" if key in table else "failed"

    def ratio(table: dict[str, float], key: str, base: str, digits: int) -> str:
        return f"{table[key] / table[base]:.{digits}f}x" if key in table and base in table else "-"

    lines = []
    for name, result in results.items():
        export, module = result["export_s"], result["module_s"]
        lines.append([
            name, ms(export, "graphlift"), ms(export, "torch.export"),
            ms(export, "torch.export+functional"),
            ratio(export, "graphlift", "torch.export+functional", 2),
            f"{module['eager'] * 1e6:.0f}", ratio(module, "graphlift", "eager", 3),
            ratio(module, "torch.export+functional", "eager", 3),
        ])  # fmt: skip
    return lines


HEADER = ["case", "gl export ms", "torch ms", "torch+func ms", "gl/torch+func",
          "eager us", "gl module/eager", "torch module/eager"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--budget", type=float, default=0.05)
    parser.add_argument("--json", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    results = {name: measure(name, options) for name in CASES}
    tables.print_table("programs with mutations: graphlift vs torch.export", HEADER, rows(results))
    options.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
