"""The run's two figures: ``learning_curve.png`` and, for the DNC, ``memory.png``.

matplotlib is optional: :func:`plots_available` says whether it is installed,
so that a run without it warns before training (:data:`NO_PLOTS`) and still
writes its metrics and checkpoints. It is imported only to draw, with the
non-interactive Agg backend.

>>> isinstance(plots_available(), bool)
True
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import tensorflow as tf

from rnn.dnc import DNC
from rnn.examples.repeat_copy.config import Config
from rnn.examples.repeat_copy.task import PLOT
from rnn.unroll import dynamic_unroll

__all__ = [
    "NO_PLOTS",
    "plots_available",
    "pyplot",
    "plot_learning_curve",
    "record_memory",
    "plot_memory",
]


def plots_available() -> bool:
    """Whether matplotlib (an optional dependency, for the two figures) is installed.

    Checked before training, so that a run without it says so at once and
    still writes its metrics and checkpoints, instead of dying at the end.

    >>> plots_available() == (importlib.util.find_spec("matplotlib") is not None)
    True
    """
    return importlib.util.find_spec("matplotlib") is not None


NO_PLOTS = (
    "matplotlib is not installed, so this run writes metrics.csv and checkpoints "
    "but not learning_curve.png, memory.png or generalisation.png; pip install matplotlib (or the "
    "project's test extra) to get them"
)


def pyplot() -> Any:
    """matplotlib's pyplot with the non-interactive Agg backend (imported only to draw)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    return plt


def plot_learning_curve(rows: list[dict[str, Any]], path: str, title: str) -> None:
    """Cost and bit errors per sequence against the step, training and held-out.

    ``rows`` are ``metrics.csv`` rows (see :mod:`rnn.examples.repeat_copy.metrics`).

    >>> import os, tempfile
    >>> from rnn.examples.repeat_copy.metrics import metrics_row
    >>> rows = [metrics_row(s, 0.0, [10.0 / s, 1.0, 1.0], 9.0 / s, 0.5) for s in (1, 2, 3)]
    >>> path = os.path.join(tempfile.mkdtemp(), "curve.png")
    >>> if plots_available():  # (matplotlib is optional)
    ...     plot_learning_curve(rows, path, "lstm")
    ...     assert os.path.getsize(path) > 1000
    """
    plt = pyplot()
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in (
        (axes[0], "cost", "cost (nats / sequence)"),
        (axes[1], "bit_errors", "bit errors / sequence"),
    ):
        ax.plot(steps, [float(r[f"train_{key}"]) for r in rows], label="training")
        ax.plot(steps, [float(r[f"eval_{key}"]) for r in rows], label="held-out")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.set_yscale("symlog", linthresh=0.1)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"repeat copy: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def record_memory(core: DNC, observations: np.ndarray) -> dict[str, np.ndarray]:
    """Unrolls ``core`` over one ``[T, 1, C]`` sequence, keeping its memory weightings.

    The weightings come from the unroll's state sequence
    (``return_all_states=True``).

    Returns arrays over time: ``write_weights [T, Wh, N]``, ``read_weights
    [T, R, N]``, ``usage [T, N]`` and the ``outputs`` (sigmoid) ``[T, C']``.

    >>> dnc = DNC(output_size=2, memory_size=5, word_size=3, num_reads=2)
    >>> rec = record_memory(dnc, np.zeros([4, 1, 3], np.float32))
    >>> {k: v.shape for k, v in sorted(rec.items())}
    {'outputs': (4, 2), 'read_weights': (4, 2, 5), 'usage': (4, 5), 'write_weights': (4, 1, 5)}
    """
    outputs, _, states = dynamic_unroll(
        core, tf.constant(observations), core.initial_state(1), return_all_states=True
    )
    access = states.access_state
    return {
        "write_weights": access.write_weights[:, 0].numpy(),
        "read_weights": access.read_weights[:, 0].numpy(),
        "usage": access.usage[:, 0].numpy(),
        "outputs": tf.sigmoid(outputs[:, 0]).numpy(),
    }


def plot_memory(core: DNC, config: Config, path: str) -> None:
    """Inputs, targets, outputs, write/read weights and usage over a held-out example.

    The example is the longest of 16 from the ``PLOT`` stream of ``config.seed``.

    >>> import os, tempfile
    >>> config = Config(num_bits=2, max_length=2, hidden_size=4, memory_size=4, num_reads=1)
    >>> dnc = DNC(output_size=3, memory_size=4, word_size=3, num_reads=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "memory.png")
    >>> if plots_available():  # (matplotlib is optional)
    ...     plot_memory(dnc, config, path)
    ...     assert os.path.getsize(path) > 1000
    """
    task = config.task(batch_size=1)
    # The longest of a few held-out examples shows the most.
    examples = [task.batch(config.seed, PLOT, i, batch_size=1) for i in range(16)]
    example = max(examples, key=lambda b: b.observations.shape[0])
    rec = record_memory(core, example.observations)
    plt = pyplot()
    panels = [
        ("input", example.observations[:, 0].T),
        ("target", (example.targets[:, 0] * example.mask[:, :1]).T),
        ("output (masked)", (rec["outputs"] * example.mask[:, :1]).T),
        ("write weights", rec["write_weights"].sum(axis=1).T),
    ]
    panels += [
        (f"read weights, head {r}", rec["read_weights"][:, r].T)
        for r in range(rec["read_weights"].shape[1])
    ]
    panels.append(("usage", rec["usage"].T))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.3 * len(panels) + 1), sharex=True)
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_yticks([])
    axes[-1].set_xlabel("time step")
    fig.suptitle("DNC memory over one held-out repeat-copy example")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
