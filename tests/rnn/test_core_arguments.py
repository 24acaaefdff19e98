"""Constructor arguments a Sonnet 2 or Keras user expects (issue 16, part 8): keyword-only
arguments after the first, ``dtype=``, and initializers under Keras' and Sonnet's names."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import rnn
import rnn.keras
from rnn import _utils

I, H = 3, 2


def _build(core, dtype=tf.float32):
    core(tf.ones([1, I], dtype), core.initial_state(1, dtype=dtype))
    return core


# ------------------------------------------------------------ keyword-only


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnn.LSTM(16, 4),  # Sonnet: projection_size=4; was forget_bias=4.0
        lambda: rnn.GRU(3, True),
        lambda: rnn.VanillaRNN(3, tf.nn.relu),
        lambda: rnn.DNC(2, rnn.LSTM(3)),
        lambda: rnn.Linear(3, False),
    ],
    ids=["LSTM", "GRU", "VanillaRNN", "DNC", "Linear"],
)
def test_arguments_after_the_first_are_keyword_only(make):
    with pytest.raises(TypeError, match="positional argument"):
        make()


# ------------------------------------------------------------ initializers

CORES = {
    "VanillaRNN": (rnn.VanillaRNN, 1),
    "LSTM": (rnn.LSTM, 4),
    "GRU": (rnn.GRU, 3),
}


@pytest.mark.parametrize("name", sorted(CORES))
@pytest.mark.parametrize(
    "kind", ["keras_names", "sonnet_names", "strings", "callables", "sonnet_objects"]
)
def test_initializers_are_used(name, kind):
    cls, gates = CORES[name]
    if kind == "keras_names":
        args = {
            "kernel_initializer": keras.initializers.Constant(0.5),
            "recurrent_initializer": keras.initializers.Constant(-0.25),
            "bias_initializer": keras.initializers.Constant(0.125),
        }
    elif kind == "sonnet_names":
        args = {
            "w_i_init": keras.initializers.Constant(0.5),
            "w_h_init": keras.initializers.Constant(-0.25),
            "b_init": keras.initializers.Constant(0.125),
        }
    elif kind == "strings":
        args = {"kernel_initializer": "ones", "recurrent_initializer": "zeros"}
    elif kind == "callables":
        args = {
            "kernel_initializer": lambda shape, dtype: tf.fill(shape, tf.constant(0.5, dtype)),
            "recurrent_initializer": lambda shape, dtype: -0.25 * np.ones(shape),
            "bias_initializer": lambda shape, dtype: tf.fill(shape, tf.constant(0.125, dtype)),
        }
    else:
        snt = pytest.importorskip("sonnet")
        args = {
            "w_i_init": snt.initializers.Constant(0.5),
            "w_h_init": snt.initializers.Constant(-0.25),
            "b_init": snt.initializers.Constant(0.125),
        }
    extra = {"forget_bias": 0.0} if name == "LSTM" else {}
    core = _build(cls(H, **args, **extra))
    assert core.kernel.shape == (I, gates * H) and core.recurrent_kernel.shape == (H, gates * H)
    if kind == "strings":
        np.testing.assert_array_equal(core.kernel.numpy(), 1.0)
        np.testing.assert_array_equal(core.recurrent_kernel.numpy(), 0.0)
        np.testing.assert_array_equal(core.bias.numpy(), 0.0)  # the default
        return
    np.testing.assert_array_equal(core.kernel.numpy(), 0.5)
    np.testing.assert_array_equal(core.recurrent_kernel.numpy(), -0.25)
    np.testing.assert_array_equal(core.bias.numpy(), 0.125)


def test_lstm_forget_bias_is_added_to_the_bias_initializer():
    core = _build(rnn.LSTM(H, forget_bias=2.0, b_init="ones"))
    np.testing.assert_array_equal(core.bias.numpy(), [1, 1, 3, 3, 1, 1, 1, 1])


def test_lstm_projection_initializer_and_gru_reset_after_bias_shape():
    core = _build(rnn.LSTM(4, projection_size=H, projection_init="ones"))
    np.testing.assert_array_equal(core.projection.numpy(), np.ones([4, H]))
    shapes = []

    def record(shape, dtype):
        shapes.append(shape)
        return tf.zeros(shape, dtype)

    _build(rnn.GRU(H, reset_after=True, bias_initializer=record))
    assert shapes == [[2, 3 * H]]


def test_default_initial_values_are_unchanged():
    """Same seed, same values as the defaults always gave (Glorot uniform, orthogonal)."""
    tf.random.set_seed(7)
    core = _build(rnn.LSTM(H))
    tf.random.set_seed(7)
    kernel = _utils.glorot_uniform([I, 4 * H], tf.float32)
    recurrent = _utils.orthogonal([H, 4 * H], tf.float32)
    np.testing.assert_array_equal(core.kernel.numpy(), kernel.numpy())
    np.testing.assert_array_equal(core.recurrent_kernel.numpy(), recurrent.numpy())
    np.testing.assert_array_equal(core.bias.numpy(), [0, 0, 1, 1, 0, 0, 0, 0])


def test_both_names_of_one_initializer_is_a_type_error():
    with pytest.raises(TypeError, match="both kernel_initializer and its Sonnet alias w_i_init"):
        rnn.LSTM(H, kernel_initializer="ones", w_i_init="zeros")
    with pytest.raises(TypeError, match="both recurrent_initializer and its Sonnet alias w_h_init"):
        rnn.GRU(H, recurrent_initializer="ones", w_h_init="zeros")
    with pytest.raises(TypeError, match="both bias_initializer and its Sonnet alias b_init"):
        rnn.VanillaRNN(H, bias_initializer="ones", b_init="zeros")
    with pytest.raises(TypeError, match="projection_initializer and its Sonnet alias"):
        rnn.LSTM(H, projection_size=1, projection_initializer="ones", projection_init="ones")
    with pytest.raises(TypeError, match="both kernel_initializer and its Sonnet alias w_init"):
        rnn.Linear(H, kernel_initializer="ones", w_init="zeros")
    with pytest.raises(TypeError, match="both bias_initializer and its Sonnet alias b_init"):
        rnn.DNC(H, bias_initializer="ones", b_init="zeros")


def test_bad_initializers_name_the_argument():
    with pytest.raises(TypeError, match="kernel_initializer must be None, an initializer name"):
        rnn.GRU(H, kernel_initializer=3)
    with pytest.raises(ValueError, match="bias_initializer: unknown initializer 'nope'"):
        rnn.LSTM(H, bias_initializer="nope")
    core = rnn.VanillaRNN(H, recurrent_initializer=lambda shape, dtype: tf.zeros([1]))
    with pytest.raises(ValueError, match=r"recurrent_initializer returned a value of shape \(1,\)"):
        _build(core)


# ------------------------------------------------------------------ dtype


@pytest.mark.parametrize("name", sorted(CORES))
def test_dtype_float64(name):
    cls, _ = CORES[name]
    core = cls(H, dtype=tf.float64)
    state = core.initial_state(2)  # the core's dtype by default
    assert tf.nest.flatten(state)[0].dtype == tf.float64
    out, _ = core(tf.ones([2, I], tf.float64), state)
    assert out.dtype == tf.float64
    assert {v.dtype for v in core.variables} == {tf.float64}
    with pytest.raises(
        TypeError,
        match=r"inputs must have dtype tf.float64, got tf.float32 \(its dtype argument is",
    ):
        cls(H, dtype="float64")(tf.ones([1, I]), core.initial_state(1))
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        cls(H, dtype=tf.int32)
    # Without dtype, as before: the variables take the first inputs' dtype.
    core = _build(cls(H), tf.float64)
    assert {v.dtype for v in core.variables} == {tf.float64}
    assert tf.nest.flatten(cls(H).initial_state(1))[0].dtype == tf.float32


def test_dnc_and_linear_dtype_and_initializers():
    dnc = rnn.DNC(2, memory_size=3, word_size=2, num_reads=1, dtype="float64", w_init="ones")
    state = dnc.initial_state(1)
    assert state.access_state.memory.dtype == tf.float64
    assert state.controller_state.cell.dtype == tf.float64  # the default controller's dtype
    out, _ = dnc(tf.ones([1, I], tf.float64), state)
    assert out.dtype == tf.float64
    assert {v.dtype for v in dnc.variables} == {tf.float64}
    np.testing.assert_array_equal(dnc.output_layer.w.numpy(), 1.0)
    np.testing.assert_array_equal(dnc.access.interface_layer.w.numpy(), 1.0)

    layer = rnn.Linear(2, kernel_initializer="ones", b_init=keras.initializers.Constant(0.5))
    np.testing.assert_array_equal(layer(tf.ones([1, 3])).numpy(), [[3.5, 3.5]])
    layer = rnn.Linear(2, dtype=tf.float64)
    assert layer(tf.ones([1, 3], tf.float64)).dtype == tf.float64


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnn.LSTM(
            H,
            forget_bias=0.5,
            dtype="float64",
            kernel_initializer=keras.initializers.Constant(0.5),
            w_h_init="ones",
            b_init={"class_name": "Constant", "config": {"value": 0.25}},
        ),
        lambda: rnn.GRU(H, reset_after=True, dtype=tf.float64, recurrent_initializer="zeros"),
        lambda: rnn.VanillaRNN(H, dtype="float64", bias_initializer=tf.ones),
        lambda: rnn.DNC(2, memory_size=3, word_size=2, num_reads=1, dtype="float64", w_init="ones"),
    ],
    ids=["LSTM", "GRU", "VanillaRNN", "DNC"],
)
def test_get_config_round_trips_dtype_and_initializers(make):
    core = make()
    config = core.get_config()
    assert config["dtype"] == "float64"
    rebuilt = type(core).from_config(config)
    assert rebuilt.get_config().keys() == config.keys()
    # Through the JSON codec that Keras model files use, too.
    again = rnn.keras.deserialize_core(rnn.keras.serialize_core(core))
    x = tf.ones([1, I], tf.float64)
    for c in (core, rebuilt, again):
        c(x, c.initial_state(1))
    if not isinstance(core, rnn.DNC):
        for c in (rebuilt, again):
            np.testing.assert_array_equal(c.bias.numpy(), core.bias.numpy())
            assert c.kernel.dtype == tf.float64
    else:
        np.testing.assert_array_equal(again.output_layer.w.numpy(), 1.0)


def test_configs_without_the_new_arguments_are_unchanged():
    assert rnn.GRU(4, reset_after=True).get_config() == {
        "hidden_size": 4,
        "reset_after": True,
        "name": "gru",
    }


def test_keras_model_with_a_custom_initializer_saves_and_loads(tmp_path):
    core = rnn.LSTM(H, kernel_initializer=keras.initializers.Constant(0.3), dtype="float32")
    model = keras.Sequential([keras.Input((4, I)), rnn.keras.RNN(core)])
    x = np.random.default_rng(0).normal(size=(2, 4, I)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
    config = loaded.layers[0].core.get_config()
    assert config["kernel_initializer"]["class_name"] == "Constant"


def test_keras_model_with_an_unsaveable_initializer_says_which(tmp_path):
    core = rnn.GRU(H, bias_initializer=lambda shape, dtype: tf.zeros(shape, dtype))
    model = keras.Sequential([keras.Input((4, I)), rnn.keras.RNN(core)])
    with pytest.raises(TypeError, match=r"cannot serialize GRU config\['bias_initializer'\]"):
        model.save(tmp_path / "model.keras")
