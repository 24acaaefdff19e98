"""Evaluation beyond the training lengths, bigger memories at test time, the curriculum, budgets."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

import rnn.examples.repeat_copy as rc
from rnn.examples.repeat_copy import compare
from rnn.examples.repeat_copy.config import Config
from rnn.examples.repeat_copy.generalisation import (
    _with_memory,
    evaluate_lengths,
    read_generalisation,
)
from rnn.examples.repeat_copy.model import build_core, example_errors
from rnn.examples.repeat_copy.task import GENERALISATION
from tests.rnn.examples.tiny_runs import TINY, assert_same_run, read_rows

FLAGS = TINY + ["--no-jit"]


def test_a_run_ends_with_generalisation_csv_and_png(tmp_path, capsys):
    out = str(tmp_path / "run")
    summary = rc.train(
        rc.parse_config(FLAGS + ["--core", "dnc", "--steps", "2", "--output_dir", out])
    )
    rows = read_generalisation(os.path.join(out, "generalisation.csv"))
    # Default lengths: 1 .. twice the longest trained (TINY trains up to 2).
    assert [r["pattern_length"] for r in rows] == [1, 2, 3, 4]
    assert [r["trained"] for r in rows] == [True, True, False, False]
    assert all(0 <= r["bit_error_rate"] <= 1 and 0 <= r["perfect_fraction"] <= 1 for r in rows)
    assert all(r["sequences"] == 4 and r["memory_size"] == 4 for r in rows)
    assert summary["generalisation"][0]["pattern_length"] == 1
    if rc.plots_available():
        assert os.path.getsize(os.path.join(out, "generalisation.png")) > 1000
    assert "bit error rate beyond the training lengths (trained up to 2)" in capsys.readouterr().out


def test_bigger_memories_at_test_time_use_the_trained_weights(tmp_path):
    config = dataclasses.replace(
        rc.parse_config(FLAGS + ["--core", "dnc"]), eval_memory_sizes="4,8", eval_lengths="3"
    )
    core = build_core(config)
    batch = config.task().batch(config.seed, GENERALISATION, 0)
    tensors = [tf.constant(x) for x in batch]
    example_errors(core, *tensors)
    same = _with_memory(core, config, config.memory_size)
    np.testing.assert_array_equal(
        example_errors(same, *tensors)[0], example_errors(core, *tensors)[0]
    )
    bigger = _with_memory(core, config, 8)
    assert bigger.memory_size == 8
    for a, b in zip(bigger.variables, core.variables):
        np.testing.assert_array_equal(a, b)
    rows = evaluate_lengths(core, config)
    assert [(r["memory_size"], r["pattern_length"]) for r in rows] == [(4, 3), (8, 3)]


def test_bit_error_rate_and_perfect_fraction_against_a_count_by_hand():
    config = rc.parse_config(FLAGS + ["--core", "lstm", "--eval_lengths", "2"])
    core = build_core(config)
    task = dataclasses.replace(config.task(), min_length=2, max_length=2)
    batch = task.batch(config.seed, GENERALISATION, 2 * 100_000)
    logits, _ = rc.model.rnn.dynamic_unroll(
        core, tf.constant(batch.observations), core.initial_state(4)
    )
    wrong = ((logits.numpy() > 0) != (batch.targets > 0.5)) * batch.mask[:, :, None]
    (row,) = evaluate_lengths(core, config)
    answer_bits = batch.mask.sum() * batch.targets.shape[-1]
    assert row["bit_error_rate"] == pytest.approx(wrong.sum() / answer_bits)
    assert row["perfect_fraction"] == pytest.approx(np.mean(wrong.sum(axis=(0, 2)) == 0))
    assert row["memory_size"] == "" and row["trained"]


def test_the_curriculum_raises_the_length_and_resumes_exactly(tmp_path):
    # A threshold no model misses: the length rises at every evaluation, up to the cap.
    flags = FLAGS + ["--core", "gru", "--eval_every", "2", "--checkpoint_every", "2"]
    flags += ["--curriculum_threshold", "1000", "--curriculum_max_length", "4"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    rc.main(flags + ["--steps", "10", "--output_dir", whole])
    assert [r["max_length"] for r in read_rows(whole)] == ["2", "3", "4", "4", "4"]
    rows = read_generalisation(os.path.join(whole, "generalisation.csv"))
    assert [r["pattern_length"] for r in rows] == list(range(1, 9))  # twice the final length
    assert [r["trained"] for r in rows] == [True] * 4 + [False] * 4
    rc.main(flags + ["--steps", "4", "--output_dir", cut])
    rc.main(flags + ["--steps", "10", "--output_dir", cut, "--resume"])
    assert_same_run(whole, cut)


def test_max_seconds_ends_training_early_and_resume_continues(tmp_path):
    out = str(tmp_path / "run")
    flags = FLAGS + ["--core", "lstm", "--eval_every", "5", "--output_dir", out]
    summary = rc.train(rc.parse_config(flags + ["--steps", "100", "--max_seconds", "0.001"]))
    assert summary["step"] == 1  # the budget was spent by the first step
    assert [r["step"] for r in read_rows(out)] == ["1"]
    # (A flag left out on --resume keeps the run's value: lift the budget explicitly.)
    summary = rc.train(rc.parse_config(flags + ["--steps", "5", "--resume", "--max_seconds", "0"]))
    assert summary["step"] == 5 and [r["step"] for r in read_rows(out)] == ["5"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--eval_lengths", "3,x"], "--eval_lengths must be comma-separated positive integers"),
        (["--eval_memory_sizes", "0"], "--eval_memory_sizes must be comma-separated positive"),
        (["--max_seconds", "-1"], "--max_seconds must be >= 0"),
        (["--curriculum_threshold", "0.1"], "--curriculum_threshold needs --curriculum_max_length"),
        (["--curriculum_threshold", "-1"], "--curriculum_threshold must be >= 0"),
    ],
)
def test_bad_flags_name_themselves(flags, message, capsys):
    with pytest.raises(SystemExit):
        rc.parse_config(flags)
    assert message in capsys.readouterr().err


def test_compare_refuses_unknown_or_repeated_cores(capsys):
    for cores in ("dnc,rnn", "lstm,lstm"):
        with pytest.raises(SystemExit):
            compare.main(["--cores", cores, "--max_seconds", "1"])
    with pytest.raises(SystemExit):
        compare.main(["--cores", "lstm", "--max_seconds", "1", "--core", "gru"])
    err = capsys.readouterr().err
    assert "'rnn' is not one of" in err and "must name distinct cores" in err
    assert "--core and --output_dir are set per core" in err


def test_config_defaults_keep_runs_as_they_were():
    config = Config()
    assert (config.eval_lengths, config.eval_memory_sizes, config.max_seconds) == ("", "", 0.0)
    assert config.curriculum_threshold == 0.0


def test_the_dnc_improvements_are_job_flags():
    config = rc.parse_config(FLAGS + ["--masked_content", "--deallocate", "--sharpen_links"])
    core = build_core(config)
    assert (core.masked_content, core.deallocate, core.sharpen_links) == (True, True, True)
    plain = build_core(rc.parse_config(FLAGS))
    assert (plain.masked_content, plain.deallocate, plain.sharpen_links) == (False,) * 3
