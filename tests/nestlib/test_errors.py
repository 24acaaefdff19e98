"""Exception classes and messages.

A mismatch raises ValueError (nesting, lengths, keys, counts) or TypeError
(node types, unsortable keys, a flat_sequence that is not a sequence, a func
that is not callable), like dm-tree. The message names the path of the first
difference, says what each side has there, and stays short (well under
2,000 characters) however large the input.
"""

from __future__ import annotations

import collections
import re

import pytest

try:  # attrs is optional: its cases are left out without it
    import attr
except ImportError:  # pragma: no cover - the no-extras CI job
    attr = None

LIMIT = 2000

Access = collections.namedtuple("Access", "memory linkage")
Other = collections.namedtuple("Other", "memory linkage")


if attr is not None:

    @attr.s
    class Core:
        weights = attr.ib()
        state = attr.ib()


def message(exc_class, fn, *args, **kwargs) -> str:
    with pytest.raises(exc_class) as info:
        fn(*args, **kwargs)
    assert type(info.value) is exc_class  # exactly, not a subclass
    text = str(info.value)
    assert len(text) < LIMIT, len(text)
    return text


# --------------------------------------------------------------------------
# paths and descriptions
# --------------------------------------------------------------------------


def test_the_issue_example(nest):
    a = {"access_state": Access(memory=1, linkage=(0, (2, 3)))}
    b = {"access_state": Access(memory=1, linkage=(0, (2, 3, 4)))}
    expected = (
        "structures differ at ['access_state'].linkage[1]: tuple of length 2 vs tuple of length 3"
    )
    assert message(ValueError, nest.assert_same_structure, a, b) == expected
    assert message(ValueError, nest.map_structure, lambda x, y: x, a, b) == expected
    assert message(ValueError, nest.map_structure_with_path, lambda p, x, y: x, a, b) == expected
    assert message(ValueError, nest.spec_of(a).flatten, b) == expected


@pytest.mark.parametrize(
    "a, b, exc, text",
    [
        (
            (1, 2),
            (1, 2, 3),
            ValueError,
            "structures differ at the top level: tuple of length 2 vs tuple of length 3",
        ),
        ([1, [2]], [1, 2], ValueError, "structures differ at [1]: list of length 1 vs leaf int 2"),
        ([1, 2], [1, [2]], ValueError, "structures differ at [1]: leaf int 2 vs list of length 1"),
        (
            {"a": 1},
            {"a": {"b": 1}},
            ValueError,
            "structures differ at ['a']: leaf int 1 vs dict with keys ['b']",
        ),
        (
            {3: [1]},
            {3: [1, 2]},
            ValueError,
            "structures differ at [3]: list of length 1 vs list of length 2",
        ),
        (
            Access(1, 2),
            Other(1, 2),
            TypeError,
            "structures differ at the top level: namedtuple Access of length 2 vs "
            "namedtuple Other of length 2",
        ),
        (
            (1, 2),
            [1, 2],
            TypeError,
            "structures differ at the top level: tuple of length 2 vs list of length 2",
        ),
        (
            collections.OrderedDict(a=1),
            [1],
            TypeError,
            "structures differ at the top level: OrderedDict with keys ['a'] vs list of length 1",
        ),
        (
            {"a": 1},
            {"b": 1},
            ValueError,
            "structures differ at the top level: dict with keys ['a'] vs dict with keys ['b'] "
            "(key 'a' is only in the first)",
        ),
        (
            {"a": 1, "c": 2},
            {"a": 1, "b": 2, "c": 3},
            ValueError,
            "structures differ at the top level: dict with keys ['a', 'c'] vs dict with keys "
            "['a', 'b', 'c'] (key 'b' is only in the second)",
        ),
        (
            "abc",
            ["abc"],
            ValueError,
            "structures differ at the top level: leaf str 'abc' vs list of length 1",
        ),
    ]
    + (
        [
            (
                Core(1, [2]),
                Core(1, [2, 3]),
                ValueError,
                "structures differ at .state: list of length 1 vs list of length 2",
            ),
            (
                [Core(1, 2)],
                [(1, 2)],
                TypeError,
                "structures differ at [0]: attrs Core with 2 fields vs tuple of length 2",
            ),
        ]
        if attr is not None
        else []
    ),
)
def test_messages(nest, a, b, exc, text):
    assert message(exc, nest.assert_same_structure, a, b) == text


def test_first_difference_is_reported_in_flatten_order(nest):
    # two differences: at ['a'] (sorted first) and at ['b']
    a = {"b": [1], "a": (1,)}
    b = {"b": [1, 2], "a": [1]}
    assert "at ['a']" in message(TypeError, nest.assert_same_structure, a, b)
    assert "at ['b']" in message(ValueError, nest.assert_same_structure, a, b, check_types=False)
    # depth-first: a difference deep in the first child comes before the second child
    a = [[[1]], 2]
    b = [[[1, 2]], [3]]
    assert message(ValueError, nest.assert_same_structure, a, b).startswith(
        "structures differ at [0][0]:"
    )


def test_check_types_false_ignores_types_but_not_keys_order_free(nest):
    nest.assert_same_structure({"a": 1, "b": 2}, {"x": 1, "y": 2}, check_types=False)
    text = message(
        ValueError, nest.assert_same_structure, {"a": 1}, {"x": 1, "y": 2}, check_types=False
    )
    assert text.startswith("structures differ at the top level: dict with keys ['a'] vs")


def test_proxy_descriptions(nest):
    wrapt = pytest.importorskip("wrapt")
    text = message(ValueError, nest.assert_same_structure, [1], [wrapt.ObjectProxy((1,))])
    assert text == "structures differ at [0]: leaf int 1 vs tuple (proxied) of length 1"


# --------------------------------------------------------------------------
# counts, non-sequences, callables
# --------------------------------------------------------------------------


def test_unflatten_count_mismatch_says_where(nest):
    s = {"a": [0, {"b": 0}], "c": 0}
    text = message(ValueError, nest.unflatten_as, s, [1])
    assert text == (
        "unflatten_as: the structure has 3 leaves but flat_sequence has 1 "
        "elements; the first leaf without a value is at ['a'][1]['b']"
    )
    text = message(ValueError, nest.unflatten_as, s, [1, 2, 3, 4, 5])
    assert text.startswith("unflatten_as: the structure has 3 leaves but flat_sequence has 5")
    assert "at ['c']" in message(ValueError, nest.unflatten_as, s, [1, 2])
    assert "has 0 elements" in message(ValueError, nest.unflatten_as, [0], [])
    text = message(ValueError, nest.spec_of(s).unflatten, [1])
    assert text.startswith("Spec.unflatten: the structure has 3 leaves") and "['a'][1]['b']" in text
    assert message(ValueError, nest.pack_sequence_as, 0, [1, 2]).endswith(
        "the structure has 1 leaves but flat_sequence has 2 elements"
    )


@pytest.mark.parametrize("flat", ["ab", {"a": 1}, 5, None, {1, 2}])
def test_flat_sequence_must_be_a_sequence(nest, flat):
    text = message(TypeError, nest.unflatten_as, [0, 0], flat)
    assert text.startswith(
        f"flat_sequence must be a sequence (list or tuple), not {type(flat).__name__}"
    )
    message(TypeError, nest.spec_of([0, 0]).unflatten, flat)


def test_func_must_be_callable(nest):
    for fn in (nest.map_structure, nest.map_structure_with_path):
        assert message(TypeError, fn, 3, [1]) == "func must be callable, got 3"
    assert (
        message(TypeError, nest.map_structure_up_to, [0], 3, [1]) == "func must be callable, got 3"
    )
    message(TypeError, nest.spec_of([0]).map, 3, [1])


def test_unsortable_keys(nest):
    text = message(TypeError, nest.flatten, {1: 1, "a": 2})
    assert text.startswith("nestlib only supports mappings with sortable keys")
    message(TypeError, nest.unflatten_as, {1: 1, "a": 2}, [1, 2])
    message(TypeError, nest.assert_same_structure, {1: 1, "a": 2}, {1: 1, "a": 2})


def test_shallow_structure_messages(nest):
    assert message(TypeError, nest.flatten_up_to, [0], 5) == (
        "shallow structure is not a prefix of the input at the top level: "
        "expected a node like list of length 1, found leaf int 5"
    )
    assert (
        message(ValueError, nest.flatten_up_to, {"a": [0, 0]}, {"a": [1]})
        == "structures differ at ['a']: list of length 2 vs list of length 1"
    )
    assert message(ValueError, nest.flatten_up_to, {"a": 0, "c": 0}, {"a": 1, "b": 2}) == (
        "shallow structure has key 'c' at the top level which the input lacks: "
        "dict with keys ['a', 'c'] vs dict with keys ['a', 'b']"
    )
    assert message(
        TypeError, nest.map_structure_up_to, {"x": {"y": [0]}}, len, {"x": {"y": "ab"}}
    ).startswith("shallow structure is not a prefix of the input at ['x']['y']")


# --------------------------------------------------------------------------
# bounded messages for huge inputs
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def huge_dicts():
    big = {f"k{i}": i for i in range(100_000)}
    other = dict(big)
    del other["k5"]
    other["zz"] = 0
    return big, other


def test_dict_of_100k_keys_names_the_differing_key(nest, huge_dicts):
    big, other = huge_dicts
    text = message(ValueError, nest.assert_same_structure, big, other)
    assert text.endswith("(key 'k5' is only in the first)")
    assert "(100000 keys)" in text
    text = message(ValueError, nest.map_structure, lambda x, y: x, big, other)
    assert "'k5'" in text
    text = message(ValueError, nest.assert_same_structure, big, {"k0": 1}, check_types=False)
    assert "(100000 keys)" in text and "(key 'k1' is only in the first)" in text
    text = message(ValueError, nest.flatten_up_to, big, other)
    assert "'k5'" in text


def test_long_lists(nest):
    n = 100_000
    text = message(ValueError, nest.assert_same_structure, list(range(n)), list(range(n + 1)))
    assert text == (
        f"structures differ at the top level: list of length {n} vs list of length {n + 1}"
    )
    text = message(ValueError, nest.unflatten_as, list(range(n)), list(range(n - 1)))
    assert f"the first leaf without a value is at [{n - 1}]" in text
    message(ValueError, nest.unflatten_as, list(range(n)), list(range(n + 7)))
    message(ValueError, nest.assert_same_structure, [list(range(n))], [list(range(n)) + [[]]])


def test_huge_leaf_reprs_and_keys_are_cut(nest):
    huge = "x" * 1_000_000
    text = message(ValueError, nest.assert_same_structure, [huge], [[huge]])
    assert "..." in text and text.count("x") < 100
    text = message(ValueError, nest.assert_same_structure, {huge: 1}, {huge: [1]})
    assert text.count("x") < 100

    class LoudRepr:
        def __repr__(self):
            return "L" * 1_000_000

    text = message(ValueError, nest.assert_same_structure, [LoudRepr()], [[1]])
    assert text.count("L") < 100
    message(TypeError, nest.unflatten_as, [0], huge)
    message(TypeError, nest.map_structure, huge, [1])


def test_long_paths_are_cut(nest):
    a, b = [1], [[1]]
    for _ in range(900):
        a, b = [a], [b]
    text = message(ValueError, nest.assert_same_structure, a, b)
    assert text.startswith("structures differ at [0][0]") and "..." in text
    assert text.endswith(": leaf int 1 vs list of length 1")
    keyed_a, keyed_b = 1, [1]
    for i in range(300):
        keyed_a, keyed_b = {f"key_{i}_" + "k" * 50: keyed_a}, {f"key_{i}_" + "k" * 50: keyed_b}
    message(ValueError, nest.assert_same_structure, keyed_a, keyed_b)


def test_many_keys_in_descriptions_are_elided(nest):
    a = {f"key{i:03d}": 0 for i in range(500)}
    b = dict(a, extra=1)
    text = message(ValueError, nest.assert_same_structure, [a], [b])
    assert "... (500 keys)" in text and "... (501 keys)" in text
    assert re.search(r"\(key 'extra' is only in the second\)$", text)


def test_spec_flatten_of_a_large_mismatch_is_bounded(nest):
    base = {f"k{i}": [i] for i in range(2_000)}
    spec = nest.spec_of(base)
    other = dict(base, k1999=[1, 2])
    text = message(ValueError, spec.flatten, other)
    assert text == "structures differ at ['k1999']: list of length 1 vs list of length 2"
