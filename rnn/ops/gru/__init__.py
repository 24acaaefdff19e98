"""The GRU's whole-sequence programs and compiled kernels, both forms.

:func:`gru_sequence` (``sequence.py``) picks a program per call: the
TensorFlow-ops programs (``programs.py``), or the same with each recurrence
as one compiled op (``native.py``, the C source ``kernels.c`` compiled by
:mod:`rnn.ops._build`). Exported graphs always hold the TensorFlow-ops
programs (see :func:`portable`).
"""

from rnn.ops.gru.native import native_kernels_available, portable, set_native_kernels
from rnn.ops.gru.sequence import gru_sequence

__all__ = ["gru_sequence", "native_kernels_available", "portable", "set_native_kernels"]
