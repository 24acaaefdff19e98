"""When rnn's compiled kernels run, and how graphs stay plain TensorFlow.

A whole-sequence program uses its compiled kernels only for float32, on a
machine without a visible GPU, outside XLA compilation and outside
:func:`portable`; each library can also be turned off on its own
(``rnn.ops.lstm.set_native_kernels``).

**Graphs never hold the kernel ops.** Each program is traced in two forms
(:class:`Programs`): the TensorFlow-ops program, marked as one
implementation of an interface (the ``api_implements`` attribute) that
prefers GPUs, and its twin with the recurrence as a compiled op, the same
interface's CPU implementation, registered with the runtime but called
nowhere. Graphs call the first; on a CPU device TensorFlow's implementation
selector (a Grappler pass, the mechanism Keras 2 and Sonnet 2 use for their
cuDNN paths) swaps in the twin when the graph runs. What a graph holds, and
so everything exported from it (a SavedModel, a concrete function traced
before saving, a frozen ``GraphDef``, a converter's input), is TensorFlow
ops only and loads where rnn is not. Eager calls run the twin directly.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from rnn.ops._library import KernelLibrary

__all__ = ["KernelSwitch", "Programs", "kernel_mask", "portable", "use_native"]

_portable = threading.local()  # .depth: nesting of portable() in this thread
_gpu_present: bool | None = None


@contextlib.contextmanager
def portable() -> Iterator[None]:
    """Within it (this thread), rnn's programs never use the compiled kernels.

    Functions traced inside it run TensorFlow ops only, wherever they run
    later (and eager calls inside it too). Graphs are plain TensorFlow with
    or without it (exports need nothing); it is for comparing the two paths
    and for ruling the kernels out.

    >>> import tensorflow as tf
    >>> from rnn.ops import portable
    >>> from rnn.ops.lstm import lstm_sequence
    >>> f = tf.function(lambda x: lstm_sequence(x, tf.zeros([1, 4]), tf.zeros([1, 4]),
    ...                 tf.zeros([3, 16]), tf.zeros([4, 16]), tf.zeros([16]))[1])
    >>> with portable():
    ...     graph = f.get_concrete_function(tf.TensorSpec([2, 1, 3])).graph
    >>> any(fn.attr["api_implements"].s
    ...     for fn in graph.as_graph_def().library.function)
    False
    """
    _portable.depth = getattr(_portable, "depth", 0) + 1
    try:
        yield
    finally:
        _portable.depth -= 1


class KernelSwitch:
    """One core's ``set_native_kernels`` setting: on until turned off.

    >>> switch = KernelSwitch()
    >>> switch.set(False), switch.enabled
    (True, False)
    """

    def __init__(self) -> None:
        self.enabled = True

    def set(self, enabled: bool) -> bool:
        """Sets it (for functions traced afterwards and eager calls, in every
        thread) and returns the previous setting."""
        previous, self.enabled = self.enabled, bool(enabled)
        return previous


def _in_xla_context() -> bool:
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def use_native(library: KernelLibrary | None, enabled: bool, dtype: tf.DType) -> bool:
    """Whether a program traced (or run eagerly) now should use ``library``."""
    global _gpu_present
    if library is None or not enabled or dtype != tf.float32 or getattr(_portable, "depth", 0):
        return False
    if _gpu_present is None:
        _gpu_present = bool(tf.config.list_logical_devices("GPU"))
    if _gpu_present or _in_xla_context():
        return False
    return library.load() is not None


def kernel_mask(mask: tf.Tensor | None) -> tf.Tensor:
    """The kernels' mask argument: ``[T, B]`` in processing order or ``[0]``."""
    return tf.zeros([0], tf.bool) if mask is None else tf.squeeze(mask, axis=1)


# The programs' source, hashed into the interface names: a graph traced by
# one version of rnn is never given another version's kernels.
_SOURCES_DIGEST: dict[str, str] = {}


def _digest(paths: Sequence[str]) -> str:
    key = "|".join(paths)
    if key not in _SOURCES_DIGEST:
        h = hashlib.sha256()
        for path in paths:
            with open(path, "rb") as f:
                h.update(f.read())
        _SOURCES_DIGEST[key] = h.hexdigest()[:12]
    return _SOURCES_DIGEST[key]


Tracer = Callable[[tuple[Any, ...], str, bool], tuple[Callable[..., Any], list[tf.TensorSpec]]]


class Programs:
    """One cell's forward and backward programs, each traced once per variant.

    ``trace(variant, which, native)`` returns the Python program (``which``
    is ``"fwd"`` or ``"bwd"``, ``native`` selects the compiled-op form) and
    its input signature; ``variant`` is a tuple starting with the dtype
    (masked, reversed, ...). Programs are traced lazily (a model that never
    asks for gradients never traces the backward one) with unknown ``T`` and
    batch size, in three forms: ``"tf"`` (TensorFlow ops, nothing else),
    ``"native"`` (the compiled op; eager calls and the runtime's swap) and
    ``"selectable"`` (the ``"tf"`` program marked for the swap). A cell
    without kernels (``library`` None) has the ``"tf"`` form only.
    """

    def __init__(
        self, cell: str, library: KernelLibrary | None, sources: Sequence[str], trace: Tracer
    ) -> None:
        self.cell = cell
        self.library = library
        self.sources = tuple(sources)
        self.trace = trace
        self._functions: dict[tuple[Any, ...], Any] = {}

    def interface(self, variant: tuple[Any, ...], which: str) -> str:
        """The ``api_implements`` name the two forms of one program share."""
        parts = [tf.as_dtype(v).name if i == 0 else str(int(v)) for i, v in enumerate(variant)]
        return f"rnn_{self.cell}_{which}_{'_'.join(parts)}_{_digest(self.sources)}"

    def get(self, variant: tuple[Any, ...], which: str, form: str) -> Any:
        """The concrete function of one form of one program, traced on first use."""
        key = (variant, which, form)
        if key not in self._functions:
            fn, specs = self.trace(variant, which, form == "native")
            attributes = None
            if form != "tf":
                attributes = {
                    "api_implements": self.interface(variant, which),
                    "api_preferred_device": "CPU" if form == "native" else "GPU",
                }
            self._functions[key] = tf.function(
                fn, autograph=False, experimental_attributes=attributes
            ).get_concrete_function(*specs)
        return self._functions[key]

    def select(self, variant: tuple[Any, ...], which: str, enabled: bool) -> Any:
        """The concrete function to call now (eagerly or in the graph being traced)."""
        if not use_native(self.library, enabled, variant[0]):
            return self.get(variant, which, "tf")
        if tf.executing_eagerly():
            return self.get(variant, which, "native")
        with tf.init_scope():  # the twin lives in the runtime, not in this graph
            self.get(variant, which, "native")
        return self.get(variant, which, "selectable")

    def clear(self) -> None:
        """Forgets every traced program (benchmarks measure first traces)."""
        self._functions.clear()
