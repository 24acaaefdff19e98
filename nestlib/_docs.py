'''Docstrings of the public API, attached to whichever backend is active.

The examples are doctests: ``make test`` runs every one of them.
'''

from __future__ import annotations

from typing import Any

DOCS: dict[str, str] = {}


def _doc(name: str, text: str) -> None:
    DOCS[name] = text


_doc("is_nested", """Returns True if ``structure`` is a node (a container nestlib descends into).

    Lists, tuples, namedtuples, mappings, attrs classes, other
    ``collections.abc.Sequence`` types and ``wrapt.ObjectProxy`` around any of
    these are nodes; ``str``, ``bytes``, ``bytearray``, sets, numpy arrays and
    ``None`` are leaves.

    >>> import nestlib
    >>> nestlib.is_nested([1, 2]), nestlib.is_nested("ab"), nestlib.is_nested(None)
    (True, False, False)
    """)

_doc("flatten", """Returns the leaves of ``structure`` as a list, in a fixed order.

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
    """)

_doc("unflatten_as", """Packs ``flat_sequence`` into the shape of ``structure``.

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
    """)

_doc("pack_sequence_as", """tf.nest's name for :func:`unflatten_as`, with ``expand_composites``.

    >>> import nestlib
    >>> nestlib.pack_sequence_as((0, [0]), ["a", "b"])
    ('a', ['b'])
    """)

_doc("map_structure", """Applies ``func`` to corresponding leaves of ``structures``.

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
    """)

_doc("map_structure_with_path", """Like :func:`map_structure`, calling ``func(path, *leaves)``.

    A path is the tuple of keys from the root: indices for sequences, keys for
    mappings and field names for namedtuples and attrs classes.

    >>> import nestlib
    >>> nestlib.map_structure_with_path(lambda p, x: (p, x), [{"foo": 42}])
    [{'foo': ((0, 'foo'), 42)}]
    """)

_doc("map_structure_with_tuple_paths", """tf.nest's name for :func:`map_structure_with_path`.

    >>> import nestlib
    >>> nestlib.map_structure_with_tuple_paths(lambda p, x: p, {"a": [5]})
    {'a': [('a', 0)]}
    """)

_doc("map_structure_with_paths", """Like :func:`map_structure_with_path` with paths joined by ``/``.

    >>> import nestlib
    >>> nestlib.map_structure_with_paths(lambda p, x: p, {"a": [5, 6]})
    {'a': ['a/0', 'a/1']}
    """)

_doc("flatten_with_path", """Returns ``(path, leaf)`` pairs in flatten order.

    >>> import nestlib
    >>> nestlib.flatten_with_path([{"foo": 42}, "x"])
    [((0, 'foo'), 42), ((1,), 'x')]
    """)

_doc("flatten_with_tuple_paths", """tf.nest's name for :func:`flatten_with_path`.

    >>> import nestlib
    >>> nestlib.flatten_with_tuple_paths({"a": (1, 2)})
    [(('a', 0), 1), (('a', 1), 2)]
    """)

_doc("flatten_with_joined_string_paths", """``(path, leaf)`` pairs with each path joined by ``separator``.

    >>> import nestlib
    >>> nestlib.flatten_with_joined_string_paths({"a": {"b": 1}, "c": [2]})
    [('a/b', 1), ('c/0', 2)]
    >>> nestlib.flatten_with_joined_string_paths({"a": {"b": 1}}, separator=".")
    [('a.b', 1)]
    """)

_doc("yield_flat_paths", """Yields the path of every leaf, in flatten order.

    >>> import nestlib
    >>> list(nestlib.yield_flat_paths({"a": [1, 2], "b": 3}))
    [('a', 0), ('a', 1), ('b',)]
    """)

_doc("assert_same_structure", """Raises unless ``a`` and ``b`` have the same layout.

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
    """)

_doc("assert_shallow_structure", """Raises unless ``shallow_tree`` is a prefix of ``input_tree``.

    Every node of ``shallow_tree`` must be matched by a node of ``input_tree``
    with the same length and keys; a leaf of ``shallow_tree`` may match a
    whole subtree.

    >>> import nestlib
    >>> nestlib.assert_shallow_structure([None, None], [1, [2, 3]])
    >>> nestlib.assert_shallow_structure({"a": None, "b": None}, {"a": 1, "c": 2})
    Traceback (most recent call last):
      ...
    ValueError: shallow structure has key 'b' at the top level which the input lacks: dict with keys ['a', 'b'] vs dict with keys ['a', 'c']
    """)

_doc("flatten_up_to", """Flattens ``input_structure`` only as deep as ``shallow_structure``.

    >>> import nestlib
    >>> nestlib.flatten_up_to([None, [None, None]], [[1, 1], [2, 2]])
    [[1, 1], 2, 2]
    """)

_doc("flatten_with_path_up_to", """Like :func:`flatten_up_to`, returning ``(path, value)`` pairs.

    >>> import nestlib
    >>> nestlib.flatten_with_path_up_to({"a": None}, {"a": [1, 2]})
    [(('a',), [1, 2])]
    """)

_doc("flatten_with_tuple_paths_up_to", """tf.nest's name for :func:`flatten_with_path_up_to`.

    Its arguments are named ``shallow_tree`` and ``input_tree`` as in tf.nest.

    >>> import nestlib
    >>> nestlib.flatten_with_tuple_paths_up_to(shallow_tree=[0, 0], input_tree=[1, (2, 3)])
    [((0,), 1), ((1,), (2, 3))]
    """)

_doc("map_structure_with_tuple_paths_up_to", """tf.nest's name for :func:`map_structure_with_path_up_to`.

    As in tf.nest, ``check_types`` defaults to True here: every node of the
    inputs must match ``shallow_tree``'s (see :func:`assert_shallow_structure`).

    >>> import nestlib
    >>> nestlib.map_structure_with_tuple_paths_up_to(
    ...     [0, 0], lambda path, x: (path, x), [1, {"b": 2}])
    [((0,), 1), ((1,), {'b': 2})]
    """)

_doc("map_structure_up_to", """Maps ``func`` over ``structures`` down to the leaves of ``shallow_structure``.

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
    """)

_doc("map_structure_with_path_up_to", """Like :func:`map_structure_up_to`, calling ``func(path, *values)``.

    >>> import nestlib
    >>> nestlib.map_structure_with_path_up_to({"a": None}, lambda p, v: (p, v), {"a": [1]})
    {'a': (('a',), [1])}
    """)

_doc("traverse", """Traverses ``structure`` calling ``fn`` on every subtree.

    Top-down (the default): if ``fn(subtree)`` returns None the traversal
    goes into the subtree; any other value replaces it (return
    :data:`MAP_TO_NONE` to replace it with None). Bottom-up: ``fn`` sees each
    subtree after its children were traversed, and None keeps it.

    >>> import nestlib
    >>> nestlib.traverse(lambda x: x * 10 if isinstance(x, int) else None, [1, (2, 3)])
    [10, (20, 30)]
    >>> nestlib.traverse(lambda x: nestlib.MAP_TO_NONE if x == (2, 3) else None, [1, (2, 3)])
    [1, None]
    """)

_doc("traverse_with_path", """Like :func:`traverse`, calling ``fn(path, subtree)``.

    >>> import nestlib
    >>> seen = []
    >>> _ = nestlib.traverse_with_path(lambda p, x: seen.append(p), {"a": [1]})
    >>> seen
    [(), ('a',), ('a', 0)]
    """)

_doc("list_to_tuple", """Returns ``structure`` with every list replaced by a tuple.

    >>> import nestlib
    >>> nestlib.list_to_tuple({"a": [1, [2]]})
    {'a': (1, (2,))}
    """)

_doc("backend", """Names the active backend: ``"native"``, ``"dm-tree"`` or ``"python"``.

    Chosen at import from the environment variable ``NESTLIB_BACKEND``. The
    default is ``"native"`` (nestlib's own compiled core, built by ``pip
    install``); without it, ``"dm-tree"`` when dm-tree is installed, else
    ``"python"``, with one warning.

    >>> import nestlib
    >>> nestlib.backend() in ("native", "dm-tree", "python")
    True
    """)


def attach(fns: dict[str, Any]) -> None:
    for name, fn in fns.items():
        text = DOCS.get(name)
        if text is not None:
            try:
                fn.__doc__ = text
            except (AttributeError, TypeError):
                pass
