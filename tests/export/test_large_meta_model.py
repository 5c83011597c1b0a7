"""A Llama-2-7B-sized config on the meta device exports with a small footprint.

Runs in a fresh interpreter so the peak resident memory (ru_maxrss) belongs to
this export alone; no weight is ever materialized.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, resource, time
    import torch, transformers
    import graphlift as gl

    config = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
        use_cache=False,
    )
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config).eval()
    tokens = torch.zeros(1, 16, dtype=torch.long, device="meta")
    start = time.perf_counter()
    ep = gl.export(model, (tokens,))
    seconds = time.perf_counter() - start
    logits = next(reversed(ep.graph.nodes)).args[0][0].meta["val"]
    print(json.dumps({
        "parameters": sum(p.numel() for p in model.parameters()),
        "logits_shape": list(logits.shape),
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "nodes": len(ep.graph.nodes),
    }))
    """
)


def test_llama_7b_config_on_meta_exports_under_2_gb() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["parameters"] > 6.5e9
    assert facts["logits_shape"] == [1, 16, 32000]
    assert facts["peak_rss_mb"] < 2048, facts
