"""A whole-sequence LSTM with a hand-written backward pass (the LSTM fast path).

:func:`lstm_sequence` runs a Keras-layout LSTM over a time-major sequence in
one call. It computes what stepping the cell once per time step computes (up
to float rounding), organised for speed on CPU:

* The recurrences work on transposed ``[features, batch]`` tiles, so the four
  gates are contiguous row blocks and splitting them copies nothing.
* Forward: a ``tf.while_loop`` whose critical path per step is one
  ``[4H, H] x [H, B]`` matmul, one ``tanh`` over all four gates (the sigmoid
  gates use ``sigmoid(z) = (1 + tanh(z / 2)) / 2``, their weights halved
  once per call) and a few ``[H, B]`` element-wise ops. The input projection
  ``[kernel; bias]^T [x_t; 1]`` does not depend on the recurrence, so the
  loop computes it ahead, off the critical path (``parallel_iterations``).
  Each step hands its gate activations and states to ``TensorList`` s by
  reference (stacked once at the end) for the backward pass.
* Backward (a ``tf.custom_gradient``): the reverse recurrence is one
  ``[H, 4H] x [4H, B]`` matmul and a few element-wise ops per step; the
  activation derivatives it needs are again computed off its critical path.
  Then the weight gradients are two large matmuls over all ``T * B`` columns
  (``dZ [X; 1]^T`` gives kernel and bias, ``dZ H_prev^T`` the recurrent
  kernel) and the input gradient one more, instead of ``T`` small
  weight-gradient matmuls and accumulations inside the loop as autodiff of a
  stepped cell does. Inside ``tf.function`` TensorFlow drops the input
  gradient when nothing uses it.

Where it can (float32, no visible GPU, not under XLA), each recurrence runs
as one compiled op instead (``rnn/_lstm_kernels.c``, built by ``make``
against TensorFlow's C API): the same per-step work without the executor's
per-op and per-iteration costs between the small matmuls and element-wise
ops, the products split by hidden unit over a few threads (one per CPU,
``RNN_LSTM_THREADS`` overrides) that meet once per step. There the input
projection of all steps is one ``[4H, I+1] x [I+1, T*B]`` matmul before the
op. The kernels take and produce the tensors the ``while_loop`` programs
do (the gate gradients directly in the ``[4H, T * B]`` columns layout the
weight-gradient matmuls take), so the rest (those matmuls, masking,
reversal) is shared. :func:`native_kernels_available` says whether they are built;
:func:`set_native_kernels` turns them off (e.g. to export a SavedModel for a
process that will not ``import rnn``).

Measured alternatives for the TF-ops programs (bench/rnn_bench.py and notes
in the report): one big ``x @ kernel`` matmul before the loop (more memory
traffic, a longer loop step for wide inputs), folding ``x_t`` into the
recurrent matmul (a longer critical path), per-step transposes (slow small
oneDNN ops) and XLA-compiled loops (recompiled for every new ``T``) were all
slower or no faster there.

The forward and backward programs are ``tf.function`` s traced once per
process for each dtype and variant (masked or not, reversed or not, kernels
or not) with
unknown ``T`` and batch size: eager calls run as one graph call each way,
and tracing a model that uses them does not trace the loops again.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from rnn import _build_kernels, _utils

__all__ = ["lstm_sequence", "native_kernels_available", "set_native_kernels"]

_SUPPORTED_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)

# Steps of the forward/backward loops that may run concurrently (only work
# that does not depend on the recurrence can actually overlap).
_PARALLEL_ITERATIONS = 10


def _time_mask(lengths: tf.Tensor, n: tf.Tensor, reverse: bool) -> tf.Tensor:
    """``[T, 1, B]`` bool in processing order: True where ``t < lengths[b]``."""
    t = tf.range(n)
    if reverse:
        t = n - 1 - t
    return t[:, tf.newaxis, tf.newaxis] < lengths[tf.newaxis, tf.newaxis, :]


def _inputs(x, lengths, *, masked, reverse):
    """The start of both forward programs: ``(T, xa, mask)``.

    ``xa`` is ``[T, I+1, B]`` in processing order (inputs with a row of ones)
    and ``mask`` the ``[T, 1, B]`` valid steps (None when not masked). The
    steps past each example's length are zeroed in ``xa``: nothing there
    reaches an output, but the weight gradients multiply all of ``xa`` (a
    zero gradient times a NaN or inf in the padding is NaN).
    """
    n, batch = tf.shape(x)[0], tf.shape(x)[1]
    with tf.control_dependencies(
        [
            tf.debugging.assert_positive(
                n, message="lstm_sequence: the input sequence has zero time steps"
            )
        ]
    ):
        n = tf.identity(n)
    if reverse:
        x = tf.reverse(x, axis=[0])
    xa = tf.concat([tf.transpose(x, [0, 2, 1]), tf.ones([n, 1, batch], x.dtype)], axis=1)
    mask = None
    if masked:
        mask = _time_mask(lengths, n, reverse)
        xa = tf.where(mask, xa, tf.zeros([], xa.dtype))
    return n, xa, mask


def _outputs(hs, mask, reverse):
    """``[T, B, H]`` outputs in input time order from ``hs [T+1, H, B]``."""
    out = hs[1:]
    if mask is not None:
        out = tf.where(mask, out, tf.zeros([], hs.dtype))
    if reverse:
        out = tf.reverse(out, axis=[0])
    return tf.transpose(out, [0, 2, 1])


def _output_gradients(d_out, lengths, n, *, masked, reverse):
    """The start of both backward programs: ``(d_out [T, H, B], mask)`` in
    processing order, zero where masked (``mask`` as in :func:`_inputs`)."""
    if reverse:
        d_out = tf.reverse(d_out, axis=[0])
    d_out = tf.transpose(d_out, [0, 2, 1])
    mask = None
    if masked:
        mask = _time_mask(lengths, n, reverse)
        d_out = tf.where(mask, d_out, tf.zeros([], d_out.dtype))
    return d_out, mask


def _forward(x, h0, c0, kernel, recurrent_kernel, bias, lengths, *, masked, reverse):
    """The forward program: outputs, final state and what backward needs.

    Returns ``(outputs [T, B, H], h [B, H], c [B, H], xa, hs, ss, cs)``
    where, in processing order, ``xa`` is ``[T, I+1, B]`` (inputs with a row
    of ones), ``hs`` and ``cs`` are ``[T + 1, H, B]`` (the hidden and cell
    state before every step and after the last) and ``ss`` is
    ``[T, 4H, B]``, each step's gate sigmoids.
    """
    dtype = x.dtype
    hidden = tf.shape(recurrent_kernel)[0]
    n, xa, mask = _inputs(x, lengths, masked=masked, reverse=reverse)
    # One tanh covers all four gates: sigmoid(z) = (1 + tanh(z / 2)) / 2, so
    # the sigmoid gates' weights are halved once per call.
    half = tf.constant(0.5, dtype)
    halves = tf.fill([hidden], half)
    scale = tf.concat([halves, halves, halves + halves, halves], axis=0)
    wx = tf.transpose(tf.concat([kernel, bias[tf.newaxis]], axis=0) * scale)
    wh = tf.transpose(recurrent_kernel * scale)  # [4H, H]
    h0t, c0t = tf.transpose(h0), tf.transpose(c0)
    s_acc = tf.TensorArray(dtype, size=n)
    c_acc = tf.TensorArray(dtype, size=n + 1).write(0, c0t)
    h_acc = tf.TensorArray(dtype, size=n + 1).write(0, h0t)

    def body(k, h, c, s_acc, c_acc, h_acc):
        # wx @ xa[k] (the input projection and bias, [4H, I+1] x [I+1, B])
        # only depends on k, so it runs ahead of the recurrence.
        u = tf.tanh(tf.matmul(wx, xa[k]) + tf.matmul(wh, h))
        s = u * half + half  # gate sigmoids; rows 2H:3H hold (1 + g) / 2
        i, f, _, o = tf.split(s, 4, axis=0)
        g = tf.split(u, 4, axis=0)[2]
        c_new = f * c + i * g
        h_new = o * tf.tanh(c_new)
        if masked:
            m = mask[k]
            c_new = tf.where(m, c_new, c)
            h_new = tf.where(m, h_new, h)
        return (
            k + 1,
            h_new,
            c_new,
            s_acc.write(k, s),
            c_acc.write(k + 1, c_new),
            h_acc.write(k + 1, h_new),
        )

    _, h, c, s_acc, c_acc, h_acc = tf.while_loop(
        lambda k, *_: k < n,
        body,
        (tf.constant(0), h0t, c0t, s_acc, c_acc, h_acc),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    hs = h_acc.stack()  # [T+1, H, B]
    out = _outputs(hs, mask, reverse)
    # Stacked (not TensorList handles) so that the gradient function only
    # captures plain tensors, which SavedModel can serialise.
    return (out, tf.transpose(h), tf.transpose(c), xa, hs, s_acc.stack(), c_acc.stack())


def _backward(
    d_out, d_h, d_c, kernel, recurrent_kernel, lengths, xa, hs, ss, cs, *, masked, reverse
):
    """The backward program: gradients for x, h0, c0, kernel, rk, bias."""
    dtype = xa.dtype
    n = tf.shape(xa)[0]
    unit = tf.constant(1, dtype)
    two = tf.constant(2, dtype)
    four = tf.constant(4, dtype)
    zero = tf.zeros([], dtype)
    d_out, mask = _output_gradients(d_out, lengths, n, masked=masked, reverse=reverse)
    dz_acc = tf.TensorArray(dtype, size=n)

    def body(k, dh, dc, dz_acc):
        k = k - 1
        # Factors that do not depend on the reverse recurrence.
        s = ss[k]
        c_prev = cs[k]
        tc = tf.tanh(cs[k + 1])
        i, f, g, o = tf.split(s, 4, axis=0)
        g = g * two - unit  # s holds (1 + g) / 2 in the candidate rows
        # Through c = f * c_prev + i * g and h = o * tanh(c):
        # dc += dh * a and dz = [dc, dc, dc, dh] * p (z: gate pre-activations;
        # for the candidate rows s (1 - s) = (1 - g^2) / 4).
        a = o * (unit - tc * tc)
        p = s * (unit - s) * tf.concat([g, c_prev, four * i, tc], axis=0)
        if masked:
            m = mask[k]
            a = tf.where(m, a, zero)
            p = tf.where(m, p, zero)
            f = tf.where(m, f, unit)
        dh = dh + d_out[k]
        dc = dc + dh * a
        dz = tf.concat([dc, dc, dc, dh], axis=0) * p
        dh_prev = tf.matmul(recurrent_kernel, dz)
        if masked:
            dh_prev = dh_prev + tf.where(m, zero, dh)
        return k, dh_prev, dc * f, dz_acc.write(k, dz)

    _, dh0, dc0, dz_acc = tf.while_loop(
        lambda k, *_: k > 0,
        body,
        (n, tf.transpose(d_h), tf.transpose(d_c), dz_acc),
        parallel_iterations=_PARALLEL_ITERATIONS,
    )
    return _gradients(_columns(dz_acc.stack()), dh0, dc0, kernel, xa, hs, reverse=reverse)


def _columns(stacked: tf.Tensor) -> tf.Tensor:
    """``[T, F, B] -> [F, T * B]``."""
    shape = tf.shape(stacked)
    return tf.reshape(tf.transpose(stacked, [1, 0, 2]), [-1, shape[0] * shape[2]])


def _gradients(dz, dh0, dc0, kernel, xa, hs, *, reverse):
    """The six gradients from the gate gradients ``dz [4H, T * B]`` of all
    steps (column ``t * B + b``: step ``t`` of example ``b``).

    The weight gradients are two large matmuls over all ``T * B`` columns at
    once, the input gradient one more.
    """
    n, batch = tf.shape(xa)[0], tf.shape(xa)[2]
    d_kernel_bias = tf.matmul(_columns(xa), dz, transpose_b=True)  # [I+1, 4H]
    d_rk = tf.matmul(_columns(hs[:-1]), dz, transpose_b=True)  # [H, 4H]
    d_x = tf.matmul(kernel, dz)  # [I, TB]
    d_x = tf.transpose(tf.reshape(d_x, [-1, n, batch]), [1, 2, 0])  # [T, B, I]
    if reverse:
        d_x = tf.reverse(d_x, axis=[0])
    return (d_x, tf.transpose(dh0), tf.transpose(dc0), d_kernel_bias[:-1], d_rk, d_kernel_bias[-1])


# --------------------------------------------------------------------------
# The compiled kernels (rnn/_lstm_kernels.c): the same programs with each
# recurrence as one op instead of a tf.while_loop.
# --------------------------------------------------------------------------

_LIBRARY = _build_kernels.LIBRARY
_kernels = None  # the loaded op library, once loaded
_kernels_error = None  # why it could not be loaded, once tried
_native_enabled = True
_gpu_present = None


def _load_kernels():
    global _kernels, _kernels_error
    if _kernels is None and _kernels_error is None:
        if not os.path.exists(_LIBRARY):
            _kernels_error = (
                f"{_LIBRARY} is not built (run `make` or `python rnn/_build_kernels.py`)"
            )
        elif missing := _build_kernels.missing_cpu_features(_LIBRARY):
            _kernels_error = (
                f"{_LIBRARY} was built for a CPU with features this one lacks "
                f"({', '.join(sorted(missing)[:8])}); rebuild it here with "
                f"`python rnn/_build_kernels.py`"
            )
        else:
            try:
                _kernels = tf.load_op_library(_LIBRARY)
            except (tf.errors.OpError, OSError) as e:
                _kernels_error = f"{_LIBRARY} did not load: {e}"
            else:
                # Differentiating the gradient stops at _first_order_only
                # with a clear error; a tape recording the backward program
                # (under an outer tape) still needs the ops to have an entry.
                tf.no_gradient("NestlibLstmForward")
                tf.no_gradient("NestlibLstmBackward")
    return _kernels


def native_kernels_available() -> bool:
    """Whether the compiled LSTM kernels are built and loaded in this process.

    :func:`lstm_sequence` runs its recurrences as two compiled ops (one
    forward, one backward) where it can: float32 on a machine without a
    visible GPU, outside XLA compilation, and unless
    :func:`set_native_kernels` turned them off. Elsewhere it runs the same
    computation as TensorFlow ``while_loop`` s. ``make`` builds the library
    (``python rnn/_build_kernels.py``); without a C compiler it is absent and
    this returns False.

    >>> isinstance(native_kernels_available(), bool)
    True
    """
    return _load_kernels() is not None


def set_native_kernels(enabled: bool) -> bool:
    """Turns the compiled LSTM kernels on or off; returns the previous setting.

    It applies to functions traced afterwards (and to eager calls). Turn them
    off before tracing a function you will export as a SavedModel for a
    process that does not ``import rnn``: a graph that uses the kernels
    needs their library loaded (``import rnn.fused_lstm``) to run.

    >>> previous = set_native_kernels(False)
    >>> out, h, c = lstm_sequence(tf.ones([2, 1, 3]), tf.zeros([1, 4]),
    ...                           tf.zeros([1, 4]), tf.zeros([3, 16]),
    ...                           tf.zeros([4, 16]), tf.zeros([16]))
    >>> set_native_kernels(previous)
    False
    >>> float(h[0, 0])      # sigmoid(0) * tanh(c), c = 0.5 * 0 + 0.5 * 0
    0.0
    """
    global _native_enabled
    previous, _native_enabled = _native_enabled, bool(enabled)
    return previous


def _in_xla_context() -> bool:
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def _use_native(dtype: tf.DType) -> bool:
    global _gpu_present
    if not _native_enabled or dtype != tf.float32 or _load_kernels() is None:
        return False
    if _gpu_present is None:
        _gpu_present = bool(tf.config.list_logical_devices("GPU"))
    return not _gpu_present and not _in_xla_context()


def _kernel_mask(mask):
    """The kernels' mask argument: ``[T, B]`` in processing order or ``[0]``."""
    return tf.zeros([0], tf.bool) if mask is None else mask[:, 0, :]


def _forward_native(x, h0, c0, kernel, recurrent_kernel, bias, lengths, *, masked, reverse):
    """:func:`_forward` with the recurrence as one compiled op."""
    n, xa, mask = _inputs(x, lengths, masked=masked, reverse=reverse)
    # The input projection of every step as one matmul, [4H, T, B].
    wx = tf.transpose(tf.concat([kernel, bias[tf.newaxis]], axis=0))
    zx = tf.reshape(tf.matmul(wx, _columns(xa)), [-1, n, tf.shape(xa)[2]])
    ss, cs, hs = _kernels.nestlib_lstm_forward(
        zx, recurrent_kernel, tf.transpose(h0), tf.transpose(c0), _kernel_mask(mask)
    )
    return (_outputs(hs, mask, reverse), tf.transpose(hs[-1]), tf.transpose(cs[-1]), xa, hs, ss, cs)


def _backward_native(
    d_out, d_h, d_c, kernel, recurrent_kernel, lengths, xa, hs, ss, cs, *, masked, reverse
):
    """:func:`_backward` with the reverse recurrence as one compiled op."""
    d_out, mask = _output_gradients(d_out, lengths, tf.shape(xa)[0], masked=masked, reverse=reverse)
    dz, dh0, dc0 = _kernels.nestlib_lstm_backward(
        ss, cs, d_out, tf.transpose(d_h), tf.transpose(d_c), recurrent_kernel, _kernel_mask(mask)
    )  # dz: [4H, T, B], no transpose
    dz = tf.reshape(dz, [tf.shape(dz)[0], -1])
    return _gradients(dz, dh0, dc0, kernel, xa, hs, reverse=reverse)


# (dtype, masked, reverse, native, "fwd" | "bwd") -> concrete function.
_PROGRAMS = {}


def _program(dtype: tf.DType, masked: bool, reverse: bool, native: bool, which: str):
    """The concrete forward or backward function, traced once per key.

    Traced lazily (a model that never asks for gradients never traces the
    backward program), with unknown ``T`` and batch size.
    """
    key = (dtype, masked, reverse, native, which)
    if key not in _PROGRAMS:
        t3 = tf.TensorSpec([None, None, None], dtype)
        t2 = tf.TensorSpec([None, None], dtype)
        t1 = tf.TensorSpec([None], dtype)
        lens = [tf.TensorSpec([None], tf.int32)] if masked else []
        flags = dict(masked=masked, reverse=reverse)
        if which == "fwd":

            def fwd(x, h0, c0, kernel, rk, bias, *lengths):
                program = _forward_native if native else _forward
                return program(x, h0, c0, kernel, rk, bias, lengths[0] if masked else None, **flags)

            fn = tf.function(fwd, autograph=False).get_concrete_function(
                t3, t2, t2, t2, t2, t1, *lens
            )
        else:

            def bwd(d_out, d_h, d_c, kernel, rk, xa, hs, s, c, *lengths):
                program = _backward_native if native else _backward
                return program(
                    d_out,
                    d_h,
                    d_c,
                    kernel,
                    rk,
                    lengths[0] if masked else None,
                    xa,
                    hs,
                    s,
                    c,
                    **flags,
                )

            fn = tf.function(bwd, autograph=False).get_concrete_function(
                t3, t2, t2, t2, t2, t3, t3, t3, t3, *lens
            )
        _PROGRAMS[key] = fn
    return _PROGRAMS[key]


@tf.custom_gradient
def _first_order_only(*grads):
    """Identity on the gradients that refuses to be differentiated again."""

    def second_order(*unused):
        raise NotImplementedError(
            "lstm_sequence supports first-order gradients only: its backward "
            "pass is hand-written and not differentiable. For higher-order "
            "gradients step the cell yourself (call the core once per step "
            "in a loop) instead of using the whole-sequence fast path."
        )

    return grads, second_order


def _static_dim(shape: tf.TensorShape, axis: int) -> int | None:
    if shape.rank is None:
        return None
    return shape[axis]


def _check_dim(what: str, got: int | None, want: int | None, meaning: str) -> None:
    if got is not None and want is not None and got != want:
        raise ValueError(f"lstm_sequence: {what} should be {want} ({meaning}), got {got}")


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
    x = tf.convert_to_tensor(inputs)
    dtype = x.dtype
    if dtype not in _SUPPORTED_DTYPES:
        raise TypeError(
            f"lstm_sequence: inputs must be float16, bfloat16, float32 or float64, got {dtype.name}"
        )
    tensors = []
    for name, value in (
        ("h0", h0),
        ("c0", c0),
        ("kernel", kernel),
        ("recurrent_kernel", recurrent_kernel),
        ("bias", bias),
    ):
        got = getattr(value, "dtype", None)
        if isinstance(value, (tf.Tensor, tf.Variable)) and got != dtype:
            raise TypeError(
                f"lstm_sequence: {name} has dtype {tf.as_dtype(got).name} but "
                f"inputs have {dtype.name}; cast them to one dtype"
            )
        tensors.append(tf.convert_to_tensor(value, dtype, name=name))
    h0, c0, kernel, recurrent_kernel, bias = tensors

    for name, t, rank in (
        ("inputs", x, 3),
        ("h0", h0, 2),
        ("c0", c0, 2),
        ("kernel", kernel, 2),
        ("recurrent_kernel", recurrent_kernel, 2),
        ("bias", bias, 1),
    ):
        if t.shape.rank is not None and t.shape.rank != rank:
            raise ValueError(f"lstm_sequence: {name} must have rank {rank}, got shape {t.shape}")
    n, b, i = (_static_dim(x.shape, a) for a in range(3))
    if n == 0:
        raise ValueError("lstm_sequence: the input sequence has zero time steps")
    hidden = _static_dim(recurrent_kernel.shape, 0)
    gates = _static_dim(recurrent_kernel.shape, 1)
    if hidden is not None and gates is not None and gates != 4 * hidden:
        raise ValueError(
            f"lstm_sequence: recurrent_kernel must be [H, 4H], got {recurrent_kernel.shape}"
        )
    if gates is None:
        for t in (kernel, bias):
            gates = gates or _static_dim(t.shape, -1)
    if hidden is None and gates is not None:
        hidden = gates // 4
    _check_dim("kernel.shape[0]", _static_dim(kernel.shape, 0), i, "input size")
    _check_dim("kernel.shape[1]", _static_dim(kernel.shape, 1), gates, "4 * hidden size")
    _check_dim("bias.shape[0]", _static_dim(bias.shape, 0), gates, "4 * hidden size")
    for name, t in (("h0", h0), ("c0", c0)):
        _check_dim(f"{name}.shape[0]", _static_dim(t.shape, 0), b, "batch size of inputs")
        _check_dim(f"{name}.shape[1]", _static_dim(t.shape, 1), hidden, "hidden size")

    extra = []
    if sequence_length is not None:
        extra.append(_utils.sequence_lengths("lstm_sequence", sequence_length, b))
    variant = (dtype, bool(extra), bool(reverse), _use_native(dtype))
    fwd = _program(*variant, "fwd")

    @tf.custom_gradient
    def run(x, h0, c0, kernel, recurrent_kernel, bias):
        args = [tf.stop_gradient(t) for t in (x, h0, c0, kernel, recurrent_kernel, bias)]
        out, h, c, *saved = fwd(*args, *extra)

        def grad(d_out, d_h, d_c):
            d_out = tf.zeros_like(out) if d_out is None else d_out
            d_h = tf.zeros_like(h) if d_h is None else d_h
            d_c = tf.zeros_like(c) if d_c is None else d_c
            bwd = _program(*variant, "bwd")
            grads = bwd(d_out, d_h, d_c, args[3], args[4], *saved, *extra)
            grads = _first_order_only(*grads)
            if not tf.executing_eagerly():
                for g, t in zip(grads, (x, h0, c0, kernel, recurrent_kernel, bias)):
                    g.set_shape(t.shape)
            return grads

        return (out, h, c), grad

    out, h, c = run(x, h0, c0, kernel, recurrent_kernel, bias)
    if not tf.executing_eagerly():
        out.set_shape([n, b, hidden])
        h.set_shape([b, hidden])
        c.set_shape([b, hidden])
    return out, h, c


# Registered at import, so that `import rnn` is all a process needs to load
# a SavedModel whose graphs use the kernels.
_load_kernels()
