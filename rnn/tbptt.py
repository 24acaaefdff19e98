"""Truncated backpropagation through time: training on sequences too long to unroll at once.

:func:`truncated_bptt` walks a long sequence in chunks of ``chunk_length``
steps. Each chunk is unrolled with :func:`rnn.dynamic_unroll` under its own
gradient tape, its loss is computed and the optimizer is stepped; the final
state is carried into the next chunk with the gradient stopped. So the memory
held for the backward pass grows with ``chunk_length``, not with the
sequence's length, and the state still carries information across chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

import nestlib
from rnn import _utils
from rnn.unroll import dynamic_unroll

__all__ = ["truncated_bptt"]

LossFn = Callable[[Any, Any, "tf.Tensor | None"], Any]


@_utils.no_autograph
def _chunk_length(chunk_length: Any) -> int:
    if isinstance(chunk_length, bool) or not isinstance(chunk_length, int):
        raise TypeError(
            f"truncated_bptt: chunk_length must be a positive int, got "
            f"{type(chunk_length).__name__} {chunk_length!r}"
        )
    if chunk_length < 1:
        raise ValueError(f"truncated_bptt: chunk_length must be a positive int, got {chunk_length}")
    return chunk_length


@_utils.no_autograph
def _time_slicer(time_major: bool) -> Callable[[Any, Any, Any], Any]:
    def take(x: Any, start: Any, stop: Any) -> Any:
        if x is None:
            return None
        x = tf.convert_to_tensor(x)
        return x[start:stop] if time_major else x[:, start:stop]

    return take


def truncated_bptt(
    core: Any,
    input_sequence: Any,
    initial_state: Any,
    *,
    chunk_length: int,
    loss_fn: LossFn,
    optimizer: Any,
    variables: Sequence[tf.Variable] | None = None,
    targets: Any = None,
    sequence_length: Any = None,
    reset: Any = None,
    reset_state: Any = None,
    time_major: bool = True,
) -> tuple[tf.Tensor, Any]:
    """Trains ``core`` on a long sequence in chunks of ``chunk_length`` steps.

    For each chunk ``[s, s + chunk_length)`` (the last one may be shorter):
    unroll the core from the carried state, call ``loss_fn(outputs, targets,
    lengths)`` on the chunk's outputs, the chunk of ``targets`` (any nest of
    tensors with the time axis where the inputs have it, or None) and the
    chunk's per-example lengths (``clip(sequence_length - s, 0, K)``, or None
    without ``sequence_length``), and apply the gradients of that scalar loss
    to ``variables`` with ``optimizer.apply_gradients`` (a Keras optimizer, or
    anything with that method). The chunk's final state, with its gradient
    stopped, starts the next chunk. ``reset`` and ``reset_state`` are those of
    :func:`rnn.dynamic_unroll` (marks are read chunk by chunk).

    ``variables`` defaults to the core's trainable variables; pass them
    explicitly to include a read-out layer that ``loss_fn`` uses (it must
    exist by then). Variables must exist before the loop, so a core without
    variables yet is called once on the first step's inputs to create them,
    and a Keras optimizer is built on them first: the helper runs eagerly or
    inside ``tf.function`` (one ``tf.while_loop`` over the chunks).

    Returns ``(losses, final_state)``: the ``[num_chunks]`` float32 losses
    and the state after the last chunk.

    >>> import keras, rnn
    >>> core = rnn.LSTM(4)
    >>> x = tf.random.normal([10, 2, 3])
    >>> losses, state = truncated_bptt(
    ...     core, x, core.initial_state(2), chunk_length=4,
    ...     loss_fn=lambda out, targets, lengths: tf.reduce_mean(out ** 2),
    ...     optimizer=keras.optimizers.SGD(0.1))
    >>> losses.shape.as_list(), state.hidden.shape.as_list()
    ([3], [2, 4])
    """
    chunk = _chunk_length(chunk_length)
    if not callable(loss_fn):
        raise TypeError(f"truncated_bptt: loss_fn must be callable, got {type(loss_fn).__name__}")
    if not callable(getattr(optimizer, "apply_gradients", None)):
        raise TypeError(
            "truncated_bptt: optimizer must have an apply_gradients method (a Keras "
            f"optimizer), got {type(optimizer).__name__}"
        )
    take = _time_slicer(time_major)
    in_leaves = [tf.convert_to_tensor(x) for x in nestlib.flatten(input_sequence)]
    if not in_leaves:
        raise ValueError("truncated_bptt: input_sequence has no tensors")
    time_axis = 0 if time_major else 1
    first = in_leaves[0]
    num_steps = first.shape[time_axis] if first.shape.rank else None
    if num_steps is None:
        num_steps = tf.shape(first)[time_axis]
    num_chunks = (num_steps + chunk - 1) // chunk
    lengths = None
    if sequence_length is not None:
        lengths = tf.cast(tf.convert_to_tensor(sequence_length), tf.int32)

    if not getattr(core, "variables", ()):
        first_step = nestlib.map_structure(
            lambda x: tf.convert_to_tensor(x)[0] if time_major else tf.convert_to_tensor(x)[:, 0],
            input_sequence,
        )
        core(first_step, initial_state)
    variables = list(core.trainable_variables if variables is None else variables)
    if not variables:
        raise ValueError(
            f"truncated_bptt: there are no variables to train ({type(core).__name__} has none "
            "and none were passed as variables)"
        )
    if hasattr(optimizer, "build") and not getattr(optimizer, "built", True):
        optimizer.build(variables)

    spec = nestlib.spec_of(initial_state)
    flat_state = spec.flatten(initial_state)
    none_at = [x is None for x in flat_state]
    dense0 = [tf.convert_to_tensor(x) for x in flat_state if x is not None]

    def full(dense: Sequence[tf.Tensor]) -> Any:
        it = iter(dense)
        return spec.unflatten([None if none else next(it) for none in none_at])

    def body(
        i: tf.Tensor, losses: tf.TensorArray, dense: list[tf.Tensor]
    ) -> tuple[tf.Tensor, tf.TensorArray, list[tf.Tensor]]:
        start = i * chunk
        stop = start + chunk
        xs = nestlib.map_structure(lambda x: take(x, start, stop), input_sequence)
        ts = nestlib.map_structure(lambda x: take(x, start, stop), targets)
        steps = tf.minimum(stop, num_steps) - start
        chunk_lengths = None if lengths is None else tf.clip_by_value(lengths - start, 0, steps)
        chunk_reset = None if reset is None else take(reset, start, stop)
        with tf.GradientTape() as tape:
            outputs, final = dynamic_unroll(
                core,
                xs,
                full(dense),
                sequence_length=chunk_lengths,
                reset=chunk_reset,
                reset_state=reset_state,
                time_major=time_major,
            )
            loss = tf.convert_to_tensor(loss_fn(outputs, ts, chunk_lengths))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        carried = [tf.stop_gradient(x) for x in spec.flatten(final) if x is not None]
        return i + 1, losses.write(i, tf.cast(loss, tf.float32)), carried

    _, losses, dense = tf.while_loop(
        lambda i, *_: i < num_chunks,
        body,
        (tf.constant(0, tf.int32), tf.TensorArray(tf.float32, size=num_chunks), dense0),
        maximum_iterations=num_chunks,
    )
    return losses.stack(), full(dense)
