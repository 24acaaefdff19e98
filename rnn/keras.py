"""Keras 3 adapter: any :mod:`rnn` core as a Keras layer, trained by ``model.fit``.

:class:`RNN` wraps a core (``rnn.LSTM``, ``rnn.GRU``, ``rnn.DeepRNN``,
``rnn.dnc.DNC``, ...) in a ``keras.layers.Layer`` that takes batch-major
inputs (``[B, T, ...]``, Keras' convention) and runs them through
:func:`rnn.dynamic_unroll` or :func:`rnn.static_unroll`.

How the pieces fit:

* **Weights.** Keras 3 does not see ``tf.Variable`` objects owned by a
  ``tf.Module``. When the layer is built, it runs the core for one step on a
  dummy batch (so the core creates its variables, eagerly) and wraps each of
  them in a ``keras.Variable`` that *shares* the ``tf.Variable`` (no copy).
  The wrappers are tracked as the layer's weights, so ``model.fit`` trains
  the core, ``model.summary()`` counts it and saving stores it; the core
  itself keeps reading the same variables. Keras layers used inside the
  core (say a ``keras.layers.Dense`` between the cores of a ``DeepRNN``) are
  tracked as sublayers, so their weights are trained and saved too.
* **Masks.** A Keras mask (``Embedding(mask_zero=True)``, ``Masking``, ...)
  becomes per-example sequence lengths: ``length[b] = sum(mask[b])``. Only
  right-padded masks (``True`` for the first ``length`` steps, then
  ``False``) are accepted: other masks raise ``ValueError`` when the layer
  runs eagerly, and fail a ``tf.debugging`` assertion
  (``InvalidArgumentError``) in a graph. XLA drops assertions, so under
  ``jit_compile=True`` the check does not run. The sequence-length semantics
  are :mod:`rnn.unroll` 's: outputs after an example's length are zeros, its
  final state is the state after its last valid step.
* **Structures.** Inputs may be any nest of ``[B, T, ...]`` tensors (every
  leaf shares one mask). With ``return_state=True`` the layer returns
  ``(outputs, final_state)`` where ``final_state`` keeps the core's
  structure (an ``LSTMState``, a ``DNCState``, a tuple for a ``DeepRNN``);
  ``initial_state=`` takes the same structure.
* **go_backwards** follows Keras: the sequence is read from its end (each
  example from its own last valid step) and, with ``return_sequences=True``,
  the outputs come back in reversed time order (``outputs[:, k]`` was
  produced when reading input ``T - 1 - k``), so it composes with
  ``keras.layers.Bidirectional`` like Keras' own RNN layers.
* **Saving.** :meth:`RNN.get_config` stores the core's constructor arguments
  through a small registry (:func:`register_core`, :func:`serialize_core`,
  :func:`deserialize_core`) that knows every core of this package; register
  your own core classes to save models holding them.

Limitations: the layer runs with the TensorFlow backend only, and Keras'
stateless APIs (``layer.stateless_call``) do not apply, because the core
reads its ``tf.Variable`` objects directly.

>>> import numpy as np, keras, rnn
>>> import rnn.keras
>>> model = keras.Sequential([keras.Input((5, 3)), rnn.keras.RNN(rnn.GRU(4)),
...                           keras.layers.Dense(1)])
>>> model.predict(np.zeros((2, 5, 3), "float32"), verbose=0).shape
(2, 1)
>>> len(model.layers[0].trainable_weights)  # the GRU's kernel, recurrent kernel, bias
3
"""

from __future__ import annotations

import numbers
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
import tensorflow as tf

import nestlib
from rnn import cores as _cores
from rnn import deep as _deep
from rnn.dnc import core as _dnc_core
from rnn.unroll import dynamic_unroll, static_unroll

if keras.backend.backend() != "tensorflow":  # pragma: no cover - env specific
    raise ImportError(
        "rnn.keras needs Keras' TensorFlow backend (the cores are TensorFlow "
        f"modules); the active backend is {keras.backend.backend()!r}. Set "
        "KERAS_BACKEND=tensorflow before importing keras."
    )

__all__ = ["RNN", "register_core", "serialize_core", "deserialize_core"]


# --------------------------------------------------------------------------
# Sharing tf.Variables with Keras.
# --------------------------------------------------------------------------

# One keras.Variable per tf.Variable, so that two layers holding the same core
# (weight tying) expose the *same* weight objects, which Keras deduplicates;
# otherwise the optimizer would apply two updates to one variable per step.
_WRAPPERS: weakref.WeakValueDictionary[Any, keras.Variable] = weakref.WeakValueDictionary()


def _wrap_variable(variable: tf.Variable) -> keras.Variable:
    """A ``keras.Variable`` whose storage is ``variable`` itself."""
    key = variable.ref()
    wrapper = _WRAPPERS.get(key)
    if wrapper is not None:
        return wrapper
    name = variable.name.split(":")[0].replace("/", "_") or "weight"
    wrapper = keras.Variable(variable, trainable=variable.trainable, name=name)
    if wrapper.value is not variable:  # pragma: no cover - guards Keras changes
        raise RuntimeError(
            "rnn.keras: this Keras version copies tf.Variables passed to "
            "keras.Variable instead of sharing them, so the core's weights "
            "cannot be exposed to Keras"
        )
    _WRAPPERS[key] = wrapper
    return wrapper


# --------------------------------------------------------------------------
# Serializing cores.
# --------------------------------------------------------------------------


class _Entry(NamedTuple):
    cls: type
    name: str
    to_config: Callable[[Any], dict[str, Any]]
    from_config: Callable[[dict[str, Any]], Any]


_BY_TYPE: dict[type, _Entry] = {}
_BY_NAME: dict[str, _Entry] = {}


def register_core(
    cls: type,
    to_config: Callable[[Any], dict[str, Any]] | None = None,
    from_config: Callable[[dict[str, Any]], Any] | None = None,
    name: str | None = None,
) -> type:
    """Registers a core class so that :class:`RNN` layers holding it can be saved.

    ``to_config(core)`` returns the core's constructor arguments as a dict
    (default: the class's ``get_config`` method); ``from_config(config)``
    rebuilds the core (default: the class's ``from_config`` classmethod, else
    ``cls(**config)``). Config values may be numbers, strings, ``None``,
    lists, dicts, other registered cores, Keras layers, named TensorFlow/Keras
    functions (``tf.tanh``, ``tf.nn.relu``, ...) and functions registered
    with ``keras.saving.register_keras_serializable``. ``name`` (default
    ``module.QualName``) is what saved files store; registering a class
    with the same module and qualified name again (e.g. a re-run notebook
    cell) replaces the entry. Returns ``cls``, so it also works as a class
    decorator.

    >>> import tensorflow as tf, rnn, rnn.keras
    >>> class Doubler(rnn.RNNCore):
    ...     def __init__(self, size, name=None):
    ...         super().__init__(name=name)
    ...         self.size = size
    ...     def __call__(self, inputs, prev_state):
    ...         return 2.0 * inputs, prev_state
    ...     def initial_state(self, batch_size, dtype=tf.float32):
    ...         return tf.zeros([batch_size, self.size], dtype)
    ...     def get_config(self):
    ...         return {"size": self.size, "name": self.name}
    >>> _ = rnn.keras.register_core(Doubler, name="doctest.Doubler")
    >>> config = rnn.keras.serialize_core(Doubler(3))
    >>> rnn.keras.deserialize_core(config).size
    3
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_core expects a class, got {cls!r}")
    if to_config is None:
        to_config = getattr(cls, "get_config", None)
        if not callable(to_config):
            raise TypeError(
                f"register_core({cls.__name__}): pass to_config, or give the "
                "class a get_config() method returning its constructor "
                "arguments"
            )
    if from_config is None:
        from_config = getattr(cls, "from_config", None)
        if not callable(from_config):
            from_config = lambda config: cls(**config)  # noqa: E731
    if name is None:
        name = f"{cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_core: name must be a non-empty str, got {name!r}")
    previous = _BY_NAME.get(name)
    # A class redefined under the same qualified name (a re-run script or
    # notebook cell) replaces its entry; another class may not take the name.
    if (
        previous is not None
        and previous.cls is not cls
        and (previous.cls.__module__, previous.cls.__qualname__)
        != (cls.__module__, cls.__qualname__)
    ):
        raise ValueError(
            f"register_core: the name {name!r} is already used by "
            f"{previous.cls.__module__}.{previous.cls.__qualname__}"
        )
    entry = _Entry(cls, name, to_config, from_config)
    _BY_TYPE[cls] = entry
    _BY_NAME[name] = entry
    return cls


def _is_core(obj: Any) -> bool:
    return callable(obj) and callable(getattr(obj, "initial_state", None))


# Public namespaces whose functions may appear in a config (e.g. the
# activation of a VanillaRNN or a nonlinearity inside a DeepRNN). Functions
# are stored by their public name and looked up again only in these modules.
def _function_namespaces() -> dict[str, Any]:
    return {
        "tf": tf,
        "tf.nn": tf.nn,
        "tf.math": tf.math,
        "keras.activations": keras.activations,
        "keras.ops": keras.ops,
    }


_FUNCTION_NAMES: dict[int, str] | None = None


def _public_function_name(fn: Any) -> str | None:
    global _FUNCTION_NAMES
    if _FUNCTION_NAMES is None:
        names: dict[int, str] = {}
        for prefix, module in _function_namespaces().items():
            for attr in dir(module):
                if attr.startswith("_"):
                    continue
                value = getattr(module, attr, None)
                if callable(value) and not isinstance(value, type):
                    names.setdefault(id(value), f"{prefix}.{attr}")
        _FUNCTION_NAMES = names
    name = _FUNCTION_NAMES.get(id(fn))
    if name is not None and _resolve_function(name) is fn:
        return name
    return None


def _resolve_function(name: str) -> Any:
    prefix, _, attr = name.rpartition(".")
    module = _function_namespaces().get(prefix)
    if module is None or attr.startswith("_") or not hasattr(module, attr):
        raise ValueError(f"unknown function {name!r} in a saved core config")
    return getattr(module, attr)


def _encode(value: Any, where: str) -> Any:
    """Turns a config value into JSON-compatible data."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cannot serialize {where}: dict keys must be str, got {k!r}")
            out[k] = _encode(v, f"{where}[{k!r}]")
        return {"__dict__": out}
    if _is_core(value) and type(value) in _BY_TYPE:
        return {"__core__": serialize_core(value)}
    if isinstance(value, keras.layers.Layer):
        return {"__keras__": keras.saving.serialize_keras_object(value)}
    if isinstance(value, tf.DType):
        return {"__dtype__": value.name}
    if callable(value):
        name = _public_function_name(value)
        if name is not None:
            return {"__function__": name}
        registered = keras.saving.get_registered_name(value)
        if keras.saving.get_registered_object(registered) is value:
            return {"__keras__": keras.saving.serialize_keras_object(value)}
    if _is_core(value):
        raise TypeError(
            f"cannot serialize {where}: core class {type(value).__name__} is "
            "not registered; call rnn.keras.register_core on it"
        )
    raise TypeError(
        f"cannot serialize {where}: {value!r} ({type(value).__name__}). Use "
        "numbers, strings, lists, dicts, registered cores, public "
        "TensorFlow/Keras functions, or objects registered with "
        "keras.saving.register_keras_serializable"
    )


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) != 1:
            raise ValueError(f"malformed core config entry: {value!r}")
        ((tag, payload),) = value.items()
        if tag == "__dict__":
            return {k: _decode(v) for k, v in payload.items()}
        if tag == "__core__":
            return deserialize_core(payload)
        if tag == "__function__":
            return _resolve_function(payload)
        if tag == "__dtype__":
            return tf.as_dtype(payload)
        if tag == "__keras__":
            return keras.saving.deserialize_keras_object(payload)
        raise ValueError(f"malformed core config entry: unknown tag {tag!r}")
    return value


def serialize_core(core: Any) -> dict[str, Any]:
    """Returns a JSON-compatible description of ``core`` (class and arguments).

    Nested cores (a DeepRNN's layers, a DNC's controller) are serialized
    recursively. The core's variables are not part of it: Keras saves them as
    the layer's weights.

    >>> import tensorflow as tf, rnn, rnn.keras
    >>> config = rnn.keras.serialize_core(rnn.DeepRNN([rnn.LSTM(4), tf.nn.relu]))
    >>> config["class_name"], config["config"]["layers"][1]
    ('rnn.DeepRNN', {'__function__': 'tf.nn.relu'})
    """
    entry = _BY_TYPE.get(type(core))
    if entry is None:
        raise TypeError(
            f"cannot serialize a {type(core).__name__} core: its class is not "
            "registered; call rnn.keras.register_core on it"
        )
    raw = entry.to_config(core)
    if not isinstance(raw, dict):
        raise TypeError(
            f"the config of a {type(core).__name__} core must be a dict, got {type(raw).__name__}"
        )
    config = {}
    for key, value in raw.items():
        config[key] = _encode(value, f"{type(core).__name__} config[{key!r}]")
    return {"class_name": entry.name, "config": config}


def deserialize_core(config: dict[str, Any]) -> Any:
    """Rebuilds a core (with fresh variables) from :func:`serialize_core` 's output.

    >>> import rnn, rnn.keras
    >>> config = rnn.keras.serialize_core(rnn.LSTM(5, forget_bias=0.5))
    >>> lstm = rnn.keras.deserialize_core(config)
    >>> type(lstm).__name__, lstm.hidden_size
    ('LSTM', 5)
    """
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"a core config is a dict with 'class_name' and 'config', got {config!r}")
    entry = _BY_NAME.get(config["class_name"])
    if entry is None:
        raise ValueError(
            f"unknown core class {config['class_name']!r}: register it with "
            "rnn.keras.register_core before loading"
        )
    kwargs = {key: _decode(value) for key, value in config.get("config", {}).items()}
    return entry.from_config(kwargs)


def _private(core: Any, attr: str) -> Any:
    """Reads a constructor argument a core keeps in a private attribute."""
    try:
        return getattr(core, attr)
    except AttributeError:
        raise AttributeError(
            f"rnn.keras cannot read {type(core).__name__}.{attr} to serialize "
            "the core; its attributes changed, update rnn/keras.py"
        ) from None


def _vanilla_config(core: Any) -> dict[str, Any]:
    return {
        "hidden_size": core.hidden_size,
        "activation": _private(core, "_activation"),
        "name": core.name,
    }


def _lstm_config(core: Any) -> dict[str, Any]:
    return {
        "hidden_size": core.hidden_size,
        "forget_bias": _private(core, "_forget_bias"),
        "projection_size": _private(core, "_projection_size"),
        "use_layer_norm": _private(core, "_use_layer_norm"),
        "cell_clip": _private(core, "_cell_clip"),
        "name": core.name,
    }


def _gru_config(core: Any) -> dict[str, Any]:
    return {
        "hidden_size": core.hidden_size,
        "reset_after": _private(core, "_reset_after"),
        "name": core.name,
    }


def _deep_config(core: Any) -> dict[str, Any]:
    return {"layers": list(core.layers), "name": core.name}


def _skip_config(core: Any) -> dict[str, Any]:
    return {
        "cores": list(core.layers),
        "concat_final_output": _private(core, "_concat_final_output"),
        "name": core.name,
    }


def _residual_config(core: Any) -> dict[str, Any]:
    return {"core": core.core, "name": core.name}


def _dnc_config(core: Any) -> dict[str, Any]:
    return {
        "output_size": core.output_size,
        "controller": core.controller,
        "memory_size": core.memory_size,
        "word_size": core.word_size,
        "num_reads": core.num_reads,
        "num_writes": core.num_writes,
        "clip_value": core.clip_value,
        "name": core.name,
    }


register_core(_cores.VanillaRNN, _vanilla_config, name="rnn.VanillaRNN")
register_core(_cores.LSTM, _lstm_config, name="rnn.LSTM")
register_core(_cores.GRU, _gru_config, name="rnn.GRU")
register_core(
    _deep.DeepRNN, _deep_config, lambda config: _deep.DeepRNN(**config), name="rnn.DeepRNN"
)
# deep_rnn_with_skip_connections returns a private DeepRNN subclass.
_SKIP_CLASS = getattr(_deep, "_DeepRNNWithSkips", None)
if _SKIP_CLASS is not None:
    register_core(
        _SKIP_CLASS,
        _skip_config,
        lambda config: _deep.deep_rnn_with_skip_connections(**config),
        name="rnn.deep_rnn_with_skip_connections",
    )
register_core(_deep.ResidualCore, _residual_config, name="rnn.ResidualCore")
register_core(_dnc_core.DNC, _dnc_config, name="rnn.DNC")


# --------------------------------------------------------------------------
# Shapes.
# --------------------------------------------------------------------------


def _keras_layers_in(core: Any) -> list:
    """The distinct Keras layers found in ``core`` 's attributes (nests included)."""
    flatten = getattr(core, "_flatten", None)  # tf.Module's attribute walker
    if not callable(flatten):
        return [core] if isinstance(core, keras.layers.Layer) else []
    found, seen = [], set()
    for layer in flatten(predicate=lambda x: isinstance(x, keras.layers.Layer)):
        if id(layer) not in seen:
            seen.add(id(layer))
            found.append(layer)
    return found


def _is_shape(x: Any) -> bool:
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
    if _is_shape(shapes):
        return fn(tuple(tf.TensorShape(shapes).as_list()))
    if isinstance(shapes, dict):
        return {k: _map_shapes(fn, v) for k, v in shapes.items()}
    if hasattr(shapes, "_fields"):
        return type(shapes)(*[_map_shapes(fn, v) for v in shapes])
    if isinstance(shapes, (tuple, list)):
        return type(shapes)(_map_shapes(fn, v) for v in shapes)
    raise TypeError(f"cannot read an input shape from {shapes!r}")


def _plain_shapes(shapes: Any) -> Any:
    """The same nest with tuples/lists of dims as JSON-friendly lists."""
    return _map_shapes(list, shapes)


_MISMATCH = object()


def _restructure(template: Any, given: Any) -> Any:
    """``given`` rebuilt with ``template`` 's sequence types, or ``_MISMATCH``.

    Lists, tuples and namedtuples of the same length are interchangeable;
    dicts need the same keys; leaves must stay leaves and ``None`` stays
    ``None``.
    """
    if isinstance(template, (list, tuple)):
        if not isinstance(given, (list, tuple)) or len(given) != len(template):
            return _MISMATCH
        parts = [_restructure(t, g) for t, g in zip(template, given)]
        if any(p is _MISMATCH for p in parts):
            return _MISMATCH
        if hasattr(template, "_fields"):
            return type(template)(*parts)
        return type(template)(parts)
    if isinstance(template, dict):
        if not isinstance(given, dict) or set(given) != set(template):
            return _MISMATCH
        parts = {k: _restructure(template[k], given[k]) for k in template}
        if any(p is _MISMATCH for p in parts.values()):
            return _MISMATCH
        return parts if type(template) is dict else type(template)(parts)
    if nestlib.is_nested(template) or nestlib.is_nested(given):
        return _MISMATCH
    if (template is None) != (given is None):
        return _MISMATCH
    return given


# --------------------------------------------------------------------------
# The layer.
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="rnn")
class RNN(keras.layers.Layer):
    """A Keras 3 layer that unrolls an :mod:`rnn` core over batch-major inputs.

    Args:
      core: the core (anything with ``__call__(inputs, prev_state)`` and
        ``initial_state(batch_size, dtype)``); its variables become this
        layer's weights when the layer is built.
      return_sequences: return the whole output sequence ``[B, T, ...]``
        (default: the output of the last valid step of each example).
      return_state: also return the final state: the layer returns
        ``(outputs, final_state)`` with the core's state structure.
      go_backwards: read the sequence backwards (see the module docs; with
        ``return_sequences`` the outputs are in reversed time order).
      unroll: ``"dynamic"`` (:func:`rnn.dynamic_unroll`, any number of time
        steps) or ``"static"`` (:func:`rnn.static_unroll`, needs a static
        number of time steps).
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
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not _is_core(core):
            raise TypeError(
                "RNN needs a core: an object with __call__(inputs, prev_state) "
                f"and initial_state(batch_size, dtype); got {type(core).__name__}"
            )
        for arg, value in (
            ("return_sequences", return_sequences),
            ("return_state", return_state),
            ("go_backwards", go_backwards),
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
        self.stateful = False  # read by keras.layers.Bidirectional
        self.supports_masking = True
        self._build_input_shape: Any = None
        self._num_output_leaves = 1
        self._num_state_leaves = 0

    @property
    def core(self) -> Any:
        """The wrapped core (its variables are this layer's weights)."""
        return self._core

    # ----------------------------------------------------------------- build
    def build(self, input_shape: Any) -> None:
        """Creates the core's variables (one eager step on a dummy batch) and tracks them."""
        dtype = tf.as_dtype(self.compute_dtype)
        if not dtype.is_floating:
            dtype = tf.float32

        def dummy(shape):
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
            return tf.zeros([1] + list(shape[2:]), dtype)

        with tf.init_scope():
            inputs = _map_shapes(dummy, input_shape)
            state = self._core.initial_state(1, dtype=dtype)
            output, _ = self._core(inputs, state)
        self._num_output_leaves = len(nestlib.flatten(output))
        self._num_state_leaves = len(nestlib.flatten(state))
        variables = getattr(self._core, "variables", None)
        if variables is None:
            variables = ()
        self._core_weights = [_wrap_variable(v) for v in variables]
        # Keras layers used inside the core (e.g. a Dense in a DeepRNN) own
        # keras.Variables, which tf.Module does not list: track the layers
        # themselves, so their weights are trained and saved as well.
        self._core_layers = _keras_layers_in(self._core)
        self._build_input_shape = _plain_shapes(input_shape)

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
        if initial_state is None:
            state = core.initial_state(batch, dtype=dtype)
        else:
            state = self._check_initial_state(initial_state, dtype)
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
        if self.return_state:
            return outputs, final_state
        return outputs

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
        template = self._core.initial_state(1, dtype=dtype)
        spec = nestlib.spec_of(template)
        try:
            leaves = spec.flatten(initial_state)
        except (TypeError, ValueError) as e:
            # Keras' functional config stores namedtuples and tuples as
            # lists; accept such a list wherever the core has a sequence.
            restored = _restructure(template, initial_state)
            if restored is _MISMATCH:
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
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RNN:
        """Rebuilds the layer with a fresh core from :meth:`get_config` 's output."""
        config = dict(config)
        config["core"] = deserialize_core(config["core"])
        return super().from_config(config)
