"""nestlib: fast, path-aware nested-structure utilities.

dm-tree's vocabulary and semantics, tf.nest's names as well, structure
specs for hot loops, and errors that say where two structures differ.

>>> import nestlib
>>> nestlib.map_structure(lambda x: x * 2, {"a": [1, 2], "b": 3})
{'a': [2, 4], 'b': 6}
"""

from ._backend import api as _api, default_name as _default_name

_impl = _api(_default_name())

is_nested = _impl.is_nested
flatten = _impl.flatten
unflatten_as = _impl.unflatten_as
pack_sequence_as = _impl.pack_sequence_as
map_structure = _impl.map_structure
map_structure_with_path = _impl.map_structure_with_path
map_structure_with_tuple_paths = _impl.map_structure_with_tuple_paths
map_structure_with_paths = _impl.map_structure_with_paths
flatten_with_path = _impl.flatten_with_path
flatten_with_tuple_paths = _impl.flatten_with_tuple_paths
flatten_with_joined_string_paths = _impl.flatten_with_joined_string_paths
yield_flat_paths = _impl.yield_flat_paths
assert_same_structure = _impl.assert_same_structure
assert_shallow_structure = _impl.assert_shallow_structure
flatten_up_to = _impl.flatten_up_to
flatten_with_path_up_to = _impl.flatten_with_path_up_to
map_structure_up_to = _impl.map_structure_up_to
map_structure_with_path_up_to = _impl.map_structure_with_path_up_to
traverse = _impl.traverse
traverse_with_path = _impl.traverse_with_path
list_to_tuple = _impl.list_to_tuple
spec_of = _impl.spec_of
Spec = _impl.Spec
backend = _impl.backend
MAP_TO_NONE = _impl.MAP_TO_NONE
MAX_DEPTH = _impl.MAX_DEPTH

__all__ = [
    "is_nested", "flatten", "unflatten_as", "pack_sequence_as", "map_structure",
    "map_structure_with_path", "map_structure_with_tuple_paths", "map_structure_with_paths",
    "flatten_with_path", "flatten_with_tuple_paths", "flatten_with_joined_string_paths",
    "yield_flat_paths", "assert_same_structure", "assert_shallow_structure",
    "flatten_up_to", "flatten_with_path_up_to", "map_structure_up_to",
    "map_structure_with_path_up_to", "traverse", "traverse_with_path", "list_to_tuple",
    "spec_of", "Spec", "backend", "MAP_TO_NONE", "MAX_DEPTH",
]
__version__ = "0.1.0"
