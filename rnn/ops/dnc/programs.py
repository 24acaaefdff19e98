"""The DNC's whole-sequence programs as TensorFlow ops.

The forward program runs :class:`rnn.DNC` 's step (an :class:`rnn.LSTM`
controller reading the inputs' projection and the last read words, then
:func:`rnn.dnc.access.parse_interface` and :func:`rnn.dnc.access.access_step`:
the same functions the core calls) in a ``tf.while_loop``; the backward
program runs it again under a ``tf.GradientTape``. Both take and return
exactly what the compiled ops of ``kernels.c`` do (:mod:`rnn.ops.dnc.native`),
so TensorFlow's runtime can swap those in on CPU; graphs hold these
(:mod:`rnn.ops._native`).

Arguments (``args``, in this order): ``zx [T, B, 4H]`` (the controller's
input projection with its bias), ``read_kernel [R W, 4H]``,
``recurrent_kernel [H, 4H]``, ``interface_kernel [H, K]``,
``interface_bias [K]``, then the state ``h, c [B, H]``, ``r [B, R, W]``,
``memory [B, N, W]``, ``read_weights [B, R, N]``, ``write_weights [B, 1,
N]``, ``link [B, 1, N, N]``, ``precedence [B, 1, N]``, ``usage [B, N]``;
``mask`` is ``[T, B]`` bool in processing order or None. A masked step
leaves the state as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn.dnc.access import AccessState, access_step, parse_interface

__all__ = ["backward", "forward"]


def _step(
    zx_t: tf.Tensor,
    weights: Sequence[tf.Tensor],
    probe_t: tf.Tensor | None,
    state: Sequence[tf.Tensor],
) -> list[tf.Tensor]:
    """One DNC step without the output layer: the next state's nine tensors."""
    # The controller's cell is rnn.LSTM's own (imported here: rnn.cores
    # imports rnn.ops).
    from rnn.cores import LSTMState, _lstm_fn

    read_kernel, recurrent_kernel, interface_kernel, interface_bias = weights
    h, c, r = state[:3]
    num_reads, word_size = r.shape[1], r.shape[2]
    reads = tf.reshape(r, [-1, num_reads * word_size])
    # zx_t (the input projection and the bias) goes in as _lstm_fn's bias.
    hidden, cell = _lstm_fn(reads, LSTMState(h, c), read_kernel, recurrent_kernel, zx_t)
    xi = tf.matmul(hidden, interface_kernel) + interface_bias
    if probe_t is not None:
        xi = xi + probe_t
    words, access = access_step(
        parse_interface(xi, word_size, num_reads, 1), AccessState.from_tensors(state[3:])
    )
    return [hidden, cell.cell, words, *access.as_tensors()]


def _run(
    args: Sequence[tf.Tensor], mask: tf.Tensor | None, probe: tf.Tensor | None
) -> list[tf.Tensor]:
    zx, weights, state = args[0], list(args[1:5]), list(args[5:])
    n = tf.shape(zx)[0]
    hs = tf.TensorArray(zx.dtype, size=n, element_shape=state[0].shape)
    rs = tf.TensorArray(zx.dtype, size=n, element_shape=state[2].shape)

    def body(
        t: tf.Tensor, hs: tf.TensorArray, rs: tf.TensorArray, *state: tf.Tensor
    ) -> tuple[Any, ...]:
        new = _step(zx[t], weights, None if probe is None else probe[t], state)
        if mask is not None:
            valid = mask[t]
            new = [
                tf.where(tf.reshape(valid, [-1] + [1] * (s.shape.rank - 1)), a, s)
                for a, s in zip(new, state)
            ]
        return (t + 1, hs.write(t, new[0]), rs.write(t, new[2]), *new)

    _, hs, rs, *final = tf.while_loop(
        lambda t, *_: t < n, body, (tf.constant(0), hs, rs, *state), parallel_iterations=1
    )
    return [hs.stack(), rs.stack(), *final]


def forward(args: Sequence[tf.Tensor], mask: tf.Tensor | None) -> tuple[tf.Tensor, ...]:
    """``(hs [T, B, H], rs [T, B, R, W], *final_state, tape)``: the
    controller outputs and read words after every step (the state's, carried
    through masked steps), the nine final-state tensors, and an empty
    ``[0]`` tape (the compiled forward op's holds what its backward op
    needs; :func:`backward` runs the forward again instead)."""
    return (*_run(args, mask, None), tf.zeros([0], args[0].dtype))


def backward(
    grads: Sequence[tf.Tensor],
    args: Sequence[tf.Tensor],
    mask: tf.Tensor | None,
    tape: tf.Tensor | None = None,
) -> tuple[tf.Tensor, ...]:
    """``(d_zx [T, B, 4H], d_interface [T, B, K], *d_initial_state)`` from
    the gradients of :func:`forward` 's first eleven results (``tape`` is
    not used: the forward runs again here). ``d_interface`` is
    the gradient of the interface vector before its squashings (a zero
    probe added to it here gives it); the weights' gradients are matmuls
    over all steps (:func:`rnn.ops.dnc.sequence.dnc_sequence`)."""
    zx, state = args[0], list(args[5:])
    shape = tf.shape(zx)
    probe = tf.zeros(tf.stack([shape[0], shape[1], args[3].shape[1]]), zx.dtype)
    with tf.GradientTape() as recorder:  # (not the ``tape`` argument)
        recorder.watch([zx, probe, *state])
        results = _run(args, mask, probe)
    return tuple(
        recorder.gradient(
            results,
            [zx, probe, *state],
            output_gradients=list(grads),
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
    )
