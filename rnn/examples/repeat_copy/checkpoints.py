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
import glob
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn.examples.repeat_copy.config import RESUMABLE, Config, ConfigError

__all__ = ["OUTPUT_FILES", "Progress", "prepare_output_dir", "Checkpoints"]

# What a fresh run replaces in its output directory (besides checkpoints/).
OUTPUT_FILES = (
    "metrics.csv",
    "learning_curve.png",
    "memory.png",
    "generalisation.csv",
    "generalisation.png",
)


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
        # The longest training pattern now (a length curriculum raises it).
        self.max_length = tf.Variable(0, dtype=tf.int64, trainable=False)


def prepare_output_dir(config: Config, explicit: set[str], writer: bool = True) -> dict[str, Any]:
    """Writes config.json (fresh run) or checks it against the flags (``--resume``).

    A fresh run removes what an earlier run left in ``--output_dir`` (its
    checkpoints and :data:`OUTPUT_FILES`, nothing else). On ``--resume``,
    flags not in ``explicit`` (those left out on the command line) take the
    run's saved values, in place in ``config``; an explicit flag that would
    change the run's maths (not in ``RESUMABLE``) and differs is a
    :class:`~rnn.examples.repeat_copy.config.ConfigError`, and so is a
    directory with nothing to resume. Returns the run's saved flags. Only the
    ``writer`` (the chief of a multi-worker run) removes or writes files; the
    other workers only read.

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
        if not glob.glob(os.path.join(ckpt_dir, "*.index")) or not os.path.exists(config_path):
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
    saved = {k: v for k, v in dataclasses.asdict(config).items() if k != "resume"}
    if not writer:
        return saved
    os.makedirs(out, exist_ok=True)
    # A fresh run replaces what an earlier run left here (only our own files).
    if os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)
    for name in OUTPUT_FILES:
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
    return saved


class Checkpoints:
    """The run's checkpoints: ``core``, ``optimizer`` and a :class:`Progress`, two kept.

    The chief saves to ``<output_dir>/checkpoints``; the other workers of a
    multi-worker run (checkpointing is collective) to a scratch folder,
    ``worker_scratch_<task index>``. Every worker restores from the chief's
    folder, so all resume from the same step.

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
        self.directory = os.path.join(output_dir, "checkpoints")
        self.writer = worker is None
        name = "checkpoints" if worker is None else f"worker_scratch_{worker}"
        self._save_dir = os.path.join(output_dir, name)
        self._manager: tf.train.CheckpointManager | None = None

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The manager that saves, made on first use (it reads the folder's index
        file, which :meth:`restore` may first have to repair)."""
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, self._save_dir, max_to_keep=2
            )
        return self._manager

    def restore(self) -> None:
        """Restores the newest complete checkpoint; every saved value must find its variable.

        A damaged checkpoint (a file cut short by a kill or a full disk,
        garbage, a missing piece) is skipped with a warning naming it, and the
        previous one is used; the chief moves the damaged files aside (to
        ``*.damaged``) so that later saves do not mix with them. When no
        checkpoint can be read, the
        :class:`~rnn.examples.repeat_copy.config.ConfigError` names each and
        what is wrong with it: a run never silently starts again from step 0.
        """
        paths, index_ok = _checkpoints_newest_first(self.directory)
        if not paths:
            raise ConfigError(f"--resume: no checkpoint to resume from in {self.directory!r}")
        damaged: list[tuple[str, str]] = []
        for path in paths:
            problem = _damage(path)
            if problem is not None:
                damaged.append((path, problem))
                continue
            status = self.checkpoint.restore(path)
            try:
                status.assert_consumed()
            except AssertionError as e:
                raise ConfigError(
                    f"--resume: checkpoint {path!r} does not match the model and optimizer "
                    f"of this run (was it written by another version of the job?): "
                    f"{str(e)[:300]}"
                ) from e
            if damaged:
                names = "; ".join(f"{p!r} ({why})" for p, why in damaged)
                warnings.warn(
                    f"--resume: skipped damaged checkpoint(s) {names}; resuming from {path!r}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if self.writer and (damaged or not index_ok):
                _set_aside(self.directory, [p for p, _ in damaged], path, paths)
                self._manager = None
            return
        names = "; ".join(f"{p!r}: {why}" for p, why in damaged)
        raise ConfigError(
            f"--resume: no checkpoint in {self.directory!r} can be read: {names}. Start a "
            "fresh run (without --resume), or restore the folder from a backup"
        )

    def save(
        self, step: int, elapsed_s: float, window: Sequence[float], max_length: int = 0
    ) -> None:
        """Saves the model, the optimizer and the run's progress as checkpoint ``step``."""
        self.progress.max_length.assign(max_length)
        self.progress.step.assign(step)
        self.progress.elapsed_s.assign(elapsed_s)
        self.progress.window.assign(list(window))
        self.manager.save(checkpoint_number=step)


def _checkpoints_newest_first(directory: str) -> tuple[list[str], bool]:
    """The checkpoint prefixes in ``directory``, newest first, and whether the index is sound.

    From the ``checkpoint`` index file; if that is unreadable, from the
    ``*.index`` files themselves (ordered by their step numbers).
    """
    try:
        state = tf.train.get_checkpoint_state(directory)
        if state is not None:
            paths = list(reversed(state.all_model_checkpoint_paths))
            return paths or [state.model_checkpoint_path], True
    # A garbage index file fails in TensorFlow's text parser or its UTF-8
    # decoding, whichever comes first: both mean damaged.
    except Exception as e:
        warnings.warn(
            f"--resume: the checkpoint index {os.path.join(directory, 'checkpoint')!r} is "
            f"damaged ({type(e).__name__}); looking for checkpoint files instead",
            RuntimeWarning,
            stacklevel=3,
        )
    if not os.path.isdir(directory):
        return [], False
    found = []
    for name in os.listdir(directory):
        stem, _, number = name[: -len(".index")].rpartition("-")
        if name.endswith(".index") and stem and number.isdigit():
            found.append((int(number), os.path.join(directory, name[: -len(".index")])))
    return [path for _, path in sorted(found, reverse=True)], False


def _damage(path: str) -> str | None:
    """What is wrong with checkpoint ``path`` (None when every saved value reads back)."""
    try:
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    # TensorFlow's reader fails in many ways on a damaged file (IndexError on a
    # short read, DataLossError, NotFoundError, ValueError...): all mean damaged.
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [""])[0][:200]
        return f"{type(e).__name__}: {first_line}"
    return None


def _set_aside(directory: str, damaged: Sequence[str], restored: str, paths: Sequence[str]) -> None:
    """Renames the damaged checkpoints' files to ``*.damaged`` and rewrites the index."""
    for prefix in damaged:
        folder, stem = os.path.split(prefix)
        for name in os.listdir(folder or "."):
            if name.startswith(stem + ".") and not name.endswith(".damaged"):
                full = os.path.join(folder, name)
                os.replace(full, full + ".damaged")
    kept = [p for p in reversed(paths) if p not in damaged]
    kept = kept[: kept.index(restored) + 1]
    # (No TF2 name for it: CheckpointManager writes the same file the same way.)
    tf.compat.v1.train.update_checkpoint_state(
        directory, model_checkpoint_path=restored, all_model_checkpoint_paths=kept
    )
