"""The training loop of the repeat-copy job: :func:`train` and the command line, :func:`main`.

:func:`train` reads as its steps: prepare the output directory (or, on
``--resume``, read the run's flags back), set up the devices and build a
:class:`Run` (strategy, core, Keras Adam, checkpoints, compiled steps),
restore the run's state on ``--resume``, then loop: one training step, a
held-out evaluation and CSV row every ``--eval_every`` steps, a checkpoint
every ``--checkpoint_every`` steps; at the end, the figures and a summary.

>>> import tempfile
>>> summary = train(parse_config(["--core", "gru", "--hidden_size", "4", "--batch_size", "2",
...     "--steps", "2", "--eval_batches", "1", "--no-jit", "--no-progress",
...     "--output_dir", tempfile.mkdtemp()]))  # doctest: +ELLIPSIS
repeat_copy: core=gru step=2 eval cost=... nats/seq, bit errors=.../seq; 2 steps in ...
>>> summary["steps_run"]
2
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import keras
import tensorflow as tf

from rnn.dnc import DNC
from rnn.examples.local_cluster import (
    PEER_LOST_STATUS,
    PeerLostError,
    is_chief_task,
    peer_lost,
    peer_lost_error,
    run_training_workers,
    task_of,
)
from rnn.examples.repeat_copy.checkpoints import Checkpoints, prepare_output_dir
from rnn.examples.repeat_copy.config import Config, ConfigError, build_parser, parse_config
from rnn.examples.repeat_copy.distribute import (
    cluster_place,
    distribute_batch,
    is_chief,
    make_strategy,
    pad_batch,
    setup_devices,
)
from rnn.examples.repeat_copy.generalisation import (
    evaluate_lengths,
    plot_generalisation,
    write_generalisation,
)
from rnn.examples.repeat_copy.metrics import metrics_row, read_rows, write_rows
from rnn.examples.repeat_copy.model import build_core, sequence_sums
from rnn.examples.repeat_copy.plots import (
    NO_PLOTS,
    plot_learning_curve,
    plot_memory,
    plots_available,
)
from rnn.examples.repeat_copy.progress import progress_bar
from rnn.examples.repeat_copy.task import EVAL, PLOT, TRAIN, Batch, RepeatCopyTask

__all__ = ["build_optimizer", "Run", "train", "main", "PeerLostError", "PEER_LOST_STATUS"]


def build_optimizer(config: Config) -> keras.optimizers.Adam:
    """Keras' Adam at ``--learning_rate``, halving every ``--lr_half_life`` updates.

    Gradients are clipped to the global norm ``--max_grad_norm`` first; the
    learning rate of update ``t`` (from 0) is ``learning_rate * 0.5 ** (t /
    lr_half_life)``, constant when ``--lr_half_life`` is 0.

    >>> opt = build_optimizer(Config(learning_rate=0.1, lr_half_life=2))
    >>> v = tf.Variable([1.0, -1.0])
    >>> opt.apply([tf.constant([1.0, -1.0])], [v])
    >>> [round(float(x), 3) for x in v], round(float(opt.learning_rate), 4)
    ([0.9, -0.9], 0.0707)
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "the repeat-copy job trains TensorFlow modules and needs Keras' TensorFlow "
            f"backend; the active backend is {keras.backend.backend()!r} (set "
            "KERAS_BACKEND=tensorflow)"
        )
    # Measured against the hand-written Adam this replaced (default DNC, 2-core CPU, one
    # process alternating blocks of 50 steps, 600 steps each): 48.0 and 48.8 steps/s
    # for Keras' Adam, 46.1 and 45.8 for ours: no slowdown.
    learning_rate: Any = config.learning_rate
    if config.lr_half_life:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, decay_steps=config.lr_half_life, decay_rate=0.5
        )
    return keras.optimizers.Adam(learning_rate, epsilon=1e-8, global_clipnorm=config.max_grad_norm)


class Run:
    """Everything one training run holds: strategy, model, optimizer, checkpoints, compiled steps.

    >>> import tempfile
    >>> run = Run(Config(core="lstm", hidden_size=4, batch_size=2, jit=False,
    ...                  output_dir=tempfile.mkdtemp()))
    >>> cost, errors = run.train_step(0)
    >>> int(run.optimizer.iterations), cost > 0
    (1, True)
    """

    def __init__(self, config: Config):
        self.config = config
        self.task = config.task()
        # The longest training pattern: --max_length, raised by the curriculum.
        self.max_length = config.max_length
        self.strategy = make_strategy(config)
        self.replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % self.replicas:
            raise ConfigError(
                f"--batch_size ({config.batch_size}) must be a multiple of the "
                f"{self.replicas} replicas of --distribute {config.distribute}"
            )
        self.chief = is_chief(self.strategy)
        # Processes (workers) of the run: more than one only under multi_worker.
        self.task_id, self.workers = cluster_place(self.strategy)
        tf.random.set_seed(config.seed)
        with self.strategy.scope():
            self.core = build_core(config)
        # XLA unless --no-jit, or by default where the core runs compiled CPU
        # kernels (a DNC: 104 against 65 steps/s on the 2-core machine).
        self.jit: bool = (
            config.jit
            if config.jit is not None
            else not (isinstance(self.core, DNC) and self.core.kernels_apply())
        )
        # Under XLA batches are padded to the longest possible sequence (of the
        # curriculum's last length too), so the step compiles once.
        longest = dataclasses.replace(
            self.task, max_length=max(config.max_length, config.curriculum_max_length)
        )
        self.time_steps = longest.max_time if self.jit else None
        with self.strategy.scope():
            # One eager step creates the variables (under the strategy's scope).
            dummy = self.task.batch(config.seed, PLOT, 0, batch_size=1)
            sequence_sums(self.core, *(tf.constant(x[:1]) for x in dummy))
            self.variables = list(self.core.trainable_variables)
            self.optimizer = build_optimizer(config)
            self.optimizer.build(self.variables)
        worker = None if self.chief else self.task_id
        self.checkpoints = Checkpoints(config.output_dir, self.core, self.optimizer, worker)
        self._compile()
        # The next training batch, made while a step runs (see train_step).
        self._batch_maker: ThreadPoolExecutor | None = None
        self._next_batch: tuple[tuple[int, int], Future[Batch | tuple[Any, ...]]] | None = None

    def _compile(self) -> None:
        signature = None
        if self.replicas == 1:  # (Distributed values bring their own specs.)
            # Static shapes (T too, under --jit, where batches are padded to
            # the longest possible sequence): one trace, one XLA compile.
            b = self.config.batch_size
            signature = [
                tf.TensorSpec([self.time_steps, b, self.task.observation_size]),
                tf.TensorSpec([self.time_steps, b, self.task.target_size]),
                tf.TensorSpec([self.time_steps, b]),
            ]
        if self.jit and self.config.distribute == "none":
            # No strategy: the optimizer's update is in the XLA program too (it
            # was a graph of ~100 small ops run op by op: 0.6-0.8 ms of a 7.4 ms
            # step of the default DNC on the 2-core machine). Under a strategy
            # (one replica too) the update stays in the graph, where the
            # strategy's distributed variables are updated.
            self._train_step = tf.function(
                self._fused_train_step,
                autograph=False,
                input_signature=signature,
                reduce_retracing=True,
                jit_compile=True,
            )
        else:
            self._train_step = tf.function(
                self._train_step_fn,
                autograph=False,
                input_signature=signature,
                reduce_retracing=True,
            )
        self._eval_step = tf.function(
            self._eval_step_fn, autograph=False, input_signature=signature, reduce_retracing=True
        )
        # Under --jit, XLA compiles each replica's unroll (forward, and backward for training).
        self._replica_grads_fn = self._replica_grads
        self._replica_eval_fn = self._replica_eval
        if self.jit:
            self._replica_grads_fn = tf.function(
                self._replica_grads, autograph=False, jit_compile=True
            )
            self._replica_eval_fn = tf.function(
                self._replica_eval, autograph=False, jit_compile=True
            )

    # -- compiled pieces ---------------------------------------------------
    def _replica_grads(
        self, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
    ) -> tuple[Any, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            cost, errors = sequence_sums(self.core, observations, targets, mask)
            loss = cost / float(self.config.batch_size)
        grads = tape.gradient(loss, self.variables)
        return grads, cost, errors

    def _train_step_fn(
        self, observations: Any, targets: Any, mask: Any
    ) -> tuple[tf.Tensor, tf.Tensor]:
        def replica(obs: tf.Tensor, tgt: tf.Tensor, msk: tf.Tensor) -> Any:
            grads, cost, errors = self._replica_grads_fn(obs, tgt, msk)
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [grads, cost, errors])

        results = self.strategy.run(replica, args=(observations, targets, mask))
        grads, cost, errors = self.strategy.experimental_local_results(results)[0]
        # (Summed over the replicas: the gradients of the global batch.)
        self.optimizer.apply(grads, self.variables)
        return cost, errors

    def _fused_train_step(
        self, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        grads, cost, errors = self._replica_grads(observations, targets, mask)
        self.optimizer.apply(grads, self.variables)
        return cost, errors

    def _replica_eval(
        self, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        return sequence_sums(self.core, observations, targets, mask)

    def _eval_step_fn(self, observations: Any, targets: Any, mask: Any) -> Any:
        def replica(obs: tf.Tensor, tgt: tf.Tensor, msk: tf.Tensor) -> Any:
            sums = self._replica_eval_fn(obs, tgt, msk)
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(sums))

        results = self.strategy.run(replica, args=(observations, targets, mask))
        return self.strategy.experimental_local_results(results)[0]

    # -- steps ---------------------------------------------------------------
    def _padded(self, batch: Batch) -> Batch:
        return batch if self.time_steps is None else pad_batch(batch, self.time_steps)

    def _inputs(self, batch: Batch) -> tuple[Any, ...]:
        return distribute_batch(self.strategy, self._padded(batch))

    def _task(self, max_length: int) -> RepeatCopyTask:
        if max_length == self.task.max_length:
            return self.task
        return dataclasses.replace(self.task, max_length=max_length)

    def current_task(self) -> RepeatCopyTask:
        """The task trained on now: patterns up to :attr:`max_length` steps long."""
        return self._task(self.max_length)

    def _train_batch(self, step: int, max_length: int) -> Batch:
        """The padded training batch of ``step`` with patterns up to ``max_length``."""
        return self._padded(self._task(max_length).batch(self.config.seed, TRAIN, step))

    def _train_inputs(self, step: int, max_length: int) -> Batch | tuple[Any, ...]:
        """The training step's inputs: its tensors where there is one replica, else its Batch.

        On the worker thread the copy into tensors leaves the step's path
        too (its time outside the compiled step fell from 0.70-0.88 ms to
        0.13 ms in the default DNC's loop); values spread over several
        replicas are made on the step's own thread, beside the strategy.
        """
        batch = self._train_batch(step, max_length)
        if self.strategy.num_replicas_in_sync == 1:
            return distribute_batch(self.strategy, batch)
        return batch

    def train_step(self, step: int) -> tuple[float, float]:
        """Trains on the batch of ``step``; returns its cost and bit errors per sequence.

        The next step's batch is made on a worker thread while this step
        trains (it is NumPy work, and TensorFlow releases the GIL while the
        step runs): the default DNC's loop took 0.89-0.95x the time. With one
        replica the worker also makes its tensors (:meth:`_train_inputs`). A batch
        depends only on its step and the pattern length, so when the
        curriculum lengthens the patterns the prepared one is not used.
        (Not tf.data's prefetch: the length can change after any step.)
        """
        key = (step, self.max_length)
        if self._next_batch is not None and self._next_batch[0] == key:
            inputs = self._next_batch[1].result()
        else:
            inputs = self._train_inputs(*key)
        if self._batch_maker is None:
            self._batch_maker = ThreadPoolExecutor(1, thread_name_prefix="repeat_copy_batches")
        following = (step + 1, self.max_length)
        self._next_batch = (following, self._batch_maker.submit(self._train_inputs, *following))
        if isinstance(inputs, Batch):
            inputs = distribute_batch(self.strategy, inputs)
        cost, errors = self._train_step(*inputs)
        n = float(self.config.batch_size)
        return float(cost) / n, float(errors) / n

    def evaluate(self) -> tuple[float, float]:
        """Cost and bit errors per sequence over the held-out batches."""
        cost = errors = 0.0
        for i in range(self.config.eval_batches):
            batch = self.current_task().batch(self.config.seed, EVAL, i)
            c, e = self._eval_step(*self._inputs(batch))
            cost, errors = cost + float(c), errors + float(e)
        n = float(self.config.eval_batches * self.config.batch_size)
        return cost / n, errors / n


@dataclasses.dataclass
class _Loop:
    """Where the loop stands: what the checkpoints keep, and this process's clocks."""

    step: int
    window: list[float]  # cost sum, bit error sum and steps since the last CSV row
    rows: list[dict[str, Any]]
    elapsed_before: float  # wall time of the run before this process (on --resume)
    eval_cost: float = float("nan")
    eval_errors: float = float("nan")
    start_step: int = dataclasses.field(init=False)  # (the step this process started at)
    start_time: float = dataclasses.field(default_factory=time.monotonic)
    # Seconds spent in the first training step and the first evaluation, which
    # trace and (under --jit) compile; the speed is reported without them.
    compile_s: float = 0.0
    evaluated: bool = False

    def __post_init__(self) -> None:
        self.start_step = self.step
        if self.rows:
            self.eval_cost = float(self.rows[-1]["eval_cost"])
            self.eval_errors = float(self.rows[-1]["eval_bit_errors"])

    def elapsed_s(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start_time


def _start(run: Run) -> _Loop:
    """The loop's state: a fresh run's, or, on ``--resume``, the latest checkpoint's."""
    config = run.config
    rows: list[dict[str, Any]] = []
    if config.resume:
        run.checkpoints.restore()
        rows = read_rows(
            os.path.join(config.output_dir, "metrics.csv"),
            int(run.checkpoints.progress.step.numpy()),
            config.eval_every,
        )
    progress = run.checkpoints.progress
    if config.resume and int(progress.max_length.numpy()):
        run.max_length = int(progress.max_length.numpy())
    return _Loop(
        step=int(progress.step.numpy()),
        window=[float(x) for x in progress.window.numpy()],
        rows=rows,
        elapsed_before=float(progress.elapsed_s.numpy()),
    )


def _train_one_step(run: Run, loop: _Loop) -> None:
    cost, errors = run.train_step(loop.step)
    if loop.step == loop.start_step:
        loop.compile_s += time.monotonic() - loop.start_time
    if not (math.isfinite(cost) and math.isfinite(errors)):
        raise FloatingPointError(
            f"training diverged at step {loop.step}: cost {cost}; try a lower "
            f"--learning_rate or --max_grad_norm"
        )
    loop.step += 1
    loop.window = [loop.window[0] + cost, loop.window[1] + errors, loop.window[2] + 1.0]


def _evaluate_and_log(run: Run, loop: _Loop) -> None:
    """Evaluates on the held-out batches and writes the CSV row of ``loop.step``."""
    eval_start = time.monotonic()
    loop.eval_cost, loop.eval_errors = run.evaluate()
    if not loop.evaluated:
        loop.compile_s += time.monotonic() - eval_start
        loop.evaluated = True
    config = run.config
    loop.rows.append(
        metrics_row(
            loop.step,
            loop.elapsed_s(),
            loop.window,
            loop.eval_cost,
            loop.eval_errors,
            run.max_length,
        )
    )
    if loop.step % config.eval_every == 0:
        # (A last row off the eval_every grid keeps the window, so a later
        # --resume with more steps writes the same rows.)
        loop.window = [0.0, 0.0, 0.0]
        if (
            config.curriculum_threshold
            and loop.eval_errors <= config.curriculum_threshold
            and run.max_length < config.curriculum_max_length
        ):
            run.max_length += 1  # (takes effect from the next step)
    if run.chief:
        write_rows(os.path.join(config.output_dir, "metrics.csv"), loop.rows)


def _out_of_time(config: Config, loop: _Loop) -> bool:
    """Whether ``--max_seconds`` of wall time (this run's, before a resume too) are spent."""
    return bool(config.max_seconds) and loop.elapsed_s() >= config.max_seconds


def _generalisation(run: Run, plots: bool) -> list[dict[str, Any]]:
    """Scores the trained core beyond the training lengths into generalisation.csv/png."""
    config = run.config
    rows = evaluate_lengths(run.core, config, run.max_length)
    write_generalisation(os.path.join(config.output_dir, "generalisation.csv"), rows)
    if plots:
        plot_generalisation(
            rows, os.path.join(config.output_dir, "generalisation.png"), config.core
        )
    # The longest trained length and the longest evaluated one, at every memory size.
    trained = [r["pattern_length"] for r in rows if r["trained"]]
    lengths = {max(trained, default=0), max(r["pattern_length"] for r in rows)}
    shown = ", ".join(
        f"{r['bit_error_rate']:.1%} at {r['pattern_length']}"
        + ("" if r["memory_size"] in ("", config.memory_size) else f" ({r['memory_size']} slots)")
        for r in rows
        if r["pattern_length"] in lengths
    )
    print(
        f"repeat_copy: bit error rate beyond the training lengths (trained up to "
        f"{run.max_length}): {shown}; generalisation.csv in {config.output_dir}"
    )
    return rows


def _summary(run: Run, loop: _Loop) -> dict[str, Any]:
    seconds = time.monotonic() - loop.start_time
    steps_done = loop.step - loop.start_step
    last = loop.rows[-1] if loop.rows else {}
    return {
        "core": run.config.core,
        "step": loop.step,
        "steps_run": steps_done,
        "seconds": seconds,
        "steps_per_s": steps_done / seconds if seconds > 0 else float("nan"),
        "compile_s": loop.compile_s,
        "steps_per_s_after_compile": (
            (steps_done - 1) / (seconds - loop.compile_s) if steps_done > 1 else float("nan")
        ),
        "eval_cost": loop.eval_cost,
        "eval_bit_errors": loop.eval_errors,
        "train_cost": float(last.get("train_cost", "nan")),
        "train_bit_errors": float(last.get("train_bit_errors", "nan")),
        "output_dir": run.config.output_dir,
    }


def _draw(run: Run, rows: list[dict[str, Any]]) -> None:
    out, config = run.config.output_dir, run.config
    plot_learning_curve(rows, os.path.join(out, "learning_curve.png"), config.core)
    if isinstance(run.core, DNC):
        plot_memory(run.core, config, os.path.join(out, "memory.png"))


def train(config: Config) -> dict[str, Any]:
    """Runs (or resumes) training as ``config`` says; returns the final metrics.

    Raises :class:`~rnn.examples.repeat_copy.config.ConfigError` for flag
    combinations found to be unusable only at run time (a batch not divisible
    over the replicas, ``--resume`` with nothing to resume or with different
    task/model flags), and ``FloatingPointError`` if the cost diverges.
    """
    config.validate()
    plots = plots_available()
    if not plots:
        warnings.warn(NO_PLOTS, RuntimeWarning, stacklevel=2)
    explicit = getattr(config, "_explicit", set(dataclasses.asdict(config)))
    # (On --resume, fills in the run's flags; only the chief writes.)
    prepare_output_dir(config, explicit, writer=is_chief_task())
    config.validate()
    setup_devices(config)
    run = Run(config)
    loop = _start(run)
    bar = progress_bar(config.steps, loop.step, enabled=config.progress and run.chief)
    saved_step = loop.step
    try:
        while loop.step < config.steps and not _out_of_time(config, loop):
            _train_one_step(run, loop)
            cost, errors, count = loop.window
            bar.set_postfix_str(
                f"loss {cost / count:.3f} bit errors {errors / count:.3f}", refresh=False
            )
            bar.update(1)
            last = loop.step == config.steps or _out_of_time(config, loop)
            if loop.step % config.eval_every == 0 or last:
                _evaluate_and_log(run, loop)
            if loop.step % config.checkpoint_every == 0 or last:
                run.checkpoints.save(loop.step, loop.elapsed_s(), loop.window, run.max_length)
                saved_step = loop.step
    except tf.errors.OpError as e:
        if run.workers == 1 or not peer_lost(e):
            raise
        raise peer_lost_error(
            "repeat_copy",
            run.task_id,
            loop.step,
            saved_step,
            os.path.join(config.output_dir, "checkpoints"),
            e,
        ) from e
    finally:
        bar.close()
    if loop.step == loop.start_step:  # Nothing left to train: report the model as it is.
        loop.eval_cost, loop.eval_errors = run.evaluate()
    summary = _summary(run, loop)
    if not run.chief:
        return summary
    if plots:
        _draw(run, loop.rows)
    print(
        f"repeat_copy: core={config.core} step={loop.step} "
        f"eval cost={loop.eval_cost:.4f} nats/seq, bit errors={loop.eval_errors:.4f}/seq; "
        f"{summary['steps_run']} steps in {summary['seconds']:.1f}s (tracing and compiling "
        f"{loop.compile_s:.1f}s, then {summary['steps_per_s_after_compile']:.1f} "
        f"steps/s); "
        f"outputs in {config.output_dir}"
    )
    summary["generalisation"] = _generalisation(run, plots)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    Bad flags exit with the usage line and a message naming the flag (status 2).

    >>> main(["--num_bits", "0"])  # (the usage line and the message go to stderr)
    Traceback (most recent call last):
    ...
    SystemExit: 2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    config = parse_config(argv)
    if config.local_workers and task_of() is None:
        try:
            config.validate()
        except ConfigError as e:
            build_parser().error(str(e))
        return run_training_workers(
            "repeat_copy",
            "rnn.examples.repeat_copy",
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
