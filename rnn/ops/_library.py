"""Loading rnn's compiled kernel libraries lazily, and saying what is in use.

Each library is a :class:`KernelLibrary`: its C source beside the Python
that uses it, compiled on first use by :mod:`rnn.ops._build` into a per-user
cache and loaded with ``tf.load_op_library``. Nothing is compiled or loaded
at ``import rnn``: the first call that wants a kernel does it (once per
process). Where it cannot be built (no compiler) or loaded, one
``RuntimeWarning`` says why and the TensorFlow-ops programs run instead.

This module imports TensorFlow only inside :meth:`KernelLibrary.load`.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from rnn.ops import _build

_HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class KernelStatus:
    """What :func:`rnn.ops.kernel_info` reports for one kernel library.

    ``available``: loaded and usable in this process; ``isa``: the
    instruction set its compute code runs with (``"avx512"``, ``"avx2"``,
    ``"generic"``), None when not loaded; ``path``: the library file;
    ``reason``: why it is not available (None when it is); ``calls``: how
    many times each of its ops has run in this process, by op name (the
    graphs rnn traces hold TensorFlow ops and TensorFlow's runtime swaps in
    the kernels on CPU, so this is how to see that they ran).
    """

    available: bool
    isa: str | None
    path: str | None
    reason: str | None
    calls: dict[str, int]


class KernelLibrary:
    """One op library: its source, its ops, and its load state."""

    def __init__(self, name: str, source: str, ops: tuple[str, ...]) -> None:
        self.name = name
        self.source = source
        self.ops = ops
        self._module: Any = None
        self._error: str | None = None
        self._path: str | None = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """The loaded op module, or None (the reason is in :meth:`status`)."""
        if self._module is None and self._error is None:
            with self._lock:
                if self._module is None and self._error is None:
                    self._load()
        return self._module

    def _load(self) -> None:
        import tensorflow as tf

        try:
            path = _build.build(self.name, self.source)
        except _build.BuildSkipped as e:
            self._fail(f"the {self.name} kernels cannot be built here: {e}")
            return
        except RuntimeError as e:
            self._fail(str(e))
            return
        except OSError as e:  # the cache cannot be written (read-only home, full disk)
            self._fail(f"the {self.name} kernels cannot be built in {_build.cache_dir()}: {e}")
            return
        try:
            module = tf.load_op_library(path)
        except (tf.errors.OpError, OSError) as e:
            self._fail(f"{path} did not load: {e}")
            return
        for op in self.ops:
            # Differentiating a backward program stops at its own clear
            # error; a tape recording it (under an outer tape) still needs
            # the ops to have a gradient entry.
            tf.no_gradient(op)
        self._path, self._module = path, module

    def _fail(self, reason: str) -> None:
        self._error = reason
        warnings.warn(
            f"rnn: {reason}. The {self.name.upper()} runs on TensorFlow ops instead "
            f"(same results, slower on CPU).",
            RuntimeWarning,
            stacklevel=4,
        )

    def isa(self) -> str | None:
        """The instruction set the loaded library dispatched to, or None."""
        if self._module is None or self._path is None:
            return None
        # dlopen of a loaded library returns the same handle.
        fn = getattr(ctypes.CDLL(self._path), f"rnn_{self.name}_isa")
        fn.restype = ctypes.c_char_p
        return fn().decode() or None

    def calls(self) -> dict[str, int]:
        """How many times each op ran in this process, by op name."""
        if self._module is None or self._path is None:
            return dict.fromkeys(self.ops, 0)
        fn = getattr(ctypes.CDLL(self._path), f"rnn_{self.name}_calls")
        fn.restype = ctypes.c_longlong
        fn.argtypes = [ctypes.c_int]
        return {op: int(fn(i)) for i, op in enumerate(self.ops)}

    def status(self) -> KernelStatus:
        """Loads the library if not tried yet, and says what is in use."""
        self.load()
        return KernelStatus(
            self._module is not None, self.isa(), self._path, self._error, self.calls()
        )


LIBRARIES: dict[str, KernelLibrary] = {
    "lstm": KernelLibrary(
        "lstm", os.path.join(_HERE, "lstm", "kernels.c"), ("RnnLstmForward", "RnnLstmBackward")
    ),
    # The vanilla RNN's recurrences are the GRU kernels' third form.
    "gru": KernelLibrary(
        "gru",
        os.path.join(_HERE, "gru", "kernels.c"),
        ("RnnGruForward", "RnnGruBackward", "RnnVanillaForward", "RnnVanillaBackward"),
    ),
    "dnc": KernelLibrary(
        "dnc", os.path.join(_HERE, "dnc", "kernels.c"), ("RnnDncForward", "RnnDncBackward")
    ),
}
