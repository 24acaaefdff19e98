"""DNC training speed: the main job's configuration, with and without XLA, and eagerly.

Builds the repeat-copy job's model exactly as ``make demo`` does (the
defaults of :class:`rnn.examples.repeat_copy.config.Config`: a DNC with a
64-unit LSTM controller, 16 memory slots of 16, 4 read heads, batch 32,
Keras' Adam) and times its training step, a batch of the job's own data
each step, as the job runs it:

* ``jit`` (the job's default): the unroll and its gradient XLA-compiled,
  the optimizer step in the same ``tf.function``;
* ``graph``: the same ``tf.function`` without XLA (``--no-jit``), where the
  DNC's recurrence runs as two compiled ops on a CPU (:mod:`rnn.ops.dnc`);
* ``eager``: the step without ``tf.function`` (what a user debugging the
  model pays; the compiled ops too).

The first step (tracing and compiling) is reported separately; the rest are
blocks of ``--block`` steps, the blocks of the compiled variants
interleaved, and the table gives the median over blocks in ms per step and
steps per second. The job's own ``make demo`` line reports the same speed
over a whole run (evaluation and checkpoints included).

Usage::

    python bench/dnc_bench.py                 # 8 blocks of 50 steps (~1 min)
    python bench/dnc_bench.py --blocks 3 --block 20 --eager-steps 3

Times on a shared machine are noisy: read differences within about +-15%
as ties, and run it again when the machine is quiet.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnn.examples.repeat_copy.config import Config
from rnn.examples.repeat_copy.task import TRAIN
from rnn.examples.repeat_copy.training import Run


def _build(jit: bool, output_dir: str) -> tuple[Run, float]:
    """A training run of the demo configuration, and its first step's seconds."""
    run = Run(Config(jit=jit, output_dir=output_dir, progress=False))
    start = time.perf_counter()
    run.train_step(0)
    return run, time.perf_counter() - start


def _eager_step(run: Run, step: int) -> None:
    """One training step without tf.function: the job's own gradient
    computation (``Run._replica_grads``, un-jitted) and optimizer update."""
    batch = run.task.batch(run.config.seed, TRAIN, step)
    grads, _, _ = run._replica_grads(*(tf.constant(x) for x in batch))
    run.optimizer.apply(grads, run.variables)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark with command-line ``argv``; prints the table
    (tests/rnn/test_dnc_bench.py runs a tiny one)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=8, help="timed blocks per variant (default 8)")
    p.add_argument("--block", type=int, default=50, help="training steps per block (default 50)")
    p.add_argument(
        "--eager-steps", type=int, default=5, help="eager steps timed (default 5; 0 to skip)"
    )
    args = p.parse_args(argv)
    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}; the repeat-copy job's default DNC configuration"
    )
    with tempfile.TemporaryDirectory() as tmp:
        runs, first = {}, {}
        for name, jit in (("jit", True), ("graph", False)):
            runs[name], first[name] = _build(jit, os.path.join(tmp, name))
        times: dict[str, list[float]] = {name: [] for name in runs}
        step = 1
        for block in range(args.blocks):
            order = list(runs) if block % 2 == 0 else list(reversed(runs))
            for name in order:
                start = time.perf_counter()
                for _ in range(args.block):
                    runs[name].train_step(step)
                    step += 1
                times[name].append((time.perf_counter() - start) / args.block)
        if args.eager_steps:
            run = runs["graph"]
            _eager_step(run, 0)  # first eager call: builds the optimizer's eager functions
            eager = []
            for i in range(args.eager_steps):
                start = time.perf_counter()
                _eager_step(run, i + 1)
                eager.append(time.perf_counter() - start)
            times["eager"], first["eager"] = eager, float("nan")
    rows = []
    for name, samples in times.items():
        ms = 1e3 * statistics.median(samples)
        rows.append((name, f"{1e3 * first[name]:.0f}", f"{ms:.2f}", f"{1e3 / ms:.1f}"))
    header = ("step", "first step ms", "ms/step", "steps/s")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")
    print(f"(load average now {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
