"""Dynamic-shape cases: spec spellings, derived dims, hints, specialization errors.

Rewritten from ``test/export/test_export.py`` (``test_dynamic_shapes_*``,
``test_derived_dim_*``, ``test_dim_hint_*``, ``test_specialize_*``,
``test_mismatched_dynamic_shapes``, ``test_shapes_collection``,
``test_additional_inputs``, ``test_symint_output``) and the dynamic-shapes part
of ``docs/source/export/programming_model.md``. Every spec here is written with
torch.export's own ``Dim``: graphlift must take it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.export import Dim

from tests.conformance.builders import case, randn, ranges
from tests.conformance.harness import Difference, Run

T = "test/export/test_export.py"
PM = "docs/source/export/programming_model.md"


class Add(torch.nn.Module):
    def forward(self, x, y):
        return x + y


class Slice1(torch.nn.Module):
    def forward(self, x, y):
        return x[1:] + y


class Cat(torch.nn.Module):
    def forward(self, x, y, z):
        return torch.cat([x, y]) * z


class Twice(torch.nn.Module):
    def forward(self, x, y):
        return x.reshape(2, -1, x.shape[-1]).sum(0) + y


class Branch(torch.nn.Module):
    def forward(self, x):
        if x.shape[0] > 5:
            return x + 1
        return x - 1


class IntOfSize(torch.nn.Module):
    def forward(self, x):
        return x.reshape(int(x.shape[0]), -1) * 2


class AssertSize(torch.nn.Module):
    def forward(self, x):
        assert x.shape[0] == 4
        return x * 2


class ViewConst(torch.nn.Module):
    def forward(self, x):
        return x.view(4, -1)


class Matmul(torch.nn.Module):
    def forward(self, x, w):
        return x @ w


class ReturnSize(torch.nn.Module):
    def forward(self, x):
        return x.shape[0], x * 2


class SizeArith(torch.nn.Module):
    def forward(self, x):
        n = x.shape[0]
        return torch.arange(n * 2), x.new_zeros(n, n // 2 + 1)


class Views(torch.nn.Module):
    def forward(self, x):
        b, s, h = x.shape
        y = x.view(b * s, h).reshape(b, s * h)
        return y.unsqueeze(0).expand(3, b, s * h).flatten(0, 1)


class SplitHalf(torch.nn.Module):
    def forward(self, x):
        half = x.shape[1] // 2
        a, b = x.split([half, x.shape[1] - half], dim=1)
        return a * 2, b + 1


class RoundSize(torch.nn.Module):
    def forward(self, x):
        n = round(x.shape[0] / 2)
        return x[:n]


class Interpolate(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


class PadSequence(torch.nn.Module):
    def forward(self, a, b):
        return torch.nn.utils.rnn.pad_sequence([a, b], batch_first=True)


class NonzeroStatic(torch.nn.Module):
    def forward(self, x):
        return torch.nonzero_static(x > 0, size=x.shape[0])


class IntInputScale(torch.nn.Module):
    def forward(self, x, n):
        return x[:n] * n


class MaskedLinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x, mask):
        return self.lin(x) * mask.unsqueeze(-1)


class Attention(torch.nn.Module):
    def forward(self, q, k):
        return (q @ k.transpose(-1, -2)).softmax(-1)


def add_inputs():
    return (randn(4, 3), randn(4, 3))


def add_runs():
    return (
        Run((randn(6, 3), randn(6, 3))),
        Run((randn(6, 3), randn(5, 3))),
        Run((randn(6, 4), randn(6, 4))),
        Run((randn(100, 3), randn(100, 3))),
    )


#: torch.export assumes sizes 0 and 1 away for hint dims and specializes a size-1 example dim
ZERO_ONE = (
    "torch.export specializes a dim whose example size is 1 (or refuses a valid program over "
    "its 0/1 assumption); graphlift checks sizes 0 and 1 per op and keeps the dim dynamic, "
    "and every run equals eager"
)


def r(program):
    return ranges(program)


def spec_spellings() -> list:
    b = "batch"
    spellings = {
        "dict-by-name": lambda: {"x": {0: Dim(b)}, "y": {0: Dim(b)}},
        "tuple-by-position": lambda: ({0: Dim(b)}, {0: Dim(b)}),
        "list-by-position": lambda: [{0: Dim(b)}, {0: Dim(b)}],
        "tuple-per-dim": lambda: ((Dim(b), None), (Dim(b), None)),
        "tuple-per-dim-static-hint": lambda: ((Dim(b), Dim.STATIC), (Dim(b), Dim.STATIC)),
        "same-dim-object": lambda: (lambda d: {"x": {0: d}, "y": {0: d}})(Dim(b)),
        "dims-helper": lambda: (lambda d: {"x": {0: d}, "y": {0: d}})(torch.export.dims(b)[0]),
        "bounded": lambda: {"x": {0: Dim(b, min=2, max=64)}, "y": {0: Dim(b, min=2, max=64)}},
        "bounded-max-only": lambda: {"x": {0: Dim(b, max=64)}, "y": {0: Dim(b, max=64)}},
        "auto-both": lambda: {"x": {0: Dim.AUTO}, "y": {0: Dim.AUTO}},
        "dynamic-both": lambda: {"x": {0: Dim.DYNAMIC}, "y": {0: Dim.DYNAMIC}},
        "auto-one": lambda: {"x": {0: Dim.AUTO}, "y": None},
        "auto-all-dims": lambda: {"x": (Dim.AUTO, Dim.AUTO), "y": (Dim.AUTO, Dim.AUTO)},
        "dynamic-bounded": lambda: {"x": {0: Dim.DYNAMIC(min=2, max=64)}, "y": {0: Dim.DYNAMIC}},
        "auto-bounded": lambda: {"x": {0: Dim.AUTO(max=64)}, "y": {0: Dim.AUTO}},
        "negative-index": lambda: {"x": {-2: Dim(b)}, "y": {-2: Dim(b)}},
        "none-everywhere": lambda: {"x": None, "y": None},
        "static-hints": lambda: {"x": (Dim.STATIC, Dim.STATIC), "y": None},
        "empty-dicts": lambda: {"x": {}, "y": {}},
        "dim-1-named": lambda: {"x": {1: Dim("h")}, "y": {1: Dim("h")}},
        "two-dims-named": lambda: {"x": (Dim(b), Dim("h")), "y": (Dim(b), Dim("h"))},
    }
    negative = Difference(
        "torch refuses a negative dim index in a spec; graphlift reads it as Python indexing "
        "(-2 of a 2-d tensor is dim 0), which is unambiguous",
        {
            "outcome": "ok",
            "inputs": ["USER_INPUT", "USER_INPUT"],
            "outputs": ["USER_OUTPUT"],
            "targets": [],
            "observed": [["<=2", "inf"]],
            "runs": ["ok", "ok", "AssertionError", "AssertionError", "ok"],
            "eager": [],
        },
    )
    return [
        case(
            f"spec-{name}",
            Add,
            add_inputs,
            spec=spec,
            runs=add_runs,
            observe=r,
            source=f"{T}::test_dynamic_shapes_spec_variants",
            difference=negative if name == "negative-index" else None,
        )
        for name, spec in spellings.items()
    ]


def spec_errors() -> list:
    S = f"{T}::test_dynamic_shapes_errors"
    b = "batch"
    bad = {
        "unequal-named-dims": lambda: {"x": {0: Dim("a")}, "y": {0: Dim("c")}},
        "named-and-static": lambda: {"x": {0: Dim(b)}, "y": None},
        "unknown-argument-name": lambda: {"x": {0: Dim(b)}, "z": {0: Dim(b)}},
        "too-few-entries": lambda: ({0: Dim(b)},),
        "dim-index-out-of-range": lambda: {"x": {2: Dim(b)}, "y": None},
        "tuple-wrong-rank": lambda: {"x": (Dim(b),), "y": None},
        "example-outside-range": lambda: {"x": {0: Dim(b, min=8)}, "y": {0: Dim(b, min=8)}},
        "example-above-max": lambda: {"x": {0: Dim(b, max=3)}, "y": {0: Dim(b, max=3)}},
        "spec-not-a-container": lambda: Dim(b),
        "int-for-dim": lambda: {"x": {0: 4}, "y": None},
        "string-for-dim": lambda: {"x": {0: "batch"}, "y": None},
        "same-name-different-range": lambda: {"x": {0: Dim(b, max=10)}, "y": {0: Dim(b, max=20)}},
        "static-dim-declared-dynamic": lambda: {"x": {1: Dim("h")}, "y": None},
        "dynamic-hint-made-static": lambda: {"x": {0: Dim.DYNAMIC}, "y": None},
    }
    return [
        case(f"spec-error-{name}", Add, add_inputs, spec=spec, source=S, observe=r)
        for name, spec in bad.items()
    ]


def derived_cases() -> list:
    D = f"{T}::test_derived_dim_basic"

    def slice_spec():
        d = Dim("d", min=2, max=32)
        return {"x": {0: d + 1}, "y": {0: d}}

    def cat_spec():
        d = Dim("d", max=32)
        return {"x": {0: d}, "y": {0: d}, "z": {0: 2 * d}}

    def twice_spec():
        d = Dim("d", max=32)
        return {"x": {0: 2 * d}, "y": {0: d}}

    def minus_spec():
        d = Dim("d", min=3, max=32)
        return {"x": {0: d}, "y": {0: d - 1}}

    def unequal_derived():
        d = Dim("d", max=32)
        return {"x": {0: d + 2}, "y": {0: d}}

    return [
        case(
            "derived-plus-one",
            Slice1,
            lambda: (randn(5, 3), randn(4, 3)),
            spec=slice_spec,
            observe=r,
            source=D,
            runs=lambda: (
                Run((randn(9, 3), randn(8, 3))),
                Run((randn(9, 3), randn(9, 3))),
                Run((randn(40, 3), randn(39, 3))),
            ),
        ),
        case(
            "derived-times-two-cat",
            Cat,
            lambda: (randn(3, 2), randn(3, 2), randn(6, 2)),
            spec=cat_spec,
            observe=r,
            source=f"{T}::test_derived_dim_cat",
            runs=lambda: (
                Run((randn(5, 2), randn(5, 2), randn(10, 2))),
                Run((randn(5, 2), randn(5, 2), randn(9, 2))),
            ),
        ),
        case(
            "derived-times-two-reshape",
            Twice,
            lambda: (randn(8, 3), randn(4, 3)),
            spec=twice_spec,
            observe=r,
            source=f"{T}::test_derived_dim_reshape",
            runs=lambda: (Run((randn(12, 3), randn(6, 3))), Run((randn(12, 3), randn(5, 3)))),
        ),
        case(
            "derived-minus-one",
            Slice1,
            lambda: (randn(5, 3), randn(4, 3)),
            spec=minus_spec,
            observe=r,
            source=f"{T}::test_derived_dim_sub",
            runs=lambda: (Run((randn(9, 3), randn(8, 3))), Run((randn(9, 3), randn(7, 3)))),
        ),
        case(
            "derived-wrong-relation",
            Slice1,
            lambda: (randn(5, 3), randn(4, 3)),
            spec=unequal_derived,
            observe=r,
            source=f"{T}::test_derived_dim_mismatch",
        ),
        case(
            "derived-needed-but-unrelated",
            Slice1,
            lambda: (randn(5, 3), randn(4, 3)),
            spec=lambda: {"x": {0: Dim("dx")}, "y": {0: Dim("dy")}},
            observe=r,
            source=f"{T}::test_derived_dim_suggested_fix",
        ),
        case(
            "derived-needed-auto",
            Slice1,
            lambda: (randn(5, 3), randn(4, 3)),
            spec=lambda: {"x": {0: Dim.AUTO}, "y": {0: Dim.AUTO}},
            observe=r,
            difference=Difference(
                ZERO_ONE + " (here y may be 1: x is the root, x >= 2)",
                {"observed": [["<=2", "inf"], ["<=2", "inf"]]},
            ),
            source=f"{T}::test_dim_hint_relations",
            runs=lambda: (Run((randn(9, 3), randn(8, 3))), Run((randn(9, 3), randn(9, 3)))),
        ),
        case(
            "equal-auto-dims",
            Add,
            add_inputs,
            spec=lambda: {"x": (Dim.AUTO, Dim.AUTO), "y": (Dim.AUTO, Dim.AUTO)},
            observe=r,
            source=f"{T}::test_dim_hint_equalities",
            runs=add_runs,
        ),
    ]


def specialization_cases() -> list:
    S = f"{T}::test_specialize"
    dyn = lambda: {"x": {0: Dim("batch", min=2, max=64)}}  # noqa: E731
    auto = lambda: {"x": {0: Dim.AUTO}}  # noqa: E731
    runs = lambda: (Run((randn(4, 3),)), Run((randn(7, 3),)), Run((randn(3, 3),)))  # noqa: E731
    models = {
        "branch": Branch,
        "int-of-size": IntOfSize,
        "assert-size": AssertSize,
        "view-const": ViewConst,
    }
    result = []
    for name, model in models.items():
        result.append(
            case(
                f"specialize-{name}-named",
                model,
                lambda: (randn(4, 3),),
                spec=dyn,
                observe=r,
                source=S,
            )
        )
        result.append(
            case(
                f"specialize-{name}-auto",
                model,
                lambda: (randn(4, 3),),
                spec=auto,
                observe=r,
                source=S,
                runs=runs,
            )
        )
        result.append(
            case(
                f"specialize-{name}-dynamic-hint",
                model,
                lambda: (randn(4, 3),),
                spec=lambda: {"x": {0: Dim.DYNAMIC}},
                observe=r,
                source=S,
            )
        )
    result.append(
        case(
            "branch-large-example-auto",
            Branch,
            lambda: (randn(8, 3),),
            spec=auto,
            observe=r,
            source=f"{T}::test_dim_hint_range_narrowing",
            runs=lambda: (Run((randn(6, 3),)), Run((randn(5, 3),)), Run((randn(30, 3),))),
        )
    )
    result.append(
        case(
            "branch-large-example-named-narrowed",
            Branch,
            lambda: (randn(8, 3),),
            spec=lambda: {"x": {0: Dim("batch", min=6, max=64)}},
            observe=r,
            source=f"{T}::test_dynamic_shapes_narrowed_range",
            runs=lambda: (Run((randn(6, 3),)), Run((randn(64, 3),)), Run((randn(65, 3),))),
        )
    )
    return result


def shape_program_cases() -> list:
    P = f"{T}::test_dynamic_shapes_ops"
    b, s = Dim("b", max=32), Dim("s", max=32)
    return [
        case(
            "matmul-inner-tied",
            Matmul,
            lambda: (randn(4, 5), randn(5, 3)),
            spec=lambda: {"x": (Dim("m"), Dim("k")), "w": (Dim("k"), None)},
            observe=r,
            source=P,
            runs=lambda: (Run((randn(6, 7), randn(7, 3))), Run((randn(6, 7), randn(6, 3)))),
        ),
        case(
            "matmul-inner-untied",
            Matmul,
            lambda: (randn(4, 5), randn(5, 3)),
            spec=lambda: {"x": (Dim("m"), Dim("k1")), "w": (Dim("k2"), None)},
            observe=r,
            source=P,
        ),
        case(
            "matmul-inner-auto",
            Matmul,
            lambda: (randn(4, 5), randn(5, 3)),
            spec=lambda: {"x": (Dim.AUTO, Dim.AUTO), "w": (Dim.AUTO, None)},
            observe=r,
            source=P,
            runs=lambda: (Run((randn(6, 7), randn(7, 3))), Run((randn(6, 7), randn(6, 3)))),
        ),
        case(
            "return-dynamic-size",
            ReturnSize,
            lambda: (randn(4, 3),),
            spec=lambda: {"x": {0: Dim("b")}},
            observe=r,
            source=f"{T}::test_symint_output",
            runs=lambda: (Run((randn(7, 3),)),),
        ),
        case(
            "return-dynamic-size-roundtrip",
            ReturnSize,
            lambda: (randn(4, 3),),
            mode="roundtrip",
            spec=lambda: {"x": {0: Dim("b")}},
            observe=r,
            source="test/export/test_serialize.py::test_sym_int_output",
            runs=lambda: (Run((randn(7, 3),)),),
        ),
        case(
            "size-arithmetic",
            SizeArith,
            lambda: (randn(4, 3),),
            spec=lambda: {"x": {0: Dim("b", max=64)}},
            observe=r,
            source=P,
            runs=lambda: (Run((randn(9, 3),)),),
        ),
        case(
            "views-of-dynamic",
            Views,
            lambda: (randn(2, 3, 4),),
            spec=lambda: {"x": (b, s, None)},
            difference=Difference(
                ZERO_ONE,
                {
                    "outcome": "ok",
                    "inputs": ["USER_INPUT"],
                    "outputs": ["USER_OUTPUT"],
                    "targets": [],
                    "observed": [["<=2", 32], ["<=2", 32]],
                    "runs": ["ok", "ok"],
                    "eager": [],
                },
            ),
            observe=r,
            source=P,
            runs=lambda: (Run((randn(5, 7, 4),)),),
        ),
        case(
            "split-by-size",
            SplitHalf,
            lambda: (randn(2, 6),),
            spec=lambda: {"x": (None, Dim("n", max=64))},
            observe=r,
            source=P,
            runs=lambda: (Run((randn(2, 9),)),),
        ),
        case(
            "round-of-size-auto",
            RoundSize,
            lambda: (randn(6, 3),),
            spec=lambda: {"x": {0: Dim.AUTO}},
            observe=r,
            source=f"{T}::test_round_size",
            runs=lambda: (Run((randn(6, 3),)), Run((randn(9, 3),))),
        ),
        case(
            "interpolate-auto",
            Interpolate,
            lambda: (randn(1, 2, 4, 4),),
            spec=lambda: {"x": (Dim.AUTO, None, Dim.AUTO, Dim.AUTO)},
            observe=r,
            difference=Difference(
                ZERO_ONE, {"observed": [["<=2", "inf"]] * 3, "runs": ["ok", "ok"]}
            ),
            source=f"{T}::test_interpolate_auto",
            runs=lambda: (Run((randn(2, 2, 5, 7),)),),
        ),
        case(
            "pad-sequence-auto",
            PadSequence,
            lambda: (randn(3, 4), randn(5, 4)),
            spec=lambda: {"a": (Dim.AUTO, None), "b": (Dim.AUTO, None)},
            observe=r,
            source=f"{T}::test_pad_sequence_auto",
            runs=lambda: (Run((randn(6, 4), randn(2, 4))),),
        ),
        case(
            "nonzero-static-dynamic",
            NonzeroStatic,
            lambda: (randn(6),),
            spec=lambda: {"x": {0: Dim("n", max=64)}},
            observe=r,
            source=f"{T}::test_mask_nonzero_static",
            runs=lambda: (Run((randn(9),)),),
        ),
        case(
            "masked-linear-shared-batch",
            MaskedLinear,
            lambda: (randn(2, 5, 8), randn(2, 5)),
            spec=lambda: {"x": (Dim("b"), Dim("s"), None), "mask": (Dim("b"), Dim("s"))},
            observe=r,
            source=P,
            runs=lambda: (Run((randn(3, 7, 8), randn(3, 7))), Run((randn(3, 7, 8), randn(3, 6)))),
        ),
        case(
            "attention-dynamic-seq",
            Attention,
            lambda: (randn(2, 5, 8), randn(2, 6, 8)),
            spec=lambda: {"q": (Dim("b"), Dim("sq"), None), "k": (Dim("b"), Dim("sk"), None)},
            observe=r,
            source=P,
            runs=lambda: (Run((randn(3, 2, 8), randn(3, 9, 8))),),
        ),
        case(
            "int-input-dynamic-hint",
            IntInputScale,
            lambda: (randn(8, 3), 4),
            spec=lambda: {"x": None, "n": Dim.DYNAMIC},
            observe=r,
            source=f"{T}::test_dynamic_int_input",
            runs=lambda: (Run((randn(8, 3), 6)),),
        ),
        case(
            "int-input-auto-hint",
            IntInputScale,
            lambda: (randn(8, 3), 4),
            spec=lambda: {"x": None, "n": Dim.AUTO},
            observe=r,
            source=f"{T}::test_dynamic_int_input",
            runs=lambda: (Run((randn(8, 3), 2)),),
        ),
        case(
            "batch-of-one-example",
            Add,
            lambda: (randn(1, 3), randn(1, 3)),
            spec=lambda: {"x": {0: Dim("batch")}, "y": {0: Dim("batch")}},
            observe=r,
            source=f"{PM} (0/1 specialization)",
            runs=lambda: (Run((randn(5, 3), randn(5, 3))),),
        ),
        case(
            "batch-of-one-example-auto",
            Add,
            lambda: (randn(1, 3), randn(1, 3)),
            spec=lambda: {"x": {0: Dim.AUTO}, "y": {0: Dim.AUTO}},
            observe=r,
            source=f"{PM} (0/1 specialization)",
            runs=lambda: (Run((randn(5, 3), randn(5, 3))),),
        ),
    ]


class AddVarargs(torch.nn.Module):
    def forward(self, *args):
        return args[0] + args[1]


def varargs_cases() -> list:
    """torch's spelling of a spec for ``forward(self, *args)``: one entry for all of them."""
    V = f"{T}::test_dynamic_shapes_varargs"
    packed = {
        "packed-tuple": lambda: (({0: Dim("b")}, {0: Dim("b")}),),
        "packed-by-name": lambda: {"args": ({0: Dim("b")}, {0: Dim("b")})},
        "packed-per-dim": lambda: (((Dim("b"), None), (Dim("b"), None)),),
    }
    return [
        case(
            f"spec-varargs-{name}",
            AddVarargs,
            add_inputs,
            spec=spec,
            runs=add_runs,
            observe=r,
            source=V,
        )
        for name, spec in packed.items()
    ]


def builder_cases() -> list:
    def shapes_collection():
        x, y = randn(4, 3), randn(4, 3)
        return (x, y)

    class Holder:
        pass

    def sc_case():
        holder = Holder()
        holder.args = (randn(4, 3), randn(4, 3))
        return holder

    made = sc_case()

    def sc_spec():
        sc = torch.export.ShapesCollection()
        batch = Dim("batch")
        sc[made.args[0]] = {0: batch}
        sc[made.args[1]] = {0: batch}
        return sc

    def additional():
        extra = torch.export.AdditionalInputs()
        extra.add((randn(5, 3), randn(5, 3)))
        extra.add((randn(7, 3), randn(7, 3)))
        return extra

    def additional_bad():
        extra = torch.export.AdditionalInputs()
        extra.add((randn(5, 3), randn(5, 3)))
        extra.add((randn(5, 4), randn(5, 4)))
        return extra

    def additional_int():
        extra = torch.export.AdditionalInputs()
        extra.add((randn(8, 3), 6))
        return extra

    def additional_violating():
        extra = torch.export.AdditionalInputs()
        extra.add((randn(9, 3),))
        return extra

    return [
        case(
            "shapes-collection-torch",
            Add,
            lambda: made.args,
            spec=sc_spec,
            observe=r,
            source=f"{T}::test_shapes_collection",
            runs=add_runs,
        ),
        case(
            "additional-inputs-torch",
            Add,
            add_inputs,
            spec=additional,
            observe=r,
            source=f"{T}::test_additional_inputs",
            runs=add_runs,
        ),
        case(
            "additional-inputs-two-dims",
            Add,
            add_inputs,
            spec=additional_bad,
            observe=r,
            source=f"{T}::test_additional_inputs",
            runs=add_runs,
        ),
        case(
            "additional-inputs-int",
            IntInputScale,
            lambda: (randn(8, 3), 4),
            spec=additional_int,
            observe=r,
            source=f"{T}::test_additional_inputs_int",
            runs=lambda: (Run((randn(8, 3), 5)),),
        ),
        case(
            "additional-inputs-violate-program",
            Branch,
            lambda: (randn(3, 3),),
            spec=additional_violating,
            observe=r,
            source=f"{T}::test_additional_inputs_verify",
        ),
    ]


def cases() -> list:
    return (
        spec_spellings()
        + spec_errors()
        + derived_cases()
        + specialization_cases()
        + shape_program_cases()
        + varargs_cases()
        + builder_cases()
    )
