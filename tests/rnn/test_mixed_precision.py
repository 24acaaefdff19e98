"""Mixed precision: float32 variables, float16 / bfloat16 inputs and state.

As with Keras' ``mixed_float16`` / ``mixed_bfloat16`` policies, every core
(and ``rnn.Linear``) built with float32 variables runs float16 or bfloat16
inputs and state: the variables stay float32 (their gradients are float32,
an optimizer updates them in float32) and are cast to the inputs' dtype on
each call. Each test runs one core (one set of float32 variables) in float32
and in the lower precision and compares.

Tolerances (elementwise ``|half - full| <= TOL * (1 + |full|)`` for outputs
and states, relative norm ``||g_half - g_full|| <= GRAD_TOL * ||g_full||``
per variable for gradients), for T = 8 steps of these small random cores:

* float16 (11-bit significand, unit roundoff 4.9e-4): ``TOL = 1e-2``,
  ``GRAD_TOL = 2e-2``;
* bfloat16 (8-bit significand, unit roundoff 3.9e-3): ``TOL = 5e-2``,
  ``GRAD_TOL = 1e-1``.

Observed errors are several times smaller (float16 about 1e-3, bfloat16
about 1e-2 on the outputs); the margins cover error growing with the steps.
The DNC's memory and weightings, and its per-variable gradients, are not
compared elementwise (see ``_comparable``): its allocation sorts the usages,
and rounding can flip the order of two nearly equal ones.
"""

import functools

import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn.ops import gru as gru_ops
from rnn.ops import lstm as lstm_ops
from rnn.ops import vanilla as vanilla_ops

T, B, I = 8, 3, 5
LENGTHS = [8, 5, 1]
TOL = {"float16": 1e-2, "bfloat16": 5e-2}
GRAD_TOL = {"float16": 2e-2, "bfloat16": 1e-1}
HALF = [tf.float16, tf.bfloat16]
F32 = tf.float32

CORES = {
    "vanilla": lambda: rnn.VanillaRNN(6, dtype=F32),
    "lstm": lambda: rnn.LSTM(6, dtype=F32),
    "lstm_projection": lambda: rnn.LSTM(6, projection_size=4, dtype=F32),
    "lstm_layer_norm": lambda: rnn.LSTM(6, use_layer_norm=True, cell_clip=3.0, dtype=F32),
    "gru": lambda: rnn.GRU(6, dtype=F32),
    "gru_reset_after": lambda: rnn.GRU(6, reset_after=True, dtype=F32),
    "deep": lambda: rnn.DeepRNN(
        [rnn.LSTM(6, dtype=F32), tf.nn.tanh, rnn.GRU(4, dtype=F32), rnn.Linear(3, dtype=F32)]
    ),
    "skip": lambda: rnn.deep_rnn_with_skip_connections(
        [rnn.GRU(4, dtype=F32), rnn.LSTM(3, dtype=F32)]
    ),
    "residual": lambda: rnn.deep_rnn_with_residual_connections(
        [rnn.LSTM(I, dtype=F32), rnn.VanillaRNN(I, dtype=F32)]
    ),
    "dnc": lambda: rnn.DNC(3, memory_size=8, word_size=4, num_reads=2, clip_value=20.0, dtype=F32),
    "dnc_two_writes": lambda: rnn.DNC(
        3, memory_size=8, word_size=4, num_reads=2, num_writes=2, dtype=F32
    ),
    "dnc_gru_controller": lambda: rnn.DNC(
        3, controller=rnn.GRU(6, dtype=F32), memory_size=6, word_size=3, num_reads=1, dtype=F32
    ),
}
# The cores whose whole-sequence programs (rnn.ops) the unrollers use.
FAST = {"vanilla", "lstm", "gru", "gru_reset_after"}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(T, B, I)).astype(np.float32))
    target = tf.constant(rng.normal(size=(T, B, 1)).astype(np.float32))
    return x, target


def _floats(structure):
    return [
        tf.cast(leaf, tf.float32).numpy()
        for leaf in tf.nest.flatten(structure)
        if leaf is not None and leaf.dtype.is_floating
    ]


def _assert_close(half, full, tol):
    half, full = _floats(half), _floats(full)
    assert len(half) == len(full)
    for h, f in zip(half, full):
        assert np.isfinite(h).all()
        np.testing.assert_array_less(np.abs(h - f), tol * (1.0 + np.abs(f)) + 1e-7)


def _assert_grads_close(half, full, tol, per_variable=True):
    """Float32 gradients close to float32's: per variable, or (``per_variable``
    False) all variables as one vector."""
    assert len(half) == len(full) > 0
    half = [tf.convert_to_tensor(h) for h in half]
    assert {h.dtype for h in half} == {tf.float32}
    half = [h.numpy().ravel() for h in half]
    full = [tf.convert_to_tensor(f).numpy().ravel() for f in full]
    if not per_variable:
        half, full = [np.concatenate(half)], [np.concatenate(full)]
    for h, f in zip(half, full):
        assert np.isfinite(h).all()
        err = np.linalg.norm(h - f)
        assert err <= tol * np.linalg.norm(f) + 1e-4, (err, np.linalg.norm(f))


def _per_variable(name):
    # The DNC's gradients are compared as a whole: a variable that only
    # reaches the loss through the allocation (the interface's gates) can
    # have a small gradient that changes by tens of percent where rounding
    # flips the order of two nearly equal usages (see _comparable).
    return not name.startswith("dnc")


def _comparable(state):
    """The part of a final state that must match float32 within the tolerance.

    For a DNC: the read words and the controller's state. Its memory and
    weightings can legitimately differ: where several slots are (nearly)
    unused their usages differ by powers of the 1e-6 epsilon, which float16
    rounds to ties, and the allocation (a sort of the usages) then writes
    to another of the equally free slots than float32 does. Those leaves
    are checked to be finite, valid weightings instead.
    """
    if not isinstance(state, rnn.DNCState):
        return state
    access = state.access_state
    assert all(np.isfinite(leaf).all() for leaf in _floats(access))
    for weights in (access.read_weights, access.write_weights):
        totals = tf.reduce_sum(tf.cast(weights, tf.float32), axis=-1).numpy()
        assert np.all(totals >= -1e-3) and np.all(totals <= 1.02), totals
    usage = tf.cast(access.usage, tf.float32).numpy()
    assert np.all(usage >= -1e-3) and np.all(usage <= 1.001), usage
    return (state.access_output, state.controller_state)


def _run(core, x, target, dtype, unroll=rnn.dynamic_unroll, lengths=LENGTHS):
    """Outputs, final state, the loss and its gradients (w.r.t. the variables) in ``dtype``."""
    xd = tf.cast(x, dtype)
    with tf.GradientTape() as tape:
        state = core.initial_state(B, dtype=dtype)
        out, final = unroll(core, xd, state, sequence_length=lengths)
        # The loss in float32, as Keras computes it under mixed precision.
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * target)
    return out, final, loss, tape.gradient(loss, core.trainable_variables)


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(CORES))
def test_matches_float32(name, dtype):
    tf.random.set_seed(0)
    core = CORES[name]()
    x, target = _data()
    out32, state32, loss32, grads32 = _run(core, x, target, tf.float32)
    out, state, loss, grads = _run(core, x, target, dtype)
    assert out.dtype == dtype
    assert {leaf.dtype for leaf in tf.nest.flatten(state) if leaf is not None} == {dtype}
    assert {v.dtype for v in core.variables} == {tf.float32}
    _assert_close(out, out32, TOL[dtype.name])
    _assert_close(_comparable(state), _comparable(state32), TOL[dtype.name])
    # Past each example's length: zeros, as in float32.
    assert not np.any(tf.cast(out[LENGTHS[2] :, 2], tf.float32).numpy())
    _assert_grads_close(grads, grads32, GRAD_TOL[dtype.name], _per_variable(name))
    np.testing.assert_allclose(float(loss), float(loss32), rtol=GRAD_TOL[dtype.name], atol=0.1)


MODES = ["static", "function", "jit"]
MODE_CASES = [
    (name, mode, dtype)
    for i, name in enumerate(sorted(CORES))
    for j, mode in enumerate(MODES)
    # Both dtypes in every mode, each core in each mode in one of them.
    for dtype in [HALF[(i + j) % 2]]
]


@pytest.mark.parametrize(
    "name,mode,dtype", MODE_CASES, ids=[f"{n}-{m}-{d.name}" for n, m, d in MODE_CASES]
)
def test_unrollers_and_compilation(name, mode, dtype):
    tf.random.set_seed(1)
    core = CORES[name]()
    x, target = _data(1)
    out32, state32, _, grads32 = _run(core, x, target, tf.float32)
    if mode == "static":
        out, state, _, grads = _run(core, x, target, dtype, unroll=rnn.static_unroll)
    else:
        run = tf.function(functools.partial(_run, core, dtype=dtype), jit_compile=(mode == "jit"))
        out, state, _, grads = run(x, target)
    assert out.dtype == dtype
    _assert_close(out, out32, TOL[dtype.name])
    _assert_close(_comparable(state), _comparable(state32), TOL[dtype.name])
    _assert_grads_close(grads, grads32, GRAD_TOL[dtype.name], _per_variable(name))


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["lstm", "gru_reset_after", "dnc_two_writes"])
def test_training_lowers_the_loss_and_keeps_float32_variables(name, dtype):
    tf.random.set_seed(2)
    core = CORES[name]()
    x, _ = _data(2)
    y = tf.tanh(tf.cumsum(tf.reduce_sum(x, -1), axis=0) / 3)
    xd = tf.cast(x, dtype)
    optimizer_lr = 0.05

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            out, _ = rnn.dynamic_unroll(core, xd, core.initial_state(B, dtype=dtype))
            pred = tf.reduce_mean(tf.cast(out, tf.float32), axis=-1)
            loss = tf.reduce_mean(tf.square(pred - y))
        grads = tape.gradient(loss, core.trainable_variables)
        for v, g in zip(core.trainable_variables, grads):
            v.assign_sub(optimizer_lr * g)  # a float32 update of a float32 variable
        return loss

    losses = [float(step()) for _ in range(6)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
    assert {v.dtype for v in core.variables} == {tf.float32}


def test_training_with_a_keras_optimizer():
    keras = pytest.importorskip("keras")
    core = rnn.LSTM(4, dtype=tf.float32)
    x, _ = _data(3)
    y = tf.tanh(tf.cumsum(tf.reduce_sum(x, -1), axis=0) / 3)
    xd = tf.cast(x, tf.float16)
    core(xd[0], core.initial_state(B, dtype=tf.float16))  # build
    optimizer = keras.optimizers.Adam(0.05)

    def loss_fn():
        out, _ = rnn.dynamic_unroll(core, xd, core.initial_state(B, dtype=tf.float16))
        return tf.reduce_mean(tf.square(tf.reduce_mean(tf.cast(out, tf.float32), -1) - y))

    losses = []
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, core.trainable_variables)
        assert {g.dtype for g in grads} == {tf.float32}
        optimizer.apply_gradients(zip(grads, core.trainable_variables))
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
    assert {v.dtype for v in core.variables} == {tf.float32}


class _Spy:
    """Wraps a whole-sequence function and records the dtype it was called with."""

    def __init__(self, fn):
        self.fn = fn
        self.dtypes = []

    def __call__(self, inputs, *args, **kwargs):
        self.dtypes.append(inputs.dtype)
        return self.fn(inputs, *args, **kwargs)


class _Stepped(rnn.RNNCore):
    """The same core without its whole-sequence fast path."""

    def __init__(self, core):
        super().__init__()
        self.core = core

    def __call__(self, inputs, prev_state):
        return self.core(inputs, prev_state)

    def initial_state(self, batch_size, dtype=None):
        return self.core.initial_state(batch_size, dtype=dtype)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("dtype", HALF, ids=lambda d: d.name)
@pytest.mark.parametrize("name", sorted(FAST))
def test_whole_sequence_fast_path_applies(monkeypatch, name, dtype, reverse):
    tf.random.set_seed(3)
    module, fn = {
        "vanilla": (vanilla_ops, "vanilla_sequence"),
        "lstm": (lstm_ops, "lstm_sequence"),
        "gru": (gru_ops, "gru_sequence"),
        "gru_reset_after": (gru_ops, "gru_sequence"),
    }[name]
    spy = _Spy(getattr(module, fn))
    monkeypatch.setattr(module, fn, spy)
    core = CORES[name]()
    x, target = _data(4)
    xd = tf.cast(x, dtype)

    def run(c):
        with tf.GradientTape() as tape:
            out, final = rnn.dynamic_unroll(
                c, xd, c.initial_state(B, dtype=dtype), sequence_length=LENGTHS, reverse=reverse
            )
            loss = tf.reduce_sum(tf.cast(out, tf.float32) * target)
        return out, final, tape.gradient(loss, core.trainable_variables)

    out, final, grads = run(core)
    assert spy.dtypes == [dtype]  # the fast path ran, in the compute dtype
    stepped_out, stepped_final, stepped_grads = run(_Stepped(core))
    assert spy.dtypes == [dtype]
    _assert_close(out, stepped_out, TOL[dtype.name])
    _assert_close(final, stepped_final, TOL[dtype.name])
    _assert_grads_close(grads, stepped_grads, GRAD_TOL[dtype.name])


def test_variables_from_half_inputs_without_dtype_stay_half():
    # Without dtype=, the variables take the first inputs' dtype, as before.
    core = rnn.GRU(3)
    core(tf.ones([1, 2], tf.float16), core.initial_state(1, dtype=tf.float16))
    assert {v.dtype for v in core.variables} == {tf.float16}
    with pytest.raises(
        TypeError,
        match=r"inputs must have dtype tf.float16, got tf.float32 \(its variables' dtype is",
    ):
        core(tf.ones([1, 2]), core.initial_state(1))


def test_a_core_built_in_float32_runs_half_later():
    core = rnn.LSTM(3)  # no dtype: float32 from the first inputs
    core(tf.ones([1, 2]), core.initial_state(1))
    out, state = core(tf.ones([1, 2], tf.bfloat16), core.initial_state(1, dtype=tf.bfloat16))
    assert out.dtype == state.cell.dtype == tf.bfloat16


@pytest.mark.parametrize("name", ["vanilla", "lstm", "gru"])
def test_dtype_errors(name):
    core = CORES[name]()
    state = core.initial_state(1)
    with pytest.raises(TypeError, match="expects floating point inputs, got int32"):
        core(tf.ones([1, 2], tf.int32), state)
    # float64 into float32 variables stays an error: mixed precision only
    # lowers the compute precision (an upcast would compute in a precision
    # the weights do not have).
    with pytest.raises(
        TypeError,
        match=r"inputs must have dtype tf.float32, got tf.float64 \(its dtype argument is "
        r"float32\).*bfloat16",
    ):
        core(tf.ones([1, 2], tf.float64), core.initial_state(1, dtype=tf.float64))
    core(tf.ones([1, 2]), state)  # built in float32
    with pytest.raises(
        TypeError,
        match=r"inputs must have dtype tf.float32, got tf.float64 \(its variables' dtype is",
    ):
        core(tf.ones([1, 2], tf.float64), core.initial_state(1, dtype=tf.float64))
    # Half inputs need a half state.
    with pytest.raises(TypeError, match=r"prev_state.* has dtype float32 but the inputs.*float16"):
        core(tf.ones([1, 2], tf.float16), state)
    with pytest.raises(TypeError, match=r"initial_state\(batch_size, dtype=float16\)"):
        rnn.dynamic_unroll(core, tf.ones([3, 1, 2], tf.float16), state)
    # float16 variables take no float32 (or bfloat16) inputs.
    half = type(core)(3, dtype=tf.float16)
    with pytest.raises(
        TypeError,
        match=r"inputs must have dtype tf.float16, got tf.bfloat16 \(its dtype argument is",
    ):
        half(tf.ones([1, 2], tf.bfloat16), half.initial_state(1, dtype=tf.bfloat16))
    with pytest.raises(TypeError, match="initial_state needs a floating point dtype"):
        core.initial_state(1, dtype=tf.int32)


def test_dtype_errors_linear_and_dnc():
    layer = rnn.Linear(2, dtype=tf.float32, name="readout")
    with pytest.raises(TypeError, match="readout: inputs have dtype float64, the weights float32"):
        layer(tf.ones([1, 3], tf.float64))
    assert layer.w is None  # refused before any variable was made
    assert layer(tf.ones([1, 3], tf.float16)).dtype == tf.float16
    dnc = CORES["dnc"]()
    with pytest.raises(TypeError, match="inputs have dtype float16 but the state has float32"):
        dnc(tf.ones([1, 2], tf.float16), dnc.initial_state(1))
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
        dnc.initial_state(1, dtype=tf.int32)
    with pytest.raises(TypeError, match="float64.*float32"):
        dnc(tf.ones([1, 2], tf.float64), dnc.initial_state(1, dtype=tf.float64))


def test_dnc_sensitive_parts_in_float32():
    from rnn.dnc import addressing

    # 16 slots of tiny usage: the cumulative product falls below float16's
    # range (6e-8) after a few slots; computed in float32 it does not.
    usage = tf.fill([1, 16], tf.constant(1e-3, tf.float16))
    allocation = addressing.allocation_weights(usage)
    assert allocation.dtype == tf.float16
    reference = addressing.allocation_weights(tf.cast(usage, tf.float32))
    np.testing.assert_allclose(
        tf.cast(allocation, tf.float32).numpy(), reference.numpy(), rtol=1e-2, atol=1e-7
    )
    # Memory rows whose squared norm overflows float16 (> 65504).
    memory = tf.constant(np.full([1, 3, 4], 200.0), tf.float16)
    keys = tf.constant(np.full([1, 1, 4], 200.0), tf.float16)
    weights = addressing.content_weights(memory, keys, tf.constant([[1.0]], tf.float16))
    np.testing.assert_allclose(
        tf.cast(weights, tf.float32).numpy(), np.full([1, 1, 3], 1 / 3), rtol=1e-3
    )


def test_trainable_state_in_the_compute_dtype():
    core = rnn.GRU(3, dtype=tf.float32)
    learned = rnn.TrainableState.for_core(core)
    x = tf.ones([4, 2, 2], tf.bfloat16)
    with tf.GradientTape() as tape:
        out, _ = rnn.dynamic_unroll(core, x, learned(2, dtype=tf.bfloat16))
        loss = tf.reduce_sum(tf.cast(out, tf.float32))
    grads = tape.gradient(loss, learned.trainable_variables)
    assert out.dtype == tf.bfloat16
    assert [g.dtype for g in grads] == [tf.float32]
    with pytest.raises(TypeError, match="dtype must be a floating-point dtype, got int32"):
        learned(2, dtype=tf.int32)
