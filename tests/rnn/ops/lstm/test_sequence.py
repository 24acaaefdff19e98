"""Tests for rnn.ops.lstm.lstm_sequence (the whole-sequence LSTM fast path)."""

import numpy as np
import pytest
import tensorflow as tf

from rnn.ops.lstm import lstm_sequence, native

T, B, I, H = 5, 3, 4, 6


@pytest.fixture(autouse=True, params=["kernels", "tf_ops"])
def lstm_path(request):
    """Every test runs on both programs: the compiled kernels (float32 on
    CPU) and the TensorFlow while_loops (everything else)."""
    if request.param == "kernels" and not native.native_kernels_available():
        pytest.skip("the LSTM kernels are not available here")
    previous = native.set_native_kernels(request.param == "kernels")
    yield request.param
    native.set_native_kernels(previous)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_lstm(x, h, c, kernel, rk, bias, lengths=None, reverse=False):
    """Step-by-step NumPy reference (Keras gate order i, f, g, o)."""
    steps = x.shape[0]
    out = np.zeros(x.shape[:2] + (h.shape[1],))
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        z = x[t] @ kernel + h @ rk + bias
        i, f, g, o = np.split(z, 4, axis=1)
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_new = _sigmoid(o) * np.tanh(c_new)
        valid = (
            np.ones([x.shape[1], 1], bool)
            if lengths is None
            else (t < np.asarray(lengths))[:, None]
        )
        out[t] = np.where(valid, h_new, 0.0)
        h = np.where(valid, h_new, h)
        c = np.where(valid, c_new, c)
    return out, h, c


def tf_lstm(x, h, c, kernel, rk, bias, sequence_length=None, reverse=False):
    """Step-by-step TF reference, differentiated by TF autodiff."""
    steps = x.shape[0]
    outs = [None] * steps
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        z = tf.matmul(x[t], kernel) + tf.matmul(h, rk) + bias
        i, f, g, o = tf.split(z, 4, axis=1)
        c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h_new = tf.sigmoid(o) * tf.tanh(c_new)
        if sequence_length is None:
            outs[t], h, c = h_new, h_new, c_new
        else:
            valid = (t < sequence_length)[:, tf.newaxis]
            outs[t] = tf.where(valid, h_new, tf.zeros_like(h_new))
            h = tf.where(valid, h_new, h)
            c = tf.where(valid, c_new, c)
    return tf.stack(outs), h, c


def _args(seed=0, dtype=np.float32, steps=T, batch=B):
    rng = np.random.default_rng(seed)
    shapes = [(steps, batch, I), (batch, H), (batch, H), (I, 4 * H), (H, 4 * H), (4 * H,)]
    return [(rng.normal(size=s) * 0.7).astype(dtype) for s in shapes]


def _weights(seed=1, steps=T, batch=B):
    rng = np.random.default_rng(seed)
    return [
        tf.constant(rng.normal(size=s).astype(np.float32))
        for s in [(steps, batch, H), (batch, H), (batch, H)]
    ]


def _loss_and_grads(fn, args, weights, **kwargs):
    args = [tf.convert_to_tensor(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h, c = fn(*args, **kwargs)
        loss = (
            tf.reduce_sum(out * weights[0])
            + tf.reduce_sum(h * weights[1])
            + tf.reduce_sum(c * weights[2])
        )
    return (out, h, c), tape.gradient(loss, args)


VARIANTS = [
    dict(),
    dict(reverse=True),
    dict(sequence_length=[5, 2, 0]),
    dict(sequence_length=[3, 5, 1], reverse=True),
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_forward_matches_numpy(kwargs):
    args = _args()
    want = numpy_lstm(
        *[a.astype(np.float64) for a in args],
        lengths=kwargs.get("sequence_length"),
        reverse=kwargs.get("reverse", False),
    )
    got = lstm_sequence(*args, **kwargs)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_gradients_match_autodiff_eager(kwargs):
    args, weights = _args(), _weights()
    lengths = kwargs.get("sequence_length")
    ref_kwargs = dict(kwargs)
    if lengths is not None:
        ref_kwargs["sequence_length"] = tf.constant(lengths)
    want_vals, want_grads = _loss_and_grads(tf_lstm, args, weights, **ref_kwargs)
    got_vals, got_grads = _loss_and_grads(lstm_sequence, args, weights, **kwargs)
    for w, g in zip(list(want_vals) + list(want_grads), list(got_vals) + list(got_grads)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_graph_and_xla_match_autodiff(jit):
    args, weights = _args(seed=2), _weights(seed=3)
    lengths = tf.constant([4, 5, 2])
    want = _loss_and_grads(tf_lstm, args, weights, sequence_length=lengths)
    step = tf.function(
        lambda *a: _loss_and_grads(
            lstm_sequence, a, weights, sequence_length=lengths, reverse=False
        ),
        jit_compile=jit,
    )
    got = step(*args)
    for w, g in zip(list(want[0]) + list(want[1]), list(got[0]) + list(got[1])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_float64_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    shapes = [(3, 2, 2), (2, 3), (2, 3), (2, 12), (3, 12), (12,)]
    args = [tf.constant(rng.normal(size=s) * 0.5) for s in shapes]
    lengths = tf.constant([3, 2])

    def f(*a):
        out, h, c = lstm_sequence(*a, sequence_length=lengths, reverse=True)
        return tf.reduce_sum(out * tf.sin(out)) + tf.reduce_sum(h * c)

    theoretical, numerical = tf.test.compute_gradient(f, args, delta=1e-5)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


def test_unknown_time_and_batch_in_tf_function():
    spec = [
        tf.TensorSpec([None, None, I]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([I, 4 * H]),
        tf.TensorSpec([H, 4 * H]),
        tf.TensorSpec([4 * H]),
    ]

    @tf.function(input_signature=spec)
    def run(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[3])
            out, h, c = lstm_sequence(*a)
            loss = tf.reduce_sum(out) + tf.reduce_sum(c)
        assert out.shape.as_list() == [None, None, H]
        return out, h, tape.gradient(loss, a[3])

    for steps, batch in [(2, 1), (7, 4)]:
        args = _args(seed=steps, steps=steps, batch=batch)
        out, h, dk = run(*args)
        want = numpy_lstm(*[a.astype(np.float64) for a in args])
        np.testing.assert_allclose(out.numpy(), want[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h.numpy(), want[1], rtol=1e-5, atol=1e-5)
        x = tf.constant(args[0])
        with tf.GradientTape() as tape:
            k = tf.constant(args[3])
            tape.watch(k)
            o, _, c = tf_lstm(x, args[1], args[2], k, args[4], args[5])
            loss = tf.reduce_sum(o) + tf.reduce_sum(c)
        np.testing.assert_allclose(dk.numpy(), tape.gradient(loss, k).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_dtypes(dtype):
    args = _args(seed=5)
    lengths = [5, 3, 1]
    want_vals, want_grads = _loss_and_grads(
        lstm_sequence, args, _weights(), sequence_length=lengths
    )
    low = [tf.cast(a, dtype) for a in args]
    weights = [tf.cast(w, dtype) for w in _weights()]
    got_vals, got_grads = _loss_and_grads(lstm_sequence, low, weights, sequence_length=lengths)
    tol = 0.05 if dtype == tf.float16 else 0.3
    for w, g in zip(list(want_vals) + list(want_grads), list(got_vals) + list(got_grads)):
        assert g.dtype == dtype
        scale = max(1.0, float(tf.reduce_max(tf.abs(w))))
        np.testing.assert_allclose(
            tf.cast(g, tf.float32).numpy() / scale, w.numpy() / scale, atol=tol
        )


def test_matches_keras_lstm_with_copied_weights():
    keras = pytest.importorskip("keras")
    args = _args(seed=6)
    x, h0, c0, kernel, rk, bias = args
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    layer(np.transpose(x, [1, 0, 2]))
    layer.set_weights([kernel, rk, bias])
    seq, h, c = layer(np.transpose(x, [1, 0, 2]), initial_state=[h0, c0])
    out, h2, c2 = lstm_sequence(*args)
    np.testing.assert_allclose(
        out.numpy(), np.transpose(np.asarray(seq), [1, 0, 2]), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(h2.numpy(), np.asarray(h), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c2.numpy(), np.asarray(c), rtol=1e-5, atol=1e-5)


def test_variables_batch_one_and_unused_outputs():
    x, h0, c0, kernel, rk, bias = _args(seed=7, batch=1)
    kv, rv, bv = tf.Variable(kernel), tf.Variable(rk), tf.Variable(bias)
    with tf.GradientTape() as tape:
        _, h, _ = lstm_sequence(x, h0, c0, kv, rv, bv)  # only h is used
        loss = tf.reduce_sum(h)
    grads = tape.gradient(loss, [kv, rv, bv])
    with tf.GradientTape() as tape:
        tape.watch([kv, rv, bv])
        _, h_ref, _ = tf_lstm(tf.constant(x), h0, c0, kv, rv, bv)
        loss_ref = tf.reduce_sum(h_ref)
    for g, w in zip(grads, tape.gradient(loss_ref, [kv, rv, bv])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6)


def test_lengths_outside_range_act_as_clipped():
    args = _args(seed=8)
    got = lstm_sequence(*args, sequence_length=np.array([9, -2, 3], np.int64))
    want = lstm_sequence(*args, sequence_length=[5, 0, 3])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    np.testing.assert_array_equal(got[1][1].numpy(), args[1][1])


def test_second_order_gradients_raise():
    args = [tf.constant(a) for a in _args(seed=9)]
    with tf.GradientTape() as outer:
        outer.watch(args[3])
        with tf.GradientTape() as inner:
            inner.watch(args[3])
            loss = tf.reduce_sum(lstm_sequence(*args)[0] ** 2)
        dk = inner.gradient(loss, args[3])
        penalty = tf.reduce_sum(dk**2)
    with pytest.raises(NotImplementedError, match="first-order"):
        outer.gradient(penalty, args[3])


def test_bad_arguments_raise_clear_errors():
    x, h0, c0, kernel, rk, bias = _args()
    with pytest.raises(TypeError, match="recurrent_kernel has dtype float64"):
        lstm_sequence(x, h0, c0, kernel, tf.constant(rk, tf.float64), bias)
    with pytest.raises(TypeError, match="float16, bfloat16"):
        lstm_sequence(x.astype(np.int32), h0, c0, kernel, rk, bias)
    with pytest.raises(ValueError, match="inputs must have rank 3"):
        lstm_sequence(x[0], h0, c0, kernel, rk, bias)
    with pytest.raises(ValueError, match=r"kernel.shape\[0\] should be 4"):
        lstm_sequence(x, h0, c0, kernel[:3], rk, bias)
    with pytest.raises(ValueError, match=r"h0.shape\[0\] should be 3"):
        lstm_sequence(x, h0[:2], c0, kernel, rk, bias)
    with pytest.raises(ValueError, match=r"recurrent_kernel must be \[H, 4H\]"):
        lstm_sequence(x, h0, c0, kernel, rk[:, :10], bias)
    with pytest.raises(ValueError, match="zero time steps"):
        lstm_sequence(x[:0], h0, c0, kernel, rk, bias)
    with pytest.raises(TypeError, match="sequence_length must be integers"):
        lstm_sequence(x, h0, c0, kernel, rk, bias, sequence_length=[1.0] * 3)
    with pytest.raises(ValueError, match="sequence_length has 2 entries but the batch size is 3"):
        lstm_sequence(x, h0, c0, kernel, rk, bias, sequence_length=[1, 2])

    run = tf.function(
        lambda a: lstm_sequence(a, h0, c0, kernel, rk, bias),
        input_signature=[tf.TensorSpec([None, B, I])],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="zero time steps"):
        run(x[:0])


def test_saved_model_round_trip(tmp_path):
    args = _args(seed=10)

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(args[3])
            self.recurrent_kernel = tf.Variable(args[4])
            self.bias = tf.Variable(args[5])

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, I]), tf.TensorSpec([None], tf.int32)]
        )
        def run(self, x, lengths):
            zeros = tf.zeros([tf.shape(x)[1], H])
            return lstm_sequence(
                x,
                zeros,
                zeros,
                self.kernel,
                self.recurrent_kernel,
                self.bias,
                sequence_length=lengths,
                reverse=True,
            )[0]

    tf.saved_model.save(Model(), str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    x = args[0][:, :2]
    got = loaded.run(tf.constant(x), tf.constant([5, 3]))
    zeros = np.zeros([2, H])
    want = numpy_lstm(
        x.astype(np.float64),
        zeros,
        zeros,
        *[a.astype(np.float64) for a in args[3:]],
        lengths=[5, 3],
        reverse=True,
    )
    np.testing.assert_allclose(got.numpy(), want[0], rtol=1e-5, atol=1e-5)
