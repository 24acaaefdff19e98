"""The tree functions: flatten/unflatten, the map family, paths,
assert_same_structure, traverse, list_to_tuple.

Every test takes the ``nest`` fixture (conftest.py), so it runs once per
backend (formerly tests/nest/test_api.py, split by API family).
"""

from __future__ import annotations

import collections.abc
import re

import numpy as np
import pytest

from tests.nestlib.api_objects import Cell, Point, State, attr
from tests.objects import Seq, identical

# --------------------------------------------------------------------------
# flatten / unflatten_as / pack_sequence_as
# --------------------------------------------------------------------------


def test_flatten_and_unflatten(nest):
    s = ((3, 4), 5, (6, 7, (9, 10), 8))
    assert nest.flatten(s) == [3, 4, 5, 6, 7, 9, 10, 8]
    assert nest.unflatten_as(s, list("abcdefgh")) == (("a", "b"), "c", ("d", "e", ("f", "g"), "h"))
    assert nest.pack_sequence_as(s, tuple("abcdefgh")) == nest.unflatten_as(s, list("abcdefgh"))


def test_unflatten_accepts_sequences_rejects_others(nest):
    assert nest.unflatten_as([0, 0], (1, 2)) == [1, 2]
    assert nest.unflatten_as([0, 0], Seq([1, 2])) == [1, 2]
    for bad in ("ab", {"a": 1, "b": 2}, 5, None):
        with pytest.raises(TypeError, match="flat_sequence must be a sequence"):
            nest.unflatten_as([0, 0], bad)


def test_unflatten_count_errors_say_where(nest):
    s = {"a": [0, 0], "b": 0}
    with pytest.raises(ValueError, match=r"3 leaves but flat_sequence has 1 .*\['a'\]\[1\]"):
        nest.unflatten_as(s, [1])
    with pytest.raises(ValueError, match="3 leaves but flat_sequence has 4"):
        nest.unflatten_as(s, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="1 leaves but flat_sequence has 2"):
        nest.unflatten_as("scalar", [4, 5])
    with pytest.raises(ValueError):
        nest.pack_sequence_as([], [1])


def test_unflatten_does_not_reuse_the_input_list(nest):
    flat = [1, 2]
    out = nest.unflatten_as([0, 0], flat)
    out.append(3)
    assert flat == [1, 2]


# --------------------------------------------------------------------------
# map_structure family
# --------------------------------------------------------------------------


def test_map_structure(nest):
    s1 = (((1, 2), 3), 4, (5, 6))
    s2 = (((7, 8), 9), 10, (11, 12))
    assert nest.map_structure(lambda x: x + 1, s1) == (((2, 3), 4), 5, (6, 7))
    assert nest.map_structure(lambda x, y: x + y, s1, s2) == (((8, 10), 12), 14, (16, 18))
    assert nest.map_structure(lambda x: x - 1, 4) == 3
    assert nest.map_structure(lambda x, y, z: x + y + z, [1], [2], [3]) == [6]
    assert nest.map_structure(lambda x: x, ()) == ()
    assert type(nest.map_structure(lambda x: x, [])) is list


def test_map_structure_result_takes_first_structures_types(nest):
    out = nest.map_structure(lambda x, y: y, [1, (2,)], (3, [4]), check_types=False)
    assert identical(out, [3, (4,)])


def test_map_structure_checks(nest):
    with pytest.raises(TypeError, match="callable"):
        nest.map_structure("bad", [1])
    with pytest.raises(ValueError, match="at least one structure"):
        nest.map_structure(lambda x: x)
    with pytest.raises(ValueError, match="structures differ"):
        nest.map_structure(lambda x, y: None, (3, 4), (3, 4, 5))
    with pytest.raises(TypeError, match="structures differ"):
        nest.map_structure(lambda x, y: None, ((3, 4), 5), [(3, 4), 5])
    nest.map_structure(lambda x, y: None, ((3, 4), 5), [(3, 4), 5], check_types=False)
    with pytest.raises(ValueError):
        nest.map_structure(lambda x, y: None, ((3, 4), 5), (3, (4, 5)), check_types=False)
    # tf.nest's exception class for an unknown keyword of the map functions
    with pytest.raises(ValueError, match="not: foo"):
        nest.map_structure(lambda x: x, [1], foo=1)


def test_map_structure_list_subclass_matches_list(nest):
    class MyList(list):
        pass

    nest.assert_same_structure([1, 2], MyList([3, 4]))
    assert type(nest.map_structure(lambda x, y: x, MyList([1]), [2])) is MyList


def test_map_structure_with_path_family(nest):
    s = {"a": [1, 2], "b": Point(3, 4)}
    assert nest.map_structure_with_path(lambda p, x: p, s) == {
        "a": [("a", 0), ("a", 1)],
        "b": Point(("b", "x"), ("b", "y")),
    }
    assert nest.map_structure_with_tuple_paths(lambda p, x, y: (p, x + y), [1], [2]) == [((0,), 3)]
    assert nest.map_structure_with_paths(lambda p, x: p, s) == {
        "a": ["a/0", "a/1"],
        "b": Point("b/x", "b/y"),
    }
    # unlike dm-tree, the structures are checked as in map_structure
    with pytest.raises(TypeError):
        nest.map_structure_with_path(lambda p, x, y: 0, [1], (1,))
    nest.map_structure_with_path(lambda p, x, y: 0, [1], (1,), check_types=False)
    with pytest.raises(ValueError):
        nest.map_structure_with_path(lambda p, *s: 0, (1, 2, 3), (4, 5))
    with pytest.raises(TypeError, match="callable"):
        nest.map_structure_with_path(None, [1])


def test_map_structure_calls_func_once_per_leaf_in_order(nest):
    calls = []
    nest.map_structure(lambda x: calls.append(x), {"b": [1, 2], "a": 3})
    assert calls == [3, 1, 2]


def test_map_structure_exceptions_propagate_unchanged(nest):
    class Boom(Exception):
        pass

    err = Boom("mine")

    def f(x):
        raise err

    with pytest.raises(Boom) as info:
        nest.map_structure(f, [1, 2])
    assert info.value is err


# --------------------------------------------------------------------------
# paths (tf.nest vocabulary)
# --------------------------------------------------------------------------


def test_flatten_with_path_and_friends(nest):
    s = [{"foo": 42}, "x", Point(1, [2])]
    expected = [((0, "foo"), 42), ((1,), "x"), ((2, "x"), 1), ((2, "y", 0), 2)]
    assert nest.flatten_with_path(s) == expected
    assert nest.flatten_with_tuple_paths(s) == expected
    assert list(nest.yield_flat_paths(s)) == [p for p, _ in expected]
    assert nest.flatten_with_joined_string_paths(s) == [
        ("0/foo", 42),
        ("1", "x"),
        ("2/x", 1),
        ("2/y/0", 2),
    ]
    assert nest.flatten_with_joined_string_paths(s, separator=".")[0] == ("0.foo", 42)
    assert nest.flatten_with_path(5) == [((), 5)]
    assert nest.flatten_with_joined_string_paths(5) == [("", 5)]


def test_yield_flat_paths_is_an_iterator(nest):
    it = nest.yield_flat_paths({"a": 1})
    assert iter(it) is it and next(it) == ("a",)


# --------------------------------------------------------------------------
# assert_same_structure
# --------------------------------------------------------------------------


def test_assert_same_structure(nest):
    nest.assert_same_structure((((1, 2), 3), 4, (5, 6)), ((("a", "b"), "c"), "d", ("e", "f")))
    nest.assert_same_structure("abc", 1.0)
    nest.assert_same_structure("abc", np.array([0, 1]))
    with pytest.raises(ValueError, match=r"at \[0\]: list of length 1 vs leaf int 3"):
        nest.assert_same_structure([[3], 4], [3, [4]])
    with pytest.raises(ValueError, match="dict with keys"):
        nest.assert_same_structure({"a": 1}, {"b": 1})
    with pytest.raises(TypeError):
        nest.assert_same_structure((0, 1), [0, 1])
    nest.assert_same_structure((0, 1), [0, 1], check_types=False)
    # without check_types, mappings are compared by their values in sorted-key order
    nest.assert_same_structure({"a": 1}, {"b": 1}, check_types=False)
    nest.assert_same_structure({"a": 1, "b": 2}, [1, 2], check_types=False)


# --------------------------------------------------------------------------
# traverse
# --------------------------------------------------------------------------


def test_traverse_top_down_and_early_stop(nest):
    structure = [(1, [2]), [3, (4, 5, 6)]]
    visited = []

    def visit(x):
        visited.append(x)
        return "X" if isinstance(x, tuple) and len(x) > 2 else None

    assert nest.traverse(visit, structure) == [(1, [2]), [3, "X"]]
    assert visited == [
        [(1, [2]), [3, (4, 5, 6)]],
        (1, [2]),
        1,
        [2],
        2,
        [3, (4, 5, 6)],
        3,
        (4, 5, 6),
    ]


def test_traverse_bottom_up_and_map_to_none(nest):
    s = [(1, 2), [3], {"a": [4]}]
    assert nest.traverse(
        lambda x: tuple(x) if isinstance(x, list) else None, s, top_down=False
    ) == ((1, 2), (3,), {"a": (4,)})
    assert nest.traverse(lambda x: nest.MAP_TO_NONE if x == 3 else None, s) == [
        (1, 2),
        [None],
        {"a": [4]},
    ]
    assert nest.traverse(lambda x: nest.MAP_TO_NONE, s) is None


def test_traverse_with_path(nest):
    seen = []
    out = nest.traverse_with_path(lambda p, x: seen.append(p), {"a": [1, (2,)]}, top_down=False)
    assert out == {"a": [1, (2,)]}
    assert seen == [("a", 0), ("a", 1, 0), ("a", 1), ("a",), ()]


# --------------------------------------------------------------------------
# list_to_tuple
# --------------------------------------------------------------------------


def test_list_to_tuple(nest):
    s = [1, {"a": [2, (3, [4])]}, Point([5], 6)]
    out = nest.list_to_tuple(s)
    assert identical(out, (1, {"a": (2, (3, (4,)))}, Point((5,), 6)))
    assert nest.list_to_tuple(7) == 7
    assert nest.list_to_tuple([]) == ()


def test_format_path_renders_paths_as_the_error_messages_do(nest):
    import dataclasses

    @dataclasses.dataclass
    class Pair:
        left: object
        right: object

    nest.register_dataclass(Pair)
    try:
        s = {"core": State(hidden=[1, 2], cell=Pair(3, {"k": 4})), "x": (6,)}
        rendered = {nest.format_path(path, s): leaf for path, leaf in nest.flatten_with_path(s)}
        assert rendered == {
            "['core'].hidden[0]": 1,
            "['core'].hidden[1]": 2,
            "['core'].cell.left": 3,
            "['core'].cell.right['k']": 4,
            "['x'][0]": 6,
        }
        assert nest.format_path(("core", "cell", "right", "k"), s) == "['core'].cell.right['k']"
        # without the structure, or where the path leaves it: plain keys
        assert nest.format_path(("core", "cell", 0)) == "['core']['cell'][0]"
        assert nest.format_path(["core", "nope", "x"], s) == "['core']['nope']['x']"
        assert nest.format_path(("x", 0, 1, 2), s) == "['x'][0][1][2]"
        assert nest.format_path((), s) == nest.format_path([]) == "the top level"
        # the same text as a mismatch error names
        with pytest.raises(ValueError, match=re.escape("['core'].cell.right")):
            nest.assert_same_structure(s, {"core": State([1, 2], Pair(3, 4)), "x": (6,)})
        if attr is not None:
            assert nest.format_path((0, "alpha"), [Cell(zeta=1, alpha=2)]) == "[0].alpha"
        assert len(nest.format_path(("k" * 200,) * 10)) < 320  # long paths are shortened
    finally:
        nest.unregister_node(Pair)


def test_format_path_rejects_a_path_that_is_not_a_sequence_of_keys(nest):
    with pytest.raises(TypeError, match="path must be a tuple or list of keys.*got str 'ab'"):
        nest.format_path("ab")
    with pytest.raises(TypeError, match="path must be a tuple or list.*got int 3"):
        nest.format_path(3)


def test_format_path_survives_a_hostile_structure(nest):
    class Hostile(collections.abc.Mapping):
        def __getitem__(self, key):
            raise RuntimeError("boom")

        def __iter__(self):
            raise RuntimeError("boom")

        def __len__(self):
            return 1

    assert nest.format_path((0, "a"), [Hostile()]) == "[0]['a']"
