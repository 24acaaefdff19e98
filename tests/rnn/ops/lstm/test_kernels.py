"""The compiled LSTM kernels (rnn/ops/lstm/kernels.c) behind rnn.ops.lstm.

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

import rnn
from rnn.ops import _build
from rnn.ops._build import compiler
from rnn.ops.lstm import lstm_sequence, native
from tests.rnn.ops.kernel_runs import kernel_runs, op_types

needs_kernels = pytest.mark.skipif(
    compiler() is None, reason="no C compiler: the LSTM kernels cannot be built here"
)
ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
)


def test_kernels_are_built_where_a_compiler_exists():
    """Fails (rather than skips) when a compiler could have built them, so
    that a CI machine never silently loses the fast path."""
    if not rnn.kernels_available():
        if compiler() is not None:
            pytest.fail(
                f"a C compiler exists but the LSTM kernels are not "
                f"available: {rnn.kernel_info()['lstm'].reason}"
            )
        pytest.skip("no C compiler here: the LSTM runs on TensorFlow ops")


@contextlib.contextmanager
def tf_ops_only():
    """Traces and eager calls inside use the TF-ops programs."""
    previous = native.set_native_kernels(False)
    try:
        yield
    finally:
        native.set_native_kernels(previous)


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


def _runs(fn, *args):
    """How many times the forward and backward kernels ran during ``fn(*args)``."""
    return kernel_runs(native.LIBRARY, ("RnnLstmForward", "RnnLstmBackward"), fn, *args)


@needs_kernels
def test_graphs_hold_tf_ops_and_run_the_kernels_where_they_apply():
    """A traced training step holds no kernel op (it is plain TensorFlow),
    yet on this CPU the runtime runs the kernels, once each way per call;
    eager calls run them directly."""
    args = _problem(0, 3, 2, 4, 8)

    def step(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[3])
            out = lstm_sequence(*a)[0]
        return tape.gradient(out, a[3])

    graph_step = tf.function(step)
    assert not any(t.startswith("Rnn") for t in op_types(graph_step.get_concrete_function(*args)))
    want, runs = _runs(graph_step, *args)
    assert runs == (1, 1)
    got, runs = _runs(step, *args)  # eagerly
    assert runs == (1, 1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    # Not under XLA (no XLA kernel), nor for other dtypes, nor when turned off.
    xla = tf.function(step, jit_compile=True)
    got, runs = _runs(xla, *args)
    assert runs == (0, 0)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    doubles = [tf.cast(a, tf.float64) for a in args]
    assert _runs(tf.function(step), *doubles)[1] == (0, 0)
    with tf_ops_only():
        off = tf.function(step)
        off.get_concrete_function(*args)
    assert _runs(off, *args)[1] == (0, 0)  # traced without: never, wherever it runs
    with native.portable():
        assert _runs(step, *args)[1] == (0, 0)


@needs_kernels
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("resets", [False, True], ids=["", "resets"])
@pytest.mark.parametrize("all_states", [False, True], ids=["", "all_states"])
def test_each_program_takes_the_other_forms_saved_tensors(masked, resets, all_states):
    """The runtime picks the forward and the backward program separately
    (a graph loaded where only one has been traced, devices of different
    types), so the compiled and the TF-ops forms must save the same tensors:
    either backward program on either forward program's output gives the
    same gradients (with resets and cell-state gradients too)."""
    from rnn.ops.lstm import sequence

    x, h0, c0, k, rk, b = _problem(4, 5, 3, 4, 6)
    tail = [tf.constant([5, 0, 3])] if masked else []
    reset_state = []
    if resets:
        tail.append(tf.constant([[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0]]) > 0)
        reset_state = [tf.sin(h0 + 2.0), tf.cos(c0 + 1.0)]
    variant = (tf.float32, masked, False, resets, all_states)
    d_out = tf.cos(tf.reshape(tf.range(5 * 3 * 6, dtype=tf.float32), [5, 3, 6]))
    d_h, d_c = tf.sin(h0 + 1.0), tf.cos(c0)
    d_cs = [tf.sin(d_out * 3.0)] if all_states else []
    results = {}
    for fwd_form in ("native", "tf"):
        values = sequence.PROGRAMS.get(variant, "fwd", fwd_form)(
            x, h0, c0, k, rk, b, *reset_state, *tail
        )
        values, saved = values[: 3 + all_states], values[3 + all_states :]
        for bwd_form in ("native", "tf"):
            grads = sequence.PROGRAMS.get(variant, "bwd", bwd_form)(
                d_out, d_h, d_c, *d_cs, k, rk, *reset_state[1:], *saved, *tail
            )
            results[fwd_form, bwd_form] = [*values, *grads]
    want = results["tf", "tf"]
    assert len(want) == 3 + all_states + 3 + 2 * resets
    for key, got in results.items():
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


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
    ops = native.LIBRARY.load()
    zx = tf.zeros([8, 3, 2])  # H = 2, T = 3, B = 2
    rk, state, none = tf.zeros([2, 8]), tf.zeros([2, 2]), tf.zeros([0], tf.bool)
    nof = tf.zeros([0])
    s, cs, hs = ops.rnn_lstm_forward(zx, rk, state, state, none, none, nof, nof)
    assert s.shape == (3, 8, 2) and cs.shape == (4, 2, 2)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="recurrent_kernel has dimension 1 of size 6, expected 8",
    ):
        ops.rnn_lstm_forward(zx, tf.zeros([2, 6]), state, state, none, none, nof, nof)
    with pytest.raises(tf.errors.InvalidArgumentError, match="c0 has dimension 1"):
        ops.rnn_lstm_forward(zx, rk, state, tf.zeros([2, 3]), none, none, nof, nof)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask has dimension 0"):
        ops.rnn_lstm_forward(zx, rk, state, state, tf.zeros([2, 2], tf.bool), none, nof, nof)
    with pytest.raises(tf.errors.InvalidArgumentError, match="zx must be"):
        ops.rnn_lstm_forward(tf.zeros([8, 3]), rk, state, state, none, none, nof, nof)
    reset = tf.zeros([3, 2], tf.bool)
    with pytest.raises(tf.errors.InvalidArgumentError, match="reset has dimension 0"):
        ops.rnn_lstm_forward(zx, rk, state, state, none, reset[:2], state, state)
    with pytest.raises(tf.errors.InvalidArgumentError, match="c_reset must have rank 2"):
        ops.rnn_lstm_forward(zx, rk, state, state, none, reset, state, nof)
    dz, dh0, dc0, d_hr, d_cr = ops.rnn_lstm_backward(
        s, cs, hs[1:], state, state, rk, none, none, nof, nof
    )
    assert dz.shape == (8, 3, 2) and dh0.shape == (2, 2)  # dz: [4H, T, B]
    assert d_hr.shape == d_cr.shape == (0,)  # no resets: no reset-state gradients
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_out has dimension 0"):
        ops.rnn_lstm_backward(s, cs, tf.zeros([2, 2, 2]), state, state, rk, none, none, nof, nof)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cs must have rank 3"):
        ops.rnn_lstm_backward(s, state, hs[1:], state, state, rk, none, none, nof, nof)
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_cs has dimension 0"):
        ops.rnn_lstm_backward(s, cs, hs[1:], state, state, rk, none, none, nof, hs)
    _, _, _, d_hr, _ = ops.rnn_lstm_backward(
        s, cs, hs[1:], state, state, rk, none, reset, state, nof
    )
    assert d_hr.shape == (2, 2)


# A child process that loads a SavedModel (or a frozen GraphDef) without
# importing rnn (as TF Serving and converters do), runs it and saves the result.
_LOAD_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    x = np.load(sys.argv[1] + "/x.npy")
    try:
        if sys.argv[3] == "graphdef":
            gd = tf.compat.v1.GraphDef()
            gd.ParseFromString(open(sys.argv[1] + "/" + sys.argv[2], "rb").read())
            inputs, outputs = open(sys.argv[1] + "/" + sys.argv[2] + ".io").read().split()
            fn = tf.compat.v1.wrap_function(
                lambda: tf.compat.v1.import_graph_def(gd, name=""), [])
            got = fn.prune(inputs, outputs)(tf.constant(x))
        else:
            loaded = tf.saved_model.load(sys.argv[1] + "/" + sys.argv[2])
            got = loaded.signatures["serving_default"](tf.constant(x)) \
                if sys.argv[3] == "sig" else loaded.run(tf.constant(x))
        got = got if not isinstance(got, dict) else list(got.values())[0]
        np.save(sys.argv[1] + "/" + sys.argv[2] + ".npy", got.numpy())
    except Exception as e:
        print("FAILED", type(e).__name__, str(e)[:300])
    assert "rnn" not in sys.modules
""")


def _load_without_rnn(tmp_path, model, how):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, str(tmp_path), model, how],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),  # not the checkout: rnn is not importable by accident
        timeout=300,
    )
    assert done.returncode == 0 and "FAILED" not in done.stdout, (
        model + ": " + done.stdout + done.stderr[-2000:]
    )
    return np.load(tmp_path / f"{model}.npy")


@needs_kernels
def test_saved_models_load_without_rnn(tmp_path):
    """Exported graphs are plain TensorFlow: a model trained and traced with
    the kernels is exported every usual way (the module with its
    tf.function, the tf.function as signature, a concrete function traced
    before saving as signature, a frozen GraphDef of it, Keras' export) and
    loaded in a process that never imports rnn, with the same outputs."""
    import keras
    from tensorflow.python.framework import convert_to_constants

    import rnn.keras as rk

    args = _problem(3, 4, 2, 3, 5)
    spec = tf.TensorSpec([None, None, 3])

    class Model(tf.Module):
        def __init__(self):
            self.core = rnn.LSTM(5)

        @tf.function(input_signature=[spec])
        def run(self, x):
            out, _ = rnn.dynamic_unroll(self.core, x, self.core.initial_state(tf.shape(x)[1]))
            return out

    m = Model()
    # Trained with the kernels first (the gradient is saved too).
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(m.run(args[0]) ** 2)
    grads, runs = _runs(tape.gradient, loss, m.core.trainable_variables)
    assert all(g is not None for g in grads) and runs == (0, 1)
    concrete = m.run.get_concrete_function(spec)  # traced before saving
    want, runs = _runs(m.run, args[0])
    want = want.numpy()
    assert runs == (1, 0)
    assert not any(t.startswith("Rnn") for t in op_types(concrete))
    np.save(tmp_path / "x.npy", args[0].numpy())
    tf.saved_model.save(m, str(tmp_path / "module"))
    tf.saved_model.save(m, str(tmp_path / "signature"), signatures=m.run)
    tf.saved_model.save(m, str(tmp_path / "concrete"), signatures=concrete)
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
    (tmp_path / "frozen").write_bytes(frozen.graph.as_graph_def().SerializeToString())
    (tmp_path / "frozen.io").write_text(f"{frozen.inputs[0].name} {frozen.outputs[0].name}")

    # A Keras model with the rnn.keras layer, exported the Keras way.
    inputs = keras.Input([None, 3], batch_size=2)
    model = keras.Model(inputs, rk.RNN(rnn.LSTM(5), return_sequences=True)(inputs))
    keras_want = model(args[0].numpy().transpose(1, 0, 2)).numpy()
    model.export(str(tmp_path / "keras"))

    for name, how in (
        ("module", "run"),
        ("signature", "sig"),
        ("concrete", "sig"),
        ("frozen", "graphdef"),
    ):
        np.testing.assert_allclose(
            _load_without_rnn(tmp_path, name, how), want, rtol=1e-5, atol=1e-6, err_msg=name
        )
    np.save(tmp_path / "x.npy", args[0].numpy().transpose(1, 0, 2))
    np.testing.assert_allclose(
        _load_without_rnn(tmp_path, "keras", "sig"), keras_want, rtol=1e-5, atol=1e-6
    )
    # The kernels stay in use in this process after the export, and a
    # SavedModel loaded where rnn is gets them too.
    assert _runs(m.run, args[0])[1] == (1, 0)
    loaded = tf.saved_model.load(str(tmp_path / "module"))
    got, runs = _runs(loaded.run, args[0])
    assert runs == (1, 0)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)


_ISA_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf, rnn
    from rnn.ops.lstm import lstm_sequence
    d = np.load(sys.argv[1])
    args = [tf.constant(d[k]) for k in ("x", "h0", "c0", "k", "rk", "b")]
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h, c = lstm_sequence(*args, sequence_length=tf.constant(d["lengths"]))
        loss = tf.reduce_sum(out * out) + tf.reduce_sum(h) + tf.reduce_sum(c)
    got = [out, h, c] + tape.gradient(loss, args)
    np.savez(sys.argv[2], *[g.numpy() for g in got])
    print("ISA", rnn.kernel_info()["lstm"].isa)
""")


@needs_kernels
def test_every_instruction_set_this_cpu_has_gives_the_same_results(tmp_path):
    """One library holds the compute code for several instruction sets and
    picks the widest the CPU supports (no -march=native); each set this CPU
    can run, forced with RNN_KERNEL_ISA, matches the TensorFlow-ops program."""
    args = _problem(5, 9, 19, 6, 20)  # B not a multiple of any vector width
    lengths = np.array([9, 3, 1, 9, 7, 2, 8, 9, 5, 4, 9, 6, 1, 9, 3, 9, 8, 2, 9], np.int32)
    names = ("x", "h0", "c0", "k", "rk", "b")
    np.savez(tmp_path / "in.npz", lengths=lengths, **{k: a.numpy() for k, a in zip(names, args)})
    with tf_ops_only():
        with tf.GradientTape() as tape:
            tape.watch(args)
            out, h, c = lstm_sequence(*args, sequence_length=lengths)
            loss = tf.reduce_sum(out * out) + tf.reduce_sum(h) + tf.reduce_sum(c)
        want = [out, h, c] + tape.gradient(loss, args)
    seen = {}
    for isa in ("avx512", "avx2", "generic"):
        done = subprocess.run(
            [sys.executable, "-c", _ISA_SCRIPT, str(tmp_path / "in.npz"), str(tmp_path / isa)],
            capture_output=True,
            text=True,
            env=dict(os.environ, RNN_KERNEL_ISA=isa, TF_CPP_MIN_LOG_LEVEL="3"),
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        seen[isa] = done.stdout.split("ISA ")[-1].strip()
        if seen[isa] != isa:  # this CPU lacks it: the library says so and goes wider-safe
            assert "not support" in done.stderr, done.stderr[-2000:]
            continue
        got = np.load(tmp_path / f"{isa}.npz")
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[f"arr_{i}"], w.numpy(), rtol=2e-4, atol=2e-5)
    assert seen["generic"] == "generic"


def test_import_rnn_loads_no_kernel_library():
    """The hidden-cost rule: ``import rnn`` and building cores load no
    compiled op library; the first LSTM run does."""
    script = textwrap.dedent("""
        import tensorflow as tf, rnn
        def loaded():
            return "/kernels/lstm-" in open("/proc/self/maps").read()
        core = rnn.LSTM(4)
        state = core.initial_state(2)
        print("after import:", loaded())
        rnn.dynamic_unroll(core, tf.zeros([3, 2, 5]), state)
        print("after a run:", loaded())
    """)
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc/self/maps")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=300,
    )
    assert "after import: False" in done.stdout, done.stdout + done.stderr[-2000:]
    if compiler() is not None:
        assert "after a run: True" in done.stdout, done.stdout + done.stderr[-2000:]


def test_without_a_compiler_one_warning_and_the_tf_ops_programs(tmp_path, monkeypatch):
    """No compiler: one RuntimeWarning that says why, and the same results
    from the TensorFlow-ops programs (never an error)."""
    from rnn.ops._library import KernelLibrary

    monkeypatch.setattr(_build, "compiler", lambda: None)
    monkeypatch.setenv("RNN_KERNEL_CACHE", str(tmp_path))
    from rnn.ops import _native
    from rnn.ops.lstm import sequence

    lib = KernelLibrary("lstm", native.LIBRARY.source, native.LIBRARY.ops)
    monkeypatch.setattr(native, "LIBRARY", lib)
    monkeypatch.setattr(sequence.PROGRAMS, "library", lib)
    with pytest.warns(RuntimeWarning, match="no C compiler found.*TensorFlow ops instead"):
        assert not native.native_kernels_available()
    assert not _native.use_native(lib, True, tf.float32)
    status = lib.status()
    assert not status.available and status.isa is None and "no C compiler" in status.reason
    args = _problem(2, 3, 2, 3, 4)
    out = lstm_sequence(*args)[0]
    with tf_ops_only():
        np.testing.assert_allclose(out.numpy(), lstm_sequence(*args)[0].numpy(), rtol=1e-6)


@pytest.mark.skipif(
    compiler() is None or shutil.which("nm") is None, reason="needs a C compiler and nm"
)
def test_build_caches_one_portable_library_per_source_and_tensorflow(tmp_path, monkeypatch):
    """The build compiles into the per-user cache (RNN_KERNEL_CACHE here),
    reuses it, never with -march=native, and a changed source or shared
    header gets a new library."""
    monkeypatch.setenv("RNN_KERNEL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "lstm").mkdir()
    source = tmp_path / "lstm" / "kernels.c"
    shutil.copy(native.LIBRARY.source, source)
    shared = os.path.join(os.path.dirname(native.LIBRARY.source), "..")
    # What kernels.c includes as "../threads.h", "../fastmath.h", ...
    headers = ("threads.h", "fastmath.h", "tfc.h", "register.h")
    for name in headers:
        shutil.copy(os.path.join(shared, name), tmp_path / name)
    assert sorted(_build.local_headers(str(source))) == sorted(str(tmp_path / h) for h in headers)
    header = tmp_path / "threads.h"
    out = _build.build("lstm", str(source))
    assert out.startswith(str(tmp_path / "cache")) and os.path.exists(out)
    assert _build.build("lstm", str(source)) == out  # cached
    for cmd in _build.commands("cc", "/tf", str(source), "/w", "/o.so"):
        assert not any("native" in part for part in cmd)
    symbols = subprocess.run(["nm", "-D", out], capture_output=True, text=True).stdout
    assert "TF_RegisterKernelBuilder" in symbols and "rnn_lstm_isa" in symbols
    strings = open(out, "rb").read()
    assert b"RnnLstmForward" in strings and b"RnnLstmBackward" in strings
    with open(header, "a") as f:
        f.write("\n/* changed */\n")
    changed_header = _build.library_path("lstm", str(source), "cc", _build.tensorflow_dir())
    assert changed_header != out
    with open(source, "a") as f:
        f.write("\n/* changed */\n")
    assert _build.library_path("lstm", str(source), "cc", _build.tensorflow_dir()) not in (
        out,
        changed_header,
    )


def test_an_unwritable_cache_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    """A cache directory that cannot be created (a read-only home, a file in
    the way) gives the one warning and the TensorFlow-ops programs."""
    from rnn.ops._library import KernelLibrary

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should go")
    monkeypatch.setenv("RNN_KERNEL_CACHE", str(blocker))
    lib = KernelLibrary("lstm", native.LIBRARY.source, native.LIBRARY.ops)
    if compiler() is None:
        pytest.skip("no C compiler: nothing is built anyway")
    with pytest.warns(RuntimeWarning, match="cannot be built in .*not-a-dir"):
        assert lib.load() is None
    assert not lib.status().available
