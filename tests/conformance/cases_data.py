"""Data-dependent values, control flow, custom ops, draft export and the API surface.

Rewritten from ``test/export/test_export.py`` (``test_unbacked_*``,
``test_nonzero_dynamic``, ``test_masked_select_dynamic``, ``test_item_*``,
``test_cond_*``, ``test_map_*``, ``test_while_loop_*``, ``test_custom_op_*``,
``test_export_api_*``, ``test_ep_attributes``), ``test/export/test_draft_export.py``
and the data-dependent section of ``docs/source/export/programming_model.md``.
"""

from __future__ import annotations

import math

import torch
from torch._higher_order_ops.map import map as hop_map
from torch._higher_order_ops.scan import scan
from torch._higher_order_ops.while_loop import while_loop
from torch.export import Dim

from tests.conformance.builders import case, randn, ranges
from tests.conformance.harness import Run

T = "test/export/test_export.py"
DR = "test/export/test_draft_export.py"
PM = "docs/source/export/programming_model.md"


@torch.library.custom_op("conformance::scale", mutates_args=())
def scale_op(x: torch.Tensor, factor: float) -> torch.Tensor:
    return x * factor


@scale_op.register_fake
def _(x, factor):
    return torch.empty_like(x)


@torch.library.custom_op("conformance::split_pair", mutates_args=())
def split_pair(x: torch.Tensor) -> list[torch.Tensor]:
    return [x + 1, x - 1]


@split_pair.register_fake
def _(x):
    return [torch.empty_like(x), torch.empty_like(x)]


@torch.library.custom_op("conformance::positives", mutates_args=())
def positives(x: torch.Tensor) -> torch.Tensor:
    return x[x > 0]


@positives.register_fake
def _(x):
    n = torch.library.get_ctx().new_dynamic_size()
    return x.new_empty(n)


@torch.library.custom_op("conformance::add_into", mutates_args={"out"})
def add_into(x: torch.Tensor, out: torch.Tensor) -> None:
    out.add_(x)


@add_into.register_fake
def _(x, out):
    return None


@torch.library.custom_op("conformance::no_fake", mutates_args=())
def no_fake(x: torch.Tensor) -> torch.Tensor:
    return x.sin() + 1


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Fn2(Fn):
    def forward(self, x, y):
        return self.fn(x, y)


def m1(fn):
    return lambda: Fn(fn)


def m2(fn):
    return lambda: Fn2(fn)


def ints(*values):
    return lambda: (torch.tensor(values),)


# --- data-dependent ---------------------------------------------------------------


def item_zeros(x):
    return torch.zeros(x.item())


def item_checked(x):
    n = x.item()
    torch._check(n >= 0)
    torch._check(n <= 10)
    return torch.ones(n) * 2


def item_min_const(x):
    n = x.item()
    return torch.arange(min(n, 4))


def item_scalar_out(x):
    return x.sum().item()


def item_float_math(x):
    v = x.max().item()
    return x * math.sqrt(abs(v) + 1) + v


def tensor_from_items(x):
    a, b = x.tolist()
    return torch.tensor([a * 2, b + 1])


def constant_item(x):
    return x * torch.tensor(3).item()


def topk_style(x, k):
    n = k.item()
    torch._check(n >= 0)
    torch._check(n <= x.shape[0])
    return x[:n] * 2


def assert_on_item(x):
    n = x.sum().item()
    assert n >= 0
    return torch.zeros(n)


def branch_on_item(x):
    if x.sum().item() > 0:
        return x + 1
    return x - 1


def bincount_unbacked(xs):
    u0, u1 = xs.tolist()
    return torch.bincount(torch.ones(u0, dtype=torch.int64), minlength=u1)


def data_dependent_cases() -> list:
    r = ranges
    return [
        case(
            "item-zeros",
            m1(item_zeros),
            ints(3),
            source=f"{T}::test_unbacked_item",
            runs=lambda: (Run((torch.tensor([5]),)), Run((torch.tensor([-1]),))),
        ),
        case(
            "item-checked",
            m1(item_checked),
            ints(3),
            source=f"{T}::test_torch_check_item",
            runs=lambda: (Run((torch.tensor([5]),)), Run((torch.tensor([11]),))),
            observe=r,
        ),
        case(
            "item-min-const",
            m1(item_min_const),
            ints(3),
            source=f"{T}::test_unbacked_min",
            runs=lambda: (Run((torch.tensor([9]),)),),  # the example's rank; n > 4 takes the min
        ),
        case(
            "item-scalar-output",
            m1(item_scalar_out),
            lambda: (torch.tensor([1, 2, 3]),),
            source=f"{T}::test_item_output",
            runs=lambda: (Run((torch.tensor([4, 5, 6]),)),),
        ),
        case(
            "item-float-math",
            m1(item_float_math),
            lambda: (randn(4),),
            source=f"{T}::test_float_item_math",
            runs=lambda: (Run((randn(4),)),),
        ),
        case(
            "tensor-from-items",
            m1(tensor_from_items),
            ints(3, 4),
            source=f"{T}::test_tensor_from_items",
            runs=lambda: (Run((torch.tensor([7, 1]),)),),
        ),
        case(
            "constant-tensor-item",
            m1(constant_item),
            lambda: (randn(3),),
            source=f"{T}::test_constant_item",
        ),
        case(
            "topk-style-slice",
            m2(topk_style),
            lambda: (randn(6, 2), torch.tensor(3)),
            source=f"{T}::test_unbacked_slice",
            runs=lambda: (Run((randn(6, 2), torch.tensor(5))),),
        ),
        case(
            "assert-on-item",
            m1(assert_on_item),
            lambda: (torch.tensor([1, 2]),),
            source=f"{PM} (assert becomes a runtime assert)",
            runs=lambda: (Run((torch.tensor([3, 4]),)), Run((torch.tensor([-5, 1]),))),
        ),
        case(
            "branch-on-item",
            m1(branch_on_item),
            lambda: (randn(3),),
            source=f"{PM} (data-dependent branch)",
        ),
        case(
            "nonzero",
            m1(torch.nonzero),
            lambda: (randn(3, 4),),
            source=f"{T}::test_nonzero_dynamic",
            observe=r,
            runs=lambda: (Run((randn(3, 4),)),),
        ),
        case(
            "nonzero-dynamic-bounds",
            m1(torch.nonzero),
            lambda: (randn(3, 4, 5),),
            spec=lambda: {"x": (Dim("a", max=100), Dim("b", max=7), None)},
            observe=r,
            source=f"{T}::test_nonzero_dynamic",
            runs=lambda: (Run((randn(6, 2, 5),)),),
        ),
        case(
            "masked-select-bounds",
            m1(lambda x: torch.masked_select(x, x.ge(0.5))),
            lambda: (randn(3, 4, 5),),
            spec=lambda: {"x": (Dim("a", max=100), Dim("b", max=7), None)},
            observe=r,
            source=f"{T}::test_masked_select_dynamic",
            runs=lambda: (Run((randn(6, 2, 5),)),),
        ),
        case(
            "boolean-mask-index",
            m1(lambda x: x[x > 0] * 2),
            lambda: (randn(8),),
            source=f"{T}::test_mask_index",
            runs=lambda: (Run((randn(8),)),),
        ),
        case(
            "unique",
            m1(lambda x: torch.unique(x)),
            lambda: (torch.tensor([3, 1, 3, 2]),),
            source=f"{T}::test_unique",
            runs=lambda: (Run((torch.tensor([5, 5, 5, 1]),)),),
        ),
        case(
            "bincount-weights-const",
            m1(lambda x: x.bincount(torch.linspace(0, 1, steps=5))),
            lambda: (torch.randint(0, 8, (5,)),),
            source=f"{T}::test_bincount",
            runs=lambda: (Run((torch.randint(0, 8, (5,)),)),),
        ),
        case(
            "bincount-unbacked",
            m1(bincount_unbacked),
            ints(20, 10),
            source=f"{T}::test_unbacked_bincount",
            runs=lambda: (Run((torch.tensor([5, 10]),)),),
        ),
        case(
            "repeat-interleave",
            m1(lambda x: torch.repeat_interleave(x)),
            ints(1, 2, 3),
            source=f"{T}::test_repeat_interleave",
            runs=lambda: (Run((torch.tensor([2, 0, 1]),)),),
        ),
    ]


# --- control flow -----------------------------------------------------------------


class CondBasic(torch.nn.Module):
    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: t.sin(), lambda t: t.cos(), (x,))


class CondShape(torch.nn.Module):
    def forward(self, x):
        return torch.cond(x.shape[0] > 4, lambda t: t + 1, lambda t: t - 1, (x,))


class CondWithParam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3))

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda t: t * self.w, lambda t: t + self.w, (x,))


class CondItem(torch.nn.Module):
    def forward(self, x, n):
        def true_fn(t, n):
            return t * n.item()

        def false_fn(t, n):
            return t.clone()

        return torch.cond(x.sum() > 0, true_fn, false_fn, (x, n))


class CondNested(torch.nn.Module):
    def forward(self, x):
        def inner_true(t):
            return torch.cond(t.mean() > 0, lambda u: u * 2, lambda u: u * 3, (t,))

        return torch.cond(x.sum() > 0, inner_true, lambda t: t - 1, (x,))


class CondTuple(torch.nn.Module):
    def forward(self, x, y):
        return torch.cond(
            x.sum() > y.sum(), lambda a, b: (a + b, a - b), lambda a, b: (a * b, a / 2), (x, y)
        )


class MapBody(torch.nn.Module):
    def forward(self, xs, y):
        return hop_map(lambda x, y: x * y + 1, xs, y)


class WhileLoop(torch.nn.Module):
    def forward(self, i, x):
        return while_loop(lambda i, x: i < 3, lambda i, x: (i + 1, x * 2), (i, x))


class ScanCumsum(torch.nn.Module):
    def forward(self, xs):
        def step(carry, x):
            new = carry + x
            return new, new.clone()

        return scan(step, torch.zeros_like(xs[0]), xs)


def control_flow_cases() -> list:
    C = f"{T}::test_cond"
    return [
        case(
            "cond-basic",
            CondBasic,
            lambda: (randn(4, 3),),
            source=f"{C}_basic",
            runs=lambda: (Run((randn(4, 3) + 5,)), Run((randn(4, 3) - 5,))),
        ),
        case(
            "cond-basic-dynamic",
            CondBasic,
            lambda: (randn(4, 3),),
            spec=lambda: {"x": {0: Dim("b")}},
            source=f"{C}_dynamic",
            runs=lambda: (Run((randn(7, 3) - 5,)),),
        ),
        case(
            "cond-on-shape-dynamic",
            CondShape,
            lambda: (randn(6, 3),),
            spec=lambda: {"x": {0: Dim("b")}},
            source=f"{C}_symint_pred",
            runs=lambda: (Run((randn(3, 3),)), Run((randn(9, 3),))),
        ),
        case(
            "cond-on-shape-static",
            CondShape,
            lambda: (randn(6, 3),),
            source=f"{C}_static_pred",
            runs=lambda: (Run((randn(6, 3),)),),
        ),
        case(
            "cond-closure-param",
            CondWithParam,
            lambda: (randn(3),),
            source=f"{C}_closure",
            runs=lambda: (Run((randn(3) - 5,)),),
        ),
        case(
            "cond-branch-item",
            CondItem,
            lambda: (randn(3), torch.tensor(2.0)),
            source=f"{C}_item",
            runs=lambda: (Run((randn(3) + 4, torch.tensor(3.0))),),
        ),
        case(
            "cond-nested",
            CondNested,
            lambda: (randn(3),),
            source=f"{C}_nested",
            runs=lambda: (Run((randn(3) + 5,)), Run((randn(3) - 5,))),
        ),
        case(
            "cond-tuple-output",
            CondTuple,
            lambda: (randn(3), randn(3)),
            source=f"{C}_tuple_output",
            runs=lambda: (Run((randn(3) + 5, randn(3))),),
        ),
        case(
            "cond-decompose",
            CondBasic,
            lambda: (randn(4, 3),),
            mode="decompose",
            source=f"{C}_decompose",
            runs=lambda: (Run((randn(4, 3) - 5,)),),
        ),
        case(
            "cond-roundtrip",
            CondBasic,
            lambda: (randn(4, 3),),
            mode="roundtrip",
            source="test/export/test_serialize.py::test_cond",
            runs=lambda: (Run((randn(4, 3) - 5,)),),
        ),
        case(
            "map-body",
            MapBody,
            lambda: (randn(4, 3), randn(3)),
            source=f"{T}::test_map",
            runs=lambda: (Run((randn(4, 3), randn(3))),),
        ),
        case(
            "while-loop",
            WhileLoop,
            lambda: (torch.tensor(0), randn(3)),
            source=f"{T}::test_while_loop",
            runs=lambda: (Run((torch.tensor(1), randn(3))),),
        ),
        case(
            "scan-cumsum",
            ScanCumsum,
            lambda: (randn(4, 3),),
            source=f"{T}::test_scan",
            runs=lambda: (Run((randn(4, 3),)),),
        ),
    ]


# --- custom ops -------------------------------------------------------------------


class AddInto(torch.nn.Module):
    def forward(self, x, out):
        add_into(x, out)
        return out * 2


def custom_op_cases() -> list:
    C = f"{T}::test_custom_op"
    return [
        case(
            "custom-op-basic",
            m1(lambda x: scale_op(x, 2.0)),
            lambda: (randn(3),),
            source=C,
            runs=lambda: (Run((randn(3),)),),
        ),
        case(
            "custom-op-dynamic",
            m1(lambda x: scale_op(x, 0.5)),
            lambda: (randn(4, 3),),
            spec=lambda: {"x": {0: Dim("b")}},
            source=C,
            runs=lambda: (Run((randn(9, 3),)),),
        ),
        case(
            "custom-op-list-output",
            m1(lambda x: split_pair(x)),
            lambda: (randn(3),),
            source=f"{C}_list_output",
            runs=lambda: (Run((randn(3),)),),
        ),
        case(
            "custom-op-list-output-roundtrip",
            m1(lambda x: split_pair(x)),
            lambda: (randn(3),),
            mode="roundtrip",
            source="test/export/test_serialize.py::test_custom_op_list",
        ),
        case(
            "custom-op-unbacked-size",
            m1(lambda x: positives(x) * 2),
            lambda: (randn(8),),
            source=f"{C}_dynamic_size",
            runs=lambda: (Run((randn(8),)),),
        ),
        case(
            "custom-op-mutation", AddInto, lambda: (randn(3), randn(3)), source=f"{C}_mutates_args"
        ),
        case(
            "custom-op-decompose",
            m1(lambda x: scale_op(x, 2.0) + 1),
            lambda: (randn(3),),
            mode="decompose",
            source=f"{C}_decompose",
        ),
    ]


# --- draft export -----------------------------------------------------------------


def report(program):
    """What torch's draft-export report says, as data: failure types in order."""
    failures = program._report.failures
    return sorted(str(getattr(f.failure_type, "name", f.failure_type)) for f in failures)


def draft_cases() -> list:
    return [
        case(
            "draft-clean",
            m1(lambda x: x.sin() * 2),
            lambda: (randn(3),),
            mode="draft",
            source=f"{DR}::test_no_failures",
            observe=report,
        ),
        case(
            "draft-branch-on-item",
            m1(branch_on_item),
            lambda: (randn(3) + 5,),
            mode="draft",
            source=f"{DR}::test_data_dependent_branch",
            observe=report,
            runs=lambda: (Run((randn(3) + 5,)),),
        ),
        case(
            "draft-item-zeros",
            m1(item_zeros),
            ints(3),
            mode="draft",
            source=f"{DR}::test_item",
            observe=report,
            runs=lambda: (Run((torch.tensor([4]),)),),
        ),
        case(
            "draft-specialized-dim",
            _Specializing,
            lambda: (randn(4, 3),),
            mode="draft",
            spec=lambda: {"x": {0: Dim("b")}},
            source=f"{DR}::test_shape_failure",
            observe=report,
            runs=lambda: (Run((randn(4, 3),)),),
        ),
        case(
            "draft-custom-op-no-fake",
            m1(no_fake),
            lambda: (randn(3),),
            mode="draft",
            source=f"{DR}::test_missing_meta_kernel_custom_op",
            observe=report,
            runs=lambda: (Run((randn(3),)),),
        ),
    ]


class _Specializing(torch.nn.Module):
    def forward(self, x):
        if x.shape[0] == 4:
            return x + 1
        return x - 1


# --- API surface ------------------------------------------------------------------


def attributes(program):
    """The ExportedProgram attributes code written for torch.export reads."""
    spec = program.call_spec
    return {
        "dialect": program.dialect,
        "call_spec": [spec.in_spec is not None, spec.out_spec is not None],
        "tensor_constants": sorted(type(v).__name__ for v in program.tensor_constants.values()),
        "validate": program.validate(),
        "example_inputs": [len(program.example_inputs[0]), sorted(program.example_inputs[1])],
        "verifiers": len(program.verifiers) >= 1,
        "state_dict": sorted(program.state_dict),
        "module_call_graph": program.module_call_graph[0].fqn,
    }


class WithState(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        self.c = torch.ones(3)

    def forward(self, x, *, y):
        return self.lin(x) + self.c + y


class GradToggle(torch.nn.Module):
    def forward(self, x):
        torch._C._set_grad_enabled(False)
        return x * 2


class NewAttribute(torch.nn.Module):
    def forward(self, x):
        self.cache = x * 2
        return self.cache + 1


def grad_state(program):
    return torch.is_grad_enabled()


def api_cases() -> list:
    A = f"{T}::test_export_api"
    return [
        case(
            "ep-attributes",
            WithState,
            lambda: (randn(2, 3),),
            kwargs=lambda: {"y": randn(2, 3)},
            source=f"{T}::test_ep_attributes",
            observe=attributes,
        ),
        case(
            "grad-mode-restored",
            GradToggle,
            lambda: (randn(3),),
            source=f"{T}::test_set_grad_in_forward",
            observe=grad_state,
        ),
        case(
            "new-attribute-in-forward",
            NewAttribute,
            lambda: (randn(3),),
            source=f"{T}::test_new_attribute",
        ),
        case("args-not-tuple", m1(torch.sin), lambda: randn(3), source=f"{A}_args_type"),
        case(
            "kwargs-not-dict",
            m1(torch.sin),
            lambda: (randn(3),),
            kwargs=lambda: [1],
            source=f"{A}_kwargs_type",
        ),
        case("too-many-args", m1(torch.sin), lambda: (randn(3), randn(3)), source=f"{A}_arity"),
        case("missing-arg", m2(torch.add), lambda: (randn(3),), source=f"{A}_arity"),
        case(
            "unknown-kwarg",
            m1(torch.sin),
            lambda: (randn(3),),
            kwargs=lambda: {"z": randn(3)},
            source=f"{A}_unexpected_kwarg",
        ),
        case(
            "unsupported-input-type", m1(lambda x: x), lambda: (object(),), source=f"{A}_input_type"
        ),
        case(
            "forward-raises", m1(lambda x: x.view(7)), lambda: (randn(3),), source=f"{A}_user_error"
        ),
        case(
            "forward-raises-value-error",
            m1(lambda x: (_ for _ in ()).throw(ValueError("no"))),
            lambda: (randn(3),),
            source=f"{A}_user_exception",
        ),
        case(
            "resize-refused",
            m1(lambda x: x.clone().resize_(6)[:3]),  # the first 3 elements: no uninitialized memory
            lambda: (randn(3),),
            source=f"{T}::test_resize",
        ),
        case(
            "out-variant",
            m1(lambda x: torch.sin(x, out=torch.empty(3))),
            lambda: (randn(3),),
            source=f"{T}::test_out_variant",
        ),
    ]


def cases() -> list:
    return (
        data_dependent_cases()
        + control_flow_cases()
        + custom_op_cases()
        + draft_cases()
        + api_cases()
    )
