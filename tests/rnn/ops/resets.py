"""What the GRU's and the vanilla RNN's reset tests share: the marks, the
lengths, the stepping reference and the switch between the two programs."""

import numpy as np
import pytest
import tensorflow as tf

T, B = 6, 4

# Marks (input order) that exercise the rules: example 0 resets at t = 0 and
# twice more; example 1 has marks past its length 3 (ignored); example 2
# has length 0 where lengths are given (every mark ignored); example 3
# resets at its last step.
RESET = np.zeros([T, B], bool)
RESET[[0, 2, 4], 0] = True
RESET[[1, 4, 5], 1] = True
RESET[[0, 3], 2] = True
RESET[[3, 5], 3] = True
LENGTHS = np.array([6, 3, 0, 5], np.int32)


def values_and_grads(fn, args, **kwargs):
    """``fn(*args) -> (out, h)``, then the gradients of a loss of both wrt every arg."""
    with tf.GradientTape() as tape:
        tape.watch(args)
        out, h = fn(*args, **kwargs)
        weights = tf.cos(tf.reshape(tf.range(tf.size(out), dtype=out.dtype), tf.shape(out)))
        loss = tf.reduce_sum(out * weights) + tf.reduce_sum(tf.sin(h))
    return [out, h, *tape.gradient(loss, args)]


NAMES = ["out", "h", "d_x", "d_h0", "d_kernel", "d_rk", "d_bias", "d_reset_state"]


def assert_close(got, want, rtol=1e-4, atol=1e-5):
    """float32 agreement (``atol`` relative to the largest magnitude)."""
    assert len(got) == len(want)
    for name, g, w in zip(NAMES, got, want):
        assert g is not None, name
        scale = max(1.0, float(tf.reduce_max(tf.abs(w))))
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol * scale, err_msg=name)


def stepped_with_resets(step, x, h, hr, *, reset, sequence_length=None, reverse=False):
    """The reference: ``step(x_t, h) -> h_new`` one step at a time, the state
    replaced by ``hr`` before each marked valid step, zeros past the length."""
    steps = x.shape[0]
    outs = [None] * steps
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        valid = tf.ones([x.shape[1]], tf.bool)
        if sequence_length is not None:
            valid = t < tf.constant(sequence_length)
        h = tf.where((reset[t] & valid)[:, tf.newaxis], hr, h)
        h_new = step(x[t], h)
        outs[t] = tf.where(valid[:, tf.newaxis], h_new, tf.zeros_like(h_new))
        h = tf.where(valid[:, tf.newaxis], h_new, h)
    return tf.stack(outs), h


def on_both_programs(native):
    """An autouse fixture running every test of a module on the compiled
    recurrences of ``native`` and on the TensorFlow while_loops."""

    @pytest.fixture(autouse=True, params=["kernels", "tf_ops"])
    def program(request):
        if request.param == "kernels" and not native.native_kernels_available():
            pytest.skip("the compiled recurrences are not available here")
        previous = native.set_native_kernels(request.param == "kernels")
        yield request.param
        native.set_native_kernels(previous)

    return program
