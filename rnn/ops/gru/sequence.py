"""``gru_sequence``: a whole-sequence GRU with a hand-written backward pass.

The GRU's fast path (``rnn.GRU`` uses it when the unrollers ask for a whole
sequence), in both of its forms. Each call runs one forward program, and its
gradient one backward program: TensorFlow-ops programs
(:mod:`rnn.ops.gru.programs`) or the same with each recurrence as one
compiled op (:mod:`rnn.ops.gru.native`, where it can). As for the LSTM
(:mod:`rnn.ops.lstm.sequence`) the programs are ``tf.function`` s traced
once per process for each dtype and variant (form, masked or not, reversed
or not, with resets or not) with unknown ``T`` and batch size; graphs hold
the TensorFlow-ops programs and on CPU the runtime swaps in the compiled
ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn import _utils
from rnn.ops import _native, _programs
from rnn.ops._programs import static_dim
from rnn.ops.gru import native as native_ops
from rnn.ops.gru import programs

__all__ = ["gru_sequence"]


def _trace(variant: tuple[Any, ...], which: str, native: bool) -> tuple[Any, list[Any]]:
    """One program of one variant (``(dtype, reset_after, masked, reverse,
    resets)``) and its signature.

    The arguments are the tensors (with resets the reset state after the
    weights), then the saved ones (backward; with resets the reset mask in
    processing order last), then the lengths (masked) and the ``[T, B]``
    reset argument (resets; only the forward program reads it).
    """
    dtype, reset_after, masked, reverse, resets = variant
    t3 = tf.TensorSpec([None, None, None], dtype)
    t2 = tf.TensorSpec([None, None], dtype)
    bias = tf.TensorSpec([2, None] if reset_after else [None], dtype)
    tail = [tf.TensorSpec([None], tf.int32)] if masked else []
    if resets:
        tail.append(tf.TensorSpec([None, None], tf.bool))
    flags: dict[str, bool] = dict(masked=masked, reverse=reverse, reset_after=reset_after)

    def split_tail(rest: Sequence[Any]) -> tuple[Any, Any]:
        return (rest[0] if masked else None), (rest[-1] if resets else None)

    if which == "fwd":

        def fwd(x: Any, h0: Any, kernel: Any, rk: Any, b: Any, *rest: Any) -> Any:
            program = native_ops.forward if native else programs.forward
            reset_state, rest = (rest[0], rest[1:]) if resets else (None, rest)
            lengths, reset = split_tail(rest)
            return program(x, h0, kernel, rk, b, lengths, reset, reset_state, **flags)

        return fwd, [t3, t2, t2, t2, bias, *[t2] * resets, *tail]

    def bwd(d_out: Any, d_h: Any, kernel: Any, rk: Any, *rest: Any) -> Any:
        program = native_ops.backward if native else programs.backward
        reset_state, rest = (rest[0], rest[1:]) if resets else (None, rest)
        xa, hs, s, rest = *rest[:3], rest[3:]
        rm, rest = (rest[0], rest[1:]) if resets else (None, rest)
        lengths, _ = split_tail(rest)
        return program(d_out, d_h, kernel, rk, lengths, xa, hs, s, reset_state, rm, **flags)

    saved = [t3, t3, t3] + [tf.TensorSpec([None, 1, None], tf.bool)] * resets  # xa, hs, ss, rm
    return bwd, [t3, t2, t2, t2, *[t2] * resets, *saved, *tail]


_HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = _native.Programs(
    "gru",
    native_ops.LIBRARY,
    [os.path.join(_HERE, f) for f in ("programs.py", "native.py", "kernels.c")],
    _trace,
)


def _check_dim(what: str, got: int | None, want: int | None, meaning: str) -> None:
    _programs.check_dim("gru_sequence", what, got, want, meaning)


@tf.autograph.experimental.do_not_convert
def gru_sequence(
    inputs: tf.Tensor,
    h0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    sequence_length: tf.Tensor | None = None,
    reverse: bool = False,
    reset_after: bool = False,
    reset: tf.Tensor | None = None,
    reset_state: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs a GRU over a whole time-major sequence; returns outputs and state.

    The cell is ``rnn.GRU`` (and ``keras.layers.GRU``) with Keras' weight
    layout, gates in the order update ``z``, reset ``r``, candidate ``n``:
    ``z = sigmoid(x_t W_z + h U_z + b_z)``, ``r`` likewise, and
    ``h = z * h + (1 - z) * n`` where

    * ``reset_after=False`` (Cho et al. 2014, Sonnet's GRU):
      ``n = tanh(x_t W_n + (r * h) U_n + b_n)``, ``bias`` is ``[3H]``;
    * ``reset_after=True`` (Keras' default, cuDNN's):
      ``n = tanh(x_t W_n + b_n + r * (h U_n + b'_n))``, ``bias`` is
      ``[2, 3H]`` (input bias, recurrent bias).

    The ``reset_after=True`` form is the faster one: each step is one
    recurrent matmul, where ``reset_after=False`` needs two dependent ones
    (the candidate's reads ``r * h``, known only after the first).

    Args:
      inputs: ``[T, B, I]`` time-major inputs (``T`` and ``B`` may be unknown
        inside ``tf.function``; ``T`` must be at least 1). float16, bfloat16,
        float32 or float64; everything is computed in this dtype.
      h0: ``[B, H]`` initial state.
      kernel: ``[I, 3H]`` input weights.
      recurrent_kernel: ``[H, 3H]`` recurrent weights.
      bias: ``[3H]``, or ``[2, 3H]`` with ``reset_after``.
      sequence_length: optional ``[B]`` integer lengths. Outputs at
        ``t >= sequence_length[b]`` are zeros and the final state of example
        ``b`` is its state after its last valid step. Lengths above ``T``
        act as ``T`` and lengths of 0 or less leave the initial state.
      reverse: process each example's valid steps from its last one back to
        ``t = 0``; outputs stay in input time order.
      reset_after: which form (above).
      reset: optional ``[T, B]`` bool, in input time order: where
        ``reset[t, b]``, example ``b``'s state is replaced by
        ``reset_state[b]`` right before the step that reads input ``t``
        (with ``reverse`` too; marks past the example's length are ignored).
        Gradients reach ``reset_state`` and not what a reset cut off.
      reset_state: ``[B, H]``, the state reset examples take; required with
        ``reset``.

    Returns:
      ``(outputs, h)``: ``[T, B, H]`` states per step and the ``[B, H]``
      final state.

    Gradients flow to all five tensor arguments (six with ``reset_state``)
    and work eagerly, in ``tf.function`` and with ``jit_compile=True``;
    first order only (differentiating them again raises
    ``NotImplementedError``).

    Raises:
      TypeError: an unsupported dtype, arguments of different dtypes, a
        non-integer ``sequence_length`` or a non-bool ``reset``.
      ValueError: statically known shapes that do not fit together, zero
        time steps (``tf.errors.InvalidArgumentError`` at run time when
        ``T`` is only known then), or ``reset`` without ``reset_state`` (or
        the reverse).

    Example:

    >>> x = tf.ones([5, 2, 3])                 # T=5, B=2, I=3
    >>> h0 = tf.zeros([2, 4])                  # H=4
    >>> kernel = tf.fill([3, 12], 0.1)
    >>> recurrent_kernel = tf.fill([4, 12], 0.1)
    >>> out, h = gru_sequence(x, h0, kernel, recurrent_kernel, tf.zeros([2, 12]),
    ...                       sequence_length=[5, 2], reset_after=True)
    >>> out.shape.as_list(), h.shape.as_list()
    ([5, 2, 4], [2, 4])
    >>> bool(tf.reduce_all(out[2:, 1] == 0.0))
    True
    >>> bool(tf.reduce_all(h[1] == out[1, 1]))
    True
    """
    reset_after = bool(reset_after)
    x, h0, kernel, recurrent_kernel, bias = _programs.convert_arguments(
        "gru_sequence",
        inputs,
        [
            ("h0", h0, 2),
            ("kernel", kernel, 2),
            ("recurrent_kernel", recurrent_kernel, 2),
            ("bias", bias, 2 if reset_after else 1),
        ],
        notes={"bias": f" (reset_after={reset_after})"},
    )
    n, b, i = (static_dim(x.shape, a) for a in range(3))
    hidden = static_dim(recurrent_kernel.shape, 0)
    gates = static_dim(recurrent_kernel.shape, 1)
    if hidden is not None and gates is not None and gates != 3 * hidden:
        raise ValueError(
            f"gru_sequence: recurrent_kernel must be [H, 3H], got {recurrent_kernel.shape}"
        )
    if gates is None:
        for t in (kernel, bias):
            gates = gates or static_dim(t.shape, -1)
    if hidden is None and gates is not None:
        hidden = gates // 3
    _check_dim("kernel.shape[0]", static_dim(kernel.shape, 0), i, "input size")
    _check_dim("kernel.shape[1]", static_dim(kernel.shape, 1), gates, "3 * hidden size")
    _check_dim("bias.shape[-1]", static_dim(bias.shape, -1), gates, "3 * hidden size")
    if reset_after:
        _check_dim("bias.shape[0]", static_dim(bias.shape, 0), 2, "input and recurrent bias")
    _check_dim("h0.shape[0]", static_dim(h0.shape, 0), b, "batch size of inputs")
    _check_dim("h0.shape[1]", static_dim(h0.shape, 1), hidden, "hidden size")

    tensors = [x, h0, kernel, recurrent_kernel, bias]
    extra = []
    if sequence_length is not None:
        extra.append(_utils.sequence_lengths("gru_sequence", sequence_length, b))
    resets = reset is not None
    if resets:
        extra.append(_programs.check_reset("gru_sequence", reset, n, b))
        tensors += _programs.check_reset_state(
            "gru_sequence", reset_state, ("h",), x.dtype, b, hidden
        )
    elif reset_state is not None:
        raise ValueError("gru_sequence: reset_state is given but reset is None")
    variant = (x.dtype, reset_after, sequence_length is not None, bool(reverse), resets)
    out, h = _programs.call_with_gradient(
        "gru_sequence",
        PROGRAMS.select(variant, "fwd", native_ops.SWITCH.enabled),
        lambda: PROGRAMS.select(variant, "bwd", native_ops.SWITCH.enabled),
        lambda r, a, saved: programs.gradients(
            r[0],
            r[1],
            a[2],
            saved[0],
            saved[1],
            saved[2],
            d_hr=r[2] if resets else None,
            reset_state=a[5] if resets else None,
            rm=saved[3] if resets else None,
            reverse=bool(reverse),
            reset_after=reset_after,
        ),
        tensors,
        extra,
        num_results=2,
        weights=(2, 3, 5) if resets else (2, 3),
    )
    if not tf.executing_eagerly():
        out.set_shape([n, b, hidden])
        h.set_shape([b, hidden])
    return out, h
