"""The GRU's whole-sequence programs in TensorFlow ops (the portable path).

:func:`rnn.ops.gru.gru_sequence` runs one of these, or the same program with
each recurrence as one compiled op (:mod:`rnn.ops.gru.native`). They compute
what stepping ``rnn.GRU`` once per time step computes (up to float
rounding), organised like the LSTM's programs (:mod:`rnn.ops.lstm.programs`):
transposed ``[features, batch]`` tiles (the gates are contiguous row blocks),
the input projection ``[kernel; bias]^T [x_t; 1]`` computed ahead of the
recurrence, per-step values handed to ``TensorArray`` s, and the weight
gradients as a few large matmuls over all ``T * B`` columns after the
reverse recurrence.

The two forms differ in the recurrence's critical path:

* ``reset_after=True`` (Keras' and cuDNN's form): one ``[3H, H] x [H, B]``
  matmul per step, ``n = tanh(x_n + r * (h U_n + b_n))``; backward one
  ``[H, 3H] x [3H, B]`` matmul.
* ``reset_after=False`` (Cho et al.'s form, Sonnet's): the candidate reads
  ``(r * h) U_n``, so each step is two dependent matmuls, ``[2H, H] x [H, B]``
  then ``[H, H] x [H, B]`` (and two backward), with the element-wise work
  between them on the critical path. That is why this form is slower.

Gates are in Keras' order (update ``z``, reset ``r``, candidate ``n``), and
``h_new = z * h + (1 - z) * n``.

**Resets** (a separate variant of each program, traced only when asked
for): with a ``[T, 1, B]`` processing-order mask ``rm`` (see
:func:`rnn.ops._programs.reset_mask`) and the transposed reset state
``hr [H, B]``, the state entering step ``k`` is ``where(rm[k], hr, h)``.
``hs`` stays the state after each step (the outputs); what the backward
pass needs of the state entering a step is recomputed from it, ``rm`` and
``hr`` (:func:`entering_states`), one element-wise select. The gradient
reaching a reset step's entering state goes to ``hr`` instead of back
through the step before.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

# The helpers that do not depend on the cell are the LSTM's.
from rnn.ops._programs import (
    columns,
    input_gradients,
    output_gradients,
    outputs,
    projection_weights,
    reset_mask,
    sequence_inputs,
)

__all__ = [
    "backward",
    "columns",
    "entering_states",
    "forward",
    "gradients",
    "inputs",
    "output_gradients",
    "outputs",
]

# Steps of the forward/backward loops that may run concurrently (only work
# that does not depend on the recurrence can actually overlap).
_PARALLEL_ITERATIONS = 10


def inputs(
    x: tf.Tensor, lengths: tf.Tensor | None, *, masked: bool, reverse: bool
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """The start of every forward program: ``(T, xa, mask)`` (see
    :func:`rnn.ops._programs.sequence_inputs`)."""
    return sequence_inputs("gru_sequence", x, lengths, masked=masked, reverse=reverse)


def input_weights(kernel: tf.Tensor, bias: tf.Tensor, reset_after: bool) -> tf.Tensor:
    """``[3H, I+1]``: the transposed kernel with the input-side bias column.

    With ``reset_after`` the recurrent bias of ``z`` and ``r`` is added to
    it (those pre-activations just sum both); the candidate's recurrent bias
    stays inside ``r * (...)`` (:func:`candidate_bias`).
    """
    # (Splits rather than slices: fewer ops to trace.)
    if reset_after:
        b0, b1 = tf.unstack(bias, num=2)
        b1_z, b1_r, b1_n = tf.split(b1, 3)
        folded = b0 + tf.concat([b1_z, b1_r, tf.zeros_like(b1_n)], axis=0)
    else:
        folded = bias
    return projection_weights(kernel, folded)


def candidate_bias(bias: tf.Tensor) -> tf.Tensor:
    """``[H, 1]``: the recurrent bias of the candidate (``reset_after`` only)."""
    return tf.expand_dims(tf.split(tf.unstack(bias, num=2)[1], 3)[2], 1)


def entering_states(hs: tf.Tensor, rm: tf.Tensor | None, hr: tf.Tensor | None) -> tf.Tensor:
    """``[T, H, B]``: the state entering every step, from ``hs [T + 1, H, B]``
    (the state after each step), the reset mask ``rm [T, 1, B]`` and the
    reset state ``hr [B, H]``; ``hs[:-1]`` without resets."""
    if rm is None:
        return hs[:-1]
    return tf.where(rm, tf.transpose(hr)[tf.newaxis], hs[:-1])


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
    """The forward program: outputs, final state and what backward needs.

    Returns ``(outputs [T, B, H], h [B, H], xa, hs, ss)`` where, in
    processing order, ``xa`` is ``[T, B, I+1]``, ``hs`` is ``[T + 1, H, B]``
    (the initial state and the state after every step) and ``ss`` each step's
    gates: ``[T, 3H, B]`` rows ``(z, r, n)``, with ``reset_after``
    ``[T, 4H, B]`` rows ``(z, r, n, h U_n + b_n)``. With ``reset`` (``[T,
    B]`` bool in input order) and ``reset_state [B, H]``, a sixth result:
    the ``[T, 1, B]`` reset mask in processing order.
    """
    dtype = x.dtype
    n, xa, mask = inputs(x, lengths, masked=masked, reverse=reverse)
    rm = None if reset is None else reset_mask(reset, mask, reverse)
    hr = None if reset_state is None else tf.transpose(reset_state)
    wx = input_weights(kernel, bias, reset_after)  # [3H, I+1]
    wh = tf.transpose(recurrent_kernel)  # [3H, H]
    h0t = tf.transpose(h0)
    s_acc = tf.TensorArray(dtype, size=n)
    h_acc = tf.TensorArray(dtype, size=n + 1).write(0, h0t)
    # Gate blocks are taken with tf.split (not slices with computed bounds):
    # XLA infers the loop's TensorList shapes from them.
    if reset_after:
        bn = candidate_bias(bias)
    else:
        wh_z, wh_r, wh_n = tf.split(wh, 3)
        wx_z, wx_r, wx_n = tf.split(wx, 3)
        wh_zr, wx_zr = tf.concat([wh_z, wh_r], axis=0), tf.concat([wx_z, wx_r], axis=0)

    def body(k: tf.Tensor, h: tf.Tensor, s_acc: Any, h_acc: Any) -> Any:
        if rm is not None:  # (resets)
            h = tf.where(tf.gather(rm, k), hr, h)
        # wx @ xa[k]^T only depends on k, so it runs ahead of the recurrence.
        if reset_after:
            x_z, x_r, x_n = tf.split(tf.matmul(wx, tf.gather(xa, k), transpose_b=True), 3, axis=0)
            h_z, h_r, hn = tf.split(tf.matmul(wh, h), 3, axis=0)
            z = tf.sigmoid(x_z + h_z)
            r = tf.sigmoid(x_r + h_r)
            hn = hn + bn
            cand = tf.tanh(x_n + r * hn)
            s = tf.concat([z, r, cand, hn], axis=0)
        else:
            x_zr = tf.matmul(wx_zr, tf.gather(xa, k), transpose_b=True)
            x_n = tf.matmul(wx_n, tf.gather(xa, k), transpose_b=True)
            z, r = tf.split(tf.sigmoid(x_zr + tf.matmul(wh_zr, h)), 2, axis=0)
            cand = tf.tanh(x_n + tf.matmul(wh_n, r * h))
            s = tf.concat([z, r, cand], axis=0)
        h_new = cand + z * (h - cand)
        if mask is not None:  # (masked)
            h_new = tf.where(tf.gather(mask, k), h_new, h)
        return k + 1, h_new, s_acc.write(k, s), h_acc.write(k + 1, h_new)

    _, h, s_acc, h_acc = tf.while_loop(
        lambda k, *_: k < n,
        body,
        (tf.constant(0), h0t, s_acc, h_acc),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    hs = h_acc.stack()  # [T+1, H, B]
    out = outputs(hs, mask, reverse)
    # Stacked (not TensorList handles) so that the gradient function only
    # captures plain tensors, which SavedModel can serialise.
    results = (out, tf.transpose(h), xa, hs, s_acc.stack())
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
    """The backward program: the reverse recurrence, ``(da [3H or 4H, T * B], dh0)``
    (:func:`gradients` makes the five gradients of them), and with resets
    (``reset_state [B, H]`` and the forward's reset mask ``rm``) a third
    result, the gradient of the reset state, ``[H, B]``.

    The reverse recurrence hands each step's pre-activation gradients to a
    ``TensorArray``: rows ``(z, r, n)`` for the input side, and with
    ``reset_after`` a fourth block, the gradient of ``h U_n + b_n``
    (``r`` times the candidate's).
    """
    dtype = xa.dtype
    n = tf.shape(xa)[0]
    unit = tf.constant(1, dtype)
    zero = tf.zeros([], dtype)
    d_out, mask = output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    da_acc = tf.TensorArray(dtype, size=n)
    if not reset_after:
        rk_z, rk_r, rk_n = tf.split(recurrent_kernel, 3, axis=1)
        rk_zr = tf.concat([rk_z, rk_r], axis=1)
    hr = None if rm is None else tf.transpose(reset_state)

    def body(k: tf.Tensor, dh: tf.Tensor, da_acc: Any, *d_hr: tf.Tensor) -> Any:
        k = k - 1
        # Factors that do not depend on the reverse recurrence.
        s = tf.gather(ss, k)
        h = tf.gather(hs, k)  # the state entering step k
        if rm is not None:  # (resets)
            r_k = tf.gather(rm, k)
            h = tf.where(r_k, hr, h)
        if reset_after:
            z, r, cand, hn = tf.split(s, 4, axis=0)
        else:
            z, r, cand = tf.split(s, 3, axis=0)
        # Through h_new = z * h + (1 - z) * n:
        p_n = (unit - z) * (unit - cand * cand)
        p_z = (h - cand) * z * (unit - z)
        p_r = r * (unit - r)
        keep = z
        if mask is not None:  # (masked): the step leaves h unchanged
            m = tf.gather(mask, k)
            p_n = tf.where(m, p_n, zero)
            p_z = tf.where(m, p_z, zero)
            keep = tf.where(m, z, unit)
        dh = dh + tf.gather(d_out, k)
        da_n = dh * p_n
        da_z = dh * p_z
        if reset_after:
            da_r = da_n * hn * p_r
            dhn = da_n * r
            da = tf.concat([da_z, da_r, da_n, dhn], axis=0)
            dh_prev = dh * keep + tf.matmul(recurrent_kernel, tf.concat([da_z, da_r, dhn], axis=0))
        else:
            dq = tf.matmul(rk_n, da_n)  # q = r * h
            da_r = dq * h * p_r
            dzr = tf.concat([da_z, da_r], axis=0)
            da = tf.concat([dzr, da_n], axis=0)
            dh_prev = dh * keep + dq * r + tf.matmul(rk_zr, dzr)
        if rm is not None:  # (resets): a reset step's entering state is hr
            d_hr = (d_hr[0] + tf.where(r_k, dh_prev, zero),)
            dh_prev = tf.where(r_k, zero, dh_prev)
        return (k, dh_prev, da_acc.write(k, da), *d_hr)

    d_hr0 = () if rm is None else (tf.zeros_like(hr),)
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
    ss: tf.Tensor,
    d_hr: tf.Tensor | None = None,
    reset_state: tf.Tensor | None = None,
    rm: tf.Tensor | None = None,
    *,
    reverse: bool,
    reset_after: bool,
) -> tuple[tf.Tensor, ...]:
    """The five gradients from the pre-activation gradients ``da`` of all
    steps, ``[3H or 4H, T * B]`` (column ``t * B + b``: step ``t`` of example
    ``b``; rows as :func:`backward` writes them); with resets (the backward
    program's ``d_hr [H, B]``, ``reset_state`` and the reset mask ``rm``)
    the reset state's gradient sixth.

    The weight gradients are a few large matmuls over all ``T * B``
    columns at once, the input gradient one more.
    """
    hidden = tf.shape(hs)[1]
    dx_side = da[: 3 * hidden]
    d_x, d_kernel_bias = input_gradients(dx_side, kernel, xa, reverse)  # [T, B, I], [I+1, 3H]
    entering = entering_states(hs, rm, reset_state)  # [T, H, B]
    h_prev = columns(entering)  # [H, TB]
    if reset_after:
        dh_side = tf.concat([da[: 2 * hidden], da[3 * hidden :]], axis=0)
        d_rk = tf.matmul(h_prev, dh_side, transpose_b=True)  # [H, 3H]
        d_bias = tf.stack([d_kernel_bias[-1], tf.reduce_sum(dh_side, axis=1)])
    else:
        # The candidate's recurrent operand is q = r * h_prev.
        q = columns(ss[:, hidden : 2 * hidden] * entering)
        d_rk = tf.concat(
            [
                tf.matmul(h_prev, da[: 2 * hidden], transpose_b=True),
                tf.matmul(q, da[2 * hidden :], transpose_b=True),
            ],
            axis=1,
        )
        d_bias = d_kernel_bias[-1]
    grads = (d_x, tf.transpose(dh0), d_kernel_bias[:-1], d_rk, d_bias)
    return grads if d_hr is None else (*grads, tf.transpose(d_hr))
