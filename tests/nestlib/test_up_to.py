"""The *_up_to family: functions that stop at a shallow structure's leaves.

Every test takes the ``nest`` fixture (conftest.py), so it runs once per
backend (formerly tests/nest/test_api.py, split by API family).
"""

from __future__ import annotations

import collections

import pytest

# --------------------------------------------------------------------------
# the *_up_to family
# --------------------------------------------------------------------------


def test_flatten_up_to(nest):
    deep = [[[2, 2], [3, 3]], [[4, 9], [5, 5]]]
    assert nest.flatten_up_to([[True, True], [False, True]], deep) == [
        [2, 2],
        [3, 3],
        [4, 9],
        [5, 5],
    ]
    assert nest.flatten_up_to(
        {"a": 0, "b": 0, "d": [0, 0]}, {"a": 1, "b": {"c": 2}, "d": [3, (4, 5)]}
    ) == [1, {"c": 2}, 3, (4, 5)]
    assert nest.flatten_up_to(0, [1, 2]) == [[1, 2]]
    assert nest.flatten_up_to("leaf", "other") == ["other"]
    with pytest.raises(TypeError, match="prefix"):
        nest.flatten_up_to([0], "input")
    with pytest.raises(TypeError):
        nest.flatten_up_to((0, 0), [1, 2])
    assert nest.flatten_up_to((0, 0), [1, 2], check_types=False) == [1, 2]


def test_flatten_with_path_up_to(nest):
    assert nest.flatten_with_path_up_to({"a": 0, "d": [0, 0]}, {"a": 1, "d": [3, (4, 5)]}) == [
        (("a",), 1),
        (("d", 0), 3),
        (("d", 1), (4, 5)),
    ]
    assert nest.flatten_with_path_up_to(0, [0]) == [((), [0])]


def test_map_structure_up_to(nest):
    ab = collections.namedtuple("ab", "a b")
    op = collections.namedtuple("op", "add mul")
    out = nest.map_structure_up_to(
        ab(2, 3), lambda v, o: (v + o.add) * o.mul, ab(2, 3), ab(op(1, 2), op(2, 3))
    )
    assert out == ab(6, 15) and type(out) is ab
    names = ["evens", ["odds", "primes"]]
    data = [[2, 4, 6, 8], [[1, 3, 5, 7, 9], [3, 5, 7]]]
    assert nest.map_structure_up_to(names, lambda n, d: f"{len(d)}_{n}", names, data) == [
        "4_evens",
        ["5_odds", "3_primes"],
    ]
    # like dm-tree, types are not compared; the result has the shallow structure's types
    assert nest.map_structure_up_to([0, (0,)], lambda x: x, [1, [2]]) == [1, (2,)]
    assert nest.map_structure_with_path_up_to({"a": 0}, lambda p, x: (p, x), {"a": [1]}) == {
        "a": (("a",), [1])
    }


def test_map_structure_up_to_selects_across_subtrees(nest):
    # as dm-tree: the shallow structure picks children by key; extra ones are left out
    assert nest.map_structure_up_to([1, [1]], lambda *a: sum(a), [1, [2, 3]], [2, [3, 4]]) == [
        3,
        [5],
    ]
    assert nest.map_structure_up_to(
        {"a": 1, "b": {"c": 2}},
        lambda *a: a,
        {"a": 2, "b": {"c": 3, "d": 2}, "e": 4},
        {"a": 3, "b": {"c": 2, "d": 3}, "e": 1},
    ) == {"a": (2, 3), "b": {"c": (3, 2)}}
    with pytest.raises(ValueError, match=r"shallow structure has key 'b' at the top level"):
        nest.map_structure_up_to({"a": 1, "b": 1}, lambda x: x, {"a": 1, "c": 2})
    with pytest.raises(ValueError, match=r"key 2 at \[1\]"):
        nest.map_structure_up_to([1, [1, 1, 1]], lambda x: x, [1, [2, 3]])
    # check_types=True: tf.nest's strict rule
    with pytest.raises(ValueError, match=r"at \[1\]"):
        nest.map_structure_up_to([1, [1]], lambda *a: sum(a), [1, [2, 3]], check_types=True)
    with pytest.raises(TypeError, match="callable"):
        nest.map_structure_up_to([0], 5, [1])
    with pytest.raises(ValueError, match="at least one structure"):
        nest.map_structure_up_to([0], len)


def test_assert_shallow_structure(nest):
    nest.assert_shallow_structure([None, None], [1, [2, 3]])
    nest.assert_shallow_structure(
        collections.OrderedDict([("a", 1), ("b", (2, 3))]),
        collections.OrderedDict([("b", (2, 3)), ("a", 1)]),
    )
    nest.assert_shallow_structure({0: "foo"}, ["foo"], check_types=False)
    with pytest.raises(ValueError):
        nest.assert_shallow_structure(["a", "b", "c"], ["a", "b"])
    with pytest.raises(TypeError):
        nest.assert_shallow_structure([[1, 1], [2, 2]], [(1, 1), (2, 2)])
    nest.assert_shallow_structure([[1, 1], [2, 2]], [(1, 1), (2, 2)], check_types=False)
    with pytest.raises(ValueError, match="'d'"):
        nest.assert_shallow_structure(
            {"a": (1, 1), "b": {"d": (2, 2)}}, {"a": (1, 1), "b": {"c": (2, 2)}}
        )
    with pytest.raises(TypeError, match=r"\['a'\]\['b'\]"):
        nest.assert_shallow_structure({"a": {"b": [0, 1]}}, {"a": {"b": {0, 1}}})
