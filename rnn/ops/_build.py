"""Compiles rnn's kernel sources into TensorFlow op libraries, once per user.

A kernel library is compiled on first use (or ahead by ``python -m rnn.ops``,
which ``make`` runs) against the installed TensorFlow's C API headers and
``libtensorflow_framework``, into a per-user cache: ``$RNN_KERNEL_CACHE``,
else ``$XDG_CACHE_HOME/rnn``, else ``~/.cache/rnn``. The file name holds a
hash of everything the result depends on (the source and the local headers
it includes, these flags, the compiler, TensorFlow's version and location,
the machine type), so a new TensorFlow or a changed source gets its own
library and a stale one is never loaded. A lock file keeps two processes
from compiling the same library at once; the result is written to a
temporary name and renamed, so a reader never sees half a library.

Nothing here uses ``-march=native``: the compute part of a source is
compiled once per x86-64 instruction-set level (``x86-64-v4``, i.e.
AVX-512; ``x86-64-v3``, AVX2 + FMA; and the baseline) and the library picks
the widest one the CPU supports when it is loaded, so a cache on a shared
home directory, or a copied one, runs anywhere (see the sources' headers).

This module does not import TensorFlow (``make`` runs it before anything
else needs TensorFlow in the process).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

FRAMEWORK = "libtensorflow_framework.so.2"

# Bumped when the way a library is built changes (part of its cache key).
BUILD_VERSION = "1"

_COMMON_FLAGS = [
    "-O3",
    "-std=gnu11",
    "-fPIC",
    "-pthread",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-Wall",
]

# (name, flags) of the instruction sets the compute part is compiled for;
# the names match the sources' dispatch tables.
_X86_ISAS = [
    ("avx512", ["-march=x86-64-v4", "-mtune=generic"]),
    ("avx2", ["-march=x86-64-v3", "-mtune=generic"]),
    ("generic", []),
]


def isas() -> list[tuple[str, list[str]]]:
    """The instruction sets compiled on this machine type, widest first."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        return list(_X86_ISAS)
    return [("generic", [])]


def compiler() -> str | None:
    """The C compiler to use ($CC, else cc, gcc or clang on PATH), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name.split()[0]):
            return name
    return None


def tensorflow_dir() -> str | None:
    """The installed tensorflow package directory (without importing it)."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def cache_dir() -> str:
    """Where compiled libraries are kept (created on first build)."""
    root = os.environ.get("RNN_KERNEL_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "rnn")
    return os.path.join(root, "kernels")


def _compiler_id(cc: str) -> str:
    try:
        done = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True)
        return done.stdout.splitlines()[0] if done.stdout else cc
    except OSError:
        return cc


def _tf_version() -> str:
    try:
        return importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        for name in ("tensorflow-cpu", "tf-nightly", "tensorflow-intel"):
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                return importlib.metadata.version(name)
    return "unknown"


def local_headers(source: str) -> list[str]:
    """The files ``source`` includes with ``#include "..."`` that are found
    relative to it (rnn's shared headers; TensorFlow's come through ``-I``
    and TensorFlow's version), which its library depends on as on itself."""
    found = []
    with open(source, encoding="utf-8") as f:
        for line in f:
            match = _LOCAL_INCLUDE.match(line)
            if match:
                path = os.path.normpath(os.path.join(os.path.dirname(source), match[1]))
                if os.path.exists(path):
                    found.append(path)
    return found


_LOCAL_INCLUDE = re.compile(r'\s*#\s*include\s+"([^"]+)"')


def library_path(name: str, source: str, cc: str, tf_dir: str) -> str:
    """The cache path of ``source``'s library for this compiler and TensorFlow."""
    h = hashlib.sha256()
    for path in (source, *local_headers(source)):
        with open(path, "rb") as f:
            h.update(f.read())
    for part in (
        BUILD_VERSION,
        repr(_COMMON_FLAGS),
        repr(isas()),
        _compiler_id(cc),
        _tf_version(),
        os.path.realpath(tf_dir),
        platform.machine(),
    ):
        h.update(b"\0" + part.encode())
    return os.path.join(cache_dir(), f"{name}-{h.hexdigest()[:20]}.so")


def commands(cc: str, tf_dir: str, source: str, workdir: str, output: str) -> list[list[str]]:
    """The compile commands (one per instruction set, one for the op
    registration) and, last, the link command."""
    include = ["-I", os.path.join(tf_dir, "include")]
    objects, out = [], []
    for isa, flags in isas():
        obj = os.path.join(workdir, f"{isa}.o")
        objects.append(obj)
        out.append(
            [*cc.split(), *_COMMON_FLAGS, *flags, f"-DRNN_KERNEL_ISA={isa}", *include, "-c", source]
            + ["-o", obj]
        )
    reg = os.path.join(workdir, "register.o")
    objects.append(reg)
    out.append(
        [*cc.split(), *_COMMON_FLAGS, "-DRNN_KERNEL_REGISTER", *include, "-c", source, "-o", reg]
    )
    out.append(
        [*cc.split(), "-shared", "-pthread", *objects, "-o", output, "-L", tf_dir]
        + [f"-l:{FRAMEWORK}", f"-Wl,-rpath,{tf_dir}"]
    )
    return out


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (a lock file) where the OS has one."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, still atomic renames
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class BuildSkipped(Exception):
    """No library can be built here (no compiler, no TensorFlow libraries)."""


def build(name: str, source: str) -> str:
    """The path of ``source``'s compiled library, compiling it if needed.

    Raises :class:`BuildSkipped` (with the reason) where nothing can be
    compiled, and RuntimeError with the compiler's output where compiling
    fails.
    """
    cc = compiler()
    if cc is None:
        raise BuildSkipped("no C compiler found (set CC, or install gcc or clang)")
    tf_dir = tensorflow_dir()
    if tf_dir is None:
        raise BuildSkipped("TensorFlow is not installed")
    if not os.path.exists(os.path.join(tf_dir, FRAMEWORK)):
        raise BuildSkipped(f"{FRAMEWORK} is not in {tf_dir}")
    output = library_path(name, source, cc, tf_dir)
    if os.path.exists(output):
        return output
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with _locked(output + ".lock"):
        if os.path.exists(output):  # another process built it meanwhile
            return output
        with tempfile.TemporaryDirectory(dir=os.path.dirname(output)) as work:
            tmp = os.path.join(work, "lib.so")
            *compiles, link = commands(cc, tf_dir, source, work, tmp)
            # The compiles are independent: run them side by side.
            running = [subprocess.Popen(c, stderr=subprocess.PIPE, text=True) for c in compiles]
            errors = [(c, p.communicate()[1], p.returncode) for c, p in zip(compiles, running)]
            failed = [(c, err) for c, err, rc in errors if rc != 0]
            if not failed:
                done = subprocess.run(link, capture_output=True, text=True)
                if done.returncode != 0:
                    failed = [(link, done.stderr)]
            if failed:
                cmd, err = failed[0]
                raise RuntimeError(f"compiling {source} failed:\n{' '.join(cmd)}\n{err}")
            os.chmod(tmp, 0o755)
            os.replace(tmp, output)  # atomic: a reader never sees half a library
    return output


def build_all() -> int:
    """Builds every kernel library of rnn (``python -m rnn.ops``); the exit status."""
    from rnn.ops import _library  # no TensorFlow import either

    status = 0
    for lib in _library.LIBRARIES.values():
        try:
            path = build(lib.name, lib.source)
        except BuildSkipped as e:
            print(
                f"rnn: {lib.name} kernels not built: {e}; TensorFlow ops are used", file=sys.stderr
            )
        except (RuntimeError, OSError) as e:
            print(f"rnn: {e}", file=sys.stderr)
            status = 1
        else:
            print(f"rnn: {lib.name} kernels: {path}")
    return status
