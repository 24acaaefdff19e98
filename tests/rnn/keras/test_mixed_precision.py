"""rnn.keras.RNN under Keras' mixed_float16 / mixed_bfloat16 policies.

The core's variables are float32, the layer computes (and returns outputs and
states) in float16 / bfloat16, results agree with float32 within the
tolerances below, and model.fit trains with loss scaling (Keras wraps the
optimizer in a LossScaleOptimizer for mixed_float16).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
import rnn.keras as rk
from tests.rnn.keras.common import CORES, TOKENS, B, F, T, data

POLICIES = {"mixed_float16": tf.float16, "mixed_bfloat16": tf.bfloat16}
# Largest absolute difference from float32 allowed, for outputs and states of
# magnitude about 1 after T=5 steps (float16 has an 11-bit significand,
# bfloat16 an 8-bit one).
TOLERANCE = {"mixed_float16": 1e-2, "mixed_bfloat16": 6e-2}


@pytest.fixture
def policy(request):
    """Sets the global dtype policy for the test, and restores float32 after it."""
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy("float32")


def both_policies(fn):
    return pytest.mark.parametrize("policy", sorted(POLICIES), indirect=True)(fn)


def float32_twin(layer, x, **kwargs):
    """A float32 RNN layer with a fresh core of the same config, given ``layer`` 's weights."""
    twin = rk.RNN.from_config({**layer.get_config(), "dtype": "float32", **kwargs})
    twin(x)
    twin.set_weights(layer.get_weights())
    return twin


def max_difference(a, b):
    nestlib.assert_same_structure(a, b)
    return max(
        float(np.max(np.abs(np.asarray(u, np.float32) - np.asarray(v, np.float32))))
        for u, v in zip(nestlib.flatten(a), nestlib.flatten(b))
    )


@both_policies
@pytest.mark.parametrize("name", sorted(CORES))
def test_variables_are_float32_and_the_layer_computes_in_the_policys_dtype(policy, name):
    core = CORES[name]()
    layer = rk.RNN(core, return_sequences=True, return_state=True)
    x, _ = data(0)
    outputs, state = layer(x)
    assert layer.compute_dtype == POLICIES[policy].name
    assert layer.variable_dtype == "float32"
    assert core.variables and all(v.dtype == tf.float32 for v in core.variables)
    assert all(w.dtype == "float32" for w in layer.weights)
    assert outputs.dtype == POLICIES[policy]
    assert {leaf.dtype for leaf in nestlib.flatten(state)} == {POLICIES[policy]}
    keras.config.set_dtype_policy("float32")
    twin = float32_twin(layer, x)
    ref_outputs, ref_state = twin(x)
    assert ref_outputs.dtype == tf.float32
    tol = TOLERANCE[policy]
    assert max_difference(outputs, ref_outputs) < tol
    if name == "dnc":
        # Memory slots whose usage ties in half precision (and not quite in
        # float32) are allocated in another order: the memory, weightings and
        # linkage are the same up to a permutation of the slots, and the
        # outputs and controller state do not depend on it.
        assert max_difference(state.controller_state, ref_state.controller_state) < tol
        usage = np.sort(np.asarray(state.access_state.usage, np.float32), axis=1)
        ref_usage = np.sort(ref_state.access_state.usage.numpy(), axis=1)
        assert np.abs(usage - ref_usage).max() < tol
    else:
        assert max_difference(state, ref_state) < tol


@both_policies
def test_masks_under_mixed_precision(policy):
    embed = keras.layers.Embedding(10, F, mask_zero=True)
    layer = rk.RNN(rnn.LSTM(4), return_sequences=True)
    outputs = layer(embed(TOKENS)).numpy().astype(np.float32)
    lengths = (TOKENS != 0).sum(1)
    for b, length in enumerate(lengths):
        assert (outputs[b, length:] == 0).all()
        assert (outputs[b, :length] != 0).any() or length == 0


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
@pytest.mark.parametrize("name", ["lstm", "dnc"])
def test_fit_uses_loss_scaling_keeps_float32_variables_and_learns(policy, name):
    keras.utils.set_random_seed(0)
    core = CORES[name]()
    model = keras.Sequential(
        [keras.Input((T, F)), rk.RNN(core), keras.layers.Dense(2, dtype="float32")]
    )
    model.compile(keras.optimizers.Adam(0.03), "mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [v.numpy().copy() for v in core.trainable_variables]
    x, y = data(0, b=16)
    losses = model.fit(x, y, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert all(v.dtype == tf.float32 for v in core.variables)
    assert all(
        not np.array_equal(v.numpy(), old) for v, old in zip(core.trainable_variables, before)
    )
    assert all(np.isfinite(v.numpy()).all() for v in core.variables)


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_fit_under_mixed_bfloat16_learns(policy):
    keras.utils.set_random_seed(0)
    core = rnn.GRU(4)
    model = keras.Sequential(
        [keras.Input((T, F)), rk.RNN(core), keras.layers.Dense(2, dtype="float32")]
    )
    model.compile(keras.optimizers.Adam(0.03), "mse")
    x, y = data(0, b=16)
    losses = model.fit(x, y, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert all(v.dtype == tf.float32 for v in core.variables)


def test_one_training_step_matches_float32_within_tolerance():
    # The same weights and data: the gradient step under mixed_float16 (loss
    # scaled, float16 maths, float32 variables) moves the weights as float32 does.
    x, y = data(3, b=8)
    results = {}
    reference = None
    for policy in ("float32", "mixed_float16"):
        keras.config.set_dtype_policy(policy)
        try:
            layer = rk.RNN(rnn.LSTM(4))
            model = keras.Sequential(
                [keras.Input((T, F)), layer, keras.layers.Dense(2, dtype="float32")]
            )
            if reference is None:
                reference = model.get_weights()
            model.set_weights(reference)
            model.compile(keras.optimizers.SGD(0.5), "mse")
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            results[policy] = model.get_weights()
        finally:
            keras.config.set_dtype_policy("float32")
    moved = max(np.abs(a - b).max() for a, b in zip(results["float32"], reference))
    differ = max(np.abs(a - b).max() for a, b in zip(results["float32"], results["mixed_float16"]))
    assert moved > 1e-2
    assert differ < 0.05 * moved


def test_a_layer_dtype_argument_works_under_a_float32_global_policy():
    core = rnn.GRU(3)
    layer = rk.RNN(core, dtype="mixed_bfloat16")
    x, _ = data(4)
    assert layer(x).dtype == tf.bfloat16
    assert all(v.dtype == tf.float32 for v in core.variables)


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_stateful_keeps_a_float32_state_and_computes_in_float16(policy):
    core = rnn.LSTM(4)
    layer = rk.RNN(core, stateful=True, return_state=True)
    x, _ = data(5)
    _, state = layer(x)
    assert {v.dtype for v in nestlib.flatten(layer.states)} == {"float32"}
    assert state.hidden.dtype == tf.float16
    np.testing.assert_allclose(layer.states.hidden.numpy(), state.hidden.numpy(), atol=1e-3)
    _, state2 = layer(x)  # starts from the kept state, read back as float16
    assert state2.hidden.dtype == tf.float16
    keras.config.set_dtype_policy("float32")
    _, ref1 = rnn.dynamic_unroll(core, x, core.initial_state(B), time_major=False)
    _, ref2 = rnn.dynamic_unroll(core, x, ref1, time_major=False)
    assert max_difference(state2, ref2) < TOLERANCE["mixed_float16"]


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_save_and_load_under_mixed_precision(policy, tmp_path):
    core = CORES["deep"]()
    model = keras.Sequential(
        [keras.Input((T, F)), rk.RNN(core), keras.layers.Dense(2, dtype="float32")]
    )
    x, _ = data(6)
    path = os.path.join(tmp_path, "mixed.keras")
    model.save(path)
    keras.config.set_dtype_policy("float32")  # the saved policy is the layer's own
    restored = keras.saving.load_model(path)
    layer = restored.layers[0]
    assert layer.dtype_policy.name == "mixed_float16"
    assert all(v.dtype == tf.float32 for v in layer.core.variables)
    np.testing.assert_array_equal(restored(x), model(x))
