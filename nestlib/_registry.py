"""Registration: the user's own classes as nodes.

``register_node`` / ``register_dataclass`` / ``unregister_node`` change
``_nodes.REGISTERED``, ``_nodes.DEFS`` and the kind cache ``_nodes.KINDS``
under one lock, then tell the listeners (the Spec caches, which forget every
Spec, since a Spec's fast code was written for the rules of its day). A Spec
made before a change checks, on its slow path and before it rebuilds a
registered node, that the rules it was made with still hold, and raises
RuntimeError when they do not (see ``_spec``), so it is never silently wrong.
"""

from __future__ import annotations

import collections
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from . import _errors as E
from . import _nodes as N

T = TypeVar("T", bound=type)

_lock = threading.RLock()
_listeners: list[Callable[[], None]] = []
#: Bumped by every (un)registration; a Spec records the value it was made under.
generation = [0]

# Containers whose rules are the library's own and cannot be replaced.
_BUILTIN_NODES = (
    list,
    tuple,
    dict,
    collections.OrderedDict,
    collections.defaultdict,
    collections.deque,
    types.MappingProxyType,
)


def add_listener(fn: Callable[[], None]) -> None:
    """``fn()`` is called after every registration change (caches to clear)."""
    _listeners.append(fn)


def _changed() -> None:
    generation[0] += 1
    for fn in _listeners:
        fn()


def _check_class(cls: Any, what: str) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"{what} takes a class, got {type(cls).__name__} {E.short_repr(cls)}")
    if cls in _BUILTIN_NODES:
        raise ValueError(
            f"{cls.__name__} is one of nestlib's built-in node types; its rules "
            f"cannot be replaced by {what}"
        )
    builtin = N._type_kind(cls, protocol=False)
    if builtin != N.LEAF:
        raise ValueError(
            f"{cls.__name__} is already a node by nestlib's built-in rules (a "
            f"{N.KIND_NAMES[builtin]}); {what} cannot replace them"
        )


def _check_fn(fn: Any, name: str) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable, got {type(fn).__name__} {E.short_repr(fn)}")


def _install(cls: type, d: N.NodeDef) -> None:
    with _lock:
        if cls in N.REGISTERED:
            raise ValueError(
                f"{cls.__name__} is already registered as a node type; call "
                f"nestlib.unregister_node({cls.__name__}) first to change its rules"
            )
        N.REGISTERED[cls] = d
        N.set_def(cls, d)
        N.KINDS[cls] = N.CUSTOM
        _changed()


def register_node(
    cls: type,
    flatten_fn: Callable[[Any], tuple[Any, Any]],
    unflatten_fn: Callable[[Any, Any], Any],
    *,
    flatten_with_keys_fn: Callable[[Any], tuple[Any, Any]] | None = None,
) -> None:
    """The engine of ``nestlib.register_node`` (documented there)."""
    _check_class(cls, "register_node")
    _check_fn(flatten_fn, "flatten_fn")
    _check_fn(unflatten_fn, "unflatten_fn")
    if flatten_with_keys_fn is not None:
        _check_fn(flatten_with_keys_fn, "flatten_with_keys_fn")
    _install(
        cls, N.NodeDef(flatten_fn, unflatten_fn, flatten_with_keys_fn, True, "registered node", cls)
    )


def _dataclass_def(cls: type, data: Sequence[str], meta: Sequence[str]) -> N.NodeDef:
    # Generated like collections.namedtuple's methods: attribute reads and a
    # keyword call written out, which is several times faster than a loop over
    # field names, and these run once per node per call.
    consts = {"_cls": cls}
    data_expr = "".join(f"x.{f}, " for f in data)
    meta_expr = "".join(f"x.{f}, " for f in meta)
    keys_expr = "".join(f"({f!r}, x.{f}), " for f in data)
    args = ", ".join(
        [f"{f}=c[{i}]" for i, f in enumerate(data)] + [f"{f}=m[{i}]" for i, f in enumerate(meta)]
    )
    src = (
        f"def flatten(x):\n    return ({data_expr}), ({meta_expr})\n"
        f"def flatten_with_keys(x):\n    return ({keys_expr}), ({meta_expr})\n"
        f"def unflatten(m, c):\n    return _cls({args})\n"
    )
    exec(compile(src, f"<nestlib dataclass {cls.__qualname__}>", "exec"), consts)
    fields = (tuple(data), tuple(meta), _plain_dataclass(cls), tuple(data) + tuple(meta))
    return N.NodeDef(
        consts["flatten"],
        consts["unflatten"],
        consts["flatten_with_keys"],
        True,
        "registered dataclass",
        cls,
        fields,
    )


def _plain_dataclass(cls: type) -> bool:
    """True when building ``cls(**fields)`` is exactly making the object and
    setting each field with ``object.__setattr__``: its ``__init__`` is the one
    dataclasses generated, every field is an ``__init__`` field, there is no
    ``__post_init__``, no ``__new__`` and no ``__setattr__`` of its own (or it is
    frozen, whose generated ``__init__`` uses ``object.__setattr__``). The C
    core then builds it without calling Python code (as namedtuples are built
    with ``tuple.__new__``)."""
    import dataclasses

    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    params = getattr(cls, "__dataclass_params__", None)
    return (
        code is not None
        and code.co_filename == "<string>"
        and all(f.init for f in dataclasses.fields(cls))
        # its parameters are the fields and nothing else (no InitVar)
        and set(code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount])
        == {f.name for f in dataclasses.fields(cls)}
        and not hasattr(cls, "__post_init__")
        # (mypy reads these class attributes as bound methods of ``type``)
        and cls.__new__ is object.__new__  # type: ignore[comparison-overlap]
        and (
            getattr(params, "frozen", False) or cls.__setattr__ is object.__setattr__  # type: ignore[comparison-overlap]
        )
    )


def register_dataclass(
    cls: T | None = None,
    *,
    data_fields: Sequence[str] | None = None,
    meta_fields: Sequence[str] | None = None,
) -> Any:
    """The engine of ``nestlib.register_dataclass`` (documented there)."""
    if cls is None:

        def decorate(c: T) -> T:
            return cast(T, register_dataclass(c, data_fields=data_fields, meta_fields=meta_fields))

        return decorate
    import dataclasses  # imports inspect (~7 ms): only when a dataclass is registered

    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(
            f"register_dataclass takes a dataclass, got {E.short_repr(cls)}; use "
            f"register_node for other classes"
        )
    init_fields = [f.name for f in dataclasses.fields(cls) if f.init]
    if data_fields is None:
        if meta_fields is None:
            data, meta = init_fields, []
        else:
            meta = list(meta_fields)
            data = [f for f in init_fields if f not in meta]
    elif meta_fields is None:
        data = list(data_fields)
        meta = [f for f in init_fields if f not in data]
    else:
        data, meta = list(data_fields), list(meta_fields)
    for name in (*data, *meta):
        if not isinstance(name, str):
            raise TypeError(f"field names must be str, got {E.short_repr(name)}")
    both = set(data) & set(meta)
    missing = [f for f in init_fields if f not in data and f not in meta]
    extra = [f for f in (*data, *meta) if f not in init_fields]
    if both or missing or extra or len(set(data)) != len(data) or len(set(meta)) != len(meta):
        raise ValueError(
            f"register_dataclass({cls.__name__}): data_fields {data} and meta_fields {meta} "
            f"must together name each __init__ field of {cls.__name__} exactly once "
            f"({init_fields}); "
            + "; ".join(
                filter(
                    None,
                    [
                        f"missing {missing}" if missing else "",
                        f"not __init__ fields {extra}" if extra else "",
                        f"in both {sorted(both)}" if both else "",
                        "a field named twice" if not (missing or extra or both) else "",
                    ],
                )
            )
        )
    _check_class(cls, "register_dataclass")
    _install(cls, _dataclass_def(cls, data, meta))
    return cls


def unregister_node(cls: type) -> None:
    """The engine of ``nestlib.unregister_node`` (documented there)."""
    with _lock:
        if cls not in N.REGISTERED:
            raise ValueError(
                f"{getattr(cls, '__name__', E.short_repr(cls))} is not a registered node type"
            )
        del N.REGISTERED[cls]
        N.DEFS.pop(cls, None)
        N.KINDS.pop(cls, None)  # classified afresh (a TF-protocol class, a leaf, ...)
        _changed()
