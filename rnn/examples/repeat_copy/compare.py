"""Train several cores on repeat-copy with the same wall-time budget; compare how they generalise.

``python -m rnn.examples.repeat_copy.compare --cores dnc,lstm --max_seconds 1800
--output_dir runs/compare [job flags]`` runs the job once per core (in
``<output_dir>/<core>``, each with ``--max_seconds`` of training and the same
other flags), then writes ``<output_dir>/generalisation.csv`` and
``generalisation.png``: every core's bit error rate and fraction of perfect
copies against the pattern length, on one figure. ``--resume`` resumes each
run (a finished one just evaluates again). Without ``--steps``, the budget
alone ends each run.

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> main(["--cores", "lstm,gru", "--output_dir", out, "--max_seconds", "2", "--steps", "2",
...       "--hidden_size", "4", "--batch_size", "2", "--eval_batches", "1", "--no-jit",
...       "--no-progress", "--eval_lengths", "1,4"])  # doctest: +ELLIPSIS
repeat_copy: core=lstm ...
compare: ...generalisation.csv...
0
>>> sorted({r["core"] for r in read_generalisation(os.path.join(out, "generalisation.csv"))})
['gru', 'lstm']
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rnn.examples.repeat_copy.config import CORES, ConfigError, build_parser, parse_config
from rnn.examples.repeat_copy.generalisation import (
    plot_generalisation,
    read_generalisation,
    write_generalisation,
)
from rnn.examples.repeat_copy.plots import plots_available
from rnn.examples.repeat_copy.training import train

__all__ = ["main"]

# Without --steps the budget ends each run.
_UNLIMITED_STEPS = "1000000000"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (bad flags exit with status 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="python -m rnn.examples.repeat_copy.compare",
        description=__doc__.split("\n\n")[0],
        epilog="Every other flag is the job's (python -m rnn.examples.repeat_copy --help).",
        allow_abbrev=False,  # (--core is the job's flag, not short for --cores)
    )
    parser.add_argument("--cores", default="dnc,lstm", help="comma-separated cores to compare")
    parser.add_argument("--max_seconds", type=float, required=True, help="training budget per core")
    parser.add_argument("--output_dir", default=os.path.join("runs", "compare"))
    args, job_flags = parser.parse_known_args(argv)
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    for core in cores:
        if core not in CORES:
            parser.error(f"--cores: {core!r} is not one of {', '.join(CORES)}")
    if len(set(cores)) != len(cores) or not cores:
        parser.error(f"--cores must name distinct cores, got {args.cores!r}")
    if not args.max_seconds > 0:
        parser.error(f"--max_seconds must be positive, got {args.max_seconds}")
    if "--core" in job_flags or "--output_dir" in job_flags:
        parser.error("--core and --output_dir are set per core by compare; leave them out")
    if "--steps" not in job_flags:
        job_flags += ["--steps", _UNLIMITED_STEPS]
    rows = []
    for core in cores:
        out = os.path.join(args.output_dir, core)
        config = parse_config(
            [
                *job_flags,
                "--core",
                core,
                "--output_dir",
                out,
                "--max_seconds",
                str(args.max_seconds),
            ]
        )
        try:
            train(config)
        except ConfigError as e:
            build_parser().error(str(e))
        rows += read_generalisation(os.path.join(out, "generalisation.csv"))
    csv_path = os.path.join(args.output_dir, "generalisation.csv")
    write_generalisation(csv_path, rows)
    if plots_available():
        title = f"{', '.join(cores)}, {args.max_seconds:.0f} s of training each"
        plot_generalisation(rows, os.path.join(args.output_dir, "generalisation.png"), title)
    print(f"compare: {', '.join(cores)}; {csv_path} and generalisation.png in {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
