"""Smoke tests of bench/nest_bench.py: a --quick run prints its tables.

The numbers of a --quick run are rough; these tests check that the benchmark
runs every implementation on every requested op and structure, checks their
results, and prints the tables, verdicts and import times.
"""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench", "nest_bench.py")

pytest.importorskip("tree")  # the reference every ratio is taken against


def run_bench(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, BENCH, *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("nest_bench_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_prints_a_table_per_op():
    out = run_bench("--quick", "--no-tf", "--structures", "lstm,dnc")
    for op in ("flatten", "unflatten", "map1", "map2", "same", "paths"):
        assert re.search(rf"^{op}: .*µs per call", out, re.M), op
    rows = [line for line in out.splitlines() if line.startswith(("(a) LSTM", "(b) DNC"))]
    assert len(rows) == 12  # 6 ops x 2 structures
    for row in rows:
        # dm-tree's time, then other implementations with their ratios, then a verdict
        assert re.match(r"\(\w\) [^\d]+\(\d+ leaves\)\s+[\d.,]+\s", row), row
        assert len(re.findall(r"[\d.,]+ \(\d+\.\d\dx\)", row)) >= 3, row
        assert re.search(r"(PASS|MISS: .+|TIE: .+)$", row), row
    # flatten 1 target, unflatten/map1/map2 3 each, same 1, paths 2; per structure
    assert re.search(r"^targets: \d+ PASS, \d+ TIE .*, \d+ MISS, of 26$", out, re.M)
    assert "NOT TIMED" not in out
    times = dict(re.findall(r"^(python -c pass|import nestlib|import tree)\s+(\d+)", out, re.M))
    # Only that each import was timed: comparing the times would be a timed
    # assertion, and on a loaded 2-core machine the two can tie.
    assert set(times) == {"python -c pass", "import nestlib", "import tree"}


def test_markdown_tables():
    out = run_bench(
        "--quick",
        "--no-tf",
        "--ops",
        "unflatten",
        "--structures",
        "a",
        "--markdown",
        "--no-import-times",
    )
    assert "### unflatten: " in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| structure |"))
    assert "| nestlib |" in lines[header] and "| optree spec |" in lines[header]
    assert re.fullmatch(r"\|---\|(---:\|)+", lines[header + 1])
    assert lines[header + 2].startswith("| (a) LSTM state (2 leaves) | ")
    assert "import time" not in out


def test_verdicts(bench):
    """PASS within a limit, TIE just over it (noise), MISS beyond."""
    structures = bench.make_structures()
    base_ns, impls = bench.implementation_namespace(with_tf=False)
    cell = bench.Cell("same", structures["lstm"], impls, base_ns)
    assert {"dm-tree", "nestlib"} <= set(cell.timers)
    for nestlib_us, verdict in ((0.9, True), (1.0, True), (1.03, None), (1.2, False)):
        cell.samples = {"dm-tree": [1.0, 1.0, 5.0], "nestlib": [nestlib_us, nestlib_us, 0.1]}
        [(label, ratio, limit, passed)] = cell.checks()
        assert (label, limit, passed) == ("nestlib", 1.0, verdict)
        assert ratio == pytest.approx(nestlib_us)  # medians, not means
    cell = bench.Cell("unflatten", structures["lstm"], impls, base_ns)
    cell.samples = {
        "dm-tree": [10.0],
        "nestlib": [2.0],
        "nestlib py": [11.0],
        "optree spec": [1.0],
        "nestlib Spec": [1.4],
    }
    assert [(c[0], c[3]) for c in cell.checks()] == [
        ("nestlib", True),
        ("py", False),
        ("Spec", True),
    ]
    assert bench._fmt_check(cell) == "MISS: py 1.10x>1.00x"


def test_results_are_checked_before_timing(bench):
    structures = bench.make_structures()
    st = structures["dnc"]
    assert bench.check_result("flatten", "x", list(st.leaves), st) is None
    assert bench.check_result("flatten", "x", list(reversed(st.leaves)), st)
    assert bench.check_result("map1", "x", st.s, st) is None
    assert bench.check_result("map1", "x", tuple(st.s), st)  # lost its namedtuple type


def test_bad_arguments(bench):
    with pytest.raises(SystemExit, match="unknown op 'bogus'"):
        bench.main(["--ops", "bogus"])
    with pytest.raises(SystemExit, match="unknown structure 'z'"):
        bench.main(["--structures", "z", "--no-tf"])
    with pytest.raises(SystemExit, match="--profile wants"):
        bench.main(["--profile", "map1", "--no-tf"])
