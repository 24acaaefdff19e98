"""Keras with ``rnn.keras.RNN`` on several workers: ``python -m rnn.examples.keras_multi_worker``.

Keras 3's ``model.fit`` does not run under
``tf.distribute.MultiWorkerMirroredStrategy`` (upstream
`keras-team/keras#20585 <https://github.com/keras-team/keras/issues/20585>`_;
:mod:`~rnn.examples.keras_multi_worker.fit_check` reproduces it, with Keras'
own LSTM). This example trains the same kind of model,
``Input -> rnn.keras.RNN(rnn.LSTM(...)) -> Dense(1)``, with a custom loop that
does work there (:class:`~rnn.examples.keras_multi_worker.training.Trainer`):

* the model and Keras' Adam are made under the strategy's scope, so their
  variables are mirrored on every worker (worker 0's initial values are
  broadcast);
* batch ``s`` is a pure function of ``(seed, s)``; every worker builds it and
  each replica takes its own consecutive share
  (``strategy.experimental_distribute_values_from_function``), so the shares
  are disjoint, deterministic, and together the whole batch;
* ``strategy.run`` computes each share's gradients, an all-reduce sums them,
  and the optimizer's ``apply`` updates the weights: the run matches one
  process training on the whole batch, up to the order of float sums;
* collectives are bounded (``--collective_timeout_s``), and a worker whose
  peer is lost stops with a message saying how to resume (exit status 3), as
  the repeat-copy job does (:func:`rnn.examples.local_cluster.peer_lost`);
* the chief writes ``metrics.csv`` (step, loss) and ``checkpoints/`` (model,
  optimizer and step, via ``tf.train.Checkpoint`` and ``CheckpointManager``;
  the other workers save into scratch folders), and ``--resume`` continues
  from the newest readable checkpoint of the chief's folder, skipping a torn
  one with a warning (:class:`rnn.examples.repeat_copy.checkpoints.Checkpoints`).

Keras' ``BackupAndRestore`` callback is not used: it restores only through
``model.fit`` (the epoch it records goes to ``fit``'s ``initial_epoch``; the
batch it records is never read back), and every worker would write the same
file.

Try it on one machine (two workers on localhost ports)::

    python -m rnn.examples.keras_multi_worker --local_workers 2 --output_dir runs/kmw --steps 200
    python -m rnn.examples.keras_multi_worker --local_workers 2 --output_dir runs/kmw --resume

On several machines, set ``TF_CONFIG`` on each and run the same command with
``--distribute multi_worker`` instead of ``--local_workers``.

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> main(["--steps", "2", "--batch_size", "4", "--hidden_size", "4", "--output_dir", out])
... # doctest: +ELLIPSIS
keras_multi_worker: step=2 loss=... (1 worker, 1 replica); 2 steps in ...
0
>>> [step for step, _ in read_losses(out)]
[1, 2]
"""

from rnn.examples.keras_multi_worker.training import (
    METRICS_FILE,
    PEER_LOST_STATUS,
    Config,
    Trainer,
    build_model,
    build_parser,
    global_batch,
    main,
    make_strategy,
    parse_config,
    read_losses,
    train,
)

__all__ = [
    "Config",
    "build_parser",
    "parse_config",
    "global_batch",
    "build_model",
    "make_strategy",
    "Trainer",
    "read_losses",
    "train",
    "main",
    "METRICS_FILE",
    "PEER_LOST_STATUS",
]
