"""dm-tree's own test suite, run against nestlib (both backends).

The dm-tree wheel ships its tests as ``tree/tree_test.py``. We read that file
from the installed package (it is not copied into this repository) and
execute it into a fresh module in which ``import tree`` yields a shim: a
module exposing one nestlib backend's public API. Every unittest case in it
then becomes one pytest case per backend.

Cases are skipped only for the reasons listed in ``SKIPS`` below: the case
reads dm-tree's private names, pins dm-tree's exact error wording, or checks
a behaviour where nestlib differs from dm-tree on purpose (see
docs/ and the README's comparison). Everything else must pass.

The cases skipped for wording or for private message constants are run a
second time in *class-only* mode (``test_dm_tree_case_class_only``): the
shim also carries dm-tree's private message constants (used by the tests
only to build the text they expect) and ``_assert_shallow_structure`` (as
nestlib's public ``assert_shallow_structure``), and ``assertRaisesRegex`` /
``assertRaisesWithLiteralMatch`` check only the exception class. So the rest
of those cases (results, and which exception class is raised) still has to
match dm-tree.
"""

from __future__ import annotations

import doctest
import importlib.util
import pathlib
import re
import sys
import threading
import types
import unittest

import pytest

pytest.importorskip("absl.testing.parameterized")
pytest.importorskip("attr")
pytest.importorskip("wrapt")
real_tree = pytest.importorskip("tree")

from nestlib import _backend  # noqa: E402

_spec = importlib.util.find_spec("tree")
TEST_FILE = pathlib.Path(_spec.origin).parent / "tree_test.py" if _spec and _spec.origin else None
if TEST_FILE is None or not TEST_FILE.exists():  # pragma: no cover - wheel without tests
    pytest.skip("the installed dm-tree does not ship tree/tree_test.py", allow_module_level=True)

PRIVATE = "reads private dm-tree names"
WORDING = "pins dm-tree's exact error wording"

#: Every skipped case, with a one-line reason. Keys are ``Class.method``.
SKIPS: dict[str, str] = {
    # -- private names ----------------------------------------------------------
    "NestTest.testAttrsFlattenAndUnflatten": f"{PRIVATE} (tree._is_attrs); its BadAttr (a class whose __attrs_attrs__ is None) "
    "is a leaf in nestlib, dm-tree fails with 'object is not iterable'",
    "NestTest.testAssertShallowStructure": f"{PRIVATE} (tree._assert_shallow_structure and its message constants)",
    "NestTest.testFlattenUpTo": f"{PRIVATE} (message constant tree._IF_SHALLOW_IS_SEQ_INPUT_MUST_BE_SEQ, literal match)",
    "NestTest.testFlattenWithPathUpTo": f"{PRIVATE} (message constant tree._IF_SHALLOW_IS_SEQ_INPUT_MUST_BE_SEQ_WITH_PATH)",
    # -- error wording ----------------------------------------------------------
    "DoctestTest.testDoctest": f"{WORDING}: dm-tree's docstring examples print its TypeError text "
    "('The two structures don't have the same nested structure.')",
    "NestTest.testFlattenAndUnflatten": f"{WORDING} ('Structure is a scalar')",
    "NestTest.testUnflattenSequenceAs_wrongLengthsError": f"{WORDING} ('Structure had 2 elements, but flat_sequence had 3 elements.')",
    "NestTest.testAssertSameStructure_differentNumElements": f"{WORDING} (dm-tree's multi-line 'More specifically: Substructure ...' text)",
    "NestTest.testAssertSameStructure_listVsNdArray": f"{WORDING} ('More specifically: ...')",
    "NestTest.testAssertSameStructure_intVsList": f"{WORDING} ('More specifically: ...')",
    "NestTest.testAssertSameStructure_differentNesting": f'{WORDING} ("don\'t have the same nested structure")',
    "NestTest.testAssertSameStructure_sameNamedTupleDifferentStructuredContents": f'{WORDING} ("don\'t have the same nested structure")',
    "NestTest.testAssertSameStructure_differentlyNestedLists": f'{WORDING} ("don\'t have the same nested structure")',
    "NestTest.testAssertSameStructure_listStructureWithAndWithoutTypes": f'{WORDING} ("don\'t have the same sequence type")',
    "NestTest.testAssertSameStructure_dictionaryDifferentKeys": f'{WORDING} ("don\'t have the same set of keys")',
    "NestTest.testAssertSameStructure_sameNameNamedTuplesDifferentStructure": f'{WORDING} ("The two structures don\'t have the same")',
    "NestTest.testMapStructure": f"{WORDING} ('same number of elements', 'same nested structure', 'same sequence "
    "type', 'Only valid keyword argument')",
}

#: Cases re-run with exception classes checked but not wording. Those
#: skipped for other reasons (a private predicate, a semantic difference)
#: are not.
CLASS_ONLY: tuple[str, ...] = tuple(
    name
    for name, reason in SKIPS.items()
    if reason.startswith(WORDING) or (reason.startswith(PRIVATE) and "constant" in reason)
)

#: In class-only mode, expected errors that nestlib raises with another class
#: on purpose: dm-tree's pinned pattern -> (nestlib's class, nestlib's pattern).
#: (Empty since nestlib's map functions raise dm-tree's and tf.nest's ValueError
#: for an unknown keyword.)
CLASS_ONLY_SUBSTITUTES: dict[str, tuple[type, str]] = {}


def _shim(name: str, class_only: bool) -> types.ModuleType:
    """A stand-in for the ``tree`` module backed by nestlib backend ``name``."""
    api = _backend.api(name)
    shim = types.ModuleType("tree")
    shim.__dict__.update(vars(api))
    # dm-tree's doctests (its DoctestTest runs them on ``tree``): the examples
    # of dm-tree's public functions, run against the shim. (Found by a prompt
    # at any indentation: Python 3.13 strips docstrings' common indentation.)
    shim.__test__ = {
        fn: getattr(real_tree, fn).__doc__
        for fn in vars(api)
        if not fn.startswith("_")
        and callable(getattr(real_tree, fn, None))
        and re.search(r"^[ \t]*>>> ", getattr(real_tree, fn).__doc__ or "", re.M)
    }
    if class_only:
        for const in dir(real_tree):
            if re.fullmatch(r"_[A-Z_]+", const) and isinstance(getattr(real_tree, const), str):
                setattr(shim, const, getattr(real_tree, const))

        def _assert_shallow_structure(shallow_tree, input_tree, check_types=True):
            api.assert_shallow_structure(shallow_tree, input_tree, check_types=check_types)

        shim._assert_shallow_structure = _assert_shallow_structure
    return shim


def _class_only_doctest() -> types.SimpleNamespace:
    """The ``doctest`` module as the test file sees it, ignoring error text."""

    def testmod(module, **kwargs):
        kwargs["optionflags"] = kwargs.get("optionflags", 0) | doctest.IGNORE_EXCEPTION_DETAIL
        return doctest.testmod(module, **kwargs)

    return types.SimpleNamespace(**{**vars(doctest), "testmod": testmod})


def _class_only_asserts(case_cls: type) -> None:
    def assertRaisesRegex(self, expected, regex, *args, **kwargs):
        sub = CLASS_ONLY_SUBSTITUTES.get(getattr(regex, "pattern", regex))
        if sub is not None:
            return unittest.TestCase.assertRaisesRegex(self, sub[0], sub[1], *args, **kwargs)
        return self.assertRaises(expected, *args, **kwargs)

    def assertRaisesWithLiteralMatch(self, expected, _message, *args, **kwargs):
        return self.assertRaises(expected, *args, **kwargs)

    case_cls.assertRaisesRegex = assertRaisesRegex
    case_cls.assertRaisesWithLiteralMatch = assertRaisesWithLiteralMatch


_modules: dict[tuple[str, bool], dict[str, unittest.TestCase]] = {}
_load_lock = threading.Lock()


def _cases(name: str, class_only: bool = False) -> dict[str, unittest.TestCase]:
    """``Class.method`` -> test case, from tree_test.py executed against ``name``."""
    key = (name, class_only)
    with _load_lock:
        if key not in _modules:
            shim = _shim(name, class_only)
            module = types.ModuleType(f"tree_test_on_nestlib_{name.replace('-', '_')}")
            module.__file__ = str(TEST_FILE)
            code = compile(TEST_FILE.read_text(), str(TEST_FILE), "exec")
            saved = sys.modules.get("tree")
            sys.modules["tree"] = shim
            try:
                exec(code, module.__dict__)
            finally:
                if saved is None:
                    sys.modules.pop("tree", None)
                else:
                    sys.modules["tree"] = saved
            if class_only:
                module.doctest = _class_only_doctest()
            cases: dict[str, unittest.TestCase] = {}
            for value in list(vars(module).values()):
                if (
                    isinstance(value, type)
                    and issubclass(value, unittest.TestCase)
                    and value.__module__ == module.__name__
                ):
                    if class_only:
                        _class_only_asserts(value)
                    for case in unittest.defaultTestLoader.loadTestsFromTestCase(value):
                        cases[f"{type(case).__name__}.{case._testMethodName}"] = case
            _modules[key] = cases
        return _modules[key]


def _run(case: unittest.TestCase) -> None:
    result = unittest.TestResult()
    case.run(result)
    problems = result.errors + result.failures
    if problems:
        pytest.fail("\n".join(text for _, text in problems), pytrace=False)
    if result.skipped:
        pytest.skip(result.skipped[0][1])
    assert result.testsRun == 1


CASE_NAMES = sorted(_cases("python"))


@pytest.mark.parametrize("case_name", CASE_NAMES)
@pytest.mark.parametrize("backend", _backend.BACKENDS)
def test_dm_tree_case(backend, case_name):
    if case_name in SKIPS:
        pytest.skip(SKIPS[case_name])
    _run(_cases(backend)[case_name])


@pytest.mark.parametrize("case_name", CLASS_ONLY)
@pytest.mark.parametrize("backend", _backend.BACKENDS)
def test_dm_tree_case_class_only(backend, case_name):
    _run(_cases(backend, class_only=True)[case_name])


def test_suite_was_found_and_skips_are_current():
    # A loader that silently found nothing would make every case above vacuous.
    assert len(CASE_NAMES) >= 60, CASE_NAMES
    assert {"NestTest.testMapStructure", "DoctestTest.testDoctest"} <= set(CASE_NAMES)
    stale = sorted(set(SKIPS) - set(CASE_NAMES))
    assert not stale, f"SKIPS names cases that tree_test.py no longer has: {stale}"
    assert all(reason.strip() for reason in SKIPS.values())
    # The class-only doctest really runs dm-tree's examples against nestlib.
    assert _shim("python", False).__test__


def test_skipped_cases_fail_against_nestlib_for_the_stated_reason():
    """Each skip is needed: the case fails unmodified (so no skip hides a pass)."""
    cases = _cases("python")
    for name in SKIPS:
        result = unittest.TestResult()
        cases[name].run(result)
        assert result.errors or result.failures, f"{name} passes; remove it from SKIPS"
