"""Smoke test of bench/dnc_bench.py: a tiny run prints a row per step variant.

The numbers of such a run mean nothing; the test checks that the job's
configuration trains under XLA, without it and eagerly, and that every
variant gets a time and a speed.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench", "dnc_bench.py")


def test_tiny_run_prints_every_variant():
    proc = subprocess.run(
        [sys.executable, BENCH, "--blocks", "2", "--block", "2", "--eager-steps", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in ("jit", "graph", "eager"):
            rows[cells[0]] = cells[1:]
    assert set(rows) == {"jit", "graph", "eager"}, proc.stdout
    for name, (first, ms, per_s) in rows.items():
        # steps/s = 1000 / ms is printed with one decimal, from ms before its
        # rounding to two: 0.05 for the first, 1000 / ms^2 * 0.005 for the second.
        ms_value = float(ms)
        tolerance = 0.05 + 5.0 / ms_value**2 + 1e-6
        assert ms_value > 0 and abs(float(per_s) - 1000 / ms_value) <= tolerance, (name, rows)
        assert name == "eager" or float(first) > 0
