"""LSTM, GRU and vanilla RNN unrolling benchmark: rnn vs Sonnet 2 vs Keras 3, interleaved.

Batch 32, input 64, hidden 256, float32, on CPU. For every sequence length T
it times, forward and forward+backward (gradients of ``sum(outputs)`` with
respect to every trainable variable):

* ``rnn.dynamic_unroll(rnn.LSTM)`` (the whole-sequence fast path,
  :func:`rnn.ops.lstm.lstm_sequence`), and that function called directly;
  "rnn.LSTM without kernels" is the first with the compiled kernels turned
  off (:func:`rnn.ops.lstm.set_native_kernels`), the TensorFlow-ops
  programs that XLA, GPUs and other dtypes run;
* ``snt.dynamic_unroll(snt.LSTM)`` and ``snt.UnrolledLSTM`` (Sonnet 2);
* ``keras.layers.LSTM`` (Keras 3, TensorFlow backend, batch-major input as
  it expects; the transpose is done once, outside the timing);
* ``rnn.dynamic_unroll(rnn.GRU)`` in both forms (the whole-sequence fast
  path, :func:`rnn.ops.gru.gru_sequence`, with and without its kernels),
  each against the peers' same form: Cho's (``snt.GRU``,
  ``keras.layers.GRU(reset_after=False)``) and Keras'/cuDNN's
  (``keras.layers.GRU(reset_after=True)``, Keras' default);
* ``rnn.dynamic_unroll(rnn.VanillaRNN)`` (``tanh``, the whole-sequence
  program :func:`rnn.ops.vanilla.vanilla_sequence`, with and without its
  compiled recurrences) against
  ``snt.dynamic_unroll(snt.VanillaRNN)`` and ``keras.layers.SimpleRNN``;
* the LSTMs with a 3-layer stack (``rnn.DeepRNN``, ``snt.DeepRNN``, three
  ``snt.UnrolledLSTM``, a ``keras.Sequential`` of three LSTMs);
* with ``--cores features`` (not in the default set): what ``reset`` (2% of
  the steps marked) and ``return_all_states`` (the loss reading every state
  too) cost, for ``rnn.LSTM``, both ``rnn.GRU`` forms and ``rnn.VanillaRNN``
  (their whole-sequence programs take both) and the demo's DNC (always
  stepped); in these rows "x best" is the ratio to the same core's plain
  unroll;

inside ``tf.function`` ("graph"), eagerly, and the first call of a fresh
``tf.function`` (tracing + graph optimisation + one run, median over
``--first-reps`` freshly built models in this process, where everybody's
per-process caches are warm: the peers' AutoGraph conversions and our traced
programs, as for the second model a program builds; ``--clear-our-caches``
clears ours before every sample, the worst case for us). The first call in a
new process (``--cold-T``, each sample a fresh Python process, single-layer
contenders) is what a program pays at start-up, when nobody's caches are
warm. Samples of all
contenders are interleaved (the order rotates every round) and the table
gives the median in ms and the ratio to the best peer (Sonnet or Keras) in
the same column computing the same thing (LSTM, GRU, GRU reset_after, vanilla): below 1.00
is faster than every peer. Eager timing stops
at T=100 and the 3-layer stacks at T=100 by default (step-by-step eager
peers take seconds per call at T=500); see the flags.

Usage::

    python bench/rnn_bench.py              # T = 20, 100, 500 (4-10 min, 2 cores)
    python bench/rnn_bench.py --quick      # T = 20, 100, few samples (~1 min)
    python bench/rnn_bench.py --T 100 --reps 15 --modes graph --no-deep

Times on a shared machine are noisy: read ratios within about +-15% as ties
and re-run the rows you care about when the machine is quiet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH, INPUT, HIDDEN = 32, 64, 256
DEFAULT_T = (20, 100, 500)


class _Contender:
    """One implementation: builds fresh modules and a forward function.

    ``family`` is what it computes (``"lstm"``, ``"gru"``: the Cho/Sonnet
    form, ``"gru reset_after"``: the Keras/cuDNN form); ratios compare a
    row with the best peer of its own family.
    """

    def __init__(
        self,
        name: str,
        peer: bool,
        deep: bool,
        make: Callable[[tf.Tensor], tuple[Callable[[], tf.Tensor], Callable[[], list]]],
        family: str = "lstm",
    ):
        self.name, self.peer, self.deep, self._make = name, peer, deep, make
        self.family = family

    def make(self, x_time_major: tf.Tensor):
        """Returns ``(forward, variables)``: ``forward()`` gives outputs."""
        return self._make(x_time_major)


@contextlib.contextmanager
def _kernels_off(module):
    """``module.set_native_kernels(False)`` for the duration (one rnn.ops cell)."""
    previous = module.set_native_kernels(False)
    try:
        yield
    finally:
        module.set_native_kernels(previous)


def _without_kernels(module, make):
    """A contender's ``make`` with ``module``'s compiled kernels off, when
    building and on every call (the setting is read when tracing and on
    eager calls)."""

    def wrapped(x):
        with _kernels_off(module):
            forward, variables = make(x)

        def forward_tf_ops():
            with _kernels_off(module):
                return forward()

        return forward_tf_ops, variables

    return wrapped


def _clear_our_caches() -> None:
    from rnn.ops.gru import sequence as gru  # pylint: disable=import-outside-toplevel
    from rnn.ops.lstm import sequence  # pylint: disable=import-outside-toplevel
    from rnn.ops.vanilla import sequence as vanilla  # pylint: disable=import-outside-toplevel

    sequence.PROGRAMS.clear()
    gru.PROGRAMS.clear()
    vanilla.PROGRAMS.clear()


CORES = ("lstm", "gru", "vanilla")
# --cores values beyond the default set.
EXTRA_CORES = ("features",)


def _contenders(layers_list: Sequence[int], cores: Sequence[str] = CORES) -> list[_Contender]:
    out = _lstm_contenders(layers_list) if "lstm" in cores else []
    if "gru" in cores:
        out += _gru_contenders()
    if "vanilla" in cores:
        out += _vanilla_contenders()
    if "features" in cores:
        out += _feature_contenders()
    return out


def _feature_contenders() -> list[_Contender]:
    """Unrolls with ``reset`` / ``return_all_states`` against the same core's plain unroll."""
    import rnn  # pylint: disable=import-outside-toplevel

    cores = {
        "rnn.LSTM": lambda: rnn.LSTM(HIDDEN),
        "rnn.GRU": lambda: rnn.GRU(HIDDEN),
        "rnn.GRU reset_after": lambda: rnn.GRU(HIDDEN, reset_after=True),
        "rnn.VanillaRNN": lambda: rnn.VanillaRNN(HIDDEN),
        "rnn.DNC (demo)": lambda: rnn.DNC(
            8, controller=rnn.LSTM(64), memory_size=16, word_size=16, num_reads=4
        ),
    }

    def unroll(make_core, option):
        def make(x):
            core = make_core()
            rnn.dynamic_unroll(core, x[:1], core.initial_state(BATCH))  # build
            marks = tf.random.stateless_uniform(x.shape[:2], seed=[2, 3]) < 0.02
            kwargs = {"plain": {}, "reset": {"reset": marks}}.get(
                option, {"return_all_states": True}
            )

            def forward():
                results = rnn.dynamic_unroll(core, x, core.initial_state(BATCH), **kwargs)
                if option != "return_all_states":
                    return results[0]
                # The loss reads the state sequences too (their gradients flow back).
                return tf.add_n([tf.reduce_sum(leaf) for leaf in tf.nest.flatten(results)])

            return forward, core.trainable_variables

        return make

    out = []
    for name, make_core in cores.items():
        for option in ("plain", "reset", "return_all_states"):
            label = f"{name} {option}"
            family = f"{name} features"
            out.append(
                _Contender(label, option == "plain", False, unroll(make_core, option), family)
            )
    return out


def _vanilla_contenders() -> list[_Contender]:
    """Single-layer tanh vanilla RNNs: rnn.VanillaRNN, snt.VanillaRNN, SimpleRNN."""
    import keras  # pylint: disable=import-outside-toplevel
    import sonnet as snt  # pylint: disable=import-outside-toplevel

    import rnn  # pylint: disable=import-outside-toplevel
    from rnn.ops import vanilla as fused_vanilla  # pylint: disable=import-outside-toplevel

    def ours(x):
        core = rnn.VanillaRNN(HIDDEN)
        rnn.dynamic_unroll(core, x[:1], core.initial_state(BATCH))  # build

        def forward():
            return rnn.dynamic_unroll(core, x, core.initial_state(BATCH))[0]

        return forward, core.trainable_variables

    def snt_vanilla(x):
        core = snt.VanillaRNN(HIDDEN)
        snt.dynamic_unroll(core, x[:1], core.initial_state(BATCH))

        def forward():
            return snt.dynamic_unroll(core, x, core.initial_state(BATCH))[0]

        return forward, core.trainable_variables

    def keras_simple_rnn(x):
        x_bm = tf.transpose(x, [1, 0, 2])
        model = keras.Sequential(
            [keras.Input((None, INPUT)), keras.layers.SimpleRNN(HIDDEN, return_sequences=True)]
        )

        def forward():
            return model(x_bm)

        return forward, model.trainable_variables

    out = [_Contender("rnn.dynamic_unroll(rnn.VanillaRNN)", False, False, ours, "vanilla")]
    if fused_vanilla.native_kernels_available():
        without = _without_kernels(fused_vanilla, ours)
        out.append(_Contender("rnn.VanillaRNN without kernels", False, False, without, "vanilla"))
    return out + [
        _Contender("snt.dynamic_unroll(snt.VanillaRNN)", True, False, snt_vanilla, "vanilla"),
        _Contender("keras.layers.SimpleRNN", True, False, keras_simple_rnn, "vanilla"),
    ]


def _gru_contenders() -> list[_Contender]:
    """Single-layer GRUs, each form against the peers' same form."""
    import keras  # pylint: disable=import-outside-toplevel
    import sonnet as snt  # pylint: disable=import-outside-toplevel

    import rnn  # pylint: disable=import-outside-toplevel
    from rnn.ops import gru as fused_gru  # pylint: disable=import-outside-toplevel

    def ours(reset_after):
        def make(x):
            core = rnn.GRU(HIDDEN, reset_after=reset_after)
            rnn.dynamic_unroll(core, x[:1], core.initial_state(BATCH))  # build

            def forward():
                return rnn.dynamic_unroll(core, x, core.initial_state(BATCH))[0]

            return forward, core.trainable_variables

        return make

    def snt_gru(x):
        core = snt.GRU(HIDDEN)
        snt.dynamic_unroll(core, x[:1], core.initial_state(BATCH))

        def forward():
            return snt.dynamic_unroll(core, x, core.initial_state(BATCH))[0]

        return forward, core.trainable_variables

    def keras_gru(reset_after):
        def make(x):
            x_bm = tf.transpose(x, [1, 0, 2])
            model = keras.Sequential(
                [
                    keras.Input((None, INPUT)),
                    keras.layers.GRU(HIDDEN, return_sequences=True, reset_after=reset_after),
                ]
            )

            def forward():
                return model(x_bm)

            return forward, model.trainable_variables

        return make

    kernels = fused_gru.native_kernels_available()
    out = []
    for reset_after, family, tag in (
        (False, "gru", ""),
        (True, "gru reset_after", "reset_after=True"),
    ):
        name = f"rnn.dynamic_unroll(rnn.GRU({tag}))"
        out.append(_Contender(name, False, False, ours(reset_after), family))
        if kernels:
            out.append(
                _Contender(
                    f"rnn.GRU({tag}) without kernels",
                    False,
                    False,
                    _without_kernels(fused_gru, ours(reset_after)),
                    family,
                )
            )
        if not reset_after:
            out.append(_Contender("snt.dynamic_unroll(snt.GRU)", True, False, snt_gru, family))
        out.append(
            _Contender(
                f"keras.layers.GRU(reset_after={reset_after})",
                True,
                False,
                keras_gru(reset_after),
                family,
            )
        )
    return out


def _lstm_contenders(layers_list: Sequence[int]) -> list[_Contender]:
    import keras  # pylint: disable=import-outside-toplevel
    import sonnet as snt  # pylint: disable=import-outside-toplevel

    import rnn  # pylint: disable=import-outside-toplevel
    from rnn.ops import lstm as fused_lstm  # pylint: disable=import-outside-toplevel
    from rnn.ops.lstm import lstm_sequence  # pylint: disable=import-outside-toplevel

    def ours(layers):
        def make(x):
            cores = [rnn.LSTM(HIDDEN) for _ in range(layers)]
            core = cores[0] if layers == 1 else rnn.DeepRNN(cores)
            rnn.dynamic_unroll(core, x[:1], core.initial_state(BATCH))  # build

            def forward():
                return rnn.dynamic_unroll(core, x, core.initial_state(BATCH))[0]

            return forward, core.trainable_variables

        return make

    def fused(x):
        k = tf.Variable(tf.random.uniform([INPUT, 4 * HIDDEN], -0.1, 0.1))
        rk = tf.Variable(tf.random.uniform([HIDDEN, 4 * HIDDEN], -0.06, 0.06))
        b = tf.Variable(tf.zeros([4 * HIDDEN]))
        zeros = tf.zeros([BATCH, HIDDEN])

        def forward():
            return lstm_sequence(x, zeros, zeros, k, rk, b)[0]

        return forward, [k, rk, b]

    def snt_dynamic(layers):
        def make(x):
            cores = [snt.LSTM(HIDDEN) for _ in range(layers)]
            core = cores[0] if layers == 1 else snt.DeepRNN(cores)
            snt.dynamic_unroll(core, x[:1], core.initial_state(BATCH))

            def forward():
                return snt.dynamic_unroll(core, x, core.initial_state(BATCH))[0]

            return forward, core.trainable_variables

        return make

    def snt_unrolled(layers):
        def make(x):
            cores = [snt.UnrolledLSTM(HIDDEN) for _ in range(layers)]

            def forward(inp=None):
                h = x if inp is None else inp
                for c in cores:
                    h = c(h, c.initial_state(BATCH))[0]
                return h

            forward(x[:1])
            variables = [v for c in cores for v in c.trainable_variables]
            return forward, variables

        return make

    def keras_lstm(layers):
        def make(x):
            x_bm = tf.transpose(x, [1, 0, 2])
            model = keras.Sequential(
                [keras.Input((None, INPUT))]
                + [keras.layers.LSTM(HIDDEN, return_sequences=True) for _ in range(layers)]
            )

            def forward():
                return model(x_bm)

            return forward, model.trainable_variables

        return make

    out = []
    for layers in layers_list:
        deep = layers > 1
        tag = f"{layers}x " if deep else ""
        out += [
            _Contender(
                f"{tag}rnn.dynamic_unroll(rnn.{'DeepRNN' if deep else 'LSTM'})",
                False,
                deep,
                ours(layers),
            ),
        ]
        if not deep:
            out.append(_Contender("rnn.ops.lstm.lstm_sequence", False, deep, fused))
            if fused_lstm.native_kernels_available():
                out.append(
                    _Contender(
                        "rnn.LSTM without kernels",
                        False,
                        deep,
                        _without_kernels(fused_lstm, ours(1)),
                    )
                )
        out += [
            _Contender(
                f"{tag}snt.dynamic_unroll(snt.{'DeepRNN' if deep else 'LSTM'})",
                True,
                deep,
                snt_dynamic(layers),
            ),
            _Contender(f"{tag}snt.UnrolledLSTM", True, deep, snt_unrolled(layers)),
            _Contender(f"{tag}keras.layers.LSTM", True, deep, keras_lstm(layers)),
        ]
    return out


def _materialise(result) -> None:
    for t in tf.nest.flatten(result):
        if t is not None:
            t.numpy()


def _fns(contender: _Contender, x: tf.Tensor, graph: bool):
    forward, variables = contender.make(x)

    def fwd():
        return forward()

    def fwd_bwd():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(forward())
        return tape.gradient(loss, variables)

    if graph:
        # autograph=False: every contender builds its loop explicitly (Sonnet's
        # dynamic_unroll applies autograph to itself), and converting these
        # little closures only adds noise to the first-call times.
        return (tf.function(fwd, autograph=False), tf.function(fwd_bwd, autograph=False))
    return fwd, fwd_bwd


def _inputs(t: int) -> tf.Tensor:
    """The ``[T, B, I]`` input every contender gets for sequence length ``t``."""
    return tf.random.stateless_normal([t, BATCH, INPUT], seed=[1, t])


def _rotated(items: list, r: int) -> list:
    """``items`` rotated by ``r``: the order of round ``r`` of samples."""
    return items[r % len(items) :] + items[: r % len(items)]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    _materialise(fn())
    return (time.perf_counter() - start) * 1000.0


def _run_mode(
    contenders: list[_Contender],
    x: tf.Tensor,
    graph: bool,
    reps: int,
    first_reps: int,
    clear_ours: bool = False,
) -> dict[str, dict[str, list]]:
    """Times every contender's fwd and fwd+bwd, interleaved; returns a dict.

    In graph mode the first call of a fresh ``tf.function`` is timed too,
    ``first_reps`` times per contender with freshly built modules (with our
    traced-once programs cleared first when ``clear_ours``), interleaved
    across contenders.
    """
    results: dict[str, dict[str, list]] = {c.name: {"fwd": [], "fwd+bwd": []} for c in contenders}
    fns = {}
    if graph:
        for c in contenders:
            results[c.name].update({"first fwd": [], "first fwd+bwd": []})
        for _ in range(max(1, first_reps)):
            for c in contenders:
                fwd, fb = _fns(c, x, graph)
                if clear_ours:
                    _clear_our_caches()
                results[c.name]["first fwd"].append(_timed(fwd))
                if clear_ours:
                    _clear_our_caches()
                results[c.name]["first fwd+bwd"].append(_timed(fb))
                fns[c.name] = (fwd, fb)
    else:
        fns = {c.name: _fns(c, x, graph) for c in contenders}
    for fwd, fb in fns.values():  # warm-up calls
        _materialise(fwd())
        _materialise(fb())
    names = list(fns)
    for r in range(reps):
        order = _rotated(names, r)
        for name in order:
            fwd, fb = fns[name]
            results[name]["fwd"].append(_timed(fwd))
            results[name]["fwd+bwd"].append(_timed(fb))
    return results


def _warm_up() -> None:
    """Pays one-time process costs (grappler, autograph, kernels) up front."""
    x = tf.random.normal([3, 2, 4])

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.while_loop(
                lambda i, y: i < 3, lambda i, y: (i + 1, tf.tanh(tf.matmul(y, y))), (0, x[:, :, :2])
            )[1]
        return tape.gradient(tf.reduce_sum(y), x)

    _materialise(step(x))


_COLD_CHILD = "--cold-child"


def _cold_child(spec: str) -> int:
    """In a new process: times one contender's first graph call, prints ms."""
    name, which, t = spec.rsplit(",", 2)
    contender = next(c for c in _contenders([1], CORES + EXTRA_CORES) if c.name == name)
    x = _inputs(int(t))
    fwd, fb = _fns(contender, x, graph=True)
    _clear_our_caches()  # the eager build call traced our forward program
    print(_timed(fwd if which == "fwd" else fb))
    return 0


def _cold_first_calls(
    contenders: list[_Contender], t: int, reps: int
) -> dict[str, dict[str, list]]:
    """First graph calls, each in a new process; interleaved like the rest."""
    import subprocess  # pylint: disable=import-outside-toplevel

    single = [c for c in contenders if not c.deep]
    results = {c.name: {"fwd": [], "fwd+bwd": []} for c in single}
    for r in range(reps):
        order = _rotated(single, r)
        for c in order:
            for which in ("fwd", "fwd+bwd"):
                proc = subprocess.run(
                    [
                        sys.executable,
                        os.path.abspath(__file__),
                        _COLD_CHILD,
                        f"{c.name},{which},{t}",
                    ],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"cold first call of {c.name} failed:\n{proc.stderr[-3000:]}"
                    )
                results[c.name][which].append(float(proc.stdout.strip().splitlines()[-1]))
    return results


def _ratio_table(
    rows: list[tuple[str, str, str]],
    contenders: list[_Contender],
    results: dict[str, dict[str, object]],
    keys: Sequence[str],
    label: str,
    t: int,
) -> None:
    families = list(dict.fromkeys(c.family for c in contenders))
    groups = [
        [c for c in contenders if c.deep == deep and c.family == family]
        for family in families
        for deep in (False, True)
    ]
    for group in groups:
        if not group:
            continue
        best = {}
        for key in keys:
            peers = [_value(results[c.name][key]) for c in group if c.peer]
            best[key] = min(peers) if peers else None
        for c in group:
            cells = []
            for key in keys:
                v = _value(results[c.name][key])
                ratio = v / best[key] if best[key] else float("nan")
                cells += [f"{v:9.1f}", f"{ratio:5.2f}"]
            rows.append((str(t), label, c.name, *cells))


def _value(v) -> float:
    return statistics.median(v) if isinstance(v, list) else float(v)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark with command-line ``argv``; prints the table.

    >>> main(["--T", "3", "--reps", "1", "--modes", "eager",
    ...       "--only", "lstm_sequence"])  # doctest: +ELLIPSIS
    TensorFlow ...| 3 | eager | rnn.ops.lstm.lstm_sequence | ...
    0
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--T", default=None, help="comma-separated sequence lengths (default 20,100,500)"
    )
    p.add_argument(
        "--reps",
        type=int,
        default=None,
        help="samples per contender and mode (default: 21/15/5 for "
        "T <= 20 / <= 100 / larger; eager uses half)",
    )
    p.add_argument("--modes", default="graph,eager", help="comma-separated subset of graph,eager")
    p.add_argument(
        "--eager-max-T",
        type=int,
        default=100,
        help="skip eager timing above this T (default 100: the "
        "step-by-step peers take seconds per eager call)",
    )
    p.add_argument(
        "--cores",
        default=",".join(CORES),
        help="comma-separated subset of lstm,gru,vanilla (the default) and features "
        "(reset / return_all_states against plain unrolls); only the LSTMs have 3-layer rows",
    )
    p.add_argument("--no-deep", action="store_true", help="skip the 3-layer stacks")
    p.add_argument(
        "--deep-max-T",
        type=int,
        default=100,
        help="skip the 3-layer stacks above this T (default 100)",
    )
    p.add_argument(
        "--only",
        default=None,
        help="only contenders whose name contains one of these comma-separated strings",
    )
    p.add_argument("--quick", action="store_true", help="T=20,100, 3 samples, no 3-layer stacks")
    p.add_argument(
        "--first-reps",
        type=int,
        default=5,
        help="fresh first calls timed per contender (median; default 5, 1 with --quick)",
    )
    p.add_argument(
        "--first-reps-max-T",
        type=int,
        default=100,
        help="above this T time the first call once (default 100)",
    )
    p.add_argument(
        "--clear-our-caches",
        action="store_true",
        help="in-process first calls: clear our traced programs "
        "before each (the peers keep their caches)",
    )
    p.add_argument(
        "--cold-T",
        default="20",
        help="comma-separated T at which to time the first call in "
        "a new process (default 20; empty to skip)",
    )
    p.add_argument(
        "--cold-reps",
        type=int,
        default=3,
        help="new processes per contender and column (default 3, 1 with --quick)",
    )
    p.add_argument("--json", default=None, help="also write results here")
    p.add_argument(_COLD_CHILD, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cold_child:
        return _cold_child(args.cold_child)

    ts = [int(v) for v in args.T.split(",")] if args.T else list(DEFAULT_T)
    first_reps = args.first_reps
    if args.quick:
        ts = [t for t in ts if t <= 100] or ts[:1]
        args.no_deep = True
        first_reps = 1
        args.cold_reps = min(args.cold_reps, 1)
    cold_ts = {int(v) for v in args.cold_T.split(",") if v.strip()}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    cores = [c.strip() for c in args.cores.split(",") if c.strip()]
    for c in cores:
        if c not in CORES + EXTRA_CORES:
            p.error(f"unknown core {c!r}")
    for m in modes:
        if m not in ("graph", "eager"):
            p.error(f"unknown mode {m!r}")

    import keras  # pylint: disable=import-outside-toplevel
    import sonnet as snt  # pylint: disable=import-outside-toplevel

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__} "
        f"({keras.backend.backend()}), Sonnet {snt.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"B={BATCH} I={INPUT} H={HIDDEN} float32; median ms of interleaved "
        f"samples; x best = ratio to the best Sonnet/Keras row in that "
        f"column (< 1 is faster)"
    )
    started = time.perf_counter()
    _warm_up()
    rows: list[tuple[str, ...]] = []
    dump = {}
    for t in ts:
        layers = [1] if (args.no_deep or t > args.deep_max_T) else [1, 3]
        contenders = _contenders(layers, cores)
        if args.only:
            wanted = [w.strip() for w in args.only.split(",")]
            contenders = [c for c in contenders if any(w in c.name for w in wanted)]
        x = _inputs(t)
        if args.reps:
            reps = args.reps
        else:
            reps = 21 if t <= 20 else 15 if t <= 100 else 5
            if args.quick:
                reps = 3
        for mode in modes:
            graph = mode == "graph"
            if not graph and t > args.eager_max_T:
                print(f"T={t}: eager skipped (--eager-max-T {args.eager_max_T})", flush=True)
                continue
            mode_reps = reps if graph else max(2, reps // 2)
            t0 = time.perf_counter()
            res = _run_mode(
                contenders,
                x,
                graph,
                mode_reps,
                first_reps if t <= args.first_reps_max_T else 1,
                args.clear_our_caches,
            )
            print(
                f"T={t} {mode}: {mode_reps} samples in {time.perf_counter() - t0:.0f} s", flush=True
            )
            dump[f"T={t} {mode}"] = res
            _ratio_table(rows, contenders, res, ["fwd", "fwd+bwd"], mode, t)
            if graph:
                _ratio_table(rows, contenders, res, ["first fwd", "first fwd+bwd"], "first call", t)
        if t in cold_ts and args.cold_reps > 0 and "graph" in modes:
            t0 = time.perf_counter()
            res = _cold_first_calls(contenders, t, args.cold_reps)
            print(
                f"T={t} first call in a new process: {args.cold_reps} "
                f"samples in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
            dump[f"T={t} first call, new process"] = res
            _ratio_table(
                rows,
                [c for c in contenders if not c.deep],
                res,
                ["fwd", "fwd+bwd"],
                "first call, new process",
                t,
            )
    header = ("T", "mode", "contender", "fwd ms", "x best", "fwd+bwd ms", "x best")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(
            "| "
            + " | ".join(
                str(v).rjust(w) if i >= 3 else str(v).ljust(w)
                for i, (v, w) in enumerate(zip(r, widths))
            )
            + " |"
        )
    caches = (
        "our traced programs cleared and the peers' caches warm"
        if args.clear_our_caches
        else "everybody's caches warm"
    )
    print(
        f"\n(first call rows: the first call of a fresh tf.function - "
        f"tracing, graph optimisation and one run - median over "
        f"{first_reps} fresh build(s) for T <= {args.first_reps_max_T}, one "
        f"above, in this process with "
        f"{caches}"
        f"; 'new process' rows: median over "
        f"{args.cold_reps} new Python processes, nothing warm)\ntotal "
        f"{time.perf_counter() - started:.0f} s, load average now "
        f"{os.getloadavg()[0]:.2f}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dump, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
