"""``dnc_sequence``: a whole-sequence DNC (LSTM controller, one write head).

:class:`rnn.DNC` 's fast path (its ``unroll_fast_path``, which the unrollers
call) where the compiled kernels run. Each call runs one forward program,
and its gradient one backward program: TensorFlow-ops programs
(:mod:`rnn.ops.dnc.programs`) or the same passes as compiled ops
(:mod:`rnn.ops.dnc.native`). The controller's input projection is one
matmul over all steps before the recurrence, and the weight gradients are
matmuls over all steps after it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from rnn import _utils
from rnn.ops import _native, _programs
from rnn.ops.dnc import native as native_ops
from rnn.ops.dnc import programs

__all__ = ["dnc_sequence", "kernels_apply"]

NUM_STATE = 9  # h, c, r, memory, read_weights, write_weights, link, precedence, usage


def _trace(variant: tuple[Any, ...], which: str, native: bool) -> tuple[Any, list[Any]]:
    """One program of one variant, ``(dtype, masked, H, R, W, N)``, and its
    signature: the arguments of :mod:`rnn.ops.dnc.programs` (the forward
    program returns ``hs`` and ``rs`` a second time, for the weight
    gradients, and its tape last), then for the backward program the
    results' gradients first and those three after the arguments; the
    mask last where masked."""
    dtype, masked, h, r, w, n = variant
    k = r * w + r + w + 1 + 2 * w + r + 2 + 3 * r
    g = 4 * h
    args = [
        tf.TensorSpec([None, None, g], dtype),
        tf.TensorSpec([r * w, g], dtype),
        tf.TensorSpec([h, g], dtype),
        tf.TensorSpec([h, k], dtype),
        tf.TensorSpec([k], dtype),
        *(
            tf.TensorSpec([None, *s], dtype)
            for s in ([h], [h], [r, w], [n, w], [r, n], [1, n], [1, n, n], [1, n], [n])
        ),
    ]
    outs = [tf.TensorSpec([None, None, h], dtype), tf.TensorSpec([None, None, r, w], dtype)]
    tail = [tf.TensorSpec([None, None], tf.bool)] if masked else []
    if which == "fwd":

        def fwd(*a: Any) -> Any:
            mask = a[-1] if masked else None
            results = (native_ops.forward if native else programs.forward)(a[:14], mask)
            return (*results[:11], results[0], results[1], results[11])

        return fwd, [*args, *tail]

    def bwd(*a: Any) -> Any:
        grads, rest = a[:11], a[11:]
        mask = rest[-1] if masked else None
        tape = rest[16]
        return (native_ops.backward if native else programs.backward)(grads, rest[:14], mask, tape)

    return bwd, [*outs, *args[5:], *args, *outs, tf.TensorSpec([None], dtype), *tail]


_HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = _native.Programs(
    "dnc",
    native_ops.LIBRARY,
    [os.path.join(_HERE, f) for f in ("programs.py", "native.py", "kernels.c", "sequence.py")],
    _trace,
)


def kernels_apply(dtype: tf.DType) -> bool:
    """Whether :func:`dnc_sequence` traced (or run eagerly) now would use the
    compiled kernels: float32, no visible GPU, not under XLA, kernels on and
    loaded."""
    return _native.use_native(native_ops.LIBRARY, native_ops.SWITCH.enabled, dtype)


def _finish(
    recurrence: Sequence[tf.Tensor], args: Sequence[tf.Tensor], saved: Sequence[tf.Tensor]
) -> list[tf.Tensor]:
    """One gradient per argument: the weights' as matmuls over all steps."""
    d_zx, d_xi, *d_state = recurrence
    hs, rs = saved[:2]
    h0, r0 = args[5], args[7]
    g, k, h = d_zx.shape[-1], d_xi.shape[-1], h0.shape[-1]
    rw = r0.shape[1] * r0.shape[2]
    batch = tf.shape(h0)[0]
    h_prev = tf.concat([h0[tf.newaxis], hs[:-1]], 0)
    r_prev = tf.concat([tf.reshape(r0, [1, batch, rw]), tf.reshape(rs[:-1], [-1, batch, rw])], 0)
    dz = tf.reshape(d_zx, [-1, g])
    dxi = tf.reshape(d_xi, [-1, k])
    return [
        d_zx,
        tf.matmul(tf.reshape(r_prev, [-1, rw]), dz, transpose_a=True),
        tf.matmul(tf.reshape(h_prev, [-1, h]), dz, transpose_a=True),
        tf.matmul(tf.reshape(hs, [-1, h]), dxi, transpose_a=True),
        tf.reduce_sum(dxi, 0),
        *d_state,
    ]


@tf.autograph.experimental.do_not_convert
def dnc_sequence(
    inputs: tf.Tensor,
    state: Sequence[tf.Tensor],
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    interface_kernel: tf.Tensor,
    interface_bias: tf.Tensor,
    sequence_length: tf.Tensor | None = None,
    reverse: bool = False,
) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...]]:
    """Runs a DNC's recurrence over a whole time-major sequence.

    The recurrence of :class:`rnn.DNC` with an :class:`rnn.LSTM` controller
    (no projection, layer norm or cell clip), one write head and none of
    the options of Csordás & Schmidhuber: each step the controller reads
    ``concat(x_t, r_{t-1})``, its output drives the memory access, and the
    read words ``r_t`` are the access output. The output layer is not part
    of it (it is one matmul over all steps; :meth:`rnn.DNC.unroll_fast_path`).

    Args:
      inputs: ``[T, B, I]`` float inputs, time-major.
      state: the nine state tensors ``(h [B, H], c [B, H], r [B, R, W],
        memory [B, N, W], read_weights [B, R, N], write_weights [B, 1, N],
        link [B, 1, N, N], precedence [B, 1, N], usage [B, N])``; ``H``,
        ``R``, ``W`` and ``N`` must be known.
      kernel: the controller's ``[I + R W, 4H]`` kernel; recurrent_kernel
        ``[H, 4H]``; bias ``[4H]`` (Keras' gate layout, as :class:`rnn.LSTM`).
      interface_kernel, interface_bias: the interface layer's ``[H, K]``
        and ``[K]`` (``K`` from :func:`rnn.dnc.access.interface_size`).
      sequence_length: optional ``[B]`` lengths: the state stops at each
        example's last valid step, and the outputs past it are zeros.
      reverse: process each example's valid steps from its last one back.

    Returns:
      ``(hs [T, B, H], rs [T, B, R, W], final_state)``: the controller
      outputs and read words of every step (input time order, zeros past
      the lengths) and the nine final-state tensors. Gradients flow to every
      argument (first order only).

    >>> import rnn
    >>> dnc = rnn.DNC(3, memory_size=4, word_size=2, num_reads=1)
    >>> state = dnc.initial_state(2)
    >>> _ = dnc(tf.zeros([2, 5]), state)   # builds the variables
    >>> flat = [state.controller_state.hidden, state.controller_state.cell,
    ...         state.access_output, *tf.nest.flatten(state.access_state)]
    >>> lstm, layer = dnc.controller, dnc.access.interface_layer
    >>> hs, rs, final = dnc_sequence(tf.ones([6, 2, 5]), flat, lstm.kernel,
    ...     lstm.recurrent_kernel, lstm.bias, layer.w, layer.b, sequence_length=[6, 3])
    >>> hs.shape.as_list(), rs.shape.as_list(), final[3].shape.as_list()
    ([6, 2, 64], [6, 2, 1, 2], [2, 4, 2])
    >>> float(tf.reduce_sum(tf.abs(rs[3:, 1])))
    0.0
    """
    state = list(state)
    if len(state) != NUM_STATE:
        raise ValueError(f"dnc_sequence: state must have {NUM_STATE} tensors, got {len(state)}")
    x, *rest = _programs.convert_arguments(
        "dnc_sequence",
        inputs,
        [
            ("kernel", kernel, 2),
            ("recurrent_kernel", recurrent_kernel, 2),
            ("bias", bias, 1),
            ("interface_kernel", interface_kernel, 2),
            ("interface_bias", interface_bias, 1),
            *(
                (f"state[{i}]", s, r)
                for i, (s, r) in enumerate(zip(state, (2, 2, 3, 3, 3, 3, 4, 3, 2)))
            ),
        ],
    )
    kernel, recurrent_kernel, bias, interface_kernel, interface_bias, *state = rest
    h, r, w, n = (state[0].shape[1], state[2].shape[1], state[2].shape[2], state[3].shape[1])
    features = x.shape[2]
    if None in (h, r, w, n, features):
        raise ValueError(
            "dnc_sequence: the input features and the state's hidden size, read heads, word "
            "size and memory size must be known"
        )
    if state[5].shape[1] != 1:
        raise ValueError("dnc_sequence: one write head only (write_weights [B, 1, N])")
    n_steps, batch = tf.shape(x)[0], tf.shape(x)[1]
    if reverse:
        x = tf.reverse(x, axis=[0])
    mask = None
    extra = []
    if sequence_length is not None:
        lengths = _utils.sequence_lengths("dnc_sequence", sequence_length, x.shape[1])
        mask = tf.squeeze(_programs.time_mask(lengths, n_steps, bool(reverse)), 1)  # [T, B]
        # Nothing past a length reaches a result, but the kernel's gradient
        # multiplies every input: zeros there, not whatever padding holds.
        x = tf.where(mask[:, :, tf.newaxis], x, tf.zeros([], x.dtype))
        extra.append(mask)
    zx = tf.reshape(
        tf.matmul(tf.reshape(x, [-1, features]), kernel[:features]) + bias, [n_steps, batch, 4 * h]
    )
    variant = (x.dtype, mask is not None, h, r, w, n)
    results = _programs.call_with_gradient(
        "dnc_sequence",
        PROGRAMS.select(variant, "fwd", native_ops.SWITCH.enabled),
        lambda: PROGRAMS.select(variant, "bwd", native_ops.SWITCH.enabled),
        _finish,
        [zx, kernel[features:], recurrent_kernel, interface_kernel, interface_bias, *state],
        extra,
        num_results=2 + NUM_STATE,
        weights=tuple(range(5 + NUM_STATE)),
    )
    hs, rs, *final = results
    if mask is not None:
        hs = tf.where(mask[:, :, tf.newaxis], hs, tf.zeros([], hs.dtype))
        rs = tf.where(mask[:, :, tf.newaxis, tf.newaxis], rs, tf.zeros([], rs.dtype))
    if reverse:
        hs, rs = tf.reverse(hs, axis=[0]), tf.reverse(rs, axis=[0])
    if not tf.executing_eagerly():
        for t, s in zip(final, state):
            t.set_shape(s.shape)
        hs.set_shape([x.shape[0], x.shape[1], h])
        rs.set_shape([x.shape[0], x.shape[1], r, w])
    return hs, rs, tuple(final)
