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
from typing import Any

import tensorflow as tf

from rnn import _utils
from rnn._checks import aliased, float_dtype, initial_value, initializer, positive_int

__all__ = ["Linear"]


class Linear(tf.Module):
    """A dense layer ``y = x W + b`` whose input size is fixed on the first call.

    Weights start truncated-normal with standard deviation ``1/sqrt(fan_in)``
    and biases at zero, unless ``kernel_initializer`` / ``bias_initializer``
    (Sonnet's names ``w_init`` / ``b_init`` are accepted too) say otherwise:
    an initializer name, a Keras initializer or any callable
    ``(shape, dtype) -> value``. The variables have ``dtype`` (None: the
    first inputs' dtype). Every argument after ``output_size`` is
    keyword-only.

    Mixed precision: float32 weights also take float16 or bfloat16 inputs;
    they stay float32 and are cast to the inputs' dtype on each call (the
    output has the inputs' dtype). Other mismatches are a TypeError.

    >>> layer = Linear(3)
    >>> layer(tf.ones([2, 5])).shape.as_list()
    [2, 3]
    >>> layer = Linear(2, w_init="ones", dtype=tf.float64)
    >>> layer(tf.ones([1, 3], tf.float64)).numpy().tolist()
    [[3.0, 3.0]]
    >>> layer = Linear(2, w_init="ones", dtype=tf.float32)
    >>> y = layer(tf.ones([1, 3], tf.bfloat16))
    >>> y.dtype.name, layer.w.dtype.name
    ('bfloat16', 'float32')
    """

    def __init__(
        self,
        output_size: int,
        *,
        with_bias: bool = True,
        dtype: Any = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        w_init: Any = None,
        b_init: Any = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.output_size = positive_int("output_size", output_size)
        self.with_bias = with_bias
        self._dtype = float_dtype("dtype", dtype)
        self._kernel_init = initializer(
            "kernel_initializer",
            aliased("kernel_initializer", kernel_initializer, "w_init", w_init),
        )
        self._bias_init = initializer(
            "bias_initializer", aliased("bias_initializer", bias_initializer, "b_init", b_init)
        )
        self.w: tf.Variable | None = None
        self.b: tf.Variable | None = None

    @tf.Module.with_name_scope
    def _create(self, input_size: int, dtype: tf.DType) -> tf.Variable:
        stddev = 1.0 / math.sqrt(input_size)
        dtype = self._dtype or dtype
        shape = [input_size, self.output_size]
        # Computed eagerly, so the first call may happen inside tf.function,
        # a while loop or an XLA cluster.
        with tf.init_scope():
            if self._kernel_init is None:
                w = tf.random.truncated_normal(shape, stddev=stddev, dtype=dtype)
            else:
                w = initial_value("kernel_initializer", self._kernel_init, shape, dtype)
            self.w = tf.Variable(w, name="w")
            if self.with_bias:
                if self._bias_init is None:
                    b = tf.zeros([self.output_size], dtype)
                else:
                    b = initial_value(
                        "bias_initializer", self._bias_init, [self.output_size], dtype
                    )
                self.b = tf.Variable(b, name="b")
        return self.w

    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        """Applies the layer to ``[B, input_size]`` inputs."""
        inputs = tf.convert_to_tensor(inputs)
        if inputs.shape.rank != 2 or inputs.shape[-1] is None:
            raise ValueError(
                f"{self.name}: inputs must be [batch, features] with a static "
                f"feature size, got shape {inputs.shape}"
            )
        weights_dtype = self.w.dtype if self.w is not None else self._dtype or inputs.dtype
        if inputs.dtype != weights_dtype and not (
            weights_dtype == tf.float32 and inputs.dtype in _utils.HALF_DTYPES
        ):
            raise TypeError(
                f"{self.name}: inputs have dtype {inputs.dtype.name}, the weights "
                f"{tf.as_dtype(weights_dtype).name}; cast them to one dtype (or, for mixed "
                "precision, use float16 or bfloat16 inputs with float32 weights)"
            )
        w = self.w if self.w is not None else self._create(int(inputs.shape[-1]), inputs.dtype)
        if inputs.shape[-1] != w.shape[0]:
            raise ValueError(
                f"{self.name}: expected {w.shape[0]} input features, got {inputs.shape[-1]}"
            )
        # Under mixed precision the float32 weights are cast to the inputs'
        # dtype (their gradients come back float32 through the cast).
        w, b = _utils.cast_variables(inputs.dtype, [w, self.b])
        outputs = tf.linalg.matmul(inputs, w)
        if b is not None:
            outputs = outputs + b
        return outputs
