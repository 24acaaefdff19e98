"""One training step for every core; checkpoints, SavedModel, distribution, dtypes."""

import functools

import numpy as np
import pytest
import tensorflow as tf

import rnn

T, B, I = 4, 3, 3
LR = 0.1


def train_step(core, x, y):
    """The one training step used, unchanged, for every core and combinator."""
    with tf.GradientTape() as tape:
        out, _ = rnn.dynamic_unroll(core, x, core.initial_state(tf.shape(x)[1], x.dtype))
        pred = tf.reduce_mean(tf.cast(out, tf.float32), axis=-1)
        loss = tf.reduce_mean(tf.square(pred - y))
    variables = core.trainable_variables
    grads = tape.gradient(loss, variables)
    for v, g in zip(variables, grads):
        v.assign_sub(tf.cast(LR, v.dtype) * g)
    return loss, grads


CORES = {
    "vanilla": lambda: rnn.VanillaRNN(4),
    "lstm": lambda: rnn.LSTM(4),
    "lstm_extras": lambda: rnn.LSTM(4, projection_size=2, use_layer_norm=True, cell_clip=3.0),
    "gru": lambda: rnn.GRU(4),
    "gru_reset_after": lambda: rnn.GRU(4, reset_after=True),
    "lstm_dropout": lambda: rnn.lstm_with_recurrent_dropout(4, dropout=0.25, seed=1)[0],
    "deep": lambda: rnn.DeepRNN([rnn.LSTM(4), tf.nn.tanh, rnn.GRU(3)]),
    "skip": lambda: rnn.deep_rnn_with_skip_connections([rnn.GRU(3), rnn.LSTM(2)]),
    "residual": lambda: rnn.deep_rnn_with_residual_connections([rnn.LSTM(I), rnn.GRU(I)]),
    "dnc": lambda: rnn.DNC(2, controller=rnn.LSTM(4), memory_size=3, word_size=2, num_reads=1),
    "dnc_deep_controller": lambda: rnn.DNC(
        2,
        controller=rnn.DeepRNN([rnn.GRU(3), rnn.LSTM(3)]),
        memory_size=3,
        word_size=2,
        num_reads=2,
    ),
}
SPEC = [tf.TensorSpec([None, None, I], tf.float32), tf.TensorSpec([None, None], tf.float32)]


def _data(rng, batch=B):
    x = rng.normal(size=(T, batch, I)).astype(np.float32)
    y = np.tanh(np.cumsum(x.sum(-1), axis=0) / 3).astype(np.float32)
    return tf.constant(x), tf.constant(y)


# Every core in every mode, except the DNC with a DeepRNN controller under XLA:
# the plain DNC covers XLA and that case would only add compile time.
TRAIN_CASES = [
    (name, mode)
    for name in CORES
    for mode in ("eager", "function", "jit")
    if (name, mode) != ("dnc_deep_controller", "jit")
]


@pytest.mark.parametrize("name,mode", TRAIN_CASES, ids=[f"{n}-{m}" for n, m in TRAIN_CASES])
def test_same_training_step_trains_every_core(rng, name, mode):
    core = CORES[name]()
    step = functools.partial(train_step, core)
    if mode != "eager":
        # An input signature with unknown time and batch: one graph for all calls.
        step = tf.function(step, input_signature=SPEC, jit_compile=(mode == "jit"))
    x, y = _data(rng)
    losses = []
    for i in range(4):
        loss, grads = step(x, y)
        losses.append(float(loss))
        if i == 0:
            assert len(grads) == len(core.trainable_variables) > 0
            for v, g in zip(core.trainable_variables, grads):
                assert g is not None, f"no gradient reaches {v.name}"
                g = g.numpy()
                assert np.isfinite(g).all(), v.name
                assert np.abs(g).max() > 0, f"zero gradient for {v.name}"
    assert all(np.isfinite(losses))
    if name != "lstm_dropout":  # fresh random masks each step make single steps noisy
        assert losses[-1] < losses[0], losses
    if mode != "jit":  # (under XLA a new batch size is only a recompile; skip the cost)
        # Batch size 1 through the same step (and, for tf.function, the same graph).
        x1, y1 = _data(rng, batch=1)
        loss1, _ = step(x1, y1)
        assert np.isfinite(float(loss1))


def test_checkpoint_save_and_restore(rng, tmp_path):
    def make():
        return rnn.DeepRNN([rnn.LSTM(4), rnn.GRU(3, reset_after=True)])

    core = make()
    learned = rnn.TrainableState.for_core(core)
    x, y = _data(rng)
    train_step(core, x, y)  # creates and changes the variables
    expected, _ = rnn.dynamic_unroll(core, x, learned(B))
    path = tf.train.Checkpoint(core=core, state=learned).save(str(tmp_path / "ckpt"))

    fresh, fresh_state = make(), rnn.TrainableState.for_core(make())
    status = tf.train.Checkpoint(core=fresh, state=fresh_state).restore(path)
    # The fresh core makes its variables on first use; the restore is applied then.
    restored, _ = rnn.dynamic_unroll(fresh, x, fresh_state(B))
    status.assert_consumed()
    np.testing.assert_allclose(restored.numpy(), expected.numpy(), rtol=1e-6)


class _Exported(tf.Module):
    def __init__(self):
        super().__init__()
        self.core = rnn.DeepRNN([rnn.LSTM(4), rnn.GRU(3)])

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, I], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def run(self, x, lengths):
        out, state = rnn.dynamic_unroll(
            self.core,
            x,
            self.core.initial_state(tf.shape(x)[1]),
            sequence_length=lengths,
            reverse=True,
        )
        return {"outputs": out, "cell": state[0].cell, "gru": state[1]}


def test_saved_model_runs_after_reload(rng, tmp_path):
    module = _Exported()
    x, _ = _data(rng)
    lengths = tf.constant([T, 2, 1])
    expected = module.run(x, lengths)  # creates the variables
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    got = loaded.run(x, lengths)
    # The export holds the TF-ops programs, this process ran the compiled
    # kernels: the same maths up to float rounding.
    for key in expected:
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), rtol=1e-5, atol=1e-7)
    # Unknown time and batch survive the export.
    other = loaded.run(x[:2, :1], tf.constant([2]))
    assert other["outputs"].shape == (2, 1, 3)


def test_mirrored_strategy_two_cpus(rng, two_cpus):
    strategy = tf.distribute.MirroredStrategy(two_cpus)
    assert strategy.num_replicas_in_sync == 2
    x, y = _data(rng, batch=4)
    with strategy.scope():
        core = rnn.DeepRNN([rnn.LSTM(4), rnn.GRU(3)])
        core(tf.zeros([1, I]), core.initial_state(1))  # variables made under the scope
    reference = rnn.DeepRNN([rnn.LSTM(4), rnn.GRU(3)])
    reference(tf.zeros([1, I]), reference.initial_state(1))
    for v, w in zip(reference.trainable_variables, core.trainable_variables):
        v.assign(w.read_value())

    def replica_grads(x, y):
        with tf.GradientTape() as tape:
            out, _ = rnn.dynamic_unroll(core, x, core.initial_state(tf.shape(x)[1]))
            loss = tf.reduce_mean(tf.square(tf.reduce_mean(out, -1) - y))
        return loss, tape.gradient(loss, core.trainable_variables)

    halves = [(x[:, :2], y[:, :2]), (x[:, 2:], y[:, 2:])]
    dist_x = strategy.experimental_distribute_values_from_function(
        lambda ctx: halves[ctx.replica_id_in_sync_group][0]
    )
    dist_y = strategy.experimental_distribute_values_from_function(
        lambda ctx: halves[ctx.replica_id_in_sync_group][1]
    )

    @tf.function
    def distributed_step(x, y):
        loss, grads = strategy.run(replica_grads, args=(x, y))
        mean = tf.distribute.ReduceOp.MEAN
        loss = strategy.reduce(mean, loss, axis=None)
        grads = [strategy.reduce(mean, g, axis=None) for g in grads]
        for v, g in zip(core.trainable_variables, grads):
            v.assign_sub(LR * g)
        return loss, grads

    loss, grads = distributed_step(dist_x, dist_y)
    ref_loss, ref_grads = train_step(reference, x, y)  # one device, whole batch
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-4, atol=1e-6)
    for v, r in zip(core.trainable_variables, reference.trainable_variables):
        for replica_value in strategy.experimental_local_results(v):
            np.testing.assert_allclose(replica_value.numpy(), r.numpy(), rtol=1e-5, atol=1e-7)


HALF_CORES = ["vanilla", "lstm", "lstm_extras", "gru_reset_after", "deep", "dnc"]


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", HALF_CORES)
def test_half_precision(rng, name, dtype):
    x, y = _data(rng)
    full = CORES[name]()
    full_out, _ = rnn.dynamic_unroll(full, x, full.initial_state(B))
    half = CORES[name]()
    xh = tf.cast(x, dtype)
    half_out, half_state = rnn.dynamic_unroll(half, xh, half.initial_state(B, dtype))
    assert half_out.dtype == dtype
    assert all(
        leaf.dtype == dtype
        for leaf in tf.nest.flatten(half_state)
        if leaf is not None and leaf.dtype.is_floating
    )
    for v, w in zip(half.variables, full.variables):
        assert v.dtype == dtype
        v.assign(tf.cast(w, dtype))
    half_out, _ = rnn.dynamic_unroll(half, xh, half.initial_state(B, dtype))
    tol = 2e-2 if dtype == tf.float16 else 8e-2
    np.testing.assert_allclose(
        tf.cast(half_out, tf.float32).numpy(), full_out.numpy(), atol=tol, rtol=tol
    )
    loss, grads = tf.function(functools.partial(train_step, half))(xh, y)
    assert np.isfinite(float(loss))
    assert all(np.isfinite(tf.cast(g, tf.float32).numpy()).all() for g in grads)
