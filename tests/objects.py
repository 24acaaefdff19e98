"""Objects shared by the test modules: user-defined containers and hostile objects.

One definition each, so the nest tests, the native-backend parity tests and
the documentation checks all exercise the same behaviour.
"""

import collections.abc as cabc
import types

import numpy as np


class Seq(cabc.Sequence):
    """A user Sequence that is not a list or tuple."""

    def __init__(self, items):
        self._items = list(items)

    def __getitem__(self, i):
        return self._items[i]

    def __len__(self):
        return len(self._items)

    def __eq__(self, other):
        return type(other) is Seq and other._items == self._items

    __hash__ = None


class Map(cabc.Mapping):
    """A user Mapping that is not a dict."""

    def __init__(self, *args, **kwargs):
        self._d = dict(*args, **kwargs)

    def __getitem__(self, k):
        return self._d[k]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)


# --------------------------------------------------------------------------
# objects whose methods raise
# --------------------------------------------------------------------------


class Masked:
    """TensorFlow's nest protocol, as in its documentation (without
    ExtensionType): metadata (mask,), components (value,)."""

    def __init__(self, mask, value):
        self.mask, self.value = mask, value

    def __tf_flatten__(self):
        return (self.mask,), (self.value,)

    @classmethod
    def __tf_unflatten__(cls, metadata, components):
        return cls(metadata[0], components[0])

    def __eq__(self, other):
        return type(other) is type(self) and (self.mask, self.value) == (other.mask, other.value)

    __hash__ = None

    def __repr__(self):
        return f"Masked({self.mask!r}, {self.value!r})"


class ProtoPair:
    """TensorFlow's nest protocol: metadata "pair", components (a, b)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __tf_flatten__(self):
        return "pair", (self.a, self.b)

    @classmethod
    def __tf_unflatten__(cls, metadata, components):
        return cls(*components)


class Boom(Exception):
    pass


class BadEq:
    def __eq__(self, other):
        raise Boom("eq")

    def __ne__(self, other):
        raise Boom("ne")

    __hash__ = object.__hash__


class BadRepr:
    def __repr__(self):
        raise Boom("repr")


class BadLen(cabc.Sequence):
    """Iterable through __getitem__, but len() raises."""

    def __getitem__(self, i):
        if i < 2:
            return i
        raise IndexError(i)

    def __len__(self):
        raise Boom("len")


class BadIter(cabc.Sequence):
    def __getitem__(self, i):
        return [1, 2][i]

    def __len__(self):
        return 2

    def __iter__(self):
        raise Boom("iter")


class BadKeys(cabc.Mapping):
    def __getitem__(self, k):
        return 1

    def __iter__(self):
        raise Boom("iter")

    def __len__(self):
        return 1

    def keys(self):
        raise Boom("keys")


class BadGetItem(cabc.Mapping):
    def __getitem__(self, k):
        raise Boom("getitem")

    def __iter__(self):
        return iter(["a", "b"])

    def __len__(self):
        return 2


class BadOrder:
    def __lt__(self, other):
        raise Boom("lt")

    __gt__ = __lt__
    __hash__ = object.__hash__


def identical(a, b) -> bool:
    """Equal *and* of identical types all the way down, without recursion.

    ``==`` is not enough (a namedtuple equals a tuple, an OrderedDict equals a
    dict in any order) and itself recurses on deep input. Keys must come in the
    same order, defaultdicts have the same factory, attrs fields, views and
    NumPy arrays compare by content; anything else is the same object or ``==``.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, (list, tuple)):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif isinstance(x, (dict, types.MappingProxyType)):
            if list(x) != list(y):
                return False
            if getattr(x, "default_factory", None) is not getattr(y, "default_factory", None):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif hasattr(type(x), "__attrs_attrs__"):
            stack.extend((getattr(x, f.name), getattr(y, f.name)) for f in type(x).__attrs_attrs__)
        elif isinstance(x, cabc.MappingView):  # views only compare by identity
            stack.append((list(x), list(y)))
        elif isinstance(x, np.ndarray):
            if x is not y and not np.array_equal(x, y):
                return False
        elif x is not y and x != y:
            return False
    return True
