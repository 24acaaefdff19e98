"""Stacks of cores: DeepRNN, skip and residual connections, ResidualCore.

A stack's state is a tuple with one entry per core, whatever each core's
state structure is, so cores with tensor, namedtuple or deeply nested states
stack freely.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

import nestlib
from rnn import _utils
from rnn.base import RNNCore, call_initial_state, is_core

__all__ = [
    "DeepRNN",
    "deep_rnn_with_skip_connections",
    "deep_rnn_with_residual_connections",
    "ResidualCore",
]

# A core (anything :func:`rnn.base.is_core` accepts: ours, Sonnet's, ...) or a
# feed-forward callable.
Layer = RNNCore | Callable[..., Any]


@_utils.no_autograph
def _overrides_fast_path(core: Any) -> bool:
    method = getattr(type(core), "unroll_fast_path", None)
    return method is not None and method is not RNNCore.unroll_fast_path


@_utils.no_autograph
def _concat(*xs: Any) -> Any:
    """Concatenates matching nests of tensors leaf by leaf on the last axis."""
    return nestlib.map_structure(lambda *leaves: tf.concat(leaves, axis=-1), *xs)


@_utils.no_autograph
@_utils.no_autograph
def _add(a: Any, b: Any) -> Any:
    """Adds matching nests of tensors leaf by leaf."""
    return nestlib.map_structure(tf.add, a, b)


@_utils.no_autograph
def _valid_mask(sequence_length: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``[T, B, 1, ...]`` bool mask of ``t < sequence_length[b]``."""
    mask = tf.sequence_mask(sequence_length, tf.shape(like)[0])  # [B, T]
    mask = tf.transpose(mask)
    return tf.reshape(
        mask, tf.concat([tf.shape(mask), tf.ones([like.shape.rank - 2], tf.int32)], axis=0)
    )


class DeepRNN(RNNCore):
    """Applies layers in sequence; each core keeps its own state.

    ``layers`` are cores or plain callables (e.g. a nonlinearity or a linear
    map applied to every step's output). A core is anything
    :func:`rnn.base.is_core` accepts: a core of this package, a Sonnet 2 core
    (``snt.LSTM``, ``snt.GRU``, ...) or any object with
    ``__call__(inputs, prev_state)`` and ``initial_state(batch_size, ...)``;
    a callable without ``initial_state`` is a feed-forward layer. The state
    is a tuple with one entry per core, in order; the output is the last
    layer's output.

    When every layer is an :class:`rnn.RNNCore` and at least one has a
    whole-sequence fast path, the unrollers run the stack layer by layer
    (each layer over the whole sequence), which gives the same results as
    stepping it. A stack holding any other core (a Sonnet core) is stepped.

    >>> import rnn
    >>> deep = DeepRNN([rnn.LSTM(4), tf.nn.relu, rnn.GRU(3)])
    >>> state = deep.initial_state(2)
    >>> len(state), type(state[0]).__name__
    (2, 'LSTMState')
    >>> out, state = deep(tf.ones([2, 5]), state)
    >>> out.shape.as_list()
    [2, 3]
    """

    def __init__(self, layers: Sequence[Layer], name: str | None = None):
        super().__init__(name=name)
        self._init_layers(layers, skip_connections=False, concat_final_output=False)

    def _init_layers(
        self, layers: Sequence[Layer], skip_connections: bool, concat_final_output: bool
    ) -> None:
        if is_core(layers) or not isinstance(layers, (list, tuple)):
            raise TypeError(
                f"{type(self).__name__} expects a list or tuple of layers, got "
                f"{type(layers).__name__}"
            )
        layers = list(layers)
        if not layers:
            raise ValueError(f"{type(self).__name__} needs at least one layer")
        for i, layer in enumerate(layers):
            if skip_connections and not is_core(layer):
                # ValueError, as Sonnet's deep_rnn_with_skip_connections.
                raise ValueError(
                    "deep_rnn_with_skip_connections requires all layers to be instances "
                    "of RNNCore (or other cores: callables with an initial_state method); "
                    f"layer {i} is {type(layer).__name__}"
                )
            if not callable(layer):
                raise TypeError(
                    f"layer {i} of {type(self).__name__} is not callable: {type(layer).__name__}"
                )
        self._layers: list[Any] = layers
        self._skip_connections = skip_connections
        self._concat_final_output = concat_final_output
        # Decided once: which layers are cores (they get a state entry).
        self._is_core = tuple(is_core(l) for l in layers)
        self._num_cores = sum(self._is_core)

    @property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(self._layers)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments: the layers themselves (cores and functions).

        >>> import rnn
        >>> config = DeepRNN([rnn.GRU(2), tf.nn.relu]).get_config()
        >>> [type(layer).__name__ for layer in config["layers"]], config["name"]
        (['GRU', 'function'], 'deep_rnn')
        """
        return {"layers": list(self._layers), "name": self.name}

    @_utils.no_autograph
    def _check_state(self, prev_state: Any) -> tuple[Any, ...]:
        if not isinstance(prev_state, tuple) or hasattr(prev_state, "_fields"):
            raise TypeError(
                f"{type(self).__name__} expects prev_state to be a tuple with "
                f"one entry per core ({self._num_cores}), got "
                f"{type(prev_state).__name__}"
            )
        if len(prev_state) != self._num_cores:
            raise ValueError(
                f"{type(self).__name__} has {self._num_cores} cores but "
                f"prev_state has {len(prev_state)} entries"
            )
        return prev_state

    def __call__(self, inputs: Any, prev_state: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        """One step through every layer; returns ``(output, tuple_of_states)``."""
        prev_state = self._check_state(prev_state)
        current = inputs
        next_states = []
        outputs = []
        core_index = 0
        for i, layer in enumerate(self._layers):
            if self._is_core[i]:
                if self._skip_connections and i > 0:
                    current = _concat(inputs, current)
                current, state = layer(current, prev_state[core_index])
                next_states.append(state)
                outputs.append(current)
                core_index += 1
            else:
                current = layer(current)
        if self._skip_connections and self._concat_final_output:
            current = _concat(*outputs)
        return current, tuple(next_states)

    def initial_state(self, batch_size: Any, dtype: Any = None) -> tuple[Any, ...]:
        """A tuple of every core's ``initial_state(batch_size, dtype=dtype)``.

        ``dtype=None`` (the default) leaves each core its own default; a core
        whose ``initial_state`` takes no ``dtype`` (a Sonnet core) is always
        called without it (see :func:`rnn.base.call_initial_state`).
        """
        return tuple(
            call_initial_state(layer, batch_size, dtype)
            for layer, core in zip(self._layers, self._is_core)
            if core
        )

    # Layer by layer, resets and state sequences are each layer's own.
    unroll_fast_path_options = frozenset({"reset", "return_all_states"})

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
        """Unrolls layer by layer when all layers are RNNCores and one has a fast path.

        Each layer sees the previous layer's whole output sequence, which is
        equivalent to stepping the stack because no layer reads a later
        layer's state (and a reset replaces every layer's state at the same
        steps). Returns None otherwise (a feed-forward layer, or a core that
        is not an :class:`rnn.RNNCore`, such as a Sonnet core: its
        ``unroll_fast_path``, if any, is not ours to call).

        >>> import rnn
        >>> deep = DeepRNN([rnn.GRU(2), tf.tanh])
        >>> deep.unroll_fast_path(tf.ones([3, 1, 2]), deep.initial_state(1),
        ...                       None, False) is None
        True
        """
        if not all(isinstance(l, RNNCore) for l in self._layers):
            return None
        if not any(_overrides_fast_path(l) for l in self._layers):
            return None
        from rnn.unroll import dynamic_unroll  # pylint: disable=import-outside-toplevel

        prev_state = self._check_state(initial_state)
        reset_states = self._check_state(reset_state) if reset is not None else prev_state
        current = input_sequence
        outputs = []
        finals = []
        sequences = []
        for i, layer in enumerate(self._layers):
            if self._skip_connections and i > 0:
                current = _concat(input_sequence, current)
            current, final, *sequence = dynamic_unroll(
                layer,
                current,
                prev_state[i],
                sequence_length=sequence_length,
                reverse=reverse,
                reset=reset,
                reset_state=reset_states[i] if reset is not None else None,
                return_all_states=return_all_states,
            )
            outputs.append(current)
            finals.append(final)
            sequences += sequence
        if self._skip_connections and self._concat_final_output:
            current = _concat(*outputs)
        if return_all_states:
            return current, tuple(finals), tuple(sequences)
        return current, tuple(finals)


class _DeepRNNWithSkips(DeepRNN):
    """A DeepRNN whose cores after the first also read the stack's input."""

    def __init__(self, cores: Sequence[Any], concat_final_output: bool, name: str | None = None):
        # RNNCore's initialiser, not DeepRNN's: the layers are checked by
        # _init_layers below with the skip-connection rules.
        super(DeepRNN, self).__init__(name=name)
        self._init_layers(cores, skip_connections=True, concat_final_output=concat_final_output)

    def get_config(self) -> dict[str, Any]:
        """The arguments of :func:`deep_rnn_with_skip_connections`."""
        return {
            "cores": list(self._layers),
            "concat_final_output": self._concat_final_output,
            "name": self.name,
        }


def deep_rnn_with_skip_connections(
    cores: Sequence[Any], concat_final_output: bool = True, name: str | None = None
) -> DeepRNN:
    """A stack where each core after the first reads ``concat(input, previous output)``.

    ``cores`` are cores of any kind (see :func:`rnn.base.is_core`; Sonnet
    cores included); anything else is a ValueError, as in Sonnet.

    The output is the concatenation of all cores' outputs when
    ``concat_final_output`` is True, else the last core's output. Inputs and
    outputs are concatenated leaf by leaf on the last axis, so they must have
    the same structure (usually single tensors).

    >>> import rnn
    >>> deep = deep_rnn_with_skip_connections([rnn.LSTM(2), rnn.GRU(3)])
    >>> out, _ = deep(tf.ones([1, 4]), deep.initial_state(1))
    >>> out.shape.as_list()
    [1, 5]
    """
    return _DeepRNNWithSkips(cores, concat_final_output, name=name)


class ResidualCore(RNNCore):
    """Wraps a core so its output is ``inputs + core_output`` (same state).

    The core may be of any kind (see :func:`rnn.base.is_core`); anything
    else is a TypeError.

    Inputs and the core's output must have the same structure and shapes.

    >>> import rnn
    >>> core = ResidualCore(rnn.VanillaRNN(3))
    >>> out, state = core(tf.zeros([2, 3]), core.initial_state(2))
    >>> float(tf.reduce_max(tf.abs(out - state)))
    0.0
    """

    def __init__(self, core: Any, name: str | None = None):
        super().__init__(name=name)
        if not is_core(core):
            raise TypeError(
                "ResidualCore wraps an RNNCore or another core (callable with an "
                "initial_state method), got "
                f"{type(core).__name__}"
            )
        self._core = core

    @property
    def core(self) -> Any:
        return self._core

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments: the wrapped core itself and the name.

        >>> import rnn
        >>> type(ResidualCore(rnn.GRU(2)).get_config()["core"]).__name__
        'GRU'
        """
        return {"core": self._core, "name": self.name}

    def __call__(self, inputs: Any, prev_state: Any) -> tuple[Any, Any]:
        """Returns ``(inputs + output, next_state)`` of the wrapped core."""
        output, next_state = self._core(inputs, prev_state)
        return _add(inputs, output), next_state

    def initial_state(self, batch_size: Any, dtype: Any = None) -> Any:
        """The wrapped core's initial state (see :func:`rnn.base.call_initial_state`)."""
        return call_initial_state(self._core, batch_size, dtype)

    @property
    def unroll_fast_path_options(self) -> frozenset[str]:  # type: ignore[override]
        """The wrapped core's (none for a core that is not an RNNCore)."""
        if not isinstance(self._core, RNNCore):
            return frozenset()
        return self._core.unroll_fast_path_options

    def unroll_fast_path(
        self,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        **options: Any,
    ) -> tuple[Any, ...] | None:
        """Uses the wrapped core's fast path when it has one (else None).

        >>> import rnn
        >>> core = ResidualCore(rnn.VanillaRNN(2, activation=tf.nn.relu))
        >>> core.unroll_fast_path(tf.ones([3, 1, 2]), core.initial_state(1),
        ...                       None, False) is None
        True
        >>> core = ResidualCore(rnn.GRU(2))
        >>> core.unroll_fast_path(tf.ones([3, 1, 2]), core.initial_state(1),
        ...                       None, False)[0].shape.as_list()
        [3, 1, 2]
        """
        if not isinstance(self._core, RNNCore) or not _overrides_fast_path(self._core):
            return None
        result = self._core.unroll_fast_path(
            input_sequence, initial_state, sequence_length, reverse, **options
        )
        if result is None:
            return None
        outputs, *states = result
        summed = nestlib.map_structure(tf.add, input_sequence, outputs)
        if sequence_length is not None:
            summed = nestlib.map_structure(
                lambda x: tf.where(_valid_mask(sequence_length, x), x, tf.zeros_like(x)), summed
            )
        return (summed, *states)


def deep_rnn_with_residual_connections(cores: Sequence[Any], name: str | None = None) -> DeepRNN:
    """A stack of :class:`ResidualCore` s: each core's output is added to its input.

    ``cores`` are cores of any kind (see :func:`rnn.base.is_core`; Sonnet
    cores included); anything else is a ValueError, as in Sonnet.

    Every core's output must have the same shape as its input.

    >>> import rnn
    >>> deep = deep_rnn_with_residual_connections([rnn.GRU(3), rnn.LSTM(3)])
    >>> out, state = deep(tf.ones([2, 3]), deep.initial_state(2))
    >>> out.shape.as_list(), len(state)
    ([2, 3], 2)
    """
    cores = list(cores) if isinstance(cores, (list, tuple)) else cores
    if not isinstance(cores, list):
        raise TypeError(
            "deep_rnn_with_residual_connections expects a list or tuple of "
            f"cores, got {type(cores).__name__}"
        )
    for i, core in enumerate(cores):
        if not is_core(core):
            # ValueError, as Sonnet's deep_rnn_with_residual_connections.
            raise ValueError(
                "deep_rnn_with_residual_connections requires all layers to be instances "
                "of RNNCore (or other cores: callables with an initial_state method); "
                f"layer {i} is {type(core).__name__}"
            )
    return DeepRNN([ResidualCore(core) for core in cores], name=name)
