"""Pieces of the whole-sequence programs that do not depend on the cell.

Masks in processing order, outputs back in input order, output gradients
into processing order, and the ``[F, T, B] -> [F, T*B]`` columns the
weight-gradient matmuls take: shared by the LSTM's and the GRU's programs
(:mod:`rnn.ops.lstm.programs`, :mod:`rnn.ops.gru.programs`).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["columns", "output_gradients", "outputs", "time_mask"]


def time_mask(lengths: tf.Tensor, n: tf.Tensor, reverse: bool) -> tf.Tensor:
    """``[T, 1, B]`` bool in processing order: True where ``t < lengths[b]``."""
    t = tf.range(n)
    if reverse:
        t = n - 1 - t
    return t[:, tf.newaxis, tf.newaxis] < lengths[tf.newaxis, tf.newaxis, :]


def outputs(hs: tf.Tensor, mask: tf.Tensor | None, reverse: bool) -> tf.Tensor:
    """``[T, B, H]`` outputs in input time order from ``hs [T+1, H, B]``."""
    out = hs[1:]
    if mask is not None:
        out = tf.where(mask, out, tf.zeros([], hs.dtype))
    if reverse:
        out = tf.reverse(out, axis=[0])
    return tf.transpose(out, [0, 2, 1])


def output_gradients(
    d_out: tf.Tensor, lengths: tf.Tensor | None, n: tf.Tensor, *, masked: bool, reverse: bool
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """The start of both backward programs: ``(d_out [T, H, B], mask)`` in
    processing order, zero where masked (``mask`` as in :func:`inputs`)."""
    if reverse:
        d_out = tf.reverse(d_out, axis=[0])
    d_out = tf.transpose(d_out, [0, 2, 1])
    mask = None
    if masked:
        mask = time_mask(lengths, n, reverse)
        d_out = tf.where(mask, d_out, tf.zeros([], d_out.dtype))
    return d_out, mask


def columns(stacked: tf.Tensor) -> tf.Tensor:
    """``[T, F, B] -> [F, T * B]``."""
    shape = tf.shape(stacked)
    return tf.reshape(tf.transpose(stacked, [1, 0, 2]), [-1, shape[0] * shape[2]])
