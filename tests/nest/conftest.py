"""Runs every nest test against every backend.

Tests take the ``nest`` fixture (the public API as built by one backend)
instead of importing ``nestlib`` directly, so the whole suite runs once per
backend and the two are held to identical results.
"""

import pytest

from nestlib import _backend

BACKENDS = _backend.BACKENDS


@pytest.fixture(params=BACKENDS)
def nest(request):
    return _backend.api(request.param)
