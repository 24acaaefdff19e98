"""nestlib's public surface: every name on every backend, documented, typed,
with dm-tree's parameters.

Every test takes the ``nest`` fixture (conftest.py), so it runs once per
backend (formerly tests/nest/test_api.py, split by API family).
"""

from __future__ import annotations

import inspect

import pytest

import nestlib
from nestlib import _backend

# --------------------------------------------------------------------------
# the public surface
# --------------------------------------------------------------------------


def test_all_names_exist_and_backends_expose_the_same_names(nest):
    for name in nestlib.__all__:
        assert hasattr(nestlib, name), name
        assert hasattr(nest, name), name
    assert nest.backend() in _backend.BACKENDS
    assert nest.MAX_DEPTH == 1000
    assert nestlib.backend() in _backend.BACKENDS


@pytest.mark.parametrize("name", [n for n in nestlib.__all__ if callable(getattr(nestlib, n))])
def test_public_callables_have_doctest_examples(name):
    doc = getattr(nestlib, name).__doc__ or ""
    assert ">>>" in doc, f"nestlib.{name} has no example in its docstring"


def _missing_hints():
    missing = []
    for name in nestlib.__all__:
        fn = getattr(nestlib, name)
        if not inspect.isfunction(fn):
            continue
        sig = inspect.signature(fn)
        if sig.return_annotation is inspect.Signature.empty or any(
            p.annotation is inspect.Parameter.empty for p in sig.parameters.values()
        ):
            missing.append(name)
    return missing


def test_public_functions_have_type_hints():
    assert not _missing_hints()


# dm-tree's (and, for its own names, tf.nest's) parameter names, so that keyword
# calls written for them keep working.
SIGNATURES = {
    "flatten": ["structure"],
    "unflatten_as": ["structure", "flat_sequence"],
    "pack_sequence_as": ["structure", "flat_sequence"],
    "assert_same_structure": ["a", "b", "check_types"],
    "flatten_up_to": ["shallow_structure", "input_structure", "check_types"],
    "flatten_with_path_up_to": ["shallow_structure", "input_structure", "check_types"],
    "map_structure_up_to": ["shallow_structure", "func", "structures"],
    "map_structure_with_path_up_to": ["shallow_structure", "func", "structures"],
    "assert_shallow_structure": ["shallow_tree", "input_tree", "check_types"],
    "traverse": ["fn", "structure", "top_down"],
    "traverse_with_path": ["fn", "structure", "top_down"],
    "flatten_with_joined_string_paths": ["structure", "separator"],
    "map_structure": ["func", "structures", "check_types"],
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_parameter_names_match_dm_tree(nest, name):
    params = list(inspect.signature(getattr(nest, name)).parameters)
    assert params[: len(SIGNATURES[name])] == SIGNATURES[name]


def test_keyword_calls_written_for_dm_tree_work(nest):
    assert nest.flatten_up_to(shallow_structure=[0, 0], input_structure=[[1], 2]) == [[1], 2]
    assert nest.flatten_with_path_up_to(shallow_structure=(0,), input_structure=((1, 2),)) == [
        ((0,), (1, 2))
    ]
    assert nest.map_structure_with_path_up_to([0], lambda p, x: (p, x), [7]) == [((0,), 7)]
    nest.assert_shallow_structure(shallow_tree=[0], input_tree=[[1]])
    nest.assert_same_structure(a=[1], b=[2], check_types=True)
    assert nest.unflatten_as(structure=[0], flat_sequence=[5]) == [5]
