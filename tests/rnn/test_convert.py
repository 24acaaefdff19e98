"""rnn.convert: weights between our cores and Keras' / Sonnet's recurrent layers.

Every conversion is checked the same way: the source and the converted model
run over the same random sequence (several steps, random weights, biases
included) and give the same outputs at float32 tolerance. The error cases
check the exception class and that the message names what is wrong.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn import convert

ATOL = 1e-5
B, T, I, H = 3, 6, 4, 5


@pytest.fixture
def snt():
    return pytest.importorskip("sonnet")


def _randomize(variables, seed=0):
    """Random values in every variable (biases too: Keras and Sonnet start them at zero)."""
    gen = np.random.default_rng(seed)
    for v in variables:
        shape = tuple(v.shape)
        v.assign(gen.normal(scale=0.5, size=shape).astype(tf.as_dtype(v.dtype).as_numpy_dtype))


def _inputs(seed=1, dtype="float32", batch=B, time=T, features=I):
    """Batch-major ``[B, T, I]`` inputs."""
    gen = np.random.default_rng(seed)
    return tf.constant(gen.normal(size=(batch, time, features)).astype(dtype))


def _ours(core, x):
    """Our outputs ``[B, T, H]`` over batch-major ``x``."""
    outputs, _ = rnn.dynamic_unroll(
        core, x, core.initial_state(x.shape[0], dtype=x.dtype), time_major=False
    )
    return outputs.numpy()


def _keras(layer_or_cell, x):
    """The Keras layer's (or a cell's, in keras.layers.RNN) outputs ``[B, T, H]``."""
    if isinstance(layer_or_cell, keras.layers.RNN):
        assert layer_or_cell.return_sequences
        return np.asarray(layer_or_cell(x))
    return np.asarray(keras.layers.RNN(layer_or_cell, return_sequences=True)(x))


def _sonnet(snt, core, x):
    """The Sonnet core's outputs ``[B, T, H]`` over batch-major ``x``."""
    xt = tf.transpose(x, [1, 0, 2])
    if isinstance(core, snt.UnrolledLSTM):
        outputs, _ = core(xt, core.initial_state(x.shape[0]))
    else:
        outputs, _ = snt.dynamic_unroll(core, xt, core.initial_state(x.shape[0]))
    return tf.transpose(outputs, [1, 0, 2]).numpy()


def _built_core(core, x=None, seed=0):
    """Builds one of our cores on ``x`` and randomizes its weights."""
    x = _inputs() if x is None else x
    core(x[:, 0], core.initial_state(x.shape[0], dtype=x.dtype))
    _randomize(core.variables, seed)
    return core


def _built_keras(layer, x=None, seed=0):
    x = _inputs() if x is None else x
    if isinstance(layer, keras.layers.RNN):
        layer.build((None, None, x.shape[-1]))
    else:
        layer.build((None, x.shape[-1]))
    _randomize(layer.weights, seed)
    return layer


def _built_sonnet(snt, core, x=None, seed=0):
    x = _inputs() if x is None else x
    if isinstance(core, snt.UnrolledLSTM):
        core(tf.transpose(x, [1, 0, 2]), core.initial_state(x.shape[0]))
    else:
        core(x[:, 0], core.initial_state(x.shape[0]))
    _randomize(core.variables, seed)
    return core


# --------------------------------------------------------------------------
# Keras -> ours.
# --------------------------------------------------------------------------

KERAS_LAYERS = {
    "SimpleRNN-tanh": lambda: keras.layers.SimpleRNN(H, return_sequences=True),
    "SimpleRNN-relu": lambda: keras.layers.SimpleRNN(H, activation="relu", return_sequences=True),
    "LSTM": lambda: keras.layers.LSTM(H, return_sequences=True),
    "LSTM-no-unit-forget-bias": lambda: keras.layers.LSTM(
        H, unit_forget_bias=False, return_sequences=True
    ),
    "GRU-reset-after": lambda: keras.layers.GRU(H, reset_after=True, return_sequences=True),
    "GRU-reset-before": lambda: keras.layers.GRU(H, reset_after=False, return_sequences=True),
    "SimpleRNNCell": lambda: keras.layers.SimpleRNNCell(H),
    "LSTMCell": lambda: keras.layers.LSTMCell(H),
    "GRUCell-reset-after": lambda: keras.layers.GRUCell(H, reset_after=True),
    "GRUCell-reset-before": lambda: keras.layers.GRUCell(H, reset_after=False),
    "RNN(LSTMCell)": lambda: keras.layers.RNN(keras.layers.LSTMCell(H), return_sequences=True),
    "RNN(GRUCell)": lambda: keras.layers.RNN(
        keras.layers.GRUCell(H, reset_after=False), return_sequences=True
    ),
}
EXPECTED_KIND = {
    "SimpleRNN": rnn.VanillaRNN,
    "LSTM": rnn.LSTM,
    "GRU": rnn.GRU,
    "RNN(LSTMCell)": rnn.LSTM,
    "RNN(GRUCell)": rnn.GRU,
}


def _expected_kind(name):
    for prefix, kind in EXPECTED_KIND.items():
        if name.startswith(prefix):
            return kind
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(KERAS_LAYERS))
def test_from_keras_gives_the_same_outputs(name):
    layer = _built_keras(KERAS_LAYERS[name]())
    x = _inputs()
    core = convert.from_keras(layer)
    assert type(core) is _expected_kind(name)
    np.testing.assert_allclose(_ours(core, x), _keras(layer, x), atol=ATOL)
    # The weights are copied, not shared.
    layer_kernel = (layer.cell if isinstance(layer, keras.layers.RNN) else layer).kernel
    assert core.kernel is not layer_kernel
    layer_kernel.assign(tf.zeros_like(layer_kernel))
    assert np.any(core.kernel.numpy() != 0)


@pytest.mark.parametrize(
    "kind, reset_after", [("SimpleRNN", None), ("LSTM", None), ("GRU", True), ("GRU", False)]
)
def test_from_keras_without_bias_gives_a_zero_bias(kind, reset_after):
    extra = {"reset_after": reset_after} if kind == "GRU" else {}
    layer = getattr(keras.layers, kind)(H, use_bias=False, return_sequences=True, **extra)
    layer = _built_keras(layer)
    x = _inputs()
    core = convert.from_keras(layer)
    assert not np.any(core.bias.numpy())
    np.testing.assert_allclose(_ours(core, x), _keras(layer, x), atol=ATOL)


def test_from_keras_keeps_the_options():
    lstm = convert.from_keras(_built_keras(keras.layers.LSTM(H, unit_forget_bias=False)))
    assert lstm.get_config()["forget_bias"] == 0.0
    lstm = convert.from_keras(_built_keras(keras.layers.LSTM(H)))
    assert lstm.get_config()["forget_bias"] == 1.0
    gru = convert.from_keras(_built_keras(keras.layers.GRU(H, reset_after=False)), name="mine")
    config = gru.get_config()
    assert (config["hidden_size"], config["reset_after"], config["name"]) == (H, False, "mine")
    vanilla = convert.from_keras(_built_keras(keras.layers.SimpleRNN(H, activation="relu")))
    assert vanilla.get_config()["activation"] is tf.nn.relu


def test_from_keras_float64():
    x = _inputs(dtype="float64")
    layer = _built_keras(keras.layers.GRU(H, return_sequences=True, dtype="float64"), x)
    core = convert.from_keras(layer)
    assert core.kernel.dtype == tf.float64
    np.testing.assert_allclose(_ours(core, x), _keras(layer, x), atol=1e-10)


def test_load_into_an_unbuilt_core_keeps_its_dtype():
    if "dtype" not in inspect.signature(rnn.LSTM).parameters:
        pytest.skip("rnn.LSTM takes no dtype argument in this version")
    layer = _built_keras(keras.layers.LSTM(H, return_sequences=True))  # float32
    core = convert.load_from_keras(rnn.LSTM(H, dtype="float64"), layer)
    assert core.kernel.dtype == tf.float64
    x = _inputs()
    np.testing.assert_allclose(
        _ours(core, tf.cast(x, tf.float64)), _keras(layer, x), atol=ATOL, rtol=1e-5
    )


def test_load_from_keras_into_a_built_and_an_unbuilt_core():
    layer = _built_keras(keras.layers.LSTM(H, return_sequences=True))
    x = _inputs()
    built = _built_core(rnn.LSTM(H), seed=7)
    assert convert.load_from_keras(built, layer) is built
    np.testing.assert_allclose(_ours(built, x), _keras(layer, x), atol=ATOL)
    unbuilt = convert.load_from_keras(rnn.LSTM(H), layer)
    np.testing.assert_allclose(_ours(unbuilt, x), _keras(layer, x), atol=ATOL)


def test_a_keras_model_after_training_converts():
    model = keras.Sequential([keras.Input((T, I)), keras.layers.GRU(H, return_sequences=True)])
    model.compile("adam", "mse")
    x = _inputs()
    model.fit(x, tf.ones([B, T, H]), epochs=2, verbose=0)
    core = convert.from_keras(model.layers[0])
    np.testing.assert_allclose(_ours(core, x), np.asarray(model(x)), atol=ATOL)


# --------------------------------------------------------------------------
# ours -> Keras.
# --------------------------------------------------------------------------

OUR_CORES = {
    "VanillaRNN-tanh": lambda: rnn.VanillaRNN(H),
    "VanillaRNN-relu": lambda: rnn.VanillaRNN(H, activation=tf.nn.relu),
    "LSTM": lambda: rnn.LSTM(H),
    "LSTM-forget-bias-0": lambda: rnn.LSTM(H, forget_bias=0.0),
    "GRU-reset-after": lambda: rnn.GRU(H, reset_after=True),
    "GRU-reset-before": lambda: rnn.GRU(H, reset_after=False),
}


@pytest.mark.parametrize("cell", [False, True], ids=["layer", "cell"])
@pytest.mark.parametrize("name", list(OUR_CORES))
def test_to_keras_gives_the_same_outputs(name, cell):
    core = _built_core(OUR_CORES[name]())
    x = _inputs()
    if cell:
        target = convert.to_keras(core, cell=True, name="converted")
        assert isinstance(target, keras.layers.Layer) and not isinstance(target, keras.layers.RNN)
    else:
        target = convert.to_keras(core, return_sequences=True, name="converted")
        assert isinstance(target, keras.layers.RNN)
    assert target.name == "converted"
    np.testing.assert_allclose(_keras(target, x), _ours(core, x), atol=ATOL)
    # Copied, not shared.
    core.kernel.assign(tf.zeros_like(core.kernel))
    kernel = (target if cell else target.cell).kernel
    assert np.any(np.asarray(kernel) != 0)


def test_to_keras_sets_the_options():
    core = _built_core(rnn.GRU(H, reset_after=False))
    config = convert.to_keras(core).get_config()
    assert config["reset_after"] is False and config["units"] == H
    config = convert.to_keras(_built_core(rnn.LSTM(H, forget_bias=0.0))).get_config()
    assert config["unit_forget_bias"] is False
    config = convert.to_keras(_built_core(rnn.VanillaRNN(H, activation=tf.nn.relu))).get_config()
    assert config["activation"] == "relu"


def test_to_keras_float64():
    x = _inputs(dtype="float64")
    core = _built_core(rnn.LSTM(H), x)
    layer = convert.to_keras(core, return_sequences=True)
    assert layer.cell.kernel.dtype == "float64"
    np.testing.assert_allclose(_keras(layer, x), _ours(core, x), atol=1e-10)


def test_to_keras_layer_saves_and_loads(tmp_path):
    core = _built_core(rnn.GRU(H, reset_after=True))
    x = _inputs()
    model = keras.Sequential([keras.Input((T, I)), convert.to_keras(core, return_sequences=True)])
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), _ours(core, x), atol=ATOL)


def test_copy_to_keras_into_built_and_unbuilt_layers():
    core = _built_core(rnn.GRU(H, reset_after=False))
    x = _inputs()
    unbuilt = keras.layers.GRU(H, reset_after=False, return_sequences=True)
    assert convert.copy_to_keras(core, unbuilt) is unbuilt
    np.testing.assert_allclose(_keras(unbuilt, x), _ours(core, x), atol=ATOL)
    built = _built_keras(keras.layers.GRU(H, reset_after=False, return_sequences=True), seed=9)
    convert.copy_to_keras(core, built)
    np.testing.assert_allclose(_keras(built, x), _ours(core, x), atol=ATOL)
    cell = keras.layers.GRUCell(H, reset_after=False)
    convert.copy_to_keras(core, cell)
    np.testing.assert_allclose(_keras(cell, x), _ours(core, x), atol=ATOL)


def test_copy_to_keras_without_bias_takes_a_zero_bias_only():
    core = _built_core(rnn.LSTM(H))
    layer = keras.layers.LSTM(H, use_bias=False, return_sequences=True, name="no_bias")
    with pytest.raises(ValueError, match=r"'no_bias'.*use_bias=False.*'bias' is not all zeros"):
        convert.copy_to_keras(core, layer)
    core.bias.assign(tf.zeros_like(core.bias))
    convert.copy_to_keras(core, layer)
    x = _inputs()
    np.testing.assert_allclose(_keras(layer, x), _ours(core, x), atol=ATOL)


@pytest.mark.parametrize("name", list(OUR_CORES))
def test_keras_round_trip_is_exact(name):
    core = _built_core(OUR_CORES[name]())
    back = convert.from_keras(convert.to_keras(core))
    assert type(back) is type(core)
    for a, b in zip(core.variables, back.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --------------------------------------------------------------------------
# Keras: errors.
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, found",
    [
        (lambda: keras.layers.Dense(3), "Dense"),
        (lambda: keras.layers.Bidirectional(keras.layers.LSTM(3)), "Bidirectional"),
        (
            lambda: keras.layers.RNN(keras.layers.StackedRNNCells([keras.layers.LSTMCell(3)] * 2)),
            "StackedRNNCells",
        ),
        (lambda: rnn.LSTM(3), "rnn.cores.LSTM"),
        (lambda: "lstm", "str"),
    ],
)
def test_from_keras_rejects_other_types(make, found):
    for function in (convert.from_keras, lambda obj: convert.load_from_keras(rnn.LSTM(3), obj)):
        with pytest.raises(TypeError, match="supports keras.layers.SimpleRNN") as info:
            function(make())
        assert found in str(info.value)
        assert "GRUCell" in str(info.value)


def test_type_errors_point_to_the_right_function(snt):
    with pytest.raises(
        TypeError, match=r"got sonnet.*LSTM \(for Sonnet cores: rnn.convert.from_so"
    ):
        convert.from_keras(snt.LSTM(3))
    with pytest.raises(TypeError, match=r"got keras.*LSTM \(for Keras layers: rnn.convert.from_ke"):
        convert.from_sonnet(keras.layers.LSTM(3))
    with pytest.raises(TypeError, match=r"got keras.*LSTM \(for Keras layers"):
        convert.to_sonnet(keras.layers.LSTM(3))
    rnn_keras = pytest.importorskip("rnn.keras")
    wrapped = rnn_keras.RNN(rnn.LSTM(3))
    with pytest.raises(TypeError, match=r"holds one of our cores: pass its .core"):
        convert.from_keras(wrapped)
    with pytest.raises(TypeError, match=r"holds one of our cores: pass its .core"):
        convert.to_sonnet(wrapped)


def test_from_keras_needs_a_built_layer():
    with pytest.raises(ValueError, match=r"keras.layers.LSTM 'fresh' has no weights yet: call it"):
        convert.from_keras(keras.layers.LSTM(3, name="fresh"))
    with pytest.raises(ValueError, match=r"GRUCell 'fresh_cell' has no weights yet"):
        convert.from_keras(keras.layers.GRUCell(3, name="fresh_cell"))


@pytest.mark.parametrize(
    "layer, message",
    [
        (lambda: keras.layers.SimpleRNN(H, activation="sigmoid"), "activation sigmoid"),
        (lambda: keras.layers.LSTM(H, activation="relu"), "activation is relu"),
        (
            lambda: keras.layers.LSTM(H, recurrent_activation="hard_sigmoid"),
            "recurrent_activation is hard_sigmoid",
        ),
        (lambda: keras.layers.GRU(H, activation="sigmoid"), "activation is sigmoid"),
    ],
)
def test_from_keras_rejects_other_activations(layer, message):
    with pytest.raises(ValueError, match=message):
        convert.from_keras(_built_keras(layer()))


def test_load_from_keras_option_mismatches():
    gru_after = _built_keras(keras.layers.GRU(H, reset_after=True, name="after"))
    with pytest.raises(ValueError, match=r"'after'.*variable 'bias'.*reset_after=True.*False"):
        convert.load_from_keras(rnn.GRU(H, reset_after=False), gru_after)
    lstm = _built_keras(keras.layers.LSTM(H))
    with pytest.raises(ValueError, match=r"variable 'projection'.*None.*2"):
        convert.load_from_keras(rnn.LSTM(H, projection_size=2), lstm)
    with pytest.raises(ValueError, match=r"layer norm \(variables ln_kernel_scale"):
        convert.load_from_keras(rnn.LSTM(H, use_layer_norm=True), lstm)
    with pytest.raises(ValueError, match=r"cell_clip=3.0"):
        convert.load_from_keras(rnn.LSTM(H, cell_clip=3.0), lstm)
    with pytest.raises(TypeError, match=r"into rnn.GRU .*weights of an rnn.LSTM"):
        convert.load_from_keras(rnn.GRU(H), lstm)
    simple = _built_keras(keras.layers.SimpleRNN(H))
    with pytest.raises(ValueError, match=r"activation is tanh, the target's relu"):
        convert.load_from_keras(rnn.VanillaRNN(H, activation=tf.nn.relu), simple)
    with pytest.raises(TypeError, match=r"takes one of our cores .*got keras"):
        convert.load_from_keras(keras.layers.LSTM(H), lstm)


def test_load_from_keras_shape_mismatch_names_the_variable_and_changes_nothing():
    layer = _built_keras(keras.layers.LSTM(H, name="src"))  # input size I
    core = _built_core(rnn.LSTM(H), _inputs(features=I + 1))
    before = [v.numpy() for v in core.variables]
    with pytest.raises(ValueError, match=r"variable 'kernel': it has shape \[5, 20\] but "):
        convert.load_from_keras(core, layer)
    with pytest.raises(ValueError, match=r"keras.layers.LSTM 'src' gives shape \[4, 20\]"):
        convert.load_from_keras(core, layer)
    for b, v in zip(before, core.variables):
        np.testing.assert_array_equal(b, v.numpy())
    # A different hidden size: the recurrent kernel names both shapes too.
    core = _built_core(rnn.GRU(H + 1))
    with pytest.raises(ValueError, match=r"'kernel': it has shape \[4, 18\].*\[4, 15\]"):
        convert.load_from_keras(core, _built_keras(keras.layers.GRU(H, reset_after=False)))


def test_to_keras_errors():
    with pytest.raises(ValueError, match=r"rnn.LSTM 'lstm' has no weights yet: call it once"):
        convert.to_keras(rnn.LSTM(H))
    with pytest.raises(ValueError, match=r"variable 'projection' \(projection_size=2\).*Keras"):
        convert.to_keras(_built_core(rnn.LSTM(H, projection_size=2)))
    with pytest.raises(ValueError, match=r"layer norm \(variables ln_kernel_scale.*Keras"):
        convert.to_keras(_built_core(rnn.LSTM(H, use_layer_norm=True)))
    with pytest.raises(ValueError, match=r"cell_clip=2.0"):
        convert.to_keras(_built_core(rnn.LSTM(H, cell_clip=2.0)))
    with pytest.raises(ValueError, match=r"activation sigmoid .*supported: tanh, relu"):
        convert.to_keras(_built_core(rnn.VanillaRNN(H, activation=tf.sigmoid)))
    with pytest.raises(TypeError, match=r"takes one of our cores .*got rnn.deep.DeepRNN"):
        convert.to_keras(rnn.DeepRNN([rnn.LSTM(4)]))


def test_copy_to_keras_errors():
    core = _built_core(rnn.GRU(H, reset_after=True))
    with pytest.raises(ValueError, match=r"'bias'.*reset_after=True, the target reset_after"):
        convert.copy_to_keras(core, keras.layers.GRU(H, reset_after=False))
    with pytest.raises(TypeError, match=r"takes the weights of an rnn.LSTM"):
        convert.copy_to_keras(core, keras.layers.LSTM(H))
    built = _built_keras(keras.layers.GRU(H, name="narrow"), _inputs(features=2))
    with pytest.raises(ValueError, match=r"'narrow'.*'kernel': it has shape \[2, 15\].*\[4, 15\]"):
        convert.copy_to_keras(core, built)
    with pytest.raises(ValueError, match=r"activation is tanh, the target's relu"):
        convert.copy_to_keras(
            _built_core(rnn.VanillaRNN(H)), keras.layers.SimpleRNN(H, activation="relu")
        )
    with pytest.raises(TypeError, match=r"supports keras.layers.SimpleRNN.*Dense"):
        convert.copy_to_keras(core, keras.layers.Dense(3))


# --------------------------------------------------------------------------
# Stateful Keras layers.
# --------------------------------------------------------------------------

STATEFUL_CORES = {
    "SimpleRNN": (lambda: rnn.VanillaRNN(H), lambda **kw: keras.layers.SimpleRNN(H, **kw)),
    "LSTM": (lambda: rnn.LSTM(H), lambda **kw: keras.layers.LSTM(H, **kw)),
    "GRU": (lambda: rnn.GRU(H, reset_after=True), lambda **kw: keras.layers.GRU(H, **kw)),
}


@pytest.mark.parametrize("name", list(STATEFUL_CORES))
def test_to_keras_stateful_carries_the_state_across_batches(name):
    make_core, make_layer = STATEFUL_CORES[name]
    core = _built_core(make_core())
    x = _inputs()
    first, second = x[:, : T // 2], x[:, T // 2 :]
    layer = convert.to_keras(core, stateful=True, batch_size=B, return_sequences=True)
    assert layer.stateful
    # A stateful Keras layer of the same kind with the same weights, built by hand.
    reference = make_layer(stateful=True, return_sequences=True)
    reference.build((B, None, I))
    convert.copy_to_keras(core, reference)
    outputs = [np.asarray(layer(first)), np.asarray(layer(second))]
    expected = [np.asarray(reference(first)), np.asarray(reference(second))]
    np.testing.assert_allclose(outputs[0], expected[0], atol=ATOL)
    np.testing.assert_allclose(outputs[1], expected[1], atol=ATOL)
    # The second batch continues from the first one's final state, as ours does
    # over the whole sequence (a fresh start would give other outputs).
    ours = _ours(core, x)
    np.testing.assert_allclose(np.concatenate(outputs, 1), ours, atol=ATOL)
    assert not np.allclose(outputs[1], _ours(core, second), atol=1e-3)
    layer.reset_state()
    np.testing.assert_allclose(np.asarray(layer(second)), _ours(core, second), atol=ATOL)


def test_to_keras_batch_size_without_stateful_builds_for_that_batch():
    core = _built_core(rnn.GRU(H))
    layer = convert.to_keras(core, batch_size=B, return_sequences=True)
    x = _inputs()
    np.testing.assert_allclose(np.asarray(layer(x)), _ours(core, x), atol=ATOL)


def test_to_keras_stateful_errors():
    core = _built_core(rnn.LSTM(H))
    with pytest.raises(ValueError, match=r"to_keras: stateful=True needs batch_size=.*got "):
        convert.to_keras(core, stateful=True)
    with pytest.raises(ValueError, match=r"to_keras: batch_size must be a positive int, got 0"):
        convert.to_keras(core, stateful=True, batch_size=0)
    with pytest.raises(ValueError, match=r"batch_size is for a layer; with cell=True.*got .*3"):
        convert.to_keras(core, cell=True, batch_size=3)
    unbuilt = keras.layers.LSTM(H, stateful=True, name="unbuilt")
    with pytest.raises(
        ValueError, match=r"'unbuilt': the target is stateful=True and not built yet.*build"
    ):
        convert.copy_to_keras(core, unbuilt)


# --------------------------------------------------------------------------
# Subclasses of our cores convert as the core they extend.
# --------------------------------------------------------------------------


class MyVanillaRNN(rnn.VanillaRNN):
    pass


class MyLSTM(rnn.LSTM):
    pass


class MyGRU(rnn.GRU):
    pass


SUBCLASSES = {
    "VanillaRNN": (MyVanillaRNN, rnn.VanillaRNN, "SimpleRNN"),
    "LSTM": (MyLSTM, rnn.LSTM, "LSTM"),
    "GRU": (MyGRU, rnn.GRU, "GRU"),
}


def _subclass_core(name, subclass=True):
    """An unbuilt subclass of one of ours (or, with subclass=False, the core it extends)."""
    cls = SUBCLASSES[name][0 if subclass else 1]
    return cls(H, reset_after=False) if name == "GRU" else cls(H)  # Sonnet's GRU form


@pytest.mark.parametrize("name", list(SUBCLASSES))
def test_subclasses_to_keras_and_copy_to_keras(name):
    core = _built_core(_subclass_core(name))
    x = _inputs()
    layer = convert.to_keras(core, return_sequences=True)
    assert type(layer).__name__ == SUBCLASSES[name][2]
    np.testing.assert_allclose(_keras(layer, x), _ours(core, x), atol=ATOL)
    cell = convert.to_keras(core, cell=True)
    np.testing.assert_allclose(_keras(cell, x), _ours(core, x), atol=ATOL)
    target = convert.to_keras(
        _built_core(_subclass_core(name, False), seed=3), return_sequences=True
    )
    assert convert.copy_to_keras(core, target) is target
    np.testing.assert_allclose(_keras(target, x), _ours(core, x), atol=ATOL)


@pytest.mark.parametrize("name", list(SUBCLASSES))
def test_subclasses_load_from_keras(name):
    source = convert.to_keras(_built_core(_subclass_core(name, False)))
    x = _inputs()
    for core in (_subclass_core(name), _built_core(_subclass_core(name), seed=5)):
        assert convert.load_from_keras(core, source) is core
        assert type(core) is SUBCLASSES[name][0]
        back = convert.from_keras(source)
        np.testing.assert_allclose(_ours(core, x), _ours(back, x), atol=ATOL)


def test_subclass_errors_name_the_subclass_and_its_kind():
    core = _built_core(MyGRU(H, reset_after=True))
    with pytest.raises(
        ValueError, match=r"MyGRU \(an rnn.GRU\) 'my_gru'.*reset_after=True, the target"
    ):
        convert.copy_to_keras(core, keras.layers.GRU(H, reset_after=False))
    with pytest.raises(TypeError, match=r"into MyLSTM \(an rnn.LSTM\) 'my_lstm'.*rnn.GRU"):
        convert.load_from_keras(MyLSTM(H), convert.to_keras(core))
    with pytest.raises(ValueError, match=r"MyLSTM \(an rnn.LSTM\) 'my_lstm' has no weights yet"):
        convert.to_keras(MyLSTM(H))


# --------------------------------------------------------------------------
# Sonnet -> ours and back.
# --------------------------------------------------------------------------


def _sonnet_sources(snt):
    return {
        "VanillaRNN-tanh": lambda: snt.VanillaRNN(H),
        "VanillaRNN-relu": lambda: snt.VanillaRNN(H, activation=tf.nn.relu),
        "VanillaRNN-sigmoid": lambda: snt.VanillaRNN(H, activation=tf.sigmoid),
        "LSTM": lambda: snt.LSTM(H),
        "LSTM-projection": lambda: snt.LSTM(H, projection_size=2),
        "LSTM-forget-bias": lambda: snt.LSTM(H, forget_bias=3.0),
        "UnrolledLSTM": lambda: snt.UnrolledLSTM(H),
        "GRU": lambda: snt.GRU(H),
    }


SONNET_SOURCES = [
    "VanillaRNN-tanh",
    "VanillaRNN-relu",
    "VanillaRNN-sigmoid",
    "LSTM",
    "LSTM-projection",
    "LSTM-forget-bias",
    "UnrolledLSTM",
    "GRU",
]


@pytest.mark.parametrize("name", SONNET_SOURCES)
def test_from_sonnet_gives_the_same_outputs(snt, name):
    source = _built_sonnet(snt, _sonnet_sources(snt)[name]())
    x = _inputs()
    core = convert.from_sonnet(source)
    expected = {"V": rnn.VanillaRNN, "L": rnn.LSTM, "U": rnn.LSTM, "G": rnn.GRU}[name[0]]
    assert type(core) is expected
    np.testing.assert_allclose(_ours(core, x), _sonnet(snt, source, x), atol=ATOL)
    if name == "GRU":
        assert core.get_config()["reset_after"] is False
    if name == "LSTM-projection":
        assert core.get_config()["projection_size"] == 2
    if name == "LSTM-forget-bias":
        assert core.get_config()["forget_bias"] == 3.0


def test_sonnet_forget_bias_is_in_b_once_built(snt):
    # Sonnet adds forget_bias to b when it builds, not at call time: the copy holds it.
    source = snt.LSTM(H, forget_bias=2.5)
    source(tf.zeros([1, I]), source.initial_state(1))
    core = convert.from_sonnet(source)
    np.testing.assert_array_equal(core.bias.numpy()[H : 2 * H], np.full([H], 2.5, "float32"))
    x = _inputs()
    np.testing.assert_allclose(_ours(core, x), _sonnet(snt, source, x), atol=ATOL)


def test_sonnet_gru_update_gate_convention(snt):
    """With the same weights the two GRUs differ; with the update gate negated they agree."""
    source = _built_sonnet(snt, snt.GRU(H))
    x = _inputs()
    raw = rnn.GRU(H, reset_after=False)
    raw(x[:, 0], raw.initial_state(B))
    raw.kernel.assign(source.input_to_hidden)
    raw.recurrent_kernel.assign(source.hidden_to_hidden)
    raw.bias.assign(source.b)
    assert not np.allclose(_ours(raw, x), _sonnet(snt, source, x), atol=1e-3)
    core = convert.from_sonnet(source)
    np.testing.assert_array_equal(
        core.kernel.numpy()[:, :H], -source.input_to_hidden.numpy()[:, :H]
    )
    np.testing.assert_array_equal(core.kernel.numpy()[:, H:], source.input_to_hidden.numpy()[:, H:])
    np.testing.assert_array_equal(core.bias.numpy()[:H], -source.b.numpy()[:H])
    np.testing.assert_allclose(_ours(core, x), _sonnet(snt, source, x), atol=ATOL)


SONNET_TARGETS = {
    "VanillaRNN-tanh": lambda: rnn.VanillaRNN(H),
    "VanillaRNN-relu": lambda: rnn.VanillaRNN(H, activation=tf.nn.relu),
    "LSTM": lambda: rnn.LSTM(H),
    "LSTM-projection": lambda: rnn.LSTM(H, projection_size=2),
    "GRU": lambda: rnn.GRU(H, reset_after=False),
}


@pytest.mark.parametrize("name", list(SONNET_TARGETS))
def test_to_sonnet_gives_the_same_outputs(snt, name):
    core = _built_core(SONNET_TARGETS[name]())
    x = _inputs()
    theirs = convert.to_sonnet(core, name="converted")
    assert theirs.name == "converted"
    expected = {"V": snt.VanillaRNN, "L": snt.LSTM, "G": snt.GRU}[name[0]]
    assert type(theirs) is expected
    np.testing.assert_allclose(_sonnet(snt, theirs, x), _ours(core, x), atol=ATOL)
    back = convert.from_sonnet(theirs)
    for a, b in zip(core.variables, back.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_to_sonnet_float64(snt):
    x = _inputs(dtype="float64")
    core = _built_core(rnn.GRU(H), x)
    theirs = convert.to_sonnet(core)
    assert theirs.b.dtype == tf.float64
    np.testing.assert_allclose(_sonnet(snt, theirs, x), _ours(core, x), atol=1e-10)


def test_load_from_sonnet_and_copy_to_sonnet(snt):
    x = _inputs()
    source = _built_sonnet(snt, snt.LSTM(H, projection_size=3))
    built = _built_core(rnn.LSTM(H, projection_size=3), seed=4)
    assert convert.load_from_sonnet(built, source) is built
    np.testing.assert_allclose(_ours(built, x), _sonnet(snt, source, x), atol=ATOL)
    unbuilt = convert.load_from_sonnet(rnn.LSTM(H, projection_size=3), source)
    np.testing.assert_allclose(_ours(unbuilt, x), _sonnet(snt, source, x), atol=ATOL)

    core = _built_core(rnn.GRU(H), seed=5)
    target = snt.GRU(H)
    assert convert.copy_to_sonnet(core, target) is target  # unbuilt: built here
    np.testing.assert_allclose(_sonnet(snt, target, x), _ours(core, x), atol=ATOL)
    target = _built_sonnet(snt, snt.GRU(H), seed=6)
    convert.copy_to_sonnet(core, target)
    np.testing.assert_allclose(_sonnet(snt, target, x), _ours(core, x), atol=ATOL)


def test_sonnet_checkpoint_loads_through_the_converter(snt, tmp_path):
    """The documented route: restore into a Sonnet core, call it once, convert."""
    x = _inputs()
    saved = _built_sonnet(snt, snt.LSTM(H, projection_size=2))
    expected = _sonnet(snt, saved, x)
    path = tf.train.Checkpoint(core=saved).save(str(tmp_path / "ckpt"))

    fresh = snt.LSTM(H, projection_size=2)
    status = tf.train.Checkpoint(core=fresh).restore(path)
    fresh(tf.zeros([1, I]), fresh.initial_state(1))  # makes the variables; the restore fills them
    status.assert_existing_objects_matched()
    core = convert.from_sonnet(fresh)
    np.testing.assert_allclose(_ours(core, x), expected, atol=ATOL)

    # And back: our weights written as a Sonnet checkpoint restore into Sonnet.
    ours = _built_core(rnn.GRU(H), seed=3)
    path = tf.train.Checkpoint(core=convert.to_sonnet(ours)).save(str(tmp_path / "ours"))
    restored = snt.GRU(H)
    status = tf.train.Checkpoint(core=restored).restore(path)
    restored(tf.zeros([1, I]), restored.initial_state(1))
    status.assert_consumed()
    np.testing.assert_allclose(_sonnet(snt, restored, x), _ours(ours, x), atol=ATOL)


def test_sonnet_errors(snt):
    with pytest.raises(ValueError, match=r"snt.LSTM 'fresh' has no weights yet: call it once"):
        convert.from_sonnet(snt.LSTM(H, name="fresh"))
    with pytest.raises(TypeError, match=r"supports snt.VanillaRNN, snt.LSTM.*got sonnet.*Linear"):
        convert.from_sonnet(snt.Linear(3))
    with pytest.raises(TypeError, match=r"supports snt.VanillaRNN.*got keras.*LSTM"):
        convert.from_sonnet(keras.layers.LSTM(3))
    with pytest.raises(TypeError, match=r"takes one of our cores"):
        convert.to_sonnet(snt.LSTM(H))

    gru_after = _built_core(rnn.GRU(H, reset_after=True))
    with pytest.raises(ValueError, match=r"variable 'bias' has shape \[2, 15\].*reset_after=False"):
        convert.to_sonnet(gru_after)
    with pytest.raises(ValueError, match=r"layer norm \(variables ln_kernel_scale.*snt.LSTM"):
        convert.to_sonnet(_built_core(rnn.LSTM(H, use_layer_norm=True)))
    with pytest.raises(ValueError, match=r"cell_clip=1.0"):
        convert.to_sonnet(_built_core(rnn.LSTM(H, cell_clip=1.0)))
    with pytest.raises(ValueError, match=r"has no weights yet"):
        convert.to_sonnet(rnn.GRU(H))

    source = _built_sonnet(snt, snt.GRU(H))
    with pytest.raises(ValueError, match=r"variable 'bias'.*reset_after=False, the target"):
        convert.load_from_sonnet(rnn.GRU(H, reset_after=True), source)
    lstm = _built_sonnet(snt, snt.LSTM(H, projection_size=2))
    with pytest.raises(ValueError, match=r"variable 'projection'.*2, the target's None"):
        convert.load_from_sonnet(rnn.LSTM(H), lstm)
    with pytest.raises(TypeError, match=r"weights of an rnn.LSTM"):
        convert.load_from_sonnet(rnn.VanillaRNN(H), lstm)
    with pytest.raises(
        ValueError, match=r"'kernel': it has shape \[5, 20\].*'lstm' gives shape \[4"
    ):
        wide = _built_core(rnn.LSTM(H), _inputs(features=I + 1))
        convert.load_from_sonnet(wide, _built_sonnet(snt, snt.LSTM(H)))

    ours = _built_core(rnn.LSTM(H))
    with pytest.raises(ValueError, match=r"variable 'projection'.*None, the target's 2"):
        convert.copy_to_sonnet(ours, snt.LSTM(H, projection_size=2))
    target = _built_sonnet(snt, snt.LSTM(H, name="wide"), _inputs(features=I + 2))
    with pytest.raises(
        ValueError, match=r"'wide': cannot copy variable 'w_i': .*\[6, 20\].*\[4, 20\]"
    ):
        convert.copy_to_sonnet(ours, target)
    with pytest.raises(TypeError, match=r"takes the weights of an rnn.GRU"):
        convert.copy_to_sonnet(ours, snt.GRU(H))
    with pytest.raises(
        TypeError, match=r"supports snt.VanillaRNN, snt.LSTM, snt.GRU; got.*Unrolled"
    ):
        convert.copy_to_sonnet(ours, snt.UnrolledLSTM(H))
    with pytest.raises(ValueError, match=r"activation is tanh, the target's relu"):
        convert.copy_to_sonnet(
            _built_core(rnn.VanillaRNN(H)), snt.VanillaRNN(H, activation=tf.nn.relu)
        )


@pytest.mark.parametrize("name", list(SUBCLASSES))
def test_subclasses_to_sonnet_copy_to_sonnet_and_load_from_sonnet(snt, name):
    core = _built_core(_subclass_core(name))
    x = _inputs()
    theirs = convert.to_sonnet(core)
    assert type(theirs) is getattr(snt, name)
    np.testing.assert_allclose(_sonnet(snt, theirs, x), _ours(core, x), atol=ATOL)
    target = getattr(snt, name)(H)
    assert convert.copy_to_sonnet(core, target) is target
    np.testing.assert_allclose(_sonnet(snt, target, x), _ours(core, x), atol=ATOL)
    for into in (_subclass_core(name), _built_core(_subclass_core(name), seed=7)):
        assert convert.load_from_sonnet(into, theirs) is into
        assert type(into) is SUBCLASSES[name][0]
        np.testing.assert_allclose(_ours(into, x), _ours(core, x), atol=ATOL)


def test_to_sonnet_without_sonnet_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sonnet", None)  # `import sonnet` raises ImportError
    with pytest.raises(ImportError, match=r"needs Sonnet 2.*pip install dm-sonnet"):
        convert.to_sonnet(_built_core(rnn.LSTM(H)))


def test_keras_conversion_does_not_import_sonnet():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["sonnet"] = None  # as if it were not installed
        import keras, tensorflow as tf, rnn
        layer = keras.layers.LSTM(3)
        layer.build((None, None, 2))
        core = rnn.convert.from_keras(layer)
        rnn.convert.to_keras(core)
        try:
            rnn.convert.from_sonnet(core)
        except TypeError as e:
            assert "snt.LSTM" in str(e), e
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
