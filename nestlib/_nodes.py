"""What is a node of a nest, its children in flatten order, and how to rebuild one.

Every object is classified into one *kind*. Leaves have kind ``LEAF``; every
other kind is a container whose children are visited in a fixed order:

========== ============================================ =====================
kind       types                                        children / path keys
========== ============================================ =====================
LIST       ``list``                                     items / indices
TUPLE      ``tuple``                                    items / indices
NAMEDTUPLE tuples with ``_fields`` (and subclasses)     items / field names
MAPPING    ``collections.abc.Mapping`` (dict, ...)      values by sorted key
ATTRS      classes decorated with ``attrs``             field values / names
SEQUENCE   other ``collections.abc.Sequence``           items / indices
VIEW       ``collections.abc.MappingView``              items / indices
PROXY      ``wrapt.ObjectProxy`` around a node          those of the target
========== ============================================ =====================

``str``, ``bytes``, ``bytearray``, sets, numpy arrays, ``None`` and
everything else are leaves. The kind of a type is computed once and cached
in ``KINDS``; proxies are classified per instance, because whether a proxy
is a node depends on what it wraps.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import sys
import types
from typing import Any, Callable

LEAF = 0
LIST = 1
TUPLE = 2
NAMEDTUPLE = 3
MAPPING = 4
ATTRS = 5
SEQUENCE = 6
VIEW = 7
PROXY = 8
COMPOSITE = 9  # only with expand_composites=True (see _composites.py)

KIND_NAMES = {
    LIST: "list", TUPLE: "tuple", NAMEDTUPLE: "namedtuple", MAPPING: "mapping",
    ATTRS: "attrs", SEQUENCE: "sequence", VIEW: "mapping view", PROXY: "proxy",
    COMPOSITE: "composite tensor",
}

# type -> kind. Filled lazily by classify(); seeded with the common types.
KINDS: dict[type, int] = {
    list: LIST, tuple: TUPLE, dict: MAPPING,
    int: LEAF, float: LEAF, bool: LEAF, complex: LEAF, str: LEAF, bytes: LEAF,
    bytearray: LEAF, type(None): LEAF, set: LEAF, frozenset: LEAF,
}
kind_get = KINDS.get


def _proxy_types() -> tuple[type, ...]:
    """``(wrapt.ObjectProxy,)`` once wrapt is imported, else ``()``.

    wrapt is optional and costs tens of milliseconds to import, so nestlib
    does not import it: until someone else has, no object can be a proxy.
    Only types missing from KINDS get here, and proxy types never enter it.
    """
    proxy = getattr(sys.modules.get("wrapt"), "ObjectProxy", None)
    return (proxy,) if isinstance(proxy, type) else ()


_STRINGS = (str, bytes, bytearray)


def _is_namedtuple_type(t: type) -> bool:
    if not issubclass(t, tuple):
        return False
    fields = getattr(t, "_fields", None)
    return isinstance(fields, (tuple, list)) and all(isinstance(f, str) for f in fields)


def _type_kind(t: type) -> int:
    """The kind of every (non-proxy) instance of ``t``."""
    if issubclass(t, _STRINGS):
        return LEAF
    if issubclass(t, cabc.Mapping):
        return MAPPING
    if issubclass(t, cabc.MappingView):
        return VIEW
    if getattr(t, "__attrs_attrs__", None) is not None and isinstance(t, type):
        return ATTRS
    if _is_namedtuple_type(t):
        return NAMEDTUPLE
    if issubclass(t, cabc.Sequence):
        return SEQUENCE
    return LEAF


def classify(x: Any) -> int:
    """Returns the kind of ``x``, caching it by type where that is sound."""
    t = type(x)
    k = kind_get(t)
    if k is not None:
        return k
    proxies = _proxy_types()
    if proxies and isinstance(x, proxies):
        return PROXY if classify(x.__wrapped__) != LEAF else LEAF
    k = _type_kind(t)
    KINDS[t] = k
    return k


def unwrap(x: Any, k: int) -> tuple[Any, int]:
    """Strips proxies: returns the object a node's children come from, and its kind."""
    while k == PROXY:
        x = x.__wrapped__
        k = classify(x)
    return x, k


def sorted_keys(mapping: Any) -> list:
    """The keys of ``mapping`` in flatten order (sorted)."""
    try:
        return sorted(mapping)
    except TypeError as e:
        raise TypeError(
            f"nestlib only supports mappings with sortable keys; {e}") from None


# namedtuple type -> its number of fields when ``t(*values)`` is exactly
# ``tuple.__new__(t, values)`` (the __new__ that collections.namedtuple
# generates, tuple's __init__), else -1. Filled by plain_namedtuple_size().
PLAIN_NAMEDTUPLES: dict[type, int] = {}


def plain_namedtuple_size(t: type) -> int:
    """``len(t._fields)`` if ``t`` builds like a tuple (see PLAIN_NAMEDTUPLES), else -1."""
    n = PLAIN_NAMEDTUPLES.get(t)
    if n is None:
        new = t.__dict__.get("__new__")
        new_fn = getattr(new, "__func__", new)
        plain = (getattr(new_fn, "__module__", None) or "").startswith("namedtuple_") \
            and t.__init__ is tuple.__init__
        n = PLAIN_NAMEDTUPLES[t] = len(t._fields) if plain else -1
    return n


def attrs_names(t: type) -> list[str]:
    return [a.name for a in t.__attrs_attrs__]


def children(x: Any, k: int) -> list:
    """The children of node ``x`` of kind ``k``, in flatten order."""
    if k == LIST or k == TUPLE or k == NAMEDTUPLE:
        return list(x)
    if k == MAPPING:
        return [x[key] for key in sorted_keys(x)]
    if k == ATTRS:
        return [getattr(x, name) for name in attrs_names(type(x))]
    if k == SEQUENCE or k == VIEW:
        return list(iter(x))
    if k == PROXY:
        x, k = unwrap(x, k)
        return children(x, k)
    if k == COMPOSITE:
        from . import _composites
        return _composites.components(x)
    raise AssertionError(f"not a node kind: {k}")


def keys(x: Any, k: int) -> list:
    """The path keys of the children of node ``x``, in flatten order."""
    if k == MAPPING:
        return sorted_keys(x)
    if k == NAMEDTUPLE:
        return list(type(x)._fields)
    if k == ATTRS:
        return attrs_names(type(x))
    if k == PROXY:
        x, k = unwrap(x, k)
        return keys(x, k)
    if k == SEQUENCE or k == VIEW:
        return list(range(len(list(iter(x)))))
    return list(range(len(x)))


def items(x: Any, k: int) -> list[tuple]:
    """``(path key, child)`` pairs of node ``x`` in flatten order."""
    if k == MAPPING:
        return [(key, x[key]) for key in sorted_keys(x)]
    if k == NAMEDTUPLE:
        return list(zip(type(x)._fields, x))
    if k == ATTRS:
        return [(name, getattr(x, name)) for name in attrs_names(type(x))]
    if k == PROXY:
        x, k = unwrap(x, k)
        return items(x, k)
    return list(enumerate(children(x, k)))


# A failed rebuild raises TypeError holding the template node under this
# attribute; the walkers look that node up in the structure to name its path.
REBUILD_NODE = "_nestlib_rebuild_node"


def _rebuild_error(x: Any, n: int, e: Exception) -> Exception:
    """The TypeError for ``x``'s type refusing ``n`` values with ``e``."""
    if hasattr(e, REBUILD_NODE):  # a proxy's target refused: name the proxy
        setattr(e, REBUILD_NODE, x)
        return e
    err = TypeError(f"could not rebuild a {type(x).__name__} from {n} values: {e}")
    setattr(err, REBUILD_NODE, x)
    return err


def rebuild(x: Any, k: int, values: list) -> Any:
    """A node like ``x`` (same type, same key order) holding ``values``.

    ``values`` are in flatten order (sorted keys for mappings). When ``x``'s
    type refuses them, raises TypeError with ``x`` as its REBUILD_NODE.
    """
    try:
        if k == LIST:
            return values if type(x) is list else type(x)(values)
        if k == TUPLE:
            return tuple(values) if type(x) is tuple else type(x)(values)
        if k == MAPPING:
            return rebuild_mapping(x, values)
        if k == NAMEDTUPLE:
            return type(x)(*values)
        if k == SEQUENCE:
            return type(x)(values)
        if k == ATTRS:
            return type(x)(**dict(zip(attrs_names(type(x)), values)))
        if k == VIEW:
            return list(values)
        if k == PROXY:
            inner, ik = unwrap(x, k)
            rebuilt = rebuild(inner, ik, values)
            if ik == NAMEDTUPLE or ik == ATTRS:
                return rebuilt  # as dm-tree: records come back unwrapped
            return type(x)(rebuilt)
        if k == COMPOSITE:
            from . import _composites
            return _composites.rebuild(x, values)
    except Exception as e:
        err = _rebuild_error(x, len(values), e)
        if err is e:
            raise
        raise err from e
    raise AssertionError(f"not a node kind: {k}")


def rebuild_mapping(x: Any, values: list, skeys: list | None = None) -> Any:
    """A mapping like ``x`` with ``values`` given in sorted-key order."""
    if skeys is None:
        skeys = sorted_keys(x)
    by_key = dict(zip(skeys, values))
    if list(x) != skeys:
        by_key = {key: by_key[key] for key in x}
    t = type(x)
    if t is dict:
        return by_key
    try:
        if isinstance(x, collections.defaultdict):
            return t(x.default_factory, by_key)
        if t is types.MappingProxyType:
            return t(by_key)
        return t(by_key.items()) if not issubclass(t, dict) else t(by_key)
    except Exception as e:
        raise _rebuild_error(x, len(values), e) from e


def type_name(x: Any) -> str:
    t = type(x)
    proxies = _proxy_types()
    if proxies and isinstance(x, proxies):
        return f"{type_name(x.__wrapped__)} (proxied)"
    return t.__qualname__ if t.__module__ == "builtins" else t.__name__


def length(x: Any, k: int) -> int:
    if k == ATTRS:
        return len(type(x).__attrs_attrs__)
    if k == PROXY:
        x, k = unwrap(x, k)
        return length(x, k)
    if k == SEQUENCE or k == VIEW or k == COMPOSITE:
        return len(children(x, k))
    return len(x)


def same_namedtuple_types(a: type, b: type) -> bool:
    return a.__name__ == b.__name__ and tuple(a._fields) == tuple(b._fields)


def node_type(x: Any, k: int) -> type:
    """The type compared by ``check_types`` (proxies count as what they wrap)."""
    if k == PROXY:
        x, k = unwrap(x, k)
    return type(x)


MakeFn = Callable[[list], Any]
