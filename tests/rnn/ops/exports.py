"""Calling an exported SavedModel in a child Python that never imports rnn."""

import os
import subprocess
import sys
import textwrap

import numpy as np

_SERVE = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    module, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    serve = tf.saved_model.load(module).signatures["serving_default"]
    result = serve(**{name: tf.constant(np.load(name + ".npy")) for name in names})
    np.save(out, list(result.values())[0].numpy())
    assert "rnn" not in sys.modules
""")


def serve_without_rnn(module_dir, workdir, **inputs):
    """The first output of ``module_dir``'s serving signature called with
    ``inputs`` (by name), computed in a child Python that does not import
    rnn (and could not: no PYTHONPATH, run from ``workdir``)."""
    for name, value in inputs.items():
        np.save(os.path.join(workdir, name + ".npy"), np.asarray(value))
    out = os.path.join(workdir, "served.npy")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", _SERVE, str(module_dir), out, *inputs],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(workdir),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(out)
