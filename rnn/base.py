"""Base classes for recurrent cores: :class:`RNNCore` and :class:`TrainableState`.

A *core* is a :class:`tf.Module` that maps ``(inputs, prev_state)`` to
``(output, next_state)`` for one time step. Its state may be any nest
(a tensor, a namedtuple, a tuple of namedtuples, ...): the unrollers and
combinators in this package handle every state structure through
:mod:`nestlib`, so one core can replace another with no other code change.
"""

from __future__ import annotations

import abc
import importlib.abc
import inspect
import sys
import types
import weakref
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

import nestlib

__all__ = ["RNNCore", "TrainableState", "is_core", "call_initial_state"]


class RNNCore(tf.Module, metaclass=abc.ABCMeta):
    """Base class for recurrent cores.

    Subclasses implement :meth:`__call__` (one time step) and
    :meth:`initial_state`. They may also override :meth:`unroll_fast_path`
    to process a whole sequence at once; the unrollers call it first and fall
    back to stepping the core when it returns ``None``. A fast path that also
    honours the unrollers' ``reset`` / ``return_all_states`` names them in
    :attr:`unroll_fast_path_options`.

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
    def initial_state(self, batch_size: Any, dtype: Any = tf.float32) -> Any:
        """Returns the state at the start of a sequence for ``batch_size`` examples.

        ``batch_size`` may be a Python int or a scalar integer tensor (so it
        also works when the batch size is only known at run time). The cores
        of this package take ``dtype=None`` by default: the dtype given to
        their constructor, else float32.
        """

    #: Which of the unrollers' ``"reset"`` and ``"return_all_states"`` this
    #: core's :meth:`unroll_fast_path` honours (none by default: the
    #: unrollers then step the core when they are used).
    unroll_fast_path_options: frozenset[str] = frozenset()

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
        """Optionally processes a whole time-major sequence in one call.

        Called by :func:`rnn.dynamic_unroll` and :func:`rnn.static_unroll`
        with ``input_sequence`` already time-major (``[T, B, ...]`` leaves)
        and ``sequence_length`` either ``None`` or an int32 ``[B]`` tensor.
        Return ``(output_sequence, final_state)`` with exactly the semantics
        of stepping the core (zeros after each example's length, the final
        state taken at its last valid step, ``reverse`` processing each
        example's valid prefix backwards with outputs in input time order),
        or ``None`` when no fast path applies. The default returns ``None``.

        The keyword arguments are given only when in use and only if named
        in :attr:`unroll_fast_path_options`: ``reset`` (the unroller's
        segment-start marks, time-major ``[T, B]`` bool, checked) with
        ``reset_state`` (a nest like ``initial_state``), and
        ``return_all_states=True``, for which a third result, the state
        sequence, is returned (see :func:`rnn.dynamic_unroll`).

        >>> class Echo(RNNCore):
        ...     def __call__(self, inputs, prev_state):
        ...         return inputs, prev_state
        ...     def initial_state(self, batch_size, dtype=tf.float32):
        ...         return ()
        >>> Echo().unroll_fast_path(tf.zeros([3, 2, 1]), (), None, False) is None
        True
        """
        del input_sequence, initial_state, sequence_length, reverse
        del reset, reset_state, return_all_states
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


def is_core(obj: Any) -> bool:
    """True for anything the stacks, the unrollers and :class:`rnn.keras.RNN` treat as a core.

    That is an :class:`RNNCore`, or any other object that is callable and has
    a callable ``initial_state`` (a Sonnet 2 core, a core of your own that
    does not subclass :class:`RNNCore`). Such an object is stepped as
    ``output, next_state = obj(inputs, prev_state)``. Classes are not cores
    (``rnn.LSTM`` itself, as opposed to ``rnn.LSTM(4)``), and plain callables
    without ``initial_state`` (``tf.tanh``, a :class:`rnn.Linear`, a Keras
    layer) are feed-forward layers in a :class:`rnn.DeepRNN`.

    >>> import rnn
    >>> is_core(rnn.LSTM(2)), is_core(tf.tanh), is_core(rnn.Linear(2)), is_core(rnn.LSTM)
    (True, False, False, False)
    >>> class Foreign:  # no RNNCore base class
    ...     def __call__(self, inputs, prev_state):
    ...         return inputs, prev_state
    ...     def initial_state(self, batch_size):
    ...         return tf.zeros([batch_size, 1])
    >>> is_core(Foreign())
    True
    """
    if isinstance(obj, RNNCore):
        return True
    if isinstance(obj, type) or not callable(obj):
        return False
    return callable(getattr(obj, "initial_state", None))


# initial_state function -> whether it takes ``dtype``; filled on first use.
_TAKES_DTYPE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _takes_dtype(initial_state: Any) -> bool:
    """Whether ``initial_state`` names a ``dtype`` parameter (inspected once per function).

    ``**kwargs`` alone does not count: Sonnet's combinators take
    ``initial_state(batch_size, **kwargs)`` and forward the keywords to
    Sonnet cores, whose ``initial_state(batch_size)`` takes none.
    """
    function = getattr(initial_state, "__func__", initial_state)
    try:
        return _TAKES_DTYPE[function]
    except (KeyError, TypeError):  # TypeError: not weak-referenceable
        pass
    try:
        parameters = inspect.signature(initial_state).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, a C function)
        takes = False
    else:
        dtype = parameters.get("dtype")
        takes = dtype is not None and dtype.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    try:
        _TAKES_DTYPE[function] = takes
    except TypeError:
        pass
    return takes


def call_initial_state(core: Any, batch_size: Any, dtype: Any = None) -> Any:
    """``core.initial_state(batch_size, dtype=dtype)``, passing only what the core accepts.

    ``dtype`` is passed when it is not ``None`` and the core's
    ``initial_state`` has a parameter named ``dtype`` (every core of this
    package has one); otherwise the core is called as
    ``core.initial_state(batch_size)`` and makes its state in its own dtype.
    Sonnet 2 cores take no ``dtype`` there (their state has the dtype given to
    their constructor), so a stack asked for a float64 state gets float32
    state from a Sonnet core built with the default dtype. The signature is
    inspected once per ``initial_state`` function. This is how the stacks,
    the DNC and :class:`rnn.keras.RNN` ask their cores for a state.

    >>> import rnn
    >>> call_initial_state(rnn.GRU(2), 1, tf.float64).dtype.name
    'float64'
    >>> class Foreign:
    ...     def __call__(self, inputs, prev_state):
    ...         return inputs, prev_state
    ...     def initial_state(self, batch_size):  # no dtype
    ...         return tf.zeros([batch_size, 1])
    >>> call_initial_state(Foreign(), 1, tf.float64).dtype.name
    'float32'
    """
    initial_state = getattr(core, "initial_state", None)
    if not callable(initial_state):
        raise TypeError(f"expected a core with an initial_state method, got {type(core).__name__}")
    if dtype is not None and _takes_dtype(initial_state):
        return initial_state(batch_size, dtype=dtype)
    return initial_state(batch_size)


# --------------------------------------------------------------------------
# Our cores as Sonnet 2 cores.
#
# Sonnet's combinators (snt.DeepRNN, the skip/residual stacks) tell cores from
# feed-forward layers with ``isinstance(layer, snt.RNNCore)``. snt.RNNCore is
# an abstract base class, so registering our RNNCore as a virtual subclass
# makes every core of this package (and every subclass of RNNCore) count as
# one. Importing Sonnet here would cost every user its import time, so:
# * when Sonnet is already imported, we register now;
# * otherwise a finder at the front of sys.meta_path waits for the module that
#   defines snt.RNNCore (sonnet.src.recurrent). It lets the regular finders
#   find it, wraps the loader so that the registration runs right after the
#   module's code (the module itself sees its original loader), and removes
#   itself from sys.meta_path once that is done. Other imports it leaves alone.
# --------------------------------------------------------------------------

_SONNET_RECURRENT = "sonnet.src.recurrent"


def _register_with_sonnet(module: types.ModuleType) -> None:
    """Registers RNNCore as a virtual subclass of ``module.RNNCore`` (when it is an ABC)."""
    sonnet_core = getattr(module, "RNNCore", None)
    ours: Any = RNNCore
    if isinstance(sonnet_core, abc.ABCMeta) and not issubclass(ours, sonnet_core):
        sonnet_core.register(ours)


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader, then registers RNNCore with the loaded module's RNNCore."""

    def __init__(self, loader: Any, hook: _SonnetImportHook):
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: Any) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module sees its real loader (for get_source, resources, reload).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _register_with_sonnet(module)
        # Registered: the hook has done its job (if the module failed to
        # load, it stays, and a later import of Sonnet registers).
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)


class _SonnetImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the loader of ``sonnet.src.recurrent`` (see above)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> Any:
        if fullname != _SONNET_RECURRENT:
            return None
        for finder in list(sys.meta_path):
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


def _hook_sonnet() -> None:
    module = sys.modules.get(_SONNET_RECURRENT)
    if module is not None:
        _register_with_sonnet(module)
    elif not any(isinstance(finder, _SonnetImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SonnetImportHook())


_hook_sonnet()


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
        cls, core: Any, mask: Any = None, name: str | None = None, dtype: Any = tf.float32
    ) -> TrainableState:
        """A trainable state initialised from ``core.initial_state(1, dtype)``.

        ``core`` is any core (see :func:`is_core`); one whose
        ``initial_state`` takes no ``dtype`` (a Sonnet core) is called
        without it (see :func:`call_initial_state`).

        >>> import rnn
        >>> ts = TrainableState.for_core(rnn.LSTM(4))
        >>> ts(3).cell.shape.as_list()
        [3, 4]
        """
        if not hasattr(core, "initial_state"):
            raise TypeError(
                f"for_core needs a core with an initial_state method, got {type(core).__name__}"
            )
        state = call_initial_state(core, 1, dtype)

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
    def __call__(self, batch_size: Any, dtype: Any = None) -> Any:
        """Returns the state tiled to ``[batch_size, ...]`` for every leaf.

        ``dtype`` (None: the variables' own) casts the floating-point leaves,
        e.g. to float16 for a core run in mixed precision; the variables stay
        as they are and their gradients come back in their dtype.

        >>> ts = TrainableState(tf.zeros([3]))
        >>> ts(2, dtype=tf.float16).dtype.name, ts.variables[0].dtype.name
        ('float16', 'float32')
        """
        batch_size = _batch_of(batch_size)
        if dtype is not None:
            dtype = tf.as_dtype(dtype)
            if not dtype.is_floating:
                raise TypeError(
                    f"TrainableState: dtype must be a floating-point dtype, got {dtype.name}"
                )

        def tile(v: tf.Variable | None) -> tf.Tensor | None:
            if v is None:
                return None
            x = tf.convert_to_tensor(v)
            if dtype is not None and x.dtype.is_floating and x.dtype != dtype:
                x = tf.cast(x, dtype)
            multiples = tf.concat(
                [tf.reshape(tf.cast(batch_size, tf.int32), [1]), tf.ones([x.shape.rank], tf.int32)],
                axis=0,
            )
            return tf.tile(x[tf.newaxis], multiples)

        return self._spec.unflatten([tile(v) for v in self._leaves])
