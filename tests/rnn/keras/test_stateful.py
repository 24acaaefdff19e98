"""rnn.keras.RNN(stateful=True): the state kept between batches, its resets, fit and saving.

Checked side by side with ``keras.layers.LSTM(stateful=True)`` holding the
same weights, and against :func:`rnn.dynamic_unroll` carrying the state by
hand for the other state structures (GRU tensor, DeepRNN tuple, DNC nest).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
import rnn.keras as rk
from rnn.dnc import DNCState
from tests.rnn.keras.common import CORES, F, T, assert_close, numpy_of, small_dnc

B = 4


def batches(n, seed=0, b=B, t=T, f=F):
    r = np.random.default_rng(seed)
    return [r.normal(size=(b, t, f)).astype("float32") for _ in range(n)]


def unroll(core, x, state, lengths=None, reverse=False):
    return rnn.dynamic_unroll(
        core, x, state, sequence_length=lengths, reverse=reverse, time_major=False
    )


def keras_twin(core, b=B, t=T, f=F, **kwargs):
    """A keras.layers.LSTM(stateful=True) in a model with a fixed batch, holding core's weights."""
    if getattr(core, "kernel", None) is None:
        core(tf.zeros([1, f]), core.initial_state(1))
    layer = keras.layers.LSTM(core.hidden_size, stateful=True, **kwargs)
    inputs = keras.Input((t, f), batch_size=b)
    model = keras.Model(inputs, layer(inputs))
    rnn.convert.copy_to_keras(core, layer)
    return model, layer


def ours(core, b=B, t=T, f=F, **kwargs):
    layer = rk.RNN(core, stateful=True, **kwargs)
    inputs = keras.Input((t, f), batch_size=b)
    return keras.Model(inputs, layer(inputs)), layer


def kept(layer):
    return nestlib.map_structure(lambda v: v.numpy(), layer.states)


# ------------------------------------------------- side by side with Keras


def test_consecutive_batches_match_keras_stateful_lstm():
    core = rnn.LSTM(6)
    model, layer = ours(core, return_sequences=True)
    twin, twin_layer = keras_twin(core, return_sequences=True)
    for x in batches(3):
        np.testing.assert_allclose(model(x), twin(x), atol=1e-5)
        # Keras keeps [h, c]; ours keeps the core's LSTMState(hidden, cell).
        assert type(layer.states) is rnn.LSTMState
        assert_close(list(kept(layer)), [v.numpy() for v in twin_layer.states])


def test_the_kept_state_carries_over_and_without_stateful_it_does_not():
    core = rnn.LSTM(5)
    x1, x2 = batches(2, seed=1)
    _, s1 = unroll(core, x1, core.initial_state(B))
    expected, s2 = unroll(core, x2, s1)
    stateful = rk.RNN(core, stateful=True, return_sequences=True)
    stateless = rk.RNN(core, return_sequences=True)
    stateful(x1)
    assert_close(stateful(x2), expected)
    assert_close(kept(stateful), s2)
    stateless(x1)
    assert not np.allclose(stateless(x2), expected, atol=1e-3)
    assert stateless.states is None


def test_reset_of_all_examples_matches_keras():
    core = rnn.LSTM(6)
    model, layer = ours(core)
    twin, twin_layer = keras_twin(core)
    x1, x2 = batches(2, seed=2)
    model(x1), twin(x1)
    layer.reset_state()
    twin_layer.reset_state()
    assert all((v == 0).all() for v in nestlib.flatten(kept(layer)))
    np.testing.assert_allclose(model(x2), twin(x2), atol=1e-5)
    layer.reset_states()  # Keras' alias
    assert all((v == 0).all() for v in nestlib.flatten(kept(layer)))


def test_reset_of_some_examples_by_mask_and_by_indices():
    core = rnn.LSTM(6)
    _, layer = ours(core)
    x1, x2 = batches(2, seed=3)
    layer(x1)
    _, s1 = unroll(core, x1, core.initial_state(B))
    mask = np.array([True, False, True, False])
    layer.reset_state(mask)
    fresh = core.initial_state(B)
    expected = nestlib.map_structure(lambda a, b: np.where(mask[:, None], a, b), fresh, s1)
    assert_close(kept(layer), expected)
    # The next batch starts from that mixed state.
    ref, s2 = unroll(core, x2, expected)
    assert_close(layer(x2), ref[:, -1])
    # indices= resets the same examples (negative indices count from the end).
    layer.reset_state(indices=[0, -2])
    expected = nestlib.map_structure(lambda a, b: np.where(mask[:, None], a, b), fresh, s2)
    assert_close(kept(layer), expected)
    layer.reset_state(indices=3)  # a scalar index
    assert (layer.states.hidden.numpy()[3] == 0).all()
    before = kept(layer)
    layer.reset_state(indices=[])  # nothing to reset
    assert_close(kept(layer), before)


def test_partial_reset_matches_keras_with_those_examples_zeroed():
    # Keras has no partial reset; setting the same examples' state to zeros
    # by hand gives the same continuation.
    core = rnn.LSTM(6)
    model, layer = ours(core, return_sequences=True)
    twin, twin_layer = keras_twin(core, return_sequences=True)
    x1, x2 = batches(2, seed=4)
    model(x1), twin(x1)
    layer.reset_state(np.array([False, True, True, False]))
    for v in twin_layer.states:
        value = v.numpy()
        value[1:3] = 0
        v.assign(value)
    np.testing.assert_allclose(model(x2), twin(x2), atol=1e-5)


def test_reset_inside_a_tf_function():
    core = rnn.GRU(3)
    layer = rk.RNN(core, stateful=True)
    (x,) = batches(1, seed=5)
    layer(x)

    @tf.function
    def reset(mask):
        layer.reset_state(mask)

    reset(tf.constant([False, False, True, False]))
    zero = (layer.states.numpy() == 0).all(axis=1)
    assert zero.tolist() == [False, False, True, False]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def reset_indices(indices):
        layer.reset_state(indices=indices)

    reset_indices(tf.constant([0]))
    assert (layer.states.numpy() == 0).all(axis=1).tolist() == [True, False, True, False]
    with pytest.raises(tf.errors.InvalidArgumentError, match="indices must be in"):
        reset_indices(tf.constant([4]))


# ------------------------------------------------------ every state nest


@pytest.mark.parametrize("name", ["gru", "deep", "dnc"])
def test_every_state_structure_is_kept_and_reset(name):
    core = CORES[name]()
    layer = rk.RNN(core, stateful=True, return_sequences=True, return_state=True)
    x1, x2, x3 = batches(3, seed=6)
    out1, state1 = layer(x1)
    ref1, s1 = unroll(core, x1, core.initial_state(B))
    ref2, s2 = unroll(core, x2, s1)
    out2, state2 = layer(x2)
    assert_close(out1, ref1)
    assert_close(out2, ref2)
    assert_close(state2, s2)
    assert_close(kept(layer), s2)
    nestlib.assert_same_structure(layer.states, core.initial_state(B))
    if name == "dnc":
        assert type(layer.states) is DNCState
        assert layer.states.access_state.memory.shape == (B, 4, 3)
    # Reset examples 0 and 3: every leaf (memory, linkage, ...) of those rows.
    mask = np.array([True, False, False, True])
    layer.reset_state(mask)

    def pick(fresh, old):
        fresh, old = np.asarray(fresh), np.asarray(old)
        return np.where(mask.reshape((B,) + (1,) * (old.ndim - 1)), fresh, old)

    mixed = nestlib.map_structure(pick, core.initial_state(B), s2)
    assert_close(kept(layer), mixed)
    ref3, _ = unroll(core, x3, mixed)
    assert_close(layer(x3)[0], ref3)


def test_names_and_dtypes_of_the_state_variables_and_they_are_not_weights():
    layer = rk.RNN(rnn.DeepRNN([rnn.LSTM(3), rnn.GRU(2)]), stateful=True)
    layer(np.zeros((2, 3, 4), "float32"))
    names = [v.name for v in nestlib.flatten(layer.states)]
    assert names == ["state_0_hidden", "state_0_cell", "state_1"]
    assert all(not v.trainable and v.dtype == "float32" for v in nestlib.flatten(layer.states))
    assert len(layer.weights) == len(layer.core.variables)
    assert not layer.non_trainable_weights
    # So weights move between a stateful layer and a stateless one (as in Keras).
    stateless = rk.RNN(rnn.DeepRNN([rnn.LSTM(3), rnn.GRU(2)]))
    stateless(np.zeros((5, 3, 4), "float32"))
    stateless.set_weights(layer.get_weights())


# ------------------------------------------------ masks, go_backwards, state


def test_masked_batches_keep_each_examples_state_at_its_last_valid_step():
    core = rnn.LSTM(4)
    inputs = keras.Input((T, F), batch_size=B)
    layer = rk.RNN(core, stateful=True)
    model = keras.Model(inputs, layer(keras.layers.Masking()(inputs)))
    x1, x2 = batches(2, seed=7)
    lengths1, lengths2 = np.array([5, 2, 0, 3]), np.array([1, 5, 4, 0])
    for x, lengths in ((x1, lengths1), (x2, lengths2)):
        x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    model(x1)
    _, s1 = unroll(core, x1, core.initial_state(B), lengths1)
    assert_close(kept(layer), s1)
    # The example of length 0 kept its initial state.
    assert (layer.states.hidden.numpy()[2] == 0).all()
    model(x2)
    _, s2 = unroll(core, x2, s1, lengths2)
    assert_close(kept(layer), s2)
    # Example 3 had length 0 in the second batch: its state is unchanged.
    np.testing.assert_allclose(layer.states.hidden.numpy()[3], s1.hidden[3], atol=1e-6)


def test_go_backwards_carries_the_state_of_the_backward_read_like_keras():
    core = rnn.LSTM(5)
    model, layer = ours(core, go_backwards=True, return_sequences=True)
    twin, _ = keras_twin(core, go_backwards=True, return_sequences=True)
    x1, x2 = batches(2, seed=8)
    for x in (x1, x2):
        np.testing.assert_allclose(model(x), twin(x), atol=1e-5)
    _, s1 = unroll(core, x1, core.initial_state(B), reverse=True)
    _, s2 = unroll(core, x2, s1, reverse=True)
    assert_close(kept(layer), s2)


def test_an_initial_state_argument_is_used_and_its_final_state_kept():
    core = rnn.GRU(3)
    layer = rk.RNN(core, stateful=True, return_state=True)
    x1, x2 = batches(2, seed=9)
    layer(x1)
    start = tf.random.normal([B, 3], seed=1)
    _, state = layer(x2, initial_state=start)
    _, expected = unroll(core, x2, start)
    assert_close(state, expected)
    assert_close(kept(layer), expected)


def test_bidirectional_resets_both_directions():
    inputs = keras.Input((T, F), batch_size=B)
    bidirectional = keras.layers.Bidirectional(rk.RNN(rnn.GRU(3), stateful=True))
    model = keras.Model(inputs, bidirectional(inputs))
    (x,) = batches(1, seed=10)
    first = model(x)
    assert not np.allclose(model(x), first, atol=1e-4)
    bidirectional.reset_state()
    np.testing.assert_allclose(model(x), first, atol=1e-6)


# -------------------------------------------------------------- model.fit


def test_fit_two_epochs_matches_keras_stateful_lstm():
    keras.utils.set_random_seed(0)
    core = rnn.LSTM(6)
    r = np.random.default_rng(11)
    x = r.normal(size=(4 * B, T, F)).astype("float32")
    y = r.normal(size=(4 * B, 2)).astype("float32")

    def head(recurrent):
        inputs = keras.Input((T, F), batch_size=B)
        model = keras.Model(inputs, keras.layers.Dense(2)(recurrent(inputs)))
        model.compile(keras.optimizers.SGD(0.1), "mse")
        return model

    layer = rk.RNN(core, stateful=True)
    model = head(layer)
    twin_layer = keras.layers.LSTM(6, stateful=True)
    twin = head(twin_layer)
    rnn.convert.copy_to_keras(core, twin_layer)
    twin.layers[-1].set_weights(model.layers[-1].get_weights())
    fit = dict(batch_size=B, epochs=2, shuffle=False, verbose=0)
    losses = model.fit(x, y, **fit).history["loss"]
    twin_losses = twin.fit(x, y, **fit).history["loss"]
    np.testing.assert_allclose(losses, twin_losses, rtol=1e-4)
    assert_close(list(kept(layer)), [v.numpy() for v in twin_layer.states], tol=1e-4)
    trained = rnn.convert.from_keras(twin_layer)
    assert_close(
        [v.numpy() for v in core.variables], [v.numpy() for v in trained.variables], tol=1e-4
    )
    # predict continues from the state fit left.
    np.testing.assert_allclose(
        model.predict(x[:B], batch_size=B, verbose=0),
        twin.predict(x[:B], batch_size=B, verbose=0),
        atol=1e-4,
    )


def test_fit_carries_the_state_between_batches_and_learns():
    # Each target is the first input of the *previous* batch's example: only
    # a layer that keeps its state between batches can fit it.
    keras.utils.set_random_seed(1)
    r = np.random.default_rng(12)
    n = 32
    x = r.normal(size=(n * B, 1, 1)).astype("float32")
    y = np.concatenate([np.zeros((B, 1, 1), "float32"), x[:-B]])[:, 0]

    def train(stateful):
        inputs = keras.Input((1, 1), batch_size=B)
        layer = rk.RNN(rnn.LSTM(8), stateful=stateful)
        model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
        model.compile(keras.optimizers.Adam(0.02), "mse")
        history = model.fit(x, y, batch_size=B, epochs=30, shuffle=False, verbose=0)
        return history.history["loss"][-1]

    assert train(stateful=True) < 0.5 * train(stateful=False)


def test_fit_under_xla_keeps_the_state():
    core = rnn.GRU(3)
    inputs = keras.Input((T, F), batch_size=B)
    layer = rk.RNN(core, stateful=True)
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=True)
    x1, x2 = batches(2, seed=13)
    x, y = np.concatenate([x1, x2]), np.zeros((2 * B, 3))
    model.fit(x, y, batch_size=B, shuffle=False, verbose=0)
    _, s1 = unroll(core, x1, core.initial_state(B))
    _, s2 = unroll(core, x2, s1)
    assert_close(kept(layer), s2, tol=1e-5)


# ------------------------------------------------------------- save / load


def test_save_and_load_keeps_stateful_and_starts_from_a_fresh_state_like_keras(tmp_path):
    core = small_dnc()
    model, layer = ours(core, return_sequences=True)
    x1, x2 = batches(2, seed=14)
    model(x1)
    path = os.path.join(tmp_path, "stateful.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    restored_layer = restored.layers[-1]
    assert restored_layer.stateful
    assert restored_layer.get_config()["stateful"] is True
    # As keras.layers.RNN: the kept state is not saved; the loaded layer starts
    # from the initial state (what a reset gives).
    assert_close(kept(restored_layer), numpy_of(core.initial_state(B)))
    layer.reset_state()
    assert_close(restored(x2), model(x2))
    assert_close(restored(x1), model(x1))  # and they keep the same state
    assert_close(kept(restored_layer), kept(layer))


def test_keras_stateful_lstm_does_not_save_its_state_either(tmp_path):
    # The behaviour the test above matches.
    core = rnn.LSTM(3)
    twin, twin_layer = keras_twin(core)
    twin(batches(1, seed=15)[0])
    assert not (twin_layer.states[0].numpy() == 0).all()
    path = os.path.join(tmp_path, "keras.keras")
    twin.save(path)
    restored = keras.saving.load_model(path)
    assert all((v.numpy() == 0).all() for v in restored.layers[-1].states)


def test_config_round_trip():
    layer = rk.RNN(rnn.GRU(2), stateful=True)
    config = layer.get_config()
    assert config["stateful"] is True
    assert rk.RNN.from_config(config).stateful
    assert rk.RNN(rnn.GRU(2)).get_config()["stateful"] is False
    old = dict(rk.RNN(rnn.GRU(2)).get_config())
    del old["stateful"]  # configs saved before the option existed
    assert rk.RNN.from_config(old).stateful is False


# ------------------------------------------------------------------ errors


def test_stateful_without_a_fixed_batch_size_is_a_value_error():
    with pytest.raises(ValueError, match=r"stateful=True needs a fixed batch size.*batch_size="):
        rk.RNN(rnn.LSTM(2), stateful=True)(keras.Input((T, F)))


def test_a_batch_of_another_size_is_a_value_error_eagerly_and_an_assertion_in_predict():
    model, layer = ours(rnn.LSTM(2))
    with pytest.raises(ValueError, match=r"stateful with batch size 4.*shape \(3, 5, 3\)"):
        layer(np.zeros((3, T, F), "float32"))
    # predict's last batch of 2 runs a function traced for any batch size.
    model.compile(loss="mse")
    with pytest.raises(tf.errors.InvalidArgumentError, match="stateful with batch size 4"):
        model.predict(np.zeros((6, T, F), "float32"), batch_size=B, verbose=0)


def test_stateful_must_be_a_bool():
    with pytest.raises(TypeError, match="stateful must be a bool"):
        rk.RNN(rnn.LSTM(2), stateful="yes")


def test_reset_of_a_layer_that_is_not_stateful_is_an_attribute_error():
    layer = rk.RNN(rnn.LSTM(2))
    layer(np.zeros((2, T, F), "float32"))
    with pytest.raises(AttributeError, match=r"is not stateful.*stateful=True"):
        layer.reset_state()
    with pytest.raises(AttributeError, match="is not stateful"):
        layer.reset_states()


def test_reset_before_build_does_nothing():
    layer = rk.RNN(rnn.LSTM(2), stateful=True)
    layer.reset_state()
    layer.reset_state(np.array([True]))
    assert layer.states is None


@pytest.fixture
def built():
    layer = rk.RNN(rnn.LSTM(2), stateful=True)
    layer(np.ones((B, T, F), "float32"))
    return layer


@pytest.mark.parametrize(
    "mask", [np.array([1, 0, 1, 0]), np.array([1.0, 0.0, 0.0, 0.0]), [0, 1, 0, 0]]
)
def test_a_reset_mask_that_is_not_bool_is_a_type_error(built, mask):
    before = kept(built)
    with pytest.raises(TypeError, match=r"reset_state's mask must be a bool array of shape \[4\]"):
        built.reset_state(mask)
    assert_close(kept(built), before)


@pytest.mark.parametrize(
    "mask", [np.array([True, False, True]), np.ones((4, 1), bool), np.array(True)]
)
def test_a_reset_mask_of_the_wrong_shape_is_a_value_error(built, mask):
    with pytest.raises(
        ValueError, match=r"reset_state's mask must be a bool array of shape \[4\].*got shape"
    ):
        built.reset_state(mask)


def test_a_reset_mask_of_unknown_shape_is_checked_in_a_graph(built):
    @tf.function(input_signature=[tf.TensorSpec(None, tf.bool)])
    def reset(mask):
        built.reset_state(mask)

    with pytest.raises(tf.errors.InvalidArgumentError, match="mask must be a bool array"):
        reset(tf.constant([True, False]))


def test_a_mask_that_is_not_an_array_is_a_type_error(built):
    with pytest.raises(TypeError, match="reset_state's mask must be"):
        built.reset_state({"a": 1})


@pytest.mark.parametrize(
    "indices, error, message",
    [
        ([0.5], TypeError, r"indices must be integers, got dtype float32"),
        (np.array([True]), TypeError, r"indices must be integers, got dtype bool"),
        ([4], ValueError, r"indices must be in \[-4, 4\).*got \[4\]"),
        ([-5, 1], ValueError, r"got \[-5\]"),
        ([[0, 1]], ValueError, r"indices must be a scalar or a vector"),
    ],
)
def test_bad_reset_indices(built, indices, error, message):
    with pytest.raises(error, match=message):
        built.reset_state(indices=indices)


def test_mask_and_indices_together_is_a_value_error(built):
    with pytest.raises(ValueError, match="a mask or indices=, not both"):
        built.reset_state(np.ones(B, bool), indices=[0])
