"""Argument checks shared by the rnn modules: one definition each, one wording.

Each check names the argument, says what was expected and what was found, and
returns the value (normalised) so that constructors can write
``self._size = positive_int("size", size)``. The initializer helpers resolve
the cores' ``kernel_initializer`` / ``recurrent_initializer`` /
``bias_initializer`` arguments (and their Sonnet aliases) in one place.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf

__all__ = [
    "positive_int",
    "float_dtype",
    "aliased",
    "initializer",
    "initializer_config",
    "initial_value",
]


def positive_int(name: str, value: Any) -> int:
    """Returns ``value`` as an ``int`` when it is an integer >= 1; raises ValueError otherwise.

    Booleans are refused (``True`` is an ``int`` to Python, never a size);
    NumPy integers are accepted and returned as Python ints.

    >>> positive_int("hidden_size", 8)
    8
    >>> positive_int("hidden_size", True)
    Traceback (most recent call last):
      ...
    ValueError: hidden_size must be a positive int, got True (bool)
    >>> positive_int("num_reads", 0)
    Traceback (most recent call last):
      ...
    ValueError: num_reads must be a positive int, got 0 (int)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    return int(value)


def float_dtype(name: str, value: Any) -> tf.DType | None:
    """``None``, or ``value`` as a floating-point ``tf.DType``; TypeError otherwise.

    Accepts anything ``tf.as_dtype`` does (``tf.float64``, ``"float64"``,
    ``np.float64``).

    >>> float_dtype("dtype", "float64").name
    'float64'
    >>> float_dtype("dtype", None) is None
    True
    >>> float_dtype("dtype", tf.int32)
    Traceback (most recent call last):
      ...
    TypeError: dtype must be a floating-point dtype (e.g. tf.float32) or None, got int32
    """
    if value is None:
        return None
    try:
        dtype = tf.as_dtype(value)
    except TypeError:
        raise TypeError(
            f"{name} must be a floating-point dtype (e.g. tf.float32) or None, got {value!r}"
        ) from None
    if not dtype.is_floating:
        raise TypeError(
            f"{name} must be a floating-point dtype (e.g. tf.float32) or None, got {dtype.name}"
        )
    return dtype


def aliased(keras_name: str, keras_value: Any, sonnet_name: str, sonnet_value: Any) -> Any:
    """The one of an argument and its Sonnet alias that was given (or None); both is a TypeError.

    >>> aliased("kernel_initializer", None, "w_i_init", "ones")
    'ones'
    >>> aliased("kernel_initializer", "zeros", "w_i_init", "ones")
    Traceback (most recent call last):
      ...
    TypeError: got both kernel_initializer and its Sonnet alias w_i_init; pass only one
    """
    if keras_value is not None and sonnet_value is not None:
        raise TypeError(f"got both {keras_name} and its Sonnet alias {sonnet_name}; pass only one")
    return keras_value if keras_value is not None else sonnet_value


# An initializer is called as ``initializer(shape, dtype)`` and returns the
# initial value: a Keras initializer, a Sonnet initializer or a plain function.
Initializer = Callable[[list[int], tf.DType], Any]


def _keras_initializer_class() -> Any:
    # Only an already imported Keras can have made a Keras initializer object:
    # this never imports Keras itself.
    keras = sys.modules.get("keras")
    return getattr(getattr(keras, "initializers", None), "Initializer", None)


def initializer(name: str, value: Any) -> Initializer | None:
    """Resolves an initializer argument: ``None`` (the core's default) stays ``None``.

    A string (``"ones"``, ``"glorot_uniform"``) or a dict (a Keras-serialized
    initializer, as :func:`initializer_config` returns) goes through
    ``keras.initializers.get`` (Keras is imported only then); any callable
    ``(shape, dtype) -> value`` (a Keras or Sonnet initializer object, a
    function) is used as it is. Anything else is a TypeError, an unknown name
    a ValueError, both naming the argument.

    >>> init = initializer("bias_initializer", "ones")
    >>> init([2], tf.float32).numpy().tolist()
    [1.0, 1.0]
    >>> initializer("bias_initializer", 3)
    Traceback (most recent call last):
      ...
    TypeError: bias_initializer must be None, an initializer name (e.g. 'zeros'), ... got 3 (int)
    """
    if value is None:
        return None
    if isinstance(value, (str, dict)):
        import keras  # Only when a name or a config is given.

        try:
            resolved = keras.initializers.get(value)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{name}: unknown initializer {value!r}: {e}") from None
        if not callable(resolved):
            raise ValueError(f"{name}: {value!r} does not name an initializer")
        return resolved
    if callable(value) and not isinstance(value, type):
        return value
    raise TypeError(
        f"{name} must be None, an initializer name (e.g. 'zeros'), a Keras initializer "
        "(object or serialized dict) or a callable (shape, dtype) -> value, got "
        f"{value!r} ({type(value).__name__})"
    )


def initializer_config(value: Any) -> Any:
    """How ``get_config`` stores an initializer argument.

    ``None``, names and dicts as given; a Keras initializer object as its
    Keras serialization (a dict ``keras.initializers.get`` turns back into
    the same initializer); any other callable as it is (rnn.keras saves it
    when it is a public TensorFlow/Keras function or registered with
    ``keras.saving.register_keras_serializable``, and says so otherwise).

    >>> initializer_config("ones")
    'ones'
    >>> import keras
    >>> initializer_config(keras.initializers.Constant(0.5))["class_name"]
    'Constant'
    """
    keras_initializer = _keras_initializer_class()
    if keras_initializer is not None and isinstance(value, keras_initializer):
        import keras

        return keras.initializers.serialize(value)
    if isinstance(value, Mapping):
        # Plain dicts again (a tf.Module stores dicts in tracking wrappers).
        return _plain(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [_plain(v) for v in value]
    return value


def initial_value(name: str, init: Initializer, shape: Sequence[int], dtype: tf.DType) -> tf.Tensor:
    """``init(shape, dtype)`` as a tensor of that dtype, its shape checked (ValueError).

    >>> initial_value("kernel_initializer", lambda s, d: tf.ones(s, d), [2, 3], tf.float64).dtype
    tf.float64
    >>> initial_value("kernel_initializer", lambda s, d: tf.ones([3]), [2, 3], tf.float32)
    Traceback (most recent call last):
      ...
    ValueError: kernel_initializer returned a value of shape (3,) for a variable of shape [2, 3]
    """
    shape = [int(d) for d in shape]
    value = tf.convert_to_tensor(init(shape, dtype))
    if value.shape.as_list() != shape:
        raise ValueError(
            f"{name} returned a value of shape {tuple(value.shape.as_list())} for a "
            f"variable of shape {shape}"
        )
    if value.dtype != dtype:
        value = tf.cast(value, dtype)
    return value
