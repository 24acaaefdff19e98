"""rnn.keras, the package: its public names, its import, its docstring examples."""

import doctest
import importlib
import subprocess
import sys

import rnn.keras as rk


def test_importing_rnn_does_not_import_rnn_keras():
    code = "import sys, rnn; assert 'rnn.keras' not in sys.modules, 'imported'"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


MODULES = ("rnn.keras", "rnn.keras.layer", "rnn.keras.serialization", "rnn.keras.variables")


def test_public_names_are_todays_and_come_from_the_modules():
    assert rk.__all__ == ["RNN", "register_core", "serialize_core", "deserialize_core"]
    assert rk.RNN is importlib.import_module("rnn.keras.layer").RNN
    serialization = importlib.import_module("rnn.keras.serialization")
    for name in ("register_core", "serialize_core", "deserialize_core"):
        assert getattr(rk, name) is getattr(serialization, name)


def test_module_docstring_examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [
        t
        for name in MODULES
        for t in finder.find(importlib.import_module(name), name)
        if t.examples
    ]
    names = {t.name for t in tests}
    assert "rnn.keras" in names, "the package docstring has no example"
    for public in rk.__all__:
        where = getattr(rk, public).__module__
        assert f"{where}.{public}" in names, f"{public} has no example"
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
