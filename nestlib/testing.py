"""Hypothesis strategies for fuzz-testing code that handles nests.

``nestlib.testing`` is the only nestlib module that imports `hypothesis
<https://hypothesis.readthedocs.io>`_; install it (``pip install
nestlib[testing]``) to use it. The strategies generate nests built from
lists, tuples, dicts (string keys or integer keys, never mixed in one dict),
namedtuples, ``OrderedDict``, ``defaultdict``, attrs classes (when attrs is
installed) and, on request, ``types.MappingProxyType``, dataclasses registered
with :func:`nestlib.register_dataclass` (with a metadata field) and classes
implementing TensorFlow's nest protocol, with ``None`` and empty containers
among them:

>>> import nestlib
>>> from hypothesis import given, settings
>>> from nestlib.testing import structures
>>> @settings(max_examples=25, deadline=None)
... @given(structures())
... def test_round_trip(s):
...     assert nestlib.unflatten_as(s, nestlib.flatten(s)) == s
>>> test_round_trip()

Every structure is generated from an abstract *shape* first, and the shape is
then filled with leaves; so :func:`structures_with_same_shape` can fill one
shape several times, and :func:`shallow_and_deep` can cut one short. The
namedtuple and attrs classes are made once per field list and kept in this
module, so equal shapes use identical classes and the structures pickle.
"""

from __future__ import annotations

import collections
import dataclasses
import types
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

try:  # attrs is optional: without it "attrs" is simply not a default container.
    import attr as _attr
except ImportError:  # pragma: no cover - exercised only without attrs
    _attr = None  # type: ignore[assignment]

__all__ = [
    "CONTAINERS",
    "DM_TREE_CONTAINERS",
    "DEFAULT_CONTAINERS",
    "leaves",
    "structures",
    "structures_with_same_shape",
    "shallow_and_deep",
]

#: Every container kind the strategies can generate.
CONTAINERS: tuple[str, ...] = (
    "list",
    "tuple",
    "dict",
    "namedtuple",
    "ordered_dict",
    "defaultdict",
    "attrs",
    "mappingproxy",
    "registered_dataclass",
    "tf_protocol",
)

#: The kinds dm-tree knows as nodes (the others, ``registered_dataclass`` and
#: ``tf_protocol``, are nestlib's and tf.nest's own: dm-tree and optree see
#: them as leaves).
DM_TREE_CONTAINERS: tuple[str, ...] = CONTAINERS[:8]

#: The kinds generated when ``containers`` is not given: dm-tree's, without
#: ``mappingproxy`` (MappingProxyType does not pickle).
DEFAULT_CONTAINERS: tuple[str, ...] = tuple(
    k for k in DM_TREE_CONTAINERS if k != "mappingproxy" and (k != "attrs" or _attr is not None)
)

# Field names of generated namedtuples and attrs classes: short, valid and
# deliberately not in sorted order, so that code which sorts fields (wrongly)
# shows up.
_FIELDS = ("x", "b", "h", "a", "cell", "y", "c", "state")
_MAPPING_KINDS = ("dict", "ordered_dict", "defaultdict", "mappingproxy")

_record_types: dict[tuple[str, tuple[str, ...]], type] = {}


class _TFProtocolNode:
    """Base of the generated classes with TensorFlow's nest protocol: components
    (the children) and metadata; equal when type, metadata and components are."""

    def __init__(self, *components: Any, meta: Any = 0) -> None:
        self.components, self.meta = components, meta

    def __tf_flatten__(self) -> tuple[Any, ...]:
        return self.meta, self.components

    @classmethod
    def __tf_unflatten__(cls, metadata: Any, components: tuple[Any, ...]) -> Any:
        return cls(*components, meta=metadata)

    def __eq__(self, other: Any) -> bool:
        return (
            type(other) is type(self)
            and other.meta == self.meta
            and other.components == self.components
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.components))
        return f"{type(self).__name__}({inner}{', ' if inner else ''}meta={self.meta!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_protocol, (type(self), self.components, self.meta))


def _rebuild_protocol(cls: type, components: tuple[Any, ...], meta: Any) -> Any:
    return cls(*components, meta=meta)


def _namedtuple(name: str, fields: tuple[str, ...]) -> type:
    # A function so that mypy sees a call making a class, not a namedtuple
    # statement (which must name its class with a string literal).
    return collections.namedtuple(name, fields)


def _record_type(kind: str, fields: tuple[str, ...]) -> type:
    """The namedtuple, attrs, registered dataclass or TF-protocol class with
    ``fields`` (made once, then reused)."""
    key = (kind, fields)
    cls = _record_types.get(key)
    if cls is None:
        prefix = {
            "namedtuple": "NT",
            "attrs": "Attrs",
            "registered_dataclass": "DC",
            "tf_protocol": "TFP",
        }[kind]
        name = f"{prefix}_{'_'.join(fields)}" if fields else f"{prefix}_empty"
        if kind == "namedtuple":
            cls = _namedtuple(name, fields)
        elif kind == "attrs":
            cls = _attr.make_class(name, list(fields))
        elif kind == "registered_dataclass":
            import nestlib  # registration is global: done once per class, here

            cls = dataclasses.make_dataclass(name, [*fields, ("tag", int, 0)])
            nestlib.register_dataclass(cls, meta_fields=["tag"])
        else:
            cls = type(name, (_TFProtocolNode,), {})
        cls.__module__ = __name__
        cls.__qualname__ = name
        globals()[name] = cls  # so that pickle finds it
        _record_types[key] = cls
    return cls


def leaves() -> st.SearchStrategy[Any]:
    """The default leaf strategy: None, bools, ints, floats, short str and bytes.

    NaN is left out so that generated structures compare equal to
    themselves. Pass your own strategy as ``structures(leaves=...)`` to
    generate tensors, arrays or anything else that is not itself nested.

    >>> import nestlib
    >>> from hypothesis import find
    >>> from nestlib.testing import leaves
    >>> nestlib.is_nested(find(leaves(), lambda x: True))
    False
    """
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-1000, max_value=1000),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.text(max_size=4),
        st.binary(max_size=4),
    )


def _check_args(
    leaf_strategy: Any, max_leaves: Any, containers: Any, max_depth: Any, max_children: Any
) -> tuple[st.SearchStrategy[Any], tuple[str, ...]]:
    if leaf_strategy is None:
        leaf_strategy = leaves()
    if not isinstance(leaf_strategy, st.SearchStrategy):
        raise TypeError(f"leaves must be a hypothesis strategy, got {type(leaf_strategy).__name__}")
    for name, value, low in (
        ("max_leaves", max_leaves, 0),
        ("max_depth", max_depth, 0),
        ("max_children", max_children, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if max_children > len(_FIELDS):
        raise ValueError(f"max_children must be <= {len(_FIELDS)}, got {max_children}")
    if containers is None:
        kinds = DEFAULT_CONTAINERS
    else:
        if isinstance(containers, str):
            raise TypeError(
                "containers must be an iterable of container names, "
                f"not a single string (did you mean [{containers!r}]?)"
            )
        kinds = tuple(containers)
        unknown = [k for k in kinds if k not in CONTAINERS]
        if unknown:
            raise ValueError(f"unknown container kinds {unknown}; choose from {CONTAINERS}")
        if "attrs" in kinds and _attr is None:
            raise ValueError("containers includes 'attrs' but attrs is not installed")
        kinds = tuple(dict.fromkeys(kinds))  # drop duplicates, keep order
    if max_leaves == 0 and not kinds:
        raise ValueError("max_leaves=0 needs at least one container kind")
    return leaf_strategy, kinds


# A shape is ("leaf",) or (kind, meta, children): meta is the key list of a
# mapping, the record class of a namedtuple/attrs node, None otherwise.


def _draw_shape(
    draw: Any, kinds: tuple[str, ...], max_leaves: int, max_depth: int, max_children: int
) -> tuple[Any, ...]:
    budget = [max_leaves]

    def node(depth: int) -> tuple[Any, ...]:
        options = ["leaf"] if budget[0] > 0 else []
        if depth < max_depth or not options:
            options += kinds
        kind = draw(st.sampled_from(options))
        if kind == "leaf":
            budget[0] -= 1
            return ("leaf",)
        n = draw(st.integers(min_value=0, max_value=max_children))
        children: list[tuple[Any, ...]] = []
        while len(children) < n and budget[0] > 0:
            children.append(node(depth + 1))
        n = len(children)
        meta: Any = None
        if kind in _MAPPING_KINDS:
            key_strategy = draw(
                st.sampled_from(
                    [
                        st.text(alphabet="abxyz", max_size=3),
                        st.integers(min_value=-3, max_value=20),
                    ]
                )
            )
            meta = tuple(draw(st.lists(key_strategy, min_size=n, max_size=n, unique=True)))
        elif kind in ("namedtuple", "attrs"):
            fields = tuple(draw(st.permutations(_FIELDS))[:n])
            meta = _record_type(kind, fields)
        elif kind in ("registered_dataclass", "tf_protocol"):  # class and its metadata
            fields = tuple(draw(st.permutations(_FIELDS))[:n])
            meta = (_record_type(kind, fields), draw(st.integers(min_value=0, max_value=2)))
        return (kind, meta, tuple(children))

    return node(0)


def _fill(shape: tuple[Any, ...], draw: Any, leaf_strategy: st.SearchStrategy[Any]) -> Any:
    kind = shape[0]
    if kind == "leaf":
        return draw(leaf_strategy)
    _, meta, children = shape
    values = [_fill(c, draw, leaf_strategy) for c in children]
    if kind == "list":
        return values
    if kind == "tuple":
        return tuple(values)
    if kind == "namedtuple":
        return meta(*values)
    if kind == "attrs":
        return meta(**dict(zip([a.name for a in meta.__attrs_attrs__], values)))
    if kind == "registered_dataclass":
        return meta[0](*values, tag=meta[1])
    if kind == "tf_protocol":
        return meta[0](*values, meta=meta[1])
    pairs = list(zip(meta, values))
    if kind == "dict":
        return dict(pairs)
    if kind == "ordered_dict":
        return collections.OrderedDict(pairs)
    if kind == "defaultdict":
        return collections.defaultdict(list, pairs)
    if kind == "mappingproxy":
        return types.MappingProxyType(dict(pairs))
    raise AssertionError(kind)


def _cut(shape: tuple[Any, ...], draw: Any) -> tuple[Any, ...]:
    """A prefix of ``shape``: some subtrees replaced by a single leaf."""
    if shape[0] == "leaf" or draw(st.booleans()):
        return ("leaf",)
    kind, meta, children = shape
    return (kind, meta, tuple(_cut(c, draw) for c in children))


def structures(
    leaves: st.SearchStrategy[Any] | None = None,
    *,
    max_leaves: int = 12,
    containers: Iterable[str] | None = None,
    max_depth: int = 4,
    max_children: int = 4,
) -> st.SearchStrategy[Any]:
    """A strategy for nested structures.

    Args:
      leaves: strategy for the leaves (default :func:`leaves`); it must not
        itself produce nested values.
      max_leaves: at most this many leaves per structure.
      containers: the container kinds to use, a subset of :data:`CONTAINERS`
        (default :data:`DEFAULT_CONTAINERS`). An empty list gives bare leaves.
      max_depth: at most this many levels of containers.
      max_children: at most this many children per container.

    Raises:
      TypeError, ValueError: an argument has the wrong type or value.

    >>> import nestlib
    >>> from hypothesis import given, settings, strategies as st
    >>> from nestlib.testing import structures
    >>> @settings(max_examples=25, deadline=None)
    ... @given(structures(st.integers(), containers=["list", "dict"], max_depth=2))
    ... def test_int_leaves(s):
    ...     assert all(isinstance(x, int) for x in nestlib.flatten(s))
    ...     assert nestlib.map_structure(lambda x: x, s) == s
    >>> test_int_leaves()
    """
    leaf_strategy, kinds = _check_args(leaves, max_leaves, containers, max_depth, max_children)

    @st.composite
    def strategy(draw: st.DrawFn) -> Any:
        return _fill(
            _draw_shape(draw, kinds, max_leaves, max_depth, max_children), draw, leaf_strategy
        )

    return strategy()


def structures_with_same_shape(
    count: int = 2,
    leaves: st.SearchStrategy[Any] | None = None,
    *,
    max_leaves: int = 12,
    containers: Iterable[str] | None = None,
    max_depth: int = 4,
    max_children: int = 4,
) -> st.SearchStrategy[tuple[Any, ...]]:
    """A strategy for tuples of ``count`` structures with one layout.

    The structures share node types, lengths, keys and key order; their
    leaves are drawn independently. Use it for functions of several
    structures, such as ``map_structure(f, a, b)``. The keyword arguments are
    those of :func:`structures`.

    >>> import nestlib
    >>> from hypothesis import given, settings
    >>> from nestlib.testing import structures_with_same_shape
    >>> @settings(max_examples=25, deadline=None)
    ... @given(structures_with_same_shape(3))
    ... def test_three(abc):
    ...     a, b, c = abc
    ...     nestlib.assert_same_structure(a, c)
    ...     assert nestlib.map_structure(lambda x, y, z: y, a, b, c) == b
    >>> test_three()
    """
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    leaf_strategy, kinds = _check_args(leaves, max_leaves, containers, max_depth, max_children)

    @st.composite
    def strategy(draw: st.DrawFn) -> tuple[Any, ...]:
        shape = _draw_shape(draw, kinds, max_leaves, max_depth, max_children)
        return tuple(_fill(shape, draw, leaf_strategy) for _ in range(count))

    return strategy()


def shallow_and_deep(
    leaves: st.SearchStrategy[Any] | None = None,
    *,
    max_leaves: int = 12,
    containers: Iterable[str] | None = None,
    max_depth: int = 4,
    max_children: int = 4,
) -> st.SearchStrategy[tuple[Any, Any]]:
    """A strategy for ``(shallow, deep)`` pairs for the ``*_up_to`` functions.

    ``shallow`` is ``deep``'s layout cut short: some subtrees of ``deep`` are
    a single leaf in ``shallow``. Leaves of the two are drawn independently.
    The keyword arguments are those of :func:`structures`.

    >>> import nestlib
    >>> from hypothesis import given, settings
    >>> from nestlib.testing import shallow_and_deep
    >>> @settings(max_examples=25, deadline=None)
    ... @given(shallow_and_deep())
    ... def test_up_to(pair):
    ...     shallow, deep = pair
    ...     parts = nestlib.flatten_up_to(shallow, deep)
    ...     assert len(parts) == len(nestlib.flatten(shallow))
    >>> test_up_to()
    """
    leaf_strategy, kinds = _check_args(leaves, max_leaves, containers, max_depth, max_children)

    @st.composite
    def strategy(draw: st.DrawFn) -> tuple[Any, Any]:
        shape = _draw_shape(draw, kinds, max_leaves, max_depth, max_children)
        deep = _fill(shape, draw, leaf_strategy)
        shallow = _fill(_cut(shape, draw), draw, leaf_strategy)
        return shallow, deep

    return strategy()
