"""DeepRNN, skip/residual stacks and ResidualCore against hand-composed steps."""

import numpy as np
import pytest
import tensorflow as tf

import rnn

T, B, I = 4, 2, 3


def _x(rng, *shape):
    return tf.constant(rng.normal(size=shape).astype(np.float32))


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_deep_rnn_composes_layers_and_states(rng):
    lstm, gru = rnn.LSTM(5), rnn.GRU(4, reset_after=True)
    deep = rnn.DeepRNN([lstm, tf.nn.relu, gru])
    state = deep.initial_state(B)
    assert isinstance(state, tuple) and len(state) == 2
    assert isinstance(state[0], rnn.LSTMState) and state[1].shape == (B, 4)
    x = _x(rng, B, I)
    out, next_state = deep(x, state)
    h1, s1 = lstm(x, state[0])
    h2, s2 = gru(tf.nn.relu(h1), state[1])
    _close(out, h2)
    _close(next_state[0].cell, s1.cell)
    _close(next_state[1], s2)
    assert deep.layers == (lstm, tf.nn.relu, gru)
    assert len(deep.trainable_variables) == 6


def test_deep_rnn_initial_state_dtype_and_nesting():
    inner = rnn.DeepRNN([rnn.GRU(2), rnn.LSTM(3)])
    outer = rnn.DeepRNN([inner, rnn.VanillaRNN(2)])
    state = outer.initial_state(B, dtype=tf.float64)
    assert len(state) == 2 and len(state[0]) == 2
    assert all(leaf.dtype == tf.float64 for leaf in tf.nest.flatten(state))
    out, new_state = outer(tf.zeros([B, I], tf.float64), state)
    tf.nest.assert_same_structure(state, new_state)
    assert out.shape == (B, 2)


def test_skip_connections(rng):
    a, b, c = rnn.GRU(3), rnn.LSTM(2), rnn.VanillaRNN(4)
    deep = rnn.deep_rnn_with_skip_connections([a, b, c])
    flat = rnn.deep_rnn_with_skip_connections([a, b, c], concat_final_output=False)
    x = _x(rng, B, I)
    state = deep.initial_state(B)
    out, new_state = deep(x, state)
    out_a, sa = a(x, state[0])
    out_b, sb = b(tf.concat([x, out_a], -1), state[1])
    out_c, sc = c(tf.concat([x, out_b], -1), state[2])
    _close(out, tf.concat([out_a, out_b, out_c], -1))
    _close(new_state[1].hidden, sb.hidden)
    last, _ = flat(x, state)
    _close(last, out_c)
    assert b.kernel.shape[0] == I + 3 and c.kernel.shape[0] == I + 2
    with pytest.raises(ValueError, match="to be instances of RNNCore.*layer 1 is function"):
        rnn.deep_rnn_with_skip_connections([a, tf.tanh])


def test_residual_connections(rng):
    a, b = rnn.LSTM(I), rnn.GRU(I)
    deep = rnn.deep_rnn_with_residual_connections([a, b])
    x = _x(rng, B, I)
    state = deep.initial_state(B)
    out, _ = deep(x, state)
    y1 = x + a(x, state[0])[0]
    y2 = y1 + b(y1, state[1])[0]
    _close(out, y2)
    res = rnn.ResidualCore(b)
    assert res.core is b
    out_r, s_r = res(x, b.initial_state(B))
    _close(out_r, x + b(x, b.initial_state(B))[0])
    with pytest.raises(TypeError, match="RNNCore"):
        rnn.ResidualCore(tf.tanh)


def _manual_unroll(core, x, state, lengths, reverse):
    """Steps ``core`` in plain Python per example, with the documented semantics."""
    xs = x.numpy()
    outs = None
    finals = []
    for b in range(xs.shape[1]):
        st = tf.nest.map_structure(lambda s: s[b : b + 1], state)
        order = list(range(lengths[b]))
        for t in reversed(order) if reverse else order:
            out, st = core(tf.constant(xs[t, b : b + 1]), st)
            if outs is None:
                outs = np.zeros((xs.shape[0], xs.shape[1], out.shape[-1]), np.float32)
            outs[t, b] = out.numpy()[0]
        finals.append(st)
    final = tf.nest.map_structure(lambda *s: tf.concat(s, 0), *finals)
    return outs, final


STACKS = {
    "deep": lambda: rnn.DeepRNN([rnn.LSTM(I), rnn.GRU(4), rnn.LSTM(2)]),
    "skip": lambda: rnn.deep_rnn_with_skip_connections([rnn.LSTM(3), rnn.GRU(2)]),
    "residual": lambda: rnn.deep_rnn_with_residual_connections([rnn.LSTM(I), rnn.LSTM(I)]),
}


@pytest.mark.parametrize("name", STACKS, ids=list(STACKS))
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "stepped"])
def test_layerwise_fast_path_matches_stepping(rng, monkeypatch, name, reverse, fused):
    """Stacks holding LSTMs unroll layer by layer (each LSTM fused, or stepped when
    the fused path is switched off); the result equals stepping the stack."""
    if not fused:
        monkeypatch.setattr(rnn.LSTM, "unroll_fast_path", lambda self, *args: None)
    core = STACKS[name]()
    x = _x(rng, T, B, I)
    lengths = [T, 2]
    state = core.initial_state(B)
    assert core.unroll_fast_path(x, state, tf.constant(lengths), reverse) is not None
    out, final = rnn.dynamic_unroll(core, x, state, sequence_length=lengths, reverse=reverse)
    ref_out, ref_final = _manual_unroll(core, x, state, lengths, reverse)
    _close(out, ref_out)
    for a, b in zip(tf.nest.flatten(final), tf.nest.flatten(ref_final)):
        _close(a, b)


def test_no_layerwise_path_with_plain_callables_or_without_fast_cores():
    x = tf.zeros([T, B, I])
    with_fn = rnn.DeepRNN([rnn.LSTM(2), tf.tanh])
    assert with_fn.unroll_fast_path(x, with_fn.initial_state(B), None, False) is None

    class Stepped(rnn.RNNCore):  # a core without a fast path
        def __call__(self, inputs, prev_state):
            return inputs[:, :2], prev_state

        def initial_state(self, batch_size, dtype=tf.float32):
            return tf.zeros([batch_size, 1], dtype)

    plain = rnn.DeepRNN([Stepped(), Stepped()])
    assert plain.unroll_fast_path(x, plain.initial_state(B), None, False) is None
    tanh = rnn.DeepRNN([rnn.VanillaRNN(2), rnn.VanillaRNN(2)])  # the tanh one has
    assert tanh.unroll_fast_path(x, tanh.initial_state(B), None, False) is not None
    grus = rnn.DeepRNN([rnn.GRU(2), rnn.GRU(2)])  # the GRU has a fast path
    assert grus.unroll_fast_path(x, grus.initial_state(B), None, False) is not None


def test_deep_rnn_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        rnn.DeepRNN([])
    with pytest.raises(TypeError, match="not callable"):
        rnn.DeepRNN([rnn.GRU(2), 3])
    with pytest.raises(TypeError, match="list or tuple"):
        rnn.DeepRNN(rnn.GRU(2))
    deep = rnn.DeepRNN([rnn.GRU(2), rnn.GRU(3)])
    with pytest.raises(ValueError, match="2 cores but prev_state has 1"):
        deep(tf.zeros([B, I]), (tf.zeros([B, 2]),))
    with pytest.raises(TypeError, match="tuple"):
        deep(tf.zeros([B, I]), [tf.zeros([B, 2]), tf.zeros([B, 3])])
