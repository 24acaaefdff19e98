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
CUSTOM     registered types (``register_node``,         what their flatten
           ``register_dataclass``) and types with       function returns /
           TensorFlow's nest protocol                   its keys, or indices
           (``__tf_flatten__``/``__tf_unflatten__``)
========== ============================================ =====================

A CUSTOM type's rules live in ``DEFS[type]``, a ``NodeDef`` tuple: the
registered functions, or the ones made for a TF-protocol class the first time
one is met (see ``_registry``). Registered types win over every built-in rule
but the exact built-in containers, which cannot be registered.

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from wrapt import ObjectProxy  # optional at run time: see _proxy_types

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
CUSTOM = 10  # registered types and TF nest-protocol types: rules in DEFS

KIND_NAMES = {
    LIST: "list",
    TUPLE: "tuple",
    NAMEDTUPLE: "namedtuple",
    MAPPING: "mapping",
    ATTRS: "attrs",
    SEQUENCE: "sequence",
    VIEW: "mapping view",
    PROXY: "proxy",
    COMPOSITE: "composite tensor",
    CUSTOM: "registered node",
}

# type -> kind. Filled lazily by classify(); seeded with the common types.
KINDS: dict[type, int] = {
    list: LIST,
    tuple: TUPLE,
    dict: MAPPING,
    int: LEAF,
    float: LEAF,
    bool: LEAF,
    complex: LEAF,
    str: LEAF,
    bytes: LEAF,
    bytearray: LEAF,
    type(None): LEAF,
    set: LEAF,
    frozenset: LEAF,
}
kind_get = KINDS.get


def _proxy_types() -> tuple[type[ObjectProxy[Any]], ...]:
    """``(wrapt.ObjectProxy,)`` once wrapt is imported, else ``()``.

    wrapt is optional and costs tens of milliseconds to import, so nestlib
    does not import it: until someone else has, no object can be a proxy.
    Only types missing from KINDS get here, and proxy types never enter it.
    """
    proxy: type[ObjectProxy[Any]] | None = getattr(sys.modules.get("wrapt"), "ObjectProxy", None)
    return (proxy,) if isinstance(proxy, type) else ()


_STRINGS = (str, bytes, bytearray)


class NodeDef(NamedTuple):
    """How a CUSTOM type is taken apart and rebuilt (the C core reads it by index).

    ``flatten(x) -> (children, metadata)``; ``unflatten(metadata, children)``
    rebuilds; ``flatten_with_keys(x) -> ((key, child), ...), metadata`` or None
    (paths are then indices). Two nodes of one type are the same structure
    only when their metadata compare equal, unless ``meta_matters`` is False
    (TensorFlow's protocol: tf.nest compares the classes only).
    """

    flatten: Callable[[Any], tuple[Any, ...]]
    unflatten: Callable[[Any, Any], Any]
    flatten_with_keys: Callable[[Any], tuple[Any, ...]] | None
    meta_matters: bool
    label: str  # "registered node" or "nest-protocol object", for messages
    cls: type
    # Set for register_dataclass: (data field names, meta field names, plain,
    # all names), so the C core reads and sets the fields itself; plain when
    # the dataclass-generated __init__ does nothing but set them (see
    # _registry._plain_dataclass).
    fields: tuple[Any, ...] | None = None
    # TF's protocol: the C core calls __tf_flatten__ and this (the class's
    # __tf_unflatten__, as met when the class was first classified) itself
    protocol: bool = False
    tf_unflatten: Callable[[Any, tuple[Any, ...]], Any] | None = None


# type -> NodeDef of every CUSTOM type: the registered ones, and the TF-protocol
# classes met so far. Changed only by _registry (under its lock).
DEFS: dict[type, NodeDef] = {}
REGISTERED: dict[type, NodeDef] = {}
# Every NodeDef ever put in DEFS, kept alive: the C core holds borrowed
# references to defs while it runs user code, during which another thread may
# unregister or replace one. (A few small tuples per registration.)
_EVERY_DEF: list[NodeDef] = []


def set_def(t: type, d: NodeDef) -> None:
    """``DEFS[t] = d``, keeping ``d`` alive for good (see _EVERY_DEF)."""
    _EVERY_DEF.append(d)
    DEFS[t] = d


def _protocol_def(t: type) -> NodeDef | None:
    """The NodeDef for TensorFlow's nest protocol, if ``t`` implements it.

    Detected by method name, so TensorFlow is never imported here.
    """
    tf_flatten = getattr(t, "__tf_flatten__", None)
    tf_unflatten = getattr(t, "__tf_unflatten__", None)
    if not (callable(tf_flatten) and callable(tf_unflatten)):
        return None

    def flatten(x: Any) -> tuple[Any, ...]:
        pair = x.__tf_flatten__()
        if type(pair) is not tuple or len(pair) != 2 or type(pair[1]) is not tuple:
            raise TypeError(
                f"{type(x).__name__}.__tf_flatten__() must return (metadata, components) "
                f"with components a tuple, as TensorFlow's nest protocol requires; got "
                f"{_short_repr(pair)}"
            )
        return pair[1], pair[0]

    def unflatten(metadata: Any, children: Any) -> Any:
        return tf_unflatten(metadata, tuple(children))

    return NodeDef(
        flatten, unflatten, None, False, "nest-protocol object", t, None, True, tf_unflatten
    )


def _short_repr(x: Any) -> str:
    # _errors imports this module, so its short_repr is imported when needed
    # (only to word an error).
    from ._errors import short_repr

    return short_repr(x)


def _is_namedtuple_type(t: type) -> bool:
    if not issubclass(t, tuple):
        return False
    fields = getattr(t, "_fields", None)
    return isinstance(fields, (tuple, list)) and all(isinstance(f, str) for f in fields)


def _type_kind(t: type, protocol: bool = True) -> int:
    """The kind of every (non-proxy) instance of ``t``.

    With ``protocol=False``, the kind by the built-in rules alone (what
    registration may not override).
    """
    if protocol and t in REGISTERED:
        return CUSTOM
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
    if protocol:
        tf_def = _protocol_def(t)
        if tf_def is not None:
            set_def(t, tf_def)
            return CUSTOM
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


#: Set on the TypeError of a mapping whose keys cannot be sorted.
UNSORTABLE = "_nestlib_unsortable_keys"


def sorted_keys(mapping: Any) -> list[Any]:
    """The keys of ``mapping`` in flatten order (sorted)."""
    try:
        return sorted(mapping)
    except TypeError as e:
        err = TypeError(f"nestlib only supports mappings with sortable keys; {e}")
        setattr(err, UNSORTABLE, True)
        raise err from None


# namedtuple type -> its number of fields when ``t(*values)`` is exactly
# ``tuple.__new__(t, values)`` (the __new__ that collections.namedtuple
# generates, tuple's __init__), else -1. Filled by plain_namedtuple_size().
PLAIN_NAMEDTUPLES: dict[type, int] = {}


def plain_namedtuple_size(t: type[Any]) -> int:
    """``len(t._fields)`` if ``t`` builds like a tuple (see PLAIN_NAMEDTUPLES), else -1."""
    n = PLAIN_NAMEDTUPLES.get(t)
    if n is None:
        new = t.__dict__.get("__new__")
        new_fn = getattr(new, "__func__", new)
        plain = (getattr(new_fn, "__module__", None) or "").startswith(
            "namedtuple_"
        ) and t.__init__ is tuple.__init__
        n = PLAIN_NAMEDTUPLES[t] = len(t._fields) if plain else -1
    return n


def attrs_names(t: type[Any]) -> list[str]:
    return [a.name for a in t.__attrs_attrs__]


def custom_def(x: Any) -> NodeDef:
    """The NodeDef of CUSTOM node ``x`` (a clear error once it is unregistered)."""
    d = DEFS.get(type(x))
    if d is None:
        raise TypeError(
            f"{type(x).__name__} is no longer a registered node type "
            f"(nestlib.unregister_node was called on it)"
        )
    return d


def _bad_flatten(x: Any, what: str, got: Any) -> TypeError:
    return TypeError(
        f"the flatten function registered for {type(x).__name__} must return "
        f"{what}; got {_short_repr(got)}"
    )


def custom_flatten(x: Any) -> tuple[list[Any], Any]:
    """``(children, metadata)`` of CUSTOM node ``x``, checked."""
    pair = custom_def(x).flatten(x)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise _bad_flatten(x, "a pair (children, metadata)", pair)
    kids = pair[0]
    if type(kids) is not list:
        if not isinstance(kids, (tuple, list)):
            raise _bad_flatten(x, "its children as a tuple or list", kids)
        kids = list(kids)
    return kids, pair[1]


def custom_items(x: Any) -> list[tuple[Any, ...]]:
    """``(key, child)`` pairs of CUSTOM node ``x``: its registered keys, or indices."""
    d = custom_def(x)
    if d.flatten_with_keys is None:
        return list(enumerate(custom_flatten(x)[0]))
    pair = d.flatten_with_keys(x)
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise _bad_flatten(x, "a pair (((key, child), ...), metadata) from flatten_with_keys", pair)
    out = []
    for item in pair[0]:
        if not isinstance(item, tuple) or len(item) != 2:
            raise _bad_flatten(x, "(key, child) pairs from flatten_with_keys", item)
        out.append(item)
    return out


def custom_meta(x: Any) -> Any:
    return custom_flatten(x)[1]


def same_meta(a: Any, b: Any) -> bool:
    """False when CUSTOM nodes ``a`` and ``b`` (one type) differ in metadata that counts."""
    d = custom_def(a)
    if not d.meta_matters:
        return True
    ma, mb = custom_flatten(a)[1], custom_flatten(b)[1]
    try:
        return bool(ma == mb)
    except Exception:  # e.g. arrays as metadata: compare by identity
        return ma is mb


def children(x: Any, k: int) -> list[Any]:
    """The children of node ``x`` of kind ``k``, in flatten order."""
    if k == LIST or k == TUPLE or k == NAMEDTUPLE:
        return list(x)
    if k == CUSTOM:
        return custom_flatten(x)[0]
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


def keys(x: Any, k: int) -> list[Any]:
    """The path keys of the children of node ``x``, in flatten order."""
    if k == MAPPING:
        return sorted_keys(x)
    if k == NAMEDTUPLE:
        return list(type(x)._fields)
    if k == ATTRS:
        return attrs_names(type(x))
    if k == CUSTOM:
        return [key for key, _ in custom_items(x)]
    if k == PROXY:
        x, k = unwrap(x, k)
        return keys(x, k)
    if k == SEQUENCE or k == VIEW:
        return list(range(len(list(iter(x)))))
    return list(range(len(x)))


def items(x: Any, k: int) -> list[tuple[Any, ...]]:
    """``(path key, child)`` pairs of node ``x`` in flatten order."""
    if k == MAPPING:
        return [(key, x[key]) for key in sorted_keys(x)]
    if k == NAMEDTUPLE:
        return list(zip(type(x)._fields, x))
    if k == ATTRS:
        return [(name, getattr(x, name)) for name in attrs_names(type(x))]
    if k == CUSTOM:
        return custom_items(x)
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


def rebuild(x: Any, k: int, values: list[Any]) -> Any:
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
        if k == CUSTOM:
            return custom_def(x).unflatten(custom_flatten(x)[1], values)
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


def rebuild_mapping(x: Any, values: list[Any], skeys: list[Any] | None = None) -> Any:
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
    if k == SEQUENCE or k == VIEW or k == COMPOSITE or k == CUSTOM:
        return len(children(x, k))
    return len(x)


def same_namedtuple_types(a: type[Any], b: type[Any]) -> bool:
    return a.__name__ == b.__name__ and tuple(a._fields) == tuple(b._fields)


def node_type(x: Any, k: int) -> type:
    """The type compared by ``check_types`` (proxies count as what they wrap)."""
    if k == PROXY:
        x, k = unwrap(x, k)
    return type(x)


MakeFn = Callable[[list[Any]], Any]
