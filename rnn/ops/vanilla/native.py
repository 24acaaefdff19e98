"""The vanilla RNN's programs with each recurrence as one compiled op.

Where it can (float32, no visible GPU, not under XLA),
:func:`rnn.ops.vanilla.vanilla_sequence` runs each recurrence as one op of
the GRU's kernel library (``rnn/ops/gru/kernels.c``, whose third form, the
update gate closed and the reset gate open, is the vanilla RNN) instead of a
``tf.while_loop``: per step one ``[H, H] x [H, B]`` product split by hidden
unit over a few threads and the ``tanh``, without the executor's per-op
costs, which are most of a ``while_loop`` step this small. The input
projection of all steps is one ``[H, I+1] x [I+1, T*B]`` matmul before the
op, and the weight gradients the same matmuls as the ``while_loop``
programs' (:mod:`rnn.ops.vanilla.programs`).

Graphs hold the ``while_loop`` programs and TensorFlow's runtime swaps in
these on CPU (:mod:`rnn.ops._native`): whatever leaves the process loads
where rnn is not.
"""

from __future__ import annotations

import tensorflow as tf

from rnn.ops import _native, _programs
from rnn.ops._library import LIBRARIES
from rnn.ops._native import KernelSwitch
from rnn.ops.gru import native as gru_native

__all__ = ["native_kernels_available", "set_native_kernels"]

LIBRARY = LIBRARIES["gru"]
SWITCH = KernelSwitch()


def native_kernels_available() -> bool:
    """Whether the compiled recurrences (the GRU's library) are loaded here.

    >>> isinstance(native_kernels_available(), bool)
    True
    """
    return LIBRARY.load() is not None


def set_native_kernels(enabled: bool) -> bool:
    """Turns the vanilla RNN's compiled recurrences on or off; returns the
    previous setting (for functions traced afterwards and eager calls).

    >>> previous = set_native_kernels(False)
    >>> set_native_kernels(previous)
    False
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
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.vanilla.programs.forward` with the recurrence as one compiled op."""
    _, xa, mask = _programs.sequence_inputs(
        "vanilla_sequence", x, lengths, masked=masked, reverse=reverse
    )
    rm = None if reset is None else _programs.reset_mask(reset, mask, reverse)
    zx = _programs.project(_programs.projection_weights(kernel, bias), xa)
    hs = LIBRARY.load().rnn_vanilla_forward(
        zx,
        recurrent_kernel,
        tf.transpose(h0),
        _native.kernel_mask(mask),
        *gru_native.kernel_resets(rm, reset_state),
    )
    results = (_programs.outputs(hs, mask, reverse), tf.transpose(hs[-1], [1, 0]), xa, hs)
    return results if rm is None else (*results, rm)


def backward(
    d_out: tf.Tensor,
    d_h: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    lengths: tf.Tensor | None,
    xa: tf.Tensor,
    hs: tf.Tensor,
    rm: tf.Tensor | None = None,
    *,
    masked: bool,
    reverse: bool,
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.vanilla.programs.backward` with the reverse recurrence as one compiled op."""
    n = tf.shape(xa)[0]
    d_out, mask = _programs.output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    reset = tf.zeros([0], tf.bool) if rm is None else rm[:, 0, :]
    da, dh0, d_hr = LIBRARY.load().rnn_vanilla_backward(
        hs, d_out, tf.transpose(d_h), recurrent_kernel, _native.kernel_mask(mask), reset
    )  # da: [H, T, B]
    da = tf.reshape(da, [tf.shape(da)[0], -1])
    return (da, dh0) if rm is None else (da, dh0, d_hr)
