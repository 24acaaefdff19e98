"""The custom training loop of the Keras multi-worker example, its flags and :func:`main`.

A Keras model (``rnn.keras.RNN(rnn.LSTM(...))`` and a ``Dense`` read-out) is
trained by a loop of our own: ``strategy.run`` computes each replica's
gradients on its share of the global batch, an all-reduce sums them, and the
Keras optimizer's ``apply`` updates the (mirrored) weights. ``model.fit``
cannot do this under ``MultiWorkerMirroredStrategy`` in Keras 3 (see
:mod:`rnn.examples.keras_multi_worker.fit_check`).

>>> import tempfile
>>> summary = train(parse_config(["--steps", "3", "--batch_size", "4", "--hidden_size", "4",
...     "--output_dir", tempfile.mkdtemp()]))  # doctest: +ELLIPSIS
keras_multi_worker: step=3 loss=... (1 worker, 1 replica); 3 steps in ...
>>> summary["step"], len(summary["losses"])
(3, 3)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import rnn
import rnn.keras
from rnn.examples.local_cluster import (
    PEER_LOST_STATUS,
    PeerLostError,
    is_chief_task,
    peer_lost_error,
    run_training_workers,
    task_of,
)
from rnn.examples.local_cluster import peer_lost as _peer_lost
from rnn.examples.repeat_copy.checkpoints import Checkpoints
from rnn.examples.repeat_copy.config import ConfigError
from rnn.examples.repeat_copy.distribute import cluster_place, is_chief

__all__ = [
    "Config",
    "build_parser",
    "parse_config",
    "global_batch",
    "build_model",
    "make_strategy",
    "Trainer",
    "read_losses",
    "train",
    "main",
    "METRICS_FILE",
    "PEER_LOST_STATUS",
]

# The chief's CSV: one row (step, loss) per training step.
METRICS_FILE = "metrics.csv"
# Flags that may differ when a run is resumed (they do not change its maths).
RESUMABLE = ("steps", "checkpoint_every", "collective_timeout_s")
# Flags that say how this process runs, never read back from config.json.
LAUNCH = ("distribute", "local_workers", "resume", "output_dir")


@dataclasses.dataclass
class Config:
    """The flags of a run (``--help`` says what each means).

    >>> Config().hidden_size
    16
    """

    steps: int = 200
    batch_size: int = 16
    time_steps: int = 8
    features: int = 3
    hidden_size: int = 16
    learning_rate: float = 0.01
    seed: int = 1
    checkpoint_every: int = 20
    output_dir: str = os.path.join("runs", "keras_multi_worker")
    resume: bool = False
    distribute: str = "none"
    local_workers: int = 0
    collective_timeout_s: float = 120.0

    def validate(self) -> None:
        """Raises :class:`~rnn.examples.repeat_copy.config.ConfigError` naming the first bad flag.

        >>> Config(steps=0).validate()
        Traceback (most recent call last):
        ...
        rnn.examples.repeat_copy.config.ConfigError: --steps must be >= 1, got 0
        """
        for name in ("steps", "batch_size", "time_steps", "features", "hidden_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"--checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(
                f"--learning_rate must be a positive number, got {self.learning_rate}"
            )
        if self.distribute not in ("none", "multi_worker"):
            raise ConfigError(f"--distribute must be none or multi_worker, got {self.distribute!r}")
        if self.local_workers < 0:
            raise ConfigError(f"--local_workers must be >= 0, got {self.local_workers}")
        if not (self.collective_timeout_s > 0 and math.isfinite(self.collective_timeout_s)):
            raise ConfigError(
                f"--collective_timeout_s must be a positive number, got {self.collective_timeout_s}"
            )


_HELP = {
    "steps": "total training steps (a resumed run continues up to this)",
    "batch_size": "sequences per step, over all workers (each trains on its share)",
    "time_steps": "steps per sequence",
    "features": "features per time step",
    "hidden_size": "units of the LSTM",
    "learning_rate": "Adam's learning rate",
    "seed": "seed of the initial weights and of the data (batch s depends on (seed, s) only)",
    "checkpoint_every": "save a checkpoint every N steps (and at the end)",
    "output_dir": "where metrics.csv, config.json and checkpoints/ go",
    "resume": "continue the run in --output_dir from its latest readable checkpoint",
    "distribute": "none (one process) or multi_worker (MultiWorkerMirroredStrategy; "
    "the cluster comes from TF_CONFIG)",
    "local_workers": "start this many multi_worker processes on this machine (TF_CONFIG set "
    "for each, free localhost ports; 0: none)",
    "collective_timeout_s": "multi_worker: a collective (one step's gradient sum) that takes "
    "longer fails, so a worker whose peer vanished stops instead of waiting",
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: every :class:`Config` field is a flag.

    >>> build_parser().parse_args(["--steps", "7"]).steps
    7
    """
    parser = argparse.ArgumentParser(
        prog="python -m rnn.examples.keras_multi_worker",
        description="Train a Keras model holding rnn.keras.RNN(rnn.LSTM) with a custom "
        "loop, on one process or several workers (MultiWorkerMirroredStrategy).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for field in dataclasses.fields(Config):
        default = getattr(Config(), field.name)
        flag, text = "--" + field.name, _HELP[field.name]
        if field.name == "resume":
            parser.add_argument(flag, action="store_true", help=text)
        elif field.name == "distribute":
            parser.add_argument(flag, choices=("none", "multi_worker"), default=default, help=text)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=text)
    return parser


def parse_config(argv: Sequence[str]) -> Config:
    """Parses and checks ``argv``; bad flags exit with the usage line (status 2).

    The flags given explicitly are remembered (``config._explicit``): on
    ``--resume`` the others take the saved run's values.

    >>> config = parse_config(["--steps", "5", "--resume"])
    >>> config.steps, config.resume, sorted(config._explicit)
    (5, True, ['resume', 'steps'])
    """
    parser = build_parser()
    config = Config(**vars(parser.parse_args(list(argv))))
    try:
        config.validate()
    except ConfigError as e:
        parser.error(str(e))
    quiet = build_parser()
    for action in quiet._actions:  # pylint: disable=protected-access
        action.default = argparse.SUPPRESS
    config._explicit = set(vars(quiet.parse_args(list(argv))))  # type: ignore[attr-defined]
    return config


def global_batch(config: Config, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole batch of ``step``: inputs ``[B, T, F]`` and targets ``[B, 1]``.

    A pure function of ``(seed, step)``, so every worker (and a resumed run)
    computes the same batch; the target is the mean of the first feature
    over time.

    >>> x, y = global_batch(Config(batch_size=2, time_steps=4), step=0)
    >>> x.shape, y.shape, bool(np.allclose(y[:, 0], x[:, :, 0].mean(axis=1)))
    ((2, 4, 3), (2, 1), True)
    """
    rng = np.random.default_rng([config.seed, step])
    x = rng.normal(size=(config.batch_size, config.time_steps, config.features))
    x = x.astype(np.float32)
    return x, x[:, :, :1].mean(axis=1)


def build_model(config: Config) -> keras.Model:
    """``Input -> rnn.keras.RNN(rnn.LSTM(hidden_size)) -> Dense(1)``.

    >>> model = build_model(Config(time_steps=4, hidden_size=2))
    >>> model(np.zeros((1, 4, 3), "float32")).shape
    TensorShape([1, 1])
    """
    return keras.Sequential(
        [
            keras.Input((config.time_steps, config.features)),
            rnn.keras.RNN(rnn.LSTM(config.hidden_size)),
            keras.layers.Dense(1),
        ]
    )


def make_strategy(config: Config) -> tf.distribute.Strategy:
    """The default strategy, or ``MultiWorkerMirroredStrategy`` with bounded collectives.

    Under ``--distribute multi_worker`` every collective fails after
    ``--collective_timeout_s`` seconds, so a peer that vanishes without closing
    its connections stops the others instead of hanging them.

    >>> make_strategy(Config()).num_replicas_in_sync
    1
    """
    if config.distribute == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=config.collective_timeout_s
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return tf.distribute.get_strategy()


class Trainer:
    """The strategy, the model, Keras' Adam, the checkpoints and the compiled step.

    :meth:`train_step` runs one step on the global batch of a step number:
    every replica takes its consecutive share of it, computes the gradients of
    its part of the batch-mean squared error, the replicas sum them, and the
    optimizer applies the sum (the whole batch's gradients).

    >>> import tempfile
    >>> trainer = Trainer(Config(batch_size=2, hidden_size=2, output_dir=tempfile.mkdtemp()))
    >>> loss = trainer.train_step(0)
    >>> int(trainer.optimizer.iterations), loss > 0
    (1, True)
    """

    def __init__(self, config: Config):
        self.config = config
        self.strategy = make_strategy(config)
        self.replicas = int(self.strategy.num_replicas_in_sync)
        if config.batch_size % self.replicas:
            raise ConfigError(
                f"--batch_size ({config.batch_size}) must be a multiple of the "
                f"{self.replicas} replicas"
            )
        self.chief = is_chief(self.strategy)
        self.task_id, self.workers = cluster_place(self.strategy)
        # The same initial weights in every process (under MultiWorkerMirroredStrategy
        # worker 0's are also broadcast to the others).
        keras.utils.set_random_seed(config.seed)
        with self.strategy.scope():
            self.model = build_model(config)
            self.optimizer = keras.optimizers.Adam(config.learning_rate)
            self.optimizer.build(self.model.trainable_variables)
        # The chief saves into <output_dir>/checkpoints, the others (saving is
        # collective) into worker_scratch_<index>; all restore from the chief's.
        self.checkpoints = Checkpoints(
            config.output_dir, self.model, self.optimizer, None if self.chief else self.task_id
        )
        self._step = tf.function(self._step_fn, autograph=False, reduce_retracing=True)

    def _step_fn(self, x: Any, y: Any) -> tf.Tensor:
        variables = self.model.trainable_variables
        scale = 1.0 / float(self.config.batch_size)

        def replica(x: tf.Tensor, y: tf.Tensor) -> Any:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(self.model(x, training=True) - y)) * scale
            grads = tape.gradient(loss, variables)
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads, loss])

        results = self.strategy.run(replica, args=(x, y))
        grads, loss = self.strategy.experimental_local_results(results)[0]
        self.optimizer.apply(grads, variables)
        return loss

    def inputs(self, step: int) -> tuple[Any, Any]:
        """This process's replicas' shares of the global batch of ``step``.

        Replica ``r`` of ``R`` (numbered over all workers) takes examples
        ``[r * B / R, (r + 1) * B / R)``: the shares are disjoint and cover
        the batch, and do not depend on timing.
        """
        x, y = global_batch(self.config, step)
        if self.replicas == 1:
            return tf.constant(x), tf.constant(y)
        share = self.config.batch_size // self.replicas

        def value_fn(ctx: tf.distribute.InputContext) -> tuple[tf.Tensor, tf.Tensor]:
            r = ctx.replica_id_in_sync_group
            return tf.constant(x[r * share : (r + 1) * share]), tf.constant(
                y[r * share : (r + 1) * share]
            )

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def train_step(self, step: int) -> float:
        """Trains on the global batch of ``step``; returns its mean squared error."""
        return float(self._step(*self.inputs(step)))


def read_losses(output_dir: str) -> list[tuple[int, float]]:
    """The ``(step, loss)`` rows of a run's ``metrics.csv`` (none when there is no file).

    >>> import tempfile
    >>> read_losses(tempfile.mkdtemp())
    []
    """
    path = os.path.join(output_dir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [(int(row["step"]), float(row["loss"])) for row in csv.DictReader(f)]


def _prepare_output_dir(config: Config, writer: bool) -> None:
    """A fresh run: clears our files and writes config.json. ``--resume``: reads it back."""
    out = config.output_dir
    path = os.path.join(out, "config.json")
    explicit = getattr(config, "_explicit", set(dataclasses.asdict(config)))
    if config.resume:
        if not os.path.exists(path):
            raise ConfigError(f"--resume: no run to resume in {out!r} (no config.json)")
        with open(path) as f:
            saved = json.load(f)
        for name, value in saved.items():
            if name in LAUNCH or not hasattr(config, name):
                continue
            if name not in explicit:
                setattr(config, name, value)
            elif name not in RESUMABLE and getattr(config, name) != value:
                raise ConfigError(
                    f"--resume: --{name} {getattr(config, name)!r} differs from the run being "
                    f"resumed ({value!r}); leave it out to keep the run's value"
                )
        config.validate()
        return
    if not writer:
        return
    os.makedirs(out, exist_ok=True)
    shutil.rmtree(os.path.join(out, "checkpoints"), ignore_errors=True)
    if os.path.exists(os.path.join(out, METRICS_FILE)):
        os.remove(os.path.join(out, METRICS_FILE))
    with open(path, "w") as f:
        saved = {k: v for k, v in dataclasses.asdict(config).items() if k not in LAUNCH}
        json.dump(saved, f, indent=2, sort_keys=True)


def train(config: Config) -> dict[str, Any]:
    """Trains (or, with ``config.resume``, continues) a run; returns a summary.

    Every worker runs this. The chief writes ``config.json``, ``metrics.csv``
    (a row per step, flushed as it goes) and ``checkpoints/``. Raises
    :class:`~rnn.examples.repeat_copy.config.ConfigError` for a run that
    cannot start (nothing to resume, a damaged checkpoint folder, flags that
    differ from the resumed run's) and
    :class:`~rnn.examples.local_cluster.PeerLostError` when another
    worker disappears.
    """
    config.validate()
    _prepare_output_dir(config, writer=is_chief_task())
    trainer = Trainer(config)
    rows: list[tuple[int, float]] = []
    if config.resume:
        trainer.checkpoints.restore()
        restored = int(trainer.checkpoints.progress.step.numpy())
        # (Rows past the checkpoint were trained again after it.)
        rows = [row for row in read_losses(config.output_dir) if row[0] <= restored]
    step = int(trainer.checkpoints.progress.step.numpy())
    saved_step, start_step, start = step, step, time.monotonic()
    csv_file = None
    if trainer.chief:
        csv_file = open(os.path.join(config.output_dir, METRICS_FILE), "w", newline="")
        writer = csv.writer(csv_file)
        writer.writerow(("step", "loss"))
        writer.writerows((s, f"{loss:.9g}") for s, loss in rows)
        csv_file.flush()
    try:
        while step < config.steps:
            loss = trainer.train_step(step)
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"training diverged at step {step}: loss {loss}; try a lower --learning_rate"
                )
            step += 1
            rows.append((step, loss))
            if csv_file is not None:
                writer.writerow((step, f"{loss:.9g}"))
                csv_file.flush()
            if step % config.checkpoint_every == 0 or step == config.steps:
                trainer.checkpoints.save(step, time.monotonic() - start, [0.0, 0.0, 0.0])
                saved_step = step
    except tf.errors.OpError as e:
        if trainer.workers == 1 or not _peer_lost(e):
            raise
        raise peer_lost_error(
            "keras_multi_worker",
            trainer.task_id,
            step,
            saved_step,
            os.path.join(config.output_dir, "checkpoints"),
            e,
        ) from e
    finally:
        if csv_file is not None:
            csv_file.close()
    seconds = time.monotonic() - start
    summary = {
        "step": step,
        "steps_run": step - start_step,
        "seconds": seconds,
        "loss": rows[-1][1] if rows else float("nan"),
        "losses": rows,
        "workers": trainer.workers,
        "replicas": trainer.replicas,
        "output_dir": config.output_dir,
    }
    if trainer.chief:
        workers, replicas = trainer.workers, trainer.replicas
        print(
            f"keras_multi_worker: step={step} loss={summary['loss']:.6f} "
            f"({workers} worker{'s' * (workers > 1)}, {replicas} replica{'s' * (replicas > 1)}); "
            f"{summary['steps_run']} steps in {seconds:.1f}s; outputs in {config.output_dir}",
            flush=True,
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status.

    Bad flags exit with the usage line and a message naming the flag
    (status 2); a worker that lost a peer prints how to resume and returns
    :data:`PEER_LOST_STATUS` (3, as the repeat-copy job).

    >>> main(["--steps", "0"])  # (the message goes to stderr)
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    config = parse_config(argv)
    if config.local_workers and task_of() is None:
        return run_training_workers(
            "keras_multi_worker",
            "rnn.examples.keras_multi_worker",
            argv,
            config.local_workers,
            config.output_dir,
            config.collective_timeout_s,
        )
    try:
        train(config)
    except ConfigError as e:
        build_parser().error(str(e))
    except PeerLostError as e:
        print(e, file=sys.stderr, flush=True)
        return PEER_LOST_STATUS
    return 0
