"""The training loop of the repeat-copy job (rnn.examples.repeat_copy.training)."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import rnn.examples.repeat_copy as rc
from rnn.examples.repeat_copy.config import Config
from rnn.examples.repeat_copy.metrics import CSV_FIELDS
from rnn.examples.repeat_copy.task import TRAIN, Batch
from rnn.examples.repeat_copy.training import Run, build_optimizer
from tests.rnn.examples.tiny_runs import TINY, read_rows


@pytest.mark.parametrize("core", ["dnc", "lstm", "gru", "deep"])
def test_every_core_trains_with_the_same_code(core, tmp_path, capsys):
    out = str(tmp_path / core)
    # The LSTM run takes the default path (XLA, which compiles fast for it);
    # the others the plain graph (the DNC under XLA is tested in test_dnc.py).
    jit = ["--jit"] if core == "lstm" else ["--no-jit"]
    rc.main(
        TINY
        + jit
        + [
            "--core",
            core,
            "--steps",
            "3",
            "--eval_every",
            "2",
            "--checkpoint_every",
            "2",
            "--output_dir",
            out,
            "--progress",
        ]
    )
    captured = capsys.readouterr()
    assert f"repeat_copy: core={core} step=3 eval cost=" in captured.out
    assert re.search(r"3/3 .*loss [0-9.]+ bit errors [0-9.]+", captured.err)  # the progress bar
    rows = read_rows(out)
    assert [int(r["step"]) for r in rows] == [2, 3]
    for row in rows:
        for key in CSV_FIELDS:
            assert np.isfinite(float(row[key]))
        assert 0.0 <= float(row["eval_bit_errors"]) <= 2 * 2 * 3 + 1
    assert os.path.getsize(os.path.join(out, "learning_curve.png")) > 1000
    assert os.path.exists(os.path.join(out, "memory.png")) == (core == "dnc")
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("-3")
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["core"] == core


def test_training_reduces_the_cost(tmp_path):
    out = str(tmp_path / "learn")
    summary = rc.train(
        rc.parse_config(
            TINY
            + [
                "--core",
                "gru",
                "--steps",
                "150",
                "--eval_every",
                "150",
                "--batch_size",
                "16",
                "--learning_rate",
                "0.01",
                "--no-jit",
                "--output_dir",
                out,
            ]
        )
    )
    # Untrained, a sequence costs about ln(2) per answer bit: ~9 nats here.
    first = rc.train(
        rc.parse_config(
            TINY
            + [
                "--core",
                "gru",
                "--steps",
                "1",
                "--eval_every",
                "1",
                "--batch_size",
                "16",
                "--no-jit",
                "--output_dir",
                out + "0",
            ]
        )
    )
    assert summary["eval_cost"] < 0.8 * first["eval_cost"]


def reference_adam(grads, learning_rate, half_life, epsilon=1e-8, beta1=0.9, beta2=0.999):
    """The job's Adam as it was hand-written before it used Keras', in NumPy."""
    x = np.array([1.0, -2.0, 0.5])
    m = v = np.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        lr = learning_rate * 0.5 ** ((t - 1) / half_life) if half_life else learning_rate
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        x = x - lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * m / (np.sqrt(v) + epsilon)
    return x


@pytest.mark.parametrize("half_life", [0, 3])
def test_keras_adam_does_the_maths_of_the_former_hand_written_one(half_life):
    rng = np.random.default_rng(0)
    grads = rng.normal(size=[8, 3])
    opt = build_optimizer(Config(learning_rate=0.05, lr_half_life=half_life, max_grad_norm=1e6))
    var = tf.Variable([1.0, -2.0, 0.5], dtype=tf.float64)
    for g in grads:
        opt.apply([tf.constant(g)], [var])
    # (The schedule computes the learning rate in float32.)
    np.testing.assert_allclose(var.numpy(), reference_adam(grads, 0.05, half_life), rtol=1e-5)
    assert int(opt.iterations) == 8


def test_gradients_are_clipped_to_the_global_norm():
    opt = build_optimizer(Config(learning_rate=1.0, lr_half_life=0, max_grad_norm=0.5))
    a, b = tf.Variable([0.0]), tf.Variable([0.0])
    opt.apply([tf.constant([3.0]), tf.constant([4.0])], [a, b])
    # Adam's first step is lr * g / |g| per element whatever the scale, so look at the moments.
    m = [v.numpy() for v in opt.variables if v.name.endswith("_momentum")]
    np.testing.assert_allclose(np.concatenate(m), [0.1 * 0.3, 0.1 * 0.4], rtol=1e-6)


def test_the_xla_step_with_its_optimizer_update_trains_as_the_graph_step(tmp_path):
    # Under --jit without a strategy the whole training step, the optimizer's
    # update included, is one XLA program; without XLA the update runs as a graph.
    runs = []
    for jit in (True, False):
        config = rc.parse_config(
            TINY + ["--core", "lstm", "--output_dir", str(tmp_path / str(jit))]
        )
        config.jit = jit
        run = Run(config)
        costs = [run.train_step(step) for step in range(3)]
        runs.append((costs, [v.numpy() for v in run.variables], int(run.optimizer.iterations)))
    (xla_costs, xla_vars, xla_steps), (graph_costs, graph_vars, graph_steps) = runs
    assert xla_steps == graph_steps == 3
    np.testing.assert_allclose(xla_costs, graph_costs, rtol=1e-4, atol=1e-6)
    for a, b in zip(xla_vars, graph_vars):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_each_step_trains_on_its_own_batch_while_the_next_is_prepared(tmp_path):
    # train_step prepares the following step's batch on a worker thread; a
    # step at another length (the curriculum) or out of order makes its own.
    config = rc.parse_config(TINY + ["--core", "lstm", "--no-jit", "--output_dir", str(tmp_path)])
    run = Run(config)
    seen = []

    def spy(*inputs):
        seen.append([x.numpy() for x in inputs])
        return tf.constant(0.0), tf.constant(0.0)

    run._train_step = spy
    for step, length in [(0, 2), (1, 2), (2, 3), (3, 3), (5, 3), (6, 2)]:
        run.max_length = length
        run.train_step(step)
        want = dataclasses.replace(run.task, max_length=length).batch(config.seed, TRAIN, step)
        for got, expected in zip(seen[-1], want):
            np.testing.assert_array_equal(got, expected)
    assert len(seen) == 6


def test_the_worker_makes_the_tensors_with_one_replica_only(tmp_path):
    config = rc.parse_config(TINY + ["--core", "lstm", "--no-jit", "--output_dir", str(tmp_path)])
    run = Run(config)
    one = run._train_inputs(0, 2)
    assert not isinstance(one, Batch) and all(isinstance(x, tf.Tensor) for x in one)
    want = dataclasses.replace(run.task, max_length=2).batch(config.seed, TRAIN, 0)
    for got, expected in zip(one, want):
        np.testing.assert_array_equal(got.numpy(), expected)

    class TwoReplicas:
        num_replicas_in_sync = 2

    run.strategy = TwoReplicas()
    assert isinstance(run._train_inputs(0, 2), Batch)  # (spread over the replicas later)


def test_by_default_a_dnc_trains_on_its_compiled_kernels_and_other_cores_under_xla(tmp_path):
    """No --jit/--no-jit: XLA, except for a DNC that rnn's compiled kernels
    run (XLA cannot hold them); the flags override either way."""
    import rnn
    from rnn.ops.dnc import native_kernels_available

    def run(*flags: str) -> Run:
        out = str(tmp_path / str(len(os.listdir(tmp_path))))
        return Run(rc.parse_config(TINY + ["--output_dir", out, *flags]))

    dnc = run()
    assert dnc.config.jit is None and dnc.jit is not dnc.core.kernels_apply()
    if native_kernels_available():
        assert not dnc.jit and dnc.time_steps is None  # no padding for XLA either
        before = rnn.kernel_info()["dnc"].calls["RnnDncBackward"]
        dnc.train_step(0)
        assert rnn.kernel_info()["dnc"].calls["RnnDncBackward"] > before
    assert run("--core", "lstm").jit is True
    assert run("--jit").jit is True and run("--no-jit").jit is False
    assert run("--deallocate").jit is True  # a DNC the kernels do not cover
