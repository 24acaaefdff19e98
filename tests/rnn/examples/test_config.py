"""The flags of the repeat-copy job: parsing, validation and their exit status."""

import dataclasses
import re

import pytest

import rnn.examples.repeat_copy as rc
from rnn.examples.repeat_copy.config import Config, ConfigError, parse_config


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--min_length", "3", "--max_length", "2"],
            r"--min_length \(3\) must be <= --max_length \(2\)",
        ),
        (["--min_repeats", "4", "--max_repeats", "2"], r"--min_repeats \(4\) must be <="),
        (["--num_bits", "0"], "--num_bits must be >= 1, got 0"),
        (["--core", "transformer"], "invalid choice: 'transformer'"),
        (["--learning_rate", "-1"], "--learning_rate must be a positive number"),
        (["--steps", "ten"], "invalid int value: 'ten'"),
    ],
)
def test_bad_flags_exit_with_a_clear_message(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        rc.main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err
    assert re.search(message, err), err


def test_validate_names_the_flag_the_expected_and_the_found():
    with pytest.raises(
        ConfigError, match=r"--clip_value must be >= 0 \(0 disables clipping\), got -1"
    ):
        Config(clip_value=-1).validate()
    with pytest.raises(
        ConfigError, match="--distribute must be one of none, mirrored, multi_worker; got 'tpu'"
    ):
        Config(distribute="tpu").validate()
    with pytest.raises(ConfigError, match="--lr_half_life must be >= 0, got -2"):
        Config(lr_half_life=-2).validate()


def test_parse_config_remembers_the_flags_given():
    config = parse_config(["--steps", "5", "--no-jit"])
    assert (config.steps, config.jit, config.core) == (5, False, "dnc")
    assert config._explicit == {"steps", "jit"}


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        rc.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m rnn.examples.repeat_copy")
    for field in dataclasses.fields(Config):
        assert f"--{field.name}" in out
