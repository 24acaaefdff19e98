"""Weight converters between rnn's cores and Keras' or Sonnet's recurrent layers.

Each function copies the weights *and* the options that change the maths
(activation, GRU form, projection), so the converted model gives the same
outputs as the source:

* Keras: ``keras.layers.SimpleRNN`` / ``LSTM`` / ``GRU`` (or their cells
  ``SimpleRNNCell`` / ``LSTMCell`` / ``GRUCell``, or a ``keras.layers.RNN``
  around one) <-> :class:`rnn.VanillaRNN` / :class:`rnn.LSTM` /
  :class:`rnn.GRU` (same ``reset_after``);
* Sonnet 2: ``snt.VanillaRNN`` / ``snt.LSTM`` (projection included;
  ``snt.UnrolledLSTM`` as a source too) / ``snt.GRU`` <-> ours, where
  Sonnet's GRU is our ``GRU(reset_after=False)`` with the update gate's
  weights and bias negated (Sonnet computes ``h' = (1 - z) h + z a``, we and
  Keras ``h' = z h + (1 - z) a``).

``from_*`` builds a new core, ``load_from_*`` copies into an existing one (of
ours), ``to_*`` builds a new Keras layer or Sonnet core and ``copy_to_*``
copies into an existing one. Weights are copied, not shared. A source must
have its weights already (call it once first); a target that has none yet is
built from the source's input size. Loading checks every shape before it
assigns anything. Nothing here imports Sonnet unless you ask for a Sonnet core
(``to_sonnet``) or hand one in.

>>> import numpy as np, tensorflow as tf, keras, rnn
>>> layer = keras.layers.LSTM(4, return_sequences=True)
>>> x = tf.random.normal([2, 5, 3])                   # [batch, time, features]
>>> keras_out = layer(x)
>>> core = rnn.convert.from_keras(layer)
>>> ours, _ = rnn.dynamic_unroll(core, x, core.initial_state(2), time_major=False)
>>> np.allclose(ours, keras_out, atol=1e-5)
True
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, TypeAlias

import tensorflow as tf

from rnn._checks import positive_int
from rnn.cores import GRU, LSTM, VanillaRNN

__all__ = [
    "from_keras",
    "load_from_keras",
    "to_keras",
    "copy_to_keras",
    "from_sonnet",
    "load_from_sonnet",
    "to_sonnet",
    "copy_to_sonnet",
]

Core: TypeAlias = "VanillaRNN | LSTM | GRU"

_OURS = (VanillaRNN, LSTM, GRU)
_OURS_TEXT = "rnn.VanillaRNN, rnn.LSTM, rnn.GRU"
_KERAS_TEXT = (
    "keras.layers.SimpleRNN, keras.layers.LSTM, keras.layers.GRU, their cells "
    "(SimpleRNNCell, LSTMCell, GRUCell) and a keras.layers.RNN around one of those cells"
)
_SONNET_TEXT = "snt.VanillaRNN, snt.LSTM, snt.UnrolledLSTM, snt.GRU"
_SONNET_TARGET_TEXT = "snt.VanillaRNN, snt.LSTM, snt.GRU"
_LAYER_NORM_VARIABLES = (
    "ln_kernel_scale, ln_kernel_offset, ln_recurrent_scale, ln_recurrent_offset, "
    "ln_cell_scale, ln_cell_offset"
)
# Our variable names -> Sonnet's (for messages and for copying).
_SONNET_NAMES = {
    "kernel": "w_i",
    "recurrent_kernel": "w_h",
    "bias": "b",
    "projection": "projection",
}


@dataclasses.dataclass
class _Weights:
    """A recurrent layer's weights in our layout and names, with its options."""

    kind: type  # VanillaRNN, LSTM or GRU: the core of ours with the same maths
    where: str  # the source, for messages
    hidden_size: int
    values: dict[str, tf.Tensor]
    activation: Callable[[tf.Tensor], tf.Tensor] | None = None  # VanillaRNN
    forget_bias: float = 1.0  # LSTM: initial forget-gate bias (no effect once copied)
    projection_size: int | None = None  # LSTM
    use_layer_norm: bool = False  # LSTM (ours only)
    cell_clip: float | None = None  # LSTM (ours only)
    reset_after: bool = False  # GRU

    @property
    def input_size(self) -> int:
        return int(self.values["kernel"].shape[0])

    @property
    def dtype(self) -> tf.DType:
        return self.values["kernel"].dtype


def _unbuilt(where: str) -> ValueError:
    return ValueError(
        f"{where} has no weights yet: call it once on an input first (or build it), "
        "so that its variables exist, then convert it"
    )


def _assign_all(where: str, source: str, pairs: list[tuple[str, Any, tf.Tensor]]) -> None:
    """Checks every ``(name, variable, value)`` shape, then assigns them all."""
    for name, variable, value in pairs:
        target_shape = tuple(variable.shape)
        if target_shape != tuple(value.shape):
            raise ValueError(
                f"{where}: cannot copy variable '{name}': it has shape {list(target_shape)} "
                f"but {source} gives shape {list(value.shape)}"
            )
    for _, variable, value in pairs:
        variable.assign(tf.cast(value, tf.as_dtype(variable.dtype)))


# --------------------------------------------------------------------------
# Activations.
# --------------------------------------------------------------------------


def _activation_name(fn: Any) -> str | None:
    """``"tanh"``, ``"relu"``, ``"sigmoid"`` or ``"linear"`` for the functions of
    TensorFlow and Keras that compute them, else None."""
    table: dict[Any, str] = {tf.tanh: "tanh", tf.math.tanh: "tanh", tf.nn.relu: "relu"}
    table.update({tf.sigmoid: "sigmoid", tf.math.sigmoid: "sigmoid", tf.nn.sigmoid: "sigmoid"})
    keras = sys.modules.get("keras")
    if keras is not None:
        activations = keras.activations
        table.update(
            {
                activations.tanh: "tanh",
                activations.relu: "relu",
                activations.sigmoid: "sigmoid",
                activations.linear: "linear",
            }
        )
    try:
        return table.get(fn)
    except TypeError:  # an unhashable callable
        return None


_OUR_ACTIVATIONS: dict[str, Callable[[tf.Tensor], tf.Tensor]] = {
    "tanh": tf.tanh,
    "relu": tf.nn.relu,
}


def _describe_activation(fn: Any) -> str:
    return _activation_name(fn) or str(getattr(fn, "__name__", repr(fn)))


# --------------------------------------------------------------------------
# Our cores.
# --------------------------------------------------------------------------


def _kind(core: Any) -> type:
    """The class of ours that ``core`` is an instance of (``rnn.GRU`` for a subclass of it)."""
    for kind in _OURS:
        if isinstance(core, kind):
            return kind
    raise AssertionError(f"not one of our cores: {type(core).__qualname__}")


def _describe_core(core: Any) -> str:
    kind, name = _kind(core), core.name
    if type(core) is kind:
        return f"rnn.{kind.__name__} {name!r}"
    # A subclass: its own name, and what it converts as.
    return f"{type(core).__qualname__} (an rnn.{kind.__name__}) {name!r}"


def _hint(obj: Any) -> str:
    """A pointer to the right function for an object that one of the others takes."""
    if isinstance(getattr(obj, "core", None), _OURS) and not isinstance(obj, _OURS):
        return " (it holds one of our cores: pass its .core)"
    module = type(obj).__module__
    if module.startswith("sonnet"):
        return " (for Sonnet cores: rnn.convert.from_sonnet / load_from_sonnet)"
    if module.startswith("keras"):
        return " (for Keras layers: rnn.convert.from_keras / load_from_keras)"
    return ""


def _check_ours(function: str, core: Any) -> None:
    if not isinstance(core, _OURS):
        raise TypeError(
            f"rnn.convert.{function} takes one of our cores ({_OURS_TEXT}), "
            f"got {type(core).__module__}.{type(core).__qualname__}{_hint(core)}"
        )


def _read_core(function: str, core: Any) -> _Weights:
    _check_ours(function, core)
    where = _describe_core(core)
    if getattr(core, "kernel", None) is None:
        raise _unbuilt(where)
    values = {
        "kernel": tf.convert_to_tensor(core.kernel),
        "recurrent_kernel": tf.convert_to_tensor(core.recurrent_kernel),
        "bias": tf.convert_to_tensor(core.bias),
    }
    config = core.get_config()
    # A subclass of one of ours converts as that core (same variables, same maths).
    weights = _Weights(kind=_kind(core), where=where, hidden_size=core.hidden_size, values=values)
    if isinstance(core, VanillaRNN):
        weights.activation = config["activation"]
    elif isinstance(core, LSTM):
        weights.forget_bias = config["forget_bias"]
        weights.projection_size = config["projection_size"]
        weights.use_layer_norm = config["use_layer_norm"]
        weights.cell_clip = config["cell_clip"]
        if core.projection is not None:
            values["projection"] = tf.convert_to_tensor(core.projection)
    else:
        weights.reset_after = config["reset_after"]
    return weights


def _build_core(core: Core, input_size: int, dtype: tf.DType) -> None:
    """Makes an unbuilt core's variables by calling it once on zeros."""
    core(tf.zeros([1, input_size], dtype), core.initial_state(1, dtype=dtype))


def _new_core(weights: _Weights, name: str | None) -> Core:
    core: Core
    if weights.kind is VanillaRNN:
        core = VanillaRNN(weights.hidden_size, activation=weights.activation or tf.tanh, name=name)
    elif weights.kind is LSTM:
        core = LSTM(
            weights.hidden_size,
            forget_bias=weights.forget_bias,
            projection_size=weights.projection_size,
            name=name,
        )
    else:
        core = GRU(weights.hidden_size, reset_after=weights.reset_after, name=name)
    _write_core(core, weights)
    return core


def _write_core(core: Core, weights: _Weights) -> None:
    """Copies ``weights`` into ``core`` after checking that the maths match."""
    where = _describe_core(core)
    if not isinstance(core, weights.kind):
        raise TypeError(
            f"cannot load the weights of {weights.where} into {where}: "
            f"they are the weights of an rnn.{weights.kind.__name__}"
        )
    config = core.get_config()
    if isinstance(core, VanillaRNN):
        ours, theirs = _activation_name(config["activation"]), _activation_name(weights.activation)
        if ours is None or ours != theirs:
            raise ValueError(
                f"cannot load {weights.where} into {where}: its activation is "
                f"{_describe_activation(weights.activation)}, the target's "
                f"{_describe_activation(config['activation'])}"
            )
    elif isinstance(core, LSTM):
        if config["use_layer_norm"]:
            raise ValueError(
                f"cannot load {weights.where} into {where}: the target uses layer norm "
                f"(variables {_LAYER_NORM_VARIABLES}), the source has none; "
                "build rnn.LSTM(..., use_layer_norm=False)"
            )
        if config["cell_clip"] is not None:
            raise ValueError(
                f"cannot load {weights.where} into {where}: the target clips its cell "
                f"(cell_clip={config['cell_clip']}), the source does not"
            )
        if config["projection_size"] != weights.projection_size:
            raise ValueError(
                f"cannot load {weights.where} into {where}: variable 'projection': the "
                f"source's projection_size is {weights.projection_size}, the target's "
                f"{config['projection_size']}"
            )
    elif config["reset_after"] != weights.reset_after:
        raise ValueError(
            f"cannot load {weights.where} into {where}: variable 'bias': the source has "
            f"reset_after={weights.reset_after}, the target reset_after={config['reset_after']} "
            "(the two GRU forms compute different things); "
            f"build rnn.GRU(..., reset_after={weights.reset_after})"
        )
    if getattr(core, "kernel", None) is None:
        # In the core's own dtype when it was given one, else the source's.
        dtype = tf.as_dtype(config.get("dtype") or weights.dtype)
        _build_core(core, weights.input_size, dtype)
    pairs = [(name, getattr(core, name), value) for name, value in weights.values.items()]
    _assign_all(where, weights.where, pairs)


# --------------------------------------------------------------------------
# Keras.
# --------------------------------------------------------------------------


def _keras_kinds(keras: Any) -> dict[type, type]:
    layers = keras.layers
    return {layers.SimpleRNNCell: VanillaRNN, layers.LSTMCell: LSTM, layers.GRUCell: GRU}


def _keras_cell(function: str, obj: Any) -> tuple[Any, type, str]:
    """``(cell, our core class, description)`` of a supported Keras layer or cell."""
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(obj, keras.layers.Layer):
        cell = obj.cell if isinstance(obj, keras.layers.RNN) else obj
        for cell_type, kind in _keras_kinds(keras).items():
            if isinstance(cell, cell_type):
                return cell, kind, f"keras.layers.{type(obj).__name__} {obj.name!r}"
    found = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if keras is not None and isinstance(obj, keras.layers.RNN):
        found += f" around a {type(obj.cell).__qualname__}"
    if not type(obj).__module__.startswith("keras"):
        found += _hint(obj)
    raise TypeError(f"rnn.convert.{function} supports {_KERAS_TEXT}; got {found}")


def _check_keras_gates(cell: Any, where: str) -> None:
    for attribute, expected in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        fn = getattr(cell, attribute)
        if _activation_name(fn) != expected:
            raise ValueError(
                f"{where}: {attribute} is {_describe_activation(fn)}; rnn's cores "
                f"use {expected} there, so only {attribute}='{expected}' converts"
            )


def _keras_built(cell: Any, where: str) -> bool:
    return bool(cell.built) and getattr(cell, "kernel", None) is not None


def _read_keras(function: str, obj: Any) -> _Weights:
    cell, kind, where = _keras_cell(function, obj)
    if not _keras_built(cell, where):
        raise _unbuilt(where)
    values = {
        "kernel": tf.convert_to_tensor(cell.kernel),
        "recurrent_kernel": tf.convert_to_tensor(cell.recurrent_kernel),
    }
    weights = _Weights(kind=kind, where=where, hidden_size=int(cell.units), values=values)
    gates: dict[type, int] = {VanillaRNN: 1, LSTM: 4, GRU: 3}
    width = gates[kind] * weights.hidden_size
    dtype = values["kernel"].dtype
    if kind is VanillaRNN:
        name = _activation_name(cell.activation)
        if name not in _OUR_ACTIVATIONS:
            raise ValueError(
                f"{where}: activation {_describe_activation(cell.activation)} has no "
                f"equivalent in rnn.VanillaRNN's conversion; supported: "
                f"{', '.join(_OUR_ACTIVATIONS)}"
            )
        weights.activation = _OUR_ACTIVATIONS[name]
        bias_shape = [width]
    elif kind is LSTM:
        _check_keras_gates(cell, where)
        weights.forget_bias = 1.0 if cell.unit_forget_bias else 0.0
        bias_shape = [width]
    else:
        _check_keras_gates(cell, where)
        weights.reset_after = bool(cell.reset_after)
        bias_shape = [2, width] if weights.reset_after else [width]
    # use_bias=False computes what a zero bias does: ours always has one.
    values["bias"] = (
        tf.convert_to_tensor(cell.bias) if cell.use_bias else tf.zeros(bias_shape, dtype)
    )
    return weights


def _keras_options(weights: _Weights, where: str) -> dict[str, Any]:
    """The Keras constructor arguments for ``weights`` (or an error naming what
    Keras cannot express)."""
    if weights.kind is VanillaRNN:
        name = _activation_name(weights.activation)
        if name not in _OUR_ACTIVATIONS:
            raise ValueError(
                f"{where}: activation {_describe_activation(weights.activation)} has no "
                f"Keras equivalent that rnn.convert knows; supported: "
                f"{', '.join(_OUR_ACTIVATIONS)}"
            )
        return {"activation": name}
    if weights.kind is LSTM:
        if weights.projection_size is not None:
            raise ValueError(
                f"{where}: variable 'projection' (projection_size={weights.projection_size}) "
                "has no place in a Keras LSTM, which has no projection; "
                "rnn.convert.to_sonnet keeps it (snt.LSTM has projection_size)"
            )
        if weights.use_layer_norm:
            raise ValueError(
                f"{where}: layer norm (variables {_LAYER_NORM_VARIABLES}) has no place in a "
                "Keras LSTM"
            )
        if weights.cell_clip is not None:
            raise ValueError(
                f"{where}: cell_clip={weights.cell_clip} has no equivalent in a Keras LSTM"
            )
        return {"unit_forget_bias": weights.forget_bias != 0.0}
    return {"reset_after": weights.reset_after}


def _write_keras(function: str, obj: Any, weights: _Weights, batch_size: int | None = None) -> None:
    """Copies ``weights`` into a Keras layer or cell; an unbuilt layer is built
    for ``batch_size`` (None: any batch size)."""
    cell, kind, where = _keras_cell(function, obj)
    if kind is not weights.kind:
        raise TypeError(
            f"cannot copy {weights.where} into {where}: it takes the weights of an "
            f"rnn.{kind.__name__}"
        )
    if kind is VanillaRNN:
        expected = _keras_options(weights, weights.where)["activation"]
        if _activation_name(cell.activation) != expected:
            raise ValueError(
                f"cannot copy {weights.where} into {where}: its activation is {expected}, "
                f"the target's {_describe_activation(cell.activation)}"
            )
    else:
        _keras_options(weights, weights.where)  # projection, layer norm, clip
        _check_keras_gates(cell, where)
        if kind is GRU and bool(cell.reset_after) != weights.reset_after:
            raise ValueError(
                f"cannot copy {weights.where} into {where}: variable 'bias': the source has "
                f"reset_after={weights.reset_after}, the target reset_after={cell.reset_after} "
                "(the two GRU forms compute different things)"
            )
    values = dict(weights.values)
    if not cell.use_bias:
        if bool(tf.reduce_any(values["bias"] != 0)):
            raise ValueError(
                f"cannot copy {weights.where} into {where}: the target has use_bias=False "
                "but the source's variable 'bias' is not all zeros"
            )
        del values["bias"]
    if not _keras_built(cell, where):
        if cell is obj:
            obj.build((batch_size, weights.input_size))
        elif getattr(obj, "stateful", False) and batch_size is None:
            raise ValueError(
                f"cannot copy {weights.where} into {where}: the target is stateful=True "
                "and not built yet, so its batch size is unknown (Keras keeps one state "
                "row per example); build it first, e.g. "
                f"layer.build((batch_size, None, {weights.input_size})), or use "
                "rnn.convert.to_keras(core, stateful=True, batch_size=...)"
            )
        else:
            obj.build((batch_size, None, weights.input_size))
    pairs = [(name, getattr(cell, name), value) for name, value in values.items()]
    _assign_all(where, weights.where, pairs)


# --------------------------------------------------------------------------
# Sonnet.
# --------------------------------------------------------------------------


def _sonnet_kind(function: str, obj: Any, targets: bool = False) -> type:
    snt = sys.modules.get("sonnet")
    if snt is not None:
        kinds: list[tuple[Any, type]] = [
            (snt.VanillaRNN, VanillaRNN),
            (snt.LSTM, LSTM),
            (snt.GRU, GRU),
        ]
        if not targets:
            kinds.append((snt.UnrolledLSTM, LSTM))
        for sonnet_type, kind in kinds:
            if isinstance(obj, sonnet_type):
                return kind
    supported = _SONNET_TARGET_TEXT if targets else _SONNET_TEXT
    found = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if not type(obj).__module__.startswith("sonnet"):
        found += _hint(obj)
    raise TypeError(f"rnn.convert.{function} supports {supported}; got {found}")


def _describe_sonnet(obj: Any) -> str:
    return f"snt.{type(obj).__name__} {obj.name!r}"


def _sonnet_variables(obj: Any, kind: type) -> dict[str, Any] | None:
    """Sonnet's variables under our names, or None while it has none."""
    try:
        variables = {"kernel": obj.input_to_hidden, "recurrent_kernel": obj.hidden_to_hidden}
        variables["bias"] = obj._b if kind is VanillaRNN else obj.b
    except AttributeError:
        return None
    projection = getattr(obj, "projection", None)
    if projection is not None:
        variables["projection"] = projection
    return variables


def _negate_update_gate(values: dict[str, tf.Tensor], hidden_size: int) -> dict[str, tf.Tensor]:
    """Maps Sonnet's GRU onto ours and back: the update gate's weights and bias
    (the first ``hidden_size`` columns) change sign, so ``z`` becomes ``1 - z``."""
    sign = tf.concat([-tf.ones([hidden_size]), tf.ones([2 * hidden_size])], axis=0)
    return {name: value * tf.cast(sign, value.dtype) for name, value in values.items()}


def _read_sonnet(function: str, obj: Any) -> _Weights:
    kind = _sonnet_kind(function, obj)
    where = _describe_sonnet(obj)
    variables = _sonnet_variables(obj, kind)
    if variables is None:
        raise _unbuilt(where)
    values = {name: tf.convert_to_tensor(v) for name, v in variables.items()}
    hidden_size = int(obj._hidden_size)
    weights = _Weights(kind=kind, where=where, hidden_size=hidden_size, values=values)
    if kind is VanillaRNN:
        weights.activation = obj._activation
    elif kind is LSTM:
        weights.forget_bias = float(getattr(obj, "_forget_bias", 1.0))
        if "projection" in values:
            weights.projection_size = int(values["projection"].shape[-1])
    else:
        weights.values = _negate_update_gate(values, hidden_size)
    return weights


def _sonnet_options(weights: _Weights, where: str) -> dict[str, Any]:
    """The Sonnet constructor arguments for ``weights`` (or an error naming
    what Sonnet cannot express)."""
    if weights.kind is VanillaRNN:
        return {"activation": weights.activation}
    if weights.kind is LSTM:
        if weights.use_layer_norm:
            raise ValueError(
                f"{where}: layer norm (variables {_LAYER_NORM_VARIABLES}) has no place in snt.LSTM"
            )
        if weights.cell_clip is not None:
            raise ValueError(
                f"{where}: cell_clip={weights.cell_clip} has no equivalent in snt.LSTM"
            )
        return {"projection_size": weights.projection_size, "forget_bias": weights.forget_bias}
    if weights.reset_after:
        raise ValueError(
            f"{where}: variable 'bias' has shape [2, {3 * weights.hidden_size}] "
            "(reset_after=True: the reset gate applied after the recurrent matmul, with a "
            "separate recurrent bias); snt.GRU is the reset_after=False form, with one bias "
            "'b'. Only rnn.GRU(..., reset_after=False) converts to Sonnet"
        )
    return {}


def _write_sonnet(function: str, obj: Any, weights: _Weights) -> None:
    kind = _sonnet_kind(function, obj, targets=True)
    where = _describe_sonnet(obj)
    if kind is not weights.kind:
        raise TypeError(
            f"cannot copy {weights.where} into {where}: it takes the weights of an "
            f"rnn.{kind.__name__}"
        )
    _sonnet_options(weights, weights.where)
    if kind is VanillaRNN:
        theirs = obj._activation
        ours = weights.activation
        if theirs is not ours and (
            _activation_name(theirs) is None or _activation_name(theirs) != _activation_name(ours)
        ):
            raise ValueError(
                f"cannot copy {weights.where} into {where}: its activation is "
                f"{_describe_activation(ours)}, the target's {_describe_activation(theirs)}"
            )
    if kind is LSTM and obj._projection_size != weights.projection_size:
        raise ValueError(
            f"cannot copy {weights.where} into {where}: variable 'projection': the source's "
            f"projection_size is {weights.projection_size}, the target's {obj._projection_size}"
        )
    variables = _sonnet_variables(obj, kind)
    if variables is None:
        obj(tf.zeros([1, weights.input_size], obj._dtype), obj.initial_state(1))
        variables = _sonnet_variables(obj, kind)
        assert variables is not None
    values = weights.values
    if kind is GRU:
        values = _negate_update_gate(values, weights.hidden_size)
    pairs = [(_SONNET_NAMES[name], variables[name], value) for name, value in values.items()]
    _assign_all(where, weights.where, pairs)


# --------------------------------------------------------------------------
# The public API.
# --------------------------------------------------------------------------


def from_keras(layer: Any, *, name: str | None = None) -> Core:
    """A new :class:`rnn.VanillaRNN`, :class:`rnn.LSTM` or :class:`rnn.GRU`
    with the weights of a built Keras recurrent layer or cell.

    Takes ``keras.layers.SimpleRNN`` (activation ``tanh`` or ``relu``),
    ``LSTM`` and ``GRU`` (activation ``tanh``, recurrent activation
    ``sigmoid``; either ``reset_after``, which the new GRU copies), their
    cells, or a ``keras.layers.RNN`` around one of those cells. A layer with
    ``use_bias=False`` gives a core whose bias is zeros (ours always has
    one). The weights are copied; the core's variables have the layer's
    variable dtype. Layer options that are not weights (``go_backwards``,
    ``dropout``, ``recurrent_dropout``, ``stateful``) are not carried: pass
    ``reverse=True`` to the unrollers for ``go_backwards``.

    Raises TypeError for any other object, ValueError for a layer that has
    no weights yet (call it once first) or whose activations rnn's cores do
    not have.

    >>> import numpy as np, tensorflow as tf, keras, rnn
    >>> layer = keras.layers.GRU(3, return_sequences=True, reset_after=False)
    >>> x = tf.random.normal([2, 4, 5])
    >>> keras_out = layer(x)
    >>> core = rnn.convert.from_keras(layer)
    >>> type(core).__name__, core.get_config()["reset_after"]
    ('GRU', False)
    >>> ours, _ = rnn.dynamic_unroll(core, x, core.initial_state(2), time_major=False)
    >>> np.allclose(ours, keras_out, atol=1e-5)
    True
    """
    return _new_core(_read_keras("from_keras", layer), name)


def load_from_keras(core: Core, layer: Any) -> Core:
    """Copies a built Keras layer's or cell's weights into one of our cores
    and returns the core.

    The core must be the matching kind (SimpleRNN -> :class:`rnn.VanillaRNN`
    with the same activation, LSTM -> :class:`rnn.LSTM` without projection,
    layer norm or cell clip, GRU -> :class:`rnn.GRU` with the same
    ``reset_after``), else TypeError (wrong kind) or ValueError naming the
    option or variable. A core that has no variables yet is built for the
    layer's input size; a built one must have the layer's shapes, else
    ValueError naming the variable and both shapes (nothing is assigned
    then).

    >>> import numpy as np, tensorflow as tf, keras, rnn
    >>> layer = keras.layers.LSTMCell(4, name="cell")
    >>> layer.build((None, 3))
    >>> core = rnn.convert.load_from_keras(rnn.LSTM(4), layer)
    >>> np.array_equal(core.kernel.numpy(), layer.kernel.numpy())
    True
    >>> rnn.convert.load_from_keras(rnn.GRU(4), layer)
    Traceback (most recent call last):
    ...
    TypeError: cannot load the weights of keras.layers.LSTMCell 'cell' into rnn.GRU 'gru':
    they are the weights of an rnn.LSTM
    """
    _check_ours("load_from_keras", core)
    _write_core(core, _read_keras("load_from_keras", layer))
    return core


def to_keras(
    core: Core, *, cell: bool = False, batch_size: int | None = None, **kwargs: Any
) -> Any:
    """A new, built ``keras.layers.SimpleRNN``, ``LSTM`` or ``GRU`` (or with
    ``cell=True`` the matching cell) with the weights of one of our cores.

    The options that change the maths are set from the core (the vanilla
    RNN's activation, the GRU's ``reset_after``; ``unit_forget_bias`` from
    the LSTM's ``forget_bias``, which only changes the initial values the
    copy replaces) and the layer's dtype is the core's variable dtype.
    Other keyword arguments go to the Keras constructor (e.g.
    ``return_sequences=True``, ``name=``). An LSTM with a projection, layer
    norm or cell clip has no Keras equivalent: ValueError naming it (a
    projection converts to Sonnet). The core must have its variables (call
    it once first).

    ``batch_size`` builds the layer for that batch size (default: any). A
    ``stateful=True`` layer needs it, since Keras keeps one state row per
    example: ValueError naming ``batch_size`` when it is missing. A cell
    (``cell=True``) keeps no state and takes no ``batch_size``.

    >>> import numpy as np, tensorflow as tf, keras, rnn
    >>> core = rnn.VanillaRNN(3, activation=tf.nn.relu)
    >>> x = tf.random.normal([2, 4, 5])
    >>> ours, _ = rnn.dynamic_unroll(core, x, core.initial_state(2), time_major=False)
    >>> layer = rnn.convert.to_keras(core, return_sequences=True)
    >>> type(layer).__name__, layer.get_config()["activation"]
    ('SimpleRNN', 'relu')
    >>> np.allclose(layer(x), ours, atol=1e-5)
    True

    A stateful layer carries its state from one call to the next, as
    ``final_state`` fed back as the next ``initial_state`` does for ours:

    >>> stateful = rnn.convert.to_keras(core, stateful=True, batch_size=2)
    >>> first, second = stateful(x[:, :2]), stateful(x[:, 2:])
    >>> np.allclose(second, ours[:, -1], atol=1e-5)
    True
    >>> rnn.convert.to_keras(core, stateful=True)
    Traceback (most recent call last):
      ...
    ValueError: rnn.convert.to_keras: stateful=True needs batch_size= (the number of ...
    """
    weights = _read_core("to_keras", core)
    options = _keras_options(weights, weights.where)
    if batch_size is not None:
        if cell:
            raise ValueError(
                "rnn.convert.to_keras: batch_size is for a layer; with cell=True it makes "
                f"a cell, which keeps no state and takes any batch size (got batch_size="
                f"{batch_size!r})"
            )
        batch_size = positive_int("rnn.convert.to_keras: batch_size", batch_size)
    elif kwargs.get("stateful") and not cell:
        raise ValueError(
            "rnn.convert.to_keras: stateful=True needs batch_size= (the number of "
            "sequences in each batch): a stateful Keras layer keeps one state row per "
            "example, so it is built for a fixed batch size; got batch_size=None"
        )
    import keras

    kinds: dict[type, str] = {VanillaRNN: "SimpleRNN", LSTM: "LSTM", GRU: "GRU"}
    class_name = kinds[weights.kind] + ("Cell" if cell else "")
    options.update(kwargs)
    options.setdefault("dtype", weights.dtype.name)
    layer = getattr(keras.layers, class_name)(weights.hidden_size, **options)
    _write_keras("to_keras", layer, weights, batch_size)
    return layer


def copy_to_keras(core: Core, layer: Any) -> Any:
    """Copies one of our cores' weights into a Keras recurrent layer or cell
    and returns the layer.

    The layer must be the matching kind with the same options (activation,
    ``reset_after``), else TypeError or ValueError naming the option; one
    with ``use_bias=False`` takes the weights only if the core's bias is all
    zeros. An unbuilt layer is built for the core's input size; a built one
    must have the core's shapes, else ValueError naming the variable and
    both shapes.

    >>> import numpy as np, tensorflow as tf, keras, rnn
    >>> core = rnn.GRU(3, reset_after=True)
    >>> _ = core(tf.zeros([1, 2]), core.initial_state(1))
    >>> layer = rnn.convert.copy_to_keras(core, keras.layers.GRU(3, name="keras_gru"))
    >>> np.array_equal(layer.cell.bias.numpy(), core.bias.numpy())
    True
    >>> rnn.convert.copy_to_keras(core, keras.layers.GRU(3, reset_after=False, name="old"))
    Traceback (most recent call last):
    ...
    ValueError: cannot copy rnn.GRU 'gru' into keras.layers.GRU 'old': variable 'bias':
    the source has reset_after=True, the target reset_after=False ...
    """
    _write_keras("copy_to_keras", layer, _read_core("copy_to_keras", core))
    return layer


def from_sonnet(core: Any, *, name: str | None = None) -> Core:
    """A new :class:`rnn.VanillaRNN`, :class:`rnn.LSTM` or :class:`rnn.GRU`
    with the weights of a built Sonnet 2 core.

    Takes ``snt.VanillaRNN`` (any activation: it is shared), ``snt.LSTM``
    (with or without ``projection_size``; its ``forget_bias`` was added to
    ``b`` when it was built, so the copy holds it), ``snt.UnrolledLSTM`` and
    ``snt.GRU``, which becomes ``rnn.GRU(reset_after=False)`` with the update
    gate's weights and bias negated (Sonnet's GRU computes
    ``h' = (1 - z) h + z a``, ours ``h' = z h + (1 - z) a``).

    To read a Sonnet checkpoint, restore it into the Sonnet core it was saved
    from, call that core once (Sonnet makes its variables then, and the
    checkpoint fills them), then convert.

    Raises TypeError for any other object and ValueError for a core that has
    no variables yet (call it once first).

    >>> import numpy as np, tensorflow as tf, sonnet as snt, rnn
    >>> theirs = snt.GRU(3)
    >>> x = tf.random.normal([4, 2, 5])                  # [time, batch, features]
    >>> snt_out, _ = snt.dynamic_unroll(theirs, x, theirs.initial_state(2))
    >>> core = rnn.convert.from_sonnet(theirs)
    >>> ours, _ = rnn.dynamic_unroll(core, x, core.initial_state(2))
    >>> np.allclose(ours, snt_out, atol=1e-5)
    True
    """
    return _new_core(_read_sonnet("from_sonnet", core), name)


def load_from_sonnet(core: Core, sonnet_core: Any) -> Core:
    """Copies a built Sonnet 2 core's weights into one of our cores and
    returns ours.

    The kinds must match as in :func:`from_sonnet` (``snt.GRU`` only into
    ``rnn.GRU(reset_after=False)``; ``snt.LSTM`` into an ``rnn.LSTM`` with
    the same ``projection_size`` and no layer norm or cell clip), else
    TypeError or ValueError naming the option or variable; a core with no
    variables yet is built for the Sonnet core's input size, a built one
    must have its shapes (ValueError naming the variable and both shapes).

    >>> import numpy as np, tensorflow as tf, sonnet as snt, rnn
    >>> theirs = snt.LSTM(4, projection_size=2)
    >>> _ = theirs(tf.zeros([1, 3]), theirs.initial_state(1))
    >>> core = rnn.convert.load_from_sonnet(rnn.LSTM(4, projection_size=2), theirs)
    >>> np.array_equal(core.projection.numpy(), theirs.projection.numpy())
    True
    """
    _check_ours("load_from_sonnet", core)
    _write_core(core, _read_sonnet("load_from_sonnet", sonnet_core))
    return core


def to_sonnet(core: Core, *, name: str | None = None) -> Any:
    """A new, built Sonnet 2 core (``snt.VanillaRNN``, ``snt.LSTM`` or
    ``snt.GRU``) with the weights of one of our cores.

    Imports Sonnet (ImportError saying how to install it when it is
    missing). The Sonnet core's dtype is our variables' dtype; the LSTM's
    projection converts (``snt.LSTM(..., projection_size=...)``). Layer norm,
    cell clip and ``rnn.GRU(reset_after=True)`` have no Sonnet equivalent:
    ValueError naming the variable. The core must have its variables (call
    it once first).

    >>> import numpy as np, tensorflow as tf, rnn
    >>> core = rnn.LSTM(4, projection_size=2)
    >>> x = tf.random.normal([5, 2, 3])
    >>> ours, _ = rnn.dynamic_unroll(core, x, core.initial_state(2))
    >>> theirs = rnn.convert.to_sonnet(core)
    >>> type(theirs).__name__, theirs.projection.shape.as_list()
    ('LSTM', [4, 2])
    >>> import sonnet as snt
    >>> snt_out, _ = snt.dynamic_unroll(theirs, x, theirs.initial_state(2))
    >>> np.allclose(snt_out, ours, atol=1e-5)
    True
    """
    weights = _read_core("to_sonnet", core)
    options = _sonnet_options(weights, weights.where)
    try:
        import sonnet as snt
    except ImportError as e:
        raise ImportError(
            "rnn.convert.to_sonnet needs Sonnet 2, which is not installed: pip install dm-sonnet"
        ) from e
    kinds: dict[type, Any] = {VanillaRNN: snt.VanillaRNN, LSTM: snt.LSTM, GRU: snt.GRU}
    sonnet_core = kinds[weights.kind](
        weights.hidden_size, dtype=weights.dtype, name=name, **options
    )
    _write_sonnet("to_sonnet", sonnet_core, weights)
    return sonnet_core


def copy_to_sonnet(core: Core, sonnet_core: Any) -> Any:
    """Copies one of our cores' weights into a Sonnet 2 core and returns it.

    The Sonnet core must be the matching kind with the same options
    (activation, ``projection_size``), else TypeError or ValueError naming
    them; one with no variables yet is built for our core's input size (in
    its own dtype), a built one must have our shapes (ValueError naming its
    variable, ``w_i``, ``w_h``, ``b`` or ``projection``, and both shapes).
    Use it to write a Sonnet checkpoint from our weights.

    >>> import numpy as np, tensorflow as tf, sonnet as snt, rnn
    >>> core = rnn.VanillaRNN(3)
    >>> _ = core(tf.zeros([1, 2]), core.initial_state(1))
    >>> theirs = rnn.convert.copy_to_sonnet(core, snt.VanillaRNN(3))
    >>> np.array_equal(theirs.hidden_to_hidden.numpy(), core.recurrent_kernel.numpy())
    True
    """
    _write_sonnet("copy_to_sonnet", sonnet_core, _read_core("copy_to_sonnet", core))
    return sonnet_core
