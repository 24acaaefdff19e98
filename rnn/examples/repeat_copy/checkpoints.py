"""What a repeat-copy run saves so that ``--resume`` continues it exactly.

The output directory holds ``config.json`` (the run's flags, written by a
fresh run and read back by ``--resume``) and ``checkpoints/``: the model, the
optimizer (Adam's moments and step count) and the run's :class:`Progress`
(step, wall time, and the partial sums of the current CSV row). Together with
the data stream (batch ``s`` is a pure function of ``(seed, s)``), that is
all a resumed run needs to end as the uninterrupted run would have.

>>> import tempfile
>>> config = Config(output_dir=tempfile.mkdtemp(), steps=5)
>>> sorted(prepare_output_dir(config, explicit=set()))[:3]
['batch_size', 'checkpoint_every', 'clip_value']
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn.examples.repeat_copy.config import RESUMABLE, Config, ConfigError

__all__ = ["OUTPUT_FILES", "Progress", "prepare_output_dir", "Checkpoints"]

# What a fresh run replaces in its output directory (besides checkpoints/).
OUTPUT_FILES = ("metrics.csv", "learning_curve.png", "memory.png")


class Progress(tf.Module):
    """Run bookkeeping stored in the checkpoints next to the model and optimizer.

    >>> Progress().window.numpy().tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(self) -> None:
        super().__init__(name="progress")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.elapsed_s = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        # Sums since the last CSV row, so a resumed run writes the same rows.
        self.window = tf.Variable([0.0, 0.0, 0.0], dtype=tf.float64, trainable=False)


def prepare_output_dir(config: Config, explicit: set[str]) -> dict[str, Any]:
    """Writes config.json (fresh run) or checks it against the flags (``--resume``).

    A fresh run removes what an earlier run left in ``--output_dir`` (its
    checkpoints and :data:`OUTPUT_FILES`, nothing else). On ``--resume``,
    flags not in ``explicit`` (those left out on the command line) take the
    run's saved values, in place in ``config``; an explicit flag that would
    change the run's maths (not in ``RESUMABLE``) and differs is a
    :class:`~rnn.examples.repeat_copy.config.ConfigError`, and so is a
    directory with nothing to resume. Returns the run's saved flags.

    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> prepare_output_dir(Config(output_dir=out, resume=True), explicit=set())
    Traceback (most recent call last):
    ...
    rnn.examples.repeat_copy.config.ConfigError: --resume: no checkpoint to resume from in '...'
    """
    out = config.output_dir
    config_path = os.path.join(out, "config.json")
    ckpt_dir = os.path.join(out, "checkpoints")
    if config.resume:
        if not tf.train.latest_checkpoint(ckpt_dir) or not os.path.exists(config_path):
            raise ConfigError(f"--resume: no checkpoint to resume from in {ckpt_dir!r}")
        with open(config_path) as f:
            saved = json.load(f)
        for name, value in saved.items():
            if name in ("resume", "output_dir") or not hasattr(config, name):
                continue
            if name not in explicit:
                setattr(config, name, value)  # Flags left out keep the run's value.
            elif name not in RESUMABLE and getattr(config, name) != value:
                raise ConfigError(
                    f"--resume: --{name} {getattr(config, name)!r} differs from the "
                    f"run being resumed ({value!r}); leave it out to keep the run's value"
                )
        return saved
    os.makedirs(out, exist_ok=True)
    # A fresh run replaces what an earlier run left here (only our own files).
    if os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    for name in OUTPUT_FILES:
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    saved = {k: v for k, v in dataclasses.asdict(config).items() if k != "resume"}
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
    return saved


class Checkpoints:
    """The run's checkpoints: ``core``, ``optimizer`` and a :class:`Progress`, two kept.

    The chief saves to ``<output_dir>/checkpoints``; the other workers of a
    multi-worker run (checkpointing is collective) to a scratch folder,
    ``worker_scratch_<task index>``.

    >>> import tempfile
    >>> module = tf.Module()
    >>> module.v = tf.Variable(1.0)
    >>> ckpts = Checkpoints(tempfile.mkdtemp(), module, tf.Module())
    >>> ckpts.save(step=3, elapsed_s=1.0, window=[0.5, 0.0, 1.0])
    >>> _ = module.v.assign(2.0)
    >>> ckpts.restore()
    >>> float(module.v), int(ckpts.progress.step)
    (1.0, 3)
    """

    def __init__(self, output_dir: str, core: tf.Module, optimizer: Any, worker: int | None = None):
        self.progress = Progress()
        self.checkpoint = tf.train.Checkpoint(
            core=core, optimizer=optimizer, progress=self.progress
        )
        name = "checkpoints" if worker is None else f"worker_scratch_{worker}"
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, os.path.join(output_dir, name), max_to_keep=2
        )

    def restore(self) -> None:
        """Restores the latest checkpoint; every saved value must find its variable."""
        path = self.manager.latest_checkpoint
        if path is None:
            raise ConfigError(
                f"--resume: no checkpoint to resume from in {self.manager.directory!r}"
            )
        status = self.checkpoint.restore(path)
        try:
            status.assert_consumed()
        except AssertionError as e:
            raise ConfigError(
                f"--resume: checkpoint {path!r} does not match the model and optimizer "
                f"of this run (was it written by another version of the job?): "
                f"{str(e)[:300]}"
            ) from e

    def save(self, step: int, elapsed_s: float, window: Sequence[float]) -> None:
        """Saves the model, the optimizer and the run's progress as checkpoint ``step``."""
        self.progress.step.assign(step)
        self.progress.elapsed_s.assign(elapsed_s)
        self.progress.window.assign(list(window))
        self.manager.save(checkpoint_number=step)
