"""Does ``model.fit`` train under a ``tf.distribute`` strategy? A standalone check.

``model.fit`` of Keras 3 fails under ``MultiWorkerMirroredStrategy``, with
Keras' own ``keras.layers.LSTM`` as with ``rnn.keras.RNN`` (upstream
`keras-team/keras#20585 <https://github.com/keras-team/keras/issues/20585>`_,
also `tensorflow/tensorflow#72388
<https://github.com/tensorflow/tensorflow/issues/72388>`_): the trainer reduces
a distributed batch eagerly (``ValueError: Attempt to convert a value
(PerReplica...) with an unsupported type``). Under ``MirroredStrategy`` (one
process, several devices) it trains. This module checks both, and so tells
when a new Keras fixes the first (the project's tests run it, expecting the
failure)::

    python -m rnn.examples.keras_multi_worker.fit_check --strategy multi_worker --local_workers 2
    python -m rnn.examples.keras_multi_worker.fit_check --strategy mirrored --cpu_devices 2

Apart from the launcher (:func:`rnn.examples.local_cluster.run_local_workers`)
and the layer under test, the worker is plain TensorFlow and Keras. It prints
``fit_check: trained ...`` and exits 0 when ``model.fit`` ran, or prints
``fit_check: model.fit failed ...`` and exits 1.

>>> fit_check("default", "rnn_lstm")  # doctest: +ELLIPSIS
fit_check: trained ... under _DefaultDistributionStrategy (1 replica): loss ... -> ...
0
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from rnn.examples.local_cluster import run_local_workers, task_of

__all__ = ["fit_check", "main", "KNOWN_ERRORS"]

# What the known upstream failures say (keras-team/keras#20585).
KNOWN_ERRORS = (
    "with an unsupported type",
    "Invalid reduction dimension",
)


def _strategy(name: str, timeout_s: float) -> tf.distribute.Strategy:
    if name == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def fit_check(strategy: str, layer: str, timeout_s: float = 60.0) -> int:
    """Trains ``Input -> layer -> Dense(1)`` for two epochs with ``model.fit``; 0 if it ran.

    ``strategy``: ``default``, ``mirrored`` (every GPU, else every logical
    CPU) or ``multi_worker`` (the cluster from ``TF_CONFIG``). ``layer``:
    ``keras_lstm`` (``keras.layers.LSTM(4)``) or ``rnn_lstm``
    (``rnn.keras.RNN(rnn.LSTM(4))``). Prints one line saying what happened.
    """
    tf.random.set_seed(0)
    dist = _strategy(strategy, timeout_s)
    with dist.scope():
        if layer == "rnn_lstm":
            import rnn  # pylint: disable=import-outside-toplevel
            import rnn.keras  # pylint: disable=import-outside-toplevel

            recurrent: keras.layers.Layer = rnn.keras.RNN(rnn.LSTM(4))
        else:
            recurrent = keras.layers.LSTM(4)
        model = keras.Sequential([keras.Input((5, 3)), recurrent, keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.01), "mse")
    x = np.random.default_rng(0).normal(size=(32, 5, 3)).astype("float32")
    y = x[:, :, :1].mean(axis=1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    name = type(dist).__name__
    replicas = dist.num_replicas_in_sync
    try:
        history = model.fit(data, epochs=2, verbose=0, shuffle=False)
    except Exception as e:  # (the check reports any failure of fit)
        # (A PerReplica value prints every tensor it holds: shortened.)
        text = re.sub(r"PerReplica:\{.*\}", "PerReplica:{...}", str(e), flags=re.S)
        text = " ".join(text.split())[:300]
        print(
            f"fit_check: model.fit failed with {layer} under {name} ({replicas} replicas; "
            f"Keras {keras.__version__}, TensorFlow {tf.__version__}): "
            f"{type(e).__name__}: {text}",
            flush=True,
        )
        return 1
    losses = history.history["loss"]
    print(
        f"fit_check: trained {layer} under {name} ({replicas} replica{'s' * (replicas > 1)}): "
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (``--help``); returns the exit status.

    >>> main(["--strategy", "default", "--layer", "keras_lstm"])  # doctest: +ELLIPSIS
    fit_check: trained keras_lstm under ... (1 replica): loss ... -> ...
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m rnn.examples.keras_multi_worker.fit_check",
        description="Check whether Keras' model.fit trains under a tf.distribute strategy.",
    )
    parser.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"))
    parser.add_argument("--layer", choices=("keras_lstm", "rnn_lstm"), default="keras_lstm")
    parser.add_argument("--local_workers", type=int, default=0, help="multi_worker: start N")
    parser.add_argument("--cpu_devices", type=int, default=0, help="split the CPU in N")
    parser.add_argument("--collective_timeout_s", type=float, default=60.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.strategy is None:
        parser.error("--strategy is required")
    if args.local_workers and task_of() is None:
        if args.strategy != "multi_worker":
            parser.error("--local_workers needs --strategy multi_worker")
        return run_local_workers(
            "rnn.examples.keras_multi_worker.fit_check",
            [*(sys.argv[1:] if argv is None else argv), "--local_workers", "0"],
            args.local_workers,
            grace_s=args.collective_timeout_s + 30.0,
        )
    if args.cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices
        )
    return fit_check(args.strategy, args.layer, args.collective_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
