"""The ``native`` backend: nestlib's own compiled core wired to the Python engine.

``nestlib/_cnest.c`` (built as the extension ``nestlib._cnest`` by an ordinary
``pip install`` wherever a C compiler and the Python headers are available)
implements flatten, unflatten/pack, map_structure (one and several
structures), the path functions, flatten_up_to, assert_same_structure and the
Spec operations. It handles only the success path of the common cases:

* it shares the Python engine's kind cache (``_nodes.KINDS``) and calls the
  Python helpers (``children``, ``rebuild``, ...) for the nodes it does not
  handle itself (attrs classes, proxies, other sequences and mappings);
* whenever anything is unusual (a mismatch, an exception, a structure nested
  deeper than ``MAX_DEPTH``, a reference cycle) it gives up and redoes the
  whole call with the Python function that :func:`load` hands it, so results
  and exceptions (class and path-bearing message) are the Python engine's by
  construction. A user callback is never called twice for a leaf: the map
  functions flatten and check everything before the first call, and if the
  final rebuild fails only the rebuild is redone.

TensorFlow-free and dm-tree-free: this backend never imports ``tree``.
"""

from __future__ import annotations

import collections
import importlib
import threading
from collections.abc import Callable
from typing import Any

from . import _nodes as N
from . import _registry as R
from . import _spec as S
from . import _walk as W

_lock = threading.Lock()
_module: Any = None


def _spec_slow_flatten(skeleton: Any, x: Any) -> list[Any]:
    """``Spec.flatten``'s general case: check the structure, then flatten."""
    W.assert_same_structure(skeleton, x, check_types=True)
    return W.flatten(x)


def _spec_count_error(skeleton: Any, found: int) -> ValueError:
    return W._count_error("Spec.unflatten", skeleton, found)


def load() -> Any:
    """Imports and initialises the compiled core (once); ImportError if missing.

    >>> load().flatten({"b": 2, "a": (1, None)})
    [1, None, 2]
    """
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            # ModuleNotFoundError "No module named 'nestlib._cnest'" when not built
            _cnest = importlib.import_module(__name__.rpartition(".")[0] + "._cnest")

            _cnest.init(
                {
                    "kind_values": {
                        name: getattr(N, name)
                        for name in (
                            "LEAF",
                            "LIST",
                            "TUPLE",
                            "NAMEDTUPLE",
                            "MAPPING",
                            "ATTRS",
                            "SEQUENCE",
                            "VIEW",
                            "PROXY",
                            "COMPOSITE",
                            "CUSTOM",
                        )
                    },
                    "kinds": N.KINDS,
                    "defs": N.DEFS,
                    "max_depth": W.MAX_DEPTH,
                    "classify": N.classify,
                    "children": N.children,
                    "items": N.items,
                    "rebuild": N.rebuild,
                    "rebuild_mapping": N.rebuild_mapping,
                    "unwrap": N.unwrap,
                    "attrs_names": N.attrs_names,
                    "types_compatible": W.types_compatible,
                    "check_flat_sequence": W.check_flat_sequence,
                    "plain_namedtuple_size": N.plain_namedtuple_size,
                    "OrderedDict": collections.OrderedDict,
                    "defaultdict": collections.defaultdict,
                    "fb_flatten": W.flatten,
                    "fb_is_nested": W.is_nested,
                    "fb_unflatten_as": W.unflatten_as,
                    "fb_pack_trusted": W.pack_trusted,
                    "fb_assert_same_structure": W.assert_same_structure,
                    "fb_map_structure": W.map_structure,
                    "fb_flatten_with_path": W.flatten_with_path,
                    "fb_map_structure_with_path": W.map_structure_with_path,
                    "fb_flatten_up_to": W.flatten_up_to,
                    "fb_flatten_with_path_up_to": W.flatten_with_path_up_to,
                    "fb_spec_slow_flatten": _spec_slow_flatten,
                    "fb_spec_count_error": _spec_count_error,
                    "fb_spec_map_check": S.Spec.map,
                }
            )
            S.make_plain = _cnest.make_plain  # Specs build plain dataclasses with it
            R.add_listener(_cnest.forget_defs)  # its remembered NodeDef may be stale
            _module = _cnest
    return _module


# --------------------------------------------------------------------------
# Specs with a compiled engine
# --------------------------------------------------------------------------


class Spec(S.Spec):
    """A :class:`nestlib.Spec` whose operations run in the compiled core.

    Made from the Python engine's Spec of the same structure (same skeleton,
    paths, equality and hash; only the engine differs); pickles to the
    default backend's Spec of that structure.
    """

    __slots__ = ("map", "_core")

    def __reduce__(self) -> tuple[Any, ...]:
        return (S._unpickle, (self._skeleton,))


Spec.__qualname__ = Spec.__name__ = "Spec"


_ENGINE = ("flatten", "unflatten", "_unflatten_trusted")
_cache: collections.OrderedDict[S.Spec, S.Spec] = collections.OrderedDict()
_cache_lock = threading.Lock()


def _forget_all() -> None:
    with _cache_lock:
        _cache.clear()


R.add_listener(_forget_all)


def _compiled(py: S.Spec) -> S.Spec:
    """``py`` with the compiled engine (``py`` itself if the core declines)."""
    try:
        core = load().SpecCore(py._skeleton)
    except Exception:  # something the compiled Spec cannot describe
        return py
    if core.num_leaves != py.num_leaves:
        return py
    spec = object.__new__(Spec)
    put = object.__setattr__
    for name in S.Spec.__slots__:
        if name not in _ENGINE:
            put(spec, name, getattr(py, name))
    put(spec, "_core", core)
    put(spec, "flatten", core.flatten)
    put(spec, "unflatten", core.unflatten)
    put(spec, "_unflatten_trusted", core.unflatten_trusted)
    put(spec, "map", core.map)
    return spec


def spec_of(structure: Any) -> S.Spec:
    """``_spec.spec_of`` with the compiled engine where the core can describe it."""
    py = S.spec_of(structure)
    try:
        with _cache_lock:
            spec = _cache.get(py)
            if spec is not None:
                _cache.move_to_end(py)
                return spec
    except (TypeError, RecursionError):  # unhashable, or too deep to compare: see S.spec_of
        return _compiled(py)
    spec = _compiled(py)
    with _cache_lock:
        try:
            _cache[py] = spec
        except RecursionError:
            return spec
        if len(_cache) > S._CACHE_SIZE:
            _cache.popitem(last=False)
    return spec


# --------------------------------------------------------------------------
# The backend's core
# --------------------------------------------------------------------------


def core() -> dict[str, Callable[..., Any]]:
    """The engine operations the ``native`` backend takes from the compiled core."""
    C = load()
    return {
        "flatten": C.flatten,
        "is_nested": C.is_nested,
        "assert_same_structure": C.assert_same_structure,
        "unflatten_as": C.unflatten_as,
        "map_structure": C.map_structure,
        "map_structure_with_path": C.map_structure_with_path,
        "flatten_with_path": C.flatten_with_path,
        "flatten_up_to": C.flatten_up_to,
        "flatten_with_path_up_to": C.flatten_with_path_up_to,
        "spec_of": spec_of,
    }
