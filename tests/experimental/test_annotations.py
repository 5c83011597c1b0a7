"""``torch.fx.traceback.annotate`` inside forward: the dict reaches
``node.meta["custom"]`` of every node created inside the block (nested blocks
merged), survives run_decompositions and save/load; torch.export (under
``preserve_node_meta``, which it needs for this) is the oracle."""

from __future__ import annotations

import io

import torch
import torch.fx.traceback as fx_traceback

import graphlift as gl


class Annotated(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)

    def forward(self, x):
        with fx_traceback.annotate({"stage": 1}):
            y = self.linear(x) + 1
            with fx_traceback.annotate({"inner": "b", "stage": 2}):
                z = torch.nn.functional.silu(y * 2)
            first = z.split(1, dim=1)[0]
        return first.sum() + y.mean(), torch.nn.functional.layer_norm(z, (3,))


def annotations(ep) -> dict[str, dict | None]:
    """node name -> its user annotations (torch adds private ``_torchdynamo*`` keys)."""
    found = {}
    for node in ep.graph.nodes:
        custom = {k: v for k, v in (node.meta.get("custom") or {}).items() if not k.startswith("_")}
        found[node.name] = custom or None
    return found


def test_annotations_match_torch_export() -> None:
    x = torch.randn(2, 3)
    ours = annotations(gl.export(Annotated(), (x,)))
    with fx_traceback.preserve_node_meta():
        theirs = annotations(torch.export.export(Annotated(), (x,)))
    assert ours == {name: theirs[name] for name in ours}
    assert ours["mul"] == {"stage": 2, "inner": "b"}  # nested: merged, inner wins
    assert ours["add"] == {"stage": 1} and ours["layer_norm"] is None


def test_annotations_survive_decomposition_and_save_load() -> None:
    x = torch.randn(2, 3)
    core = gl.export(Annotated(), (x,)).run_decompositions()
    found = annotations(core)
    assert found["addmm"] == {"stage": 1} and found["sigmoid"] == {"stage": 2, "inner": "b"}
    assert found["native_layer_norm"] is None and found["sum_1"] is None
    buffer = io.BytesIO()
    gl.save(core, buffer)
    buffer.seek(0)
    assert annotations(gl.load(buffer)) == found


def test_the_same_decomposition_in_and_out_of_a_block_keeps_each_annotation() -> None:
    """Decomposition replays equal calls from a cache: the copy must not carry
    the first call's annotation to the second."""

    def twice(x):
        with fx_traceback.annotate({"block": "a"}):
            a = torch.nn.functional.silu(x)
        return a + torch.nn.functional.silu(x)

    core = gl.export(twice, (torch.randn(4),)).run_decompositions()
    sigmoid, sigmoid_1 = (n for n in core.graph.nodes if n.name.startswith("sigmoid"))
    assert sigmoid.meta["custom"] == {"block": "a"} and "custom" not in sigmoid_1.meta


def test_annotation_state_is_only_read() -> None:
    before = dict(fx_traceback.current_meta)
    gl.export(Annotated(), (torch.randn(2, 3),))
    assert fx_traceback.current_meta == before
