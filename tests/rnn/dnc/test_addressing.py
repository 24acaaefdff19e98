"""rnn.dnc.addressing and rnn.dnc.access checked against a NumPy reference.

The reference below is written from the paper's equations with explicit loops
(sorting with ``np.argsort``, links slot by slot), independently of the
vectorised TensorFlow code.
"""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn.dnc import access, addressing

EPS = addressing.EPSILON


# --------------------------------------------------------------------------
# NumPy reference (float64)
# --------------------------------------------------------------------------


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_oneplus(x):
    return 1.0 + np.log1p(np.exp(x))


def ref_content_weights(memory, keys, strengths):
    b_size, n_size, _ = memory.shape
    heads = keys.shape[1]
    out = np.zeros([b_size, heads, n_size])
    for b in range(b_size):
        for h in range(heads):
            k = keys[b, h]
            sims = []
            for n in range(n_size):
                m = memory[b, n]
                sims.append(
                    np.dot(k, m) / (np.sqrt(np.dot(k, k) + EPS) * np.sqrt(np.dot(m, m) + EPS))
                )
            out[b, h] = np_softmax(strengths[b, h] * np.array(sims))
    return out


def ref_update_usage(prev_usage, prev_write_weights, free_gates, prev_read_weights):
    out = np.zeros_like(prev_usage)
    for b in range(prev_usage.shape[0]):
        written = 1.0 - np.prod(1.0 - prev_write_weights[b], axis=0)
        u = prev_usage[b] + written - prev_usage[b] * written
        psi = np.ones_like(u)
        for r in range(free_gates.shape[1]):
            psi *= 1.0 - free_gates[b, r] * prev_read_weights[b, r]
        out[b] = u * psi
    return out


def ref_allocation(usage, eps=EPS):
    out = np.zeros_like(usage)
    for b in range(usage.shape[0]):
        u = eps + (1.0 - eps) * usage[b]
        free_list = np.argsort(u, kind="stable")  # least used first
        prod = 1.0
        for j in free_list:
            out[b, j] = (1.0 - u[j]) * prod
            prod *= u[j]
    return out


def ref_write_allocation(usage, gates, num_writes):
    usage = usage.copy()
    heads = []
    for h in range(num_writes):
        a = ref_allocation(usage)
        heads.append(a)
        usage = usage + (1.0 - usage) * gates[:, h : h + 1] * a
    return np.stack(heads, axis=1)


def ref_write_weights(content, alloc, alloc_gates, write_gates):
    ga = alloc_gates[:, :, None]
    gw = write_gates[:, :, None]
    return gw * (ga * alloc + (1.0 - ga) * content)


def ref_erase_and_write(memory, ww, erase, vectors):
    out = memory.copy()
    for b in range(memory.shape[0]):
        keep = np.ones(memory.shape[1:])
        add = np.zeros(memory.shape[1:])
        for h in range(ww.shape[1]):
            keep *= 1.0 - np.outer(ww[b, h], erase[b, h])
            add += np.outer(ww[b, h], vectors[b, h])
        out[b] = memory[b] * keep + add
    return out


def ref_link(prev_link, prev_precedence, ww):
    out = np.zeros_like(prev_link)
    b_size, heads, n_size, _ = prev_link.shape
    for b in range(b_size):
        for h in range(heads):
            w = ww[b, h]
            p = prev_precedence[b, h]
            for i in range(n_size):
                for j in range(n_size):
                    if i == j:
                        continue
                    out[b, h, i, j] = (1 - w[i] - w[j]) * prev_link[b, h, i, j] + w[i] * p[j]
    return out


def ref_precedence(prev_precedence, ww):
    return (1.0 - ww.sum(axis=2, keepdims=True)) * prev_precedence + ww


def ref_directional(link, prev_rw, forward):
    b_size, heads, n_size, _ = link.shape
    reads = prev_rw.shape[1]
    out = np.zeros([b_size, reads, heads, n_size])
    for b in range(b_size):
        for r in range(reads):
            for h in range(heads):
                mat = link[b, h] if forward else link[b, h].T
                out[b, r, h] = mat @ prev_rw[b, r]
    return out


def ref_read_weights(content, fwd, bwd, modes):
    heads = fwd.shape[2]
    out = modes[:, :, 2 * heads :] * content
    for h in range(heads):
        out = out + modes[:, :, h : h + 1] * bwd[:, :, h]
        out = out + modes[:, :, heads + h : heads + h + 1] * fwd[:, :, h]
    return out


class InterfaceReader:
    """Reads consecutive fields off a raw ``[B, F]`` interface vector."""

    def __init__(self, xi):
        self.xi, self.pos = xi, 0

    def take(self, n):
        out = self.xi[:, self.pos : self.pos + n]
        self.pos += n
        return out

    def done(self):
        assert self.pos == self.xi.shape[1]


def ref_interface(reader, w, r, h):
    """The paper's interface fields, in its order (what the DNC options add follows)."""
    b, take = reader.xi.shape[0], reader.take
    return (
        take(r * w).reshape(b, r, w),  # read keys
        np_oneplus(take(r)),  # read strengths
        take(h * w).reshape(b, h, w),  # write keys
        np_oneplus(take(h)),  # write strengths
        np_sigmoid(take(h * w).reshape(b, h, w)),  # erase
        take(h * w).reshape(b, h, w),  # write vectors
        np_sigmoid(take(r)),  # free gates
        np_sigmoid(take(h)),  # allocation gates
        np_sigmoid(take(h)),  # write gates
        np_softmax(take(r * (2 * h + 1)).reshape(b, r, 2 * h + 1)),  # read modes
    )


def ref_access_step(xi, state, word_size, num_reads, num_writes):
    """A whole step from a raw interface vector, per the paper's equations."""
    w, r, h = word_size, num_reads, num_writes
    reader = InterfaceReader(xi)
    (
        read_keys,
        read_strengths,
        write_keys,
        write_strengths,
        erase,
        vectors,
        free,
        alloc_gates,
        write_gates,
        modes,
    ) = ref_interface(reader, w, r, h)
    reader.done()
    memory, rw, ww, link, prec, usage = state
    usage = ref_update_usage(usage, ww, free, rw)
    wc = ref_content_weights(memory, write_keys, write_strengths)
    alloc = ref_write_allocation(usage, alloc_gates * write_gates, h)
    ww_new = ref_write_weights(wc, alloc, alloc_gates, write_gates)
    memory = ref_erase_and_write(memory, ww_new, erase, vectors)
    link_new = ref_link(link, prec, ww_new)
    prec = ref_precedence(prec, ww_new)
    rc = ref_content_weights(memory, read_keys, read_strengths)
    fwd = ref_directional(link_new, rw, True)
    bwd = ref_directional(link_new, rw, False)
    rw = ref_read_weights(rc, fwd, bwd, modes)
    words = rw @ memory
    return words, (memory, rw, ww_new, link_new, prec, usage)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def make_rng(seed=0):
    return np.random.default_rng(seed)


def simplex(g, shape, total=1.0):
    """Random non-negative weights summing to at most ``total`` over the last axis."""
    x = g.uniform(size=shape)
    return total * x / (x.sum(axis=-1, keepdims=True) + g.uniform(size=shape[:-1] + (1,)))


def close(tf_value, np_value, atol=1e-10):
    np.testing.assert_allclose(np.asarray(tf_value), np_value, rtol=1e-9, atol=atol)


B, N, W, R = 3, 6, 4, 2


# --------------------------------------------------------------------------
# Function by function
# --------------------------------------------------------------------------


@pytest.mark.parametrize("heads", [1, 3])
def test_content_weights_match_reference(heads):
    g = make_rng(heads)
    memory = g.normal(size=[B, N, W])
    memory[0, 2] = 0.0  # an empty slot must not give NaN
    keys = g.normal(size=[B, heads, W])
    strengths = np_oneplus(g.normal(size=[B, heads]))
    got = addressing.content_weights(tf.constant(memory), tf.constant(keys), tf.constant(strengths))
    close(got, ref_content_weights(memory, keys, strengths))
    close(tf.reduce_sum(got, -1), np.ones([B, heads]))


def test_cosine_similarity_is_scale_invariant_and_bounded():
    g = make_rng(1)
    memory = g.normal(size=[B, N, W])
    keys = g.normal(size=[B, 2, W])
    a = addressing.cosine_similarity(tf.constant(memory), tf.constant(keys))
    b = addressing.cosine_similarity(tf.constant(memory * 7.0), tf.constant(keys * 3.0))
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.all(np.abs(a) <= 1.0)


@pytest.mark.parametrize("num_writes", [1, 2])
def test_update_usage_matches_reference(num_writes):
    g = make_rng(2)
    prev_usage = g.uniform(size=[B, N])
    ww = simplex(g, (B, num_writes, N))
    free = g.uniform(size=[B, R])
    rw = simplex(g, (B, R, N))
    got = addressing.update_usage(*map(tf.constant, (prev_usage, ww, free, rw)))
    close(got, ref_update_usage(prev_usage, ww, free, rw))
    assert np.all((0.0 <= got.numpy()) & (got.numpy() <= 1.0))


def test_usage_free_gates_release_read_slots():
    # Fully freeing the only slot that was read brings its usage to zero.
    usage = addressing.update_usage(
        tf.constant([[1.0, 1.0, 1.0]]),
        tf.zeros([1, 1, 3]),
        tf.constant([[1.0]]),
        tf.constant([[[0.0, 1.0, 0.0]]]),
    )
    np.testing.assert_allclose(usage, [[1.0, 0.0, 1.0]])


def test_allocation_matches_reference_with_ties_and_extremes():
    g = make_rng(3)
    usage = g.uniform(size=[4, N])
    usage[1] = [0.5, 0.5, 0.2, 0.2, 1.0, 0.0]  # ties, fully used, free
    usage[2] = 1.0  # memory full
    usage[3] = 0.0  # memory empty
    got = addressing.allocation_weights(tf.constant(usage))
    close(got, ref_allocation(usage))
    # The allocation never exceeds one in total and prefers the least used slot.
    assert np.all(got.numpy().sum(-1) <= 1.0 + 1e-9)
    assert np.argmax(got.numpy()[0]) == np.argmin(usage[0])
    np.testing.assert_allclose(got.numpy()[3], np.eye(N)[0], atol=1e-5)


def test_allocation_without_epsilon_is_the_papers_formula():
    usage = np.array([[0.3, 0.9, 0.1, 0.6]])
    got = addressing.allocation_weights(tf.constant(usage), epsilon=0.0).numpy()
    # sorted: 0.1 (slot 2), 0.3 (slot 0), 0.6 (slot 3), 0.9 (slot 1)
    expected = np.zeros(4)
    expected[2] = 0.9
    expected[0] = 0.7 * 0.1
    expected[3] = 0.4 * 0.1 * 0.3
    expected[1] = 0.1 * 0.1 * 0.3 * 0.6
    np.testing.assert_allclose(got[0], expected, rtol=1e-12)


def ref_allocation_gradient(usage, cotangent, eps=EPS):
    """d sum(cotangent * allocation) / d usage, differentiating the sorted product."""
    out = np.zeros_like(usage)
    for b in range(usage.shape[0]):
        u = eps + (1.0 - eps) * usage[b]
        order = np.argsort(u, kind="stable")
        for position, i in enumerate(order):
            before = order[:position]
            out[b, i] -= cotangent[b, i] * np.prod(u[before])
            for k in before:
                others = before[before != k]
                out[b, k] += cotangent[b, i] * (1.0 - u[i]) * np.prod(u[others])
    return out * (1.0 - eps)


_USAGE_LEVELS = st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0.0, 1.0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_allocation_and_its_gradient_match_the_sorted_reference(data):
    # Drawn from a few levels too, so that ties (the sort's order: lower slot
    # first) and empty and full slots are common.
    n = data.draw(st.integers(1, 7), label="memory_size")
    b = data.draw(st.integers(1, 3), label="batch")
    rows = st.lists(_USAGE_LEVELS, min_size=n, max_size=n)
    usage = np.array(data.draw(st.lists(rows, min_size=b, max_size=b), label="usage"))
    cotangent = make_rng(n * 10 + b).normal(size=usage.shape)
    u = tf.constant(usage)
    with tf.GradientTape() as tape:
        tape.watch(u)
        got = addressing.allocation_weights(u)
        loss = tf.reduce_sum(got * cotangent)
    np.testing.assert_allclose(got, ref_allocation(usage), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        tape.gradient(loss, u), ref_allocation_gradient(usage, cotangent), rtol=1e-7, atol=1e-9
    )


def test_allocation_with_a_memory_size_known_only_at_run_time():
    usage = make_rng(5).uniform(size=[3, N])
    usage[0, :3] = 0.5  # a tie
    unknown = tf.function(
        addressing.allocation_weights, input_signature=[tf.TensorSpec([None, None], tf.float64)]
    )
    close(unknown(tf.constant(usage)), ref_allocation(usage))


@pytest.mark.parametrize("num_writes", [1, 3])
def test_write_allocation_matches_reference(num_writes):
    g = make_rng(4)
    usage = g.uniform(size=[B, N])
    gates = g.uniform(size=[B, num_writes])
    got = addressing.write_allocation_weights(tf.constant(usage), tf.constant(gates), num_writes)
    assert got.shape == (B, num_writes, N)
    close(got, ref_write_allocation(usage, gates, num_writes))


def test_write_allocation_heads_pick_different_free_slots():
    got = addressing.write_allocation_weights(
        tf.constant([[1.0, 0.0, 1.0, 0.0]]), tf.constant([[1.0, 1.0]]), 2
    ).numpy()
    assert np.argmax(got[0, 0]) == 1 and np.argmax(got[0, 1]) == 3


def test_write_allocation_rejects_bad_num_writes():
    with pytest.raises(ValueError, match="num_writes"):
        addressing.write_allocation_weights(tf.zeros([1, 2]), tf.zeros([1, 1]), 0)


def test_write_weights_and_erase_and_write_match_reference():
    g = make_rng(5)
    h = 2
    content = simplex(g, (B, h, N))
    alloc = simplex(g, (B, h, N))
    ga, gw = g.uniform(size=[B, h]), g.uniform(size=[B, h])
    ww = addressing.write_weights(*map(tf.constant, (content, alloc, ga, gw)))
    close(ww, ref_write_weights(content, alloc, ga, gw))
    memory = g.normal(size=[B, N, W])
    erase = g.uniform(size=[B, h, W])
    vectors = g.normal(size=[B, h, W])
    got = addressing.erase_and_write(
        tf.constant(memory), ww, tf.constant(erase), tf.constant(vectors)
    )
    close(got, ref_erase_and_write(memory, ww.numpy(), erase, vectors))


@pytest.mark.parametrize("num_writes", [1, 2])
def test_linkage_matches_reference(num_writes):
    g = make_rng(6)
    link = g.uniform(size=[B, num_writes, N, N]) / N
    for i in range(N):
        link[:, :, i, i] = 0.0
    prec = simplex(g, (B, num_writes, N))
    ww = simplex(g, (B, num_writes, N))
    got = addressing.update_linkage(
        addressing.TemporalLinkageState(tf.constant(link), tf.constant(prec)), tf.constant(ww)
    )
    assert isinstance(got, addressing.TemporalLinkageState)
    close(got.link, ref_link(link, prec, ww))
    close(got.precedence_weights, ref_precedence(prec, ww))
    np.testing.assert_array_equal(np.diagonal(got.link.numpy(), axis1=2, axis2=3), 0.0)


def test_link_records_write_order_and_reads_follow_it():
    # Write slots 2, 0, 3 in that order; forward reads from 2 go to 0, then 3.
    state = addressing.TemporalLinkageState(
        tf.zeros([1, 1, 4, 4], tf.float64), tf.zeros([1, 1, 4], tf.float64)
    )
    for slot in (2, 0, 3):
        state = addressing.update_linkage(state, tf.constant(np.eye(4)[slot][None, None]))
    read = tf.constant(np.eye(4)[2][None, None])
    fwd = addressing.directional_read_weights(state.link, read, forward=True)
    np.testing.assert_allclose(fwd[0, 0, 0], np.eye(4)[0])
    fwd = addressing.directional_read_weights(state.link, fwd[:, :, 0], forward=True)
    np.testing.assert_allclose(fwd[0, 0, 0], np.eye(4)[3])
    bwd = addressing.directional_read_weights(state.link, fwd[:, :, 0], forward=False)
    np.testing.assert_allclose(bwd[0, 0, 0], np.eye(4)[0])


@pytest.mark.parametrize("num_writes", [1, 2])
def test_directional_and_read_weights_match_reference(num_writes):
    g = make_rng(7)
    link = g.uniform(size=[B, num_writes, N, N]) / N
    rw = simplex(g, (B, R, N))
    fwd = addressing.directional_read_weights(tf.constant(link), tf.constant(rw), True)
    bwd = addressing.directional_read_weights(tf.constant(link), tf.constant(rw), False)
    close(fwd, ref_directional(link, rw, True))
    close(bwd, ref_directional(link, rw, False))
    content = simplex(g, (B, R, N))
    modes = np_softmax(g.normal(size=[B, R, 2 * num_writes + 1]))
    got = addressing.read_weights(tf.constant(content), fwd, bwd, tf.constant(modes))
    close(got, ref_read_weights(content, fwd.numpy(), bwd.numpy(), modes))
    memory = g.normal(size=[B, N, W])
    close(addressing.read_words(tf.constant(memory), got), got.numpy() @ memory)


def test_read_weights_rejects_wrong_number_of_modes():
    with pytest.raises(ValueError, match="2 \\* num_writes \\+ 1"):
        addressing.read_weights(
            tf.zeros([1, 1, 3]), tf.zeros([1, 1, 2, 3]), tf.zeros([1, 1, 2, 3]), tf.zeros([1, 1, 3])
        )


def test_rank_errors_name_the_argument():
    with pytest.raises(ValueError, match="strengths must have rank 2"):
        addressing.content_weights(tf.zeros([1, 2, 3]), tf.zeros([1, 1, 3]), tf.zeros([1]))
    with pytest.raises(ValueError, match="memory must have rank 3"):
        addressing.read_words(tf.zeros([2, 3]), tf.zeros([1, 1, 2]))


# --------------------------------------------------------------------------
# Interface parsing and a whole access step
# --------------------------------------------------------------------------


def test_interface_size_is_the_papers_for_one_write_head():
    for w, r in [(16, 4), (3, 1), (10, 7)]:
        assert access.interface_size(w, r, 1) == w * r + 3 * w + 5 * r + 3


def test_parse_interface_rejects_wrong_size():
    with pytest.raises(ValueError, match=r"\[batch, 135\]"):
        access.parse_interface(tf.zeros([2, 134]), 16, 4, 1)


@pytest.mark.parametrize("num_writes", [1, 2])
def test_access_step_matches_reference_over_several_steps(num_writes):
    g = make_rng(8 + num_writes)
    size = access.interface_size(W, R, num_writes)
    np_state = (
        np.zeros([B, N, W]),
        np.zeros([B, R, N]),
        np.zeros([B, num_writes, N]),
        np.zeros([B, num_writes, N, N]),
        np.zeros([B, num_writes, N]),
        np.zeros([B, N]),
    )
    module = access.MemoryAccess(N, W, R, num_writes)
    tf_state = module.initial_state(B, tf.float64)
    for _ in range(4):
        xi = 2.0 * g.normal(size=[B, size])
        interface = access.parse_interface(tf.constant(xi), W, R, num_writes)
        words, tf_state = access.access_step(interface, tf_state)
        np_words, np_state = ref_access_step(xi, np_state, W, R, num_writes)
        close(words, np_words, atol=1e-9)
    got = (
        tf_state.memory,
        tf_state.read_weights,
        tf_state.write_weights,
        tf_state.linkage.link,
        tf_state.linkage.precedence_weights,
        tf_state.usage,
    )
    for a, b in zip(got, np_state):
        close(a, b, atol=1e-9)


def test_access_step_same_in_eager_and_function():
    # (XLA is checked on the whole DNC in tests/rnn/dnc/test_core.py.)
    g = make_rng(11)
    module = access.MemoryAccess(N, W, R, 2)
    state = module.initial_state(B)
    inputs = tf.constant(g.normal(size=[B, 7]), tf.float32)
    eager = module(inputs, module(inputs, state)[1])
    fn = tf.function(lambda x, s: module(x, module(x, s)[1]), autograph=False)
    got = fn(inputs, state)
    for a, b in zip(tf.nest.flatten(got), tf.nest.flatten(eager)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_access_gradients_finite_from_empty_memory():
    module = access.MemoryAccess(N, W, R, 2)
    inputs = tf.constant(make_rng(12).normal(size=[B, 5]), tf.float32)
    with tf.GradientTape() as tape:
        state = module.initial_state(B)
        total = 0.0
        for _ in range(3):
            words, state = module(inputs, state)
            total += tf.reduce_sum(words**2) + tf.reduce_sum(state.usage)
    grads = tape.gradient(total, module.trainable_variables)
    assert len(grads) == 2
    for grad in grads:
        assert grad is not None and np.all(np.isfinite(grad.numpy()))
        assert np.any(grad.numpy() != 0.0)


def test_memory_access_rejects_bad_sizes():
    with pytest.raises(ValueError, match="memory_size must be a positive int"):
        access.MemoryAccess(memory_size=0)
    with pytest.raises(ValueError, match="num_reads"):
        access.MemoryAccess(num_reads=True)


def test_access_step_rejects_an_interface_for_other_sizes():
    state = access.MemoryAccess(memory_size=4, word_size=2, num_reads=3).initial_state(1)
    interface = access.parse_interface(tf.zeros([1, access.interface_size(2, 1, 1)]), 2, 1, 1)
    with pytest.raises(ValueError, match="1 read heads but the memory state has 3"):
        access.access_step(interface, state)
