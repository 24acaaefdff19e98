"""Times nestlib against dm-tree, tf.nest and optree, in one process.

Every (operation, structure) cell is measured for all implementations
*interleaved*: each sample runs every implementation for about a millisecond,
in an order that rotates from sample to sample, and the reported figure is the
median over samples of the time per call. Time is this thread's CPU time
(``time.thread_time``), so the moments the process spends preempted by the
other processes of a busy machine do not count (``--clock wall`` for
``perf_counter``). Cells that miss a target are measured again
(``--recheck``) and the new samples are pooled with the old.

Implementations (columns):

* ``dm-tree``: ``import tree`` (compiled flatten / assert_same_structure,
  Python elsewhere);
* ``tf.nest``: ``tensorflow.nest`` (flatten_with_path uses TensorFlow's private
  ``tensorflow.python.util.nest.flatten_with_tuple_paths``, tf.nest has none);
  skipped with ``--no-tf``;
* ``optree``: optree from scratch, ``none_is_leaf=True`` (dm-tree semantics):
  ``tree_leaves``, ``tree_unflatten(tree_structure(s), leaves)``, ``tree_map``,
  ``tree_structure(a) == tree_structure(b)``, ``tree_flatten_with_path``;
* ``optree spec``: optree with a prebuilt ``PyTreeSpec`` ``T``: flatten is
  ``T.flatten_up_to(s)``, unflatten ``T.unflatten(leaves)``, map
  ``T.unflatten(map(f, T.flatten_up_to(s)))`` (about 2x faster than
  ``optree.tree_map``; note ``flatten_up_to`` does not check that the leaves
  are leaves, ``Spec.flatten`` does);
* ``nestlib``: the default (dm-tree) backend; ``nestlib py``: the pure-Python
  backend; ``nestlib Spec``: ``nestlib.spec_of(s)`` built beforehand;
  ``nestlib native`` and ``native Spec``: the same with the native backend
  (nestlib's compiled core), when it is built.

Every implementation's result is checked once (same leaves, same structure)
before it is timed. The mapped function is the identity (``lambda x, y: x``
for two structures), so the times are the libraries' overhead.

Ratios are against dm-tree, except the Spec column's, which are against
optree spec. The ``check`` column holds the issue's targets:

* nestlib flatten <= 1.10x dm-tree; assert_same_structure <= 1.0x;
  unflatten, map (one and two structures), flatten_with_path <= 1/3 of dm-tree;
* nestlib py < dm-tree on unflatten, map and flatten_with_path;
* nestlib Spec unflatten and map <= 1.5x optree spec.

A ratio over its limit by at most 5% is a TIE (the machine cannot resolve it),
more is a MISS.

Usage::

    python bench/nest_bench.py                 # everything (a minute or two)
    python bench/nest_bench.py --quick --no-tf --structures lstm,dnc
    python bench/nest_bench.py --ops unflatten,map1 --markdown
    python bench/nest_bench.py --profile map1:dict1k   # cProfile nestlib's call
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402

from nestlib import _backend  # noqa: E402

try:
    import tree as dm_tree
except ImportError:  # pragma: no cover - dm-tree is a runtime dependency
    dm_tree = None
try:
    import optree
except ImportError:  # pragma: no cover - optree is a bench/test extra
    optree = None

# --------------------------------------------------------------------------
# Structures
# --------------------------------------------------------------------------

LSTMState = collections.namedtuple("LSTMState", "hidden cell")
TemporalLinkageState = collections.namedtuple("TemporalLinkageState", "link precedence_weights")
AccessState = collections.namedtuple(
    "AccessState", "memory read_weights write_weights linkage usage"
)
DNCState = collections.namedtuple("DNCState", "access_output access_state controller_state")
Example = collections.namedtuple("Example", "tokens mask label weight source")


def _arrays(n: int, shape=(4, 8)) -> list:
    return [np.zeros(shape, np.float32) for _ in range(n)]


def _dnc(leaves: list) -> DNCState:
    (access_output, memory, read_w, write_w, link, precedence, usage, hidden, cell) = leaves
    return DNCState(
        access_output=access_output,
        access_state=AccessState(
            memory=memory,
            read_weights=read_w,
            write_weights=write_w,
            linkage=TemporalLinkageState(link=link, precedence_weights=precedence),
            usage=usage,
        ),
        controller_state=LSTMState(hidden=hidden, cell=cell),
    )


def _dict1k(leaves: list, shuffle: bool = True) -> dict:
    keys = [f"k{i:04d}" for i in range(1000)]
    if shuffle:  # insertion order differs from sorted (flatten) order
        random.Random(0).shuffle(keys)
    by_key = dict(zip(sorted(keys), leaves))
    return {key: by_key[key] for key in keys}


def _chain(leaves: list) -> list:
    node: Any = [leaves[-1]]
    for leaf in reversed(leaves[:-1]):
        node = [leaf, node]
    return node


def _batch(leaves: list) -> dict:
    it = iter(leaves)
    examples = [
        Example(tokens=next(it), mask=next(it), label=next(it), weight=next(it), source=next(it))
        for _ in range(30)
    ]
    features = {
        "image": next(it),
        "audio": [next(it), next(it)],
        "meta": {"ids": [next(it) for _ in range(10)], "lang": next(it), "extra": next(it)},
    }
    targets = [(next(it), next(it)) for _ in range(16)]
    out = {
        "examples": examples,
        "features": features,
        "targets": targets,
        "step": next(it),
        "name": next(it),
    }
    assert next(it, None) is None
    return out


def _batch_leaves() -> list:
    """Leaves for ``_batch``, in the order it consumes them (construction order)."""
    leaves: list = []
    for i in range(30):  # Example(tokens, mask, label, weight, source)
        leaves += [
            np.zeros((16,), np.int32),
            np.ones((16,), np.bool_),
            i % 3,
            None if i % 4 == 0 else 0.5,
            f"shard-{i % 5}",
        ]
    leaves += [np.zeros((8, 8, 3), np.uint8)]  # features: image
    leaves += _arrays(2, (100,))  # audio
    leaves += [f"id-{j}" for j in range(10)] + ["en", None]  # meta: ids, lang, extra
    leaves += _arrays(32, (4,))  # targets: 16 pairs
    leaves += [7, "batch-0"]  # step, name
    return leaves


class Structure:
    """A benchmark structure: two equal-shaped instances sharing leaves."""

    def __init__(self, key: str, name: str, build: Callable[[list], Any], leaves: list):
        self.key, self.name = key, name
        self.s = build(leaves)
        self.s2 = build(list(leaves))  # same shape, same leaf objects, new nodes
        # leaves in flatten order (sorted keys), as every implementation sees them
        self.leaves = _backend.api("python").flatten(self.s)


def make_structures() -> dict[str, Structure]:
    specs = [
        ("a", "lstm", "LSTM state (2 leaves)", lambda lv: LSTMState(*lv), _arrays(2)),
        ("b", "dnc", "DNC state (9 leaves)", _dnc, _arrays(9)),
        (
            "c",
            "dnc3",
            "3 x DNC state (27 leaves)",
            lambda lv: (_dnc(lv[0:9]), _dnc(lv[9:18]), _dnc(lv[18:27])),
            _arrays(27),
        ),
        ("d", "dict1k", "dict of 1,000 keys", _dict1k, list(range(1000))),
        (
            "d2",
            "dict1k_sorted",
            "dict of 1,000 keys, inserted sorted",
            lambda lv: _dict1k(lv, shuffle=False),
            list(range(1000)),
        ),
        ("e", "list10k", "list of 10,000 leaves", list, list(range(10_000))),
        ("f", "chain100", "chain nested 100 deep (101 leaves)", _chain, list(range(101))),
        ("g", "batch", "mixed batch (~200 leaves)", _batch, _batch_leaves()),
    ]
    out = {}
    for key, short, name, build, leaves in specs:
        out[short] = Structure(key, f"({key}) {name}", build, leaves)
    return out


# --------------------------------------------------------------------------
# Implementations: one timeit statement per (op, implementation)
# --------------------------------------------------------------------------

OPS = {
    "flatten": "flatten",
    "unflatten": "unflatten / pack_sequence_as",
    "map1": "map_structure, one structure",
    "map2": "map_structure, two structures",
    "same": "assert_same_structure",
    "paths": "flatten_with_path",
}

#: A ratio over its limit by at most this much is reported as a TIE, not a MISS.
TIE_MARGIN = 0.05

IMPLS = ["dm-tree", "tf.nest", "optree", "optree spec", "nestlib", "nestlib py", "nestlib Spec"]

IMPLS += ["nestlib native", "native Spec"]

STMTS: dict[str, dict[str, str]] = {
    "flatten": {
        "dm-tree": "dm_flatten(s)",
        "tf.nest": "tf_flatten(s)",
        "optree": "ot_leaves(s, none_is_leaf=True)",
        "optree spec": "T.flatten_up_to(s)",
        "nestlib": "nl_flatten(s)",
        "nestlib py": "py_flatten(s)",
        "nestlib Spec": "spec.flatten(s)",
    },
    "unflatten": {
        "dm-tree": "dm_unflatten(s, L)",
        "tf.nest": "tf_pack(s, L)",
        "optree": "ot_unflatten(ot_structure(s, none_is_leaf=True), L)",
        "optree spec": "T.unflatten(L)",
        "nestlib": "nl_unflatten(s, L)",
        "nestlib py": "py_unflatten(s, L)",
        "nestlib Spec": "spec.unflatten(L)",
    },
    "map1": {
        "dm-tree": "dm_map(f1, s)",
        "tf.nest": "tf_map(f1, s)",
        "optree": "ot_map(f1, s, none_is_leaf=True)",
        "optree spec": "T.unflatten(map(f1, T.flatten_up_to(s)))",
        "nestlib": "nl_map(f1, s)",
        "nestlib py": "py_map(f1, s)",
        "nestlib Spec": "spec.map(f1, s)",
    },
    "map2": {
        "dm-tree": "dm_map(f2, s, s2)",
        "tf.nest": "tf_map(f2, s, s2)",
        "optree": "ot_map(f2, s, s2, none_is_leaf=True)",
        "optree spec": "T.unflatten(map(f2, T.flatten_up_to(s), T.flatten_up_to(s2)))",
        "nestlib": "nl_map(f2, s, s2)",
        "nestlib py": "py_map(f2, s, s2)",
        "nestlib Spec": "spec.map(f2, s, s2)",
    },
    "same": {
        "dm-tree": "dm_same(s, s2)",
        "tf.nest": "tf_same(s, s2)",
        "optree": "ot_structure(s, none_is_leaf=True) == ot_structure(s2, none_is_leaf=True)",
        "nestlib": "nl_same(s, s2)",
        "nestlib py": "py_same(s, s2)",
    },
    "paths": {
        "dm-tree": "dm_paths(s)",
        "tf.nest": "tf_paths(s)",
        "optree": "ot_paths(s, none_is_leaf=True)",
        "nestlib": "nl_paths(s)",
        "nestlib py": "py_paths(s)",
    },
}


def _identity(x):
    return x


def _first(x, y):
    return x


for _stmts in STMTS.values():  # the native backend: the same calls on its API
    _stmts["nestlib native"] = _stmts["nestlib"].replace("nl_", "na_")
    if "nestlib Spec" in _stmts:
        _stmts["native Spec"] = _stmts["nestlib Spec"].replace("spec.", "na_spec.")


def implementation_namespace(with_tf: bool) -> tuple[dict, list[str]]:
    """Names the statements use, and the implementations available."""
    ns: dict[str, Any] = {"f1": _identity, "f2": _first}
    available = []
    if dm_tree is not None:
        ns.update(
            dm_flatten=dm_tree.flatten,
            dm_unflatten=dm_tree.unflatten_as,
            dm_map=dm_tree.map_structure,
            dm_same=dm_tree.assert_same_structure,
            dm_paths=dm_tree.flatten_with_path,
        )
        available.append("dm-tree")
    if with_tf:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        try:
            from tensorflow.python.util import nest as tf_private_nest

            tf_paths = tf_private_nest.flatten_with_tuple_paths
        except (ImportError, AttributeError):  # pragma: no cover - TF internals moved
            tf_paths = None
        ns.update(
            tf_flatten=tf.nest.flatten,
            tf_pack=tf.nest.pack_sequence_as,
            tf_map=tf.nest.map_structure,
            tf_same=tf.nest.assert_same_structure,
            tf_paths=tf_paths,
        )
        available.append("tf.nest")
    if optree is not None:
        ns.update(
            ot_leaves=optree.tree_leaves,
            ot_unflatten=optree.tree_unflatten,
            ot_structure=optree.tree_structure,
            ot_map=optree.tree_map,
            ot_paths=optree.tree_flatten_with_path,
        )
        available += ["optree", "optree spec"]
    for prefix, name in (("nl", "dm-tree"), ("py", "python")):
        if name == "dm-tree" and dm_tree is None:
            continue
        api = _backend.api(name)
        ns.update(
            {
                f"{prefix}_flatten": api.flatten,
                f"{prefix}_unflatten": api.unflatten_as,
                f"{prefix}_map": api.map_structure,
                f"{prefix}_same": api.assert_same_structure,
                f"{prefix}_paths": api.flatten_with_path,
            }
        )
        available.append("nestlib" if prefix == "nl" else "nestlib py")
    ns["spec_of"] = _backend.api("python").spec_of
    available.append("nestlib Spec")
    if "native" in _backend.BACKENDS:
        try:
            na = _backend.api("native")
        except ImportError:  # the extension is not built here
            na = None
        if na is not None:
            ns.update(
                na_flatten=na.flatten,
                na_unflatten=na.unflatten_as,
                na_map=na.map_structure,
                na_same=na.assert_same_structure,
                na_paths=na.flatten_with_path,
                na_spec_of=na.spec_of,
            )
            available += ["nestlib native", "native Spec"]
    return ns, [i for i in IMPLS if i in available]


def cell_namespace(base: dict, st: Structure) -> dict:
    ns = dict(base, s=st.s, s2=st.s2, L=list(st.leaves), spec=base["spec_of"](st.s))
    if "na_spec_of" in base:
        ns["na_spec"] = base["na_spec_of"](st.s)
    if optree is not None:
        ns["T"] = optree.tree_structure(st.s, none_is_leaf=True)
    return ns


# --------------------------------------------------------------------------
# Result checks: every implementation must do the same work
# --------------------------------------------------------------------------


def _ids(xs) -> list[int]:
    return [id(x) for x in xs]


def check_result(op: str, impl: str, result: Any, st: Structure) -> str | None:
    """None if ``result`` is what ``op`` should give on ``st``; else why not."""
    py = _backend.api("python")
    want = _ids(st.leaves)
    if op == "flatten":
        ok = _ids(result) == want
    elif op in ("unflatten", "map1", "map2"):
        ok = type(result) is type(st.s) and _ids(py.flatten(result)) == want
        if ok:
            try:
                py.assert_same_structure(result, st.s)
            except (ValueError, TypeError):
                ok = False
    elif op == "same":
        ok = result is None or result is True
    elif op == "paths":
        paths = result[0] if impl == "optree" else [p for p, _ in result]
        leaves = result[1] if impl == "optree" else [v for _, v in result]
        ok = len(paths) == len(want) and _ids(leaves) == want
    else:  # pragma: no cover
        raise AssertionError(op)
    return None if ok else f"{impl} gave a different result for {op} on {st.name}"


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


class Cell:
    """Interleaved timings of every implementation on one (op, structure)."""

    #: time.thread_time (CPU time of this thread: time spent preempted by the other
    #: processes of a busy machine does not count) or time.perf_counter (wall).
    clock: Callable[[], float] = time.thread_time

    def __init__(self, op: str, st: Structure, impls: list[str], base_ns: dict):
        self.op, self.st = op, st
        ns = cell_namespace(base_ns, st)
        self.timers: dict[str, timeit.Timer] = {}
        self.errors: list[str] = []
        for impl in impls:
            stmt = STMTS[op].get(impl)
            if stmt is None or (impl == "tf.nest" and op == "paths" and ns["tf_paths"] is None):
                continue
            try:
                result = eval(stmt, ns)
            except Exception as e:  # an implementation that cannot do it: say so
                self.errors.append(f"{impl} failed {op} on {st.name}: {type(e).__name__}: {e}")
                continue
            problem = check_result(op, impl, result, st)
            if problem:
                self.errors.append(problem)
                continue
            self.timers[impl] = timeit.Timer(stmt, timer=self.clock, globals=ns)
        self.numbers: dict[str, int] = {}
        self.samples: dict[str, list[float]] = {impl: [] for impl in self.timers}
        self.rechecked = 0

    def calibrate(self, target_s: float) -> None:
        for impl, timer in self.timers.items():
            n = 1
            while True:
                elapsed = timer.timeit(n)
                if elapsed >= target_s or n >= 1 << 22:
                    break
                n = min(1 << 22, max(2 * n, int(n * target_s / max(elapsed, 1e-7))))
            self.numbers[impl] = n

    def run(self, samples: int) -> None:
        order = list(self.timers)
        start = len(next(iter(self.samples.values()), []))
        for i in range(samples):
            k = (start + i) % len(order)
            for impl in order[k:] + order[:k]:
                n = self.numbers[impl]
                self.samples[impl].append(self.timers[impl].timeit(n) / n * 1e6)

    stat = "median"

    def median(self, impl: str) -> float | None:
        """The reported figure: the median (or ``--stat``) of the samples."""
        xs = self.samples.get(impl)
        if not xs:
            return None
        if self.stat == "min":
            return min(xs)
        if self.stat == "p25":
            return statistics.quantiles(xs, n=4, method="inclusive")[0] if len(xs) > 1 else xs[0]
        return statistics.median(xs)

    def ratio(self, impl: str, ref: str) -> float | None:
        a, b = self.median(impl), self.median(ref)
        if a is None or b is None or b == 0:
            return None
        return a / b

    def checks(self) -> list[tuple[str, float, float, bool]]:
        """(label, ratio, limit, passed) for each target that applies here.

        ``passed`` is True (ratio within the limit), False, or None for a tie:
        over the limit by at most TIE_MARGIN, which is below what this machine
        can resolve (two calls of one compiled function differ by that much).
        """
        out = []
        op = self.op

        def add(label, impl, ref, limit, strict=False):
            r = self.ratio(impl, ref)
            if r is not None:
                ok = r < limit if strict else r <= limit
                out.append(
                    (
                        label,
                        r,
                        limit,
                        True if ok else None if r <= limit * (1 + TIE_MARGIN) else False,
                    )
                )

        if op == "flatten":
            add("nestlib", "nestlib", "dm-tree", 1.10)
        elif op == "same":
            add("nestlib", "nestlib", "dm-tree", 1.00)
        elif op in ("unflatten", "map1", "map2", "paths"):
            add("nestlib", "nestlib", "dm-tree", 1 / 3)
            add("py", "nestlib py", "dm-tree", 1.00, strict=True)
            if op != "paths":
                add("Spec", "nestlib Spec", "optree spec", 1.50)
        return out

    def missed(self) -> bool:
        return any(passed is not True for *_, passed in self.checks())


def measure(
    cells: list[Cell], samples: int, target_s: float, recheck: int, log: Callable[[str], None]
) -> None:
    for i, cell in enumerate(cells):
        log(f"[{i + 1}/{len(cells)}] {cell.op} on {cell.st.name}")
        cell.calibrate(target_s)
        cell.run(samples)
    for _ in range(recheck):
        again = [c for c in cells if c.missed()]
        for cell in again:
            log(f"recheck: {cell.op} on {cell.st.name}")
            cell.run(samples)
            cell.rechecked += 1


# --------------------------------------------------------------------------
# Import times
# --------------------------------------------------------------------------

IMPORTS = [
    ("python -c pass", "pass", {}),
    ("import nestlib", "import nestlib", {}),
    ("import nestlib (NESTLIB_BACKEND=python)", "import nestlib", {"NESTLIB_BACKEND": "python"}),
    ("import tree", "import tree", {}),
    ("import optree", "import optree", {}),
]


def import_times(runs: int) -> list[tuple[str, float, float]]:
    """(label, median CPU ms, median wall ms) of a fresh interpreter doing each import.

    CPU time (user + system, from ``getrusage(RUSAGE_CHILDREN)``) is what the
    import costs; wall time also counts waiting for a busy machine's CPUs.
    """
    import resource

    base_env = dict(os.environ)
    base_env["PYTHONPATH"] = _ROOT + os.pathsep + base_env.get("PYTHONPATH", "")
    base_env.pop("NESTLIB_BACKEND", None)
    # Time the imports as an installed package runs them: from bytecode (pip
    # compiles it; a checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise
    # compile nestlib's sources on every import, while the peers' are compiled).
    import compileall

    compileall.compile_dir(os.path.join(_ROOT, "nestlib"), quiet=1)
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in IMPORTS}
    wall: dict[str, list[float]] = {label: [] for label, _, _ in IMPORTS}
    for _ in range(runs):
        for label, code, extra in IMPORTS:
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", code],
                env=dict(base_env, **extra),
                cwd=_ROOT,
                capture_output=True,
            )
            t1 = time.perf_counter()
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if proc.returncode == 0:
                wall[label].append((t1 - t0) * 1e3)
                cpu[label].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1e3)
    return [
        (label, statistics.median(cpu[label]), statistics.median(wall[label]))
        for label in cpu
        if cpu[label]
    ]


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _fmt_us(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _fmt_cell(cell: Cell, impl: str) -> str:
    t = cell.median(impl)
    if t is None:
        return "–"
    ref = "optree spec" if impl in ("nestlib Spec", "native Spec") else "dm-tree"
    r = cell.ratio(impl, ref) if impl != ref else None
    return _fmt_us(t) if r is None else f"{_fmt_us(t)} ({r:.2f}x)"


def _fmt_check(cell: Cell) -> str:
    checks = cell.checks()
    if not checks:
        return ""
    misses = [f"{label} {r:.2f}x>{limit:.2f}x" for label, r, limit, ok in checks if ok is False]
    ties = [f"{label} {r:.2f}x~{limit:.2f}x" for label, r, limit, ok in checks if ok is None]
    if misses:
        text = "MISS: " + ", ".join(misses + ties)
    elif ties:
        text = "TIE: " + ", ".join(ties)
    else:
        text = "PASS"
    return text + (" (rechecked)" if cell.rechecked else "")


def render_table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [
            "| " + " | ".join(rows[0]) + " |",
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(rows[0]))) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append(
            "  ".join(
                c.ljust(w) if i in (0, len(r) - 1) else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            ).rstrip()
        )
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def report(cells: list[Cell], impls: list[str], ops: list[str], markdown: bool) -> str:
    out = []
    for op in ops:
        op_cells = [c for c in cells if c.op == op]
        cols = [i for i in impls if any(i in c.timers for c in op_cells)]
        header = ["structure"] + cols + ["check"]
        rows = [header] + [
            [c.st.name] + [_fmt_cell(c, i) for i in cols] + [_fmt_check(c)] for c in op_cells
        ]
        title = f"{op}: {OPS[op]} (µs per call; ratio vs dm-tree, Spec vs optree spec)"
        out.append(f"### {title}" if markdown else title)
        out.append("")
        out.append(render_table(rows, markdown))
        out.append("")
    return "\n".join(out)


def summary(cells: list[Cell]) -> str:
    results = [(c, label, r, limit, ok) for c in cells for label, r, limit, ok in c.checks()]
    n_pass = sum(1 for *_, ok in results if ok is True)
    n_tie = sum(1 for *_, ok in results if ok is None)
    lines = [
        f"targets: {n_pass} PASS, {n_tie} TIE (over by <= {TIE_MARGIN:.0%}), "
        f"{len(results) - n_pass - n_tie} MISS, of {len(results)}"
    ]
    for c, label, r, limit, ok in results:
        if ok is not True:
            word = "TIE " if ok is None else "MISS"
            lines.append(f"  {word} {c.op} {c.st.name}: {label} {r:.2f}x (limit {limit:.2f}x)")
    return "\n".join(lines)


def environment() -> str:
    parts = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPUs"]
    for name, mod in (("dm-tree", dm_tree), ("optree", optree)):
        if mod is not None:
            try:
                from importlib.metadata import version

                parts.append(f"{name} {version('dm-tree' if name == 'dm-tree' else 'optree')}")
            except Exception:  # pragma: no cover
                parts.append(name)
    if "tensorflow" in sys.modules:
        parts.append(f"tensorflow {sys.modules['tensorflow'].__version__}")
    try:
        parts.append("load avg {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    except OSError:  # pragma: no cover
        pass
    return ", ".join(parts)


# --------------------------------------------------------------------------
# Profiling one nestlib call
# --------------------------------------------------------------------------


def parse_profile(target: str, structures: dict[str, Structure]) -> tuple[str, str, str]:
    """``OP:STRUCTURE[:IMPL]`` -> (op, structure key, implementation)."""
    parts = target.split(":")
    if len(parts) not in (2, 3) or parts[0] not in STMTS or parts[1] not in structures:
        raise SystemExit(
            f"--profile wants OP:STRUCTURE[:IMPL] with OP in {sorted(STMTS)} "
            f"and STRUCTURE in {sorted(structures)}; got {target!r}"
        )
    op, key = parts[0], parts[1]
    impl = parts[2] if len(parts) == 3 else "nestlib"
    if impl not in STMTS[op]:
        raise SystemExit(f"no {impl!r} implementation of {op}; choose from {sorted(STMTS[op])}")
    return op, key, impl


def profile(op: str, key: str, impl: str, structures: dict[str, Structure], base_ns: dict) -> None:
    """Prints cProfile's statistics for about half a second of one call."""
    import cProfile
    import pstats

    stmt = STMTS[op][impl]
    ns = cell_namespace(base_ns, structures[key])
    timer = timeit.Timer(stmt, globals=ns)
    n = max(1, int(0.5 / max(timer.timeit(1), 1e-7)))
    prof = cProfile.Profile()
    prof.enable()
    timer.timeit(n)
    prof.disable()
    print(f"cProfile of {stmt!r} on {structures[key].name}, {n} calls")
    pstats.Stats(prof).sort_stats("tottime").print_stats(15)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _pick(arg: str | None, choices: list[str], aliases: dict[str, str], what: str) -> list[str]:
    if not arg:
        return list(choices)
    out = []
    for item in arg.split(","):
        item = item.strip()
        name = aliases.get(item, item)
        if name not in choices:
            raise SystemExit(
                f"unknown {what} {item!r}; choose from {', '.join(choices)}"
                + (f" (or {', '.join(sorted(aliases))})" if aliases else "")
            )
        if name not in out:
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="few, short samples (a smoke run; numbers are rough)"
    )
    parser.add_argument("--no-tf", action="store_true", help="do not import TensorFlow")
    parser.add_argument("--ops", help=f"comma-separated subset of {','.join(OPS)}")
    parser.add_argument(
        "--structures",
        help="comma-separated subset of lstm,dnc,dnc3,dict1k,dict1k_sorted,"
        "list10k,chain100,batch (or their letters a-g, d2)",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--samples", type=int, help="samples per cell (default 31; quick 3)")
    parser.add_argument(
        "--sample-ms",
        type=float,
        help="length of one sample of one implementation (default 1 ms; "
        "quick 0.3 ms); short samples dodge the scheduler's time slices",
    )
    parser.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="cpu: this thread's CPU time (default; immune to preemption by "
        "other processes); wall: perf_counter",
    )
    parser.add_argument(
        "--stat",
        choices=("median", "p25", "min"),
        default="median",
        help="statistic over samples (default median)",
    )
    parser.add_argument(
        "--recheck",
        type=int,
        help="re-measure cells that miss a target this many times, pooling "
        "samples (default 1; quick 0)",
    )
    parser.add_argument(
        "--no-import-times", action="store_true", help="skip the import-time subprocesses"
    )
    parser.add_argument(
        "--profile",
        metavar="OP:STRUCTURE[:IMPL]",
        help="cProfile one implementation's call (default nestlib) and exit",
    )
    args = parser.parse_args(argv)

    structures = make_structures()
    letters = {st.key: short for short, st in structures.items()}
    ops = _pick(args.ops, list(OPS), {}, "op")
    keys = _pick(args.structures, list(structures), letters, "structure")
    if args.profile:
        target = parse_profile(args.profile, structures)
        base_ns, available = implementation_namespace(with_tf=not args.no_tf)
        if target[2] not in available:
            raise SystemExit(f"{target[2]} is not available here (--no-tf, or not installed)")
        profile(*target, structures, base_ns)
        return 0
    samples = args.samples or (3 if args.quick else 31)
    target_s = (args.sample_ms or (0.3 if args.quick else 1.0)) / 1e3
    Cell.stat = args.stat
    Cell.clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    recheck = args.recheck if args.recheck is not None else (0 if args.quick else 1)
    if samples < 1 or recheck < 0:
        raise SystemExit("--samples must be >= 1 and --recheck >= 0")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    base_ns, impls = implementation_namespace(with_tf=not args.no_tf)
    env_before = environment()
    cells = [Cell(op, structures[k], impls, base_ns) for op in ops for k in keys]
    t0 = time.perf_counter()
    measure(cells, samples, target_s, recheck, log)
    elapsed = time.perf_counter() - t0

    print(
        f"nestlib benchmark: {samples} interleaved samples of >= {target_s * 1e3:g} ms per "
        f"implementation and cell; {args.stat} {args.clock} µs per call "
        f"({elapsed:.0f} s wall)"
    )
    print(f"before: {env_before}")
    print(f"after:  {environment()}")
    print()
    print(report(cells, impls, ops, args.markdown))
    errors = [e for c in cells for e in c.errors]
    for e in errors:
        print(f"NOT TIMED: {e}")
    print(summary(cells))
    if not args.no_import_times:
        runs = 1 if args.quick else 7
        rows = [["fresh process doing", f"CPU ms (median of {runs})", "wall ms"]]
        rows += [[label, f"{c:.0f}", f"{w:.0f}"] for label, c, w in import_times(runs)]
        print()
        print("### import time" if args.markdown else "import time")
        print()
        print(render_table(rows, args.markdown))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
