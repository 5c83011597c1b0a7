"""Sizes 0 and 1 in decompositions decided without data (issue 18).

A decomposition's 0/1 question is first decided structurally
(``decompose/zero_one_structure.py``): the decomposition recorded again on
concrete sizes must record what the symbolic recording reads at those sizes.
Only where the two differ does the numeric check run the op on data. These
tests pin both halves: a size-1 branch that really differs — wrong values, or a
different scalar — is still guarded (named Dim refused, ``Dim.AUTO`` narrowed
and announced, the core program refusing the size), one that differs in its ops
but not in its values still keeps the size (numeric fallback), and one that
records the same ops never touches data (a meta-device config with a
vocabulary-sized weight decomposes without the numeric check).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.experimental.symbolic_shapes import guard_or_false

import graphlift as gl
from graphlift.decompose import zero_one, zero_one_structure
from graphlift.errors import ConstraintViolationError, InputMismatchError, NarrowingWarning
from graphlift.examples.tiny_gpt import make_example
from tests.export.test_decompose_small_sizes import IsIn, isin_args

aten = torch.ops.aten


class Relu(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + 1


Branch = Callable[[torch.Tensor], torch.Tensor]


def relu(x: torch.Tensor) -> torch.Tensor:
    return aten.clamp_min.default(x, 0.0)


def batch_one_branch(at_one: Branch, otherwise: Branch = relu) -> Callable[..., Any]:
    """A decomposition of ``relu`` that asks "is the batch 1?" the way torch's
    decompositions do (``guard_or_false``): ``at_one(x)`` there, else ``otherwise(x)``.
    The program records ``otherwise`` (the question is assumed away); the
    0/1 check decides whether that is right at batch 1."""

    def decomposition(x: torch.Tensor) -> torch.Tensor:
        if guard_or_false(x.shape[0] == 1):
            return at_one(x)
        return otherwise(x)

    return decomposition


def relu_plus_zero_variance(x: torch.Tensor) -> torch.Tensor:
    """relu for a batch of 2 or more; NaN at a batch of 1 (unbiased variance of one row)."""
    variance = aten.var.correction(x, [0], correction=1, keepdim=True)
    return aten.add.Tensor(relu(x), aten.mul.Tensor(variance, 0.0))


#: The branch the program records is wrong at batch 1: it must be guarded.
WRONG_AT_ONE = batch_one_branch(relu, otherwise=relu_plus_zero_variance)
#: The program's branch is right at batch 1, but the recordings differ there.
OTHER_SCALAR = batch_one_branch(lambda x: aten.mul.Tensor(relu(x), 2.0),
                                otherwise=lambda x: aten.mul.Tensor(relu(x), 1.0))  # fmt: skip
OTHER_OPS_SAME_VALUES = batch_one_branch(
    lambda x: aten.where.self(aten.gt.Scalar(x, 0.0), x, aten.zeros_like.default(x))
)
#: Both branches record the same: decided without data.
SAME_OPS = batch_one_branch(relu)


def table_with(decomposition: Callable[..., Any]) -> dict[Any, Callable[..., Any]]:
    table = gl.default_decompositions()
    table[aten.relu.default] = decomposition
    return table


def export_relu(dim: Any) -> gl.ExportedProgram:
    return gl.export(Relu(), (torch.randn(4, 3),), dynamic_shapes=({0: dim},))


@pytest.fixture
def numeric_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The ops the numeric (data) check ran for, in order."""
    calls: list[str] = []
    real = zero_one._agrees

    def spy(env: Any, op: Any, *args: Any) -> bool:
        calls.append(str(op))
        return real(env, op, *args)

    monkeypatch.setattr(zero_one, "_agrees", spy)
    yield calls


def test_a_recorded_branch_wrong_at_batch_one_refuses_a_named_dim(
    numeric_checks: list[str],
) -> None:
    ep = export_relu(gl.Dim("batch", min=1, max=64))
    with pytest.raises(ConstraintViolationError, match="relu"):
        ep.run_decompositions(table_with(WRONG_AT_ONE))
    assert "aten.relu.default" in numeric_checks  # the structures differed: data decided


def test_a_recorded_branch_wrong_at_batch_one_narrows_an_auto_dim() -> None:
    ep = export_relu(gl.Dim.AUTO)
    with pytest.warns(NarrowingWarning, match="relu"):
        core = ep.run_decompositions(table_with(WRONG_AT_ONE))
    one = torch.randn(1, 3)
    torch.testing.assert_close(ep.module()(one), Relu()(one))  # the source still runs it
    with pytest.raises(InputMismatchError):
        core.module()(one)
    for batch in (2, 3):
        x = torch.randn(batch, 3)
        torch.testing.assert_close(core.module()(x), Relu()(x))


@pytest.mark.parametrize("branch", [OTHER_OPS_SAME_VALUES, OTHER_SCALAR], ids=["ops", "scalar"])
def test_another_recording_with_the_same_values_keeps_batch_one(
    branch: Callable[..., Any], numeric_checks: list[str]
) -> None:
    """The recordings differ at batch 1 (``where`` against ``clamp_min``, or a
    factor 2.0 against 1.0): the numbers decide, and the program's branch is
    right there, so batch 1 is kept."""
    ep = export_relu(gl.Dim("batch", min=1, max=64))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NarrowingWarning)
        core = ep.run_decompositions(table_with(branch))
    assert numeric_checks == ["aten.relu.default"]
    for batch in (1, 2, 3):
        x = torch.randn(batch, 3)
        torch.testing.assert_close(core.module()(x), Relu()(x))


def test_the_same_ops_at_size_one_need_no_data(numeric_checks: list[str]) -> None:
    ep = export_relu(gl.Dim("batch", min=1, max=64))
    core = ep.run_decompositions(table_with(SAME_OPS))
    assert numeric_checks == []
    assert "aten.clamp" in str(core.graph)
    for batch in (1, 2, 3):
        x = torch.randn(batch, 3)
        torch.testing.assert_close(core.module()(x), Relu()(x))


class Head(nn.Module):
    """A language-model head on the meta device: a vocabulary-sized weight
    (2 GB as float32 data) that no 0/1 check may materialize."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4096, 4096)
        self.head = nn.Linear(4096, 128256, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.proj(x)))


def test_a_meta_device_head_decomposes_at_batch_one_without_data(
    numeric_checks: list[str],
) -> None:
    with torch.device("meta"):
        model = Head()
    x = torch.zeros(4, 7, 4096, device="meta")
    spec = ({0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=512)},)
    ep = gl.export(model, (x,), dynamic_shapes=spec)
    core = ep.run_decompositions()
    assert numeric_checks == []  # linear's matmul asked about batch 1: decided structurally
    assert [(r.lower, r.upper) for r in core.range_constraints.values()] == [(1, 64), (2, 512)]
    out = core.module()(torch.zeros(1, 3, 4096, device="meta"))
    assert out.shape == (1, 3, 128256)


def test_a_batch_broadcast_in_matmul_is_still_checked_on_numbers(
    numeric_checks: list[str],
) -> None:
    """``matmul`` broadcasting a batch of 1 against a batch of b takes another path at
    b == 1 (``guard_or_false``): the structures differ and the numbers decide."""

    class BatchedMatmul(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.matmul(x, y)

    model = BatchedMatmul()
    args = (torch.randn(3, 1, 4, 5), torch.randn(3, 6, 5, 2))
    batch = gl.Dim("b", min=1, max=16)
    spec = ({0: batch}, {0: batch, 1: gl.Dim("h", min=1, max=16)})
    ep = gl.export(model, args, dynamic_shapes=spec)
    core = ep.run_decompositions()
    assert numeric_checks  # some size-1 branch of matmul's decomposition is real
    for b, h in ((1, 1), (1, 6), (2, 1), (3, 4)):
        new = (torch.randn(b, 1, 4, 5), torch.randn(b, h, 5, 2))
        torch.testing.assert_close(core.module()(*new), model(*new))


@pytest.mark.parametrize(
    ("symbolic", "concrete", "same"),
    [(1, 1, True), (1, True, False), (1, 1.0, False), (float("nan"), float("nan"), True),
     (0.5, 0.25, False), (torch.float32, torch.float32, True), ("mean", "sum", False)],
)  # fmt: skip
def test_plain_arguments_match_by_kind_and_value(symbolic: Any, concrete: Any, same: bool) -> None:
    if same:
        zero_one_structure._same_scalar(symbolic, concrete)
    else:
        with pytest.raises(zero_one_structure._Differs):
            zero_one_structure._same_scalar(symbolic, concrete)


@pytest.mark.slow
def test_a_llama_with_batch_min_one_decomposes_and_equals_eager(numeric_checks: list[str]) -> None:
    """Real (random) weights, batch min 1 as the 70B benchmark exports it: the
    decomposed program equals eager at batch 1, 2 and 3, and no ``linear`` needed
    data to keep batch 1 (only attention's math path differs there)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, use_cache=False,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 256, (4, 9))
    spec = {"input_ids": {0: gl.Dim("batch", min=1, max=8), 1: gl.Dim("seq", min=2, max=64)}}
    ep = gl.export(model, (), {"input_ids": ids}, dynamic_shapes=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NarrowingWarning)
        core = ep.run_decompositions()
    assert [(r.lower, r.upper) for r in core.range_constraints.values()] == [(1, 8), (2, 64)]
    assert "aten.linear.default" not in numeric_checks
    for batch, seq in ((1, 5), (2, 2), (3, 7)):
        x = torch.randint(0, 256, (batch, seq))
        expected = model(input_ids=x).logits
        torch.testing.assert_close(core.module()(input_ids=x).logits, expected)


def test_a_size_the_real_kernel_refuses_is_left_to_the_numbers(numeric_checks: list[str]) -> None:
    """``upsample_bicubic2d`` of height 0: its meta kernel and its decomposition accept
    it, the CPU kernel refuses it. The structural check runs the real kernel on an
    empty input (no data read), sees the refusal and leaves the size to the numeric
    check; the decomposed program then refuses height 0 with a typed error, as the
    source program's kernel does, instead of computing where eager raises."""

    class Bicubic(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=(4, 4), mode="bicubic")

    model = Bicubic()
    spec = ({2: gl.Dim("h", min=0, max=32)},)
    ep = gl.export(model, (torch.randn(2, 3, 5, 6),), dynamic_shapes=spec)
    core = ep.run_decompositions()
    assert "aten.upsample_bicubic2d.vec" in numeric_checks
    empty = torch.randn(2, 3, 0, 6)
    with pytest.raises(RuntimeError):
        model(empty)
    with pytest.raises(InputMismatchError):
        core.module()(empty)
    for height in (1, 2, 7):
        x = torch.randn(2, 3, height, 6)
        torch.testing.assert_close(core.module()(x), model(x))


# --- the structural check against the numeric one, side by side ---------------------------------


class Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.norm(self.conv(x)), scale_factor=2.0, mode="bilinear")


class Attention(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        q = x.view(x.shape[0], x.shape[1], 2, 4).transpose(1, 2)
        kv = y.view(y.shape[0], y.shape[1], 2, 4).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, kv, kv)
        return torch.matmul(out, kv.transpose(-1, -2)).flatten(1).softmax(-1)


def conv_program() -> gl.ExportedProgram:
    spec = ({0: gl.Dim.AUTO, 2: gl.Dim.AUTO, 3: gl.Dim.AUTO},)
    return gl.export(Conv().eval(), (torch.randn(2, 3, 5, 6),), dynamic_shapes=spec)


def attention_program() -> gl.ExportedProgram:
    spec = ({0: gl.Dim.AUTO, 1: gl.Dim.AUTO}, {0: gl.Dim.AUTO, 1: gl.Dim.AUTO})
    args = (torch.randn(2, 3, 8), torch.randn(2, 5, 8))
    return gl.export(Attention(), args, dynamic_shapes=spec)


def tiny_gpt_program() -> gl.ExportedProgram:
    model, tokens = make_example()
    spec = ({0: gl.Dim("batch", min=0, max=8), 1: gl.Dim("seq", min=1, max=16)},)
    return gl.export(model, tokens, dynamic_shapes=spec)


def isin_program() -> gl.ExportedProgram:
    return gl.export(IsIn(), isin_args(), dynamic_shapes=({0: gl.Dim.AUTO}, {0: gl.Dim.AUTO}))


#: Programs and tables whose decompositions ask 0/1 questions, some of them
#: answered "no" by the numbers (isin's algorithm, a branch wrong at batch 1).
SIDE_BY_SIDE: list[tuple[Callable[[], gl.ExportedProgram], Any]] = [
    (conv_program, None),
    (attention_program, None),
    (tiny_gpt_program, None),
    (isin_program, None),
    (lambda: export_relu(gl.Dim.AUTO), table_with(WRONG_AT_ONE)),
    (lambda: export_relu(gl.Dim.AUTO), table_with(OTHER_SCALAR)),
]


@pytest.mark.slow
def test_the_structural_check_admits_no_size_the_numeric_check_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On every 0/1 question these decompositions ask, both checks run: a size the
    structural check admits must be one the numbers agree with (the converse need
    not hold: the numbers also accept ops that differ in form)."""
    verdicts: list[tuple[str, dict[str, Any], bool, bool]] = []
    structural = zero_one.same_as_concrete

    def both(env: Any, op: Any, args: Any, kwargs: Any, result: Any, recorded: Any,
             constants: Any, at: Any, rerun: Any) -> bool:  # fmt: skip
        admitted = structural(env, op, args, kwargs, result, recorded, constants, at, rerun)
        numeric = zero_one._agrees(env, op, args, kwargs, result, recorded, constants, at)
        verdicts.append((str(op), dict(at), admitted, numeric))
        return admitted or numeric

    monkeypatch.setattr(zero_one, "same_as_concrete", both)
    for make, table in SIDE_BY_SIDE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NarrowingWarning)
            make().run_decompositions(table)
    # not vacuous: both checks admit some sizes, and the numbers refuse some
    assert any(admitted for _, _, admitted, _ in verdicts)
    assert any(not numeric for _, _, _, numeric in verdicts)
    assert [v for v in verdicts if v[2] and not v[3]] == []
