"""nestlib as a drop-in for ``tensorflow.python.util.nest``: TF-style code run
side by side against tf.nest and nestlib, results compared.

Differences that nestlib makes on purpose (error wording, dm-tree's rules
where the docs' difference tables say so) are not exercised here.
"""

from __future__ import annotations

import collections
import inspect

import pytest

tf = pytest.importorskip("tensorflow")
attr = pytest.importorskip("attr")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from tensorflow.python.util import nest as tfnest  # noqa: E402

import nestlib  # noqa: E402
import nestlib.testing as nt  # noqa: E402
from nestlib import _backend  # noqa: E402
from tests.objects import Masked, ProtoPair  # noqa: E402

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@attr.s
class AttrsBox:
    a = attr.ib()
    b = attr.ib()


Named = collections.namedtuple("Named", "x y")


def as_plain(x):
    """A comparable form: protocol objects and tensors to tuples and numbers."""
    if isinstance(x, (Masked, ProtoPair, nt._TFProtocolNode)):
        meta, comps = x.__tf_flatten__()
        return (type(x).__name__, meta, tuple(as_plain(c) for c in comps))
    if isinstance(x, tf.SparseTensor):
        return ("sparse", x.indices.numpy().tolist(), x.values.numpy().tolist())
    if isinstance(x, tf.Tensor):
        return ("tensor", x.numpy().tolist())
    if isinstance(x, (list, tuple)):
        return type(x).__name__, [as_plain(c) for c in x]
    if isinstance(x, dict):
        return {k: as_plain(v) for k, v in x.items()}
    if isinstance(x, AttrsBox):
        return ("attrs", as_plain(x.a), as_plain(x.b))
    return x


def both(fn):
    """fn(tfnest) and fn(nestlib), as comparable values."""
    return as_plain(fn(tfnest)), as_plain(fn(nestlib))


def outcome(fn, nest):
    try:
        return ("ok", as_plain(fn(nest)))
    except (TypeError, ValueError) as e:
        return ("raised", type(e).__name__)


STRUCTURES = {
    "protocol": Masked(True, 1),
    "nested protocol": ProtoPair(Masked(False, [1, 2]), ProtoPair(3, (4,))),
    "in a dict": {"b": Masked(True, 1), "a": [ProtoPair(2, 3)]},
    "in a namedtuple": Named(x=Masked(True, (1, 2)), y=4),
    "in attrs": AttrsBox(a=ProtoPair(1, 2), b={"k": Masked(0, 3)}),
    # (made in the test: a tensor made at import would initialise TensorFlow's
    # devices before tests/rnn/conftest.py splits the CPU in two)
    "tensors": lambda: {"t": Masked(True, tf.constant([1, 2])), "u": tf.constant(3)},
}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_tree_functions_agree(name):
    s = STRUCTURES[name]
    s = s() if callable(s) else s
    for fn in (
        lambda n: n.flatten(s),
        lambda n: n.is_nested(s),
        lambda n: list(n.yield_flat_paths(s)),
        lambda n: n.flatten_with_tuple_paths(s),
        lambda n: n.flatten_with_joined_string_paths(s),
        lambda n: n.map_structure(lambda x: [x], s),
        lambda n: n.pack_sequence_as(s, list(range(len(n.flatten(s))))),
        lambda n: n.flatten(s, expand_composites=True),
        lambda n: n.map_structure(lambda x: x, s, expand_composites=True),
        lambda n: n.get_traverse_shallow_structure(lambda x: True, s),
        lambda n: n.list_to_tuple(s),
    ):
        theirs, ours = both(fn)
        assert ours == theirs, (name, ours, theirs)
    # tf.nest's map_structure_with_(tuple_)paths fail on protocol objects and
    # attrs ("object of type ... has no len()"); nestlib's give what tf.nest's
    # own paths and pack_sequence_as describe
    paths = [p for p, _ in tfnest.flatten_with_tuple_paths(s)]
    assert as_plain(nestlib.map_structure_with_tuple_paths(lambda p, x: p, s)) == as_plain(
        tfnest.pack_sequence_as(s, paths)
    )
    assert as_plain(nestlib.map_structure_with_paths(lambda p, x: p, s)) == as_plain(
        tfnest.pack_sequence_as(s, ["/".join(map(str, p)) for p in paths])
    )
    tfnest.assert_same_structure(s, s)
    nestlib.assert_same_structure(s, s)
    nestlib.assert_same_structure(nest1=s, nest2=s, expand_composites=True)


def test_protocol_objects_with_composite_tensors():
    sparse = tf.sparse.SparseTensor([[0, 0]], [1.0], [2, 2])
    s = {"m": Masked(True, sparse), "x": ProtoPair(sparse, 1)}
    theirs, ours = both(lambda n: n.flatten(s, expand_composites=True))
    assert ours == theirs and len(nestlib.flatten(s, expand_composites=True)) == 7
    flat = nestlib.flatten(s, expand_composites=True)
    rebuilt = nestlib.pack_sequence_as(s, flat, expand_composites=True)
    assert as_plain(rebuilt) == as_plain(tfnest.pack_sequence_as(s, flat, expand_composites=True))
    assert nestlib.flatten(s) == [sparse, sparse, 1] == tfnest.flatten(s)


def test_same_structure_rules_agree():
    cases = [
        (Masked(True, 1), Masked(False, 2)),  # metadata is not compared
        (Masked(True, 1), ProtoPair(1, 2)),
        (Masked(True, 1), (1,)),
        (Masked(True, (1, 2)), Masked(True, [1, 2])),
        (ProtoPair(1, 2), ProtoPair(1, (2,))),
        ({"a": ProtoPair(1, 2)}, {"a": ProtoPair(1, 2), "b": 3}),
    ]
    for a, b in cases:
        for check_types in (True, False):
            theirs = outcome(lambda n: n.assert_same_structure(a, b, check_types), tfnest)
            ours = outcome(lambda n: n.assert_same_structure(a, b, check_types), nestlib)
            assert ours == theirs, (a, b, check_types, ours, theirs)
            theirs = outcome(
                lambda n: n.map_structure(lambda x, y: x, a, b, check_types=check_types), tfnest
            )
            ours = outcome(
                lambda n: n.map_structure(lambda x, y: x, a, b, check_types=check_types), nestlib
            )
            assert ours == theirs, (a, b, check_types, ours, theirs)


def test_tf_keyword_names():
    s = {"a": [1, 2], "b": (3,)}
    shallow = {"a": 0, "b": 0}
    for fn in (
        lambda n: n.flatten_up_to(shallow_tree=shallow, input_tree=s),
        lambda n: n.flatten_up_to(shallow, s, check_types=True, expand_composites=False),
        lambda n: n.flatten_with_tuple_paths_up_to(shallow_tree=shallow, input_tree=s),
        lambda n: n.map_structure_up_to(shallow, len, s),
        lambda n: n.map_structure_up_to(shallow, len, s, check_types=True),
        lambda n: n.map_structure_with_tuple_paths_up_to(shallow, lambda p, x: (p, x), s),
        lambda n: n.assert_same_structure(nest1=s, nest2=s, check_types=False),
        lambda n: n.assert_shallow_structure(shallow, s, expand_composites=False),
        lambda n: n.assert_shallow_structure(shallow_tree=shallow, input_tree=s),
        lambda n: n.is_nested(seq=s),
        lambda n: list(n.yield_flat_paths(nest=s)),
        lambda n: n.flatten(structure=s, expand_composites=False),
        lambda n: n.pack_sequence_as(structure=s, flat_sequence=[1, 2, 3]),
    ):
        theirs, ours = both(fn)
        assert ours == theirs, (ours, theirs)


def test_unknown_keyword_is_a_value_error_like_tf_nest():
    for n in (tfnest, nestlib):
        with pytest.raises(ValueError, match="foo"):
            n.map_structure(lambda x: x, [1], foo=1)
    # (tf.nest's other map functions pass an unknown keyword on to func)
    for call in (
        lambda: nestlib.map_structure_up_to([0], lambda x: x, [1], foo=1),
        lambda: nestlib.map_structure_with_tuple_paths(lambda p, x: x, [1], foo=1),
        lambda: nestlib.map_structure_with_paths(lambda p, x: x, [1], foo=1),
    ):
        with pytest.raises(ValueError, match="foo"):
            call()


def test_the_names_tf_code_imports_exist_and_agree():
    assert as_plain(nestlib.flatten_dict_items({(1, (2,)): (3, (4,)), 5: 6})) == as_plain(
        tfnest.flatten_dict_items({(1, (2,)): (3, (4,)), 5: 6})
    )
    for bad in ({(1, 2): (3,)}, {(1, 2): (3, 4), 1: 5}, [1]):
        assert outcome(lambda n: n.flatten_dict_items(bad), nestlib) == outcome(
            lambda n: n.flatten_dict_items(bad), tfnest
        ), bad

    class Sub(Named):
        pass

    Other = collections.namedtuple("Named", "x y")
    for x in (Named(1, 2), Sub(1, 2), (1, 2), Masked(1, 2), [1]):
        for strict in (False, True):
            assert nestlib.is_namedtuple(x, strict) == bool(tfnest.is_namedtuple(x, strict)), (
                x,
                strict,
            )
    for a, b in (
        (Named(1, 2), Other(3, 4)),
        (Named(1, 2), collections.namedtuple("Named", "y x")(1, 2)),
        (Named(1, 2), collections.namedtuple("N2", "x y")(1, 2)),
    ):
        assert nestlib.same_namedtuples(a, b) == bool(tfnest.same_namedtuples(a, b))
    for s in ([1, (2, 3)], {"a": (1, [2])}, ProtoPair(1, (2, 3)), 5):
        for fn in (
            lambda x: True,
            lambda x: not isinstance(x, tuple),
            lambda x: [True, False] if isinstance(x, list) else True,
        ):
            assert (
                both(lambda n: _or_error(n.get_traverse_shallow_structure, fn, s))[0]
                == both(lambda n: _or_error(n.get_traverse_shallow_structure, fn, s))[1]
            )
    assert nestlib.is_mapping({}) == tfnest.is_mapping({})
    assert nestlib.is_attrs(AttrsBox(1, 2)) == tfnest.is_attrs(AttrsBox(1, 2))
    sparse = tf.sparse.SparseTensor([[0, 0]], [1.0], [2, 2])
    for x in (sparse, [1], 1):
        assert nestlib.is_nested_or_composite(x) == tfnest.is_nested_or_composite(x)


def _or_error(fn, *args):
    try:
        return fn(*args)
    except (TypeError, ValueError) as e:
        return type(e).__name__


def test_every_tf_nest_function_exists_with_its_parameters():
    """Every public function of tensorflow.python.util.nest has a nestlib
    namesake taking (at least) the same parameters, in the same order."""
    for name, fn in vars(tfnest).items():
        if (
            name.startswith("_")
            or not inspect.isfunction(fn)
            or not fn.__module__.endswith("nest")
            or name in ("is_sequence",)
        ):
            continue
        assert hasattr(nestlib, name), name
        theirs = [p for p in inspect.signature(fn).parameters.values()]
        ours = inspect.signature(getattr(nestlib, name)).parameters
        positional = [
            p.name for p in ours.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        for i, p in enumerate(theirs):
            if p.kind == p.VAR_KEYWORD:
                continue
            if p.kind == p.VAR_POSITIONAL:
                assert any(q.kind == q.VAR_POSITIONAL for q in ours.values()), name
                continue
            assert p.name in ours, (name, p.name)  # tf.nest's keyword works
            if (
                ours[p.name].default is _backend.NOT_GIVEN
                and i < len(positional)
                and ours[positional[i]].default is _backend.NOT_GIVEN
            ):
                continue  # a second name of the argument at position i (dm-tree's first)
            if ours[p.name].kind == p.POSITIONAL_OR_KEYWORD:
                assert positional.index(p.name) == i, (name, p.name)


# --------------------------------------------------------------------------
# properties: generated structures with protocol objects, against tf.nest
# --------------------------------------------------------------------------

TF_KINDS = ("list", "tuple", "dict", "namedtuple", "attrs", "tf_protocol")


@SETTINGS
@given(s=nt.structures(containers=TF_KINDS))
def test_generated_structures_agree_with_tf_nest(s):
    assert as_plain(nestlib.flatten(s)) == as_plain(tfnest.flatten(s))
    assert nestlib.flatten_with_tuple_paths(s) == tfnest.flatten_with_tuple_paths(s)
    assert as_plain(nestlib.map_structure(lambda x: (x,), s)) == as_plain(
        tfnest.map_structure(lambda x: (x,), s)
    )
    flat = list(range(len(tfnest.flatten(s))))
    assert as_plain(nestlib.pack_sequence_as(s, flat)) == as_plain(tfnest.pack_sequence_as(s, flat))
    assert as_plain(nestlib.get_traverse_shallow_structure(lambda x: True, s)) == as_plain(
        tfnest.get_traverse_shallow_structure(lambda x: True, s)
    )


@SETTINGS
@given(ab=nt.structures_with_same_shape(2, containers=TF_KINDS))
def test_generated_pairs_agree_with_tf_nest(ab):
    a, b = ab
    assert as_plain(nestlib.map_structure(lambda x, y: (x, y), a, b)) == as_plain(
        tfnest.map_structure(lambda x, y: (x, y), a, b)
    )
    nestlib.assert_same_structure(a, b)
    tfnest.assert_same_structure(a, b)
