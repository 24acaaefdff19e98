"""The run's ``metrics.csv``: one row every ``--eval_every`` steps (and at the last step).

A row holds the step, the wall time, the training cost and bit errors
averaged over the steps since the previous row (the *window*: sums and a
count, kept in the checkpoints so that a resumed run writes the same rows),
and the held-out cost and bit errors.

>>> row = metrics_row(4, 1.5, [6.0, 2.0, 2.0], 2.5, 0.25)
>>> row["train_cost"], row["train_bit_errors"], row["eval_cost"]
('3.000000', '1.000000', '2.500000')
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["CSV_FIELDS", "metrics_row", "read_rows", "write_rows"]

CSV_FIELDS = (
    "step",
    "elapsed_s",
    "train_cost",
    "train_bit_errors",
    "eval_cost",
    "eval_bit_errors",
    "max_length",
)


def metrics_row(
    step: int,
    elapsed_s: float,
    window: Sequence[float],
    eval_cost: float,
    eval_errors: float,
    max_length: int | str = "",
) -> dict[str, Any]:
    """The CSV row of ``step``; ``window`` is ``[cost sum, bit error sum, steps]``.

    ``max_length`` is the longest pattern trained on at that step (raised by
    a length curriculum); held-out batches are drawn from the same range.

    >>> metrics_row(2, 0.123, [1.0, 3.0, 2.0], 0.5, 1.0)["elapsed_s"]
    '0.12'
    """
    cost_sum, error_sum, count = window
    return {
        "step": step,
        "elapsed_s": f"{elapsed_s:.2f}",
        "train_cost": f"{cost_sum / count:.6f}",
        "train_bit_errors": f"{error_sum / count:.6f}",
        "eval_cost": f"{eval_cost:.6f}",
        "eval_bit_errors": f"{eval_errors:.6f}",
        "max_length": max_length,
    }


def read_rows(path: str, up_to_step: int, every: int) -> list[dict[str, str]]:
    """The rows of a run being resumed at ``up_to_step`` (none when there is no file).

    Rows after the checkpoint are dropped, and so is the extra row a finished
    run writes at its last step when that is not a multiple of ``every``.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.csv")
    >>> write_rows(path, [metrics_row(s, 0.0, [1.0, 1.0, 1.0], 1.0, 1.0) for s in (2, 4, 5)])
    >>> [row["step"] for row in read_rows(path, 5, every=2)]
    ['2', '4']
    """
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [
            row
            for row in csv.DictReader(f)
            if int(row["step"]) < up_to_step
            or (int(row["step"]) == up_to_step and up_to_step % every == 0)
        ]


def write_rows(path: str, rows: Sequence[dict[str, Any]]) -> None:
    """Writes ``rows`` (with a header line) to ``path``, replacing the file.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.csv")
    >>> write_rows(path, [metrics_row(1, 0.5, [1.0, 0.0, 1.0], 2.0, 0.0)])
    >>> open(path).readline().strip()
    'step,elapsed_s,train_cost,train_bit_errors,eval_cost,eval_bit_errors,max_length'
    """
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
