"""The user's own types as nodes: registration, dataclasses, TensorFlow's nest
protocol, ``is_leaf``, and the robustness rules around them, on every backend.

Every registered class here is made fresh by a fixture and unregistered after
its test, so that no registration leaks into another test.
"""

from __future__ import annotations

import collections
import dataclasses
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

import nestlib
from nestlib import _backend
from tests.objects import Masked

# --------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------


class Point:
    """Registered by the ``point`` fixture: children x, y; metadata unit."""

    def __init__(self, x, y, unit="m"):
        self.x, self.y, self.unit = x, y, unit

    def __eq__(self, other):
        return type(other) is Point and (self.x, self.y, self.unit) == (
            other.x,
            other.y,
            other.unit,
        )

    def __repr__(self):
        return f"Point({self.x!r}, {self.y!r}, {self.unit!r})"


@pytest.fixture
def point():
    nestlib.register_node(
        Point,
        lambda p: ((p.x, p.y), p.unit),
        lambda unit, xy: Point(*xy, unit),
        flatten_with_keys_fn=lambda p: ((("x", p.x), ("y", p.y)), p.unit),
    )
    yield Point
    nestlib.unregister_node(Point)


@dataclasses.dataclass
class Layer:
    w: object
    b: object
    name: str = "dense"


@pytest.fixture
def layer():
    nestlib.register_dataclass(Layer, meta_fields=["name"])
    yield Layer
    nestlib.unregister_node(Layer)


class Swapped:
    """Protocol object whose components are in another order than its fields."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __tf_flatten__(self):
        return (), (self.b, self.a)

    @classmethod
    def __tf_unflatten__(cls, metadata, components):
        return cls(components[1], components[0])

    def __eq__(self, other):
        return type(other) is Swapped and (self.a, self.b) == (other.a, other.b)

    def __repr__(self):
        return f"Swapped({self.a!r}, {self.b!r})"


# --------------------------------------------------------------------------
# register_node
# --------------------------------------------------------------------------


def test_registered_node_in_every_function(nest, point):
    s = {"p": Point(1, [2, 3], "cm"), "q": 4}
    assert nest.is_nested(Point(1, 2))
    assert nest.flatten(s) == [1, 2, 3, 4]
    assert nest.unflatten_as(s, [5, 6, 7, 8]) == {"p": Point(5, [6, 7], "cm"), "q": 8}
    assert nest.map_structure(lambda v: v * 10, s) == {"p": Point(10, [20, 30], "cm"), "q": 40}
    assert nest.map_structure(lambda a, b: a + b, s, s)["p"] == Point(2, [4, 6], "cm")
    assert nest.flatten_with_path(s) == [
        (("p", "x"), 1),
        (("p", "y", 0), 2),
        (("p", "y", 1), 3),
        (("q",), 4),
    ]
    assert nest.map_structure_with_path(lambda p, v: p, Point(1, 2)) == Point(("x",), ("y",))
    assert list(nest.yield_flat_paths(s)) == [p for p, _ in nest.flatten_with_path(s)]
    assert nest.flatten_with_joined_string_paths(Point(1, 2)) == [("x", 1), ("y", 2)]
    assert nest.flatten_up_to({"p": Point(0, 0, "cm"), "q": 0}, s) == [1, [2, 3], 4]
    assert nest.map_structure_up_to(Point(0, 0), len, Point("a", "bc")) == Point(1, 2)
    assert nest.traverse(lambda x: x + 1 if isinstance(x, int) else None, Point(1, 2)) == Point(
        2, 3
    )
    assert nest.list_to_tuple(Point([1], 2)) == Point((1,), 2)
    nest.assert_same_structure(s, {"p": Point(0, [0, 0], "cm"), "q": 0})
    spec = nest.spec_of(s)
    assert spec.flatten(s) == [1, 2, 3, 4] and spec.unflatten([1, 2, 3, 4]) == s
    assert spec.paths == tuple(p for p, _ in nest.flatten_with_path(s))
    assert spec.map(lambda v: -v, s) == nest.map_structure(lambda v: -v, s)


def test_registered_node_metadata_is_part_of_the_structure(nest, point):
    a, b = Point(1, 2, "m"), Point(1, 2, "cm")
    for check_types in (True, False):
        with pytest.raises(ValueError, match=r"at \[0\]: .*metadata 'm' vs 'cm'"):
            nest.assert_same_structure([a], [b], check_types=check_types)
        with pytest.raises(ValueError, match="metadata"):
            nest.map_structure(lambda x, y: x, [a], [b], check_types=check_types)
    with pytest.raises(ValueError, match="metadata"):
        nest.spec_of(a).flatten(b)
    with pytest.raises(ValueError, match="metadata"):
        nest.assert_shallow_structure(a, b)
    assert nest.spec_of(a) != nest.spec_of(b)
    assert nest.spec_of(b).unflatten([3, 4]) == Point(3, 4, "cm")


def test_registered_node_and_other_types(nest, point):
    with pytest.raises(TypeError, match=r"structures differ at \['a'\]"):
        nest.assert_same_structure({"a": Point(1, 2)}, {"a": (1, 2)})
    # without check_types a node is compared by its children, as list vs tuple
    nest.assert_same_structure({"a": Point(1, 2)}, {"a": (1, 2)}, check_types=False)
    with pytest.raises(ValueError, match=r"at \['a'\]\.y"):
        nest.assert_same_structure({"a": Point(1, 2)}, {"a": Point(1, [2])})


def test_errors_name_paths_inside_registered_nodes(nest, point):
    with pytest.raises(ValueError, match=r"structures differ at \[0\]\.y\[1\]"):
        nest.assert_same_structure([Point(1, [2, 3])], [Point(1, [2, (3,)])])


def test_register_node_without_keys_uses_indices(nest):
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    nestlib.register_node(Pair, lambda p: ([p.a, p.b], None), lambda m, c: Pair(*c))
    try:
        assert nest.flatten_with_path({"k": Pair(1, 2)}) == [(("k", 0), 1), (("k", 1), 2)]
        rebuilt = nest.map_structure(str, Pair(1, 2))
        assert (type(rebuilt), rebuilt.a, rebuilt.b) == (Pair, "1", "2")
    finally:
        nestlib.unregister_node(Pair)


def test_registration_errors():
    class C:
        pass

    with pytest.raises(TypeError, match="takes a class"):
        nestlib.register_node(C(), lambda x: ((), None), lambda m, c: C())
    with pytest.raises(TypeError, match="flatten_fn must be callable"):
        nestlib.register_node(C, 3, lambda m, c: C())
    with pytest.raises(TypeError, match="unflatten_fn must be callable"):
        nestlib.register_node(C, lambda x: ((), None), None)
    for builtin in (list, tuple, dict, collections.OrderedDict, collections.defaultdict):
        with pytest.raises(ValueError, match="built-in node types"):
            nestlib.register_node(builtin, lambda x: ((), None), lambda m, c: None)
    with pytest.raises(ValueError, match="already a node by nestlib's built-in rules"):
        nestlib.register_node(
            collections.namedtuple("NT", "a"), lambda x: ((), None), lambda m, c: None
        )
    nestlib.register_node(C, lambda x: ((), None), lambda m, c: C())
    try:
        with pytest.raises(ValueError, match="already registered"):
            nestlib.register_node(C, lambda x: ((), None), lambda m, c: C())
    finally:
        nestlib.unregister_node(C)
    with pytest.raises(ValueError, match="not a registered node type"):
        nestlib.unregister_node(C)


def test_exactly_the_class_is_registered(nest, point):
    class SubPoint(Point):
        pass

    assert not nest.is_nested(SubPoint(1, 2))
    [leaf] = nest.flatten([SubPoint(1, 2)])
    assert type(leaf) is SubPoint


def test_a_flatten_function_returning_the_wrong_thing_is_named(nest):
    class Bad:
        pass

    nestlib.register_node(Bad, lambda b: 5, lambda m, c: Bad())
    try:
        with pytest.raises(TypeError, match="registered for Bad must return a pair"):
            nest.flatten([Bad()])
    finally:
        nestlib.unregister_node(Bad)


def test_an_error_in_a_flatten_function_carries_its_path(nest):
    class Boom:
        pass

    def flatten(b):
        raise KeyError("boom")

    nestlib.register_node(Boom, flatten, lambda m, c: Boom())
    try:
        with pytest.raises(KeyError) as info:
            nest.flatten({"a": [Boom()]})
        if sys.version_info >= (3, 11):  # exception notes (PEP 678)
            assert "['a'][0]" in "".join(info.value.__notes__)
    finally:
        nestlib.unregister_node(Boom)


# --------------------------------------------------------------------------
# register_dataclass
# --------------------------------------------------------------------------


def test_unregistered_dataclass_is_a_leaf(nest):
    assert nest.flatten([Layer(1, 2)]) == [Layer(1, 2)]
    assert not nest.is_nested(Layer(1, 2))


def test_registered_dataclass(nest, layer):
    s = [Layer(1, (2, 3), "out")]
    assert nest.flatten(s) == [1, 2, 3]
    assert nest.flatten_with_path(s) == [((0, "w"), 1), ((0, "b", 0), 2), ((0, "b", 1), 3)]
    assert nest.map_structure(lambda v: v + 1, s) == [Layer(2, (3, 4), "out")]
    with pytest.raises(ValueError, match=r"structures differ at \[0\]: .*metadata"):
        nest.assert_same_structure(s, [Layer(1, (2, 3), "in")])
    with pytest.raises(ValueError, match=r"at \[0\]\.b: "):
        nest.assert_same_structure(s, [Layer(1, (2,), "out")])


def test_register_dataclass_forms_and_fields():
    @nestlib.register_dataclass
    @dataclasses.dataclass
    class A:
        x: int
        y: int

    @nestlib.register_dataclass(data_fields=["y"])
    @dataclasses.dataclass
    class B:
        x: int
        y: int

    @dataclasses.dataclass
    class D:
        x: int
        y: int = dataclasses.field(init=False, default=0)

    try:
        assert nestlib.flatten(A(1, 2)) == [1, 2]
        assert nestlib.flatten(B(1, 2)) == [2]  # x became metadata
        assert nestlib.map_structure(str, B(1, 2)) == B(1, "2")
        nestlib.register_dataclass(D)  # only __init__ fields count
        assert nestlib.flatten(D(5)) == [5]
    finally:
        for c in (A, B, D):
            if c in nestlib._nodes.REGISTERED:
                nestlib.unregister_node(c)


def test_register_dataclass_errors():
    @dataclasses.dataclass
    class E:
        x: int
        y: int

    with pytest.raises(TypeError, match="takes a dataclass"):
        nestlib.register_dataclass(Point)
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        nestlib.register_dataclass(E, data_fields=["x"], meta_fields=[])
    with pytest.raises(ValueError, match=r"not __init__ fields \['z'\]"):
        nestlib.register_dataclass(E, data_fields=["x", "y", "z"])
    with pytest.raises(ValueError, match=r"in both \['x'\]"):
        nestlib.register_dataclass(E, data_fields=["x", "y"], meta_fields=["x"])
    with pytest.raises(TypeError, match="field names must be str"):
        nestlib.register_dataclass(E, data_fields=[1])
    assert E not in nestlib._nodes.REGISTERED


# --------------------------------------------------------------------------
# TensorFlow's nest protocol
# --------------------------------------------------------------------------


def test_protocol_object_is_a_node(nest):
    mt = Masked(True, 7)
    assert nest.is_nested(mt)
    assert nest.flatten(mt) == [7]
    assert list(nest.yield_flat_paths(mt)) == [(0,)]
    assert nest.map_structure(lambda x: x * 2, mt) == Masked(True, 14)
    assert nest.pack_sequence_as(Masked(False, (0, 0)), [1, 2]) == Masked(False, (1, 2))


def test_protocol_nested_and_inside_other_nodes(nest):
    Pt = collections.namedtuple("Pt", "a b")
    s = {"k": [Swapped(Masked(True, 1), 2)], "n": Pt(Masked(False, (3, 4)), 5)}
    assert nest.flatten(s) == [2, 1, 3, 4, 5]
    assert nest.flatten_with_path(s) == [
        (("k", 0, 0), 2),
        (("k", 0, 1, 0), 1),
        (("n", "a", 0, 0), 3),
        (("n", "a", 0, 1), 4),
        (("n", "b"), 5),
    ]
    assert nest.unflatten_as(s, nest.flatten(s)) == s
    assert nest.spec_of(s).unflatten(nest.flatten(s)) == s
    assert nest.flatten_up_to({"k": [Swapped(0, 0)], "n": Pt(0, 0)}, s) == [
        2,
        Masked(True, 1),
        Masked(False, (3, 4)),
        5,
    ]


def test_protocol_same_structure_compares_the_class_not_the_metadata(nest):
    nest.assert_same_structure(Masked(True, 1), Masked(False, 2))
    with pytest.raises(TypeError, match="structures differ at the top level"):
        nest.assert_same_structure(Masked(True, 1), Swapped(1, 2))
    with pytest.raises(TypeError):
        nest.assert_same_structure(Masked(True, 1), (1,))
    nest.assert_same_structure(Masked(True, 1), (1,), check_types=False)
    with pytest.raises(ValueError, match=r"at \[0\]"):
        nest.assert_same_structure(Masked(True, (1, 2)), Masked(True, 1))


def test_protocol_flatten_returning_the_wrong_shape_is_named(nest):
    class BadProtocol:
        def __tf_flatten__(self):
            return [1, 2]

        @classmethod
        def __tf_unflatten__(cls, m, c):
            return cls()

    with pytest.raises(TypeError, match=r"BadProtocol.__tf_flatten__\(\) must return"):
        nest.flatten({"a": BadProtocol()})


def test_registration_wins_over_the_protocol(nest):
    class Both(Masked):
        pass

    assert nest.flatten(Both(True, 1)) == [1]
    nestlib.register_node(Both, lambda b: ((b.mask, b.value), None), lambda m, c: Both(*c))
    try:
        assert nest.flatten(Both(True, 1)) == [True, 1]
    finally:
        nestlib.unregister_node(Both)
    assert nest.flatten(Both(True, 1)) == [1]  # the protocol again


# --------------------------------------------------------------------------
# is_leaf
# --------------------------------------------------------------------------

IS_TUPLE = staticmethod(lambda x: isinstance(x, tuple))


def is_tuple(x):
    return isinstance(x, tuple)


def test_is_leaf_everywhere(nest):
    s = {"a": [1, (2, 3)], "b": (4, [5])}
    assert nest.flatten(s, is_leaf=is_tuple) == [1, (2, 3), (4, [5])]
    assert nest.flatten_with_path(s, is_leaf=is_tuple) == [
        (("a", 0), 1),
        (("a", 1), (2, 3)),
        (("b",), (4, [5])),
    ]
    assert list(nest.yield_flat_paths(s, is_leaf=is_tuple)) == [("a", 0), ("a", 1), ("b",)]
    assert nest.map_structure(len, {"a": (1, 2), "b": [(3,)]}, is_leaf=is_tuple) == {
        "a": 2,
        "b": [1],
    }
    assert nest.map_structure_with_path(lambda p, x: p, s, is_leaf=is_tuple) == {
        "a": [("a", 0), ("a", 1)],
        "b": ("b",),
    }
    assert nest.flatten_up_to([0, 0], [(1, 2), [3]], is_leaf=is_tuple) == [(1, 2), [3]]
    assert nest.traverse(lambda x: None, s, is_leaf=is_tuple) == s
    seen = []
    nest.traverse(lambda x: seen.append(x), [(1, 2)], is_leaf=is_tuple)
    assert seen == [[(1, 2)], (1, 2)]  # not 1 and 2
    spec = nest.spec_of(s, is_leaf=is_tuple)
    assert spec.num_leaves == 3
    assert spec.flatten({"a": [9, "x"], "b": {"any": "thing"}}) == [9, "x", {"any": "thing"}]
    assert spec.unflatten([1, 2, 3]) == {"a": [1, 2], "b": 3}
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec != nest.spec_of({"a": [0, 0], "b": 0})  # a prefix Spec is another kind


def test_is_leaf_with_several_structures(nest):
    a = [(1, 2), [3]]
    b = [{"x": 1}, [4]]
    assert nest.map_structure(lambda x, y: (x, y), a, b, is_leaf=is_tuple) == [
        ((1, 2), {"x": 1}),
        [(3, 4)],
    ]
    with pytest.raises(ValueError, match="structures differ at"):
        nest.map_structure(lambda x, y: x, a, [{"x": 1}, [4, 5]], is_leaf=is_tuple)
    with pytest.raises(TypeError):
        nest.map_structure(lambda x, y: x, a, ({"x": 1}, [4]), is_leaf=is_tuple)


def test_is_leaf_on_registered_nodes(nest, point):
    s = [Point(1, 2), Point(3, 4)]
    assert nest.flatten(s, is_leaf=lambda x: isinstance(x, Point)) == s
    assert nest.flatten(s, is_leaf=lambda x: False) == [1, 2, 3, 4]


def test_is_leaf_errors(nest):
    with pytest.raises(TypeError, match="is_leaf must be callable"):
        nest.flatten([1], is_leaf=3)
    with pytest.raises(ValueError, match="cannot be combined"):
        nest.flatten([1], expand_composites=True, is_leaf=is_tuple)


# --------------------------------------------------------------------------
# Specs across (un)registration, pickling
# --------------------------------------------------------------------------


def test_spec_made_before_unregistration_refuses_to_be_wrong(nest):
    class Box:
        def __init__(self, v):
            self.v = v

    nestlib.register_node(Box, lambda b: ((b.v,), None), lambda m, c: Box(*c))
    registered = True
    try:
        s = {"a": Box(1), "b": 2}
        spec = nest.spec_of(s)
        assert spec.flatten(s) == [1, 2]
        nestlib.unregister_node(Box)
        registered = False
        with pytest.raises(RuntimeError, match="made again with nestlib.spec_of|make it again"):
            spec.flatten(s)
        with pytest.raises(RuntimeError, match="make it again"):
            spec.unflatten([1, 2])
        assert nest.spec_of(s).num_leaves == 2 and nest.flatten(s) == [s["a"], 2]
        # registered again with other rules: the old Spec still refuses
        nestlib.register_node(Box, lambda b: ((b.v, b.v), None), lambda m, c: Box(c[0]))
        registered = True
        with pytest.raises(RuntimeError, match="make it again"):
            spec.flatten(s)
    finally:
        if registered:
            nestlib.unregister_node(Box)


def test_spec_survives_an_unrelated_registration(nest, point):
    s = {"a": Point(1, 2), "b": [3]}
    spec = nest.spec_of(s)

    class Other:
        pass

    nestlib.register_node(Other, lambda o: ((), None), lambda m, c: Other())
    try:
        assert spec.flatten(s) == [1, 2, 3] and spec.unflatten([1, 2, 3]) == s
    finally:
        nestlib.unregister_node(Other)


def test_spec_made_before_a_leaf_type_is_registered(nest):
    class Late:
        def __init__(self, v):
            self.v = v

    spec = nest.spec_of([0, 0])
    assert spec.flatten([Late(1), 2])[1] == 2
    nestlib.register_node(Late, lambda x: ((x.v,), None), lambda m, c: Late(*c))
    try:  # a node where the Spec has a leaf: the ordinary mismatch error
        with pytest.raises(ValueError, match=r"structures differ at \[0\]"):
            spec.flatten([Late(1), 2])
    finally:
        nestlib.unregister_node(Late)


PICKLE_CHILD = textwrap.dedent("""
    import pickle, sys
    import tests.nestlib.test_custom_nodes as T
    import nestlib
    data = sys.stdin.buffer.read()
    try:
        pickle.loads(data)
    except RuntimeError as e:
        print("refused:", "Layer" in str(e))
    nestlib.register_dataclass(T.Layer, meta_fields=["name"])
    spec = pickle.loads(data)
    print("loaded:", spec.unflatten([1, 2]))
""")


def test_pickled_spec_with_registered_types(layer):
    spec = nestlib.spec_of({"l": Layer(0, 0, "x")})
    assert pickle.loads(pickle.dumps(spec)) == spec
    out = subprocess.run(
        [sys.executable, "-c", PICKLE_CHILD],
        input=pickle.dumps(spec),
        capture_output=True,
        check=True,
        cwd=_repo_root(),
    ).stdout.decode()
    assert "refused: True" in out
    assert "loaded: {'l': Layer(w=1, b=2, name='x')}" in out


def _repo_root():
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[2])


def test_registration_is_thread_safe():
    classes = [
        type(f"T{i}", (), {"__init__": lambda self, v=1: setattr(self, "v", v)}) for i in range(40)
    ]
    errors = []

    def work(chunk):
        try:
            for cls in chunk:
                nestlib.register_node(cls, lambda o: ((o.v,), None), lambda m, c, cls=cls: cls(*c))
                assert nestlib.flatten([cls(3)]) == [3]
                nestlib.unregister_node(cls)
                assert nestlib.flatten([cls(3)])[0].v == 3
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(classes[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not any(c in nestlib._nodes.REGISTERED for c in classes)


# --------------------------------------------------------------------------
# robustness: no StopIteration escapes, mutation while mapping
# --------------------------------------------------------------------------


def test_map_function_raising_stop_iteration(nest):
    def stop(x):
        raise StopIteration

    for call in (
        lambda: nest.map_structure(stop, [1, 2]),
        lambda: nest.map_structure(lambda x, y: stop(x), [1, 2], [3, 4]),
        lambda: nest.map_structure_with_path(lambda p, x: stop(x), {"a": 1}),
        lambda: nest.map_structure_up_to([0], stop, [1]),
        lambda: nest.spec_of([0, 0]).map(stop, [1, 2]),
        lambda: nest.spec_of([0, 0]).map(lambda x, y: stop(x), [1, 2], [3, 4]),
        lambda: nest.spec_of({"a": Masked(1, 2)}).map(stop, {"a": Masked(1, 2)}),
        lambda: nest.traverse(stop, [1]),
    ):
        with pytest.raises(RuntimeError, match="StopIteration"):
            call()


def test_flatten_function_raising_stop_iteration(nest):
    class Stopper:
        pass

    def flatten(x):
        raise StopIteration

    nestlib.register_node(Stopper, flatten, lambda m, c: Stopper())
    try:
        with pytest.raises(RuntimeError, match="StopIteration"):
            nest.flatten([Stopper()])
        with pytest.raises(RuntimeError, match="StopIteration"):
            nest.map_structure(lambda x: x, [Stopper()])
    finally:
        nestlib.unregister_node(Stopper)


@pytest.mark.parametrize("case", ["grow", "shrink", "nested"])
def test_mutating_the_mapped_structure_is_an_error(nest, case):
    d = {"a": [1, 2], "b": 3}

    def func(x):
        if case == "grow":
            d.setdefault(f"z{x}", 0)
        elif case == "shrink":
            d.pop("b", None)
        else:
            d["a"].append(0)
        return x

    with pytest.raises(RuntimeError, match="the structure changed while it was being mapped"):
        nest.map_structure(func, d)


def test_backends_share_the_engine_functions():
    for name in _backend.BACKENDS:
        try:
            ns = _backend.api(name)
        except ImportError:
            continue
        assert ns.flatten.__module__ == "nestlib.api"
        assert ns.flatten.__doc__ == nestlib.flatten.__doc__


def test_public_functions_are_left_alone_by_autograph():
    """AutoGraph must call them as they are (it once turned is_nested's argument
    checks into graph conditionals inside a tf.function)."""
    import inspect

    for name in nestlib.__all__:
        obj = getattr(nestlib, name)
        if inspect.isfunction(obj):
            assert getattr(obj, "autograph_info__", None) == {}, name


def test_flattening_while_another_thread_registers_the_type(nest):
    """Each flatten sees the type registered or not (never a crash, never a mix
    within one node): the C core keeps every NodeDef alive while user code runs."""

    class Toggle:
        def __init__(self, v):
            self.v = v

    def slow_flatten(t):
        sum(range(50))  # user code long enough for the other thread to run
        return ((t.v,), None)

    items = [Toggle(i) for i in range(30)]
    stop = threading.Event()
    errors = []

    def toggle():
        try:
            while not stop.is_set():
                nestlib.register_node(Toggle, slow_flatten, lambda m, c: Toggle(*c))
                nestlib.unregister_node(Toggle)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    thread = threading.Thread(target=toggle)
    thread.start()
    try:
        for _ in range(200):
            try:
                out = nest.flatten(items)
            except TypeError as e:  # unregistered in the middle of the call
                assert "no longer a registered node type" in str(e)
                continue
            assert len(out) == 30
            assert all(x == i or (type(x) is Toggle and x.v == i) for i, x in enumerate(out))
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert Toggle not in nestlib._nodes.REGISTERED


def test_backends_agree_on_structures_with_custom_nodes():
    """Hypothesis over every container kind, registered dataclasses and TF-protocol
    objects included: the three backends give the same results and errors."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import nestlib.testing as nt

    apis = []
    for name in _backend.BACKENDS:
        try:
            apis.append(_backend.api(name))
        except ImportError:
            continue
    kinds = [k for k in nt.CONTAINERS if k != "attrs" or "attrs" in nt.DEFAULT_CONTAINERS]

    def outcome(fn, *args, **kwargs):
        try:
            return ("ok", fn(*args, **kwargs))
        except Exception as e:
            return ("raised", type(e), str(e))

    @settings(
        max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        ab=st.one_of(
            nt.structures_with_same_shape(2, containers=kinds),
            st.tuples(nt.structures(containers=kinds), nt.structures(containers=kinds)),
        ),
        check_types=st.booleans(),
    )
    def check(ab, check_types):
        a, b = ab
        results = []
        for nest in apis:
            results.append(
                [
                    outcome(nest.flatten, a),
                    outcome(nest.flatten_with_path, a),
                    outcome(nest.map_structure, lambda x: (x,), a),
                    outcome(nest.map_structure, lambda x, y: (x, y), a, b, check_types=check_types),
                    outcome(nest.assert_same_structure, a, b, check_types=check_types),
                    outcome(nest.unflatten_as, a, nest.flatten(b)),
                    outcome(lambda: nest.spec_of(a).flatten(b)),
                ]
            )
        for other in results[1:]:
            assert other == results[0]

    check()
