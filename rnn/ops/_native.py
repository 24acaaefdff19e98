"""When rnn's compiled kernels may run: the rules every kernel library shares.

A whole-sequence program uses its compiled kernels only for float32, on a
machine without a visible GPU, outside XLA compilation, outside a SavedModel
save (what is exported must load in a process without rnn) and outside
:func:`portable`; each library can also be turned off on its own
(``rnn.ops.lstm.set_native_kernels``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import tensorflow as tf
from tensorflow.python.ops import control_flow_util
from tensorflow.python.saved_model import save_context

from rnn.ops._library import KernelLibrary

__all__ = ["kernel_mask", "portable", "use_native"]

_portable = threading.local()  # .depth: nesting of portable() in this thread
_gpu_present: bool | None = None


@contextlib.contextmanager
def portable() -> Iterator[None]:
    """Within it (this thread), rnn's programs are traced with TensorFlow ops only.

    Export does this by itself; use it to trace a concrete function you will
    pass to an exporter yourself, so that the graph loads where rnn's
    kernels are not.

    >>> import tensorflow as tf
    >>> from rnn.ops import portable
    >>> from rnn.ops.lstm import lstm_sequence
    >>> f = tf.function(lambda x: lstm_sequence(x, tf.zeros([1, 4]), tf.zeros([1, 4]),
    ...                 tf.zeros([3, 16]), tf.zeros([4, 16]), tf.zeros([16]))[1])
    >>> with portable():
    ...     graph = f.get_concrete_function(tf.TensorSpec([2, 1, 3])).graph
    >>> any(node.op.startswith("Rnn")
    ...     for fn in graph.as_graph_def().library.function for node in fn.node_def)
    False
    """
    _portable.depth = getattr(_portable, "depth", 0) + 1
    try:
        yield
    finally:
        _portable.depth -= 1


def _in_xla_context() -> bool:
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def use_native(library: KernelLibrary, enabled: bool, dtype: tf.DType) -> bool:
    """Whether a program traced (or run eagerly) now should use ``library``."""
    global _gpu_present
    if not enabled or dtype != tf.float32 or getattr(_portable, "depth", 0):
        return False
    if save_context.in_save_context():
        return False  # what is exported must load without rnn
    if _gpu_present is None:
        _gpu_present = bool(tf.config.list_logical_devices("GPU"))
    if _gpu_present or _in_xla_context():
        return False
    return library.load() is not None


def kernel_mask(mask: tf.Tensor | None) -> tf.Tensor:
    """The kernels' mask argument: ``[T, B]`` in processing order or ``[0]``."""
    return tf.zeros([0], tf.bool) if mask is None else mask[:, 0, :]
