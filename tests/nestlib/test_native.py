"""The compiled core (``nestlib._cnest``, the ``native`` backend).

The rest of the nest suite already runs against the native backend through
the ``nest`` fixture. This file holds what is specific to the C code: that it
is built wherever it can be, parity with the Python engine on a zoo of
structures and under hypothesis (results *and* exceptions, class, message and
notes), no reference leaks, hostile input, and threads.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import gc
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading
import tracemalloc
import types

import numpy as np
import pytest

from nestlib import _backend
from tests.objects import BadGetItem, BadIter, BadOrder, Map, Seq, identical

ROOT = pathlib.Path(__file__).resolve().parents[2]
PY = _backend.api("python")

try:
    NA = _backend.api("native")
except ImportError as e:  # test_extension_is_built says whether that is acceptable
    NA = None
    NATIVE_ERROR = e

needs_native = pytest.mark.skipif(NA is None, reason="nestlib._cnest is not built")


def _compiler_available() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths().get("include") or ""
    return (
        bool(cc)
        and shutil.which(cc[0]) is not None
        and os.path.exists(os.path.join(include, "Python.h"))
    )


def test_extension_is_built_where_a_compiler_exists():
    """Fails (rather than skips) when the build could have made the extension
    but did not: a CI machine must never silently lose it."""
    if NA is None:
        if _compiler_available():
            pytest.fail(
                f"a C compiler and Python.h are available but nestlib._cnest did not "
                f"import ({NATIVE_ERROR}); run `pip install -e .` to build it"
            )
        pytest.skip("no C compiler here: nestlib runs on its other backends")
    assert NA.backend() == "native"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def outcome(fn, *args, **kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as e:
        # two runs build two objects: their addresses in reprs differ
        message = re.sub(r" at 0x[0-9a-f]+", " at 0x...", str(e))
        return ("raised", type(e), message, tuple(getattr(e, "__notes__", ())))


def assert_same_outcome(what, a, b):
    if a[0] == "ok" and b[0] == "ok":
        assert identical(a[1], b[1]), (what, a[1], b[1])
    else:
        assert a == b if a[0] != "ok" else False, (what, a, b)


def parity(what, make_args, op_name, **kwargs):
    """Runs ``op_name`` on fresh arguments with both backends; same outcome."""
    results = []
    for api in (PY, NA):
        args = make_args()
        results.append(outcome(getattr(api, op_name), *args, **kwargs))
    assert_same_outcome(f"{op_name} on {what}", *results)
    return results[1]


# --------------------------------------------------------------------------
# the zoo
# --------------------------------------------------------------------------

NT = collections.namedtuple("NT", "b a")


class NTSub(NT):
    """A namedtuple subclass: rebuilt by calling the type."""


class NTReversed(NT):
    """A namedtuple whose iteration is overridden."""

    def __iter__(self):
        return iter(tuple(tuple.__iter__(self))[::-1])


MySeq, MyMapping = Seq, Map


def chain(depth, leaf=0, wrap=lambda x: [x]):
    s = leaf
    for _ in range(depth):
        s = wrap(s)
    return s


def zoo() -> dict:
    """name -> structure (built fresh on each call)."""
    arr = np.arange(3.0)
    z = {
        "leaf None": None,
        "leaf int": 3,
        "leaf array": arr,
        "leaf str": "abc",
        "empty list": [],
        "empty tuple": (),
        "empty dict": {},
        "nested empties": [[], {}, ()],
        "list": [1, (2, 3), [None]],
        "dict": {"b": 1, "a": [2, {"d": 3, "c": 4}]},
        "dict sorted": {"a": 1, "b": 2},
        "int keys": {3: "x", 1: "y", 2.5: "z"},
        "tuple keys": {(1, 2): 1, (0, 5): 2},
        "ordered dict": collections.OrderedDict([("b", 1), ("a", (2, 3))]),
        "defaultdict": collections.defaultdict(list, {"b": [1], "a": 2}),
        "mappingproxy": types.MappingProxyType({"b": 1, "a": (2,)}),
        "namedtuple": NT(b=1, a=[2, 3]),
        "namedtuple sub": NTSub(b=(1,), a=2),
        "namedtuple reversed": NTReversed(b=1, a=2),
        "sequence": MySeq([1, [2, 3]]),
        "mapping": MyMapping({"z": 1, "y": [2]}),
        "views": [{"b": 1, "a": 2}.values(), {"x": (1, 2)}.items(), {"k": 0}.keys()],
        "numpy leaves": {"w": arr, "b": [arr, arr]},
        "dnc-like": NT(b=NT(b=arr, a=(arr, arr)), a={"h": arr, "c": [arr, None]}),
        "wide": list(range(300)),
    }
    if _attr is not None:
        z["attrs"] = _Attrs(x=1, y={"b": 2, "a": (3,)})
    wrapt = _maybe("wrapt")
    if wrapt is not None:
        z["proxy list"] = wrapt.ObjectProxy([1, 2])
        z["proxy namedtuple"] = [wrapt.ObjectProxy(NT(1, 2))]
        z["proxy leaf"] = [wrapt.ObjectProxy(5)]
        z["proxy dict"] = wrapt.ObjectProxy({"b": 1, "a": 2})
    return z


def _maybe(name):
    try:
        return __import__(name)
    except ImportError:
        return None


_attr = _maybe("attr")
if _attr is not None:

    @_attr.s
    class _Attrs:
        x = _attr.ib()
        y = _attr.ib()


def variants(s):
    """Other structures to hold against ``s``: equal, retyped, changed."""
    out = [s, PY.list_to_tuple(s), [s], {"k": s}, None]
    flat = PY.flatten(s)
    if flat:
        out.append(PY.unflatten_as(s, [[x] for x in flat]))  # a node where a leaf was
    return out


ZOO_NAMES = sorted(zoo())


@needs_native
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_parity(name):
    def s():
        return zoo()[name]

    for op in ("flatten", "is_nested", "flatten_with_path", "flatten_with_joined_string_paths"):
        parity(name, lambda: (s(),), op)
    n = len(PY.flatten(s()))
    for count in {n, n + 1, max(n - 1, 0)}:
        parity(name, lambda: (s(), list(range(count))), "unflatten_as")
        parity(name, lambda: (s(), tuple(range(count))), "pack_sequence_as")
    parity(name, lambda: (s(), iter(range(n))), "unflatten_as")  # a one-shot iterator
    parity(name, lambda: (s(), 5), "unflatten_as")
    parity(name, lambda: (lambda x: (x,), s()), "map_structure")
    parity(name, lambda: (lambda p, x: (p, x), s()), "map_structure_with_path")
    for k in range(len(variants(s()))):
        for check_types in (True, False):

            def pair(k=k):
                return s(), variants(s())[k]

            parity(name, pair, "assert_same_structure", check_types=check_types)
            parity(
                name,
                lambda: (lambda x, y: (x, y),) + pair(),
                "map_structure",
                check_types=check_types,
            )
            parity(
                name,
                lambda: (lambda x, y, z: z,) + pair() + (s(),),
                "map_structure",
                check_types=check_types,
            )
            parity(
                name,
                lambda: (lambda p, x, y: (p, y),) + pair(),
                "map_structure_with_path",
                check_types=check_types,
            )
            parity(name, pair, "flatten_up_to", check_types=check_types)
            parity(name, lambda: pair()[::-1], "flatten_with_path_up_to", check_types=check_types)
            parity(
                name,
                lambda: (pair()[0], lambda x: (x,), pair()[1]),
                "map_structure_up_to",
                check_types=check_types,
            )
    spec_parity(name, s)


def spec_parity(name, make):
    ps, ns = outcome(PY.spec_of, make()), outcome(NA.spec_of, make())
    assert ps[0] == ns[0], (name, ps, ns)
    if ps[0] != "ok":
        assert ps == ns
        return
    ps, ns = ps[1], ns[1]
    assert ps == ns and hash(ps) == hash(ns)
    assert re.sub(r" at 0x[0-9a-f]+", "", repr(ps)) == re.sub(r" at 0x[0-9a-f]+", "", repr(ns))
    assert (ps.num_leaves, ps.paths) == (ns.num_leaves, ns.paths)
    assert isinstance(ns, PY.Spec)
    for other in variants(make()):
        assert_same_outcome(name, outcome(ps.flatten, other), outcome(ns.flatten, other))
        assert_same_outcome(
            name,
            outcome(ps.map, lambda x, y: (x, y), make(), other),
            outcome(ns.map, lambda x, y: (x, y), make(), other),
        )
    n = ns.num_leaves
    for leaves in (list(range(n)), tuple(range(n)), list(range(n + 1)), iter(range(n)), 7):
        if isinstance(leaves, cabc.Iterator):
            results = [outcome(sp.unflatten, iter(range(n))) for sp in (ps, ns)]
        else:
            results = [outcome(sp.unflatten, leaves) for sp in (ps, ns)]
        assert_same_outcome(name, *results)
    assert_same_outcome(
        name, outcome(ps.map, lambda x: (x,), make()), outcome(ns.map, lambda x: (x,), make())
    )
    for bad in ((), (3, make()), (len,)):
        assert_same_outcome(name, outcome(ps.map, *bad), outcome(ns.map, *bad))


DEEP = {
    "lists 999": lambda: chain(999),  # MAX_DEPTH levels of nodes: legal
    "dicts 999": lambda: chain(999, wrap=lambda x: {"k": x}),
    "mixed 999": lambda: chain(333, wrap=lambda x: NT([x], {"k": 1})),
}


@needs_native
@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_but_legal_parity(name):
    make = DEEP[name]

    def one():
        return (make(),)

    for op in ("flatten", "flatten_with_path"):
        parity(name, one, op)
    n = len(PY.flatten(make()))
    parity(name, lambda: one() + (list(range(n)),), "unflatten_as")
    parity(name, lambda: (lambda x: (x,),) + one(), "map_structure")
    parity(name, lambda: (lambda x, y: (x, y),) + one() + one(), "map_structure")
    parity(name, lambda: (lambda p, x: x,) + one(), "map_structure_with_path")
    parity(name, lambda: one() + one(), "assert_same_structure")
    parity(name, lambda: one() + one(), "flatten_up_to")
    spec = NA.spec_of(make())
    assert identical(spec.unflatten(spec.flatten(make())), make())


DICT_PAIRS = {
    "insertion orders": lambda: ({"b": 1, "a": [2, 3], "c": 4}, {"a": [5, 6], "c": 7, "b": 8}),
    "equal keys of other types": lambda: ({1: "x", 2: ["y"]}, {2: ["v"], 1.0: "w"}),
    "bool and int keys": lambda: ({True: 1, 2: 3}, {1: 4, 2: 5}),
    "same size, other keys": lambda: ({"a": 1, "b": 2}, {"a": 1, "c": 2}),
    "nested, one key renamed": lambda: (
        [{"k": {"a": 1, "b": 2}}, {"x": 1}],
        [{"k": {"a": 1, "b": 2}}, {"y": 1}],
    ),
    "many dicts": lambda: (
        [{f"k{i}": i, f"j{i}": [i]} for i in range(20)],
        [{f"j{i}": [i], f"k{i}": i} for i in range(20)],
    ),
    "int keys": lambda: ({i: i for i in range(50, 0, -1)}, {i: -i for i in range(1, 51)}),
}


@needs_native
@pytest.mark.parametrize("name", sorted(DICT_PAIRS))
def test_dict_pairs_parity(name):
    make = DICT_PAIRS[name]
    for check_types in (True, False):
        parity(name, make, "assert_same_structure", check_types=check_types)
        parity(
            name, lambda: (lambda x, y: (x, y),) + make(), "map_structure", check_types=check_types
        )
        parity(
            name,
            lambda: (lambda x, y, z: (x, y, z),) + make() + make()[:1],
            "map_structure",
            check_types=check_types,
        )
        parity(
            name,
            lambda: (lambda p, x, y: (p, x, y),) + make(),
            "map_structure_with_path",
            check_types=check_types,
        )
        parity(name, lambda: make()[::-1], "flatten_up_to", check_types=check_types)
    parity(name, lambda: (lambda x: (x,), make()[0]), "map_structure")
    parity(name, lambda: (lambda p, x: (p, x), make()[1]), "map_structure_with_path")


@needs_native
def test_spec_pickles_and_uses_the_native_engine():
    import pickle

    s = {"b": NT(1, [2, 3]), "a": None}
    spec = NA.spec_of(s)
    assert type(spec).__module__ == "nestlib._native"
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec and again.unflatten(range(4)) == spec.unflatten(range(4))
    assert NA.spec_of(s) is spec  # cached
    with pytest.raises(AttributeError):
        spec.map = None


# --------------------------------------------------------------------------
# hypothesis
# --------------------------------------------------------------------------


@needs_native
def test_generated_structures_parity():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    nt = pytest.importorskip("nestlib.testing")
    containers = nt.CONTAINERS
    pairs = st.one_of(
        nt.structures_with_same_shape(2, containers=containers),
        st.tuples(nt.structures(containers=containers), nt.structures(containers=containers)),
        nt.shallow_and_deep(containers=containers),
    )

    @settings(
        max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(pair=pairs, check_types=st.booleans())
    def check(pair, check_types):
        a, b = pair

        def same(*args):
            return lambda: args

        for op in ("flatten", "flatten_with_path"):
            parity("a", same(a), op)
        parity("a", same(a, PY.flatten(b)), "unflatten_as")
        parity("a, b", same(a, b), "assert_same_structure", check_types=check_types)
        parity("a, b", same(lambda x, y: (x, y), a, b), "map_structure", check_types=check_types)
        parity(
            "a, b",
            same(lambda p, x, y: (p, y), a, b),
            "map_structure_with_path",
            check_types=check_types,
        )
        parity("a, b", same(a, b), "flatten_with_path_up_to", check_types=check_types)
        parity("a, b", same(a, lambda x: (x,), b), "map_structure_up_to", check_types=check_types)
        ps, ns = outcome(PY.spec_of, a), outcome(NA.spec_of, a)
        if ps[0] == "ok":
            assert_same_outcome("spec", outcome(ps[1].flatten, b), outcome(ns[1].flatten, b))
            assert_same_outcome(
                "spec",
                outcome(ps[1].map, lambda x, y: y, a, b),
                outcome(ns[1].map, lambda x, y: y, a, b),
            )

    del hypothesis
    check()


# --------------------------------------------------------------------------
# hostile input
# --------------------------------------------------------------------------

RaisingIter, RaisingGetItem, RaisingOrder = BadIter, BadGetItem, BadOrder


def hostile() -> dict:
    cycle: list = [1]
    cycle.append(cycle)
    dcycle: dict = {"a": 1}
    dcycle["b"] = [dcycle]
    return {
        "cycle": cycle,
        "dict cycle": dcycle,
        "deep 10k lists": chain(10_000),
        "deep 10k tuples": chain(10_000, wrap=lambda x: (x,)),
        "deep 10k dicts": chain(10_000, wrap=lambda x: {"k": x}),
        "deep 1001": chain(1001),
        "raising iter": {"a": RaisingIter()},
        "raising getitem": [1, RaisingGetItem()],
        "unsortable keys": {1: "a", "b": 2},
        "raising order": {RaisingOrder(): 1, RaisingOrder(): 2},
    }


@needs_native
@pytest.mark.parametrize("name", sorted(hostile()))
def test_hostile_input_parity(name):
    def s():
        return (hostile()[name],)

    for op in ("flatten", "flatten_with_path", "is_nested", "spec_of", "list_to_tuple"):
        parity(name, s, op)
    parity(name, lambda: s() + ([0],), "unflatten_as")
    parity(name, lambda: (lambda x: x,) + s(), "map_structure")
    parity(name, lambda: (lambda x, y: x,) + s() + s(), "map_structure")
    parity(name, lambda: (lambda p, x: x,) + s(), "map_structure_with_path")
    parity(name, lambda: s() + s(), "assert_same_structure")
    parity(name, lambda: s() + s(), "flatten_up_to")


def _mutating_cases():
    """(name, structure factory, callback factory): callbacks that change the
    structure being mapped."""

    def add_key(d):
        def f(x):
            d["zz" + str(len(d))] = 0
            return x

        return f

    def drop_key(d):
        def f(x):
            if "a" in d:
                del d["a"]
            return x

        return f

    def clear(d):
        def f(x):
            d.clear()
            return x

        return f

    def grow_list(lst):
        def f(x):
            lst.append(9)
            return x

        return f

    def inner(getter, make_cb):
        return lambda s: make_cb(getter(s))

    return [
        ("add key", lambda: {"a": 1, "b": 2, "c": 3}, add_key),
        ("drop key", lambda: {"a": 1, "b": 2, "c": 3}, drop_key),
        ("clear", lambda: {"b": 1, "a": 2}, clear),
        ("nested add key", lambda: [{"a": 1, "b": 2}, 3], inner(lambda s: s[0], add_key)),
        ("grow list", lambda: [1, 2, [3]], grow_list),
        ("grow inner list", lambda: {"x": [1, 2], "y": 3}, inner(lambda s: s["x"], grow_list)),
    ]


@needs_native
@pytest.mark.parametrize("case", _mutating_cases(), ids=lambda c: c[0])
def test_callback_mutating_the_structure(case):
    _, make, make_cb = case
    results, calls = [], []
    for api in (PY, NA):
        s = make()
        n = len(api.flatten(s))
        cb = make_cb(s)
        count = [0]

        def counted(x, cb=cb, count=count):
            count[0] += 1
            return cb(x)

        results.append(outcome(api.map_structure, counted, s))
        calls.append((count[0], n))
        s2 = make()
        cb2 = make_cb(s2)
        results.append(outcome(api.map_structure, lambda x, y, cb=cb2: cb(x), s2, make()))
    assert_same_outcome("map", results[0], results[2])
    assert_same_outcome("map 2", results[1], results[3])
    for count, n in calls:
        assert count == n  # once per leaf, never redone


@needs_native
def test_deep_structures_do_not_need_the_recursion_limit():
    s = chain(900, wrap=lambda x: [x, 1])
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        flat = NA.flatten(s)
        back = NA.unflatten_as(s, flat)
        mapped = NA.map_structure(lambda x, y: x, s, s)
    finally:
        sys.setrecursionlimit(old)
    assert flat == PY.flatten(s) and identical(back, s) and identical(mapped, s)


# --------------------------------------------------------------------------
# reference leaks and memory
# --------------------------------------------------------------------------


class Leaf:
    """A leaf type of our own, to watch its instances' reference counts."""


def _leak_ops(s, other, spec, leaves):
    bad = {"x": 1}
    return [
        lambda: NA.flatten(s),
        lambda: NA.unflatten_as(s, leaves),
        lambda: NA.map_structure(lambda x: x, s),
        lambda: NA.map_structure(lambda x, y: y, s, other),
        lambda: NA.map_structure_with_path(lambda p, x, y: p, s, other),
        lambda: NA.flatten_with_path(s),
        lambda: NA.assert_same_structure(s, other),
        lambda: NA.flatten_up_to(s, other),
        lambda: NA.flatten_with_path_up_to(s, other),
        lambda: NA.is_nested(s),
        lambda: spec.flatten(other),
        lambda: spec.unflatten(leaves),
        lambda: spec.map(lambda x, y: x, s, other),
        # failure paths: the C code gives up and Python raises
        lambda: outcome(NA.assert_same_structure, s, bad),
        lambda: outcome(NA.unflatten_as, s, leaves[:-1]),
        lambda: outcome(NA.map_structure, lambda x, y: x, s, bad),
        lambda: outcome(spec.flatten, bad),
        lambda: outcome(spec.unflatten, leaves[:-1]),
        lambda: outcome(NA.map_structure, lambda x: 1 / 0, s),
    ]


@needs_native
def test_no_reference_leaks():
    leaf = Leaf()
    types_watched = [NT, NTSub, collections.OrderedDict, Leaf, dict, list, tuple]

    def build():
        return {
            "b": NT(leaf, [leaf, (leaf,)]),
            "a": collections.OrderedDict(y=leaf, x=NTSub(leaf, leaf)),
            "c": [None, 1.5, "s"],
        }

    s, other = build(), build()
    spec = NA.spec_of(s)
    leaves = NA.flatten(s)
    ops = _leak_ops(s, other, spec, leaves)
    for op in ops:  # warm caches (kinds, namedtuple sizes, specs)
        op()
    gc.collect()
    before = [sys.getrefcount(leaf)] + [sys.getrefcount(t) for t in types_watched]
    for _ in range(300):
        for op in ops:
            op()
    gc.collect()
    after = [sys.getrefcount(leaf)] + [sys.getrefcount(t) for t in types_watched]
    assert after == before


@needs_native
def test_memory_stays_flat():
    arr = np.zeros(2)
    s = {"b": NT(arr, [arr, (None, 2)]), "a": {"y": "s", "x": [arr] * 20}}
    other = {"b": NT(1, [2, (3, 4)]), "a": {"y": 5, "x": list(range(20))}}
    spec = NA.spec_of(s)
    ops = _leak_ops(s, other, spec, NA.flatten(s))

    def run(n):
        for _ in range(n):
            for op in ops:
                op()

    run(50)
    gc.collect()
    tracemalloc.start()
    try:
        run(50)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        run(400)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, (first, second)


# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------


@needs_native
def test_concurrent_calls_give_correct_results():
    def make(i):
        return {
            "b": NT(i, [i + 1, (i + 2,)]),
            "a": {f"k{j}": j * i for j in range(30)},
            "c": [[i] * 5, collections.OrderedDict(z=i, y=-i)],
        }

    expected = {i: (PY.flatten(make(i)), PY.flatten_with_path(make(i))) for i in range(8)}
    shared = make(3)
    spec = NA.spec_of(shared)
    errors: list = []
    barrier = threading.Barrier(4)

    def work(seed):
        try:
            barrier.wait()
            for it in range(300):
                i = (seed + it) % 8
                s = make(i)
                flat, paths = expected[i]
                assert NA.flatten(s) == flat
                assert NA.flatten_with_path(s) == paths
                assert identical(NA.unflatten_as(s, flat), s)
                assert identical(NA.map_structure(lambda x, y: x, s, make(i)), s)
                assert NA.flatten(NA.map_structure(lambda x: -x, s)) == [-x for x in flat]
                assert spec.flatten(shared) == expected[3][0]
                assert identical(spec.unflatten(spec.flatten(s)), s)
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as possible
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert not errors, errors[0]


# --------------------------------------------------------------------------
# selection and fallback
# --------------------------------------------------------------------------


def _run(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != _backend.ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )


HIDE_EXTENSION = textwrap.dedent("""
    import importlib.abc, sys
    class _NoCore(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "nestlib._cnest":
                raise ImportError("nestlib._cnest hidden by the test")
            return None
    sys.meta_path.insert(0, _NoCore())
""")


@needs_native
def test_native_is_the_default_and_never_imports_dm_tree():
    proc = _run(
        "import sys, nestlib\n"
        "nestlib.map_structure(lambda x: x, {'a': [1, (2,)]})\n"
        "print(nestlib.backend(), 'tree' in sys.modules, 'nestlib._cnest' in sys.modules)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["native", "False", "True"]
    assert "Warning" not in proc.stderr


def test_missing_extension_falls_back_with_one_warning():
    proc = _run(
        HIDE_EXTENSION
        + textwrap.dedent("""
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import nestlib
        print(nestlib.backend())
        print(len(caught), caught[0].category.__name__, caught[0].message)
        print(nestlib.flatten({"b": 1, "a": [2]}))
    """)
    )
    assert proc.returncode == 0, proc.stderr
    name, warning, flat = proc.stdout.strip().splitlines()
    assert name in ("dm-tree", "python")
    assert warning.startswith("1 RuntimeWarning nestlib's compiled core is not available")
    assert f"using the {name} backend" in warning
    assert flat == "[2, 1]"


def test_requesting_native_without_it_is_a_clear_error():
    proc = _run(HIDE_EXTENSION + "import nestlib", {_backend.ENV_VAR: "native"})
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: NESTLIB_BACKEND=native but nestlib's compiled core")
