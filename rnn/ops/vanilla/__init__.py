"""The vanilla (Elman) RNN's whole-sequence program: :func:`vanilla_sequence`.

``rnn.VanillaRNN`` with its default ``tanh`` runs whole sequences through
it when the unrollers ask for one: the TensorFlow-ops programs
(``programs.py``) or the same with each recurrence as one compiled op
(``native.py``; the kernels are the GRU library's third form), picked like
the LSTM's and the GRU's (graphs hold the TensorFlow ops; see
:mod:`rnn.ops._native`).
"""

from rnn.ops.vanilla.native import native_kernels_available, set_native_kernels
from rnn.ops.vanilla.sequence import vanilla_sequence

__all__ = ["native_kernels_available", "set_native_kernels", "vanilla_sequence"]
