"""Pieces of the whole-sequence programs that do not depend on the cell.

Masks in processing order, outputs back in input order, output gradients
into processing order, and the ``[F, T, B] -> [F, T*B]`` columns the
weight-gradient matmuls take: shared by the LSTM's and the GRU's programs
(:mod:`rnn.ops.lstm.programs`, :mod:`rnn.ops.gru.programs`); and what their
public functions (``lstm_sequence``, ``gru_sequence``) share: the static
shape checks and the refusal of second-order gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

__all__ = [
    "check_dim",
    "columns",
    "first_order_only",
    "output_gradients",
    "outputs",
    "static_dim",
    "time_mask",
]


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


def static_dim(shape: tf.TensorShape, axis: int) -> int | None:
    """``shape[axis]`` where the rank is known, else None."""
    if shape.rank is None:
        return None
    return shape[axis]


def check_dim(fn_name: str, what: str, got: int | None, want: int | None, meaning: str) -> None:
    """ValueError naming ``fn_name`` where two known sizes differ."""
    if got is not None and want is not None and got != want:
        raise ValueError(f"{fn_name}: {what} should be {want} ({meaning}), got {got}")


def first_order_only(fn_name: str) -> Callable[..., Any]:
    """An identity on gradients that refuses to be differentiated again."""

    @tf.custom_gradient
    def identity(*grads: tf.Tensor) -> Any:
        def second_order(*unused: Any) -> Any:
            raise NotImplementedError(
                f"{fn_name} supports first-order gradients only: its backward "
                "pass is hand-written and not differentiable. For higher-order "
                "gradients step the core yourself (call it once per step in a "
                "loop) instead of using the whole-sequence fast path."
            )

        return grads, second_order

    return identity
