"""The figures of the repeat-copy job: optional, as matplotlib is."""

import os

import pytest

import rnn.examples.repeat_copy as rc
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
