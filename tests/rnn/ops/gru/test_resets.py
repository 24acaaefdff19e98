"""gru_sequence's per-example state resets (``reset=``, ``reset_state=``).

Against stepping rnn.GRU's step function in a Python loop with the reset
applied before each step (``h = where(reset_t, reset_state, h)``),
differentiated by TF autodiff: outputs, final state and the gradients of
all six tensors, in both forms, on both programs (the compiled kernels and
the TensorFlow while_loops), forwards and reversed, with and without
lengths, eagerly, in graphs with unknown shapes and under XLA.
"""

import numpy as np
import pytest
import tensorflow as tf

from rnn.cores import _gru_fn
from rnn.ops.gru import gru_sequence, native, sequence
from tests.rnn.ops.exports import serve_without_rnn
from tests.rnn.ops.kernel_runs import kernel_runs, op_types
from tests.rnn.ops.resets import (
    LENGTHS,
    NAMES,
    RESET,
    B,
    T,
    on_both_programs,
    stepped_with_resets,
)
from tests.rnn.ops.resets import (
    assert_close as _assert_close,
)
from tests.rnn.ops.resets import (
    values_and_grads as _values_and_grads,
)

I, H = 3, 5

gru_path = on_both_programs(native)


@pytest.fixture(params=[False, True], ids=["cho", "reset_after"])
def reset_after(request):
    return request.param


def stepped(x, h, kernel, rk, bias, hr, *, reset_after, **kwargs):
    """The reference: rnn.GRU's step function with the resets applied."""
    return stepped_with_resets(
        lambda x_t, h: _gru_fn(x_t, h, kernel, rk, bias, reset_after)[0], x, h, hr, **kwargs
    )


def fast(x, h0, kernel, rk, bias, hr, *, reset, **kwargs):
    return gru_sequence(x, h0, kernel, rk, bias, reset=reset, reset_state=hr, **kwargs)


def _args(reset_after, seed=0, dtype=np.float32, steps=T, batch=B, hidden=H):
    rng = np.random.default_rng(seed)
    bias = (2, 3 * hidden) if reset_after else (3 * hidden,)
    shapes = [
        (steps, batch, I),
        (batch, hidden),
        (I, 3 * hidden),
        (hidden, 3 * hidden),
        bias,
        (batch, hidden),
    ]
    return [tf.constant((rng.normal(size=s) * 0.7).astype(dtype)) for s in shapes]


VARIANTS = [
    dict(),
    dict(reverse=True),
    dict(sequence_length=LENGTHS),
    dict(sequence_length=LENGTHS, reverse=True),
]


@pytest.mark.parametrize("kwargs", VARIANTS, ids=["fwd", "rev", "lengths", "lengths_rev"])
def test_matches_stepping_the_cell_eagerly(kwargs, reset_after):
    args = _args(reset_after)
    kwargs = dict(kwargs, reset=tf.constant(RESET), reset_after=reset_after)
    want = _values_and_grads(stepped, args, **kwargs)
    _assert_close(_values_and_grads(fast, args, **kwargs), want)


@pytest.mark.parametrize("jit", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_graph_and_xla_match_stepping(jit, reverse, reset_after):
    args = _args(reset_after, seed=1)
    kwargs = dict(sequence_length=LENGTHS, reverse=reverse, reset_after=reset_after)
    want = _values_and_grads(stepped, args, reset=tf.constant(RESET), **kwargs)
    run = tf.function(
        lambda *a: _values_and_grads(fast, a[:-1], reset=a[-1], **kwargs), jit_compile=jit
    )
    _assert_close(run(*args, tf.constant(RESET)), want)


def test_unknown_time_and_batch_in_tf_function(reset_after):
    bias = [2, 3 * H] if reset_after else [3 * H]
    spec = [
        tf.TensorSpec([None, None, I]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([I, 3 * H]),
        tf.TensorSpec([H, 3 * H]),
        tf.TensorSpec(bias),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([None, None], tf.bool),
        tf.TensorSpec([None], tf.int32),
    ]

    @tf.function(input_signature=spec)
    def run(*a):
        return _values_and_grads(
            fast, a[:6], reset=a[6], sequence_length=a[7], reverse=True, reset_after=reset_after
        )

    rng = np.random.default_rng(3)
    for steps, batch in [(2, 1), (7, 5)]:
        args = _args(reset_after, seed=steps, steps=steps, batch=batch)
        reset = rng.random([steps, batch]) < 0.3
        lengths = rng.integers(0, steps + 1, size=batch).astype(np.int32)
        want = _values_and_grads(
            stepped,
            args,
            reset=tf.constant(reset),
            sequence_length=lengths,
            reverse=True,
            reset_after=reset_after,
        )
        _assert_close(run(*args, tf.constant(reset), tf.constant(lengths)), want)


def test_a_reset_cuts_the_initial_state_off(reset_after):
    """Every example reset before its first step: h0 gets no gradient at
    all, and the result is that of starting from the reset state."""
    args = _args(reset_after, seed=4)
    for reverse in (False, True):
        reset = np.zeros([T, B], bool)
        reset[T - 1 if reverse else 0] = True
        got = _values_and_grads(fast, args, reset=reset, reverse=reverse, reset_after=reset_after)
        assert not np.any(got[3].numpy())  # d_h0
        start = [*args[:1], args[5], *args[2:5]]
        with tf.GradientTape() as tape:
            tape.watch(start)
            out, h = gru_sequence(*start, reverse=reverse, reset_after=reset_after)
        np.testing.assert_allclose(got[0].numpy(), out.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got[1].numpy(), h.numpy(), rtol=1e-6, atol=1e-6)


def test_no_marks_is_the_plain_result(reset_after):
    args = _args(reset_after, seed=5)
    got = _values_and_grads(
        fast, args, reset=np.zeros([T, B], bool), sequence_length=LENGTHS, reset_after=reset_after
    )
    want = _values_and_grads(
        lambda *a, **k: gru_sequence(*a[:5], **k),
        args,
        sequence_length=LENGTHS,
        reset_after=reset_after,
    )
    _assert_close(got[:7], want[:7], rtol=1e-6, atol=1e-6)
    assert not np.any(got[7].numpy())


def test_float16(reset_after):
    args = _args(reset_after, seed=6)
    kwargs = dict(reset=RESET, sequence_length=LENGTHS, reverse=True, reset_after=reset_after)
    want = _values_and_grads(fast, args, **kwargs)
    got = _values_and_grads(fast, [tf.cast(a, tf.float16) for a in args], **kwargs)
    for name, g, w in zip(NAMES, got, want):
        assert g.dtype == tf.float16, name
        scale = max(1.0, float(tf.reduce_max(tf.abs(w))))
        np.testing.assert_allclose(
            tf.cast(g, tf.float32).numpy() / scale, w.numpy() / scale, atol=0.05, err_msg=name
        )


def test_float64_gradients_match_finite_differences(reset_after):
    args = [tf.cast(a, tf.float64) for a in _args(reset_after, seed=7, steps=3, batch=2)]
    reset = tf.constant([[False, True], [True, False], [True, True]])
    lengths = tf.constant([3, 2])

    def f(*a):
        out, h = fast(
            *a, reset=reset, sequence_length=lengths, reverse=True, reset_after=reset_after
        )
        return tf.reduce_sum(out * tf.sin(out)) + tf.reduce_sum(h * h)

    theoretical, numerical = tf.test.compute_gradient(f, args, delta=1e-5)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("threads", ["2", "3"])
def test_kernels_do_not_depend_on_the_thread_count(threads, monkeypatch, gru_path, reset_after):
    if gru_path != "kernels":
        pytest.skip("the thread count is the kernels'")
    args = _args(reset_after, seed=8, steps=5, batch=20, hidden=40)  # up to five 8-unit shares
    reset = np.random.default_rng(8).random([5, 20]) < 0.3
    kwargs = dict(reset=reset, sequence_length=[5, 0, 2, 4] * 5, reset_after=reset_after)
    monkeypatch.setenv("RNN_GRU_THREADS", "1")
    want = _values_and_grads(fast, args, **kwargs)
    monkeypatch.setenv("RNN_GRU_THREADS", threads)
    for g, w in zip(_values_and_grads(fast, args, **kwargs), want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    with native.portable():
        _assert_close(_values_and_grads(fast, args, **kwargs), want)


def test_graphs_hold_tf_ops_and_the_kernels_run(gru_path, reset_after):
    """With resets as without: no kernel op in a traced graph, the kernels
    run on this CPU all the same (and not when turned off)."""
    args = _args(reset_after, seed=9)
    step = tf.function(lambda *a: _values_and_grads(fast, a, reset=RESET, reset_after=reset_after))
    assert not any(t.startswith("Rnn") for t in op_types(step.get_concrete_function(*args)))
    ops = ("RnnGruForward", "RnnGruBackward")
    _, runs = kernel_runs(native.LIBRARY, ops, step, *args)
    assert runs == ((1, 1) if gru_path == "kernels" else (0, 0))


def _program_ops(variant, which):
    """Op types in a traced TF-ops program and the functions it calls."""
    return op_types(sequence.PROGRAMS.get(variant, which, "tf"))


def test_the_program_without_resets_is_untouched(reset_after):
    """Without ``reset`` the programs take no reset inputs and select
    nothing (unmasked): they are the programs of before."""
    for resets in (False, True):
        variant = (tf.float32, reset_after, False, False, resets)
        for which in ("fwd", "bwd"):
            concrete = sequence.PROGRAMS.get(variant, which, "tf")
            bools = [s for s in concrete.structured_input_signature[0] if s.dtype == tf.bool]
            if resets:
                assert bools, which
            else:
                assert not bools, which
                assert not {"Select", "SelectV2"} & _program_ops(variant, which), which

    @tf.function
    def run(*a):
        return gru_sequence(*a[:5], reset_after=reset_after)

    graph = run.get_concrete_function(*_args(reset_after)).graph.as_graph_def()
    for f in graph.library.function:  # the programs it calls take no bool (reset) input
        assert all(a.type != tf.bool.as_datatype_enum for a in f.signature.input_arg), f.signature


def test_bad_reset_arguments_raise_clear_errors():
    x, h0, kernel, rk, bias, hr = _args(False)
    with pytest.raises(ValueError, match="gru_sequence: reset is given but reset_state is None"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET)
    with pytest.raises(ValueError, match="gru_sequence: reset_state is given but reset is None"):
        gru_sequence(x, h0, kernel, rk, bias, reset_state=hr)
    with pytest.raises(TypeError, match="gru_sequence: reset must be a bool"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET.astype(np.int32), reset_state=hr)
    with pytest.raises(ValueError, match="gru_sequence: reset must be a bool"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET[0], reset_state=hr)
    with pytest.raises(ValueError, match=r"gru_sequence: reset.shape\[0\] should be 6"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET[:5], reset_state=hr)
    with pytest.raises(ValueError, match=r"gru_sequence: reset.shape\[1\] should be 4"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET[:, :3], reset_state=hr)
    with pytest.raises(TypeError, match="gru_sequence: reset_state has dtype float64"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET, reset_state=tf.cast(hr, tf.float64))
    with pytest.raises(ValueError, match="gru_sequence: reset_state must have rank 2"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET, reset_state=hr[0])
    with pytest.raises(ValueError, match=r"gru_sequence: reset_state.shape\[0\] should be 4"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET, reset_state=hr[:3])
    with pytest.raises(ValueError, match=r"gru_sequence: reset_state.shape\[1\] should be 5"):
        gru_sequence(x, h0, kernel, rk, bias, reset=RESET, reset_state=hr[:, :4])


def test_saved_model_with_resets_loads_without_rnn(tmp_path, reset_after):
    args = _args(reset_after, seed=10)

    class Model(tf.Module):
        def __init__(self):
            self.weights = [tf.Variable(a) for a in args[2:5]]

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, I], name="x"),
                tf.TensorSpec([None, None], tf.bool, name="reset"),
            ]
        )
        def run(self, x, reset):
            zeros = tf.zeros([tf.shape(x)[1], H])
            ones = tf.ones([tf.shape(x)[1], H])
            return fast(x, zeros, *self.weights, ones, reset=reset, reset_after=reset_after)[0]

    m = Model()
    want = m.run(args[0], RESET).numpy()
    tf.saved_model.save(m, str(tmp_path / "module"), signatures=m.run.get_concrete_function())
    got = serve_without_rnn(tmp_path / "module", tmp_path, x=args[0].numpy(), reset=RESET)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
