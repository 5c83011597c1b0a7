"""A Llama-3-70B config on the meta device: export, decomposition and peak RSS.

80 layers, hidden 8192, grouped-query attention (64 heads, 8 key/value heads),
vocabulary 128256; no weight is ever materialized. Each setting runs in a
fresh interpreter so its peak resident memory is its own: graphlift with
shared block bodies (the default), graphlift with ``reuse_blocks=False``, and
torch.export (``--torch``; it takes minutes). Dynamic batch and sequence
length; batch min 1 as the target says (``--batch-min 2`` skips the small-size
proof that a ``batch_size != 1`` branch in transformers' mask code asks for,
docs/block_reuse.md).

Targets (issue 18): export <= 2 s, decomposition <= 1 s, < 1 GB RSS.

    python benchmarks/large_config.py [--torch] [--layers 80]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.export_speed import environment  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "large_config.json"

SCRIPT = """
import json, logging, resource, sys, time
import torch, transformers
sys.path.insert(0, {repo!r})
import graphlift as gl

torch.set_num_threads(1)
torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
config = transformers.LlamaConfig(
    vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers={layers},
    num_attention_heads=64, num_key_value_heads=8, max_position_embeddings=8192,
    rope_theta=500000.0, use_cache=False,
)
with torch.device("meta"):
    model = transformers.LlamaForCausalLM(config).eval()
tokens = torch.zeros(4, 32, dtype=torch.long, device="meta")
which = {which!r}
if which == "torch":
    dim, export = torch.export.Dim, torch.export.export
else:
    dim = gl.Dim
    def export(*args, **kwargs):
        return gl.export(*args, **kwargs, reuse_blocks=which == "graphlift")
spec = {{"input_ids": {{0: dim("batch", min={batch_min}, max=64), 1: dim("seq", min=2, max=8192)}}}}
start = time.process_time()
ep = export(model, (tokens,), dynamic_shapes=spec)
exported = time.process_time() - start
start = time.process_time()
try:
    core, decompose_error = ep.run_decompositions(), None
except Exception as error:  # recorded: the export time stands on its own
    core, decompose_error = None, type(error).__name__ + ": " + str(error).splitlines()[0][:300]
decomposed = time.process_time() - start
print(json.dumps({{
    "export_cpu_s": round(exported, 3),
    "decompose_cpu_s": None if core is None else round(decomposed, 3),
    "decompose_error": decompose_error,
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "nodes": len(ep.graph.nodes), "core_nodes": None if core is None else len(core.graph.nodes),
    "ranges": {{str(k): str(v) for k, v in ep.range_constraints.items()}},
}}))
"""


def run(which: str, layers: int, batch_min: int) -> dict[str, object]:
    code = SCRIPT.format(repo=str(REPO), layers=layers, which=which, batch_min=batch_min)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", action="store_true", help="also run torch.export (slow)")
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--batch-min", type=int, default=1)
    parser.add_argument("--only", help="comma-separated settings to run (default: all)")
    parser.add_argument("--json", type=Path, default=RESULTS)
    options = parser.parse_args(argv)
    settings = ["graphlift", "graphlift flat"] + (["torch"] if options.torch else [])
    if options.only:
        settings = options.only.split(",")
    results = {}
    for which in settings:
        print(f"measuring {which} ...", file=sys.stderr, flush=True)
        results[which] = run(which, options.layers, options.batch_min)
        print(f"{which:15s} {results[which]}", flush=True)
    options.json.parent.mkdir(parents=True, exist_ok=True)
    options.json.write_text(
        json.dumps(
            {
                "environment": environment(),
                "layers": options.layers,
                "batch_min": options.batch_min,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {options.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
