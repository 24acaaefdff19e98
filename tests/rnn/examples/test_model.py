"""The model of the repeat-copy job: the cores of --core and their cost."""

import numpy as np
import pytest
import tensorflow as tf

import rnn
from rnn.examples.repeat_copy.config import Config, ConfigError
from rnn.examples.repeat_copy.model import build_core, sequence_sums
from rnn.examples.repeat_copy.task import TRAIN, RepeatCopyTask


@pytest.mark.parametrize(
    "core, layers",
    [
        ("lstm", ["LSTM", "Linear"]),
        ("gru", ["GRU", "Linear"]),
        ("deep", ["LSTM", "LSTM", "Linear"]),
    ],
)
def test_baselines_are_a_stack_with_a_linear_readout(core, layers):
    stack = build_core(Config(core=core, hidden_size=4, num_bits=3))
    assert isinstance(stack, rnn.DeepRNN)
    assert [type(layer).__name__ for layer in stack.layers] == layers
    assert isinstance(stack.layers[-1], rnn.Linear) and stack.layers[-1].output_size == 4


def test_dnc_core_follows_the_flags():
    dnc = build_core(
        Config(core="dnc", num_bits=3, memory_size=5, word_size=2, num_reads=2, clip_value=0)
    )
    assert isinstance(dnc, rnn.DNC)
    assert (dnc.output_size, dnc.memory_size, dnc.clip_value) == (4, 5, None)


def test_unknown_core_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown core 'transformer'"):
        build_core(Config(core="transformer"))


def test_sequence_sums_count_cost_and_bit_errors():
    task = RepeatCopyTask(num_bits=3, batch_size=5)
    obs, tgt, mask = task.batch(0, TRAIN, 0)

    class Oracle(tf.Module):
        """Emits logits from a fixed sequence, ignoring its inputs."""

        def __init__(self, logits):
            super().__init__()
            self.logits = tf.constant(logits)

        def initial_state(self, batch_size, dtype=tf.float32):
            return tf.zeros([], tf.int32)

        def __call__(self, inputs, t):
            return tf.gather(self.logits, t), t + 1

    answer_bits = float((mask[:, :, None] * np.ones_like(tgt)).sum())
    perfect = np.where(tgt > 0.5, 30.0, -30.0).astype(np.float32)
    cost, errors = sequence_sums(Oracle(perfect), obs, tgt, mask)
    assert float(errors) == 0.0 and float(cost) < 1e-8
    cost, errors = sequence_sums(Oracle(-perfect), obs, tgt, mask)
    assert float(errors) == answer_bits
    np.testing.assert_allclose(float(cost), 30.0 * answer_bits, rtol=1e-5)
    cost, _ = sequence_sums(Oracle(np.zeros_like(perfect)), obs, tgt, mask)
    np.testing.assert_allclose(float(cost), np.log(2.0) * answer_bits, rtol=1e-5)
