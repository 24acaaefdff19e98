"""The flags of a repeat-copy run: :class:`Config`, its validation and the command-line parser.

Every :class:`Config` field is a ``--flag`` of ``python -m rnn.examples.repeat_copy``;
:func:`parse_config` reads them, validates them and remembers which were given
explicitly (on ``--resume``, the others keep the run's saved values).

>>> config = parse_config(["--core", "gru", "--steps", "3"])
>>> config.core, config.steps
('gru', 3)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Sequence

from rnn.examples.repeat_copy.task import RepeatCopyTask

__all__ = [
    "CORES",
    "DISTRIBUTE",
    "RESUMABLE",
    "int_list",
    "Config",
    "ConfigError",
    "build_parser",
    "parse_config",
]

CORES = ("dnc", "lstm", "gru", "deep")
DISTRIBUTE = ("none", "mirrored", "multi_worker")
# Flags that may change when a run is resumed (they do not change its maths).
RESUMABLE = (
    "steps",
    "progress",
    "checkpoint_every",
    "distribute",
    "cpu_devices",
    "local_workers",
    "collective_timeout_s",
    "eval_lengths",
    "eval_memory_sizes",
    "max_seconds",
)


class ConfigError(ValueError):
    """A flag value, or a combination of flags, that cannot work."""


def int_list(flag: str, text: str) -> list[int]:
    """A comma-separated list of positive integers (the value of ``--flag``).

    >>> int_list("eval_lengths", "6, 9,12"), int_list("eval_lengths", "")
    ([6, 9, 12], [])
    """
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = [0]
    if any(v < 1 for v in values):
        raise ConfigError(f"--{flag} must be comma-separated positive integers, got {text!r}")
    return values


@dataclasses.dataclass
class Config:
    """All the flags of a run (see ``--help`` for their meaning).

    >>> Config().core
    'dnc'
    """

    core: str = "dnc"
    num_bits: int = 4
    min_length: int = 1
    max_length: int = 3
    min_repeats: int = 1
    max_repeats: int = 3
    batch_size: int = 32
    steps: int = 4000
    learning_rate: float = 3e-3
    lr_half_life: int = 3000
    max_grad_norm: float = 10.0
    seed: int = 1
    hidden_size: int = 64
    memory_size: int = 16
    word_size: int = 16
    num_reads: int = 4
    num_writes: int = 1
    clip_value: float = 20.0
    masked_content: bool = False
    deallocate: bool = False
    sharpen_links: bool = False
    eval_every: int = 100
    eval_batches: int = 4
    eval_lengths: str = ""
    eval_memory_sizes: str = ""
    curriculum_threshold: float = 0.0
    curriculum_max_length: int = 0
    max_seconds: float = 0.0
    checkpoint_every: int = 500
    output_dir: str = os.path.join("runs", "repeat_copy")
    resume: bool = False
    jit: bool | None = None  # None: XLA unless the compiled kernels run the core
    distribute: str = "none"
    cpu_devices: int = 0
    local_workers: int = 0
    collective_timeout_s: float = 120.0
    progress: bool = True

    def validate(self) -> None:
        """Raises :class:`ConfigError` naming the first bad flag.

        >>> Config(min_length=3, max_length=2).validate()
        Traceback (most recent call last):
        ...
        rnn.examples.repeat_copy.config.ConfigError: --min_length (3) must be <= --max_length (2)
        """
        if self.core not in CORES:
            raise ConfigError(f"--core must be one of {', '.join(CORES)}; got {self.core!r}")
        if self.distribute not in DISTRIBUTE:
            raise ConfigError(
                f"--distribute must be one of {', '.join(DISTRIBUTE)}; got {self.distribute!r}"
            )
        for name in (
            "num_bits",
            "min_length",
            "max_length",
            "min_repeats",
            "max_repeats",
            "batch_size",
            "steps",
            "hidden_size",
            "memory_size",
            "word_size",
            "num_reads",
            "num_writes",
            "eval_every",
            "eval_batches",
            "checkpoint_every",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"--{name} must be >= 1, got {value}")
        for low, high in (("min_length", "max_length"), ("min_repeats", "max_repeats")):
            if getattr(self, low) > getattr(self, high):
                raise ConfigError(
                    f"--{low} ({getattr(self, low)}) must be <= --{high} ({getattr(self, high)})"
                )
        for name in ("learning_rate", "max_grad_norm"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name} must be a positive number, got {value}")
        if not (self.clip_value >= 0 and math.isfinite(self.clip_value)):
            raise ConfigError(
                f"--clip_value must be >= 0 (0 disables clipping), got {self.clip_value}"
            )
        if self.lr_half_life < 0:
            raise ConfigError(f"--lr_half_life must be >= 0, got {self.lr_half_life}")
        if self.cpu_devices < 0:
            raise ConfigError(f"--cpu_devices must be >= 0, got {self.cpu_devices}")
        for name in ("eval_lengths", "eval_memory_sizes"):
            int_list(name, getattr(self, name))
        if not (self.max_seconds >= 0 and math.isfinite(self.max_seconds)):
            raise ConfigError(f"--max_seconds must be >= 0 (0: no limit), got {self.max_seconds}")
        if not (self.curriculum_threshold >= 0 and math.isfinite(self.curriculum_threshold)):
            raise ConfigError(
                f"--curriculum_threshold must be >= 0 (0: no curriculum), got "
                f"{self.curriculum_threshold}"
            )
        if self.curriculum_threshold and self.curriculum_max_length <= self.max_length:
            raise ConfigError(
                f"--curriculum_threshold needs --curriculum_max_length above --max_length "
                f"({self.max_length}), got {self.curriculum_max_length}"
            )
        if self.local_workers < 0:
            raise ConfigError(f"--local_workers must be >= 0, got {self.local_workers}")
        if self.local_workers and self.distribute not in ("none", "multi_worker"):
            raise ConfigError(
                f"--local_workers runs a multi_worker cluster; it cannot be combined with "
                f"--distribute {self.distribute}"
            )
        if not (self.collective_timeout_s > 0 and math.isfinite(self.collective_timeout_s)):
            raise ConfigError(
                f"--collective_timeout_s must be a positive number, got {self.collective_timeout_s}"
            )

    def task(self, batch_size: int | None = None) -> RepeatCopyTask:
        """The :class:`~rnn.examples.repeat_copy.task.RepeatCopyTask` these flags describe.

        >>> Config(max_length=2, max_repeats=2).task(batch_size=1).max_time
        9
        """
        return RepeatCopyTask(
            num_bits=self.num_bits,
            batch_size=self.batch_size if batch_size is None else batch_size,
            min_length=self.min_length,
            max_length=self.max_length,
            min_repeats=self.min_repeats,
            max_repeats=self.max_repeats,
        )


_HELP = {
    "core": "recurrent core to train",
    "num_bits": "bits per pattern step",
    "min_length": "shortest pattern (steps)",
    "max_length": "longest pattern (steps)",
    "min_repeats": "fewest repeats to write back",
    "max_repeats": "most repeats to write back",
    "batch_size": "sequences per training batch (global, over all replicas)",
    "steps": "total training steps (a resumed run continues up to this)",
    "learning_rate": "Adam learning rate (at step 0)",
    "lr_half_life": "the learning rate halves every this many steps (0: constant)",
    "max_grad_norm": "gradients are clipped to this global norm",
    "seed": "seed of the initial weights and of the data stream",
    "hidden_size": "units of the LSTM/GRU (the DNC's controller, the baselines' layers)",
    "memory_size": "DNC memory slots",
    "word_size": "DNC word size",
    "num_reads": "DNC read heads",
    "num_writes": "DNC write heads",
    "clip_value": "DNC output clipping (0: none)",
    "masked_content": "DNC: masked content addressing (Csordas & Schmidhuber 2019)",
    "deallocate": "DNC: erase memory where it is de-allocated (Csordas & Schmidhuber 2019)",
    "sharpen_links": "DNC: sharpen the temporal link distributions (Csordas & Schmidhuber 2019)",
    "eval_every": "evaluate on held-out batches and write a CSV row every N steps",
    "eval_batches": "held-out batches per evaluation",
    "eval_lengths": "after training, evaluate at these comma-separated pattern lengths into "
    "generalisation.csv/png (default: 1 .. twice the longest trained)",
    "eval_memory_sizes": "DNC: evaluate the trained weights with these comma-separated "
    "memory sizes too (default: the trained one)",
    "curriculum_threshold": "raise the longest training pattern by one whenever the held-out "
    "bit errors per sequence fall to this or below (0: no curriculum)",
    "curriculum_max_length": "the curriculum stops at this pattern length",
    "max_seconds": "stop training after this much wall time (0: no limit; a resumed run "
    "counts the time before too)",
    "checkpoint_every": "save a checkpoint every N steps (and at the end)",
    "output_dir": "where metrics, plots, checkpoints and config.json go",
    "resume": "continue the run in --output_dir from its latest checkpoint",
    # ("%(default).0s" prints nothing: without it argparse would add "(default: None)".)
    "jit": "compile the training step with XLA (batches padded to the longest "
    "possible sequence so it compiles once) (default: XLA except for a DNC that "
    "rnn's compiled CPU kernels run: XLA cannot hold them, and they are faster)%(default).0s",
    "distribute": "none; mirrored (tf.distribute.MirroredStrategy over the GPUs, "
    "else the logical CPUs); multi_worker "
    "(MultiWorkerMirroredStrategy, configured by TF_CONFIG)",
    "cpu_devices": "split the CPU into this many logical devices (0: leave as is)",
    "local_workers": "start this many multi_worker processes on this machine (TF_CONFIG "
    "set for each, free localhost ports; 0: none)",
    "collective_timeout_s": "multi_worker: a collective (one step's gradient sum) that takes "
    "longer than this fails, so a worker whose peer vanished stops instead of waiting",
    "progress": "show a progress bar on stderr",
}


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser; every :class:`Config` field is a flag.

    >>> build_parser().parse_args(["--steps", "5"]).steps
    5
    """
    parser = argparse.ArgumentParser(
        prog="python -m rnn.examples.repeat_copy",
        description="Train a DNC (or an LSTM/GRU/deep LSTM baseline) on repeat-copy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    defaults = Config()
    for field in dataclasses.fields(Config):
        flag = "--" + field.name
        default = getattr(defaults, field.name)
        help_text = _HELP[field.name]
        if field.name == "core":
            parser.add_argument(flag, choices=CORES, default=default, help=help_text)
        elif field.name == "distribute":
            parser.add_argument(flag, choices=DISTRIBUTE, default=default, help=help_text)
        elif field.name == "resume":
            parser.add_argument(flag, action="store_true", help=help_text)
        elif isinstance(default, bool) or field.name == "jit":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            parser.add_argument(flag, type=type(default), default=default, help=help_text)
    return parser


def _explicit_flags(argv: Sequence[str]) -> set[str]:
    """Names of the flags given on the command line (not left at their defaults)."""
    parser = build_parser()
    for action in parser._actions:  # pylint: disable=protected-access
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv))))


def parse_config(argv: Sequence[str] | None = None) -> Config:
    """Parses and validates flags; bad flags exit with a usage message (status 2).

    >>> parse_config(["--num_bits", "6"]).num_bits
    6
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    config = Config(**vars(parser.parse_args(argv)))
    try:
        config.validate()
    except ConfigError as e:
        parser.error(str(e))
    config._explicit = _explicit_flags(argv)  # type: ignore[attr-defined]
    return config
