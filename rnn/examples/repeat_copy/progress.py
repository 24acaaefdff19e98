"""The run's progress bar on stderr: tqdm, line-based when the stream is not a terminal.

On a terminal it is tqdm's usual bar, redrawn in place; in a log (CI, a
file, a pipe) redraws with carriage returns would pile up, so it prints a
whole line at every tenth of the run instead, and a last one at the end.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

try:
    from tqdm import tqdm
except ModuleNotFoundError as _e:
    if _e.name != "tqdm":
        raise
    raise ImportError(
        "the repeat-copy job's progress bar needs tqdm, which is not installed: install "
        "the tf extra (pip install 'nestlib[tf]') or tqdm itself"
    ) from _e

__all__ = ["progress_bar"]


class _LogBar(tqdm):
    """tqdm printing whole lines (about ten per run) instead of redrawing one in place."""

    monitor_interval = 0  # No refresh thread: a line is printed only by update() and close().

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg == "":  # tqdm clearing its line: there is nothing to clear in a log.
            return False
        self.fp.write((self.__str__() if msg is None else msg) + "\n")
        self.fp.flush()
        return True

    def close(self) -> None:
        # The last step gets its line even when it is not on a tenth of the run.
        if not self.disable and self.n != self.last_print_n:
            self.refresh()
        super().close()


def progress_bar(
    total: int, start: int = 0, stream: TextIO | None = None, enabled: bool = True
) -> tqdm:
    """A tqdm bar of ``total`` steps starting at ``start``, on ``stream`` (default stderr).

    Show the running figures with ``bar.set_postfix_str(text, refresh=False)``
    and advance with ``bar.update(1)``; ``enabled=False`` gives a silent bar.

    >>> import io
    >>> log = io.StringIO()  # not a terminal: whole lines, one per tenth of the run
    >>> with progress_bar(20, start=0, stream=log) as bar:
    ...     for step in range(20):
    ...         bar.set_postfix_str("loss 0.500", refresh=False)
    ...         n = bar.update(1)
    >>> lines = log.getvalue().splitlines()
    >>> len(lines), lines[-1]
    (11, '100%|##########| 20/20 [...<00:00, ... steps/s, loss 0.500]')
    """
    stream = sys.stderr if stream is None else stream
    options: dict[str, Any] = dict(
        total=total, initial=start, file=stream, unit=" steps", disable=not enabled
    )
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(**options, mininterval=0.1)
    return _LogBar(**options, leave=False, mininterval=0, miniters=max(1, (total - start) // 10))
