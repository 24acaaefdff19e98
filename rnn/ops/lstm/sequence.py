"""``lstm_sequence``: a whole-sequence LSTM with a hand-written backward pass.

The LSTM's fast path (``rnn.LSTM`` uses it when the unrollers ask for a whole
sequence). Each call runs one forward program, and its gradient one backward
program: TensorFlow-ops programs (:mod:`rnn.ops.lstm.programs`) or the same
with each recurrence as one compiled op (:mod:`rnn.ops.lstm.native`, where
it can). The programs are ``tf.function`` s traced once per process for
each dtype and variant (masked or not, reversed or not) with unknown ``T``
and batch size: eager calls run as one graph call each way, and tracing a
model that uses them does not trace the loops again. Graphs hold the
TensorFlow-ops programs; on CPU the runtime swaps in the compiled ones
(:mod:`rnn.ops._native`).
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from rnn import _utils
from rnn.ops import _native, _programs
from rnn.ops._programs import static_dim
from rnn.ops.lstm import native as native_ops
from rnn.ops.lstm import programs

__all__ = ["lstm_sequence"]


def _trace(variant: tuple[Any, ...], which: str, native: bool) -> tuple[Any, list[Any]]:
    """One program of one variant (``(dtype, masked, reverse)``) and its signature."""
    dtype, masked, reverse = variant
    t3 = tf.TensorSpec([None, None, None], dtype)
    t2 = tf.TensorSpec([None, None], dtype)
    t1 = tf.TensorSpec([None], dtype)
    lens = [tf.TensorSpec([None], tf.int32)] if masked else []
    flags: dict[str, bool] = dict(masked=masked, reverse=reverse)
    if which == "fwd":

        def fwd(x: Any, h0: Any, c0: Any, kernel: Any, rk: Any, bias: Any, *lengths: Any) -> Any:
            program = native_ops.forward if native else programs.forward
            return program(x, h0, c0, kernel, rk, bias, lengths[0] if masked else None, **flags)

        return fwd, [t3, t2, t2, t2, t2, t1, *lens]

    def bwd(
        d_out: Any,
        d_h: Any,
        d_c: Any,
        kernel: Any,
        rk: Any,
        xa: Any,
        hs: Any,
        s: Any,
        c: Any,
        *lengths: Any,
    ) -> Any:
        program = native_ops.backward if native else programs.backward
        length = lengths[0] if masked else None
        return program(d_out, d_h, d_c, kernel, rk, length, xa, hs, s, c, **flags)

    return bwd, [t3, t2, t2, t2, t2, t3, t3, t3, t3, *lens]


_HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = _native.Programs(
    "lstm",
    native_ops.LIBRARY,
    [os.path.join(_HERE, f) for f in ("programs.py", "native.py", "kernels.c")],
    _trace,
)


def _check_dim(what: str, got: int | None, want: int | None, meaning: str) -> None:
    _programs.check_dim("lstm_sequence", what, got, want, meaning)


@tf.autograph.experimental.do_not_convert
def lstm_sequence(
    inputs: tf.Tensor,
    h0: tf.Tensor,
    c0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    sequence_length: tf.Tensor | None = None,
    reverse: bool = False,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs an LSTM over a whole time-major sequence; returns outputs and state.

    The cell is Keras' ``LSTM`` cell with sigmoid gates and ``tanh``
    activations: for each step ``z = x_t @ kernel + h @ recurrent_kernel +
    bias`` is split into the gates ``(i, f, g, o)`` in that order (the layout
    of ``keras.layers.LSTM`` weights), then ``c = sigmoid(f) * c +
    sigmoid(i) * tanh(g)`` and ``h = sigmoid(o) * tanh(c)``. No forget bias is
    added at run time (fold it into ``bias``).

    Args:
      inputs: ``[T, B, I]`` time-major inputs (``T`` and ``B`` may be unknown
        inside ``tf.function``; ``T`` must be at least 1). float16, bfloat16,
        float32 or float64; everything is computed in this dtype.
      h0, c0: ``[B, H]`` initial hidden and cell state.
      kernel: ``[I, 4H]`` input weights.
      recurrent_kernel: ``[H, 4H]`` recurrent weights.
      bias: ``[4H]`` bias.
      sequence_length: optional ``[B]`` integer lengths. Outputs at
        ``t >= sequence_length[b]`` are zeros and the final state of example
        ``b`` is its state after its last valid step (steps past the length
        leave the state unchanged). Lengths above ``T`` act as ``T`` and
        lengths of 0 or less leave the initial state unchanged.
      reverse: process each example's valid steps from its last one back to
        ``t = 0``; outputs stay in input time order.

    Returns:
      ``(outputs, h, c)``: ``[T, B, H]`` hidden states per step and the
      ``[B, H]`` final hidden and cell state.

    Gradients (``tf.GradientTape``, ``tf.gradients``) flow to all six tensor
    arguments and work eagerly, in ``tf.function`` and with
    ``jit_compile=True``. They are first order only: differentiating the
    gradients again raises ``NotImplementedError``.

    Raises:
      TypeError: an unsupported dtype, arguments of different dtypes, or a
        non-integer ``sequence_length``.
      ValueError: statically known shapes that do not fit together, or zero
        time steps (``tf.errors.InvalidArgumentError`` at run time when
        ``T`` is only known then).

    Example:

    >>> x = tf.ones([5, 2, 3])                 # T=5, B=2, I=3
    >>> h0 = c0 = tf.zeros([2, 4])             # H=4
    >>> kernel = tf.fill([3, 16], 0.1)
    >>> recurrent_kernel = tf.fill([4, 16], 0.1)
    >>> out, h, c = lstm_sequence(x, h0, c0, kernel, recurrent_kernel,
    ...                           tf.zeros([16]), sequence_length=[5, 2])
    >>> out.shape.as_list(), h.shape.as_list()
    ([5, 2, 4], [2, 4])
    >>> bool(tf.reduce_all(out[2:, 1] == 0.0))
    True
    >>> bool(tf.reduce_all(h[1] == out[1, 1]))
    True
    """
    x, h0, c0, kernel, recurrent_kernel, bias = _programs.convert_arguments(
        "lstm_sequence",
        inputs,
        [
            ("h0", h0, 2),
            ("c0", c0, 2),
            ("kernel", kernel, 2),
            ("recurrent_kernel", recurrent_kernel, 2),
            ("bias", bias, 1),
        ],
    )
    n, b, i = (static_dim(x.shape, a) for a in range(3))
    hidden = static_dim(recurrent_kernel.shape, 0)
    gates = static_dim(recurrent_kernel.shape, 1)
    if hidden is not None and gates is not None and gates != 4 * hidden:
        raise ValueError(
            f"lstm_sequence: recurrent_kernel must be [H, 4H], got {recurrent_kernel.shape}"
        )
    if gates is None:
        for t in (kernel, bias):
            gates = gates or static_dim(t.shape, -1)
    if hidden is None and gates is not None:
        hidden = gates // 4
    _check_dim("kernel.shape[0]", static_dim(kernel.shape, 0), i, "input size")
    _check_dim("kernel.shape[1]", static_dim(kernel.shape, 1), gates, "4 * hidden size")
    _check_dim("bias.shape[0]", static_dim(bias.shape, 0), gates, "4 * hidden size")
    for name, t in (("h0", h0), ("c0", c0)):
        _check_dim(f"{name}.shape[0]", static_dim(t.shape, 0), b, "batch size of inputs")
        _check_dim(f"{name}.shape[1]", static_dim(t.shape, 1), hidden, "hidden size")

    extra = []
    if sequence_length is not None:
        extra.append(_utils.sequence_lengths("lstm_sequence", sequence_length, b))
    variant = (x.dtype, bool(extra), bool(reverse))
    out, h, c = _programs.call_with_gradient(
        "lstm_sequence",
        PROGRAMS.select(variant, "fwd", native_ops.enabled()),
        lambda: PROGRAMS.select(variant, "bwd", native_ops.enabled()),
        lambda r, a, saved: programs.gradients(
            r[0], r[1], r[2], a[3], saved[0], saved[1], reverse=bool(reverse)
        ),
        [x, h0, c0, kernel, recurrent_kernel, bias],
        extra,
        num_results=3,
        weights=(3, 4),
    )
    if not tf.executing_eagerly():
        out.set_shape([n, b, hidden])
        h.set_shape([b, hidden])
        c.set_shape([b, hidden])
    return out, h, c
