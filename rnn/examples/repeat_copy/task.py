"""The repeat-copy task: read a random bit pattern, then write it back N times.

Every example is a random pattern of ``length`` steps of ``num_bits`` random
bits, with ``length`` drawn from ``[min_length, max_length]`` and the number
of repeats ``n`` from ``[min_repeats, max_repeats]``. Its layout in time
(observation channels: ``num_bits`` pattern bits, a start flag, the repeat
count; target channels: ``num_bits`` bits and an end marker)::

    t = 0                  start flag = 1
    t = 1 .. L             pattern bits
    t = L + 1              repeat channel = n / max_repeats
    t = L + 2 .. L + 1+nL  target: the pattern n times            (mask 1)
    t = L + 2 + nL         target: end marker = 1                 (mask 1)

so an example lasts ``L (n + 1) + 3`` steps. Batches are time-major
(``[T, B, C]``) and padded with zeros (mask 0) to their longest example.

A batch is a pure function of ``(seed, stream, index)``: the training batch of
step ``s`` is ``batch(seed, TRAIN, s)``, so a resumed run sees exactly the data
it would have seen without the interruption, and the held-out batches
(``EVAL`` stream) never overlap the training ones.

>>> task = RepeatCopyTask(num_bits=3, batch_size=2, min_length=1, max_length=2,
...                       min_repeats=1, max_repeats=2)
>>> b = task.batch(seed=0, stream=TRAIN, index=0)
>>> b.observations.shape[1:], b.targets.shape[1:], b.mask.shape[1]
((2, 5), (2, 4), 2)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from rnn._checks import positive_int

__all__ = ["Batch", "RepeatCopyTask", "TRAIN", "EVAL", "PLOT", "GENERALISATION"]

TRAIN = 0
EVAL = 1
PLOT = 2
GENERALISATION = 3  # held-out batches at chosen pattern lengths (see generalisation.py)


class Batch(NamedTuple):
    """One time-major batch.

    ``observations [T, B, bits+2]``, ``targets [T, B, bits+1]``, ``mask [T, B]``.

    >>> Batch(np.zeros([1, 1, 3]), np.zeros([1, 1, 2]), np.zeros([1, 1])).mask.shape
    (1, 1)
    """

    observations: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


@dataclasses.dataclass(frozen=True)
class RepeatCopyTask:
    """Generator of repeat-copy batches (see the module docstring for the layout).

    Raises ``ValueError`` for non-positive sizes or a range with min > max.

    >>> RepeatCopyTask(num_bits=4, batch_size=1, min_length=1, max_length=3,
    ...                min_repeats=2, max_repeats=2).max_time
    12
    """

    num_bits: int = 4
    batch_size: int = 32
    min_length: int = 1
    max_length: int = 3
    min_repeats: int = 1
    max_repeats: int = 3

    def __post_init__(self) -> None:
        for name in (
            "num_bits",
            "batch_size",
            "min_length",
            "max_length",
            "min_repeats",
            "max_repeats",
        ):
            positive_int(name, getattr(self, name))
        if self.min_length > self.max_length:
            raise ValueError(
                f"min_length ({self.min_length}) must be <= max_length ({self.max_length})"
            )
        if self.min_repeats > self.max_repeats:
            raise ValueError(
                f"min_repeats ({self.min_repeats}) must be <= max_repeats ({self.max_repeats})"
            )

    @property
    def observation_size(self) -> int:
        """Observation channels: the bits, a start flag and the repeat count."""
        return self.num_bits + 2

    @property
    def target_size(self) -> int:
        """Target channels: the bits and an end marker."""
        return self.num_bits + 1

    @property
    def max_time(self) -> int:
        """The longest possible example, ``max_length * (max_repeats + 1) + 3``."""
        return self.max_length * (self.max_repeats + 1) + 3

    def batch(self, seed: int, stream: int, index: int, batch_size: int | None = None) -> Batch:
        """The batch number ``index`` of ``stream`` (``TRAIN``, ``EVAL`` or ``PLOT``) for ``seed``.

        >>> task = RepeatCopyTask(batch_size=3)
        >>> a, b = task.batch(1, TRAIN, 5), task.batch(1, TRAIN, 5)
        >>> bool((a.observations == b.observations).all())
        True
        """
        batch_size = self.batch_size if batch_size is None else batch_size
        positive_int("batch_size", batch_size)
        rng = np.random.default_rng([seed, stream, index])
        lengths = rng.integers(self.min_length, self.max_length + 1, size=batch_size)
        repeats = rng.integers(self.min_repeats, self.max_repeats + 1, size=batch_size)
        durations = lengths * (repeats + 1) + 3
        total = int(durations.max())
        bits = self.num_bits
        obs = np.zeros([total, batch_size, bits + 2], np.float32)
        tgt = np.zeros([total, batch_size, bits + 1], np.float32)
        mask = np.zeros([total, batch_size], np.float32)
        for b in range(batch_size):
            length, n = int(lengths[b]), int(repeats[b])
            pattern = rng.integers(0, 2, size=[length, bits]).astype(np.float32)
            obs[0, b, bits] = 1.0
            obs[1 : length + 1, b, :bits] = pattern
            obs[length + 1, b, bits + 1] = n / self.max_repeats
            start = length + 2
            tgt[start : start + n * length, b, :bits] = np.tile(pattern, [n, 1])
            tgt[start + n * length, b, bits] = 1.0
            mask[start : start + n * length + 1, b] = 1.0
        return Batch(obs, tgt, mask)
