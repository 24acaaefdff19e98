"""Pieces of the whole-sequence programs that do not depend on the cell.

Masks in processing order, the inputs' projection and gradients, outputs
back in input order, output gradients into processing order, and the
``[F, T, B] -> [F, T*B]`` columns the weight-gradient matmuls take: shared
by the LSTM's, the GRU's and the vanilla RNN's programs
(:mod:`rnn.ops.lstm.programs`, :mod:`rnn.ops.gru.programs`,
:mod:`rnn.ops.vanilla.programs`); and what their
public functions (``lstm_sequence``, ``gru_sequence``) share: the static
shape checks and the refusal of second-order gradients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

__all__ = [
    "call_with_gradient",
    "check_dim",
    "check_reset",
    "check_reset_state",
    "columns",
    "convert_arguments",
    "first_order_only",
    "input_gradients",
    "output_gradients",
    "outputs",
    "project",
    "projection_weights",
    "reset_mask",
    "sequence_inputs",
    "static_dim",
    "time_mask",
]

_SUPPORTED_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def time_mask(lengths: tf.Tensor, n: tf.Tensor, reverse: bool) -> tf.Tensor:
    """``[T, 1, B]`` bool in processing order: True where ``t < lengths[b]``."""
    t = tf.range(n)
    if reverse:
        t = n - 1 - t
    return tf.reshape(t, [-1, 1, 1]) < tf.reshape(lengths, [1, 1, -1])


def sequence_inputs(
    fn_name: str, x: tf.Tensor, lengths: tf.Tensor | None, *, masked: bool, reverse: bool
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """The start of every forward program: ``(T, xa, mask)``.

    ``xa`` is ``[T, B, I+1]`` in processing order (the inputs in their own
    layout with a column of ones; the matmuls that read it transpose it on
    the fly, so no separate transpose op runs) and ``mask`` the ``[T, 1,
    B]`` valid steps (None when not masked). The steps past each example's
    length are zeroed in ``xa``: nothing there reaches an output, but the
    weight gradients multiply all of ``xa`` (a zero gradient times a NaN or
    inf in the padding is NaN).
    """
    # (Fewer ops than slicing and tf.debugging.assert_positive: every
    # program is traced in two forms, on the first call.)
    n, batch, _ = tf.unstack(tf.shape(x), num=3)
    check = tf.debugging.Assert(n > 0, [f"{fn_name}: the input sequence has zero time steps"])
    with tf.control_dependencies([check]):
        n = tf.identity(n)
    if reverse:
        x = tf.reverse(x, axis=[0])
    xa = tf.concat([x, tf.ones([n, batch, 1], x.dtype)], axis=2)
    mask = None
    if masked:
        mask = time_mask(lengths, n, reverse)
        xa = tf.where(tf.transpose(mask, [0, 2, 1]), xa, tf.zeros([], xa.dtype))
    return n, xa, mask


def projection_weights(kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """``[G, I+1]``: the ``[I, G]`` kernel transposed, with the ``[G]`` bias
    as its last column (what :func:`project` multiplies ``[x; 1]`` by)."""
    return tf.transpose(tf.concat([kernel, tf.expand_dims(bias, 0)], axis=0), [1, 0])


def project(wx: tf.Tensor, xa: tf.Tensor) -> tf.Tensor:
    """``[G, T, B]``: the ``[G, I+1]`` input weights (bias last) times every
    step's ``[x; 1]`` from ``xa [T, B, I+1]``, as one matmul."""
    n, batch, width = tf.unstack(tf.shape(xa), num=3)
    rows = tf.reshape(xa, [-1, width])  # [T*B, I+1]
    return tf.reshape(tf.matmul(wx, rows, transpose_b=True), [-1, n, batch])


def input_gradients(
    d: tf.Tensor, kernel: tf.Tensor, xa: tf.Tensor, reverse: bool
) -> tuple[tf.Tensor, tf.Tensor]:
    """``(d_x [T, B, I] in input order, d_kernel_bias [I+1, G])`` from the
    input-side pre-activation gradients ``d [G, T * B]`` (column ``t * B +
    b``), the ``[I, G]`` kernel and ``xa [T, B, I+1]``: two matmuls over
    all steps, their operands transposed on the fly."""
    n, batch, width = tf.unstack(tf.shape(xa), num=3)
    rows = tf.reshape(xa, [-1, width])  # [T*B, I+1]
    d_kernel_bias = tf.matmul(rows, d, transpose_a=True, transpose_b=True)
    d_x = tf.reshape(tf.matmul(d, kernel, transpose_a=True, transpose_b=True), [n, batch, -1])
    if reverse:
        d_x = tf.reverse(d_x, axis=[0])
    return d_x, d_kernel_bias


def reset_mask(reset: tf.Tensor, mask: tf.Tensor | None, reverse: bool) -> tf.Tensor:
    """``[T, 1, B]`` bool in processing order: replace the state before this step.

    ``reset`` is the programs' ``[T, B]`` argument in input order (see
    :func:`rnn._utils.reset_before_steps`); marks on steps past an example's
    length (``mask`` False) are dropped, so a reset step is always a valid one.
    """
    if reverse:
        reset = tf.reverse(reset, axis=[0])
    reset = tf.expand_dims(reset, 1)
    if mask is not None:
        reset = tf.logical_and(reset, mask)
    return reset


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
    n, _, batch = tf.unstack(tf.shape(stacked), num=3)
    return tf.reshape(tf.transpose(stacked, [1, 0, 2]), [-1, n * batch])


def static_dim(shape: tf.TensorShape, axis: int) -> int | None:
    """``shape[axis]`` where the rank is known, else None."""
    if shape.rank is None:
        return None
    return shape[axis]


def check_dim(fn_name: str, what: str, got: int | None, want: int | None, meaning: str) -> None:
    """ValueError naming ``fn_name`` where two known sizes differ."""
    if got is not None and want is not None and got != want:
        raise ValueError(f"{fn_name}: {what} should be {want} ({meaning}), got {got}")


@functools.cache
def first_order_only(fn_name: str) -> Callable[..., Any]:
    """An identity on gradients that refuses to be differentiated again
    (one per function name, built once)."""

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


def convert_arguments(
    fn_name: str,
    inputs: Any,
    others: Sequence[tuple[str, Any, int]],
    notes: dict[str, str] | None = None,
) -> list[tf.Tensor]:
    """``inputs`` and the ``(name, value, rank)`` others as tensors of one dtype.

    TypeError for an unsupported dtype or a tensor of another dtype than
    ``inputs``; ValueError for a known rank that differs (``inputs`` must
    have rank 3; ``notes[name]`` is added to the message) or zero time steps.
    """
    x = tf.convert_to_tensor(inputs)
    dtype = x.dtype
    if dtype not in _SUPPORTED_DTYPES:
        raise TypeError(
            f"{fn_name}: inputs must be float16, bfloat16, float32 or float64, got {dtype.name}"
        )
    tensors = [x]
    for name, value, _ in others:
        got = getattr(value, "dtype", None)
        if isinstance(value, (tf.Tensor, tf.Variable)) and got != dtype:
            raise TypeError(
                f"{fn_name}: {name} has dtype {tf.as_dtype(got).name} but "
                f"inputs have {dtype.name}; cast them to one dtype"
            )
        tensors.append(tf.convert_to_tensor(value, dtype, name=name))
    for (name, _, rank), t in zip([("inputs", None, 3), *others], tensors):
        if t.shape.rank is not None and t.shape.rank != rank:
            note = (notes or {}).get(name, "")
            raise ValueError(f"{fn_name}: {name} must have rank {rank}{note}, got shape {t.shape}")
    if static_dim(x.shape, 0) == 0:
        raise ValueError(f"{fn_name}: the input sequence has zero time steps")
    return tensors


def check_reset(fn_name: str, reset: Any, n: int | None, batch: int | None) -> tf.Tensor:
    """The ``reset`` argument as a ``[T, B]`` bool tensor, checked where known."""
    try:
        reset = tf.convert_to_tensor(reset)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{fn_name}: reset is not convertible to a tensor: {e}") from e
    if reset.dtype != tf.bool:
        raise TypeError(f"{fn_name}: reset must be a bool [T, B] tensor, got {reset.dtype.name}")
    if reset.shape.rank is not None and reset.shape.rank != 2:
        raise ValueError(f"{fn_name}: reset must be a bool [T, B] tensor, got shape {reset.shape}")
    check_dim(fn_name, "reset.shape[0]", static_dim(reset.shape, 0), n, "time steps of inputs")
    check_dim(fn_name, "reset.shape[1]", static_dim(reset.shape, 1), batch, "batch size")
    return reset


def check_reset_state(
    fn_name: str,
    reset_state: Any,
    names: Sequence[str],
    dtype: tf.DType,
    batch: int | None,
    hidden: int | None,
) -> list[tf.Tensor]:
    """``reset_state`` (one ``[B, H]`` tensor per name in ``names``; a
    tensor, not a sequence, for one name) as tensors of ``dtype``, checked."""
    if reset_state is None:
        raise ValueError(f"{fn_name}: reset is given but reset_state is None")
    parts = [reset_state] if len(names) == 1 else reset_state
    if len(names) > 1 and (not isinstance(parts, (tuple, list)) or len(parts) != len(names)):
        raise TypeError(
            f"{fn_name}: reset_state must be a pair ({', '.join(names)}), got "
            f"{type(reset_state).__name__}"
        )
    tensors = []
    for name, part in zip(names, parts):
        what = "reset_state" if len(names) == 1 else f"reset_state.{name}"
        got = getattr(part, "dtype", None)
        if isinstance(part, (tf.Tensor, tf.Variable)) and got != dtype:
            raise TypeError(
                f"{fn_name}: {what} has dtype {tf.as_dtype(got).name} but inputs have {dtype.name}"
            )
        t = tf.convert_to_tensor(part, dtype)
        if t.shape.rank is not None and t.shape.rank != 2:
            raise ValueError(f"{fn_name}: {what} must have rank 2 ([B, H]), got shape {t.shape}")
        check_dim(fn_name, f"{what}.shape[0]", static_dim(t.shape, 0), batch, "batch size")
        check_dim(fn_name, f"{what}.shape[1]", static_dim(t.shape, 1), hidden, "hidden size")
        tensors.append(t)
    return tensors


def call_with_gradient(
    fn_name: str,
    forward: Any,
    backward: Callable[..., Any],
    finish: Callable[..., Sequence[tf.Tensor]],
    tensors: Sequence[tf.Tensor],
    extra: Sequence[tf.Tensor],
    num_results: int,
    weights: Sequence[int],
    optional_results: int = 0,
) -> list[tf.Tensor]:
    """Runs a forward program with its hand-written backward program as gradient.

    ``forward(*tensors, *extra)`` returns the ``num_results`` results
    (outputs and final state) followed by the tensors its backward program
    needs; ``backward()`` gives the backward concrete function, called
    (traced lazily, only where a gradient is asked for) with the results'
    gradients, ``tensors[i]`` for ``i`` in ``weights``, the saved tensors
    and ``extra``; it returns the reverse recurrence's results, which
    ``finish(those, tensors, saved)`` turns into one gradient per tensor. (That last
    part, large matmuls, stays in the caller's graph, so TensorFlow drops
    the gradients nobody uses, typically the inputs'; the kernel programs
    are function calls it cannot look into.) Gradients are first order only.

    The last ``optional_results`` results are ones whose gradients are
    often not asked for (the state sequences): ``backward`` is then called
    with one bool, whether any of them has a gradient; where none has, they
    are left out of the backward call.
    """
    refuse = first_order_only(fn_name)

    @tf.custom_gradient
    def run(*args: tf.Tensor) -> Any:
        args = tuple(tf.stop_gradient(t) for t in args)
        results = forward(*args, *extra)
        values, saved = list(results[:num_results]), list(results[num_results:])

        def grad(*d_values: Any) -> Any:
            d = [tf.zeros_like(v) if g is None else g for g, v in zip(d_values, values)]
            if optional_results:
                required = num_results - optional_results
                given = any(g is not None for g in d_values[required:])
                program = backward(given)
                d = d if given else d[:required]
            else:
                program = backward()
            recurrence = program(*d, *(args[i] for i in weights), *saved, *extra)
            grads = refuse(*finish(recurrence, args, saved))
            if not tf.executing_eagerly():
                for g, t in zip(grads, tensors):
                    g.set_shape(t.shape)
            return grads

        return tuple(values), grad

    return list(run(*tensors))
