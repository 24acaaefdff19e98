"""Running an example program in child processes, and killing one of its workers mid-run.

Shared by the multi-worker tests of the repeat-copy job (test_faults.py) and
of the Keras example (test_keras_multi_worker.py). Every child has a timeout;
a launcher that is still running when a test ends is killed (and it kills its
workers).
"""

import json
import os
import signal
import subprocess
import sys
import time

from rnn.examples.local_cluster import PIDS_FILE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def child_env():
    """This environment for a child: the checkout importable, no TF_CONFIG, quiet TF."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_module(module, *flags, timeout=240):
    """``python -m module *flags`` to completion, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *flags],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(path, proc, timeout=180):
    """Waits until ``path`` exists while ``proc`` runs (fails if it ends or takes too long)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, f"the run ended before {path} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def kill_worker_when(module, flags, output_dir, path, worker=1, timeout=120):
    """Runs ``module`` with ``--local_workers 2`` and kills ``worker`` with SIGKILL once
    ``path`` exists; returns ``(launcher status, its stderr, the killed pid, the seconds the
    launcher took to end after the kill)``."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", module, *flags, "--output_dir", output_dir, "--local_workers", "2"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(path, launcher)
        with open(os.path.join(output_dir, PIDS_FILE)) as f:
            pid = json.load(f)["pids"][worker]
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        _, err = launcher.communicate(timeout=timeout)
        return launcher.returncode, err, pid, time.monotonic() - killed_at
    finally:
        launcher.kill()
