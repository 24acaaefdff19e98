"""rnn.truncated_bptt: chunked training equals the chunk-by-chunk loop, memory grows with K."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn

T, B, I = 11, 3, 2
LENGTHS = [11, 6, 0]


def _loss(outputs, targets, lengths):
    error = tf.reduce_sum((outputs[..., :1] - targets) ** 2, axis=-1)
    return tf.reduce_mean(error)


def _by_hand(core, x, y, k, lengths=None, reset=None):
    """The definition: unroll each chunk under its own tape, step, carry the state."""
    opt = keras.optimizers.SGD(0.1)
    state = core.initial_state(B)
    losses = []
    for start in range(0, T, k):
        stop = min(start + k, T)
        chunk_lengths = (
            None if lengths is None else np.clip(np.array(lengths) - start, 0, stop - start)
        )
        with tf.GradientTape() as tape:
            out, state = rnn.dynamic_unroll(
                core,
                x[start:stop],
                state,
                sequence_length=chunk_lengths,
                reset=None if reset is None else reset[start:stop],
            )
            loss = _loss(out, y[start:stop], chunk_lengths)
        grads = tape.gradient(loss, core.trainable_variables)
        opt.apply_gradients(zip(grads, core.trainable_variables))
        state = nestlib.map_structure(tf.stop_gradient, state)
        losses.append(float(loss))
    return losses, state


def _data(rng):
    x = tf.constant(rng.normal(size=[T, B, I]), tf.float32)
    y = tf.constant(rng.normal(size=[T, B, 1]), tf.float32)
    return x, y


def _twins(make):
    a, b = make(), make()
    a(tf.zeros([B, I]), a.initial_state(B))
    b(tf.zeros([B, I]), b.initial_state(B))
    for va, vb in zip(a.variables, b.variables):
        vb.assign(va)
    return a, b


@pytest.mark.parametrize("in_function", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("k", [1, 4, 11, 50])
@pytest.mark.parametrize("extras", ["plain", "lengths+reset"])
def test_truncated_bptt_equals_the_chunk_by_chunk_loop(rng, in_function, k, extras):
    x, y = _data(rng)
    lengths = LENGTHS if extras != "plain" else None
    reset = None
    if extras != "plain":
        reset = np.zeros([T, B], bool)
        reset[[3, 8], 0] = True
        reset = tf.constant(reset)
    ours, theirs = _twins(lambda: rnn.GRU(4))
    want_losses, want_state = _by_hand(theirs, x, y, k, lengths, reset)

    opt = keras.optimizers.SGD(0.1)

    def run():
        return rnn.truncated_bptt(
            ours,
            x,
            ours.initial_state(B),
            chunk_length=k,
            loss_fn=_loss,
            optimizer=opt,
            targets=y,
            sequence_length=lengths,
            reset=reset,
        )

    losses, state = tf.function(run)() if in_function else run()
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, want_state, atol=1e-5)
    for a, b in zip(ours.variables, theirs.variables):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert len(want_losses) == -(-T // k)


def test_batch_major_nested_inputs_and_a_readout_in_the_variables(rng):
    x, y = _data(rng)
    core = rnn.LSTM(3)
    readout = tf.Variable(tf.ones([3, 1]))

    def loss_fn(outputs, targets, lengths):
        del lengths
        return tf.reduce_mean((outputs["a"] @ readout - targets["y"]) ** 2)

    class Wrapped(rnn.RNNCore):
        def __call__(self, inputs, state):
            out, state = core(inputs["x"], state)
            return {"a": out}, state

        def initial_state(self, batch_size, dtype=tf.float32):
            return core.initial_state(batch_size, dtype)

    wrapped = Wrapped()
    core(tf.zeros([B, I]), core.initial_state(B))
    before = [v.numpy() for v in core.variables]
    losses, _ = rnn.truncated_bptt(
        wrapped,
        {"x": tf.transpose(x, [1, 0, 2])},
        wrapped.initial_state(B),
        chunk_length=5,
        loss_fn=loss_fn,
        optimizer=keras.optimizers.Adam(0.01),
        variables=[*core.trainable_variables, readout],
        targets={"y": tf.transpose(y, [1, 0, 2])},
        time_major=False,
    )
    assert losses.shape == [3]
    assert np.abs(readout.numpy() - 1).max() > 0  # the read-out was trained too
    assert all(np.abs(v.numpy() - b).max() > 0 for v, b in zip(core.variables, before))


def test_an_unbuilt_core_is_built_before_the_loop_inside_tf_function(rng):
    x, y = _data(rng)
    core = rnn.LSTM(3)
    opt = keras.optimizers.SGD(0.1)
    train = tf.function(
        lambda: rnn.truncated_bptt(
            core, x, core.initial_state(B), chunk_length=4, loss_fn=_loss, optimizer=opt, targets=y
        )
    )
    losses, _ = train()
    assert len(core.trainable_variables) == 3 and int(opt.iterations) == 3
    assert np.isfinite(losses.numpy()).all()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_grows_with_the_chunk_length_not_the_sequence_length():
    """Peak memory of separate processes: T=5,000 with K=50 is as small as T=500 with K=50."""
    script = textwrap.dedent(
        """
        import sys
        import keras, tensorflow as tf
        import rnn
        T, K = int(sys.argv[1]), int(sys.argv[2])
        core = rnn.LSTM(128)
        x = tf.random.normal([T, 16, 8])
        y = tf.random.normal([T, 16, 1])
        opt = keras.optimizers.SGD(0.01)

        @tf.function
        def train(x, y):
            return rnn.truncated_bptt(
                core, x, core.initial_state(16), chunk_length=K, targets=y,
                loss_fn=lambda o, t, l: tf.reduce_mean((o[..., :1] - t) ** 2),
                optimizer=opt)

        losses, _ = train(x, y)
        assert losses.shape[0] == -(-T // K)
        # VmHWM, this process's own peak (ru_maxrss would keep the parent's
        # peak across fork and exec: a big pytest worker would mask ours).
        with open("/proc/self/status") as f:
            print(next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) // 1024)
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    def peak_mb(t, k):
        done = subprocess.run(
            [sys.executable, "-c", script, str(t), str(k)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return int(done.stdout.split()[-1])

    short, long, long_chunks = peak_mb(500, 50), peak_mb(5000, 50), peak_mb(5000, 1000)
    # An LSTM(128) on 16 examples keeps ~50 KB per step for its backward pass:
    # ~2.5 MB per 50-step chunk, ~50 MB for 1,000 steps, ~250 MB for all 5,000.
    assert long - short < 30, (short, long, long_chunks)
    assert long_chunks - long > 40, (short, long, long_chunks)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(chunk_length=0), ValueError, "chunk_length must be a positive int, got 0"),
        (dict(chunk_length=2.5), TypeError, "chunk_length must be a positive int, got float 2.5"),
        (dict(chunk_length=True), TypeError, "chunk_length must be a positive int, got bool"),
        (dict(loss_fn=3), TypeError, "loss_fn must be callable, got int"),
        (dict(optimizer="sgd"), TypeError, "optimizer must have an apply_gradients method"),
        (dict(variables=[]), ValueError, "there are no variables to train"),
    ],
)
def test_bad_arguments_get_clear_errors(kwargs, error, match):
    core = rnn.VanillaRNN(2)
    args = dict(
        chunk_length=2,
        loss_fn=_loss,
        optimizer=keras.optimizers.SGD(0.1),
        targets=tf.zeros([T, B, 1]),
    )
    args.update(kwargs)
    with pytest.raises(error, match=match):
        rnn.truncated_bptt(core, tf.zeros([T, B, I]), core.initial_state(B), **args)
