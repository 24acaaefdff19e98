"""``vanilla_sequence``: a whole-sequence vanilla RNN with a hand-written backward pass."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn import _utils
from rnn.ops import _native, _programs
from rnn.ops._programs import static_dim
from rnn.ops.vanilla import native as native_ops
from rnn.ops.vanilla import programs

__all__ = ["vanilla_sequence"]


def _trace(variant: tuple[Any, ...], which: str, native: bool) -> tuple[Any, list[Any]]:
    """One program of one variant (``(dtype, masked, reverse, resets)``) and its signature.

    The arguments are the tensors (forward: with resets the reset state
    after the weights), then the saved ones (backward; with resets the
    reset mask in processing order last), then the lengths (masked) and the
    ``[T, B]`` reset argument (resets; only the forward program reads it).
    """
    dtype, masked, reverse, resets = variant
    t3 = tf.TensorSpec([None, None, None], dtype)
    t2 = tf.TensorSpec([None, None], dtype)
    t1 = tf.TensorSpec([None], dtype)
    tail = [tf.TensorSpec([None], tf.int32)] if masked else []
    if resets:
        tail.append(tf.TensorSpec([None, None], tf.bool))
    flags: dict[str, bool] = dict(masked=masked, reverse=reverse)

    def split_tail(rest: Sequence[Any]) -> tuple[Any, Any]:
        return (rest[0] if masked else None), (rest[-1] if resets else None)

    if which == "fwd":

        def fwd(x: Any, h0: Any, kernel: Any, rk: Any, bias: Any, *rest: Any) -> Any:
            program = native_ops.forward if native else programs.forward
            reset_state, rest = (rest[0], rest[1:]) if resets else (None, rest)
            lengths, reset = split_tail(rest)
            return program(x, h0, kernel, rk, bias, lengths, reset, reset_state, **flags)

        return fwd, [t3, t2, t2, t2, t1, *[t2] * resets, *tail]

    def bwd(d_out: Any, d_h: Any, kernel: Any, rk: Any, xa: Any, hs: Any, *rest: Any) -> Any:
        program = native_ops.backward if native else programs.backward
        rm, rest = (rest[0], rest[1:]) if resets else (None, rest)
        lengths, _ = split_tail(rest)
        return program(d_out, d_h, kernel, rk, lengths, xa, hs, rm, **flags)

    rm_spec = [tf.TensorSpec([None, 1, None], tf.bool)] * resets
    return bwd, [t3, t2, t2, t2, t3, t3, *rm_spec, *tail]


_HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = _native.Programs(
    "vanilla",
    native_ops.LIBRARY,
    [os.path.join(_HERE, "programs.py"), os.path.join(_HERE, "native.py")]
    # (the kernels, and the GRU's native.py for the kernels' reset arguments)
    + [os.path.join(os.path.dirname(_HERE), "gru", f) for f in ("kernels.c", "native.py")],
    _trace,
)


@tf.autograph.experimental.do_not_convert
def vanilla_sequence(
    inputs: tf.Tensor,
    h0: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    sequence_length: tf.Tensor | None = None,
    reverse: bool = False,
    reset: tf.Tensor | None = None,
    reset_state: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs a ``tanh`` vanilla RNN over a whole time-major sequence.

    Each step is ``h = tanh(x_t @ kernel + h @ recurrent_kernel + bias)``
    (``rnn.VanillaRNN``'s and ``keras.layers.SimpleRNN``'s cell); the
    outputs are the states.

    Args:
      inputs: ``[T, B, I]`` time-major inputs (``T`` and ``B`` may be unknown
        inside ``tf.function``; ``T`` must be at least 1). float16, bfloat16,
        float32 or float64; everything is computed in this dtype.
      h0: ``[B, H]`` initial state.
      kernel: ``[I, H]`` input weights.
      recurrent_kernel: ``[H, H]`` recurrent weights.
      bias: ``[H]`` bias.
      sequence_length: optional ``[B]`` integer lengths. Outputs at
        ``t >= sequence_length[b]`` are zeros and the final state of example
        ``b`` is its state after its last valid step. Lengths above ``T``
        act as ``T`` and lengths of 0 or less leave the initial state.
      reverse: process each example's valid steps from its last one back to
        ``t = 0``; outputs stay in input time order.
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
    >>> out, h = vanilla_sequence(x, tf.zeros([2, 4]), tf.fill([3, 4], 0.1),
    ...                           tf.fill([4, 4], 0.1), tf.zeros([4]),
    ...                           sequence_length=[5, 2])
    >>> out.shape.as_list(), h.shape.as_list()
    ([5, 2, 4], [2, 4])
    >>> bool(tf.reduce_all(out[2:, 1] == 0.0)), bool(tf.reduce_all(h[1] == out[1, 1]))
    (True, True)
    """
    name = "vanilla_sequence"
    x, h0, kernel, recurrent_kernel, bias = _programs.convert_arguments(
        name,
        inputs,
        [
            ("h0", h0, 2),
            ("kernel", kernel, 2),
            ("recurrent_kernel", recurrent_kernel, 2),
            ("bias", bias, 1),
        ],
    )
    n, b, i = (static_dim(x.shape, a) for a in range(3))
    hidden = static_dim(recurrent_kernel.shape, 0)
    _programs.check_dim(
        name,
        "recurrent_kernel.shape[1]",
        static_dim(recurrent_kernel.shape, 1),
        hidden,
        "hidden size",
    )
    for t in (kernel, bias, h0):
        hidden = hidden or static_dim(t.shape, -1)
    _programs.check_dim(name, "kernel.shape[0]", static_dim(kernel.shape, 0), i, "input size")
    _programs.check_dim(name, "kernel.shape[1]", static_dim(kernel.shape, 1), hidden, "hidden size")
    _programs.check_dim(name, "bias.shape[0]", static_dim(bias.shape, 0), hidden, "hidden size")
    _programs.check_dim(name, "h0.shape[0]", static_dim(h0.shape, 0), b, "batch size of inputs")
    _programs.check_dim(name, "h0.shape[1]", static_dim(h0.shape, 1), hidden, "hidden size")
    tensors = [x, h0, kernel, recurrent_kernel, bias]
    extra = []
    if sequence_length is not None:
        extra.append(_utils.sequence_lengths(name, sequence_length, b))
    resets = reset is not None
    if resets:
        extra.append(_programs.check_reset(name, reset, n, b))
        tensors += _programs.check_reset_state(name, reset_state, ("h",), x.dtype, b, hidden)
    elif reset_state is not None:
        raise ValueError(f"{name}: reset_state is given but reset is None")
    variant = (x.dtype, sequence_length is not None, bool(reverse), resets)
    out, h = _programs.call_with_gradient(
        name,
        PROGRAMS.select(variant, "fwd", native_ops.SWITCH.enabled),
        lambda: PROGRAMS.select(variant, "bwd", native_ops.SWITCH.enabled),
        lambda r, a, saved: programs.gradients(
            r[0],
            r[1],
            a[2],
            saved[0],
            saved[1],
            d_hr=r[2] if resets else None,
            reset_state=a[5] if resets else None,
            rm=saved[2] if resets else None,
            reverse=bool(reverse),
        ),
        tensors,
        extra,
        num_results=2,
        weights=(2, 3),
    )
    if not tf.executing_eagerly():
        out.set_shape([n, b, hidden])
        h.set_shape([b, hidden])
    return out, h
