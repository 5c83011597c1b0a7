"""Run by tests/serialize/test_zoo_roundtrip.py in a fresh interpreter.

It loads every archive named in the manifest and runs it on the saved inputs,
with nothing but graphlift imported: not the tests, not the models' code
(transformers), so the archives alone must be enough. It prints one JSON
report; the parent test asserts on it. Usage: ``python fresh_process.py DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import graphlift as gl


def run_case(directory: Path, entry: dict) -> dict:
    start = time.perf_counter()
    try:
        ep = gl.load(directory / entry["archive"])
    except gl.ArchiveError as error:
        return {"loaded": False, "error": str(error)}
    loaded = time.perf_counter()
    module = ep.module()
    results = []
    for run in entry["runs"]:
        tensors = load_file(directory / run)
        inputs = [
            tensors[f"input_{i}"] for i in range(sum(k.startswith("input_") for k in tensors))
        ]
        args, kwargs = gl.pytree.tree_unflatten(inputs, ep.call_spec_in)
        with torch.no_grad():
            outputs = gl.pytree.tree_leaves(module(*args, **kwargs))
        expected = [tensors[f"output_{i}"] for i in range(len(outputs))]
        diff = max((float((a - e).abs().max()) if a.numel() else 0.0)
                   for a, e in zip(outputs, expected))  # fmt: skip
        same = len(expected) == sum(k.startswith("output_") for k in tensors)
        results.append({"run": run, "max_diff": diff, "same_count": same})
    seconds = {"load": loaded - start, "run": time.perf_counter() - loaded}
    return {"loaded": True, "printed": str(ep), "runs": results, "seconds": seconds}


def main() -> None:
    directory = Path(sys.argv[1])
    manifest = json.loads((directory / "manifest.json").read_text())
    start = time.perf_counter()
    report = {name: run_case(directory, entry) for name, entry in manifest.items()}
    elapsed = time.perf_counter() - start
    foreign = sorted(m for m in sys.modules if m.split(".")[0] in ("tests", "transformers"))
    print(json.dumps({"cases": report, "foreign_modules": foreign, "seconds": elapsed}))


if __name__ == "__main__":
    main()
