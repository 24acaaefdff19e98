"""Differentiable Neural Computer (Graves et al., Nature 2016) on :mod:`rnn`.

Layout: :mod:`rnn.dnc.addressing` holds the memory-addressing maths as pure
functions, :mod:`rnn.dnc.access` the memory access module (interface parsing,
write, read) and :mod:`rnn.dnc.core` the :class:`DNC` core, whose controller is
any :class:`rnn.RNNCore`.

>>> import tensorflow as tf
>>> from rnn.dnc import DNC
>>> dnc = DNC(output_size=2, memory_size=4, word_size=3, num_reads=1)
>>> dnc(tf.zeros([1, 3]), dnc.initial_state(1))[0].shape.as_list()
[1, 2]
"""

from rnn.dnc.access import AccessState, MemoryAccess
from rnn.dnc.addressing import TemporalLinkageState
from rnn.dnc.core import DNC, DNCState
from rnn.linear import Linear  # rnn.Linear, kept here too (it used to live in rnn.dnc)

__all__ = [
    "DNC",
    "DNCState",
    "AccessState",
    "TemporalLinkageState",
    "MemoryAccess",
    "Linear",
]
