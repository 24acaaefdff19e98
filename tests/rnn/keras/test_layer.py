"""rnn.keras.layer: the RNN layer (training, unroll parity, states, masks, models)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
import rnn.keras as rk
from rnn.dnc import DNCState
from tests.rnn.keras.common import CORES, TOKENS, B, F, T, assert_close, data, small_dnc, time_major

# ------------------------------------------------------------- training


@pytest.mark.parametrize("name", sorted(CORES))
def test_fit_trains_every_core_variable_and_summary_counts_them(name):
    keras.utils.set_random_seed(0)
    core = CORES[name]()
    model = keras.Sequential([keras.Input((T, F)), rk.RNN(core), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.03), "mse")
    lines = []
    model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    core_params = sum(int(np.prod(v.shape)) for v in core.trainable_variables)
    dense_params = model.layers[0].output.shape[-1] * 2 + 2
    assert model.count_params() == core_params + dense_params
    assert any(f"Total params: {core_params + dense_params:,}" in line for line in lines), lines
    before = [v.numpy().copy() for v in core.trainable_variables]
    x, y = data(0, b=16)
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    unchanged = [
        v.name for v, old in zip(core.trainable_variables, before) if np.array_equal(v.numpy(), old)
    ]
    assert not unchanged


# -------------------------------------------------------- unroll parity


@pytest.mark.parametrize("name", ["lstm", "dnc"])
def test_outputs_and_nested_final_state_match_dynamic_unroll(name):
    core = CORES[name]()
    x, _ = data(1)
    layer = rk.RNN(core, return_sequences=True, return_state=True)
    outputs, state = layer(x)
    if name == "dnc":
        assert type(state) is DNCState
        assert type(state.controller_state) is rnn.LSTMState
    ref_out, ref_state = rnn.dynamic_unroll(core, time_major(x), core.initial_state(B))
    assert_close(outputs, time_major(ref_out))
    assert_close(state, ref_state)
    last = rk.RNN(core)(x)
    assert_close(last, ref_out[-1])


def test_initial_state_accepts_the_cores_nest():
    core = rnn.DeepRNN([rnn.LSTM(3), rnn.GRU(2)])
    x, _ = data(2)
    start = nestlib.map_structure(lambda s: tf.random.normal(s.shape), core.initial_state(B))
    layer = rk.RNN(core, return_sequences=True, return_state=True)
    outputs, state = layer(x, initial_state=start)
    assert isinstance(state, tuple) and type(state[0]) is rnn.LSTMState
    ref_out, ref_state = rnn.dynamic_unroll(core, time_major(x), start)
    assert_close(outputs, time_major(ref_out))
    assert_close(state, ref_state)


def test_initial_state_with_the_wrong_structure_names_the_path():
    layer = rk.RNN(rnn.DeepRNN([rnn.LSTM(3), rnn.GRU(2)]))
    x, _ = data(2)
    bad = (rnn.LSTMState(tf.zeros([B, 3]), tf.zeros([B, 3])), (tf.zeros([B, 2]),))
    with pytest.raises((TypeError, ValueError), match=r"initial_state.*\[1\]"):
        layer(x, initial_state=bad)


def test_initial_state_given_as_lists_takes_the_cores_structure():
    # Keras' functional config stores namedtuples and tuples as lists.
    core = rnn.DeepRNN([rnn.LSTM(3), rnn.GRU(2)])
    x, _ = data(2)
    start = nestlib.map_structure(lambda s: tf.random.normal(s.shape), core.initial_state(B))
    layer = rk.RNN(core, return_state=True)
    expected_out, expected_state = layer(x, initial_state=start)
    as_lists = [[start[0].hidden, start[0].cell], start[1]]
    outputs, state = layer(x, initial_state=as_lists)
    assert type(state) is tuple and type(state[0]) is rnn.LSTMState
    assert_close(outputs, expected_out)
    assert_close(state, expected_state)
    for bad in (
        [[start[0].hidden, None], start[1]],  # None where the core has a tensor
        [[start[0].hidden], start[1]],  # a leaf missing
        [{"hidden": start[0].hidden, "cell": start[0].cell}, start[1]],  # a dict for a tuple
    ):
        with pytest.raises((TypeError, ValueError), match="initial_state must have the structure"):
            layer(x, initial_state=bad)


def test_static_unroll_matches_dynamic_and_needs_a_static_length():
    core = rnn.GRU(3)
    x, _ = data(3)
    dynamic = rk.RNN(core, return_sequences=True)(x)
    static = rk.RNN(core, return_sequences=True, unroll="static")(x)
    assert_close(static, dynamic)
    with pytest.raises(ValueError, match="statically known number of time steps"):
        rk.RNN(rnn.GRU(3), unroll="static")(keras.Input((None, F)))


def test_nested_inputs():
    core = small_dnc()
    x, _ = data(4)
    inputs = {"a": x[..., :2], "b": x[..., 2:]}
    outputs = rk.RNN(core, return_sequences=True)(inputs)
    ref, _ = rnn.dynamic_unroll(
        core, nestlib.map_structure(time_major, inputs), core.initial_state(B)
    )
    assert_close(outputs, time_major(ref))


class _TwoOutputs(rnn.RNNCore):
    """A GRU whose output is a nest: ``(h, {"double": 2 h})``."""

    def __init__(self, size):
        super().__init__()
        self.gru = rnn.GRU(size)

    def __call__(self, inputs, prev_state):
        out, state = self.gru(inputs, prev_state)
        return (out, {"double": 2.0 * out}), state

    def initial_state(self, batch_size, dtype=tf.float32):
        return self.gru.initial_state(batch_size, dtype)


def test_nested_outputs_keep_their_structure_and_masks():
    inp = keras.Input((T, F))
    masked = keras.layers.Masking(0.0)(inp)
    layer = rk.RNN(_TwoOutputs(3), return_sequences=True, return_state=True)
    (h, extra), state = layer(masked)
    assert set(extra) == {"double"}
    # Each output sequence carries the mask; the state has none.
    mask = layer.compute_mask(inp, keras.ops.ones((2, T), "bool"))
    assert len(mask) == 3 and mask[0] is mask[1] and mask[2] is None
    model = keras.Model(inp, [h, extra["double"], state])
    x, _ = data(10)
    x[1, 2:] = 0.0
    h_v, double_v, state_v = model(x)
    np.testing.assert_allclose(double_v, 2.0 * h_v, rtol=1e-6)
    assert float(tf.reduce_max(tf.abs(h_v[1, 2:]))) == 0.0
    np.testing.assert_allclose(state_v[1], h_v[1, 1], rtol=1e-6)


# ---------------------------------------------------------------- masks


@pytest.mark.parametrize("go_backwards", [False, True])
def test_masks_match_keras_lstm_with_copied_weights(go_backwards):
    emb = keras.layers.Embedding(10, F, mask_zero=True)
    embedded, mask = emb(TOKENS), emb.compute_mask(TOKENS)
    for return_sequences in (True, False):
        theirs = keras.layers.LSTM(
            4,
            return_sequences=return_sequences,
            return_state=True,
            go_backwards=go_backwards,
            zero_output_for_mask=return_sequences,
        )
        k_out, k_h, k_c = theirs(embedded, mask=mask)
        core = rnn.LSTM(4)
        ours = rk.RNN(
            core, return_sequences=return_sequences, return_state=True, go_backwards=go_backwards
        )
        ours.build(embedded.shape)
        for mine, keras_weight in zip(
            (core.kernel, core.recurrent_kernel, core.bias), theirs.cell.weights
        ):
            mine.assign(keras_weight)
        out, state = ours(embedded, mask=mask)
        assert_close(out, k_out)
        assert_close(state, rnn.LSTMState(k_h, k_c))


def test_keras_masks_become_sequence_lengths():
    x, _ = data(5)
    x[0, 3:] = 0.0
    x[2, 1:] = 0.0
    lengths = np.array([3, T, 1, T])
    core = rnn.GRU(3)
    seq_layer = rk.RNN(core, return_sequences=True, return_state=True)
    model = keras.Sequential([keras.Input((T, F)), keras.layers.Masking(0.0), seq_layer])
    outputs, state = model(x)
    ref_out, ref_state = rnn.dynamic_unroll(
        core, time_major(x), core.initial_state(B), sequence_length=lengths
    )
    assert_close(outputs, time_major(ref_out))
    assert_close(state, ref_state)
    assert float(tf.reduce_max(tf.abs(outputs[0, 3:]))) == 0.0
    # The output sequence carries the mask on to the next layer.
    mask = seq_layer.compute_mask(x, keras.layers.Masking(0.0).compute_mask(x))
    np.testing.assert_array_equal(mask[0], np.arange(T) < lengths[:, None])
    # Without return_sequences, each example's output at its last valid step.
    last = keras.Sequential([keras.Input((T, F)), keras.layers.Masking(0.0), rk.RNN(core)])(x)
    assert_close(last, ref_state)


def test_left_padded_masks_raise_eagerly_and_in_graphs():
    layer = rk.RNN(rnn.LSTM(3))
    x = np.ones((2, 4, F), "float32")
    bad = np.array([[False, True, True, True], [True, True, False, False]])
    with pytest.raises(ValueError, match=r"right-padded.*example 0 has mask \[0, 1, 1, 1\]"):
        layer(x, mask=bad)
    good = np.array([[True, True, True, False], [True, False, False, False]])
    layer(x, mask=good)
    graph_call = tf.function(lambda x, m: layer(x, mask=m))
    with pytest.raises(tf.errors.InvalidArgumentError, match="right-padded"):
        graph_call(x, bad)


# --------------------------------------------------------------- models


def test_functional_model_with_states_between_layers():
    inp = keras.Input((None, F))
    _, state = rk.RNN(rnn.LSTM(4), return_state=True)(inp)
    assert type(state) is rnn.LSTMState
    out = rk.RNN(rnn.LSTM(4))(inp, initial_state=state)
    model = keras.Model(inp, [out, state.cell])
    x, _ = data(6)
    out_v, cell_v = model(x)
    assert out_v.shape == (B, 4) and cell_v.shape == (B, 4)


def test_bidirectional_matches_keras_gru_with_masks():
    inp = keras.Input((T,), dtype="int32")
    embedded = keras.layers.Embedding(10, F, mask_zero=True)(inp)
    ours = keras.layers.Bidirectional(rk.RNN(rnn.GRU(4, reset_after=True), return_sequences=True))
    theirs = keras.layers.Bidirectional(
        keras.layers.GRU(4, return_sequences=True, zero_output_for_mask=True)
    )
    model = keras.Model(inp, [ours(embedded), theirs(embedded)])
    for mine, other in (
        (ours.forward_layer, theirs.forward_layer),
        (ours.backward_layer, theirs.backward_layer),
    ):
        for v, w in zip(
            (mine.core.kernel, mine.core.recurrent_kernel, mine.core.bias), other.cell.weights
        ):
            v.assign(w)
    a, b = model(TOKENS)
    assert a.shape == (4, T, 8)
    assert_close(a, b)


def test_jit_compile_fit_with_masks():
    keras.utils.set_random_seed(1)
    lstm, deep = rnn.LSTM(4), rnn.DeepRNN([rnn.GRU(3), rnn.VanillaRNN(3)])
    model = keras.Sequential(
        [
            keras.Input((T,), dtype="int32"),
            keras.layers.Embedding(10, F, mask_zero=True),
            rk.RNN(lstm, return_sequences=True),
            rk.RNN(deep, go_backwards=True),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.03), "mse", jit_compile=True)
    tokens = np.random.default_rng(0).integers(1, 10, size=(16, T))
    for i, n in enumerate([2, 5, 3, 1] * 4):
        tokens[i, n:] = 0
    y = (tokens > 4).sum(1, keepdims=True).astype("float32")
    variables = lstm.trainable_variables + deep.trainable_variables
    before = [v.numpy().copy() for v in variables]
    losses = model.fit(tokens, y, batch_size=8, epochs=5, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert all(not np.array_equal(v.numpy(), b) for v, b in zip(variables, before))


def test_jit_compile_fit_dnc():
    keras.utils.set_random_seed(4)
    dnc = small_dnc(controller=rnn.GRU(5))
    model = keras.Sequential([keras.Input((T, F)), rk.RNN(dnc), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(0.03), "mse", jit_compile=True)
    before = [v.numpy().copy() for v in dnc.trainable_variables]
    x, y = data(11, b=16)
    losses = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert all(not np.array_equal(v.numpy(), b) for v, b in zip(dnc.trainable_variables, before))


def test_mirrored_strategy_trains_every_variable(two_cpus):
    # ReductionToOneDevice: a second MirroredStrategy in one process (other
    # test modules make their own) must not share collective instance keys.
    strategy = tf.distribute.MirroredStrategy(
        two_cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    keras.utils.set_random_seed(2)
    with strategy.scope():
        deep, lstm = rnn.DeepRNN([rnn.GRU(3), rnn.LSTM(3)]), rnn.LSTM(3)
        model = keras.Sequential(
            [
                keras.Input((T, F)),
                rk.RNN(deep, return_sequences=True),
                rk.RNN(lstm),
                keras.layers.Dense(2),
            ]
        )
        model.compile(keras.optimizers.Adam(0.03), "mse")
    variables = deep.trainable_variables + lstm.trainable_variables
    assert all(isinstance(v, tf.distribute.DistributedValues) for v in variables)
    before = [v.numpy().copy() for v in variables]
    x, y = data(7, b=16)
    losses = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert all(not np.array_equal(v.numpy(), b) for v, b in zip(variables, before))


# --------------------------------------------------------------- errors


def test_bad_layer_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="needs a core"):
        rk.RNN(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="'dynamic' or 'static'"):
        rk.RNN(rnn.GRU(2), unroll="fast")
    with pytest.raises(TypeError, match="return_sequences must be a bool"):
        rk.RNN(rnn.GRU(2), return_sequences=1)
    with pytest.raises(ValueError, match=r"batch, time, features"):
        rk.RNN(rnn.GRU(2))(np.zeros((2, 3), "float32"))
