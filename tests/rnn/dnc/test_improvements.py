"""The DNC improvements of Csordás & Schmidhuber (ICLR 2019), against NumPy references.

"Improving Differentiable Neural Computers Through Memory Masking,
De-allocation, and Link Distribution Sharpness Control":

* masked content-based addressing: ``C(M, k, beta, m) = softmax(beta D(k ⊙ m, M[i] ⊙ m))``;
* de-allocation: ``M_t = M_{t-1} ⊙ (psi_t 1^T) ⊙ (E - w^w_t e_t^T) + w^w_t v_t^T``;
* sharpness enhancement: ``f = S(L w^r_{t-1}, s_f)``, ``b = S(L^T w^r_{t-1}, s_b)`` with
  ``S(d, s)_i = d_i^s / sum_j d_j^s``.

The references are explicit loops in float64, written from those equations
(reusing the base DNC's references of ``test_addressing.py``); besides them:
the options off leave every output bit for bit what it was, finite
differences confirm the new paths' gradients, and the options work in
``tf.function``, under XLA and in mixed precision.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

import nestlib
import rnn
from rnn.dnc import DNC, DNCState, access, addressing
from tests.rnn.dnc.test_addressing import (
    EPS,
    InterfaceReader,
    close,
    make_rng,
    np_oneplus,
    np_sigmoid,
    np_softmax,
    ref_directional,
    ref_interface,
    ref_link,
    ref_precedence,
    ref_read_weights,
    ref_update_usage,
    ref_write_allocation,
    ref_write_weights,
    simplex,
)

B, N, W, R = 3, 6, 4, 2
OPTIONS = ("masked_content", "deallocate", "sharpen_links")


# --------------------------------------------------------------------------
# NumPy references (float64)
# --------------------------------------------------------------------------


def ref_masked_content_weights(memory, keys, strengths, masks):
    """softmax_i(beta D(k ⊙ m, M[i] ⊙ m)), the cosine with the module's epsilon."""
    b_size, n_size, _ = memory.shape
    heads = keys.shape[1]
    out = np.zeros([b_size, heads, n_size])
    for b in range(b_size):
        for h in range(heads):
            k = keys[b, h] * masks[b, h]
            sims = []
            for n in range(n_size):
                m = memory[b, n] * masks[b, h]
                sims.append(
                    np.dot(k, m) / (np.sqrt(np.dot(k, k) + EPS) * np.sqrt(np.dot(m, m) + EPS))
                )
            out[b, h] = np_softmax(strengths[b, h] * np.array(sims))
    return out


def ref_retention(free_gates, prev_read_weights):
    psi = np.ones([free_gates.shape[0], prev_read_weights.shape[2]])
    for r in range(free_gates.shape[1]):
        psi *= 1.0 - free_gates[:, r : r + 1] * prev_read_weights[:, r]
    return psi


def ref_deallocating_write(memory, ww, erase, vectors, psi):
    out = memory.copy()
    for b in range(memory.shape[0]):
        keep = np.ones(memory.shape[1:])
        add = np.zeros(memory.shape[1:])
        for h in range(ww.shape[1]):
            keep *= 1.0 - np.outer(ww[b, h], erase[b, h])
            add += np.outer(ww[b, h], vectors[b, h])
        out[b] = memory[b] * np.outer(psi[b], np.ones(memory.shape[2])) * keep + add
    return out


def ref_sharpen(d, s, eps=EPS):
    """S(d + eps, s), directly from the definition (no rescaling by the maximum)."""
    out = np.zeros_like(d)
    for index in np.ndindex(*d.shape[:-1]):
        powered = (d[index] + eps) ** s[index]
        out[index] = powered / powered.sum()
    return out


def ref_access_step(xi, state, w, r, h, masked_content, deallocate, sharpen_links):
    """A whole step from a raw interface vector; the options' outputs follow the base ones."""
    b = xi.shape[0]
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
    read_masks = np.ones([b, r, w])
    write_masks = np.ones([b, h, w])
    if masked_content:
        read_masks = np_sigmoid(reader.take(r * w).reshape(b, r, w))
        write_masks = np_sigmoid(reader.take(h * w).reshape(b, h, w))
    if sharpen_links:
        sharpness = np_oneplus(reader.take(2 * r * h).reshape(b, r, 2 * h))
    reader.done()
    memory, rw, ww, link, prec, usage = state
    usage_new = ref_update_usage(usage, ww, free, rw)
    wc = ref_masked_content_weights(memory, write_keys, write_strengths, write_masks)
    alloc = ref_write_allocation(usage_new, alloc_gates * write_gates, h)
    ww_new = ref_write_weights(wc, alloc, alloc_gates, write_gates)
    psi = ref_retention(free, rw) if deallocate else np.ones([b, memory.shape[1]])
    memory = ref_deallocating_write(memory, ww_new, erase, vectors, psi)
    link_new = ref_link(link, prec, ww_new)
    prec = ref_precedence(prec, ww_new)
    rc = ref_masked_content_weights(memory, read_keys, read_strengths, read_masks)
    fwd = ref_directional(link_new, rw, True)
    bwd = ref_directional(link_new, rw, False)
    if sharpen_links:
        bwd = ref_sharpen(bwd, sharpness[:, :, :h])
        fwd = ref_sharpen(fwd, sharpness[:, :, h:])
    rw = ref_read_weights(rc, fwd, bwd, modes)
    words = rw @ memory
    return words, (memory, rw, ww_new, link_new, prec, usage_new)


def random_state(g, num_writes, n=N, w=W, r=R, batch=B):
    """A non-trivial access state (as AccessState of float64 tensors and as NumPy)."""
    link = g.uniform(size=[batch, num_writes, n, n]) / n
    for i in range(n):
        link[:, :, i, i] = 0.0
    arrays = (
        g.normal(size=[batch, n, w]),
        simplex(g, (batch, r, n)),
        simplex(g, (batch, num_writes, n)),
        link,
        simplex(g, (batch, num_writes, n)),
        g.uniform(size=[batch, n]),
    )
    memory, rw, ww, link, prec, usage = map(tf.constant, arrays)
    state = access.AccessState(memory, rw, ww, addressing.TemporalLinkageState(link, prec), usage)
    return state, arrays


def flat_state(state):
    return (
        state.memory,
        state.read_weights,
        state.write_weights,
        state.linkage.link,
        state.linkage.precedence_weights,
        state.usage,
    )


# --------------------------------------------------------------------------
# Masked content-based addressing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("heads", [1, 3])
def test_masked_content_weights_match_reference(heads):
    g = make_rng(20 + heads)
    memory = g.normal(size=[B, N, W])
    memory[0, 2] = 0.0  # an empty slot must not give NaN
    keys = g.normal(size=[B, heads, W])
    strengths = np_oneplus(g.normal(size=[B, heads]))
    masks = np_sigmoid(3.0 * g.normal(size=[B, heads, W]))
    masks[1, 0] = 0.0  # a head that masks everything out
    got = addressing.content_weights(
        *map(tf.constant, (memory, keys, strengths)), masks=tf.constant(masks)
    )
    close(got, ref_masked_content_weights(memory, keys, strengths, masks))
    close(tf.reduce_sum(got, -1), np.ones([B, heads]))
    # Everything masked out: similarity 0 everywhere, a uniform weighting.
    close(got[1, 0], np.full(N, 1.0 / N))
    # The similarity alone, against the reference's cosine.
    sims = addressing.cosine_similarity(
        tf.constant(memory), tf.constant(keys), masks=tf.constant(masks)
    )
    unit = np.ones([B, heads])
    ref = np.log(ref_masked_content_weights(memory, keys, unit, masks))
    close(sims - tf.reduce_mean(sims, -1, keepdims=True), ref - ref.mean(-1, keepdims=True))


def test_mask_of_ones_is_the_unmasked_lookup():
    g = make_rng(22)
    memory, keys = g.normal(size=[B, N, W]), g.normal(size=[B, 2, W])
    strengths = np_oneplus(g.normal(size=[B, 2]))
    plain = addressing.content_weights(*map(tf.constant, (memory, keys, strengths)))
    ones = addressing.content_weights(
        *map(tf.constant, (memory, keys, strengths)), masks=tf.ones([B, 2, W], tf.float64)
    )
    close(ones, plain.numpy(), atol=1e-12)


def test_mask_ignores_the_masked_out_part_of_the_words():
    # The key is (1, 0 | 1, 0). Slot 0 matches its first half and not its
    # second, slot 1 the other way round: unmasked, slot 0's second half
    # makes it the worse match; masked to the first half, slot 0 wins outright.
    memory = np.array([[[1.0, 0.0, -3.0, 3.0], [0.0, 1.0, 1.0, 0.0]]])
    key = np.array([[[1.0, 0.0, 1.0, 0.0]]])
    beta = np.array([[20.0]])
    plain = addressing.content_weights(*map(tf.constant, (memory, key, beta))).numpy()
    masked = addressing.content_weights(
        *map(tf.constant, (memory, key, beta)),
        masks=tf.constant([[[1.0, 1.0, 0.0, 0.0]]], tf.float64),
    ).numpy()
    assert plain[0, 0, 1] > plain[0, 0, 0]
    assert masked[0, 0, 0] > 0.999


def test_masks_must_match_the_keys():
    with pytest.raises(ValueError, match="masks must have the keys' shape"):
        addressing.content_weights(
            tf.zeros([1, 3, 4]), tf.zeros([1, 2, 4]), tf.ones([1, 2]), masks=tf.zeros([1, 2, 3])
        )
    with pytest.raises(ValueError, match="masks must have rank 3"):
        addressing.cosine_similarity(tf.zeros([1, 3, 4]), tf.zeros([1, 2, 4]), masks=tf.zeros([4]))


# --------------------------------------------------------------------------
# De-allocation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("num_writes", [1, 2])
def test_deallocating_write_matches_reference(num_writes):
    g = make_rng(30 + num_writes)
    free = g.uniform(size=[B, R])
    rw = simplex(g, (B, R, N))
    psi = addressing.retention(tf.constant(free), tf.constant(rw))
    close(psi, ref_retention(free, rw))
    memory = g.normal(size=[B, N, W])
    ww = simplex(g, (B, num_writes, N))
    erase = g.uniform(size=[B, num_writes, W])
    vectors = g.normal(size=[B, num_writes, W])
    got = addressing.erase_and_write(*map(tf.constant, (memory, ww, erase, vectors)), retention=psi)
    close(got, ref_deallocating_write(memory, ww, erase, vectors, ref_retention(free, rw)))
    # The usage's retention is the same vector.
    usage = g.uniform(size=[B, N])
    close(
        addressing.usage_after_read(*map(tf.constant, (usage, free, rw))),
        usage * ref_retention(free, rw),
    )


def test_deallocation_wipes_a_freed_slot_before_a_content_lookup():
    # Slot 1 was read at the previous step and is fully freed; nothing is written.
    prev_read = tf.constant([[[0.0, 1.0, 0.0]]])
    psi = addressing.retention(tf.constant([[1.0]]), prev_read)
    memory = tf.constant([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    nothing = tf.zeros([1, 1, 3])
    kept = addressing.erase_and_write(memory, nothing, tf.zeros([1, 1, 2]), tf.zeros([1, 1, 2]))
    wiped = addressing.erase_and_write(
        memory, nothing, tf.zeros([1, 1, 2]), tf.zeros([1, 1, 2]), retention=psi
    )
    np.testing.assert_array_equal(kept, memory)
    np.testing.assert_array_equal(wiped, [[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]])
    # A lookup of slot 1's old word no longer finds it.
    key, beta = tf.constant([[[0.0, 1.0]]]), tf.constant([[50.0]])
    assert np.argmax(addressing.content_weights(kept, key, beta)[0, 0]) == 1
    assert np.argmax(addressing.content_weights(wiped, key, beta)[0, 0]) == 2


# --------------------------------------------------------------------------
# Sharpness enhancement
# --------------------------------------------------------------------------


def test_sharpen_matches_reference():
    g = make_rng(40)
    d = simplex(g, (B, R, 2, N), total=0.8)
    d[0, 0, 0] = 0.0  # an all-zero distribution (nothing linked yet)
    d[1, 1, 1, 2] = 0.0
    s = np_oneplus(2.0 * g.normal(size=[B, R, 2]))
    got = addressing.sharpen(tf.constant(d), tf.constant(s))
    close(got, ref_sharpen(d, s), atol=1e-12)
    close(tf.reduce_sum(got, -1), np.ones([B, R, 2]))
    close(got[0, 0, 0], np.full(N, 1.0 / N))  # all-zero: uniform


def test_sharpen_raises_the_largest_entry_with_the_exponent():
    d = tf.constant([[0.1, 0.5, 0.3]], tf.float64)
    peaks = [float(addressing.sharpen(d, tf.constant([s], tf.float64))[0, 1]) for s in (1, 2, 8)]
    assert peaks[0] == pytest.approx(0.5 / 0.9, rel=1e-5)  # s = 1: renormalised only
    assert peaks[0] < peaks[1] < peaks[2] < 1.0
    # Tiny distributions (a blurred link) are sharpened as well as large ones.
    tiny = addressing.sharpen(d * 1e-30, tf.constant([8.0], tf.float64))
    close(tiny, ref_sharpen(d.numpy() * 1e-30, np.array([8.0])))


def test_sharpen_rejects_a_wrong_sharpness_shape():
    with pytest.raises(ValueError, match="sharpness must have shape"):
        addressing.sharpen(tf.ones([2, 3]), tf.ones([2, 3]))


# --------------------------------------------------------------------------
# Interface and whole access steps
# --------------------------------------------------------------------------


@pytest.mark.parametrize("num_writes", [1, 2])
def test_interface_size_and_layout_with_options(num_writes):
    h = num_writes
    base = access.interface_size(W, R, h)
    assert access.interface_size(W, R, h, masked_content=True) == base + (R + h) * W
    assert access.interface_size(W, R, h, sharpen_links=True) == base + 2 * R * h
    full = access.interface_size(W, R, h, masked_content=True, sharpen_links=True)
    assert full == base + (R + h) * W + 2 * R * h
    # The base quantities come first, so they are parsed the same with the options.
    xi = tf.constant(make_rng(41).normal(size=[B, full]))
    plain = access.parse_interface(xi[:, :base], W, R, h)
    rich = access.parse_interface(xi, W, R, h, masked_content=True, sharpen_links=True)
    for a, b in zip(plain[:10], rich[:10]):
        np.testing.assert_array_equal(a, b)
    assert plain.read_masks is plain.write_masks is plain.link_sharpness is None
    assert rich.read_masks.shape == (B, R, W) and rich.write_masks.shape == (B, h, W)
    assert rich.link_sharpness.shape == (B, R, 2 * h)
    assert np.all(rich.link_sharpness.numpy() >= 1.0)


def test_parse_interface_error_names_the_options():
    with pytest.raises(
        ValueError, match=r"\[batch, 223\].*masked_content=True, sharpen_links=True"
    ):
        access.parse_interface(
            tf.zeros([1, 135]), 16, 4, 1, masked_content=True, sharpen_links=True
        )


@pytest.mark.parametrize(
    "options",
    [
        {"masked_content": True},
        {"deallocate": True},
        {"sharpen_links": True},
        {"masked_content": True, "deallocate": True, "sharpen_links": True},
    ],
    ids=["masked", "deallocate", "sharpen", "all"],
)
@pytest.mark.parametrize("num_writes", [1, 2])
def test_access_step_with_options_matches_reference_over_several_steps(options, num_writes):
    masked = options.get("masked_content", False)
    dealloc = options.get("deallocate", False)
    sharpen = options.get("sharpen_links", False)
    g = make_rng(50 + num_writes)
    size = access.interface_size(W, R, num_writes, masked_content=masked, sharpen_links=sharpen)
    module = access.MemoryAccess(N, W, R, num_writes, **options)
    tf_state = module.initial_state(B, tf.float64)
    np_state = tuple(x.numpy() for x in flat_state(tf_state))
    for _ in range(5):
        xi = 2.0 * g.normal(size=[B, size])
        interface = access.parse_interface(
            tf.constant(xi), W, R, num_writes, masked_content=masked, sharpen_links=sharpen
        )
        words, tf_state = access.access_step(interface, tf_state, deallocate=dealloc)
        np_words, np_state = ref_access_step(
            xi, np_state, W, R, num_writes, masked, dealloc, sharpen
        )
        close(words, np_words, atol=1e-9)
    for a, b in zip(flat_state(tf_state), np_state):
        close(a, b, atol=1e-9)
    # The module's own call parses with its options and steps the same way.
    inputs = tf.constant(g.normal(size=[B, 5]))
    interface = access.parse_interface(
        module.interface_layer(inputs),
        W,
        R,
        num_writes,
        masked_content=masked,
        sharpen_links=sharpen,
    )
    want = access.access_step(interface, tf_state, deallocate=dealloc)
    got = module(inputs, tf_state)
    for a, b in zip(nestlib.flatten(got), nestlib.flatten(want)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Off by default: bit for bit the DNC it was
# --------------------------------------------------------------------------


def access_step_before_the_options(interface, prev_state):
    """rnn.dnc.access.access_step as of commit 78886eb (before the options), frozen."""
    num_writes = interface.write_gates.shape[-1]
    usage = addressing.update_usage(
        prev_state.usage, prev_state.write_weights, interface.free_gates, prev_state.read_weights
    )
    write_content = addressing.content_weights(
        prev_state.memory, interface.write_keys, interface.write_strengths
    )
    allocation = addressing.write_allocation_weights(
        usage, interface.allocation_gates * interface.write_gates, num_writes
    )
    write_weights = addressing.write_weights(
        write_content, allocation, interface.allocation_gates, interface.write_gates
    )
    memory = addressing.erase_and_write(
        prev_state.memory, write_weights, interface.erase_vectors, interface.write_vectors
    )
    linkage = addressing.update_linkage(prev_state.linkage, write_weights)
    read_content = addressing.content_weights(memory, interface.read_keys, interface.read_strengths)
    forward = addressing.directional_read_weights(
        linkage.link, prev_state.read_weights, forward=True
    )
    backward = addressing.directional_read_weights(
        linkage.link, prev_state.read_weights, forward=False
    )
    read_weights = addressing.read_weights(read_content, forward, backward, interface.read_modes)
    words = addressing.read_words(memory, read_weights)
    return words, access.AccessState(memory, read_weights, write_weights, linkage, usage)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("num_writes", [1, 2])
def test_options_off_are_bit_identical_to_the_dnc_before_them(dtype, num_writes):
    g = make_rng(60 + num_writes)
    module = access.MemoryAccess(N, W, R, num_writes)
    explicit = access.MemoryAccess(
        N, W, R, num_writes, masked_content=False, deallocate=False, sharpen_links=False
    )
    size = access.interface_size(W, R, num_writes)
    assert module.interface_layer.output_size == explicit.interface_layer.output_size == size
    new = old = module.initial_state(B, dtype)
    for _ in range(4):
        interface = access.parse_interface(
            tf.constant(2.0 * g.normal(size=[B, size]), dtype), W, R, num_writes
        )
        off = access.access_step(interface, old, deallocate=False)
        new_words, new = access.access_step(interface, new)
        old_words, old = access_step_before_the_options(interface, old)
        for a, b in zip(nestlib.flatten((new_words, new)), nestlib.flatten((old_words, old))):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(nestlib.flatten(off), nestlib.flatten((old_words, old))):
            np.testing.assert_array_equal(a, b)


def test_dnc_with_options_off_is_the_default_dnc_bit_for_bit():
    x = tf.constant(make_rng(62).normal(size=[5, B, 3]), tf.float32)

    def run(**options):
        tf.random.set_seed(7)
        dnc = DNC(2, controller=rnn.LSTM(6), memory_size=N, word_size=W, num_reads=R, **options)
        with tf.GradientTape() as tape:
            out, final = rnn.dynamic_unroll(dnc, x, dnc.initial_state(B))
            loss = tf.reduce_sum(out**2)
        grads = tape.gradient(loss, dnc.trainable_variables)
        return dnc, (out, final, grads)

    default_dnc, default = run()
    off_dnc, off = run(**{key: False for key in OPTIONS})
    assert [v.shape for v in default_dnc.trainable_variables] == [
        v.shape for v in off_dnc.trainable_variables
    ]
    for a, b in zip(nestlib.flatten(default), nestlib.flatten(off)):
        np.testing.assert_array_equal(a, b)
    assert off_dnc.get_config().keys() == default_dnc.get_config().keys()


# --------------------------------------------------------------------------
# Gradients: finite differences through the new paths
# --------------------------------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS)
def test_gradients_match_finite_differences(option):
    h, n, w, r, batch = 2, 4, 3, 2, 2
    masked, sharpen = option == "masked_content", option == "sharpen_links"
    dealloc = option == "deallocate"
    g = make_rng(70)
    state, _ = random_state(g, h, n=n, w=w, r=r, batch=batch)
    size = access.interface_size(w, r, h, masked_content=masked, sharpen_links=sharpen)
    xi0 = tf.constant(g.normal(size=[batch, size]))
    weights = [tf.constant(g.normal(size=x.shape)) for x in (state.memory, state.read_weights)]
    words_weights = tf.constant(g.normal(size=[batch, r, w]))

    def loss(xi, memory):
        interface = access.parse_interface(
            xi, w, r, h, masked_content=masked, sharpen_links=sharpen
        )
        words, next_state = access.access_step(
            interface, state._replace(memory=memory), deallocate=dealloc
        )
        return (
            tf.reduce_sum(words * words_weights)
            + tf.reduce_sum(next_state.memory * weights[0])
            + tf.reduce_sum(next_state.read_weights * weights[1])
        )

    theoretical, numerical = tf.test.compute_gradient(loss, [xi0, state.memory], delta=1e-6)
    for t, num in zip(theoretical, numerical):
        np.testing.assert_allclose(t, num, rtol=1e-5, atol=1e-7)
    # The option's own interface outputs (at the end of xi) do get gradients.
    base = access.interface_size(w, r, h)
    if masked or sharpen:
        option_grads = theoretical[0].reshape(batch, size)[:, base:]
        assert np.all(np.abs(option_grads).max(axis=0) > 0.0)
    else:  # de-allocation: the free gates now reach the memory
        free = slice(r * w + r + 3 * h * w + h, r * w + r + 3 * h * w + h + r)
        with tf.GradientTape() as tape:
            tape.watch(xi0)
            interface = access.parse_interface(xi0, w, r, h)
            _, on = access.access_step(interface, state, deallocate=True)
            memory_on = tf.reduce_sum(on.memory * weights[0])
        assert np.all(tape.gradient(memory_on, xi0).numpy()[:, free] != 0.0)


# --------------------------------------------------------------------------
# The DNC's options: API, config, execution modes, mixed precision
# --------------------------------------------------------------------------


def all_options_dnc(dtype=None, **kwargs):
    args = dict(memory_size=N, word_size=W, num_reads=R, num_writes=2, clip_value=20.0)
    args.update(kwargs)
    return DNC(
        3,
        controller=rnn.LSTM(8, dtype=dtype),
        masked_content=True,
        deallocate=True,
        sharpen_links=True,
        dtype=dtype,
        **args,
    )


def test_dnc_options_api_config_and_state():
    plain = DNC(3, memory_size=N, word_size=W, num_reads=R, num_writes=2)
    dnc = all_options_dnc()
    assert (dnc.masked_content, dnc.deallocate, dnc.sharpen_links) == (True, True, True)
    assert (plain.masked_content, plain.deallocate, plain.sharpen_links) == (False,) * 3
    assert dnc.access.interface_layer.output_size == (
        access.interface_size(W, R, 2) + (R + 2) * W + 2 * R * 2
    )
    config = dnc.get_config()
    assert {key: config[key] for key in OPTIONS} == dict.fromkeys(OPTIONS, True)
    assert not set(OPTIONS) & set(plain.get_config())
    # Only the options that are on.
    assert set(DNC(3, sharpen_links=True).get_config()) & set(OPTIONS) == {"sharpen_links"}
    rebuilt = DNC.from_config(config)
    assert (rebuilt.masked_content, rebuilt.deallocate, rebuilt.sharpen_links) == (True,) * 3
    # The state is the plain DNC's, structure and shapes.
    state = dnc.initial_state(B)
    shapes = nestlib.map_structure(lambda x: x.shape.as_list(), state)
    assert shapes == nestlib.map_structure(
        lambda x: x.shape.as_list(), plain.initial_state(B)
    )._replace(controller_state=shapes.controller_state)
    out, next_state = dnc(tf.ones([B, 5]), state)
    assert type(next_state) is DNCState and out.shape == (B, 3)
    assert nestlib.map_structure(lambda x: x.shape.as_list(), next_state) == shapes


def test_dnc_options_are_keyword_only_bools():
    for key in OPTIONS:
        with pytest.raises(TypeError, match=f"{key} must be a bool, got 1 \\(int\\)"):
            DNC(2, **{key: 1})
        with pytest.raises(TypeError, match=f"{key} must be a bool"):
            access.MemoryAccess(4, 2, **{key: "yes"})
    with pytest.raises(TypeError, match="deallocate must be a bool"):
        access.access_step(None, None, deallocate=None)
    with pytest.raises(TypeError):
        access.MemoryAccess(4, 2, 1, 1, True)  # the options are keyword-only
    assert DNC(2, deallocate=np.bool_(True)).deallocate is True


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_changes_the_outputs(option):
    x = tf.constant(make_rng(80).normal(size=[6, B, 5]), tf.float32)
    outputs = []
    for on in (False, True):
        tf.random.set_seed(3)
        dnc = DNC(
            3, controller=rnn.LSTM(8), memory_size=N, word_size=W, num_reads=R, **{option: on}
        )
        outputs.append(rnn.dynamic_unroll(dnc, x, dnc.initial_state(B))[0].numpy())
    assert np.max(np.abs(outputs[0] - outputs[1])) > 1e-4


def slot_order_free_difference(got, expected):
    """The largest difference between two DNC access states over every batch
    row, after putting each row's memory slots in the order that matches best.

    Two runs of the same DNC may write to different memory slots where the
    usages of free slots nearly tie. After the first steps, several slots
    have been written alike, and their usages differ by a few units in the
    last place (0.06691744 and 0.066917464, say); which one the allocation
    takes next then depends on rounding, which XLA's fused loops do
    differently from the eager kernels. The DNC treats its slots alike, so
    such a run holds the other's state with those slots relabelled, to that
    rounding; the outputs and the gradients are the same.
    """
    slot_axes = dict(
        memory=(0,),
        usage=(0,),
        read_weights=(1,),
        write_weights=(1,),
        link=(1, 2),
        precedence_weights=(1,),
    )  # (in a batch row of each leaf)
    pairs = [
        (path[-1], np.asarray(a), np.asarray(b))
        for (path, a), b in zip(nestlib.flatten_with_path(got), nestlib.flatten(expected))
    ]
    worst = 0.0
    for row in range(B):
        best = np.inf
        for order in itertools.permutations(range(N)):
            diff = 0.0
            for name, a, b in pairs:
                a = a[row]
                for axis in slot_axes[name]:
                    a = np.take(a, order, axis=axis)
                diff = max(diff, float(np.max(np.abs(a - b[row]))))
            best = min(best, diff)
        worst = max(worst, best)
    return worst


def test_slot_order_free_difference_sees_a_relabelling_but_not_a_change():
    dnc = all_options_dnc()
    x = tf.constant(make_rng(80).normal(size=[4, B, 5]), tf.float32)
    state = rnn.dynamic_unroll(dnc, x, dnc.initial_state(B))[1].access_state
    order = [0, 4, 2, 3, 1, 5]
    relabelled = state._replace(
        memory=tf.gather(state.memory, order, axis=1),
        usage=tf.gather(state.usage, order, axis=1),
        read_weights=tf.gather(state.read_weights, order, axis=2),
        write_weights=tf.gather(state.write_weights, order, axis=2),
        linkage=state.linkage._replace(
            link=tf.gather(tf.gather(state.linkage.link, order, axis=2), order, axis=3),
            precedence_weights=tf.gather(state.linkage.precedence_weights, order, axis=2),
        ),
    )
    assert np.max(np.abs(relabelled.memory - state.memory)) > 1e-2
    assert slot_order_free_difference(relabelled, state) < 1e-7
    changed = relabelled._replace(usage=relabelled.usage + tf.one_hot([1] * B, N) * 1e-2)
    assert slot_order_free_difference(changed, state) == pytest.approx(1e-2, rel=1e-3)


def test_options_in_function_and_xla_match_eager_with_gradients():
    """Also under XLA, up to which of two tied free slots each write took
    (see slot_order_free_difference): the outputs, the controller's state,
    the read words and the gradients match as they are."""
    tf.random.set_seed(597)
    dnc = all_options_dnc()
    x = tf.constant(make_rng(81).normal(size=[5, B, 5]), tf.float32)

    def loss_and_grads(seq):
        with tf.GradientTape() as tape:
            out, final = rnn.dynamic_unroll(dnc, seq, dnc.initial_state(tf.shape(seq)[1]))
            loss = tf.reduce_sum(tf.square(out - 1.0))
        return out, final, tape.gradient(loss, dnc.trainable_variables)

    eager = loss_and_grads(x)
    for v, grad in zip(dnc.trainable_variables, eager[2]):
        assert grad is not None and np.all(np.isfinite(grad.numpy())), v.name
        assert np.any(grad.numpy() != 0.0), v.name
    spec = [tf.TensorSpec([None, None, 5], tf.float32)]
    for jit in (False, True):
        fn = tf.function(loss_and_grads, autograph=False, jit_compile=jit, input_signature=spec)
        out, final, grads = fn(x)
        as_they_are = (out, final.controller_state, final.access_output)
        expected = (eager[0], eager[1].controller_state, eager[1].access_output)
        for a, b in zip(nestlib.flatten(as_they_are), nestlib.flatten(expected)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        assert slot_order_free_difference(final.access_state, eager[1].access_state) < 1e-4
        for a, b in zip(grads, eager[2]):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("half, tol", [(tf.float16, 1e-2), (tf.bfloat16, 5e-2)])
def test_options_in_mixed_precision(half, tol):
    """float16 / bfloat16 inputs and state with float32 variables, as in
    tests/rnn/test_mixed_precision.py (same tolerances, same comparable parts:
    the read words and the controller state; the memory itself may differ
    where rounding ties the usages of free slots)."""
    dnc = all_options_dnc(dtype=tf.float32)
    x = tf.constant(make_rng(82).normal(size=[8, B, 5]), tf.float32)

    def run(dtype):
        with tf.GradientTape() as tape:
            out, final = rnn.dynamic_unroll(dnc, tf.cast(x, dtype), dnc.initial_state(B, dtype))
            loss = tf.reduce_sum(tf.square(tf.cast(out, tf.float32) - 1.0))
        return out, final, tape.gradient(loss, dnc.trainable_variables)

    full, low = run(tf.float32), run(half)
    assert all(v.dtype == tf.float32 for v in dnc.trainable_variables)
    assert low[0].dtype == half and low[1].access_state.memory.dtype == half
    pairs = [
        (low[0], full[0]),
        (low[1].access_output, full[1].access_output),
        (low[1].controller_state, full[1].controller_state),
    ]
    for lo, hi in pairs:
        for a, b in zip(nestlib.flatten(lo), nestlib.flatten(hi)):
            a, b = tf.cast(a, tf.float32).numpy(), b.numpy()
            assert np.isfinite(a).all()
            np.testing.assert_array_less(np.abs(a - b), tol * (1.0 + np.abs(b)) + 1e-7)
    for leaf in nestlib.flatten(low[1].access_state):
        assert np.isfinite(tf.cast(leaf, tf.float32).numpy()).all()
    grads_low = np.concatenate([tf.convert_to_tensor(g).numpy().ravel() for g in low[2]])
    grads_full = np.concatenate([tf.convert_to_tensor(g).numpy().ravel() for g in full[2]])
    assert {tf.convert_to_tensor(g).dtype for g in low[2]} == {tf.float32}
    assert np.isfinite(grads_low).all()
    assert np.linalg.norm(grads_low - grads_full) <= 2 * tol * np.linalg.norm(grads_full)
