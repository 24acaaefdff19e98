"""The model of a repeat-copy run: the core of ``--core`` and its cost.

Every core maps observations to target logits: the DNC through its own output
layer, the LSTM/GRU baselines through an :class:`rnn.Linear` readout stacked
after them in an :class:`rnn.DeepRNN`. :func:`sequence_sums` unrolls any of
them and scores the logits; nothing else in the job depends on the core.

>>> core = build_core(Config(core="dnc", hidden_size=8, memory_size=4, word_size=3))
>>> type(core).__name__, core.output_size
('DNC', 5)
"""

from __future__ import annotations

import tensorflow as tf

import rnn
from rnn.dnc import DNC
from rnn.examples.repeat_copy.config import Config, ConfigError

__all__ = ["build_core", "sequence_sums", "example_errors"]


def build_core(config: Config) -> rnn.RNNCore:
    """The core for ``config.core``, mapping observations to target logits.

    >>> core = build_core(Config(core="lstm", hidden_size=8))
    >>> type(core).__name__
    'DeepRNN'
    """
    output_size = config.num_bits + 1
    if config.core == "dnc":
        return DNC(
            output_size,
            controller=rnn.LSTM(config.hidden_size),
            memory_size=config.memory_size,
            word_size=config.word_size,
            num_reads=config.num_reads,
            num_writes=config.num_writes,
            clip_value=config.clip_value or None,
            masked_content=config.masked_content,
            deallocate=config.deallocate,
            sharpen_links=config.sharpen_links,
        )
    readout = rnn.Linear(output_size, name="readout")
    if config.core == "lstm":
        return rnn.DeepRNN([rnn.LSTM(config.hidden_size), readout])
    if config.core == "gru":
        return rnn.DeepRNN([rnn.GRU(config.hidden_size), readout])
    if config.core == "deep":
        return rnn.DeepRNN([rnn.LSTM(config.hidden_size), rnn.LSTM(config.hidden_size), readout])
    raise ConfigError(f"unknown core {config.core!r}")


def sequence_sums(
    core: rnn.RNNCore, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Unrolls ``core``; returns the batch's summed cost (nats) and summed bit errors.

    >>> from rnn.examples.repeat_copy.task import TRAIN
    >>> core = build_core(Config(core="gru", hidden_size=4, num_bits=2))
    >>> b = Config(num_bits=2).task(batch_size=3).batch(0, TRAIN, 0)
    >>> cost, errors = sequence_sums(core, *map(tf.constant, b))
    >>> cost.shape.as_list(), float(errors) >= 0
    ([], True)
    """
    xent, wrong = _scores(core, observations, targets, mask)
    return tf.reduce_sum(xent), tf.reduce_sum(wrong)


def example_errors(
    core: rnn.RNNCore, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Per example: the wrong answer bits and the answer bits, two ``[B]`` tensors.

    >>> from rnn.examples.repeat_copy.task import TRAIN
    >>> core = build_core(Config(core="lstm", hidden_size=4, num_bits=2))
    >>> b = Config(num_bits=2).task(batch_size=3).batch(0, TRAIN, 0)
    >>> wrong, bits = example_errors(core, *map(tf.constant, b))
    >>> wrong.shape.as_list(), bool(tf.reduce_all(wrong <= bits))
    ([3], True)
    """
    _, wrong = _scores(core, observations, targets, mask)
    bits = tf.reduce_sum(mask, axis=0) * float(targets.shape[-1])
    return tf.reduce_sum(wrong, axis=[0, 2]), bits


def _scores(
    core: rnn.RNNCore, observations: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """``[T, B, C]`` masked cross-entropies and wrong bits (output thresholded at 0.5)."""
    batch_size = tf.shape(observations)[1]
    logits, _ = rnn.dynamic_unroll(core, observations, core.initial_state(batch_size))
    mask = mask[:, :, tf.newaxis]
    xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    wrong = tf.cast(tf.not_equal(tf.cast(logits > 0.0, targets.dtype), targets), targets.dtype)
    return xent * mask, wrong * mask
