"""A one-token sequence through decoders no other test uses (Persimmon, Qwen3),
exported the torch way, side by side with torch.export in the same run.

Found at the end of batch 2's second session, tried as a new user would:
``torch.export.Dim`` on batch and sequence with the default minimum (and
``Dim.AUTO`` on both). torch.export exports both and equals eager at (1, 1).
graphlift used to refuse sequence length 1: transformers' sdpa integration
guards on ``q_length > 1`` (``sdpa_attention.py``), and the second trace at that
size (export/small_sizes.py) could not be identified with the first, because
``attn_output.transpose(1, 2).contiguous()`` records a ``contiguous`` only where
the transposed tensor is not contiguous already (it is, at one token); and then
(1, 1) stayed refused, since the trace at sequence 1 refuses batch 1 on its own
(the masking branch ``batch_size != position_ids.shape[0]``). Both are proven now
(issue 14, defect 4): ``contiguous`` of a tensor contiguous at that size is that
tensor, and the second trace's own refused small sizes are proven first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.export import Dim
from transformers import PersimmonConfig, PersimmonForCausalLM, Qwen3Config, Qwen3ForCausalLM

import graphlift as gl

pytestmark = pytest.mark.slow

VOCAB = 64


def persimmon() -> torch.nn.Module:
    config = PersimmonConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=64)  # fmt: skip
    return PersimmonForCausalLM(config).eval()


def qwen3() -> torch.nn.Module:
    config = Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=8)  # fmt: skip
    return Qwen3ForCausalLM(config).eval()


SPECS: dict[str, Callable[[], dict[str, Any]]] = {
    "named": lambda: {"input_ids": {0: Dim("batch"), 1: Dim("seq")}, "use_cache": None},
    "auto": lambda: {"input_ids": {0: Dim.AUTO, 1: Dim.AUTO}, "use_cache": None},
}
SHAPES = ((1, 1), (3, 1), (1, 2), (2, 2), (1, 7), (3, 9))


def logits(output: Any) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output[0]


def check(export: Callable[..., Any], make: Callable[[], torch.nn.Module], spec: str) -> None:
    torch.manual_seed(0)
    model = make()
    example = {"input_ids": torch.randint(0, VOCAB, (2, 7)), "use_cache": False}
    program = export(model, (), example, dynamic_shapes=SPECS[spec]())
    for shape in SHAPES:
        x = torch.randint(0, VOCAB, shape)
        with torch.no_grad():
            want = model(input_ids=x, use_cache=False).logits
        got = logits(program.module()(input_ids=x, use_cache=False))
        torch.testing.assert_close(got, want, msg=lambda m, at=shape: f"at {at}: {m}")


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("make", [persimmon, qwen3], ids=["persimmon", "qwen3"])
def test_torch_export_runs_a_one_token_sequence(make: Callable[[], Any], spec: str) -> None:
    check(torch.export.export, make, spec)


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("make", [persimmon, qwen3], ids=["persimmon", "qwen3"])
def test_graphlift_runs_a_one_token_sequence_like_torch(make: Callable[[], Any], spec: str) -> None:
    check(gl.export, make, spec)


def test_sequence_and_batch_1_are_kept_and_every_refusal_is_announced() -> None:
    torch.manual_seed(0)
    example = {"input_ids": torch.randint(0, VOCAB, (2, 7)), "use_cache": False}
    program = gl.export(persimmon(), (), example, dynamic_shapes=SPECS["auto"]())
    env = program._shape_env
    assert not env.refused_at("s0", 1)
    # sequence 1 is refused only together with batch 0 (where eager fails)
    assert all(g.code.endswith("or input_ids.size()[0] != 0") for g in env.refused_at("s1", 1))
    assert [r.lower for r in program.range_constraints.values()] == [0, 1]
    # Eager fails at sequence 0 and, at batch 0, on the reshape's -1 of no elements:
    # refused before computing, and announced, decided over every sequence length:
    # batch 0 for each (sequence 1 by another guard than the longer ones)
    batch, sequence = program.specializations
    assert batch.change == "size 0 not supported"
    assert "sdpa_attention.py" in str(batch.where)
    assert sequence.change == ("range [1, inf] (declared [0, inf]), sizes 1, 2, 3, 4, 5, 6, ... "
                               "not supported while input_ids.size()[0] == 0")  # fmt: skip
    with pytest.raises(gl.errors.InputMismatchError):
        program.module()(input_ids=torch.randint(0, VOCAB, (0, 3)), use_cache=False)


def test_a_float_where_token_ids_go_is_refused_naming_the_input() -> None:
    torch.manual_seed(0)
    example = {"input_ids": torch.randint(0, VOCAB, (2, 7)), "use_cache": False}
    program = gl.export(persimmon(), (), example, dynamic_shapes=SPECS["auto"]())
    with pytest.raises(gl.errors.InputMismatchError, match="input_ids"):
        program.module()(input_ids=torch.randn(2, 7), use_cache=False)
