"""``graph_signature.output_provenance``: for each flat user output, whether it
is computed, an input or state passed through, or a Python constant; checked
against the eager outputs' identities, and kept through decomposition and save/load."""

from __future__ import annotations

import io

import torch

import graphlift as gl
from graphlift.export import OutputProvenance, OutputSource


class Mixed(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3))
        self.register_buffer("table", torch.arange(3.0))

    def forward(self, x, pair, n: int):
        updated = pair[1].add_(1)  # mutated in place: its returned value is new
        return {
            "sum": x + self.weight,
            "x": x,
            "first": pair[0],
            "updated": updated,
            "view": x[0],
            "weight": self.weight,
            "table": self.table,
            "n": n,
            "label": "ok",
        }


def test_provenance_of_each_output_matches_eager_identities() -> None:
    model = Mixed()
    x, pair = torch.randn(2, 3), (torch.randn(3), torch.randn(3))
    ep = gl.export(model, (x, pair, 4))
    provenance = dict(
        zip(model(x, (pair[0], pair[1].clone()), 4), ep.graph_signature.output_provenance)
    )
    assert provenance == {
        "sum": OutputProvenance(OutputSource.COMPUTED),
        "x": OutputProvenance(OutputSource.USER_INPUT, "x"),
        "first": OutputProvenance(OutputSource.USER_INPUT, "pair_0"),
        "updated": OutputProvenance(OutputSource.COMPUTED),
        "view": OutputProvenance(OutputSource.COMPUTED),
        "weight": OutputProvenance(OutputSource.PARAMETER, "p_weight", "weight"),
        "table": OutputProvenance(OutputSource.BUFFER, "b_table", "table"),
        "n": OutputProvenance(OutputSource.CONSTANT, value=4),
        "label": OutputProvenance(OutputSource.CONSTANT, value="ok"),
    }
    # the eager oracle: pass-through outputs are the very objects given in
    out = model(x, pair, 4)
    assert out["x"] is x and out["first"] is pair[0] and out["weight"] is model.weight
    assert str(ep.graph_signature.output_provenance[5]) == "PARAMETER p_weight (weight)"


def test_provenance_survives_decomposition_and_save_load() -> None:
    model = Mixed()
    ep = gl.export(model, (torch.randn(2, 3), (torch.randn(3), torch.randn(3)), 4))
    core = ep.run_decompositions()
    assert core.graph_signature.output_provenance == ep.graph_signature.output_provenance
    buffer = io.BytesIO()
    gl.save(core, buffer)
    buffer.seek(0)
    assert gl.load(buffer).graph_signature.output_provenance == ep.graph_signature.output_provenance


def test_matches_what_torch_export_returns_as_is() -> None:
    model = Mixed()
    x, pair = torch.randn(2, 3), (torch.randn(3), torch.randn(3))
    theirs = torch.export.export(model, (x, pair, 4))
    inputs = {s.arg.name for s in theirs.graph_signature.input_specs}
    user_outputs = [s for s in theirs.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"]
    passed = [getattr(s.arg, "name", None) in inputs for s in user_outputs]
    ours = gl.export(model, (x, pair, 4)).graph_signature.output_provenance
    assert passed == [p.source not in (OutputSource.COMPUTED, OutputSource.CONSTANT) for p in ours]
