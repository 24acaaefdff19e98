"""rnn.keras.RNN: our cores as Keras 3 layers (training, masks, states, saving)."""

import doctest
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
import rnn.keras as rk
from rnn.dnc import DNC, DNCState

B, T, F = 4, 5, 3


def small_dnc(controller=None):
    return DNC(
        3,
        controller=rnn.LSTM(6) if controller is None else controller,
        memory_size=4,
        word_size=3,
        num_reads=2,
    )


CORES = {
    "lstm": lambda: rnn.LSTM(4),
    "gru": lambda: rnn.GRU(4, reset_after=True),
    "deep": lambda: rnn.DeepRNN([rnn.LSTM(4), tf.nn.relu, rnn.GRU(3)]),
    "dnc": small_dnc,
}


def data(seed=0, b=B, t=T, f=F):
    r = np.random.default_rng(seed)
    x = r.normal(size=(b, t, f)).astype("float32")
    # A target the model can fit: a running mean of the first feature.
    y = np.stack([x[:, :, 0].mean(1), x[:, :, 1].sum(1) / t], 1).astype("float32")
    return x, y


def numpy_of(structure):
    return nestlib.map_structure(lambda v: np.asarray(v), structure)


def assert_close(a, b, tol=1e-5):
    nestlib.assert_same_structure(a, b)
    for u, v in zip(nestlib.flatten(a), nestlib.flatten(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def time_major(x):
    return tf.transpose(x, [1, 0, 2])


# ---------------------------------------------------------------- weights


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


# ------------------------------------------------------------ unroll parity


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


# ------------------------------------------------------------------ masks

TOKENS = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]])


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


# ----------------------------------------------------------------- models


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


# ----------------------------------------------------------------- saving


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


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="needs a core"):
        rk.RNN(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="'dynamic' or 'static'"):
        rk.RNN(rnn.GRU(2), unroll="fast")
    with pytest.raises(TypeError, match="return_sequences must be a bool"):
        rk.RNN(rnn.GRU(2), return_sequences=1)
    with pytest.raises(ValueError, match=r"batch, time, features"):
        rk.RNN(rnn.GRU(2))(np.zeros((2, 3), "float32"))
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


def test_importing_rnn_does_not_import_rnn_keras():
    code = "import sys, rnn; assert 'rnn.keras' not in sys.modules, 'imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_module_docstring_examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(rk, "rnn.keras") if t.examples]
    names = {t.name for t in tests}
    for public in rk.__all__:
        assert f"rnn.keras.{public}" in names, f"{public} has no example"
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
