"""The repeat-copy job over several devices (MirroredStrategy) and workers."""

import os
import subprocess
import sys

import pytest

import rnn.examples.repeat_copy as rc
from tests.rnn.examples.tiny_runs import TINY, assert_same_run, read_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


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
