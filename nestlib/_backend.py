"""Picks the implementation of the public API, once, at import.

Two backends share every line of semantics and error reporting in
``_walk``; they differ only in who does the fast, error-free case:

* ``"dm-tree"``: dm-tree's compiled ``flatten`` and ``is_sequence``
  (not its ``assert_same_structure``, which can crash on hostile mappings
  and is slower than nestlib's). Whenever one of them raises (a mismatch, a
  structure too deep, an object dm-tree cannot handle), the call is redone by
  the Python code, which raises nestlib's own path-bearing error; so results
  and exceptions are the same as with the Python backend.
* ``"python"``: pure Python, no compiled dependency.

``NESTLIB_BACKEND=dm-tree|python`` chooses; the default is dm-tree when it
imports. ``api(name)`` builds the namespace for either (tests use it to run
the whole suite against both).
"""

from __future__ import annotations

import os
import types
from typing import Any, Callable

from . import _composites as C
from . import _docs
from . import _spec as S
from . import _walk as W

BACKENDS = ("dm-tree", "python")
ENV_VAR = "NESTLIB_BACKEND"


def _python_core() -> dict[str, Callable]:
    py_flatten = W.flatten

    def flatten(structure: Any, expand_composites: bool = False) -> list:
        if expand_composites:
            return C.flatten(structure)
        return py_flatten(structure)

    return {"flatten": flatten, "is_nested": W.is_nested,
            "assert_same_structure": W.assert_same_structure}


def _dm_tree_core() -> dict[str, Callable]:
    from tree import _tree  # compiled part of dm-tree

    tree_flatten = _tree.flatten
    tree_is_sequence = _tree.is_sequence
    py_flatten = W.flatten
    py_is_nested = W.is_nested
    py_same = W.assert_same_structure

    def flatten(structure: Any, expand_composites: bool = False) -> list:
        if expand_composites:
            return C.flatten(structure)
        try:
            return tree_flatten(structure)
        except Exception:  # redo in Python: our semantics and our error
            return py_flatten(structure)

    def is_nested(structure: Any) -> bool:
        try:
            return tree_is_sequence(structure)
        except Exception:
            return py_is_nested(structure)

    # dm-tree's compiled assert_same_structure is not used: it crashes the
    # interpreter (SIGSEGV) on a Mapping whose __iter__ or __len__ raises, and
    # it is slower than nestlib's own check anyway.
    return {"flatten": flatten, "is_nested": is_nested,
            "assert_same_structure": py_same}


def _build(name: str) -> types.SimpleNamespace:
    if name == "dm-tree":
        core = _dm_tree_core()
    elif name == "python":
        core = _python_core()
    else:
        raise ValueError(f"unknown nestlib backend {name!r}; expected one of {BACKENDS}")
    core_flatten = core["flatten"]
    core_same = core["assert_same_structure"]
    mapper = W.make_map_structure(core_flatten, core_same)
    path_mapper = W.make_map_structure_with_path(core_same)

    flatten = core_flatten  # takes expand_composites itself: one frame per call

    def assert_same_structure(a: Any, b: Any, check_types: bool = True,
                              expand_composites: bool = False) -> None:
        if expand_composites:
            return C.assert_same(a, b, check_types)
        return core_same(a, b, check_types)

    def map_structure(func: Callable, *structures: Any, check_types: bool = True,
                      expand_composites: bool = False) -> Any:
        if expand_composites:
            W._check_func(func, structures)
            return C.map_structure(func, *structures, check_types=check_types)
        return mapper(func, *structures, check_types=check_types)

    def pack_sequence_as(structure: Any, flat_sequence: Any,
                         expand_composites: bool = False) -> Any:
        if expand_composites:
            return C.pack(structure, flat_sequence)
        return W.unflatten_as(structure, flat_sequence)

    def map_structure_with_path(func: Callable, *structures: Any,
                                check_types: bool = True) -> Any:
        return path_mapper(func, *structures, check_types=check_types)

    def map_structure_with_paths(func: Callable, *structures: Any,
                                 check_types: bool = True) -> Any:
        return path_mapper(lambda p, *xs: func("/".join(map(str, p)), *xs),
                           *structures, check_types=check_types)

    def flatten_with_joined_string_paths(structure: Any, separator: str = "/") -> list:
        return [(separator.join(map(str, p)), v) for p, v in W.flatten_with_path(structure)]

    def unflatten_as(structure: Any, flat_sequence: Any) -> Any:
        return W.unflatten_as(structure, flat_sequence)

    def map_structure_with_tuple_paths(func: Callable, *structures: Any,
                                       check_types: bool = True) -> Any:
        return path_mapper(func, *structures, check_types=check_types)

    def flatten_with_tuple_paths(structure: Any) -> list:
        return W.flatten_with_path(structure)

    def backend() -> str:
        return name

    fns: dict[str, Any] = {
        "is_nested": core["is_nested"],
        "flatten": flatten,
        "unflatten_as": unflatten_as,
        "pack_sequence_as": pack_sequence_as,
        "map_structure": map_structure,
        "map_structure_with_path": map_structure_with_path,
        "map_structure_with_tuple_paths": map_structure_with_tuple_paths,
        "map_structure_with_paths": map_structure_with_paths,
        "flatten_with_path": W.flatten_with_path,
        "flatten_with_tuple_paths": flatten_with_tuple_paths,
        "flatten_with_joined_string_paths": flatten_with_joined_string_paths,
        "yield_flat_paths": W.yield_flat_paths,
        "assert_same_structure": assert_same_structure,
        "assert_shallow_structure": W.assert_shallow_structure,
        "flatten_up_to": W.flatten_up_to,
        "flatten_with_path_up_to": W.flatten_with_path_up_to,
        "map_structure_up_to": W.map_structure_up_to,
        "map_structure_with_path_up_to": W.map_structure_with_path_up_to,
        "traverse": W.traverse,
        "traverse_with_path": W.traverse_with_path,
        "list_to_tuple": W.list_to_tuple,
        "spec_of": S.spec_of,
        "Spec": S.Spec,
        "MAP_TO_NONE": W.MAP_TO_NONE,
        "MAX_DEPTH": W.MAX_DEPTH,
        "backend": backend,
    }
    for fname, fn in fns.items():
        if isinstance(fn, types.FunctionType) and fn.__module__ == __name__:
            fn.__name__ = fn.__qualname__ = fname
    _docs.attach(fns)
    return types.SimpleNamespace(**fns)


_built: dict[str, types.SimpleNamespace] = {}


def api(name: str) -> types.SimpleNamespace:
    """The public API implemented by backend ``name`` (built once)."""
    if name not in _built:
        _built[name] = _build(name)
    return _built[name]


def default_name() -> str:
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested:
        if requested not in BACKENDS:
            raise ValueError(f"{ENV_VAR}={requested!r} is not a nestlib backend; "
                             f"expected one of {', '.join(BACKENDS)}")
        if requested == "dm-tree":
            try:
                import tree._tree  # noqa: F401
            except ImportError as e:
                raise ImportError(f"{ENV_VAR}=dm-tree but dm-tree cannot be imported "
                                  f"({e}); install dm-tree or use {ENV_VAR}=python") from e
        return requested
    try:
        import tree._tree  # noqa: F401
    except ImportError:
        return "python"
    return "dm-tree"
