"""The documentation site builds, with warnings as errors, and has every page.

``make docs`` runs the same Sphinx command into docs/_build/html; here the
site is built into a temporary folder, in a child process (Sphinx imports the
packages, TensorFlow included, to read their docstrings). The site uses the
Furo theme with the project's stylesheet, the DNC guide shows the main job's
figures (made by ``make figures``), and getting started gives pip commands
whose extras exist.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# The guides the documentation promises, by page (docs/<name>.md).
GUIDES = {
    "getting_started": "Getting started",
    "nest": "nestlib: nests in five minutes",
    "testing": "Fuzz-testing your structure code",
    "rnn": "rnn",
    "custom_core": "Writing your own RNN core",
    "swapping_cores": "Swapping LSTM, GRU and DNC without code changes",
    "unrolling": "Unrolling: dynamic vs static, sequence lengths, reverse, bidirectional",
    "performance": "Performance",
    "migrating": "Migrating from Keras / Sonnet",
    "scaling_out": "Scaling out",
}
API_PAGES = {
    "api/nestlib": ["nestlib.flatten", "nestlib.map_structure", "nestlib.spec_of", "nestlib.Spec"],
    "api/testing": ["nestlib.testing.structures", "nestlib.testing.structures_with_same_shape"],
    "api/rnn": [
        "rnn.RNNCore",
        "rnn.LSTM",
        "rnn.GRU",
        "rnn.DeepRNN",
        "rnn.Linear",
        "rnn.dynamic_unroll",
        "rnn.static_unroll",
        "rnn.bidirectional_unroll",
    ],
    "api/dnc": ["rnn.dnc.DNC", "rnn.dnc.DNCState"],
    "api/keras": ["rnn.keras.RNN", "rnn.keras.register_core"],
}

# The figures of the DNC guide, made by the repeat-copy job (`make figures`).
FIGURES = DOCS / "figures"
FIGURE_FILES = ("learning_curve.png", "memory.png")
MAX_FIGURE_BYTES = 200_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

missing = [m for m in ("sphinx", "myst_parser", "furo") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(missing),
    reason=f"{' and '.join(missing)} not installed (pip install -e '.[docs]' or '.[test]')",
)


def _load_conf():
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("site")
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "-q",
        "-d",
        str(out / "doctrees"),
        str(DOCS),
        str(out / "html"),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(ROOT),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    problems = [
        line
        for line in result.stderr.splitlines()
        if re.search(r"(WARNING|ERROR|CRITICAL): ", line) and "absl::" not in line
    ]
    assert result.returncode == 0 and not problems, (
        "the documentation does not build cleanly:\n"
        + "\n".join(problems or [result.stderr[-4000:]])
    )
    return out / "html"


def test_every_markdown_page_is_built(site):
    pages = [
        p.relative_to(DOCS).with_suffix("") for p in DOCS.glob("**/*.md") if "_build" not in p.parts
    ]
    assert pages
    for page in pages:
        assert (site / page.with_suffix(".html")).is_file(), f"{page}.md was not built"


def test_the_promised_guides_exist_and_are_linked_from_the_index(site):
    index = (site / "index.html").read_text()
    for page, title in GUIDES.items():
        assert (DOCS / f"{page}.md").is_file(), f"docs/{page}.md is missing"
        first_line = (DOCS / f"{page}.md").read_text().splitlines()[0]
        assert first_line.startswith("# ") and title in first_line.replace("`", ""), (
            page,
            first_line,
        )
        assert f'href="{page}.html"' in index, f"index does not link {page}"
    assert 'href="nest.html#differences-from-dm-tree"' in index


def test_api_pages_document_the_public_objects(site):
    for page, names in API_PAGES.items():
        html = (site / f"{page}.html").read_text()
        for name in names:
            assert f'id="{name}"' in html, f"{name} is not documented on {page}"


def test_api_reference_covers_every_public_nestlib_name(site):
    import nestlib

    html = (site / "api" / "nestlib.html").read_text()
    undocumented = [
        n
        for n in nestlib.__all__
        if callable(getattr(nestlib, n)) and f'id="nestlib.{n}"' not in html
    ]
    assert not undocumented, undocumented


def test_bare_doctest_sessions_render_as_code(site):
    # docs/rnn.md writes its sessions without fences; they must not become quotes.
    html = (site / "rnn.html").read_text()
    assert "<blockquote" not in html
    assert "highlight-pycon" in html


def test_fence_bare_doctests():
    fence = _load_conf().fence_bare_doctests
    text = "Text.\n>>> 1 + 1\n2\n\nMore.\n```python\n>>> x = 1\n\n```\n>>> 3"
    assert fence(text) == (
        "Text.\n```pycon\n>>> 1 + 1\n2\n```\n\nMore.\n"
        "```python\n>>> x = 1\n\n```\n```pycon\n>>> 3\n```"
    )
    assert fence("no sessions\n") == "no sessions\n"


def test_the_site_uses_furo_and_the_project_stylesheet(site):
    assert _load_conf().html_theme == "furo"
    assert (site / "_static" / "styles" / "furo.css").is_file()
    built_css = site / "_static" / "custom.css"
    assert built_css.read_text() == (DOCS / "_static" / "custom.css").read_text()
    # The stylesheet widens Furo's content column: a rule for .content with a max-width.
    assert re.search(r"\.content\s*\{[^}]*max-width", built_css.read_text())
    for page in ("index", "dnc", "performance", "api/nestlib"):
        html = (site / f"{page}.html").read_text()
        for sheet in ("_static/styles/furo.css", "_static/custom.css"):
            assert re.search(rf'<link[^>]+href="(\.\./)?{re.escape(sheet)}', html), (page, sheet)


def test_the_dnc_guide_shows_the_jobs_figures(site):
    html = (site / "dnc.html").read_text()
    for name in FIGURE_FILES:
        source = FIGURES / name
        data = source.read_bytes()
        assert data.startswith(PNG_SIGNATURE), f"docs/figures/{name} is not a PNG"
        assert len(data) < MAX_FIGURE_BYTES, f"docs/figures/{name}: {len(data)} bytes"
        assert re.search(rf'<img[^>]+src="_images/{name}"', html), f"dnc.html does not show {name}"
        built = site / "_images" / name
        assert built.is_file() and built.read_bytes() == data, f"{name} is not in the built site"
    link = re.search(r'href="(_downloads/[0-9a-f]+/metrics\.csv)"', html)
    assert link, "dnc.html does not link the figures' metrics.csv"
    assert (site / link.group(1)).read_bytes() == (FIGURES / "metrics.csv").read_bytes()


def test_the_dnc_guide_quotes_the_figures_command_and_numbers():
    # The command the guide names is the one `make figures` runs ...
    makefile = (ROOT / "Makefile").read_text()
    run_dir = re.search(r"^FIGURES_RUN := (\S+)$", makefile, re.M)
    recipe = re.search(r"^\t\$\(PY\) (-m rnn\.examples\.repeat_copy .*)$", makefile, re.M)
    assert run_dir and recipe, "the Makefile has no figures target running the job"
    command = "python " + recipe.group(1).replace("$(FIGURES_RUN)", run_dir.group(1))
    guide = (DOCS / "dnc.md").read_text()
    assert command in guide, f"docs/dnc.md does not give the command {command!r}"
    # ... and the numbers it quotes are the last row of the CSV committed beside the figures.
    with open(FIGURES / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    cost, bits = float(last["eval_cost"]), float(last["eval_bit_errors"])
    assert f"{cost:.3f} at step {last['step']}" in guide, (cost, last["step"])
    assert f"end at {bits:.3f} per sequence" in guide, bits


def test_getting_started_gives_pip_commands_with_existing_extras(site):
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(d.startswith("furo") for d in extras["docs"]), "the docs extra lacks the theme"
    assert any(d.startswith("furo") for d in extras["test"]), "the test extra lacks the theme"
    text = (DOCS / "getting_started.md").read_text()
    for command in ("pip install .", "pip install '.[tf]'", "pip install -e '.[test]'"):
        assert f"\n{command} " in text, f"getting_started.md lacks {command!r}"
    for extra in re.findall(r"pip install (?:-e )?'\.\[([\w,]+)\]'", text):
        for name in extra.split(","):
            assert name in extras, f"getting_started.md names a missing extra {name!r}"
    assert 'id="installing-with-pip"' in (site / "getting_started.html").read_text()
