"""nestlib: fast, path-aware nested-structure utilities.

dm-tree's vocabulary and semantics, tf.nest's names as well, structure
specs for hot loops, and errors that say where two structures differ.

>>> import nestlib
>>> nestlib.map_structure(lambda x: x * 2, {"a": [1, 2], "b": 3})
{'a': [2, 4], 'b': 6}
"""

from ._backend import api as _api, default_name as _default_name

_impl = _api(_default_name())

# tree operations
is_nested = _impl.is_nested
flatten = _impl.flatten
unflatten_as = _impl.unflatten_as
pack_sequence_as = _impl.pack_sequence_as
map_structure = _impl.map_structure
assert_same_structure = _impl.assert_same_structure
traverse = _impl.traverse
list_to_tuple = _impl.list_to_tuple
# paths
map_structure_with_path = _impl.map_structure_with_path
map_structure_with_tuple_paths = _impl.map_structure_with_tuple_paths
map_structure_with_paths = _impl.map_structure_with_paths
flatten_with_path = _impl.flatten_with_path
flatten_with_tuple_paths = _impl.flatten_with_tuple_paths
flatten_with_joined_string_paths = _impl.flatten_with_joined_string_paths
yield_flat_paths = _impl.yield_flat_paths
traverse_with_path = _impl.traverse_with_path
# shallow structures (up_to)
assert_shallow_structure = _impl.assert_shallow_structure
flatten_up_to = _impl.flatten_up_to
flatten_with_path_up_to = _impl.flatten_with_path_up_to
flatten_with_tuple_paths_up_to = _impl.flatten_with_tuple_paths_up_to
map_structure_up_to = _impl.map_structure_up_to
map_structure_with_path_up_to = _impl.map_structure_with_path_up_to
map_structure_with_tuple_paths_up_to = _impl.map_structure_with_tuple_paths_up_to
get_traverse_shallow_structure = _impl.get_traverse_shallow_structure
# tf.nest's predicates and helpers
flatten_dict_items = _impl.flatten_dict_items
is_namedtuple = _impl.is_namedtuple
same_namedtuples = _impl.same_namedtuples
is_mapping = _impl.is_mapping
is_attrs = _impl.is_attrs
is_nested_or_composite = _impl.is_nested_or_composite
is_sequence_or_composite = _impl.is_sequence_or_composite
# specs
spec_of = _impl.spec_of
Spec = _impl.Spec
# registry
register_node = _impl.register_node
register_dataclass = _impl.register_dataclass
unregister_node = _impl.unregister_node
backend = _impl.backend
MAP_TO_NONE = _impl.MAP_TO_NONE
MAX_DEPTH = _impl.MAX_DEPTH

__all__ = [
    "is_nested", "flatten", "unflatten_as", "pack_sequence_as", "map_structure",
    "assert_same_structure", "traverse", "list_to_tuple",
    "map_structure_with_path", "map_structure_with_tuple_paths", "map_structure_with_paths",
    "flatten_with_path", "flatten_with_tuple_paths", "flatten_with_joined_string_paths",
    "yield_flat_paths", "traverse_with_path",
    "assert_shallow_structure", "flatten_up_to", "flatten_with_path_up_to",
    "flatten_with_tuple_paths_up_to", "map_structure_up_to", "map_structure_with_path_up_to",
    "map_structure_with_tuple_paths_up_to", "get_traverse_shallow_structure",
    "flatten_dict_items", "is_namedtuple", "same_namedtuples", "is_mapping", "is_attrs",
    "is_nested_or_composite", "is_sequence_or_composite",
    "spec_of", "Spec", "register_node", "register_dataclass", "unregister_node",
    "backend", "MAP_TO_NONE", "MAX_DEPTH",
]
__version__ = "0.1.0"
