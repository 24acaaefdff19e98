"""nestlib: fast, path-aware nested-structure utilities.

dm-tree's vocabulary and semantics, tf.nest's names as well, structure
specs for hot loops, and errors that say where two structures differ.

>>> import nestlib
>>> nestlib.map_structure(lambda x: x * 2, {"a": [1, 2], "b": 3})
{'a': [2, 4], 'b': 6}
"""

from .api import (
    MAP_TO_NONE,
    MAX_DEPTH,
    Spec,
    assert_same_structure,
    assert_shallow_structure,
    backend,
    flatten,
    flatten_dict_items,
    flatten_up_to,
    flatten_with_joined_string_paths,
    flatten_with_path,
    flatten_with_path_up_to,
    flatten_with_tuple_paths,
    flatten_with_tuple_paths_up_to,
    format_path,
    get_traverse_shallow_structure,
    is_attrs,
    is_mapping,
    is_namedtuple,
    is_nested,
    is_nested_or_composite,
    is_sequence_or_composite,
    list_to_tuple,
    map_structure,
    map_structure_up_to,
    map_structure_with_path,
    map_structure_with_path_up_to,
    map_structure_with_paths,
    map_structure_with_tuple_paths,
    map_structure_with_tuple_paths_up_to,
    pack_sequence_as,
    register_dataclass,
    register_node,
    same_namedtuples,
    spec_of,
    traverse,
    traverse_with_path,
    unflatten_as,
    unregister_node,
    yield_flat_paths,
)
from .api import __all__ as __all__  # the names above (explicitly re-exported)

__version__ = "0.1.0"
