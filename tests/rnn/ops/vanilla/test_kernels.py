"""The vanilla RNN's compiled recurrences (the GRU kernels' third form).

They must compute what the TensorFlow-ops programs compute (test_sequence.py
checks both against NumPy and autodiff); here: that graphs hold TensorFlow
ops and the runtime runs the kernels where they apply and not elsewhere,
that they agree with the TF-ops programs on awkward shapes and whatever the
thread count, and that they refuse malformed inputs.
"""

import numpy as np
import pytest
import tensorflow as tf

from rnn.ops._build import compiler
from rnn.ops.vanilla import native, vanilla_sequence
from tests.rnn.ops.kernel_runs import kernel_runs, op_types

needs_kernels = pytest.mark.skipif(
    compiler() is None, reason="no C compiler: the kernels cannot be built here"
)


def _problem(seed, steps, batch, inputs, hidden, scale=0.6):
    rng = np.random.default_rng(seed)
    shapes = [
        (steps, batch, inputs),
        (batch, hidden),
        (inputs, hidden),
        (hidden, hidden),
        (hidden,),
    ]
    return [tf.constant((rng.normal(size=s) * scale).astype(np.float32)) for s in shapes]


def _values_and_grads(args, **kwargs):
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h = vanilla_sequence(*args, **kwargs)
        weights = tf.cos(tf.range(tf.size(out), dtype=tf.float32))
        loss = tf.reduce_sum(tf.reshape(out, [-1]) * weights) + tf.reduce_sum(tf.sin(h))
    return [out, h] + tape.gradient(loss, args)


def _both(args, **kwargs):
    kernels = _values_and_grads(args, **kwargs)
    previous = native.set_native_kernels(False)
    try:
        reference = _values_and_grads(args, **kwargs)
    finally:
        native.set_native_kernels(previous)
    return kernels, reference


def _runs(fn, *args):
    """How many times the forward and backward kernels ran during ``fn(*args)``."""
    return kernel_runs(native.LIBRARY, ("RnnVanillaForward", "RnnVanillaBackward"), fn, *args)


# Around the kernels' blocking: 8-unit thread shares, 16/32-column batch tiles.
SHAPES = [(1, 1, 1, 1), (3, 5, 7, 9), (4, 33, 10, 20), (2, 17, 3, 130), (3, 2, 5, 257)]


@needs_kernels
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "TBIH={},{},{},{}".format(*s))
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_kernels_match_tf_ops_programs(shape, masked, reverse):
    steps, batch = shape[0], shape[1]
    args = _problem(sum(shape) + 10 * masked + reverse, *shape)
    kwargs = dict(reverse=reverse)
    if masked:
        rng = np.random.default_rng(batch)
        kwargs["sequence_length"] = rng.integers(-1, steps + 2, size=batch).astype(np.int32)
    kernels, reference = _both(args, **kwargs)
    names = ["out", "h", "d_x", "d_h0", "d_kernel", "d_rk", "d_bias"]
    for name, got, want in zip(names, kernels, reference):
        scale = max(1.0, float(tf.reduce_max(tf.abs(want))))
        np.testing.assert_allclose(
            got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=name
        )


@needs_kernels
def test_graphs_hold_tf_ops_and_run_the_kernels_where_they_apply():
    args = _problem(0, 3, 2, 4, 8)

    def step(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[2])
            out = vanilla_sequence(*a)[0]
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
    assert _runs(tf.function(step), *[tf.cast(a, tf.float64) for a in args])[1] == (0, 0)


@needs_kernels
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_results_do_not_depend_on_the_thread_count(threads, monkeypatch):
    args = _problem(5, 4, 20, 6, 40)
    monkeypatch.setenv("RNN_GRU_THREADS", "1")
    want = _values_and_grads(args, sequence_length=[4, 2] * 10)
    monkeypatch.setenv("RNN_GRU_THREADS", threads)
    got = _values_and_grads(args, sequence_length=[4, 2] * 10)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@needs_kernels
def test_kernels_refuse_malformed_inputs():
    ops = native.LIBRARY.load()
    zx, rk, h0 = tf.zeros([2, 3, 2]), tf.zeros([2, 2]), tf.zeros([2, 2])
    none, no_hr = tf.zeros([0], tf.bool), tf.zeros([0])  # (no mask, no resets)
    hs = ops.rnn_vanilla_forward(zx, rk, h0, none, none, no_hr)
    assert hs.shape == (4, 2, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="recurrent_kernel"):
        ops.rnn_vanilla_forward(zx, tf.zeros([2, 3]), h0, none, none, no_hr)
    with pytest.raises(tf.errors.InvalidArgumentError, match="h0"):
        ops.rnn_vanilla_forward(zx, rk, tf.zeros([2, 3]), none, none, no_hr)
    with pytest.raises(tf.errors.InvalidArgumentError, match="zx must be"):
        ops.rnn_vanilla_forward(tf.zeros([2, 3]), rk, h0, none, none, no_hr)
    with pytest.raises(tf.errors.InvalidArgumentError, match="reset has dimension 0"):
        ops.rnn_vanilla_forward(zx, rk, h0, none, tf.zeros([2, 2], tf.bool), h0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="hr has dimension 1"):
        ops.rnn_vanilla_forward(zx, rk, h0, none, tf.zeros([3, 2], tf.bool), tf.zeros([2, 3]))
    da, dh0, d_hr = ops.rnn_vanilla_backward(hs, tf.zeros([3, 2, 2]), h0, rk, none, none)
    assert da.shape == (2, 3, 2) and dh0.shape == (2, 2) and d_hr.shape == (0,)
    _, _, d_hr = ops.rnn_vanilla_backward(
        hs, tf.zeros([3, 2, 2]), h0, rk, none, tf.zeros([3, 2], tf.bool)
    )
    assert d_hr.shape == (2, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_out"):
        ops.rnn_vanilla_backward(hs, tf.zeros([2, 2, 2]), h0, rk, none, none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask"):
        ops.rnn_vanilla_backward(hs, tf.zeros([3, 2, 2]), h0, rk, tf.zeros([2, 2], tf.bool), none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="reset must have rank 2"):
        ops.rnn_vanilla_backward(hs, tf.zeros([3, 2, 2]), h0, rk, none, tf.zeros([3], tf.bool))
