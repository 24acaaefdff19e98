"""The DNC's memory access module: interface parsing, then write, then read.

:func:`parse_interface` splits the controller's interface vector into the
named, squashed quantities of the paper; :func:`access_step` performs one
memory step from them as a pure function; :class:`MemoryAccess` is the
:class:`tf.Module` owning the interface projection.

>>> import tensorflow as tf
>>> access = MemoryAccess(memory_size=8, word_size=4, num_reads=2, num_writes=1)
>>> state = access.initial_state(3)
>>> words, state = access(tf.zeros([3, 10]), state)
>>> words.shape.as_list(), state.memory.shape.as_list()
([3, 2, 4], [3, 8, 4])
"""

from __future__ import annotations

import collections
from typing import Any

import tensorflow as tf

from rnn._checks import positive_int
from rnn._utils import at_least_float32
from rnn.dnc import addressing
from rnn.dnc.addressing import TemporalLinkageState
from rnn.linear import Linear

__all__ = [
    "AccessState",
    "Interface",
    "Linear",  # (defined in rnn.linear; kept here, the same object, for compatibility)
    "MemoryAccess",
    "interface_size",
    "parse_interface",
    "access_step",
]


class AccessState(
    collections.namedtuple(
        "AccessState", ("memory", "read_weights", "write_weights", "linkage", "usage")
    )
):
    """State of :class:`MemoryAccess`.

    Fields: ``memory`` ``[B, N, W]``, ``read_weights`` ``[B, R, N]``,
    ``write_weights`` ``[B, Wh, N]``, ``linkage`` (a
    :class:`~rnn.dnc.addressing.TemporalLinkageState`) and ``usage`` ``[B, N]``.

    >>> MemoryAccess(4, 2).initial_state(1).usage.shape.as_list()
    [1, 4]
    """

    __slots__ = ()


class Interface(
    collections.namedtuple(
        "Interface",
        (
            "read_keys",
            "read_strengths",
            "write_keys",
            "write_strengths",
            "erase_vectors",
            "write_vectors",
            "free_gates",
            "allocation_gates",
            "write_gates",
            "read_modes",
        ),
    )
):
    """The parsed interface vector (the paper's ``xi_t``), already squashed.

    ``read_keys`` ``[B, R, W]``, ``read_strengths`` ``[B, R]`` (oneplus),
    ``write_keys`` ``[B, Wh, W]``, ``write_strengths`` ``[B, Wh]`` (oneplus),
    ``erase_vectors`` ``[B, Wh, W]`` (sigmoid), ``write_vectors`` ``[B, Wh, W]``,
    ``free_gates`` ``[B, R]``, ``allocation_gates`` ``[B, Wh]`` and
    ``write_gates`` ``[B, Wh]`` (sigmoid), ``read_modes`` ``[B, R, 2 Wh + 1]``
    (softmax; order: backward per write head, forward per write head, content).

    >>> parse_interface(tf.zeros([1, interface_size(4, 2, 1)]), 4, 2, 1).read_modes.shape.as_list()
    [1, 2, 3]
    """

    __slots__ = ()


def interface_size(word_size: int, num_reads: int, num_writes: int) -> int:
    """Length of the interface vector.

    For one write head this is the paper's ``W R + 3 W + 5 R + 3``.

    >>> interface_size(word_size=16, num_reads=4, num_writes=1)
    135
    """
    w, r, h = word_size, num_reads, num_writes
    return (
        r * w
        + r  # read keys and strengths
        + h * w
        + h  # write keys and strengths
        + 2 * h * w  # erase and write vectors
        + r
        + 2 * h  # free, allocation and write gates
        + r * (2 * h + 1)
    )  # read modes


def parse_interface(
    interface: tf.Tensor, word_size: int, num_reads: int, num_writes: int
) -> Interface:
    """Splits ``[B, interface_size]`` into an :class:`Interface` and applies the squashings.

    >>> i = parse_interface(tf.zeros([2, interface_size(3, 1, 1)]), 3, 1, 1)
    >>> float(i.read_strengths[0, 0]) > 1.0, float(i.write_gates[0, 0])
    (True, 0.5)
    """
    expected = interface_size(word_size, num_reads, num_writes)
    if interface.shape.rank != 2 or interface.shape[-1] != expected:
        raise ValueError(
            f"interface must have shape [batch, {expected}] for word_size="
            f"{word_size}, num_reads={num_reads}, num_writes={num_writes}; "
            f"got {interface.shape}"
        )
    w, r, h = word_size, num_reads, num_writes
    sizes = [r * w, r, h * w, h, h * w, h * w, r, h, h, r * (2 * h + 1)]
    (
        read_keys,
        read_strengths,
        write_keys,
        write_strengths,
        erase,
        write_vectors,
        free_gates,
        allocation_gates,
        write_gates,
        read_modes,
    ) = tf.split(interface, sizes, axis=1)
    batch = tf.shape(interface)[0]
    return Interface(
        read_keys=tf.reshape(read_keys, [batch, r, w]),
        read_strengths=addressing.oneplus(read_strengths),
        write_keys=tf.reshape(write_keys, [batch, h, w]),
        write_strengths=addressing.oneplus(write_strengths),
        erase_vectors=tf.sigmoid(tf.reshape(erase, [batch, h, w])),
        write_vectors=tf.reshape(write_vectors, [batch, h, w]),
        free_gates=tf.sigmoid(free_gates),
        allocation_gates=tf.sigmoid(allocation_gates),
        write_gates=tf.sigmoid(write_gates),
        # The read modes' softmax in float32 under mixed precision, as every
        # softmax here (see rnn.dnc.addressing), then cast back.
        read_modes=tf.cast(
            tf.nn.softmax(at_least_float32(tf.reshape(read_modes, [batch, r, 2 * h + 1])), axis=-1),
            interface.dtype,
        ),
    )


def _check_matches(interface: Interface, state: AccessState) -> None:
    """Static check that the interface's head counts and word size fit the state."""
    pairs = (
        ("read heads", interface.read_keys.shape[1], state.read_weights.shape[1]),
        ("write heads", interface.write_keys.shape[1], state.write_weights.shape[1]),
        ("word size", interface.write_keys.shape[2], state.memory.shape[2]),
    )
    for what, got, want in pairs:
        if got is not None and want is not None and got != want:
            raise ValueError(f"the interface has {got} {what} but the memory state has {want}")


def access_step(interface: Interface, prev_state: AccessState) -> tuple[tf.Tensor, AccessState]:
    """One memory step: usage, write weights, erase/add write, linkage, read weights, read.

    Returns ``(read_words [B, R, W], next_state)``.

    >>> state = MemoryAccess(memory_size=4, word_size=2, num_reads=1).initial_state(1)
    >>> i = parse_interface(tf.ones([1, interface_size(2, 1, 1)]), 2, 1, 1)
    >>> words, state = access_step(i, state)
    >>> words.shape.as_list(), round(float(tf.reduce_sum(state.write_weights)), 3)
    ([1, 1, 2], 0.731)
    >>> words, state = access_step(i, state)   # usage: the first write, partly freed
    >>> round(float(tf.reduce_sum(state.usage)), 3)
    0.687
    """
    num_writes = interface.write_gates.shape[-1]
    _check_matches(interface, prev_state)
    # Usage from the previous step's writes and reads (freed by the free gates).
    usage = addressing.update_usage(
        prev_state.usage, prev_state.write_weights, interface.free_gates, prev_state.read_weights
    )
    # Write weighting: content lookup on the old memory, mixed with allocation.
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
    # Read weighting: content lookup on the new memory, and link traversal.
    read_content = addressing.content_weights(memory, interface.read_keys, interface.read_strengths)
    forward = addressing.directional_read_weights(
        linkage.link, prev_state.read_weights, forward=True
    )
    backward = addressing.directional_read_weights(
        linkage.link, prev_state.read_weights, forward=False
    )
    read_weights = addressing.read_weights(read_content, forward, backward, interface.read_modes)
    words = addressing.read_words(memory, read_weights)
    return words, AccessState(
        memory=memory,
        read_weights=read_weights,
        write_weights=write_weights,
        linkage=linkage,
        usage=usage,
    )


class MemoryAccess(tf.Module):
    """Memory with content, allocation and temporal-link addressing.

    ``__call__(inputs, prev_state)`` maps the controller output ``[B, F]`` to
    the interface vector with a linear layer, then writes and reads the memory:
    it returns ``(read_words [B, R, W], next_state: AccessState)``.

    >>> access = MemoryAccess(memory_size=4, word_size=3, num_reads=2)
    >>> words, _ = access(tf.ones([1, 5]), access.initial_state(1))
    >>> words.shape.as_list()
    [1, 2, 3]
    """

    def __init__(
        self,
        memory_size: int = 16,
        word_size: int = 16,
        num_reads: int = 4,
        num_writes: int = 1,
        *,
        dtype: Any = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.memory_size = positive_int("memory_size", memory_size)
        self.word_size = positive_int("word_size", word_size)
        self.num_reads = positive_int("num_reads", num_reads)
        self.num_writes = positive_int("num_writes", num_writes)
        with self.name_scope:
            # dtype and the initializers are the interface layer's.
            self.interface_layer = Linear(
                interface_size(word_size, num_reads, num_writes),
                dtype=dtype,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                name="interface",
            )

    def initial_state(self, batch_size: Any, dtype: tf.DType = tf.float32) -> AccessState:
        """All-zero memory, weights, usage and links for ``batch_size`` examples."""
        n, w, r, h = self.memory_size, self.word_size, self.num_reads, self.num_writes
        return AccessState(
            memory=tf.zeros([batch_size, n, w], dtype),
            read_weights=tf.zeros([batch_size, r, n], dtype),
            write_weights=tf.zeros([batch_size, h, n], dtype),
            linkage=TemporalLinkageState(
                link=tf.zeros([batch_size, h, n, n], dtype),
                precedence_weights=tf.zeros([batch_size, h, n], dtype),
            ),
            usage=tf.zeros([batch_size, n], dtype),
        )

    def __call__(self, inputs: tf.Tensor, prev_state: AccessState) -> tuple[tf.Tensor, AccessState]:
        """One write-then-read step driven by the controller output ``inputs``."""
        interface = parse_interface(
            self.interface_layer(inputs), self.word_size, self.num_reads, self.num_writes
        )
        return access_step(interface, prev_state)
