"""Objects shared by the nestlib API tests (test_api_surface, test_node_kinds, ...)."""

from __future__ import annotations

import collections

import pytest

try:  # attrs and wrapt are optional: their tests are skipped without them
    import attr
except ImportError:  # pragma: no cover - the no-extras CI job
    attr = None
try:
    import wrapt
except ImportError:  # pragma: no cover
    wrapt = None

needs_attrs = pytest.mark.skipif(attr is None, reason="attrs is not installed")
needs_wrapt = pytest.mark.skipif(wrapt is None, reason="wrapt is not installed")

Point = collections.namedtuple("Point", "x y")
State = collections.namedtuple("State", "hidden cell")
Empty = collections.namedtuple("Empty", "")


class SubPoint(Point):
    """A subclass of a namedtuple is still a namedtuple node."""


Cell = KwOnly = None  # without attrs (their tests are skipped)
if attr is not None:

    @attr.s
    class Cell:
        zeta = attr.ib()
        alpha = attr.ib()

    @attr.s(kw_only=True, frozen=True)
    class KwOnly:
        b = attr.ib()
        a = attr.ib()
