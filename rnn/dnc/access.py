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

The improvements of Csordás & Schmidhuber (ICLR 2019) are keyword options,
off by default: ``masked_content`` (a mask per read and write head on the
content lookups), ``deallocate`` (freed slots are wiped) and
``sharpen_links`` (sharpened forward and backward weightings). They grow
the interface vector but leave the state as it is:

>>> improved = MemoryAccess(memory_size=8, word_size=4, num_reads=2, masked_content=True,
...                         deallocate=True, sharpen_links=True)
>>> words, state = improved(tf.zeros([3, 10]), improved.initial_state(3))
>>> improved.interface_layer.output_size - access.interface_layer.output_size  # (2 + 1) * 4 + 2 * 2
16
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np
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

    def as_tensors(self) -> list[Any]:
        """Its six tensors in the order of the DNC's compiled kernels
        (:mod:`rnn.ops.dnc`): memory, read weights, write weights, link,
        precedence weights, usage.

        >>> state = MemoryAccess(4, 2).initial_state(1)
        >>> [t.shape.as_list() for t in state.as_tensors()][3:]
        [[1, 1, 4, 4], [1, 1, 4], [1, 4]]
        >>> AccessState.from_tensors(state.as_tensors()).linkage.link.shape.as_list()
        [1, 1, 4, 4]
        """
        return [
            self.memory,
            self.read_weights,
            self.write_weights,
            self.linkage.link,
            self.linkage.precedence_weights,
            self.usage,
        ]

    @classmethod
    def from_tensors(cls, tensors: Sequence[Any]) -> AccessState:
        """The state of six tensors in :meth:`as_tensors`' order."""
        memory, read_weights, write_weights, link, precedence, usage = tensors
        return cls(
            memory, read_weights, write_weights, TemporalLinkageState(link, precedence), usage
        )


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
            "read_masks",
            "write_masks",
            "link_sharpness",
        ),
        defaults=(None, None, None),
    )
):
    """The parsed interface vector (the paper's ``xi_t``), already squashed.

    ``read_keys`` ``[B, R, W]``, ``read_strengths`` ``[B, R]`` (oneplus),
    ``write_keys`` ``[B, Wh, W]``, ``write_strengths`` ``[B, Wh]`` (oneplus),
    ``erase_vectors`` ``[B, Wh, W]`` (sigmoid), ``write_vectors`` ``[B, Wh, W]``,
    ``free_gates`` ``[B, R]``, ``allocation_gates`` ``[B, Wh]`` and
    ``write_gates`` ``[B, Wh]`` (sigmoid), ``read_modes`` ``[B, R, 2 Wh + 1]``
    (softmax; order: backward per write head, forward per write head, content).

    The options of Csordás & Schmidhuber (2019), ``None`` when off:
    ``read_masks`` ``[B, R, W]`` and ``write_masks`` ``[B, Wh, W]`` (sigmoid;
    ``masked_content``), ``link_sharpness`` ``[B, R, 2 Wh]`` (oneplus, so
    ``>= 1``; order as the read modes': backward per write head, forward per
    write head; ``sharpen_links``).

    >>> parse_interface(tf.zeros([1, interface_size(4, 2, 1)]), 4, 2, 1).read_modes.shape.as_list()
    [1, 2, 3]
    """

    __slots__ = ()


def _flag(name: str, value: Any) -> bool:
    """``value`` as a bool; TypeError for anything but a bool (NumPy's included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def interface_size(
    word_size: int,
    num_reads: int,
    num_writes: int,
    *,
    masked_content: bool = False,
    sharpen_links: bool = False,
) -> int:
    """Length of the interface vector.

    For one write head this is the paper's ``W R + 3 W + 5 R + 3``.
    ``masked_content`` adds a mask of ``W`` per read and write head,
    ``sharpen_links`` two exponents (backward, forward) per read head and
    write head.

    >>> interface_size(word_size=16, num_reads=4, num_writes=1)
    135
    >>> interface_size(16, 4, 1, masked_content=True, sharpen_links=True)   # + 5 * 16 + 2 * 4
    223
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
        + r * (2 * h + 1)  # read modes
        + (r + h) * w * _flag("masked_content", masked_content)  # read and write masks
        + 2 * r * h * _flag("sharpen_links", sharpen_links)  # link sharpness
    )


def parse_interface(
    interface: tf.Tensor,
    word_size: int,
    num_reads: int,
    num_writes: int,
    *,
    masked_content: bool = False,
    sharpen_links: bool = False,
) -> Interface:
    """Splits ``[B, interface_size]`` into an :class:`Interface` and applies the squashings.

    The layout is the paper's quantities in :class:`Interface` 's field
    order; the options' outputs (read masks, write masks, link sharpness)
    follow at the end, so the first part is the same with or without them.

    >>> i = parse_interface(tf.zeros([2, interface_size(3, 1, 1)]), 3, 1, 1)
    >>> float(i.read_strengths[0, 0]) > 1.0, float(i.write_gates[0, 0]), i.read_masks
    (True, 0.5, None)
    >>> size = interface_size(3, 1, 1, masked_content=True, sharpen_links=True)
    >>> i = parse_interface(tf.zeros([2, size]), 3, 1, 1, masked_content=True, sharpen_links=True)
    >>> [x.shape.as_list() for x in (i.read_masks, i.write_masks, i.link_sharpness)]
    [[2, 1, 3], [2, 1, 3], [2, 1, 2]]
    """
    masked_content = _flag("masked_content", masked_content)
    sharpen_links = _flag("sharpen_links", sharpen_links)
    expected = interface_size(
        word_size,
        num_reads,
        num_writes,
        masked_content=masked_content,
        sharpen_links=sharpen_links,
    )
    if interface.shape.rank != 2 or interface.shape[-1] != expected:
        flags = [
            f", {name}=True"
            for name, on in (("masked_content", masked_content), ("sharpen_links", sharpen_links))
            if on
        ]
        raise ValueError(
            f"interface must have shape [batch, {expected}] for word_size="
            f"{word_size}, num_reads={num_reads}, num_writes={num_writes}{''.join(flags)}; "
            f"got {interface.shape}"
        )
    w, r, h = word_size, num_reads, num_writes
    sizes = [r * w, r, h * w, h, h * w, h * w, r, h, h, r * (2 * h + 1)]
    if masked_content:
        sizes += [r * w, h * w]
    if sharpen_links:
        sizes += [2 * r * h]
    parts = tf.split(interface, sizes, axis=1)
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
    ) = parts[:10]
    batch = tf.shape(interface)[0]
    options: dict[str, tf.Tensor] = {}
    if masked_content:
        options["read_masks"] = tf.sigmoid(tf.reshape(parts[10], [batch, r, w]))
        options["write_masks"] = tf.sigmoid(tf.reshape(parts[11], [batch, h, w]))
    if sharpen_links:
        options["link_sharpness"] = addressing.oneplus(tf.reshape(parts[-1], [batch, r, 2 * h]))
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
        **options,
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


def access_step(
    interface: Interface, prev_state: AccessState, *, deallocate: bool = False
) -> tuple[tf.Tensor, AccessState]:
    """One memory step: usage, write weights, erase/add write, linkage, read weights, read.

    Returns ``(read_words [B, R, W], next_state)``.

    The options of Csordás & Schmidhuber (2019) apply when the interface has
    them (:func:`parse_interface`): ``read_masks`` / ``write_masks`` mask the
    read / write content lookups, ``link_sharpness`` sharpens the forward and
    backward weightings (:func:`~rnn.dnc.addressing.sharpen`);
    ``deallocate=True`` wipes the slots the free gates release, multiplying
    the memory by the retention vector before the write.

    >>> state = MemoryAccess(memory_size=4, word_size=2, num_reads=1).initial_state(1)
    >>> i = parse_interface(tf.ones([1, interface_size(2, 1, 1)]), 2, 1, 1)
    >>> words, state = access_step(i, state)
    >>> words.shape.as_list(), round(float(tf.reduce_sum(state.write_weights)), 3)
    ([1, 1, 2], 0.731)
    >>> words, state = access_step(i, state)   # usage: the first write, partly freed
    >>> round(float(tf.reduce_sum(state.usage)), 3)
    0.687
    """
    deallocate = _flag("deallocate", deallocate)
    num_writes = interface.write_gates.shape[-1]
    _check_matches(interface, prev_state)
    # Usage from the previous step's writes and reads (freed by the free gates).
    usage = addressing.update_usage(
        prev_state.usage, prev_state.write_weights, interface.free_gates, prev_state.read_weights
    )
    # Write weighting: content lookup on the old memory, mixed with allocation.
    write_content = addressing.content_weights(
        prev_state.memory,
        interface.write_keys,
        interface.write_strengths,
        masks=interface.write_masks,
    )
    allocation = addressing.write_allocation_weights(
        usage, interface.allocation_gates * interface.write_gates, num_writes
    )
    write_weights = addressing.write_weights(
        write_content, allocation, interface.allocation_gates, interface.write_gates
    )
    memory = addressing.erase_and_write(
        prev_state.memory,
        write_weights,
        interface.erase_vectors,
        interface.write_vectors,
        retention=(
            addressing.retention(interface.free_gates, prev_state.read_weights)
            if deallocate
            else None
        ),
    )
    linkage = addressing.update_linkage(prev_state.linkage, write_weights)
    # Read weighting: content lookup on the new memory, and link traversal.
    read_content = addressing.content_weights(
        memory, interface.read_keys, interface.read_strengths, masks=interface.read_masks
    )
    forward = addressing.directional_read_weights(
        linkage.link, prev_state.read_weights, forward=True
    )
    backward = addressing.directional_read_weights(
        linkage.link, prev_state.read_weights, forward=False
    )
    if interface.link_sharpness is not None:
        # [B, R, 2 Wh]: backward per write head, then forward per write head.
        backward = addressing.sharpen(backward, interface.link_sharpness[:, :, :num_writes])
        forward = addressing.sharpen(forward, interface.link_sharpness[:, :, num_writes:])
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

    ``masked_content``, ``deallocate`` and ``sharpen_links`` switch on the
    improvements of Csordás & Schmidhuber (ICLR 2019), see :class:`rnn.DNC`.
    """

    def __init__(
        self,
        memory_size: int = 16,
        word_size: int = 16,
        num_reads: int = 4,
        num_writes: int = 1,
        *,
        masked_content: bool = False,
        deallocate: bool = False,
        sharpen_links: bool = False,
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
        self.masked_content = _flag("masked_content", masked_content)
        self.deallocate = _flag("deallocate", deallocate)
        self.sharpen_links = _flag("sharpen_links", sharpen_links)
        with self.name_scope:
            # dtype and the initializers are the interface layer's.
            self.interface_layer = Linear(
                interface_size(
                    word_size,
                    num_reads,
                    num_writes,
                    masked_content=self.masked_content,
                    sharpen_links=self.sharpen_links,
                ),
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
            self.interface_layer(inputs),
            self.word_size,
            self.num_reads,
            self.num_writes,
            masked_content=self.masked_content,
            sharpen_links=self.sharpen_links,
        )
        return access_step(interface, prev_state, deallocate=self.deallocate)
