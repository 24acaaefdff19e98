"""Base classes for recurrent cores: :class:`RNNCore` and :class:`TrainableState`.

A *core* is a :class:`tf.Module` that maps ``(inputs, prev_state)`` to
``(output, next_state)`` for one time step. Its state may be any nest
(a tensor, a namedtuple, a tuple of namedtuples, ...): the unrollers and
combinators in this package handle every state structure through
:mod:`nestlib`, so one core can replace another with no other code change.
"""

from __future__ import annotations

import abc
import inspect
from typing import Any

import tensorflow as tf

import nestlib

__all__ = ["RNNCore", "TrainableState"]


class RNNCore(tf.Module, metaclass=abc.ABCMeta):
    """Base class for recurrent cores.

    Subclasses implement :meth:`__call__` (one time step) and
    :meth:`initial_state`. They may also override :meth:`unroll_fast_path`
    to process a whole sequence at once; the unrollers call it first and fall
    back to stepping the core when it returns ``None``.

    Example:

    >>> class Counter(RNNCore):
    ...     def __call__(self, inputs, prev_state):
    ...         next_state = prev_state + 1.0
    ...         return inputs * next_state, next_state
    ...     def initial_state(self, batch_size, dtype=tf.float32):
    ...         return tf.zeros([batch_size, 1], dtype)
    >>> core = Counter()
    >>> out, state = core(tf.ones([2, 1]), core.initial_state(2))
    >>> out.numpy().tolist()
    [[1.0], [1.0]]
    """

    @abc.abstractmethod
    def __call__(self, inputs: Any, prev_state: Any) -> tuple[Any, Any]:
        """Runs one step: returns ``(output, next_state)``.

        ``next_state`` must have the same structure as ``prev_state``.
        """

    @abc.abstractmethod
    def initial_state(self, batch_size: Any, dtype: tf.DType = tf.float32) -> Any:
        """Returns the state at the start of a sequence for ``batch_size`` examples.

        ``batch_size`` may be a Python int or a scalar integer tensor (so it
        also works when the batch size is only known at run time).
        """

    def unroll_fast_path(
        self,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: tf.Tensor | None,
        reverse: bool,
    ) -> tuple[Any, Any] | None:
        """Optionally processes a whole time-major sequence in one call.

        Called by :func:`rnn.dynamic_unroll` and :func:`rnn.static_unroll`
        with ``input_sequence`` already time-major (``[T, B, ...]`` leaves)
        and ``sequence_length`` either ``None`` or an int32 ``[B]`` tensor.
        Return ``(output_sequence, final_state)`` with exactly the semantics
        of stepping the core (zeros after each example's length, the final
        state taken at its last valid step, ``reverse`` processing each
        example's valid prefix backwards with outputs in input time order),
        or ``None`` when no fast path applies. The default returns ``None``.

        >>> class Echo(RNNCore):
        ...     def __call__(self, inputs, prev_state):
        ...         return inputs, prev_state
        ...     def initial_state(self, batch_size, dtype=tf.float32):
        ...         return ()
        >>> Echo().unroll_fast_path(tf.zeros([3, 2, 1]), (), None, False) is None
        True
        """
        del input_sequence, initial_state, sequence_length, reverse
        return None

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments that rebuild this core (without its weights).

        Values are JSON types (numbers, strings, ``None``, lists, dicts) or the
        objects the constructor was given: other cores (the layers of a
        :class:`rnn.DeepRNN`, a DNC's controller) and functions (an
        activation). :func:`rnn.keras.serialize_core` encodes those, as Keras
        3 does with the Keras objects in a layer's config. Every core of this
        package defines it; a core of your own defines it to be saved in a
        Keras model. The default raises NotImplementedError naming the class.

        >>> import rnn
        >>> rnn.GRU(4, reset_after=True).get_config()
        {'hidden_size': 4, 'reset_after': True, 'name': 'gru'}
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not define get_config(); define it to return "
            "the constructor arguments (a dict) that rebuild the core"
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RNNCore:
        """Builds a new core (with fresh weights) from :meth:`get_config` 's output.

        The default calls ``cls(**config)``; a core whose constructor does not
        take its config as keyword arguments overrides it.

        >>> import rnn
        >>> lstm = rnn.LSTM.from_config(rnn.LSTM(3, cell_clip=2.0).get_config())
        >>> lstm.get_config()["cell_clip"]
        2.0
        """
        if not isinstance(config, dict):
            raise TypeError(
                f"{cls.__name__}.from_config expects a dict of constructor arguments, "
                f"got {type(config).__name__}"
            )
        try:
            inspect.signature(cls).bind(**config)
        except TypeError as e:
            raise TypeError(
                f"{cls.__name__}.from_config cannot call {cls.__name__}(**config) with "
                f"the keys {sorted(config)}: {e}. Define from_config, or make get_config "
                "return the constructor's keyword arguments"
            ) from None
        return cls(**config)


def _batch_of(batch_size: Any) -> Any:
    if isinstance(batch_size, int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return batch_size
    if isinstance(batch_size, tf.Tensor) or hasattr(batch_size, "dtype"):
        t = tf.convert_to_tensor(batch_size)
        if t.shape.rank != 0 or not t.dtype.is_integer:
            raise TypeError(f"batch_size must be an int or a scalar integer tensor, got {t!r}")
        return t
    raise TypeError(
        f"batch_size must be an int or a scalar integer tensor, got {type(batch_size).__name__}"
    )


class TrainableState(tf.Module):
    """A learned initial state: one variable per state leaf, tiled over the batch.

    ``initial_values`` is a nest of tensors *without* the batch dimension
    (``None`` leaves stay ``None``). ``mask`` is an optional nest of Python
    bools of the same structure: leaves marked ``False`` are kept fixed
    (non-trainable variables).

    >>> ts = TrainableState({"h": tf.zeros([3]), "c": tf.ones([3])},
    ...                     mask={"h": True, "c": False})
    >>> state = ts(2)
    >>> state["c"].shape.as_list()
    [2, 3]
    >>> len(ts.trainable_variables)
    1
    """

    def __init__(self, initial_values: Any, mask: Any = None, name: str | None = None):
        super().__init__(name=name)
        self._spec = nestlib.spec_of(initial_values)
        flat_values = self._spec.flatten(initial_values)
        if mask is None:
            flat_mask = [True] * len(flat_values)
        else:
            flat_mask = self._spec.flatten(mask)
            for path, m in zip(self._spec.paths, flat_mask):
                if not isinstance(m, bool):
                    raise TypeError(
                        f"mask leaves must be Python bools, got "
                        f"{type(m).__name__} at {nestlib.format_path(path)}"
                    )
        self._leaves: list[tf.Variable | None] = []
        with self.name_scope:
            for i, (v, m) in enumerate(zip(flat_values, flat_mask)):
                if v is None:
                    self._leaves.append(None)
                    continue
                v = tf.convert_to_tensor(v)
                self._leaves.append(tf.Variable(v, trainable=m, name=f"initial_state_{i}"))

    @classmethod
    def for_core(
        cls, core: RNNCore, mask: Any = None, name: str | None = None, dtype: tf.DType = tf.float32
    ) -> TrainableState:
        """A trainable state initialised from ``core.initial_state(1, dtype)``.

        >>> import rnn
        >>> ts = TrainableState.for_core(rnn.LSTM(4))
        >>> ts(3).cell.shape.as_list()
        [3, 4]
        """
        if not hasattr(core, "initial_state"):
            raise TypeError(
                f"for_core needs a core with an initial_state method, got {type(core).__name__}"
            )
        state = core.initial_state(1, dtype=dtype)

        def squeeze(x: Any) -> tf.Tensor | None:
            if x is None:
                return None
            x = tf.convert_to_tensor(x)
            if x.shape.rank is None or x.shape.rank < 1:
                raise ValueError(
                    "for_core: every state leaf needs a leading batch "
                    f"dimension, got shape {x.shape}"
                )
            return tf.squeeze(x, axis=0)

        return cls(nestlib.map_structure(squeeze, state), mask=mask, name=name)

    @tf.autograph.experimental.do_not_convert
    def __call__(self, batch_size: Any) -> Any:
        """Returns the state tiled to ``[batch_size, ...]`` for every leaf."""
        batch_size = _batch_of(batch_size)

        def tile(v: tf.Variable | None) -> tf.Tensor | None:
            if v is None:
                return None
            x = tf.convert_to_tensor(v)
            multiples = tf.concat(
                [tf.reshape(tf.cast(batch_size, tf.int32), [1]), tf.ones([x.shape.rank], tf.int32)],
                axis=0,
            )
            return tf.tile(x[tf.newaxis], multiples)

        return self._spec.unflatten([tile(v) for v in self._leaves])
