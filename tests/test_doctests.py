"""Every code example in the docs and in public docstrings runs as a doctest.

A stale example fails the test run. Public functions get their docstrings
attached at import (see nestlib/_docs.py), so they are collected from the
objects themselves rather than from the modules that define them.
"""

import doctest
import importlib
import importlib.util
import pathlib

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


DOCSTRING_TESTS = [t for m in ("nestlib", "nestlib._spec", "nestlib.testing")
                   if importlib.util.find_spec(m) for t in _docstring_tests(m)]


@pytest.mark.parametrize("test", DOCSTRING_TESTS, ids=lambda t: t.name)
def test_nestlib_docstrings(test):
    _run(test)


def test_every_public_nestlib_function_has_an_example():
    missing = []
    for name in nestlib.__all__:
        obj = getattr(nestlib, name)
        if callable(obj) and not doctest.DocTestFinder().find(obj, name, globs={}):
            missing.append(name)
        elif callable(obj) and not any(t.examples for t in doctest.DocTestFinder().find(obj, name, globs={})):
            missing.append(name)
    assert not missing, f"public names without a doctest example: {missing}"


DOC_FILES = sorted((ROOT / "docs").glob("**/*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_file_examples(path):
    if not path.exists():
        pytest.skip(f"{path.name} not written yet")
    text = path.read_text()
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, str(path.relative_to(ROOT)), str(path), 0)
    _run(test)
