"""Train a recurrent core on the repeat-copy task: ``python -m rnn.examples.repeat_copy``.

The same training code drives every core (``--core dnc|lstm|gru|deep``): the
model is built by :func:`build_core`, unrolled with :func:`rnn.dynamic_unroll`
and trained with Keras' Adam on the masked sigmoid cross-entropy. The run writes, in
``--output_dir`` (default ``runs/repeat_copy``):

* ``metrics.csv``: step, wall time, training cost and bit errors (averaged
  over the steps since the previous row) and held-out cost and bit errors,
  all per sequence;
* ``learning_curve.png``: the same, plotted;
* ``memory.png`` (DNC only): write weights, read weights and usage over one
  held-out example;
* ``checkpoints/``: model, optimizer and progress every ``--checkpoint_every``
  steps; ``--resume`` continues exactly where the last one stopped (same step,
  optimizer state and data: batch ``s`` is a pure function of ``(seed, s)``);
* ``config.json``: the flags of the run.

Cost is in nats per sequence (summed over the answer steps and channels,
averaged over sequences); bit errors count wrong answer bits per sequence
(the output thresholded at 0.5).

Example (a tiny run, as in the tests)::

    python -m rnn.examples.repeat_copy --core lstm --steps 20 --no-jit

The package, one job per module:

* :mod:`~rnn.examples.repeat_copy.config`: :class:`Config`, the flags and their checks;
* :mod:`~rnn.examples.repeat_copy.task`: the data generator (:class:`RepeatCopyTask`);
* :mod:`~rnn.examples.repeat_copy.model`: the core of ``--core`` and its cost;
* :mod:`~rnn.examples.repeat_copy.training`: the loop, :func:`train` and :func:`main`;
* :mod:`~rnn.examples.repeat_copy.checkpoints`: ``config.json`` and the checkpoints
  (what ``--resume`` needs);
* :mod:`~rnn.examples.repeat_copy.metrics`: ``metrics.csv``;
* :mod:`~rnn.examples.repeat_copy.plots`: the two figures (matplotlib is optional);
* :mod:`~rnn.examples.repeat_copy.distribute`: devices, strategies, batches on replicas;
* :mod:`~rnn.examples.repeat_copy.progress`: the progress bar (tqdm).

>>> config = parse_config(["--core", "gru", "--steps", "3"])
>>> config.core, config.steps
('gru', 3)
"""

from rnn.examples.repeat_copy.checkpoints import Checkpoints, Progress, prepare_output_dir
from rnn.examples.repeat_copy.config import (
    CORES,
    DISTRIBUTE,
    RESUMABLE,
    Config,
    ConfigError,
    build_parser,
    parse_config,
)
from rnn.examples.repeat_copy.metrics import CSV_FIELDS
from rnn.examples.repeat_copy.model import build_core, sequence_sums
from rnn.examples.repeat_copy.plots import NO_PLOTS, plots_available
from rnn.examples.repeat_copy.task import EVAL, PLOT, TRAIN, Batch, RepeatCopyTask
from rnn.examples.repeat_copy.training import Run, build_optimizer, main, train

__all__ = [
    "Config",
    "ConfigError",
    "build_parser",
    "parse_config",
    "build_core",
    "sequence_sums",
    "build_optimizer",
    "train",
    "main",
    "RepeatCopyTask",
    "Batch",
]
