"""vanilla_sequence's per-example state resets (``reset=``, ``reset_state=``).

Against stepping rnn.VanillaRNN's step function in a Python loop with the
reset applied before each step, differentiated by TF autodiff, on both
programs (the compiled recurrences and the TensorFlow while_loops).
"""

import numpy as np
import pytest
import tensorflow as tf

from rnn.cores import _vanilla_fn
from rnn.ops import portable
from rnn.ops.vanilla import native, sequence, vanilla_sequence
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

vanilla_path = on_both_programs(native)


def stepped(x, h, kernel, rk, bias, hr, **kwargs):
    """The reference: rnn.VanillaRNN's step function with the resets applied."""
    return stepped_with_resets(
        lambda x_t, h: _vanilla_fn(x_t, h, kernel, rk, bias, tf.tanh)[0], x, h, hr, **kwargs
    )


def fast(x, h0, kernel, rk, bias, hr, *, reset, **kwargs):
    return vanilla_sequence(x, h0, kernel, rk, bias, reset=reset, reset_state=hr, **kwargs)


def _args(seed=0, dtype=np.float32, steps=T, batch=B, hidden=H):
    rng = np.random.default_rng(seed)
    shapes = [(steps, batch, I), (batch, hidden), (I, hidden), (hidden, hidden), (hidden,)]
    shapes.append((batch, hidden))
    return [tf.constant((rng.normal(size=s) * 0.7).astype(dtype)) for s in shapes]


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_matches_stepping_the_cell(mode, reverse, lengths):
    args = _args()
    kwargs = dict(sequence_length=lengths, reverse=reverse)
    want = _values_and_grads(stepped, args, reset=tf.constant(RESET), **kwargs)
    run = lambda *a: _values_and_grads(fast, a[:-1], reset=a[-1], **kwargs)  # noqa: E731
    if mode != "eager":
        run = tf.function(run, jit_compile=mode == "xla")
    _assert_close(run(*args, tf.constant(RESET)), want)


def test_unknown_time_and_batch_in_tf_function():
    spec = [
        tf.TensorSpec([None, None, I]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([I, H]),
        tf.TensorSpec([H, H]),
        tf.TensorSpec([H]),
        tf.TensorSpec([None, H]),
        tf.TensorSpec([None, None], tf.bool),
        tf.TensorSpec([None], tf.int32),
    ]

    @tf.function(input_signature=spec)
    def run(*a):
        return _values_and_grads(fast, a[:6], reset=a[6], sequence_length=a[7])

    rng = np.random.default_rng(3)
    for steps, batch in [(2, 1), (7, 5)]:
        args = _args(seed=steps, steps=steps, batch=batch)
        reset = rng.random([steps, batch]) < 0.3
        lengths = rng.integers(0, steps + 1, size=batch).astype(np.int32)
        want = _values_and_grads(stepped, args, reset=tf.constant(reset), sequence_length=lengths)
        _assert_close(run(*args, tf.constant(reset), tf.constant(lengths)), want)


def test_a_reset_cuts_the_initial_state_off():
    args = _args(seed=4)
    reset = np.zeros([T, B], bool)
    reset[0] = True
    got = _values_and_grads(fast, args, reset=reset)
    assert not np.any(got[3].numpy())  # d_h0
    out, h = vanilla_sequence(args[0], args[5], *args[2:5])
    np.testing.assert_allclose(got[0].numpy(), out.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1].numpy(), h.numpy(), rtol=1e-6, atol=1e-6)


def test_float16():
    args = _args(seed=6)
    kwargs = dict(reset=RESET, sequence_length=LENGTHS, reverse=True)
    want = _values_and_grads(fast, args, **kwargs)
    got = _values_and_grads(fast, [tf.cast(a, tf.float16) for a in args], **kwargs)
    for name, g, w in zip(NAMES, got, want):
        assert g.dtype == tf.float16, name
        scale = max(1.0, float(tf.reduce_max(tf.abs(w))))
        np.testing.assert_allclose(
            tf.cast(g, tf.float32).numpy() / scale, w.numpy() / scale, atol=0.05, err_msg=name
        )


@pytest.mark.parametrize("threads", ["2", "3"])
def test_kernels_do_not_depend_on_the_thread_count(threads, monkeypatch, vanilla_path):
    if vanilla_path != "kernels":
        pytest.skip("the thread count is the kernels'")
    args = _args(seed=8, steps=5, batch=20, hidden=40)
    reset = np.random.default_rng(8).random([5, 20]) < 0.3
    kwargs = dict(reset=reset, sequence_length=[5, 0, 2, 4] * 5, reverse=True)
    monkeypatch.setenv("RNN_GRU_THREADS", "1")
    want = _values_and_grads(fast, args, **kwargs)
    monkeypatch.setenv("RNN_GRU_THREADS", threads)
    for g, w in zip(_values_and_grads(fast, args, **kwargs), want):
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    with portable():
        _assert_close(_values_and_grads(fast, args, **kwargs), want)


def test_graphs_hold_tf_ops_and_the_kernels_run(vanilla_path):
    args = _args(seed=9)
    step = tf.function(lambda *a: _values_and_grads(fast, a, reset=RESET))
    assert not any(t.startswith("Rnn") for t in op_types(step.get_concrete_function(*args)))
    ops = ("RnnVanillaForward", "RnnVanillaBackward")
    _, runs = kernel_runs(native.LIBRARY, ops, step, *args)
    assert runs == ((1, 1) if vanilla_path == "kernels" else (0, 0))


def test_the_program_without_resets_is_untouched():
    for resets in (False, True):
        variant = (tf.float32, False, False, resets)
        for which in ("fwd", "bwd"):
            concrete = sequence.PROGRAMS.get(variant, which, "tf")
            bools = [s for s in concrete.structured_input_signature[0] if s.dtype == tf.bool]
            assert bool(bools) == resets, which
            if not resets:
                assert not {"Select", "SelectV2"} & op_types(concrete), which


def test_bad_reset_arguments_raise_clear_errors():
    x, h0, kernel, rk, bias, hr = _args()
    name = "vanilla_sequence"
    with pytest.raises(ValueError, match=f"{name}: reset is given but reset_state is None"):
        vanilla_sequence(x, h0, kernel, rk, bias, reset=RESET)
    with pytest.raises(ValueError, match=f"{name}: reset_state is given but reset is None"):
        vanilla_sequence(x, h0, kernel, rk, bias, reset_state=hr)
    with pytest.raises(TypeError, match=f"{name}: reset must be a bool"):
        vanilla_sequence(x, h0, kernel, rk, bias, reset=RESET.astype(np.float32), reset_state=hr)
    with pytest.raises(ValueError, match=rf"{name}: reset.shape\[0\] should be 6"):
        vanilla_sequence(x, h0, kernel, rk, bias, reset=RESET[:2], reset_state=hr)
    with pytest.raises(TypeError, match=f"{name}: reset_state has dtype float64"):
        vanilla_sequence(x, h0, kernel, rk, bias, reset=RESET, reset_state=tf.cast(hr, tf.float64))
    with pytest.raises(ValueError, match=rf"{name}: reset_state.shape\[1\] should be 5"):
        vanilla_sequence(x, h0, kernel, rk, bias, reset=RESET, reset_state=hr[:, :4])
