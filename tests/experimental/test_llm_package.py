"""The acceptance demo of issue 20: prefill and decode of a transformers Llama
with a static KV cache, exported as one package, saved, and loaded in a fresh
process without transformers; greedy generation from the archive equals eager."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import transformers
from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

import graphlift as gl
from tests.zoo.transformers_models import DECODER_ONLY

PROMPT = [5, 7, 9, 11]
STEPS = 6
CACHE = 16

# Weights large enough that the archive is mostly weights (about 3 MB), as for
# any real model; the tiny zoo config would be mostly graph JSON.
CONFIG = {**DECODER_ONLY, "vocab_size": 2048, "hidden_size": 128, "intermediate_size": 256,
          "use_cache": True}  # fmt: skip

GENERATE = textwrap.dedent(
    """
    import json, sys, torch, graphlift as gl
    package = gl.load(sys.argv[1])
    prefill, decode = package["prefill"].module(), package["decode"].module()
    prompt = json.loads(sys.argv[2])
    logits = prefill(input_ids=torch.tensor([prompt]), cache_position=torch.arange(len(prompt)))
    tokens = [int(logits[0, -1].argmax())]
    for position in range(len(prompt), len(prompt) + int(sys.argv[3]) - 1):
        logits = decode(input_ids=torch.tensor([[tokens[-1]]]), cache_position=torch.tensor([position]))
        tokens.append(int(logits[0, -1].argmax()))
    print(json.dumps({"tokens": tokens, "transformers": "transformers" in sys.modules}))
    """
)


def make_wrapper() -> torch.nn.Module:
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG)).eval()
    model.generation_config.cache_implementation = "static"
    return TorchExportableModuleWithStaticCache(model, batch_size=1, max_cache_len=CACHE)


def generate(prefill, decode) -> tuple[list[int], list[torch.Tensor]]:
    logits = prefill(input_ids=torch.tensor([PROMPT]), cache_position=torch.arange(len(PROMPT)))
    tokens, all_logits = [int(logits[0, -1].argmax())], [logits]
    for position in range(len(PROMPT), len(PROMPT) + STEPS - 1):
        logits = decode(
            input_ids=torch.tensor([[tokens[-1]]]), cache_position=torch.tensor([position])
        )
        tokens.append(int(logits[0, -1].argmax()))
        all_logits.append(logits)
    return tokens, all_logits


@pytest.mark.slow
def test_prefill_and_decode_package_generates_like_eager(tmp_path: Path) -> None:
    wrapper = make_wrapper()
    eager = copy.deepcopy(wrapper)
    seq = gl.Dim("seq", min=2, max=CACHE - 1)  # one token takes the decode program
    package = gl.export_methods(
        wrapper,
        {
            "prefill": ((), {"input_ids": torch.tensor([PROMPT]), "cache_position": torch.arange(4)}),
            "decode": ((), {"input_ids": torch.tensor([[3]]), "cache_position": torch.tensor([4])}),
        },
        dynamic_shapes={"prefill": {"input_ids": {1: seq}, "cache_position": {0: seq}}},
    )  # fmt: skip
    prefill, decode = package["prefill"], package["decode"]
    assert all(prefill.state_dict[k] is decode.state_dict[k] for k in prefill.state_dict)

    archive, single = tmp_path / "llama.gl", tmp_path / "decode.gl"
    gl.save(package, archive)
    gl.save(decode, single)
    ratio = archive.stat().st_size / single.stat().st_size
    assert ratio < 1.2, f"package archive is {ratio:.2f}x a single-method archive"

    expected, expected_logits = generate(eager, eager)  # eager: forward for both steps
    loaded = gl.load(archive)
    tokens, logits = generate(loaded["prefill"].module(), loaded["decode"].module())
    assert tokens == expected
    for ours, theirs in zip(logits, expected_logits, strict=True):
        torch.testing.assert_close(ours, theirs)

    fresh = subprocess.run(
        [sys.executable, "-c", GENERATE, str(archive), json.dumps(PROMPT), str(STEPS)],
        capture_output=True, text=True, check=True, cwd=Path(gl.__file__).parent.parent,
    )  # fmt: skip
    result = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert result == {"tokens": expected, "transformers": False}
