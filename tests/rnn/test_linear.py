"""rnn.Linear: the dense layer shared by the DNC and the baselines' readouts."""

import pytest
import tensorflow as tf

import rnn
import rnn.dnc
import rnn.dnc.access
import rnn.linear


def test_one_object_under_every_import_path():
    # It lived in rnn.dnc.access before it became rnn.Linear.
    assert rnn.Linear is rnn.linear.Linear is rnn.dnc.Linear is rnn.dnc.access.Linear
    assert "Linear" in rnn.__all__


def test_values_shapes_and_variables():
    layer = rnn.Linear(3, name="readout")
    x = tf.random.normal([2, 5])
    y = layer(x)
    assert y.shape.as_list() == [2, 3]
    tf.debugging.assert_near(y, x @ layer.w + layer.b)
    assert [v.shape.as_list() for v in layer.trainable_variables] == [[3], [5, 3]]
    assert rnn.Linear(3, with_bias=False)(x).shape.as_list() == [2, 3]


def test_first_call_inside_tf_function():
    layer = rnn.Linear(2)
    out = tf.function(layer)(tf.ones([4, 3]))
    assert out.shape.as_list() == [4, 2] and layer.w.shape.as_list() == [3, 2]


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="output_size must be a positive int, got 0"):
        rnn.Linear(0)
    layer = rnn.Linear(2, name="readout")
    layer(tf.ones([1, 3]))
    with pytest.raises(ValueError, match="readout: expected 3 input features, got 4"):
        layer(tf.ones([1, 4]))
    with pytest.raises(ValueError, match=r"readout: inputs must be \[batch, features\]"):
        layer(tf.ones([3]))
    with pytest.raises(TypeError, match="inputs have dtype float64, the weights float32"):
        layer(tf.ones([1, 3], tf.float64))
