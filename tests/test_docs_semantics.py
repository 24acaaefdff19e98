"""Every row of the semantics tables in docs/nest.md, checked against the real libraries.

docs/nest.md states what is a node and what is a leaf, and how nestlib differs
from dm-tree, tf.nest (``tensorflow.python.util.nest``) and optree. This file
holds one or more checks per table row (and per claim of the prose around the
tables), keyed by the row's first cell, and records the text each check was
written for:

* ``test_doc_rows_match_checks`` parses the tables and fails when a row has no
  check, a check has no row, or a row's text changed since its check was
  written (so editing a claim means revisiting its check);
* ``test_row`` runs the checks. nestlib's columns are checked on both
  backends. A check that shows the documented claim is wrong is marked
  ``xfail(strict=True)`` with what was observed instead, until the table is
  corrected (and then the check must follow).

dm-tree classifies ``wrapt.ObjectProxy`` once per type in its compiled code,
so what it (and nestlib's dm-tree backend, which calls that code) does with
proxies depends on what it saw earlier in the process. Those checks run in
fresh child processes, in both orders.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import dataclasses
import functools
import importlib.util
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys
import types
from collections.abc import Callable

import numpy as np
import pytest

import nestlib
from nestlib import _backend
from tests.objects import Map, ProtoPair, Seq

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "nest.md"
BACKENDS = [
    b for b in _backend.BACKENDS if b != "dm-tree" or importlib.util.find_spec("tree") is not None
]

NODES = "What is a node, what is a leaf"
DM_TREE = "Differences from dm-tree"
TF_NEST = "Differences from tf.nest"
OPTREE = "Differences from optree"


# --------------------------------------------------------------------------
# The libraries compared against (each check skips clearly if one is missing).
# --------------------------------------------------------------------------


def dm_tree():
    return pytest.importorskip("tree", reason="dm-tree is not installed")


def tf_nest():
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed")
    from tensorflow.python.util import nest

    return nest


def optree_lib():
    return pytest.importorskip("optree", reason="optree is not installed")


def wrapt_lib():
    return pytest.importorskip("wrapt", reason="wrapt is not installed")


def attrs_lib():
    return pytest.importorskip("attr", reason="attrs is not installed")


def error_of(fn: Callable, *args, **kwargs) -> BaseException | None:
    try:
        fn(*args, **kwargs)
    except Exception as e:
        return e
    return None


def run_child(code: str, *args: str, backend: str | None = None) -> dict:
    """Runs ``code`` in a fresh interpreter; it prints one JSON object last."""
    env = dict(os.environ)
    env.pop("NESTLIB_BACKEND", None)
    if backend is not None:
        env["NESTLIB_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(ROOT),
    )
    assert result.returncode == 0, f"child failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


Mapping = Map


Point = collections.namedtuple("Point", "y x")  # fields deliberately not sorted


class SubPoint(Point):
    pass


def chain(depth: int):
    s = 1
    for _ in range(depth):
        s = [s]
    return s


# --------------------------------------------------------------------------
# ObjectProxy behaviour, in fresh processes (see the module docstring).
# --------------------------------------------------------------------------

PROXY_CHILD = r"""
import json, sys, types, collections
import wrapt
lib, order = sys.argv[1], sys.argv[2]
if lib == "tree":
    import tree as m
else:
    import nestlib as m
P = collections.namedtuple("P", "y x")

def outcome(fn):
    try:
        return fn()
    except Exception as e:
        return "raises " + type(e).__name__

def leaf():
    p = wrapt.ObjectProxy(1)
    flat = outcome(lambda: m.flatten(p))
    itself = flat if isinstance(flat, str) else (len(flat) == 1 and flat[0] is p)
    nested = outcome(lambda: m.is_nested(p))
    return {"is_nested": nested if isinstance(nested, (str, bool)) else repr(nested),
            "flatten_is_itself": itself if isinstance(itself, (str, bool)) else repr(itself)}

def container():
    out = {"is_nested": outcome(lambda: m.is_nested(wrapt.ObjectProxy([1, (2, 3)]))),
           "flatten": outcome(lambda: m.flatten(wrapt.ObjectProxy([1, (2, 3)]))),
           "paths": outcome(lambda: [list(p) for p, _ in
                                     m.flatten_with_path(wrapt.ObjectProxy(P(1, 2)))])}
    def mapped():
        r = m.map_structure(lambda x: x * 10, wrapt.ObjectProxy({"b": 1, "a": 2}))
        w = getattr(r, "__wrapped__", None)
        return {"proxy": isinstance(r, wrapt.ObjectProxy),
                "wraps": ("generator" if isinstance(w, types.GeneratorType)
                          else type(w).__name__),
                "items": sorted(w.items()) if isinstance(w, dict) else None}
    out["map_mapping"] = outcome(mapped)
    return out

steps = [leaf, container] if order == "leaf-first" else [container, leaf]
print(json.dumps({step.__name__: step() for step in steps}, default=repr))
"""


@functools.cache
def proxy_run(lib: str, order: str, backend: str | None = None) -> dict:
    wrapt_lib()
    if lib == "tree":
        dm_tree()
    return run_child(PROXY_CHILD, lib, order, backend=backend)


NESTLIB_PROXY_CONTAINER = {
    "is_nested": True,
    "flatten": [1, 2, 3],
    "paths": [["y"], ["x"]],
    "map_mapping": {"proxy": True, "wraps": "dict", "items": [["a", 20], ["b", 10]]},
}


# --------------------------------------------------------------------------
# What is a node, what is a leaf
# --------------------------------------------------------------------------


def node_sequences(nest):
    tree = dm_tree()
    for s in ([1, [2]], (1, (2,)), Seq([1, [2]])):
        assert nest.is_nested(s)
        assert nest.flatten(s) == [1, 2]
        assert [p for p, _ in nest.flatten_with_path(s)] == [(0,), (1, 0)]
        assert tree.flatten(s) == [1, 2]
        assert [p for p, _ in tree.flatten_with_path(s)] == [(0,), (1, 0)]
    rebuilt = nest.map_structure(str, Seq([1, 2]))
    assert type(rebuilt) is Seq and list(rebuilt) == ["1", "2"]


def node_namedtuples(nest):
    tree = dm_tree()
    for s in (Point(1, 2), SubPoint(1, 2)):
        assert nest.flatten(s) == [1, 2]  # field order, not sorted
        assert [p for p, _ in nest.flatten_with_path(s)] == [("y",), ("x",)]
        assert type(nest.map_structure(str, s)) is type(s)
        assert [p for p, _ in tree.flatten_with_path(s)] == [("y",), ("x",)]


def node_mappings(nest):
    tree = dm_tree()
    mappings = [
        {"b": 1, "a": 2},
        collections.OrderedDict([("b", 1), ("a", 2)]),
        collections.defaultdict(list, {"b": 1, "a": 2}),
        types.MappingProxyType({"b": 1, "a": 2}),
        Mapping({"b": 1, "a": 2}),
    ]
    for m in mappings:
        assert nest.is_nested(m), type(m)
        assert nest.flatten(m) == [2, 1], type(m)  # sorted keys
        assert [p for p, _ in nest.flatten_with_path(m)] == [("a",), ("b",)], type(m)
        assert tree.flatten(m) == [2, 1], type(m)
        assert [p for p, _ in tree.flatten_with_path(m)] == [("a",), ("b",)], type(m)
    rebuilt = nest.map_structure(str, mappings[2])
    assert type(rebuilt) is collections.defaultdict and rebuilt.default_factory is list
    assert list(nest.map_structure(str, mappings[1])) == ["b", "a"]  # original order kept


def node_attrs(nest):
    attr = attrs_lib()
    tree = dm_tree()

    @attr.s
    class Record:
        z = attr.ib()
        a = attr.ib()

    r = Record(1, [2])
    assert nest.flatten(r) == [1, 2]  # definition order
    assert [p for p, _ in nest.flatten_with_path(r)] == [("z",), ("a", 0)]
    assert type(nest.map_structure(str, r)) is Record
    assert tree.flatten(r) == [1, 2]


def node_mapping_views(nest):
    tree = dm_tree()
    d = {"b": 1, "a": 2}
    assert nest.flatten(d.keys()) == ["b", "a"]  # view order, not sorted
    assert nest.flatten(d.values()) == [1, 2]
    assert nest.flatten(d.items()) == ["b", 1, "a", 2]
    assert [p for p, _ in nest.flatten_with_path(d.keys())] == [(0,), (1,)]
    assert tree.flatten(d.items()) == ["b", 1, "a", 2]


def node_object_proxy(backend):
    wrapt = wrapt_lib()
    for order in ("leaf-first", "container-first"):
        seen = proxy_run("nestlib", order, backend)
        assert seen["container"] == NESTLIB_PROXY_CONTAINER, (order, seen)
        assert seen["leaf"] == {"is_nested": False, "flatten_is_itself": True}, (order, seen)
    if backend == "python":  # and in this process too
        nest = _backend.api("python")
        assert nest.flatten(wrapt.ObjectProxy({"b": 1, "a": 2})) == [2, 1]


def node_leaves(nest):
    tree = dm_tree()
    leaves = [
        "ab",
        b"ab",
        bytearray(b"ab"),
        {1, 2},
        frozenset([3]),
        np.zeros(3),
        None,
        3,
        2.5,
        object(),
    ]
    if importlib.util.find_spec("tensorflow") is not None:
        import tensorflow as tf

        leaves.append(tf.constant([1.0, 2.0]))
    for leaf in leaves:
        assert not nest.is_nested(leaf), type(leaf)
        flat = nest.flatten(leaf)
        assert len(flat) == 1 and flat[0] is leaf, type(leaf)
        assert nest.flatten([leaf, leaf])[1] is leaf
        assert not tree.is_nested(leaf), type(leaf)


# --------------------------------------------------------------------------
# Differences from dm-tree
# --------------------------------------------------------------------------


def _big_pair():
    a = {f"k{i:03d}": list(range(10)) for i in range(1000)}
    b = dict(a)
    b["k500"] = list(range(11))
    return a, b


def dm_messages_dm_tree():
    tree = dm_tree()
    a, b = _big_pair()
    e = error_of(tree.assert_same_structure, a, b)
    assert isinstance(e, ValueError)
    assert len(str(e)) > 10_000, len(str(e))  # tens of kB
    assert "'k999'" in str(e) and "'k000'" in str(e)  # whole structures


def dm_messages_nestlib(nest):
    a, b = _big_pair()
    for call in (
        lambda: nest.assert_same_structure(a, b),
        lambda: nest.map_structure(lambda x, y: x, a, b),
    ):
        e = error_of(call)
        assert isinstance(e, ValueError)
        assert len(str(e)) < 2000, len(str(e))
        assert "['k500']" in str(e), str(e)


def dm_bytearray_dm_tree():
    tree = dm_tree()
    ba = bytearray(b"ab")
    assert tree.flatten(ba) == [ba]
    assert tree.flatten_with_path(ba) == [((0,), 97), ((1,), 98)]


def dm_bytearray_nestlib(nest):
    ba = bytearray(b"ab")
    assert nest.flatten(ba) == [ba]
    assert nest.flatten_with_path(ba) == [((), ba)]
    assert nest.map_structure(lambda x: x, [ba])[0] is ba
    assert nest.flatten_up_to([None], [ba]) == [ba]


def dm_views_dm_tree():
    tree = dm_tree()
    keys = {"b": 1, "a": 2}.keys()
    assert tree.flatten(keys) == ["b", "a"]
    assert tree.flatten_with_path(keys) == [((), keys)]


def dm_views_nestlib(nest):
    d = {"b": 1, "a": 2}
    assert nest.flatten(d.keys()) == ["b", "a"]
    assert nest.flatten_with_path(d.keys()) == [((0,), "b"), ((1,), "a")]
    assert nest.flatten_with_path(d.items()) == [
        ((0, 0), "b"),
        ((0, 1), 1),
        ((1, 0), "a"),
        ((1, 1), 2),
    ]


def dm_proxy_leaf_dm_tree():
    fresh = proxy_run("tree", "leaf-first")
    assert fresh["leaf"]["is_nested"] is False, fresh["leaf"]
    after_container = proxy_run("tree", "container-first")
    assert after_container["leaf"]["is_nested"] is True, after_container["leaf"]


def dm_proxy_leaf_nestlib(backend):
    for order in ("leaf-first", "container-first"):
        seen = proxy_run("nestlib", order, backend)
        assert seen["leaf"] == {"is_nested": False, "flatten_is_itself": True}, (order, seen)


def dm_proxy_mapping_dm_tree():
    seen = proxy_run("tree", "container-first")
    assert seen["container"]["map_mapping"]["proxy"] is True, seen
    assert seen["container"]["map_mapping"]["wraps"] == "generator", seen


def dm_proxy_mapping_nestlib(backend):
    for order in ("leaf-first", "container-first"):
        seen = proxy_run("nestlib", order, backend)
        assert seen["container"]["map_mapping"] == NESTLIB_PROXY_CONTAINER["map_mapping"], (
            order,
            seen,
        )


def dm_with_path_dm_tree():
    tree = dm_tree()
    assert tree.map_structure_with_path(lambda p, x, y: x, [1], (1,)) == [1]
    assert isinstance(error_of(tree.map_structure, lambda x, y: x, [1], (1,)), TypeError)


def dm_with_path_nestlib(nest):
    e = error_of(nest.map_structure_with_path, lambda p, x, y: x, [1], (1,))
    assert isinstance(e, TypeError), e
    assert type(error_of(nest.map_structure, lambda x, y: x, [1], (1,))) is type(e)
    assert nest.map_structure_with_path(lambda p, x, y: x, [1], (1,), check_types=False) == [1]


DM_TREE_DEEP_CHILD = r"""
import json, tree
def chain(depth):
    s = 1
    for _ in range(depth):
        s = [s]
    return s
def kind(fn):
    try:
        fn()
        return "ok"
    except Exception as e:
        return type(e).__name__
loop = [1]
loop.append(loop)
print(json.dumps({
    "cycle flatten": kind(lambda: tree.flatten(loop)),
    "cycle map_structure": kind(lambda: tree.map_structure(lambda x: x, loop)),
    "cycle flatten_with_path": kind(lambda: tree.flatten_with_path(loop)),
    "deep flatten": kind(lambda: tree.flatten(chain(1100))),
    "deep flatten_with_path": kind(lambda: tree.flatten_with_path(chain(1100))),
    "deeper flatten": kind(lambda: tree.flatten(chain(12_000))),
}))
"""

#: Python 3.12 gave C code a recursion limit of its own (about 1,500 levels on
#: 3.12, 10,000 on 3.13) in place of ``sys.getrecursionlimit()``, so dm-tree's
#: compiled ``flatten`` (and the dm-tree backend's ``flatten``, which tries it
#: first) goes deeper than ~1,000 levels there.
DM_TREE_C_DEPTH = sys.version_info >= (3, 12)


def dm_deep_dm_tree():
    dm_tree()
    seen = run_child(DM_TREE_DEEP_CHILD)
    if DM_TREE_C_DEPTH:  # its compiled flatten stops at the C limit only
        assert seen.pop("deep flatten") == "ok", seen
    assert set(seen.values()) == {"RecursionError"}, seen


def dm_deep_nestlib(nest):
    loop = [1]
    loop.append(loop)
    e = error_of(nest.flatten, loop)
    assert isinstance(e, ValueError) and "at [1]" in str(e), e
    for fn in (nest.flatten, nest.flatten_with_path, lambda s: nest.map_structure(lambda x: x, s)):
        if fn is nest.flatten and nest.backend() == "dm-tree" and DM_TREE_C_DEPTH:
            assert fn(chain(nestlib.MAX_DEPTH + 1)) == [1]  # dm-tree's, see DM_TREE_C_DEPTH
            e = error_of(fn, chain(12_000))  # past dm-tree's C limit: nestlib's error again
        else:
            e = error_of(fn, chain(nestlib.MAX_DEPTH + 1))
        assert isinstance(e, ValueError) and "[0][0][0]" in str(e), e
    assert nestlib.MAX_DEPTH == 1000
    s = chain(1000)
    f = lambda x, *rest: x  # noqa: E731
    calls = {
        "is_nested": lambda: nest.is_nested(s),
        "flatten": lambda: nest.flatten(s),
        "unflatten_as": lambda: nest.unflatten_as(s, [2]),
        "pack_sequence_as": lambda: nest.pack_sequence_as(s, [2]),
        "map_structure": lambda: nest.map_structure(f, s, s),
        "map_structure_with_path": lambda: nest.map_structure_with_path(f, s),
        "map_structure_with_tuple_paths": lambda: nest.map_structure_with_tuple_paths(f, s),
        "map_structure_with_paths": lambda: nest.map_structure_with_paths(f, s),
        "flatten_with_path": lambda: nest.flatten_with_path(s),
        "flatten_with_tuple_paths": lambda: nest.flatten_with_tuple_paths(s),
        "flatten_with_joined_string_paths": lambda: nest.flatten_with_joined_string_paths(s),
        "yield_flat_paths": lambda: list(nest.yield_flat_paths(s)),
        "assert_same_structure": lambda: nest.assert_same_structure(s, chain(1000)),
        "assert_shallow_structure": lambda: nest.assert_shallow_structure(s, s),
        "flatten_up_to": lambda: nest.flatten_up_to(s, s),
        "flatten_with_path_up_to": lambda: nest.flatten_with_path_up_to(s, s),
        "map_structure_up_to": lambda: nest.map_structure_up_to(s, f, s),
        "map_structure_with_path_up_to": lambda: nest.map_structure_with_path_up_to(s, f, s),
        "traverse": lambda: nest.traverse(lambda x: None, s),
        "traverse_with_path": lambda: nest.traverse_with_path(lambda p, x: None, s),
        "format_path": lambda: nest.format_path((0,) * 1000, s),
        "list_to_tuple": lambda: nest.list_to_tuple(s),
        "spec_of": lambda: nest.spec_of(s).unflatten([3]),
        "flatten_with_tuple_paths_up_to": lambda: nest.flatten_with_tuple_paths_up_to(s, s),
        "map_structure_with_tuple_paths_up_to": lambda: nest.map_structure_with_tuple_paths_up_to(
            s, f, s
        ),
        "get_traverse_shallow_structure": lambda: nest.get_traverse_shallow_structure(
            lambda x: True, s
        ),
        "flatten_dict_items": lambda: nest.flatten_dict_items({"a": s}),
        "is_namedtuple": lambda: nest.is_namedtuple(s),
        "same_namedtuples": lambda: nest.same_namedtuples(s, s),
        "is_mapping": lambda: nest.is_mapping(s),
        "is_attrs": lambda: nest.is_attrs(s),
        "is_nested_or_composite": lambda: nest.is_nested_or_composite(s),
        "is_sequence_or_composite": lambda: nest.is_sequence_or_composite(s),
    }
    public_functions = {n for n in nestlib.__all__ if inspect.isfunction(getattr(nestlib, n))} - {
        "backend",
        "register_node",
        "register_dataclass",
        "unregister_node",
    }
    assert public_functions <= set(calls), public_functions - set(calls)
    failures = {
        name: repr(error_of(call))[:200]
        for name, call in calls.items()
        if error_of(call) is not None
    }
    assert not failures, failures


# --------------------------------------------------------------------------
# Differences from tf.nest
# --------------------------------------------------------------------------


def tf_bytearray_tf():
    assert tf_nest().flatten(bytearray(b"ab")) == [97, 98]


def tf_bytearray_nestlib(nest):
    ba = bytearray(b"ab")
    assert nest.flatten(ba) == [ba] and not nest.is_nested(ba)
    assert dm_tree().flatten(ba) == [ba]


def tf_memoryview_tf():
    assert tf_nest().flatten(memoryview(b"ab")) == [97, 98]


def tf_memoryview_nestlib(nest):
    assert nest.flatten(memoryview(b"ab")) == [97, 98]


def _kw_only_class():
    attr = attrs_lib()

    @attr.s(kw_only=True)
    class KwOnly:
        a = attr.ib()
        b = attr.ib()

    return KwOnly


def tf_kw_only_tf():
    tfn = tf_nest()
    k = _kw_only_class()(a=1, b=2)
    assert tfn.flatten(k) == [1, 2]
    assert isinstance(error_of(tfn.map_structure, lambda x: x, k), TypeError)


def tf_kw_only_nestlib(nest):
    cls = _kw_only_class()
    out = nest.map_structure(lambda x: x * 10, cls(a=1, b=2))
    assert type(out) is cls and (out.a, out.b) == (10, 20)
    assert nest.unflatten_as(cls(a=0, b=0), [5, 6]) == cls(a=5, b=6)


UP_TO_CASES = {  # name: (shallow, inputs); tf.nest rejects all, with these classes
    "types": (([None, None], (1, 2)), TypeError),
    "lengths": (([None, None], [1, 2, 3]), ValueError),
    "keys": (({"a": None}, {"a": 1, "b": 2}), ValueError),
}


def tf_up_to_tf():
    tfn = tf_nest()
    for name, ((shallow, value), error) in UP_TO_CASES.items():
        e = error_of(tfn.map_structure_up_to, shallow, lambda x: x, value)
        assert type(e) is error, (name, e)


def tf_up_to_nestlib(nest):
    tree = dm_tree()
    f = lambda *xs: xs  # noqa: E731
    for shallow, value in (
        ([None, None], (1, 2)),
        ([None, None], [1, 2, 3]),
        ({"a": None}, {"a": 1, "b": 2}),
        ([None, {"k": None}], ([1, 2], {"k": 3, "z": 4}, 5)),
    ):
        ours = nest.map_structure_up_to(shallow, f, value, value)
        assert ours == tree.map_structure_up_to(shallow, f, value, value), (shallow, value)
    assert nest.map_structure_up_to([None, None], f, [1, 2, 3]) == [(1,), (2,)]
    tfn = tf_nest()
    for name, ((shallow, value), error) in UP_TO_CASES.items():  # check_types=True
        e = error_of(nest.map_structure_up_to, shallow, f, value, check_types=True)
        assert type(e) is error, (name, e)
        assert type(error_of(tfn.map_structure_up_to, shallow, f, value)) is error
    # a key the shallow structure names must exist in every input
    e = error_of(nest.map_structure_up_to, {"a": None, "b": None}, f, {"a": 1, "c": 2})
    assert isinstance(e, ValueError) and "'b'" in str(e), e


def tf_shallow_tf():
    tfn = tf_nest()
    assert inspect.signature(tfn.assert_shallow_structure).parameters["check_types"].default is True
    assert isinstance(error_of(tfn.assert_shallow_structure, [None, None], (1, 2)), TypeError)


def tf_shallow_nestlib(nest):
    assert (
        inspect.signature(nest.assert_shallow_structure).parameters["check_types"].default is True
    )
    assert isinstance(error_of(nest.assert_shallow_structure, [None, None], (1, 2)), TypeError)
    nest.assert_shallow_structure([None, None], (1, 2), check_types=False)


def _tf_public_functions():
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed")
    import tensorflow as tf

    return sorted(n for n in dir(tf.nest) if not n.startswith("_"))


def tf_names_tf():
    tfn = tf_nest()
    public = _tf_public_functions()
    assert len(public) == 5 and all(
        callable(getattr(__import__("tensorflow").nest, n)) for n in public
    ), public
    private_only = [
        "flatten_with_tuple_paths",
        "flatten_with_joined_string_paths",
        "map_structure_with_tuple_paths",
        "map_structure_with_paths",
        "assert_shallow_structure",
        "yield_flat_paths",
        "list_to_tuple",
        "flatten_up_to",
        "map_structure_up_to",
    ]
    for name in private_only:
        assert name not in public and callable(getattr(tfn, name)), name


def tf_names_nestlib(nest):
    tfn = tf_nest()
    shared = [n for n in dir(tfn) if not n.startswith("_") and hasattr(nestlib, n)]
    assert len(shared) >= 14, shared
    assert set(shared) <= set(nestlib.__all__), set(shared) - set(nestlib.__all__)


def _takes_expand_composites(fn) -> bool:
    params = inspect.signature(fn).parameters
    if "expand_composites" in params:
        return True
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # tf passes **kwargs on
        try:
            fn(*_sample_args(fn.__name__), expand_composites=True)
        except TypeError as e:
            return "expand_composites" not in str(e)
        return True
    return False


def _sample_args(name: str):
    f = lambda *xs: xs[0]  # noqa: E731
    return {
        "map_structure": (f, [1]),
        "map_structure_up_to": ([None], f, [[1]]),
        "map_structure_with_tuple_paths": (lambda p, x: x, [1]),
        "map_structure_with_paths": (lambda p, x: x, [1]),
        "map_structure_with_tuple_paths_up_to": ([None], lambda p, x: x, [[1]]),
    }[name]


def tf_expand_tf():
    tfn = tf_nest()
    names = [n for n in nestlib.__all__ if inspect.isfunction(getattr(tfn, n, None))]
    without = [n for n in names if not _takes_expand_composites(getattr(tfn, n))]
    # these only look at one node, or only rebuild lists, or only read dicts
    assert set(without) <= {
        "is_nested",
        "list_to_tuple",
        "flatten_dict_items",
        "is_namedtuple",
        "same_namedtuples",
        "is_mapping",
        "is_attrs",
        "is_nested_or_composite",
        "is_sequence_or_composite",
    }, f"tf.nest functions without expand_composites: {without}"


def tf_expand_nestlib(nest):
    tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed")
    with_it = sorted(
        n
        for n in nestlib.__all__
        if inspect.isfunction(getattr(nest, n, None))
        and "expand_composites" in inspect.signature(getattr(nest, n)).parameters
    )
    expanding = [
        "flatten",
        "pack_sequence_as",
        "map_structure",
        "assert_same_structure",
        "get_traverse_shallow_structure",
    ]
    tfn = tf_nest()
    for name in tfn.__dict__:
        if (
            name in with_it
            or not inspect.isfunction(getattr(tfn, name))
            or name not in nestlib.__all__
        ):
            continue
        assert not _takes_expand_composites(getattr(tfn, name)), name
    # the other walking functions take the argument and refuse only a real composite
    s_plain = {"x": [1]}
    sparse = tf.sparse.SparseTensor([[0, 0]], [1.0], [2, 2])
    calls = {
        "flatten_with_path": lambda s: nest.flatten_with_path(s, expand_composites=True),
        "flatten_up_to": lambda s: nest.flatten_up_to(s, s, expand_composites=True),
        "assert_shallow_structure": lambda s: nest.assert_shallow_structure(
            s, s, expand_composites=True
        ),
        "map_structure_with_path": lambda s: nest.map_structure_with_path(
            lambda p, x: x, s, expand_composites=True
        ),
        "map_structure_up_to": lambda s: nest.map_structure_up_to(
            s, lambda x: x, s, expand_composites=True
        ),
    }
    for call in calls.values():
        call(s_plain)
        with pytest.raises(NotImplementedError, match="composite"):
            call({"x": sparse})
    assert set(expanding) <= set(with_it), with_it
    sparse = tf.sparse.SparseTensor([[0, 0]], [1.0], [2, 2])
    s = {"s": sparse, "x": 1}
    ours, theirs = (nest.flatten(s, expand_composites=True), tfn.flatten(s, expand_composites=True))
    assert [type(x) for x in ours] == [type(x) for x in theirs] and len(ours) == 4
    rebuilt = nest.pack_sequence_as(s, ours, expand_composites=True)
    assert isinstance(rebuilt["s"], tf.sparse.SparseTensor)


IMPORT_TF_CHILD = r"""
import json, time
t = time.perf_counter()
import tensorflow
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def tf_importing_tf():
    pytest.importorskip("tensorflow", reason="TensorFlow is not installed")
    assert tf_nest().__name__.startswith("tensorflow.")
    seconds = run_child(IMPORT_TF_CHILD)["seconds"]
    assert seconds > 0.5, f"import tensorflow took {seconds:.2f} s"


NESTLIB_IMPORT_CHILD = r"""
import importlib.abc, json, sys
attempts = []
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            attempts.append(name)
            raise ImportError("TensorFlow is hidden in this check")
        return None
sys.meta_path.insert(0, Refuse())
import nestlib
s = {"a": [1, (2, None)], "b": 3}
nestlib.flatten(s); nestlib.unflatten_as(s, nestlib.flatten(s))
nestlib.map_structure(lambda x, y: x, s, s); nestlib.assert_same_structure(s, s)
nestlib.flatten_with_path(s); nestlib.map_structure_up_to(s, lambda x: x, s)
nestlib.spec_of(s).unflatten(nestlib.flatten(s))
before = list(attempts)
try:
    nestlib.flatten(s, expand_composites=True)
    error = None
except ImportError as e:
    error = str(e)
files = [getattr(m, "__file__", None) or "" for n, m in list(sys.modules.items())
         if n == "nestlib" or n.startswith("nestlib.")]
print(json.dumps({"before": before, "after": attempts, "error": error,
                  "all_python": all(f.endswith(".py") or "/nestlib/_cnest" in f
                                    for f in files)}))
"""


def tf_importing_nestlib(backend):
    seen = run_child(NESTLIB_IMPORT_CHILD, backend=backend)
    assert seen["before"] == [], seen  # never touched TensorFlow
    assert seen["after"] and seen["after"][0].startswith("tensorflow"), seen
    assert seen["all_python"], seen


# The sentence after the tf.nest table: these behave the same in both.
def _same_in_both(nest, value, rebuild_func=lambda x: x):
    tfn = tf_nest()
    assert nest.flatten(value) == tfn.flatten(value)
    assert nest.flatten_with_tuple_paths(value) == tfn.flatten_with_tuple_paths(value)
    ours = error_of(nest.map_structure, rebuild_func, value)
    theirs = error_of(tfn.map_structure, rebuild_func, value)
    if ours or theirs:
        assert type(ours) is type(theirs), (ours, theirs)
        return
    a, b = nest.map_structure(rebuild_func, value), tfn.map_structure(rebuild_func, value)
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, cabc.Iterable) and not isinstance(a, (str, bytes)):
        assert list(a) == list(b)
    else:
        assert a == b


def tf_range_tf():
    tfn = tf_nest()
    assert tfn.flatten(range(3)) == [0, 1, 2]
    assert tfn.map_structure(str, range(3)) == ["0", "1", "2"]
    assert tfn.pack_sequence_as(range(2), ["a", "b"]) == ["a", "b"]


def tf_range_nestlib(nest):
    tree = dm_tree()
    assert nest.flatten(range(3)) == [0, 1, 2] == tree.flatten(range(3))
    for rebuild in (
        lambda: nest.map_structure(str, range(3)),
        lambda: nest.pack_sequence_as(range(2), ["a", "b"]),
    ):
        with pytest.raises(TypeError):
            rebuild()
    with pytest.raises(TypeError):
        tree.map_structure(str, range(3))


def same_sequence(nest):
    _same_in_both(nest, Seq([1, [2, 3]]), rebuild_func=str)


def same_views(nest):
    d = {"b": 1, "a": 2}
    for view in (d.keys(), d.values(), d.items()):
        _same_in_both(nest, view)


def same_none(nest):
    _same_in_both(nest, None)
    _same_in_both(nest, [None, (None,)])


def same_sets(nest):
    _same_in_both(nest, [{1, 2}, frozenset([3])])


def same_defaultdict(nest):
    d = collections.defaultdict(list, {"b": 1, "a": 2})
    _same_in_both(nest, d)
    assert nest.map_structure(str, d).default_factory is list
    assert tf_nest().map_structure(str, d).default_factory is list


# --------------------------------------------------------------------------
# Differences from optree (prose)
# --------------------------------------------------------------------------


def optree_none(nest):
    optree = optree_lib()
    assert optree.tree_leaves([None, 1]) == [1]  # an empty node
    assert optree.tree_leaves([None, 1], none_is_leaf=True) == [None, 1]
    assert nest.flatten([None, 1]) == [None, 1] == dm_tree().flatten([None, 1])


def optree_sorted_and_registration(nest):
    optree = optree_lib()
    attr = attrs_lib()
    assert optree.tree_leaves({"b": 1, "a": 2}) == [2, 1] == nest.flatten({"b": 1, "a": 2})

    @attr.s
    class Record:
        x = attr.ib()
        y = attr.ib()

    for custom in (Seq([1, 2]), Mapping({"a": 1, "b": 2}), Record(1, 2)):
        assert len(optree.tree_leaves(custom)) == 1, type(custom)  # a leaf unregistered
        assert nest.flatten(custom) == [1, 2], type(custom)  # a node in nestlib

    class Registered(Seq):
        pass

    optree.register_pytree_node(
        Registered,
        lambda s: (list(s), None),
        lambda _, c: Registered(c),
        namespace="nestlib-docs-check",
    )
    assert optree.tree_leaves(Registered([1, 2]), namespace="nestlib-docs-check") == [1, 2]
    assert nest.flatten(Point(1, 2)) == [1, 2]  # namedtuples too
    assert optree.tree_leaves(Point(1, 2)) == [1, 2]  # optree: no registration


def optree_spec(nest):
    optree = optree_lib()
    s = {"b": (1, None), "a": Point(2, [3])}
    treespec = optree.tree_structure(s, none_is_leaf=True)
    spec = nest.spec_of(s)
    assert spec.num_leaves == treespec.num_leaves == 4
    assert spec.unflatten(list(range(4))) == treespec.unflatten(list(range(4)))
    assert spec.flatten(s) == treespec.flatten_up_to(s)


# --------------------------------------------------------------------------
# The table: (section, first cell) -> the row's cells and its checks.
# --------------------------------------------------------------------------

# ---- registered types and TensorFlow's nest protocol


@dataclasses.dataclass
class _DC:
    x: object
    y: object


class _Registered:
    def __init__(self, a, b):
        self.a, self.b = a, b


def _registered(fn):
    """Runs fn() with _Registered and _DC registered (keys for _Registered)."""
    nestlib.register_node(
        _Registered,
        lambda r: ((r.a, r.b), None),
        lambda m, c: _Registered(*c),
        flatten_with_keys_fn=lambda r: ((("a", r.a), ("b", r.b)), None),
    )
    nestlib.register_dataclass(_DC)
    try:
        return fn()
    finally:
        nestlib.unregister_node(_Registered)
        nestlib.unregister_node(_DC)


def node_registered(nest):
    def check():
        assert nest.is_nested(_Registered(1, 2)) and nest.is_nested(_DC(1, 2))
        assert nest.flatten_with_path([_Registered(1, [2])]) == [((0, "a"), 1), ((0, "b", 0), 2)]
        assert nest.flatten_with_path(_DC(1, 2)) == [(("x",), 1), (("y",), 2)]

    _registered(check)
    assert not nest.is_nested(_DC(1, 2))  # unregistered again: a leaf


def node_protocol(nest):
    assert nest.is_nested(ProtoPair(1, 2))
    assert nest.flatten_with_path({"k": ProtoPair(1, (2,))}) == [(("k", 0), 1), (("k", 1, 0), 2)]


def dm_user_classes_dm_tree():
    tree = dm_tree()
    assert tree.flatten([_DC(1, 2)])[0] == _DC(1, 2)
    assert not [n for n in dir(tree) if "regist" in n.lower()]


def dm_user_classes_nestlib(nest):
    assert nest.flatten([_DC(1, 2)]) == [_DC(1, 2)]
    assert _registered(lambda: nest.flatten([_DC(1, 2), _Registered(3, 4)])) == [1, 2, 3, 4]


def dm_protocol_dm_tree():
    tree = dm_tree()
    p = ProtoPair(1, 2)
    assert tree.flatten(p) == [p] and not tree.is_nested(p)


def dm_protocol_nestlib(nest):
    assert nest.flatten(ProtoPair(1, 2)) == [1, 2] and nest.is_nested(ProtoPair(1, 2))


def _grow(d):
    return lambda x: d.setdefault(f"new{x}", 0) or x


def dm_mutating_map_dm_tree():
    tree = dm_tree()
    d = {"a": 1, "b": 2}
    e = error_of(tree.map_structure, _grow(d), d)
    assert isinstance(e, ValueError) and "Could not pack sequence" in str(e), e


def dm_mutating_map_nestlib(nest):
    d = {"a": 1, "b": 2}
    e = error_of(nest.map_structure, _grow(d), d)
    assert isinstance(e, RuntimeError) and "first leaf without a value is at" in str(e), e


def tf_protocol_paths_tf():
    tfn = tf_nest()
    p = ProtoPair(1, 2)
    for call in (
        lambda: tfn.map_structure_with_tuple_paths(lambda path, x: x, p),
        lambda: tfn.map_structure_with_paths(lambda path, x: x, p),
        lambda: tfn.assert_shallow_structure(p, ProtoPair(3, 4)),
    ):
        e = error_of(call)
        assert isinstance(e, TypeError) and "has no len()" in str(e), e


def tf_protocol_paths_nestlib(nest):
    p = ProtoPair(1, 2)
    assert nest.map_structure_with_tuple_paths(lambda path, x: path, p).b == (1,)
    assert nest.map_structure_with_paths(lambda path, x: path, p).a == "0"
    nest.assert_shallow_structure(p, ProtoPair(3, 4))


def tf_unknown_keyword_tf():
    tfn = tf_nest()
    for call in (
        lambda: tfn.map_structure_up_to([0], lambda x: x, [1], foo=1),
        lambda: tfn.map_structure_with_tuple_paths(lambda p, x: x, [1], foo=1),
    ):
        e = error_of(call)
        assert isinstance(e, TypeError) and "unexpected keyword argument 'foo'" in str(e), e


def tf_unknown_keyword_nestlib(nest):
    for call in (
        lambda: nest.map_structure_up_to([0], lambda x: x, [1], foo=1),
        lambda: nest.map_structure_with_tuple_paths(lambda p, x: x, [1], foo=1),
    ):
        e = error_of(call)
        assert isinstance(e, ValueError) and "foo" in str(e), e


@dataclasses.dataclass(frozen=True)
class Check:
    column: str
    fn: Callable
    uses_backend: bool = False  # fn(nest) per backend (or fn(backend) if by_name)
    by_name: bool = False  # fn takes the backend's name (runs child processes)
    wrong: str | None = None  # the row is wrong here: what was observed instead
    wrong_backends: tuple = ()  # limit `wrong` to these backends (default: all)


def nestlib_check(fn, wrong=None, wrong_backends=()):
    return Check("nestlib", fn, uses_backend=True, wrong=wrong, wrong_backends=wrong_backends)


def nestlib_child_check(fn, wrong=None, wrong_backends=()):
    return Check(
        "nestlib", fn, uses_backend=True, by_name=True, wrong=wrong, wrong_backends=wrong_backends
    )


PROXY_WRONG = (
    "with the dm-tree backend, nestlib asks dm-tree's compiled code first, and dm-tree "
    "classifies wrapt.ObjectProxy once per type: after a proxy of a container has been "
    "seen, ObjectProxy(1) is nested; after a proxy of a leaf, a proxy of a dict is a leaf "
    "and map_structure passes the whole dict to func. Correct on the python backend."
)

ROWS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[Check, ...]]] = {
    # ---- What is a node, what is a leaf
    (NODES, "`list`, `tuple`, other `collections.abc.Sequence`"): (
        ("node", "items", "indices"),
        (nestlib_check(node_sequences),),
    ),
    (NODES, "namedtuple (and subclasses)"): (
        ("node", "fields", "field names"),
        (nestlib_check(node_namedtuples),),
    ),
    (
        NODES,
        "`dict`, `OrderedDict`, `defaultdict`, `MappingProxyType`, any `collections.abc.Mapping`",
    ): (("node", "values by **sorted** key", "keys"), (nestlib_check(node_mappings),)),
    (NODES, "attrs classes"): (
        ("node", "fields in definition order", "field names"),
        (nestlib_check(node_attrs),),
    ),
    (NODES, "mapping views (`d.keys()`, `d.values()`, `d.items()`)"): (
        ("node", "items, in view order", "indices"),
        (nestlib_check(node_mapping_views),),
    ),
    (NODES, "`wrapt.ObjectProxy`"): (
        ("whatever it wraps", "those of the wrapped object", "same"),
        (nestlib_child_check(node_object_proxy, wrong=PROXY_WRONG, wrong_backends=("dm-tree",)),),
    ),
    (NODES, "classes registered with `register_node` / `register_dataclass`"): (
        ("node", "what their flatten function returns", "the keys it gives, else indices"),
        (nestlib_check(node_registered),),
    ),
    (NODES, "objects with TensorFlow's `__tf_flatten__` / `__tf_unflatten__`"): (
        ("node", "their components", "indices"),
        (nestlib_check(node_protocol),),
    ),
    (NODES, "`str`, `bytes`, `bytearray`, sets, numpy arrays, tensors, `None`, everything else"): (
        ("leaf", "", ""),
        (nestlib_check(node_leaves),),
    ),
    # ---- Differences from dm-tree
    (DM_TREE, "mismatch messages"): (
        ("dump both whole structures (tens of kB)", "name the first differing path, bounded"),
        (Check("dm-tree", dm_messages_dm_tree), nestlib_check(dm_messages_nestlib)),
    ),
    (DM_TREE, "`bytearray`"): (
        ("leaf in `flatten`, but `flatten_with_path` descends into its bytes", "leaf everywhere"),
        (Check("dm-tree", dm_bytearray_dm_tree), nestlib_check(dm_bytearray_nestlib)),
    ),
    (DM_TREE, "mapping views"): (
        ("nodes in `flatten`, leaves in `flatten_with_path`", "nodes everywhere"),
        (Check("dm-tree", dm_views_dm_tree), nestlib_check(dm_views_nestlib)),
    ),
    (DM_TREE, "`wrapt.ObjectProxy` around a leaf"): (
        (
            "classified once per proxy type: after a proxy of a container was seen, "
            "`is_nested(ObjectProxy(1))` is `True`",
            "a leaf, decided per instance, on every backend",
        ),
        (Check("dm-tree", dm_proxy_leaf_dm_tree), nestlib_child_check(dm_proxy_leaf_nestlib)),
    ),
    (DM_TREE, "`wrapt.ObjectProxy` around a mapping"): (
        ("rebuilt as a proxy of a generator", "rebuilt as a proxy of the rebuilt mapping"),
        (
            Check("dm-tree", dm_proxy_mapping_dm_tree),
            nestlib_child_check(
                dm_proxy_mapping_nestlib, wrong=PROXY_WRONG, wrong_backends=("dm-tree",)
            ),
        ),
    ),
    (DM_TREE, "`map_structure_with_path(f, [1], (1,))`"): (
        ("ignores `check_types` (no error)", "checks like `map_structure` (`TypeError`)"),
        (Check("dm-tree", dm_with_path_dm_tree), nestlib_check(dm_with_path_nestlib)),
    ),
    (DM_TREE, "reference cycles, nesting deeper than ~1,000"): (
        (
            "`RecursionError` (from Python 3.12 on, dm-tree's compiled `flatten` only past its C "
            "recursion limit: ~1,500 levels on 3.12, ~10,000 on 3.13)",
            "`ValueError` naming the path (nesting up to 1,000 levels works in every function; "
            "from Python 3.12 on, the dm-tree backend's `flatten` returns what dm-tree's does up "
            "to its C limit)",
        ),
        (Check("dm-tree", dm_deep_dm_tree), nestlib_check(dm_deep_nestlib)),
    ),
    (DM_TREE, "user classes, dataclasses"): (
        (
            "leaves; no way to register a class",
            "leaves unless registered (`register_node`, `register_dataclass`); registered ones "
            "are nodes everywhere",
        ),
        (Check("dm-tree", dm_user_classes_dm_tree), nestlib_check(dm_user_classes_nestlib)),
    ),
    (DM_TREE, "objects with `__tf_flatten__` / `__tf_unflatten__`"): (
        ("leaves", "nodes, as in tf.nest"),
        (Check("dm-tree", dm_protocol_dm_tree), nestlib_check(dm_protocol_nestlib)),
    ),
    (DM_TREE, "a map function that adds keys to the dict it maps"): (
        (
            "`ValueError` (`Could not pack sequence`)",
            "`RuntimeError` naming the first leaf left without a value",
        ),
        (Check("dm-tree", dm_mutating_map_dm_tree), nestlib_check(dm_mutating_map_nestlib)),
    ),
    # ---- Differences from tf.nest
    (TF_NEST, "`bytearray`"): (
        ("a sequence: flattens to its byte values", "a leaf"),
        (Check("tf.nest", tf_bytearray_tf), nestlib_check(tf_bytearray_nestlib)),
    ),
    (TF_NEST, "`memoryview`"): (
        ("a sequence of ints", "a sequence of ints (same)"),
        (Check("tf.nest", tf_memoryview_tf), nestlib_check(tf_memoryview_nestlib)),
    ),
    (TF_NEST, "`range`"): (
        (
            "a sequence; `map_structure` and `pack_sequence_as` rebuild it as a list",
            "a sequence; rebuilding one raises `TypeError` (a range cannot be built from "
            "values), as in dm-tree",
        ),
        (Check("tf.nest", tf_range_tf), nestlib_check(tf_range_nestlib)),
    ),
    (TF_NEST, "attrs classes with `kw_only=True`"): (
        ("flatten works, `map_structure` fails to rebuild (`TypeError`)", "rebuilt by keyword"),
        (Check("tf.nest", tf_kw_only_tf), nestlib_check(tf_kw_only_nestlib)),
    ),
    (TF_NEST, "`map_structure_up_to`"): (
        (
            "strict: checks node types and lengths (`[None, None]` vs a tuple is a `TypeError`)",
            "selects across subtrees, as dm-tree: inputs may have extra keys or items, types "
            "are not compared; `check_types=True` gives tf.nest's strict rule",
        ),
        (Check("tf.nest", tf_up_to_tf), nestlib_check(tf_up_to_nestlib)),
    ),
    (TF_NEST, "`assert_shallow_structure(shallow, input)`"): (
        ("`check_types=True` by default", "the same"),
        (Check("tf.nest", tf_shallow_tf), nestlib_check(tf_shallow_nestlib)),
    ),
    (TF_NEST, "public names"): (
        (
            "`tf.nest` exports 5 functions; the rest live in a private module",
            "all of them are public",
        ),
        (Check("tf.nest", tf_names_tf), nestlib_check(tf_names_nestlib)),
    ),
    (TF_NEST, "`expand_composites`"): (
        (
            "on every function that walks or rebuilds a structure",
            "accepted by every one of them; expands composites in `flatten`, "
            "`pack_sequence_as`, `map_structure`, `assert_same_structure`, "
            "`get_traverse_shallow_structure`; the others raise `NotImplementedError` when a "
            "composite tensor is actually present",
        ),
        (Check("tf.nest", tf_expand_tf), nestlib_check(tf_expand_nestlib)),
    ),
    (TF_NEST, "importing"): (
        (
            "needs TensorFlow (seconds)",
            "no TensorFlow: Python plus nestlib's own small C extension; TensorFlow only for "
            "`expand_composites=True`",
        ),
        (Check("tf.nest", tf_importing_tf), nestlib_child_check(tf_importing_nestlib)),
    ),
    (
        TF_NEST,
        "`map_structure_with_tuple_paths`, `map_structure_with_paths`, "
        "`assert_shallow_structure` on protocol objects",
    ): (
        ("`TypeError: object of type ... has no len()`", "work, as every other function"),
        (Check("tf.nest", tf_protocol_paths_tf), nestlib_check(tf_protocol_paths_nestlib)),
    ),
    (TF_NEST, "an unknown keyword of `map_structure_up_to`, `map_structure_with_tuple_paths`"): (
        ("passed on to `func`", "`ValueError`, as `map_structure`"),
        (Check("tf.nest", tf_unknown_keyword_tf), nestlib_check(tf_unknown_keyword_nestlib)),
    ),
}

# Claims made in prose: (section, the exact text, checks).
CLAIMS: dict[tuple[str, str], tuple[Check, ...]] = {
    (
        TF_NEST,
        "User-defined `collections.abc.Sequence` types, mapping views, `None` (a "
        "leaf), sets (leaves) and `defaultdict` (rebuilt with its factory) behave the "
        "same in both.",
    ): (
        nestlib_check(same_sequence),
        nestlib_check(same_views),
        nestlib_check(same_none),
        nestlib_check(same_sets),
        nestlib_check(same_defaultdict),
    ),
    (
        OPTREE,
        "optree's defaults treat `None` as an empty node (`none_is_leaf=False`); "
        "nestlib, like dm-tree, treats `None` as a leaf.",
    ): (nestlib_check(optree_none),),
    (
        OPTREE,
        "optree sorts dict keys like dm-tree but needs registration for user-defined "
        "`collections.abc.Mapping`/`Sequence` classes and attrs classes, which nestlib "
        "recognises without registration (namedtuples need none in either).",
    ): (nestlib_check(optree_sorted_and_registration),),
    (OPTREE, "optree's `PyTreeSpec` corresponds to `nestlib.Spec`."): (nestlib_check(optree_spec),),
}


# --------------------------------------------------------------------------
# Parsing docs/nest.md
# --------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def doc_sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text under it (up to the next ``## ``)."""
    sections: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


def table_rows(section_text: str) -> list[tuple[str, ...]]:
    """The body rows of every Markdown table in a section, as tuples of cells."""
    rows, in_table = [], False
    for line in section_text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = tuple(_norm(c) for c in re.split(r"(?<!\\)\|", line.strip())[1:-1])
        if not in_table:  # the header row
            in_table = True
            continue
        if all(set(c) <= set("-: ") for c in cells):  # the separator row
            continue
        rows.append(cells)
    return rows


def doc_rows() -> dict[tuple[str, str], tuple[str, ...]]:
    sections = doc_sections(DOC.read_text())
    out = {}
    for section in (NODES, DM_TREE, TF_NEST):
        assert section in sections, f"docs/nest.md has no '## {section}' section"
        for cells in table_rows(sections[section]):
            out[(section, cells[0])] = cells[1:]
    return out


def test_table_parser():
    text = "intro\n\n| a | b |\n|---|:-:|\n| `x` \\| y | 1 |\n| z |  two  words |\n\nafter\n"
    assert table_rows(text) == [("`x` \\| y", "1"), ("z", "two words")]
    sections = doc_sections("# T\n## A\none\n## B\ntwo\n")
    assert sections == {"A": "one\n", "B": "two\n"}


def test_doc_rows_match_checks():
    rows = doc_rows()
    assert len(rows) >= 20, f"only {len(rows)} table rows found in docs/nest.md"
    unchecked = sorted(set(rows) - set(ROWS))
    stale = sorted(set(ROWS) - set(rows))
    assert not unchecked, f"table rows of docs/nest.md without a check: {unchecked}"
    assert not stale, f"checks for rows that are no longer in docs/nest.md: {stale}"
    changed = {
        key: (rows[key], ROWS[key][0])
        for key in rows
        if tuple(_norm(c) for c in ROWS[key][0]) != rows[key]
    }
    assert not changed, (
        f"rows whose text changed since their check was written (doc, check): {changed}"
    )


def test_doc_claims_are_present():
    sections = doc_sections(DOC.read_text())
    missing = [
        text for (section, text) in CLAIMS if _norm(text) not in _norm(sections.get(section, ""))
    ]
    assert not missing, f"claims no longer in docs/nest.md (update their checks): {missing}"


def _cases():
    items = [(key, checks) for key, (_, checks) in ROWS.items()]
    items += [((section, text[:50]), checks) for (section, text), checks in CLAIMS.items()]
    for (section, first_cell), checks in items:
        for check in checks:
            backends = BACKENDS if check.uses_backend else [None]
            for backend in backends:
                wrong = check.wrong and (
                    not check.wrong_backends or backend in check.wrong_backends
                )
                marks = [pytest.mark.xfail(strict=True, reason=check.wrong)] if wrong else []
                name = (
                    f"{section.split()[-1]}: {first_cell} [{check.column}: "
                    f"{check.fn.__name__}" + (f", {backend} backend]" if backend else "]")
                )
                yield pytest.param(check, backend, id=name.replace("`", ""), marks=marks)


@pytest.mark.parametrize("check,backend", list(_cases()))
def test_row(check: Check, backend: str | None):
    if not check.uses_backend:
        check.fn()
    elif check.by_name:
        check.fn(backend)
    else:
        check.fn(_backend.api(backend))
