"""sticky_export: export on the first call, run the program afterwards; policies
for refused calls; overloads. torch.export.experimental._sticky_export and eager
are the oracles."""

from __future__ import annotations

import pytest
import torch
from torch.export.experimental import _ExportPackage
from torch.export.experimental import _sticky_export as torch_sticky_export

import graphlift as gl
from graphlift.errors import ExportError
from graphlift.experimental import StickyExportError, _sticky_export, sticky_export


class Counter(torch.nn.Module):
    """Keyword-only and nested inputs, a dict output, a buffer updated in place."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x, *, extra=None, factors=()):
        self.calls += 1
        y = self.linear(x)
        if extra is not None:
            y = y + extra["bias"]
        for factor in factors:
            y = y * factor
        return {"y": y, "calls": self.calls.clone()}


def copies(count: int) -> list[Counter]:
    torch.manual_seed(0)
    first = Counter()
    models = [first]
    for _ in range(count - 1):
        model = Counter()
        model.load_state_dict(first.state_dict())
        models.append(model)
    return models


def inputs(rows: int = 2):
    return (torch.randn(rows, 3),), {
        "extra": {"bias": torch.randn(3)}, "factors": (torch.randn(3), torch.randn(rows, 3))
    }  # fmt: skip


def assert_same(got, expected) -> None:
    assert got.keys() == expected.keys()
    for key in got:
        torch.testing.assert_close(got[key], expected[key])


def test_first_call_exports_and_later_calls_run_the_program() -> None:
    ours, theirs, eager = copies(3)
    parameters = dict(ours.named_parameters())
    ours.forward = sticky_export(ours.forward)
    theirs.forward = torch_sticky_export(theirs.forward)
    for _ in range(3):
        args, kwargs = inputs()
        expected = eager(*args, **kwargs)
        assert_same(ours(*args, **kwargs), expected)
        assert_same(theirs(*args, **kwargs), expected)
    assert len(ours.forward.method.fallbacks) == 1  # exported once
    assert ours.calls.item() == eager.calls.item() == 3  # the model's own buffer, as eager
    assert dict(ours.named_parameters()) == parameters  # same objects: state untouched
    assert isinstance(ours.forward._exported_artifact, torch.nn.Module)
    assert _sticky_export is sticky_export


def test_once_refuses_another_shape_with_the_fix() -> None:
    (model,) = copies(1)
    model.forward = sticky_export(model.forward)
    model(*inputs(2)[0], **inputs(2)[1])
    args, kwargs = inputs(5)
    with pytest.raises(StickyExportError, match="expected shape") as info:
        model(*args, **kwargs)
    assert isinstance(info.value, AssertionError) and "policy='reexport'" in str(info.value)


def test_reexport_keeps_every_program() -> None:
    ours, eager = copies(2)
    ours.forward = sticky_export(ours.forward, policy="reexport")
    for rows in (2, 5, 2, 5):
        args, kwargs = inputs(rows)
        assert_same(ours(*args, **kwargs), eager(*args, **kwargs))
    assert len(ours.forward.method.fallbacks) == 2


def test_dynamic_shapes_callback_gives_one_program_for_all_batches() -> None:
    ours, eager = copies(2)

    def auto(x, *, extra, factors):
        rows = gl.Dim("rows")
        return {"x": {0: rows}, "extra": None, "factors": (None, {0: rows})}

    ours.forward = sticky_export(ours.forward, dynamic_shapes_callback=auto)
    for rows in (3, 1, 7):
        args, kwargs = inputs(rows)
        assert_same(ours(*args, **kwargs), eager(*args, **kwargs))
    assert len(ours.forward.method.fallbacks) == 1


def test_overloads_are_chosen_by_their_predicates() -> None:
    ours, eager = copies(2)

    def small(x, **_):
        assert 1 <= x.shape[0] <= 2
        return None

    def large(x, **_):
        assert x.shape[0] > 2
        return {"x": {0: gl.Dim("rows", min=3)}, "extra": None, "factors": (None, {0: gl.Dim("rows", min=3)})}  # fmt: skip

    ours.forward = (
        sticky_export(ours.forward, policy="error")
        .define_overload("small", small)
        .define_overload("large", large)
    )
    for rows in (2, 4, 9):
        args, kwargs = inputs(rows)
        assert_same(ours(*args, **kwargs), eager(*args, **kwargs))
    assert sorted(ours.forward.method.overloads) == ["large", "small"]
    assert not ours.forward.method.fallbacks
    with pytest.raises(StickyExportError, match="policy is 'error'"):
        ours(*inputs(0)[0], **inputs(0)[1])  # no overload takes 0 rows


def test_arguments_are_checked() -> None:
    with pytest.raises(ExportError, match="bound forward"):
        sticky_export(lambda x: x)
    (model,) = copies(1)
    with pytest.raises(ExportError, match="policy must be one of"):
        sticky_export(model.forward, policy="sometimes")
    wrapper = sticky_export(model.forward).define_overload("a", lambda *a, **k: None)
    with pytest.raises(ExportError, match="new Python identifier"):
        wrapper.define_overload("a", lambda *a, **k: None)


def test_a_failed_export_leaves_the_model_as_it_was() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x.view(-1, 7)  # 2x3 cannot be viewed so

    model = Broken()
    model.forward = sticky_export(model.forward)
    installed = model.forward
    with pytest.raises(ExportError):
        model(torch.randn(2, 3))
    assert model.__dict__["forward"] is installed


def test_overloads_choose_like_torchs_export_package() -> None:
    """torch.export.experimental._ExportPackage's exporter as the oracle: the same
    predicates pick the same overloads, and the programs compute the same."""

    class Scale(torch.nn.Module):
        def forward(self, x):
            return x * x.shape[0]

    def short(x):
        assert x.shape[0] < 4
        return None

    def long(x):
        assert x.shape[0] >= 4
        return None

    package = _ExportPackage()
    model = Scale()
    theirs = package._exporter("scale", lambda x: model(x), fallback="once")
    theirs._define_overload("short", short)._define_overload("long", long)
    ours_model = Scale()
    ours_model.forward = sticky_export(ours_model.forward)
    ours_model.forward.define_overload("short", short).define_overload("long", long)
    for rows in (2, 5):
        x = torch.randn(rows, 2)
        torch.testing.assert_close(ours_model(x), theirs(x))
    assert sorted(ours_model.forward.method.overloads) == sorted(package.methods["scale"].overloads)
