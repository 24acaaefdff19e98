"""Every code example in the docs and in public docstrings runs as a doctest.

A stale example fails the test run. Public functions get their docstrings
attached at import (see nestlib/_docs.py), so they are collected from the
objects themselves rather than from the modules that define them.

The ``rnn`` packages (``rnn``, ``rnn.dnc``, ``rnn.keras``, ``rnn.examples``)
define their public objects in ordinary modules, so every module of the
package is searched for docstring examples, run with that module's globals
(as ``pytest --doctest-modules`` would).
"""

import doctest
import importlib
import importlib.util
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import nestlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _run(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing example(s) in {test.name}"


def _docstring_tests(module_name: str):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    names = getattr(module, "__all__", [])
    seen = set()
    for test in finder.find(module, module_name):
        if test.examples:
            seen.add(test.name)
            yield test
    for name in names:
        obj = getattr(module, name)
        for test in finder.find(obj, f"{module_name}.{name}", globs={}):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                yield test


DOCSTRING_TESTS = [
    t
    for m in ("nestlib", "nestlib._spec", "nestlib.testing")
    if importlib.util.find_spec(m)
    for t in _docstring_tests(m)
]


@pytest.mark.parametrize("test", DOCSTRING_TESTS, ids=lambda t: t.name)
def test_nestlib_docstrings(test):
    _run(test)


def test_every_public_nestlib_function_has_an_example():
    missing = []
    for name in nestlib.__all__:
        obj = getattr(nestlib, name)
        if callable(obj) and not doctest.DocTestFinder().find(obj, name, globs={}):
            missing.append(name)
        elif callable(obj) and not any(
            t.examples for t in doctest.DocTestFinder().find(obj, name, globs={})
        ):
            missing.append(name)
    assert not missing, f"public names without a doctest example: {missing}"


DOC_FILES = sorted((ROOT / "docs").glob("**/*.md")) + [ROOT / "README.md"]
HAVE_TF = importlib.util.find_spec("tensorflow") is not None
# An example that imports TensorFlow or rnn, and with it every later one of its file.
IMPORTS_TF = re.compile(r"^\s*(?:import\s[^\n]*\b|from\s+)(?:tensorflow|rnn)\b", re.M)


# Doc files whose examples run in a fresh interpreter, as a reader runs them, and why.
FRESH_PROCESS = {
    # TensorFlow numbers collective operations per process: a MirroredStrategy
    # made after other tests' strategies in the same pytest worker reuses their
    # instance keys and fails with "Shape mismatch in the collective instance".
    "docs/scaling_out.md": "makes a MirroredStrategy",
}
_CHILD = """
import doctest, sys
path, name = sys.argv[1], sys.argv[2]
text = open(path).read()
test = doctest.DocTestParser().get_doctest(text, {"__name__": "__main__"}, name, path, 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
runner.run(test)
sys.exit(1 if runner.summarize(verbose=False).failed else 0)
"""


def _run_in_fresh_process(path: pathlib.Path, name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"examples of {name} failed in a fresh process:\n{proc.stdout}{proc.stderr}"
    )


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_file_examples(path):
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    name = str(path.relative_to(ROOT))
    if HAVE_TF and name in FRESH_PROCESS:
        _run_in_fresh_process(path, name)
        return
    text = path.read_text()
    parser = doctest.DocTestParser()
    # A module name in the globals: tf.function/AutoGraph looks up the module of
    # functions defined in an example and fails on a namespace without one.
    globs = {"__name__": "__main__"}
    test = parser.get_doctest(text, globs, str(path.relative_to(ROOT)), str(path), 0)
    first_tf = next((i for i, e in enumerate(test.examples) if IMPORTS_TF.search(e.source)), None)
    if HAVE_TF or first_tf is None:
        _run(test)
        return
    # Without TensorFlow (nestlib's suite on the other Pythons, see the Makefile)
    # the examples before the first import of TensorFlow or rnn still run.
    skipped = len(test.examples) - first_tf
    del test.examples[first_tf:]
    _run(test)
    pytest.skip(
        f"{path.name}: ran the first {first_tf} examples; the other {skipped}, from the first "
        "import of TensorFlow or rnn on, need TensorFlow, which is not installed"
    )


# --------------------------------------------------------------------------
# rnn: docstrings of every module of the package, with the module's globals.
# --------------------------------------------------------------------------

RNN_PUBLIC_MODULES = ("rnn", "rnn.dnc", "rnn.keras")


def _rnn_module_names():
    if not HAVE_TF:
        return []
    rnn = importlib.import_module("rnn")
    names = ["rnn"]
    for info in pkgutil.walk_packages(rnn.__path__, "rnn."):
        names.append(info.name)
    return names


def _module_tests(module_name: str):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module_name) if t.examples]


RNN_DOCSTRING_TESTS = [t for m in _rnn_module_names() for t in _module_tests(m)]


@pytest.mark.skipif(not HAVE_TF, reason="rnn needs TensorFlow, which is not installed")
@pytest.mark.parametrize("test", RNN_DOCSTRING_TESTS, ids=lambda t: t.name)
def test_rnn_docstrings(test):
    _run(test)


@pytest.mark.skipif(not HAVE_TF, reason="rnn needs TensorFlow, which is not installed")
def test_rnn_docstring_examples_were_collected():
    names = {t.name for t in RNN_DOCSTRING_TESTS}
    for expected in ("rnn", "rnn.dnc", "rnn.keras", "rnn.unroll.dynamic_unroll", "rnn.cores.LSTM"):
        assert expected in names, f"no docstring examples collected for {expected}"


@pytest.mark.parametrize("module_name", RNN_PUBLIC_MODULES + ("nestlib.testing",))
def test_every_public_name_has_an_example(module_name):
    if module_name.startswith("rnn") and not HAVE_TF:
        pytest.skip("rnn needs TensorFlow, which is not installed")
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder()
    missing = []
    for name in module.__all__:
        obj = getattr(module, name)
        if not callable(obj):
            continue  # constants and submodules
        if not any(t.examples for t in finder.find(obj, name, globs={})):
            missing.append(name)
    assert not missing, f"public names of {module_name} without a doctest example: {missing}"
