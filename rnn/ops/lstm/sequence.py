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
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn import _utils
from rnn.ops import _native, _programs
from rnn.ops._programs import static_dim
from rnn.ops.lstm import native as native_ops
from rnn.ops.lstm import programs

__all__ = ["lstm_sequence"]


def _trace(variant: tuple[Any, ...], which: str, native: bool) -> tuple[Any, list[Any]]:
    """One program of one variant and its signature.

    ``variant`` is ``(dtype, masked, reverse, resets, all_states)``; for the
    backward program ``all_states`` means "with the cell states' gradients".
    The arguments are the tensors (with resets the reset state's ``h`` and
    ``c`` after the weights), then the saved ones (backward), then the
    lengths (masked) and the reset mask (resets).
    """
    dtype, masked, reverse, resets, all_states = variant
    t3 = tf.TensorSpec([None, None, None], dtype)
    t2 = tf.TensorSpec([None, None], dtype)
    t1 = tf.TensorSpec([None], dtype)
    tail = [tf.TensorSpec([None], tf.int32)] if masked else []
    if resets:
        tail.append(tf.TensorSpec([None, None], tf.bool))
    flags: dict[str, bool] = dict(masked=masked, reverse=reverse)

    def split_tail(args: Sequence[Any]) -> tuple[Any, Any]:
        args = list(args)
        return (args.pop(0) if masked else None), (args.pop(0) if resets else None)

    if which == "fwd":

        def fwd(x: Any, h0: Any, c0: Any, kernel: Any, rk: Any, bias: Any, *rest: Any) -> Any:
            program = native_ops.forward if native else programs.forward
            reset_state, rest = rest[: 2 * resets], rest[2 * resets :]
            lengths, reset = split_tail(rest)
            r = None if reset is None else programs.Resets(reset, *reset_state)
            return program(x, h0, c0, kernel, rk, bias, lengths, r, all_states=all_states, **flags)

        return fwd, [t3, t2, t2, t2, t2, t1, *[t2] * (2 * resets), *tail]

    saved = [t3, t3, t3, t3]  # xa, hs, ss, cs
    if resets:
        saved.append(tf.TensorSpec([None, 1, None], tf.bool))  # r

    def bwd(d_out: Any, d_h: Any, d_c: Any, *rest: Any) -> Any:
        program = native_ops.backward if native else programs.backward
        d_cs, rest = (rest[0], rest[1:]) if all_states else (None, rest)
        kernel, rk, rest = rest[0], rest[1], rest[2:]
        c_reset, rest = (rest[0], rest[1:]) if resets else (None, rest)
        xa, hs, s, c, rest = *rest[:4], rest[4:]
        r, rest = (rest[0], rest[1:]) if resets else (None, rest)
        lengths, _ = split_tail(rest)
        return program(
            d_out, d_h, d_c, kernel, rk, lengths, xa, hs, s, c, d_cs, r, c_reset, **flags
        )

    grads = [t3, t2, t2] + [t3] * all_states
    return bwd, [*grads, t2, t2, *[t2] * resets, *saved, *tail]


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
    reset: tf.Tensor | None = None,
    reset_state: tuple[tf.Tensor, tf.Tensor] | None = None,
    return_all_states: bool = False,
) -> tuple[tf.Tensor, ...]:
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
      reset: optional ``[T, B]`` bool, in input time order: where
        ``reset[t, b]``, example ``b``'s state is replaced by ``reset_state``
        right before the step that reads input ``t`` (marks past the
        example's length are ignored). Gradients reach ``reset_state``.
      reset_state: ``(h, c)``, each ``[B, H]``; required with ``reset``.
      return_all_states: also return the cell state after every step.

    Returns:
      ``(outputs, h, c)``: ``[T, B, H]`` hidden states per step and the
      ``[B, H]`` final hidden and cell state; with ``return_all_states`` a
      fourth result, the ``[T, B, H]`` cell states after every step (zeros
      past the length, input time order; the hidden states are ``outputs``).

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

    Restarting example 0 from zeros before input 3, with the cell states:

    >>> reset = tf.constant([[False, False]] * 3 + [[True, False]] * 2)
    >>> out2, _, _, cells = lstm_sequence(x, h0, c0, kernel, recurrent_kernel, tf.zeros([16]),
    ...                                   reset=reset, reset_state=(h0, c0),
    ...                                   return_all_states=True)
    >>> bool(tf.reduce_all(out2[3, 0] == out[0, 0])), cells.shape.as_list()
    (True, [5, 2, 4])
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

    tensors = [x, h0, c0, kernel, recurrent_kernel, bias]
    extra = []
    if sequence_length is not None:
        extra.append(_utils.sequence_lengths("lstm_sequence", sequence_length, b))
    resets = reset is not None
    if resets:
        extra.append(_programs.check_reset("lstm_sequence", reset, n, b))
        tensors += _programs.check_reset_state(
            "lstm_sequence", reset_state, ("h", "c"), x.dtype, b, hidden
        )
    elif reset_state is not None:
        raise ValueError("lstm_sequence: reset_state is given but reset is None")
    variant = (x.dtype, sequence_length is not None, bool(reverse), resets)

    def backward(d_cs: bool = False) -> Any:
        return PROGRAMS.select((*variant, d_cs), "bwd", native_ops.SWITCH.enabled)

    results = _programs.call_with_gradient(
        "lstm_sequence",
        PROGRAMS.select((*variant, bool(return_all_states)), "fwd", native_ops.SWITCH.enabled),
        backward,
        lambda r, a, saved: programs.gradients(
            r,
            a[3],
            saved[0],
            saved[1],
            saved[4] if resets else None,
            a[6] if resets else None,
            reverse=bool(reverse),
        ),
        tensors,
        extra,
        num_results=4 if return_all_states else 3,
        weights=(3, 4, 7) if resets else (3, 4),
        optional_results=int(bool(return_all_states)),
    )
    out, h, c = results[:3]
    if not tf.executing_eagerly():
        out.set_shape([n, b, hidden])
        h.set_shape([b, hidden])
        c.set_shape([b, hidden])
    if return_all_states:
        c_seq = results[3]
        if not tf.executing_eagerly():
            c_seq.set_shape([n, b, hidden])
        return out, h, c, c_seq
    return out, h, c
