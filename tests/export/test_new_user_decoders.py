"""Two transformers decoders no other test uses (BLOOM, GPT-J), exported the torch way:
``torch.export.Dim`` on batch and sequence with the default minimum, and
``Dim.AUTO`` on both, side by side with torch.export in the same test.

Found at the end of batch 2's first session, tried as a new user would: torch.export
exports both and equals eager at batch 1; graphlift refuses batch 1 (a named Dim is a
ConstraintViolationError raised inside BLOOM's ``query_key_value`` Linear on a 3-d
input; with AUTO, batch 1 was refused at run time). Fixed by per-size 0/1 exemptions
and the second trace at size 1 (export/small_sizes.py); issue 14, defects 1 and 4.
"""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim
from transformers import BloomConfig, BloomModel, GPTJConfig, GPTJModel

import graphlift as gl

pytestmark = pytest.mark.slow


def bloom() -> torch.nn.Module:
    config = BloomConfig(vocab_size=100, hidden_size=32, n_layer=2, n_head=4, use_cache=False)
    return BloomModel(config).eval()


def gptj() -> torch.nn.Module:
    config = GPTJConfig(vocab_size=100, n_embd=32, n_layer=2, n_head=4, rotary_dim=4,
                        n_positions=64, use_cache=False)  # fmt: skip
    return GPTJModel(config).eval()


SPECS = {
    "named": lambda: {"input_ids": {0: Dim("batch"), 1: Dim("seq", max=64)}},
    "auto": lambda: {"input_ids": {0: Dim.AUTO, 1: Dim.AUTO}},
}


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("make", [bloom, gptj], ids=["bloom", "gptj"])
def test_torch_export_runs_batch_1_and_2(make, spec: str) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = make()
    ids = torch.randint(0, 100, (2, 7))
    ep = torch.export.export(model, (), {"input_ids": ids}, dynamic_shapes=SPECS[spec]())
    for shape in ((1, 5), (3, 9)):
        x = torch.randint(0, 100, shape)
        torch.testing.assert_close(ep.module()(input_ids=x)[0], model(input_ids=x)[0])


@pytest.mark.parametrize("spec", list(SPECS))
@pytest.mark.parametrize("make", [bloom, gptj], ids=["bloom", "gptj"])
def test_graphlift_runs_batch_1_and_2_like_torch(make, spec: str) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = make()
    ids = torch.randint(0, 100, (2, 7))
    ep = gl.export(model, (), {"input_ids": ids}, dynamic_shapes=SPECS[spec]())
    for shape in ((1, 5), (3, 9)):
        x = torch.randint(0, 100, shape)
        torch.testing.assert_close(ep.module()(input_ids=x)[0], model(input_ids=x)[0])


def test_a_float_where_token_ids_go_is_refused_naming_the_input() -> None:
    torch.manual_seed(0)
    model = bloom()
    ids = torch.randint(0, 100, (2, 7))
    ep = gl.export(model, (), {"input_ids": ids}, dynamic_shapes=SPECS["auto"]())
    with pytest.raises(
        gl.errors.InputMismatchError, match=r"'input_ids'.*expected dtype torch\.int64"
    ):
        ep.module()(input_ids=torch.randn(2, 7))
