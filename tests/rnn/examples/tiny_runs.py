"""Flags and checks shared by the tests that run the repeat-copy job.

Runs here are tiny (a few steps of small cores, mostly without XLA); the
default run's results are measured and reported in docs/dnc.md.
"""

import csv
import os

import numpy as np
import tensorflow as tf

TINY = [
    "--num_bits",
    "2",
    "--max_length",
    "2",
    "--max_repeats",
    "2",
    "--batch_size",
    "4",
    "--hidden_size",
    "8",
    "--memory_size",
    "4",
    "--word_size",
    "3",
    "--num_reads",
    "1",
    "--eval_batches",
    "1",
    "--no-progress",
]


def read_rows(out):
    """The rows of ``out``/metrics.csv."""
    with open(os.path.join(out, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def checkpoint_values(out):
    """The saved values of the latest checkpoint of ``out``, except the wall time."""
    reader = tf.train.load_checkpoint(os.path.join(out, "checkpoints"))
    return {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if not any(
            skip in k for skip in ("elapsed_s", "save_counter", "_CHECKPOINTABLE_OBJECT_GRAPH")
        )
    }


def assert_same_run(a, b, exact=True):
    """Runs ``a`` and ``b`` end with the same checkpoint and the same metrics.csv."""
    va, vb = checkpoint_values(a), checkpoint_values(b)
    assert va.keys() == vb.keys() and len(va) > 10
    for key in va:
        if exact:
            np.testing.assert_array_equal(va[key], vb[key], err_msg=key)
        else:
            np.testing.assert_allclose(va[key], vb[key], rtol=1e-5, atol=1e-6, err_msg=key)
    rows_a, rows_b = read_rows(a), read_rows(b)
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("train_cost", "train_bit_errors", "eval_cost", "eval_bit_errors"):
            if exact:
                assert ra[key] == rb[key], (key, ra, rb)
            else:
                np.testing.assert_allclose(float(ra[key]), float(rb[key]), rtol=1e-4)
