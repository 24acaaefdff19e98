"""Cores step by step against NumPy references, Keras parity, errors."""

import numpy as np
import pytest
import tensorflow as tf

import rnn
from tests.rnn import numpy_ref as ref

B, I, H = 3, 4, 5


def _randomize(core, rng, scale=0.5):
    """Replaces every variable with random values so no term hides as zero/one."""
    for v in core.variables:
        v.assign(rng.normal(scale=scale, size=v.shape).astype(v.dtype.as_numpy_dtype))


def _np(x):
    return x.numpy().astype(np.float64)


def _steps(rng, n=3):
    return [rng.normal(size=(B, I)) for _ in range(n)]


def test_vanilla_matches_numpy(rng):
    core = rnn.VanillaRNN(H)
    xs = _steps(rng)
    state = core.initial_state(B, dtype=tf.float64)
    core(tf.constant(xs[0]), state)  # build
    _randomize(core, rng)
    h_ref = np.zeros((B, H))
    for x in xs:
        out, state = core(tf.constant(x), state)
        out_ref, h_ref = ref.vanilla_step(
            x, h_ref, _np(core.kernel), _np(core.recurrent_kernel), _np(core.bias)
        )
        np.testing.assert_allclose(out.numpy(), out_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state.numpy(), h_ref, rtol=1e-10, atol=1e-12)


def test_vanilla_custom_activation(rng):
    core = rnn.VanillaRNN(H, activation=tf.nn.relu)
    x = rng.normal(size=(B, I)).astype(np.float32)
    h = rng.normal(size=(B, H)).astype(np.float32)
    out, _ = core(tf.constant(x), tf.constant(h))
    expected, _ = ref.vanilla_step(
        x,
        h,
        core.kernel.numpy(),
        core.recurrent_kernel.numpy(),
        core.bias.numpy(),
        activation=lambda z: np.maximum(z, 0),
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (out.numpy() >= 0).all()


LSTM_CONFIGS = {
    "plain": {},
    "projection": {"projection_size": 2},
    "layer_norm": {"use_layer_norm": True},
    "cell_clip": {"cell_clip": 0.3},
    "all": {"projection_size": 3, "use_layer_norm": True, "cell_clip": 0.5},
}


@pytest.mark.parametrize("config", LSTM_CONFIGS, ids=list(LSTM_CONFIGS))
def test_lstm_matches_numpy(rng, config):
    kwargs = LSTM_CONFIGS[config]
    core = rnn.LSTM(H, **kwargs)
    xs = _steps(rng)
    state = core.initial_state(B, dtype=tf.float64)
    core(tf.constant(xs[0]), state)
    _randomize(core, rng, scale=1.0)
    proj = _np(core.projection) if core.projection is not None else None
    ln = tuple(_np(v) for v in core.layer_norm) if core.layer_norm else None
    h_ref = np.zeros((B, core.output_size))
    c_ref = np.zeros((B, H))
    clipped = False
    for x in xs:
        out, state = core(tf.constant(x), state)
        assert isinstance(state, rnn.LSTMState)
        out_ref, (h_ref, c_ref) = ref.lstm_step(
            x,
            h_ref,
            c_ref,
            _np(core.kernel),
            _np(core.recurrent_kernel),
            _np(core.bias),
            projection=proj,
            layer_norm_params=ln,
            cell_clip=kwargs.get("cell_clip"),
        )
        np.testing.assert_allclose(out.numpy(), out_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state.hidden.numpy(), h_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state.cell.numpy(), c_ref, rtol=1e-9, atol=1e-12)
        if "cell_clip" in kwargs:
            clipped |= bool(np.isclose(np.abs(c_ref), kwargs["cell_clip"]).any())
    assert out.shape == (B, core.output_size)
    if "cell_clip" in kwargs:
        assert clipped, "the clip never engaged; the test would not see a missing clip"


def test_lstm_variable_layout_and_forget_bias():
    core = rnn.LSTM(H, forget_bias=2.5)
    core(tf.zeros([B, I]), core.initial_state(B))
    assert core.kernel.shape == (I, 4 * H)
    assert core.recurrent_kernel.shape == (H, 4 * H)
    assert core.bias.shape == (4 * H,)
    bias = core.bias.numpy()
    np.testing.assert_array_equal(bias[H : 2 * H], 2.5)
    np.testing.assert_array_equal(np.delete(bias, np.s_[H : 2 * H]), 0.0)
    assert len(core.trainable_variables) == 3
    proj = rnn.LSTM(H, projection_size=2)
    out, state = proj(tf.zeros([B, I]), proj.initial_state(B))
    assert proj.recurrent_kernel.shape == (2, 4 * H)
    assert out.shape == (B, 2) and state.hidden.shape == (B, 2) and state.cell.shape == (B, H)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_matches_numpy(rng, reset_after):
    core = rnn.GRU(H, reset_after=reset_after)
    xs = _steps(rng)
    state = core.initial_state(B, dtype=tf.float64)
    core(tf.constant(xs[0]), state)
    _randomize(core, rng, scale=1.0)
    assert core.bias.shape == ((2, 3 * H) if reset_after else (3 * H,))
    h_ref = np.zeros((B, H))
    for x in xs:
        out, state = core(tf.constant(x), state)
        out_ref, h_ref = ref.gru_step(
            x, h_ref, _np(core.kernel), _np(core.recurrent_kernel), _np(core.bias), reset_after
        )
        np.testing.assert_allclose(out.numpy(), out_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state.numpy(), h_ref, rtol=1e-9, atol=1e-12)


def test_gru_variants_differ(rng):
    """reset_after changes the maths (so the parity tests below can tell them apart)."""
    x = rng.normal(size=(B, I))
    h = rng.normal(size=(B, H))
    k = rng.normal(size=(I, 3 * H))
    u = rng.normal(size=(H, 3 * H))
    before, _ = ref.gru_step(x, h, k, u, np.zeros(3 * H), reset_after=False)
    after, _ = ref.gru_step(x, h, k, u, np.zeros((2, 3 * H)), reset_after=True)
    assert np.abs(before - after).max() > 1e-3


def _keras():
    return pytest.importorskip("keras")


def test_keras_lstm_weight_copy_parity(rng):
    keras = _keras()
    T = 4
    x = rng.normal(size=(B, T, I)).astype(np.float32)
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    layer(x)  # build
    kernel, recurrent, bias = layer.get_weights()
    bias = bias + rng.normal(scale=0.3, size=bias.shape).astype(np.float32)
    layer.set_weights([kernel, recurrent, bias])
    seq_ref, h_ref, c_ref = (t.numpy() if hasattr(t, "numpy") else np.asarray(t) for t in layer(x))

    core = rnn.LSTM(H)
    core(tf.zeros([B, I]), core.initial_state(B))
    core.kernel.assign(kernel)
    core.recurrent_kernel.assign(recurrent)
    core.bias.assign(bias)
    for unroll in (rnn.dynamic_unroll, rnn.static_unroll):
        seq, state = unroll(core, tf.constant(x), core.initial_state(B), time_major=False)
        np.testing.assert_allclose(seq.numpy(), seq_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state.hidden.numpy(), h_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state.cell.numpy(), c_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_weight_copy_parity(rng, reset_after):
    keras = _keras()
    T = 4
    x = rng.normal(size=(B, T, I)).astype(np.float32)
    layer = keras.layers.GRU(H, return_sequences=True, return_state=True, reset_after=reset_after)
    layer(x)
    kernel, recurrent, bias = layer.get_weights()
    bias = rng.normal(scale=0.5, size=bias.shape).astype(np.float32)
    layer.set_weights([kernel, recurrent, bias])
    seq_ref, h_ref = (np.asarray(t) for t in layer(x))

    core = rnn.GRU(H, reset_after=reset_after)
    core(tf.zeros([B, I]), core.initial_state(B))
    for v, w in zip((core.kernel, core.recurrent_kernel, core.bias), (kernel, recurrent, bias)):
        assert v.shape == w.shape
        v.assign(w)
    seq, state = rnn.dynamic_unroll(core, tf.constant(x), core.initial_state(B), time_major=False)
    np.testing.assert_allclose(seq.numpy(), seq_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.numpy(), h_ref, rtol=1e-5, atol=1e-5)


def test_recurrent_dropout_masks_hidden_state(rng):
    train, test = rnn.lstm_with_recurrent_dropout(H, dropout=0.4, seed=3)
    assert isinstance(test, rnn.LSTM)
    xs = _steps(rng)
    state = train.initial_state(B, dtype=tf.float64)
    lstm_state, masks = state
    assert masks.cell is None
    mask = masks.hidden.numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0 / 0.6}
    assert (mask == 0).any() and (mask > 0).any()
    train(tf.constant(xs[0]), state)
    _randomize(test, rng)
    h_ref, c_ref = np.zeros((B, H)), np.zeros((B, H))
    for x in xs:
        out, state = train(tf.constant(x), state)
        np.testing.assert_array_equal(state[1].hidden.numpy(), mask)  # fixed per sequence
        assert state[1].cell is None
        out_ref, (h_ref, c_ref) = ref.lstm_step(
            x, h_ref * mask, c_ref, _np(test.kernel), _np(test.recurrent_kernel), _np(test.bias)
        )
        np.testing.assert_allclose(out.numpy(), out_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(state[0].cell.numpy(), c_ref, rtol=1e-9, atol=1e-12)
    # The test core is the undropped LSTM with the same variables.
    t_out, _ = test(tf.constant(xs[0]), test.initial_state(B, tf.float64))
    np.testing.assert_allclose(
        t_out.numpy(),
        ref.lstm_step(
            xs[0],
            np.zeros((B, H)),
            np.zeros((B, H)),
            _np(test.kernel),
            _np(test.recurrent_kernel),
            _np(test.bias),
        )[0],
        rtol=1e-9,
    )
    assert {id(v) for v in train.trainable_variables} == {id(v) for v in test.trainable_variables}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_recurrent_dropout_rate_checked(bad):
    with pytest.raises(ValueError, match="dropout"):
        rnn.lstm_with_recurrent_dropout(H, dropout=bad)


@pytest.mark.parametrize(
    "make",
    [lambda: rnn.VanillaRNN(H), lambda: rnn.LSTM(H), lambda: rnn.GRU(H)],
    ids=["vanilla", "lstm", "gru"],
)
def test_core_errors(make):
    core = make()
    state = core.initial_state(B)
    with pytest.raises(ValueError, match="rank 2"):
        core(tf.zeros([B, 2, I]), state)
    with pytest.raises(TypeError, match="single"):
        core((tf.zeros([B, I]),), state)
    core(tf.zeros([B, I]), state)
    with pytest.raises(TypeError, match="float64.*float32|float32.*float64"):
        core(tf.zeros([B, I], tf.float64), core.initial_state(B, tf.float64))
    with pytest.raises(TypeError, match="dtype float64"):
        core(tf.zeros([B, I]), core.initial_state(B, tf.float64))
    with pytest.raises(ValueError, match=f"built for inputs with {I} features"):
        core(tf.zeros([B, I + 1]), state)
    with pytest.raises(TypeError, match="floating"):
        core.initial_state(B, tf.int32)


def test_core_state_errors():
    lstm, gru = rnn.LSTM(H), rnn.GRU(H)
    with pytest.raises(TypeError, match="LSTMState"):
        lstm(tf.zeros([B, I]), gru.initial_state(B))
    with pytest.raises(ValueError, match=r"prev_state.cell must have shape \[batch, 5\]"):
        lstm(tf.zeros([B, I]), rnn.LSTMState(tf.zeros([B, H]), tf.zeros([B, H + 1])))
    with pytest.raises(ValueError, match="shape"):
        gru(tf.zeros([B, I]), tf.zeros([B, H + 2]))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="hidden_size"):
            rnn.LSTM(bad)
    with pytest.raises(ValueError, match="cell_clip"):
        rnn.LSTM(H, cell_clip=0.0)
    with pytest.raises(TypeError, match="activation"):
        rnn.VanillaRNN(H, activation="tanh")


def test_lstm_fast_path_only_for_plain_lstm():
    x = tf.zeros([3, B, I])
    for kwargs in ({"projection_size": 2}, {"use_layer_norm": True}, {"cell_clip": 1.0}):
        core = rnn.LSTM(H, **kwargs)
        assert core.unroll_fast_path(x, core.initial_state(B), None, False) is None
    core = rnn.LSTM(H)
    # Nested inputs never take the fast path.
    assert core.unroll_fast_path((x,), core.initial_state(B), None, False) is None


def test_trainable_state_for_core_and_mask(rng):
    core = rnn.LSTM(H)
    ts = rnn.TrainableState.for_core(core, mask=rnn.LSTMState(hidden=True, cell=False))
    assert len(ts.trainable_variables) == 1 and len(ts.variables) == 2
    state = ts(B)
    assert isinstance(state, rnn.LSTMState)
    assert state.hidden.shape == (B, H) and state.cell.shape == (B, H)
    ts.variables[0].assign(rng.normal(size=(H,)).astype(np.float32))
    x = tf.constant(rng.normal(size=(4, B, I)).astype(np.float32))
    with tf.GradientTape() as tape:
        out, _ = rnn.dynamic_unroll(core, x, ts(B))
        loss = tf.reduce_sum(out)
    grads = tape.gradient(loss, ts.trainable_variables + core.trainable_variables)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
    # Every example starts from the same learned values.
    tiled = ts(B).hidden.numpy()
    np.testing.assert_array_equal(tiled, np.broadcast_to(tiled[0], tiled.shape))


def test_trainable_state_nested_with_none_and_dynamic_batch():
    ts = rnn.TrainableState({"a": tf.ones([2]), "b": (None, tf.zeros([3, 2]))})
    out = tf.function(lambda n: ts(n))(tf.constant(4))
    assert out["b"][0] is None
    assert out["a"].shape == (4, 2) and out["b"][1].shape == (4, 3, 2)
    with pytest.raises(ValueError, match="batch_size"):
        ts(0)
    with pytest.raises(TypeError, match="bool"):
        rnn.TrainableState({"a": tf.ones([2])}, mask={"a": 1})
    with pytest.raises((ValueError, TypeError), match=r"\['b'\]|b"):
        rnn.TrainableState({"a": tf.ones([2])}, mask={"b": True})
