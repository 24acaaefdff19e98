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
* **Stateful layers.** ``RNN(core, stateful=True)`` keeps each example's
  final state (after its last valid step) for the same example of the next
  batch, as ``keras.layers.RNN(stateful=True)``: a fixed batch size is
  required, the kept state is :attr:`RNN.states` (variables in the core's
  state structure, not weights, not saved) and :meth:`RNN.reset_state`
  resets every example, or some (a bool mask or ``indices=``).
* **Mixed precision.** Under Keras' ``"mixed_float16"`` /
  ``"mixed_bfloat16"`` policies the core is built in the variable dtype
  (float32 variables) and runs in the compute dtype; ``model.fit`` trains
  with Keras' loss scaling.
* **Saving.** :meth:`RNN.get_config` stores the core's class and its
  ``get_config()`` (the constructor arguments; every core of this package
  defines it) through a small registry (:func:`register_core`,
  :func:`serialize_core`, :func:`deserialize_core`) that knows every core of
  this package; give your own core class a ``get_config`` and register it to
  save models holding it.

The package's modules: :mod:`rnn.keras.layer` (the :class:`RNN` layer),
:mod:`rnn.keras.serialization` (the registry and the JSON codec of core
configs) and :mod:`rnn.keras.variables` (the bridge that shows a core's
``tf.Variable`` objects to Keras).

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

import keras

if keras.backend.backend() != "tensorflow":  # pragma: no cover - env specific
    raise ImportError(
        "rnn.keras needs Keras' TensorFlow backend (the cores are TensorFlow "
        f"modules); the active backend is {keras.backend.backend()!r}. Set "
        "KERAS_BACKEND=tensorflow before importing keras."
    )

from rnn.keras.layer import RNN
from rnn.keras.serialization import deserialize_core, register_core, serialize_core

__all__ = ["RNN", "register_core", "serialize_core", "deserialize_core"]
