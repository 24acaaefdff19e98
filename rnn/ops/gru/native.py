"""The GRU programs with each recurrence as one compiled op, and when to use them.

Where it can (float32, no visible GPU, not under XLA),
:func:`rnn.ops.gru.gru_sequence` runs each recurrence as
one op of ``kernels.c`` instead of a ``tf.while_loop``, as the LSTM does
(:mod:`rnn.ops.lstm.native`): the same per-step work without the executor's
per-op and per-iteration costs, the products split by hidden unit over a
few threads (one per CPU, ``RNN_GRU_THREADS`` overrides) that meet once per
dependent product. The input projection of all steps is one
``[3H, I+1] x [I+1, T*B]`` matmul before the op; the kernels take and
produce the tensors the ``while_loop`` programs do (the pre-activation
gradients directly in the ``[G, T * B]`` columns layout the weight-gradient
matmuls take), so the rest is shared (:mod:`rnn.ops.gru.programs`).

With resets the ops take the ``[T, B]`` reset mask in processing order and
the ``[H, B]`` reset state (:func:`kernel_resets`; two ``[0]`` tensors
without, the variant that runs exactly as before) and the backward op
returns the reset state's gradient too.

**Exported graphs are plain TensorFlow**, exactly as for the LSTM: graphs
hold the ``while_loop`` programs and the runtime swaps in these on CPU
(:mod:`rnn.ops._native`).
"""

from __future__ import annotations

import tensorflow as tf

from rnn.ops import _native, _programs
from rnn.ops._library import LIBRARIES
from rnn.ops._native import KernelSwitch, portable
from rnn.ops.gru import programs

__all__ = ["native_kernels_available", "portable", "set_native_kernels"]

LIBRARY = LIBRARIES["gru"]
SWITCH = KernelSwitch()


def native_kernels_available() -> bool:
    """Whether the compiled GRU kernels are built and loaded in this process.

    :func:`rnn.ops.gru.gru_sequence` runs its recurrences as two compiled
    ops (one forward, one backward) where it can: float32 on a machine
    without a visible GPU, outside XLA compilation,
    and unless :func:`set_native_kernels` turned them off. Elsewhere it runs
    the same computation as TensorFlow ``while_loop`` s. The first call
    compiles the library (once per user and TensorFlow version, into a
    cache; ``python -m rnn.ops`` does it ahead) and loads it; without a C
    compiler it is absent, a ``RuntimeWarning`` says so, and this returns
    False.

    >>> isinstance(native_kernels_available(), bool)
    True
    """
    return LIBRARY.load() is not None


def set_native_kernels(enabled: bool) -> bool:
    """Turns the compiled GRU kernels on or off; returns the previous setting.

    It applies to functions traced afterwards (and to eager calls), in every
    thread; :func:`portable` is the scoped form.

    >>> import tensorflow as tf
    >>> from rnn.ops.gru import gru_sequence
    >>> previous = set_native_kernels(False)
    >>> out, h = gru_sequence(tf.ones([2, 1, 3]), tf.zeros([1, 4]), tf.zeros([3, 12]),
    ...                       tf.zeros([4, 12]), tf.zeros([12]))
    >>> set_native_kernels(previous)
    False
    >>> float(h[0, 0])      # z = 0.5, n = 0: 0.5 * 0 + 0.5 * 0
    0.0
    """
    return SWITCH.set(enabled)


def forward(
    x: tf.Tensor,
    h0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    lengths: tf.Tensor | None,
    reset: tf.Tensor | None = None,
    reset_state: tf.Tensor | None = None,
    *,
    masked: bool,
    reverse: bool,
    reset_after: bool,
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.gru.programs.forward` with the recurrence as one compiled op."""
    _, xa, mask = programs.inputs(x, lengths, masked=masked, reverse=reverse)
    rm = None if reset is None else _programs.reset_mask(reset, mask, reverse)
    # The input projection of every step as one matmul, [3H, T, B].
    wx = programs.input_weights(kernel, bias, reset_after)
    zx = _programs.project(wx, xa)
    # The candidate's recurrent bias selects the form: [H] reset_after, [0] Cho's.
    bn = programs.candidate_bias(bias)[:, 0] if reset_after else tf.zeros([0], x.dtype)
    ss, hs = LIBRARY.load().rnn_gru_forward(
        zx,
        recurrent_kernel,
        bn,
        tf.transpose(h0),
        _native.kernel_mask(mask),
        *kernel_resets(rm, reset_state),
    )
    out = _programs.outputs(hs, mask, reverse)
    results = (out, tf.transpose(hs[-1], [1, 0]), xa, hs, ss)
    return results if rm is None else (*results, rm)


def backward(
    d_out: tf.Tensor,
    d_h: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    lengths: tf.Tensor | None,
    xa: tf.Tensor,
    hs: tf.Tensor,
    ss: tf.Tensor,
    reset_state: tf.Tensor | None = None,
    rm: tf.Tensor | None = None,
    *,
    masked: bool,
    reverse: bool,
    reset_after: bool,
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.gru.programs.backward` with the reverse recurrence as one compiled op."""
    n = tf.shape(xa)[0]
    d_out, mask = _programs.output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    da, dh0, d_hr = LIBRARY.load().rnn_gru_backward(
        ss,
        hs,
        d_out,
        tf.transpose(d_h),
        recurrent_kernel,
        _native.kernel_mask(mask),
        *kernel_resets(rm, reset_state),
    )  # da: [G, T, B], no transpose
    da = tf.reshape(da, [tf.shape(da)[0], -1])
    return (da, dh0) if rm is None else (da, dh0, d_hr)


def kernel_resets(
    rm: tf.Tensor | None, reset_state: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor]:
    """The kernels' ``reset`` and ``hr`` arguments: the ``[T, B]`` reset mask
    in processing order and the ``[H, B]`` reset state, or two ``[0]``
    (no resets; the GRU's and the vanilla RNN's kernels alike)."""
    if rm is None:
        return tf.zeros([0], tf.bool), tf.zeros([0], tf.float32)
    return tf.squeeze(rm, axis=1), tf.transpose(reset_state, [1, 0])
