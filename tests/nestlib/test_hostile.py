"""Hostile input: every public function gives a clear Python exception.

Self-referencing containers, nesting 10,000 levels deep, unsortable keys and
objects whose methods raise must never hang or crash the interpreter. The
full matrix of public functions on cycles and 10,000-deep nests runs in a
child process (one per backend) with a timeout, so that a crash or a hang
fails the test instead of taking the test run down. Nesting up to
MAX_DEPTH (1,000) levels is legal and must work on both backends.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

try:  # attrs is optional: its case is skipped without it
    import attrs
except ImportError:  # pragma: no cover - nestlib's suite without the extras
    attrs = None

from nestlib import _backend
from tests.objects import identical

ROOT = pathlib.Path(__file__).resolve().parents[2]
AVAILABLE = [
    b for b in _backend.BACKENDS if b != "dm-tree" or importlib.util.find_spec("tree") is not None
]

NT = collections.namedtuple("NT", "a b")


def chain(depth: int, leaf=1, wrap=lambda x: [x]):
    s = leaf
    for _ in range(depth):
        s = wrap(s)
    return s


# --------------------------------------------------------------------------
# the full matrix, in a child process
# --------------------------------------------------------------------------

MATRIX = textwrap.dedent("""
    import collections, json, sys
    from nestlib import _backend
    n = _backend.api(sys.argv[1])
    NT = collections.namedtuple("NT", "a b")

    def chain(depth, wrap):
        s = 1
        for _ in range(depth):
            s = wrap(s)
        return s

    import collections.abc as cabc

    class Boom(Exception):
        pass

    def boom(*args):
        raise Boom("hostile")

    def hostile(base, method):
        ns = {"__getitem__": lambda self, k: [1, 2][k] if base is cabc.Sequence else 1,
              "__iter__": lambda self: iter([0, 1]), "__len__": lambda self: 2}
        ns[method] = boom
        return type("Hostile", (base,), ns)()

    hostiles = {f"{b.__name__} whose {m} raises": [1, {"k": hostile(b, m)}]
                for b in (cabc.Mapping, cabc.Sequence)
                for m in ("__iter__", "__len__", "__getitem__")}
    cyc_list = []; cyc_list.append(cyc_list)
    cyc_dict = {}; cyc_dict["self"] = cyc_dict
    cyc_nt = NT([], 1); cyc_nt.a.append(cyc_nt)
    cyc_deep = [[{"x": None}]]; cyc_deep[0][0]["x"] = cyc_deep
    inputs = {
        "cycle list": cyc_list, "cycle dict": cyc_dict, "cycle namedtuple": cyc_nt,
        "cycle deeper": cyc_deep,
        "10k lists": chain(10_000, lambda x: [x]),
        "10k dicts": chain(10_000, lambda x: {"k": x}),
        "10k tuples": chain(10_000, lambda x: (x,)),
        "10k namedtuples": chain(10_000, lambda x: NT(x, 0)),
        **hostiles,
    }
    ops = {
        "flatten": lambda s: n.flatten(s),
        "unflatten_as": lambda s: n.unflatten_as(s, [0]),
        "pack_sequence_as": lambda s: n.pack_sequence_as(s, [0]),
        "map_structure": lambda s: n.map_structure(lambda x: x, s),
        "map_structure 2": lambda s: n.map_structure(lambda x, y: x, s, s),
        "map_structure_with_path": lambda s: n.map_structure_with_path(lambda p, x: x, s),
        "map_structure_with_tuple_paths":
            lambda s: n.map_structure_with_tuple_paths(lambda p, x: x, s),
        "map_structure_with_paths": lambda s: n.map_structure_with_paths(lambda p, x: x, s),
        "flatten_with_path": lambda s: n.flatten_with_path(s),
        "flatten_with_tuple_paths": lambda s: n.flatten_with_tuple_paths(s),
        "flatten_with_joined_string_paths": lambda s: n.flatten_with_joined_string_paths(s),
        "yield_flat_paths": lambda s: list(n.yield_flat_paths(s)),
        "assert_same_structure": lambda s: n.assert_same_structure(s, s),
        "assert_same_structure no types": lambda s: n.assert_same_structure(s, s, False),
        "assert_shallow_structure": lambda s: n.assert_shallow_structure(s, s),
        "flatten_up_to": lambda s: n.flatten_up_to(s, s),
        "flatten_with_path_up_to": lambda s: n.flatten_with_path_up_to(s, s),
        "map_structure_up_to": lambda s: n.map_structure_up_to(s, lambda x: x, s),
        "map_structure_with_path_up_to":
            lambda s: n.map_structure_with_path_up_to(s, lambda p, x: x, s),
        "traverse": lambda s: n.traverse(lambda x: None, s),
        "traverse bottom-up": lambda s: n.traverse(lambda x: None, s, top_down=False),
        "traverse_with_path": lambda s: n.traverse_with_path(lambda p, x: None, s),
        "list_to_tuple": lambda s: n.list_to_tuple(s),
        "spec_of": lambda s: n.spec_of(s),
        "is_nested": lambda s: n.is_nested(s),
    }
    out = []
    for iname, s in inputs.items():
        for oname, op in ops.items():
            try:
                op(s)
                out.append([iname, oname, "returned", ""])
            except Exception as e:
                out.append([iname, oname, type(e).__name__, str(e)[:300]])
    out.append(["recursion limit", "", "", sys.getrecursionlimit()])
    print(json.dumps(out))
""")


@pytest.mark.parametrize("backend", AVAILABLE)
def test_every_function_on_cycles_and_10k_deep_nests(backend):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-c", MATRIX, backend],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # a crash shows up here
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    *rows, (_, _, _, limit) = rows
    assert limit == 1000  # no function left the recursion limit raised
    assert any("Mapping whose __iter__ raises" in r[0] for r in rows)
    for iname, oname, outcome, text in rows:
        where = f"{oname} on {iname}"
        if oname == "is_nested":
            assert outcome == "returned", where
            continue
        if "raises" in iname:  # no crash is the point; the user's error or ours
            assert outcome in ("returned", "Boom", "ValueError", "TypeError"), where
            continue
        assert outcome == "ValueError", f"{where}: {outcome} {text}"
        assert len(text) < 2000
        if iname.startswith("cycle"):
            assert "contains itself" in text or "nested more than 1000 levels" in text, where
        else:
            assert text.startswith("structure is nested more than 1000 levels deep at "), where


# --------------------------------------------------------------------------
# cycles and depth, in process: the exact messages
# --------------------------------------------------------------------------


def test_cycle_messages_name_the_path(nest):
    a = []
    a.append(a)
    with pytest.raises(ValueError) as info:
        nest.flatten(a)
    assert str(info.value) == (
        "structure contains itself at [0] (a reference cycle back to "
        "list of length 1); nests must be trees"
    )
    d = {"ok": 1}
    d["self"] = d
    with pytest.raises(ValueError, match=r"contains itself at \['self'\]"):
        nest.map_structure(lambda x: x, d)
    nt = NT([], 1)
    nt.a.append(nt)
    with pytest.raises(ValueError, match=r"contains itself at \['k'\]\.a\[0\] .*namedtuple NT"):
        nest.flatten_with_path({"k": nt})
    with pytest.raises(ValueError, match="contains itself"):
        nest.spec_of([d])


def test_shared_subtrees_are_not_cycles(nest):
    x = [1, {"a": 2}]
    s = [x, (x, {"b": x})]
    assert nest.flatten(s) == [1, 2, 1, 2, 1, 2]
    assert nest.map_structure(lambda v: v * 10, s) == [
        [10, {"a": 20}],
        ([10, {"a": 20}], {"b": [10, {"a": 20}]}),
    ]
    nest.assert_same_structure(s, s)
    assert nest.spec_of(s).num_leaves == 6


@pytest.mark.parametrize(
    "wrap",
    [lambda x: [x], lambda x: {"k": x}, lambda x: NT(x, 0), lambda x: (x,)],
    ids=["list", "dict", "namedtuple", "tuple"],
)
def test_max_depth_is_legal_on_both_backends(nest, wrap):
    limit = sys.getrecursionlimit()
    leaf = "leaf"
    s = chain(999, leaf, wrap)
    flat = nest.flatten(s)
    assert flat[0] == leaf
    n = len(flat)
    assert identical(nest.unflatten_as(s, flat), s)
    assert identical(nest.map_structure(lambda x: x, s), s)
    assert identical(nest.map_structure(lambda x, y: y, s, s), s)
    paths = nest.flatten_with_path(s)
    assert len(paths) == n and len(max((p for p, _ in paths), key=len)) == 999
    nest.assert_same_structure(s, s)
    nest.assert_same_structure(s, nest.map_structure(str, s), check_types=False)
    assert nest.flatten_up_to(s, s) == flat
    assert identical(nest.map_structure_up_to(s, lambda x: x, s), s)
    assert identical(nest.traverse(lambda x: None, s), s)
    assert identical(nest.traverse(lambda x: None, s, top_down=False), s)
    assert nest.flatten(nest.list_to_tuple(s)) == flat
    spec = nest.spec_of(s)
    assert spec.num_leaves == n
    assert identical(spec.unflatten(flat), s)
    assert spec.flatten(s) == flat
    assert identical(spec.map(lambda x: x, s), s)
    assert sys.getrecursionlimit() == limit


#: Python 3.12 gave C code a recursion limit of its own (about 1,500 levels on
#: 3.12, 10,000 on 3.13) in place of ``sys.getrecursionlimit()``; dm-tree's
#: compiled ``flatten``, which the dm-tree backend's ``flatten`` tries first,
#: then returns the leaves of nests deeper than MAX_DEPTH up to that limit
#: (nestlib's ValueError comes past it, and from every other function).
DM_TREE_FLATTENS_PAST_MAX_DEPTH = sys.version_info >= (3, 12)


def test_spec_of_a_deep_nest_again_comes_from_the_cache_or_is_rebuilt(nest):
    # Python 3.12 compares the cached 999-deep treedef in C, past its C
    # recursion limit: the Spec is then built again instead of failing (or,
    # as it once did, retrying forever).
    for _ in range(2):
        spec = nest.spec_of(chain(999, "x"))
        assert spec.num_leaves == 1 and identical(spec.unflatten(["y"]), chain(999, "y"))


def test_one_more_level_than_max_depth_is_rejected(nest):
    ok, too_deep = chain(nest.MAX_DEPTH), chain(nest.MAX_DEPTH + 1)
    assert nest.flatten(ok) == [1]
    nest.traverse(lambda x: None, ok)
    if nest.backend() == "dm-tree" and DM_TREE_FLATTENS_PAST_MAX_DEPTH:
        assert nest.flatten(too_deep) == [1]
        with pytest.raises(ValueError, match="nested more than 1000 levels deep"):
            nest.flatten(chain(12_000))
    for fn in (
        nest.flatten,
        nest.flatten_with_path,
        nest.spec_of,
        nest.list_to_tuple,
        lambda s: nest.assert_same_structure(s, s),
        lambda s: nest.traverse(lambda x: None, s),
    ):
        if fn is nest.flatten and nest.backend() == "dm-tree" and DM_TREE_FLATTENS_PAST_MAX_DEPTH:
            continue  # checked above
        with pytest.raises(ValueError, match="nested more than 1000 levels deep"):
            fn(too_deep)


def test_deep_mismatch_reports_the_path_without_recursing(nest):
    a, b = chain(999), chain(998, [1])  # b has a list where a has 1 at the bottom
    with pytest.raises(ValueError) as info:
        nest.assert_same_structure(a, chain(999, [1, 2]))
    assert str(info.value).endswith("leaf int 1 vs list of length 2")
    with pytest.raises(ValueError):
        nest.map_structure(lambda x, y: x, chain(999, (1,)), chain(999, (1, 2)))
    nest.assert_same_structure(a, b, check_types=False)


# --------------------------------------------------------------------------
# objects whose methods raise
# --------------------------------------------------------------------------

from tests.objects import (  # noqa: E402
    BadEq,
    BadGetItem,
    BadIter,
    BadKeys,
    BadLen,
    BadOrder,
    BadRepr,
    Boom,
    Map,
    Seq,
)


def all_functions(nest):
    """Every public structure function, as a one-argument call."""
    return {
        "flatten": nest.flatten,
        "unflatten_as": lambda s: nest.unflatten_as(s, [0]),
        "map_structure": lambda s: nest.map_structure(lambda x: x, s),
        "map_structure 2": lambda s: nest.map_structure(lambda x, y: x, s, s),
        "map_structure_with_path": lambda s: nest.map_structure_with_path(lambda p, x: x, s),
        "flatten_with_path": nest.flatten_with_path,
        "flatten_with_joined_string_paths": nest.flatten_with_joined_string_paths,
        "yield_flat_paths": lambda s: list(nest.yield_flat_paths(s)),
        "assert_same_structure": lambda s: nest.assert_same_structure(s, s),
        "assert_shallow_structure": lambda s: nest.assert_shallow_structure(s, s),
        "flatten_up_to": lambda s: nest.flatten_up_to(s, s),
        "map_structure_up_to": lambda s: nest.map_structure_up_to(s, lambda x: x, s),
        "traverse": lambda s: nest.traverse(lambda x: None, s),
        "list_to_tuple": nest.list_to_tuple,
        "spec_of": nest.spec_of,
        "is_nested": nest.is_nested,
    }


def test_leaves_whose_eq_and_repr_raise_are_never_called(nest):
    for leaf in (BadEq(), BadRepr()):
        s = {"a": [leaf, 1], "b": leaf}
        for name, fn in all_functions(nest).items():
            if name != "unflatten_as":
                fn(s)
        assert nest.flatten(s)[0] is leaf
        assert nest.spec_of(s).flatten(s)[0] is leaf


def test_a_broken_repr_still_gives_a_message(nest):
    with pytest.raises(ValueError, match=r"at \['a'\]: leaf BadRepr <BadRepr instance"):
        nest.assert_same_structure({"a": BadRepr()}, {"a": [1]})


def test_sequence_whose_len_raises_is_iterated(nest):
    assert nest.flatten([BadLen()]) == [0, 1]
    assert nest.flatten_with_path([BadLen()]) == [((0, 0), 0), ((0, 1), 1)]
    # it cannot be rebuilt (its constructor takes no values): a clear TypeError
    with pytest.raises(TypeError, match="could not rebuild a BadLen from 2 values"):
        nest.map_structure(lambda x: x, [BadLen()])


@pytest.mark.parametrize(
    "structure, message, path",
    [
        ({"a": BadIter()}, "iter", "['a']"),
        ([BadKeys()], "iter", "[0]"),
        ([1, BadGetItem()], "getitem", "[1]"),
        ({BadOrder(): 1, BadOrder(): 2}, "lt", "the top level"),
        ({"x": [0, (1, {"y": BadIter()})]}, "iter", "['x'][1][1]['y']"),
    ],
    ids=["iter", "keys", "getitem", "key-order", "deep"],
)
def test_user_exceptions_propagate_with_the_path(nest, structure, message, path):
    for name, fn in all_functions(nest).items():
        if name == "is_nested":
            assert fn(structure) is True
            continue
        with pytest.raises(Boom, match=message) as info:
            fn(structure)
        notes = getattr(info.value, "__notes__", [])
        assert any(path in note for note in notes), (name, notes)


# Node types whose constructors refuse the value 99 (one per node kind that
# is rebuilt by calling the type).
class PickyTuple(collections.namedtuple("PickyTuple", "a b")):
    def __new__(cls, a, b):
        _refuse([a, b])
        return super().__new__(cls, a, b)


class PickyList(list):
    def __init__(self, values=()):
        _refuse(values)
        super().__init__(values)


class PickyDict(dict):
    def __init__(self, *args):
        super().__init__(*args)
        _refuse(self.values())


class PickyMapping(Map):
    def __init__(self, items):
        _refuse(dict(items).values())
        super().__init__(items)


class PickySeq(Seq):
    def __init__(self, values):
        _refuse(values)
        super().__init__(values)


if attrs is not None:

    @attrs.define
    class PickyAttrs:
        a: int = attrs.field(validator=lambda _, __, v: _refuse([v]))
        b: int = 0


def _refuse(values):
    if 99 in list(values):
        raise Boom("99 is refused")


def rebuilding_functions(nest, n_leaves):
    """Every public function that builds new nodes, fed values a Picky* refuses."""
    return {
        "unflatten_as": lambda s: nest.unflatten_as(s, [99] * n_leaves),
        "pack_sequence_as": lambda s: nest.pack_sequence_as(s, [99] * n_leaves),
        "map_structure": lambda s: nest.map_structure(lambda x: 99, s),
        "map_structure 2": lambda s: nest.map_structure(lambda x, y: 99, s, s),
        "map_structure_with_path": lambda s: nest.map_structure_with_path(lambda p, x: 99, s),
        "map_structure_up_to": lambda s: nest.map_structure_up_to(s, lambda x: 99, s),
        "map_structure_with_path_up_to": lambda s: nest.map_structure_with_path_up_to(
            s, lambda p, x: 99, s
        ),
        "traverse": lambda s: nest.traverse(lambda x: 99 if x == 1 else None, s),
        "traverse bottom-up": lambda s: nest.traverse(
            lambda x: 99 if x == 1 else None, s, top_down=False
        ),
        "Spec.unflatten": lambda s: nest.spec_of(s).unflatten([99] * n_leaves),
        "Spec.map": lambda s: nest.spec_of(s).map(lambda x: 99, s),
    }


@pytest.mark.parametrize(
    "node",
    [
        PickyTuple(1, 1),
        PickyList([1, 1]),
        PickyDict({"k": 1, "j": 1}),
        PickyMapping({"k": 1, "j": 1}),
        PickySeq([1, 1]),
        (
            PickyAttrs(1, 1)
            if attrs is not None
            else pytest.param(
                None, marks=pytest.mark.skip(reason="attrs is not installed"), id="PickyAttrs"
            )
        ),
    ],
    ids=lambda n: type(n).__name__,
)
def test_a_node_type_refusing_its_values_is_named_by_path(nest, node):
    s = {"x": [0, (node, 2)], "y": [3]}
    for name, fn in rebuilding_functions(nest, len(nest.flatten(s))).items():
        with pytest.raises(
            TypeError,
            match=f"could not rebuild a {type(node).__name__} from 2 values: 99 is refused",
        ) as info:
            fn(s)
        notes = getattr(info.value, "__notes__", [])
        assert notes == ["(nestlib: raised while rebuilding the node at ['x'][1][0])"], (
            name,
            notes,
        )
        assert isinstance(info.value.__cause__, Boom), name
    # the same values are fine where the type accepts them
    accepted = nest.map_structure(lambda x: 5, s)["x"][1][0]
    assert type(accepted) is type(node) and nest.flatten(accepted) == [5, 5]


def test_a_refusing_node_shared_by_two_places_names_both(nest):
    node = PickyTuple(1, 1)
    s = [{"a": node}, node]
    for name, fn in rebuilding_functions(nest, 4).items():
        with pytest.raises(TypeError, match="could not rebuild a PickyTuple") as info:
            fn(s)
        also = "" if name.startswith("Spec") else " (the same object is also at [1])"
        # (a Spec rebuilds from its own skeleton, which shares nothing)
        assert info.value.__notes__ == [
            f"(nestlib: raised while rebuilding the node at [0]['a']{also})"
        ], name


def test_hostile_nodes_compared_with_plain_ones_give_structure_errors(nest):
    with pytest.raises(TypeError, match=r"at \[0\]: BadKeys \(unreadable: Boom\) vs list"):
        nest.assert_same_structure([BadKeys()], [[1, 2]])
    with pytest.raises(TypeError, match="unreadable"):
        nest.assert_same_structure({BadOrder(): 1, BadOrder(): 2}, [1])


def test_unsortable_keys_everywhere(nest):
    s = {"x": {1: "a", "b": 2}}
    for name, fn in all_functions(nest).items():
        if name == "is_nested":
            continue
        with pytest.raises(TypeError, match="sortable keys"):
            fn(s)


# --------------------------------------------------------------------------
# callbacks that raise
# --------------------------------------------------------------------------


def test_callback_exceptions_propagate_unchanged(nest):
    class Mine(Exception):
        pass

    err = Mine("from the callback")

    def raiser(*args):
        raise err

    s = {"a": [1, 2], "b": NT(3, 4)}
    calls = [
        lambda: nest.map_structure(raiser, s),
        lambda: nest.map_structure(raiser, s, s),
        lambda: nest.map_structure_with_path(raiser, s),
        lambda: nest.map_structure_with_paths(raiser, s),
        lambda: nest.map_structure_up_to(s, raiser, s),
        lambda: nest.map_structure_with_path_up_to(s, raiser, s),
        lambda: nest.traverse(raiser, s),
        lambda: nest.traverse_with_path(raiser, s, top_down=False),
        lambda: nest.spec_of(s).map(raiser, s),
    ]
    for call in calls:
        with pytest.raises(Mine) as info:
            call()
        assert info.value is err
        assert not getattr(err, "__notes__", None)  # nestlib added nothing


def test_callback_raising_recursion_error_is_not_mistaken_for_depth(nest):
    def f(x):
        raise RecursionError("the user's own")

    with pytest.raises(RecursionError, match="the user's own"):
        nest.map_structure(f, [1])
    with pytest.raises(RecursionError, match="the user's own"):
        nest.traverse(f, [1])


def test_callback_called_once_per_leaf_even_for_deep_nests(nest):
    calls = []
    nest.traverse(lambda x: calls.append(1), chain(999))
    assert len(calls) == 1000
    calls.clear()
    nest.map_structure(lambda x: calls.append(1), chain(999))
    assert len(calls) == 1
