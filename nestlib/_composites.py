"""``expand_composites=True``: composite tensors as nodes (needs TensorFlow).

TensorFlow is imported here only when a call asks for composite expansion, so
``import nestlib`` never pulls it in. A composite tensor (``tf.SparseTensor``,
``tf.RaggedTensor``, ...) or a non-tensor ``tf.TypeSpec`` is a node whose
children are its component tensors, exactly as ``tf.nest`` expands them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import _errors as E
from . import _nodes as N
from . import _walk as W


def _tf() -> Any:  # the tensorflow module (untyped)
    import tensorflow as tf

    return tf


def is_composite(x: Any) -> bool:
    tf = _tf()
    if isinstance(x, tf.__internal__.CompositeTensor):
        return True
    return isinstance(x, tf.TypeSpec) and not isinstance(x, tf.TensorSpec)


def kind(x: Any) -> int:
    return N.COMPOSITE if is_composite(x) else N.classify(x)


def components(x: Any) -> list[Any]:
    flat: list[Any] = _tf().nest.flatten(x, expand_composites=True)
    return flat


def rebuild(x: Any, values: list[Any]) -> Any:
    return _tf().nest.pack_sequence_as(x, values, expand_composites=True)


def _flatten_into(s: Any, out: list[Any]) -> None:
    k = kind(s)
    if k == N.LEAF:
        out.append(s)
    elif k == N.COMPOSITE:
        out.extend(components(s))
    else:
        for c in N.children(s, k):
            _flatten_into(c, out)


def flatten(structure: Any) -> list[Any]:
    out: list[Any] = []
    try:
        _flatten_into(structure, out)
    except RecursionError:
        W._diagnose(structure)
        raise
    return out


def _pack(s: Any, nxt: Callable[[], Any]) -> Any:
    k = kind(s)
    if k == N.LEAF:
        return nxt()
    if k == N.COMPOSITE:
        return rebuild(s, [nxt() for _ in components(s)])
    return N.rebuild(s, k, [_pack(c, nxt) for c in N.children(s, k)])


def pack(structure: Any, flat_sequence: Any) -> Any:
    flat = W.check_flat_sequence(flat_sequence)
    expected = len(flatten(structure))
    if expected != len(flat):
        raise ValueError(
            E.LEAF_COUNT.format(
                what="pack_sequence_as", expected=expected, found=len(flat), detail=""
            )
        )
    return _pack(structure, iter(flat).__next__)


def assert_same(a: Any, b: Any, check_types: bool) -> None:
    W._compare(a, b, check_types, kind_fn=kind)


def compare(
    x: Any, kx: int, y: Any, ky: int, check_types: bool, steps: Iterable[tuple[int, Any]]
) -> None:
    """Called by the generic comparison when either side is a composite."""
    if kx != ky:
        cls = TypeError if check_types else ValueError
        raise cls(E.differ(steps, E.describe(x, kx), E.describe(y, ky)))
    try:
        _tf().nest.assert_same_structure(x, y, check_types=check_types, expand_composites=True)
    except (ValueError, TypeError) as e:
        raise type(e)(
            E.bounded(
                E.differ(
                    steps,
                    f"{type(x).__name__} {E.short_repr(x)}",
                    f"{type(y).__name__} {E.short_repr(y)}",
                )
                + f" ({e})"
            )
        ) from None


def map_structure(func: Callable[..., Any], *structures: Any, check_types: bool = True) -> Any:
    for other in structures[1:]:
        assert_same(structures[0], other, check_types)
    flats = [flatten(s) for s in structures]
    return pack(structures[0], [func(*xs) for xs in zip(*flats)])
