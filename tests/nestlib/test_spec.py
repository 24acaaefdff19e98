"""nestlib.Spec: a structure captured once for hot loops.

Every test takes the ``nest`` fixture (conftest.py), so it runs once per
backend (formerly tests/nest/test_api.py, split by API family).
"""

from __future__ import annotations

import collections
import copy
import pickle

import numpy as np
import pytest

import nestlib
from tests.nestlib.api_objects import Point, State
from tests.objects import identical

# --------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------


def test_spec_basics(nest):
    s = State(hidden=1, cell={"b": [2, 3], "a": None})
    spec = nest.spec_of(s)
    assert isinstance(spec, nest.Spec) and isinstance(spec, nestlib.Spec)
    assert spec.num_leaves == 4
    assert spec.paths == (("hidden",), ("cell", "a"), ("cell", "b", 0), ("cell", "b", 1))
    assert spec.flatten(s) == nest.flatten(s)
    out = spec.unflatten([10, 20, 30, 40])
    assert identical(out, State(10, {"b": [30, 40], "a": 20}))
    assert spec.unflatten((10, 20, 30, 40)) == out
    assert identical(spec.map(str, s), nest.map_structure(str, s))
    assert spec.map(lambda x, y: (x, y), s, s).hidden == (1, 1)


def test_spec_of_a_leaf(nest):
    spec = nest.spec_of(5)
    assert (spec.num_leaves, spec.paths) == (1, ((),))
    assert spec.flatten("anything") == ["anything"]
    assert spec.unflatten([7]) == 7
    with pytest.raises(ValueError):
        spec.flatten([1])
    assert nest.spec_of(None) == spec


def test_spec_flatten_checks_the_structure(nest):
    spec = nest.spec_of({"a": [1, 2], "b": None})
    assert spec.flatten(collections.OrderedDict(b=3, a=[1, 2])) == [1, 2, 3]
    with pytest.raises(
        ValueError,
        match=r"structures differ at \['a'\]: list of length 2 vs "
        r"list of length 1",
    ):
        spec.flatten({"a": [1], "b": 2})
    with pytest.raises(TypeError, match=r"at \['a'\]"):
        spec.flatten({"a": (1, 2), "b": 2})
    with pytest.raises(ValueError):
        spec.flatten({"a": [1, 2]})
    with pytest.raises(ValueError):
        spec.flatten({"a": [1, [2]], "b": 3})
    with pytest.raises(ValueError):
        spec.flatten(5)


def test_spec_unflatten_and_map_errors(nest):
    spec = nest.spec_of({"a": [1, 2], "b": None})
    with pytest.raises(
        ValueError,
        match=r"Spec.unflatten: the structure has 3 leaves but "
        r"flat_sequence has 1.*\['a'\]\[1\]",
    ):
        spec.unflatten([1])
    with pytest.raises(ValueError, match="3 leaves but flat_sequence has 4"):
        spec.unflatten([1, 2, 3, 4])
    with pytest.raises(TypeError, match="flat_sequence must be a sequence"):
        spec.unflatten("abc")
    with pytest.raises(TypeError, match="callable"):
        spec.map(3, {"a": [1, 2], "b": 2})
    with pytest.raises(ValueError, match="at least one structure"):
        spec.map(len)
    with pytest.raises(ValueError):
        spec.map(lambda x, y: x, {"a": [1, 2], "b": 2}, {"a": [1], "b": 2})


def test_spec_equality_and_hash(nest):
    a = nest.spec_of({"a": [1, 2], "b": Point(3, 4)})
    b = nest.spec_of({"a": ["x", "y"], "b": Point(None, 0)})
    assert a == b and hash(a) == hash(b) and not (a != b)
    assert a != nest.spec_of({"a": (1, 2), "b": Point(3, 4)})
    assert a != nest.spec_of({"a": [1, 2], "b": (3, 4)})
    assert nest.spec_of({"a": 1, "b": 2}) != nest.spec_of({"b": 1, "a": 2})  # rebuild order
    assert nest.spec_of(collections.defaultdict(list, a=1)) != nest.spec_of({"a": 1})
    assert a != "not a spec"
    assert len({a, b, nest.spec_of([1])}) == 2


def test_spec_pickles_and_copies(nest):
    spec = nest.spec_of({"a": [1, 2], "b": Point(3, collections.defaultdict(list, z=1))})
    for clone in (pickle.loads(pickle.dumps(spec)), copy.copy(spec), copy.deepcopy(spec)):
        assert clone == spec and hash(clone) == hash(spec)
        assert identical(clone.unflatten([1, 2, 3, 4]), spec.unflatten([1, 2, 3, 4]))


def test_spec_is_immutable(nest):
    spec = nest.spec_of([1, 2])
    with pytest.raises(AttributeError):
        spec.num_leaves = 3
    with pytest.raises(AttributeError):
        del spec.num_leaves
    with pytest.raises(AttributeError):
        spec.unflatten = None
    with pytest.raises(AttributeError):
        spec.new_attribute = 1
    assert spec.num_leaves == 2
    with pytest.raises(TypeError, match="spec_of"):
        nest.Spec()


def test_spec_repr_is_short(nest):
    assert repr(nest.spec_of({"a": [1, None]})) == "Spec({'a': [*, *]})"
    assert len(repr(nest.spec_of(list(range(100_000))))) < 2000


def test_spec_keeps_no_reference_to_the_leaves(nest):
    big = np.zeros(10)
    spec = nest.spec_of([big])
    assert all(x is not big for x in spec.unflatten([0]))
    assert big is not spec.unflatten([None])[0]
    assert "array" not in repr(spec)
