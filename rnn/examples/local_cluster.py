"""Several TensorFlow workers on this machine: ``TF_CONFIG`` for each, started and watched.

A multi-worker run (``tf.distribute.MultiWorkerMirroredStrategy``) is one
process per worker, each told the whole cluster and its own place in it by
the ``TF_CONFIG`` environment variable. :func:`run_local_workers` starts such
a cluster on localhost (free ports chosen at run time), so the same command
that trains on several machines can be tried, and tested, on one:
``python -m rnn.examples.repeat_copy --local_workers 2`` and the Keras
example's ``--local_workers 2`` both use it.

Every worker ends on its own or is ended: when one exits with an error, the
others get ``grace_s`` seconds to notice (their collectives fail, see
:func:`peer_lost`) and are then killed; when the launcher itself is
interrupted, it kills them. Nothing is left running.

>>> config = json.loads(tf_config([5001, 5002], 1))
>>> config["task"], config["cluster"]["worker"]
({'type': 'worker', 'index': 1}, ['localhost:5001', 'localhost:5002'])
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "free_ports",
    "tf_config",
    "task_of",
    "is_chief_task",
    "chief_rule",
    "run_local_workers",
    "run_training_workers",
    "peer_lost",
    "error_summary",
    "peer_lost_error",
    "PIDS_FILE",
    "PEER_LOST_STATUS",
    "PeerLostError",
]

# The exit status of a worker that stopped because a peer worker was lost.
PEER_LOST_STATUS = 3


class PeerLostError(RuntimeError):
    """A multi-worker run stopped because another worker disappeared.

    Its message names the last checkpoint and says how to resume.
    """


# Written by run_local_workers into the run's output directory: the workers'
# process ids, in task order (so a test, or a person, can signal one).
PIDS_FILE = "local_workers.json"


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on localhost that were free a moment ago.

    >>> ports = free_ports(2)
    >>> len(set(ports)), all(1024 <= p < 65536 for p in ports)
    (2, True)
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` of a localhost cluster on ``ports``.

    >>> json.loads(tf_config([1, 2, 3], 2))["task"]["index"]
    2
    """
    return json.dumps(
        {
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def task_of(environ: Any = None) -> tuple[str, int] | None:
    """``(task type, index)`` from ``TF_CONFIG``, or None when it names no cluster.

    >>> task_of({"TF_CONFIG": tf_config([1, 2], 1)})
    ('worker', 1)
    >>> task_of({}) is None
    True
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG")
    if not raw:
        return None
    config = json.loads(raw)
    task = config.get("task") or {}
    if not config.get("cluster") or "type" not in task:
        return None
    return str(task["type"]), int(task.get("index", 0))


def is_chief_task(environ: Any = None) -> bool:
    """Whether ``TF_CONFIG`` makes this process the chief (true without a cluster).

    The chief is the ``chief`` task, or worker 0 when there is none (as in
    TensorFlow's multi-worker strategies).

    >>> is_chief_task({"TF_CONFIG": tf_config([1, 2], 0)}), is_chief_task({})
    (True, True)
    >>> is_chief_task({"TF_CONFIG": tf_config([1, 2], 1)})
    False
    """
    task = task_of(environ)
    if task is None:
        return True
    cluster = json.loads((os.environ if environ is None else environ)["TF_CONFIG"])["cluster"]
    return chief_rule(*task, jobs=list(cluster))


def chief_rule(kind: str, index: int, jobs: Sequence[str]) -> bool:
    """The chief of a cluster with ``jobs``: the ``chief`` task, else worker 0.

    >>> chief_rule("worker", 0, ["worker"]), chief_rule("worker", 0, ["chief", "worker"])
    (True, False)
    """
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in jobs)


def peer_lost(error: BaseException) -> bool:
    """Whether a TensorFlow error says that another worker of the cluster is gone.

    A worker killed mid-step resets its connections (``Unavailable`` or a
    ``Connection reset by peer`` in an ``Internal``/``Unknown`` error); one
    that vanishes silently makes the collectives time out
    (``DeadlineExceeded``); the others' pending collectives are then
    ``Cancelled`` or ``Aborted``.

    >>> import tensorflow as tf
    >>> peer_lost(tf.errors.UnavailableError(None, None, "socket closed"))
    True
    >>> peer_lost(tf.errors.InvalidArgumentError(None, None, "bad shape"))
    False
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if isinstance(
        error,
        (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
            tf.errors.CancelledError,
            tf.errors.AbortedError,
        ),
    ):
        return True
    if isinstance(error, (tf.errors.InternalError, tf.errors.UnknownError)):
        text = str(error).lower()
        return any(
            word in text
            for word in ("connection", "peer", "socket", "collective", "unavailable", "deadline")
        )
    return False


def peer_lost_error(
    job: str, task_id: int, step: int, saved_step: int, checkpoints: str, error: BaseException
) -> PeerLostError:
    """The error a worker stops with when a collective says a peer is gone.

    >>> import tensorflow as tf
    >>> str(peer_lost_error("job", 0, 12, 10, "out/checkpoints",
    ...                     tf.errors.UnavailableError(None, None, "socket closed")))[:62]
    'job: worker 0 lost a peer worker at step 12 (a collective fail'
    """
    return PeerLostError(
        f"{job}: worker {task_id} lost a peer worker at step {step} "
        f"(a collective failed: {error_summary(error)}). "
        f"The last checkpoint is step {saved_step} in {checkpoints}; start every worker "
        "again with the same flags and --resume to continue from it (with --local_workers, "
        "rerun the same command with --resume)"
    )


def error_summary(error: BaseException) -> str:
    """One line saying what a TensorFlow error was about (its gRPC cause when it has one).

    >>> import tensorflow as tf
    >>> error_summary(tf.errors.UnavailableError(None, None,
    ...     'Graph execution error:\\n\\n{grpc_message:"Socket closed", grpc_status:14}'))
    'UnavailableError: Socket closed'
    """
    text = str(error)
    cause = re.search(r'grpc_message:"([^"]+)"', text)
    if cause:
        detail = cause.group(1)
    else:
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        lines = [x for x in lines if x != "Graph execution error:"] or [""]
        detail = lines[0][:160]
    return f"{type(error).__name__}: {detail}"


def _describe(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


def run_local_workers(
    module: str,
    argv: Sequence[str],
    count: int,
    output_dir: str | None = None,
    grace_s: float = 60.0,
) -> int:
    """Runs ``python -m module *argv`` as ``count`` workers of a localhost cluster.

    Each worker gets its own ``TF_CONFIG`` (free ports chosen now); their
    process ids go to ``<output_dir>/local_workers.json`` when
    ``output_dir`` is given. Waits for all of them: returns 0 when every
    worker succeeded, else (after saying on stderr which workers failed how)
    the status of one that was killed by a signal (128 + its number; the
    others' errors follow from it), or of the first that failed. Workers
    still running ``grace_s`` seconds after another failed are killed, and
    so are all of them if this process is interrupted.
    """
    ports = free_ports(count)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(count):
            env = dict(os.environ, TF_CONFIG=tf_config(ports, index))
            procs.append(subprocess.Popen([sys.executable, "-m", module, *argv], env=env))
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
            with open(os.path.join(output_dir, PIDS_FILE), "w") as f:
                json.dump({"pids": [p.pid for p in procs], "ports": ports}, f)
        deadline: float | None = None
        while any(p.poll() is None for p in procs):
            if deadline is None and any(p.returncode not in (None, 0) for p in procs):
                deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                for index, p in enumerate(procs):
                    if p.poll() is None:
                        print(
                            f"local_workers: worker {index} (pid {p.pid}) did not stop "
                            f"within {grace_s:.0f} s of another's failure; killing it",
                            file=sys.stderr,
                            flush=True,
                        )
                        p.kill()
                break
            time.sleep(0.1)
        for p in procs:
            p.wait()
        failed = [(i, p) for i, p in enumerate(procs) if p.returncode != 0]
        for index, p in failed:
            print(
                f"local_workers: worker {index} (pid {p.pid}) {_describe(p.returncode)}",
                file=sys.stderr,
                flush=True,
            )
        if not failed:
            return 0
        # A worker killed by a signal is the cause; the others' errors follow from it.
        failed.sort(key=lambda item: item[1].returncode >= 0)
        status = failed[0][1].returncode
        return 128 - status if status < 0 else status
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def run_training_workers(
    program: str,
    module: str,
    argv: Sequence[str],
    count: int,
    output_dir: str,
    collective_timeout_s: float,
) -> int:
    """``--local_workers N`` of a training job: :func:`run_local_workers` of
    ``python -m module *argv --distribute multi_worker --local_workers 0``,
    with the grace of one collective timeout (plus 30 s); when they failed,
    says on stderr (as ``program``) how to resume. Returns their status."""
    status = run_local_workers(
        module,
        [*argv, "--distribute", "multi_worker", "--local_workers", "0"],
        count,
        output_dir=output_dir,
        grace_s=collective_timeout_s + 30.0,
    )
    if status:
        print(
            f"{program}: the {count} local workers stopped (status {status}); run the same "
            f"command with --resume to continue from the last checkpoint in "
            f"{os.path.join(output_dir, 'checkpoints')}",
            file=sys.stderr,
            flush=True,
        )
    return status
