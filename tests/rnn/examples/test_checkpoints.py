"""Checkpoints and --resume of the repeat-copy job: a resumed run continues exactly."""

import os
import re

import pytest
import tensorflow as tf

import rnn.examples.repeat_copy as rc
from rnn.examples.repeat_copy import training
from rnn.examples.repeat_copy.checkpoints import Checkpoints
from rnn.examples.repeat_copy.config import ConfigError
from tests.rnn.examples.tiny_runs import TINY, assert_same_run, read_rows


def test_resume_without_checkpoint_and_with_other_flags_is_an_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit):
        rc.main(TINY + ["--output_dir", out, "--resume"])
    assert "no checkpoint to resume from" in capsys.readouterr().err
    rc.main(TINY + ["--core", "gru", "--steps", "1", "--output_dir", out, "--no-jit"])
    with pytest.raises(SystemExit):
        rc.main(TINY + ["--core", "lstm", "--steps", "2", "--output_dir", out, "--resume"])
    assert "--core 'lstm' differs from the run being resumed ('gru')" in capsys.readouterr().err


def test_resume_continues_exactly(tmp_path, monkeypatch):
    flags = TINY + ["--core", "lstm", "--eval_every", "2", "--checkpoint_every", "3", "--no-jit"]
    straight = str(tmp_path / "straight")
    rc.main(flags + ["--steps", "7", "--output_dir", straight])
    assert [r["step"] for r in read_rows(straight)] == ["2", "4", "6", "7"]

    # 1. A run killed at step 5 resumes from its checkpoint at step 3.
    killed = str(tmp_path / "killed")
    original = training.Run.train_step

    def crash_at_5(self, step):
        if step == 5:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(training.Run, "train_step", crash_at_5)
    with pytest.raises(KeyboardInterrupt):
        rc.main(flags + ["--steps", "7", "--output_dir", killed])
    monkeypatch.setattr(training.Run, "train_step", original)
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
        # (Keras' Adam keeps its step count as `_iterations`; the hand-written one had
        # `iterations`.)
        k
        for k in reader.get_variable_to_shape_map()
        if re.match(r"optimizer/_?iterations/", k)
    ]
    assert [int(reader.get_tensor(k)) for k in iterations] == [7]


def test_a_checkpoint_of_another_model_or_optimizer_is_a_clear_error(tmp_path):
    # E.g. one written when the job had its own Adam (variables m_*/v_*, not Keras').
    old_optimizer = tf.Module()
    old_optimizer.m_w = tf.Variable([0.0])
    core = tf.Module()
    core.w = tf.Variable([1.0])
    Checkpoints(str(tmp_path), core, old_optimizer).save(3, 1.0, [0.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="does not match the model and optimizer of this run"):
        Checkpoints(str(tmp_path), core, tf.Module()).restore()
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        Checkpoints(str(tmp_path / "empty"), core, tf.Module()).restore()
