"""The compiled GRU kernels (rnn/ops/gru/kernels.c) behind rnn.ops.gru.

The kernels must compute what the TensorFlow-ops programs compute (the other
tests of gru_sequence check both against NumPy and autodiff); here, for both
forms: that they are built, chosen where they apply and not elsewhere, agree
with the TF-ops programs on awkward shapes, do not depend on the thread
count or the instruction set, keep NaN in the padding there, and refuse
malformed inputs.
"""

import contextlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn.ops._build import compiler
from rnn.ops.gru import gru_sequence, native
from tests.rnn.ops.exports import serve_without_rnn
from tests.rnn.ops.kernel_runs import kernel_runs, op_types

needs_kernels = pytest.mark.skipif(
    compiler() is None, reason="no C compiler: the GRU kernels cannot be built here"
)


def test_kernels_are_built_where_a_compiler_exists():
    """Fails (rather than skips) when a compiler could have built them."""
    if not rnn.kernels_available("gru"):
        if compiler() is not None:
            pytest.fail(
                f"a C compiler exists but the GRU kernels are not "
                f"available: {rnn.kernel_info()['gru'].reason}"
            )
        pytest.skip("no C compiler here: the GRU runs on TensorFlow ops")


@pytest.fixture(params=[False, True], ids=["cho", "reset_after"])
def reset_after(request):
    return request.param


@contextlib.contextmanager
def tf_ops_only():
    """Traces and eager calls inside use the TF-ops programs."""
    previous = native.set_native_kernels(False)
    try:
        yield
    finally:
        native.set_native_kernels(previous)


def _problem(reset_after, seed, steps, batch, inputs, hidden, scale=0.6):
    rng = np.random.default_rng(seed)
    bias = (2, 3 * hidden) if reset_after else (3 * hidden,)
    shapes = [(steps, batch, inputs), (batch, hidden), (inputs, 3 * hidden), (hidden, 3 * hidden)]
    return [tf.constant((rng.normal(size=s) * scale).astype(np.float32)) for s in shapes + [bias]]


def _values_and_grads(args, **kwargs):
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h = gru_sequence(*args, **kwargs)
        weights = tf.cos(tf.range(tf.size(out), dtype=tf.float32))
        loss = tf.reduce_sum(tf.reshape(out, [-1]) * weights) + tf.reduce_sum(tf.sin(h))
    return [out, h] + tape.gradient(loss, args)


def _both(args, **kwargs):
    kernels = _values_and_grads(args, **kwargs)
    with tf_ops_only():
        reference = _values_and_grads(args, **kwargs)
    return kernels, reference


# Shapes around the kernels' blocking: 8-unit thread shares and 16/32-column
# batch tiles (padding on both), a single unit and example, and one larger.
SHAPES = [
    (1, 1, 1, 1),
    (3, 5, 7, 9),
    (4, 33, 10, 20),
    (2, 17, 3, 130),
    (7, 32, 16, 64),
]


@needs_kernels
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "TBIH={},{},{},{}".format(*s))
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_kernels_match_tf_ops_programs(shape, masked, reverse, reset_after):
    steps, batch = shape[0], shape[1]
    args = _problem(reset_after, sum(shape) + 10 * masked + reverse, *shape)
    kwargs = dict(reverse=reverse, reset_after=reset_after)
    if masked:
        kwargs["sequence_length"] = (
            np.random.default_rng(batch).integers(-1, steps + 2, size=batch).astype(np.int32)
        )
    kernels, reference = _both(args, **kwargs)
    names = ["out", "h", "d_x", "d_h0", "d_kernel", "d_rk", "d_bias"]
    for name, got, want in zip(names, kernels, reference):
        scale = max(1.0, float(tf.reduce_max(tf.abs(want))))
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=name
        )


def _runs(fn, *args):
    """How many times the forward and backward kernels ran during ``fn(*args)``."""
    return kernel_runs(native.LIBRARY, ("RnnGruForward", "RnnGruBackward"), fn, *args)


@needs_kernels
def test_graphs_hold_tf_ops_and_run_the_kernels_where_they_apply(reset_after):
    """As for the LSTM: no kernel op in a traced graph, the kernels run on
    this CPU all the same, and not under XLA, for float64 or when off."""
    args = _problem(reset_after, 0, 3, 2, 4, 8)

    def step(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[2])
            out = gru_sequence(*a, reset_after=reset_after)[0]
        return tape.gradient(out, a[2])

    graph_step = tf.function(step)
    assert not any(t.startswith("Rnn") for t in op_types(graph_step.get_concrete_function(*args)))
    want, runs = _runs(graph_step, *args)
    assert runs == (1, 1)
    got, runs = _runs(step, *args)  # eagerly
    assert runs == (1, 1)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    got, runs = _runs(tf.function(step, jit_compile=True), *args)
    assert runs == (0, 0)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
    doubles = [tf.cast(a, tf.float64) for a in args]
    assert _runs(tf.function(step), *doubles)[1] == (0, 0)
    with tf_ops_only():
        off = tf.function(step)
        off.get_concrete_function(*args)
    assert _runs(off, *args)[1] == (0, 0)
    with native.portable():
        assert _runs(step, *args)[1] == (0, 0)


@needs_kernels
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_each_program_takes_the_other_forms_saved_tensors(masked, reset_after):
    """Either backward program on either forward program's saved tensors
    gives the same gradients (the runtime picks each program on its own)."""
    from rnn.ops.gru import sequence

    x, h0, k, rk, b = _problem(reset_after, 4, 5, 3, 4, 6)
    lengths = [tf.constant([5, 0, 3])] if masked else []
    variant = (tf.float32, reset_after, masked, False, False)  # (no resets)
    d_out = tf.cos(tf.reshape(tf.range(5 * 3 * 6, dtype=tf.float32), [5, 3, 6]))
    d_h = tf.sin(h0 + 1.0)
    results = {}
    for fwd_form in ("native", "tf"):
        out, h, *saved = sequence.PROGRAMS.get(variant, "fwd", fwd_form)(x, h0, k, rk, b, *lengths)
        for bwd_form in ("native", "tf"):
            grads = sequence.PROGRAMS.get(variant, "bwd", bwd_form)(
                d_out, d_h, k, rk, *saved, *lengths
            )
            results[fwd_form, bwd_form] = [out, h, *grads]
    want = results["tf", "tf"]
    for key, got in results.items():
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


@needs_kernels
@pytest.mark.parametrize("threads", ["2", "3"])
def test_results_do_not_depend_on_the_thread_count(threads, monkeypatch, reset_after):
    args = _problem(reset_after, 5, 4, 20, 6, 40)  # 40 units: up to five 8-unit shares
    lengths = np.array([4, 0, 2, 3] * 5, np.int32)
    kwargs = dict(sequence_length=lengths, reset_after=reset_after)
    monkeypatch.setenv("RNN_GRU_THREADS", "1")
    want = _values_and_grads(args, **kwargs)
    monkeypatch.setenv("RNN_GRU_THREADS", threads)
    got = _values_and_grads(args, **kwargs)
    for w, g in zip(want, got):  # each element is computed the same way
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@needs_kernels
@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux CPU sets and two CPUs",
)
def test_the_callers_cpu_set_is_restored_after_a_threaded_call(monkeypatch):
    """A job keeps its caller on one CPU while the workers run on the others
    (rnn/ops/threads.h, the LSTM's kernels too); afterwards the caller may
    run wherever it could before. An eager op runs in the calling thread."""
    ops = native.LIBRARY.load()
    rng = np.random.default_rng(3)
    zx = tf.constant(rng.normal(size=(3 * 64, 5, 8)).astype(np.float32))
    rk = tf.constant(rng.normal(size=(64, 3 * 64)).astype(np.float32) * 0.1)
    state, none = tf.zeros([64, 8]), tf.zeros([0], tf.bool)
    monkeypatch.setenv("RNN_GRU_THREADS", "2")
    before = os.sched_getaffinity(0)
    try:
        for allowed in (before, set(sorted(before)[:2])):
            os.sched_setaffinity(0, allowed)
            ops.rnn_gru_forward(zx, rk, tf.zeros([0]), state, none, none, tf.zeros([0]))
            assert os.sched_getaffinity(0) == allowed
    finally:
        os.sched_setaffinity(0, before)


@needs_kernels
@pytest.mark.parametrize("reverse", [False, True])
def test_saturation_and_nan_in_the_padding(reverse, reset_after):
    """Gates far into saturation agree; NaN or inf past an example's length
    reaches no output or gradient (selected away, as tf.where does)."""
    args = _problem(reset_after, 7, 3, 4, 2, 8, scale=40.0)
    kernels, reference = _both(args, reset_after=reset_after)
    for got, want in zip(kernels, reference):
        # The kernels' sigmoid rounds to exactly 1 a little earlier than
        # tf.sigmoid: a gradient of ~1e-5 (with inputs and weights of ~40)
        # can come out as 0.
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=5e-5)
    args = _problem(reset_after, 8, 5, 4, 3, 9)
    lengths = np.array([5, 2, 0, 3], np.int32)
    x = args[0].numpy()
    for b, n in enumerate(lengths):
        x[n:, b] = np.where(np.arange(3) % 2 == 0, np.nan, np.inf)
    args[0] = tf.constant(x)
    kwargs = dict(sequence_length=lengths, reverse=reverse, reset_after=reset_after)
    kernels, reference = _both(args, **kwargs)
    for got, want in zip(kernels, reference):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)
    assert all(np.isfinite(kernels[i].numpy()).all() for i in (0, 1, 3, 4, 5, 6))
    d_x = kernels[2].numpy()
    for b, n in enumerate(lengths):
        assert np.isfinite(d_x[:n, b]).all() and (d_x[n:, b] == 0).all()


@needs_kernels
def test_kernels_refuse_malformed_inputs():
    ops = native.LIBRARY.load()
    zx = tf.zeros([6, 3, 2])  # H = 2, T = 3, B = 2
    rk, state, none = tf.zeros([2, 6]), tf.zeros([2, 2]), tf.zeros([0], tf.bool)
    cho, after = tf.zeros([0]), tf.zeros([2])
    no_resets = (none, tf.zeros([0]))
    s, hs = ops.rnn_gru_forward(zx, rk, cho, state, none, *no_resets)
    assert s.shape == (3, 6, 2) and hs.shape == (4, 2, 2)
    s4, hs4 = ops.rnn_gru_forward(zx, rk, after, state, none, *no_resets)
    assert s4.shape == (3, 8, 2)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="recurrent_kernel has dimension 1 of size 4, expected 6",
    ):
        ops.rnn_gru_forward(zx, tf.zeros([2, 4]), cho, state, none, *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bn must be \[H\] or \[0\]"):
        ops.rnn_gru_forward(zx, rk, tf.zeros([3]), state, none, *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match="h0 has dimension 1"):
        ops.rnn_gru_forward(zx, rk, cho, tf.zeros([2, 3]), none, *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask has dimension 0"):
        ops.rnn_gru_forward(zx, rk, cho, state, tf.zeros([2, 2], tf.bool), *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match="zx must be"):
        ops.rnn_gru_forward(tf.zeros([6, 3]), rk, cho, state, none, *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match="reset has dimension 1"):
        ops.rnn_gru_forward(zx, rk, cho, state, none, tf.zeros([3, 1], tf.bool), state)
    with pytest.raises(tf.errors.InvalidArgumentError, match="hr must have rank 2"):
        ops.rnn_gru_forward(zx, rk, cho, state, none, tf.zeros([3, 2], tf.bool), tf.zeros([2]))
    da, dh0, d_hr = ops.rnn_gru_backward(s, hs, hs[1:], state, rk, none, *no_resets)
    assert da.shape == (6, 3, 2) and dh0.shape == (2, 2)  # da: [3H, T, B]
    assert d_hr.shape == (0,)
    resets = (tf.zeros([3, 2], tf.bool), state)
    da4, _, d_hr = ops.rnn_gru_backward(s4, hs4, hs4[1:], state, rk, none, *resets)
    assert da4.shape == (8, 3, 2) and d_hr.shape == (2, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_out has dimension 0"):
        ops.rnn_gru_backward(s, hs, tf.zeros([2, 2, 2]), state, rk, none, *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"s must be \[T, 3H, B\]"):
        ops.rnn_gru_backward(s[:, :5], hs, hs[1:], state, rk, none, *no_resets)
    with pytest.raises(tf.errors.InvalidArgumentError, match="hr has dimension 0"):
        ops.rnn_gru_backward(s, hs, hs[1:], state, rk, none, resets[0], tf.zeros([3, 2]))


_ISA_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf, rnn
    from rnn.ops.gru import gru_sequence
    d = np.load(sys.argv[1])
    for reset_after in (False, True):
        args = [tf.constant(d[k + str(int(reset_after))]) for k in ("x", "h0", "k", "rk", "b")]
        with tf.GradientTape() as tape:
            tape.watch(args)
            out, h = gru_sequence(*args, sequence_length=tf.constant(d["lengths"]),
                                  reset_after=reset_after)
            loss = tf.reduce_sum(out * out) + tf.reduce_sum(h)
        got = [out, h] + tape.gradient(loss, args)
        np.savez(sys.argv[2] + str(int(reset_after)), *[g.numpy() for g in got])
    print("ISA", rnn.kernel_info()["gru"].isa)
""")


@needs_kernels
def test_every_instruction_set_this_cpu_has_gives_the_same_results(tmp_path):
    """Each instruction set this CPU can run, forced with RNN_KERNEL_ISA,
    matches the TensorFlow-ops programs, in both forms."""
    lengths = np.array([9, 3, 1, 9, 7, 2, 8, 9, 5, 4, 9, 6, 1, 9, 3, 9, 8, 2, 9], np.int32)
    names = ("x", "h0", "k", "rk", "b")
    problems, arrays = {}, {}
    for reset_after in (False, True):
        problems[reset_after] = _problem(reset_after, 5, 9, 19, 6, 20)
        for k, a in zip(names, problems[reset_after]):
            arrays[k + str(int(reset_after))] = a.numpy()
    np.savez(tmp_path / "in.npz", lengths=lengths, **arrays)
    want = {}
    with tf_ops_only():
        for reset_after, args in problems.items():
            with tf.GradientTape() as tape:
                tape.watch(args)
                out, h = gru_sequence(*args, sequence_length=lengths, reset_after=reset_after)
                loss = tf.reduce_sum(out * out) + tf.reduce_sum(h)
            want[reset_after] = [out, h] + tape.gradient(loss, args)
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
        if seen[isa] != isa:  # this CPU lacks it: the library says so
            assert "not support" in done.stderr, done.stderr[-2000:]
            continue
        for reset_after in (False, True):
            got = np.load(tmp_path / f"{isa}{int(reset_after)}.npz")
            for i, w in enumerate(want[reset_after]):
                np.testing.assert_allclose(got[f"arr_{i}"], w.numpy(), rtol=2e-4, atol=2e-5)
    assert seen["generic"] == "generic"


@needs_kernels
def test_saved_model_loads_without_rnn(tmp_path, reset_after):
    """A concrete function traced and run with the kernels, exported as a
    signature, is plain TensorFlow: it loads and runs without rnn."""
    args = _problem(reset_after, 3, 4, 2, 3, 5)
    spec = tf.TensorSpec([None, None, 3])

    class Model(tf.Module):
        def __init__(self):
            self.weights = [tf.Variable(a) for a in args[2:]]

        @tf.function(input_signature=[spec])
        def run(self, x):
            zeros = tf.zeros([tf.shape(x)[1], 5])
            return gru_sequence(x, zeros, *self.weights, reset_after=reset_after)[0]

    m = Model()
    concrete = m.run.get_concrete_function(spec)
    assert not any(t.startswith("Rnn") for t in op_types(concrete))
    want, runs = _runs(concrete, args[0])
    want = want.numpy()
    assert runs == (1, 0)
    tf.saved_model.save(m, str(tmp_path / "module"), signatures=concrete)
    got = serve_without_rnn(tmp_path / "module", tmp_path, x=args[0].numpy())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
