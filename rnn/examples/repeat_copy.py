"""Train a recurrent core on the repeat-copy task: ``python -m rnn.examples.repeat_copy``.

The same training code drives every core (``--core dnc|lstm|gru|deep``): the
model is built by :func:`build_core`, unrolled with :func:`rnn.dynamic_unroll`
and trained with Adam on the masked sigmoid cross-entropy. The run writes, in
``--output_dir`` (default ``runs/repeat_copy``):

* ``metrics.csv``: step, wall time, training cost and bit errors (averaged
  over the steps since the previous row) and held-out cost and bit errors,
  all per sequence;
* ``learning_curve.png``: the same, plotted;
* ``memory.png`` (DNC only): write weights, read weights and usage over one
  held-out example;
* ``checkpoints/``: model, optimizer and progress every ``--checkpoint_every``
  steps; ``--resume`` continues exactly where the last one stopped (same step,
  optimizer state and data: batch ``s`` is a pure function of ``(seed, s)``);
* ``config.json``: the flags of the run.

Cost is in nats per sequence (summed over the answer steps and channels,
averaged over sequences); bit errors count wrong answer bits per sequence
(the output thresholded at 0.5).

Example (a tiny run, as in the tests)::

    python -m rnn.examples.repeat_copy --core lstm --steps 20 --no-jit

>>> config = parse_config(["--core", "gru", "--steps", "3"])
>>> config.core, config.steps
('gru', 3)
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
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

import rnn
from rnn.dnc import DNC, Linear
from rnn.examples.repeat_copy_task import EVAL, PLOT, TRAIN, Batch, RepeatCopyTask

__all__ = [
    "Config",
    "ConfigError",
    "Adam",
    "build_parser",
    "parse_config",
    "build_core",
    "sequence_sums",
    "train",
    "main",
]

CORES = ("dnc", "lstm", "gru", "deep")
DISTRIBUTE = ("none", "mirrored", "multi_worker")
CSV_FIELDS = ("step", "elapsed_s", "train_cost", "train_bit_errors", "eval_cost", "eval_bit_errors")
# Flags that may change when a run is resumed (they do not change its maths).
RESUMABLE = ("steps", "progress", "checkpoint_every", "distribute", "cpu_devices")


class ConfigError(ValueError):
    """A flag value, or a combination of flags, that cannot work."""


@dataclasses.dataclass
class Config:
    """All the flags of a run (see ``--help`` for their meaning).

    >>> Config().core
    'dnc'
    """

    core: str = "dnc"
    num_bits: int = 4
    min_length: int = 1
    max_length: int = 3
    min_repeats: int = 1
    max_repeats: int = 3
    batch_size: int = 32
    steps: int = 3000
    learning_rate: float = 3e-3
    lr_half_life: int = 3000
    max_grad_norm: float = 10.0
    seed: int = 1
    hidden_size: int = 64
    memory_size: int = 16
    word_size: int = 16
    num_reads: int = 4
    num_writes: int = 1
    clip_value: float = 20.0
    eval_every: int = 100
    eval_batches: int = 4
    checkpoint_every: int = 500
    output_dir: str = os.path.join("runs", "repeat_copy")
    resume: bool = False
    jit: bool = True
    distribute: str = "none"
    cpu_devices: int = 0
    progress: bool = True

    def validate(self) -> None:
        """Raises :class:`ConfigError` naming the first bad flag.

        >>> Config(min_length=3, max_length=2).validate()
        Traceback (most recent call last):
        ...
        rnn.examples.repeat_copy.ConfigError: --min_length (3) must be <= --max_length (2)
        """
        if self.core not in CORES:
            raise ConfigError(f"--core must be one of {', '.join(CORES)}; got {self.core!r}")
        if self.distribute not in DISTRIBUTE:
            raise ConfigError(
                f"--distribute must be one of {', '.join(DISTRIBUTE)}; got {self.distribute!r}"
            )
        for name in (
            "num_bits",
            "min_length",
            "max_length",
            "min_repeats",
            "max_repeats",
            "batch_size",
            "steps",
            "hidden_size",
            "memory_size",
            "word_size",
            "num_reads",
            "num_writes",
            "eval_every",
            "eval_batches",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"--{name} must be >= 1, got {value}")
        for low, high in (("min_length", "max_length"), ("min_repeats", "max_repeats")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(
                    f"--{low} ({getattr(self, low)}) must be <= --{high} ({getattr(self, high)})"
                )
        for name in ("learning_rate", "max_grad_norm"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name} must be a positive number, got {value}")
        if not (self.clip_value >= 0 and math.isfinite(self.clip_value)):
            raise ConfigError(
                f"--clip_value must be >= 0 (0 disables clipping), got {self.clip_value}"
            )
        if self.lr_half_life < 0:
            raise ConfigError(f"--lr_half_life must be >= 0, got {self.lr_half_life}")
        if self.cpu_devices < 0:
            raise ConfigError(f"--cpu_devices must be >= 0, got {self.cpu_devices}")

    def task(self, batch_size: int | None = None) -> RepeatCopyTask:
        """The :class:`RepeatCopyTask` these flags describe."""
        return RepeatCopyTask(
            num_bits=self.num_bits,
            batch_size=self.batch_size if batch_size is None else batch_size,
            min_length=self.min_length,
            max_length=self.max_length,
            min_repeats=self.min_repeats,
            max_repeats=self.max_repeats,
        )


_HELP = {
    "core": "recurrent core to train",
    "num_bits": "bits per pattern step",
    "min_length": "shortest pattern (steps)",
    "max_length": "longest pattern (steps)",
    "min_repeats": "fewest repeats to write back",
    "max_repeats": "most repeats to write back",
    "batch_size": "sequences per training batch (global, over all replicas)",
    "steps": "total training steps (a resumed run continues up to this)",
    "learning_rate": "Adam learning rate (at step 0)",
    "lr_half_life": "the learning rate halves every this many steps (0: constant)",
    "max_grad_norm": "gradients are clipped to this global norm",
    "seed": "seed of the initial weights and of the data stream",
    "hidden_size": "units of the LSTM/GRU (the DNC's controller, the baselines' layers)",
    "memory_size": "DNC memory slots",
    "word_size": "DNC word size",
    "num_reads": "DNC read heads",
    "num_writes": "DNC write heads",
    "clip_value": "DNC output clipping (0: none)",
    "eval_every": "evaluate on held-out batches and write a CSV row every N steps",
    "eval_batches": "held-out batches per evaluation",
    "checkpoint_every": "save a checkpoint every N steps (and at the end)",
    "output_dir": "where metrics, plots, checkpoints and config.json go",
    "resume": "continue the run in --output_dir from its latest checkpoint",
    "jit": "compile the training step with XLA (batches padded to the longest "
    "possible sequence so it compiles once)",
    "distribute": "none; mirrored (tf.distribute.MirroredStrategy over the GPUs, "
    "else the logical CPUs); multi_worker "
    "(MultiWorkerMirroredStrategy, configured by TF_CONFIG)",
    "cpu_devices": "split the CPU into this many logical devices (0: leave as is)",
    "progress": "show a progress bar on stderr",
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser; every :class:`Config` field is a flag.

    >>> build_parser().parse_args(["--steps", "5"]).steps
    5
    """
    parser = argparse.ArgumentParser(
        prog="python -m rnn.examples.repeat_copy",
        description="Train a DNC (or an LSTM/GRU/deep LSTM baseline) on repeat-copy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Config()
    for field in dataclasses.fields(Config):
        flag = "--" + field.name
        default = getattr(defaults, field.name)
        help_text = _HELP[field.name]
        if field.name == "core":
            parser.add_argument(flag, choices=CORES, default=default, help=help_text)
        elif field.name == "distribute":
            parser.add_argument(flag, choices=DISTRIBUTE, default=default, help=help_text)
        elif field.name == "resume":
            parser.add_argument(flag, action="store_true", help=help_text)
        elif isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_text)
    return parser


def _explicit_flags(argv: Sequence[str]) -> set:
    """Names of the flags given on the command line (not left at their defaults)."""
    parser = build_parser()
    for action in parser._actions:  # pylint: disable=protected-access
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv))))


def parse_config(argv: Sequence[str] | None = None) -> Config:
    """Parses and validates flags; bad flags exit with a usage message (status 2).

    >>> parse_config(["--num_bits", "6"]).num_bits
    6
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    config = Config(**vars(parser.parse_args(argv)))
    try:
        config.validate()
    except ConfigError as e:
        parser.error(str(e))
    config._explicit = _explicit_flags(argv)  # type: ignore[attr-defined]
    return config


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def build_core(config: Config) -> rnn.RNNCore:
    """The core for ``config.core``, mapping observations to target logits.

    >>> core = build_core(Config(core="lstm", hidden_size=8))
    >>> type(core).__name__
    'DeepRNN'
    """
    output_size = config.num_bits + 1
    if config.core == "dnc":
        return DNC(
            output_size,
            controller=rnn.LSTM(config.hidden_size),
            memory_size=config.memory_size,
            word_size=config.word_size,
            num_reads=config.num_reads,
            num_writes=config.num_writes,
            clip_value=config.clip_value or None,
        )
    readout = Linear(output_size, name="readout")
    if config.core == "lstm":
        return rnn.DeepRNN([rnn.LSTM(config.hidden_size), readout])
    if config.core == "gru":
        return rnn.DeepRNN([rnn.GRU(config.hidden_size), readout])
    if config.core == "deep":
        return rnn.DeepRNN([rnn.LSTM(config.hidden_size), rnn.LSTM(config.hidden_size), readout])
    raise ConfigError(f"unknown core {config.core!r}")


def sequence_sums(
    core: rnn.RNNCore, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Unrolls ``core``; returns the batch's summed cost (nats) and summed bit errors.

    >>> core = build_core(Config(core="gru", hidden_size=4, num_bits=2))
    >>> b = Config(num_bits=2).task(batch_size=3).batch(0, TRAIN, 0)
    >>> cost, errors = sequence_sums(core, *map(tf.constant, b))
    >>> cost.shape.as_list(), float(errors) >= 0
    ([], True)
    """
    batch_size = tf.shape(observations)[1]
    logits, _ = rnn.dynamic_unroll(core, observations, core.initial_state(batch_size))
    mask = mask[:, :, tf.newaxis]
    xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    cost = tf.reduce_sum(xent * mask)
    wrong = tf.cast(tf.not_equal(tf.cast(logits > 0.0, targets.dtype), targets), targets.dtype)
    return cost, tf.reduce_sum(wrong * mask)


class Adam(tf.Module):
    """Adam (Kingma & Ba) over a fixed list of variables, checkpointable as a module.

    The learning rate halves every ``half_life`` updates (never when 0).

    >>> v = tf.Variable([1.0, -1.0])
    >>> opt = Adam([v], learning_rate=0.1)
    >>> opt.apply([tf.constant([1.0, -1.0])], [v])
    >>> [round(float(x), 3) for x in v]
    [0.9, -0.9]
    """

    def __init__(
        self,
        variables: Sequence[tf.Variable],
        learning_rate: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        half_life: int = 0,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.learning_rate = learning_rate
        self.half_life = half_life
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.m = [
            tf.Variable(
                tf.zeros(v.shape, v.dtype),
                trainable=False,
                name="m_" + v.name.split(":")[0].replace("/", "_"),
            )
            for v in variables
        ]
        self.v = [
            tf.Variable(
                tf.zeros(v.shape, v.dtype),
                trainable=False,
                name="v_" + v.name.split(":")[0].replace("/", "_"),
            )
            for v in variables
        ]

    def apply(self, gradients: Sequence[tf.Tensor], variables: Sequence[tf.Variable]) -> None:
        """One update of ``variables`` (in the order given at construction)."""
        if len(gradients) != len(self.m) or len(variables) != len(self.m):
            raise ValueError(
                f"Adam was built for {len(self.m)} variables, got "
                f"{len(gradients)} gradients and {len(variables)} variables"
            )
        t = tf.cast(self.iterations.assign_add(1), tf.float32)
        learning_rate = tf.constant(self.learning_rate, tf.float32)
        if self.half_life:
            learning_rate *= tf.pow(0.5, (t - 1.0) / float(self.half_life))
        scale = learning_rate * tf.sqrt(1.0 - tf.pow(self.beta2, t)) / (1.0 - tf.pow(self.beta1, t))
        for g, var, m, v in zip(gradients, variables, self.m, self.v):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(scale * m / (tf.sqrt(v) + self.epsilon))


class _Progress(tf.Module):
    """Run bookkeeping stored in the checkpoints next to the model and optimizer."""

    def __init__(self):
        super().__init__(name="progress")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.elapsed_s = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        # Sums since the last CSV row, so a resumed run writes the same rows.
        self.window = tf.Variable([0.0, 0.0, 0.0], dtype=tf.float64, trainable=False)


class ProgressBar:
    """A one-line progress bar on a stream: ``[#####     ] 50/100 ...`` with extra text.

    On a terminal the line is redrawn in place (at most ten times a second);
    otherwise a plain line is printed every tenth of the run.

    >>> import io
    >>> out = io.StringIO()
    >>> bar = ProgressBar(10, 0, stream=out, width=10)
    >>> bar.update(10, "loss 1.0")
    >>> bar.close()
    >>> "10/10" in out.getvalue()
    True
    """

    def __init__(
        self, total: int, start: int = 0, stream: Any = None, width: int = 24, enabled: bool = True
    ):
        self.total, self.start = total, start
        self.stream = sys.stderr if stream is None else stream
        self.width, self.enabled = width, enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._last_step = start
        self._chunk = max(1, (total - start) // 10)

    def update(self, step: int, text: str = "") -> None:
        """Shows ``step`` of ``total`` and ``text``."""
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if step < self.total and now - self._last_draw < 0.1:
                return
        elif step < self.total and step - self._last_step < self._chunk:
            return
        self._last_draw, self._last_step = now, step
        filled = int(self.width * step / max(self.total, 1))
        line = f"[{'#' * filled}{' ' * (self.width - filled)}] {step}/{self.total} {text}"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the line."""
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _setup_devices(config: Config) -> None:
    if not config.cpu_devices:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices
        )
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != config.cpu_devices:
            raise ConfigError(
                f"--cpu_devices {config.cpu_devices}: TensorFlow is already "
                f"initialised with {have} logical CPU devices ({e})"
            ) from e


def _make_strategy(config: Config) -> tf.distribute.Strategy:
    if config.distribute == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if config.distribute == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )


def _pad(batch: Batch, time_steps: int) -> Batch:
    extra = time_steps - batch.observations.shape[0]
    if extra <= 0:
        return batch
    return Batch(
        *(np.concatenate([x, np.zeros((extra,) + x.shape[1:], x.dtype)], axis=0) for x in batch)
    )


def _load_csv(path: str, up_to_step: int, every: int) -> list[dict[str, str]]:
    """The rows of a run being resumed at ``up_to_step``.

    Rows after the checkpoint are dropped, and so is the extra row a finished
    run writes at its last step when that is not a multiple of ``every``.
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [
            row
            for row in csv.DictReader(f)
            if int(row["step"]) < up_to_step
            or (int(row["step"]) == up_to_step and up_to_step % every == 0)
        ]


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


class _Run:
    """Everything one training run holds: strategy, model, optimizer, compiled steps."""

    def __init__(self, config: Config):
        self.config = config
        self.task = config.task()
        self.strategy = _make_strategy(config)
        self.replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % self.replicas:
            raise ConfigError(
                f"--batch_size ({config.batch_size}) must be a multiple of the "
                f"{self.replicas} replicas of --distribute {config.distribute}"
            )
        self.time_steps = self.task.max_time if config.jit else None
        tf.random.set_seed(config.seed)
        with self.strategy.scope():
            self.core = build_core(config)
            # One eager step creates the variables (under the strategy's scope).
            dummy = self.task.batch(config.seed, PLOT, 0, batch_size=1)
            sequence_sums(self.core, *(tf.constant(x[:1]) for x in dummy))
            self.variables = list(self.core.trainable_variables)
            self.optimizer = Adam(
                self.variables, config.learning_rate, half_life=config.lr_half_life
            )
        self.progress = _Progress()
        self.checkpoint = tf.train.Checkpoint(
            core=self.core, optimizer=self.optimizer, progress=self.progress
        )
        signature = None
        if self.replicas == 1:  # (Distributed values bring their own specs.)
            # Static shapes (T too, under --jit, where batches are padded to
            # the longest possible sequence): one trace, one XLA compile.
            b = config.batch_size
            signature = [
                tf.TensorSpec([self.time_steps, b, self.task.observation_size]),
                tf.TensorSpec([self.time_steps, b, self.task.target_size]),
                tf.TensorSpec([self.time_steps, b]),
            ]
        self._train_step = tf.function(
            self._train_step_fn, autograph=False, input_signature=signature, reduce_retracing=True
        )
        self._eval_step = tf.function(
            self._eval_step_fn, autograph=False, input_signature=signature, reduce_retracing=True
        )
        replica_fn = (
            tf.function(self._replica_grads, autograph=False, jit_compile=True)
            if config.jit
            else self._replica_grads
        )
        self._replica_fn = replica_fn
        eval_fn = (
            tf.function(self._replica_eval, autograph=False, jit_compile=True)
            if config.jit
            else self._replica_eval
        )
        self._replica_eval_fn = eval_fn

    # -- compiled pieces ---------------------------------------------------
    def _replica_grads(self, observations, targets, mask):
        with tf.GradientTape() as tape:
            cost, errors = sequence_sums(self.core, observations, targets, mask)
            loss = cost / float(self.config.batch_size)
        grads = tape.gradient(loss, self.variables)
        return grads, cost, errors

    def _train_step_fn(self, observations, targets, mask):
        def replica(obs, tgt, msk):
            grads, cost, errors = self._replica_fn(obs, tgt, msk)
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads, cost, errors])

        results = self.strategy.run(replica, args=(observations, targets, mask))
        grads, cost, errors = self.strategy.experimental_local_results(results)[0]
        grads, _ = tf.clip_by_global_norm(grads, self.config.max_grad_norm)
        self.optimizer.apply(grads, self.variables)
        return cost, errors

    def _replica_eval(self, observations, targets, mask):
        return sequence_sums(self.core, observations, targets, mask)

    def _eval_step_fn(self, observations, targets, mask):
        def replica(obs, tgt, msk):
            sums = self._replica_eval_fn(obs, tgt, msk)
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(sums))

        results = self.strategy.run(replica, args=(observations, targets, mask))
        return self.strategy.experimental_local_results(results)[0]

    # -- data --------------------------------------------------------------
    def distribute(self, batch: Batch) -> tuple[Any, Any, Any]:
        """Pads (under --jit) and splits a global batch over the replicas."""
        if self.time_steps is not None:
            batch = _pad(batch, self.time_steps)
        if self.replicas == 1:
            return tuple(tf.constant(x) for x in batch)
        per_replica = self.config.batch_size // self.replicas

        def value_fn(ctx):
            i = ctx.replica_id_in_sync_group
            return tuple(tf.constant(x[:, i * per_replica : (i + 1) * per_replica]) for x in batch)

        return self.strategy.experimental_distribute_values_from_function(value_fn)

    def train_step(self, step: int) -> tuple[float, float]:
        """Trains on the batch of ``step``; returns its cost and bit errors per sequence."""
        batch = self.task.batch(self.config.seed, TRAIN, step)
        cost, errors = self._train_step(*self.distribute(batch))
        n = float(self.config.batch_size)
        return float(cost) / n, float(errors) / n

    def evaluate(self) -> tuple[float, float]:
        """Cost and bit errors per sequence over the held-out batches."""
        cost = errors = 0.0
        for i in range(self.config.eval_batches):
            batch = self.task.batch(self.config.seed, EVAL, i)
            c, e = self._eval_step(*self.distribute(batch))
            cost, errors = cost + float(c), errors + float(e)
        n = float(self.config.eval_batches * self.config.batch_size)
        return cost / n, errors / n


def _prepare_output_dir(config: Config, explicit: set) -> dict[str, Any]:
    """Writes config.json (fresh run) or checks it against the flags (``--resume``)."""
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
    for name in ("metrics.csv", "learning_curve.png", "memory.png"):
        path = os.path.join(out, name)
        if os.path.exists(path):
            os.remove(path)
    saved = {k: v for k, v in dataclasses.asdict(config).items() if k != "resume"}
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
    return saved


def train(config: Config) -> dict[str, Any]:
    """Runs (or resumes) training as ``config`` says; returns the final metrics.

    Raises :class:`ConfigError` for flag combinations found to be unusable
    only at run time (a batch not divisible over the replicas, ``--resume``
    with nothing to resume or with different task/model flags).
    """
    config.validate()
    plots = plots_available()
    if not plots:
        warnings.warn(NO_PLOTS, RuntimeWarning, stacklevel=2)
    explicit = getattr(config, "_explicit", set(dataclasses.asdict(config)))
    _prepare_output_dir(config, explicit)  # (On --resume, fills in the run's flags.)
    config.validate()
    _setup_devices(config)
    run = _Run(config)
    chief = _is_chief(run.strategy)
    out = config.output_dir
    ckpt_dir = os.path.join(out, "checkpoints")
    if not chief:  # Other workers save to a scratch folder (checkpointing is collective).
        ckpt_dir = os.path.join(out, f"worker_scratch_{run.strategy.cluster_resolver.task_id}")
    manager = tf.train.CheckpointManager(run.checkpoint, ckpt_dir, max_to_keep=2)
    rows: list[dict[str, Any]] = []
    if config.resume:
        run.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
        rows = _load_csv(
            os.path.join(out, "metrics.csv"), int(run.progress.step.numpy()), config.eval_every
        )
    step = int(run.progress.step.numpy())
    elapsed_before = float(run.progress.elapsed_s.numpy())
    window = [float(x) for x in run.progress.window.numpy()]
    start_step, start_time = step, time.monotonic()
    bar = ProgressBar(config.steps, step, enabled=config.progress and chief)
    eval_cost = eval_errors = float("nan")
    if rows:
        eval_cost = float(rows[-1]["eval_cost"])
        eval_errors = float(rows[-1]["eval_bit_errors"])

    def save():
        run.progress.step.assign(step)
        run.progress.elapsed_s.assign(elapsed_before + time.monotonic() - start_time)
        run.progress.window.assign(window)
        manager.save(checkpoint_number=step)

    # Seconds spent in the first training step and the first evaluation, which
    # trace and (under --jit) compile; the speed is reported without them.
    compile_s = 0.0
    first_eval = True
    while step < config.steps:
        cost, errors = run.train_step(step)
        if step == start_step:
            compile_s += time.monotonic() - start_time
        if not (math.isfinite(cost) and math.isfinite(errors)):
            raise FloatingPointError(
                f"training diverged at step {step}: cost {cost}; try a lower "
                f"--learning_rate or --max_grad_norm"
            )
        step += 1
        window = [window[0] + cost, window[1] + errors, window[2] + 1.0]
        bar.update(
            step,
            f"loss {window[0] / window[2]:.3f} "
            f"bit errors {window[1] / window[2]:.3f} "
            f"({(step - start_step) / (time.monotonic() - start_time):.1f} steps/s)",
        )
        if step % config.eval_every == 0 or step == config.steps:
            eval_start = time.monotonic()
            eval_cost, eval_errors = run.evaluate()
            if first_eval:
                compile_s += time.monotonic() - eval_start
                first_eval = False
            rows.append(
                {
                    "step": step,
                    "elapsed_s": f"{elapsed_before + time.monotonic() - start_time:.2f}",
                    "train_cost": f"{window[0] / window[2]:.6f}",
                    "train_bit_errors": f"{window[1] / window[2]:.6f}",
                    "eval_cost": f"{eval_cost:.6f}",
                    "eval_bit_errors": f"{eval_errors:.6f}",
                }
            )
            if step % config.eval_every == 0:
                # (A last row off the eval_every grid keeps the window, so a
                # later --resume with more steps writes the same rows.)
                window = [0.0, 0.0, 0.0]
            if chief:
                _write_csv(os.path.join(out, "metrics.csv"), rows)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save()
    bar.close()
    if step == start_step:  # Nothing left to train: report the model as it is.
        eval_cost, eval_errors = run.evaluate()
    seconds = time.monotonic() - start_time
    steps_done = step - start_step
    summary = {
        "core": config.core,
        "step": step,
        "steps_run": steps_done,
        "seconds": seconds,
        "steps_per_s": steps_done / seconds if seconds > 0 else float("nan"),
        "compile_s": compile_s,
        "steps_per_s_after_compile": (
            (steps_done - 1) / (seconds - compile_s) if steps_done > 1 else float("nan")
        ),
        "eval_cost": eval_cost,
        "eval_bit_errors": eval_errors,
        "train_cost": float(rows[-1]["train_cost"]) if rows else float("nan"),
        "train_bit_errors": float(rows[-1]["train_bit_errors"]) if rows else float("nan"),
        "output_dir": out,
    }
    if chief and plots:
        plot_learning_curve(rows, os.path.join(out, "learning_curve.png"), config.core)
        if isinstance(run.core, DNC):
            plot_memory(run.core, config, os.path.join(out, "memory.png"))
    print(
        f"repeat_copy: core={config.core} step={step} "
        f"eval cost={eval_cost:.4f} nats/seq, bit errors={eval_errors:.4f}/seq; "
        f"{steps_done} steps in {seconds:.1f}s (tracing and compiling "
        f"{compile_s:.1f}s, then {summary['steps_per_s_after_compile']:.1f} "
        f"steps/s); "
        f"outputs in {out}"
    )
    return summary


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def plots_available() -> bool:
    """Whether matplotlib (an optional dependency, for the two figures) is installed.

    Checked before training, so that a run without it says so at once and
    still writes its metrics and checkpoints, instead of dying at the end.
    """
    import importlib.util  # pylint: disable=import-outside-toplevel

    return importlib.util.find_spec("matplotlib") is not None


NO_PLOTS = (
    "matplotlib is not installed, so this run writes metrics.csv and checkpoints "
    "but not learning_curve.png or memory.png; pip install matplotlib (or the "
    "project's test extra) to get them"
)


def _pyplot():
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    return plt


def plot_learning_curve(rows: list[dict[str, Any]], path: str, title: str) -> None:
    """Cost and bit errors per sequence against the step, training and held-out."""
    plt = _pyplot()
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
    """Steps ``core`` over one ``[T, 1, C]`` sequence, keeping its memory weightings.

    Returns arrays over time: ``write_weights [T, Wh, N]``, ``read_weights
    [T, R, N]``, ``usage [T, N]`` and the ``outputs`` (sigmoid) ``[T, C']``.
    """
    state = core.initial_state(1)
    keep: dict[str, list] = {"write_weights": [], "read_weights": [], "usage": [], "outputs": []}
    for t in range(observations.shape[0]):
        output, state = core(tf.constant(observations[t]), state)
        keep["write_weights"].append(state.access_state.write_weights[0].numpy())
        keep["read_weights"].append(state.access_state.read_weights[0].numpy())
        keep["usage"].append(state.access_state.usage[0].numpy())
        keep["outputs"].append(tf.sigmoid(output[0]).numpy())
    return {k: np.stack(v) for k, v in keep.items()}


def plot_memory(core: DNC, config: Config, path: str) -> None:
    """Inputs, targets, outputs, write/read weights and usage over a held-out example."""
    task = config.task(batch_size=1)
    # The longest of a few held-out examples shows the most.
    examples = [task.batch(config.seed, PLOT, i, batch_size=1) for i in range(16)]
    example = max(examples, key=lambda b: b.observations.shape[0])
    rec = record_memory(core, example.observations)
    plt = _pyplot()
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    config = parse_config(argv)
    try:
        train(config)
    except ConfigError as e:
        build_parser().error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
