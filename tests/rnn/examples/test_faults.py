"""The repeat-copy job on two local workers, a killed worker, and torn or garbage checkpoints.

Every multi-worker run here is ``python -m rnn.examples.repeat_copy
--local_workers 2`` in a child process (MultiWorkerMirroredStrategy has to
be made at program start), with tiny models and a few dozen steps; every
child has a timeout and the launcher kills its workers when it ends.
"""

import json
import os

import numpy as np
import pytest

import rnn.examples.repeat_copy as rc
from rnn.examples.local_cluster import PIDS_FILE
from tests.rnn.examples.local_workers import kill_worker_when, run_module
from tests.rnn.examples.tiny_runs import TINY, assert_same_run, read_rows

FLAGS = TINY + ["--core", "lstm", "--no-jit"]

pytestmark = pytest.mark.xdist_group("multi_worker")  # (two workers each: one test at a time)


def _job(*flags, timeout=240):
    return run_module("rnn.examples.repeat_copy", *flags, timeout=timeout)


def test_two_local_workers_train_as_one_process_with_the_same_global_batch(tmp_path):
    single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
    flags = FLAGS + ["--steps", "6", "--eval_every", "3", "--checkpoint_every", "3"]
    rc.main(flags + ["--output_dir", single])
    proc = _job(*flags, "--output_dir", multi, "--local_workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Each worker trains on its half of every global batch; the summed
    # gradients are the whole batch's, so the run matches one process (up to
    # the order of float sums). Two workers on the same half would not.
    assert_same_run(single, multi, exact=False)
    # Only the chief writes the run's outputs; worker 1's collective saves go
    # to its scratch folder.
    assert proc.stdout.count("repeat_copy: core=lstm step=6") == 1
    assert sorted(os.listdir(multi)) == sorted(os.listdir(single) + [PIDS_FILE, "worker_scratch_1"])
    assert not any(n.endswith(".csv") for n in os.listdir(os.path.join(multi, "worker_scratch_1")))
    with open(os.path.join(multi, PIDS_FILE)) as f:
        assert len(json.load(f)["pids"]) == 2


def test_a_killed_worker_stops_its_peer_with_a_message_and_resume_loses_no_step(tmp_path):
    flags = FLAGS + ["--steps", "120", "--eval_every", "20", "--checkpoint_every", "20"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    proc = _job(*flags, "--output_dir", whole, "--local_workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]

    status, err, worker_1, stopped_after = kill_worker_when(
        "rnn.examples.repeat_copy", flags, cut, os.path.join(cut, "checkpoints", "ckpt-40.index")
    )
    assert status != 0
    assert f"worker 1 (pid {worker_1}) was killed by SIGKILL" in err
    assert "repeat_copy: worker 0 lost a peer worker at step" in err
    assert "--resume to continue" in err
    # The survivor noticed at once (its collective failed), not after the
    # collective timeout of 120 s.
    assert stopped_after < 60, stopped_after
    print(f"worker 0 stopped {stopped_after:.1f} s after worker 1 was killed")
    steps = [int(r["step"]) for r in read_rows(cut)]
    assert 40 <= steps[-1] < 120

    resumed = _job(*flags, "--output_dir", cut, "--local_workers", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # The step counter, the data stream, Adam's state and the CSV continue:
    # the same rows and weights as the run that was never interrupted.
    assert_same_run(whole, cut, exact=False)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garbage(path):
    with open(path, "wb") as f:
        f.write(np.random.default_rng(0).bytes(300))


@pytest.mark.parametrize(
    "damage, which",
    [
        (_truncate, "ckpt-6.data-00000-of-00001"),
        (_garbage, "ckpt-6.data-00000-of-00001"),
        (_garbage, "ckpt-6.index"),
        (os.remove, "ckpt-6.data-00000-of-00001"),
    ],
    ids=["truncated data", "garbage data", "garbage index", "missing data"],
)
def test_a_damaged_newest_checkpoint_resumes_from_the_previous_one(tmp_path, damage, which):
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    flags = FLAGS + ["--eval_every", "2", "--checkpoint_every", "2"]
    rc.main(flags + ["--steps", "8", "--output_dir", whole])
    rc.main(flags + ["--steps", "6", "--output_dir", cut])
    ckpts = os.path.join(cut, "checkpoints")
    damage(os.path.join(ckpts, which))
    with pytest.warns(RuntimeWarning, match=r"skipped damaged checkpoint\(s\) '.*ckpt-6'"):
        rc.main(flags + ["--steps", "8", "--output_dir", cut, "--resume"])
    assert_same_run(whole, cut)  # from step 4 again: nothing lost, nothing repeated
    assert any(n.endswith(".damaged") for n in os.listdir(ckpts))  # set aside, not deleted


def test_a_garbage_checkpoint_index_file_falls_back_to_the_checkpoint_files(tmp_path):
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    flags = FLAGS + ["--eval_every", "2", "--checkpoint_every", "2"]
    rc.main(flags + ["--steps", "6", "--output_dir", whole])
    rc.main(flags + ["--steps", "4", "--output_dir", cut])
    _garbage(os.path.join(cut, "checkpoints", "checkpoint"))
    with pytest.warns(RuntimeWarning, match="the checkpoint index .* is damaged"):
        rc.main(flags + ["--steps", "6", "--output_dir", cut, "--resume"])
    assert_same_run(whole, cut)


def test_when_every_checkpoint_is_damaged_resume_says_so_and_names_them(tmp_path, capsys):
    cut = str(tmp_path / "cut")
    flags = FLAGS + ["--eval_every", "2", "--checkpoint_every", "2"]
    rc.main(flags + ["--steps", "4", "--output_dir", cut])
    for step in (2, 4):
        _truncate(os.path.join(cut, "checkpoints", f"ckpt-{step}.data-00000-of-00001"))
    with pytest.raises(SystemExit) as exit_info:
        rc.main(flags + ["--steps", "6", "--output_dir", cut, "--resume"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "no checkpoint in" in err and "can be read" in err
    assert "ckpt-4'" in err and "ckpt-2'" in err
    assert [r["step"] for r in read_rows(cut)] == ["2", "4"]  # nothing overwritten


def test_two_workers_resume_past_a_torn_checkpoint(tmp_path):
    flags = FLAGS + ["--eval_every", "2", "--checkpoint_every", "2"]
    whole, cut = str(tmp_path / "whole"), str(tmp_path / "cut")
    rc.main(flags + ["--steps", "6", "--output_dir", whole])
    proc = _job(*flags, "--steps", "4", "--output_dir", cut, "--local_workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _truncate(os.path.join(cut, "checkpoints", "ckpt-4.data-00000-of-00001"))
    proc = _job(*flags, "--steps", "6", "--output_dir", cut, "--local_workers", "2", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped damaged checkpoint(s)" in proc.stderr and "ckpt-4'" in proc.stderr
    assert_same_run(whole, cut, exact=False)  # both workers went back to step 2


def test_local_workers_flag_errors():
    with pytest.raises(SystemExit):
        rc.main(FLAGS + ["--local_workers", "-1"])
    with pytest.raises(SystemExit):
        rc.main(FLAGS + ["--local_workers", "2", "--distribute", "mirrored"])
    with pytest.raises(SystemExit):
        rc.main(FLAGS + ["--collective_timeout_s", "0"])
