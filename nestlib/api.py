"""nestlib's public functions: real signatures, types and docstrings here,
each body one call into the engine of the active backend.

The engine (``_backend.engine``: nestlib's compiled core, dm-tree's, or pure
Python) does the fast, error-free case; everything else (tf.nest's keyword
names, ``is_leaf``, ``expand_composites``, errors) is decided here or in the
shared Python engine (``_walk``), so every backend gives identical results.
``_backend.api(name)`` makes copies of these functions bound to another
backend's engine (the tests run the whole suite against each).

No ``StopIteration`` raised inside a call (by a mapped function, a
registered flatten function, a user container) ever escapes: it would end a
caller's loop silently; it becomes a RuntimeError.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import _backend
from . import _composites as C
from . import _errors as E
from . import _registry as R
from . import _spec as S
from . import _tfnest as TF
from . import _walk as W

#: Deepest nesting nestlib accepts; deeper input raises ValueError.
MAX_DEPTH = W.MAX_DEPTH
#: Returned by a ``traverse`` function to replace a subtree with None.
MAP_TO_NONE = W.MAP_TO_NONE
Spec = S.Spec

IsLeaf = Callable[[Any], bool]

__all__ = [  # grouped: tree ops, paths, up_to, tf.nest helpers, specs, registry
    "is_nested",
    "flatten",
    "unflatten_as",
    "pack_sequence_as",
    "map_structure",
    "assert_same_structure",
    "traverse",
    "list_to_tuple",
    "map_structure_with_path",
    "map_structure_with_tuple_paths",
    "map_structure_with_paths",
    "flatten_with_path",
    "flatten_with_tuple_paths",
    "flatten_with_joined_string_paths",
    "yield_flat_paths",
    "traverse_with_path",
    "format_path",
    "assert_shallow_structure",
    "flatten_up_to",
    "flatten_with_path_up_to",
    "flatten_with_tuple_paths_up_to",
    "map_structure_up_to",
    "map_structure_with_path_up_to",
    "map_structure_with_tuple_paths_up_to",
    "get_traverse_shallow_structure",
    "flatten_dict_items",
    "is_namedtuple",
    "same_namedtuples",
    "is_mapping",
    "is_attrs",
    "is_nested_or_composite",
    "is_sequence_or_composite",
    "spec_of",
    "Spec",
    "register_node",
    "register_dataclass",
    "unregister_node",
    "backend",
    "MAP_TO_NONE",
    "MAX_DEPTH",
]

# The active backend's engine: the operations every public function calls.
_engine = _backend.engine(_backend.default_name())
_flatten = _engine.flatten
_is_nested = _engine.is_nested
_same = _engine.same
_map = _engine.map
_map_path = _engine.map_path
_unflatten = _engine.unflatten
_paths = _engine.paths
_up_to = _engine.up_to
_paths_up_to = _engine.paths_up_to
_spec_of = _engine.spec_of
_name = _engine.name

_NO: Any = _backend.NOT_GIVEN  # an argument with two names (dm-tree's, tf.nest's) not given


# --------------------------------------------------------------------------
# helpers (engine-independent)
# --------------------------------------------------------------------------


def _one(fname: str, name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """The argument given as ``name`` (dm-tree's) or ``alias`` (tf.nest's)."""
    if alias_value is _NO:
        if value is _NO:
            raise TypeError(f"{fname}() missing required argument {name!r} (or {alias!r})")
        return value
    if value is not _NO:
        raise TypeError(
            f"{fname}() got both {name!r} and {alias!r}, two names of one argument; give one"
        )
    return alias_value


def _unknown_keywords(kwargs: dict[Any, Any]) -> ValueError:
    # tf.nest's (and dm-tree's) exception class for an unknown keyword of a map function
    return ValueError(
        "Only valid keyword arguments are check_types, expand_composites and "
        f"is_leaf, not: {', '.join(map(str, kwargs))}"
    )


def _stopped(e: StopIteration) -> RuntimeError:
    return RuntimeError(
        f"StopIteration raised inside a nestlib call (by a mapped function, "
        f"a registered flatten function or a container's methods): {e!r}"
    )


def _no_composites_with_is_leaf(expand_composites: bool) -> None:
    if expand_composites:
        raise ValueError(
            "is_leaf and expand_composites=True cannot be combined: "
            "is_leaf decides alone where the descent stops"
        )


def _refuse_composites(fname: str, structures: tuple[Any, ...]) -> None:
    """``expand_composites=True`` for a function that does not expand them:
    fine while no composite tensor is in the structures, else a clear error."""
    if "tensorflow" not in sys.modules:
        return  # no composite tensor can exist
    for s in structures:
        if len(C.flatten(s)) != len(W.flatten(s)):
            raise NotImplementedError(
                f"nestlib.{fname} does not expand composite tensors (found one in "
                f"{E.short_repr(s)}); call tf.nest for this structure, or pass "
                f"expand_composites=False to treat them as leaves"
            )


def _map_with_is_leaf(
    func: Callable[..., Any],
    structures: tuple[Any, ...],
    is_leaf: IsLeaf,
    check_types: bool,
    with_path: bool,
) -> Any:
    """map_structure(_with_path) with ``is_leaf``: up to the first structure's prefix."""
    W._check_func(func, structures)
    shallow = W.prefix_of(structures[0], is_leaf)
    for s in structures[1:]:  # node for node down to the prefix's leaves
        W.assert_shallow_structure(shallow, s, check_types)
    if not with_path:
        func = W.drop_path(func)
    return W.map_structure_with_path_up_to(shallow, func, *structures, check_types=check_types)


def _flatten_up_to(
    fname: str,
    op: Callable[[Any, Any, bool], list[Any]],
    shallow: Any,
    deep: Any,
    check_types: bool,
    expand_composites: bool,
    is_leaf: IsLeaf | None,
    shallow_tree: Any,
    input_tree: Any,
) -> list[Any]:
    """flatten_up_to and flatten_with_path_up_to with the engine's ``op``."""
    shallow = _one(fname, "shallow_structure", shallow, "shallow_tree", shallow_tree)
    deep = _one(fname, "input_structure", deep, "input_tree", input_tree)
    try:
        if expand_composites:
            _refuse_composites(fname, (shallow, deep))
        if is_leaf is not None:
            shallow = W.prefix_of(shallow, is_leaf)
        return op(shallow, deep, check_types)
    except StopIteration as e:
        raise _stopped(e) from e


def _map_up_to(
    fname: str,
    shallow: Any,
    func: Any,
    structures: tuple[Any, ...],
    check_types: bool,
    expand_composites: bool,
    is_leaf: IsLeaf | None,
    with_path: bool,
) -> Any:
    if func is _NO:
        raise TypeError(f"{fname}() missing required argument 'func'")
    if expand_composites:
        _refuse_composites(fname, (shallow, *structures))
    if is_leaf is not None:
        shallow = W.prefix_of(shallow, is_leaf)
    W._check_func(func, structures)
    if not with_path:
        func = W.drop_path(func)
    return W.map_structure_with_path_up_to(shallow, func, *structures, check_types=check_types)


# --------------------------------------------------------------------------
# tree operations
# --------------------------------------------------------------------------


def is_nested(structure: Any = _NO, seq: Any = _NO) -> bool:
    """Returns True if ``structure`` is a node (a container nestlib descends into).

    Lists, tuples, namedtuples, mappings, attrs classes, other
    ``collections.abc.Sequence`` types and ``wrapt.ObjectProxy`` around any of
    these are nodes; ``str``, ``bytes``, ``bytearray``, sets, numpy arrays and
    ``None`` are leaves.

    >>> import nestlib
    >>> nestlib.is_nested([1, 2]), nestlib.is_nested("ab"), nestlib.is_nested(None)
    (True, False, False)
    """
    if seq is not _NO or structure is _NO:
        structure = _one("is_nested", "structure", structure, "seq", seq)
    try:
        return _is_nested(structure)
    except StopIteration as e:
        raise _stopped(e) from e


def flatten(
    structure: Any, expand_composites: bool = False, is_leaf: IsLeaf | None = None
) -> list[Any]:
    """Returns the leaves of ``structure`` as a list, in a fixed order.

    Mappings contribute their values in sorted-key order; a leaf flattens to
    ``[leaf]``. With ``expand_composites=True`` composite tensors (such as
    ``tf.SparseTensor``) expand to their component tensors (this imports
    TensorFlow).

    >>> import nestlib
    >>> nestlib.flatten({"b": [1, 2], "a": (3, None)})
    [3, None, 1, 2]
    >>> nestlib.flatten(7)
    [7]

    ``is_leaf(subtree)``, called on every subtree before descending into it
    (as in jax.tree_util and optree), makes the subtrees it accepts leaves:

    >>> nestlib.flatten([(1, 2), [3]], is_leaf=lambda x: isinstance(x, tuple))
    [(1, 2), 3]

    Raises:
      TypeError: a mapping has keys that cannot be sorted.
      ValueError: the structure contains itself or is nested more than
        ``MAX_DEPTH`` levels deep.
    """
    try:
        if is_leaf is None and not expand_composites:
            return _flatten(structure)
        if is_leaf is None:
            return C.flatten(structure)
        _no_composites_with_is_leaf(expand_composites)
        return W.flatten_up_to(W.prefix_of(structure, is_leaf), structure, False)
    except StopIteration as e:
        raise _stopped(e) from e


def unflatten_as(structure: Any, flat_sequence: Sequence[Any]) -> Any:
    """Packs ``flat_sequence`` into the shape of ``structure``.

    The inverse of :func:`flatten`: mappings are rebuilt in the key order of
    ``structure``; namedtuples, attrs classes and ``defaultdict`` keep their
    types (and default factory).

    >>> import nestlib
    >>> nestlib.unflatten_as({"b": [0, 0], "a": 0}, [1, 2, 3])
    {'b': [2, 3], 'a': 1}

    Raises:
      TypeError: ``flat_sequence`` is not a sequence.
      ValueError: the counts differ; the message says where the first leaf
        without a value is.
    """
    try:
        return _unflatten(structure, flat_sequence)
    except StopIteration as e:
        raise _stopped(e) from e


def pack_sequence_as(
    structure: Any, flat_sequence: Sequence[Any], expand_composites: bool = False
) -> Any:
    """tf.nest's name for :func:`unflatten_as`, with ``expand_composites``.

    >>> import nestlib
    >>> nestlib.pack_sequence_as((0, [0]), ["a", "b"])
    ('a', ['b'])
    """
    try:
        if expand_composites:
            return C.pack(structure, flat_sequence)
        return _unflatten(structure, flat_sequence)
    except StopIteration as e:
        raise _stopped(e) from e


def map_structure(
    func: Callable[..., Any],
    *structures: Any,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    **kwargs: Any,
) -> Any:
    """Applies ``func`` to corresponding leaves of ``structures``.

    All structures must have the same layout (see
    :func:`assert_same_structure`); the result has the layout and node types
    of the first. ``func`` is called in flatten order.

    >>> import nestlib
    >>> nestlib.map_structure(lambda x, y: x + y, {"a": 1, "b": (2,)}, {"a": 10, "b": (20,)})
    {'a': 11, 'b': (22,)}
    >>> nestlib.map_structure(str, [1, None])
    ['1', 'None']

    With ``is_leaf`` (applied to the first structure) the subtrees it accepts
    are passed to ``func`` whole, and the other structures must match the
    first down to there. Keyword arguments other than ``check_types``,
    ``expand_composites`` and ``is_leaf`` raise ValueError, as in tf.nest.

    >>> nestlib.map_structure(len, {"a": (1, 2), "b": [(3,)]},
    ...                       is_leaf=lambda x: isinstance(x, tuple))
    {'a': 2, 'b': [1]}
    """
    if kwargs:
        raise _unknown_keywords(kwargs)
    try:
        if is_leaf is not None:
            _no_composites_with_is_leaf(expand_composites)
            return _map_with_is_leaf(func, structures, is_leaf, check_types, with_path=False)
        if expand_composites:
            W._check_func(func, structures)
            return C.map_structure(func, *structures, check_types=check_types)
        return _map(func, *structures, check_types=check_types)
    except StopIteration as e:
        raise _stopped(e) from e


def assert_same_structure(
    a: Any = _NO,
    b: Any = _NO,
    check_types: bool = True,
    expand_composites: bool = False,
    nest1: Any = _NO,
    nest2: Any = _NO,
) -> None:
    """Raises unless ``a`` and ``b`` have the same layout.

    With ``check_types`` (the default) corresponding nodes must also have the
    same type, except that any two mappings match, lists match list
    subclasses, and namedtuples match when their names and fields agree. The
    message names the path of the first difference and what was found on
    each side.

    >>> import nestlib
    >>> nestlib.assert_same_structure({"a": (1, 2)}, {"a": (3, 4)})
    >>> nestlib.assert_same_structure({"a": (1, 2)}, {"a": (3, 4, 5)})
    Traceback (most recent call last):
      ...
    ValueError: structures differ at ['a']: tuple of length 2 vs tuple of length 3
    >>> nestlib.assert_same_structure([1], (1,))
    Traceback (most recent call last):
      ...
    TypeError: structures differ at the top level: list of length 1 vs tuple of length 1
    >>> nestlib.assert_same_structure([1], (1,), check_types=False)

    Raises:
      ValueError: the nesting, lengths or mapping keys differ.
      TypeError: node types differ and ``check_types`` is true.
    """
    # (nest1 is not nest2: one of them was given; b is _NO: tf.nest's names only)
    if nest1 is not nest2 or b is _NO:
        a = _one("assert_same_structure", "a", a, "nest1", nest1)
        b = _one("assert_same_structure", "b", b, "nest2", nest2)
    try:
        if expand_composites:
            return C.assert_same(a, b, check_types)
        return _same(a, b, check_types)
    except StopIteration as e:
        raise _stopped(e) from e


def traverse(
    fn: Callable[[Any], Any], structure: Any, top_down: bool = True, is_leaf: IsLeaf | None = None
) -> Any:
    """Traverses ``structure`` calling ``fn`` on every subtree.

    Top-down (the default): if ``fn(subtree)`` returns None the traversal
    goes into the subtree; any other value replaces it (return
    :data:`MAP_TO_NONE` to replace it with None). Bottom-up: ``fn`` sees each
    subtree after its children were traversed, and None keeps it.

    >>> import nestlib
    >>> nestlib.traverse(lambda x: x * 10 if isinstance(x, int) else None, [1, (2, 3)])
    [10, (20, 30)]
    >>> nestlib.traverse(lambda x: nestlib.MAP_TO_NONE if x == (2, 3) else None, [1, (2, 3)])
    [1, None]
    """
    try:
        return W.traverse(fn, structure, top_down, is_leaf)
    except StopIteration as e:
        raise _stopped(e) from e


def list_to_tuple(structure: Any) -> Any:
    """Returns ``structure`` with every list replaced by a tuple.

    >>> import nestlib
    >>> nestlib.list_to_tuple({"a": [1, [2]]})
    {'a': (1, (2,))}
    """
    try:
        return W.list_to_tuple(structure)
    except StopIteration as e:
        raise _stopped(e) from e


# --------------------------------------------------------------------------
# paths
# --------------------------------------------------------------------------


def map_structure_with_path(
    func: Callable[..., Any],
    *structures: Any,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    **kwargs: Any,
) -> Any:
    """Like :func:`map_structure`, calling ``func(path, *leaves)``.

    A path is the tuple of keys from the root: indices for sequences, keys for
    mappings and field names for namedtuples and attrs classes.

    >>> import nestlib
    >>> nestlib.map_structure_with_path(lambda p, x: (p, x), [{"foo": 42}])
    [{'foo': ((0, 'foo'), 42)}]
    """
    if kwargs:
        raise _unknown_keywords(kwargs)
    try:
        if is_leaf is not None:
            _no_composites_with_is_leaf(expand_composites)
            return _map_with_is_leaf(func, structures, is_leaf, check_types, with_path=True)
        if expand_composites:
            _refuse_composites("map_structure_with_path", structures)
        return _map_path(func, *structures, check_types=check_types)
    except StopIteration as e:
        raise _stopped(e) from e


def map_structure_with_tuple_paths(
    func: Callable[..., Any],
    *structures: Any,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    **kwargs: Any,
) -> Any:
    """tf.nest's name for :func:`map_structure_with_path`.

    >>> import nestlib
    >>> nestlib.map_structure_with_tuple_paths(lambda p, x: p, {"a": [5]})
    {'a': [('a', 0)]}
    """
    return map_structure_with_path(
        func,
        *structures,
        check_types=check_types,
        expand_composites=expand_composites,
        is_leaf=is_leaf,
        **kwargs,
    )


def map_structure_with_paths(
    func: Callable[..., Any],
    *structures: Any,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    **kwargs: Any,
) -> Any:
    """Like :func:`map_structure_with_path` with paths joined by ``/``.

    >>> import nestlib
    >>> nestlib.map_structure_with_paths(lambda p, x: p, {"a": [5, 6]})
    {'a': ['a/0', 'a/1']}
    """
    return map_structure_with_path(
        lambda p, *xs: func("/".join(map(str, p)), *xs),
        *structures,
        check_types=check_types,
        expand_composites=expand_composites,
        is_leaf=is_leaf,
        **kwargs,
    )


def flatten_with_path(
    structure: Any, expand_composites: bool = False, is_leaf: IsLeaf | None = None
) -> list[tuple[tuple[Any, ...], Any]]:
    """Returns ``(path, leaf)`` pairs in flatten order.

    >>> import nestlib
    >>> nestlib.flatten_with_path([{"foo": 42}, "x"])
    [((0, 'foo'), 42), ((1,), 'x')]
    """
    try:
        if is_leaf is not None:
            _no_composites_with_is_leaf(expand_composites)
            return W.flatten_with_path_up_to(W.prefix_of(structure, is_leaf), structure, False)
        if expand_composites:
            _refuse_composites("flatten_with_path", (structure,))
        return _paths(structure)
    except StopIteration as e:
        raise _stopped(e) from e


def flatten_with_tuple_paths(
    structure: Any, expand_composites: bool = False, is_leaf: IsLeaf | None = None
) -> list[tuple[tuple[Any, ...], Any]]:
    """tf.nest's name for :func:`flatten_with_path`.

    >>> import nestlib
    >>> nestlib.flatten_with_tuple_paths({"a": (1, 2)})
    [(('a', 0), 1), (('a', 1), 2)]
    """
    return flatten_with_path(structure, expand_composites, is_leaf)


def flatten_with_joined_string_paths(
    structure: Any,
    separator: str = "/",
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
) -> list[tuple[str, Any]]:
    """``(path, leaf)`` pairs with each path joined by ``separator``.

    >>> import nestlib
    >>> nestlib.flatten_with_joined_string_paths({"a": {"b": 1}, "c": [2]})
    [('a/b', 1), ('c/0', 2)]
    >>> nestlib.flatten_with_joined_string_paths({"a": {"b": 1}}, separator=".")
    [('a.b', 1)]
    """
    return [
        (separator.join(map(str, p)), v)
        for p, v in flatten_with_path(structure, expand_composites, is_leaf)
    ]


def yield_flat_paths(
    structure: Any = _NO,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    nest: Any = _NO,
) -> Iterator[tuple[Any, ...]]:
    """Yields the path of every leaf, in flatten order.

    >>> import nestlib
    >>> list(nestlib.yield_flat_paths({"a": [1, 2], "b": 3}))
    [('a', 0), ('a', 1), ('b',)]
    """
    structure = _one("yield_flat_paths", "structure", structure, "nest", nest)
    return iter([p for p, _ in flatten_with_path(structure, expand_composites, is_leaf)])


def traverse_with_path(
    fn: Callable[[tuple[Any, ...], Any], Any],
    structure: Any,
    top_down: bool = True,
    is_leaf: IsLeaf | None = None,
) -> Any:
    """Like :func:`traverse`, calling ``fn(path, subtree)``.

    >>> import nestlib
    >>> seen = []
    >>> _ = nestlib.traverse_with_path(lambda p, x: seen.append(p), {"a": [1]})
    >>> seen
    [(), ('a',), ('a', 0)]
    """
    try:
        return W.traverse_with_path(fn, structure, top_down, is_leaf)
    except StopIteration as e:
        raise _stopped(e) from e


def format_path(path: Sequence[Any], structure: Any = None) -> str:
    """Renders a path (a tuple of keys, as from :func:`flatten_with_path`) as error messages do.

    Mapping keys and indices show as ``['key']`` and ``[0]``. Given the
    ``structure`` the path leads into, the fields of namedtuples, attrs classes
    and registered nodes show as ``.name``; where the path leaves the structure
    (or without one), keys show as plain keys. The empty path is
    ``the top level``; long keys and paths are shortened.

    >>> import collections, nestlib
    >>> State = collections.namedtuple("State", "hidden cell")
    >>> nest = {"core": State(hidden=1, cell=[2, 3])}
    >>> nestlib.format_path(("core", "cell", 1), nest)
    "['core'].cell[1]"
    >>> nestlib.format_path(("core", "cell", 1))
    "['core']['cell'][1]"
    >>> nestlib.format_path(())
    'the top level'
    """
    if isinstance(path, (str, bytes)) or not isinstance(path, Sequence):
        raise TypeError(
            "format_path: path must be a tuple or list of keys (as from flatten_with_path), "
            f"got {type(path).__name__} {E.short_repr(path)}"
        )
    return E.format_tuple_path(tuple(path), structure)


# --------------------------------------------------------------------------
# shallow structures (the *_up_to family)
# --------------------------------------------------------------------------


def assert_shallow_structure(
    shallow_tree: Any, input_tree: Any, check_types: bool = True, expand_composites: bool = False
) -> None:
    """Raises unless ``shallow_tree`` is a prefix of ``input_tree``.

    Every node of ``shallow_tree`` must be matched by a node of ``input_tree``
    with the same length and keys; a leaf of ``shallow_tree`` may match a
    whole subtree.

    >>> import nestlib
    >>> nestlib.assert_shallow_structure([None, None], [1, [2, 3]])
    >>> nestlib.assert_shallow_structure({"a": None, "b": None}, {"a": 1, "c": 2})
    Traceback (most recent call last):
      ...
    ValueError: shallow structure has key 'b' at the top level which the input lacks: dict with keys ['a', 'b'] vs dict with keys ['a', 'c']
    """
    try:
        if expand_composites:
            _refuse_composites("assert_shallow_structure", (shallow_tree, input_tree))
        W.assert_shallow_structure(shallow_tree, input_tree, check_types)
    except StopIteration as e:
        raise _stopped(e) from e


def flatten_up_to(
    shallow_structure: Any = _NO,
    input_structure: Any = _NO,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    shallow_tree: Any = _NO,
    input_tree: Any = _NO,
) -> list[Any]:
    """Flattens ``input_structure`` only as deep as ``shallow_structure``.

    >>> import nestlib
    >>> nestlib.flatten_up_to([None, [None, None]], [[1, 1], [2, 2]])
    [[1, 1], 2, 2]
    """
    return _flatten_up_to(
        "flatten_up_to",
        _up_to,
        shallow_structure,
        input_structure,
        check_types,
        expand_composites,
        is_leaf,
        shallow_tree,
        input_tree,
    )


def flatten_with_path_up_to(
    shallow_structure: Any = _NO,
    input_structure: Any = _NO,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    shallow_tree: Any = _NO,
    input_tree: Any = _NO,
) -> list[tuple[tuple[Any, ...], Any]]:
    """Like :func:`flatten_up_to`, returning ``(path, value)`` pairs.

    >>> import nestlib
    >>> nestlib.flatten_with_path_up_to({"a": None}, {"a": [1, 2]})
    [(('a',), [1, 2])]
    """
    return _flatten_up_to(
        "flatten_with_path_up_to",
        _paths_up_to,
        shallow_structure,
        input_structure,
        check_types,
        expand_composites,
        is_leaf,
        shallow_tree,
        input_tree,
    )


def flatten_with_tuple_paths_up_to(
    shallow_tree: Any,
    input_tree: Any,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
) -> list[tuple[tuple[Any, ...], Any]]:
    """tf.nest's name for :func:`flatten_with_path_up_to`.

    Its arguments are named ``shallow_tree`` and ``input_tree`` as in tf.nest.

    >>> import nestlib
    >>> nestlib.flatten_with_tuple_paths_up_to(shallow_tree=[0, 0], input_tree=[1, (2, 3)])
    [((0,), 1), ((1,), (2, 3))]
    """
    return flatten_with_path_up_to(
        shallow_tree, input_tree, check_types, expand_composites, is_leaf
    )


def map_structure_up_to(
    shallow_structure: Any = _NO,
    func: Callable[..., Any] = _NO,
    *structures: Any,
    check_types: bool = False,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    shallow_tree: Any = _NO,
    **kwargs: Any,
) -> Any:
    """Maps ``func`` over ``structures`` down to the leaves of ``shallow_structure``.

    Deeper parts of ``structures`` are passed to ``func`` whole. As in
    dm-tree, each node of ``shallow_structure`` *selects* the children of the
    inputs with the same keys (mapping keys, field names, indices): inputs
    may have more keys or items, which are left out, and node types are not
    compared. A key the shallow structure names but an input lacks raises
    ``ValueError`` naming the path. With ``check_types=True`` the inputs
    must match exactly, as in tf.nest (see :func:`assert_shallow_structure`).

    >>> import nestlib
    >>> nestlib.map_structure_up_to([None, None], len, [[1, 1], [2, 2, 2]])
    [2, 3]
    >>> nestlib.map_structure_up_to({"a": None}, lambda x, y: x + y, {"a": 1, "b": 2}, {"a": 10})
    {'a': 11}
    """
    if kwargs:
        raise _unknown_keywords(kwargs)
    shallow = _one(
        "map_structure_up_to", "shallow_structure", shallow_structure, "shallow_tree", shallow_tree
    )
    try:
        return _map_up_to(
            "map_structure_up_to",
            shallow,
            func,
            structures,
            check_types,
            expand_composites,
            is_leaf,
            with_path=False,
        )
    except StopIteration as e:
        raise _stopped(e) from e


def map_structure_with_path_up_to(
    shallow_structure: Any = _NO,
    func: Callable[..., Any] = _NO,
    *structures: Any,
    check_types: bool = False,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    shallow_tree: Any = _NO,
    **kwargs: Any,
) -> Any:
    """Like :func:`map_structure_up_to`, calling ``func(path, *values)``.

    >>> import nestlib
    >>> nestlib.map_structure_with_path_up_to({"a": None}, lambda p, v: (p, v), {"a": [1]})
    {'a': (('a',), [1])}
    """
    if kwargs:
        raise _unknown_keywords(kwargs)
    shallow = _one(
        "map_structure_with_path_up_to",
        "shallow_structure",
        shallow_structure,
        "shallow_tree",
        shallow_tree,
    )
    try:
        return _map_up_to(
            "map_structure_with_path_up_to",
            shallow,
            func,
            structures,
            check_types,
            expand_composites,
            is_leaf,
            with_path=True,
        )
    except StopIteration as e:
        raise _stopped(e) from e


def map_structure_with_tuple_paths_up_to(
    shallow_tree: Any,
    func: Callable[..., Any],
    *inputs: Any,
    check_types: bool = True,
    expand_composites: bool = False,
    is_leaf: IsLeaf | None = None,
    **kwargs: Any,
) -> Any:
    """tf.nest's name for :func:`map_structure_with_path_up_to`.

    As in tf.nest, ``check_types`` defaults to True here: every node of the
    inputs must match ``shallow_tree``'s (see :func:`assert_shallow_structure`).

    >>> import nestlib
    >>> nestlib.map_structure_with_tuple_paths_up_to(
    ...     [0, 0], lambda path, x: (path, x), [1, {"b": 2}])
    [((0,), 1), ((1,), {'b': 2})]
    """
    if kwargs:
        raise _unknown_keywords(kwargs)
    try:
        return _map_up_to(
            "map_structure_with_tuple_paths_up_to",
            shallow_tree,
            func,
            inputs,
            check_types,
            expand_composites,
            is_leaf,
            with_path=True,
        )
    except StopIteration as e:
        raise _stopped(e) from e


def get_traverse_shallow_structure(
    traverse_fn: Callable[[Any], Any], structure: Any, expand_composites: bool = False
) -> Any:
    """A shallow structure of bools: where ``traverse_fn`` says to descend.

    ``traverse_fn(subtree)`` returns True (descend; keep a leaf), False (stop
    here), or for a node a structure of bools one level deep saying which
    children to descend into. The result is a prefix of ``structure``, for
    the ``*_up_to`` functions (tf.nest's semantics).

    >>> import nestlib
    >>> nestlib.get_traverse_shallow_structure(
    ...     lambda x: not isinstance(x, tuple), [1, (2, 3), [4]])
    [True, False, [True]]
    """
    try:
        return TF.get_traverse_shallow_structure(traverse_fn, structure, expand_composites)
    except StopIteration as e:
        raise _stopped(e) from e


# --------------------------------------------------------------------------
# tf.nest's predicates and helpers
# --------------------------------------------------------------------------


def flatten_dict_items(dictionary: Any) -> dict[Any, Any]:
    """A dict whose items are those of ``dictionary`` with nested keys unpacked.

    A key that is a structure is flattened and zipped with its value,
    flattened the same way (as ``tf.nest.flatten_dict_items``).

    >>> import nestlib
    >>> nestlib.flatten_dict_items({("a", ("b",)): (1, (2,)), "c": 3})
    {'a': 1, 'b': 2, 'c': 3}

    Raises:
      TypeError: ``dictionary`` is not a mapping.
      ValueError: a key and its value flatten to different numbers of leaves,
        or two keys would be the same.
    """
    try:
        return TF.flatten_dict_items(dictionary)
    except StopIteration as e:
        raise _stopped(e) from e


def is_namedtuple(instance: Any, strict: bool = False) -> bool:
    """True if ``instance`` is a namedtuple (a tuple whose type has string ``_fields``).

    With ``strict=True`` only a plain namedtuple counts: one whose type
    derives from ``tuple`` directly, not a subclass of a namedtuple.

    >>> import collections, nestlib
    >>> P = collections.namedtuple("P", "x y")
    >>> class Q(P):
    ...     pass
    >>> nestlib.is_namedtuple(P(1, 2)), nestlib.is_namedtuple((1, 2))
    (True, False)
    >>> nestlib.is_namedtuple(Q(1, 2)), nestlib.is_namedtuple(Q(1, 2), strict=True)
    (True, False)
    """
    return TF.is_namedtuple(instance, strict)


def same_namedtuples(nest1: Any, nest2: Any) -> bool:
    """True if two namedtuples have the same type name and the same fields.

    >>> import collections, nestlib
    >>> A = collections.namedtuple("A", "x y")
    >>> B = collections.namedtuple("A", "x y")
    >>> nestlib.same_namedtuples(A(1, 2), B(3, 4))
    True
    >>> nestlib.same_namedtuples(A(1, 2), collections.namedtuple("A", "y x")(1, 2))
    False
    """
    return TF.same_namedtuples(nest1, nest2)


def is_mapping(obj: Any) -> bool:
    """True if ``obj`` is a ``collections.abc.Mapping``.

    >>> import nestlib
    >>> nestlib.is_mapping({}), nestlib.is_mapping([])
    (True, False)
    """
    return TF.is_mapping(obj)


def is_attrs(obj: Any) -> bool:
    """True if ``obj`` is an instance of an ``attrs`` class.

    >>> import nestlib
    >>> nestlib.is_attrs(object())
    False
    """
    return TF.is_attrs(obj)


def is_nested_or_composite(seq: Any) -> bool:
    """True if ``seq`` is a node, or a composite tensor (``tf.SparseTensor``, ...).

    Never imports TensorFlow: without it loaded nothing can be a composite.

    >>> import nestlib
    >>> nestlib.is_nested_or_composite([1]), nestlib.is_nested_or_composite(1)
    (True, False)
    """
    return TF.is_nested_or_composite(seq)


def is_sequence_or_composite(seq: Any) -> bool:
    """tf.nest's older name for :func:`is_nested_or_composite`.

    >>> import nestlib
    >>> nestlib.is_sequence_or_composite((1,))
    True
    """
    return TF.is_nested_or_composite(seq)


# --------------------------------------------------------------------------
# specs
# --------------------------------------------------------------------------


def spec_of(structure: Any, is_leaf: IsLeaf | None = None) -> Spec:
    """Compiles the structure of ``structure`` into a reusable :class:`Spec`.

    With ``is_leaf``, every subtree for which it returns True is one leaf of
    the Spec: its ``flatten`` then returns those subtrees whole.

    >>> import nestlib
    >>> spec = nestlib.spec_of({"b": [1, 2], "a": None})
    >>> spec.num_leaves
    3
    >>> spec.unflatten(["x", "y", "z"])
    {'b': ['y', 'z'], 'a': 'x'}
    >>> pairs = nestlib.spec_of([(1, 2), (3, 4)], is_leaf=lambda x: isinstance(x, tuple))
    >>> pairs.num_leaves, pairs.flatten([(5, 6), "any subtree"])
    (2, [(5, 6), 'any subtree'])
    """
    try:
        if is_leaf is None:
            return _spec_of(structure)
        return S.spec_of(structure, is_leaf)
    except StopIteration as e:
        raise _stopped(e) from e


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------


def register_node(
    cls: type,
    flatten_fn: Callable[[Any], tuple[Any, ...]],
    unflatten_fn: Callable[[Any, Any], Any],
    *,
    flatten_with_keys_fn: Callable[[Any], tuple[Any, ...]] | None = None,
) -> None:
    """Makes instances of ``cls`` nodes of every nestlib function.

    ``flatten_fn(obj)`` returns ``(children, metadata)``: the children (a tuple
    or list) are walked into, ``metadata`` is static and part of the
    structure (two instances whose metadata differ are different structures).
    ``unflatten_fn(metadata, children)`` rebuilds an instance. With
    ``flatten_with_keys_fn(obj) -> (((key, child), ...), metadata)`` the
    path functions use those keys instead of the children's indices.
    Exactly ``cls`` is registered, not its subclasses (as in jax and optree).

    >>> import nestlib
    >>> class Point:
    ...     def __init__(self, x, y, unit="m"):
    ...         self.x, self.y, self.unit = x, y, unit
    ...     def __repr__(self):
    ...         return f"Point({self.x}, {self.y}, {self.unit!r})"
    >>> nestlib.register_node(
    ...     Point, lambda p: ((p.x, p.y), p.unit), lambda unit, xy: Point(*xy, unit),
    ...     flatten_with_keys_fn=lambda p: ((("x", p.x), ("y", p.y)), p.unit))
    >>> nestlib.flatten({"a": Point(1, 2), "b": 3})
    [1, 2, 3]
    >>> nestlib.map_structure(lambda v: v * 10, [Point(1, 2, "cm")])
    [Point(10, 20, 'cm')]
    >>> nestlib.flatten_with_path(Point(1, 2))
    [(('x',), 1), (('y',), 2)]
    >>> nestlib.unregister_node(Point)

    Raises:
      TypeError: ``cls`` is not a class, or a function is not callable.
      ValueError: ``cls`` is a built-in node type (list, tuple, dict, ...) or
        is registered already.
    """
    R.register_node(cls, flatten_fn, unflatten_fn, flatten_with_keys_fn=flatten_with_keys_fn)


def register_dataclass(
    cls: type | None = None,
    *,
    data_fields: Sequence[str] | None = None,
    meta_fields: Sequence[str] | None = None,
) -> Any:
    """Registers a dataclass as a node: its data fields are children, keyed by name.

    ``meta_fields`` are static metadata (compared, not walked into); the
    data fields default to every other ``__init__`` field. Together they must
    be exactly the fields ``__init__`` takes, since rebuilding calls
    ``cls(**fields)``. Usable as ``@register_dataclass`` and
    ``@register_dataclass(meta_fields=[...])``; returns the class.
    Unregistered dataclasses stay leaves, as in dm-tree and tf.nest.

    >>> import dataclasses, nestlib
    >>> @nestlib.register_dataclass(meta_fields=["name"])
    ... @dataclasses.dataclass
    ... class Layer:
    ...     w: float
    ...     b: float
    ...     name: str = "dense"
    >>> nestlib.flatten_with_path([Layer(1.0, 2.0)])
    [((0, 'w'), 1.0), ((0, 'b'), 2.0)]
    >>> nestlib.map_structure(lambda v: v + 1, Layer(1.0, 2.0, "out"))
    Layer(w=2.0, b=3.0, name='out')
    >>> nestlib.unregister_node(Layer)

    Raises:
      TypeError: ``cls`` is not a dataclass.
      ValueError: the fields given are not exactly ``__init__``'s fields, or
        ``cls`` is registered already.
    """
    return R.register_dataclass(cls, data_fields=data_fields, meta_fields=meta_fields)


def unregister_node(cls: type) -> None:
    """Undoes ``register_node`` / ``register_dataclass``: ``cls`` follows the default rules again.

    >>> import dataclasses, nestlib
    >>> @nestlib.register_dataclass
    ... @dataclasses.dataclass
    ... class Pair:
    ...     a: int
    ...     b: int
    >>> nestlib.flatten(Pair(1, 2))
    [1, 2]
    >>> nestlib.unregister_node(Pair)
    >>> nestlib.flatten(Pair(1, 2))
    [Pair(a=1, b=2)]

    Raises:
      ValueError: ``cls`` is not registered.
    """
    R.unregister_node(cls)


def backend() -> str:
    """Names the active backend: ``"native"``, ``"dm-tree"`` or ``"python"``.

    Chosen at import from the environment variable ``NESTLIB_BACKEND``. The
    default is ``"native"`` (nestlib's own compiled core, built by ``pip
    install``); without it, ``"dm-tree"`` when dm-tree is installed, else
    ``"python"``, with one warning.

    >>> import nestlib
    >>> nestlib.backend() in ("native", "dm-tree", "python")
    True
    """
    return _name


# nestlib only rearranges containers: AutoGraph must call these as they are
# (converting them would be slow, and would turn their argument checks into
# graph conditionals).
for _fn in list(globals().values()):
    if callable(_fn) and getattr(_fn, "__module__", None) == __name__ and not isinstance(_fn, type):
        S.mark_not_for_autograph(_fn)
del _fn
