"""Error messages: path formatting and bounded descriptions of nodes.

Every mismatch message names the path of the first difference, what was
expected there and what was found, and stays short whatever the input size.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from typing import Any

from . import _nodes as N

MAX_REPR = 60  # characters of any one value shown in a message
MAX_KEYS = 8  # mapping keys listed in a message
MAX_MESSAGE = 1500  # hard cap on a message's length

STRUCTURES_DIFFER = "structures differ at {path}: {first} vs {second}"
NOT_A_SEQUENCE = "flat_sequence must be a sequence (list or tuple), not {type}: {value}"
LEAF_COUNT = (
    "{what}: the structure has {expected} leaves but flat_sequence has {found} elements{detail}"
)
TOO_DEEP = (
    "structure is nested more than {limit} levels deep at {path}; "
    "nestlib supports at most {limit} levels"
)
CYCLE = (
    "structure contains itself at {path} (a reference cycle back to {target}); nests must be trees"
)

_repr = reprlib.Repr()
_repr.maxstring = MAX_REPR
_repr.maxother = MAX_REPR
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 2


def short_repr(x: Any) -> str:
    """A repr of ``x`` of at most about MAX_REPR characters, never raising."""
    try:
        r = _repr.repr(x)
    except Exception as e:  # a hostile __repr__
        r = f"<{type(x).__name__} whose repr raised {type(e).__name__}>"
    if len(r) > MAX_REPR:
        r = r[: MAX_REPR - 3] + "..."
    return r


def format_key(kind: int, key: Any) -> str:
    if (
        kind == N.NAMEDTUPLE
        or kind == N.ATTRS
        or (kind == N.CUSTOM and isinstance(key, str) and key.isidentifier())
    ):
        return f".{key}"
    if kind == N.MAPPING:
        return f"[{short_repr(key)}]"
    return f"[{key}]"


def format_path(steps: Iterable[tuple[int, Any]]) -> str:
    """Renders ``(kind, key)`` steps as ``['a'].b[1]``; the root is ``the top level``."""
    text = "".join(format_key(k, key) for k, key in steps)
    if not text:
        return "the top level"
    if len(text) > 300:
        text = text[:140] + "..." + text[-140:]
    return text


def path_steps(path: Iterable[Any], structure: Any = None) -> list[tuple[int, Any]]:
    """The ``(kind, key)`` steps of a plain path (as in ``flatten_with_path``).

    Each key's kind is that of the node it indexes in ``structure``, found by
    walking the path down from the root; where the walk cannot go on (no
    structure given, a leaf, a key the node lacks, a node whose methods
    raise), the remaining keys render as plain keys (``['a']``, ``[0]``).
    """
    steps: list[tuple[int, Any]] = []
    node, walking = structure, True
    for key in path:
        kind = N.MAPPING  # plain-key rendering
        if walking:
            walking = False
            try:
                node, node_kind = N.unwrap(node, N.classify(node))
                if node_kind != N.LEAF:
                    for child_key, child in N.items(node, node_kind):
                        if child_key == key:
                            kind, node, walking = node_kind, child, True
                            break
            except Exception:  # display only: a hostile node ends the walk
                walking = False
        steps.append((kind, key))
    return steps


def format_tuple_path(path: tuple[Any, ...], structure: Any = None) -> str:
    """Renders a plain path tuple (as in ``flatten_with_path``), see ``path_steps``."""
    return format_path(path_steps(path, structure))


def describe(x: Any, kind: int | None = None) -> str:
    """``tuple of length 2``, ``dict with keys ['a', 'b']``, ``leaf int 3``."""
    if kind is None:
        try:
            kind = N.classify(x)
        except Exception:
            kind = N.LEAF
    if kind == N.LEAF and getattr(type(x), "_nestlib_leaf_slot", False):
        return "a leaf"
    name = N.type_name(x)
    if kind == N.LEAF:
        return f"leaf {name} {short_repr(x)}"
    try:
        if kind == N.MAPPING or (kind == N.PROXY and N.unwrap(x, kind)[1] == N.MAPPING):
            ks = N.keys(x, kind)
            shown = ", ".join(short_repr(k) for k in ks[:MAX_KEYS])
            more = f", ... ({len(ks)} keys)" if len(ks) > MAX_KEYS else ""
            return f"{name} with keys [{shown}{more}]"
        n = N.length(x, kind)
    except Exception as e:
        return f"{name} (unreadable: {type(e).__name__})"
    if kind == N.NAMEDTUPLE:
        return f"namedtuple {name} of length {n}"
    if kind == N.ATTRS:
        return f"attrs {name} with {n} fields"
    if kind == N.CUSTOM:
        label = N.DEFS[type(x)].label if type(x) in N.DEFS else "node"
        return f"{label} {name} with {n} children"
    return f"{name} of length {n}"


def bounded(message: str) -> str:
    if len(message) > MAX_MESSAGE:
        return message[: MAX_MESSAGE - 20] + " ... (truncated)"
    return message


def differ(steps: Iterable[tuple[int, Any]], first: str, second: str, detail: str = "") -> str:
    return bounded(
        STRUCTURES_DIFFER.format(path=format_path(steps), first=first, second=second) + detail
    )


def key_difference(first: list[Any], second: list[Any]) -> str:
    """``" (key 'b' is only in the first)"``: the first key, in sorted order,
    that one mapping has and the other lacks; "" when the key sets agree."""
    in_first, in_second = set(first), set(second)
    candidates = [(k, "first") for k in first if k not in in_second][:1] + [
        (k, "second") for k in second if k not in in_first
    ][:1]
    if not candidates:
        return ""
    if len(candidates) == 2:
        try:
            candidates.sort(key=lambda c: c[0])
        except TypeError:  # keys of unrelated types: report the first mapping's
            pass
    key, side = candidates[0]
    return f" (key {short_repr(key)} is only in the {side})"


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``, on Python 3.10 too.

    Python 3.10 has no ``BaseException.add_note``; there the note is appended to
    ``exc.__notes__``, the attribute ``add_note`` keeps (PEP 678), as the
    exceptiongroup backport and hypothesis do: the path is then in the same
    place for code that reads it, and pytest and the backport's traceback show
    it (3.10's own traceback does not). An exception that takes no attributes,
    or whose ``__notes__`` is not a list, is left as it is.
    """
    if hasattr(exc, "add_note"):
        exc.add_note(note)
        return
    notes = getattr(exc, "__notes__", None)
    try:
        if notes is None:
            exc.__notes__ = [note]  # type: ignore[attr-defined]
        elif isinstance(notes, list):
            notes.append(note)
    except (AttributeError, TypeError):
        pass


def add_path_note(exc: BaseException, steps: Iterable[tuple[int, Any]]) -> BaseException:
    """Adds a note naming where in the structure a user exception arose."""
    add_note(exc, f"(nestlib: raised while reading the structure at {format_path(steps)})")
    return exc


def add_rebuild_note(exc: BaseException, paths: list[Any]) -> BaseException:
    """Adds a note naming where the node whose rebuild failed sits.

    ``paths`` are the ``(kind, key)`` steps of every place that node object
    occupies (one, unless the structure shares it), in flatten order.
    """
    if paths:
        where = format_path(paths[0])
        if len(paths) > 1:
            others = ", ".join(format_path(p) for p in paths[1:3])
            more = ", ..." if len(paths) > 3 else ""
            where += f" (the same object is also at {others}{more})"
        add_note(exc, f"(nestlib: raised while rebuilding the node at {where})")
    return exc
