"""Shared data and helpers of the rnn.keras tests."""

import numpy as np
import tensorflow as tf

import nestlib
import rnn
from rnn.dnc import DNC

B, T, F = 4, 5, 3

TOKENS = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0]])


def small_dnc(controller=None):
    return DNC(
        3,
        controller=rnn.LSTM(6) if controller is None else controller,
        memory_size=4,
        word_size=3,
        num_reads=2,
    )


CORES = {
    "lstm": lambda: rnn.LSTM(4),
    "gru": lambda: rnn.GRU(4, reset_after=True),
    "deep": lambda: rnn.DeepRNN([rnn.LSTM(4), tf.nn.relu, rnn.GRU(3)]),
    "dnc": small_dnc,
}


def data(seed=0, b=B, t=T, f=F):
    r = np.random.default_rng(seed)
    x = r.normal(size=(b, t, f)).astype("float32")
    # A target the model can fit: a running mean of the first feature.
    y = np.stack([x[:, :, 0].mean(1), x[:, :, 1].sum(1) / t], 1).astype("float32")
    return x, y


def numpy_of(structure):
    return nestlib.map_structure(lambda v: np.asarray(v), structure)


def assert_close(a, b, tol=1e-5):
    nestlib.assert_same_structure(a, b)
    for u, v in zip(nestlib.flatten(a), nestlib.flatten(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=tol, atol=tol)


def time_major(x):
    return tf.transpose(x, [1, 0, 2])
