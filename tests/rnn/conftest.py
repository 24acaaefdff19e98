"""Shared set-up for the rnn tests.

At import (before TensorFlow initialises its devices) the one physical CPU
is split into two logical CPUs, so MirroredStrategy can be tested with two
replicas on any machine. If something initialised TensorFlow's devices
earlier in the session, the split is impossible; ``TWO_CPUS`` then records
that and the MirroredStrategy test says so.
"""

import numpy as np
import pytest
import tensorflow as tf

try:
    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
    _SETUP_ERROR = None
except RuntimeError as e:  # devices were already initialised
    _SETUP_ERROR = str(e)

TWO_CPUS = len(tf.config.list_logical_devices("CPU")) >= 2


@pytest.fixture
def rng():
    """A seeded NumPy generator; also seeds TensorFlow's global generator."""
    tf.random.set_seed(1234)
    return np.random.default_rng(1234)


@pytest.fixture
def two_cpus():
    """The names of two logical CPU devices (fails if they could not be made)."""
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, (
        f"tests/rnn/conftest.py could not split the CPU into two logical devices: {_SETUP_ERROR}"
    )
    return [d.name for d in devices[:2]]
