"""Tests for rnn.ops.vanilla.vanilla_sequence (the whole-sequence vanilla RNN).

Every test runs on both programs (the compiled recurrences where they
apply, the TensorFlow while_loops). Against the NumPy reference
(tests/rnn/numpy_ref.py), against autodiff of stepping the core's own step
function, Keras' SimpleRNN with the same
weights, and through rnn.VanillaRNN and the unrollers (which must choose
the fast path only where it applies).
"""

import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn.cores import _vanilla_fn
from rnn.ops.vanilla import native, vanilla_sequence
from tests.rnn import numpy_ref as ref

T, B, I, H = 5, 3, 4, 6


@pytest.fixture(autouse=True, params=["kernels", "tf_ops"])
def vanilla_path(request):
    """Every test runs on both programs: the compiled recurrences (float32
    on CPU) and the TensorFlow while_loops (everything else)."""
    if request.param == "kernels" and not native.native_kernels_available():
        pytest.skip("the compiled recurrences are not available here")
    previous = native.set_native_kernels(request.param == "kernels")
    yield request.param
    native.set_native_kernels(previous)


def numpy_vanilla(x, h, kernel, rk, bias, lengths=None, reverse=False):
    """The NumPy reference unroll (example by example)."""

    def step(xt, state):
        out, h_new = ref.vanilla_step(xt, state[0], kernel, rk, bias)
        return out, (h_new,)

    out, (h,) = ref.unroll(step, x, (h,), lengths, reverse)
    return out, h


def tf_vanilla(x, h, kernel, rk, bias, sequence_length=None, reverse=False):
    """Stepping rnn.VanillaRNN's step function, differentiated by TF autodiff."""
    steps = x.shape[0]
    outs = [None] * steps
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        h_new, _ = _vanilla_fn(x[t], h, kernel, rk, bias, tf.tanh)
        if sequence_length is None:
            outs[t], h = h_new, h_new
        else:
            valid = (t < sequence_length)[:, tf.newaxis]
            outs[t] = tf.where(valid, h_new, tf.zeros_like(h_new))
            h = tf.where(valid, h_new, h)
    return tf.stack(outs), h


def _args(seed=0, dtype=np.float32, steps=T, batch=B):
    rng = np.random.default_rng(seed)
    shapes = [(steps, batch, I), (batch, H), (I, H), (H, H), (H,)]
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
def test_forward_matches_numpy(kwargs):
    args = _args()
    want = numpy_vanilla(
        *[a.astype(np.float64) for a in args],
        lengths=kwargs.get("sequence_length"),
        reverse=kwargs.get("reverse", False),
    )
    got = vanilla_sequence(*args, **kwargs)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_gradients_match_autodiff_eager(kwargs):
    args, weights = _args(), _weights()
    ref_kwargs = dict(kwargs)
    if "sequence_length" in kwargs:
        ref_kwargs["sequence_length"] = tf.constant(kwargs["sequence_length"])
    want_vals, want_grads = _loss_and_grads(tf_vanilla, args, weights, **ref_kwargs)
    got_vals, got_grads = _loss_and_grads(vanilla_sequence, args, weights, **kwargs)
    for w, g in zip(list(want_vals) + list(want_grads), list(got_vals) + list(got_grads)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
def test_graph_and_xla_match_autodiff(jit):
    args, weights = _args(seed=2), _weights(seed=3)
    lengths = tf.constant([4, 5, 2])
    want = _loss_and_grads(tf_vanilla, args, weights, sequence_length=lengths, reverse=True)
    step = tf.function(
        lambda *a: _loss_and_grads(
            vanilla_sequence, a, weights, sequence_length=lengths, reverse=True
        ),
        jit_compile=jit,
    )
    got = step(*args)
    for w, g in zip(list(want[0]) + list(want[1]), list(got[0]) + list(got[1])):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_float64_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    shapes = [(3, 2, 2), (2, 3), (2, 3), (3, 3), (3,)]
    args = [tf.constant(rng.normal(size=s) * 0.5) for s in shapes]
    lengths = tf.constant([3, 2])

    def f(*a):
        out, h = vanilla_sequence(*a, sequence_length=lengths, reverse=True)
        return tf.reduce_sum(out * tf.sin(out)) + tf.reduce_sum(h * h)

    theoretical, numerical = tf.test.compute_gradient(f, args, delta=1e-5)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


def test_unknown_time_and_batch_in_tf_function():
    spec = [
        tf.TensorSpec([None, None, I]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([I, H]),
        tf.TensorSpec([H, H]),
        tf.TensorSpec([H]),
    ]

    @tf.function(input_signature=spec)
    def run(*a):
        with tf.GradientTape() as tape:
            tape.watch(a[2])
            out, h = vanilla_sequence(*a)
            loss = tf.reduce_sum(out) + tf.reduce_sum(h)
        assert out.shape.as_list() == [None, None, H]
        return out, h, tape.gradient(loss, a[2])

    for steps, batch in [(2, 1), (7, 4)]:
        args = _args(seed=steps, steps=steps, batch=batch)
        out, h, dk = run(*args)
        want = numpy_vanilla(*[a.astype(np.float64) for a in args])
        np.testing.assert_allclose(out.numpy(), want[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(h.numpy(), want[1], rtol=1e-5, atol=1e-5)
        with tf.GradientTape() as tape:
            k = tf.constant(args[2])
            tape.watch(k)
            o, hh = tf_vanilla(tf.constant(args[0]), args[1], k, args[3], args[4])
            loss = tf.reduce_sum(o) + tf.reduce_sum(hh)
        np.testing.assert_allclose(dk.numpy(), tape.gradient(loss, k).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision_dtypes(dtype):
    args = _args(seed=5)
    kwargs = dict(sequence_length=[5, 3, 1])
    want_vals, want_grads = _loss_and_grads(vanilla_sequence, args, _weights(), **kwargs)
    low = [tf.cast(a, dtype) for a in args]
    weights = [tf.cast(w, dtype) for w in _weights()]
    got_vals, got_grads = _loss_and_grads(vanilla_sequence, low, weights, **kwargs)
    tol = 0.05 if dtype == tf.float16 else 0.3
    for w, g in zip(list(want_vals) + list(want_grads), list(got_vals) + list(got_grads)):
        assert g.dtype == dtype
        scale = max(1.0, float(tf.reduce_max(tf.abs(w))))
        np.testing.assert_allclose(
            tf.cast(g, tf.float32).numpy() / scale, w.numpy() / scale, atol=tol
        )


def test_matches_keras_simple_rnn_with_copied_weights():
    keras = pytest.importorskip("keras")
    x, h0, kernel, rk, bias = _args(seed=6)
    layer = keras.layers.SimpleRNN(H, return_sequences=True, return_state=True)
    layer(np.transpose(x, [1, 0, 2]))
    layer.set_weights([kernel, rk, bias])
    seq, h = layer(np.transpose(x, [1, 0, 2]), initial_state=[h0])
    out, h2 = vanilla_sequence(x, h0, kernel, rk, bias)
    np.testing.assert_allclose(
        out.numpy(), np.transpose(np.asarray(seq), [1, 0, 2]), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(h2.numpy(), np.asarray(h), rtol=1e-5, atol=1e-5)


def test_lengths_outside_range_act_as_clipped():
    args = _args(seed=8)
    got = vanilla_sequence(*args, sequence_length=np.array([9, -2, 3], np.int64))
    want = vanilla_sequence(*args, sequence_length=[5, 0, 3])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    np.testing.assert_array_equal(got[1][1].numpy(), args[1][1])


def test_second_order_gradients_raise():
    args = [tf.constant(a) for a in _args(seed=9)]
    with tf.GradientTape() as outer:
        outer.watch(args[2])
        with tf.GradientTape() as inner:
            inner.watch(args[2])
            loss = tf.reduce_sum(vanilla_sequence(*args)[0] ** 2)
        dk = inner.gradient(loss, args[2])
        penalty = tf.reduce_sum(dk**2)
    with pytest.raises(NotImplementedError, match="first-order"):
        outer.gradient(penalty, args[2])


def test_bad_arguments_raise_clear_errors():
    x, h0, kernel, rk, bias = _args()
    with pytest.raises(TypeError, match="vanilla_sequence: recurrent_kernel has dtype float64"):
        vanilla_sequence(x, h0, kernel, tf.constant(rk, tf.float64), bias)
    with pytest.raises(TypeError, match="float16, bfloat16"):
        vanilla_sequence(x.astype(np.int32), h0, kernel, rk, bias)
    with pytest.raises(ValueError, match="inputs must have rank 3"):
        vanilla_sequence(x[0], h0, kernel, rk, bias)
    with pytest.raises(ValueError, match=r"kernel.shape\[0\] should be 4"):
        vanilla_sequence(x, h0, kernel[:3], rk, bias)
    with pytest.raises(ValueError, match=r"h0.shape\[0\] should be 3"):
        vanilla_sequence(x, h0[:2], kernel, rk, bias)
    with pytest.raises(ValueError, match=r"recurrent_kernel.shape\[1\] should be 6"):
        vanilla_sequence(x, h0, kernel, rk[:, :5], bias)
    with pytest.raises(ValueError, match=r"bias.shape\[0\] should be 6"):
        vanilla_sequence(x, h0, kernel, rk, bias[:5])
    with pytest.raises(ValueError, match="zero time steps"):
        vanilla_sequence(x[:0], h0, kernel, rk, bias)
    with pytest.raises(TypeError, match="sequence_length must be integers"):
        vanilla_sequence(x, h0, kernel, rk, bias, sequence_length=[1.0] * 3)
    with pytest.raises(ValueError, match="sequence_length has 2 entries but the batch size is 3"):
        vanilla_sequence(x, h0, kernel, rk, bias, sequence_length=[1, 2])
    run = tf.function(
        lambda a: vanilla_sequence(a, h0, kernel, rk, bias),
        input_signature=[tf.TensorSpec([None, B, I])],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="zero time steps"):
        run(x[:0])


def _uses_fast_path(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph.as_graph_def()
    names = [f.signature.name for f in graph.library.function]
    return any("fwd" in n for n in names)


@pytest.mark.parametrize("time_major", [True, False])
def test_vanilla_rnn_unrolls_through_it_where_it_applies(time_major):
    """rnn.VanillaRNN with tanh uses the whole-sequence program in both
    unrollers (time-major or not, sequence lengths, reverse) with the
    results of stepping the core; other activations step the core."""
    x, h0, *_ = _args(seed=11)
    xs = tf.constant(x if time_major else np.transpose(x, [1, 0, 2]))
    lengths = tf.constant([5, 1, 3])
    for unroll in (rnn.dynamic_unroll, rnn.static_unroll):
        core = rnn.VanillaRNN(H)
        kw = dict(sequence_length=lengths, reverse=True, time_major=time_major)
        with tf.GradientTape() as tape:
            out, h = unroll(core, xs, tf.constant(h0), **kw)
            loss = tf.reduce_sum(out * out) + tf.reduce_sum(h)
        grads = tape.gradient(loss, core.trainable_variables)
        args = [tf.constant(x), tf.constant(h0), core.kernel, core.recurrent_kernel, core.bias]
        with tf.GradientTape() as tape:
            want_out, want_h = tf_vanilla(*args, sequence_length=lengths, reverse=True)
            if not time_major:
                want_out = tf.transpose(want_out, [1, 0, 2])
            want_loss = tf.reduce_sum(want_out * want_out) + tf.reduce_sum(want_h)
        want_grads = tape.gradient(want_loss, core.trainable_variables)
        for g, w in zip([out, h, *grads], [want_out, want_h, *want_grads]):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)
        assert _uses_fast_path(lambda s: unroll(core, s, tf.constant(h0), **kw), xs)
        relu = rnn.VanillaRNN(H, activation=tf.nn.relu)
        assert not _uses_fast_path(lambda s: unroll(relu, s, tf.constant(h0), **kw), xs)
