"""graphlift.pytree against torch.utils._pytree, the oracle.

Differential properties over generated nested structures (flatten, unflatten,
paths, serialized form), then the types real programs pass (transformers
outputs and caches, registered dataclasses), golden spec printouts, mismatch
messages and safe loading of saved specs.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import sys
from collections import OrderedDict, defaultdict, deque, namedtuple
from typing import Any, NamedTuple

import pytest
import torch
import torch.utils._pytree as pt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphlift import pytree as gp
from graphlift.errors import GraphliftError, PytreeError

Point = namedtuple("Point", "x y")


class Pair(NamedTuple):
    first: Any
    second: Any


if Point not in pt.SUPPORTED_SERIALIZED_TYPES:
    gp.register_namedtuple(Point, serialized_type_name="tests.test_pytree.Point")

T = torch.ones(2)

# --- generated structures -------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=32),
    st.text("abc", max_size=2),
    st.sampled_from([T, torch.zeros(1, dtype=torch.int64)]),
)
keys = st.one_of(st.text("abcxyz", min_size=1, max_size=3), st.integers(0, 9))


def _nodes(children: st.SearchStrategy[Any], *, savable: bool = False) -> st.SearchStrategy[Any]:
    """Every built-in node type; ``savable`` leaves out Pair, which has no serialized name."""
    small = st.lists(children, max_size=3)
    mapping = st.dictionaries(keys, children, max_size=3)
    options = [
        small.map(tuple),
        small,
        mapping,
        mapping.map(OrderedDict),
        mapping.map(lambda d: defaultdict(list, d)),
        st.builds(Point, children, children),
    ]
    return st.one_of(options if savable else [*options, st.builds(Pair, children, children)])


trees = st.recursive(leaves, _nodes, max_leaves=12)
savable_trees = st.recursive(leaves, lambda c: _nodes(c, savable=True), max_leaves=12)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same_structure(a: Any, b: Any) -> bool:
    """Exact types, keys (in order) and identical leaves all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        if list(a) != list(b) or getattr(a, "default_factory", 0) != getattr(
            b, "default_factory", 0
        ):
            return False
        return all(same_structure(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same_structure, a, b))
    return a is b


@SETTINGS
@given(trees)
def test_flatten_matches_torch(tree: Any) -> None:
    leaves, spec = gp.tree_flatten(tree)
    torch_leaves, torch_spec = pt.tree_flatten(tree)
    assert len(leaves) == len(torch_leaves) == spec.num_leaves == torch_spec.num_leaves
    assert all(a is b for a, b in zip(leaves, torch_leaves))
    assert gp.to_torch_spec(spec) == torch_spec
    assert gp.from_torch_spec(torch_spec) == spec


@SETTINGS
@given(trees)
def test_unflatten_matches_torch(tree: Any) -> None:
    leaves, spec = gp.tree_flatten(tree)
    rebuilt = gp.tree_unflatten(leaves, spec)
    assert same_structure(rebuilt, pt.tree_unflatten(leaves, pt.tree_flatten(tree)[1]))
    assert same_structure(rebuilt, tree)
    assert same_structure(gp.tree_map(lambda x: x, tree), tree)


@SETTINGS
@given(trees)
def test_paths_match_torch(tree: Any) -> None:
    pairs, spec = gp.tree_flatten_with_path(tree)
    torch_pairs, _ = pt.tree_flatten_with_path(tree)
    assert [gp.keystr(p) for p, _ in pairs] == [pt.keystr(p) for p, _ in torch_pairs]
    assert [p for p, _ in pairs] == [p for p, _ in torch_pairs]
    assert all(a is b for (_, a), (_, b) in zip(pairs, torch_pairs))
    assert spec == gp.tree_flatten(tree)[1]


@SETTINGS
@given(trees)
def test_specs_are_values(tree: Any) -> None:
    _, spec = gp.tree_flatten(tree)
    _, again = gp.tree_flatten(tree)
    assert spec == again and hash(spec) == hash(again) and str(spec) == str(again)
    assert gp.describe_mismatch(spec, again) is None
    assert copy.deepcopy(spec) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.context = None  # type: ignore[misc]


@SETTINGS
@given(savable_trees)
def test_spec_data_is_torchs_format_and_round_trips(tree: Any) -> None:
    _, spec = gp.tree_flatten(tree)
    data = gp.spec_to_data(spec)
    assert json.dumps([1, data]) == pt.treespec_dumps(pt.tree_flatten(tree)[1])
    assert gp.spec_from_data(json.loads(json.dumps(data))) == spec


@SETTINGS
@given(trees, trees)
def test_mismatch_is_none_exactly_when_specs_are_equal(a: Any, b: Any) -> None:
    spec_a, spec_b = gp.tree_flatten(a)[1], gp.tree_flatten(b)[1]
    message = gp.describe_mismatch(spec_a, spec_b)
    assert (message is None) == (pt.tree_flatten(a)[1] == pt.tree_flatten(b)[1])
    assert message is None or message.startswith("inputs")


# --- other built-in and torch node types ------------------------------------------------


@pytest.mark.parametrize(
    "tree",
    [
        None,
        (),
        [],
        {},
        torch.Size([2, 3]),
        deque([T, 1], maxlen=4),
        torch.max(torch.ones(2, 3), dim=0),  # a torch.return_types structseq
        {"a": (None, [T])},
    ],
    ids=["None", "empty-tuple", "empty-list", "empty-dict", "Size", "deque", "structseq", "nested"],
)
def test_torch_node_types(tree: Any) -> None:
    leaves, spec = gp.tree_flatten(tree)
    torch_leaves, torch_spec = pt.tree_flatten(tree)
    assert all(a is b for a, b in zip(leaves, torch_leaves)) and len(leaves) == len(torch_leaves)
    assert gp.to_torch_spec(spec) == torch_spec
    rebuilt = pt.tree_unflatten(torch_leaves, torch_spec)  # torch.Size comes back a tuple
    assert type(gp.tree_unflatten(leaves, spec)) is type(rebuilt)
    try:
        torch_data = pt.treespec_dumps(torch_spec)
    except NotImplementedError:  # structseqs have no serialized name in torch either
        with pytest.raises(PytreeError, match="has no serialized type name"):
            gp.spec_to_data(spec)
        return
    assert json.dumps([1, gp.spec_to_data(spec)]) == torch_data
    assert gp.spec_from_data(gp.spec_to_data(spec)) == spec


def test_none_is_a_leaf_as_in_torch() -> None:
    assert gp.tree_flatten(None) == ([None], gp.LEAF)
    assert pt.tree_flatten(None)[0] == [None]


def test_unflatten_checks_the_leaf_count() -> None:
    _, spec = gp.tree_flatten((1, 2))
    with pytest.raises(PytreeError, match="cannot unflatten 3 leaves into \\(\\*, \\*\\)"):
        gp.tree_unflatten([1, 2, 3], spec)
    with pytest.raises(ValueError):  # what torch raises
        gp.tree_unflatten([1], spec)


def test_is_leaf_stops_descent() -> None:
    tree = {"a": (1, 2), "b": [3]}
    leaves, spec = gp.tree_flatten(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert leaves == [(1, 2), 3] and str(spec) == "{'a': *, 'b': [*]}"
    assert gp.tree_map(lambda x: x * 2, tree, is_leaf=lambda x: isinstance(x, tuple)) == {
        "a": (1, 2, 1, 2),
        "b": [6],
    }


# --- golden printouts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        (T, "*"),
        (None, "*"),
        ((), "()"),
        ((T,), "(*,)"),
        (((T, T, T), {"mask": T, "ids": T}), "((*, *, *), {'mask': *, 'ids': *})"),
        ([T, [T]], "[*, [*]]"),
        ({0: T}, "{0: *}"),
        (OrderedDict(b=T, a=T), "OrderedDict({'b': *, 'a': *})"),
        (defaultdict(list, {"k": T}), "defaultdict(list, {'k': *})"),
        (Point(T, (T,)), "Point(x=*, y=(*,))"),
        (Pair(T, None), "Pair(first=*, second=*)"),
        (torch.Size([2, 3]), "Size(*, *)"),
    ],
)
def test_spec_printout(tree: Any, text: str) -> None:
    spec = gp.tree_flatten(tree)[1]
    assert str(spec) == text
    assert repr(spec) == f"TreeSpec({text})"


# --- transformers -----------------------------------------------------------------------


def test_model_output_is_honoured() -> None:
    from transformers.modeling_outputs import BaseModelOutput

    out = BaseModelOutput(last_hidden_state=T, hidden_states=(T, T))
    leaves, spec = gp.tree_flatten(out)
    assert gp.to_torch_spec(spec) == pt.tree_flatten(out)[1]
    assert str(spec) == "BaseModelOutput(last_hidden_state=*, hidden_states=(*, *))"
    paths = [gp.keystr(p) for p, _ in gp.tree_flatten_with_path(out)[0]]
    assert paths == ["['last_hidden_state']", "['hidden_states'][0]", "['hidden_states'][1]"]
    rebuilt = gp.tree_unflatten(leaves, spec)
    assert type(rebuilt) is BaseModelOutput and rebuilt.hidden_states[1] is T
    data = gp.spec_to_data(spec)
    assert data["type"] == "transformers.modeling_outputs.BaseModelOutput"
    assert gp.spec_from_data(data) == spec


def test_model_output_mismatch_names_the_field() -> None:
    from transformers.modeling_outputs import BaseModelOutput

    spec = gp.tree_flatten(BaseModelOutput(last_hidden_state=T, hidden_states=(T,)))[1]
    longer = gp.tree_flatten(BaseModelOutput(last_hidden_state=T, hidden_states=(T, T)))[1]
    shorter = gp.tree_flatten(BaseModelOutput(last_hidden_state=T))[1]
    assert gp.describe_mismatch(spec, longer, root="outputs") == (
        "outputs['hidden_states']: expected a tuple of 1 item, got a tuple of 2 items"
    )
    assert gp.describe_mismatch(spec, shorter, root="outputs") == (
        "outputs: missing key 'hidden_states'"
    )


@pytest.fixture
def registered_dynamic_cache() -> Any:
    """transformers registers its caches only when exporting; do it for one test."""
    from transformers import DynamicCache
    from transformers.exporters.exporter_dynamo import register_pytree_node

    assert DynamicCache not in pt.SUPPORTED_NODES
    register_pytree_node(DynamicCache)
    yield DynamicCache
    pt._deregister_pytree_node(DynamicCache)


def test_dynamic_cache_when_registered(registered_dynamic_cache: Any) -> None:
    cache = registered_dynamic_cache()
    for layer in range(2):
        cache.update(torch.ones(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), layer)
    tree = ({"input_ids": T}, cache)
    leaves, spec = gp.tree_flatten(tree)
    torch_leaves, torch_spec = pt.tree_flatten(tree)
    assert len(leaves) == 5 and all(a is b for a, b in zip(leaves, torch_leaves))
    assert gp.to_torch_spec(spec) == torch_spec
    assert hash(spec) == hash(gp.tree_flatten(tree)[1])  # nested-dict context, still hashable
    _, rebuilt = gp.tree_unflatten(leaves, spec)
    assert type(rebuilt) is registered_dynamic_cache and rebuilt.get_seq_length() == 3
    assert gp.spec_from_data(json.loads(json.dumps(gp.spec_to_data(spec)))) == spec


def test_unregistered_cache_is_a_leaf() -> None:
    from transformers import DynamicCache

    cache = DynamicCache()
    assert gp.tree_flatten(cache) == ([cache], gp.LEAF)


# --- dataclasses ------------------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    ids: Any
    mask: Any = None
    note: str = "x"


@dataclasses.dataclass
class Loose:
    a: Any
    b: Any


@pytest.fixture
def registered_batch() -> Any:
    gp.register_dataclass(Batch, drop_field_names=["note"], serialized_type_name="tests.Batch")
    assert pt.tree_flatten(Batch(ids=1, note="y"))[0] == [1]  # torch sees the same registration
    yield Batch
    pt._deregister_pytree_node(Batch)


def test_register_dataclass(registered_batch: Any) -> None:
    batch = Batch(ids=T, mask=[T])
    leaves, spec = gp.tree_flatten(batch)
    assert leaves == [T, T] and gp.to_torch_spec(spec) == pt.tree_flatten(batch)[1]
    assert [gp.keystr(p) for p, _ in gp.tree_flatten_with_path(batch)[0]] == [".ids", ".mask[0]"]
    assert gp.tree_unflatten(leaves, spec) == Batch(ids=T, mask=[T])
    assert gp.spec_from_data(gp.spec_to_data(spec)) == spec
    # torch's semantics: a None field is context, not a child
    none_leaves, none_spec = gp.tree_flatten(Batch(ids=T))
    assert none_leaves == [T] and none_spec != spec
    assert gp.describe_mismatch(spec, none_spec, root="inputs[0]") == (
        "inputs[0]: expected a Batch with context [['ids', 'mask'], []], "
        "got context [['ids'], ['mask']]"
    )


def test_register_dataclass_errors() -> None:
    with pytest.raises(PytreeError, match="field_names does not include all dataclass fields"):
        gp.register_dataclass(Loose, field_names=["a"])
    with pytest.raises(ValueError, match="field_names must be specified"):
        gp.register_dataclass(dict)
    assert Loose not in pt.SUPPORTED_NODES


def test_spec_of_unnamed_type_cannot_be_saved() -> None:
    gp.register_dataclass(Loose)
    try:
        spec = gp.tree_flatten(Loose(T, T))[1]
        with pytest.raises(PytreeError, match="register it with serialized_type_name"):
            gp.spec_to_data(spec)
    finally:
        pt._deregister_pytree_node(Loose)


# --- mismatch messages ------------------------------------------------------------------

S = gp.tree_flatten


@pytest.mark.parametrize(
    ("expected", "actual", "root", "message"),
    [
        (((T, T), {"mask": T}), ((T, T), {"mask": T}), "inputs", None),
        (
            ((T, T), {"mask": T}),
            ((T, [T, T]), {"mask": T}),
            "inputs",
            "inputs[0][1]: expected a leaf, got a list of 2 items",
        ),
        (
            {"attention_mask": T, "ids": T},
            {"ids": T},
            "kwargs",
            "kwargs: missing key 'attention_mask'",
        ),
        ({"ids": T}, {"ids": T, "x": T, "y": T}, "kwargs", "kwargs: unexpected keys 'x', 'y'"),
        (
            {"a": T, "b": T},
            {"b": T, "a": T},
            "kwargs",
            "kwargs: keys in a different order: expected ['a', 'b'], got ['b', 'a']",
        ),
        ((T, T), (T, T, T), "args", "args: expected a tuple of 2 items, got a tuple of 3 items"),
        ([T], (T,), "args", "args: expected a list of 1 item, got a tuple of 1 item"),
        (
            {"p": Point(T, T)},
            {"p": Pair(T, T)},
            "x",
            "x['p']: expected a Point (namedtuple), got a Pair (namedtuple)",
        ),
        (Point(T, [T]), Point(T, T), "x", "x.y: expected a list of 1 item, got a leaf"),
        (
            OrderedDict(a=T),
            {"a": T},
            "x",
            "x: expected an OrderedDict with keys ['a'], got a dict with keys ['a']",
        ),
        (
            defaultdict(list, a=T),
            defaultdict(int, a=T),
            "x",
            "x: expected a defaultdict with keys ['a'], got a defaultdict with keys ['a']",
        ),
    ],
)
def test_describe_mismatch(expected: Any, actual: Any, root: str, message: str | None) -> None:
    assert gp.describe_mismatch(S(expected)[1], S(actual)[1], root=root) == message


def test_flatten_matching() -> None:
    spec = S(((T,), {"mask": T}))[1]
    assert gp.flatten_matching(((T,), {"mask": T}), spec) == [T, T]
    with pytest.raises(PytreeError, match=r"inputs\[1\]: missing key 'mask'") as caught:
        gp.flatten_matching(((T,), {}), spec)
    assert caught.value.path == "inputs[1]"
    assert isinstance(caught.value, GraphliftError) and isinstance(caught.value, ValueError)


# --- loading saved specs safely ---------------------------------------------------------


def test_unknown_type_name_is_refused_without_importing() -> None:
    name = "graphlift_never_imported_pkg.Thing"
    data = {"type": name, "context": "null", "children_spec": []}
    with pytest.raises(PytreeError, match=re.escape(f"unknown pytree node type '{name}'")):
        gp.spec_from_data(data)
    assert "graphlift_never_imported_pkg" not in sys.modules


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"type": "os.system", "context": "null", "children_spec": []}, "unknown pytree node type"),
        (
            {
                "type": "collections.defaultdict",
                "context": {
                    "default_factory_module": "os",
                    "default_factory_name": "getcwd",
                    "dict_context": [],
                },
                "children_spec": [],
            },
            "refusing to load a defaultdict whose default_factory is os.getcwd",
        ),
        (
            {"type": "collections.namedtuple", "context": "evil.Tuple", "children_spec": []},
            "unknown namedtuple 'evil.Tuple'",
        ),
        (
            {
                "type": "builtins.dict",
                "context": '[{"__enum__": true, "fqn": "os:Thing", "name": "A"}]',
                "children_spec": [{"type": None, "context": None, "children_spec": []}],
            },
            "refusing to load an enum",
        ),
        ({"type": "builtins.dict", "context": '["a", "b"]', "children_spec": []}, "has 0 children"),
        ({"type": "builtins.tuple", "context": "null"}, "malformed saved spec node"),
        (
            {"type": "builtins.tuple", "context": "{", "children_spec": []},
            "malformed saved spec context",
        ),
        ([1, 2], "malformed saved spec node"),
    ],
    ids=[
        "os.system",
        "defaultdict-factory",
        "namedtuple",
        "enum",
        "keys-vs-children",
        "fields",
        "json",
        "list",
    ],
)
def test_bad_saved_specs_are_refused(data: Any, match: str) -> None:
    modules = set(sys.modules)
    with pytest.raises(PytreeError, match=match):
        gp.spec_from_data(data)
    assert set(sys.modules) == modules


def test_unregistered_namedtuple_cannot_be_saved() -> None:
    with pytest.raises(PytreeError, match="cannot save a spec containing Pair"):
        gp.spec_to_data(S(Pair(1, 2))[1])
    with pytest.raises(PytreeError, match="keys must be str"):
        gp.spec_to_data(S({(1, 2): T})[1])
