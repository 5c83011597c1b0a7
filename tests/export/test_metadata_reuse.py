"""Per-op metadata reuse (trace/metadata_cache.py) never changes a program.

Every golden printout and every zoo model's dynamic export print byte for byte
the same with reuse on and off, and reuse really happens (a cache that never
hits would pass the first check trivially). Small models probe the key: calls
that differ only in a non-tensor argument's type, the default dtype, grad mode
or a view's geometry must not share metadata.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.examples.tiny_gpt import make_example
from graphlift.trace import metadata_cache
from graphlift.trace.metadata_cache import metadata_reuse
from tests.export.test_golden_programs import CASES, GOLDEN, printout
from tests.zoo.models import CASES as ZOO_CASES


@pytest.fixture
def counted_hits(monkeypatch: pytest.MonkeyPatch) -> list[metadata_cache.MetadataCache]:
    """Every MetadataCache made during the test, to read its hit count."""
    made: list[metadata_cache.MetadataCache] = []
    original = metadata_cache.MetadataCache.__init__

    def init(self: metadata_cache.MetadataCache, shape_env: object) -> None:
        original(self, shape_env)
        made.append(self)

    monkeypatch.setattr(metadata_cache.MetadataCache, "__init__", init)
    return made


def node_metadata(ep: gl.ExportedProgram) -> list[str]:
    """Every node's value: sizes, strides, offset and dtype (the printout shows
    sizes and dtypes only)."""

    def describe(value: object) -> str:
        if isinstance(value, torch.Tensor):
            return (
                f"{value.dtype}{list(value.shape)}{list(value.stride())}+{value.storage_offset()}"
            )
        if isinstance(value, tuple | list):
            return "(" + ", ".join(describe(item) for item in value) + ")"
        return repr(value)

    return [f"{node.name}: {describe(node.meta.get('val'))}" for node in ep.graph.nodes]


def both_ways(make: object) -> tuple[str, str]:
    with metadata_reuse(False):
        flat = make()  # type: ignore[operator]
    with metadata_reuse(True):
        reused = make()  # type: ignore[operator]
    return flat, reused


@pytest.mark.parametrize("name", CASES)
def test_golden_printouts_equal_with_and_without_reuse(name: str) -> None:
    flat, reused = both_ways(CASES[name])
    assert printout(reused) == printout(flat) == (GOLDEN / f"{name}.txt").read_text()
    assert node_metadata(reused) == node_metadata(flat)


@pytest.mark.parametrize("name", CASES)
def test_decomposed_golden_printouts_equal_with_and_without_reuse(name: str) -> None:
    flat, reused = both_ways(lambda: CASES[name]().run_decompositions())
    assert printout(reused) == printout(flat) == (GOLDEN / f"{name}.core.txt").read_text()
    assert node_metadata(reused) == node_metadata(flat)


@pytest.mark.parametrize("spec", [None, "dynamic"])
def test_the_tiny_gpt_layers_reuse_metadata(spec: str | None, counted_hits: list) -> None:
    # every layer traced (no shared bodies), so the second repeats the first's ops
    model, (tokens,) = make_example()
    dims = {"tokens": {0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=31)}}
    gl.export(model, (tokens,), dynamic_shapes=dims if spec else None, reuse_blocks=False)
    assert sum(cache.hits for cache in counted_hits) > 10


def zoo_printout(case: object, dynamic: bool = True, reuse_blocks: bool = True) -> str:
    model = case.make_model()  # type: ignore[attr-defined]
    args, kwargs = case.make_inputs()  # type: ignore[attr-defined]
    spec = case.dynamic_shapes(gl.Dim) if dynamic else None  # type: ignore[attr-defined]
    ep = gl.export(model, args, kwargs, dynamic_shapes=spec, reuse_blocks=reuse_blocks)
    return "\n".join([printout(ep), *node_metadata(ep)])


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "static"])
@pytest.mark.parametrize("case", ZOO_CASES, ids=lambda case: case.name)
def test_zoo_programs_equal_with_and_without_reuse(case: object, dynamic: bool) -> None:
    try:
        flat, reused = both_ways(lambda: zoo_printout(case, dynamic))
    except gl.GraphliftError as error:  # a case export refuses is refused both ways
        with metadata_reuse(True), pytest.raises(type(error)):
            zoo_printout(case, dynamic)
        return
    assert reused == flat


def test_bert_reuses_and_prints_the_same(counted_hits: list) -> None:
    (case,) = [c for c in ZOO_CASES if c.name == "bert"]
    flat, reused = both_ways(lambda: zoo_printout(case, reuse_blocks=False))  # every layer traced
    assert reused == flat
    assert sum(cache.hits for cache in counted_hits) > 20


# --- calls that look alike and are not ----------------------------------------------------


class ScalarTypes(nn.Module):
    """``x + 1``, ``x + 1.0`` and ``x + True`` on an int tensor: int64, float32, int64."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return x + 1, x + 1.0, x * True, x + 2


class DefaultDtype(nn.Module):
    """``torch.ones`` under two default dtypes, with the same arguments."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.ones(x.shape[0])
        saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            second = torch.ones(x.shape[0])
        finally:
            torch.set_default_dtype(saved)
        return first, second


class Views(nn.Module):
    """The same view op on a contiguous tensor and on a transposed one (other
    strides), and a result that is a view of its input: an update through the
    second view must reach its own base only."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = x.clone()
        b = x.clone()
        va = a[:, 0]
        vb = b[:, 0]
        vb.add_(1)
        t = x.t().contiguous().t()
        return a, b, va, vb, t[:, 0], x.reshape(-1), t.reshape(-1)


@pytest.mark.parametrize(
    "model, x",
    [
        (ScalarTypes(), torch.arange(12).reshape(4, 3)),
        (Views(), torch.randn(4, 3)),
    ],
    ids=["scalar_types", "views"],
)
def test_lookalike_calls_stay_apart(model: nn.Module, x: torch.Tensor) -> None:
    dims = ({0: gl.Dim("n", min=2, max=64)},)
    flat, reused = both_ways(lambda: gl.export(model, (x,), dynamic_shapes=dims))
    assert str(reused) == str(flat)
    assert node_metadata(reused) == node_metadata(flat)
    for size in (4, 7):
        probe = torch.randn(size, x.shape[1]) if x.is_floating_point() else x[:1].repeat(size, 1)
        expected = model(probe)
        actual = reused.module()(probe)
        for e, a in zip(expected, actual):
            assert a.dtype == e.dtype and a.shape == e.shape
            torch.testing.assert_close(a, e)


def test_the_default_dtype_is_part_of_the_key() -> None:
    """The recorded metadata follows the default dtype of each call. (The graph
    itself does not pin the dtype a factory call without ``dtype=`` resolved to;
    that is export's behaviour with and without reuse, and torch.export's.)"""
    dims = ({0: gl.Dim("n", min=2, max=64)},)
    with metadata_reuse(True):
        ep = gl.export(DefaultDtype(), (torch.randn(5, 3),), dynamic_shapes=dims)
    (output,) = [node for node in ep.graph.nodes if node.op == "output"]
    dtypes = [value.meta["val"].dtype for value in output.args[0]]
    assert dtypes == [torch.float32, torch.float64]


def test_a_call_that_guarded_is_not_stored_but_the_next_is(counted_hits: list) -> None:
    class Repeated(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            for _ in range(4):
                x = x + y  # the first broadcast asks how n relates to m
            return x

    dims = ({0: gl.Dim("n", min=2, max=64)}, {0: gl.Dim.AUTO})
    with metadata_reuse(True):
        ep = gl.export(Repeated(), (torch.randn(5, 3), torch.randn(5, 3)), dynamic_shapes=dims)
    with metadata_reuse(False):
        flat = gl.export(Repeated(), (torch.randn(5, 3), torch.randn(5, 3)), dynamic_shapes=dims)
    assert str(ep) == str(flat)
    (cache,) = counted_hits[:1]
    assert cache.hits >= 2


def test_static_metadata_is_shared_by_later_exports(
    counted_hits: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With concrete sizes the key is all a kernel reads, so a second export of a
    model reuses the first's entries from its first op on, and prints the same as
    an export that reuses nothing."""
    monkeypatch.setattr(metadata_cache, "_static_entries", {})  # not the earlier tests'
    model, (tokens,) = make_example()
    with metadata_reuse(True):
        gl.export(model, (tokens,), reuse_blocks=False)
        first = counted_hits[-1].hits
        again = gl.export(model, (tokens,), reuse_blocks=False)
    second = counted_hits[-1]
    assert second.shape_env is None and second.hits > first
    assert not metadata_cache.MetadataCache(None).hits  # a new export counts its own hits
    with metadata_reuse(False):
        flat = gl.export(model, (tokens,), reuse_blocks=False)
    assert printout(again) == printout(flat)
    assert node_metadata(again) == node_metadata(flat)


def test_static_entries_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata_cache, "STATIC_ENTRIES_LIMIT", 3)
    monkeypatch.setattr(metadata_cache, "_static_entries", {})  # not the earlier tests'
    model, (tokens,) = make_example()
    with metadata_reuse(True):
        ep = gl.export(model, (tokens,), reuse_blocks=False)
    assert len(metadata_cache.MetadataCache(None).entries) <= 3
    with metadata_reuse(False):
        assert printout(gl.export(model, (tokens,), reuse_blocks=False)) == printout(ep)


@torch.library.custom_op("graphlift_test::repeat_rows", mutates_args=())
def repeat_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x])


@repeat_rows.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return x.new_empty(x.shape[0] * 2, *x.shape[1:])


class RepeatRows(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return repeat_rows(x)


def test_a_new_fake_kernel_is_seen_by_the_next_static_export() -> None:
    """Static entries outlive an export; a user's op may get a new fake kernel
    between two exports (a notebook cell run again) under the same op object, and
    the next export must ask the new one, not reuse the old answer."""
    x = torch.randn(3, 2)

    def result_shape() -> torch.Size:
        ep = gl.export(RepeatRows(), (x,))
        (call,) = [n for n in ep.graph.nodes if n.op == "call_function"]
        return call.meta["val"].shape

    def rows_times(k: int) -> None:
        repeat_rows.register_fake(lambda t: t.new_empty(t.shape[0] * k, *t.shape[1:]))

    with metadata_reuse(True):
        rows_times(2)
        assert result_shape() == (6, 2)
        try:
            rows_times(3)
            assert result_shape() == (9, 2)
        finally:
            rows_times(2)
