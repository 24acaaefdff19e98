"""What a pip user gets: a wheel built with the standard front-end
(``python -m build``), installed into a fresh virtualenv, has nestlib's C core
and rnn's kernel sources, and the first LSTM compiles, loads and uses the
kernels with the same results as the TensorFlow-ops programs.

The fresh virtualenv borrows TensorFlow, NumPy and dm-tree from the test
environment through a path entry (installing TensorFlow again would take
minutes); nestlib and rnn come from the wheel only (checked).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytest.importorskip("tensorflow")

pytestmark = [
    pytest.mark.xdist_group("packaging"),
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git to list the sources"),
]


def _run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built by ``python -m build`` from the tracked sources."""
    pytest.importorskip("build")
    src = tmp_path_factory.mktemp("src")
    # The tracked files only (what a clean clone or an sdist has).
    files = _run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        if not (ROOT / name).is_file():
            continue  # deleted in the work tree
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)])
    (built,) = out.glob("nestlib-*.whl")
    return built


SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import nestlib, rnn, tensorflow as tf
    from rnn.ops.lstm import lstm_sequence, set_native_kernels
    rng = np.random.default_rng(0)
    shapes = [(6, 5, 3), (5, 16), (5, 16), (3, 64), (16, 64), (64,)]
    args = [tf.constant(rng.normal(size=s).astype(np.float32) * 0.5) for s in shapes]
    def run():
        with tf.GradientTape() as tape:
            tape.watch(args)
            out, h, c = lstm_sequence(*args, sequence_length=tf.constant([6, 2, 1, 5, 6]))
            loss = tf.reduce_sum(out * out) + tf.reduce_sum(h * c)
        return [out, h, c] + tape.gradient(loss, args)
    info = rnn.kernel_info()["lstm"]
    got = run()
    set_native_kernels(False)
    want = run()
    err = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(got, want))
    print(json.dumps({
        "nestlib": nestlib.__file__, "rnn": rnn.__file__, "backend": nestlib.backend(),
        "available": info.available, "isa": info.isa, "path": info.path,
        "reason": info.reason, "max_abs_diff": err,
    }))
""")


def test_wheel_in_a_fresh_virtualenv_uses_the_kernels(wheel, tmp_path):
    with __import__("zipfile").ZipFile(wheel) as z:
        names = set(z.namelist())
    sources = (
        "lstm/kernels.c",
        "gru/kernels.c",
        "dnc/kernels.c",
        "threads.h",
        "fastmath.h",
        "tfc.h",
        "register.h",
    )
    for source in (f"rnn/ops/{name}" for name in sources):
        assert source in names, sorted(n for n in names if n.startswith("rnn/"))
    assert any(n.startswith("nestlib/_cnest") and n.endswith(".so") for n in names)
    assert not any(n.endswith((".op.so", ".o")) or "/kernels/" in n for n in names)

    venv = tmp_path / "venv"
    _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # TensorFlow and friends from this environment, after the venv's own.
    pathlib.Path(site.stdout.strip(), "borrowed.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    env = dict(os.environ, RNN_KERNEL_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    done = _run([str(py), "-c", SCRIPT], cwd=str(tmp_path), env=env)
    import json

    report = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("nestlib", "rnn"):
        assert report[name].startswith(str(venv)), report  # from the wheel
    assert report["backend"] == "native", report
    if shutil.which(os.environ.get("CC", "cc").split()[0]) is None and not shutil.which("gcc"):
        assert not report["available"] and "compiler" in report["reason"]
        return
    assert report["available"], report
    assert report["path"].startswith(str(tmp_path / "cache")), report
    assert report["isa"] in ("avx512", "avx2", "generic"), report
    assert report["max_abs_diff"] < 1e-4, report
