"""expand_composites, compared with tf.nest (skipped without TensorFlow).

Every test takes the ``nest`` fixture (conftest.py), so it runs once per
backend (formerly tests/nest/test_api.py, split by API family).
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from tests.nestlib.api_objects import Point
from tests.objects import identical

# --------------------------------------------------------------------------
# expand_composites (needs TensorFlow; compared with tf.nest)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def composites(tf):
    sparse = tf.sparse.SparseTensor([[0, 1], [1, 0]], [1.0, 2.0], [2, 3])
    ragged = tf.ragged.constant([[1, 2], [3]])
    return sparse, ragged, {"b": [ragged, 1.0], "a": sparse}


def _same_tensors(xs, ys):
    return len(xs) == len(ys) and all(
        type(x) is type(y) and np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(xs, ys)
    )


def test_composites_are_leaves_by_default(nest, composites):
    sparse, ragged, s = composites
    assert nest.flatten(s) == [sparse, ragged, 1.0] or nest.flatten(s)[0] is sparse
    assert not nest.is_nested(sparse)


def test_flatten_expand_composites_matches_tf_nest(nest, tf, composites):
    *_, s = composites
    ours = nest.flatten(s, expand_composites=True)
    assert _same_tensors(ours, tf.nest.flatten(s, expand_composites=True))
    assert len(ours) == 6


def test_pack_and_map_expand_composites_match_tf_nest(nest, tf, composites):
    sparse, ragged, s = composites
    flat = tf.nest.flatten(s, expand_composites=True)
    packed = nest.pack_sequence_as(s, flat, expand_composites=True)
    assert isinstance(packed["a"], tf.SparseTensor) and isinstance(packed["b"][0], tf.RaggedTensor)
    theirs = tf.nest.pack_sequence_as(s, flat, expand_composites=True)
    assert _same_tensors(
        tf.nest.flatten(packed, expand_composites=True),
        tf.nest.flatten(theirs, expand_composites=True),
    )

    def double_floats(t):
        return t * 2 if getattr(t, "dtype", tf.int32).is_floating else t

    doubled = nest.map_structure(double_floats, s, expand_composites=True)
    assert np.array_equal(doubled["a"].values.numpy(), [2.0, 4.0])
    assert doubled["b"][0].to_list() == [[1, 2], [3]]
    pairs = nest.map_structure(lambda x, y: y, [sparse], [sparse], expand_composites=True)
    assert isinstance(pairs[0], tf.SparseTensor)
    with pytest.raises(ValueError, match="6 leaves but flat_sequence has 2"):
        nest.pack_sequence_as(s, [1, 2], expand_composites=True)
    with pytest.raises(TypeError, match="callable"):
        nest.map_structure(None, s, expand_composites=True)


def test_assert_same_structure_expand_composites_matches_tf_nest(nest, tf, composites):
    sparse, ragged, _ = composites
    other_sparse = tf.sparse.SparseTensor([[0, 0]], [5.0], [4, 4])
    deeper_ragged = tf.ragged.constant([[[1], [2]], [[3]]])
    nest.assert_same_structure(sparse, other_sparse, expand_composites=True)
    tf.nest.assert_same_structure(sparse, other_sparse, expand_composites=True)
    for a, b in [(sparse, ragged), (ragged, deeper_ragged), ([sparse], [1.0])]:
        for check_types in (True, False):
            with pytest.raises((ValueError, TypeError)) as theirs:
                tf.nest.assert_same_structure(a, b, check_types=check_types, expand_composites=True)
            with pytest.raises(theirs.type) as ours:
                nest.assert_same_structure(a, b, check_types=check_types, expand_composites=True)
            assert str(ours.value).startswith("structures differ at ")
            assert len(str(ours.value)) < 2000
    # without expansion, a composite is a leaf like any other
    nest.assert_same_structure([sparse], [1.0])


def test_type_specs_expand_like_tf_nest(nest, tf):
    specs = {"s": tf.SparseTensorSpec([2, 3], tf.float32), "t": tf.TensorSpec([2])}
    ours = nest.flatten(specs, expand_composites=True)
    theirs = tf.nest.flatten(specs, expand_composites=True)
    assert [type(x) for x in ours] == [type(x) for x in theirs]
    assert ours == theirs


def test_tf_nest_vocabulary_matches_tf_nest(nest, tf):
    from tensorflow.python.util import nest as tf_nest  # the full tf.nest module

    s = {"b": [1, (2, Point(3, [4]))], "a": None, "c": collections.OrderedDict(z=5, y=6)}
    for name in ("flatten_with_joined_string_paths", "flatten_with_tuple_paths", "list_to_tuple"):
        if hasattr(tf_nest, name):
            assert identical(getattr(nest, name)(s), getattr(tf_nest, name)(s)), name
    assert list(nest.yield_flat_paths(s)) == list(tf_nest.yield_flat_paths(s))
    assert nest.flatten_with_joined_string_paths(
        s, separator="."
    ) == tf_nest.flatten_with_joined_string_paths(s, separator=".")
    for name in ("map_structure_with_paths", "map_structure_with_tuple_paths"):
        ours = getattr(nest, name)(lambda p, x, y: (p, y), s, s)
        assert identical(ours, getattr(tf_nest, name)(lambda p, x, y: (p, y), s, s)), name
    flat = list(range(7))
    assert identical(nest.pack_sequence_as(s, flat), tf_nest.pack_sequence_as(s, flat))
    nest.assert_shallow_structure([0, 0], [1, [2]])
    tf_nest.assert_shallow_structure([0, 0], [1, [2]])
