"""The LSTM's whole-sequence programs in TensorFlow ops (the portable path).

:func:`rnn.ops.lstm.lstm_sequence` runs one of these, or the same program
with each recurrence as one compiled op (:mod:`rnn.ops.lstm.native`). They
compute what stepping the cell once per time step computes (up to float
rounding), organised for speed on CPU:

* The recurrences work on transposed ``[features, batch]`` tiles, so the four
  gates are contiguous row blocks and splitting them copies nothing.
* Forward: a ``tf.while_loop`` whose critical path per step is one
  ``[4H, H] x [H, B]`` matmul, one ``tanh`` over all four gates (the sigmoid
  gates use ``sigmoid(z) = (1 + tanh(z / 2)) / 2``, their weights halved
  once per call) and a few ``[H, B]`` element-wise ops. The input projection
  ``[kernel; bias]^T [x_t; 1]`` does not depend on the recurrence, so the
  loop computes it ahead, off the critical path (``parallel_iterations``).
  Each step hands its gate activations and states to ``TensorList`` s by
  reference (stacked once at the end) for the backward pass.
* Backward: the reverse recurrence is one ``[H, 4H] x [4H, B]`` matmul and
  a few element-wise ops per step; the activation derivatives it needs are
  again computed off its critical path. Then the weight gradients are two
  large matmuls over all ``T * B`` columns (``dZ [X; 1]^T`` gives kernel and
  bias, ``dZ H_prev^T`` the recurrent kernel) and the input gradient one
  more, instead of ``T`` small weight-gradient matmuls and accumulations
  inside the loop as autodiff of a stepped cell does. Inside
  ``tf.function`` TensorFlow drops the input gradient when nothing uses it.

Measured alternatives (bench/rnn_bench.py and notes in the report): one big
``x @ kernel`` matmul before the loop (more memory traffic, a longer loop
step for wide inputs), folding ``x_t`` into the recurrent matmul (a longer
critical path), per-step transposes (slow small oneDNN ops) and
XLA-compiled loops (recompiled for every new ``T``) were all slower or no
faster here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import tensorflow as tf

from rnn.ops._programs import (
    columns,
    input_gradients,
    output_gradients,
    outputs,
    projection_weights,
    reset_mask,
    sequence_inputs,
)

# Steps of the forward/backward loops that may run concurrently (only work
# that does not depend on the recurrence can actually overlap).
_PARALLEL_ITERATIONS = 10


class Resets(NamedTuple):
    """The forward programs' reset arguments: the ``[T, B]`` bool mask in
    input order (see :func:`rnn.ops._programs.reset_mask`) and the ``[B, H]``
    state put in where it is true."""

    reset: tf.Tensor
    h: tf.Tensor
    c: tf.Tensor


def inputs(
    x: tf.Tensor, lengths: tf.Tensor | None, *, masked: bool, reverse: bool
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """The start of both forward programs: ``(T, xa, mask)`` (see
    :func:`rnn.ops._programs.sequence_inputs`)."""
    return sequence_inputs("lstm_sequence", x, lengths, masked=masked, reverse=reverse)


def forward(
    x: tf.Tensor,
    h0: tf.Tensor,
    c0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    lengths: tf.Tensor | None,
    resets: Resets | None = None,
    *,
    masked: bool,
    reverse: bool,
    all_states: bool = False,
) -> tuple[tf.Tensor, ...]:
    """The forward program: outputs, final state and what backward needs.

    Returns ``(outputs [T, B, H], h [B, H], c [B, H], xa, hs, ss, cs)``
    where, in processing order, ``xa`` is ``[T, B, I+1]`` (inputs with a row
    of ones), ``hs`` and ``cs`` are ``[T + 1, H, B]`` (the initial hidden and
    cell state and the states after every step) and ``ss`` is ``[T, 4H, B]``,
    each step's gate sigmoids. With ``all_states`` the cell states after
    every step ``[T, B, H]`` (input order, zeros past the length) follow the
    final state; with ``resets`` the ``[T, 1, B]`` processing-order reset
    mask comes last.
    """
    dtype = x.dtype
    hidden = tf.shape(recurrent_kernel)[0]
    n, xa, mask = inputs(x, lengths, masked=masked, reverse=reverse)
    r = None if resets is None else reset_mask(resets.reset, mask, reverse)
    # One tanh covers all four gates: sigmoid(z) = (1 + tanh(z / 2)) / 2, so
    # the sigmoid gates' weights are halved once per call.
    half = tf.constant(0.5, dtype)
    halves = tf.fill([hidden], half)
    scale = tf.concat([halves, halves, halves + halves, halves], axis=0)
    wx = projection_weights(kernel * scale, bias * scale)  # [4H, I+1]
    wh = tf.transpose(recurrent_kernel * scale)  # [4H, H]
    h0t, c0t = tf.transpose(h0), tf.transpose(c0)
    s_acc = tf.TensorArray(dtype, size=n)
    c_acc = tf.TensorArray(dtype, size=n + 1).write(0, c0t)
    h_acc = tf.TensorArray(dtype, size=n + 1).write(0, h0t)

    if resets is not None:
        hr, cr = tf.transpose(resets.h), tf.transpose(resets.c)

    def body(k: tf.Tensor, h: tf.Tensor, c: tf.Tensor, s_acc: Any, c_acc: Any, h_acc: Any) -> Any:
        if r is not None:  # (resets) the state entering step k
            r_k = tf.gather(r, k)
            h = tf.where(r_k, hr, h)
            c = tf.where(r_k, cr, c)
        # wx @ xa[k]^T (the input projection and bias, [4H, I+1] x [I+1, B])
        # only depends on k, so it runs ahead of the recurrence.
        u = tf.tanh(tf.matmul(wx, tf.gather(xa, k), transpose_b=True) + tf.matmul(wh, h))
        s = u * half + half  # gate sigmoids; rows 2H:3H hold (1 + g) / 2
        i, f, _, o = tf.split(s, 4, axis=0)
        g = tf.split(u, 4, axis=0)[2]
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        if mask is not None:  # (masked)
            m = tf.gather(mask, k)
            c_new = tf.where(m, c_new, c)
            h_new = tf.where(m, h_new, h)
        return (
            k + 1,
            h_new,
            c_new,
            s_acc.write(k, s),
            c_acc.write(k + 1, c_new),
            h_acc.write(k + 1, h_new),
        )

    _, h, c, s_acc, c_acc, h_acc = tf.while_loop(
        lambda k, *_: k < n,
        body,
        (tf.constant(0), h0t, c0t, s_acc, c_acc, h_acc),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    hs, cs = h_acc.stack(), c_acc.stack()  # [T+1, H, B]
    # Stacked (not TensorList handles) so that the gradient function only
    # captures plain tensors, which SavedModel can serialise.
    return finish_forward(hs, s_acc.stack(), cs, xa, mask, r, reverse, all_states)


def finish_forward(
    hs: tf.Tensor,
    ss: tf.Tensor,
    cs: tf.Tensor,
    xa: tf.Tensor,
    mask: tf.Tensor | None,
    r: tf.Tensor | None,
    reverse: bool,
    all_states: bool,
) -> tuple[tf.Tensor, ...]:
    """The forward program's results from the recurrence's (both forms)."""
    results = [outputs(hs, mask, reverse), tf.transpose(hs[-1]), tf.transpose(cs[-1])]
    if all_states:
        results.append(outputs(cs, mask, reverse))
    results += [xa, hs, ss, cs]
    if r is not None:
        results.append(r)
    return tuple(results)


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
    """The backward program: the reverse recurrence, ``(dz [4H, T * B], dh0, dc0)``
    (:func:`gradients` makes the six gradients of them).

    ``d_cs`` (``[T, B, H]``, input order) are the gradients of the cell
    states after every step (``all_states``); with the processing-order
    reset mask ``r`` and the ``[B, H]`` cell state ``c_reset`` the
    gradients of the reset state ``(d_h_reset, d_c_reset)`` follow.
    """
    dtype = xa.dtype
    n = tf.shape(xa)[0]
    unit = tf.constant(1, dtype)
    two = tf.constant(2, dtype)
    four = tf.constant(4, dtype)
    zero = tf.zeros([], dtype)
    d_out, mask = output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    if d_cs is not None:
        d_cs = output_gradients(d_cs, lengths, n, masked=masked, reverse=reverse)[0]
    dz_acc = tf.TensorArray(dtype, size=n)
    # With resets the loop also carries the reset state's gradients (h, c).
    d_reset: tuple[tf.Tensor, ...] = ()
    if r is not None:
        cr = tf.transpose(c_reset)
        d_reset = (tf.zeros_like(cr), tf.zeros_like(cr))

    def body(k: tf.Tensor, dh: tf.Tensor, dc: tf.Tensor, dz_acc: Any, *d_reset: tf.Tensor) -> Any:
        k = k - 1
        # Factors that do not depend on the reverse recurrence.
        s = tf.gather(ss, k)
        c_prev = tf.gather(cs, k)
        if r is not None:  # (resets) step k was entered from the reset state
            r_k = tf.gather(r, k)
            c_prev = tf.where(r_k, cr, c_prev)
        tc = tf.tanh(cs[k + 1])
        i, f, g, o = tf.split(s, 4, axis=0)
        g = g * two - unit  # s holds (1 + g) / 2 in the candidate rows
        # Through c = f * c_prev + i * g and h = o * tanh(c):
        # dc += dh * a and dz = [dc, dc, dc, dh] * p (z: gate pre-activations;
        # for the candidate rows s (1 - s) = (1 - g^2) / 4).
        a = o * (unit - tc * tc)
        p = s * (unit - s) * tf.concat([g, c_prev, four * i, tc], axis=0)
        if mask is not None:  # (masked)
            m = tf.gather(mask, k)
            a = tf.where(m, a, zero)
            p = tf.where(m, p, zero)
            f = tf.where(m, f, unit)
        dh = dh + tf.gather(d_out, k)
        if d_cs is not None:  # (all_states)
            dc = dc + tf.gather(d_cs, k)
        dc = dc + dh * a
        dz = tf.concat([dc, dc, dc, dh], axis=0) * p
        dh_prev = tf.matmul(recurrent_kernel, dz)
        if masked:
            dh_prev = dh_prev + tf.where(m, zero, dh)
        dc_prev = dc * f
        if r is not None:  # (resets) what entered step k came from the reset state
            d_hr, d_cr = d_reset
            d_reset = (d_hr + tf.where(r_k, dh_prev, zero), d_cr + tf.where(r_k, dc_prev, zero))
            dh_prev = tf.where(r_k, zero, dh_prev)
            dc_prev = tf.where(r_k, zero, dc_prev)
        return (k, dh_prev, dc_prev, dz_acc.write(k, dz), *d_reset)

    _, dh0, dc0, dz_acc, *d_reset_list = tf.while_loop(
        lambda k, *_: k > 0,
        body,
        (n, tf.transpose(d_h), tf.transpose(d_c), dz_acc, *d_reset),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    # gradients() turns these into the six (eight with resets)
    return (columns(dz_acc.stack()), dh0, dc0, *d_reset_list)


def gradients(
    recurrence: Sequence[tf.Tensor],
    kernel: tf.Tensor,
    xa: tf.Tensor,
    hs: tf.Tensor,
    r: tf.Tensor | None,
    h_reset: tf.Tensor | None,
    *,
    reverse: bool,
) -> tuple[tf.Tensor, ...]:
    """The six gradients (eight with resets) from the backward program's
    results: the gate gradients ``dz [4H, T * B]`` of all steps (column
    ``t * B + b``: step ``t`` of example ``b``), ``dh0``, ``dc0`` and, with
    resets (mask ``r``, hidden reset state ``h_reset [B, H]``), the reset
    state's two gradients.

    The weight gradients are two large matmuls over all ``T * B`` columns at
    once, the input gradient one more.
    """
    dz, dh0, dc0 = recurrence[:3]
    h_in = hs[:-1]  # the hidden state entering each step
    if r is not None:
        h_in = tf.where(r, tf.transpose(h_reset)[tf.newaxis], h_in)
    d_x, d_kernel_bias = input_gradients(dz, kernel, xa, reverse)  # [T, B, I], [I+1, 4H]
    d_rk = tf.matmul(columns(h_in), dz, transpose_b=True)  # [H, 4H]
    grads = [d_x, tf.transpose(dh0), tf.transpose(dc0), d_kernel_bias[:-1], d_rk, d_kernel_bias[-1]]
    grads += [tf.transpose(g) for g in recurrence[3:]]
    return tuple(grads)
