"""static_unroll / dynamic_unroll / bidirectional_unroll semantics and errors."""

import collections

import numpy as np
import pytest
import tensorflow as tf

import rnn
from tests.rnn import numpy_ref as ref

T, B, I, H = 5, 3, 4, 6
LENGTHS = [5, 2, 0]
UNROLLS = [rnn.static_unroll, rnn.dynamic_unroll]
UNROLL_IDS = ["static", "dynamic"]


def _np(v):
    return v.numpy().astype(np.float64)


def _built(core, rng, dtype=tf.float64):
    core(tf.zeros([B, I], dtype), core.initial_state(B, dtype))
    for v in core.variables:
        v.assign(rng.normal(scale=0.7, size=v.shape))
    return core


def _gru_step(core):
    k, u, b = _np(core.kernel), _np(core.recurrent_kernel), _np(core.bias)

    def step(x, state):
        out, h = ref.gru_step(x, state[0], k, u, b, reset_after=False)
        return out, (h,)

    return step


def _lstm_step(core):
    k, u, b = _np(core.kernel), _np(core.recurrent_kernel), _np(core.bias)
    ln = tuple(_np(v) for v in core.layer_norm) if core.layer_norm else None

    def step(x, state):
        return ref.lstm_step(x, state[0], state[1], k, u, b, layer_norm_params=ln)

    return step


def _stepwise(core):
    """The same core, wrapped so no whole-sequence fast path can apply."""
    return rnn.DeepRNN([core, tf.identity])


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_gru_sequence_semantics_vs_numpy(rng, unroll, reverse, lengths):
    core = _built(rnn.GRU(H), rng)
    xs = rng.normal(size=(T, B, I))
    h0 = rng.normal(size=(B, H))
    out, final = unroll(
        core, tf.constant(xs), tf.constant(h0), sequence_length=lengths, reverse=reverse
    )
    out_ref, (h_ref,) = ref.unroll(_gru_step(core), xs, (h0,), lengths, reverse)
    np.testing.assert_allclose(out.numpy(), out_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(final.numpy(), h_ref, rtol=1e-9, atol=1e-12)
    if lengths is not None:
        for b, n in enumerate(lengths):
            assert not out.numpy()[n:, b].any(), "outputs after the length must be zero"
        np.testing.assert_array_equal(final.numpy()[2], h0[2])  # length 0: initial state


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize(
    "layer_norm,fused",
    [(False, True), (False, False), (True, False)],
    ids=["fused", "plain-stepped", "layernorm"],
)
def test_lstm_sequence_semantics_vs_numpy(rng, monkeypatch, reverse, layer_norm, fused):
    """A plain LSTM takes the fused fast path; the
    stepped variants disable it or use layer norm, which it does not cover."""
    if not fused:
        monkeypatch.setattr(rnn.LSTM, "unroll_fast_path", lambda self, *args: None)
    core = _built(rnn.LSTM(H, use_layer_norm=layer_norm), rng)
    xs = rng.normal(size=(T, B, I))
    state0 = (rng.normal(size=(B, H)), rng.normal(size=(B, H)))
    init = rnn.LSTMState(*map(tf.constant, state0))
    for lengths in (None, LENGTHS):
        out, final = rnn.dynamic_unroll(
            core, tf.constant(xs), init, sequence_length=lengths, reverse=reverse
        )
        out_ref, (h_ref, c_ref) = ref.unroll(_lstm_step(core), xs, state0, lengths, reverse)
        np.testing.assert_allclose(out.numpy(), out_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(final.hidden.numpy(), h_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(final.cell.numpy(), c_ref, rtol=1e-8, atol=1e-10)


def test_lstm_fast_path_matches_stepping(rng):
    core = _built(rnn.LSTM(H), rng, dtype=tf.float32)
    x = tf.constant(rng.normal(size=(B, T, I)).astype(np.float32))
    init = core.initial_state(B)
    for lengths in (None, LENGTHS):
        for reverse in (False, True):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                fast = rnn.dynamic_unroll(core, x, init, lengths, reverse, time_major=False)
                slow = rnn.dynamic_unroll(
                    _stepwise(core), x, (init,), lengths, reverse, time_major=False
                )
                loss_fast = tf.reduce_sum(fast[0] ** 2) + tf.reduce_sum(fast[1].cell)
                loss_slow = tf.reduce_sum(slow[0] ** 2) + tf.reduce_sum(slow[1][0].cell)
            np.testing.assert_allclose(fast[0].numpy(), slow[0].numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(
                fast[1].hidden.numpy(), slow[1][0].hidden.numpy(), rtol=1e-5, atol=1e-6
            )
            targets = [x] + list(core.trainable_variables)
            for g_fast, g_slow in zip(
                tape.gradient(loss_fast, targets), tape.gradient(loss_slow, targets)
            ):
                np.testing.assert_allclose(g_fast.numpy(), g_slow.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("reset_after", [False, True], ids=["cho", "reset_after"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_gru_fast_path_matches_stepping(rng, reset_after, mode):
    """The GRU's whole-sequence path (both forms) against stepping the same
    core: outputs, final states and gradients, under every option
    (lengths, reverse, batch-major input, unknown batch size, XLA)."""
    core = _built(rnn.GRU(H, reset_after=reset_after), rng, dtype=tf.float32)
    x = tf.constant(rng.normal(size=(B, T, I)).astype(np.float32))
    h0 = tf.constant(rng.normal(size=(B, H)).astype(np.float32))
    targets = list(core.trainable_variables)

    def run(x, h0, lengths, reverse):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x, h0])
            fast = rnn.dynamic_unroll(core, x, h0, lengths, reverse, time_major=False)
            slow = rnn.dynamic_unroll(_stepwise(core), x, (h0,), lengths, reverse, time_major=False)
            loss_fast = tf.reduce_sum(fast[0] ** 2) + tf.reduce_sum(tf.sin(fast[1]))
            loss_slow = tf.reduce_sum(slow[0] ** 2) + tf.reduce_sum(tf.sin(slow[1][0]))
        grads_fast = tape.gradient(loss_fast, [x, h0] + targets)
        grads_slow = tape.gradient(loss_slow, [x, h0] + targets)
        return [fast[0], fast[1]] + grads_fast, [slow[0], slow[1][0]] + grads_slow

    if mode != "eager":
        spec = [tf.TensorSpec([None, T, I]), tf.TensorSpec([None, H])]
        fns = {}

    for lengths in (None, LENGTHS):
        for reverse in (False, True):
            if mode == "eager":
                got, want = run(x, h0, lengths, reverse)
            else:
                key = (lengths is None, reverse)
                if key not in fns:
                    fns[key] = tf.function(
                        lambda a, b, lengths=lengths, reverse=reverse: run(a, b, lengths, reverse),
                        input_signature=spec,
                        jit_compile=mode == "xla",
                    )
                got, want = fns[key](x, h0)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5)


def test_gru_unrolls_use_the_fast_path(monkeypatch):
    """rnn.GRU's whole-sequence path is what the unrollers run (both forms)."""
    calls = []
    real = rnn.GRU.unroll_fast_path

    def spy(self, *args):
        result = real(self, *args)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(rnn.GRU, "unroll_fast_path", spy)
    for reset_after in (False, True):
        core = rnn.GRU(H, reset_after=reset_after)
        rnn.dynamic_unroll(core, tf.zeros([T, B, I]), core.initial_state(B))
        rnn.static_unroll(core, tf.zeros([T, B, I]), core.initial_state(B))
    assert calls == [True] * 4


CORES = {
    "vanilla": lambda: rnn.VanillaRNN(H),
    "lstm_ln": lambda: rnn.LSTM(H, use_layer_norm=True, projection_size=3),
    "gru": lambda: rnn.GRU(H, reset_after=True),
    "deep": lambda: rnn.DeepRNN([rnn.LSTM(H), tf.nn.relu, rnn.GRU(H)]),
    "skip": lambda: rnn.deep_rnn_with_skip_connections([rnn.GRU(H), rnn.LSTM(H)]),
    "residual": lambda: rnn.deep_rnn_with_residual_connections([rnn.LSTM(I), rnn.GRU(I)]),
}


@pytest.mark.parametrize("name", CORES, ids=list(CORES))
def test_static_and_dynamic_unroll_agree(rng, name):
    core = CORES[name]()
    x = tf.constant(rng.normal(size=(B, T, I)).astype(np.float32))
    init = core.initial_state(B)
    for lengths, reverse in ((None, False), (LENGTHS, True)):
        s_out, s_state = rnn.static_unroll(core, x, init, lengths, reverse, time_major=False)
        d_out, d_state = rnn.dynamic_unroll(core, x, init, lengths, reverse, time_major=False)
        assert s_out.shape == d_out.shape and s_out.shape[:2] == (B, T)
        np.testing.assert_allclose(s_out.numpy(), d_out.numpy(), rtol=1e-5, atol=1e-6)
        for a, b in zip(tf.nest.flatten(s_state), tf.nest.flatten(d_state)):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_time_major_false_is_a_transpose(rng):
    core = rnn.GRU(H)
    x = tf.constant(rng.normal(size=(T, B, I)).astype(np.float32))
    tm, s1 = rnn.dynamic_unroll(core, x, core.initial_state(B))
    bm, s2 = rnn.dynamic_unroll(
        core, tf.transpose(x, [1, 0, 2]), core.initial_state(B), time_major=False
    )
    np.testing.assert_allclose(tf.transpose(bm, [1, 0, 2]).numpy(), tm.numpy(), rtol=1e-6)
    np.testing.assert_allclose(s1.numpy(), s2.numpy(), rtol=1e-6)


def test_bidirectional_unroll(rng, monkeypatch):
    monkeypatch.setattr(rnn.LSTM, "unroll_fast_path", lambda self, *args: None)  # tested elsewhere
    fw, bw = _built(rnn.GRU(H), rng), _built(rnn.LSTM(3), rng)
    xs = rng.normal(size=(T, B, I))
    h0 = rng.normal(size=(B, H))
    (out_f, out_b), (fin_f, fin_b) = rnn.bidirectional_unroll(
        fw,
        bw,
        tf.constant(xs),
        tf.constant(h0),
        bw.initial_state(B, tf.float64),
        sequence_length=LENGTHS,
    )
    ref_f, (ref_hf,) = ref.unroll(_gru_step(fw), xs, (h0,), LENGTHS, reverse=False)
    zeros = (np.zeros((B, 3)), np.zeros((B, 3)))
    ref_b, (ref_hb, ref_cb) = ref.unroll(_lstm_step(bw), xs, zeros, LENGTHS, reverse=True)
    np.testing.assert_allclose(out_f.numpy(), ref_f, rtol=1e-9)
    np.testing.assert_allclose(out_b.numpy(), ref_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fin_f.numpy(), ref_hf, rtol=1e-9)
    np.testing.assert_allclose(fin_b.cell.numpy(), ref_cb, rtol=1e-9, atol=1e-12)
    # Time alignment: at the last valid step of example 1 the backward output has read
    # only that input, the forward output all of its inputs.
    first_b, _ = ref.lstm_step(
        xs[1, 1:2],
        zeros[0][:1],
        zeros[1][:1],
        _np(bw.kernel),
        _np(bw.recurrent_kernel),
        _np(bw.bias),
    )
    np.testing.assert_allclose(out_b.numpy()[1, 1], first_b[0], rtol=1e-9)


Pair = collections.namedtuple("Pair", "left right")


class NestCore(rnn.RNNCore):
    """A core with nested inputs/outputs and a state with None and () leaves."""

    def __init__(self):
        super().__init__(name="nest_core")
        self.w = tf.Variable([[0.5, -1.0]], dtype=tf.float32)

    def initial_state(self, batch_size, dtype=tf.float32):
        return {
            "count": tf.zeros([batch_size, 1], dtype),
            "none": None,
            "empty": (),
            "deep": Pair(left=[tf.ones([batch_size, 2], dtype)], right=None),
        }

    def __call__(self, inputs, prev_state):
        assert prev_state["none"] is None and prev_state["empty"] == ()
        assert prev_state["deep"].right is None
        count = prev_state["count"] + 1.0
        left = prev_state["deep"].left[0] * self.w + inputs["a"]
        out = Pair(left=left * count, right=(inputs["b"][:, :1], None))
        state = {"count": count, "none": None, "empty": (), "deep": Pair(left=[left], right=None)}
        return out, state


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
def test_nested_inputs_outputs_and_none_state_leaves(rng, mode):
    core = NestCore()
    xa = rng.normal(size=(T, B, 2)).astype(np.float32)
    xb = rng.normal(size=(T, B, 3)).astype(np.float32)

    def run(xa, xb, unroll):
        return unroll(
            core,
            {"a": xa, "b": xb},
            core.initial_state(B),
            sequence_length=tf.constant(LENGTHS),
            reverse=True,
        )

    if mode != "eager":
        run = tf.function(run, jit_compile=(mode == "jit"), autograph=False, reduce_retracing=True)
    results = [run(tf.constant(xa), tf.constant(xb), u) for u in UNROLLS]
    for out, final in results:
        assert final["none"] is None and final["empty"] == () and final["deep"].right is None
        assert out.right[1] is None
        np.testing.assert_array_equal(final["count"].numpy()[:, 0], LENGTHS)
        # The b output is the (reversed-order) b input, masked after each length.
        mask = (np.arange(T)[:, None] < np.array(LENGTHS)[None, :])[..., None]
        np.testing.assert_allclose(out.right[0].numpy(), xb[:, :, :1] * mask)
    np.testing.assert_allclose(results[0][0].left.numpy(), results[1][0].left.numpy(), rtol=1e-6)


def test_unknown_time_and_batch_inside_tf_function(rng):
    core = rnn.LSTM(H, use_layer_norm=True)
    x = rng.normal(size=(T, B, I)).astype(np.float32)
    expected, _ = rnn.dynamic_unroll(core, x, core.initial_state(B))

    @tf.function(input_signature=[tf.TensorSpec([None, None, I]), tf.TensorSpec([None], tf.int32)])
    def run(x, lengths):
        out, state = rnn.dynamic_unroll(
            core, x, core.initial_state(tf.shape(x)[1]), sequence_length=lengths
        )
        return out, state

    out, state = run(tf.constant(x), tf.constant([T] * B))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    out1, _ = run(tf.constant(x[:2, :1]), tf.constant([2]))  # new T and batch, same graph
    assert out1.shape == (2, 1, H)
    with pytest.raises(tf.errors.InvalidArgumentError, match="zero time steps"):
        run(tf.zeros([0, 2, I]), tf.constant([0, 0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="exceeds"):
        run(tf.constant(x), tf.constant([T + 1] * B))


def test_zero_time_steps_check_runs_before_the_first_step_reads_the_inputs():
    # The unrolls slice step 0 before their loops. Without an ordering, that slice could run
    # before the run-time check and fail with "slice index 0 ... out of bounds" instead of
    # the check's message (seen once in CI). Every read of the input must follow the check.
    core = rnn.VanillaRNN(3)

    @tf.function(input_signature=[tf.TensorSpec([None, 2, I])])
    def run(x):
        return rnn.dynamic_unroll(core, x, core.initial_state(2))

    graph = run.get_concrete_function().graph
    (x,) = graph.inputs[:1]
    readers = [op for op in x.consumers() if op.type != "Shape"]
    assert readers, "the input is not read"
    for op in readers:
        assert op.type == "Identity", f"{op.name} ({op.type}) reads the input unchecked"
        assert "Assert" in [c.type for c in op.control_inputs], f"{op.name} skips the check"
    with pytest.raises(tf.errors.InvalidArgumentError, match="zero time steps"):
        run(tf.zeros([0, 2, I]))


class FastPathCore(rnn.RNNCore):
    """Doubles its inputs; its fast path is marked so a test can tell it ran."""

    def __init__(self, use_fast_path):
        super().__init__()
        self.use_fast_path = use_fast_path
        self.fast_calls = 0

    def initial_state(self, batch_size, dtype=tf.float32):
        return tf.zeros([batch_size, 1], dtype)

    def __call__(self, inputs, prev_state):
        return inputs * 2.0, prev_state + 1.0

    def unroll_fast_path(self, input_sequence, initial_state, sequence_length, reverse):
        self.fast_calls += 1
        if not self.use_fast_path:
            return None
        steps = tf.cast(tf.shape(input_sequence)[0], initial_state.dtype)
        return input_sequence * 2.0 + 100.0, initial_state + steps


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
def test_fast_path_hook(unroll):
    x = tf.ones([T, B, 2])
    on, off = FastPathCore(True), FastPathCore(False)
    out_on, st_on = unroll(on, x, on.initial_state(B))
    out_off, st_off = unroll(off, x, off.initial_state(B))
    assert on.fast_calls == 1 and off.fast_calls == 1
    np.testing.assert_array_equal(out_on.numpy(), 102.0)
    np.testing.assert_array_equal(out_off.numpy(), 2.0)
    np.testing.assert_array_equal(st_on.numpy(), T)
    np.testing.assert_array_equal(st_off.numpy(), T)
    bm, _ = unroll(on, tf.ones([B, T, 2]), on.initial_state(B), time_major=False)
    assert bm.shape == (B, T, 2)


class BadCore(rnn.RNNCore):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def initial_state(self, batch_size, dtype=tf.float32):
        return rnn.LSTMState(hidden=tf.zeros([batch_size, 2]), cell=(tf.zeros([batch_size, 2]),))

    def __call__(self, inputs, prev_state):
        h, (c,) = prev_state
        if self.kind == "structure":
            return h, rnn.LSTMState(hidden=h, cell=(c, c))
        if self.kind == "type":
            return h, rnn.LSTMState(hidden=h, cell=[c])
        if self.kind == "dtype":
            return h, rnn.LSTMState(hidden=h, cell=(tf.cast(c, tf.float64),))
        if self.kind == "none":
            return h, rnn.LSTMState(hidden=h, cell=(None,))
        if self.kind == "shape":
            return h, rnn.LSTMState(hidden=h, cell=(tf.zeros([B, 3]),))
        return h, rnn.LSTMState(hidden=h, cell=(c,))


@pytest.mark.parametrize("unroll", UNROLLS, ids=UNROLL_IDS)
def test_errors_name_the_problem_and_path(unroll):
    x = tf.zeros([T, B, 2])
    with pytest.raises(ValueError, match=r"structure differs.*\.cell"):
        unroll(BadCore("structure"), x, BadCore("").initial_state(B))
    with pytest.raises(TypeError, match=r"structure differs.*\.cell.*tuple.*list"):
        unroll(BadCore("type"), x, BadCore("").initial_state(B))
    with pytest.raises(TypeError, match=r"next_state\.cell\[0\] has dtype float64.*float32"):
        unroll(BadCore("dtype"), x, BadCore("").initial_state(B))
    with pytest.raises(TypeError, match=r"next_state\.cell\[0\] is None"):
        unroll(BadCore("none"), x, BadCore("").initial_state(B))
    with pytest.raises(ValueError, match=r"next_state\.cell\[0\] has shape"):
        unroll(BadCore("shape"), x, BadCore("").initial_state(B))
    core = BadCore("")
    with pytest.raises(ValueError, match="zero time steps"):
        unroll(core, tf.zeros([0, B, 2]), core.initial_state(B))
    with pytest.raises(ValueError, match=r"must have consistent number of time steps.*'b'\] has 4"):
        unroll(core, {"a": x, "b": tf.zeros([4, B, 2])}, core.initial_state(B))
    with pytest.raises(ValueError, match="time_major=False"):
        unroll(core, tf.zeros([B + 1, T, 2]), core.initial_state(B + 1))
    with pytest.raises(ValueError, match="inconsistent batch size"):
        unroll(core, (x, tf.zeros([T, B + 1, 2])), core.initial_state(B))
    with pytest.raises(TypeError, match="integer"):
        unroll(core, x, core.initial_state(B), sequence_length=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\[0, T=5\]"):
        unroll(core, x, core.initial_state(B), sequence_length=[1, 6, 2])
    with pytest.raises(ValueError, match="3 entries|batch"):
        unroll(core, x, core.initial_state(B), sequence_length=[1, 2])
    with pytest.raises(ValueError, match="no tensors"):
        unroll(core, (), core.initial_state(B))
    with pytest.raises(TypeError, match=r"input_sequence\[1\] is None"):
        unroll(core, (x, None), core.initial_state(B))
    with pytest.raises(ValueError, match="rank >= 2"):
        unroll(core, tf.zeros([T]), core.initial_state(B))
    with pytest.raises(TypeError, match="float64"):
        unroll(rnn.GRU(2), x, rnn.GRU(2).initial_state(B, tf.float64))


def test_static_unroll_needs_static_time():
    core = rnn.GRU(2)

    @tf.function(input_signature=[tf.TensorSpec([None, B, 2])])
    def run(x):
        return rnn.static_unroll(core, x, core.initial_state(B))

    with pytest.raises(ValueError, match="input_sequence must have a statically known number of"):
        run.get_concrete_function()


def _while_stacks(hlo, steps, shapes, dtype="f32"):
    """The shapes of ``shapes`` that ``hlo`` holds a ``[steps, ...]`` ``dtype`` copy of."""
    found = []
    for shape in shapes:
        dims = ",".join(str(d) for d in [steps, *shape])
        text = f"{dtype}[{dims}]"
        if text in hlo:
            found.append(tuple(shape))
    return found


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16])
def test_dynamic_unroll_reads_the_variables_once_for_its_loop(dtype):
    # A variable read inside the loop body is a new tensor at every step, and
    # the gradient keeps a [T, ...] copy of every one the backward pass needs
    # (each weight matrix, written in the forward loop and read back in the
    # backward one). Read before the loop, it is a loop invariant. With float16
    # inputs (mixed precision: float32 variables) the same holds for the casts.
    core = rnn.DNC(
        3,
        memory_size=5,
        word_size=4,
        num_reads=2,
        dtype=tf.float32,
        controller=rnn.LSTM(64, dtype=tf.float32),
    )
    x = tf.ones([7, 2, 3], dtype)
    core(x[0], core.initial_state(2, dtype=dtype))

    @tf.function(jit_compile=True)
    def grads(x):
        with tf.GradientTape() as tape:
            out, _ = rnn.dynamic_unroll(core, x, core.initial_state(2, dtype=dtype))
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        return tape.gradient(loss, core.trainable_variables)

    hlo = grads.experimental_get_compiler_ir(x)(stage="hlo")
    matrices = [v.shape.as_list() for v in core.trainable_variables if v.shape.rank == 2]
    assert len(matrices) == 4  # the controller's two kernels, the interface's, the output's
    assert all(v.dtype == tf.float32 for v in core.variables)
    # (the first step is taken before the loop, which runs the other 6)
    for steps in (6, 7):
        assert _while_stacks(hlo, steps, matrices, "f32") == []
        assert _while_stacks(hlo, steps, matrices, "f16") == []
    # and the results are those of stepping the core
    with tf.GradientTape() as tape:
        state, outs = core.initial_state(2, dtype=dtype), []
        for t in range(7):
            out, state = core(x[t], state)
            outs.append(out)
        loss = tf.reduce_sum(tf.cast(tf.stack(outs), tf.float32))
    stepped = tape.gradient(loss, core.trainable_variables)
    tolerance = {tf.float32: (2e-4, 2e-5), tf.float16: (2e-2, 2e-2)}[dtype]
    for got, want in zip(grads(x), stepped):
        np.testing.assert_allclose(got, want, rtol=tolerance[0], atol=tolerance[1])


def test_mixed_precision_static_unroll_casts_each_variable_once_after_the_first_step():
    core = rnn.DNC(  # (stepped: no fast path)
        3,
        memory_size=4,
        word_size=2,
        num_reads=1,
        dtype=tf.float32,
        controller=rnn.LSTM(8, dtype=tf.float32),
    )

    def casts(steps):
        fn = tf.function(
            lambda x: rnn.static_unroll(core, x, core.initial_state(2, dtype=tf.float16))[0]
        )
        graph = fn.get_concrete_function(tf.TensorSpec([steps, 2, 3], tf.float16)).graph
        return sum(
            op.type == "Cast" and op.inputs[0].op.type == "ReadVariableOp"
            for op in graph.get_operations()
        )

    # The first step's casts and one for all later steps, whatever their number.
    assert casts(3) == casts(9) == 2 * len(core.variables)


def test_static_unroll_reads_each_variable_once_after_the_first_step():
    # (De-allocation is not in the compiled DNC kernels: the core is stepped.)
    core = rnn.DNC(3, memory_size=4, word_size=2, num_reads=1, deallocate=True)
    core(tf.zeros([2, 3]), core.initial_state(2))

    def reads(steps):
        fn = tf.function(lambda x: rnn.static_unroll(core, x, core.initial_state(2))[0])
        graph = fn.get_concrete_function(tf.TensorSpec([steps, 2, 3])).graph
        return sum(op.type == "ReadVariableOp" for op in graph.get_operations())

    # The first step and one read for all later steps, whatever their number.
    assert reads(3) == reads(9) == 2 * len(core.variables)
