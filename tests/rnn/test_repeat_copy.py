"""The repeat-copy task and the main job, ``python -m rnn.examples.repeat_copy``.

Runs here are tiny (a few steps of small cores, mostly without XLA); the
default run's results are measured and reported in docs/dnc.md.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rnn.examples import repeat_copy as rc
from rnn.examples.repeat_copy_task import EVAL, TRAIN, RepeatCopyTask

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = [
    "--num_bits",
    "2",
    "--max_length",
    "2",
    "--max_repeats",
    "2",
    "--batch_size",
    "4",
    "--hidden_size",
    "8",
    "--memory_size",
    "4",
    "--word_size",
    "3",
    "--num_reads",
    "1",
    "--eval_batches",
    "1",
    "--no-progress",
]


# ---------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------


def test_batch_layout_matches_the_documented_one():
    task = RepeatCopyTask(
        num_bits=3, batch_size=6, min_length=1, max_length=4, min_repeats=1, max_repeats=3
    )
    batch = task.batch(seed=5, stream=TRAIN, index=2)
    obs, tgt, mask = batch
    assert obs.shape[1:] == (6, 5) and tgt.shape[1:] == (6, 4) and mask.shape[1] == 6
    assert obs.dtype == tgt.dtype == mask.dtype == np.float32
    lengths = []
    for b in range(6):
        # Recover L and n from the observation channels, then check everything else.
        assert obs[0, b, 3] == 1.0 and obs[0, b, :3].sum() == 0.0
        repeat_step = int(np.nonzero(obs[:, b, 4])[0][0])
        length = repeat_step - 1
        n = int(round(obs[repeat_step, b, 4] * 3))
        assert 1 <= length <= 4 and 1 <= n <= 3
        pattern = obs[1 : length + 1, b, :3]
        start = length + 2
        np.testing.assert_array_equal(
            tgt[start : start + n * length, b, :3], np.tile(pattern, [n, 1])
        )
        assert tgt[start + n * length, b, 3] == 1.0 and tgt[:, b, 3].sum() == 1.0
        expected_mask = np.zeros(obs.shape[0])
        expected_mask[start : start + n * length + 1] = 1.0
        np.testing.assert_array_equal(mask[:, b], expected_mask)
        assert obs[start:, b].sum() == 0.0  # no input while answering
        lengths.append(length * (n + 1) + 3)
    assert obs.shape[0] == max(lengths) <= task.max_time


def test_batches_are_a_function_of_seed_stream_and_index():
    task = RepeatCopyTask(batch_size=8)
    same = [task.batch(3, TRAIN, 7) for _ in range(2)]
    for a, b in zip(*same):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(task.batch(3, TRAIN, 8).observations[:4], same[0].observations[:4])
    assert not np.array_equal(task.batch(3, EVAL, 7).observations[:4], same[0].observations[:4])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_bits=0), "num_bits must be a positive integer"),
        (dict(min_length=4, max_length=2), r"min_length \(4\) must be <= max_length \(2\)"),
        (dict(min_repeats=3, max_repeats=1), r"min_repeats \(3\) must be <= max_repeats"),
    ],
)
def test_task_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepeatCopyTask(**kwargs)


def test_sequence_sums_count_cost_and_bit_errors():
    task = RepeatCopyTask(num_bits=3, batch_size=5)
    obs, tgt, mask = task.batch(0, TRAIN, 0)

    class Oracle(tf.Module):
        """Emits logits from a fixed sequence, ignoring its inputs."""

        def __init__(self, logits):
            super().__init__()
            self.logits = tf.constant(logits)

        def initial_state(self, batch_size, dtype=tf.float32):
            return tf.zeros([], tf.int32)

        def __call__(self, inputs, t):
            return tf.gather(self.logits, t), t + 1

    answer_bits = float((mask[:, :, None] * np.ones_like(tgt)).sum())
    perfect = np.where(tgt > 0.5, 30.0, -30.0).astype(np.float32)
    cost, errors = rc.sequence_sums(Oracle(perfect), obs, tgt, mask)
    assert float(errors) == 0.0 and float(cost) < 1e-8
    cost, errors = rc.sequence_sums(Oracle(-perfect), obs, tgt, mask)
    assert float(errors) == answer_bits
    np.testing.assert_allclose(float(cost), 30.0 * answer_bits, rtol=1e-5)
    cost, _ = rc.sequence_sums(Oracle(np.zeros_like(perfect)), obs, tgt, mask)
    np.testing.assert_allclose(float(cost), np.log(2.0) * answer_bits, rtol=1e-5)


# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--min_length", "3", "--max_length", "2"],
            r"--min_length \(3\) must be <= --max_length \(2\)",
        ),
        (["--min_repeats", "4", "--max_repeats", "2"], r"--min_repeats \(4\) must be <="),
        (["--num_bits", "0"], "--num_bits must be >= 1, got 0"),
        (["--core", "transformer"], "invalid choice: 'transformer'"),
        (["--learning_rate", "-1"], "--learning_rate must be a positive number"),
        (["--steps", "ten"], "invalid int value: 'ten'"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        rc.main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert __import__("re").search(message, err), err


def test_resume_without_checkpoint_and_with_other_flags_is_an_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit):
        rc.main(TINY + ["--output_dir", out, "--resume"])
    assert "no checkpoint to resume from" in capsys.readouterr().err
    rc.main(TINY + ["--core", "gru", "--steps", "1", "--output_dir", out, "--no-jit"])
    with pytest.raises(SystemExit):
        rc.main(TINY + ["--core", "lstm", "--steps", "2", "--output_dir", out, "--resume"])
    assert "--core 'lstm' differs from the run being resumed ('gru')" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Tiny runs
# ---------------------------------------------------------------------------


def read_rows(out):
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


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
    assert "3/3 loss" in captured.err  # the progress bar
    rows = read_rows(out)
    assert [int(r["step"]) for r in rows] == [2, 3]
    for row in rows:
        for key in rc.CSV_FIELDS:
            assert np.isfinite(float(row[key]))
        assert 0.0 <= float(row["eval_bit_errors"]) <= 2 * 2 * 3 + 1
    assert os.path.getsize(os.path.join(out, "learning_curve.png")) > 1000
    assert os.path.exists(os.path.join(out, "memory.png")) == (core == "dnc")
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith("-3")
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["core"] == core


def test_without_matplotlib_training_runs_and_says_so_first(tmp_path, monkeypatch, capsys):
    """matplotlib is optional: a run without it warns before training and still
    writes its metrics and checkpoints (it used to die after training)."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a),
    )
    out = str(tmp_path / "noplots")
    with pytest.warns(RuntimeWarning, match="matplotlib is not installed"):
        rc.main(
            TINY
            + [
                "--no-jit",
                "--core",
                "lstm",
                "--steps",
                "2",
                "--eval_every",
                "2",
                "--output_dir",
                out,
                "--no-progress",
            ]
        )
    assert "repeat_copy: core=lstm step=2" in capsys.readouterr().out
    assert [int(r["step"]) for r in read_rows(out)] == [2]
    assert not os.path.exists(os.path.join(out, "learning_curve.png"))


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


def checkpoint_values(out):
    reader = tf.train.load_checkpoint(os.path.join(out, "checkpoints"))
    return {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if not any(
            skip in k for skip in ("elapsed_s", "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH")
        )
    }


def assert_same_run(a, b, exact=True):
    va, vb = checkpoint_values(a), checkpoint_values(b)
    assert va.keys() == vb.keys() and len(va) > 10
    for key in va:
        if exact:
            np.testing.assert_array_equal(va[key], vb[key], err_msg=key)
        else:
            np.testing.assert_allclose(va[key], vb[key], rtol=1e-5, atol=1e-6, err_msg=key)
    rows_a, rows_b = read_rows(a), read_rows(b)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("train_cost", "train_bit_errors", "eval_cost", "eval_bit_errors"):
            if exact:
                assert ra[key] == rb[key], (key, ra, rb)
            else:
                np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=1e-4)


def test_resume_continues_exactly(tmp_path, monkeypatch):
    flags = TINY + ["--core", "lstm", "--eval_every", "2", "--checkpoint_every", "3", "--no-jit"]
    straight = str(tmp_path / "straight")
    rc.main(flags + ["--steps", "7", "--output_dir", straight])
    assert [r["step"] for r in read_rows(straight)] == ["2", "4", "6", "7"]

    # 1. A run killed at step 5 resumes from its checkpoint at step 3.
    killed = str(tmp_path / "killed")
    original = rc._Run.train_step

    def crash_at_5(self, step):
        if step == 5:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(rc._Run, "train_step", crash_at_5)
    with pytest.raises(KeyboardInterrupt):
        rc.main(flags + ["--steps", "7", "--output_dir", killed])
    monkeypatch.setattr(rc._Run, "train_step", original)
    assert [r["step"] for r in read_rows(killed)] == ["2", "4"]
    summary = rc.train(
        rc.parse_config(flags + ["--steps", "7", "--resume", "--output_dir", killed])
    )
    assert summary["step"] == 7 and summary["steps_run"] == 4
    assert_same_run(straight, killed)

    # 2. A finished 3-step run extended to 7 steps; only --steps is given, the
    # other flags come from the run's config.json.
    extended = str(tmp_path / "extended")
    rc.main(flags + ["--steps", "3", "--output_dir", extended])
    assert [r["step"] for r in read_rows(extended)] == ["2", "3"]
    rc.main(["--resume", "--steps", "7", "--no-progress", "--output_dir", extended])
    assert_same_run(straight, extended)
    reader = tf.train.load_checkpoint(os.path.join(extended, "checkpoints"))
    iterations = [
        k for k in reader.get_variable_to_shape_map() if k.startswith("optimizer/iterations")
    ]
    assert [int(reader.get_tensor(k)) for k in iterations] == [7]


def test_mirrored_matches_single_device(tmp_path, two_cpus, capsys):
    flags = TINY + ["--core", "gru", "--steps", "3", "--eval_every", "3", "--no-jit"]
    single, mirrored = str(tmp_path / "single"), str(tmp_path / "mirrored")
    rc.main(flags + ["--output_dir", single])
    rc.main(flags + ["--output_dir", mirrored, "--distribute", "mirrored"])
    # Two replicas each see half the batch; summed gradients equal the full batch's.
    assert_same_run(single, mirrored, exact=False)
    with pytest.raises(SystemExit):
        rc.main(flags + ["--output_dir", mirrored, "--distribute", "mirrored", "--batch_size", "3"])
    assert "must be a multiple of the 2 replicas" in capsys.readouterr().err


def test_command_line_entry_point_with_multi_worker_strategy(tmp_path):
    # MultiWorkerMirroredStrategy must be made at program start: a fresh process.
    # Without TF_CONFIG it is a one-worker cluster; --cpu_devices is applied first.
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    out = str(tmp_path / "mw")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnn.examples.repeat_copy",
            *TINY,
            "--core",
            "lstm",
            "--steps",
            "2",
            "--eval_every",
            "2",
            "--no-jit",
            "--distribute",
            "multi_worker",
            "--cpu_devices",
            "2",
            "--output_dir",
            out,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "repeat_copy: core=lstm step=2" in proc.stdout
    assert [r["step"] for r in read_rows(out)] == ["2"]
