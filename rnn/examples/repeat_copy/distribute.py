"""Devices and ``tf.distribute`` strategies of a repeat-copy run, and its batches on them.

``--cpu_devices K`` splits the CPU into ``K`` logical devices (before
TensorFlow initialises them); ``--distribute`` picks the strategy; the chief
(worker 0, or a ``chief`` task) is the one that writes the run's outputs. A
global batch is padded to a fixed length under ``--jit`` (one XLA compile)
and split evenly over the replicas.

>>> import numpy as np
>>> from rnn.examples.repeat_copy.task import Batch
>>> batch = Batch(np.ones([2, 4, 3]), np.ones([2, 4, 2]), np.ones([2, 4]))
>>> pad_batch(batch, 5).mask.shape
(5, 4)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from rnn.examples.local_cluster import chief_rule
from rnn.examples.repeat_copy.config import Config, ConfigError
from rnn.examples.repeat_copy.task import Batch

__all__ = [
    "setup_devices",
    "make_strategy",
    "is_chief",
    "cluster_place",
    "pad_batch",
    "distribute_batch",
]


def setup_devices(config: Config) -> None:
    """Splits the CPU into ``--cpu_devices`` logical devices (nothing when it is 0).

    Raises :class:`~rnn.examples.repeat_copy.config.ConfigError` when TensorFlow
    already runs with another number of logical CPUs (its devices can be
    configured only once per process).

    >>> setup_devices(Config(cpu_devices=0))  # leaves the devices as they are
    """
    if not config.cpu_devices:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * config.cpu_devices
        )
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != config.cpu_devices:
            raise ConfigError(
                f"--cpu_devices {config.cpu_devices}: TensorFlow is already "
                f"initialised with {have} logical CPU devices ({e})"
            ) from e


def make_strategy(config: Config) -> tf.distribute.Strategy:
    """The strategy of ``--distribute``: the default one, mirrored or multi-worker.

    ``mirrored`` replicates over all GPUs or, when there are none, over all
    logical CPUs; ``multi_worker`` reads its cluster from ``TF_CONFIG``.

    >>> make_strategy(Config()).num_replicas_in_sync
    1
    """
    if config.distribute == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if config.distribute == "multi_worker":
        # Bounded collectives: a peer that vanishes without closing its
        # connections makes the next gradient sum fail instead of hang.
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=config.collective_timeout_s
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the outputs: always, unless it is a non-chief worker.

    >>> is_chief(tf.distribute.get_strategy())
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return chief_rule(resolver.task_type, resolver.task_id, resolver.cluster_spec().jobs)


def cluster_place(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """``(this process's task index, the number of processes)`` of the strategy's cluster.

    ``(0, 1)`` without a cluster (one process: the default strategy, mirrored,
    or multi_worker without ``TF_CONFIG``).

    >>> cluster_place(tf.distribute.get_strategy())
    (0, 1)
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0, 1
    cluster = resolver.cluster_spec().as_dict()
    return int(resolver.task_id or 0), sum(len(tasks) for tasks in cluster.values())


def pad_batch(batch: Batch, time_steps: int) -> Batch:
    """``batch`` padded with zeros (mask 0) to ``time_steps`` steps; as is if as long already.

    >>> import numpy as np
    >>> batch = Batch(np.ones([3, 1, 2]), np.ones([3, 1, 1]), np.ones([3, 1]))
    >>> pad_batch(batch, 4).mask[:, 0].tolist(), pad_batch(batch, 2) is batch
    ([1.0, 1.0, 1.0, 0.0], True)
    """
    extra = time_steps - batch.observations.shape[0]
    if extra <= 0:
        return batch
    return Batch(
        *(np.concatenate([x, np.zeros((extra,) + x.shape[1:], x.dtype)], axis=0) for x in batch)
    )


def distribute_batch(strategy: tf.distribute.Strategy, batch: Batch) -> tuple[Any, Any, Any]:
    """The global ``batch`` as tensors, split evenly over the strategy's replicas.

    With one replica these are plain tensors; with several, per-replica
    values holding consecutive slices of the batch axis (the batch size must
    be a multiple of the number of replicas).

    >>> import numpy as np
    >>> batch = Batch(np.ones([3, 4, 2]), np.ones([3, 4, 1]), np.ones([3, 4]))
    >>> [x.shape.as_list() for x in distribute_batch(tf.distribute.get_strategy(), batch)]
    [[3, 4, 2], [3, 4, 1], [3, 4]]
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return tuple(tf.constant(x) for x in batch)
    per_replica = batch.observations.shape[1] // replicas

    def value_fn(ctx: tf.distribute.InputContext) -> tuple[tf.Tensor, ...]:
        i = ctx.replica_id_in_sync_group
        return tuple(tf.constant(x[:, i * per_replica : (i + 1) * per_replica]) for x in batch)

    return strategy.experimental_distribute_values_from_function(value_fn)
