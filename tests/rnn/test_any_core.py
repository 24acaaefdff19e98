"""Any core anywhere: Sonnet 2 cores inside rnn's stacks, unrollers and Keras layer,
and rnn's cores inside Sonnet's combinators (issue 16, part 5)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import rnn
import rnn.keras
from rnn.base import call_initial_state, is_core

snt = pytest.importorskip("sonnet")

T, B, I = 5, 2, 3


def _x(rng, *shape):
    return tf.constant(rng.normal(size=shape).astype(np.float32))


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def _close_nest(a, b):
    tf.nest.map_structure(_close, a, b)


def _step_by_hand(core, xs, state):
    """Python loop over time, calling the core one step at a time."""
    outputs = []
    for t in range(xs.shape[0]):
        out, state = core(xs[t], state)
        outputs.append(out)
    return tf.stack(outputs), state


class Foreign:
    """A core that is not an RNNCore and whose initial_state takes no dtype."""

    def __init__(self, size):
        self.size = size

    def __call__(self, inputs, prev_state):
        next_state = prev_state + tf.reduce_sum(inputs, axis=-1, keepdims=True)
        return tf.tanh(next_state) * tf.ones([1, self.size]), next_state

    def initial_state(self, batch_size):
        return tf.zeros([batch_size, 1])


# ---------------------------------------------------------------- the rule


def test_is_core_rule():
    assert is_core(rnn.LSTM(2)) and is_core(snt.LSTM(2)) and is_core(Foreign(2))
    assert not is_core(tf.tanh) and not is_core(rnn.Linear(2)) and not is_core(snt.Linear(2))
    assert not is_core(rnn.LSTM) and not is_core(snt.GRU)  # classes are not cores
    assert not is_core(3)


def test_call_initial_state_passes_dtype_only_where_accepted():
    assert call_initial_state(rnn.GRU(2), 1, tf.float64).dtype == tf.float64
    # Sonnet: initial_state(batch_size) with no dtype; its own dtype is kept.
    state = call_initial_state(snt.LSTM(2), 3, tf.float64)
    assert state.hidden.dtype == tf.float32 and state.hidden.shape == (3, 2)
    # **kwargs alone is not a dtype parameter (snt.DeepRNN forwards them to snt cores).
    deep = snt.DeepRNN([snt.GRU(2)])
    assert call_initial_state(deep, 1, tf.float64)[0].dtype == tf.float32
    with pytest.raises(TypeError, match="initial_state method"):
        call_initial_state(tf.tanh, 1)


# ------------------------------------------------------- Sonnet cores in rnn


def test_deep_rnn_with_sonnet_lstm_and_dnc(rng):
    lstm = snt.LSTM(5)
    dnc = rnn.DNC(3, memory_size=4, word_size=2, num_reads=1)
    deep = rnn.DeepRNN([lstm, tf.nn.relu, dnc])
    x = _x(rng, B, I)
    state = deep.initial_state(B)
    assert len(state) == 2 and type(state[0]).__name__ == "LSTMState"
    out, next_state = deep(x, state)
    h1, s1 = lstm(x, state[0])
    h2, s2 = dnc(tf.nn.relu(h1), state[1])
    _close(out, h2)
    _close_nest(next_state, (s1, s2))
    # The Sonnet core's variables are the stack's.
    assert {id(v) for v in lstm.variables} <= {id(v) for v in deep.variables}


@pytest.mark.parametrize("unroll", [rnn.dynamic_unroll, rnn.static_unroll])
def test_unrollers_step_stacks_with_sonnet_cores(rng, unroll):
    lstm, gru, ours = snt.LSTM(4), snt.GRU(3), rnn.LSTM(2)
    deep = rnn.DeepRNN([lstm, ours, gru])
    xs = _x(rng, T, B, I)
    state = deep.initial_state(B)
    # The layer-by-layer fast path applies only when every layer is ours.
    assert deep.unroll_fast_path(xs, state, None, False) is None
    outputs, final = unroll(deep, xs, state)
    expected, expected_final = _step_by_hand(deep, xs, state)
    _close(outputs, expected)
    _close_nest(final, expected_final)
    # A Sonnet core alone, with lengths.
    gru = snt.GRU(3)
    lengths = tf.constant([T, 2])
    outputs, final = unroll(gru, xs, gru.initial_state(B), sequence_length=lengths)
    by_hand, _ = _step_by_hand(gru, xs[:2, 1:], gru.initial_state(1))
    _close(outputs[:2, 1], by_hand[:, 0])
    _close(outputs[2:, 1], tf.zeros([T - 2, 3]))


def test_skip_and_residual_stacks_with_sonnet_cores(rng):
    a, b = snt.LSTM(3), snt.GRU(2)
    skip = rnn.deep_rnn_with_skip_connections([a, b])
    x = _x(rng, B, I)
    state = skip.initial_state(B)
    out, new_state = skip(x, state)
    out_a, sa = a(x, state[0])
    out_b, sb = b(tf.concat([x, out_a], -1), state[1])
    _close(out, tf.concat([out_a, out_b], -1))
    _close_nest(new_state, (sa, sb))

    c, d = snt.GRU(I), rnn.GRU(I)
    residual = rnn.deep_rnn_with_residual_connections([c, d])
    state = residual.initial_state(B)
    out, _ = residual(x, state)
    y1 = x + c(x, state[0])[0]
    _close(out, y1 + d(y1, state[1])[0])

    core = rnn.ResidualCore(c)
    xs = _x(rng, T, B, I)
    assert core.unroll_fast_path(xs, core.initial_state(B), None, False) is None
    outputs, _ = rnn.dynamic_unroll(core, xs, core.initial_state(B))
    expected, _ = _step_by_hand(c, xs, c.initial_state(B))
    _close(outputs, xs + expected)


def test_stacks_take_foreign_cores_without_dtype():
    deep = rnn.DeepRNN([Foreign(2), rnn.GRU(2)])
    state = deep.initial_state(B, dtype=tf.float64)
    assert state[0].dtype == tf.float32 and state[1].dtype == tf.float64
    state = deep.initial_state(B)
    out, _ = deep(tf.ones([B, I]), state)
    assert out.shape == (B, 2)
    state = rnn.TrainableState.for_core(snt.LSTM(3))(B)
    assert state.cell.shape == (B, 3)


def test_dnc_with_sonnet_controller(rng):
    controller = snt.LSTM(6)
    dnc = rnn.DNC(2, controller=controller, memory_size=4, word_size=3, num_reads=1)
    xs = _x(rng, T, B, I)
    outputs, final = rnn.dynamic_unroll(dnc, xs, dnc.initial_state(B))
    expected, expected_final = _step_by_hand(dnc, xs, dnc.initial_state(B))
    _close(outputs, expected)
    _close_nest(final, expected_final)
    assert {id(v) for v in controller.variables} <= {id(v) for v in dnc.variables}


def test_non_cores_in_skip_and_residual_stacks_are_value_errors():
    # As Sonnet's deep_rnn_with_skip_connections / _with_residual_connections.
    with pytest.raises(ValueError, match="layer 0 is function"):
        rnn.deep_rnn_with_skip_connections([tf.tanh])
    with pytest.raises(ValueError, match="layer 1 is int"):
        rnn.deep_rnn_with_skip_connections([rnn.GRU(2), 3])
    with pytest.raises(ValueError, match="layer 1 is Linear"):
        rnn.deep_rnn_with_residual_connections([snt.GRU(2), rnn.Linear(2)])
    with pytest.raises(TypeError, match="list or tuple"):
        rnn.DeepRNN(snt.LSTM(2))
    with pytest.raises(TypeError, match="ResidualCore wraps an RNNCore or another core"):
        rnn.ResidualCore(tf.tanh)


def test_keras_layer_with_sonnet_cores(rng):
    x = rng.normal(size=(B, T, I)).astype(np.float32)
    lstm = snt.LSTM(4)
    layer = rnn.keras.RNN(lstm, return_sequences=True, return_state=True)
    outputs, final = layer(x)
    expected, expected_final = _step_by_hand(
        lstm, tf.transpose(x, [1, 0, 2]), lstm.initial_state(B)
    )
    _close(outputs, tf.transpose(expected, [1, 0, 2]))
    _close_nest(final, expected_final)
    assert len(layer.trainable_weights) == len(lstm.trainable_variables) == 3

    gru = snt.GRU(3)
    deep = rnn.DeepRNN([gru, rnn.LSTM(2)])
    layer = rnn.keras.RNN(deep)
    last = layer(x)
    expected, _ = _step_by_hand(deep, tf.transpose(x, [1, 0, 2]), deep.initial_state(B))
    _close(last, expected[-1])
    assert len(layer.trainable_weights) == 6


def test_keras_layer_with_sonnet_core_trains(rng):
    import keras

    x = rng.normal(size=(8, T, I)).astype(np.float32)
    y = rng.normal(size=(8, 2)).astype(np.float32)
    model = keras.Sequential([keras.Input((T, I)), rnn.keras.RNN(snt.GRU(2))])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


# ------------------------------------------------------- rnn cores in Sonnet


def test_our_cores_are_sonnet_cores():
    for core in (rnn.LSTM(2), rnn.GRU(2), rnn.VanillaRNN(2), rnn.DeepRNN([rnn.GRU(2)])):
        assert isinstance(core, snt.RNNCore)
    assert isinstance(rnn.DNC(2, memory_size=2, word_size=2, num_reads=1), snt.RNNCore)
    assert not isinstance(rnn.Linear(2), snt.RNNCore)


def test_sonnet_deep_rnn_with_our_cores(rng):
    ours, theirs = rnn.LSTM(5), snt.GRU(4)
    deep = snt.DeepRNN([ours, tf.nn.relu, theirs])
    state = deep.initial_state(B)
    assert len(state) == 2 and isinstance(state[0], rnn.LSTMState)
    x = _x(rng, B, I)
    out, next_state = deep(x, state)
    h1, s1 = ours(x, state[0])
    h2, s2 = theirs(tf.nn.relu(h1), state[1])
    _close(out, h2)
    _close_nest(next_state, (s1, s2))

    skip = snt.deep_rnn_with_skip_connections([rnn.GRU(2), rnn.LSTM(3)])
    out, _ = skip(x, skip.initial_state(B))
    assert out.shape == (B, 5)
    residual = snt.deep_rnn_with_residual_connections([rnn.GRU(I)])
    out, _ = residual(x, residual.initial_state(B))
    assert out.shape == (B, I)


def test_sonnet_dynamic_unroll_with_our_cores(rng):
    deep = snt.DeepRNN([rnn.LSTM(4), snt.GRU(3), rnn.GRU(2)])
    xs = _x(rng, T, B, I)
    lengths = tf.constant([T, 3])
    outputs, final = snt.dynamic_unroll(deep, xs, deep.initial_state(B), sequence_length=lengths)
    expected, expected_final = _step_by_hand(deep, xs, deep.initial_state(B))
    _close(outputs[:, 0], expected[:, 0])
    _close(outputs[:3, 1], expected[:3, 1])
    _close_nest(
        tf.nest.map_structure(lambda s: s[0], final),
        tf.nest.map_structure(lambda s: s[0], expected_final),
    )


# ------------------------------------------------- import order (subprocesses)


def _run(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_rnn_does_not_import_sonnet_and_a_later_sonnet_import_registers():
    out = _run(
        """
        import sys
        import rnn
        assert not any(m == "sonnet" or m.startswith("sonnet.") for m in sys.modules)
        import sonnet as snt
        assert isinstance(rnn.LSTM(2), snt.RNNCore)
        recurrent = sys.modules["sonnet.src.recurrent"]
        # The module keeps its own loader; the hook is gone once it has run.
        assert type(recurrent.__loader__).__name__ == "SourceFileLoader", recurrent.__loader__
        assert recurrent.__spec__.loader is recurrent.__loader__
        assert not any(type(f).__name__ == "_SonnetImportHook" for f in sys.meta_path)
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_sonnet_imported_first_registers_at_rnn_import():
    out = _run(
        """
        import sys
        import sonnet as snt
        import rnn
        assert isinstance(rnn.GRU(2), snt.RNNCore)
        assert not any(type(f).__name__ == "_SonnetImportHook" for f in sys.meta_path)
        print("ok")
        """
    )
    assert out.strip() == "ok"
