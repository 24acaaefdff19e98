import collections

import pytest

State = collections.namedtuple("State", "hidden cell")


def test_round_trip(nest):
    s = {"b": [1, 2], "a": (3, None), "c": State(4, {"z": 5, "y": 6})}
    flat = nest.flatten(s)
    assert flat == [3, None, 1, 2, 4, 6, 5]
    assert nest.unflatten_as(s, flat) == s


def test_mismatch_names_path(nest):
    with pytest.raises(
        ValueError,
        match=r"structures differ at \['a'\]\.cell: "
        r"tuple of length 2 vs tuple of length 3",
    ):
        nest.assert_same_structure({"a": State(1, (1, 2))}, {"a": State(1, (1, 2, 3))})
