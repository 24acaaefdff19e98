"""Memory addressing of the Differentiable Neural Computer, as pure functions.

Each function is one equation group of Graves et al., "Hybrid computing using a
neural network with dynamic external memory", Nature 538 (2016), Methods
section "Controller network" / "Memory addressing". They take and return plain
tensors (plus :class:`TemporalLinkageState`), own no variables and work
eagerly, inside ``tf.function`` and under XLA (``jit_compile=True``).

Three optional improvements of Csordás & Schmidhuber, "Improving
Differentiable Neural Computers Through Memory Masking, De-allocation, and
Link Distribution Sharpness Control", ICLR 2019, are arguments of these
functions, each off by default: ``masks`` of :func:`content_weights`
(masked content-based addressing), ``retention`` of :func:`erase_and_write`
(de-allocation: freed slots are wiped, with :func:`retention`) and
:func:`sharpen` (sharpness of the temporal link distributions).

Shapes use ``B`` batch, ``N`` memory slots (``memory_size``), ``W`` word size,
``R`` read heads and ``Wh`` write heads. The paper has a single write head; the
multi-head generalisations used here are described in ``docs/dnc.md``.

Under mixed precision (float16 or bfloat16 tensors) the numerically
sensitive steps run in float32 and their results are cast back to the
inputs' dtype: the cosine similarity (float16 squares overflow above 256,
and ``EPSILON`` is subnormal there), the softmax over the memory slots (what
Keras' mixed-precision guide keeps in float32 too) and the allocation's
products of up to ``N`` usages (they underflow float16's range within a
few slots, taking the gradients with it). The rest (gates, erase/add, links)
are products and sums of values in ``[0, 1]`` and stay in the inputs' dtype.

Example (a whole write-then-read step on a 2-slot memory):

>>> import tensorflow as tf
>>> memory = tf.constant([[[1., 0.], [0., 1.]]])          # [B=1, N=2, W=2]
>>> keys = tf.constant([[[1., 0.]]])                       # one head
>>> w = content_weights(memory, keys, tf.constant([[50.]]))
>>> [round(float(x), 3) for x in w[0, 0]]
[1.0, 0.0]
"""

from __future__ import annotations

import collections

import numpy as np
import tensorflow as tf

from rnn._checks import positive_int
from rnn._utils import at_least_float32

__all__ = [
    "TemporalLinkageState",
    "oneplus",
    "cosine_similarity",
    "content_weights",
    "usage_after_write",
    "retention",
    "usage_after_read",
    "update_usage",
    "allocation_weights",
    "write_allocation_weights",
    "write_weights",
    "erase_and_write",
    "update_precedence",
    "update_link",
    "update_linkage",
    "directional_read_weights",
    "sharpen",
    "read_weights",
    "read_words",
]

# Added under square roots and to usages so that gradients stay finite (a
# cosine of an all-zero memory row, the logarithms of the usages in the allocation).
EPSILON = 1e-6


class TemporalLinkageState(
    collections.namedtuple("TemporalLinkageState", ("link", "precedence_weights"))
):
    """Temporal link state: ``link`` ``[B, Wh, N, N]`` and ``precedence_weights`` ``[B, Wh, N]``.

    ``link[b, h, i, j]`` is the degree to which slot ``i`` was written by write
    head ``h`` right after slot ``j`` (the paper's ``L_t[i, j]``).

    >>> s = TemporalLinkageState(link=tf.zeros([1, 1, 3, 3]),
    ...                          precedence_weights=tf.zeros([1, 1, 3]))
    >>> s.link.shape.as_list()
    [1, 1, 3, 3]
    """

    __slots__ = ()


def oneplus(x: tf.Tensor) -> tf.Tensor:
    """The paper's ``oneplus(x) = 1 + log(1 + exp(x))``, mapping to ``[1, inf)``.

    >>> float(oneplus(tf.constant(0.0))) == 1.0 + float(tf.math.log(2.0))
    True
    """
    return 1.0 + tf.nn.softplus(x)


def _check_rank(name: str, x: tf.Tensor, rank: int) -> None:
    if x.shape.rank is not None and x.shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {x.shape}")


def _cast_back(x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    return x if x.dtype == dtype else tf.cast(x, dtype)


def _similarity(
    memory: tf.Tensor, keys: tf.Tensor, epsilon: float, masks: tf.Tensor | None = None
) -> tf.Tensor:
    """Cosine similarity in float32 (or wider) for float16/bfloat16 arguments.

    With ``masks`` ``[B, H, W]``: ``D(k ⊙ m, M[i] ⊙ m)``, computed without a
    ``[B, H, N, W]`` masked memory: ``sum_w k m^2 M[i]`` over
    ``sqrt(|k ⊙ m|^2 + eps) sqrt(sum_w m^2 M[i]^2 + eps)``.
    """
    memory, keys = at_least_float32(memory), at_least_float32(keys)
    if masks is None:
        dot = tf.linalg.matmul(keys, memory, transpose_b=True)  # [B, H, N]
        memory_norm = tf.sqrt(tf.reduce_sum(tf.square(memory), axis=2) + epsilon)
        key_norm = tf.sqrt(tf.reduce_sum(tf.square(keys), axis=2) + epsilon)
        return dot / (key_norm[:, :, tf.newaxis] * memory_norm[:, tf.newaxis, :])
    masks = tf.cast(masks, memory.dtype)
    masked_keys = keys * masks
    dot = tf.linalg.matmul(masked_keys * masks, memory, transpose_b=True)  # [B, H, N]
    squared_masks = tf.square(masks)
    memory_norm = tf.sqrt(
        tf.linalg.matmul(squared_masks, tf.square(memory), transpose_b=True) + epsilon
    )  # [B, H, N]
    key_norm = tf.sqrt(tf.reduce_sum(tf.square(masked_keys), axis=2) + epsilon)
    return dot / (key_norm[:, :, tf.newaxis] * memory_norm)


def _check_masks(masks: tf.Tensor | None, keys: tf.Tensor) -> None:
    """Masks must have the keys' shape ``[B, H, W]`` (where both are known)."""
    if masks is None:
        return
    _check_rank("masks", masks, 3)
    if keys.shape.rank is not None and not masks.shape.is_compatible_with(keys.shape):
        raise ValueError(
            f"masks must have the keys' shape {keys.shape} (one mask per head), got {masks.shape}"
        )


def cosine_similarity(
    memory: tf.Tensor,
    keys: tf.Tensor,
    epsilon: float = EPSILON,
    *,
    masks: tf.Tensor | None = None,
) -> tf.Tensor:
    """Cosine similarity ``D(k, M[i])`` of every key with every memory row.

    Args:
      memory: ``[B, N, W]``.
      keys: ``[B, H, W]``, one key per head.
      epsilon: added to squared norms so all-zero rows give 0, not NaN.
      masks: optional ``[B, H, W]`` in ``[0, 1]``, one per key: the masked
        similarity ``D(k ⊙ m, M[i] ⊙ m)`` of Csordás & Schmidhuber (2019),
        which compares only the parts of the words the mask selects.

    Returns:
      ``[B, H, N]``, in the arguments' dtype (computed in float32 for
      float16 and bfloat16: the squared norms overflow float16 above 256).

    >>> m = tf.constant([[[3., 4.], [0., 0.]]])
    >>> k = tf.constant([[[3., 4.]]])
    >>> [round(float(x), 4) for x in cosine_similarity(m, k)[0, 0]]
    [1.0, 0.0]
    >>> big = tf.fill([1, 1, 4], tf.constant(300.0, tf.float16))  # 4 * 300**2 > float16 max
    >>> similarity = cosine_similarity(big, big)
    >>> similarity.dtype.name, float(similarity[0, 0, 0])
    ('float16', 1.0)
    >>> m = tf.constant([[[1., 5.], [1., -5.]]])            # the rows agree on part 1 only
    >>> k, part_1 = tf.constant([[[1., 0.]]]), tf.constant([[[1., 0.]]])
    >>> [round(float(x), 3) for x in cosine_similarity(m, k)[0, 0]]
    [0.196, 0.196]
    >>> [round(float(x), 3) for x in cosine_similarity(m, k, masks=part_1)[0, 0]]
    [1.0, 1.0]
    """
    _check_rank("memory", memory, 3)
    _check_rank("keys", keys, 3)
    _check_masks(masks, keys)
    return _cast_back(_similarity(memory, keys, epsilon, masks), memory.dtype)


def content_weights(
    memory: tf.Tensor,
    keys: tf.Tensor,
    strengths: tf.Tensor,
    *,
    masks: tf.Tensor | None = None,
) -> tf.Tensor:
    """Content-based addressing ``C(M, k, beta)``: softmax over slots of ``beta * D(k, M[i])``.

    Args:
      memory: ``[B, N, W]``.
      keys: ``[B, H, W]``.
      strengths: ``[B, H]``, the key strengths ``beta >= 1`` (see :func:`oneplus`).
      masks: optional ``[B, H, W]`` in ``[0, 1]``: masked content-based
        addressing (Csordás & Schmidhuber, 2019), the softmax of
        ``beta * D(k ⊙ m, M[i] ⊙ m)`` (see :func:`cosine_similarity`).

    Returns:
      ``[B, H, N]`` weightings, each summing to 1 over ``N``, in the
      memory's dtype (similarity and softmax computed in float32 for float16
      and bfloat16 memories, then cast back).

    >>> m = tf.constant([[[1., 0.], [0., 1.]]])
    >>> w = content_weights(m, tf.constant([[[1., 1.]]]), tf.constant([[1.]]))
    >>> [round(float(x), 3) for x in w[0, 0]]
    [0.5, 0.5]
    >>> w = content_weights(tf.cast(m, tf.float16), tf.constant([[[1., 1.]]], tf.float16),
    ...                     tf.constant([[1.]], tf.float16))
    >>> w.dtype.name, [round(float(x), 3) for x in w[0, 0]]
    ('float16', [0.5, 0.5])
    >>> w = content_weights(m, tf.constant([[[1., 1.]]]), tf.constant([[5.]]),
    ...                     masks=tf.constant([[[0., 1.]]]))   # compare part 2 only
    >>> [round(float(x), 3) for x in w[0, 0]]
    [0.007, 0.993]
    """
    _check_rank("memory", memory, 3)
    _check_rank("keys", keys, 3)
    _check_rank("strengths", strengths, 2)
    _check_masks(masks, keys)
    similarity = _similarity(memory, keys, EPSILON, masks)
    strengths = tf.cast(strengths, similarity.dtype)
    weights = tf.nn.softmax(similarity * strengths[:, :, tf.newaxis], axis=-1)
    return _cast_back(weights, memory.dtype)


def _combine_write_heads(write_weights: tf.Tensor) -> tf.Tensor:
    """``1 - prod_h (1 - w_h)``: the share of each slot written by any head."""
    return 1.0 - tf.reduce_prod(1.0 - write_weights, axis=1)


def usage_after_write(prev_usage: tf.Tensor, write_weights: tf.Tensor) -> tf.Tensor:
    """``u + w - u * w``: usage raised by the previous step's writes.

    Args:
      prev_usage: ``[B, N]``.
      write_weights: ``[B, Wh, N]`` (heads combined as ``1 - prod(1 - w_h)``).

    >>> u = usage_after_write(tf.constant([[0.5, 0.0]]),
    ...                       tf.constant([[[0.5, 1.0]]]))
    >>> u.numpy().tolist()
    [[0.75, 1.0]]
    """
    _check_rank("prev_usage", prev_usage, 2)
    _check_rank("write_weights", write_weights, 3)
    written = _combine_write_heads(write_weights)
    return prev_usage + written - prev_usage * written


def retention(free_gates: tf.Tensor, prev_read_weights: tf.Tensor) -> tf.Tensor:
    """The retention vector ``psi_t = prod_r (1 - f_r * w^r_{t-1, r})``, ``[B, N]``.

    How much of each slot the free gates keep: 0 where a read head read a
    slot at the previous step and its free gate is 1.

    Args:
      free_gates: ``[B, R]`` in ``[0, 1]``.
      prev_read_weights: ``[B, R, N]``.

    >>> retention(tf.constant([[1.0, 0.5]]),
    ...           tf.constant([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])).numpy().tolist()
    [[0.0, 0.5, 1.0]]
    """
    _check_rank("free_gates", free_gates, 2)
    _check_rank("prev_read_weights", prev_read_weights, 3)
    return tf.reduce_prod(1.0 - free_gates[:, :, tf.newaxis] * prev_read_weights, axis=1)


def usage_after_read(
    usage: tf.Tensor, free_gates: tf.Tensor, prev_read_weights: tf.Tensor
) -> tf.Tensor:
    """``u * psi`` with the retention ``psi = prod_r (1 - f_r * w_r)`` (:func:`retention`).

    Args:
      usage: ``[B, N]``.
      free_gates: ``[B, R]`` in ``[0, 1]``.
      prev_read_weights: ``[B, R, N]``.

    >>> u = usage_after_read(tf.constant([[1.0, 1.0]]), tf.constant([[1.0]]),
    ...                      tf.constant([[[1.0, 0.0]]]))
    >>> u.numpy().tolist()
    [[0.0, 1.0]]
    """
    return usage * retention(free_gates, prev_read_weights)


def update_usage(
    prev_usage: tf.Tensor,
    prev_write_weights: tf.Tensor,
    free_gates: tf.Tensor,
    prev_read_weights: tf.Tensor,
) -> tf.Tensor:
    """The usage vector ``u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} w^w_{t-1}) * psi_t``.

    Gradients do not flow into the usage from the previous write weights
    (they are a function of the previous usage through a sort, as in the
    paper's implementation); they do flow into the free gates.

    >>> u = update_usage(tf.constant([[0.0, 0.0]]), tf.constant([[[1.0, 0.0]]]),
    ...                  tf.constant([[0.0]]), tf.constant([[[1.0, 0.0]]]))
    >>> u.numpy().tolist()
    [[1.0, 0.0]]
    """
    usage = usage_after_write(prev_usage, tf.stop_gradient(prev_write_weights))
    return usage_after_read(usage, free_gates, prev_read_weights)


def allocation_weights(usage: tf.Tensor, epsilon: float = EPSILON) -> tf.Tensor:
    """Allocation weighting ``a_t`` from the usage sorted in ascending order.

    With ``phi`` the slot indices sorted by usage (least used first),
    ``a[phi_j] = (1 - u[phi_j]) * prod_{i<j} u[phi_i]``. The usage is first
    mapped to ``epsilon + (1 - epsilon) * u`` so that the gradient of the
    product stays finite. Gradients flow through the usage values, not
    through the sort order.

    Computed without sorting: slot ``j`` comes before slot ``i`` when
    ``u[j] < u[i]``, or ``u[j] == u[i]`` and ``j < i`` (the sort's order, ties
    to the lower index), so ``a[i] = (1 - u[i]) * exp(sum_{j before i} log u[j])``.
    Comparing all pairs costs ``[B, N, N]``, as the link matrix already does;
    XLA compiles it into a few fused loops where a sort, a cumulative product
    and a scatter back to slot order were separate steps (the repeat-copy
    DNC's training step took 0.85-0.89x the time).

    Args:
      usage: ``[B, N]`` in ``[0, 1]``.

    Returns:
      ``[B, N]`` in the usage's dtype (computed in float32 for float16 and
      bfloat16 usages: the product underflows float16 within a few slots of
      small usages).

    >>> a = allocation_weights(tf.constant([[1.0, 0.0, 0.5]]), epsilon=0.0)
    >>> a.numpy().tolist()
    [[0.0, 1.0, 0.0]]
    >>> a = allocation_weights(tf.constant([[1.0, 0.5, 0.5]]), epsilon=0.0)
    >>> [round(float(x), 6) for x in a[0]]
    [0.0, 0.5, 0.25]
    """
    _check_rank("usage", usage, 2)
    dtype = usage.dtype
    usage = at_least_float32(usage)
    usage = epsilon + (1.0 - epsilon) * usage
    u_i = usage[:, :, tf.newaxis]
    u_j = usage[:, tf.newaxis, :]
    before = (u_j < u_i) | ((u_j == u_i) & _lower_index(usage))
    # A zero usage (epsilon=0) gives log 0 = -inf and a product of exactly 0.
    log_before = tf.reduce_sum(tf.where(before, tf.math.log(u_j), 0.0), axis=2)
    return _cast_back((1.0 - usage) * tf.exp(log_before), dtype)


def _lower_index(usage: tf.Tensor) -> tf.Tensor:
    """``[N, N]`` bools for ``usage [B, N]``, ``[i, j]`` true where ``j < i``: a
    constant where ``N`` is static (inside an unroll's loop, one computed by
    ops would be a new tensor at every step)."""
    size = usage.shape[-1]
    if size is not None:
        return tf.constant(np.tril(np.ones([size, size], bool), -1))
    index = tf.range(tf.shape(usage)[-1])
    return index[tf.newaxis, :] < index[:, tf.newaxis]


def write_allocation_weights(
    usage: tf.Tensor, write_gates: tf.Tensor, num_writes: int
) -> tf.Tensor:
    """Allocation weightings for each write head, ``[B, Wh, N]``.

    Head ``h`` allocates from the usage left after heads ``0..h-1`` have
    (provisionally) written to their allocations, scaled by their write gates,
    so that several heads do not all allocate the same free slot.

    Args:
      usage: ``[B, N]``.
      write_gates: ``[B, Wh]``; only used when ``num_writes > 1``.
      num_writes: number of write heads ``Wh``.

    >>> a = write_allocation_weights(tf.constant([[0.0, 1.0, 1.0]]),
    ...                              tf.constant([[1.0, 1.0]]), 2)
    >>> [[round(float(x), 3) for x in head] for head in a[0]]
    [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    num_writes = positive_int("num_writes", num_writes)
    _check_rank("write_gates", write_gates, 2)
    # In float32 under mixed precision, the provisional usages included: a
    # later head allocates the least used slot, and after an earlier head's
    # write the other slots differ only by powers of EPSILON, which float16
    # rounds to ties (so the head would pick another slot than in float32).
    dtype = usage.dtype
    usage, write_gates = at_least_float32(usage), at_least_float32(write_gates)
    heads = []
    for h in range(num_writes):
        allocation = allocation_weights(usage)
        heads.append(allocation)
        if h + 1 < num_writes:
            written = write_gates[:, h : h + 1] * allocation
            usage = usage + (1.0 - usage) * written
    return _cast_back(tf.stack(heads, axis=1), dtype)


def write_weights(
    write_content_weights: tf.Tensor,
    allocation: tf.Tensor,
    allocation_gates: tf.Tensor,
    write_gates: tf.Tensor,
) -> tf.Tensor:
    """``w^w = g^w (g^a a + (1 - g^a) c^w)`` for each write head.

    Args:
      write_content_weights: ``[B, Wh, N]``.
      allocation: ``[B, Wh, N]`` (see :func:`write_allocation_weights`).
      allocation_gates: ``[B, Wh]``.
      write_gates: ``[B, Wh]``.

    >>> w = write_weights(tf.constant([[[1.0, 0.0]]]), tf.constant([[[0.0, 1.0]]]),
    ...                   tf.constant([[0.25]]), tf.constant([[0.5]]))
    >>> w.numpy().tolist()
    [[[0.375, 0.125]]]
    """
    _check_rank("allocation_gates", allocation_gates, 2)
    _check_rank("write_gates", write_gates, 2)
    ga = allocation_gates[:, :, tf.newaxis]
    gw = write_gates[:, :, tf.newaxis]
    return gw * (ga * allocation + (1.0 - ga) * write_content_weights)


def erase_and_write(
    memory: tf.Tensor,
    write_weights: tf.Tensor,
    erase_vectors: tf.Tensor,
    write_vectors: tf.Tensor,
    *,
    retention: tf.Tensor | None = None,
) -> tf.Tensor:
    """``M_t = M_{t-1} * prod_h (1 - w_h e_h^T) + sum_h w_h v_h^T``.

    With ``retention`` (de-allocation, Csordás & Schmidhuber, 2019), the
    slots the free gates released are wiped as well:
    ``M_t = M_{t-1} * (psi_t 1^T) * prod_h (1 - w_h e_h^T) + sum_h w_h v_h^T``,
    so a freed slot no longer answers content lookups.

    Args:
      memory: ``[B, N, W]``.
      write_weights: ``[B, Wh, N]``.
      erase_vectors: ``[B, Wh, W]`` in ``[0, 1]``.
      write_vectors: ``[B, Wh, W]``.
      retention: optional ``[B, N]`` in ``[0, 1]``, the retention vector
        ``psi_t`` of this step (see :func:`retention`).

    >>> m = erase_and_write(tf.ones([1, 2, 2]), tf.constant([[[1.0, 0.0]]]),
    ...                     tf.constant([[[1.0, 0.5]]]), tf.constant([[[2.0, 3.0]]]))
    >>> m.numpy().tolist()
    [[[2.0, 3.5], [1.0, 1.0]]]
    >>> m = erase_and_write(tf.ones([1, 2, 2]), tf.constant([[[1.0, 0.0]]]),
    ...                     tf.constant([[[1.0, 0.5]]]), tf.constant([[[2.0, 3.0]]]),
    ...                     retention=tf.constant([[1.0, 0.25]]))   # slot 1 mostly freed
    >>> m.numpy().tolist()
    [[[2.0, 3.5], [0.25, 0.25]]]
    """
    _check_rank("memory", memory, 3)
    _check_rank("write_weights", write_weights, 3)
    _check_rank("erase_vectors", erase_vectors, 3)
    _check_rank("write_vectors", write_vectors, 3)
    # [B, Wh, N, 1] * [B, Wh, 1, W] -> [B, Wh, N, W]
    erase = write_weights[:, :, :, tf.newaxis] * erase_vectors[:, :, tf.newaxis, :]
    keep = tf.reduce_prod(1.0 - erase, axis=1)
    if retention is not None:
        _check_rank("retention", retention, 2)
        keep = keep * retention[:, :, tf.newaxis]
    # The outer products w_h v_h^T as the erase's are (a broadcast product),
    # not a batched matmul with one term per sum: XLA fuses them with the rest.
    add = tf.reduce_sum(write_weights[:, :, :, tf.newaxis] * write_vectors[:, :, tf.newaxis, :], 1)
    return memory * keep + add


def update_precedence(prev_precedence: tf.Tensor, write_weights: tf.Tensor) -> tf.Tensor:
    """``p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t`` for each write head.

    Args:
      prev_precedence: ``[B, Wh, N]``.
      write_weights: ``[B, Wh, N]``.

    >>> p = update_precedence(tf.constant([[[1.0, 0.0]]]), tf.constant([[[0.0, 0.5]]]))
    >>> p.numpy().tolist()
    [[[0.5, 0.5]]]
    """
    _check_rank("prev_precedence", prev_precedence, 3)
    _check_rank("write_weights", write_weights, 3)
    total = tf.reduce_sum(write_weights, axis=2, keepdims=True)
    return (1.0 - total) * prev_precedence + write_weights


def update_link(
    prev_link: tf.Tensor, prev_precedence: tf.Tensor, write_weights: tf.Tensor
) -> tf.Tensor:
    """``L_t[i,j] = (1 - w[i] - w[j]) L_{t-1}[i,j] + w[i] p_{t-1}[j]``, ``L_t[i,i] = 0``.

    Args:
      prev_link: ``[B, Wh, N, N]``.
      prev_precedence: ``[B, Wh, N]`` (the precedence *before* this write).
      write_weights: ``[B, Wh, N]``.

    >>> l = update_link(tf.zeros([1, 1, 2, 2]), tf.constant([[[1.0, 0.0]]]),
    ...                 tf.constant([[[0.0, 1.0]]]))
    >>> l.numpy().tolist()
    [[[[0.0, 0.0], [1.0, 0.0]]]]
    """
    _check_rank("prev_link", prev_link, 4)
    w_i = write_weights[:, :, :, tf.newaxis]
    w_j = write_weights[:, :, tf.newaxis, :]
    p_j = prev_precedence[:, :, tf.newaxis, :]
    link = (1.0 - w_i - w_j) * prev_link + w_i * p_j
    # Zero the diagonal with a mask (its gradient is a product, which XLA
    # compiles even for a batch size known only at run time). A constant
    # where the size is static: inside an unroll's loop, a mask computed by
    # ops would be a new tensor at every step, kept per step for the gradient.
    memory_size = link.shape[-1]
    if memory_size is None:
        return link * (1.0 - tf.eye(tf.shape(link)[-1], dtype=link.dtype))
    return link * tf.constant(1.0 - np.eye(memory_size), dtype=link.dtype)


def update_linkage(
    prev_linkage: TemporalLinkageState, write_weights: tf.Tensor
) -> TemporalLinkageState:
    """Both linkage updates: the link from the *previous* precedence, then the new precedence.

    >>> s = update_linkage(TemporalLinkageState(tf.zeros([1, 1, 2, 2]),
    ...                                         tf.constant([[[1.0, 0.0]]])),
    ...                    tf.constant([[[0.0, 1.0]]]))
    >>> s.link.numpy().tolist(), s.precedence_weights.numpy().tolist()
    ([[[[0.0, 0.0], [1.0, 0.0]]]], [[[0.0, 1.0]]])
    """
    link = update_link(prev_linkage.link, prev_linkage.precedence_weights, write_weights)
    precedence = update_precedence(prev_linkage.precedence_weights, write_weights)
    return TemporalLinkageState(link=link, precedence_weights=precedence)


def directional_read_weights(
    link: tf.Tensor, prev_read_weights: tf.Tensor, forward: bool
) -> tf.Tensor:
    """Forward ``f = L w^r_{t-1}`` or backward ``b = L^T w^r_{t-1}`` weightings.

    Args:
      link: ``[B, Wh, N, N]``.
      prev_read_weights: ``[B, R, N]``.
      forward: ``True`` for forward weightings, ``False`` for backward.

    Returns:
      ``[B, R, Wh, N]``: one weighting per read head and write head's link.

    >>> link = tf.constant([[[[0.0, 0.0], [1.0, 0.0]]]])   # slot 1 follows 0
    >>> r = tf.constant([[[1.0, 0.0]]])
    >>> directional_read_weights(link, r, forward=True).numpy().tolist()
    [[[[0.0, 1.0]]]]
    >>> directional_read_weights(link, tf.constant([[[0.0, 1.0]]]), False).numpy().tolist()
    [[[[1.0, 0.0]]]]
    """
    _check_rank("link", link, 4)
    _check_rank("prev_read_weights", prev_read_weights, 3)
    if forward:
        # f[b, r, h, i] = sum_j L[b, h, i, j] w[b, r, j]
        return tf.einsum("bhij,brj->brhi", link, prev_read_weights)
    # b[b, r, h, j] = sum_i L[b, h, i, j] w[b, r, i]
    return tf.einsum("bhij,bri->brhj", link, prev_read_weights)


def sharpen(weights: tf.Tensor, sharpness: tf.Tensor, epsilon: float = EPSILON) -> tf.Tensor:
    """Sharpness enhancement ``S(d, s)_i = d_i^s / sum_j d_j^s`` over the last axis.

    Csordás & Schmidhuber (2019) apply it to the temporal link
    distributions, ``f = S(L w^r_{t-1}, s_f)`` and ``b = S(L^T w^r_{t-1}, s_b)``,
    with exponents ``s >= 1`` (:func:`oneplus` of interface outputs): blurred
    link distributions (which get blurrier at each step of a traversal)
    are sharpened back towards the slot they mostly point at.

    ``d + epsilon`` is used in place of ``d`` (so an all-zero distribution
    becomes uniform rather than ``0 / 0``), and ``d`` is divided by its
    maximum before the power (``S`` does not change when ``d`` is scaled), so
    that ``d^s`` does not underflow. The result sums to 1 over the last axis.
    Computed in float32 for float16 and bfloat16 arguments, and cast back.

    Args:
      weights: ``[..., N]``, non-negative.
      sharpness: ``weights.shape[:-1]``, the exponents ``s``.
      epsilon: added to ``weights``.

    >>> d = tf.constant([[0.5, 0.25, 0.25]])
    >>> [round(float(x), 3) for x in sharpen(d, tf.constant([1.0]))[0]]
    [0.5, 0.25, 0.25]
    >>> [round(float(x), 3) for x in sharpen(d, tf.constant([2.0]))[0]]
    [0.667, 0.167, 0.167]
    """
    if weights.shape.rank is not None and sharpness.shape.rank is not None:
        if sharpness.shape.rank != weights.shape.rank - 1:
            raise ValueError(
                f"sharpness must have shape weights.shape[:-1] = {weights.shape[:-1]}, "
                f"got {sharpness.shape}"
            )
    dtype = weights.dtype
    weights = at_least_float32(weights) + epsilon
    sharpness = tf.cast(sharpness, weights.dtype)
    # S is invariant to scaling d: dividing by the (constant) maximum changes
    # nothing but keeps d^s away from underflow, and no gradient flows there.
    weights = weights / tf.stop_gradient(tf.reduce_max(weights, axis=-1, keepdims=True))
    powered = tf.pow(weights, sharpness[..., tf.newaxis])
    return _cast_back(powered / tf.reduce_sum(powered, axis=-1, keepdims=True), dtype)


def read_weights(
    read_content_weights: tf.Tensor,
    forward_weights: tf.Tensor,
    backward_weights: tf.Tensor,
    read_modes: tf.Tensor,
) -> tf.Tensor:
    """``w^r = sum_h (pi_b[h] b_h + pi_f[h] f_h) + pi_c c`` for each read head.

    Args:
      read_content_weights: ``[B, R, N]``.
      forward_weights: ``[B, R, Wh, N]``.
      backward_weights: ``[B, R, Wh, N]``.
      read_modes: ``[B, R, 2 * Wh + 1]``, a softmax over the modes in the
        order (backward for each write head, forward for each write head,
        content).

    >>> w = read_weights(tf.constant([[[1.0, 0.0]]]), tf.constant([[[[0.0, 1.0]]]]),
    ...                  tf.zeros([1, 1, 1, 2]), tf.constant([[[0.0, 0.75, 0.25]]]))
    >>> w.numpy().tolist()
    [[[0.25, 0.75]]]
    """
    _check_rank("read_modes", read_modes, 3)
    num_writes = forward_weights.shape[2]
    if num_writes is None:
        raise ValueError("forward_weights needs a static write-head dimension")
    if read_modes.shape[-1] is not None and read_modes.shape[-1] != 2 * num_writes + 1:
        raise ValueError(
            f"read_modes must have 2 * num_writes + 1 = {2 * num_writes + 1} "
            f"modes, got shape {read_modes.shape}"
        )
    backward_mode = read_modes[:, :, :num_writes, tf.newaxis]
    forward_mode = read_modes[:, :, num_writes : 2 * num_writes, tf.newaxis]
    content_mode = read_modes[:, :, 2 * num_writes :]
    return (
        content_mode * read_content_weights
        + tf.reduce_sum(forward_mode * forward_weights, axis=2)
        + tf.reduce_sum(backward_mode * backward_weights, axis=2)
    )


def read_words(memory: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``r = M^T w^r`` for each read head: ``[B, R, W]``.

    >>> read_words(tf.constant([[[1.0, 2.0], [3.0, 4.0]]]),
    ...            tf.constant([[[0.5, 0.5]]])).numpy().tolist()
    [[[2.0, 3.0]]]
    """
    _check_rank("memory", memory, 3)
    _check_rank("weights", weights, 3)
    return tf.linalg.matmul(weights, memory)
