"""Property tests: every structure operation on generated nests.

The structures come from ``nestlib.testing`` (the strategies we ship to
users). dm-tree is the oracle for semantics wherever its behaviour is defined
and none of nestlib's documented differences applies; the from-scratch
functions are the oracle for ``Spec``; and the two backends must agree
exactly, exceptions (class and message) included.
"""

from __future__ import annotations

import collections
import collections.abc
import pickle

import pytest

hypothesis = pytest.importorskip("hypothesis")
tree = pytest.importorskip("tree")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nestlib.testing as nt  # noqa: E402
from nestlib import _backend  # noqa: E402
from tests.objects import identical  # noqa: E402

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PYTHON = _backend.api("python")
DM = _backend.api("dm-tree")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def outcome(fn, *args, **kwargs):
    """("ok", result) or ("raised", exception class, message)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as e:
        return ("raised", type(e), str(e))


def same_outcome(x, y) -> bool:
    if x[0] != y[0]:
        return False
    if x[0] == "ok":
        return identical(x[1], y[1])
    return x[1:] == y[1:]


def _mutate(shape: tuple, draw) -> tuple:
    """``shape`` changed in exactly one place (kind, length, key or nesting)."""
    kind = shape[0]
    if kind == "leaf" or draw(st.integers(0, 2)) == 0:
        choices = ["new"]
        if kind != "leaf":
            choices += ["leaf", "kind"]
            if shape[2]:
                choices += ["drop"]
                if kind in ("dict", "ordered_dict", "defaultdict"):
                    choices += ["rekey"]
        how = draw(st.sampled_from(choices))
        if how == "leaf":
            return ("leaf",)
        if how == "new":
            new = nt._draw_shape(draw, nt.DEFAULT_CONTAINERS, 4, 2, 3)
            if new == shape:
                return ("list", None, (shape,))
            return new
        _, meta, children = shape
        if how == "kind":
            swap = {
                "list": "tuple",
                "tuple": "list",
                "dict": "list",
                "ordered_dict": "tuple",
                "defaultdict": "tuple",
                "namedtuple": "tuple",
                "attrs": "tuple",
                "mappingproxy": "list",
            }
            return (swap[kind], None, children)
        if how == "drop":
            if kind in ("namedtuple", "attrs"):
                fields = getattr(meta, "_fields", None)
                if fields is None:
                    fields = tuple(f.name for f in meta.__attrs_attrs__)
                meta = nt._record_type(kind, tuple(fields[:-1]))
            elif meta is not None:
                meta = meta[:-1]
            return (kind, meta, children[:-1])
        keys = list(meta)
        new_key = "q" if isinstance(keys[0], str) else 99  # never generated
        keys[draw(st.integers(0, len(keys) - 1))] = new_key
        return (kind, tuple(keys), children)
    _, meta, children = shape
    if not children:
        return ("leaf",)
    i = draw(st.integers(0, len(children) - 1))
    return (kind, meta, children[:i] + (_mutate(children[i], draw),) + children[i + 1 :])


@st.composite
def near_pairs(draw):
    """Two structures that differ in one place (or, rarely, not at all)."""
    shape = nt._draw_shape(draw, nt.DEFAULT_CONTAINERS, 10, 4, 4)
    other = _mutate(shape, draw) if draw(st.integers(0, 5)) else shape
    leaves = nt.leaves()
    return nt._fill(shape, draw, leaves), nt._fill(other, draw, leaves)


def pairs():
    return st.one_of(nt.structures_with_same_shape(2), near_pairs())


# --------------------------------------------------------------------------
# flatten / unflatten against dm-tree
# --------------------------------------------------------------------------


@SETTINGS
@given(s=nt.structures(containers=nt.DM_TREE_CONTAINERS))
def test_flatten_matches_dm_tree_and_round_trips(nest, s):
    flat = nest.flatten(s)
    assert flat == tree.flatten(s)
    assert nest.is_nested(s) == tree.is_nested(s)
    assert identical(nest.unflatten_as(s, flat), s)
    assert identical(nest.pack_sequence_as(s, flat), s)
    marks = list(range(len(flat)))
    assert identical(nest.unflatten_as(s, marks), tree.unflatten_as(s, marks))
    assert nest.unflatten_as(s, tuple(marks)) == nest.unflatten_as(s, marks)


@SETTINGS
@given(s=nt.structures(), extra=st.integers(1, 3))
def test_unflatten_count_mismatch_is_value_error_like_dm_tree(nest, s, extra):
    n = len(tree.flatten(s))
    for values in (list(range(n + extra)), list(range(max(n - extra, 0)))):
        if len(values) == n:
            continue
        with pytest.raises(ValueError):
            tree.unflatten_as(s, values)
        with pytest.raises(ValueError, match=r"has \d+ leaves but flat_sequence has \d+"):
            nest.unflatten_as(s, values)


@SETTINGS
@given(s=nt.structures(containers=nt.DM_TREE_CONTAINERS))
def test_paths_match_dm_tree(nest, s):
    pairs_ = nest.flatten_with_path(s)
    assert pairs_ == tree.flatten_with_path(s)
    assert nest.flatten_with_tuple_paths(s) == pairs_
    assert list(nest.yield_flat_paths(s)) == [p for p, _ in pairs_]
    assert nest.flatten_with_joined_string_paths(s, separator="|") == [
        ("|".join(str(k) for k in p), v) for p, v in pairs_
    ]
    assert [v for _, v in pairs_] == nest.flatten(s)


# --------------------------------------------------------------------------
# map_structure family against dm-tree
# --------------------------------------------------------------------------


@SETTINGS
@given(ab=nt.structures_with_same_shape(2, containers=nt.DM_TREE_CONTAINERS))
def test_map_structure_matches_dm_tree(nest, ab):
    a, b = ab
    assert identical(nest.map_structure(repr, a), tree.map_structure(repr, a))
    both = nest.map_structure(lambda x, y: (x, y), a, b)
    assert identical(both, tree.map_structure(lambda x, y: (x, y), a, b))
    assert identical(
        nest.map_structure(lambda x, y: y, a, b, check_types=False),
        tree.map_structure(lambda x, y: y, a, b, check_types=False),
    )
    assert identical(
        nest.map_structure_with_path(lambda p, x, y: (p, y), a, b),
        tree.map_structure_with_path(lambda p, x, y: (p, y), a, b),
    )
    assert identical(
        nest.map_structure_with_tuple_paths(lambda p, x: p, a),
        tree.map_structure_with_path(lambda p, x: p, a),
    )
    assert identical(
        nest.map_structure_with_paths(lambda p, x: p, a),
        tree.map_structure_with_path(lambda p, x: "/".join(map(str, p)), a),
    )


@SETTINGS
@given(s=nt.structures())
def test_map_structure_calls_func_in_flatten_order(nest, s):
    seen = []
    nest.map_structure(lambda x: seen.append(x), s)
    assert seen == tree.flatten(s)


@SETTINGS
@given(ab=pairs())
def test_assert_same_structure_agrees_with_dm_tree(nest, ab):
    a, b = ab
    for check_types in (True, False):
        ours = outcome(nest.assert_same_structure, a, b, check_types=check_types)
        theirs = outcome(tree.assert_same_structure, a, b, check_types=check_types)
        assert ours[:2] == theirs[:2], (ours, theirs)
        mapped = outcome(nest.map_structure, lambda *x: x, a, b, check_types=check_types)
        assert mapped[0] == ours[0]
        if ours[0] == "raised":
            assert mapped[1:] == ours[1:]  # same error, same message
            assert ours[2].startswith("structures differ at ")


@SETTINGS
@given(ab=pairs(), second=st.booleans())
def test_unsortable_keys_in_the_second_structure_agree_with_dm_tree(nest, ab, second):
    """dm-tree flattens both structures first, so a mapping with unsortable
    keys anywhere in either raises its TypeError before any other difference."""
    a, b = ab
    bad = {1: 0, "x": 0}
    a2, b2 = ([a, {1: 0}], [b, bad]) if second else ([{1: 0}, a], [bad, b])
    for check_types in (True, False):
        ours = outcome(nest.assert_same_structure, a2, b2, check_types=check_types)
        theirs = outcome(tree.assert_same_structure, a2, b2, check_types=check_types)
        assert ours[:2] == theirs[:2] == ("raised", TypeError), (ours, theirs)


_Empty = collections.namedtuple("_Empty", [])


@pytest.mark.parametrize(
    "ab",
    [
        ((_Empty(), []), ([],)),  # first pair differs in type: TypeError
        (([], _Empty()), ([],)),  # common pair fine: the count, ValueError
        (([1], [2, 3]), ([1],)),
        (([[1], 2], [(1,)]), [[[1], 2]]),
    ],
    ids=["type-before-count", "count", "count-after-equal", "nested"],
)
def test_differences_are_found_in_dm_trees_order(nest, ab):
    """dm-tree compares the children two nodes both have before their count
    (found by hypothesis on a CI run: a length difference was reported where
    dm-tree reports the TypeError of the first child)."""
    a, b = ab
    for check_types in (True, False):
        ours = outcome(nest.assert_same_structure, a, b, check_types=check_types)
        theirs = outcome(tree.assert_same_structure, a, b, check_types=check_types)
        assert ours[0] == "raised" and ours[:2] == theirs[:2], (ours, theirs)


# --------------------------------------------------------------------------
# the *_up_to family against dm-tree
# --------------------------------------------------------------------------


@SETTINGS
@given(pair=nt.shallow_and_deep(containers=nt.DM_TREE_CONTAINERS))
def test_up_to_family_matches_dm_tree(nest, pair):
    shallow, deep = pair
    nest.assert_shallow_structure(shallow, deep)
    assert nest.flatten_up_to(shallow, deep) == tree.flatten_up_to(shallow, deep)
    assert nest.flatten_with_path_up_to(shallow, deep) == tree.flatten_with_path_up_to(
        shallow, deep
    )
    assert identical(
        nest.map_structure_up_to(shallow, repr, deep), tree.map_structure_up_to(shallow, repr, deep)
    )
    assert identical(
        nest.map_structure_with_path_up_to(shallow, lambda p, x, y: (p, y), deep, deep),
        tree.map_structure_with_path_up_to(shallow, lambda p, x, y: (p, y), deep, deep),
    )
    # a structure is a shallow structure of itself
    assert nest.flatten_up_to(deep, deep) == nest.flatten(deep)


@SETTINGS
@given(ab=near_pairs())
def test_flatten_up_to_error_class_matches_dm_tree(nest, ab):
    a, b = ab
    ours = outcome(nest.flatten_up_to, a, b)
    theirs = outcome(tree.flatten_up_to, a, b)
    assert ours[0] == theirs[0]
    if ours[0] == "ok":
        assert ours[1] == theirs[1]
    else:
        assert ours[1] is theirs[1], (ours, theirs)


# --------------------------------------------------------------------------
# traverse and list_to_tuple
# --------------------------------------------------------------------------


@SETTINGS
@given(s=nt.structures(containers=nt.DM_TREE_CONTAINERS))
def test_traverse_matches_dm_tree(nest, s):
    ours, theirs = [], []
    assert identical(
        nest.traverse(lambda x: ours.append(x), s), tree.traverse(lambda x: theirs.append(x), s)
    )
    assert len(ours) == len(theirs) and all(identical(x, y) for x, y in zip(ours, theirs))
    up = nest.traverse(lambda x: repr(x) if not nest.is_nested(x) else None, s, top_down=False)
    assert identical(
        up, tree.traverse(lambda x: repr(x) if not tree.is_nested(x) else None, s, top_down=False)
    )
    assert identical(nest.traverse_with_path(lambda p, x: None, s), s)


@SETTINGS
@given(s=nt.structures(containers=["list", "tuple", "dict", "namedtuple"]))
def test_list_to_tuple_has_no_lists_and_same_leaves(nest, s):
    t = nest.list_to_tuple(s)
    assert nest.flatten(t) == nest.flatten(s)
    nest.traverse(lambda x: pytest.fail("a list survived") if type(x) is list else None, t)
    nest.assert_same_structure(t, nest.map_structure(lambda x: x, s), check_types=False)


# --------------------------------------------------------------------------
# Spec against the from-scratch functions
# --------------------------------------------------------------------------


@SETTINGS
@given(ab=nt.structures_with_same_shape(2))
def test_spec_agrees_with_functions(nest, ab):
    a, b = ab
    spec = nest.spec_of(a)
    assert spec == nest.spec_of(b) and hash(spec) == hash(nest.spec_of(b))
    assert spec.num_leaves == len(nest.flatten(a))
    assert spec.paths == tuple(p for p, _ in nest.flatten_with_path(a))
    assert spec.flatten(b) == nest.flatten(b)
    marks = list(range(spec.num_leaves))
    assert identical(spec.unflatten(marks), nest.unflatten_as(a, marks))
    assert identical(spec.unflatten(tuple(marks)), nest.unflatten_as(a, marks))
    assert identical(spec.map(repr, b), nest.map_structure(repr, b))
    assert identical(
        spec.map(lambda x, y: (x, y), a, b), nest.map_structure(lambda x, y: (x, y), a, b)
    )
    clone = pickle.loads(pickle.dumps(spec))
    assert clone == spec and hash(clone) == hash(spec)
    assert identical(clone.unflatten(marks), spec.unflatten(marks))


@SETTINGS
@given(ab=near_pairs())
def test_spec_flatten_checks_like_assert_same_structure(nest, ab):
    a, b = ab
    spec = nest.spec_of(a)
    checked = outcome(nest.assert_same_structure, a, b)
    flat = outcome(spec.flatten, b)
    assert flat[0] == checked[0], (flat, checked)
    if flat[0] == "ok":
        assert flat[1] == nest.flatten(b)
    else:
        assert flat[1] is checked[1], (flat, checked)
    assert (nest.spec_of(a) == nest.spec_of(b)) <= (checked[0] == "ok")


@SETTINGS
@given(s=nt.structures(), extra=st.integers(1, 2))
def test_spec_unflatten_count_errors_match_unflatten_as(nest, s, extra):
    spec = nest.spec_of(s)
    values = list(range(spec.num_leaves + extra))
    with pytest.raises(ValueError, match=r"has \d+ leaves but flat_sequence has \d+") as e1:
        spec.unflatten(values)
    with pytest.raises(ValueError) as e2:
        nest.unflatten_as(s, values)
    assert str(e1.value).split(":", 1)[1] == str(e2.value).split(":", 1)[1]


# --------------------------------------------------------------------------
# the two backends agree exactly
# --------------------------------------------------------------------------


def _all_ops(api, a, b):
    return [
        outcome(api.is_nested, a),
        outcome(api.flatten, a),
        outcome(api.unflatten_as, a, PYTHON.flatten(b)),
        outcome(api.pack_sequence_as, a, tuple(PYTHON.flatten(b))),
        outcome(api.map_structure, lambda x, y: (x, y), a, b),
        outcome(api.map_structure, lambda x, y: (x, y), a, b, check_types=False),
        outcome(api.map_structure_with_path, lambda p, x, y: p, a, b),
        outcome(api.assert_same_structure, a, b),
        outcome(api.assert_same_structure, a, b, check_types=False),
        outcome(api.flatten_with_path, a),
        outcome(api.flatten_up_to, a, b),
        outcome(api.flatten_with_path_up_to, a, b, check_types=False),
        outcome(api.map_structure_up_to, a, repr, b),
        outcome(api.assert_shallow_structure, a, b),
        outcome(api.list_to_tuple, a),
        outcome(lambda: api.spec_of(a).flatten(b)),
        outcome(lambda: api.spec_of(a).map(lambda x, y: y, a, b)),
    ]


@SETTINGS
@given(ab=pairs())
def test_backends_agree_exactly(ab):
    a, b = ab
    ours, theirs = _all_ops(PYTHON, a, b), _all_ops(DM, a, b)
    for i, (x, y) in enumerate(zip(ours, theirs)):
        assert same_outcome(x, y), (i, x, y)


# --------------------------------------------------------------------------
# the strategies themselves
# --------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_strategies_respect_their_bounds(data):
    max_leaves = data.draw(st.integers(0, 6))
    max_depth = data.draw(st.integers(0, 3))
    kinds = data.draw(st.lists(st.sampled_from(nt.CONTAINERS), min_size=1, unique=True))
    s = data.draw(
        nt.structures(
            st.integers(),
            max_leaves=max_leaves,
            max_depth=max_depth,
            containers=kinds,
            max_children=3,
        )
    )
    assert len(PYTHON.flatten(s)) <= max_leaves
    assert all(isinstance(x, int) for x in PYTHON.flatten(s))

    def depth(x):
        if isinstance(x, (list, tuple)):
            kids = list(x)
        elif isinstance(x, collections.abc.Mapping):
            kids = list(x.values())
        elif hasattr(type(x), "__attrs_attrs__"):
            kids = [getattr(x, f.name) for f in type(x).__attrs_attrs__]
        else:
            return 0
        return 1 + max([depth(k) for k in kids], default=0)

    assert depth(s) <= max(max_depth, 1 if max_leaves == 0 else 0)
    group = data.draw(nt.structures_with_same_shape(3, containers=kinds, max_leaves=max_leaves))
    assert len(group) == 3
    for other in group[1:]:
        PYTHON.assert_same_structure(group[0], other)
    shallow, deep = data.draw(nt.shallow_and_deep(containers=kinds))
    PYTHON.assert_shallow_structure(shallow, deep)


@pytest.mark.parametrize(
    "bad, exc",
    [
        (dict(containers="list"), TypeError),
        (dict(containers=["list", "set"]), ValueError),
        (dict(max_leaves=-1), ValueError),
        (dict(max_depth=1.5), TypeError),
        (dict(max_children=99), ValueError),
        (dict(leaves=[1, 2]), TypeError),
        (dict(max_leaves=0, containers=[]), ValueError),
    ],
)
def test_strategy_arguments_are_checked(bad, exc):
    for fn in (nt.structures, nt.shallow_and_deep):
        with pytest.raises(exc):
            fn(**bad)
    with pytest.raises(exc):
        nt.structures_with_same_shape(2, **bad)


def test_same_shape_count_is_checked():
    with pytest.raises(ValueError, match="count"):
        nt.structures_with_same_shape(0)
    with pytest.raises(TypeError, match="count"):
        nt.structures_with_same_shape("2")


def test_generated_record_types_are_shared_and_pickle():
    nt_cls = nt._record_type("namedtuple", ("x", "b"))
    assert nt._record_type("namedtuple", ("x", "b")) is nt_cls
    value = nt_cls(1, [2])
    assert pickle.loads(pickle.dumps(value)) == value
    if "attrs" in nt.DEFAULT_CONTAINERS:
        at = nt._record_type("attrs", ("h", "a"))
        assert [f.name for f in at.__attrs_attrs__] == ["h", "a"]
        assert pickle.loads(pickle.dumps(at(1, 2))) == at(1, 2)
