"""metrics.csv of the repeat-copy job (rnn.examples.repeat_copy.metrics)."""

import csv

from rnn.examples.repeat_copy.metrics import CSV_FIELDS, metrics_row, read_rows, write_rows


def test_rows_round_trip_with_the_documented_columns(tmp_path):
    path = str(tmp_path / "metrics.csv")
    rows = [metrics_row(s, 0.5 * s, [2.0 * s, 1.0, 2.0], 1.0 / s, 0.0) for s in (2, 4)]
    write_rows(path, rows)
    with open(path, newline="") as f:
        assert tuple(next(csv.reader(f))) == CSV_FIELDS
    assert read_rows(path, 4, every=2) == [{k: str(v) for k, v in r.items()} for r in rows]
    assert rows[1]["train_cost"] == "4.000000" and rows[1]["elapsed_s"] == "2.00"


def test_resume_keeps_the_rows_up_to_its_checkpoint(tmp_path):
    path = str(tmp_path / "metrics.csv")
    # A finished run of 7 steps, rows every 2 steps and one at the end.
    write_rows(path, [metrics_row(s, 0.0, [1.0, 1.0, 1.0], 1.0, 1.0) for s in (2, 4, 6, 7)])
    assert [r["step"] for r in read_rows(path, 3, every=2)] == ["2"]
    assert [r["step"] for r in read_rows(path, 6, every=2)] == ["2", "4", "6"]
    # (The end-of-run row off the grid is written again by the resumed run.)
    assert [r["step"] for r in read_rows(path, 7, every=2)] == ["2", "4", "6"]
    assert read_rows(str(tmp_path / "none.csv"), 3, every=2) == []
