"""Picks the implementation of the public API, once, at import.

The backends share every line of semantics and error reporting in
``_walk``; they differ only in who does the fast, error-free case:

* ``"native"``: nestlib's own compiled core (``_cnest.c``, see ``_native``)
  for flatten, pack, map, paths, flatten_up_to, assert_same_structure and
  Specs; any call it cannot finish is redone by the Python code, so results
  and exceptions are the Python backend's. It never imports dm-tree.
* ``"dm-tree"``: dm-tree's compiled ``flatten`` and ``is_sequence``
  (not its ``assert_same_structure``, which can crash on hostile mappings
  and is slower than nestlib's). Whenever one of them raises (a mismatch, a
  structure too deep, an object dm-tree cannot handle), the call is redone by
  the Python code, which raises nestlib's own path-bearing error; so results
  and exceptions are the same as with the Python backend.
* ``"python"``: pure Python, no compiled dependency.

``NESTLIB_BACKEND=native|dm-tree|python`` chooses; the default is native when
the extension imports, else dm-tree (with one warning saying why), else
python. ``api(name)`` builds the namespace for any of them (tests use it to
run the whole suite against each).
"""

from __future__ import annotations

import os
import types
import warnings
from typing import Any, Callable

from . import _composites as C
from . import _docs
from . import _nodes as N
from . import _spec as S
from . import _walk as W

BACKENDS = ("native", "dm-tree", "python")
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
    py_flatten = W.flatten
    py_same = W.assert_same_structure

    kind_get = N.KINDS.get
    classify = N.classify

    def flatten(structure: Any, expand_composites: bool = False) -> list:
        if expand_composites:
            return C.flatten(structure)
        try:
            leaves = tree_flatten(structure)
        except Exception:  # redo in Python: our semantics and our error
            return py_flatten(structure)
        # dm-tree knows no registered or TF-protocol nodes: it leaves them as leaves
        for t in set(map(type, leaves)):
            k = kind_get(t)
            if k != N.LEAF and (k == N.CUSTOM or k is None and any(
                    classify(x) == N.CUSTOM for x in leaves if type(x) is t)):
                return py_flatten(structure)
        return leaves

    # dm-tree's compiled assert_same_structure is not used: it crashes the
    # interpreter (SIGSEGV) on a Mapping whose __iter__ or __len__ raises, and
    # it is slower than nestlib's own check anyway.
    # is_nested is a lookup in the kind cache: as fast as dm-tree's, and it
    # knows the registered and TF-protocol nodes.
    return {"flatten": flatten, "is_nested": W.is_nested,
            "assert_same_structure": py_same}


def _native_core() -> dict[str, Callable]:
    from . import _native  # ImportError when the extension was not built

    return _native.core()


# Public functions a backend's core may replace as they are (the others are
# wrapped above, for expand_composites).
_CORE_OVERRIDABLE = ("flatten_with_path", "flatten_up_to", "flatten_with_path_up_to",
                     "map_structure_up_to", "map_structure_with_path_up_to", "spec_of")


def _build(name: str) -> types.SimpleNamespace:
    if name == "native":
        core = _native_core()
    elif name == "dm-tree":
        core = _dm_tree_core()
    elif name == "python":
        core = _python_core()
    else:
        raise ValueError(f"unknown nestlib backend {name!r}; expected one of {BACKENDS}")
    core_flatten = core["flatten"]
    core_same = core["assert_same_structure"]
    mapper = core.get("map_structure") or W.make_map_structure(core_flatten, core_same)
    path_mapper = (core.get("map_structure_with_path")
                   or W.make_map_structure_with_path(core_same))
    core_unflatten = core.get("unflatten_as", W.unflatten_as)
    core_paths = core.get("flatten_with_path", W.flatten_with_path)

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
        return core_unflatten(structure, flat_sequence)

    def map_structure_with_path(func: Callable, *structures: Any,
                                check_types: bool = True) -> Any:
        return path_mapper(func, *structures, check_types=check_types)

    def map_structure_with_paths(func: Callable, *structures: Any,
                                 check_types: bool = True) -> Any:
        return path_mapper(lambda p, *xs: func("/".join(map(str, p)), *xs),
                           *structures, check_types=check_types)

    def flatten_with_joined_string_paths(structure: Any, separator: str = "/") -> list:
        return [(separator.join(map(str, p)), v) for p, v in core_paths(structure)]

    def unflatten_as(structure: Any, flat_sequence: Any) -> Any:
        return core_unflatten(structure, flat_sequence)

    def map_structure_with_tuple_paths(func: Callable, *structures: Any,
                                       check_types: bool = True) -> Any:
        return path_mapper(func, *structures, check_types=check_types)

    def flatten_with_tuple_paths(structure: Any) -> list:
        return core_paths(structure)

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
    for fname in _CORE_OVERRIDABLE:  # what a compiled core provides itself
        if fname in core:
            fns[fname] = core[fname]
    for fname, fn in fns.items():
        if isinstance(fn, types.FunctionType) and fn.__module__ == __name__:
            fn.__name__ = fn.__qualname__ = fname
    _docs.attach(fns)
    for fn in fns.values():
        if isinstance(fn, types.FunctionType):
            S.mark_not_for_autograph(fn)
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
        if requested == "native":
            try:
                _native_core()
            except ImportError as e:
                raise ImportError(f"{ENV_VAR}=native but nestlib's compiled core cannot be "
                                  f"imported ({e}); reinstall nestlib where a C compiler is "
                                  f"available or use {ENV_VAR}=dm-tree|python") from e
        if requested == "dm-tree":
            try:
                import tree._tree  # noqa: F401
            except ImportError as e:
                raise ImportError(f"{ENV_VAR}=dm-tree but dm-tree cannot be imported "
                                  f"({e}); install dm-tree or use {ENV_VAR}=python") from e
        return requested
    try:
        _native_core()
        return "native"
    except Exception as e:  # missing or broken extension: fall back, with one warning
        problem = f"{type(e).__name__}: {e}"
    try:
        import tree._tree  # noqa: F401
        fallback = "dm-tree"
    except ImportError:
        fallback = "python"
    warnings.warn(f"nestlib's compiled core is not available ({problem}); using the "
                  f"{fallback} backend", RuntimeWarning, stacklevel=3)
    return fallback
