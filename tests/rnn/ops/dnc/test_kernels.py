"""The compiled DNC kernels (rnn/ops/dnc/kernels.c) behind rnn.DNC's fast path.

The reference is the DNC stepped by the unrollers (its addressing is checked
against NumPy in tests/rnn/dnc): the kernels must give the same outputs,
final states and gradients (inputs, every variable, every initial-state
tensor) under every option of the unrollers; be used exactly where they
apply (float32, an LSTM controller, one write head, no options, outside
XLA) and nowhere else; keep exported graphs plain TensorFlow; and not depend
on the thread count.
"""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn.ops._build import compiler
from rnn.ops.dnc import dnc_sequence, native
from tests.rnn.ops.exports import serve_without_rnn
from tests.rnn.ops.kernel_runs import kernel_runs, op_types

needs_kernels = pytest.mark.skipif(
    compiler() is None, reason="no C compiler: the DNC kernels cannot be built here"
)
OPS = ("RnnDncForward", "RnnDncBackward")


def test_kernels_are_built_where_a_compiler_exists():
    """Fails (rather than skips) when a compiler could have built them."""
    if not rnn.kernels_available("dnc"):
        if compiler() is not None:
            pytest.fail(
                "a C compiler exists but the DNC kernels are not available: "
                f"{rnn.kernel_info()['dnc'].reason}"
            )
        pytest.skip("no C compiler here: the DNC is stepped")


@contextlib.contextmanager
def stepped():
    """Traces and eager calls inside step the DNC (no fast path)."""
    previous = native.set_native_kernels(False)
    try:
        yield
    finally:
        native.set_native_kernels(previous)


def _runs(fn, *args):
    return kernel_runs(native.LIBRARY, OPS, fn, *args)


def _dnc(seed=0, batch=4, **kwargs):
    """A small DNC with built, seeded variables and a non-zero state to start from."""
    tf.random.set_seed(seed)
    options = dict(memory_size=6, word_size=4, num_reads=3, clip_value=3.0)
    options.update(kwargs)
    dnc = rnn.DNC(5, **options)
    state = dnc.initial_state(batch)
    rng = np.random.default_rng(seed)
    with stepped():
        for _ in range(3):  # some memory, links, usage and read weights
            _, state = dnc(tf.constant(rng.normal(size=(batch, 3)), tf.float32), state)
    return dnc, tf.nest.map_structure(tf.identity, state)


def _unroll_and_grads(dnc, x, state, **unroll_args):
    """Outputs, final state and the gradients of a loss of all of them with
    respect to the inputs, the variables and the initial state."""
    flat_state = tf.nest.flatten(state)
    with tf.GradientTape() as tape:
        tape.watch([x, *flat_state])
        out, final = rnn.dynamic_unroll(dnc, x, state, **unroll_args)
        weights = tf.cos(tf.range(5, dtype=tf.float32))
        loss = tf.reduce_sum(out * weights) + sum(
            tf.reduce_sum(tf.sin(f + float(i))) for i, f in enumerate(tf.nest.flatten(final))
        )
    grads = tape.gradient(
        loss,
        [x, *dnc.trainable_variables, *flat_state],
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return [out, *tf.nest.flatten(final), *grads]


def _assert_close(got, want, **tolerances):
    tolerances = tolerances or dict(rtol=2e-5, atol=2e-6)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g.numpy(), w.numpy(), err_msg=f"result {i}", **tolerances)


def _inputs(time_major=True, steps=7, seed=1, batch=4):
    x = np.random.default_rng(seed).normal(size=(steps, batch, 3)).astype(np.float32)
    return tf.constant(x if time_major else x.transpose(1, 0, 2))


@needs_kernels
@pytest.mark.parametrize("lengths", [None, [7, 3, 0, 6]], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("time_major", [True, False], ids=["time_major", "batch_major"])
@pytest.mark.parametrize("mode", ["eager", "function", "unknown_batch"])
def test_the_fast_path_gives_what_stepping_gives(lengths, reverse, time_major, mode):
    """Outputs (zeros past the lengths), final states (at the last valid step)
    and the gradients of the inputs, of every variable and of every
    initial-state tensor, as stepping the core gives them."""
    dnc, state = _dnc()
    x = _inputs(time_major)
    args = dict(reverse=reverse, time_major=time_major)
    if lengths is not None:
        args["sequence_length"] = tf.constant(lengths)

    def run(x, state):
        return _unroll_and_grads(dnc, x, state, **args)

    fn = run
    if mode != "eager":
        fn = tf.function(run)
        if mode == "unknown_batch":
            spec = tf.TensorSpec([None, None, 3], tf.float32)
            state_spec = tf.nest.map_structure(
                lambda s: tf.TensorSpec([None, *s.shape[1:]], s.dtype), state
            )
            fn = fn.get_concrete_function(spec, state_spec)
    got, runs = _runs(fn, x, state)
    assert runs == (1, 1)
    with stepped():
        want, runs = _runs(run, x, state)
    assert runs == (0, 0)
    _assert_close(got, want)
    if lengths is not None:  # zeros past each length, in input time order
        out = got[0].numpy() if time_major else got[0].numpy().transpose(1, 0, 2)
        assert not out[3:, 1].any() and not out[:, 2].any()


@needs_kernels
def test_the_kernels_run_where_they_apply_and_nowhere_else():
    """Used eagerly, in functions and in static unrolls; not under XLA, for
    another dtype, another controller, two write heads, the options of
    Csordás & Schmidhuber, state sequences, nor when turned off: there the
    DNC is stepped, with the same results where both apply."""
    dnc, state = _dnc()
    x = _inputs()

    def out_of(dnc, state, x=x):
        return rnn.dynamic_unroll(dnc, x, state)[0]

    want, runs = _runs(out_of, dnc, state)
    assert runs == (1, 0)
    got, runs = _runs(tf.function(out_of), dnc, state)
    assert runs == (1, 0)
    _assert_close([got], [want])
    got, runs = _runs(lambda: rnn.static_unroll(dnc, x, state)[0])
    assert runs == (1, 0)
    _assert_close([got], [want])
    got, runs = _runs(tf.function(out_of, jit_compile=True), dnc, state)
    assert runs == (0, 0)  # XLA fuses the stepped DNC's small ops itself
    _assert_close([got], [want], rtol=1e-4, atol=1e-5)
    assert _runs(lambda: rnn.dynamic_unroll(dnc, x, state, return_all_states=True))[1] == (0, 0)
    with stepped():
        assert _runs(out_of, dnc, state)[1] == (0, 0)
        off = tf.function(out_of)
        off.get_concrete_function(dnc, state)
    assert _runs(off, dnc, state)[1] == (0, 0)  # traced without: never, wherever it runs
    with native.portable():
        assert _runs(out_of, dnc, state)[1] == (0, 0)
    for other in (
        rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, controller=rnn.GRU(8)),
        rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, num_writes=2),
        rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, deallocate=True),
        rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, masked_content=True),
        rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, sharpen_links=True),
        rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, controller=rnn.LSTM(8, cell_clip=1.0)),
    ):
        assert _runs(out_of, other, other.initial_state(4))[1] == (0, 0)
    wide = rnn.DNC(5, memory_size=6, word_size=4, num_reads=3, dtype=tf.float64)
    x64 = tf.cast(x, tf.float64)
    assert _runs(lambda: out_of(wide, wide.initial_state(4, tf.float64), x64))[1] == (0, 0)


@needs_kernels
def test_a_first_call_builds_the_variables_and_matches_stepping():
    """The fast path on a DNC whose variables do not exist yet builds them
    (as a step would) and gives a second, stepped, DNC's results."""
    fast = rnn.DNC(5, memory_size=6, word_size=4, num_reads=3)
    slow = rnn.DNC(5, memory_size=6, word_size=4, num_reads=3)
    x = _inputs()
    tf.random.set_seed(3)
    got, runs = _runs(lambda: rnn.dynamic_unroll(fast, x, fast.initial_state(4))[0])
    assert runs == (1, 0)
    tf.random.set_seed(3)
    with stepped():
        want = rnn.dynamic_unroll(slow, x, slow.initial_state(4))[0]
    assert [v.name for v in fast.variables] == [v.name for v in slow.variables]
    _assert_close([got], [want])


@needs_kernels
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_each_program_takes_the_other_forms_results(masked):
    """The runtime picks the forward and the backward program separately, so
    either backward program on either forward program's results gives the
    same gradients (the TF-ops forward's tape is empty: the compiled backward
    runs the forward pass again)."""
    from rnn.ops.dnc import sequence

    dnc, state = _dnc()
    lstm, layer = dnc.controller, dnc.access.interface_layer
    x = _inputs()
    zx = tf.einsum("tbi,ig->tbg", x, lstm.kernel[:3]) + lstm.bias
    flat = [state.controller_state.hidden, state.controller_state.cell, state.access_output]
    flat += tf.nest.flatten(state.access_state)
    args = [zx, lstm.kernel[3:], lstm.recurrent_kernel, layer.w, layer.b, *flat]
    tail = [tf.constant([[True] * 4] * 3 + [[True, False, True, False]] * 4)] if masked else []
    variant = (tf.float32, masked, 64, 3, 4, 6)
    results = {}
    for fwd_form in ("native", "tf"):
        values = sequence.PROGRAMS.get(variant, "fwd", fwd_form)(*args, *tail)
        values, saved = values[:11], values[11:]
        grads = [tf.sin(v * 3.0 + 1.0) for v in values]
        for bwd_form in ("native", "tf"):
            results[fwd_form, bwd_form] = [
                *values,
                *sequence.PROGRAMS.get(variant, "bwd", bwd_form)(*grads, *args, *saved, *tail),
            ]
    assert saved[2].shape[0] == 0  # the TF-ops forward's tape
    want = results["tf", "tf"]
    for got in results.values():
        _assert_close(got, want, rtol=1e-4, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_results_do_not_depend_on_the_thread_count(threads, monkeypatch):
    dnc, state = _dnc(batch=20)  # blocks of 8 rows (AVX2): two, and one of 4
    x = _inputs(batch=20)
    lengths = tf.constant([7, 2, 0, 5, 7, 1, 3, 7, 6, 4, 7, 7, 3, 0, 1, 6, 7, 2, 5, 7])
    monkeypatch.setenv("RNN_DNC_THREADS", "1")
    want = _unroll_and_grads(dnc, x, state, sequence_length=lengths)
    monkeypatch.setenv("RNN_DNC_THREADS", threads)
    got = _unroll_and_grads(dnc, x, state, sequence_length=lengths)
    for g, w in zip(got, want):  # each row is computed the same way by any thread
        np.testing.assert_array_equal(g.numpy(), w.numpy())


@needs_kernels
def test_nan_in_the_padding_stays_there():
    """Inputs past an example's length reach nothing, NaN included."""
    dnc, state = _dnc()
    x = _inputs().numpy()
    x[5:, 1] = np.nan
    got = _unroll_and_grads(dnc, tf.constant(x), state, sequence_length=tf.constant([7, 5, 7, 7]))
    for i, g in enumerate(got):
        if i == 1 + 9:  # the inputs' gradient: NaN only where the inputs are
            assert not np.isnan(np.delete(g.numpy(), 1, axis=1)).any()
        else:
            assert not np.isnan(g.numpy()).any(), i


@needs_kernels
def test_gradients_are_first_order_only():
    dnc, state = _dnc()
    x = _inputs()
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = tf.reduce_sum(rnn.dynamic_unroll(dnc, x, state)[0] ** 2)
        penalty = tf.reduce_sum(inner.gradient(loss, x) ** 2)
    with pytest.raises(NotImplementedError, match="first-order gradients only"):
        outer.gradient(penalty, x)


def test_dnc_sequence_refuses_bad_arguments():
    dnc, state = _dnc()
    lstm, layer = dnc.controller, dnc.access.interface_layer
    flat = [state.controller_state.hidden, state.controller_state.cell, state.access_output]
    flat += tf.nest.flatten(state.access_state)
    weights = [lstm.kernel, lstm.recurrent_kernel, lstm.bias, layer.w, layer.b]
    x = _inputs()
    with pytest.raises(ValueError, match="state must have 9 tensors"):
        dnc_sequence(x, flat[:8], *weights)
    with pytest.raises(ValueError, match="inputs must have rank 3"):
        dnc_sequence(x[0], flat, *weights)
    with pytest.raises(TypeError, match="kernel has dtype float64"):
        dnc_sequence(x, flat, tf.cast(lstm.kernel, tf.float64), *weights[1:])
    with pytest.raises(ValueError, match="must have rank 2"):
        dnc_sequence(x, [flat[0][0], *flat[1:]], *weights)
    with pytest.raises(ValueError, match="one write head only"):
        two = [*flat[:5], tf.concat([flat[5]] * 2, 1), *flat[6:]]
        dnc_sequence(x, two, *weights)


@needs_kernels
def test_kernels_refuse_malformed_inputs():
    ops = native.LIBRARY.load()
    dnc, state = _dnc()
    lstm, layer = dnc.controller, dnc.access.interface_layer
    flat = [state.controller_state.hidden, state.controller_state.cell, state.access_output]
    flat += tf.nest.flatten(state.access_state)
    zx = tf.zeros([7, 4, 256])
    args = [zx, lstm.kernel[3:], lstm.recurrent_kernel, layer.w, layer.b, *flat]
    none = tf.zeros([0], tf.bool)
    outs = ops.rnn_dnc_forward(*args, none)
    assert [o.shape.as_list() for o in outs[:3]] == [[7, 4, 64], [7, 4, 3, 4], [4, 64]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="read_kernel has dimension 0"):
        ops.rnn_dnc_forward(zx, lstm.kernel, *args[2:], none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="link0 must have rank 4"):
        ops.rnn_dnc_forward(*args[:11], flat[6][:, 0], *args[12:], none)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask has dimension 0"):
        ops.rnn_dnc_forward(*args, tf.zeros([3, 4], tf.bool))
    grads = [tf.ones_like(o) for o in outs[:11]]
    d = ops.rnn_dnc_backward(*args, none, outs[11], *grads)
    assert d[0].shape == zx.shape and d[1].shape == (7, 4, layer.b.shape[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="tape has dimension 0"):
        ops.rnn_dnc_backward(*args, none, outs[11][1:], *grads)
    with pytest.raises(tf.errors.InvalidArgumentError, match="d_usage has dimension 1"):
        ops.rnn_dnc_backward(*args, none, outs[11], *grads[:10], grads[10][:, 1:])


@needs_kernels
def test_saved_models_load_without_rnn(tmp_path):
    """A DNC traced with the kernels exports plain TensorFlow: the SavedModel
    runs where rnn is not, with the same outputs."""
    dnc, _ = _dnc()
    spec = tf.TensorSpec([None, 4, 3])

    class Model(tf.Module):
        def __init__(self):
            self.dnc = dnc

        @tf.function(input_signature=[spec])
        def run(self, x):
            return rnn.dynamic_unroll(self.dnc, x, self.dnc.initial_state(4))[0]

    m = Model()
    x = _inputs()
    want, runs = _runs(m.run, x)
    assert runs == (1, 0)
    assert not any(t.startswith("Rnn") for t in op_types(m.run.get_concrete_function(spec)))
    tf.saved_model.save(m, str(tmp_path / "dnc"), signatures=m.run)
    got = serve_without_rnn(tmp_path / "dnc", tmp_path, x=x.numpy())
    np.testing.assert_allclose(got, want.numpy(), rtol=2e-5, atol=2e-6)
