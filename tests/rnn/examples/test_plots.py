"""The figures of the repeat-copy job: optional, as matplotlib is."""

import os

import numpy as np
import pytest
import tensorflow as tf

import rnn.examples.repeat_copy as rc
from rnn import DNC
from rnn.examples.repeat_copy import plots
from tests.rnn.examples.tiny_runs import TINY, read_rows


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


def test_record_memory_matches_stepping_the_dnc_by_hand():
    dnc = DNC(output_size=2, memory_size=5, word_size=3, num_reads=2)
    x = np.random.default_rng(0).normal(size=[6, 1, 3]).astype(np.float32)
    rec = plots.record_memory(dnc, x)
    state = dnc.initial_state(1)
    for t in range(6):
        output, state = dnc(tf.constant(x[t]), state)
        access = state.access_state
        np.testing.assert_allclose(rec["write_weights"][t], access.write_weights[0], atol=1e-6)
        np.testing.assert_allclose(rec["read_weights"][t], access.read_weights[0], atol=1e-6)
        np.testing.assert_allclose(rec["usage"][t], access.usage[0], atol=1e-6)
        np.testing.assert_allclose(rec["outputs"][t], tf.sigmoid(output[0]), atol=1e-6)
