"""Per-example resets, state sequences and rank-0 state leaves in the unrollers.

The reference for a reset unroll is the definition: separate unrolls of each
example's segments, one example at a time, with the segments' results put
back together.
"""

import collections

import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn

T, B, I = 7, 3, 4
LENGTHS = [7, 5, 0]
# Segment starts per example (time-major [T, B]): example 0 restarts at 2 and
# 5, example 1 at 0 and 4 (and at 6, past its length: ignored), example 2
# (length 0) at 3.
RESET = np.zeros([T, B], bool)
RESET[[2, 5], 0] = True
RESET[[0, 4, 6], 1] = True
RESET[3, 2] = True

UNROLLS = [rnn.static_unroll, rnn.dynamic_unroll]
UNROLL_IDS = ["static", "dynamic"]


def _core(name):
    if name == "lstm":
        return rnn.LSTM(5)
    if name == "gru":
        return rnn.GRU(5, reset_after=True)
    if name == "dnc":
        return rnn.DNC(3, controller=rnn.LSTM(6), memory_size=4, word_size=3, num_reads=2)
    return rnn.DeepRNN([rnn.VanillaRNN(4), tf.nn.relu, rnn.LSTM(3)])


def _random_state(core, rng):
    """A state of the core's structure with random (non-initial) values."""
    return nestlib.map_structure(
        lambda x: tf.constant(rng.uniform(0.1, 0.5, x.shape), x.dtype),
        core.initial_state(B),
    )


def _example(nest, b):
    return nestlib.map_structure(lambda x: x[b : b + 1], nest)


def _segments(reset_b, length):
    starts = [0] + [t for t in range(1, length) if reset_b[t]]
    return list(zip(starts, starts[1:] + [length]))


def _reference(core, x, initial, reset_state, lengths, reverse, size):
    """Outputs and final state from separate unrolls of every segment."""
    out = np.zeros([T, B, size], np.float32)
    finals = []
    for b in range(B):
        length = T if lengths is None else lengths[b]
        segments = _segments(RESET[:, b], length)
        final_b = _example(initial, b)
        for k, (s, e) in enumerate(segments):
            if s == e:  # a length of 0
                continue
            if reverse:
                start = _example(initial if e == length else reset_state, b)
            else:
                start = _example(reset_state if RESET[s, b] else initial, b)
            seg_out, seg_final = rnn.dynamic_unroll(core, x[s:e, b : b + 1], start, reverse=reverse)
            out[s:e, b] = seg_out[:, 0]
            if (reverse and k == 0) or (not reverse and k == len(segments) - 1):
                final_b = seg_final
        finals.append(final_b)
    final = nestlib.map_structure(lambda *xs: tf.concat(xs, axis=0), *finals)
    return out, final


def _close(a, b, atol=1e-5):
    nestlib.map_structure(lambda x, y: np.testing.assert_allclose(x, y, atol=atol), a, b)


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("name", ["lstm", "gru", "dnc", "deep"])
def test_reset_unroll_equals_separate_unrolls_of_the_segments(rng, unroll, reverse, lengths, name):
    core = _core(name)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    initial = _random_state(core, rng)
    reset_state = _random_state(core, rng)
    out, final = unroll(
        core,
        x,
        initial,
        sequence_length=lengths,
        reverse=reverse,
        reset=tf.constant(RESET),
        reset_state=reset_state,
    )
    want_out, want_final = _reference(
        core, x, initial, reset_state, lengths, reverse, out.shape[-1]
    )
    np.testing.assert_allclose(out, want_out, atol=1e-5)
    _close(final, want_final)


def test_reset_state_defaults_to_the_initial_state_and_batch_major_masks(rng):
    core = rnn.GRU(4)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    initial = _random_state(core, rng)
    a = rnn.dynamic_unroll(core, x, initial, reset=tf.constant(RESET))
    b = rnn.dynamic_unroll(core, x, initial, reset=tf.constant(RESET), reset_state=initial)
    c = rnn.dynamic_unroll(
        core,
        tf.transpose(x, [1, 0, 2]),
        initial,
        reset=tf.constant(RESET.T),
        time_major=False,
    )
    _close(a, b)
    _close(a[0], tf.transpose(c[0], [1, 0, 2]))
    _close(a[1], c[1])
    # And the reset changes something (the test above is not vacuous).
    plain = rnn.dynamic_unroll(core, x, initial)
    assert np.abs(plain[0].numpy() - a[0].numpy()).max() > 1e-3


def test_reset_under_xla_and_inside_tf_function_with_unknown_shapes(rng):
    core = rnn.LSTM(4)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    reset = tf.constant(RESET)
    want = rnn.dynamic_unroll(core, x, core.initial_state(B), sequence_length=LENGTHS, reset=reset)

    @tf.function(jit_compile=True)
    def jitted(x, reset):
        return rnn.dynamic_unroll(
            core, x, core.initial_state(B), sequence_length=LENGTHS, reset=reset
        )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, I], tf.float32),
            tf.TensorSpec([None, None], tf.bool),
        ]
    )
    def unknown(x, reset):
        batch = tf.shape(x)[1]
        return rnn.dynamic_unroll(core, x, core.initial_state(batch), reset=reset)

    _close(jitted(x, reset), want)
    _close(unknown(x, reset), rnn.dynamic_unroll(core, x, core.initial_state(B), reset=reset))
    with pytest.raises(tf.errors.InvalidArgumentError, match="reset must be a bool"):
        unknown(x, reset[:, :2])


FUSED = {
    "lstm": lambda: rnn.LSTM(5),
    "gru": lambda: rnn.GRU(5),
    "gru_reset_after": lambda: rnn.GRU(5, reset_after=True),
    "vanilla": lambda: rnn.VanillaRNN(5),
}


@pytest.mark.parametrize("name", sorted(FUSED))
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize(
    "options",
    [{"reset": True}, {"return_all_states": True}, {"reset": True, "return_all_states": True}],
    ids=["reset", "all_states", "both"],
)
def test_fused_programs_run_resets_and_state_sequences_as_stepping_does(
    rng, name, reverse, lengths, options, monkeypatch
):
    core = FUSED[name]()
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    initial = _random_state(core, rng)
    core(x[0], initial)
    assert set(options) <= type(core).unroll_fast_path_options, "add the option to the core"
    reset_state = _random_state(core, rng)
    kwargs = {}
    if "reset" in options:
        kwargs = dict(reset=tf.constant(RESET), reset_state=reset_state)
    all_states = "return_all_states" in options
    stepwise = rnn.DeepRNN([core, tf.identity])  # a plain callable: the stack is stepped
    watched = [x, *nestlib.flatten((initial, reset_state))]

    def run(c, wrap):
        with tf.GradientTape() as tape:
            tape.watch(watched)
            results = rnn.dynamic_unroll(
                c,
                x,
                wrap(initial),
                sequence_length=lengths,
                reverse=reverse,
                return_all_states=all_states,
                **{k: wrap(v) if k == "reset_state" else v for k, v in kwargs.items()},
            )
            results = nestlib.flatten(results)
            value = sum(tf.reduce_sum(r * (0.5 + k)) for k, r in enumerate(results))
        variables = [*watched, *core.trainable_variables]
        grads = tape.gradient(value, variables)
        return results, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]

    want = run(stepwise, lambda s: (s,))
    calls = []
    original = type(core).unroll_fast_path
    monkeypatch.setattr(
        type(core),
        "unroll_fast_path",
        lambda *a, **k: calls.append(sorted(k)) or original(*a, **k),
    )
    got = run(core, lambda s: s)
    assert calls, "the unroller stepped a core whose fast path honours the options"
    _close(got, want, atol=1e-4)


class Counting(rnn.RNNCore):
    """A core whose state holds a rank-0 step counter beside a batched sum."""

    Counter = collections.namedtuple("Counter", ["steps", "total", "skip"])

    def __call__(self, inputs, prev_state):
        steps = prev_state.steps + 1.0
        total = prev_state.total + inputs * steps
        return total, self.Counter(steps, total, prev_state.skip)

    def initial_state(self, batch_size, dtype=tf.float32):
        return self.Counter(tf.zeros([], dtype), tf.zeros([batch_size, 2], dtype), None)


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_rank0_state_leaves_are_updated_every_step_like_sonnet(rng, unroll, reverse):
    core = Counting()
    x = tf.constant(rng.normal(size=[T, B, 2]), tf.float32)
    out, final = unroll(core, x, core.initial_state(B), sequence_length=LENGTHS, reverse=reverse)
    assert float(final.steps) == T  # every step counts, past every length
    assert final.skip is None
    # The batched leaf stops at each example's length.
    for b, length in enumerate(LENGTHS):
        _, one = (
            rnn.dynamic_unroll(core, x[:length, b : b + 1], core.initial_state(1))
            if length
            else (
                None,
                core.initial_state(1),
            )
        )
        if length and not reverse:
            np.testing.assert_allclose(final.total[b], one.total[0], atol=1e-5)
    # Resets leave the shared counter alone.
    _, final = unroll(core, x, core.initial_state(B), reset=tf.constant(RESET))
    assert float(final.steps) == T


def test_rank0_state_leaves_match_sonnet_dynamic_unroll(rng):
    snt = pytest.importorskip("sonnet")
    core = Counting()
    x = tf.constant(rng.normal(size=[T, B, 2]), tf.float32)
    state = core.initial_state(B)._replace(skip=tf.zeros([B, 1]))
    ours, our_final = rnn.dynamic_unroll(core, x, state, sequence_length=LENGTHS)
    theirs, their_final = snt.dynamic_unroll(core, x, state, sequence_length=tf.constant(LENGTHS))
    _close(our_final, their_final)
    valid = tf.sequence_mask(LENGTHS, T, tf.float32)
    _close(ours, theirs * tf.transpose(valid)[:, :, None])


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_return_all_states_stacks_the_state_after_every_step(rng, unroll, reverse, lengths):
    core = rnn.DNC(3, controller=rnn.LSTM(6), memory_size=4, word_size=3, num_reads=2)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    initial = core.initial_state(B)
    out, final, states = unroll(
        core, x, initial, sequence_length=lengths, reverse=reverse, return_all_states=True
    )
    want_out, want_final = unroll(core, x, initial, sequence_length=lengths, reverse=reverse)
    _close((out, final), (want_out, want_final))
    nestlib.assert_same_structure(states, initial)
    # Reference: step every example by hand over its valid steps.
    lengths_ = [T] * B if lengths is None else lengths
    for b, length in enumerate(lengths_):
        state = _example(initial, b)
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            _, state = core(x[t, b : b + 1], state)
            _close(_example(nestlib.map_structure(lambda s: s[t], states), b), state)
        for t in range(length, T):
            _close(
                nestlib.map_structure(lambda s: s[t, b], states),
                nestlib.map_structure(lambda s: tf.zeros_like(s[0]), state),
            )


def test_return_all_states_layouts_none_and_rank0_leaves(rng):
    core = Counting()
    x = tf.constant(rng.normal(size=[T, B, 2]), tf.float32)
    _, _, tm = rnn.static_unroll(core, x, core.initial_state(B), return_all_states=True)
    _, _, bm = rnn.dynamic_unroll(
        core,
        tf.transpose(x, [1, 0, 2]),
        core.initial_state(B),
        time_major=False,
        return_all_states=True,
    )
    assert tm.skip is None and bm.skip is None
    np.testing.assert_array_equal(tm.steps, np.arange(1, T + 1))
    np.testing.assert_array_equal(bm.steps, np.arange(1, T + 1))
    assert tm.total.shape == [T, B, 2] and bm.total.shape == [B, T, 2]
    _close(tm.total, tf.transpose(bm.total, [1, 0, 2]))


def test_return_all_states_on_a_core_with_a_fast_path_matches_stepping(rng):
    core = rnn.LSTM(4)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    out, final, states = rnn.dynamic_unroll(
        core, x, core.initial_state(B), sequence_length=LENGTHS, return_all_states=True
    )
    _close(
        (out, final), rnn.dynamic_unroll(core, x, core.initial_state(B), sequence_length=LENGTHS)
    )
    _close(states.hidden, out)  # an LSTM's output is its hidden state


def test_bidirectional_unroll_with_resets_and_state_sequences(rng):
    fw, bw = rnn.LSTM(3), rnn.GRU(2)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    reset = tf.constant(RESET)
    outs, finals, states = rnn.bidirectional_unroll(
        fw,
        bw,
        x,
        fw.initial_state(B),
        bw.initial_state(B),
        sequence_length=LENGTHS,
        reset=reset,
        return_all_states=True,
    )
    want_f = rnn.dynamic_unroll(
        fw, x, fw.initial_state(B), sequence_length=LENGTHS, reset=reset, return_all_states=True
    )
    want_b = rnn.dynamic_unroll(
        bw,
        x,
        bw.initial_state(B),
        sequence_length=LENGTHS,
        reset=reset,
        reverse=True,
        return_all_states=True,
    )
    _close((outs, finals, states), tuple(zip(want_f, want_b)))


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
def test_bad_resets_and_state_sequence_flags_get_clear_errors(unroll):
    core = rnn.LSTM(2)
    x = tf.zeros([T, B, I])
    state = core.initial_state(B)
    name = unroll.__name__
    with pytest.raises(
        TypeError, match=rf"{name}: reset must be a bool \[T, B\] tensor, got dtype int32"
    ):
        unroll(core, x, state, reset=tf.zeros([T, B], tf.int32))
    with pytest.raises(ValueError, match=r"reset must be a bool \[T, B\] tensor, got shape \(7,\)"):
        unroll(core, x, state, reset=tf.zeros([T], tf.bool))
    with pytest.raises(ValueError, match=r"matching input_sequence \(B=3\), got shape \(7, 2\)"):
        unroll(core, x, state, reset=tf.zeros([T, 2], tf.bool))
    with pytest.raises(
        ValueError, match=r"\[B, T\] tensor matching input_sequence \(T=7\), got shape \(3, 6\)"
    ):
        unroll(core, tf.zeros([B, T, I]), state, reset=tf.zeros([B, 6], tf.bool), time_major=False)
    with pytest.raises(ValueError, match="reset_state is given but reset is None"):
        unroll(core, x, state, reset_state=state)
    with pytest.raises(ValueError, match="reset_state must have the structure of initial_state"):
        unroll(core, x, state, reset=tf.zeros([T, B], tf.bool), reset_state=state[0])
    with pytest.raises(
        ValueError,
        match=r"reset_state\.cell has shape \(3, 5\) but initial_state\.cell has shape \(3, 2\)",
    ):
        unroll(
            core,
            x,
            state,
            reset=tf.zeros([T, B], tf.bool),
            reset_state=state._replace(cell=tf.zeros([B, 5])),
        )
    with pytest.raises(TypeError, match=r"reset_state\.hidden has dtype float64"):
        unroll(
            core,
            x,
            state,
            reset=tf.zeros([T, B], tf.bool),
            reset_state=state._replace(hidden=tf.zeros([B, 2], tf.float64)),
        )
    with pytest.raises(TypeError, match="return_all_states must be a bool, got str"):
        unroll(core, x, state, return_all_states="yes")


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
@pytest.mark.parametrize("name", ["lstm", "deep"])  # a fused program, a stepped stack
def test_past_length_repeat_last_gives_sonnets_outputs(rng, unroll, name):
    snt = pytest.importorskip("sonnet")
    core = _core(name)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    lengths = tf.constant(LENGTHS)
    ours, final = unroll(
        core, x, core.initial_state(B), sequence_length=lengths, past_length="repeat_last"
    )
    theirs, their_final = snt.dynamic_unroll(
        core, x, core.initial_state(B), sequence_length=lengths
    )
    _close(ours, theirs)
    _close(final, their_final)
    zeros, _ = unroll(core, x, core.initial_state(B), sequence_length=lengths)
    assert np.abs(zeros[-1, 1]).max() == 0 and np.abs(ours[-1, 1]).max() > 0


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
def test_past_length_repeat_last_backwards_batch_major_and_state_sequences(rng, unroll):
    core = Counting()
    x = tf.constant(rng.normal(size=[B, T, 2]), tf.float32)
    out, _, states = unroll(
        core,
        x,
        core.initial_state(B),
        sequence_length=LENGTHS,
        reverse=True,
        time_major=False,
        return_all_states=True,
        past_length="repeat_last",
    )
    plain, _, plain_states = unroll(
        core,
        x,
        core.initial_state(B),
        sequence_length=LENGTHS,
        reverse=True,
        time_major=False,
        return_all_states=True,
    )
    for b, length in enumerate(LENGTHS):
        # Read backwards, the last output produced is the one at input step 0.
        want = np.concatenate([plain[b, :length], np.repeat(plain[b, :1], T - length, 0)])
        if length == 0:
            want = np.zeros([T, 2])
        np.testing.assert_allclose(out[b], want, atol=1e-6)
        np.testing.assert_allclose(states.total[b], want, atol=1e-6)
    np.testing.assert_array_equal(states.steps, plain_states.steps)  # rank 0: as it is


def test_past_length_must_be_a_known_mode():
    core = rnn.GRU(2)
    with pytest.raises(
        ValueError, match="past_length must be one of 'zeros', 'repeat_last', got 'last'"
    ):
        rnn.dynamic_unroll(core, tf.zeros([T, B, I]), core.initial_state(B), past_length="last")


def test_a_subclass_overriding_the_fast_path_gets_no_options_it_did_not_declare(rng):
    class OldStyle(rnn.LSTM):  # a fast path written for the four arguments
        calls = 0

        def unroll_fast_path(self, input_sequence, initial_state, sequence_length, reverse):
            OldStyle.calls += 1
            return super().unroll_fast_path(input_sequence, initial_state, sequence_length, reverse)

    core = OldStyle(4)
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    reset = tf.constant(RESET)
    out, final = rnn.dynamic_unroll(core, x, core.initial_state(B), reset=reset)
    assert OldStyle.calls == 0  # stepped: the options are rnn.LSTM's, not OldStyle's
    plain = rnn.LSTM(4)
    plain(x[0], plain.initial_state(B))
    for v, w in zip(plain.trainable_variables, core.trainable_variables):
        v.assign(w)
    _close((out, final), rnn.dynamic_unroll(plain, x, plain.initial_state(B), reset=reset))
    rnn.dynamic_unroll(core, x, core.initial_state(B))
    assert OldStyle.calls == 1  # without options its fast path runs as before
