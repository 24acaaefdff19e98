"""Private helpers shared by the rnn modules: dtype checks, initialisers.

Paths in messages are rendered by :func:`nestlib.format_path`; argument checks
live in :mod:`rnn._checks`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf


def check_rank2(core_name: str, inputs: Any) -> tf.Tensor:
    """Converts ``inputs`` to a tensor and checks it is ``[batch, features]``."""
    if inputs is None or (isinstance(inputs, (tuple, list, dict))):
        raise TypeError(
            f"{core_name} expects inputs to be a single [batch, features] "
            f"tensor, got {type(inputs).__name__}"
        )
    inputs = tf.convert_to_tensor(inputs)
    if inputs.shape.rank != 2:
        raise ValueError(
            f"{core_name} expects inputs of rank 2 [batch, features], got shape {inputs.shape}"
        )
    if inputs.shape[-1] is None:
        raise ValueError(
            f"{core_name} needs a statically known feature size, got inputs of shape {inputs.shape}"
        )
    if not inputs.dtype.is_floating:
        raise TypeError(f"{core_name} expects floating point inputs, got {inputs.dtype.name}")
    return inputs


def check_same_dtype(
    core_name: str, expected: tf.DType, what: str, value: tf.Tensor, reference: str
) -> None:
    """Raises TypeError when ``value.dtype`` differs from ``expected``.

    The message has Sonnet's wording (``inputs must have dtype tf.float32, got
    tf.float64``) and says where the expected dtype comes from.

    >>> check_same_dtype("LSTM", tf.float32, "inputs", tf.ones([1], tf.float64), "the kernel")
    Traceback (most recent call last):
      ...
    TypeError: LSTM: inputs must have dtype tf.float32, got tf.float64 (the kernel has ...); ...
    """
    if value.dtype != expected:
        raise TypeError(
            f"{core_name}: {what} must have dtype {expected!r}, got {value.dtype!r} "
            f"({reference} has dtype {expected.name}); cast them to one dtype"
        )


# Lower-precision compute dtypes that float32 variables may be cast to on each
# call (Keras' mixed precision: variables stay float32, the maths runs in the
# inputs' dtype).
HALF_DTYPES = (tf.float16, tf.bfloat16)


def compute_dtype(
    core_name: str, variables_dtype: tf.DType, what: str, value: tf.Tensor, reference: str
) -> tf.DType:
    """The dtype a core computes in: ``value.dtype``, when its variables may be used there.

    That is when ``value`` (the inputs) has the variables' dtype, or when the
    variables are float32 and ``value`` is float16 or bfloat16 (mixed
    precision: the variables are cast to ``value.dtype`` on each call, as
    Keras' autocasting does). Any other pair is a TypeError naming ``what``
    and ``reference`` (float64 inputs into float32 variables included: an
    upcast would silently compute in a precision the weights do not have),
    worded as Sonnet's (``inputs must have dtype tf.float32, got tf.float64``).

    >>> compute_dtype("LSTM", tf.float32, "inputs", tf.ones([1], tf.float16), "the kernel")
    tf.float16
    >>> compute_dtype("LSTM", tf.float32, "inputs", tf.ones([1], tf.float64), "the kernel")
    Traceback (most recent call last):
      ...
    TypeError: LSTM: inputs must have dtype tf.float32, got tf.float64 (the kernel is float32); ...
    """
    dtype = value.dtype
    if dtype == variables_dtype or (variables_dtype == tf.float32 and dtype in HALF_DTYPES):
        return dtype
    raise TypeError(
        f"{core_name}: {what} must have dtype {variables_dtype!r}, got {dtype!r} "
        f"({reference} is {variables_dtype.name}); cast them to one dtype (or, for mixed "
        "precision, use float16 or bfloat16 inputs with float32 variables)"
    )


def cast_variables(dtype: tf.DType, values: Sequence[Any]) -> list[Any]:
    """Each of ``values`` (variables, ``None``) cast to ``dtype`` where its dtype differs.

    Values already in ``dtype`` (and ``None``) are passed on as they are, so a
    core without mixed precision reads its variables exactly as before.

    >>> v = tf.Variable([1.5])
    >>> [x.dtype.name for x in cast_variables(tf.bfloat16, [v, None]) if x is not None]
    ['bfloat16']
    >>> cast_variables(tf.float32, [v])[0] is v
    True
    """
    reads = getattr(_READ_ONCE, "reads", None)
    if reads:
        values = [_read_once(reads, v, dtype) for v in values]
    return [v if v is None or v.dtype == dtype else tf.cast(v, dtype) for v in values]


# The variables' values read once for a whole unroll (see read_once), keyed by
# the variable's ref, and their casts by (ref, dtype).
_READ_ONCE = threading.local()


def _read_once(reads: dict[Any, tf.Tensor], value: Any, dtype: tf.DType) -> Any:
    """``value`` in ``dtype`` from :func:`read_once`'s scope, where it is a variable read there.

    The cast (mixed precision) is made once, in the graph of the read, so that
    it is a loop invariant too rather than a new tensor at every step.
    """
    if not isinstance(value, tf.Variable):
        return value
    read = reads.get(value.ref())
    if read is None:
        return value
    if read.dtype == dtype:
        return read
    key = (value.ref(), dtype)
    if key not in reads:
        beside_read = (
            read.graph.as_default() if tf.is_symbolic_tensor(read) else contextlib.nullcontext()
        )
        with beside_read:
            reads[key] = tf.cast(read, dtype)
    return reads[key]


@contextlib.contextmanager
def read_once(variables: Sequence[Any]) -> Iterator[None]:
    """Within the scope, the cores read ``variables`` from one read made on entry.

    :func:`cast_variables` (where every core of this package reads its
    variables) returns these reads instead of reading the variables again.
    The unrolls enter it around the loop body: the variables do not change
    during an unroll, and a variable read inside a ``tf.while_loop`` body is
    a new tensor at every step, which the gradient keeps one copy of per
    step (a ``[T, ...]`` stack of each weight matrix, written in the forward
    loop and read back in the backward one). A read made before the loop is
    a loop invariant, which the gradient captures once. A cast to another
    dtype (mixed precision: float32 variables, float16 inputs) is made once
    too, beside the read. Scopes nest; the inner one's reads are added to the
    outer one's.

    >>> v = tf.Variable([1.0, 2.0])
    >>> with read_once([v]):
    ...     first = cast_variables(tf.float32, [v])[0]
    ...     _ = v.assign([3.0, 4.0])   # (an unroll never does this: shows the one read)
    ...     second = cast_variables(tf.float32, [v])[0]
    >>> second.numpy().tolist(), cast_variables(tf.float32, [v])[0] is v
    ([1.0, 2.0], True)
    """
    outer = getattr(_READ_ONCE, "reads", None)
    reads = dict(outer or {})
    for v in variables:
        if isinstance(v, tf.Variable) and v.ref() not in reads:
            reads[v.ref()] = tf.convert_to_tensor(v)
    _READ_ONCE.reads = reads
    try:
        yield
    finally:
        _READ_ONCE.reads = outer


def at_least_float32(x: tf.Tensor) -> tf.Tensor:
    """``x`` in float32 where it is float16 or bfloat16, else unchanged.

    For the numerically sensitive parts of a computation (layer norm's
    moments, a softmax over many entries, long cumulative products) that
    run in float32 under mixed precision and are cast back afterwards, as
    Keras' normalization layers do.

    >>> at_least_float32(tf.ones([1], tf.bfloat16)).dtype.name
    'float32'
    >>> at_least_float32(tf.ones([1], tf.float64)).dtype.name
    'float64'
    """
    return tf.cast(x, tf.float32) if x.dtype in HALF_DTYPES else x


def sequence_lengths(fn_name: str, sequence_length: Any, batch_size: Any) -> tf.Tensor:
    """``sequence_length`` as a ``[B]`` int32 tensor, checked where static.

    Raises TypeError for non-integer lengths and ValueError for a tensor that
    is not a vector or whose static size differs from ``batch_size`` (an int,
    or None when unknown).
    """
    lengths = tf.convert_to_tensor(sequence_length)
    if not lengths.dtype.is_integer:
        raise TypeError(
            f"{fn_name}: sequence_length must be integers, got dtype {lengths.dtype.name}"
        )
    if lengths.shape.rank is not None and lengths.shape.rank != 1:
        raise ValueError(
            f"{fn_name}: sequence_length must be a [batch] vector, got shape {lengths.shape}"
        )
    if (
        lengths.shape.rank == 1
        and lengths.shape[0] is not None
        and batch_size is not None
        and lengths.shape[0] != batch_size
    ):
        raise ValueError(
            f"{fn_name}: sequence_length has {lengths.shape[0]} entries but "
            f"the batch size is {batch_size}"
        )
    return tf.cast(lengths, tf.int32)


def reset_before_steps(
    reset: tf.Tensor, lengths: tf.Tensor | None, num_steps: Any, reverse: bool
) -> tf.Tensor:
    """Where the state is replaced before processing each input: ``[T, B]`` bool, input order.

    ``reset`` marks segment starts (time-major ``[T, B]``, the unrollers'
    ``reset`` argument). Forwards a segment is entered at its mark;
    backwards at its last step, the step before the next mark (an example's
    last valid step needs none: it starts from the initial state anyway).
    Marks past an example's length are dropped. The one rule behind the
    stepping unrollers and the cores' whole-sequence programs.

    >>> marks = tf.constant([[False], [False], [True], [False]])
    >>> reset_before_steps(marks, None, 4, reverse=False)[:, 0].numpy().tolist()
    [False, False, True, False]
    >>> reset_before_steps(marks, None, 4, reverse=True)[:, 0].numpy().tolist()
    [False, True, False, False]
    >>> reset_before_steps(marks, tf.constant([2]), 4, reverse=False)[:, 0].numpy().tolist()
    [False, False, False, False]
    """
    mask = reset
    if reverse:
        mask = tf.concat([mask[1:], tf.zeros_like(mask[:1])], axis=0)
    if lengths is not None:
        valid = tf.transpose(tf.sequence_mask(lengths - int(reverse), num_steps))
        mask = tf.logical_and(mask, valid)
    return mask


def glorot_uniform(shape: Sequence[int], dtype: tf.DType) -> tf.Tensor:
    """Glorot/Xavier uniform initial values (computed in float32, then cast)."""
    fan_in, fan_out = shape[0], shape[-1]
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    return tf.cast(tf.random.uniform(shape, -limit, limit, tf.float32), dtype)


def orthogonal(shape: Sequence[int], dtype: tf.DType) -> tf.Tensor:
    """An orthogonal matrix of ``shape`` (as Keras' Orthogonal initialiser)."""
    rows, cols = shape
    flat = tf.random.normal([max(rows, cols), min(rows, cols)], dtype=tf.float32)
    q, r = tf.linalg.qr(flat)
    q = q * tf.sign(tf.linalg.diag_part(r))[tf.newaxis, :]
    if rows < cols:
        q = tf.transpose(q)
    return tf.cast(q, dtype)


# Library internals that never call user code are excluded from AutoGraph:
# converting them would only add to the first trace of every tf.function
# (AutoGraph re-parses and recompiles each function it meets), and they
# contain no tensor-dependent Python control flow. Code paths that call a
# user's core (the unroll loops, DeepRNN.__call__) stay convertible.
no_autograph = tf.autograph.experimental.do_not_convert
