"""Sphinx configuration for the nestlib + rnn documentation site.

Build with ``make docs`` (warnings are errors), or directly::

    python -m sphinx -b html -W --keep-going docs docs/_build/html

The guides are Markdown (MyST); the API reference pages in ``api/`` pull the
docstrings in with autodoc, so importing the packages (TensorFlow included)
is part of the build.
"""

from __future__ import annotations

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

project = "nestlib + rnn"
author = "the nestlib authors"
copyright = "the nestlib authors, Apache-2.0"
import nestlib  # noqa: E402  (after the sys.path line above)

release = version = nestlib.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: `{directive}` fences, heading anchors for `page.md#section` links.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: docstrings are Google style ("Args:", "Raises:") with
# doctest examples; signatures keep their type hints.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# The "on this page" list names methods without their class (`initial_state()`
# under `RNNCore`), so that it stays narrow.
toc_object_entries_show_parents = "hide"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Code blocks are Python sessions (`>>>`); the test run executes them. Their
# colours are Furo's (light and dark).
highlight_language = "python3"


def fence_bare_doctests(text: str) -> str:
    """Wraps bare ``>>>`` sessions of a Markdown page in ```pycon fences.

    Some guides write their doctests as plain paragraphs (the test run finds
    them either way). In Markdown, ``>`` starts a block quote, so unfenced
    they would render as nested quotes. A session runs from a line starting
    with ``>>>`` to the next blank line, like a reStructuredText doctest block;
    text inside existing fences is left alone.
    """
    out: list[str] = []
    fence: str | None = None
    in_session = False
    for line in text.split("\n"):
        stripped = line.lstrip()
        if in_session and not stripped:
            out.append("```")
            in_session = False
        elif fence is None and not in_session and stripped.startswith(">>>"):
            out.append("```pycon")
            in_session = True
        elif fence is None and not in_session and stripped[:3] in ("```", "~~~"):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        out.append(line)
    if in_session:
        out.append("```")
    return "\n".join(out)


def _fence_source(app, docname: str, source: list[str]) -> None:
    if app.env.doc2path(docname).suffix == ".md":
        source[0] = fence_bare_doctests(source[0])


def setup(app):
    app.connect("source-read", _fence_source)
    return {"parallel_read_safe": True}


# Furo: navigation on the left, "on this page" on the right, light and dark
# modes. _static/custom.css widens its content column so that the benchmark
# tables and code examples fit without scrolling sideways on a desktop.
html_theme = "furo"
html_title = "nestlib + rnn"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
