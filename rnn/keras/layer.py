"""The :class:`RNN` layer: an :mod:`rnn` core unrolled over batch-major Keras inputs.

See :mod:`rnn.keras` for how weights, masks, structures, ``go_backwards`` and
saving work.

>>> import numpy as np, rnn, rnn.keras
>>> layer = rnn.keras.RNN(rnn.GRU(2), return_sequences=True)
>>> layer(np.ones((1, 3, 4), "float32")).shape.as_list()
[1, 3, 2]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

import nestlib
from rnn.base import call_initial_state, is_core
from rnn.keras.serialization import deserialize_core, serialize_core
from rnn.keras.variables import keras_layers_in, wrap_variable
from rnn.unroll import dynamic_unroll, static_unroll

__all__ = ["RNN"]


# --------------------------------------------------------------------------
# Input shapes and initial states, walked with nestlib.
# --------------------------------------------------------------------------


def _is_shape(x: Any) -> bool:
    """A ``tf.TensorShape`` or a plain tuple/list of dims (ints or None)."""
    if isinstance(x, tf.TensorShape):
        return True
    return (
        isinstance(x, (tuple, list))
        and not hasattr(x, "_fields")
        and all(
            d is None or (isinstance(d, numbers.Integral) and not isinstance(d, bool)) for d in x
        )
    )


def _map_shapes(fn: Callable[[tuple[int | None, ...]], Any], shapes: Any) -> Any:
    """Maps ``fn`` over a nest whose leaves are shapes (tuples of ints/None)."""

    def leaf(shape: Any) -> Any:
        if not _is_shape(shape):
            raise TypeError(f"cannot read an input shape from {shape!r}")
        return fn(tuple(tf.TensorShape(shape).as_list()))

    return nestlib.map_structure(leaf, shapes, is_leaf=_is_shape)


def _plain_shapes(shapes: Any) -> Any:
    """The same nest with tuples/lists of dims as JSON-friendly lists."""
    return _map_shapes(list, shapes)


def _canonical(structure: Any) -> Any:
    """``structure`` with every list, tuple and namedtuple a list, every mapping a dict."""

    def plain(node: Any) -> Any:
        if nestlib.is_mapping(node):
            return dict(node)
        if isinstance(node, (list, tuple)):
            return list(node)
        return None  # keep

    return nestlib.traverse(plain, structure, top_down=False)


def _restructure(template: Any, given: Any) -> Any | None:
    """``given`` rebuilt with ``template`` 's node types, or None when it does not fit.

    Lists, tuples and namedtuples of the same length are interchangeable
    (Keras' functional config stores namedtuples and tuples as lists);
    mappings need the same keys; leaves must stay leaves and ``None`` stays
    ``None``.
    """
    try:
        nestlib.assert_same_structure(_canonical(template), _canonical(given))
    except (TypeError, ValueError):
        return None
    leaves = nestlib.flatten(given)
    if any((t is None) != (g is None) for t, g in zip(nestlib.flatten(template), leaves)):
        return None
    return nestlib.pack_sequence_as(template, leaves)


# --------------------------------------------------------------------------
# The kept state of a stateful layer.
# --------------------------------------------------------------------------


class _KeptState:
    """The variables a stateful layer keeps its state in, one per state leaf.

    A plain holder, so that neither Keras nor TensorFlow tracks the variables:
    like ``keras.layers.RNN(stateful=True)`` 's ``states``, they are not the
    layer's weights (weights move between a stateful layer and a stateless
    one, or one of another batch size) and are not saved.
    """

    def __init__(
        self,
        spec: nestlib.Spec,
        variables: list[keras.Variable | None],
        dtypes: list[tf.DType | None],
        batch_size: int,
        dtype: tf.DType,
    ):
        self.spec = spec
        self.variables = variables
        self.dtypes = dtypes  # each leaf's dtype as the core makes it
        self.batch_size = batch_size
        self.dtype = dtype  # the dtype the core's initial_state was asked for


def _state_variable_name(path: tuple[Any, ...]) -> str:
    """``state_hidden`` for the leaf at ``("hidden",)``, ``state_0_cell`` for ``(0, "cell")``."""
    return "_".join(["state"] + [str(p) for p in path])


# --------------------------------------------------------------------------
# The layer.
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="rnn")
class RNN(keras.layers.Layer):
    """A Keras 3 layer that unrolls an :mod:`rnn` core over batch-major inputs.

    Args:
      core: the core: anything with ``__call__(inputs, prev_state)`` and
        ``initial_state(batch_size, ...)`` (see :func:`rnn.base.is_core`), a
        Sonnet 2 core included; its variables become this layer's weights
        when the layer is built. ``initial_state`` is given ``dtype=`` only
        when it takes one (:func:`rnn.base.call_initial_state`). Saving the
        layer needs the core's class registered with
        :func:`rnn.keras.register_core`.
      return_sequences: return the whole output sequence ``[B, T, ...]``
        (default: the output of the last valid step of each example).
      return_state: also return the final state: the layer returns
        ``(outputs, final_state)`` with the core's state structure.
      go_backwards: read the sequence backwards (see the module docs; with
        ``return_sequences`` the outputs are in reversed time order).
      unroll: ``"dynamic"`` (:func:`rnn.dynamic_unroll`, any number of time
        steps) or ``"static"`` (:func:`rnn.static_unroll`, needs a static
        number of time steps).
      stateful: keep each example's final state as the initial state of the
        same example in the next batch (as ``keras.layers.RNN``); needs a
        fixed batch size (``keras.Input(..., batch_size=B)``). The kept state
        is :attr:`states`; :meth:`reset_state` resets it, for all examples
        or some.
      **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``,
        ``trainable``).

    Call arguments: ``inputs`` (a ``[B, T, ...]`` tensor or nest of them),
    ``initial_state`` (optional, the core's state structure with batch ``B``)
    and ``mask`` (optional ``[B, T]`` bool, right-padded; Keras passes it).

    >>> import numpy as np, rnn, rnn.keras
    >>> layer = rnn.keras.RNN(rnn.LSTM(3), return_sequences=True,
    ...                       return_state=True)
    >>> outputs, state = layer(np.ones((2, 4, 5), "float32"))
    >>> outputs.shape.as_list(), type(state).__name__
    ([2, 4, 3], 'LSTMState')
    >>> sorted(w.name for w in layer.weights)
    ['lstm_bias', 'lstm_kernel', 'lstm_recurrent_kernel']
    """

    def __init__(
        self,
        core: Any,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        unroll: str = "dynamic",
        stateful: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not is_core(core):
            raise TypeError(
                "RNN needs a core: an object with __call__(inputs, prev_state) "
                f"and initial_state(batch_size, ...); got {type(core).__name__}"
            )
        for arg, value in (
            ("return_sequences", return_sequences),
            ("return_state", return_state),
            ("go_backwards", go_backwards),
            ("stateful", stateful),
        ):
            if not isinstance(value, bool):
                raise TypeError(f"RNN: {arg} must be a bool, got {value!r}")
        if unroll not in ("dynamic", "static"):
            raise ValueError(f"RNN: unroll must be 'dynamic' or 'static', got {unroll!r}")
        self._core = core
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.unroll = unroll
        self.stateful = stateful  # also read by keras.layers.Bidirectional
        self._kept: _KeptState | None = None
        self.supports_masking = True
        self._build_input_shape: Any = None
        self._num_output_leaves = 1
        self._num_state_leaves = 0

    @property
    def core(self) -> Any:
        """The wrapped core (its variables are this layer's weights)."""
        return self._core

    @property
    def states(self) -> Any:
        """A stateful layer's kept state: ``keras.Variable`` s in the core's state structure.

        ``None`` until a stateful layer is built, and always ``None`` for a
        layer that is not stateful. Like ``keras.layers.RNN`` 's ``states``,
        the variables are not among the layer's weights: ``get_weights`` /
        ``set_weights`` and saving leave them out.

        >>> import numpy as np, rnn, rnn.keras
        >>> layer = rnn.keras.RNN(rnn.LSTM(3), stateful=True)
        >>> _ = layer(np.ones((2, 4, 5), "float32"))
        >>> type(layer.states).__name__, tuple(layer.states.hidden.shape)
        ('LSTMState', (2, 3))
        """
        kept = self._kept
        if kept is None:
            return None
        return kept.spec.unflatten(list(kept.variables))

    # ----------------------------------------------------------------- build
    def build(self, input_shape: Any) -> None:
        """Creates the core's variables (one eager step on a dummy batch) and tracks them.

        The dummy step runs in the policy's variable dtype, so under a
        mixed-precision policy (``"mixed_float16"``, ``"mixed_bfloat16"``) the
        core's variables are float32 while :meth:`call` computes in float16
        or bfloat16 (Keras casts the inputs to the compute dtype).
        """
        dtype = tf.as_dtype(self.compute_dtype)
        if not dtype.is_floating:
            dtype = tf.float32
        variable_dtype = tf.as_dtype(self.variable_dtype)
        if not variable_dtype.is_floating:
            variable_dtype = dtype

        def dummy(shape: tuple[int | None, ...]) -> tf.Tensor:
            if len(shape) < 3:
                raise ValueError(
                    f"RNN layer {self.name!r}: inputs must be [batch, time, "
                    f"features...] (batch-major), got shape {shape}"
                )
            if any(d is None for d in shape[2:]):
                raise ValueError(
                    f"RNN layer {self.name!r}: the feature dimensions of the "
                    f"inputs must be known, got shape {shape}"
                )
            return tf.zeros([1] + list(shape[2:]), variable_dtype)

        with tf.init_scope():
            inputs = _map_shapes(dummy, input_shape)
            state = call_initial_state(self._core, 1, variable_dtype)
            output, _ = self._core(inputs, state)
        self._num_output_leaves = len(nestlib.flatten(output))
        self._num_state_leaves = len(nestlib.flatten(state))
        variables = getattr(self._core, "variables", None)
        if variables is None:
            variables = ()
        self._core_weights = [wrap_variable(v) for v in variables]
        # Keras layers used inside the core (e.g. a Dense in a DeepRNN) own
        # keras.Variables, which tf.Module does not list: track the layers
        # themselves, so their weights are trained and saved as well.
        self._core_layers = keras_layers_in(self._core)
        self._build_input_shape = _plain_shapes(input_shape)
        if self.stateful:
            shapes = nestlib.flatten(_map_shapes(lambda s: s, input_shape), is_leaf=_is_shape)
            batch_size = shapes[0][0]
            if batch_size is None:
                raise ValueError(
                    f"RNN layer {self.name!r}: stateful=True needs a fixed batch "
                    "size (the state of example b is kept for example b of the "
                    "next batch); pass batch_size=... (or batch_shape=...) to "
                    f"keras.Input, got inputs of shape {tuple(shapes[0])}"
                )
            self._create_kept_state(int(batch_size), dtype)

    def _create_kept_state(self, batch_size: int, dtype: tf.DType) -> None:
        """One non-trainable, untracked variable per state leaf, holding the initial state."""
        with tf.init_scope():
            state = call_initial_state(self._core, batch_size, dtype)
            spec = nestlib.spec_of(state)
            variables: list[keras.Variable | None] = []
            dtypes: list[tf.DType | None] = []
            for path, leaf in zip(spec.paths, spec.flatten(state)):
                if leaf is None:
                    variables.append(None)
                    dtypes.append(None)
                    continue
                leaf = tf.convert_to_tensor(leaf)
                # As keras.layers.RNN: a state computed in a mixed-precision
                # compute dtype is kept in the variable dtype.
                store = leaf.dtype
                if leaf.dtype == tf.as_dtype(self.compute_dtype) and leaf.dtype.is_floating:
                    variable_dtype = tf.as_dtype(self.variable_dtype)
                    if variable_dtype.is_floating:
                        store = variable_dtype
                variables.append(
                    keras.Variable(
                        tf.cast(leaf, store),
                        dtype=store.name,
                        trainable=False,
                        autocast=False,
                        name=_state_variable_name(path),
                    )
                )
                dtypes.append(leaf.dtype)
        self._kept = _KeptState(spec, variables, dtypes, batch_size, dtype)

    def get_build_config(self) -> dict[str, Any] | None:
        """The input shape the layer was built with (used when loading)."""
        if self._build_input_shape is None:
            return None
        return {"input_shape": self._build_input_shape}

    def build_from_config(self, config: dict[str, Any] | None) -> None:
        """Builds the layer from :meth:`get_build_config` 's output."""
        if config and "input_shape" in config:
            self.build(config["input_shape"])

    # ------------------------------------------------------------------ call
    def call(self, inputs: Any, initial_state: Any = None, mask: Any = None) -> Any:
        """Unrolls the core; returns outputs, or ``(outputs, final_state)``."""
        core = self._core
        leaves = nestlib.flatten(inputs)
        if not leaves:
            raise ValueError(f"RNN layer {self.name!r}: inputs have no tensors")
        first = tf.convert_to_tensor(leaves[0])
        batch = first.shape[0] if first.shape[0] is not None else tf.shape(first)[0]
        dtype = first.dtype if first.dtype.is_floating else tf.as_dtype(self.compute_dtype)
        kept = self._kept if self.stateful else None
        if initial_state is not None:
            state = self._check_initial_state(initial_state, dtype)
        elif kept is not None:
            state = self._read_kept_state(kept)
        else:
            state = call_initial_state(core, batch, dtype)
        if kept is not None:
            state = self._check_stateful_batch(kept, first, state)
        lengths = None
        if mask is not None:
            lengths = self._lengths_from_mask(mask)
        unroll_fn = dynamic_unroll if self.unroll == "dynamic" else static_unroll
        outputs, final_state = unroll_fn(
            core,
            inputs,
            state,
            sequence_length=lengths,
            reverse=self.go_backwards,
            time_major=False,
        )
        if self.return_sequences:
            if self.go_backwards:
                outputs = nestlib.map_structure(
                    lambda x: None if x is None else tf.reverse(x, axis=[1]), outputs
                )
        else:
            outputs = nestlib.map_structure(
                lambda x: None if x is None else self._last(x, lengths), outputs
            )
        if kept is not None:
            self._keep(kept, final_state)
        if self.return_state:
            return outputs, final_state
        return outputs

    # -------------------------------------------------------------- stateful
    def _read_kept_state(self, kept: _KeptState) -> Any:
        """The kept state as tensors in the core's dtypes and structure."""
        leaves = [
            None if v is None else tf.cast(v.value, dt)
            for v, dt in zip(kept.variables, kept.dtypes)
        ]
        return kept.spec.unflatten(leaves)

    def _check_stateful_batch(self, kept: _KeptState, first: tf.Tensor, state: Any) -> Any:
        """Checks the inputs' batch size against the kept state's; returns ``state``.

        A static mismatch is a ValueError; an unknown static batch size (a
        ``tf.function`` traced with a relaxed shape, as ``model.predict``
        does for a last, smaller batch) gets an assertion that the state
        depends on.
        """
        expected = kept.batch_size
        problem = (
            f"RNN layer {self.name!r} is stateful with batch size {expected}: "
            "every batch must have that size (with model.fit/predict, make the "
            "number of examples a multiple of the batch size)"
        )
        found = first.shape[0]
        if found is not None:
            if found != expected:
                raise ValueError(f"{problem}; got inputs of shape {tuple(first.shape)}")
            return state
        check = tf.debugging.assert_equal(tf.shape(first)[0], expected, message=problem)
        with tf.control_dependencies([check]):
            return nestlib.map_structure(lambda x: None if x is None else tf.identity(x), state)

    def _keep(self, kept: _KeptState, final_state: Any) -> None:
        """Stores ``final_state`` in the kept state's variables."""
        try:
            leaves = kept.spec.flatten(final_state)
        except (TypeError, ValueError) as e:
            raise type(e)(
                f"RNN layer {self.name!r}: the core's final state does not have "
                f"the structure of its initial state, so it cannot be kept: {e}"
            ) from e
        for variable, leaf in zip(kept.variables, leaves):
            if variable is not None and leaf is not None:
                variable.assign(tf.cast(leaf, variable.dtype))

    def reset_state(self, mask: Any = None, *, indices: Any = None) -> None:
        """Resets a stateful layer's kept state to the core's initial state.

        With no argument every example is reset (Keras' ``reset_state()``;
        the initial state of this package's cores is zeros, as Keras resets
        to). To reset some examples only (an episode or a document that
        ended), pass ``mask``, a bool ``[batch_size]`` array, True for each
        example to reset, or ``indices=``, the examples' indices (negative
        ones count from the end, as in NumPy). Leaves of the state without a
        batch dimension (rank 0) are reset only when every example is.
        Works eagerly and inside a ``tf.function``. Before a stateful layer
        is built there is no state yet, and nothing to reset.

        Raises:
          AttributeError: the layer is not stateful (as
            ``keras.layers.Bidirectional.reset_state``).
          TypeError: ``mask`` is not bool, or ``indices`` not integers.
          ValueError: ``mask`` is not ``[batch_size]``, an index is out of
            range, or both ``mask`` and ``indices`` are given.

        >>> import numpy as np, rnn, rnn.keras
        >>> layer = rnn.keras.RNN(rnn.GRU(2), stateful=True)
        >>> _ = layer(np.ones((3, 4, 5), "float32"))
        >>> layer.reset_state(np.array([True, False, False]))
        >>> (layer.states.numpy() == 0).all(axis=1).tolist()
        [True, False, False]
        >>> layer.reset_state(indices=[-1])
        >>> (layer.states.numpy() == 0).all(axis=1).tolist()
        [True, False, True]
        >>> layer.reset_state()
        >>> (layer.states.numpy() == 0).all()
        np.True_
        >>> layer.reset_state(np.array([1, 0, 0]))
        Traceback (most recent call last):
          ...
        TypeError: RNN layer 'rnn...': reset_state's mask must be a bool array of shape [3] ...
        """
        if not self.stateful:
            raise AttributeError(
                f"RNN layer {self.name!r} is not stateful, so it keeps no state "
                "to reset; create it with stateful=True"
            )
        if mask is not None and indices is not None:
            raise ValueError(
                f"RNN layer {self.name!r}: reset_state takes a mask or indices=, not both"
            )
        kept = self._kept
        if kept is None:
            return
        which = self._reset_mask(kept, mask, indices)
        initial = kept.spec.flatten(call_initial_state(self._core, kept.batch_size, kept.dtype))
        for variable, leaf in zip(kept.variables, initial):
            if variable is None or leaf is None:
                continue
            value = tf.cast(tf.broadcast_to(leaf, variable.shape), variable.dtype)
            if which is not None:
                rank = len(variable.shape)
                if rank == 0:
                    continue  # no batch dimension: reset only with every example
                where = tf.reshape(which, [kept.batch_size] + [1] * (rank - 1))
                value = tf.where(where, value, variable.value)
            variable.assign(value)

    def reset_states(self) -> None:
        """Resets every example's kept state (alias of :meth:`reset_state`, as in Keras)."""
        self.reset_state()

    def _reset_mask(self, kept: _KeptState, mask: Any, indices: Any) -> tf.Tensor | None:
        """``reset_state`` 's ``mask`` or ``indices`` as a checked bool ``[batch_size]`` tensor."""
        size = kept.batch_size
        if mask is not None:
            expected = f"a bool array of shape [{size}] (True resets that example)"
            try:
                which = tf.convert_to_tensor(mask)
            except (TypeError, ValueError) as e:
                raise TypeError(
                    f"RNN layer {self.name!r}: reset_state's mask must be {expected}, "
                    f"got {type(mask).__name__}: {e}"
                ) from e
            if which.dtype != tf.bool:
                raise TypeError(
                    f"RNN layer {self.name!r}: reset_state's mask must be {expected}, "
                    f"got dtype {which.dtype.name}; pass example indices as indices="
                )
            shape = which.shape
            if shape.rank is not None and (
                shape.rank != 1 or (shape[0] is not None and shape[0] != size)
            ):
                raise ValueError(
                    f"RNN layer {self.name!r}: reset_state's mask must be {expected}, "
                    f"got shape {shape}"
                )
            if shape.rank is None or shape[0] is None:
                check = tf.debugging.assert_equal(
                    tf.shape(which),
                    [size],
                    message=f"RNN layer {self.name!r}: reset_state's mask must be {expected}",
                )
                with tf.control_dependencies([check]):
                    which = tf.identity(which)
            return which
        if indices is None:
            return None
        try:
            if isinstance(indices, (list, tuple)) and not indices:
                chosen = tf.zeros([0], tf.int64)
            else:
                chosen = tf.convert_to_tensor(indices)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"RNN layer {self.name!r}: reset_state's indices must be integers, "
                f"got {type(indices).__name__}: {e}"
            ) from e
        if not chosen.dtype.is_integer:
            raise TypeError(
                f"RNN layer {self.name!r}: reset_state's indices must be integers, "
                f"got dtype {chosen.dtype.name}; pass a bool mask as the first argument"
            )
        if chosen.shape.rank is not None and chosen.shape.rank > 1:
            raise ValueError(
                f"RNN layer {self.name!r}: reset_state's indices must be a scalar "
                f"or a vector of example indices, got shape {chosen.shape}"
            )
        chosen = tf.reshape(tf.cast(chosen, tf.int64), [-1])
        in_range = f"in [-{size}, {size}) (the layer's batch size is {size})"
        if tf.executing_eagerly():
            bad = [int(i) for i in chosen.numpy() if not -size <= i < size]
            if bad:
                raise ValueError(
                    f"RNN layer {self.name!r}: reset_state's indices must be {in_range}, got {bad}"
                )
        else:
            checks = [
                tf.debugging.assert_greater_equal(
                    chosen, tf.constant(-size, tf.int64), message=f"indices must be {in_range}"
                ),
                tf.debugging.assert_less(
                    chosen, tf.constant(size, tf.int64), message=f"indices must be {in_range}"
                ),
            ]
            with tf.control_dependencies(checks):
                chosen = tf.identity(chosen)
        chosen = tf.math.floormod(chosen, size)
        return tf.reduce_any(tf.equal(tf.range(size, dtype=tf.int64)[:, None], chosen[None, :]), 1)

    def _last(self, x: tf.Tensor, lengths: tf.Tensor | None) -> tf.Tensor:
        """Each example's output at its last processed step."""
        if self.go_backwards:
            # The backward pass ends on input 0 (outputs are in input order).
            return x[:, 0]
        if lengths is None:
            return x[:, -1]
        # Zero-length examples gather index 0, whose output is already zero.
        return tf.gather(x, tf.maximum(lengths - 1, 0), axis=1, batch_dims=1)

    def _check_initial_state(self, initial_state: Any, dtype: tf.DType) -> Any:
        template = call_initial_state(self._core, 1, dtype)
        spec = nestlib.spec_of(template)
        try:
            leaves = spec.flatten(initial_state)
        except (TypeError, ValueError) as e:
            # Keras' functional config stores namedtuples and tuples as
            # lists; accept such a list wherever the core has a sequence.
            restored = _restructure(template, initial_state)
            if restored is None:
                raise type(e)(
                    f"RNN layer {self.name!r}: initial_state must have the "
                    f"structure of {type(self._core).__name__}.initial_state()"
                    f": {e}"
                ) from e
            return restored
        return spec.unflatten(leaves)

    def _lengths_from_mask(self, mask: Any) -> tf.Tensor | None:
        masks = [tf.cast(m, tf.bool) for m in nestlib.flatten(mask) if m is not None]
        if not masks:
            return None
        first = masks[0]
        if first.shape.rank != 2:
            raise ValueError(
                f"RNN layer {self.name!r}: a mask must be [batch, time], got shape {first.shape}"
            )
        for other in masks[1:]:
            if other.shape.rank != 2:
                raise ValueError(
                    f"RNN layer {self.name!r}: a mask must be [batch, time], "
                    f"got shape {other.shape}"
                )
        lengths = tf.reduce_sum(tf.cast(first, tf.int32), axis=1)
        expected = tf.sequence_mask(lengths, maxlen=tf.shape(first)[1])
        problem = (
            f"RNN layer {self.name!r} supports right-padded masks only "
            "(True for each example's first steps, then False)"
        )
        if tf.executing_eagerly():
            bad = tf.reduce_any(tf.not_equal(first, expected), axis=1).numpy()
            if bad.any():
                b = int(bad.argmax())
                row = first[b].numpy().astype(int).tolist()
                raise ValueError(
                    f"{problem}; example {b} has mask {row}. Pad sequences at "
                    "the end (e.g. keras.utils.pad_sequences(..., "
                    "padding='post'))."
                )
            for i, other in enumerate(masks[1:], start=1):
                if not bool(tf.reduce_all(tf.equal(other, first))):
                    raise ValueError(
                        f"RNN layer {self.name!r}: the masks of the input "
                        f"leaves differ (leaf {i} vs leaf 0); all leaves must "
                        "share one mask"
                    )
            return lengths
        checks = [tf.debugging.assert_equal(first, expected, message=problem)]
        for other in masks[1:]:
            checks.append(
                tf.debugging.assert_equal(
                    other,
                    first,
                    message=f"RNN layer {self.name!r}: the masks of the input leaves differ",
                )
            )
        with tf.control_dependencies(checks):
            return tf.identity(lengths)

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        """The output mask: the input mask for each output sequence leaf.

        With ``go_backwards`` and ``return_sequences`` it is reversed like the
        outputs; without ``return_sequences`` there is no output mask.
        """
        masks = [m for m in nestlib.flatten(mask) if m is not None] if (mask is not None) else []
        out_mask = None
        if masks and self.return_sequences:
            out_mask = masks[0]
            if self.go_backwards:
                out_mask = keras.ops.flip(out_mask, axis=1)
        if not self.return_state and self._num_output_leaves == 1:
            return out_mask
        flat = [out_mask] * self._num_output_leaves
        if self.return_state:
            flat += [None] * self._num_state_leaves
        return flat

    def compute_output_spec(self, inputs: Any, initial_state: Any = None, mask: Any = None) -> Any:
        """Output specs, found by tracing :meth:`call` on symbolic inputs."""
        # Skip Layer's version, which would go through compute_output_shape.
        return super(keras.layers.Layer, self).compute_output_spec(
            inputs, initial_state=initial_state, mask=mask
        )

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shapes for ``input_shape`` (builds the layer if needed).

        >>> import rnn, rnn.keras
        >>> layer = rnn.keras.RNN(rnn.LSTM(3), return_state=True)
        >>> layer.compute_output_shape((None, 7, 2))
        ((None, 3), LSTMState(hidden=(None, 3), cell=(None, 3)))
        """
        if not self.built:
            self.build(input_shape)
        inputs = _map_shapes(lambda s: keras.KerasTensor(s, dtype=self.compute_dtype), input_shape)
        specs = self.compute_output_spec(inputs)
        return nestlib.map_structure(lambda t: None if t is None else tuple(t.shape), specs)

    # ------------------------------------------------------------ serialize
    def get_config(self) -> dict[str, Any]:
        """Layer arguments plus the core's class and constructor arguments."""
        config = super().get_config()
        config.update(
            {
                "core": serialize_core(self._core),
                "return_sequences": self.return_sequences,
                "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "unroll": self.unroll,
                "stateful": self.stateful,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RNN:
        """Rebuilds the layer with a fresh core from :meth:`get_config` 's output."""
        config = dict(config)
        config["core"] = deserialize_core(config["core"])
        return super().from_config(config)
