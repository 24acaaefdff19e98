"""The variable bridge: a core's ``tf.Variable`` objects shown to Keras as its weights.

Keras 3 does not see the ``tf.Variable`` objects a ``tf.Module`` owns. The
:class:`rnn.keras.RNN` layer wraps each of them in a ``keras.Variable`` that
*shares* its storage (no copy), so ``model.fit`` trains the core and saving
stores it while the core keeps reading its own variables; Keras layers used
inside a core are found and tracked as sublayers.
"""

from __future__ import annotations

import weakref
from typing import Any

import keras
import tensorflow as tf

__all__ = ["wrap_variable", "keras_layers_in"]

# One keras.Variable per tf.Variable, so that two layers holding the same core
# (weight tying) expose the *same* weight objects, which Keras deduplicates;
# otherwise the optimizer would apply two updates to one variable per step.
_WRAPPERS: weakref.WeakValueDictionary[Any, keras.Variable] = weakref.WeakValueDictionary()


def wrap_variable(variable: tf.Variable) -> keras.Variable:
    """A ``keras.Variable`` whose storage is ``variable`` itself (one per variable).

    >>> import tensorflow as tf
    >>> v = tf.Variable([1.0, 2.0], name="w")
    >>> w = wrap_variable(v)
    >>> w.value is v, wrap_variable(v) is w
    (True, True)
    """
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


def keras_layers_in(core: Any) -> list[keras.layers.Layer]:
    """The distinct Keras layers found in ``core`` 's attributes (nests included).

    >>> import keras, rnn
    >>> dense = keras.layers.Dense(2)
    >>> keras_layers_in(rnn.DeepRNN([rnn.GRU(3), dense])) == [dense]
    True
    """
    flatten = getattr(core, "_flatten", None)  # tf.Module's attribute walker
    if not callable(flatten):
        return [core] if isinstance(core, keras.layers.Layer) else []
    found, seen = [], set()
    for layer in flatten(predicate=lambda x: isinstance(x, keras.layers.Layer)):
        if id(layer) not in seen:
            seen.add(id(layer))
            found.append(layer)
    return found
