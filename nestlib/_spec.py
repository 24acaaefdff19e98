"""Spec: a structure compiled once, flat code afterwards.

``spec_of(structure)`` walks the structure once and generates two small
Python functions for it, the way ``collections.namedtuple`` generates its
class: ``unflatten(leaves)`` is a single expression such as
``_t0(L[0], {_k1: L[1], _k2: L[2]})``, and ``flatten(x)`` is a run of exact
type checks and unpackings that collects the leaves. Any input that the
generated code does not recognise at once (a subclass, a missing key, a node
where a leaf belongs, an unusual container) goes to the general functions,
which either accept it (as ``assert_same_structure`` would) or raise their
path-bearing error. So the generated code only ever decides the easy cases.
"""

from __future__ import annotations

import collections
import keyword
import operator
import threading
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from . import _errors as E
from . import _nodes as N
from . import _registry as R
from . import _walk as W
from ._nodes import ATTRS, CUSTOM, LEAF, LIST, MAPPING, NAMEDTUPLE, TUPLE

_DICT_TYPES = (dict, collections.OrderedDict, collections.defaultdict)
_HOIST_EVERY = 24  # expression depth at which subexpressions become statements
MAX_GENERATED_NODES = 500  # bigger structures use the general functions

F = TypeVar("F", bound=Callable[..., Any])


class _Gen:
    """Collects generated source and the constants it refers to."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {}
        self.stmts: list[str] = []
        self.guards: dict[str, str] = {}  # checks done once per call, before the rest
        self.n = 0

    def const(self, value: Any, prefix: str = "_c") -> str:
        name = f"{prefix}{len(self.consts)}"
        self.consts[name] = value
        return name

    def temp(self) -> str:
        self.n += 1
        return f"v{self.n}"


class Spec:
    """An immutable, hashable, picklable description of a nested structure.

    Build one with :func:`nestlib.spec_of`. Reusing it makes repeated
    flatten/unflatten/map on the same structure cheap.

    >>> import collections, nestlib
    >>> State = collections.namedtuple("State", "hidden cell")
    >>> spec = nestlib.spec_of(State(hidden=1, cell={"a": 2, "b": 3}))
    >>> spec
    Spec(State(hidden=*, cell={'a': *, 'b': *}))
    >>> spec.num_leaves, spec.paths
    (3, (('hidden',), ('cell', 'a'), ('cell', 'b')))
    >>> spec.unflatten([10, 20, 30])
    State(hidden=10, cell={'a': 20, 'b': 30})
    >>> spec.flatten(State(hidden=4, cell={"b": 6, "a": 5}))
    [4, 5, 6]
    >>> spec.map(lambda x, y: x + y, State(1, {"a": 2, "b": 3}), State(1, {"a": 1, "b": 1}))
    State(hidden=2, cell={'a': 3, 'b': 4})
    """

    __slots__ = (
        "num_leaves",
        "paths",
        "_def",
        "_skeleton",
        "flatten",
        "unflatten",
        "_unflatten_trusted",
        "_hash",
    )

    num_leaves: int
    paths: tuple[Any, ...]
    flatten: Callable[[Any], list[Any]]
    unflatten: Callable[[Any], Any]
    _def: Any
    _skeleton: Any
    _unflatten_trusted: Callable[[list[Any]], Any]
    _hash: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use nestlib.spec_of(structure) to make a Spec")

    def map(self, func: Callable[..., Any], *structures: Any) -> Any:
        """Maps ``func`` over leaves of ``structures`` (each must match this spec).

        The result is built with this spec's node types.
        """
        if not callable(func):
            raise TypeError(f"func must be callable, got {E.short_repr(func)}")
        if len(structures) == 1:
            flat = self.flatten(structures[0])
            values = list(map(func, flat))
            if len(values) != len(flat):  # func raised StopIteration: never let it out
                raise W._stopped_in_map(len(values))
            return self._unflatten_trusted(values)
        if not structures:
            raise ValueError("Spec.map needs at least one structure")
        return self._unflatten_trusted(W.mapped(func, *map(self.flatten, structures)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and self._def == other._def

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        prefix = self._def is not None and self._def[0] == _PREFIX
        return (
            _unpickle,
            (self._skeleton, _registered_types(self._def[1] if prefix else self._def), prefix),
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Spec is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Spec is immutable")

    def __repr__(self) -> str:
        star = _Star()
        try:
            text = repr(W.pack_trusted(self._skeleton, [star] * self.num_leaves))
        except Exception:
            text = f"<{self.num_leaves} leaves>"
        return E.bounded(f"Spec({text})")


def _registered_types(treedef: Any) -> tuple[Any, ...]:
    """The registered (not TF-protocol) node types a treedef uses."""
    out, stack = [], [treedef]
    while stack:
        d = stack.pop()
        if d is None:
            continue
        if d[0] == CUSTOM and d[2][0].meta_matters and d[1] not in out:
            out.append(d[1])
        stack.extend(d[3])
    return tuple(out)


def _unpickle(skeleton: Any, registered: tuple[Any, ...] = (), prefix: bool = False) -> Spec:
    """A pickled Spec, made again where its registered node types are registered too."""
    missing = [t for t in registered if t not in N.REGISTERED]
    if missing:
        raise RuntimeError(
            f"this pickled Spec uses the registered node type(s) "
            f"{', '.join(t.__qualname__ for t in missing)}, not registered in this process; "
            f"register them (nestlib.register_node / register_dataclass) before unpickling"
        )
    import nestlib  # the default backend's Spec

    return nestlib.spec_of(skeleton, is_leaf=_never if prefix else None)


def _never(x: Any) -> bool:
    return False


_PREFIX = "is_leaf prefix"  # tags the treedef of a Spec made with is_leaf


class _Fail(Exception):
    """Raised inside generated flatten code to take the general path."""


class _LeafSlot:
    """Stands for "any leaf" in a Spec's skeleton (and in its messages)."""

    _nestlib_leaf_slot = True

    def __repr__(self) -> str:
        return "*"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_leaf_slot, ())


def _leaf_slot() -> _LeafSlot:
    return LEAF_SLOT


LEAF_SLOT = _LeafSlot()


class _Star:
    def __repr__(self) -> str:
        return "*"


def _treedef(x: Any) -> Any:
    """A hashable canonical description of the structure of ``x``."""
    k = N.classify(x)
    if k == LEAF:
        return None
    t = type(x)
    aux: Any = None
    if k == MAPPING:
        aux = (tuple(x), getattr(x, "default_factory", None))
    elif k == N.PROXY:
        aux = N.node_type(x, k)
    elif k == CUSTOM:  # its rules and its metadata (a different def: a different Spec)
        kids_list, meta = N.custom_flatten(x)
        return (k, t, (N.DEFS[t], meta), tuple([_treedef(c) for c in kids_list]))
    # List comprehensions, not generators: a generator's frames are resumed from
    # C (tuple() calling next()), and from Python 3.12 on, C-level recursion has
    # its own fixed limit (~1,500) that the deep-structure retry cannot raise;
    # a comprehension calls _treedef straight from Python.
    kids = tuple([_treedef(c) for c in N.children(x, k)])
    return (k, t, aux, kids)


def _emit_unflatten(g: _Gen, node: Any, k: int, counter: list[Any], depth: int) -> str:
    """Returns an expression building ``node`` from ``L[i]`` leaves."""
    kids = N.children(node, k)
    start = counter[0]
    parts = []
    all_leaves = True
    for c in kids:
        ck = N.classify(c)
        if ck == LEAF:
            parts.append(f"L[{counter[0]}]")
            counter[0] += 1
        else:
            all_leaves = False
            parts.append(_emit_unflatten(g, c, ck, counter, depth + 1))
    stop = counter[0]
    t = type(node)
    if k == LIST and t is list:
        expr = f"L[{start}:{stop}]" if all_leaves else f"[{', '.join(parts)}]"
        if all_leaves:
            expr = f"_list({expr})"
    elif k == TUPLE and t is tuple:
        expr = (
            f"_tuple(L[{start}:{stop}])"
            if all_leaves
            else f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
        )
    elif k == NAMEDTUPLE and N.plain_namedtuple_size(t) >= 0:
        tn = g.const(t, "_t")
        expr = f"_tnew({tn}, ({', '.join(parts)}{',' if len(parts) == 1 else ''}))"
    elif k == MAPPING and t in _DICT_TYPES:
        skeys = N.sorted_keys(node)
        by_key = dict(zip(skeys, parts))
        order = list(node)
        if all_leaves and t is dict and len(skeys) > 8:
            # copy a template in the original key order, then fill it by sorted key
            tmpl = g.const(dict.fromkeys(order), "_d")
            body = g.temp()
            g.stmts.append(f"    {body} = {tmpl}.copy()")
            g.stmts.append(
                f"    {body}.update(_zip({g.const(tuple(skeys), '_k')}, L[{start}:{stop}]))"
            )
        elif all_leaves and order == skeys:
            body = f"_dict(_zip({g.const(tuple(skeys), '_k')}, L[{start}:{stop}]))"
        elif all_leaves and len(order) > 1:  # one C-level gather in key order
            where = {key: start + i for i, key in enumerate(skeys)}
            gather = g.const(operator.itemgetter(*[where[key] for key in order]), "_g")
            body = f"_dict(_zip({g.const(tuple(order), '_k')}, {gather}(L)))"
        else:
            body = "{" + ", ".join(f"{g.const(key, '_k')}: {by_key[key]}" for key in order) + "}"
        if t is dict:
            expr = body
        elif t is collections.defaultdict:
            expr = f"{g.const(t, '_t')}({g.const(node.default_factory, '_f')}, {body})"
        else:
            expr = f"{g.const(t, '_t')}({body})"
    elif k == CUSTOM:
        expr = _emit_custom_build(g, node, t, parts)
    else:
        tmpl = g.const(node, "_n")
        expr = f"_rebuild({tmpl}, {k}, [{', '.join(parts)}])"
    if depth and depth % _HOIST_EVERY == 0:
        name = g.temp()
        g.stmts.append(f"    {name} = {expr}")
        return name
    return expr


def _names(names: tuple[Any, ...]) -> bool:
    return all(n.isidentifier() and not keyword.iskeyword(n) for n in names)


#: ``_cnest.make_plain`` once the compiled core is loaded (``_native`` sets it):
#: builds a plain registered dataclass without running its generated __init__.
make_plain: Callable[..., Any] | None = None


def _emit_custom_build(g: _Gen, node: Any, t: type, parts: list[Any]) -> str:
    """An expression rebuilding CUSTOM ``node`` from ``parts``: the dataclass
    constructor or the protocol's ``__tf_unflatten__`` called directly, or the
    registered unflatten function. Once per call, a guard checks that the rules
    the code was written for are still registered (else ``_stale()``)."""
    d = N.DEFS[t]
    tn, dn = g.const(t, "_t"), g.const(d, "_D")
    g.guards[dn] = f"    if _dget({tn}) is not {dn}: _stale()"
    meta = N.custom_meta(node)
    if d.fields is not None and _names(d.fields[3]):
        data, names, plain, everything = d.fields
        values = parts + [f"{g.const(m, '_m')}" for m in meta]
        if plain and make_plain is not None:
            return f"_mk({tn}, {g.const(everything, '_k')}, {', '.join(values)})"
        return f"{tn}({', '.join(f'{n}={v}' for n, v in zip(everything, values))})"
    if d.protocol:
        return (
            f"{g.const(d.tf_unflatten, '_u')}({g.const(meta, '_m')}, "
            f"({', '.join(parts)}{',' if len(parts) == 1 else ''}))"
        )
    return f"{g.const(d.unflatten, '_u')}({g.const(meta, '_m')}, [{', '.join(parts)}])"


def _emit_custom_read(g: _Gen, var: str, node: Any, t: type, n: int) -> str:
    """Statements checking ``var`` is a CUSTOM node like ``node`` (same type,
    the same rules still in force, equal metadata where it counts); returns the
    expression of its ``n`` children."""
    d = N.DEFS[t]
    g.stmts.append(f"    if _dget(_type({var})) is not {g.const(d, '_D')}: return _slow(x)")
    if d.fields is not None and _names(d.fields[3]):
        data, names = d.fields[0], d.fields[1]
        for name, m in zip(names, N.custom_meta(node)):
            g.stmts.append(f"    if {var}.{name} != {g.const(m, '_m')}: return _slow(x)")
        return f"({''.join(f'{var}.{f}, ' for f in data)})"
    kv, mv = g.temp(), g.temp()
    if d.protocol:
        g.stmts.append(f"    {mv}, {kv} = {var}.__tf_flatten__()")
        g.stmts.append(f"    if _type({kv}) is not _tuple: return _slow(x)")
    else:
        g.stmts.append(f"    {kv}, {mv} = {g.const(d.flatten, '_f')}({var})")
        if d.meta_matters:
            g.stmts.append(f"    if {mv} != {g.const(N.custom_meta(node), '_m')}: return _slow(x)")
    g.stmts.append(f"    if len({kv}) != {n}: return _slow(x)")
    return kv


def _emit_flatten(g: _Gen, var: str, node: Any, k: int, pieces: list[Any], ok: list[Any]) -> bool:
    """Emits checks/unpacking of ``var`` like ``node``; False if not codegen-able."""
    t = type(node)
    tn = g.const(t, "_t")
    kids = N.children(node, k)
    if k in (LIST, TUPLE, NAMEDTUPLE):
        g.stmts.append(f"    if type({var}) is not {tn}: return _slow(x)")
        # a node unpacked into names below gets its length checked by the
        # unpacking (ValueError); a splat takes any length, so check it here
        if all(N.classify(c) == LEAF for c in kids):
            if k != NAMEDTUPLE:
                g.stmts.append(f"    if len({var}) != {len(kids)}: return _slow(x)")
            pieces.append(f"*{var}")
            return True
        names = [g.temp() for _ in kids]
        if names:
            g.stmts.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = {var}")
    elif k == MAPPING and t in _DICT_TYPES:
        skeys = N.sorted_keys(node)
        ks = g.const(frozenset(skeys), "_s")
        g.stmts.append(f"    if type({var}) is not {tn} or {var}.keys() != {ks}: return _slow(x)")
        if kids and all(N.classify(c) == LEAF for c in kids):
            pieces.append(f"*_map({var}.__getitem__, {g.const(tuple(skeys), '_k')})")
            return True
        names = [g.temp() for _ in kids]
        for name, key in zip(names, skeys):
            g.stmts.append(f"    {name} = {var}[{g.const(key, '_k')}]")
    elif k == ATTRS:
        g.stmts.append(f"    if type({var}) is not {tn}: return _slow(x)")
        names = [g.temp() for _ in kids]
        for name, field in zip(names, N.attrs_names(t)):
            g.stmts.append(f"    {name} = _getattr({var}, {field!r})")
    elif k == CUSTOM:
        kv = _emit_custom_read(g, var, node, t, len(kids))
        names = [g.temp() for _ in kids]
        if names:
            g.stmts.append(f"    {', '.join(names)}{',' if len(names) == 1 else ''} = {kv}")
    else:
        return False
    for name, c in zip(names, kids):
        ck = N.classify(c)
        if ck == LEAF:
            pieces.append(name)
            ok.append(name)
        elif not _emit_flatten(g, name, c, ck, pieces, ok):
            return False
    return True


def _compile(source: str, consts: dict[Any, Any], fn_name: str | tuple[Any, ...]) -> Any:
    namespace = dict(consts)
    exec(compile(source, f"<nestlib.Spec {fn_name}>", "exec"), namespace)
    names = fn_name if isinstance(fn_name, tuple) else (fn_name,)
    for name in names:
        mark_not_for_autograph(namespace[name])
    if isinstance(fn_name, tuple):
        return tuple(namespace[name] for name in fn_name)
    return namespace[fn_name]


def mark_not_for_autograph(fn: F) -> F:
    """Tells TensorFlow's AutoGraph to call ``fn`` as it is, not to convert it.

    nestlib only rearranges containers, which needs no conversion; converting
    it would be slow and, for generated code without source, fails with a
    warning. AutoGraph skips callables carrying ``autograph_info__`` (what its
    own ``do_not_convert`` sets), so no TensorFlow import is needed here.
    """
    try:
        fn.autograph_info__ = {}  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass
    return fn


Spec.map = mark_not_for_autograph(Spec.map)  # type: ignore[method-assign]


def _node_count(treedef: Any) -> int:
    count, stack = 0, [treedef]
    while stack:
        d = stack.pop()
        if d is not None:
            count += 1
            stack.extend(d[3])
    return count


def _build(structure: Any, treedef: Any, prefix: bool = False) -> Spec:
    """The Spec of ``structure``; with ``prefix``, one whose leaves stand for
    whole subtrees (``spec_of(..., is_leaf=...)``): flatten then takes any
    subtree where this structure has a leaf."""
    spec = object.__new__(Spec)
    put = object.__setattr__
    paths_and_leaves = W.flatten_with_path(structure)
    n = len(paths_and_leaves)
    put(spec, "num_leaves", n)
    put(spec, "paths", tuple(p for p, _ in paths_and_leaves))
    put(spec, "_def", treedef)
    try:
        skeleton = W.pack_trusted(structure, [LEAF_SLOT] * n)
        if _treedef(skeleton) != (treedef[1] if prefix else treedef):  # e.g. views -> lists
            skeleton = structure
    except Exception:  # a node type that refuses None leaves: keep the original
        skeleton = structure
    put(spec, "_skeleton", skeleton)
    try:
        h = hash(treedef)
    except TypeError:
        h = hash((n, spec.paths.__len__()))
    put(spec, "_hash", h)

    k = N.classify(skeleton)
    made_under = R.generation[0]
    structure_def = treedef[1] if prefix else treedef

    def check_current() -> None:
        """RuntimeError when a (un)registration since this Spec was made changed
        what the structure it describes is."""
        if made_under != R.generation[0] and _treedef(skeleton) != structure_def:
            raise RuntimeError(
                E.bounded(
                    f"this Spec was made before nestlib.register_node / register_dataclass / "
                    f"unregister_node changed which types are nodes, and no longer describes "
                    f"{E.short_repr(skeleton)} under the rules now in force; make it again "
                    f"with nestlib.spec_of"
                )
            )

    def stale() -> NoReturn:
        check_current()
        raise _Fail  # replaced by an equal def: the general path rebuilds

    def redo(skel: Any, leaves: list[Any] | tuple[Any, ...]) -> Any:
        check_current()
        return W.pack_trusted(skel, leaves)

    helpers = {
        "_set": set,
        "_list": list,
        "_tuple": tuple,
        "_dict": dict,
        "_zip": zip,
        "_map": map,
        "_tnew": tuple.__new__,
        "_rebuild": N.rebuild,
        "_getattr": getattr,
        "_kg": N.kind_get,
        "_dget": N.DEFS.get,
        "_stale": stale,
        "_mk": make_plain,
    }

    def count_error(found: int) -> ValueError:
        return W._count_error("Spec.unflatten", skeleton, found)

    generic = _node_count(structure_def) > MAX_GENERATED_NODES
    if generic and k != LEAF:  # compiling code for so many nodes costs more than it saves

        def unflatten(leaves: Any) -> Any:
            leaves = W.check_flat_sequence(leaves)
            if len(leaves) != n:
                raise count_error(len(leaves))
            return redo(skeleton, leaves)

        def trusted(leaves: list[Any]) -> Any:
            return redo(skeleton, leaves)
    elif k == LEAF:

        def unflatten(leaves: Any) -> Any:
            leaves = W.check_flat_sequence(leaves)
            if len(leaves) != 1:
                raise count_error(len(leaves))
            return leaves[0]

        def trusted(leaves: list[Any]) -> Any:
            return leaves[0]
    else:
        g = _Gen()
        expr = _emit_unflatten(g, skeleton, k, [0], 0)
        # A node type refusing its values: the Python pack redoes the build
        # and raises that error with the node's path.
        body = "\n".join("    " + line for line in [*g.guards.values(), *g.stmts])
        build = (
            f"    try:\n{body}\n        return {expr}\n"
            f"    except Exception:\n        return _redo(_skeleton, L)\n"
        )
        src = (
            f"def unflatten(L):\n"
            f"    if _type(L) is not _listT and _type(L) is not _tupleT: L = _check(L)\n"
            f"    if _len(L) != {n}: raise _count(_len(L))\n"
            f"{build}"
            f"def trusted(L):\n{build}"
        )
        consts = dict(
            g.consts,
            **helpers,
            _type=type,
            _len=len,
            _listT=list,
            _tupleT=tuple,
            _check=W.check_flat_sequence,
            _count=count_error,
            _redo=redo,
            _skeleton=skeleton,
        )
        unflatten, trusted = _compile(src, consts, ("unflatten", "trusted"))
    put(spec, "unflatten", unflatten)
    put(spec, "_unflatten_trusted", trusted)

    def slow(x: Any) -> list[Any]:
        check_current()
        if prefix:
            W.assert_shallow_structure(skeleton, x, check_types=True)
            return W.flatten_up_to(skeleton, x, check_types=True)
        W.assert_same_structure(skeleton, x, check_types=True)
        return W.flatten(x)

    def leaf_flatten(x: Any) -> list[Any]:
        if N.kind_get(type(x), -1):
            return slow(x)
        return [x]

    flatten = slow
    if k == LEAF:
        flatten = (lambda x: [x]) if prefix else leaf_flatten
    elif not generic:
        g = _Gen()
        pieces: list[Any] = []
        ok: list[Any] = []
        if _emit_flatten(g, "x", skeleton, k, pieces, ok):
            lines = "\n".join(g.stmts)
            if prefix:  # leaves stand for any subtree: nothing to check there
                leaf_check, splat_check = "", False
            elif n <= 16:
                check = " or ".join(f"_kg(_type({p}), -1)" for p in ok)
                leaf_check = f"    if {check}: return _slow(x)\n" if ok else ""
                splat_check = any(p.startswith("*") for p in pieces)
            else:
                leaf_check = ""
                splat_check = True
            tail = (
                ""
                if not splat_check
                else "    for v in out:\n        if _kg(_type(v), -1): return _slow(x)\n"
                if n <= 16
                # many leaves: check each distinct type once
                else (
                    "    for t in _set(_map(_type, out)):\n        if _kg(t, -1): return _slow(x)\n"
                )
            )
            lines = lines.replace("return _slow(x)", "raise _Fail")
            src = (
                "def flatten(x):\n    try:\n"
                + "\n".join("    " + line for line in lines.split("\n"))
                + f"\n        out = [{', '.join(pieces)}]\n"
                "    except (KeyError, ValueError, TypeError, _Fail):\n        return _slow(x)\n"
                f"{leaf_check}{tail}    return out\n"
            )
            flatten = _compile(
                src,
                dict(g.consts, **helpers, _type=type, _len=len, _slow=slow, _Fail=_Fail),
                "flatten",
            )
    put(spec, "flatten", flatten)
    return spec


_cache: collections.OrderedDict[Any, Spec] = collections.OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 256


def _forget_all() -> None:
    # Not needed for correctness (a registered node's def is part of the key)
    # but Specs made under other rules are not worth keeping.
    with _cache_lock:
        _cache.clear()


R.add_listener(_forget_all)


def spec_of(structure: Any, is_leaf: Callable[[Any], bool] | None = None) -> Spec:
    """The Python engine's ``nestlib.spec_of`` (documented there)."""
    if is_leaf is not None:
        structure = W.prefix_of(structure, is_leaf)
    try:
        treedef = _treedef(structure)
        if is_leaf is not None:
            treedef = (_PREFIX, treedef, None, ())
    except Exception as e:  # deep: retried with room for MAX_DEPTH levels;
        # a cycle or a user object's error: said with its path
        return W.retry_deep(
            spec_of, (structure, None if is_leaf is None else _never), (structure,), e
        )
    try:
        with _cache_lock:
            cached = _cache.get(treedef)
            if cached is not None:
                _cache.move_to_end(treedef)
                return cached
    except (TypeError, RecursionError):
        # Unhashable aux data, or a treedef nested too deep for comparing
        # tuples in C (Python 3.12+ gives C its own recursion limit, ~1,500
        # tuples deep on 3.12, that no retry can raise): do not cache.
        return _build(structure, treedef, is_leaf is not None)
    spec = _build(structure, treedef, is_leaf is not None)
    with _cache_lock:
        try:
            _cache[treedef] = spec
        except RecursionError:  # (as above, against a colliding deep key)
            return spec
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return spec
