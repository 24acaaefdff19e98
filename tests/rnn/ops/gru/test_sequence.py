"""Tests for rnn.ops.gru.gru_sequence (the whole-sequence GRU fast path).

Every test runs on both forms (``reset_after`` False and True) and on both
programs (the compiled kernels where they apply, the TensorFlow while_loops),
against the NumPy reference (tests/rnn/numpy_ref.py) and against autodiff
of stepping the core's own step function.
"""

import numpy as np
import pytest
import tensorflow as tf

from rnn.cores import _gru_fn
from rnn.ops.gru import gru_sequence, native
from tests.rnn import numpy_ref as ref

T, B, I, H = 5, 3, 4, 6


@pytest.fixture(autouse=True, params=["kernels", "tf_ops"])
def gru_path(request):
    """Every test runs on both programs: the compiled kernels (float32 on
    CPU) and the TensorFlow while_loops (everything else)."""
    if request.param == "kernels" and not native.native_kernels_available():
        pytest.skip("the GRU kernels are not available here")
    previous = native.set_native_kernels(request.param == "kernels")
    yield request.param
    native.set_native_kernels(previous)


@pytest.fixture(params=[False, True], ids=["cho", "reset_after"])
def reset_after(request):
    return request.param


def numpy_gru(x, h, kernel, rk, bias, lengths=None, reverse=False, reset_after=False):
    """The NumPy reference unroll (example by example)."""

    def step(xt, state):
        out, h_new = ref.gru_step(xt, state[0], kernel, rk, bias, reset_after)
        return out, (h_new,)

    out, (h,) = ref.unroll(step, x, (h,), lengths, reverse)
    return out, h


def tf_gru(x, h, kernel, rk, bias, sequence_length=None, reverse=False, reset_after=False):
    """Stepping rnn.GRU's step function, differentiated by TF autodiff."""
    steps = x.shape[0]
    outs = [None] * steps
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        h_new, _ = _gru_fn(x[t], h, kernel, rk, bias, reset_after)
        if sequence_length is None:
            outs[t], h = h_new, h_new
        else:
            valid = (t < sequence_length)[:, tf.newaxis]
            outs[t] = tf.where(valid, h_new, tf.zeros_like(h_new))
            h = tf.where(valid, h_new, h)
    return tf.stack(outs), h


def _args(reset_after, seed=0, dtype=np.float32, steps=T, batch=B):
    rng = np.random.default_rng(seed)
    bias = (2, 3 * H) if reset_after else (3 * H,)
    shapes = [(steps, batch, I), (batch, H), (I, 3 * H), (H, 3 * H), bias]
    return [(rng.normal(size=s) * 0.7).astype(dtype) for s in shapes]


def _weights(seed=1, steps=T, batch=B):
    rng = np.random.default_rng(seed)
    return [
        tf.constant(rng.normal(size=s).astype(np.float32)) for s in [(steps, batch, H), (batch, H)]
    ]


def _loss_and_grads(fn, args, weights, **kwargs):
    args = [tf.convert_to_tensor(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h = fn(*args, **kwargs)
        loss = tf.reduce_sum(out * weights[0]) + tf.reduce_sum(h * weights[1])
    return (out, h), tape.gradient(loss, args)


VARIANTS = [
    dict(),
    dict(reverse=True),
    dict(sequence_length=[5, 2, 0]),
    dict(sequence_length=[3, 5, 1], reverse=True),
]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_forward_matches_numpy(kwargs, reset_after):
    args = _args(reset_after)
    want = numpy_gru(
        *[a.astype(np.float64) for a in args],
        lengths=kwargs.get("sequence_length"),
        reverse=kwargs.get("reverse", False),
        reset_after=reset_after,
    )
    got = gru_sequence(*args, reset_after=reset_after, **kwargs)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_gradients_match_autodiff_eager(kwargs, reset_after):
    args, weights = _args(reset_after), _weights()
    lengths = kwargs.get("sequence_length")
    ref_kwargs = dict(kwargs, reset_after=reset_after)
    if lengths is not None:
        ref_kwargs["sequence_length"] = tf.constant(lengths)
    want_vals, want_grads = _loss_and_grads(tf_gru, args, weights, **ref_kwargs)
    got_vals, got_grads = _loss_and_grads(
        gru_sequence, args, weights, reset_after=reset_after, **kwargs
    )
    for w, g in zip(list(want_vals) + list(want_grads), list(got_vals) + list(got_grads)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_graph_and_xla_match_autodiff(jit, reset_after):
    args, weights = _args(reset_after, seed=2), _weights(seed=3)
    lengths = tf.constant([4, 5, 2])
    want = _loss_and_grads(
        tf_gru, args, weights, sequence_length=lengths, reverse=True, reset_after=reset_after
    )
    step = tf.function(
        lambda *a: _loss_and_grads(
            gru_sequence, a, weights, sequence_length=lengths, reverse=True, reset_after=reset_after
        ),
        jit_compile=jit,
    )
    got = step(*args)
    for w, g in zip(list(want[0]) + list(want[1]), list(got[0]) + list(got[1])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_float64_gradients_match_finite_differences(reset_after):
    rng = np.random.default_rng(4)
    bias = (2, 9) if reset_after else (9,)
    shapes = [(3, 2, 2), (2, 3), (2, 9), (3, 9), bias]
    args = [tf.constant(rng.normal(size=s) * 0.5) for s in shapes]
    lengths = tf.constant([3, 2])

    def f(*a):
        out, h = gru_sequence(*a, sequence_length=lengths, reverse=True, reset_after=reset_after)
        return tf.reduce_sum(out * tf.sin(out)) + tf.reduce_sum(h * h)

    theoretical, numerical = tf.test.compute_gradient(f, args, delta=1e-5)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


def test_unknown_time_and_batch_in_tf_function(reset_after):
    bias = [2, 3 * H] if reset_after else [3 * H]
    spec = [
        tf.TensorSpec([None, None, I]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([I, 3 * H]),
        tf.TensorSpec([H, 3 * H]),
        tf.TensorSpec(bias),
    ]

    @tf.function(input_signature=spec)
    def run(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[2])
            out, h = gru_sequence(*a, reset_after=reset_after)
            loss = tf.reduce_sum(out) + tf.reduce_sum(h)
        assert out.shape.as_list() == [None, None, H]
        return out, h, tape.gradient(loss, a[2])

    for steps, batch in [(2, 1), (7, 4)]:
        args = _args(reset_after, seed=steps, steps=steps, batch=batch)
        out, h, dk = run(*args)
        want = numpy_gru(*[a.astype(np.float64) for a in args], reset_after=reset_after)
        np.testing.assert_allclose(out.numpy(), want[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h.numpy(), want[1], rtol=1e-5, atol=1e-5)
        with tf.GradientTape() as tape:
            k = tf.constant(args[2])
            tape.watch(k)
            o, hh = tf_gru(
                tf.constant(args[0]), args[1], k, args[3], args[4], reset_after=reset_after
            )
            loss = tf.reduce_sum(o) + tf.reduce_sum(hh)
        np.testing.assert_allclose(dk.numpy(), tape.gradient(loss, k).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_dtypes(dtype, reset_after):
    args = _args(reset_after, seed=5)
    lengths = [5, 3, 1]
    kwargs = dict(sequence_length=lengths, reset_after=reset_after)
    want_vals, want_grads = _loss_and_grads(gru_sequence, args, _weights(), **kwargs)
    low = [tf.cast(a, dtype) for a in args]
    weights = [tf.cast(w, dtype) for w in _weights()]
    got_vals, got_grads = _loss_and_grads(gru_sequence, low, weights, **kwargs)
    tol = 0.05 if dtype == tf.float16 else 0.3
    for w, g in zip(list(want_vals) + list(want_grads), list(got_vals) + list(got_grads)):
        assert g.dtype == dtype
        scale = max(1.0, float(tf.reduce_max(tf.abs(w))))
        np.testing.assert_allclose(
            tf.cast(g, tf.float32).numpy() / scale, w.numpy() / scale, atol=tol
        )


def test_matches_keras_gru_with_copied_weights(reset_after):
    keras = pytest.importorskip("keras")
    args = _args(reset_after, seed=6)
    x, h0, kernel, rk, bias = args
    layer = keras.layers.GRU(H, return_sequences=True, return_state=True, reset_after=reset_after)
    layer(np.transpose(x, [1, 0, 2]))
    layer.set_weights([kernel, rk, bias])
    seq, h = layer(np.transpose(x, [1, 0, 2]), initial_state=[h0])
    out, h2 = gru_sequence(*args, reset_after=reset_after)
    np.testing.assert_allclose(
        out.numpy(), np.transpose(np.asarray(seq), [1, 0, 2]), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(h2.numpy(), np.asarray(h), rtol=1e-5, atol=1e-5)


def test_variables_batch_one_and_unused_outputs(reset_after):
    x, h0, kernel, rk, bias = _args(reset_after, seed=7, batch=1)
    kv, rv, bv = tf.Variable(kernel), tf.Variable(rk), tf.Variable(bias)
    with tf.GradientTape() as tape:
        _, h = gru_sequence(x, h0, kv, rv, bv, reset_after=reset_after)  # only h is used
        loss = tf.reduce_sum(h)
    grads = tape.gradient(loss, [kv, rv, bv])
    with tf.GradientTape() as tape:
        tape.watch([kv, rv, bv])
        _, h_ref = tf_gru(tf.constant(x), h0, kv, rv, bv, reset_after=reset_after)
        loss_ref = tf.reduce_sum(h_ref)
    for g, w in zip(grads, tape.gradient(loss_ref, [kv, rv, bv])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-6)


def test_lengths_outside_range_act_as_clipped(reset_after):
    args = _args(reset_after, seed=8)
    got = gru_sequence(
        *args, sequence_length=np.array([9, -2, 3], np.int64), reset_after=reset_after
    )
    want = gru_sequence(*args, sequence_length=[5, 0, 3], reset_after=reset_after)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    np.testing.assert_array_equal(got[1][1].numpy(), args[1][1])


def test_second_order_gradients_raise(reset_after):
    args = [tf.constant(a) for a in _args(reset_after, seed=9)]
    with tf.GradientTape() as outer:
        outer.watch(args[2])
        with tf.GradientTape() as inner:
            inner.watch(args[2])
            loss = tf.reduce_sum(gru_sequence(*args, reset_after=reset_after)[0] ** 2)
        dk = inner.gradient(loss, args[2])
        penalty = tf.reduce_sum(dk**2)
    with pytest.raises(NotImplementedError, match="first-order"):
        outer.gradient(penalty, args[2])


def test_bad_arguments_raise_clear_errors():
    x, h0, kernel, rk, bias = _args(False)
    with pytest.raises(TypeError, match="recurrent_kernel has dtype float64"):
        gru_sequence(x, h0, kernel, tf.constant(rk, tf.float64), bias)
    with pytest.raises(TypeError, match="float16, bfloat16"):
        gru_sequence(x.astype(np.int32), h0, kernel, rk, bias)
    with pytest.raises(ValueError, match="inputs must have rank 3"):
        gru_sequence(x[0], h0, kernel, rk, bias)
    with pytest.raises(ValueError, match=r"kernel.shape\[0\] should be 4"):
        gru_sequence(x, h0, kernel[:3], rk, bias)
    with pytest.raises(ValueError, match=r"h0.shape\[0\] should be 3"):
        gru_sequence(x, h0[:2], kernel, rk, bias)
    with pytest.raises(ValueError, match=r"recurrent_kernel must be \[H, 3H\]"):
        gru_sequence(x, h0, kernel, rk[:, :10], bias)
    with pytest.raises(ValueError, match=r"bias.shape\[-1\] should be 18"):
        gru_sequence(x, h0, kernel, rk, bias[:12])
    with pytest.raises(ValueError, match=r"bias must have rank 2 \(reset_after=True\)"):
        gru_sequence(x, h0, kernel, rk, bias, reset_after=True)
    with pytest.raises(ValueError, match=r"bias must have rank 1 \(reset_after=False\)"):
        gru_sequence(x, h0, kernel, rk, np.stack([bias, bias]))
    with pytest.raises(ValueError, match=r"bias.shape\[0\] should be 2"):
        gru_sequence(x, h0, kernel, rk, np.stack([bias] * 3), reset_after=True)
    with pytest.raises(ValueError, match="zero time steps"):
        gru_sequence(x[:0], h0, kernel, rk, bias)
    with pytest.raises(TypeError, match="sequence_length must be integers"):
        gru_sequence(x, h0, kernel, rk, bias, sequence_length=[1.0] * 3)
    with pytest.raises(ValueError, match="sequence_length has 2 entries but the batch size is 3"):
        gru_sequence(x, h0, kernel, rk, bias, sequence_length=[1, 2])

    run = tf.function(
        lambda a: gru_sequence(a, h0, kernel, rk, bias),
        input_signature=[tf.TensorSpec([None, B, I])],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="zero time steps"):
        run(x[:0])


def test_saved_model_round_trip(tmp_path, reset_after):
    args = _args(reset_after, seed=10)

    class Model(tf.Module):
        def __init__(self):
            super().__init__()
            self.kernel = tf.Variable(args[2])
            self.recurrent_kernel = tf.Variable(args[3])
            self.bias = tf.Variable(args[4])

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, I]), tf.TensorSpec([None], tf.int32)]
        )
        def run(self, x, lengths):
            zeros = tf.zeros([tf.shape(x)[1], H])
            return gru_sequence(
                x,
                zeros,
                self.kernel,
                self.recurrent_kernel,
                self.bias,
                sequence_length=lengths,
                reverse=True,
                reset_after=reset_after,
            )[0]

    tf.saved_model.save(Model(), str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    x = args[0][:, :2]
    got = loaded.run(tf.constant(x), tf.constant([5, 3]))
    want = numpy_gru(
        x.astype(np.float64),
        np.zeros([2, H]),
        *[a.astype(np.float64) for a in args[2:]],
        lengths=[5, 3],
        reverse=True,
        reset_after=reset_after,
    )
    np.testing.assert_allclose(got.numpy(), want[0], rtol=1e-5, atol=1e-5)
