"""Smoke test of bench/rnn_bench.py: a tiny run prints every kind of row.

The numbers of such a run mean nothing; the test checks that every requested
contender is timed in every mode, that the first call is also timed in new
processes, and that the ratios are taken against the best peer.
"""

import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("sonnet")  # a peer the benchmark measures against

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench", "rnn_bench.py")


@pytest.mark.xdist_group("rnn_bench")
def test_tiny_run_prints_every_row(tmp_path):
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            BENCH,
            "--T",
            "3",
            "--reps",
            "1",
            "--first-reps",
            "1",
            "--no-deep",
            "--cores",
            "lstm",
            "--only",
            "rnn.dynamic_unroll,keras",
            "--cold-T",
            "3",
            "--cold-reps",
            "1",
            "--json",
            str(results),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] == "3":
            rows[(cells[1], cells[2])] = [float(v) for v in cells[3:]]
    modes = ("graph", "first call", "eager", "first call, new process")
    names = ("rnn.dynamic_unroll(rnn.LSTM)", "keras.layers.LSTM")
    assert set(rows) == {(m, n) for m in modes for n in names}, sorted(rows)
    for (mode, name), (fwd, fwd_ratio, fb, fb_ratio) in rows.items():
        assert fwd > 0 and fb > 0, (mode, name)
        if name.startswith("keras"):  # the only peer here, so the best one
            assert fwd_ratio == 1.0 and fb_ratio == 1.0, (mode, name)
    dump = json.loads(results.read_text())
    cold = dump["T=3 first call, new process"]
    assert all(len(cold[n][k]) == 1 for n in names for k in ("fwd", "fwd+bwd"))
    assert re.search(r"'new process' rows: median over 1 new Python", proc.stdout)


@pytest.mark.xdist_group("rnn_bench")
def test_gru_rows_compare_each_form_with_its_own_peers():
    """The GRU rows: both forms, ratios against the best peer of the same form."""
    proc = subprocess.run(
        [sys.executable, BENCH, "--T", "3", "--reps", "1", "--first-reps", "1"]
        + ["--modes", "graph", "--cores", "gru", "--cold-T", ""],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 7 and cells[0] == "3" and cells[1] == "graph":
            rows[cells[2]] = [float(v) for v in cells[3:]]
    assert {
        "rnn.dynamic_unroll(rnn.GRU())",
        "rnn.dynamic_unroll(rnn.GRU(reset_after=True))",
        "snt.dynamic_unroll(snt.GRU)",
        "keras.layers.GRU(reset_after=False)",
        "keras.layers.GRU(reset_after=True)",
    } <= set(rows), sorted(rows)
    # The only peer of the reset_after form is Keras' GRU: its own best.
    assert rows["keras.layers.GRU(reset_after=True)"][1] == 1.0
    cho_peers = [rows["snt.dynamic_unroll(snt.GRU)"], rows["keras.layers.GRU(reset_after=False)"]]
    assert min(r[1] for r in cho_peers) == 1.0
