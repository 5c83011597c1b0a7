"""The public names of block reuse (DESIGN.md, issue 18): ``reuse_blocks`` and
``ep.inline_subgraphs()``.

Shared block bodies are not built yet; what these tests pin is the contract
that holds already: both settings give the same program, the flat program
``inline_subgraphs()`` returns equals the ``reuse_blocks=False`` one, runs
like eager, and is a new program (its source is never changed).
"""

from __future__ import annotations

import pytest
import torch

import graphlift as gl
from graphlift.errors import ExportError
from graphlift.examples.tiny_gpt import make_example
from tests.export.test_golden_programs import printout


def tiny_gpt(reuse_blocks: bool) -> gl.ExportedProgram:
    model, (tokens,) = make_example()
    spec = {"tokens": {0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=31)}}
    return gl.export(model, (tokens,), dynamic_shapes=spec, reuse_blocks=reuse_blocks)


def test_both_settings_give_the_same_program() -> None:
    assert printout(tiny_gpt(True)) == printout(tiny_gpt(False))


def test_inline_subgraphs_is_the_flat_program_and_runs_like_eager() -> None:
    ep = tiny_gpt(True)
    before = printout(ep)
    flat = ep.inline_subgraphs()
    assert flat is not ep and flat.graph is not ep.graph
    assert printout(flat) == printout(tiny_gpt(False))
    model, _ = make_example()
    for batch, seq in ((1, 5), (3, 17)):
        tokens = torch.randint(0, model.config.vocab_size, (batch, seq))
        torch.testing.assert_close(flat.module()(tokens), model(tokens))
    last = [node for node in flat.graph.nodes if node.op == "call_function"][-1]
    last.meta["stack_trace"] = "changed in the copy"
    assert printout(ep) == before


def test_reuse_blocks_must_be_a_bool() -> None:
    model, (tokens,) = make_example()
    with pytest.raises(ExportError, match="reuse_blocks must be True or False"):
        gl.export(model, (tokens,), reuse_blocks="yes")  # type: ignore[arg-type]
