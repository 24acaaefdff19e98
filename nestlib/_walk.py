"""The pure-Python engine: every structure operation, written once.

Two layers:

* fast recursive functions (``_flatten_into``, ``_pack``, ``_paths_into``,
  ``_same``) that do only the work a correct input needs, dispatching on a
  per-type kind cache (see ``_nodes``);
* one generic, iterative, path-tracking walk (``_diagnose``, ``_compare``)
  that runs only when something is wrong, to say *where* it is wrong: the
  first differing path, a reference cycle, a structure nested too deep, or
  the place where a user object's method raised.

The compiled backend replaces a few fast functions (see ``_backend``); the
error layer is shared, so both backends raise identical exceptions.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from . import _errors as E
from . import _nodes as N
from ._nodes import (
    ATTRS,
    CUSTOM,
    LEAF,
    LIST,
    MAPPING,
    NAMEDTUPLE,
    PROXY,
    TUPLE,
    classify,
    kind_get,
    sorted_keys,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Literal

R = TypeVar("R")

#: Deepest nesting nestlib accepts; deeper input raises ValueError.
MAX_DEPTH = 1000

_END = object()
_tuple_new = tuple.__new__


class _Missing:
    """Marker for a position that ran out of flat values."""


# --------------------------------------------------------------------------
# Diagnosis: where is the problem? (iterative: safe on any input)
# --------------------------------------------------------------------------


def _diagnose(
    structure: Any,
    kind_fn: Callable[[Any], int] = classify,
    find: Any = None,
    found: list[Any] | None = None,
) -> int:
    """Walks ``structure`` without recursion; returns its depth.

    Raises ValueError for a reference cycle or nesting deeper than
    MAX_DEPTH, and re-raises any exception from a user object's methods with
    a note naming the path where it arose. With ``find``, appends to
    ``found`` the steps of every node that ``is find``, in flatten order.
    """
    deepest = 0
    on_path: set[int] = set()
    # entries: (node, steps) to enter, or (None, id) to leave
    stack: list[tuple[Any, Any]] = [(structure, ())]
    while stack:
        x, steps = stack.pop()
        if x is None and isinstance(steps, int):
            on_path.discard(steps)
            continue
        try:
            k = kind_fn(x)
        except Exception as e:
            raise E.add_path_note(e, steps)
        if k == LEAF:
            continue
        if x is find and found is not None:
            found.append(steps)
        depth = len(steps)
        if depth >= MAX_DEPTH:
            raise ValueError(E.TOO_DEEP.format(limit=MAX_DEPTH, path=E.format_path(steps)))
        if id(x) in on_path:
            raise ValueError(E.CYCLE.format(path=E.format_path(steps), target=E.describe(x, k)))
        deepest = max(deepest, depth + 1)
        on_path.add(id(x))
        stack.append((None, id(x)))
        try:
            pairs = N.items(x, k)
        except Exception as e:
            raise E.add_path_note(e, steps)
        kk = N.unwrap(x, k)[1] if k == PROXY else k
        for key, child in reversed(pairs):
            stack.append((child, steps + ((kk, key),)))
    return deepest


_limit_lock = threading.Lock()
_limit_users = 0
_limit_saved = 0


class _RaisedRecursionLimit:
    """Temporarily lifts the interpreter's recursion limit for a deep (but
    acyclic, at most MAX_DEPTH levels) structure."""

    def __init__(self, depth: int) -> None:
        self.need = sys.getrecursionlimit() + 4 * depth + 200

    def __enter__(self) -> None:
        global _limit_users, _limit_saved
        with _limit_lock:
            if _limit_users == 0:
                _limit_saved = sys.getrecursionlimit()
            _limit_users += 1
            if sys.getrecursionlimit() < self.need:
                sys.setrecursionlimit(self.need)

    def __exit__(self, *exc: object) -> Literal[False]:
        global _limit_users
        with _limit_lock:
            _limit_users -= 1
            if _limit_users == 0:
                sys.setrecursionlimit(_limit_saved)
        return False


def retry_deep(
    fn: Callable[..., R], args: tuple[Any, ...], structures: tuple[Any, ...], error: BaseException
) -> R:
    """Called when ``fn(*args)`` failed; says why, or retries it.

    A RecursionError on an acyclic structure within MAX_DEPTH is retried
    with a raised recursion limit (``fn`` must be free of user callbacks).
    A user exception is re-raised with a note naming its path.
    """
    # raises for cycles / too deep / user errors
    depth = _diagnose_noting(structures[0], error)
    for s in structures[1:]:
        depth = max(depth, _diagnose(s))
    if isinstance(error, RecursionError) and not getattr(_retrying, "active", False):
        # Once per call: a RecursionError the raised limit does not cure (a
        # C-level recursion limit, Python 3.12+) propagates instead of being
        # retried again and again with an ever higher limit.
        _retrying.active = True
        try:
            with _RaisedRecursionLimit(depth):
                return fn(*args)
        finally:
            _retrying.active = False
    raise error


_retrying = threading.local()  # inside retry_deep's retry, on this thread


def _diagnose_noting(structure: Any, error: BaseException) -> int:
    """``_diagnose(structure)``; if ``error`` is a failed rebuild of one of its
    nodes, the same walk finds where that node sits and notes it on ``error``."""
    node = getattr(error, N.REBUILD_NODE, None)
    if node is None:
        return _diagnose(structure)
    delattr(error, N.REBUILD_NODE)  # noted once, by the first walker that sees it
    paths: list[Any] = []
    depth = _diagnose(structure, find=node, found=paths)
    E.add_rebuild_note(error, paths)
    return depth


# --------------------------------------------------------------------------
# is_nested / flatten
# --------------------------------------------------------------------------


def is_nested(structure: Any) -> bool:
    k = kind_get(type(structure))
    if k is None:
        k = classify(structure)
    return k != LEAF


def _flatten_into(s: Any, k: int, out: list[Any]) -> None:
    if k == MAPPING:
        s_items = [s[key] for key in sorted_keys(s)]
    elif k <= NAMEDTUPLE:  # LIST, TUPLE, NAMEDTUPLE iterate directly
        s_items = s
    else:
        s_items = N.children(s, k)
    append = out.append
    for c in s_items:
        ck = kind_get(type(c))
        if ck == LEAF:
            append(c)
        else:
            if ck is None:
                ck = classify(c)
                if ck == LEAF:
                    append(c)
                    continue
            _flatten_into(c, ck, out)


def _flatten(structure: Any) -> list[Any]:
    k = kind_get(type(structure))
    if k is None:
        k = classify(structure)
    if k == LEAF:
        return [structure]
    out: list[Any] = []
    _flatten_into(structure, k, out)
    return out


def flatten(structure: Any) -> list[Any]:
    try:
        return _flatten(structure)
    except Exception as e:
        return retry_deep(_flatten, (structure,), (structure,), e)


# --------------------------------------------------------------------------
# unflatten / pack
# --------------------------------------------------------------------------


def _pack_child(c: Any, nxt: Callable[[], Any]) -> Any:
    ck = classify(c)
    if ck == LEAF:
        return nxt()
    return _pack(c, ck, nxt)


def _pack(s: Any, k: int, nxt: Callable[[], Any]) -> Any:
    if k == LIST:
        return [nxt() if kind_get(type(c)) == LEAF else _pack_child(c, nxt) for c in s]
    if k == TUPLE:
        return tuple([nxt() if kind_get(type(c)) == LEAF else _pack_child(c, nxt) for c in s])
    if k == MAPPING:
        skeys = sorted_keys(s)
        values = [
            nxt() if kind_get(type(c)) == LEAF else _pack_child(c, nxt)
            for c in [s[key] for key in skeys]
        ]
        return N.rebuild_mapping(s, values, skeys)
    src = s if k == NAMEDTUPLE else N.children(s, k)
    values = [nxt() if kind_get(type(c)) == LEAF else _pack_child(c, nxt) for c in src]
    if k == NAMEDTUPLE and N.plain_namedtuple_size(type(s)) == len(values):
        return _tuple_new(type(s), values)  # what the generated __new__ does
    return N.rebuild(s, k, values)


def check_flat_sequence(flat_sequence: Any) -> list[Any] | tuple[Any, ...]:
    t = type(flat_sequence)
    if t is list or t is tuple:  # (mypy does not narrow through ``t``)
        return flat_sequence  # type: ignore[no-any-return]
    k = classify(flat_sequence)
    if (
        k == LEAF
        or k == MAPPING
        or k == ATTRS
        or (k == PROXY and N.unwrap(flat_sequence, k)[1] in (MAPPING, ATTRS))
    ):
        raise TypeError(
            E.NOT_A_SEQUENCE.format(
                type=type(flat_sequence).__name__, value=E.short_repr(flat_sequence)
            )
        )
    return list(flat_sequence)


def _count_error(what: str, structure: Any, found: int) -> ValueError:
    paths = flatten_with_path(structure)
    detail = ""
    if found < len(paths):
        detail = f"; the first leaf without a value is at {E.format_tuple_path(paths[found][0])}"
    return ValueError(
        E.bounded(E.LEAF_COUNT.format(what=what, expected=len(paths), found=found, detail=detail))
    )


def _unflatten(structure: Any, flat: list[Any] | tuple[Any, ...]) -> Any:
    k = kind_get(type(structure))
    if k is None:
        k = classify(structure)
    if k == LEAF:
        if len(flat) != 1:
            raise _count_error("unflatten_as", structure, len(flat))
        return flat[0]
    it = iter(flat)
    try:
        result = _pack(structure, k, it.__next__)
    except StopIteration:
        raise _count_error("unflatten_as", structure, len(flat)) from None
    if next(it, _END) is not _END:
        raise _count_error("unflatten_as", structure, len(flat))
    return result


def unflatten_as(structure: Any, flat_sequence: Any) -> Any:
    flat = check_flat_sequence(flat_sequence)
    try:
        return _unflatten(structure, flat)
    except Exception as e:  # count errors are re-raised as they are
        return retry_deep(_unflatten, (structure, flat), (structure,), e)


# --------------------------------------------------------------------------
# same structure
# --------------------------------------------------------------------------


def types_compatible(a: Any, ka: int, b: Any, kb: int) -> bool:
    """dm-tree's check_types rule for two nodes."""
    ta, tb = N.node_type(a, ka), N.node_type(b, kb)
    if ta is tb:
        return True
    ka2 = N.unwrap(a, ka)[1] if ka == PROXY else ka
    kb2 = N.unwrap(b, kb)[1] if kb == PROXY else kb
    if ka2 == NAMEDTUPLE and kb2 == NAMEDTUPLE:
        return N.same_namedtuple_types(ta, tb)
    if ka2 == MAPPING and kb2 == MAPPING:
        return True
    return issubclass(ta, list) and issubclass(tb, list)


def _same(a: Any, b: Any, check_types: bool) -> bool:
    """True iff a and b have the same structure (fast; no message)."""
    ka = kind_get(type(a))
    if ka is None:
        ka = classify(a)
    kb = kind_get(type(b))
    if kb is None:
        kb = classify(b)
    if ka == LEAF or kb == LEAF:
        return ka == kb
    if ka == PROXY:
        a, ka = N.unwrap(a, ka)
    if kb == PROXY:
        b, kb = N.unwrap(b, kb)
    if check_types and type(a) is not type(b) and not types_compatible(a, ka, b, kb):
        return False
    if ka == CUSTOM and type(a) is type(b) and not N.same_meta(a, b):
        return False
    if ka == MAPPING:
        ska = sorted_keys(a)
        if kb == MAPPING:
            skb = sorted_keys(b)
            if len(ska) != len(skb) or (check_types and ska != skb):
                return False
            cb = [b[key] for key in skb]
        else:
            cb = b if kb <= NAMEDTUPLE else N.children(b, kb)
        ca = [a[key] for key in ska]
    else:
        ca = a if ka <= NAMEDTUPLE else N.children(a, ka)
        cb = (
            b
            if kb <= NAMEDTUPLE
            else ([b[key] for key in sorted_keys(b)] if kb == MAPPING else N.children(b, kb))
        )
    if len(ca) != len(cb):
        return False
    return _same_items(ca, cb, check_types)


def _same_items(ca: Any, cb: Any, check_types: bool) -> bool:
    """``_same`` over the children of two nodes (equally many)."""
    for x, y in zip(ca, cb):
        kx = kind_get(type(x))
        if kx == LEAF:
            # two leaves of cached leaf types are the same structure: skip the call
            if kind_get(type(y)) == LEAF:
                continue
        elif kx is not None and kx <= NAMEDTUPLE and type(y) is type(x):
            # two lists, tuples or namedtuples of one type: what _same would do
            if len(x) != len(y) or not _same_items(x, y, check_types):
                return False
            continue
        if not _same(x, y, check_types):
            return False
    return True


_LATER = object()


def _raise_unsortable_keys(structure: Any) -> None:
    """Raises the TypeError (with its path) of a mapping in ``structure`` whose
    keys cannot be sorted; anything else wrong is left to the caller."""
    try:
        _diagnose(structure)
    except TypeError as e:
        if getattr(e, N.UNSORTABLE, False):
            raise
    except Exception:
        pass


def _meta_differs(x: Any, kx: int, y: Any, ky: int) -> bool:
    """True when two registered nodes of one type differ in metadata."""
    return kx == CUSTOM and ky == CUSTOM and type(x) is type(y) and not N.same_meta(x, y)


def _meta_error(x: Any, kx: int, y: Any, ky: int, steps: tuple[Any, ...]) -> ValueError:
    return ValueError(
        E.differ(
            steps,
            E.describe(x, kx),
            E.describe(y, ky),
            f" (metadata {E.short_repr(N.custom_meta(x))} vs {E.short_repr(N.custom_meta(y))})",
        )
    )


def _compare(a: Any, b: Any, check_types: bool, kind_fn: Callable[[Any], int] = classify) -> None:
    """Raises the error for the first difference between a and b (iterative)."""
    stack: list[tuple[Any, Any, Any]] = [(a, b, ())]
    while stack:
        x, y, steps = stack.pop()
        if x is _LATER:  # a length difference, due once the common children pass
            raise y
        try:
            kx, ky = kind_fn(x), kind_fn(y)
        except Exception as e:
            raise E.add_path_note(e, steps)
        if kx == LEAF and ky == LEAF:
            continue
        if kx == LEAF or ky == LEAF:
            raise ValueError(E.differ(steps, E.describe(x, kx), E.describe(y, ky)))
        if len(steps) >= MAX_DEPTH:
            raise ValueError(E.TOO_DEEP.format(limit=MAX_DEPTH, path=E.format_path(steps)))
        if (
            check_types
            and not (kx == N.COMPOSITE or ky == N.COMPOSITE)
            and not types_compatible(x, kx, y, ky)
        ):
            raise TypeError(E.differ(steps, E.describe(x, kx), E.describe(y, ky)))
        if kx == N.COMPOSITE or ky == N.COMPOSITE:
            from . import _composites

            _composites.compare(x, kx, y, ky, check_types, steps)
            continue
        try:
            ix, iy = N.items(x, kx), N.items(y, ky)
            meta_differs = _meta_differs(x, kx, y, ky)
        except Exception as e:
            raise E.add_path_note(e, steps)
        if meta_differs:
            raise _meta_error(x, kx, y, ky, steps)
        ux = N.unwrap(x, kx)[1] if kx == PROXY else kx
        uy = N.unwrap(y, ky)[1] if ky == PROXY else ky
        both_mappings = ux == MAPPING and uy == MAPPING
        if both_mappings and (
            len(ix) != len(iy) or (check_types and [p[0] for p in ix] != [p[0] for p in iy])
        ):
            detail = E.key_difference([p[0] for p in ix], [p[0] for p in iy])
            raise ValueError(E.differ(steps, E.describe(x, kx), E.describe(y, ky), detail))
        if len(ix) != len(iy):
            # As dm-tree: the children both have are compared first (their
            # difference, e.g. a TypeError, is reported), then the count.
            stack.append(
                (_LATER, ValueError(E.differ(steps, E.describe(x, kx), E.describe(y, ky))), None)
            )
        for (key, cx), (_, cy) in reversed(list(zip(ix, iy))):
            stack.append((cx, cy, steps + ((ux, key),)))


def assert_same_structure(a: Any, b: Any, check_types: bool = True) -> None:
    try:
        if _same(a, b, check_types):
            return
    except RecursionError:
        # deep but legal (at most MAX_DEPTH, acyclic: _diagnose raises otherwise)
        depth = max(_diagnose(a), _diagnose(b))
        with _RaisedRecursionLimit(depth):
            if _same(a, b, check_types):
                return
    except Exception:
        pass  # _compare below raises the same error with its path
    for s in (a, b):  # as dm-tree, which flattens both first: unsortable keys come first
        _raise_unsortable_keys(s)
    _compare(a, b, check_types)
    # _compare found nothing: the fast walk failed for a reason it cannot see
    # (e.g. an object whose methods behave differently on a second call).
    raise ValueError(
        "structures differ (nestlib could not locate where: an "
        "object in them changed while it was being compared)"
    )


# --------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------


def _paths_into(s: Any, k: int, path: tuple[Any, ...], out: list[Any]) -> None:
    if k == LIST or k == TUPLE or k == N.SEQUENCE or k == N.VIEW:
        pairs: Iterable[tuple[Any, Any]] = enumerate(s if k <= TUPLE else N.children(s, k))
    elif k == MAPPING:
        pairs = [(key, s[key]) for key in sorted_keys(s)]
    elif k == NAMEDTUPLE:
        pairs = zip(type(s)._fields, s)
    else:
        pairs = N.items(s, k)
    append = out.append
    for key, c in pairs:
        ck = kind_get(type(c))
        if ck == LEAF:
            append((path + (key,), c))
        else:
            if ck is None:
                ck = classify(c)
                if ck == LEAF:
                    append((path + (key,), c))
                    continue
            _paths_into(c, ck, path + (key,), out)


def _flatten_with_path(structure: Any) -> list[Any]:
    k = classify(structure)
    if k == LEAF:
        return [((), structure)]
    out: list[Any] = []
    _paths_into(structure, k, (), out)
    return out


def flatten_with_path(structure: Any) -> list[Any]:
    try:
        return _flatten_with_path(structure)
    except Exception as e:
        return retry_deep(_flatten_with_path, (structure,), (structure,), e)


def yield_flat_paths(structure: Any) -> Iterator[tuple[Any, ...]]:
    for path, _ in flatten_with_path(structure):
        yield path


# --------------------------------------------------------------------------
# map
# --------------------------------------------------------------------------


def _check_func(func: Any, structures: tuple[Any, ...]) -> None:
    if not callable(func):
        raise TypeError(f"func must be callable, got {E.short_repr(func)}")
    if not structures:
        raise ValueError("map_structure needs at least one structure")


def _changed_error(structure: Any, found: int) -> RuntimeError:
    """The structure no longer has the leaves it had when its values were made
    (a mapped function added or removed items of a container being mapped)."""
    try:
        paths = flatten_with_path(structure)
    except Exception:  # it may be broken now too: say what we know
        paths = None
    detail = ""
    if paths is not None:
        detail = (
            f"; it has {len(paths)} leaf now"
            if len(paths) == 1
            else f"; it has {len(paths)} leaves now"
        )
        if found < len(paths):
            detail += (
                f", and the first leaf without a value is at {E.format_tuple_path(paths[found][0])}"
            )
    return RuntimeError(
        E.bounded(
            f"the structure changed while it was being mapped: {found} values were made for "
            f"it{detail} (a function that adds or removes items of the structure it maps "
            f"cannot be given a result)"
        )
    )


def _pack_exactly(structure: Any, values: Sequence[Any]) -> Any:
    k = classify(structure)
    if k == LEAF:
        if len(values) != 1:
            raise _changed_error(structure, len(values))
        return values[0]
    it = iter(values)
    try:
        result = _pack(structure, k, it.__next__)
    except StopIteration:  # never lets the iteration protocol escape
        raise _changed_error(structure, len(values)) from None
    if next(it, _END) is not _END:
        raise _changed_error(structure, len(values))
    return result


def pack_trusted(structure: Any, values: Sequence[Any]) -> Any:
    """unflatten_as for values made from the structure's leaves (their count was
    right): RuntimeError if the structure has changed since."""
    k = kind_get(type(structure))
    if k is None:
        k = classify(structure)
    if k == LEAF:
        if len(values) == 1:
            return values[0]
    else:  # the common case, without a frame more than _pack's own
        it = iter(values)
        try:
            result = _pack(structure, k, it.__next__)
            if next(it, _END) is _END:
                return result
        except Exception:  # StopIteration included: said again below
            pass
    try:
        return _pack_exactly(structure, values)
    except RuntimeError as e:
        if isinstance(e, RecursionError):
            return retry_deep(_pack_exactly, (structure, values), (structure,), e)
        raise
    except Exception as e:
        return retry_deep(_pack_exactly, (structure, values), (structure,), e)


class _NotPlain(Exception):
    """The one-pass walk of two structures met a case it leaves to the general path."""


def _zip2_into(a: Any, b: Any, k: int, out_a: list[Any], out_b: list[Any]) -> None:
    """Appends the leaves of two nodes of one exact type to ``out_a`` and ``out_b``."""
    if k == MAPPING:
        if a.keys() != b.keys():
            raise _NotPlain
        skeys = sorted_keys(a)
        ca = [a[key] for key in skeys]
        cb = [b[key] for key in skeys]
    elif k <= NAMEDTUPLE:  # LIST, TUPLE, NAMEDTUPLE
        if len(a) != len(b):
            raise _NotPlain
        ca, cb = a, b
    else:
        raise _NotPlain
    if len(ca) > 8:  # a wide node of nothing but leaves: check each type once
        types = set(map(type, ca))
        types.update(map(type, cb))
        if all(kind_get(t) == LEAF for t in types):
            out_a.extend(ca)
            out_b.extend(cb)
            return
    append_a, append_b = out_a.append, out_b.append
    for x, y in zip(ca, cb):
        kx = kind_get(type(x))
        if kx == LEAF and kind_get(type(y)) == LEAF:
            append_a(x)
            append_b(y)
        elif kx and type(y) is type(x):
            _zip2_into(x, y, kx, out_a, out_b)
        else:
            raise _NotPlain


def _zip2(a: Any, b: Any) -> tuple[list[Any], list[Any]] | None:
    """The leaves of ``a`` and of ``b`` in flatten order, in one pass, when the
    two are plainly the same structure (identical node types, lengths and
    keys); None for anything else, which the caller hands to the general path."""
    k = kind_get(type(a))
    if k == LEAF and kind_get(type(b)) == LEAF:
        return [a], [b]
    if not k or type(b) is not type(a):
        return None
    out_a: list[Any] = []
    out_b: list[Any] = []
    try:
        _zip2_into(a, b, k, out_a, out_b)
    except Exception:  # _NotPlain, too deep, or an odd object's method raised
        return None
    return out_a, out_b


def _stopped_in_map(leaf: int) -> RuntimeError:
    return RuntimeError(
        f"the mapped function raised StopIteration on leaf number {leaf} "
        f"(counting from 0); nestlib does not let StopIteration escape, "
        f"since it would end a caller's loop"
    )


def mapped(func: Callable[..., Any], *columns: list[Any]) -> list[Any]:
    """``list(map(func, *columns))``, which ends silently where ``func`` raises
    StopIteration; that is turned into a RuntimeError saying so."""
    values = list(map(func, *columns))
    if len(values) != len(columns[0]):
        raise _stopped_in_map(len(values))
    return values


def make_map_structure(
    flatten_fn: Callable[..., Any], same_fn: Callable[..., Any]
) -> Callable[..., Any]:
    """Builds map_structure over a backend's flatten and structure check."""

    def map_structure(func: Callable[..., Any], *structures: Any, check_types: bool = True) -> Any:
        _check_func(func, structures)
        s0 = structures[0]
        if len(structures) == 1:
            flat = flatten_fn(s0)
            values = list(map(func, flat))
            if len(values) != len(flat):
                raise _stopped_in_map(len(values))
            return pack_trusted(s0, values)
        if len(structures) == 2:
            flats = _zip2(s0, structures[1])
            if flats is not None:  # same structure whatever check_types says
                return pack_trusted(s0, mapped(func, *flats))
        for other in structures[1:]:
            same_fn(s0, other, check_types)
        return pack_trusted(s0, [func(*xs) for xs in zip(*map(flatten_fn, structures))])

    return map_structure


map_structure = make_map_structure(flatten, assert_same_structure)


def make_map_structure_with_path(same_fn: Callable[..., Any]) -> Callable[..., Any]:
    def map_structure_with_path(
        func: Callable[..., Any], *structures: Any, check_types: bool = True
    ) -> Any:
        _check_func(func, structures)
        s0 = structures[0]
        for other in structures[1:]:
            same_fn(s0, other, check_types)
        pairs = flatten_with_path(s0)
        if len(structures) == 1:
            return pack_trusted(s0, [func(p, x) for p, x in pairs])
        flats = [flatten(s) for s in structures[1:]]
        return pack_trusted(s0, [func(p, x, *rest) for (p, x), *rest in zip(pairs, *flats)])

    return map_structure_with_path


map_structure_with_path = make_map_structure_with_path(assert_same_structure)


# --------------------------------------------------------------------------
# shallow structures (the *_up_to family)
# --------------------------------------------------------------------------


def assert_shallow_structure(shallow_tree: Any, input_tree: Any, check_types: bool = True) -> None:
    """dm-tree's rule: every node of ``shallow_tree`` must be matched in ``input_tree``."""
    stack: list[tuple[Any, Any, tuple[Any, ...]]] = [(shallow_tree, input_tree, ())]
    while stack:
        s, d, steps = stack.pop()
        try:
            ks = classify(s)
        except Exception as e:
            raise E.add_path_note(e, steps)
        if ks == LEAF:
            continue
        if len(steps) >= MAX_DEPTH:
            raise ValueError(E.TOO_DEEP.format(limit=MAX_DEPTH, path=E.format_path(steps)))
        try:
            kd = classify(d)
        except Exception as e:
            raise E.add_path_note(e, steps)
        if kd == LEAF:
            raise TypeError(
                E.bounded(
                    f"shallow structure is not a prefix of the input at {E.format_path(steps)}: "
                    f"expected a node like {E.describe(s, ks)}, found {E.describe(d, kd)}"
                )
            )
        if check_types:
            st = N.node_type(s, ks)
            if not isinstance(N.unwrap(d, kd)[0], st) and not types_compatible(s, ks, d, kd):
                raise TypeError(E.differ(steps, E.describe(s, ks), E.describe(d, kd)))
        try:
            si, di = N.items(s, ks), N.items(d, kd)
            dmap = dict(di)
            meta_differs = _meta_differs(s, ks, d, kd)
        except Exception as e:
            raise E.add_path_note(e, steps)
        if meta_differs:
            raise _meta_error(s, ks, d, kd, steps)
        if len(si) != len(di):
            raise ValueError(E.differ(steps, E.describe(s, ks), E.describe(d, kd)))
        us = N.unwrap(s, ks)[1] if ks == PROXY else ks
        for key, sc in reversed(si):
            if key not in dmap:
                raise ValueError(
                    E.bounded(
                        f"shallow structure has key {E.short_repr(key)} at "
                        f"{E.format_path(steps)} which the input lacks: "
                        f"{E.describe(s, ks)} vs {E.describe(d, kd)}"
                    )
                )
            stack.append((sc, dmap[key], steps + ((us, key),)))


def _up_to_pairs(shallow: Any, deep: Any, path: tuple[Any, ...], out: list[Any]) -> None:
    ks = classify(shallow)
    if ks == LEAF:
        out.append((path, deep))
        return
    dmap = dict(N.items(deep, classify(deep)))
    for key, sc in N.items(shallow, ks):
        _up_to_pairs(sc, dmap[key], path + (key,), out)


def _up_to_list(shallow: Any, deep: Any) -> list[Any]:
    out: list[Any] = []
    _up_to_pairs(shallow, deep, (), out)
    return out


def flatten_with_path_up_to(
    shallow_structure: Any, input_structure: Any, check_types: bool = True
) -> list[Any]:
    assert_shallow_structure(shallow_structure, input_structure, check_types)
    try:
        return _up_to_list(shallow_structure, input_structure)
    except Exception as e:  # deep: retried; a user object's error: its path
        return retry_deep(
            _up_to_list,
            (shallow_structure, input_structure),
            (shallow_structure, input_structure),
            e,
        )


def flatten_up_to(
    shallow_structure: Any, input_structure: Any, check_types: bool = True
) -> list[Any]:
    return [v for _, v in flatten_with_path_up_to(shallow_structure, input_structure, check_types)]


def _select_into(shallow: Any, deep: Any, steps: tuple[Any, ...], out: list[Any]) -> None:
    """dm-tree's selection rule: each node of ``shallow`` picks, by key (mapping
    key, field name or index), the matching child of ``deep``; children of
    ``deep`` that ``shallow`` does not name are left out."""
    ks = classify(shallow)
    if ks == LEAF:
        out.append((tuple(key for _, key in steps), deep))
        return
    kd = classify(deep)
    if kd == LEAF:
        raise TypeError(
            E.bounded(
                f"shallow structure is not a prefix of the input at {E.format_path(steps)}: "
                f"expected a node like {E.describe(shallow, ks)}, found {E.describe(deep, kd)}"
            )
        )
    dmap = dict(N.items(deep, kd))
    us = N.unwrap(shallow, ks)[1] if ks == PROXY else ks
    for key, sc in N.items(shallow, ks):
        if key not in dmap:
            raise ValueError(
                E.bounded(
                    f"shallow structure has key {E.short_repr(key)} at "
                    f"{E.format_path(steps)} which the input lacks: "
                    f"{E.describe(shallow, ks)} vs {E.describe(deep, kd)}"
                )
            )
        _select_into(sc, dmap[key], steps + ((us, key),), out)


def _select(shallow: Any, deep: Any) -> list[Any]:
    out: list[Any] = []
    _select_into(shallow, deep, (), out)
    return out


def map_structure_with_path_up_to(
    shallow_structure: Any, func: Callable[..., Any], *structures: Any, check_types: bool = False
) -> Any:
    _check_func(func, structures)
    columns = []
    for s in structures:
        if check_types:  # tf.nest's strict rule, on request
            assert_shallow_structure(shallow_structure, s, check_types=True)
        try:
            columns.append(_select(shallow_structure, s))
        except Exception as e:  # deep: retried; a user object's error: its path
            columns.append(retry_deep(_select, (shallow_structure, s), (shallow_structure, s), e))
    paths = [p for p, _ in columns[0]]
    values = [func(p, *vs) for p, *vs in zip(paths, *([v for _, v in col] for col in columns))]
    return unflatten_as(shallow_structure, values)


def map_structure_up_to(
    shallow_structure: Any, func: Callable[..., Any], *structures: Any, check_types: bool = False
) -> Any:
    _check_func(func, structures)
    return map_structure_with_path_up_to(
        shallow_structure, lambda _, *xs: func(*xs), *structures, check_types=check_types
    )


# --------------------------------------------------------------------------
# traverse
# --------------------------------------------------------------------------

MAP_TO_NONE = object()


def _traverse(
    fn: Callable[..., Any],
    path: tuple[Any, ...],
    s: Any,
    top_down: bool,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    def subtrees(node: Any) -> Any:
        k = LEAF if is_leaf is not None and is_leaf(node) else classify(node)
        if k == LEAF:
            return node
        if len(path) >= MAX_DEPTH:  # traverse_with_path turns this into its ValueError
            raise RecursionError("nested more than MAX_DEPTH levels")
        pairs = N.items(node, k)
        return N.rebuild(
            node, k, [_traverse(fn, path + (key,), c, top_down, is_leaf) for key, c in pairs]
        )

    if top_down:
        ret = fn(path, s)
        if ret is None:
            return subtrees(s)
        return None if ret is MAP_TO_NONE else ret
    done = subtrees(s)
    ret = fn(path, done)
    if ret is None:
        return done
    return None if ret is MAP_TO_NONE else ret


def traverse_with_path(
    fn: Callable[..., Any],
    structure: Any,
    top_down: bool = True,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    # Room for MAX_DEPTH levels from the start: a retry after a RecursionError
    # would call ``fn`` twice on the subtrees visited before it.
    try:
        with _RaisedRecursionLimit(MAX_DEPTH):
            return _traverse(fn, (), structure, top_down, is_leaf)
    except Exception as e:
        # A cycle, too deep, a user object's error or a node type refusing its
        # values: say which and where. (An error from ``fn`` passes unchanged.)
        _diagnose_noting(structure, e)
        raise


def traverse(
    fn: Callable[..., Any],
    structure: Any,
    top_down: bool = True,
    is_leaf: Callable[[Any], bool] | None = None,
) -> Any:
    return traverse_with_path(lambda _, x: fn(x), structure, top_down, is_leaf)


# --------------------------------------------------------------------------
# is_leaf: a predicate that stops the descent
# --------------------------------------------------------------------------


def drop_path(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` called as a path function: ``(path, *values) -> func(*values)``."""
    return lambda _, *xs: func(*xs)


class _PrefixLeaf:
    """Where ``is_leaf`` stopped the descent, in a prefix structure."""

    _nestlib_leaf_slot = True

    def __repr__(self) -> str:
        return "*"


PREFIX_LEAF = _PrefixLeaf()


def _prefix(s: Any, is_leaf: Callable[[Any], bool], depth: int) -> Any:
    if is_leaf(s):
        return PREFIX_LEAF
    k = classify(s)
    if k == LEAF:
        return PREFIX_LEAF
    if depth >= MAX_DEPTH:
        raise RecursionError("nested more than MAX_DEPTH levels")
    return N.rebuild(s, k, [_prefix(c, is_leaf, depth + 1) for c in N.children(s, k)])


def prefix_of(structure: Any, is_leaf: Callable[[Any], bool]) -> Any:
    """``structure`` with every subtree for which ``is_leaf`` is true (and every
    leaf) replaced by one marker leaf: the shallow structure the ``is_leaf``
    variants of the functions flatten and map up to."""
    if not callable(is_leaf):
        raise TypeError(f"is_leaf must be callable or None, got {E.short_repr(is_leaf)}")
    try:
        with _RaisedRecursionLimit(MAX_DEPTH):
            return _prefix(structure, is_leaf, 0)
    except Exception as e:  # a cycle, too deep, a user object's error: where
        _diagnose_noting(structure, e)
        raise


def list_to_tuple(structure: Any) -> Any:
    def convert(x: Any) -> Any:
        k = classify(x)
        if k == LEAF:
            return x
        vals = [convert(c) for c in N.children(x, k)]
        if k == LIST or (k == N.SEQUENCE and isinstance(x, list)):
            return tuple(vals)
        return N.rebuild(x, k, vals)

    try:
        return convert(structure)
    except Exception as e:  # deep: retried; a user object's error: its path
        return retry_deep(convert, (structure,), (structure,), e)
