"""rnn.keras.serialization: saving cores in Keras models, cores' get_config/from_config."""

import json
import pathlib
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
import rnn.keras as rk
from rnn.dnc import DNC
from tests.rnn.keras.common import TOKENS, F, T, data, small_dnc

# -------------------------------------------------------- saving models


def test_save_load_round_trip_lstm_gru_deep_dnc(tmp_path):
    keras.utils.set_random_seed(3)
    inp = keras.Input((None, F))
    a = rk.RNN(
        rnn.LSTM(4, forget_bias=0.5, use_layer_norm=True, cell_clip=3.0), return_sequences=True
    )(inp)
    b, gru_state = rk.RNN(rnn.GRU(4, reset_after=True), return_sequences=True, return_state=True)(a)
    deep = rnn.DeepRNN(
        [rnn.LSTM(3, projection_size=2), tf.nn.relu, rnn.VanillaRNN(3, activation=tf.nn.elu)]
    )
    c = rk.RNN(deep, return_sequences=True, go_backwards=True)(b)
    d, dnc_state = rk.RNN(small_dnc(controller=rnn.GRU(5)), return_state=True)(c)
    _, lstm_state = rk.RNN(rnn.LSTM(3), return_state=True)(inp)
    e = rk.RNN(rnn.LSTM(3))(inp, initial_state=lstm_state)
    model = keras.Model(inp, [d, gru_state, dnc_state.access_state.usage, e])
    x, _ = data(8)
    expected = model.predict(x, verbose=0)

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for u, v in zip(expected, loaded.predict(x, verbose=0)):
        np.testing.assert_array_equal(u, v)
    loaded_dnc = next(
        layer.core for layer in loaded.layers if isinstance(getattr(layer, "core", None), DNC)
    )
    assert type(loaded_dnc) is DNC and loaded_dnc.num_reads == 2
    assert type(loaded_dnc.controller) is rnn.GRU
    assert loaded.count_params() == model.count_params()

    weights = str(tmp_path / "model.weights.h5")
    model.save_weights(weights)
    fresh = keras.Model.from_config(model.get_config())
    assert not np.allclose(fresh.predict(x, verbose=0)[0], expected[0])
    fresh.load_weights(weights)
    for u, v in zip(expected, fresh.predict(x, verbose=0)):
        np.testing.assert_array_equal(u, v)


def test_sequential_with_masking_round_trips(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(10, F, mask_zero=True),
            rk.RNN(
                rnn.deep_rnn_with_skip_connections([rnn.GRU(2), rnn.LSTM(2)]), return_sequences=True
            ),
            rk.RNN(rnn.ResidualCore(rnn.VanillaRNN(4))),
        ]
    )
    expected = model.predict(TOKENS, verbose=0)
    path = str(tmp_path / "seq.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(TOKENS, verbose=0), expected)


class _Scaled(rnn.RNNCore):
    """A user core: a GRU whose output is scaled by a constant."""

    def __init__(self, size, scale, name=None):
        super().__init__(name=name)
        self.gru = rnn.GRU(size)
        self.scale = scale

    def __call__(self, inputs, prev_state):
        out, state = self.gru(inputs, prev_state)
        return self.scale * out, state

    def initial_state(self, batch_size, dtype=tf.float32):
        return self.gru.initial_state(batch_size, dtype)

    def get_config(self):
        return {"size": self.gru.hidden_size, "scale": self.scale}


def test_user_cores_register_and_round_trip(tmp_path):
    layer = rk.RNN(_Scaled(3, 2.5))
    with pytest.raises(TypeError, match="register_core"):
        layer.get_config()
    rk.register_core(_Scaled, name="tests._Scaled")
    model = keras.Sequential([keras.Input((T, F)), layer])
    x, _ = data(9)
    path = str(tmp_path / "user.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[0].core.scale == 2.5


# ----------------------------------------------------------------- errors


def test_serialization_errors_are_clear():
    with pytest.raises(TypeError, match="activation"):
        rk.serialize_core(rnn.VanillaRNN(2, activation=lambda x: x))
    with pytest.raises(ValueError, match="unknown core class"):
        rk.deserialize_core({"class_name": "nope.Core", "config": {}})
    with pytest.raises(ValueError, match="unknown function"):
        rk.deserialize_core(
            {
                "class_name": "rnn.VanillaRNN",
                "config": {"hidden_size": 2, "activation": {"__function__": "os.system"}},
            }
        )
    with pytest.raises(ValueError, match="already used"):
        rk.register_core(_Scaled, name="rnn.LSTM")


# ------------------------------------------- cores own their configuration

DATA = pathlib.Path(__file__).parent / "data"


@keras.saving.register_keras_serializable(package="tests")
def scaled_tanh(x):
    """A user activation, saved by its Keras-registered name."""
    return 1.5 * tf.tanh(x)


def _cores():
    return {
        "vanilla": lambda: rnn.VanillaRNN(3),
        "vanilla_elu": lambda: rnn.VanillaRNN(3, activation=tf.nn.elu, name="v"),
        "lstm": lambda: rnn.LSTM(4),
        "lstm_extras": lambda: rnn.LSTM(
            4, forget_bias=0.5, projection_size=2, use_layer_norm=True, cell_clip=3.0
        ),
        "gru": lambda: rnn.GRU(3),
        "gru_reset_after": lambda: rnn.GRU(3, reset_after=True, name="g"),
        "deep": lambda: rnn.DeepRNN(
            [rnn.LSTM(4), tf.nn.relu, keras.layers.Dense(3), rnn.GRU(3)], name="stack"
        ),
        "skip": lambda: rnn.deep_rnn_with_skip_connections(
            [rnn.GRU(2), rnn.LSTM(2)], concat_final_output=False
        ),
        "residual_stack": lambda: rnn.deep_rnn_with_residual_connections(
            [rnn.GRU(F), rnn.VanillaRNN(F)]
        ),
        "residual": lambda: rnn.ResidualCore(rnn.LSTM(F)),
        "dnc": lambda: DNC(
            2, controller=rnn.GRU(4), memory_size=3, word_size=2, num_reads=2, clip_value=5.0
        ),
        "dnc_default_controller": lambda: DNC(2, memory_size=3, word_size=2),
    }


CORE_FACTORIES = _cores()


def _shapes(structure):
    return nestlib.map_structure(lambda t: tuple(t.shape), structure)


def _step(core):
    inputs = tf.ones([2, F])
    return core(inputs, core.initial_state(2))


@pytest.mark.parametrize("name", sorted(CORE_FACTORIES))
def test_every_core_round_trips_through_get_config_and_from_config(name):
    core = CORE_FACTORIES[name]()
    config = core.get_config()
    assert isinstance(config, dict)
    rebuilt = type(core).from_config(config)
    assert type(rebuilt) is type(core)
    assert rebuilt.get_config() == config
    assert _shapes(_step(rebuilt)) == _shapes(_step(core))


@pytest.mark.parametrize("name", sorted(CORE_FACTORIES))
def test_every_core_round_trips_through_json_with_fresh_variables(name):
    core = CORE_FACTORIES[name]()
    expected = _shapes(_step(core))
    saved = json.loads(json.dumps(rk.serialize_core(core)))  # JSON all the way down
    loaded = rk.deserialize_core(saved)
    assert type(loaded) is type(core)
    assert rk.serialize_core(loaded) == saved
    assert _shapes(_step(loaded)) == expected
    mine = {v.ref() for v in core.variables}
    assert mine and not mine & {v.ref() for v in loaded.variables}


def test_a_custom_activation_is_saved_by_name():
    for activation, stored in (
        (tf.nn.softmax, {"__function__": "tf.nn.softmax"}),
        (keras.activations.gelu, {"__function__": "keras.activations.gelu"}),
    ):
        config = rk.serialize_core(rnn.VanillaRNN(2, activation=activation))
        assert config["config"]["activation"] == stored
        assert rk.deserialize_core(config).get_config()["activation"] is activation
    config = json.loads(json.dumps(rk.serialize_core(rnn.VanillaRNN(2, activation=scaled_tanh))))
    assert "tests>scaled_tanh" in json.dumps(config)
    loaded = rk.deserialize_core(config)
    assert loaded.get_config()["activation"] is scaled_tanh
    assert _shapes(_step(loaded)) == ((2, 2), (2, 2))


def test_an_unserialisable_activation_or_layer_is_a_clear_error():
    with pytest.raises(
        TypeError,
        match=r"cannot serialize VanillaRNN config\['activation'\]: <function .*lambda.*"
        r"register_keras_serializable",
    ):
        rk.serialize_core(rnn.VanillaRNN(2, activation=lambda x: x))
    with pytest.raises(TypeError, match=r"DeepRNN config\['layers'\]\[1\]"):
        rk.serialize_core(rnn.DeepRNN([rnn.GRU(2), lambda x: 2 * x]))


class _NoConfig(rnn.RNNCore):
    def __init__(self, size=2, name=None):
        super().__init__(name=name)
        self.size = size

    def __call__(self, inputs, prev_state):
        return inputs, prev_state

    def initial_state(self, batch_size, dtype=tf.float32):
        return tf.zeros([batch_size, self.size], dtype)


def test_a_core_without_get_config_says_so_naming_its_class():
    with pytest.raises(NotImplementedError, match="_NoConfig does not define get_config"):
        _NoConfig().get_config()
    with pytest.raises(TypeError, match=r"register_core\(_NoConfig\).*get_config"):
        rk.register_core(_NoConfig)
    with pytest.raises(TypeError, match="core class _NoConfig is not registered"):
        rk.serialize_core(rnn.DeepRNN([_NoConfig()]))
    # from_config's default is cls(**config), checked against the signature
    assert _NoConfig.from_config({"size": 3}).size == 3
    with pytest.raises(TypeError, match=r"_NoConfig.from_config cannot call.*\['width'\]"):
        _NoConfig.from_config({"width": 3})
    with pytest.raises(TypeError, match="LSTM.from_config expects a dict.*got list"):
        rnn.LSTM.from_config([4])


def test_models_saved_before_cores_owned_their_configs_still_load():
    """data/legacy_rnn_keras.keras was saved by rnn.keras as it was before this
    change (commit 7f00866): every built-in core, in the tagged format."""
    path = DATA / "legacy_rnn_keras.keras"
    io = np.load(DATA / "legacy_rnn_keras_io.npz")
    loaded = keras.saving.load_model(path)
    outputs = loaded.predict(io["x"], verbose=0)
    assert len(outputs) == 4
    for i, out in enumerate(outputs):
        np.testing.assert_allclose(out, io[f"y{i}"], rtol=1e-5, atol=1e-6)
    # The format is unchanged: serializing the loaded cores gives the file's configs.
    with zipfile.ZipFile(path) as z:
        saved = json.loads(z.read("config.json"))
    saved_cores = {
        layer["config"]["name"]: layer["config"]["core"]
        for layer in saved["config"]["layers"]
        if layer["class_name"] == "RNN"
    }
    assert len(saved_cores) == 9
    for layer in loaded.layers:
        if isinstance(layer, rk.RNN):
            assert _without_ids(rk.serialize_core(layer.core)) == _without_ids(
                saved_cores[layer.name]
            ), layer.name


def _without_ids(config):
    """The config without Keras' shared_object_id entries (they differ per process)."""
    if isinstance(config, dict):
        return {k: _without_ids(v) for k, v in config.items() if k != "shared_object_id"}
    if isinstance(config, list):
        return [_without_ids(v) for v in config]
    return config


def test_the_codec_uses_rnn_bases_is_core_rule():
    # One definition of what a core is: a class is not one (its initial_state
    # is a function), so it is not encoded as a core.
    import rnn.base
    import rnn.keras.serialization as serialization

    assert serialization.is_core is rnn.base.is_core
    with pytest.raises(TypeError, match=r"cannot serialize config\['cls'\]: <class"):
        serialization._encode({"cls": rnn.LSTM}, "config")
