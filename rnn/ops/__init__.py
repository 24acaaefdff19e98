"""rnn's compiled recurrences: whole-sequence programs and their kernels.

Each subpackage (:mod:`rnn.ops.lstm`, :mod:`rnn.ops.gru`, :mod:`rnn.ops.dnc`)
holds one core's whole-sequence programs (TensorFlow ops), the C source of
its compiled kernels and their use. The kernels are compiled on first use
into a per-user cache for the installed TensorFlow (``python -m rnn.ops``
compiles them ahead) and loaded lazily; exported graphs never contain them
(see :mod:`rnn.ops.lstm`).

>>> import rnn
>>> isinstance(rnn.kernels_available(), bool)
True
"""

from __future__ import annotations

from rnn.ops._library import LIBRARIES, KernelLibrary, KernelStatus
from rnn.ops._native import portable

__all__ = ["KernelStatus", "kernel_info", "kernels_available", "portable"]


def kernels_available(name: str = "lstm") -> bool:
    """Whether the compiled kernels ``name`` (``"lstm"``, ``"gru"``, ``"dnc"``) are loaded.

    Compiles (once per user and TensorFlow version) and loads them if that
    was not tried yet in this process; False, with one ``RuntimeWarning``
    saying why, where they cannot be (no C compiler, say). The programs then
    run on TensorFlow ops with the same results.

    >>> import rnn
    >>> isinstance(rnn.kernels_available("lstm"), bool)
    True
    >>> isinstance(rnn.kernels_available("gru"), bool)
    True
    >>> isinstance(rnn.kernels_available("dnc"), bool)
    True
    """
    return _get(name).load() is not None


def kernel_info() -> dict[str, KernelStatus]:
    """For every kernel library: loaded or not, the instruction set, the path,
    why not, and how many times its ops have run in this process.

    >>> import rnn
    >>> info = rnn.kernel_info()["lstm"]
    >>> info.available == (info.reason is None)
    True
    >>> info.isa in (None, "avx512", "avx2", "generic")
    True
    >>> sorted(info.calls)
    ['RnnLstmBackward', 'RnnLstmForward']
    """
    return {name: lib.status() for name, lib in LIBRARIES.items()}


def _get(name: str) -> KernelLibrary:
    try:
        return LIBRARIES[name]
    except KeyError:
        raise ValueError(
            f"kernels_available: unknown kernel library {name!r}; known: {sorted(LIBRARIES)}"
        ) from None
