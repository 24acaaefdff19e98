"""rnn.keras.variables: the cores' tf.Variables seen by Keras as the layer's weights."""

import keras
import numpy as np
import tensorflow as tf

import rnn
import rnn.keras as rk
from rnn.keras.variables import keras_layers_in, wrap_variable
from tests.rnn.keras.common import F, T, data


def test_weights_share_the_cores_variables():
    core = rnn.LSTM(4, use_layer_norm=True)
    layer = rk.RNN(core)
    layer(np.zeros((2, 3, F), "float32"))
    assert len(layer.weights) == len(core.variables) == 9
    for w, v in zip(layer.weights, core.variables):
        assert w.value is v  # the same storage, not a copy
    kernel = next(w for w in layer.weights if w.value is core.kernel)
    kernel.assign(np.ones(core.kernel.shape, "float32"))
    assert float(tf.reduce_min(core.kernel)) == 1.0
    assert layer.count_params() == sum(int(np.prod(v.shape)) for v in core.variables)


def test_two_layers_holding_one_core_share_weight_objects():
    core = rnn.GRU(3)
    inp = keras.Input((None, F))
    first = rk.RNN(core, return_sequences=True)
    second = rk.RNN(core)
    model = keras.Model(inp, second(keras.layers.Dense(F)(first(inp))))
    assert [id(w) for w in first.weights] == [id(w) for w in second.weights]
    # Keras deduplicates them, so one optimizer step updates each variable once.
    assert len(model.trainable_weights) == 3 + 2


def test_keras_layers_inside_a_core_are_trained_and_saved(tmp_path):
    keras.utils.set_random_seed(5)
    dense = keras.layers.Dense(3, activation="tanh")
    core = rnn.DeepRNN([rnn.GRU(4), dense, rnn.LSTM(2)])
    model = keras.Sequential([keras.Input((T, F)), rk.RNN(core), keras.layers.Dense(2)])
    assert model.count_params() == (
        sum(int(np.prod(v.shape)) for v in core.variables) + (4 * 3 + 3) + (2 * 2 + 2)
    )
    model.compile(keras.optimizers.Adam(0.03), "mse")
    before = [w.numpy().copy() for w in dense.weights]
    x, y = data(12, b=16)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert all(not np.array_equal(w.numpy(), b) for w, b in zip(dense.weights, before))
    path = str(tmp_path / "dense_inside.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_one_wrapper_per_variable_and_keras_layers_found_in_nests():
    v = tf.Variable(tf.zeros([2]), name="scope/v")
    w = wrap_variable(v)
    assert w.value is v and wrap_variable(v) is w and w.name == "scope_v"
    dense = keras.layers.Dense(2)
    deep = rnn.DeepRNN([rnn.GRU(2), dense, rnn.DeepRNN([rnn.LSTM(2), dense])])
    assert keras_layers_in(deep) == [dense]
    assert keras_layers_in(dense) == [dense] and keras_layers_in(len) == []
