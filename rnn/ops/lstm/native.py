"""The LSTM programs with each recurrence as one compiled op, and when to use them.

Where it can (float32, no visible GPU, not under XLA),
:func:`rnn.ops.lstm.lstm_sequence` runs each recurrence
as one op of ``kernels.c`` instead of a ``tf.while_loop``: the same per-step
work without the executor's per-op and per-iteration costs between the small
matmuls and element-wise ops, the products split by hidden unit over a few
threads (one per CPU, ``RNN_LSTM_THREADS`` overrides) that meet once per
step. There the input projection of all steps is one
``[4H, I+1] x [I+1, T*B]`` matmul before the op. The kernels take and
produce the tensors the ``while_loop`` programs do (the gate gradients
directly in the ``[4H, T * B]`` columns layout the weight-gradient matmuls
take), so the rest (those matmuls, masking, reversal) is shared
(:mod:`rnn.ops.lstm.programs`).

**Exported graphs are plain TensorFlow.** Graphs hold the ``while_loop``
programs; TensorFlow's runtime swaps in these on CPU when a graph runs
(:mod:`rnn.ops._native`). A SavedModel, Keras' ``model.export``, a concrete
function traced before saving, a frozen ``GraphDef``: whatever leaves the
process uses TensorFlow ops only and loads where rnn is not.
"""

from __future__ import annotations

import tensorflow as tf

from rnn.ops import _native, _programs
from rnn.ops._library import LIBRARIES
from rnn.ops._native import KernelSwitch, portable
from rnn.ops.lstm import programs

__all__ = ["native_kernels_available", "portable", "set_native_kernels"]

LIBRARY = LIBRARIES["lstm"]
SWITCH = KernelSwitch()


def native_kernels_available() -> bool:
    """Whether the compiled LSTM kernels are built and loaded in this process.

    :func:`rnn.ops.lstm.lstm_sequence` runs its recurrences as two compiled
    ops (one forward, one backward) where it can: float32 on a machine
    without a visible GPU, outside XLA compilation,
    and unless :func:`set_native_kernels` turned them off. Elsewhere it runs
    the same computation as TensorFlow ``while_loop`` s. The first call
    compiles the library (once per user and TensorFlow version, into a
    cache; ``python -m rnn.ops`` does it ahead) and loads it; without a C
    compiler it is absent, a ``RuntimeWarning`` says so, and this returns
    False. ``rnn.kernel_info()`` says which instruction set it runs with.

    >>> isinstance(native_kernels_available(), bool)
    True
    """
    return LIBRARY.load() is not None


def set_native_kernels(enabled: bool) -> bool:
    """Turns the compiled LSTM kernels on or off; returns the previous setting.

    It applies to functions traced afterwards (and to eager calls), in every
    thread; :func:`portable` is the scoped form.

    >>> import tensorflow as tf
    >>> from rnn.ops.lstm import lstm_sequence
    >>> previous = set_native_kernels(False)
    >>> out, h, c = lstm_sequence(tf.ones([2, 1, 3]), tf.zeros([1, 4]),
    ...                           tf.zeros([1, 4]), tf.zeros([3, 16]),
    ...                           tf.zeros([4, 16]), tf.zeros([16]))
    >>> set_native_kernels(previous)
    False
    >>> float(h[0, 0])      # sigmoid(0) * tanh(c), c = 0.5 * 0 + 0.5 * 0
    0.0
    """
    return SWITCH.set(enabled)


def _none(dtype: tf.DType) -> tf.Tensor:
    """The kernels' "not given" for an optional tensor argument: shape ``[0]``."""
    return tf.zeros([0], dtype)


def forward(
    x: tf.Tensor,
    h0: tf.Tensor,
    c0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    lengths: tf.Tensor | None,
    resets: programs.Resets | None = None,
    *,
    masked: bool,
    reverse: bool,
    all_states: bool = False,
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.lstm.programs.forward` with the recurrence as one compiled op."""
    _, xa, mask = programs.inputs(x, lengths, masked=masked, reverse=reverse)
    # The input projection of every step as one matmul, [4H, T, B].
    zx = _programs.project(_programs.projection_weights(kernel, bias), xa)
    r = None
    reset_args = [_none(tf.bool), _none(x.dtype), _none(x.dtype)]
    if resets is not None:
        r = _programs.reset_mask(resets.reset, mask, reverse)
        reset_args = [r[:, 0, :], tf.transpose(resets.h), tf.transpose(resets.c)]
    ss, cs, hs = LIBRARY.load().rnn_lstm_forward(
        zx,
        recurrent_kernel,
        tf.transpose(h0),
        tf.transpose(c0),
        _native.kernel_mask(mask),
        *reset_args,
    )
    return programs.finish_forward(hs, ss, cs, xa, mask, r, reverse, all_states)


def backward(
    d_out: tf.Tensor,
    d_h: tf.Tensor,
    d_c: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    lengths: tf.Tensor | None,
    xa: tf.Tensor,
    hs: tf.Tensor,
    ss: tf.Tensor,
    cs: tf.Tensor,
    d_cs: tf.Tensor | None = None,
    r: tf.Tensor | None = None,
    c_reset: tf.Tensor | None = None,
    *,
    masked: bool,
    reverse: bool,
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.lstm.programs.backward` with the reverse recurrence as one compiled op."""
    n = tf.shape(xa)[0]
    dtype = xa.dtype
    d_out, mask = _programs.output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    d_cs_arg = _none(dtype)
    if d_cs is not None:
        d_cs_arg = _programs.output_gradients(d_cs, lengths, n, masked=masked, reverse=reverse)[0]
    reset_args = [_none(tf.bool), _none(dtype)]
    if r is not None:
        reset_args = [r[:, 0, :], tf.transpose(c_reset)]
    dz, dh0, dc0, d_hr, d_cr = LIBRARY.load().rnn_lstm_backward(
        ss,
        cs,
        d_out,
        tf.transpose(d_h),
        tf.transpose(d_c),
        recurrent_kernel,
        _native.kernel_mask(mask),
        *reset_args,
        d_cs_arg,
    )  # dz: [4H, T, B], no transpose
    dz = tf.reshape(dz, [tf.shape(dz)[0], -1])
    if r is None:
        return (dz, dh0, dc0)
    return (dz, dh0, dc0, d_hr, d_cr)
