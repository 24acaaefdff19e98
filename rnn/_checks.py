"""Argument checks shared by the rnn modules: one definition each, one wording.

Each check names the argument, says what was expected and what was found, and
returns the value (normalised) so that constructors can write
``self._size = positive_int("size", size)``.
"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["positive_int"]


def positive_int(name: str, value: Any) -> int:
    """Returns ``value`` as an ``int`` when it is an integer >= 1; raises ValueError otherwise.

    Booleans are refused (``True`` is an ``int`` to Python, never a size);
    NumPy integers are accepted and returned as Python ints.

    >>> positive_int("hidden_size", 8)
    8
    >>> positive_int("hidden_size", True)
    Traceback (most recent call last):
      ...
    ValueError: hidden_size must be a positive int, got True (bool)
    >>> positive_int("num_reads", 0)
    Traceback (most recent call last):
      ...
    ValueError: num_reads must be a positive int, got 0 (int)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    return int(value)
