"""Recurrent cores, stacks and unrollers for TensorFlow 2, built on nestlib.

Cores take ``(inputs, prev_state)`` and return ``(output, next_state)``; a
state may be any nest, and the unrollers and stacks handle every structure,
so one core can replace another with no other change.

>>> import tensorflow as tf, rnn
>>> core = rnn.LSTM(8)
>>> outputs, final = rnn.dynamic_unroll(core, tf.zeros([5, 2, 3]),
...                                     core.initial_state(2))
>>> outputs.shape.as_list()
[5, 2, 8]
"""

try:
    import tensorflow
except ModuleNotFoundError as _e:
    if _e.name != "tensorflow":
        raise
    raise ImportError(
        "rnn needs TensorFlow, which is not installed: install the tf extra "
        "(pip install 'nestlib[tf]') or tensorflow itself. nestlib alone works without "
        "it."
    ) from _e

from rnn import convert
from rnn.base import RNNCore, TrainableState
from rnn.cores import GRU, LSTM, LSTMState, VanillaRNN, lstm_with_recurrent_dropout
from rnn.deep import (
    DeepRNN,
    ResidualCore,
    deep_rnn_with_residual_connections,
    deep_rnn_with_skip_connections,
)
from rnn.dnc import DNC, DNCState
from rnn.linear import Linear
from rnn.ops import kernel_info, kernels_available
from rnn.tbptt import truncated_bptt
from rnn.unroll import bidirectional_unroll, dynamic_unroll, static_unroll

__all__ = [
    "RNNCore",
    "TrainableState",
    "VanillaRNN",
    "LSTM",
    "LSTMState",
    "GRU",
    "lstm_with_recurrent_dropout",
    "DeepRNN",
    "deep_rnn_with_skip_connections",
    "deep_rnn_with_residual_connections",
    "ResidualCore",
    "Linear",
    "static_unroll",
    "dynamic_unroll",
    "bidirectional_unroll",
    "truncated_bptt",
    "DNC",
    "DNCState",
    "kernels_available",
    "kernel_info",
    "convert",
]
