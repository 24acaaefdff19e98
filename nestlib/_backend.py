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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from . import _nodes as N
from . import _registry as R
from . import _spec as S
from . import _walk as W

if TYPE_CHECKING:
    from typing import Protocol

    class Engine(Protocol):
        """The operations of one backend that ``nestlib.api`` calls (see ``engine``);
        a ``types.SimpleNamespace`` at run time."""

        name: str
        flatten: Callable[[Any], list[Any]]
        is_nested: Callable[[Any], bool]
        same: Callable[[Any, Any, bool], None]
        map: Callable[..., Any]  # (func, *structures, check_types=True)
        map_path: Callable[..., Any]  # (func, *structures, check_types=True)
        unflatten: Callable[[Any, Any], Any]
        paths: Callable[[Any], list[tuple[tuple[Any, ...], Any]]]
        up_to: Callable[[Any, Any, bool], list[Any]]
        paths_up_to: Callable[[Any, Any, bool], list[tuple[tuple[Any, ...], Any]]]
        spec_of: Callable[[Any], S.Spec]


BACKENDS = ("native", "dm-tree", "python")
ENV_VAR = "NESTLIB_BACKEND"


def _python_core() -> dict[str, Callable[..., Any]]:
    return {
        "flatten": W.flatten,
        "is_nested": W.is_nested,
        "assert_same_structure": W.assert_same_structure,
    }


def _dm_tree_core() -> dict[str, Callable[..., Any]]:
    from tree import _tree  # compiled part of dm-tree

    tree_flatten: Callable[[Any], list[Any]] = _tree.flatten
    py_flatten = W.flatten
    py_same = W.assert_same_structure

    known_leaf_types: set[Any] = set()  # types checked to be leaves under today's rules
    R.add_listener(known_leaf_types.clear)

    def flatten(structure: Any) -> list[Any]:
        try:
            leaves = tree_flatten(structure)
        except Exception:  # redo in Python: our semantics and our error
            return py_flatten(structure)
        # dm-tree knows no registered or TF-protocol nodes: it returns them as
        # leaves. One C-level pass over the leaves' types tells whether any is.
        if known_leaf_types.issuperset(map(type, leaves)):
            return leaves
        leaf_types = set(map(type, leaves))
        for t in leaf_types:
            if t not in N.KINDS:  # never met: classify one instance (proxies vary)
                N.classify(next(x for x in leaves if type(x) is t))
            if N.KINDS.get(t) != N.LEAF:
                return py_flatten(structure)
        known_leaf_types.update(leaf_types)
        return leaves

    # dm-tree's compiled assert_same_structure is not used: it crashes the
    # interpreter (SIGSEGV) on a Mapping whose __iter__ or __len__ raises, and
    # it is slower than nestlib's own check anyway.
    # is_nested is a lookup in the kind cache: as fast as dm-tree's, and it
    # knows the registered and TF-protocol nodes.
    return {"flatten": flatten, "is_nested": W.is_nested, "assert_same_structure": py_same}


def _native_core() -> dict[str, Callable[..., Any]]:
    from . import _native  # ImportError when the extension was not built

    return _native.core()


#: Default of an argument that has two names (dm-tree's and tf.nest's).
NOT_GIVEN: Any = object()


def engine(name: str) -> Engine:
    """The operations of backend ``name`` that ``nestlib.api`` calls (built once).

    ``flatten(s)``, ``is_nested(s)``, ``same(a, b, check_types)``,
    ``map(func, *structures, check_types=)``, ``map_path(...)``,
    ``unflatten(s, flat)``, ``paths(s)``, ``up_to(shallow, deep, check_types)``,
    ``paths_up_to(...)``, ``spec_of(s)`` and ``name``.
    """
    if name in _engines:
        return _engines[name]
    if name == "native":
        core = _native_core()
    elif name == "dm-tree":
        core = _dm_tree_core()
    elif name == "python":
        core = _python_core()
    else:
        raise ValueError(f"unknown nestlib backend {name!r}; expected one of {BACKENDS}")
    flatten = core["flatten"]
    same = core["assert_same_structure"]
    ops = cast(
        "Engine",
        types.SimpleNamespace(
            name=name,
            flatten=flatten,
            is_nested=core["is_nested"],
            same=same,
            map=core.get("map_structure") or W.make_map_structure(flatten, same),
            map_path=core.get("map_structure_with_path") or W.make_map_structure_with_path(same),
            unflatten=core.get("unflatten_as", W.unflatten_as),
            paths=core.get("flatten_with_path", W.flatten_with_path),
            up_to=core.get("flatten_up_to", W.flatten_up_to),
            paths_up_to=core.get("flatten_with_path_up_to", W.flatten_with_path_up_to),
            spec_of=core.get("spec_of", S.spec_of),
        ),
    )
    _engines[name] = ops
    return ops


_engines: dict[str, Engine] = {}


def _bound_api(ops: Engine) -> types.SimpleNamespace:
    """nestlib.api's public functions, copied with their globals bound to ``ops``."""
    from . import api as A

    g = dict(A.__dict__)
    for op in (
        "flatten",
        "is_nested",
        "same",
        "map",
        "map_path",
        "unflatten",
        "paths",
        "up_to",
        "paths_up_to",
        "spec_of",
        "name",
    ):
        g["_" + op] = getattr(ops, op)
    g["_engine"] = ops
    public: dict[str, Any] = {}
    for name in A.__all__:
        obj = getattr(A, name)
        if isinstance(obj, types.FunctionType) and obj.__module__ == A.__name__:
            fn = types.FunctionType(
                obj.__code__, g, obj.__name__, obj.__defaults__, obj.__closure__
            )
            fn.__kwdefaults__ = obj.__kwdefaults__
            fn.__doc__ = obj.__doc__
            fn.__annotations__ = obj.__annotations__
            fn.__qualname__ = obj.__qualname__
            fn.__module__ = obj.__module__
            S.mark_not_for_autograph(fn)
            obj = fn
        public[name] = obj
    g.update(public)  # calls between public functions stay on this engine
    return types.SimpleNamespace(**public)


_built: dict[str, types.SimpleNamespace] = {}


def api(name: str) -> types.SimpleNamespace:
    """nestlib's public API running on backend ``name`` (built once).

    The active backend's is ``nestlib.api`` itself; the others are copies of
    its functions bound to their engine (the tests run against each).
    """
    if name not in _built:
        from . import api as A

        if name == A._name:
            _built[name] = types.SimpleNamespace(**{n: getattr(A, n) for n in A.__all__})
        else:
            _built[name] = _bound_api(engine(name))
    return _built[name]


def default_name() -> str:
    requested = os.environ.get(ENV_VAR, "").strip()
    if requested:
        if requested not in BACKENDS:
            raise ValueError(
                f"{ENV_VAR}={requested!r} is not a nestlib backend; "
                f"expected one of {', '.join(BACKENDS)}"
            )
        if requested == "native":
            try:
                _native_core()
            except ImportError as e:
                raise ImportError(
                    f"{ENV_VAR}=native but nestlib's compiled core cannot be "
                    f"imported ({e}); reinstall nestlib where a C compiler is "
                    f"available or use {ENV_VAR}=dm-tree|python"
                ) from e
        if requested == "dm-tree":
            try:
                import tree._tree
            except ImportError as e:
                raise ImportError(
                    f"{ENV_VAR}=dm-tree but dm-tree cannot be imported "
                    f"({e}); install dm-tree or use {ENV_VAR}=python"
                ) from e
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
    warnings.warn(
        f"nestlib's compiled core is not available ({problem}); using the {fallback} backend",
        RuntimeWarning,
        stacklevel=3,
    )
    return fallback
