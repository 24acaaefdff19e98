"""Times nestlib on the user's own node types against optree, jax.tree_util
and tf.nest, in one process, interleaved (the method of ``nest_bench.py``).

Two structures:

* ``dc50``: a list of 50 dataclass nodes of 3 fields each, registered with
  each library's own dataclass registration (``nestlib.register_dataclass``,
  ``jax.tree_util.register_dataclass``; optree's ``register_pytree_node`` with
  the same flatten function and field names as path entries);
* ``tfp50``: a list of 50 objects with TensorFlow's nest protocol
  (``__tf_flatten__``/``__tf_unflatten__``), 3 components each: tf.nest and
  nestlib know them as they are; optree and jax register the class with
  functions that call the protocol methods.

Columns: ``nestlib`` (the native backend, the default), ``nestlib py`` (pure
Python), ``optree``, ``jax``, ``tf.nest`` (protocol objects only), and for
Specs ``nestlib Spec`` against ``optree spec`` (a prebuilt ``PyTreeSpec``:
``T.flatten_up_to(s)``, ``T.unflatten(leaves)``). The targets (issue 13):
nestlib at least 1.5x faster than the fastest of the peers on flatten,
unflatten, map and flatten_with_path (ratio <= 0.667), and Spec flatten /
unflatten within 1.25x of optree's PyTreeSpec.

Usage::

    python bench/custom_nodes_bench.py            # ~1 minute
    python bench/custom_nodes_bench.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import nest_bench as NB  # noqa: E402  the timing cell and table rendering

import nestlib  # noqa: E402
from nestlib import _backend  # noqa: E402

try:
    import optree
except ImportError:  # pragma: no cover - a bench extra
    optree = None
try:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
except ImportError:  # jax is optional: its column is left out
    jax = None

NAMESPACE = "nestlib-bench"


@dataclasses.dataclass
class D3:
    a: Any
    b: Any
    c: Any


class TFP3:
    """Three components, metadata a short string (static config)."""

    def __init__(self, a, b, c, tag="t"):
        self.a, self.b, self.c, self.tag = a, b, c, tag

    def __tf_flatten__(self):
        return self.tag, (self.a, self.b, self.c)

    @classmethod
    def __tf_unflatten__(cls, metadata, components):
        return cls(*components, tag=metadata)


def _protocol_flatten(o):
    meta, comps = o.__tf_flatten__()
    return comps, meta


def _protocol_unflatten(meta, children):
    return TFP3.__tf_unflatten__(meta, tuple(children))


def register_everywhere() -> None:
    nestlib.register_dataclass(D3)
    if optree is not None:
        optree.register_pytree_node(
            D3,
            lambda d: ((d.a, d.b, d.c), None, ("a", "b", "c")),
            lambda m, c: D3(*c),
            namespace=NAMESPACE,
        )
        optree.register_pytree_node(
            TFP3, _protocol_flatten, _protocol_unflatten, namespace=NAMESPACE
        )
    if jax is not None:
        jax.tree_util.register_dataclass(D3, data_fields=["a", "b", "c"], meta_fields=[])
        jax.tree_util.register_pytree_node(TFP3, _protocol_flatten, _protocol_unflatten)


def make_structures() -> dict[str, NB.Structure]:
    leaves = list(range(150))
    return {
        "dc50": NB.Structure(
            "r",
            "(r) 50 registered dataclasses x 3 fields",
            lambda lv: [D3(*lv[i : i + 3]) for i in range(0, 150, 3)],
            leaves,
        ),
        "tfp50": NB.Structure(
            "p",
            "(p) 50 TF-protocol objects x 3 components",
            lambda lv: [TFP3(*lv[i : i + 3]) for i in range(0, 150, 3)],
            leaves,
        ),
    }


OPS = {
    "flatten": "flatten",
    "unflatten": "unflatten / pack_sequence_as",
    "map1": "map_structure, one structure",
    "paths": "flatten_with_path",
    "spec_flatten": "Spec.flatten (prebuilt)",
    "spec_unflatten": "Spec.unflatten (prebuilt)",
}

IMPLS = ["nestlib", "nestlib py", "optree", "jax", "tf.nest", "nestlib Spec", "optree spec"]

OT = f"namespace={NAMESPACE!r}, none_is_leaf=True"
STMTS: dict[str, dict[str, str]] = {
    "flatten": {
        "nestlib": "nl.flatten(s)",
        "nestlib py": "py.flatten(s)",
        "optree": f"optree.tree_leaves(s, {OT})",
        "jax": "jtu.tree_leaves(s)",
        "tf.nest": "tfn.flatten(s)",
    },
    "unflatten": {
        "nestlib": "nl.unflatten_as(s, L)",
        "nestlib py": "py.unflatten_as(s, L)",
        "optree": f"optree.tree_unflatten(optree.tree_structure(s, {OT}), L)",
        "jax": "jtu.tree_unflatten(jtu.tree_structure(s), L)",
        "tf.nest": "tfn.pack_sequence_as(s, L)",
    },
    "map1": {
        "nestlib": "nl.map_structure(f1, s)",
        "nestlib py": "py.map_structure(f1, s)",
        "optree": f"optree.tree_map(f1, s, {OT})",
        "jax": "jtu.tree_map(f1, s)",
        "tf.nest": "tfn.map_structure(f1, s)",
    },
    "paths": {
        "nestlib": "nl.flatten_with_path(s)",
        "nestlib py": "py.flatten_with_path(s)",
        "optree": f"optree.tree_flatten_with_path(s, {OT})",
        "jax": "jtu.tree_flatten_with_path(s)",
        "tf.nest": "tfn.flatten_with_tuple_paths(s)",
    },
    "spec_flatten": {"nestlib Spec": "spec.flatten(s)", "optree spec": "T.flatten_up_to(s)"},
    "spec_unflatten": {"nestlib Spec": "spec.unflatten(L)", "optree spec": "T.unflatten(L)"},
}

#: nestlib's ratio to the fastest peer must be at most this (1.5x faster)...
PEER_LIMIT = 1 / 1.5
#: ...and nestlib Spec's to optree's PyTreeSpec at most this.
SPEC_LIMIT = 1.25


def _leaves_of(op: str, impl: str, result: Any) -> list | None:
    """The leaves ``result`` holds, for checking that every column did the work."""
    py = _backend.api("python")
    if op in ("flatten", "spec_flatten"):
        return list(result)
    if op == "paths":
        if impl in ("optree", "jax"):
            return list(result[1]) if impl == "optree" else [v for _, v in result[0]]
        return [v for _, v in result]
    return py.flatten(result)


class CustomCell(NB.Cell):
    """One (op, structure) cell over this script's statements."""

    def __init__(self, op: str, st: NB.Structure, impls: list[str], base_ns: dict):
        self.op, self.st = op, st
        ns = dict(base_ns, s=st.s, L=list(st.leaves), spec=nestlib.spec_of(st.s))
        if optree is not None:
            ns["T"] = optree.tree_structure(st.s, namespace=NAMESPACE, none_is_leaf=True)
        self.timers, self.errors = {}, []
        for impl in impls:
            stmt = STMTS[op].get(impl)
            if stmt is None:
                continue
            try:
                result = eval(stmt, ns)
            except Exception as e:
                self.errors.append(f"{impl} failed {op} on {st.name}: {type(e).__name__}: {e}")
                continue
            if [id(x) for x in _leaves_of(op, impl, result)] != [id(x) for x in st.leaves]:
                self.errors.append(f"{impl} gave a different result for {op} on {st.name}")
                continue
            self.timers[impl] = NB.timeit.Timer(stmt, timer=self.clock, globals=ns)
        self.numbers, self.rechecked = {}, 0
        self.samples = {impl: [] for impl in self.timers}

    def best_peer(self) -> str | None:
        peers = [i for i in ("optree", "jax", "tf.nest") if self.median(i) is not None]
        return min(peers, key=self.median) if peers else None

    def checks(self) -> list[tuple[str, float, float, bool]]:
        out = []
        if self.op.startswith("spec_"):
            pairs = [("Spec", "nestlib Spec", "optree spec", SPEC_LIMIT)]
        else:
            best = self.best_peer()
            pairs = [("nestlib", "nestlib", best, PEER_LIMIT)] if best else []
        for label, impl, ref, limit in pairs:
            r = self.ratio(impl, ref)
            if r is not None:
                out.append(
                    (
                        label,
                        r,
                        limit,
                        True if r <= limit else None if r <= limit * (1 + NB.TIE_MARGIN) else False,
                    )
                )
        return out


def report(cells: list[CustomCell]) -> str:
    rows = [["op", "structure", *IMPLS, "target"]]
    for cell in cells:
        row = [cell.op, cell.st.name.split(")")[0] + ")"]
        for impl in IMPLS:
            m = cell.median(impl)
            row.append("" if m is None else f"{m:.1f}")
        checks = cell.checks()
        if cell.op.startswith("spec_"):
            row.append(
                "; ".join(
                    f"Spec/optree spec {r:.2f} (<= {lim:.2f}) "
                    f"{'ok' if ok else 'TIE' if ok is None else 'MISS'}"
                    for _, r, lim, ok in checks
                )
            )
        else:
            best = cell.best_peer()
            row.append(
                "; ".join(
                    f"nestlib/{best} {r:.2f} (<= {lim:.2f}) "
                    f"{'ok' if ok else 'TIE' if ok is None else 'MISS'}"
                    for _, r, lim, ok in checks
                )
            )
        rows.append(row)
    return NB.render_table(rows, markdown=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (rough numbers)")
    parser.add_argument("--no-tf", action="store_true", help="leave out tf.nest")
    parser.add_argument("--samples", type=int, help="samples per cell (default 21; quick 3)")
    args = parser.parse_args(argv)
    register_everywhere()
    ns: dict[str, Any] = {
        "f1": NB._identity,
        "optree": optree,
        "nl": _backend.api("native") if nestlib.backend() == "native" else nestlib,
        "py": _backend.api("python"),
    }
    impls = ["nestlib", "nestlib py", "nestlib Spec"]
    if optree is not None:
        impls += ["optree", "optree spec"]
    if jax is not None:
        ns["jtu"] = jax.tree_util
        impls.append("jax")
    if not args.no_tf:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from tensorflow.python.util import nest as tfn

        ns["tfn"] = tfn
        impls.append("tf.nest")
    structures = make_structures()
    cells = []
    for op in OPS:
        for key, st in structures.items():
            use = [i for i in impls if not (i == "tf.nest" and key == "dc50")]
            cells.append(CustomCell(op, st, use, ns))
    samples = args.samples or (3 if args.quick else 21)
    target_s = (0.3 if args.quick else 1.0) / 1e3
    t0 = time.perf_counter()
    NB.measure(
        cells,
        samples,
        target_s,
        0 if args.quick else 1,
        lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(
        f"custom-node benchmark: {samples} interleaved samples per implementation and cell, "
        f"median CPU µs per call ({time.perf_counter() - t0:.0f} s wall); nestlib backend "
        f"{nestlib.backend()}; optree {getattr(optree, '__version__', '-')}, jax "
        f"{getattr(jax, '__version__', '-')}"
    )
    print()
    print(report(cells))
    errors = [e for c in cells for e in c.errors]
    for e in errors:
        print(f"NOT TIMED: {e}")
    missed = [c for c in cells if any(ok is False for *_, ok in c.checks())]
    print(f"\n{len(cells) - len(missed)} of {len(cells)} cells meet their target")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
