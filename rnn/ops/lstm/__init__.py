"""The LSTM's whole-sequence programs and compiled kernels.

:func:`lstm_sequence` (``sequence.py``) picks a program per call: the
TensorFlow-ops programs (``programs.py``), or the same with each recurrence
as one compiled op (``native.py``, the C source ``kernels.c`` compiled by
:mod:`rnn.ops._build`). Exported graphs always hold the TensorFlow-ops
programs (see :func:`portable`).
"""

from rnn.ops.lstm.native import native_kernels_available, portable, set_native_kernels
from rnn.ops.lstm.sequence import lstm_sequence

__all__ = ["lstm_sequence", "native_kernels_available", "portable", "set_native_kernels"]
