"""Objects shared by the test modules: user-defined containers and hostile objects.

One definition each, so the nest tests, the native-backend parity tests and
the documentation checks all exercise the same behaviour.
"""

import collections.abc as cabc


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
