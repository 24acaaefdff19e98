"""Builds rnn/_lstm_kernels.op.so, the compiled LSTM kernels, for this machine.

Run as ``python rnn/_build_kernels.py`` (``make`` does, after installing
TensorFlow). The library is compiled against the installed TensorFlow's C API
headers and linked to its ``libtensorflow_framework``, with ``-march=native``
where the compiler accepts it: build it on the machine that runs it. The
CPU's features are recorded beside it (``.op.so.cpu``); ``rnn.fused_lstm``
refuses a library built for features this CPU lacks (a copied virtualenv)
and says to rebuild. (The ``.op.so`` name keeps ``pkgutil`` from listing it
as a Python module.)

Without a C compiler the build is skipped with a message and the exit
status 0: ``rnn.fused_lstm`` then runs its TensorFlow-ops programs
(``rnn.fused_lstm.native_kernels_available()`` says which), and
tests/rnn/test_lstm_kernels.py fails where a compiler could have built it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "_lstm_kernels.c")
LIBRARY = os.path.join(HERE, "_lstm_kernels.op.so")
FRAMEWORK = "libtensorflow_framework.so.2"


def compiler() -> str | None:
    """The C compiler to use ($CC, else cc or gcc on PATH), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name.split()[0]):
            return name
    return None


def tensorflow_dir() -> str:
    """The installed tensorflow package directory (without importing it)."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("tensorflow is not installed")
    return list(spec.submodule_search_locations)[0]


def command(cc: str, tf_dir: str, output: str, native: bool) -> list[str]:
    arch = ["-march=native"] if native else []
    return [
        *cc.split(),
        "-O3",
        *arch,
        "-std=gnu11",
        "-fPIC",
        "-shared",
        "-pthread",
        "-fno-math-errno",
        "-fno-trapping-math",
        "-Wall",
        "-I",
        os.path.join(tf_dir, "include"),
        SOURCE,
        "-o",
        output,
        "-L",
        tf_dir,
        f"-l:{FRAMEWORK}",
        f"-Wl,-rpath,{tf_dir}",
    ]


def cpu_flags() -> frozenset | None:
    """This machine's CPU feature flags (Linux /proc/cpuinfo), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def missing_cpu_features(library: str = LIBRARY) -> frozenset:
    """Features of the CPU ``library`` was built for (with -march=native)
    that this CPU lacks: running it here could die of an illegal
    instruction. Empty when they match or nothing was recorded."""
    try:
        with open(library + ".cpu", encoding="utf-8") as f:
            built_for = frozenset(f.read().split())
    except OSError:
        return frozenset()
    here = cpu_flags()
    return frozenset() if here is None else built_for - here


def build(output: str = LIBRARY) -> bool:
    """Compiles the library into ``output``; returns whether it was built."""
    cc = compiler()
    if cc is None:
        print("rnn: no C compiler found; the LSTM runs on TensorFlow ops only", file=sys.stderr)
        return False
    tf_dir = tensorflow_dir()
    if not os.path.exists(os.path.join(tf_dir, FRAMEWORK)):
        print(
            f"rnn: {FRAMEWORK} not found in {tf_dir}; the LSTM runs on TensorFlow ops only",
            file=sys.stderr,
        )
        return False
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(output))
    os.close(fd)
    try:
        errors = ""
        for native in (True, False):
            done = subprocess.run(command(cc, tf_dir, tmp, native), capture_output=True, text=True)
            if done.returncode == 0:
                # The CPU features a -march=native build may use, for the
                # loader to check (a library copied to another machine).
                flags = cpu_flags() if native else None
                if flags is None:
                    if os.path.exists(output + ".cpu"):
                        os.remove(output + ".cpu")
                else:
                    with open(output + ".cpu", "w", encoding="utf-8") as f:
                        f.write(" ".join(sorted(flags)) + "\n")
                os.chmod(tmp, 0o755)
                os.replace(tmp, output)  # atomic: a running process keeps its copy
                return True
            errors = done.stderr
        raise RuntimeError(f"compiling {SOURCE} failed:\n{errors}")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


if __name__ == "__main__":
    build()  # a failed compilation raises (exit status 1); a skip prints why
