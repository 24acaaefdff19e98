"""Runs every nest test against every backend.

Tests take the ``nest`` fixture (the public API as built by one backend)
instead of importing ``nestlib`` directly, so the whole suite runs once per
backend (native, dm-tree, python) and all are held to identical results.
"""

import os

import pytest

from nestlib import _backend

try:
    from hypothesis import settings
except ImportError:  # the property tests skip themselves
    pass
else:
    # CI (.ci/run) replays the same examples on every run, so that a red CI
    # means a change broke something; local runs draw new examples each time
    # and keep exploring (a failure prints the example to pin as a test).
    settings.register_profile("ci", derandomize=True)
    settings.load_profile(os.environ.get("NESTLIB_HYPOTHESIS_PROFILE", "default"))

BACKENDS = _backend.BACKENDS


@pytest.fixture(params=BACKENDS)
def nest(request):
    try:
        return _backend.api(request.param)
    except ImportError as e:
        if request.param != "native":
            raise
        # tests/nestlib/test_native.py fails instead where a compiler could have built it
        pytest.skip(f"nestlib's compiled core is not built here: {e}")
