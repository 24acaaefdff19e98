"""Saving cores in Keras models: a registry of core classes and a JSON codec of their configs.

Each core owns its configuration (``get_config()`` returns its constructor
arguments, the classmethod ``from_config(config)`` rebuilds it, see
:class:`rnn.RNNCore`). This module only names classes and turns config
values into JSON and back:

* numbers, strings, ``None`` and lists are stored as they are; dicts as
  ``{"__dict__": {...}}``;
* a core (a DeepRNN's layers, a DNC's controller) as
  ``{"__core__": {"class_name": ..., "config": ...}}``, recursively;
* a function (an activation, a DeepRNN's nonlinearity) by its public name,
  ``{"__function__": "tf.nn.relu"}``, looked up again only in ``tf``,
  ``tf.nn``, ``tf.math``, ``keras.activations`` and ``keras.ops``; functions
  registered with ``keras.saving.register_keras_serializable`` and Keras
  layers as ``{"__keras__": ...}`` (Keras' own serialization);
* a ``tf.DType`` as ``{"__dtype__": "float32"}``.

These are the tags saved files have always had, so models saved before cores
owned their configs load unchanged.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from rnn import cores as _cores
from rnn import deep as _deep
from rnn.base import RNNCore, is_core
from rnn.dnc import core as _dnc_core

# is_core is rnn.base's rule (one definition for the stacks, the unrollers and
# this codec), re-exported here for code that imported it from this module.
__all__ = ["register_core", "serialize_core", "deserialize_core", "is_core"]


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
    """Registers a core class so that :class:`rnn.keras.RNN` layers holding it can be saved.

    ``to_config(core)`` returns the core's constructor arguments as a dict
    (default: the class's ``get_config`` method); ``from_config(config)``
    rebuilds the core (default: the class's ``from_config`` classmethod, which
    for an :class:`rnn.RNNCore` is ``cls(**config)``). Config values may be
    numbers, strings, ``None``, lists, dicts, other registered cores, Keras
    layers, public TensorFlow/Keras functions (``tf.tanh``, ``tf.nn.relu``,
    ``keras.activations.gelu``, ...) and functions registered with
    ``keras.saving.register_keras_serializable``. ``name`` (default
    ``module.QualName``) is what saved files store; registering a class with
    the same module and qualified name again (e.g. a re-run notebook cell)
    replaces the entry. Returns ``cls``, so it also works as a class
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
        if not callable(to_config) or to_config is RNNCore.get_config:
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


# --------------------------------------------------------------------------
# Functions: stored by public name (the one place that names them).
# --------------------------------------------------------------------------

# The only namespaces a saved function name is looked up in, first match wins.
_FUNCTION_NAMESPACES: dict[str, Any] = {
    "tf": tf,
    "tf.nn": tf.nn,
    "tf.math": tf.math,
    "keras.activations": keras.activations,
    "keras.ops": keras.ops,
}


_FUNCTION_NAMES: dict[int, str] | None = None  # id(function) -> public name, built once


def _public_function_name(fn: Any) -> str | None:
    """``"tf.nn.relu"`` for ``tf.nn.relu``: its name in the first namespace that has it.

    The names come from the namespaces' listings, not from ``fn.__name__``:
    TensorFlow's dispatch wrappers are named e.g. ``softmax_v2`` and do not
    all carry TensorFlow's export names.
    """
    global _FUNCTION_NAMES
    if _FUNCTION_NAMES is None:
        names: dict[int, str] = {}
        for prefix, module in _FUNCTION_NAMESPACES.items():
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


def _resolve_function(name: Any) -> Any:
    prefix, _, attr = name.rpartition(".") if isinstance(name, str) else ("", "", "")
    module = _FUNCTION_NAMESPACES.get(prefix)
    if (
        module is None
        or not attr
        or attr.startswith("_")
        or not callable(getattr(module, attr, None))
    ):
        raise ValueError(
            f"unknown function {name!r} in a saved core config; expected a public function "
            f"of {', '.join(_FUNCTION_NAMESPACES)} (e.g. 'tf.nn.relu')"
        )
    return getattr(module, attr)


def _keras_registered(fn: Any) -> bool:
    try:
        registered = keras.saving.get_registered_name(fn)
    except (AttributeError, TypeError):  # e.g. a callable object without __name__
        return False
    return keras.saving.get_registered_object(registered) is fn


# --------------------------------------------------------------------------
# The codec.
# --------------------------------------------------------------------------


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
    if is_core(value) and type(value) in _BY_TYPE:
        return {"__core__": serialize_core(value)}
    if isinstance(value, keras.layers.Layer):
        return {"__keras__": keras.saving.serialize_keras_object(value)}
    if isinstance(value, tf.DType):
        return {"__dtype__": value.name}
    if is_core(value):
        raise TypeError(
            f"cannot serialize {where}: core class {type(value).__name__} is "
            "not registered; call rnn.keras.register_core on it"
        )
    if callable(value):
        name = _public_function_name(value)
        if name is not None:
            return {"__function__": name}
        if _keras_registered(value):
            return {"__keras__": keras.saving.serialize_keras_object(value)}
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
    """Returns a JSON-compatible description of ``core``: its class and ``get_config()``.

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
    config = {
        key: _encode(value, f"{type(core).__name__} config[{key!r}]") for key, value in raw.items()
    }
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


# The cores of this package, under the names saved files use. Each class's
# own get_config/from_config does the work.
register_core(_cores.VanillaRNN, name="rnn.VanillaRNN")
register_core(_cores.LSTM, name="rnn.LSTM")
register_core(_cores.GRU, name="rnn.GRU")
register_core(_deep.DeepRNN, name="rnn.DeepRNN")
# deep_rnn_with_skip_connections returns this DeepRNN subclass; its config
# holds that function's arguments.
register_core(_deep._DeepRNNWithSkips, name="rnn.deep_rnn_with_skip_connections")
register_core(_deep.ResidualCore, name="rnn.ResidualCore")
register_core(_dnc_core.DNC, name="rnn.DNC")
