"""The progress bar of the repeat-copy job: tqdm on a terminal, whole lines in a log."""

import io

import pytest

from rnn.examples.repeat_copy.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_bar(stream, total, start=0, enabled=True):
    bar = progress_bar(total, start, stream=stream, enabled=enabled)
    for step in range(start, total):
        bar.set_postfix_str(f"loss {step:.3f}", refresh=False)
        bar.update(1)
    bar.close()
    return stream.getvalue()


def test_in_a_log_whole_lines_at_each_tenth_and_at_the_end():
    text = run_bar(io.StringIO(), total=25)
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    # The start line, one every 2 steps (a tenth of 25, rounded down), and the last step.
    assert [line.split("|")[2].split()[0] for line in lines] == [
        f"{n}/25" for n in [*range(0, 25, 2), 25]
    ]
    assert lines[-1].startswith("100%") and lines[-1].endswith("loss 24.000]")


def test_a_resumed_run_counts_from_its_step():
    lines = run_bar(io.StringIO(), total=7, start=3).splitlines()
    assert [line.split("|")[2].split()[0] for line in lines] == ["3/7", "4/7", "5/7", "6/7", "7/7"]


def test_on_a_terminal_the_bar_is_redrawn_in_place():
    text = run_bar(Terminal(), total=5)
    assert text.count("\n") == 1 and text.endswith("\n") and "\r" in text
    assert "5/5" in text.rsplit("\r", 1)[-1]


def test_disabled_bar_writes_nothing():
    assert run_bar(io.StringIO(), total=5, enabled=False) == ""
    assert run_bar(Terminal(), total=5, enabled=False) == ""


def test_without_tqdm_the_import_error_names_the_extra(monkeypatch):
    import importlib
    import sys

    import rnn.examples.repeat_copy.progress as progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if it were not installed
    try:
        with pytest.raises(ImportError, match=r"needs tqdm, which is not installed.*tf extra"):
            importlib.reload(progress)
    finally:
        monkeypatch.undo()
        importlib.reload(progress)
