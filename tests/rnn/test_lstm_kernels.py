"""The compiled LSTM kernels (rnn/_lstm_kernels.c) behind rnn.fused_lstm.

The kernels must compute what the TensorFlow-ops programs compute (the other
tests of lstm_sequence check both against NumPy and autodiff); here: that
they are built, chosen where they apply and not elsewhere, agree with the
TF-ops programs on awkward shapes, do not depend on the thread count, and
refuse malformed inputs.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from rnn import fused_lstm
from rnn._build_kernels import compiler
from rnn.fused_lstm import lstm_sequence

needs_kernels = pytest.mark.skipif(
    not fused_lstm.native_kernels_available(), reason="rnn/_lstm_kernels.op.so is not built"
)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_kernels_are_built_where_a_compiler_exists():
    """Fails (rather than skips) when a compiler could have built them, so
    that a CI machine never silently loses the fast path."""
    if not fused_lstm.native_kernels_available():
        if compiler() is not None:
            pytest.fail(
                f"a C compiler exists but the LSTM kernels are not "
                f"available: {fused_lstm._kernels_error}"
            )
        pytest.skip("no C compiler here: the LSTM runs on TensorFlow ops")


@contextlib.contextmanager
def tf_ops_only():
    """Traces and eager calls inside use the TF-ops programs."""
    previous = fused_lstm.set_native_kernels(False)
    try:
        yield
    finally:
        fused_lstm.set_native_kernels(previous)


def _problem(seed, steps, batch, inputs, hidden, scale=0.6):
    rng = np.random.default_rng(seed)
    shapes = [
        (steps, batch, inputs),
        (batch, hidden),
        (batch, hidden),
        (inputs, 4 * hidden),
        (hidden, 4 * hidden),
        (4 * hidden,),
    ]
    return [tf.constant((rng.normal(size=s) * scale).astype(np.float32)) for s in shapes]


def _values_and_grads(args, **kwargs):
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h, c = lstm_sequence(*args, **kwargs)
        weights = tf.cos(tf.range(tf.size(out), dtype=tf.float32))
        loss = (
            tf.reduce_sum(tf.reshape(out, [-1]) * weights)
            + tf.reduce_sum(h * h)
            + tf.reduce_sum(tf.sin(c))
        )
    return [out, h, c] + tape.gradient(loss, args)


def _both(args, **kwargs):
    native = _values_and_grads(args, **kwargs)
    with tf_ops_only():
        reference = _values_and_grads(args, **kwargs)
    return native, reference


# Shapes around the kernels' blocking: 8-unit thread shares and 16/32-column
# batch tiles (padding on both), a single unit and example, and one larger.
SHAPES = [
    (1, 1, 1, 1),
    (3, 5, 7, 9),
    (4, 33, 10, 20),
    (2, 17, 3, 130),
    (7, 32, 16, 64),
    (3, 2, 5, 257),
]


@needs_kernels
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "TBIH={},{},{},{}".format(*s))
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_kernels_match_tf_ops_programs(shape, masked, reverse):
    steps, batch = shape[0], shape[1]
    args = _problem(sum(shape) + 10 * masked + reverse, *shape)
    kwargs = dict(reverse=reverse)
    if masked:
        kwargs["sequence_length"] = (
            np.random.default_rng(batch).integers(-1, steps + 2, size=batch).astype(np.int32)
        )
    native, reference = _both(args, **kwargs)
    names = ["out", "h", "c", "d_x", "d_h0", "d_c0", "d_kernel", "d_rk", "d_bias"]
    for name, got, want in zip(names, native, reference):
        scale = max(1.0, float(tf.reduce_max(tf.abs(want))))
        # float32 sums in another order: agreement to ~1e-5 of the scale
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=name
        )


@needs_kernels
def test_graphs_use_the_kernels_where_they_apply():
    args = _problem(0, 3, 2, 4, 8)

    def op_types(fn, *a):
        graph = tf.function(fn).get_concrete_function(*a).graph
        types = {op.type for op in graph.get_operations()}
        for f in graph.as_graph_def().library.function:
            types.update(node.op for node in f.node_def)
        return types

    def step(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[3])
            out = lstm_sequence(*a)[0]
        return tape.gradient(out, a[3])

    assert {"NestlibLstmForward", "NestlibLstmBackward"} <= op_types(step, *args)
    # Not under XLA (no XLA kernel), nor for other dtypes, nor when turned off.
    xla = tf.function(step, jit_compile=True)
    xla_types = op_types(xla, *args)
    assert not any(t.startswith("Nestlib") for t in xla_types)
    np.testing.assert_allclose(xla(*args).numpy(), step(*args).numpy(), rtol=1e-5, atol=1e-6)
    doubles = [tf.cast(a, tf.float64) for a in args]
    assert not any(t.startswith("Nestlib") for t in op_types(step, *doubles))
    with tf_ops_only():
        assert not any(t.startswith("Nestlib") for t in op_types(step, *args))


@needs_kernels
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_results_do_not_depend_on_the_thread_count(threads, monkeypatch):
    args = _problem(5, 4, 20, 6, 40)  # 40 units: up to five 8-unit shares
    lengths = np.array([4, 0, 2, 3] * 5, np.int32)
    monkeypatch.setenv("RNN_LSTM_THREADS", "1")
    want = _values_and_grads(args, sequence_length=lengths)
    monkeypatch.setenv("RNN_LSTM_THREADS", threads)
    got = _values_and_grads(args, sequence_length=lengths)
    for w, g in zip(want, got):  # each element is computed the same way
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@needs_kernels
def test_saturation_and_nan_propagate_like_tf_ops():
    args = _problem(7, 3, 4, 2, 8, scale=40.0)  # gates far into saturation
    native, reference = _both(args)
    for got, want in zip(native, reference):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(np.abs(native[0].numpy()) <= 1.0)
    x = args[0].numpy()
    x[1, 2, 0] = np.nan  # example 2 from step 1 on is NaN, the others not
    out, h, c = lstm_sequence(tf.constant(x), *args[1:])
    assert np.isnan(out.numpy()[1:, 2]).all() and np.isnan(c.numpy()[2]).all()
    assert not np.isnan(out.numpy()[:, [0, 1, 3]]).any()


@needs_kernels
@pytest.mark.parametrize("reverse", [False, True])
def test_nan_and_inf_in_the_padding_stay_there(reverse):
    """Steps past an example's length are selected away, as tf.where does in
    the TF-ops programs: NaN or inf there reaches no output or gradient."""
    args = _problem(8, 5, 4, 3, 9)
    lengths = np.array([5, 2, 0, 3], np.int32)
    x = args[0].numpy()
    for b, n in enumerate(lengths):
        # padding sits after the valid prefix in input time order
        x[n:, b] = np.where(np.arange(3) % 2 == 0, np.nan, np.inf)
    args[0] = tf.constant(x)
    native, reference = _both(args, sequence_length=lengths, reverse=reverse)
    for got, want in zip(native, reference):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    d_x = native[3].numpy()
    finite = [native[i].numpy() for i in (0, 1, 2, 4, 5, 6, 7, 8)]
    assert all(np.isfinite(v).all() for v in finite)
    for b, n in enumerate(lengths):
        assert np.isfinite(d_x[:n, b]).all() and (d_x[n:, b] == 0).all()


@needs_kernels
def test_kernels_refuse_malformed_inputs():
    ops = fused_lstm._kernels
    zx = tf.zeros([8, 3, 2])  # H = 2, T = 3, B = 2
    rk, state, none = tf.zeros([2, 8]), tf.zeros([2, 2]), tf.zeros([0], tf.bool)
    s, cs, hs = ops.nestlib_lstm_forward(zx, rk, state, state, none)
    assert s.shape == (3, 8, 2) and cs.shape == (4, 2, 2)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="recurrent_kernel has dimension 1 of size 6, expected 8",
    ):
        ops.nestlib_lstm_forward(zx, tf.zeros([2, 6]), state, state, none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="c0 has dimension 1"):
        ops.nestlib_lstm_forward(zx, rk, state, tf.zeros([2, 3]), none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask has dimension 0"):
        ops.nestlib_lstm_forward(zx, rk, state, state, tf.zeros([2, 2], tf.bool))
    with pytest.raises(tf.errors.InvalidArgumentError, match="zx must be"):
        ops.nestlib_lstm_forward(tf.zeros([8, 3]), rk, state, state, none)
    dz, dh0, dc0 = ops.nestlib_lstm_backward(s, cs, hs[1:], state, state, rk, none)
    assert dz.shape == (8, 3, 2) and dh0.shape == (2, 2)  # dz: [4H, T, B]
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_out has dimension 0"):
        ops.nestlib_lstm_backward(s, cs, tf.zeros([2, 2, 2]), state, state, rk, none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cs must have rank 3"):
        ops.nestlib_lstm_backward(s, state, hs[1:], state, state, rk, none)


@needs_kernels
def test_set_native_kernels_makes_portable_saved_models(tmp_path):
    """A SavedModel traced with the kernels turned off loads in a process
    that never imports rnn; one traced with them needs rnn imported."""
    args = _problem(3, 4, 2, 3, 5)

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, 3])])
        def run(self, x):
            zeros = tf.zeros([tf.shape(x)[1], 5])
            return lstm_sequence(x, zeros, zeros, *args[3:])[0]

    with tf_ops_only():
        tf.saved_model.save(Model(), str(tmp_path / "portable"))
    tf.saved_model.save(Model(), str(tmp_path / "native"))
    want = Model().run(args[0]).numpy()
    np.save(tmp_path / "x.npy", args[0].numpy())
    script = textwrap.dedent("""
        import sys, numpy as np, tensorflow as tf
        if sys.argv[2] == "import":
            import rnn.fused_lstm  # registers the kernels' ops
        x = np.load(sys.argv[1] + "/x.npy")
        try:
            loaded = tf.saved_model.load(sys.argv[1] + "/" + sys.argv[3])
            np.save(sys.argv[1] + "/got.npy", loaded.run(tf.constant(x)).numpy())
        except Exception as e:
            print("FAILED", type(e).__name__, str(e)[:300])
    """)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    for model, mode, ok in [
        ("portable", "plain", True),
        ("native", "plain", False),
        ("native", "import", True),
    ]:
        if os.path.exists(tmp_path / "got.npy"):
            os.remove(tmp_path / "got.npy")
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), mode, model],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        if ok:
            assert "FAILED" not in done.stdout, (model, mode, done.stdout)
            np.testing.assert_allclose(np.load(tmp_path / "got.npy"), want, rtol=1e-5, atol=1e-6)
        else:
            assert "Op type not registered 'NestlibLstm" in done.stdout, (
                done.stdout + done.stderr[-2000:]
            )


def test_a_library_built_for_another_cpu_is_not_loaded(tmp_path, monkeypatch):
    """A -march=native build records the CPU's features; a machine lacking
    one of them (a copied virtualenv) gets the TF-ops programs and a reason,
    not an illegal-instruction crash."""
    from rnn import _build_kernels

    library = str(tmp_path / "k.so")
    open(library, "wb").close()
    assert _build_kernels.missing_cpu_features(library) == frozenset()  # no record
    here = _build_kernels.cpu_flags()
    if here is None:
        pytest.skip("no /proc/cpuinfo here")
    with open(library + ".cpu", "w") as f:
        f.write(" ".join(sorted(here | {"imaginary_feature"})))
    assert _build_kernels.missing_cpu_features(library) == {"imaginary_feature"}

    monkeypatch.setattr(fused_lstm, "_LIBRARY", library)
    monkeypatch.setattr(fused_lstm, "_kernels", None)
    monkeypatch.setattr(fused_lstm, "_kernels_error", None)
    assert not fused_lstm.native_kernels_available()
    assert "imaginary_feature" in fused_lstm._kernels_error
    assert "rebuild it here" in fused_lstm._kernels_error
    assert not fused_lstm._use_native(tf.float32)


def test_build_script_reports_a_missing_compiler(tmp_path, monkeypatch):
    """Without a compiler the build is skipped with a message, not an error."""
    from rnn import _build_kernels

    monkeypatch.setattr(_build_kernels, "compiler", lambda: None)
    assert _build_kernels.build(str(tmp_path / "k.so")) is False
    assert not os.path.exists(tmp_path / "k.so")


@pytest.mark.skipif(
    compiler() is None or shutil.which("nm") is None, reason="needs a C compiler and nm"
)
def test_build_script_builds_a_library_registering_both_ops(tmp_path):
    from rnn import _build_kernels

    out = str(tmp_path / "k.so")
    assert _build_kernels.build(out) is True
    assert _build_kernels.missing_cpu_features(out) == frozenset()
    symbols = subprocess.run(
        ["nm", "-D", "--undefined-only", out], capture_output=True, text=True
    ).stdout
    assert "TF_RegisterKernelBuilder" in symbols
    strings = open(out, "rb").read()
    assert b"NestlibLstmForward" in strings and b"NestlibLstmBackward" in strings
