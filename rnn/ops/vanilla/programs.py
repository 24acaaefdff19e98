"""The vanilla RNN's whole-sequence programs in TensorFlow ops.

They compute what stepping ``rnn.VanillaRNN`` (``h = tanh(x_t W + h U +
b)``) once per time step computes, up to float rounding, organised like the
LSTM's programs (:mod:`rnn.ops.lstm.programs`): transposed ``[H, B]`` tiles,
the input projection ``[W; b]^T [x_t; 1]`` computed ahead of the recurrence
(off its critical path), each step's state handed to a ``TensorArray``, and
after the reverse recurrence the weight gradients as two large matmuls over
all ``T * B`` columns instead of ``T`` small ones inside the loop.

With resets (a separate variant, as for the GRU: :mod:`rnn.ops.gru.programs`)
the state entering step ``k`` is ``where(rm[k], hr, h)``; ``hs`` stays the
state after each step, and the weight gradient recomputes the entering
states from it.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from rnn.ops._programs import (
    columns,
    input_gradients,
    output_gradients,
    outputs,
    project,
    projection_weights,
    reset_mask,
    sequence_inputs,
)
from rnn.ops.gru.programs import entering_states

__all__ = ["backward", "forward", "gradients"]

# Steps of the loops that may run concurrently (only the input projection,
# which does not depend on the recurrence, actually overlaps).
_PARALLEL_ITERATIONS = 10


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
    """The forward program: ``(outputs [T, B, H], h [B, H], xa, hs)``.

    In processing order ``xa`` is ``[T, B, I+1]`` and ``hs`` ``[T + 1, H,
    B]``, the initial state and the state after every step. With ``reset``
    (``[T, B]`` bool, input order) and ``reset_state [B, H]`` a fifth
    result, the ``[T, 1, B]`` reset mask in processing order.
    """
    n, xa, mask = sequence_inputs("vanilla_sequence", x, lengths, masked=masked, reverse=reverse)
    rm = None if reset is None else reset_mask(reset, mask, reverse)
    hr = None if reset_state is None else tf.transpose(reset_state)
    wx = projection_weights(kernel, bias)  # [H, I+1]
    wh = tf.transpose(recurrent_kernel)  # [H, H]
    h0t = tf.transpose(h0)
    h_acc = tf.TensorArray(x.dtype, size=n + 1).write(0, h0t)
    # The input projection of every step as one matmul: [T, H, B].
    zx = tf.transpose(project(wx, xa), [1, 0, 2])

    def body(k: tf.Tensor, h: tf.Tensor, h_acc: Any) -> Any:
        if rm is not None:  # (resets)
            h = tf.where(tf.gather(rm, k), hr, h)
        h_new = tf.tanh(tf.gather(zx, k) + tf.matmul(wh, h))
        if mask is not None:  # (masked): the step leaves h unchanged
            h_new = tf.where(tf.gather(mask, k), h_new, h)
        return k + 1, h_new, h_acc.write(k + 1, h_new)

    _, h, h_acc = tf.while_loop(
        lambda k, *_: k < n,
        body,
        (tf.constant(0), h0t, h_acc),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    hs = h_acc.stack()
    results = (outputs(hs, mask, reverse), tf.transpose(h), xa, hs)
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
    """The backward program: the reverse recurrence, ``(da [H, T * B], dh0)``
    (:func:`gradients` makes the five gradients of them); with the forward's
    reset mask ``rm`` a third result, the ``[H, B]`` gradient of the reset
    state."""
    dtype = xa.dtype
    n = tf.shape(xa)[0]
    unit = tf.constant(1, dtype)
    zero = tf.zeros([], dtype)
    d_out, mask = output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    da_acc = tf.TensorArray(dtype, size=n)
    slopes = unit - tf.square(hs[1:])  # tanh' of every step, [T, H, B]

    def body(k: tf.Tensor, dh: tf.Tensor, da_acc: Any, *d_hr: tf.Tensor) -> Any:
        k = k - 1
        slope = tf.gather(slopes, k)
        dh = dh + tf.gather(d_out, k)
        if mask is not None:  # (masked): the step passed h through
            m = tf.gather(mask, k)
            da = tf.where(m, dh * slope, zero)
            dh_prev = tf.where(m, zero, dh) + tf.matmul(recurrent_kernel, da)
        else:
            da = dh * slope
            dh_prev = tf.matmul(recurrent_kernel, da)
        if rm is not None:  # (resets): a reset step's entering state is hr
            r_k = tf.gather(rm, k)
            d_hr = (d_hr[0] + tf.where(r_k, dh_prev, zero),)
            dh_prev = tf.where(r_k, zero, dh_prev)
        return (k, dh_prev, da_acc.write(k, da), *d_hr)

    d_hr0 = () if rm is None else (tf.zeros_like(tf.transpose(d_h)),)
    _, dh0, da_acc, *d_hr = tf.while_loop(
        lambda k, *_: k > 0,
        body,
        (n, tf.transpose(d_h), da_acc, *d_hr0),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    return (columns(da_acc.stack()), dh0, *d_hr)  # gradients() turns these into the five


def gradients(
    da: tf.Tensor,
    dh0: tf.Tensor,
    kernel: tf.Tensor,
    xa: tf.Tensor,
    hs: tf.Tensor,
    d_hr: tf.Tensor | None = None,
    reset_state: tf.Tensor | None = None,
    rm: tf.Tensor | None = None,
    *,
    reverse: bool,
) -> tuple[tf.Tensor, ...]:
    """The five gradients from the pre-activation gradients ``da [H, T * B]``
    of all steps (column ``t * B + b``: step ``t`` of example ``b``); with
    resets (the backward program's ``d_hr``, ``reset_state`` and the reset
    mask ``rm``) the reset state's sixth."""
    d_x, d_kernel_bias = input_gradients(da, kernel, xa, reverse)  # [T, B, I], [I+1, H]
    h_prev = columns(entering_states(hs, rm, reset_state))  # [H, TB]
    d_rk = tf.matmul(h_prev, da, transpose_b=True)  # [H, H]
    grads = (d_x, tf.transpose(dh0), d_kernel_bias[:-1], d_rk, d_kernel_bias[-1])
    return grads if d_hr is None else (*grads, tf.transpose(d_hr))
