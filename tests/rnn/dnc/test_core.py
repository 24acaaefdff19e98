"""rnn.dnc.DNC: state structure, wiring, execution modes, gradients, controllers."""

import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
from rnn.dnc import DNC, AccessState, DNCState, TemporalLinkageState
from rnn.dnc import access as access_lib

T, B, F, OUT = 4, 3, 5, 2
SIZES = dict(memory_size=6, word_size=4, num_reads=2, num_writes=2)


def small_dnc(controller=None, **kwargs):
    args = dict(SIZES)
    args.update(kwargs)
    return DNC(OUT, controller=rnn.LSTM(8) if controller is None else controller, **args)


def inputs(seed=0, t=T, b=B):
    return tf.constant(np.random.default_rng(seed).normal(size=[t, b, F]), tf.float32)


def assert_close(a, b, tol=1e-5):
    for x, y in zip(nestlib.flatten(a), nestlib.flatten(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def test_state_structure_and_shapes():
    dnc = small_dnc()
    state = dnc.initial_state(B)
    assert type(state) is DNCState
    assert state._fields == ("access_output", "access_state", "controller_state")
    assert type(state.access_state) is AccessState
    assert state.access_state._fields == (
        "memory",
        "read_weights",
        "write_weights",
        "linkage",
        "usage",
    )
    assert type(state.access_state.linkage) is TemporalLinkageState
    assert state.access_state.linkage._fields == ("link", "precedence_weights")
    assert type(state.controller_state) is rnn.LSTMState
    n, w, r, h = 6, 4, 2, 2
    expected = DNCState(
        access_output=[B, r, w],
        access_state=AccessState(
            memory=[B, n, w],
            read_weights=[B, r, n],
            write_weights=[B, h, n],
            linkage=TemporalLinkageState(link=[B, h, n, n], precedence_weights=[B, h, n]),
            usage=[B, n],
        ),
        controller_state=rnn.LSTMState(hidden=[B, 8], cell=[B, 8]),
    )
    shapes = nestlib.map_structure(lambda x: x.shape.as_list(), state)
    assert shapes == nestlib.map_structure(lambda x: x, expected)
    output, next_state = dnc(inputs()[0], state)
    assert output.shape == (B, OUT)
    nestlib.assert_same_structure(next_state, state)
    assert nestlib.map_structure(lambda x: x.shape.as_list(), next_state) == shapes


def test_default_controller_is_lstm_64_and_defaults_match_the_issue():
    dnc = DNC(3)
    assert isinstance(dnc.controller, rnn.LSTM)
    state = dnc.initial_state(1)
    assert state.controller_state.hidden.shape == (1, 64)
    assert (dnc.memory_size, dnc.word_size, dnc.num_reads, dnc.num_writes) == (16, 16, 4, 1)
    assert dnc.clip_value is None


def test_one_step_wiring():
    """Controller sees [x, previous reads]; output is Linear([controller out, reads])."""
    dnc = small_dnc()
    x = inputs(1)
    state = dnc.initial_state(B)
    _, state = dnc(x[0], state)  # non-zero reads from here on
    output, next_state = dnc(x[1], state)

    prev_reads = tf.reshape(state.access_output, [B, -1])
    ctrl_out, ctrl_state = dnc.controller(tf.concat([x[1], prev_reads], 1), state.controller_state)
    interface = access_lib.parse_interface(dnc.access.interface_layer(ctrl_out), 4, 2, 2)
    reads, access_state = access_lib.access_step(interface, state.access_state)
    expected = (
        tf.concat([ctrl_out, tf.reshape(reads, [B, -1])], 1) @ dnc.output_layer.w
        + dnc.output_layer.b
    )
    assert_close(output, expected)
    assert_close(next_state, DNCState(reads, access_state, ctrl_state))


def test_clip_value_bounds_the_output():
    dnc = small_dnc(clip_value=0.01)
    out, _ = rnn.dynamic_unroll(dnc, 100.0 * inputs(2), dnc.initial_state(B))
    assert np.max(np.abs(out.numpy())) <= 0.01 + 1e-7
    assert np.max(np.abs(out.numpy())) > 0.0


def test_eager_function_and_static_unroll_agree():
    dnc = small_dnc()
    x = inputs(3)
    eager = rnn.dynamic_unroll(dnc, x, dnc.initial_state(B))

    def run(seq):
        return rnn.dynamic_unroll(dnc, seq, dnc.initial_state(tf.shape(seq)[1]))

    graph = tf.function(run, autograph=False)(x)
    assert_close(graph, eager)
    # (XLA: see test_gradients_finite_and_reach_every_variable.)
    static = rnn.static_unroll(dnc, x, dnc.initial_state(B))
    assert_close(static, eager)


def test_unknown_batch_size_and_batch_one():
    dnc = small_dnc()
    eager_one = rnn.dynamic_unroll(dnc, inputs(4, b=1), dnc.initial_state(1))
    assert eager_one[0].shape == (T, 1, OUT)

    @tf.function(input_signature=[tf.TensorSpec([None, None, F], tf.float32)], autograph=False)
    def run(seq):
        return rnn.dynamic_unroll(dnc, seq, dnc.initial_state(tf.shape(seq)[1]))

    concrete = run.get_concrete_function()
    assert concrete.structured_outputs[1].access_state.memory.shape.as_list() == [None, 6, 4]
    assert_close(run(inputs(4, b=1)), eager_one)
    many = run(inputs(5, t=2, b=7))
    assert many[0].shape == (2, 7, OUT)


def test_sequence_length_keeps_each_examples_final_state():
    dnc = small_dnc()
    x = inputs(6)
    out, final = rnn.dynamic_unroll(
        dnc, x, dnc.initial_state(B), sequence_length=tf.constant([4, 2, 1])
    )
    np.testing.assert_array_equal(out.numpy()[2:, 1], 0.0)
    _, short = rnn.dynamic_unroll(dnc, x[:2, 1:2], dnc.initial_state(1))
    assert_close(nestlib.map_structure(lambda s: s[1:2], final), short)


def gradient_check(dnc, seq):
    with tf.GradientTape() as tape:
        out, final = rnn.dynamic_unroll(dnc, seq, dnc.initial_state(seq.shape[1]))
        loss = tf.reduce_sum(tf.square(out - 1.0))
    variables = dnc.trainable_variables
    grads = tape.gradient(loss, variables)
    names = [v.name for v in variables]
    assert len(set(names)) == len(names) and len(variables) >= 5
    for v, g in zip(variables, grads):
        assert g is not None, f"no gradient for {v.name}"
        g = tf.convert_to_tensor(g).numpy()
        assert np.all(np.isfinite(g)), f"non-finite gradient for {v.name}"
        assert np.any(g != 0.0), f"zero gradient for {v.name}"
    return final


def test_gradients_finite_and_reach_every_variable():
    dnc = DNC(OUT, memory_size=5, word_size=3, num_reads=2, num_writes=1, clip_value=20.0)
    gradient_check(dnc, inputs(7))

    # Under XLA too, with the batch size (and T) known only at run time:
    # the same outputs, final state and gradients as eagerly.
    def loss_and_grads(seq):
        with tf.GradientTape() as tape:
            out, final = rnn.dynamic_unroll(dnc, seq, dnc.initial_state(tf.shape(seq)[1]))
            loss = tf.reduce_sum(tf.square(out - 1.0))
        return out, final, tape.gradient(loss, dnc.trainable_variables)

    xla = tf.function(
        loss_and_grads,
        autograph=False,
        jit_compile=True,
        input_signature=[tf.TensorSpec([None, None, F], tf.float32)],
    )
    x = inputs(8)
    got, want = xla(x), loss_and_grads(x)
    assert_close(got[:2], want[:2], tol=1e-4)
    for g, e in zip(got[2], want[2]):
        assert np.all(np.isfinite(g.numpy()))
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("controller", ["gru", "deep"])
def test_other_controllers_work_unchanged(controller):
    if controller == "gru":
        ctrl = rnn.GRU(7)
        expected = tf.TensorShape([B, 7])
    else:
        ctrl = rnn.DeepRNN([rnn.LSTM(6), rnn.GRU(5)])
        expected = (
            rnn.LSTMState(tf.TensorShape([B, 6]), tf.TensorShape([B, 6])),
            tf.TensorShape([B, 5]),
        )
    dnc = small_dnc(controller=ctrl)
    final = gradient_check(dnc, inputs(9))
    got = nestlib.map_structure(lambda x: x.shape, final.controller_state)
    assert got == expected
    ctrl_vars = {v.ref() for v in ctrl.trainable_variables}
    assert ctrl_vars and ctrl_vars <= {v.ref() for v in dnc.trainable_variables}


def test_checkpoint_round_trip():
    dnc = small_dnc()
    x = inputs(10)
    before = rnn.dynamic_unroll(dnc, x, dnc.initial_state(B))[0]
    other = small_dnc()
    rnn.dynamic_unroll(other, x, other.initial_state(B))  # create its variables
    path = tf.train.Checkpoint(model=dnc).write(__import__("tempfile").mkdtemp() + "/dnc")
    tf.train.Checkpoint(model=other).read(path).assert_consumed()
    assert_close(rnn.dynamic_unroll(other, x, other.initial_state(B))[0], before)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="output_size must be a positive int"):
        DNC(0)
    with pytest.raises(ValueError, match="clip_value"):
        DNC(2, controller=rnn.LSTM(2), clip_value=-1.0)
    with pytest.raises(TypeError, match="controller must be an RNNCore"):
        DNC(2, controller="lstm")
    with pytest.raises(ValueError, match="memory_size must be a positive int"):
        DNC(2, controller=rnn.LSTM(2), memory_size=0)
    dnc = small_dnc()
    with pytest.raises(TypeError, match="prev_state must be a DNCState"):
        dnc(tf.zeros([1, F]), tuple(dnc.initial_state(1)))
    with pytest.raises(TypeError, match="dtype"):
        dnc(tf.zeros([1, F], tf.float64), dnc.initial_state(1))
    with pytest.raises(ValueError, match="batch, features"):
        dnc(tf.zeros([F]), dnc.initial_state(1))
