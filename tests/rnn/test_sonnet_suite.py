"""Sonnet 2's own recurrent test suite, run against rnn (issue 16).

The dm-sonnet wheel ships its tests; ``sonnet/src/recurrent_test.py`` holds
those of VanillaRNN, LSTM, GRU, DeepRNN, the skip / residual stacks,
TrainableState and both unrollers. We read that file from the installed
package (it is not copied into this repository) and execute it into a fresh
module with one line changed: ``from sonnet.src import recurrent`` becomes
``recurrent = <SHIM>``, a module that maps Sonnet's names onto rnn's
(``recurrent.LSTM`` -> ``rnn.LSTM``, ``recurrent.dynamic_unroll`` ->
``rnn.dynamic_unroll``, ``recurrent.RNNCore`` -> ``rnn.RNNCore``, ...).
Every unittest case in it then becomes one pytest case.

The shim bridges the documented differences it can bridge honestly (see
docs/migrating.md, "Known differences"); the cores themselves are rnn's:

* variable names: Sonnet's NumPy references read ``core.input_to_hidden``,
  ``core.hidden_to_hidden`` and ``core.b`` (``core._b`` in VanillaRNN); the
  shim's VanillaRNN and LSTM are rnn's classes with those names added as
  read-only aliases of ``kernel``, ``recurrent_kernel`` and ``bias`` (same
  layouts, same gate orders);
* the GRU update gate (Sonnet ``h' = (1 - z) h + z a``, rnn ``z h +
  (1 - z) a``): the shim's GRU is an ``rnn.GRU`` whose Sonnet-named
  attributes are the weights ``rnn.convert.to_sonnet`` gives, so Sonnet's
  NumPy reference checks that our GRU computes what the Sonnet GRU with the
  converted weights computes;
* ``forget_bias`` folded into the initial bias: nothing to bridge, Sonnet
  does the same when it builds (its reference reads ``b``);
* outputs past an example's length (Sonnet repeats the last valid one, rnn
  writes zeros by default): the shim's unrollers are rnn's with
  ``past_length="repeat_last"``, the documented option for Sonnet's behaviour.

What cannot be bridged is an expected failure (``xfail(strict=True,
raises=AssertionError)``, so it must keep failing, and by an assertion), with
its reason in ``XFAILS``: either a documented difference, or ``gap: ...`` for
a difference rnn does not document. Sonnet's ``assertRaisesRegex`` checks
run as written: rnn raises the same exception classes, and its messages
contain Sonnet's wording (``inputs must have dtype tf.bfloat16, got
tf.float32``, ``must have at least a single time step``, ...) next to rnn's
own details (the argument's path, expected and found). Test classes of Sonnet
cores rnn has no counterpart of are skipped, each with its reason
(``NO_COUNTERPART``); nothing else is left out.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import re
import sys
import types
import unittest

import pytest

pytest.importorskip("sonnet")
pytest.importorskip("tree")
pytest.importorskip("absl.testing.parameterized")

import tensorflow as tf

import rnn

_spec = importlib.util.find_spec("sonnet.src.recurrent_test")
TEST_FILE = pathlib.Path(_spec.origin) if _spec is not None and _spec.origin else None
if TEST_FILE is None or not TEST_FILE.exists():  # pragma: no cover - wheel without tests
    pytest.skip(
        "the installed Sonnet does not ship sonnet/src/recurrent_test.py",
        allow_module_level=True,
    )
IMPORT_LINE = "from sonnet.src import recurrent\n"

# --------------------------------------------------------------------------
# The shim: Sonnet's ``recurrent`` module as rnn.
# --------------------------------------------------------------------------


class VanillaRNN(rnn.VanillaRNN):
    """``rnn.VanillaRNN`` with Sonnet's variable names as aliases (reads only)."""

    @property
    def input_to_hidden(self) -> tf.Variable:
        return self.kernel

    @property
    def hidden_to_hidden(self) -> tf.Variable:
        return self.recurrent_kernel

    @property
    def _b(self) -> tf.Variable:
        return self.bias


class LSTM(rnn.LSTM):
    """``rnn.LSTM`` with Sonnet's variable names as aliases (reads only).

    ``projection`` has the same name in both.
    """

    @property
    def input_to_hidden(self) -> tf.Variable:
        return self.kernel

    @property
    def hidden_to_hidden(self) -> tf.Variable:
        return self.recurrent_kernel

    @property
    def b(self) -> tf.Variable:
        return self.bias


class GRU(rnn.GRU):
    """``rnn.GRU`` whose Sonnet-named weights are ``rnn.convert.to_sonnet`` 's.

    Steps, initial states and variables are ``rnn.GRU`` 's.
    ``input_to_hidden``, ``hidden_to_hidden`` and ``b`` are the weights of
    the Sonnet GRU that ``rnn.convert.to_sonnet`` makes from it (the update
    gate's columns negated), so Sonnet's reference, written with Sonnet's
    update-gate convention, applies to our GRU. (``rnn.convert`` takes a
    subclass of one of our cores as that core:
    ``test_convert_takes_subclasses``.)
    """

    @property
    def input_to_hidden(self) -> tf.Variable:
        return rnn.convert.to_sonnet(self).input_to_hidden

    @property
    def hidden_to_hidden(self) -> tf.Variable:
        return rnn.convert.to_sonnet(self).hidden_to_hidden

    @property
    def b(self) -> tf.Variable:
        return rnn.convert.to_sonnet(self).b


class _NoCounterpart:
    """Stands for a Sonnet core rnn does not have (its tests are skipped)."""

    def __init__(self, name: str):
        self.__name__ = name

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"rnn has no counterpart of Sonnet's {self.__name__}")


def _shim() -> types.ModuleType:
    shim = types.ModuleType("rnn_as_sonnet_recurrent")
    shim.RNNCore = rnn.RNNCore
    shim.TrainableState = rnn.TrainableState
    shim.VanillaRNN = VanillaRNN
    shim.LSTM = LSTM
    shim.LSTMState = rnn.LSTMState
    shim.GRU = GRU
    shim.lstm_with_recurrent_dropout = rnn.lstm_with_recurrent_dropout
    shim.DeepRNN = rnn.DeepRNN
    shim.deep_rnn_with_skip_connections = rnn.deep_rnn_with_skip_connections
    shim.deep_rnn_with_residual_connections = rnn.deep_rnn_with_residual_connections
    # Sonnet repeats the last valid output past an example's length where rnn
    # writes zeros (docs/migrating.md); past_length="repeat_last" is the
    # documented option that gives Sonnet's behaviour, so Sonnet's unrollers
    # are ours with it (test_unroll_resets.py checks the default's zeros).
    shim.static_unroll = functools.partial(rnn.static_unroll, past_length="repeat_last")
    shim.dynamic_unroll = functools.partial(rnn.dynamic_unroll, past_length="repeat_last")
    # Named at class-definition time by the test classes skipped below.
    for name in ("UnrolledLSTM", "Conv1DLSTM", "Conv2DLSTM", "Conv3DLSTM", "CuDNNGRU"):
        setattr(shim, name, _NoCounterpart(name))
    return shim


# --------------------------------------------------------------------------
# What is not expected to pass, and why.
# --------------------------------------------------------------------------

#: Sonnet test classes of cores rnn does not have: skipped, with the reason.
NO_COUNTERPART: dict[str, str] = {
    "UnrolledLSTMTest": "rnn has no UnrolledLSTM module: a plain rnn.LSTM runs whole "
    "sequences through its whole-sequence op (rnn.ops.lstm.lstm_sequence) inside "
    "rnn.dynamic_unroll / static_unroll",
    "ConvNDLSTMTest": "rnn has no convolutional LSTMs (Conv1DLSTM, Conv2DLSTM, Conv3DLSTM)",
    "CuDNNGRUTest": "rnn has no CuDNNGRU module (rnn.GRU(reset_after=True) computes "
    "the cuDNN form of the GRU, through rnn's own whole-sequence op)",
}

#: Expected failures. Keys are ``Class.method`` without absl's parameter
#: index (``UnrollTest.testVariableLengthRange`` covers its parameters 0 .. 3).
XFAILS: dict[str, str] = {}

# --------------------------------------------------------------------------
# Loading and running Sonnet's cases.
# --------------------------------------------------------------------------

_modules: dict[str, dict[str, unittest.TestCase]] = {}


def _cases() -> dict[str, unittest.TestCase]:
    """``Class.method`` -> test case, from recurrent_test.py executed against rnn."""
    if "cases" not in _modules:
        source = TEST_FILE.read_text()
        assert source.count(IMPORT_LINE) == 1, f"{TEST_FILE} no longer has {IMPORT_LINE!r}"
        # One line for one line, so tracebacks point at the right lines of TEST_FILE.
        source = source.replace(IMPORT_LINE, "recurrent = __rnn_shim__\n")
        module = types.ModuleType("sonnet_recurrent_test_on_rnn")
        module.__file__ = str(TEST_FILE)
        module.__rnn_shim__ = _shim()
        sys.modules[module.__name__] = module
        exec(compile(source, str(TEST_FILE), "exec"), module.__dict__)
        cases: dict[str, unittest.TestCase] = {}
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, unittest.TestCase)
                and value.__module__ == module.__name__
            ):
                for name in unittest.defaultTestLoader.getTestCaseNames(value):
                    if name == "test_session":  # tf.test.TestCase's, not a test
                        continue
                    cases[f"{value.__name__}.{name}"] = value(name)
        _modules["cases"] = cases
    return _modules["cases"]


def _base(case_name: str) -> str:
    """``UnrollTest.testFlat3`` -> ``UnrollTest.testFlat`` (absl's parameter index)."""
    return re.sub(r"\d+$", "", case_name)


def _run(case: unittest.TestCase) -> None:
    # Sonnet's TestCase.setUp sets this for good; keep it to the case.
    saved = os.environ.get("AUTOGRAPH_STRICT_CONVERSION")
    result = unittest.TestResult()
    try:
        case.run(result)
    finally:
        if saved is None:
            os.environ.pop("AUTOGRAPH_STRICT_CONVERSION", None)
        else:
            os.environ["AUTOGRAPH_STRICT_CONVERSION"] = saved
    for _, text in result.errors:
        pytest.fail(text, pytrace=False)
    for _, text in result.failures:
        raise AssertionError(text)
    if result.skipped:
        pytest.skip(f"skipped by Sonnet's suite: {result.skipped[0][1]}")
    assert result.testsRun == 1


def _params() -> list:
    params = []
    for name in sorted(_cases()):
        cls = name.split(".")[0]
        marks = []
        if cls in NO_COUNTERPART:
            marks.append(pytest.mark.skip(reason=NO_COUNTERPART[cls]))
        elif _base(name) in XFAILS:
            marks.append(
                pytest.mark.xfail(strict=True, raises=AssertionError, reason=XFAILS[_base(name)])
            )
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("case_name", _params())
def test_sonnet_case(case_name):
    _run(_cases()[case_name])


def test_tables_name_existing_cases():
    """Every entry of XFAILS and NO_COUNTERPART names something in Sonnet's file."""
    names = set(_cases())
    bases = {_base(n) for n in names}
    classes = {n.split(".")[0] for n in names}
    assert set(XFAILS) <= bases, sorted(set(XFAILS) - bases)
    assert set(NO_COUNTERPART) <= classes, sorted(set(NO_COUNTERPART) - classes)


# --------------------------------------------------------------------------
# Found while building the shim (not Sonnet cases).
# --------------------------------------------------------------------------


def test_convert_takes_subclasses():
    """A subclass of rnn.GRU / LSTM / VanillaRNN converts as the core it extends
    (it was a KeyError: rnn.convert read the kind as type(core))."""

    import sonnet as snt

    class MyGRU(rnn.GRU):
        pass

    core = MyGRU(3)
    x = tf.random.normal([4, 2, 2])
    ours, _ = rnn.dynamic_unroll(core, x, core.initial_state(2))
    theirs = rnn.convert.to_sonnet(core)
    assert type(theirs).__name__ == "GRU"
    snt_out, _ = snt.dynamic_unroll(theirs, x, theirs.initial_state(2))
    tf.debugging.assert_near(snt_out, ours, atol=1e-5)
    assert type(rnn.convert.to_keras(core)).__name__ == "GRU"
    # The shim's GRU is such a subclass.
    assert isinstance(GRU(3), rnn.GRU)
