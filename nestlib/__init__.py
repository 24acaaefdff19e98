"""nestlib: fast, path-aware nested-structure utilities.

dm-tree's vocabulary and semantics, tf.nest's names as well, structure
specs for hot loops, and errors that say where two structures differ.

>>> import nestlib
>>> nestlib.map_structure(lambda x: x * 2, {"a": [1, 2], "b": 3})
{'a': [2, 4], 'b': 6}
"""

from .api import (
    is_nested, flatten, unflatten_as, pack_sequence_as, map_structure,
    assert_same_structure, traverse, list_to_tuple, map_structure_with_path,
    map_structure_with_tuple_paths, map_structure_with_paths, flatten_with_path,
    flatten_with_tuple_paths, flatten_with_joined_string_paths, yield_flat_paths,
    traverse_with_path, assert_shallow_structure, flatten_up_to, flatten_with_path_up_to,
    flatten_with_tuple_paths_up_to, map_structure_up_to, map_structure_with_path_up_to,
    map_structure_with_tuple_paths_up_to, get_traverse_shallow_structure,
    flatten_dict_items, is_namedtuple, same_namedtuples, is_mapping, is_attrs,
    is_nested_or_composite, is_sequence_or_composite, spec_of, Spec, register_node,
    register_dataclass, unregister_node, backend, MAP_TO_NONE, MAX_DEPTH,
)

from .api import __all__  # noqa: E402,F401

__version__ = "0.1.0"
