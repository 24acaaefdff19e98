"""Names that TensorFlow code imports from ``tensorflow.python.util.nest``
and dm-tree lacks, with tf.nest's semantics on nestlib's node rules.

They take no fast path of a backend: each is defined here once.
"""

from __future__ import annotations

import collections.abc as cabc
import sys
from collections.abc import Callable
from typing import Any

from . import _errors as E
from . import _nodes as N
from . import _walk as W


def is_namedtuple(instance: Any, strict: bool = False) -> bool:
    """The engine of ``nestlib.is_namedtuple`` (documented there)."""
    t = type(instance)
    if not N._is_namedtuple_type(t):
        return False
    return not strict or t.__bases__ == (tuple,)


def same_namedtuples(nest1: Any, nest2: Any) -> bool:
    """The engine of ``nestlib.same_namedtuples`` (documented there)."""
    return (
        is_namedtuple(nest1)
        and is_namedtuple(nest2)
        and N.same_namedtuple_types(type(nest1), type(nest2))
    )


def is_mapping(obj: Any) -> bool:
    """The engine of ``nestlib.is_mapping`` (documented there)."""
    return isinstance(obj, cabc.Mapping)


def is_attrs(obj: Any) -> bool:
    """The engine of ``nestlib.is_attrs`` (documented there)."""
    return N.classify(obj) == N.ATTRS


def is_nested_or_composite(seq: Any) -> bool:
    """The engine of ``nestlib.is_nested_or_composite`` (documented there)."""
    if W.is_nested(seq):
        return True
    if "tensorflow" not in sys.modules:
        return False
    from . import _composites

    return _composites.is_composite(seq)


def flatten_dict_items(dictionary: Any) -> dict[Any, Any]:
    """The engine of ``nestlib.flatten_dict_items`` (documented there)."""
    if not isinstance(dictionary, cabc.Mapping):
        raise TypeError(f"flatten_dict_items takes a mapping, got {E.describe(dictionary)}")
    flat: dict[Any, Any] = {}
    for key, value in dictionary.items():
        if W.is_nested(key):
            keys, values = W.flatten(key), W.flatten(value)
            if len(keys) != len(values):
                raise ValueError(
                    E.bounded(
                        f"could not flatten dictionary: key {E.short_repr(key)} has {len(keys)} "
                        f"leaves but its value {E.short_repr(value)} has {len(values)}"
                    )
                )
            pairs = list(zip(keys, values))
        else:
            pairs = [(key, value)]
        for k, v in pairs:
            if k in flat:
                raise ValueError(
                    E.bounded(f"could not flatten dictionary: key {E.short_repr(k)} is not unique")
                )
            flat[k] = v
    return flat


def _shallow(
    traverse_fn: Callable[..., Any],
    structure: Any,
    steps: tuple[Any, ...],
    kind_fn: Callable[[Any], int],
) -> Any:
    to_traverse = traverse_fn(structure)
    k = kind_fn(structure)
    if k == N.LEAF:
        if not isinstance(to_traverse, bool):
            raise TypeError(
                E.bounded(
                    f"traverse_fn returned {E.short_repr(to_traverse)} for the leaf at "
                    f"{E.format_path(steps)}; expected a bool"
                )
            )
        return to_traverse
    if len(steps) >= W.MAX_DEPTH:
        raise ValueError(E.TOO_DEEP.format(limit=W.MAX_DEPTH, path=E.format_path(steps)))
    items = N.items(structure, k)
    uk = N.unwrap(structure, k)[1] if k == N.PROXY else k
    if isinstance(to_traverse, bool):
        if not to_traverse:
            return False
        level = [_shallow(traverse_fn, c, steps + ((uk, key),), kind_fn) for key, c in items]
    elif not W.is_nested(to_traverse):
        raise TypeError(
            E.bounded(
                f"traverse_fn returned {E.short_repr(to_traverse)} for the node at "
                f"{E.format_path(steps)}; expected a bool or a depth-1 structure of bools"
            )
        )
    else:
        W.assert_shallow_structure(to_traverse, structure)
        wanted = N.children(to_traverse, N.classify(to_traverse))
        level = []
        for t, (key, c) in zip(wanted, items):
            if not isinstance(t, bool):
                raise TypeError(
                    E.bounded(
                        f"traverse_fn returned {E.short_repr(to_traverse)} for the node at "
                        f"{E.format_path(steps)}; expected a depth-1 structure of bools"
                    )
                )
            level.append(_shallow(traverse_fn, c, steps + ((uk, key),), kind_fn) if t else False)
    return N.rebuild(structure, k, level)


def get_traverse_shallow_structure(
    traverse_fn: Callable[[Any], Any], structure: Any, expand_composites: bool = False
) -> Any:
    """The engine of ``nestlib.get_traverse_shallow_structure`` (documented there)."""
    if not callable(traverse_fn):
        raise TypeError(f"traverse_fn must be callable, got {E.short_repr(traverse_fn)}")
    try:
        kind_fn = N.classify
        if expand_composites:
            from . import _composites

            kind_fn = _composites.kind
        with W._RaisedRecursionLimit(W.MAX_DEPTH):
            return _shallow(traverse_fn, structure, (), kind_fn)
    except RecursionError as e:
        W._diagnose_noting(structure, e)
        raise
