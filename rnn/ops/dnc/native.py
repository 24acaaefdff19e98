"""The DNC programs with each pass as one compiled op, and when to use them.

Where it can (float32, no visible GPU, not under XLA), :func:`rnn.ops.dnc.dnc_sequence`
runs the forward pass as one op of ``kernels.c`` and the backward pass as
another, instead of ``tf.while_loop`` s of a few hundred small ops a step:
the DNC's memory is tiny (16 slots of 16 at the demo's sizes), so a step is
a handful of microseconds of arithmetic per example, and the executor's (or
XLA's) cost per op is most of the time. Batch rows are independent, so the
kernels split them over a few threads (one per CPU; ``RNN_DNC_THREADS``
overrides). The forward op keeps every step's state and intermediates in a
"tape" for the backward op. The TensorFlow programs' tape is empty (their
backward program runs the forward again under a gradient tape) and the
backward op then runs the forward pass again itself, so the two forms take
and return the same tensors (:mod:`rnn.ops.dnc.programs`) and the graphs
that hold the TensorFlow ones stay plain TensorFlow (:mod:`rnn.ops._native`).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from rnn.ops._library import LIBRARIES
from rnn.ops._native import KernelSwitch, portable

__all__ = ["native_kernels_available", "portable", "set_native_kernels"]

LIBRARY = LIBRARIES["dnc"]
SWITCH = KernelSwitch()


def native_kernels_available() -> bool:
    """Whether the compiled DNC kernels are built and loaded in this process.

    The first call compiles the library (once per user and TensorFlow
    version, into a cache; ``python -m rnn.ops`` does it ahead) and loads
    it; without a C compiler it is absent, a ``RuntimeWarning`` says so, and
    this returns False (:class:`rnn.DNC` is then stepped, as under XLA).

    >>> isinstance(native_kernels_available(), bool)
    True
    """
    return LIBRARY.load() is not None


def set_native_kernels(enabled: bool) -> bool:
    """Turns the compiled DNC kernels on or off; returns the previous setting.

    It applies to functions traced afterwards (and to eager calls), in every
    thread; :func:`portable` is the scoped form. Off, :class:`rnn.DNC` is
    stepped by the unrollers as it is under XLA.

    >>> previous = set_native_kernels(False)
    >>> set_native_kernels(previous)
    False
    """
    return SWITCH.set(enabled)


def _mask(mask: tf.Tensor | None) -> tf.Tensor:
    return tf.zeros([0], tf.bool) if mask is None else mask


def forward(args: Sequence[tf.Tensor], mask: tf.Tensor | None) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.dnc.programs.forward` as one compiled op; its last
    result, the tape, holds what the backward op needs."""
    return tuple(LIBRARY.load().rnn_dnc_forward(*args, _mask(mask)))


def backward(
    grads: Sequence[tf.Tensor],
    args: Sequence[tf.Tensor],
    mask: tf.Tensor | None,
    tape: tf.Tensor,
) -> tuple[tf.Tensor, ...]:
    """:func:`rnn.ops.dnc.programs.backward` as one compiled op. ``tape`` is
    the forward op's (every step's state and intermediates), or ``[0]`` (the
    TensorFlow forward program's): the op then runs the forward pass again."""
    return tuple(LIBRARY.load().rnn_dnc_backward(*args, _mask(mask), tape, *grads))
