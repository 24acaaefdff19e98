"""A dense layer as a :class:`tf.Module`: the readout of the cores that need one.

It is not an RNN core (it has no state); :class:`rnn.DeepRNN` accepts it as
a layer, as the repeat-copy job's baselines do, and the DNC uses it for its
interface and output projections.

>>> import tensorflow as tf, rnn
>>> stack = rnn.DeepRNN([rnn.GRU(4), rnn.Linear(2, name="readout")])
>>> outputs, _ = stack(tf.zeros([3, 5]), stack.initial_state(3))
>>> outputs.shape.as_list()
[3, 2]
"""

from __future__ import annotations

import math

import tensorflow as tf

from rnn._checks import positive_int

__all__ = ["Linear"]


class Linear(tf.Module):
    """A dense layer ``y = x W + b`` whose input size is fixed on the first call.

    Weights start truncated-normal with standard deviation ``1/sqrt(fan_in)``
    and biases at zero.

    >>> layer = Linear(3)
    >>> layer(tf.ones([2, 5])).shape.as_list()
    [2, 3]
    """

    def __init__(self, output_size: int, with_bias: bool = True, name: str | None = None):
        super().__init__(name=name)
        self.output_size = positive_int("output_size", output_size)
        self.with_bias = with_bias
        self.w: tf.Variable | None = None
        self.b: tf.Variable | None = None

    @tf.Module.with_name_scope
    def _create(self, input_size: int, dtype: tf.DType) -> tf.Variable:
        stddev = 1.0 / math.sqrt(input_size)
        # Computed eagerly, so the first call may happen inside tf.function,
        # a while loop or an XLA cluster.
        with tf.init_scope():
            self.w = tf.Variable(
                tf.random.truncated_normal(
                    [input_size, self.output_size], stddev=stddev, dtype=dtype
                ),
                name="w",
            )
            if self.with_bias:
                self.b = tf.Variable(tf.zeros([self.output_size], dtype), name="b")
        return self.w

    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        """Applies the layer to ``[B, input_size]`` inputs."""
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape.rank != 2 or inputs.shape[-1] is None:
            raise ValueError(
                f"{self.name}: inputs must be [batch, features] with a static "
                f"feature size, got shape {inputs.shape}"
            )
        w = self.w if self.w is not None else self._create(int(inputs.shape[-1]), inputs.dtype)
        if inputs.shape[-1] != w.shape[0]:
            raise ValueError(
                f"{self.name}: expected {w.shape[0]} input features, got {inputs.shape[-1]}"
            )
        if inputs.dtype != w.dtype:
            raise TypeError(
                f"{self.name}: inputs have dtype {inputs.dtype.name}, the weights {w.dtype.name}"
            )
        outputs = tf.linalg.matmul(inputs, w)
        if self.b is not None:
            outputs = outputs + self.b
        return outputs
