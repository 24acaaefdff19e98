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
import sys
import types
import warnings
from typing import Any, Callable, Iterator

from . import _composites as C
from . import _docs
from . import _errors as E
from . import _registry as R
from . import _tfnest as TF
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


_NO: Any = object()  # an argument not given (each has a dm-tree and a tf.nest name)


def _one(fname: str, name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """The argument given as ``name`` (dm-tree's) or ``alias`` (tf.nest's)."""
    if alias_value is _NO:
        if value is _NO:
            raise TypeError(f"{fname}() missing required argument {name!r} (or {alias!r})")
        return value
    if value is not _NO:
        raise TypeError(f"{fname}() got both {name!r} and {alias!r}, two names of one "
                        f"argument; give one")
    return alias_value


def _unknown_keywords(kwargs: dict) -> ValueError:
    # tf.nest's exception class for the map functions' unknown keywords
    return ValueError("Only valid keyword arguments are check_types, expand_composites and "
                      f"is_leaf, not: {', '.join(map(str, kwargs))}")


def _drop_path(func: Callable) -> Callable:
    return lambda _, *xs: func(*xs)


def _no_composites_with_is_leaf(expand_composites: bool) -> None:
    if expand_composites:
        raise ValueError("is_leaf and expand_composites=True cannot be combined: "
                         "is_leaf decides alone where the descent stops")


def _refuse_composites(fname: str, structures: tuple) -> None:
    """``expand_composites=True`` for a function that does not expand them yet:
    fine while no composite tensor is in the structures, else a clear error."""
    if "tensorflow" not in sys.modules:
        return  # no composite tensor can exist
    for s in structures:
        if len(C.flatten(s)) != len(W.flatten(s)):
            raise NotImplementedError(
                f"nestlib.{fname} does not expand composite tensors (found one in "
                f"{E.short_repr(s)}); call tf.nest for this structure, or pass "
                f"expand_composites=False to treat them as leaves")


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
    plain_flatten = core.get("plain_flatten", core_flatten)
    core_same = core["assert_same_structure"]
    mapper = core.get("map_structure") or W.make_map_structure(core_flatten, core_same)
    path_mapper = (core.get("map_structure_with_path")
                   or W.make_map_structure_with_path(core_same))
    core_unflatten = core.get("unflatten_as", W.unflatten_as)
    core_paths = core.get("flatten_with_path", W.flatten_with_path)
    core_is_nested = core["is_nested"]
    core_up_to = core.get("flatten_up_to", W.flatten_up_to)
    core_paths_up_to = core.get("flatten_with_path_up_to", W.flatten_with_path_up_to)
    core_spec_of = core.get("spec_of", S.spec_of)

    def is_nested(structure: Any = _NO, *, seq: Any = _NO) -> bool:
        if structure is _NO or seq is not _NO:
            structure = _one("is_nested", "structure", structure, "seq", seq)
        return core_is_nested(structure)

    def flatten(structure: Any, expand_composites: bool = False,
                is_leaf: Callable[[Any], bool] | None = None) -> list:
        if is_leaf is None and not expand_composites:
            return plain_flatten(structure)
        if is_leaf is None:
            return C.flatten(structure)
        _no_composites_with_is_leaf(expand_composites)
        return W.flatten_up_to(W.prefix_of(structure, is_leaf), structure, False)

    def assert_same_structure(a: Any = _NO, b: Any = _NO, check_types: bool = True,
                              expand_composites: bool = False, *, nest1: Any = _NO,
                              nest2: Any = _NO) -> None:
        if a is _NO or b is _NO or nest1 is not _NO or nest2 is not _NO:
            a = _one("assert_same_structure", "a", a, "nest1", nest1)
            b = _one("assert_same_structure", "b", b, "nest2", nest2)
        if expand_composites:
            return C.assert_same(a, b, check_types)
        return core_same(a, b, check_types)

    def map_structure(func: Callable, *structures: Any, check_types: bool = True,
                      expand_composites: bool = False,
                      is_leaf: Callable[[Any], bool] | None = None, **kwargs: Any) -> Any:
        if kwargs:
            raise _unknown_keywords(kwargs)
        if is_leaf is not None:
            _no_composites_with_is_leaf(expand_composites)
            return _map_prefix(func, structures, is_leaf, check_types, with_path=False)
        if expand_composites:
            W._check_func(func, structures)
            return C.map_structure(func, *structures, check_types=check_types)
        return mapper(func, *structures, check_types=check_types)

    def _map_prefix(func, structures, is_leaf, check_types, with_path):
        W._check_func(func, structures)
        shallow = W.prefix_of(structures[0], is_leaf)
        for s in structures[1:]:  # node for node, whatever check_types says of the types
            W.assert_shallow_structure(shallow, s, check_types)
        if not with_path:
            func = _drop_path(func)
        return W.map_structure_with_path_up_to(shallow, func, *structures,
                                               check_types=check_types)

    def pack_sequence_as(structure: Any, flat_sequence: Any,
                         expand_composites: bool = False) -> Any:
        if expand_composites:
            return C.pack(structure, flat_sequence)
        return core_unflatten(structure, flat_sequence)

    def map_structure_with_path(func: Callable, *structures: Any, check_types: bool = True,
                                expand_composites: bool = False,
                                is_leaf: Callable[[Any], bool] | None = None,
                                **kwargs: Any) -> Any:
        if kwargs:
            raise _unknown_keywords(kwargs)
        if is_leaf is not None:
            _no_composites_with_is_leaf(expand_composites)
            return _map_prefix(func, structures, is_leaf, check_types, with_path=True)
        if expand_composites:
            _refuse_composites("map_structure_with_path", structures)
        return path_mapper(func, *structures, check_types=check_types)

    def map_structure_with_paths(func: Callable, *structures: Any, check_types: bool = True,
                                 expand_composites: bool = False,
                                 is_leaf: Callable[[Any], bool] | None = None,
                                 **kwargs: Any) -> Any:
        return map_structure_with_path(
            lambda p, *xs: func("/".join(map(str, p)), *xs), *structures,
            check_types=check_types, expand_composites=expand_composites, is_leaf=is_leaf,
            **kwargs)

    def flatten_with_path(structure: Any, expand_composites: bool = False,
                          is_leaf: Callable[[Any], bool] | None = None) -> list:
        if is_leaf is not None:
            _no_composites_with_is_leaf(expand_composites)
            return W.flatten_with_path_up_to(W.prefix_of(structure, is_leaf), structure, False)
        if expand_composites:
            _refuse_composites("flatten_with_path", (structure,))
        return core_paths(structure)

    def flatten_with_joined_string_paths(structure: Any, separator: str = "/",
                                         expand_composites: bool = False,
                                         is_leaf: Callable[[Any], bool] | None = None) -> list:
        return [(separator.join(map(str, p)), v) for p, v in
                flatten_with_path(structure, expand_composites, is_leaf)]

    def yield_flat_paths(structure: Any = _NO, expand_composites: bool = False,
                         is_leaf: Callable[[Any], bool] | None = None, *,
                         nest: Any = _NO) -> Iterator[tuple]:
        structure = _one("yield_flat_paths", "structure", structure, "nest", nest)
        return iter([p for p, _ in flatten_with_path(structure, expand_composites, is_leaf)])

    def unflatten_as(structure: Any, flat_sequence: Any) -> Any:
        return core_unflatten(structure, flat_sequence)

    def assert_shallow_structure(shallow_tree: Any, input_tree: Any, check_types: bool = True,
                                 expand_composites: bool = False) -> None:
        if expand_composites:
            _refuse_composites("assert_shallow_structure", (shallow_tree, input_tree))
        W.assert_shallow_structure(shallow_tree, input_tree, check_types)

    def _up_to(fname, fn, shallow, inp, check_types, expand_composites, is_leaf,
               shallow_tree, input_tree):
        shallow = _one(fname, "shallow_structure", shallow, "shallow_tree", shallow_tree)
        inp = _one(fname, "input_structure", inp, "input_tree", input_tree)
        if expand_composites:
            _refuse_composites(fname, (shallow, inp))
        if is_leaf is not None:
            shallow = W.prefix_of(shallow, is_leaf)
        return fn(shallow, inp, check_types)

    def flatten_up_to(shallow_structure: Any = _NO, input_structure: Any = _NO,
                      check_types: bool = True, expand_composites: bool = False,
                      is_leaf: Callable[[Any], bool] | None = None, *,
                      shallow_tree: Any = _NO, input_tree: Any = _NO) -> list:
        return _up_to("flatten_up_to", core_up_to, shallow_structure, input_structure,
                      check_types, expand_composites, is_leaf, shallow_tree, input_tree)

    def flatten_with_path_up_to(shallow_structure: Any = _NO, input_structure: Any = _NO,
                                check_types: bool = True, expand_composites: bool = False,
                                is_leaf: Callable[[Any], bool] | None = None, *,
                                shallow_tree: Any = _NO, input_tree: Any = _NO) -> list:
        return _up_to("flatten_with_path_up_to", core_paths_up_to, shallow_structure,
                      input_structure, check_types, expand_composites, is_leaf, shallow_tree,
                      input_tree)

    def flatten_with_tuple_paths_up_to(shallow_tree: Any, input_tree: Any,
                                       check_types: bool = True,
                                       expand_composites: bool = False,
                                       is_leaf: Callable[[Any], bool] | None = None) -> list:
        return _up_to("flatten_with_tuple_paths_up_to", core_paths_up_to, shallow_tree,
                      input_tree, check_types, expand_composites, is_leaf, _NO, _NO)

    def _map_up_to(fname, shallow, func, structures, check_types, expand_composites, is_leaf,
                   shallow_tree, kwargs, with_path):
        if kwargs:
            raise _unknown_keywords(kwargs)
        shallow = _one(fname, "shallow_structure", shallow, "shallow_tree", shallow_tree)
        if func is _NO:
            raise TypeError(f"{fname}() missing required argument 'func'")
        if expand_composites:
            _refuse_composites(fname, (shallow, *structures))
        if is_leaf is not None:
            shallow = W.prefix_of(shallow, is_leaf)
        W._check_func(func, structures)
        if not with_path:
            func = _drop_path(func)
        return W.map_structure_with_path_up_to(shallow, func, *structures,
                                               check_types=check_types)

    def map_structure_up_to(shallow_structure: Any = _NO, func: Callable = _NO,
                            *structures: Any, check_types: bool = False,
                            expand_composites: bool = False,
                            is_leaf: Callable[[Any], bool] | None = None,
                            shallow_tree: Any = _NO, **kwargs: Any) -> Any:
        return _map_up_to("map_structure_up_to", shallow_structure, func, structures,
                          check_types, expand_composites, is_leaf, shallow_tree, kwargs, False)

    def map_structure_with_path_up_to(shallow_structure: Any = _NO, func: Callable = _NO,
                                      *structures: Any, check_types: bool = False,
                                      expand_composites: bool = False,
                                      is_leaf: Callable[[Any], bool] | None = None,
                                      shallow_tree: Any = _NO, **kwargs: Any) -> Any:
        return _map_up_to("map_structure_with_path_up_to", shallow_structure, func,
                          structures, check_types, expand_composites, is_leaf, shallow_tree,
                          kwargs, True)

    def map_structure_with_tuple_paths_up_to(shallow_tree: Any, func: Callable,
                                             *inputs: Any, check_types: bool = True,
                                             expand_composites: bool = False,
                                             is_leaf: Callable[[Any], bool] | None = None,
                                             **kwargs: Any) -> Any:
        return _map_up_to("map_structure_with_tuple_paths_up_to", shallow_tree, func, inputs,
                          check_types, expand_composites, is_leaf, _NO, kwargs, True)

    def map_structure_with_tuple_paths(func: Callable, *structures: Any,
                                       check_types: bool = True,
                                       expand_composites: bool = False,
                                       is_leaf: Callable[[Any], bool] | None = None,
                                       **kwargs: Any) -> Any:
        return map_structure_with_path(func, *structures, check_types=check_types,
                                       expand_composites=expand_composites, is_leaf=is_leaf,
                                       **kwargs)

    def flatten_with_tuple_paths(structure: Any, expand_composites: bool = False,
                                 is_leaf: Callable[[Any], bool] | None = None) -> list:
        return flatten_with_path(structure, expand_composites, is_leaf)

    def spec_of(structure: Any, is_leaf: Callable[[Any], bool] | None = None) -> S.Spec:
        if is_leaf is None:
            return core_spec_of(structure)
        return S.spec_of(structure, is_leaf)

    spec_of.__doc__ = S.spec_of.__doc__

    def backend() -> str:
        return name

    fns: dict[str, Any] = {
        "is_nested": is_nested,
        "flatten": flatten,
        "unflatten_as": unflatten_as,
        "pack_sequence_as": pack_sequence_as,
        "map_structure": map_structure,
        "map_structure_with_path": map_structure_with_path,
        "map_structure_with_tuple_paths": map_structure_with_tuple_paths,
        "map_structure_with_paths": map_structure_with_paths,
        "flatten_with_path": flatten_with_path,
        "flatten_with_tuple_paths": flatten_with_tuple_paths,
        "flatten_with_joined_string_paths": flatten_with_joined_string_paths,
        "yield_flat_paths": yield_flat_paths,
        "assert_same_structure": assert_same_structure,
        "assert_shallow_structure": assert_shallow_structure,
        "flatten_up_to": flatten_up_to,
        "flatten_with_path_up_to": flatten_with_path_up_to,
        "flatten_with_tuple_paths_up_to": flatten_with_tuple_paths_up_to,
        "map_structure_up_to": map_structure_up_to,
        "map_structure_with_path_up_to": map_structure_with_path_up_to,
        "map_structure_with_tuple_paths_up_to": map_structure_with_tuple_paths_up_to,
        "get_traverse_shallow_structure": TF.get_traverse_shallow_structure,
        "flatten_dict_items": TF.flatten_dict_items,
        "is_namedtuple": TF.is_namedtuple,
        "same_namedtuples": TF.same_namedtuples,
        "is_mapping": TF.is_mapping,
        "is_attrs": TF.is_attrs,
        "is_nested_or_composite": TF.is_nested_or_composite,
        "is_sequence_or_composite": TF.is_nested_or_composite,
        "traverse": W.traverse,
        "traverse_with_path": W.traverse_with_path,
        "list_to_tuple": W.list_to_tuple,
        "spec_of": spec_of,
        "Spec": S.Spec,
        "register_node": R.register_node,
        "register_dataclass": R.register_dataclass,
        "unregister_node": R.unregister_node,
        "MAP_TO_NONE": W.MAP_TO_NONE,
        "MAX_DEPTH": W.MAX_DEPTH,
        "backend": backend,
    }
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
