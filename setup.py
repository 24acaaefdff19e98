"""Builds nestlib's compiled core; all other metadata lives in pyproject.toml.

The extension is optional: where no C compiler or Python headers are
available the build skips it and nestlib runs on its dm-tree or pure-Python
backend (``nestlib.backend()`` says which; a test fails when a compiler is
present but the extension is missing).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("nestlib._cnest", ["nestlib/_cnest.c"], optional=True)])
