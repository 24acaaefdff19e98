"""Recurrent cores: VanillaRNN, LSTM (with LSTMState), GRU, recurrent dropout.

The maths of each step lives in a pure function (``_vanilla_fn``,
``_lstm_fn``, ``_gru_fn``) that takes its weights as arguments; the modules
own the variables, create them on the first call (sized from the inputs, in
the ``dtype`` given to the constructor or else the inputs' dtype) and call
the pure functions.

**Mixed precision** (as Keras' ``mixed_float16`` / ``mixed_bfloat16``): a
core whose variables are float32 (``dtype=tf.float32``, or built from
float32 inputs) also takes float16 or bfloat16 inputs and state; the
variables stay float32 (and their gradients are float32) and are cast to
the inputs' dtype on each call. The layer norm is computed in float32 and
cast back. Any other dtype mismatch is a TypeError.

Every constructor takes ``hidden_size`` positionally and everything else by
keyword only (so ``LSTM(16, 4)``, which means a projection size in Sonnet,
is a TypeError rather than a forget bias). Initializers take Keras' names
(``kernel_initializer``, ``recurrent_initializer``, ``bias_initializer``)
or Sonnet's (``w_i_init``, ``w_h_init``, ``b_init``); ``None`` keeps the
defaults (Glorot uniform kernel, orthogonal recurrent kernel, zero bias).

Weights use Keras' layout so that values copied from ``keras.layers.LSTM`` /
``keras.layers.GRU`` give identical outputs:

* LSTM: ``kernel [I, 4H]``, ``recurrent_kernel [H, 4H]``, ``bias [4H]``,
  gates in the order (input, forget, cell candidate, output).
* GRU: ``kernel [I, 3H]``, ``recurrent_kernel [H, 3H]``, gates in the order
  (update, reset, candidate); ``bias [3H]``, or ``[2, 3H]`` (input bias,
  recurrent bias) with ``reset_after=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import tensorflow as tf

import nestlib
from rnn import _utils
from rnn._checks import (
    aliased,
    float_dtype,
    initial_value,
    initializer,
    initializer_config,
    positive_int,
)
from rnn.base import RNNCore
from rnn.ops import gru as gru_ops
from rnn.ops import lstm as lstm_ops
from rnn.ops import vanilla as vanilla_ops

__all__ = [
    "VanillaRNN",
    "LSTM",
    "LSTMState",
    "GRU",
    "lstm_with_recurrent_dropout",
]

_LN_EPSILON = 1e-5


# --------------------------------------------------------------------------
# Pure step functions.
# --------------------------------------------------------------------------


@_utils.no_autograph
def _vanilla_fn(
    inputs: tf.Tensor,
    prev_state: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    activation: Callable[[tf.Tensor], tf.Tensor],
) -> tuple[tf.Tensor, tf.Tensor]:
    """``h = activation(x @ kernel + h_prev @ recurrent_kernel + bias)``."""
    h = activation(tf.matmul(inputs, kernel) + tf.matmul(prev_state, recurrent_kernel) + bias)
    return h, h


@_utils.no_autograph
def _layer_norm(x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) -> tf.Tensor:
    """Normalises the last axis of ``x``, then ``* scale + offset``.

    A float16 or bfloat16 ``x`` is normalised in float32 (its moments, the
    epsilon and ``scale``/``offset``, which may be float32 variables) and the
    result cast back, as Keras' ``LayerNormalization`` does under mixed
    precision: float16's squares overflow above 256 and its epsilon is
    subnormal.
    """
    work = _utils.at_least_float32(x)
    mean, variance = tf.nn.moments(work, axes=[-1], keepdims=True)
    eps = tf.cast(_LN_EPSILON, work.dtype)
    scale, offset = _utils.cast_variables(work.dtype, [scale, offset])
    normed = (work - mean) * tf.math.rsqrt(variance + eps) * scale + offset
    return tf.cast(normed, x.dtype) if normed.dtype != x.dtype else normed


class LSTMState(NamedTuple):
    """State of an :class:`LSTM`: ``hidden`` ``[B, P or H]`` and ``cell`` ``[B, H]``.

    >>> LSTMState(hidden=tf.zeros([1, 2]), cell=tf.zeros([1, 2])).cell.shape.as_list()
    [1, 2]
    """

    hidden: Any
    cell: Any


@_utils.no_autograph
def _lstm_fn(
    inputs: tf.Tensor,
    prev_state: LSTMState,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    projection: tf.Tensor | None = None,
    layer_norm: tuple[tf.Tensor, ...] | None = None,
    cell_clip: float | None = None,
) -> tuple[tf.Tensor, LSTMState]:
    """One LSTM step with Keras' gate layout (i, f, c, o).

    ``layer_norm`` is ``None`` or the six tensors (kernel scale, kernel offset,
    recurrent scale, recurrent offset, cell scale, cell offset): the input and
    recurrent pre-activations are normalised separately before the bias is
    added, and the cell is normalised before its ``tanh`` (as in Ba et al.
    2016 and TF Addons' LayerNormLSTMCell). ``cell_clip`` clips the new cell
    to ``[-cell_clip, cell_clip]``; ``projection`` maps the output to the
    projection size (Sak et al. 2014).
    """
    x_part = tf.matmul(inputs, kernel)
    h_part = tf.matmul(prev_state.hidden, recurrent_kernel)
    if layer_norm is not None:
        k_scale, k_offset, r_scale, r_offset, c_scale, c_offset = layer_norm
        x_part = _layer_norm(x_part, k_scale, k_offset)
        h_part = _layer_norm(h_part, r_scale, r_offset)
    gates = x_part + h_part + bias
    i, f, g, o = tf.split(gates, 4, axis=-1)
    cell = tf.sigmoid(f) * prev_state.cell + tf.sigmoid(i) * tf.tanh(g)
    if cell_clip is not None:
        cell = tf.clip_by_value(cell, -cell_clip, cell_clip)
    shown_cell = cell
    if layer_norm is not None:
        shown_cell = _layer_norm(cell, c_scale, c_offset)
    hidden = tf.sigmoid(o) * tf.tanh(shown_cell)
    if projection is not None:
        hidden = tf.matmul(hidden, projection)
    return hidden, LSTMState(hidden=hidden, cell=cell)


@_utils.no_autograph
def _gru_fn(
    inputs: tf.Tensor,
    prev_state: tf.Tensor,
    kernel: tf.Tensor,
    recurrent_kernel: tf.Tensor,
    bias: tf.Tensor,
    reset_after: bool,
) -> tuple[tf.Tensor, tf.Tensor]:
    """One GRU step with Keras' layout (update z, reset r, candidate).

    ``reset_after=False`` (Cho et al. 2014): the reset gate multiplies the
    previous state before the recurrent matmul; ``bias`` is ``[3H]``.
    ``reset_after=True`` (Keras' and cuDNN's default): it multiplies the
    recurrent matmul's result; ``bias`` is ``[2, 3H]`` (input, recurrent).
    The new state is ``z * h_prev + (1 - z) * candidate``.
    """
    h = prev_state
    units = recurrent_kernel.shape[0]
    if reset_after:
        x_all = tf.matmul(inputs, kernel) + bias[0]
        h_all = tf.matmul(h, recurrent_kernel) + bias[1]
        x_z, x_r, x_h = tf.split(x_all, 3, axis=-1)
        h_z, h_r, h_h = tf.split(h_all, 3, axis=-1)
        z = tf.sigmoid(x_z + h_z)
        r = tf.sigmoid(x_r + h_r)
        candidate = tf.tanh(x_h + r * h_h)
    else:
        x_all = tf.matmul(inputs, kernel) + bias
        x_z, x_r, x_h = tf.split(x_all, 3, axis=-1)
        h_zr = tf.matmul(h, recurrent_kernel[:, : 2 * units])
        h_z, h_r = tf.split(h_zr, 2, axis=-1)
        z = tf.sigmoid(x_z + h_z)
        r = tf.sigmoid(x_r + h_r)
        candidate = tf.tanh(x_h + tf.matmul(r * h, recurrent_kernel[:, 2 * units :]))
    new_h = z * h + (1 - z) * candidate
    return new_h, new_h


# --------------------------------------------------------------------------
# Modules.
# --------------------------------------------------------------------------


@_utils.no_autograph
def _check_state_tensor(core: str, path: str, value: Any, dtype: tf.DType, width: int) -> tf.Tensor:
    if value is None:
        raise TypeError(f"{core}: prev_state{path} is None; expected a tensor")
    value = tf.convert_to_tensor(value)
    if value.dtype != dtype:
        raise TypeError(
            f"{core}: prev_state{path} has dtype {value.dtype.name} but the inputs have dtype "
            f"{dtype.name}; the state must have the inputs' dtype (make it with "
            f"initial_state(batch_size, dtype={dtype.name}))"
        )
    if value.shape.rank != 2 or (value.shape[-1] is not None and value.shape[-1] != width):
        raise ValueError(
            f"{core}: prev_state{path} must have shape [batch, {width}], got {value.shape}"
        )
    return value


class _LazyCore(RNNCore):
    """Shared logic: variables are made on the first call, from the inputs.

    ``dtype`` (the variables' dtype; None: the first inputs') and the
    initializer arguments (Keras' names, Sonnet's as aliases) are resolved
    here for every core. The compute dtype is the inputs' (and the state's):
    the variables' own, or float16/bfloat16 with float32 variables (mixed
    precision), which :meth:`_weights` casts to it on each call.
    """

    def __init__(
        self,
        name: str | None,
        dtype: Any,
        kernel_initializer: Any,
        recurrent_initializer: Any,
        bias_initializer: Any,
        w_i_init: Any,
        w_h_init: Any,
        b_init: Any,
    ):
        super().__init__(name=name)
        self._input_size: int | None = None
        self._dtype: tf.DType | None = None  # the variables' dtype, once built
        self._dtype_arg = float_dtype("dtype", dtype)
        self._initializer_args: dict[str, Any] = {}
        self._initializers: dict[str, Any] = {}
        for keras_name, keras_value, sonnet_name, sonnet_value in (
            ("kernel_initializer", kernel_initializer, "w_i_init", w_i_init),
            ("recurrent_initializer", recurrent_initializer, "w_h_init", w_h_init),
            ("bias_initializer", bias_initializer, "b_init", b_init),
        ):
            self._add_initializer(
                keras_name, aliased(keras_name, keras_value, sonnet_name, sonnet_value)
            )

    def _add_initializer(self, name: str, value: Any) -> None:
        self._initializers[name] = initializer(name, value)
        self._initializer_args[name] = value

    def _common_config(self) -> dict[str, Any]:
        """``dtype`` and the initializers, as ``get_config`` stores them.

        Only those given: at their default (None) they are left out, so
        configs (and models saved) without them stay what they were.
        """
        config: dict[str, Any] = {}
        if self._dtype_arg is not None:
            config["dtype"] = self._dtype_arg.name
        for name, value in self._initializer_args.items():
            if value is not None:
                config[name] = initializer_config(value)
        return config

    def _initial(
        self,
        name: str,
        shape: list[int],
        dtype: tf.DType,
        default: Callable[[list[int], tf.DType], tf.Tensor],
    ) -> tf.Tensor:
        """The initial value of a variable: the ``name`` initializer's, or ``default`` 's."""
        init = self._initializers[name]
        if init is None:
            return default(shape, dtype)
        return initial_value(name, init, shape, dtype)

    def _create_variables(self, input_size: int, dtype: tf.DType) -> None:
        raise NotImplementedError

    @_utils.no_autograph
    def _build(self, inputs: tf.Tensor) -> tf.DType:
        """Creates the variables on first use; later checks size and dtype.

        Only ``inputs.shape[-1]`` and ``inputs.dtype`` are read, so a whole
        ``[T, B, I]`` sequence works as well as one ``[B, I]`` step. Returns
        the compute dtype (the inputs'): the variables' dtype, or float16 /
        bfloat16 with float32 variables; any other pair is a TypeError.
        """
        name = type(self).__name__
        input_size = inputs.shape[-1]
        if self._input_size is None:
            dtype = self._dtype_arg or inputs.dtype
            compute = _utils.compute_dtype(name, dtype, "inputs", inputs, "its dtype argument")
            with self.name_scope:
                self._create_variables(input_size, dtype)
            self._input_size = input_size
            self._dtype = dtype
            return compute
        if input_size != self._input_size:
            raise ValueError(
                f"{name} was built for inputs with {self._input_size} features, got {input_size}"
            )
        assert self._dtype is not None
        return _utils.compute_dtype(name, self._dtype, "inputs", inputs, "its variables' dtype")

    @staticmethod
    def _weights(dtype: tf.DType, *variables: Any) -> list[Any]:
        """The variables as the step reads them: cast to the compute ``dtype``
        under mixed precision (the cast's gradient is float32 again), else the
        variables themselves."""
        return _utils.cast_variables(dtype, variables)

    def _whole_sequence_state(
        self, name: str, input_sequence: Any, initial_state: Any
    ) -> tf.Tensor | None:
        """The checked one-tensor state where a whole-sequence program applies
        (one floating-point ``[T, B, I]`` tensor with a known feature size and
        a one-tensor state; the variables are built), else None."""
        if not isinstance(input_sequence, tf.Tensor) or not isinstance(
            initial_state, (tf.Tensor, tf.Variable)
        ):
            return None
        if input_sequence.shape.rank != 3 or input_sequence.shape[-1] is None:
            return None
        if not input_sequence.dtype.is_floating:
            return None
        self._build(input_sequence)  # uses only the feature size and dtype (and checks it)
        return _check_state_tensor(name, "", initial_state, input_sequence.dtype, self._hidden_size)

    @_utils.no_autograph
    def _reset_arguments(
        self,
        input_sequence: tf.Tensor,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        reset: tf.Tensor | None,
        reset_state: Any,
        program_state: Callable[[Any], Any],
    ) -> dict[str, Any]:
        """The whole-sequence programs' ``reset`` / ``reset_state`` from the
        unrollers' segment marks (empty without resets); ``program_state``
        turns the core's reset state into the program's argument."""
        if reset is None:
            return {}
        steps = tf.shape(input_sequence)[0]
        before = _utils.reset_before_steps(reset, sequence_length, steps, reverse)
        return {"reset": before, "reset_state": program_state(reset_state)}

    @_utils.no_autograph
    def _one_tensor_resets(
        self,
        name: str,
        input_sequence: tf.Tensor,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        reset: tf.Tensor | None,
        reset_state: Any,
    ) -> dict[str, Any]:
        """:meth:`_reset_arguments` for a core whose state is one tensor."""
        return self._reset_arguments(
            input_sequence,
            sequence_length,
            reverse,
            reset,
            reset_state,
            lambda r: _check_state_tensor(name, "", r, input_sequence.dtype, self._hidden_size),
        )

    @_utils.no_autograph
    def _check_initial_dtype(self, dtype: Any) -> tf.DType:
        if dtype is None:
            return self._dtype_arg or tf.float32
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise TypeError(
                f"{type(self).__name__}.initial_state needs a floating point "
                f"dtype, got {dtype.name}"
            )
        return dtype


class VanillaRNN(_LazyCore):
    """A fully connected recurrent layer: ``h = activation(x W + h U + b)``.

    Arguments after ``hidden_size`` are keyword-only: ``activation``,
    ``dtype`` (the variables' dtype; None: the first inputs' dtype; also
    :meth:`initial_state` 's default, else float32; float32 variables also
    run float16 or bfloat16 inputs and state, cast to that dtype on each
    call: mixed precision), and the initializers
    ``kernel_initializer`` (W, Glorot uniform), ``recurrent_initializer``
    (U, orthogonal) and ``bias_initializer`` (b, zeros), each a name
    (``"ones"``), a Keras initializer or a callable ``(shape, dtype) ->
    value``; Sonnet's names ``w_i_init``, ``w_h_init`` and ``b_init`` are
    accepted for them (giving both names of one is a TypeError).

    Same layout as ``keras.layers.SimpleRNN`` (``kernel [I, H]``,
    ``recurrent_kernel [H, H]``, ``bias [H]``); the output is the new state.
    With the default ``tanh`` it processes whole sequences through
    ``rnn.ops.vanilla.vanilla_sequence`` when the unrollers ask for it.

    >>> core = VanillaRNN(3)
    >>> out, state = core(tf.ones([2, 4]), core.initial_state(2))
    >>> out.shape.as_list(), state.shape.as_list()
    ([2, 3], [2, 3])
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        activation: Callable[[tf.Tensor], tf.Tensor] = tf.tanh,
        dtype: Any = None,
        kernel_initializer: Any = None,
        recurrent_initializer: Any = None,
        bias_initializer: Any = None,
        w_i_init: Any = None,
        w_h_init: Any = None,
        b_init: Any = None,
        name: str | None = None,
    ):
        super().__init__(
            name,
            dtype,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            w_i_init,
            w_h_init,
            b_init,
        )
        self._hidden_size = positive_int("hidden_size", hidden_size)
        if not callable(activation):
            raise TypeError(f"activation must be callable, got {activation!r}")
        self._activation = activation

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (the activation is the function itself).

        >>> VanillaRNN(3, activation=tf.nn.relu).get_config()["activation"] is tf.nn.relu
        True
        """
        return {
            "hidden_size": self._hidden_size,
            "activation": self._activation,
            **self._common_config(),
            "name": self.name,
        }

    def _create_variables(self, input_size: int, dtype: tf.DType) -> None:
        h = self._hidden_size
        self.kernel = tf.Variable(
            self._initial("kernel_initializer", [input_size, h], dtype, _utils.glorot_uniform),
            name="kernel",
        )
        self.recurrent_kernel = tf.Variable(
            self._initial("recurrent_initializer", [h, h], dtype, _utils.orthogonal),
            name="recurrent_kernel",
        )
        self.bias = tf.Variable(
            self._initial("bias_initializer", [h], dtype, tf.zeros), name="bias"
        )

    @_utils.no_autograph
    def __call__(self, inputs: tf.Tensor, prev_state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One step; ``prev_state`` is a ``[B, H]`` tensor."""
        inputs = _utils.check_rank2("VanillaRNN", inputs)
        dtype = self._build(inputs)
        prev_state = _check_state_tensor(
            "VanillaRNN", "", prev_state, inputs.dtype, self._hidden_size
        )
        kernel, recurrent_kernel, bias = self._weights(
            dtype, self.kernel, self.recurrent_kernel, self.bias
        )
        return _vanilla_fn(inputs, prev_state, kernel, recurrent_kernel, bias, self._activation)

    @_utils.no_autograph
    def initial_state(self, batch_size: Any, dtype: Any = None) -> tf.Tensor:
        """Zeros ``[batch_size, hidden_size]``; ``dtype`` None: the core's dtype, else float32."""
        dtype = self._check_initial_dtype(dtype)
        return tf.zeros([batch_size, self._hidden_size], dtype)

    unroll_fast_path_options = frozenset({"reset", "return_all_states"})

    @_utils.no_autograph
    def unroll_fast_path(
        self,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        *,
        reset: tf.Tensor | None = None,
        reset_state: Any = None,
        return_all_states: bool = False,
    ) -> tuple[tf.Tensor, ...] | None:
        """Runs the core over a whole ``[T, B, I]`` sequence at once.

        Applies when the activation is ``tanh``, the inputs are one
        floating-point ``[T, B, I]`` tensor with a known feature size and
        the state one tensor; :func:`rnn.ops.vanilla.vanilla_sequence` does
        the work. Returns None otherwise (the unroller then steps the core).
        The state after every step is the output.

        >>> core = VanillaRNN(2)
        >>> out, h = core.unroll_fast_path(tf.ones([3, 1, 2]), core.initial_state(1),
        ...                                None, False)
        >>> out.shape.as_list(), h.shape.as_list()
        ([3, 1, 2], [1, 2])
        >>> VanillaRNN(2, activation=tf.nn.relu).unroll_fast_path(
        ...     tf.ones([3, 1, 2]), tf.zeros([1, 2]), None, False) is None
        True
        """
        if self._activation is not tf.tanh:
            return None
        state = self._whole_sequence_state("VanillaRNN", input_sequence, initial_state)
        if state is None:
            return None
        out, h = vanilla_ops.vanilla_sequence(
            input_sequence,
            state,
            *self._weights(input_sequence.dtype, self.kernel, self.recurrent_kernel, self.bias),
            sequence_length=sequence_length,
            reverse=reverse,
            **self._one_tensor_resets(
                "VanillaRNN", input_sequence, sequence_length, reverse, reset, reset_state
            ),
        )
        return (out, h, out) if return_all_states else (out, h)


class LSTM(_LazyCore):
    """Long short-term memory core with Keras' weight layout.

    ``forget_bias`` is added to the forget-gate slice of the initial bias
    (with the default zero bias this is Keras' ``unit_forget_bias``; Sonnet
    adds it at run time instead); nothing is added at run time, so weights
    copied from ``keras.layers.LSTM`` give identical outputs. Optional
    extras: ``projection_size`` (the output and ``hidden`` state are
    projected to that size), ``use_layer_norm`` and ``cell_clip``.

    Arguments after ``hidden_size`` are keyword-only (``LSTM(16, 4)`` is a
    TypeError: in Sonnet the 4 would be a projection size). ``dtype`` and the
    initializers work as in :class:`VanillaRNN` (kernel: Glorot uniform,
    recurrent kernel: orthogonal, bias: zeros, projection: Glorot uniform,
    ``projection_initializer`` alias ``projection_init``).

    The state is :class:`LSTMState` ``(hidden, cell)``; the output is
    ``hidden``. A plain LSTM (no extras) processes whole sequences through
    ``rnn.ops.lstm.lstm_sequence`` when the unrollers ask for it.

    >>> core = LSTM(3)
    >>> out, state = core(tf.ones([2, 5]), core.initial_state(2))
    >>> out.shape.as_list(), state.cell.shape.as_list()
    ([2, 3], [2, 3])
    >>> core = LSTM(2, bias_initializer="ones", dtype=tf.float64)
    >>> _ = core(tf.ones([1, 3], tf.float64), core.initial_state(1))
    >>> core.bias.numpy().tolist()  # input, forget (1 + forget_bias), cell, output
    [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        forget_bias: float = 1.0,
        projection_size: int | None = None,
        use_layer_norm: bool = False,
        cell_clip: float | None = None,
        dtype: Any = None,
        kernel_initializer: Any = None,
        recurrent_initializer: Any = None,
        bias_initializer: Any = None,
        projection_initializer: Any = None,
        w_i_init: Any = None,
        w_h_init: Any = None,
        b_init: Any = None,
        projection_init: Any = None,
        name: str | None = None,
    ):
        super().__init__(
            name,
            dtype,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            w_i_init,
            w_h_init,
            b_init,
        )
        self._add_initializer(
            "projection_initializer",
            aliased(
                "projection_initializer", projection_initializer, "projection_init", projection_init
            ),
        )
        self._hidden_size = positive_int("hidden_size", hidden_size)
        self._forget_bias = float(forget_bias)
        if projection_size is not None:
            projection_size = positive_int("projection_size", projection_size)
        self._projection_size = projection_size
        self._use_layer_norm = bool(use_layer_norm)
        if cell_clip is not None:
            cell_clip = float(cell_clip)
            if not cell_clip > 0:
                raise ValueError(f"cell_clip must be > 0, got {cell_clip}")
        self._cell_clip = cell_clip

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    @property
    def output_size(self) -> int:
        return self._projection_size or self._hidden_size

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments.

        ``dtype`` and the initializers appear only when given: a name or dict
        as given, a Keras initializer object as its Keras serialization (so
        ``from_config`` and saved Keras models rebuild it), any other callable
        as it is (see :func:`rnn.keras.serialize_core` for which ones can be
        saved).

        >>> config = LSTM(4, projection_size=2).get_config()
        >>> config["hidden_size"], config["projection_size"], config["cell_clip"]
        (4, 2, None)
        >>> import keras
        >>> config = LSTM(4, w_i_init="ones", b_init=keras.initializers.Constant(0.1),
        ...               dtype="float64").get_config()
        >>> config["dtype"], config["kernel_initializer"], config["bias_initializer"]["config"]
        ('float64', 'ones', {'value': 0.1})
        """
        return {
            "hidden_size": self._hidden_size,
            "forget_bias": self._forget_bias,
            "projection_size": self._projection_size,
            "use_layer_norm": self._use_layer_norm,
            "cell_clip": self._cell_clip,
            **self._common_config(),
            "name": self.name,
        }

    def _create_variables(self, input_size: int, dtype: tf.DType) -> None:
        h, p = self._hidden_size, self.output_size
        self.kernel = tf.Variable(
            self._initial("kernel_initializer", [input_size, 4 * h], dtype, _utils.glorot_uniform),
            name="kernel",
        )
        self.recurrent_kernel = tf.Variable(
            self._initial("recurrent_initializer", [p, 4 * h], dtype, _utils.orthogonal),
            name="recurrent_kernel",
        )
        # forget_bias is added to the forget-gate slice of the initial bias (as
        # Sonnet adds it to b at run time; with the default zero bias this is
        # Keras' unit_forget_bias).
        forget = tf.concat([tf.zeros([h]), tf.fill([h], self._forget_bias), tf.zeros([2 * h])], 0)
        bias = self._initial("bias_initializer", [4 * h], dtype, tf.zeros)
        self.bias = tf.Variable(bias + tf.cast(forget, dtype), name="bias")
        self.projection = None
        if self._projection_size is not None:
            self.projection = tf.Variable(
                self._initial("projection_initializer", [h, p], dtype, _utils.glorot_uniform),
                name="projection",
            )
        self.layer_norm = None
        if self._use_layer_norm:
            self.layer_norm = (
                tf.Variable(tf.ones([4 * h], dtype), name="ln_kernel_scale"),
                tf.Variable(tf.zeros([4 * h], dtype), name="ln_kernel_offset"),
                tf.Variable(tf.ones([4 * h], dtype), name="ln_recurrent_scale"),
                tf.Variable(tf.zeros([4 * h], dtype), name="ln_recurrent_offset"),
                tf.Variable(tf.ones([h], dtype), name="ln_cell_scale"),
                tf.Variable(tf.zeros([h], dtype), name="ln_cell_offset"),
            )

    @_utils.no_autograph
    def _check_state(self, prev_state: Any, dtype: tf.DType) -> LSTMState:
        if not isinstance(prev_state, LSTMState):
            raise TypeError(
                f"LSTM expects prev_state to be an LSTMState(hidden, cell), "
                f"got {type(prev_state).__name__}"
            )
        hidden = _check_state_tensor("LSTM", ".hidden", prev_state.hidden, dtype, self.output_size)
        cell = _check_state_tensor("LSTM", ".cell", prev_state.cell, dtype, self._hidden_size)
        return LSTMState(hidden, cell)

    @_utils.no_autograph
    def __call__(self, inputs: tf.Tensor, prev_state: LSTMState) -> tuple[tf.Tensor, LSTMState]:
        """One step; returns ``(hidden, LSTMState(hidden, cell))``."""
        inputs = _utils.check_rank2("LSTM", inputs)
        dtype = self._build(inputs)
        prev_state = self._check_state(prev_state, inputs.dtype)
        kernel, recurrent_kernel, bias, projection = self._weights(
            dtype, self.kernel, self.recurrent_kernel, self.bias, self.projection
        )
        # The layer norm's scales and offsets go in uncast: it normalises a
        # float16/bfloat16 input in float32 (see _layer_norm).
        return _lstm_fn(
            inputs,
            prev_state,
            kernel,
            recurrent_kernel,
            bias,
            projection=projection,
            layer_norm=self.layer_norm,
            cell_clip=self._cell_clip,
        )

    @_utils.no_autograph
    def initial_state(self, batch_size: Any, dtype: Any = None) -> LSTMState:
        """Zeros ``LSTMState([B, P or H], [B, H])``; ``dtype`` None: the core's, else float32."""
        dtype = self._check_initial_dtype(dtype)
        return LSTMState(
            hidden=tf.zeros([batch_size, self.output_size], dtype),
            cell=tf.zeros([batch_size, self._hidden_size], dtype),
        )

    unroll_fast_path_options = frozenset({"reset", "return_all_states"})

    @_utils.no_autograph
    def unroll_fast_path(
        self,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        *,
        reset: tf.Tensor | None = None,
        reset_state: Any = None,
        return_all_states: bool = False,
    ) -> tuple[Any, ...] | None:
        """Runs a plain LSTM over a whole ``[T, B, I]`` sequence at once.

        Applies when the LSTM has no projection, layer norm or cell clip and
        the inputs are one floating-point ``[T, B, I]`` tensor with a known
        feature size; the work is done by :func:`rnn.ops.lstm.lstm_sequence`
        (with ``sequence_length``, ``reverse``, resets and state sequences
        passed through). Returns None otherwise (the unroller then steps the
        core).

        >>> core = LSTM(2, use_layer_norm=True)
        >>> core.unroll_fast_path(tf.ones([3, 1, 2]), core.initial_state(1),
        ...                       None, False) is None
        True
        """
        if self._projection_size is not None or self._use_layer_norm or self._cell_clip is not None:
            return None
        if not isinstance(input_sequence, tf.Tensor) or not isinstance(initial_state, LSTMState):
            return None
        if input_sequence.shape.rank != 3 or input_sequence.shape[-1] is None:
            return None
        if not input_sequence.dtype.is_floating:
            return None
        dtype = self._build(input_sequence)  # uses only the feature size and dtype
        state = self._check_state(initial_state, input_sequence.dtype)
        resets = self._reset_arguments(
            input_sequence,
            sequence_length,
            reverse,
            reset,
            reset_state,
            lambda r: tuple(self._check_state(r, input_sequence.dtype)),
        )
        results = lstm_ops.lstm_sequence(
            input_sequence,
            state.hidden,
            state.cell,
            *self._weights(dtype, self.kernel, self.recurrent_kernel, self.bias),
            sequence_length=sequence_length,
            reverse=reverse,
            return_all_states=return_all_states,
            **resets,
        )
        outputs, h_t, c_t = results[:3]
        final = LSTMState(hidden=h_t, cell=c_t)
        if return_all_states:
            return outputs, final, LSTMState(hidden=outputs, cell=results[3])
        return outputs, final


class GRU(_LazyCore):
    """Gated recurrent unit with Keras' weight layout.

    ``reset_after=False`` is the original formulation (reset gate applied to
    the previous state before the recurrent matmul); ``reset_after=True``
    matches ``keras.layers.GRU``'s default (and cuDNN), with separate input
    and recurrent biases. The state and the output are ``[B, H]`` tensors.
    Whole sequences go through ``rnn.ops.gru.gru_sequence`` when the
    unrollers ask for it; there ``reset_after=True`` is the faster form (one
    recurrent matmul per step instead of two dependent ones).

    Arguments after ``hidden_size`` are keyword-only; ``dtype`` and the
    initializers work as in :class:`VanillaRNN` (with ``reset_after=True``
    ``bias_initializer`` is called with the bias' ``[2, 3H]`` shape).

    >>> core = GRU(3, reset_after=True)
    >>> out, state = core(tf.ones([2, 4]), core.initial_state(2))
    >>> core.bias.shape.as_list()
    [2, 9]
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        reset_after: bool = False,
        dtype: Any = None,
        kernel_initializer: Any = None,
        recurrent_initializer: Any = None,
        bias_initializer: Any = None,
        w_i_init: Any = None,
        w_h_init: Any = None,
        b_init: Any = None,
        name: str | None = None,
    ):
        super().__init__(
            name,
            dtype,
            kernel_initializer,
            recurrent_initializer,
            bias_initializer,
            w_i_init,
            w_h_init,
            b_init,
        )
        self._hidden_size = positive_int("hidden_size", hidden_size)
        self._reset_after = bool(reset_after)

    @property
    def hidden_size(self) -> int:
        return self._hidden_size

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments.

        >>> GRU(3).get_config()
        {'hidden_size': 3, 'reset_after': False, 'name': 'gru'}
        """
        return {
            "hidden_size": self._hidden_size,
            "reset_after": self._reset_after,
            **self._common_config(),
            "name": self.name,
        }

    def _create_variables(self, input_size: int, dtype: tf.DType) -> None:
        h = self._hidden_size
        self.kernel = tf.Variable(
            self._initial("kernel_initializer", [input_size, 3 * h], dtype, _utils.glorot_uniform),
            name="kernel",
        )
        self.recurrent_kernel = tf.Variable(
            self._initial("recurrent_initializer", [h, 3 * h], dtype, _utils.orthogonal),
            name="recurrent_kernel",
        )
        bias_shape = [2, 3 * h] if self._reset_after else [3 * h]
        self.bias = tf.Variable(
            self._initial("bias_initializer", bias_shape, dtype, tf.zeros), name="bias"
        )

    @_utils.no_autograph
    def __call__(self, inputs: tf.Tensor, prev_state: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One step; ``prev_state`` is a ``[B, H]`` tensor."""
        inputs = _utils.check_rank2("GRU", inputs)
        dtype = self._build(inputs)
        prev_state = _check_state_tensor("GRU", "", prev_state, inputs.dtype, self._hidden_size)
        kernel, recurrent_kernel, bias = self._weights(
            dtype, self.kernel, self.recurrent_kernel, self.bias
        )
        return _gru_fn(inputs, prev_state, kernel, recurrent_kernel, bias, self._reset_after)

    @_utils.no_autograph
    def initial_state(self, batch_size: Any, dtype: Any = None) -> tf.Tensor:
        """Zeros ``[batch_size, hidden_size]``; ``dtype`` None: the core's dtype, else float32."""
        dtype = self._check_initial_dtype(dtype)
        return tf.zeros([batch_size, self._hidden_size], dtype)

    unroll_fast_path_options = frozenset({"reset", "return_all_states"})

    @_utils.no_autograph
    def unroll_fast_path(
        self,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        *,
        reset: tf.Tensor | None = None,
        reset_state: Any = None,
        return_all_states: bool = False,
    ) -> tuple[tf.Tensor, ...] | None:
        """Runs the GRU over a whole ``[T, B, I]`` sequence at once.

        Applies (in both forms) when the inputs are one floating-point
        ``[T, B, I]`` tensor with a known feature size and the state one
        tensor; the work is done by :func:`rnn.ops.gru.gru_sequence` (with
        ``sequence_length`` and ``reverse`` passed through). Returns None
        otherwise (the unroller then steps the core). The state after every
        step is the output.

        >>> core = GRU(2)
        >>> out, h = core.unroll_fast_path(tf.ones([3, 1, 2]), core.initial_state(1),
        ...                                None, False)
        >>> out.shape.as_list(), h.shape.as_list()
        ([3, 1, 2], [1, 2])
        >>> core.unroll_fast_path((tf.ones([3, 1, 2]),), core.initial_state(1),
        ...                       None, False) is None
        True
        """
        state = self._whole_sequence_state("GRU", input_sequence, initial_state)
        if state is None:
            return None
        out, h = gru_ops.gru_sequence(
            input_sequence,
            state,
            *self._weights(input_sequence.dtype, self.kernel, self.recurrent_kernel, self.bias),
            sequence_length=sequence_length,
            reverse=reverse,
            reset_after=self._reset_after,
            **self._one_tensor_resets(
                "GRU", input_sequence, sequence_length, reverse, reset, reset_state
            ),
        )
        return (out, h, out) if return_all_states else (out, h)


class _RecurrentDropoutWrapper(RNNCore):
    """Applies a fixed-per-sequence dropout mask to part of a core's state.

    The state is ``(core_state, masks)``; ``masks`` mirrors ``core_state`` with
    a mask tensor where a rate is given and ``None`` elsewhere. The masks are
    drawn in :meth:`initial_state` and then carried unchanged, so every step
    of a sequence drops the same units (Gal & Ghahramani 2016).
    """

    def __init__(self, core: RNNCore, rates: Any, seed: int | None, name: str | None = None):
        super().__init__(name=name)
        self._core = core
        self._rates = rates
        self._seed = seed

    @_utils.no_autograph
    def __call__(self, inputs: Any, prev_state: tuple[Any, Any]) -> tuple[Any, tuple[Any, Any]]:
        if not isinstance(prev_state, tuple) or len(prev_state) != 2:
            raise TypeError(
                "recurrent dropout core expects prev_state = (core_state, "
                f"masks), got {type(prev_state).__name__}"
            )
        core_state, masks = prev_state
        nestlib.assert_same_structure(core_state, masks)

        def apply(x: Any, mask: Any) -> Any:
            return x if mask is None else x * mask

        dropped = nestlib.map_structure(apply, core_state, masks)
        output, next_state = self._core(inputs, dropped)
        return output, (next_state, masks)

    @_utils.no_autograph
    def initial_state(self, batch_size: Any, dtype: Any = None) -> tuple[Any, Any]:
        """``(core.initial_state(...), masks)`` with freshly drawn masks."""
        core_state = self._core.initial_state(batch_size, dtype=dtype)

        def mask(rate: float | None, x: tf.Tensor) -> tf.Tensor | None:
            if rate is None:
                return None
            keep = tf.random.uniform(tf.shape(x), dtype=tf.float32, seed=self._seed) >= rate
            return tf.cast(keep, x.dtype) * tf.constant(1.0 / (1.0 - rate), x.dtype)

        masks = nestlib.map_structure(mask, self._rates, core_state)
        return core_state, masks


def lstm_with_recurrent_dropout(
    hidden_size: int, dropout: float = 0.5, seed: int | None = None, **lstm_kwargs: Any
) -> tuple[RNNCore, LSTM]:
    """Returns ``(train_core, test_core)`` sharing one :class:`LSTM`.

    The train core drops units of the previous ``hidden`` state with rate
    ``dropout``, using one mask per sequence (drawn by its
    ``initial_state``). Its state is ``(LSTMState, LSTMState(hidden=mask,
    cell=None))``: the ``None`` leaf passes through the unrollers unchanged.
    The test core is the LSTM itself (no dropout). Extra keyword arguments go
    to :class:`LSTM`.

    >>> train, test = lstm_with_recurrent_dropout(4, dropout=0.25)
    >>> state = train.initial_state(2)
    >>> out, state = train(tf.ones([2, 3]), state)
    >>> state[1].cell is None, out.shape.as_list()
    (True, [2, 4])
    """
    dropout = float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"lstm_with_recurrent_dropout: dropout must be in the range [0, 1), got {dropout}"
        )
    lstm = LSTM(hidden_size, **lstm_kwargs)
    rates = LSTMState(hidden=dropout, cell=None)
    train = _RecurrentDropoutWrapper(lstm, rates, seed, name="lstm_with_recurrent_dropout")
    return train, lstm
