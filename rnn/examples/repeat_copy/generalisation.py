"""How a trained core copies patterns longer than any it was trained on: ``generalisation.csv``.

The DNC's case (Graves et al., 2016) is that a memory-augmented core learns an
algorithm that carries over to longer inputs. At the end of a run the job
evaluates the core on held-out batches (the ``GENERALISATION`` stream) at each
pattern length of ``--eval_lengths`` (default ``1 .. 2 * max_length``; the
repeat counts stay in the training range) and, for a DNC, at each memory
size of ``--eval_memory_sizes`` (its weights do not depend on the number of
slots, so a copy with a bigger memory takes the trained weights as they
are). Each row gives the bit error rate (wrong answer bits over answer bits)
and the fraction of sequences copied perfectly.

>>> config = Config(core="lstm", hidden_size=4, num_bits=2, max_length=2, eval_batches=1,
...                 batch_size=3)
>>> core = build_core(config)
>>> rows = evaluate_lengths(core, config)
>>> [(r["pattern_length"], r["trained"]) for r in rows]
[(1, True), (2, True), (3, False), (4, False)]
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

import rnn
from rnn.dnc import DNC
from rnn.examples.repeat_copy.config import Config, int_list
from rnn.examples.repeat_copy.model import build_core, example_errors
from rnn.examples.repeat_copy.task import GENERALISATION

__all__ = [
    "GENERALISATION_FIELDS",
    "eval_lengths",
    "eval_memory_sizes",
    "evaluate_lengths",
    "write_generalisation",
    "read_generalisation",
    "plot_generalisation",
]

GENERALISATION_FIELDS = (
    "core",
    "memory_size",
    "pattern_length",
    "trained",
    "bit_error_rate",
    "perfect_fraction",
    "sequences",
)


def eval_lengths(config: Config, trained_max_length: int | None = None) -> list[int]:
    """The pattern lengths of ``--eval_lengths``; by default ``1 .. 2 * max_length``.

    ``trained_max_length`` is the longest pattern trained on (a length
    curriculum may have raised it above ``--max_length``).

    >>> eval_lengths(Config(max_length=3)), eval_lengths(Config(eval_lengths="6,9"))
    ([1, 2, 3, 4, 5, 6], [6, 9])
    """
    if config.eval_lengths:
        return int_list("eval_lengths", config.eval_lengths)
    longest = trained_max_length or config.max_length
    return list(range(1, 2 * longest + 1))


def eval_memory_sizes(config: Config) -> list[int]:
    """The DNC memory sizes of ``--eval_memory_sizes``; by default the trained one.

    >>> eval_memory_sizes(Config(memory_size=16))
    [16]
    >>> eval_memory_sizes(Config(eval_memory_sizes="16,64"))
    [16, 64]
    """
    if config.eval_memory_sizes:
        return int_list("eval_memory_sizes", config.eval_memory_sizes)
    return [config.memory_size]


def _with_memory(core: DNC, config: Config, memory_size: int) -> DNC:
    """A copy of the trained DNC ``core`` with ``memory_size`` slots and the same weights."""
    bigger = build_core(dataclasses.replace(config, memory_size=memory_size))
    assert isinstance(bigger, DNC)
    task = config.task(batch_size=1)
    probe = task.batch(config.seed, GENERALISATION, 0)
    example_errors(bigger, *(tf.constant(x) for x in probe))  # creates its variables
    if len(bigger.variables) != len(core.variables):
        raise ValueError(
            f"a DNC with {memory_size} slots has {len(bigger.variables)} variables, the trained "
            f"one {len(core.variables)}"
        )
    for mine, trained in zip(bigger.variables, core.variables):
        if mine.shape != trained.shape:
            raise ValueError(
                f"the DNC's variable {trained.name} has shape {trained.shape} but {mine.shape} "
                f"with {memory_size} slots: its weights depend on the memory size"
            )
        mine.assign(trained)
    return bigger


def evaluate_lengths(
    core: rnn.RNNCore, config: Config, trained_max_length: int | None = None
) -> list[dict[str, Any]]:
    """One row per (memory size, pattern length): bit error rate and perfect fraction.

    Each length is scored on ``--eval_batches`` held-out batches of
    ``--batch_size`` sequences. Memory sizes other than the trained one
    apply to a DNC only (other cores are evaluated once).
    """
    lengths = eval_lengths(config, trained_max_length)
    longest_trained = trained_max_length or config.max_length
    sizes = eval_memory_sizes(config) if isinstance(core, DNC) else [config.memory_size]
    rows = []
    for size in sizes:
        model = core
        if isinstance(core, DNC) and size != config.memory_size:
            model = _with_memory(core, config, size)
        score = tf.function(
            lambda o, t, m, model=model: example_errors(model, o, t, m),
            autograph=False,
            reduce_retracing=True,
        )
        for length in lengths:
            task = dataclasses.replace(config.task(), min_length=length, max_length=length)
            wrong = bits = perfect = count = 0.0
            for i in range(config.eval_batches):
                batch = task.batch(config.seed, GENERALISATION, length * 100_000 + i)
                w, b = score(*(tf.constant(x) for x in batch))
                wrong += float(tf.reduce_sum(w))
                bits += float(tf.reduce_sum(b))
                perfect += float(tf.reduce_sum(tf.cast(w == 0.0, tf.float32)))
                count += float(w.shape[0])
            rows.append(
                {
                    "core": config.core,
                    "memory_size": size if isinstance(core, DNC) else "",
                    "pattern_length": length,
                    "trained": config.min_length <= length <= longest_trained,
                    "bit_error_rate": wrong / bits,
                    "perfect_fraction": perfect / count,
                    "sequences": int(count),
                }
            )
    return rows


def write_generalisation(path: str, rows: Sequence[dict[str, Any]]) -> None:
    """Writes the rows to ``path`` (``generalisation.csv``), replacing it.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "g.csv")
    >>> write_generalisation(path, [dict(core="dnc", memory_size=16, pattern_length=2,
    ...     trained=True, bit_error_rate=0.0, perfect_fraction=1.0, sequences=32)])
    >>> read_generalisation(path)[0]["bit_error_rate"]
    0.0
    """
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=GENERALISATION_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    **row,
                    "trained": int(bool(row["trained"])),
                    "bit_error_rate": f"{row['bit_error_rate']:.6f}",
                    "perfect_fraction": f"{row['perfect_fraction']:.6f}",
                }
            )


def read_generalisation(path: str) -> list[dict[str, Any]]:
    """The rows of a ``generalisation.csv``, with numbers as numbers."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "core": r["core"],
            "memory_size": int(r["memory_size"]) if r["memory_size"] else "",
            "pattern_length": int(r["pattern_length"]),
            "trained": r["trained"] == "1",
            "bit_error_rate": float(r["bit_error_rate"]),
            "perfect_fraction": float(r["perfect_fraction"]),
            "sequences": int(r["sequences"]),
        }
        for r in rows
    ]


def plot_generalisation(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Bit error rate and perfect fraction against pattern length, one line per core and memory.

    The lengths trained on are shaded (those of the rows marked ``trained``).

    >>> import os, tempfile
    >>> from rnn.examples.repeat_copy.plots import plots_available
    >>> rows = [dict(core="dnc", memory_size=16, pattern_length=n, trained=n <= 2,
    ...              bit_error_rate=0.1 * n, perfect_fraction=1 - 0.2 * n, sequences=8)
    ...         for n in (1, 2, 3, 4)]
    >>> path = os.path.join(tempfile.mkdtemp(), "g.png")
    >>> if plots_available():
    ...     plot_generalisation(rows, path, "demo")
    ...     assert os.path.getsize(path) > 1000
    """
    from rnn.examples.repeat_copy.plots import pyplot  # pylint: disable=import-outside-toplevel

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    curves: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        label = row["core"] + (f", {row['memory_size']} slots" if row["memory_size"] != "" else "")
        curves.setdefault(label, []).append(row)
    trained = [r["pattern_length"] for r in rows if r["trained"]]
    for ax, key, label in (
        (axes[0], "bit_error_rate", "bit error rate"),
        (axes[1], "perfect_fraction", "sequences copied perfectly"),
    ):
        if trained:
            ax.axvspan(min(trained) - 0.5, max(trained) + 0.5, color="0.9", label="trained lengths")
        for name, points in curves.items():
            points = sorted(points, key=lambda r: r["pattern_length"])
            ax.plot(
                [p["pattern_length"] for p in points], [p[key] for p in points], "o-", label=name
            )
        ax.set_xlabel("pattern length")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"repeat copy beyond the training lengths: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
