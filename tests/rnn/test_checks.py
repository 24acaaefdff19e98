"""rnn._checks: the one definition of the argument checks the rnn modules share."""

import re

import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn._checks import positive_int
from rnn.dnc import access, addressing


def test_positive_int_accepts_ints_and_numpy_ints():
    assert positive_int("n", 1) == 1
    value = positive_int("n", np.int64(7))
    assert value == 7 and type(value) is int


@pytest.mark.parametrize(
    "bad, found",
    [(0, "0 (int)"), (-2, "-2 (int)"), (True, "True (bool)"), (2.5, "2.5 (float)"),
     ("3", "'3' (str)"), (None, "None (NoneType)")],
)  # fmt: skip
def test_positive_int_names_the_argument_the_expected_and_the_found(bad, found):
    with pytest.raises(
        ValueError, match=f"^{re.escape('size must be a positive int, got ' + found)}$"
    ):
        positive_int("size", bad)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda v: rnn.VanillaRNN(v), "hidden_size"),
        (lambda v: rnn.LSTM(v), "hidden_size"),
        (lambda v: rnn.LSTM(2, projection_size=v), "projection_size"),
        (lambda v: rnn.GRU(v), "hidden_size"),
        (lambda v: rnn.DNC(v), "output_size"),
        (lambda v: access.MemoryAccess(memory_size=v), "memory_size"),
        (lambda v: access.MemoryAccess(word_size=v), "word_size"),
        (lambda v: access.MemoryAccess(num_reads=v), "num_reads"),
        (lambda v: access.MemoryAccess(num_writes=v), "num_writes"),
        (
            lambda v: addressing.write_allocation_weights(tf.zeros([1, 2]), tf.zeros([1, 1]), v),
            "num_writes",
        ),
    ],
)
def test_every_size_argument_refuses_bools_alike(build, name):
    for bad in (True, 0):
        with pytest.raises(ValueError, match=rf"{name} must be a positive int, got {bad!r}"):
            build(bad)
