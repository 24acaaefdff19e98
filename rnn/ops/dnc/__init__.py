"""The DNC's whole-sequence programs and compiled kernels.

:func:`dnc_sequence` (``sequence.py``) runs the recurrence of an
:class:`rnn.DNC` with an :class:`rnn.LSTM` controller and one write head over
a whole sequence: the TensorFlow-ops programs (``programs.py``), or the same
with each pass as one compiled op (``native.py``, the C source ``kernels.c``
compiled by :mod:`rnn.ops._build`). Exported graphs always hold the
TensorFlow-ops programs (see :func:`portable`).
"""

from rnn.ops.dnc.native import native_kernels_available, portable, set_native_kernels
from rnn.ops.dnc.sequence import dnc_sequence

__all__ = ["dnc_sequence", "native_kernels_available", "portable", "set_native_kernels"]
