"""Unrolling cores over sequences: static, dynamic and bidirectional.

Inputs and outputs are nests of ``[T, B, ...]`` tensors (``[B, T, ...]`` with
``time_major=False``); the state is any nest. Every structure operation goes
through :mod:`nestlib`: the state's :class:`nestlib.Spec` is built once and
each step flattens, masks and unflattens with it, so ``None`` leaves and empty
tuples in a state pass through untouched (they are kept out of the
``tf.while_loop`` variables and put back afterwards).

``sequence_length`` (an integer ``[B]`` vector) semantics:

* outputs at ``t >= sequence_length[b]`` are zeros;
* the final state of example ``b`` is its state after its last valid step
  (later steps leave it unchanged); a length of 0 returns the initial state;
* with ``reverse=True`` each example's valid prefix ``[0, length)`` is
  processed from its own last valid step backwards; outputs stay in input
  time order (the output at ``t`` is the one produced when reading input
  ``t``);
* ``past_length="repeat_last"`` repeats each example's last output (the one
  produced last: at ``length - 1``, or at 0 with ``reverse``) past its length
  instead of zeros, as Sonnet 2's ``dynamic_unroll`` does; a length of 0
  still gives zeros. State sequences follow the same rule.

State leaves of rank 0 (a step counter, a setting shared by the batch) have no
batch dimension: they are updated on every step, past any example's length too
(as Sonnet 2 does), and never reset.

``reset`` (a bool ``[T, B]`` tensor, ``[B, T]`` with ``time_major=False``)
marks where a new segment starts (an episode or document boundary): where
``reset[t, b]`` is true, example ``b``'s state is replaced by ``reset_state``
(default: ``initial_state``) before the step that reads input ``t``, so a reset
unroll gives what separate unrolls of the segments give. With ``reverse=True``
the segments are the same (``reset`` still marks their first step in input
time order) and each is processed backwards from its own last step. Marks at
``t >= sequence_length[b]`` are ignored.

``return_all_states=True`` adds a third result: the state after every step,
a nest shaped like the state with ``[T, B, ...]`` leaves (``[B, T, ...]`` with
``time_major=False``; ``[T]`` for rank-0 leaves), zeros past an example's
length like the outputs, in input time order.

Resets and state sequences use a core's whole-sequence ``unroll_fast_path``
where the core says it honours them (``unroll_fast_path_options``: rnn's
VanillaRNN, LSTM, GRU and the stacks of them do); other cores are stepped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

import nestlib
from rnn import _utils

__all__ = ["static_unroll", "dynamic_unroll", "bidirectional_unroll"]

# What the outputs (and state sequences) hold past an example's length.
PAST_LENGTH = ("zeros", "repeat_last")


@_utils.no_autograph
def _core_name(core: Any) -> str:
    name = getattr(core, "name", None)
    kind = type(core).__name__
    return f"{kind} {name!r}" if name and name != kind.lower() else kind


class _Prepared:
    """Validated, time-major inputs and the flattened initial state."""

    def __init__(
        self,
        core: Any,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: Any,
        time_major: bool,
        fn_name: str,
        need_static_t: bool,
        reset: Any = None,
        reset_state: Any = None,
        return_all_states: bool = False,
        past_length: str = "zeros",
    ):
        self.core = core
        self.fn_name = fn_name
        self.input_structure = input_sequence
        try:
            self.in_spec = nestlib.spec_of(input_sequence)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{fn_name}: bad input_sequence: {e}") from e
        leaves = self.in_spec.flatten(input_sequence)
        if not leaves:
            raise ValueError(
                f"{fn_name}: input_sequence has no tensors; it needs at least "
                "one [T, B, ...] tensor"
            )
        time_axis = 0 if time_major else 1
        layout = "[T, B, ...]" if time_major else "[B, T, ...]"
        tensors = []
        for path, leaf in zip(self.in_spec.paths, leaves):
            where = "input_sequence" + self.in_path(path)
            if leaf is None:
                raise TypeError(f"{fn_name}: {where} is None; expected a tensor")
            try:
                leaf = tf.convert_to_tensor(leaf)
            except (TypeError, ValueError) as e:
                raise TypeError(f"{fn_name}: {where} is not convertible to a tensor: {e}") from e
            if leaf.shape.rank is not None and leaf.shape.rank < 2:
                raise ValueError(
                    f"{fn_name}: {where} has shape {leaf.shape}; expected {layout} (rank >= 2)"
                )
            if not time_major:
                leaf = _swap_time_batch(leaf)
            tensors.append(leaf)
        self.inputs = tensors
        self.time_major = time_major

        # Number of time steps: static agreement, then a run-time check.
        static_ts = [
            (p, t.shape[0]) for p, t in zip(self.in_spec.paths, tensors) if t.shape.rank is not None
        ]
        known = [(p, n) for p, n in static_ts if n is not None]
        for p, n in known[1:]:
            if n != known[0][1]:
                raise ValueError(
                    f"{fn_name}: input_sequence tensors must have consistent number of "
                    f"time steps (dim {time_axis}): input_sequence{self.in_path(known[0][0])} "
                    f"has {known[0][1]} but input_sequence{self.in_path(p)} "
                    f"has {n}"
                )
        self.static_t: int | None = known[0][1] if known else None
        if self.static_t == 0:
            raise ValueError(
                f"{fn_name}: input_sequence must have at least a single time step, got "
                f"zero time steps (dim {time_axis} is 0)"
            )
        if need_static_t and self.static_t is None:
            raise ValueError(
                f"{fn_name}: input_sequence must have a statically known number of time "
                f"steps (dim {time_axis}); use dynamic_unroll"
            )
        if self.static_t is not None:
            self.num_steps = tf.constant(self.static_t, tf.int32)
        else:
            ts = [tf.shape(t, out_type=tf.int32)[0] for t in tensors]
            checks = [
                tf.debugging.assert_positive(
                    ts[0],
                    message=f"{fn_name}: input_sequence must have at least a single time "
                    "step, got zero time steps",
                )
            ]
            for t in ts[1:]:
                checks.append(
                    tf.debugging.assert_equal(
                        t,
                        ts[0],
                        message=f"{fn_name}: input_sequence tensors must have consistent "
                        "number of time steps",
                    )
                )
            with tf.control_dependencies(checks):
                self.num_steps = tf.identity(ts[0])
                # The unrolls slice step 0 before their loops; gated on the checks, that
                # slice cannot run first and fail with an out-of-bounds error instead.
                self.inputs = [tf.identity(t) for t in self.inputs]

        # Batch size of the inputs.
        batch_axis = 1 if time_major else 0
        batches = [
            (p, t.shape[1])
            for p, t in zip(self.in_spec.paths, tensors)
            if t.shape.rank is not None and t.shape[1] is not None
        ]
        for p, b in batches[1:]:
            if b != batches[0][1]:
                raise ValueError(
                    f"{fn_name}: inconsistent batch size (dim {batch_axis}): "
                    f"input_sequence{self.in_path(batches[0][0])} has "
                    f"{batches[0][1]} but input_sequence{self.in_path(p)} has {b}"
                )
        self.static_batch: int | None = batches[0][1] if batches else None

        # The initial state.
        self.state_structure = initial_state
        self.st_spec = nestlib.spec_of(initial_state)
        flat_state = self.st_spec.flatten(initial_state)
        self.state_leaves: list[tf.Tensor | None] = []
        for path, leaf in zip(self.st_spec.paths, flat_state):
            if leaf is None:
                self.state_leaves.append(None)
                continue
            try:
                leaf = tf.convert_to_tensor(leaf)
            except (TypeError, ValueError) as e:
                raise TypeError(
                    f"{fn_name}: initial_state{self.st_path(path)} is not "
                    f"convertible to a tensor: {e}"
                ) from e
            self.state_leaves.append(leaf)
            if (
                self.static_batch is not None
                and leaf.shape.rank
                and leaf.shape[0] is not None
                and leaf.shape[0] != self.static_batch
            ):
                hint = (
                    " If input_sequence is batch-major [B, T, ...], pass time_major=False."
                    if time_major
                    else " If input_sequence is time-major [T, B, ...], pass time_major=True."
                )
                raise ValueError(
                    f"{fn_name}: the batch size of input_sequence (dim "
                    f"{batch_axis}) is {self.static_batch} but "
                    f"initial_state{self.st_path(path)} has batch size "
                    f"{leaf.shape[0]} (shape {leaf.shape}).{hint}"
                )
        self.batch_size = (
            self.static_batch if self.static_batch is not None else tf.shape(tensors[0])[1]
        )

        # sequence_length.
        self.sequence_length: tf.Tensor | None = None
        if sequence_length is not None:
            self.sequence_length = self._check_lengths(sequence_length)

        # Resets and state sequences.
        if not isinstance(return_all_states, bool):
            raise TypeError(
                f"{fn_name}: return_all_states must be a bool, got "
                f"{type(return_all_states).__name__}"
            )
        self.return_all_states = return_all_states
        if past_length not in PAST_LENGTH:
            raise ValueError(
                f"{fn_name}: past_length must be one of {', '.join(map(repr, PAST_LENGTH))}, "
                f"got {past_length!r}"
            )
        self.repeat_last = past_length == "repeat_last"
        self.reset: tf.Tensor | None = None
        self.reset_leaves: list[tf.Tensor | None] = []
        if reset is not None:
            self.reset = self._check_reset(reset)
            self.reset_leaves = self._check_reset_state(reset_state)
        elif reset_state is not None:
            raise ValueError(f"{fn_name}: reset_state is given but reset is None")

    @_utils.no_autograph
    def in_path(self, path: Sequence[Any]) -> str:
        return "" if not path else nestlib.format_path(path, self.input_structure)

    @_utils.no_autograph
    def st_path(self, path: Sequence[Any]) -> str:
        return "" if not path else nestlib.format_path(path, self.state_structure)

    @_utils.no_autograph
    def _check_lengths(self, sequence_length: Any) -> tf.Tensor:
        fn_name = self.fn_name
        lengths = _utils.sequence_lengths(fn_name, sequence_length, self.static_batch)
        value = tf.get_static_value(lengths)
        if value is not None:
            if (value < 0).any() or (self.static_t is not None and (value > self.static_t).any()):
                raise ValueError(
                    f"{fn_name}: sequence_length values must be in [0, T="
                    f"{self.static_t}], got {value.tolist()}"
                )
            return lengths
        checks = [
            tf.debugging.assert_non_negative(
                lengths, message=f"{fn_name}: negative sequence_length"
            ),
            tf.debugging.assert_less_equal(
                lengths,
                self.num_steps,
                message=f"{fn_name}: sequence_length exceeds the number of time steps",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(lengths)

    @_utils.no_autograph
    def _check_reset(self, reset: Any) -> tf.Tensor:
        """``reset`` as a time-major ``[T, B]`` bool tensor, checked."""
        fn_name = self.fn_name
        layout = "[T, B]" if self.time_major else "[B, T]"
        try:
            mask = tf.convert_to_tensor(reset)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{fn_name}: reset is not convertible to a tensor: {e}") from e
        if mask.dtype != tf.bool:
            raise TypeError(
                f"{fn_name}: reset must be a bool {layout} tensor, got dtype {mask.dtype.name}"
            )
        if mask.shape.rank is not None and mask.shape.rank != 2:
            raise ValueError(
                f"{fn_name}: reset must be a bool {layout} tensor, got shape {mask.shape}"
            )
        given = mask.shape
        if not self.time_major:
            mask = tf.transpose(mask)
        shape = mask.shape if mask.shape.rank is not None else tf.TensorShape([None, None])
        for found, expected, what in [
            (shape[0], self.static_t, "T"),
            (shape[1], self.static_batch, "B"),
        ]:
            if found is not None and expected is not None and found != expected:
                raise ValueError(
                    f"{fn_name}: reset must be a bool {layout} tensor matching "
                    f"input_sequence ({what}={expected}), got shape {given}"
                )
        if all(d is not None for d in shape) and None not in (self.static_t, self.static_batch):
            return mask
        checks = [
            tf.debugging.assert_equal(
                tf.shape(mask, out_type=tf.int32),
                tf.stack([self.num_steps, tf.cast(self.batch_size, tf.int32)]),
                message=f"{fn_name}: reset must be a bool {layout} tensor matching input_sequence",
            )
        ]
        with tf.control_dependencies(checks):
            return tf.identity(mask)

    @_utils.no_autograph
    def _check_reset_state(self, reset_state: Any) -> list[tf.Tensor | None]:
        """The flat leaves of ``reset_state`` (default ``initial_state``), checked."""
        if reset_state is None:
            return list(self.state_leaves)
        fn_name = self.fn_name
        try:
            flat = self.st_spec.flatten(reset_state)
        except (TypeError, ValueError) as e:
            raise type(e)(
                f"{fn_name}: reset_state must have the structure of initial_state: {e}"
            ) from e
        leaves: list[tf.Tensor | None] = []
        for path, init, leaf in zip(self.st_spec.paths, self.state_leaves, flat):
            leaves.append(
                _leaf_like(
                    fn_name, "reset_state", "initial_state", self.st_path(path), init, leaf, True
                )
            )
        return leaves

    @_utils.no_autograph
    def segment_starts(self, reverse: bool) -> tf.Tensor | None:
        """Per processed step, whether to reset first: ``[T, B]`` bool, or None.

        Forwards, that is ``reset`` itself; backwards, a segment is entered at
        its last step, which is the step before a mark (or the example's last
        step, where its initial state is used anyway). Marks past an example's
        length are dropped either way.
        """
        if self.reset is None:
            return None
        lengths = self.sequence_length
        mask = _utils.reset_before_steps(self.reset, lengths, self.num_steps, reverse)
        if reverse:
            mask = _reverse_time(mask, lengths)
        return mask

    @_utils.no_autograph
    def inputs_structure(self, leaves: Sequence[tf.Tensor]) -> Any:
        return self.in_spec.unflatten(list(leaves))


@_utils.no_autograph
def _swap_time_batch(x: tf.Tensor) -> tf.Tensor:
    rank = x.shape.rank
    if rank is None:
        rank = tf.rank(x)
        perm = tf.concat([[1, 0], tf.range(2, rank)], axis=0)
    else:
        perm = [1, 0] + list(range(2, rank))
    return tf.transpose(x, perm)


@_utils.no_autograph
def _reverse_time(x: tf.Tensor, lengths: tf.Tensor | None) -> tf.Tensor:
    if lengths is None:
        return tf.reverse(x, axis=[0])
    return tf.reverse_sequence(x, lengths, seq_axis=0, batch_axis=1)


@_utils.no_autograph
def _zeros_where_invalid(valid: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``x`` with the examples past their length zeroed (rank-0 ``x`` as it is)."""
    if x.shape.rank == 0:
        return x
    return tf.where(_batch_mask(valid, x), x, tf.zeros_like(x))


@_utils.no_autograph
def _batch_mask(valid: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Reshapes a ``[B]`` bool vector to broadcast against ``like``."""
    rank = like.shape.rank
    return tf.reshape(valid, [-1] + [1] * (rank - 1))


class _Stepper:
    """Runs one checked, masked step of a core on flat state leaves."""

    def __init__(self, prep: _Prepared, reverse: bool):
        self.prep = prep
        self.core = prep.core
        self.none_at = [leaf is None for leaf in prep.state_leaves]
        self.out_spec: nestlib.Spec | None = None
        self.out_none_at: list[bool] = []
        self.starts = prep.segment_starts(reverse)
        self.reset_dense = self.dense(prep.reset_leaves) if self.starts is not None else []

    @_utils.no_autograph
    def dense(self, leaves: Sequence[tf.Tensor | None]) -> list[tf.Tensor]:
        return [x for x, none in zip(leaves, self.none_at) if not none]

    @_utils.no_autograph
    def full(self, dense: Sequence[tf.Tensor]) -> list[tf.Tensor | None]:
        it = iter(dense)
        return [None if none else next(it) for none in self.none_at]

    def step(
        self, t: Any, inputs_t: Any, state_dense: Sequence[tf.Tensor]
    ) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        """Returns (dense output leaves, dense next-state leaves).

        Only the core call is left to AutoGraph (so a user's core written
        with Python control flow is converted as usual); the structure work
        around it is not converted.
        """
        state_dense = self.reset_where_marked(t, state_dense)
        state = self.state_in(state_dense)
        output, next_state = self.core(inputs_t, state)
        return self.state_out(t, output, next_state, state_dense)

    @_utils.no_autograph
    def reset_where_marked(self, t: Any, state_dense: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """The state with marked examples' leaves replaced by ``reset_state``'s."""
        if self.starts is None:
            return list(state_dense)
        marked = self.starts[t]
        return [
            tf.where(_batch_mask(marked, s), r, s) if s.shape.rank != 0 else s
            for s, r in zip(state_dense, self.reset_dense)
        ]

    @_utils.no_autograph
    def state_in(self, state_dense: Sequence[tf.Tensor]) -> Any:
        return self.prep.st_spec.unflatten(self.full(state_dense))

    @_utils.no_autograph
    def state_out(
        self, t: Any, output: Any, next_state: Any, state_dense: Sequence[tf.Tensor]
    ) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        prep = self.prep
        flat_next = self._check_next_state(next_state, state_dense)
        if self.out_spec is None:
            self.out_spec = nestlib.spec_of(output)
            flat_out = self.out_spec.flatten(output)
            self.out_none_at = [x is None for x in flat_out]
        else:
            try:
                flat_out = self.out_spec.flatten(output)
            except (TypeError, ValueError) as e:
                raise type(e)(
                    f"{prep.fn_name}: {_core_name(self.core)} returned outputs "
                    f"whose structure changed between steps: {e}"
                ) from e
        out_dense = [
            tf.convert_to_tensor(x) for x, none in zip(flat_out, self.out_none_at) if not none
        ]
        next_dense = self.dense(flat_next)
        if prep.sequence_length is not None:
            valid = t < prep.sequence_length
            out_dense = [_zeros_where_invalid(valid, o) for o in out_dense]
            next_dense = [
                tf.where(_batch_mask(valid, n), n, p) if n.shape.rank != 0 else n
                for n, p in zip(next_dense, state_dense)
            ]
            if prep.return_all_states:
                out_dense += [_zeros_where_invalid(valid, n) for n in next_dense]
        elif prep.return_all_states:
            out_dense += next_dense
        return out_dense, next_dense

    @_utils.no_autograph
    def _check_next_state(
        self, next_state: Any, state_dense: Sequence[tf.Tensor]
    ) -> list[tf.Tensor | None]:
        prep = self.prep
        who = f"{prep.fn_name}: {_core_name(self.core)}"
        try:
            flat_next = prep.st_spec.flatten(next_state)
        except (TypeError, ValueError) as e:
            raise type(e)(
                f"{who} returned a next_state whose structure differs from prev_state: {e}"
            ) from e
        prev_full = self.full(state_dense)
        result: list[tf.Tensor | None] = []
        for path, prev, new in zip(prep.st_spec.paths, prev_full, flat_next):
            result.append(
                _leaf_like(who, "next_state", "prev_state", prep.st_path(path), prev, new, False)
            )
        return result


@_utils.no_autograph
def _leaf_like(
    who: str, name: str, ref_name: str, where: str, ref: Any, leaf: Any, given: bool
) -> tf.Tensor | None:
    """``leaf`` (of ``name``) as a tensor, checked against ``ref`` (of ``ref_name``).

    Both None, or a tensor of ``ref``'s dtype and a compatible shape. A state
    the user ``given`` is converted with ``ref``'s dtype as a hint (a Python
    number becomes that dtype); a core's next state is converted as it is.
    """
    if ref is None or leaf is None:
        if ref is not leaf:
            kind = "None" if leaf is None else "a tensor"
            ref_kind = "None" if ref is None else "a tensor"
            rule = "" if given else "; None state leaves must stay None"
            raise TypeError(
                f"{who}: {name}{where} is {kind} but {ref_name}{where} is {ref_kind}{rule}"
            )
        return None
    if given:
        try:
            leaf = tf.convert_to_tensor(leaf, dtype_hint=ref.dtype)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{who}: {name}{where} is not convertible to a tensor: {e}") from e
    else:
        leaf = tf.convert_to_tensor(leaf)
    if leaf.dtype != ref.dtype:
        raise TypeError(
            f"{who}: {name}{where} has dtype {leaf.dtype.name} but "
            f"{ref_name}{where} has dtype {ref.dtype.name}"
        )
    if not leaf.shape.is_compatible_with(ref.shape):
        raise ValueError(
            f"{who}: {name}{where} has shape {leaf.shape} but "
            f"{ref_name}{where} has shape {ref.shape}"
        )
    return leaf


@_utils.no_autograph
def _relaxed(a: tf.TensorShape, b: tf.TensorShape) -> tf.TensorShape:
    if a.rank is None or b.rank is None or a.rank != b.rank:
        return tf.TensorShape(None)
    return tf.TensorShape([x if x == y else None for x, y in zip(a.as_list(), b.as_list())])


def _fast_path_options(core: Any) -> frozenset[str]:
    """The options ``core.unroll_fast_path`` honours.

    Declared by ``unroll_fast_path_options`` where the class that declares
    them also defines (or inherits) that ``unroll_fast_path``: a subclass
    that overrides the method of a core with options, without declaring its
    own, gets none (its method may not take them).
    """
    mro = type(core).__mro__
    owner = next((c for c in mro if "unroll_fast_path" in vars(c)), None)
    declarer = next((c for c in mro if "unroll_fast_path_options" in vars(c)), None)
    if owner is None or declarer is None or not issubclass(declarer, owner):
        return frozenset()
    return frozenset(getattr(core, "unroll_fast_path_options", ()))


def _try_fast_path(
    prep: _Prepared, inputs: Sequence[tf.Tensor], reverse: bool
) -> tuple[Any, Any] | None:
    fast = getattr(prep.core, "unroll_fast_path", None)
    if not callable(fast):
        return None
    supported = _fast_path_options(prep.core)
    options: dict[str, Any] = {}
    if prep.reset is not None:
        if "reset" not in supported:
            return None
        options["reset"] = prep.reset
        options["reset_state"] = prep.st_spec.unflatten(prep.reset_leaves)
    if prep.return_all_states:
        if "return_all_states" not in supported:
            return None
        options["return_all_states"] = True
    result = fast(
        prep.inputs_structure(inputs),
        prep.state_structure,
        prep.sequence_length,
        reverse,
        **options,
    )
    if result is None:
        return None
    return _check_fast_result(prep, result)


@_utils.no_autograph
def _check_fast_result(prep: _Prepared, result: Any) -> tuple[Any, ...]:
    who = f"{prep.fn_name}: {_core_name(prep.core)}.unroll_fast_path"
    if len(result) != 2 + prep.return_all_states:
        raise ValueError(
            f"{who} returned {len(result)} results; expected "
            + ("3 (outputs, final state, state sequence)" if prep.return_all_states else "2")
        )
    for name, state in zip(("a final state", "a state sequence"), result[1:]):
        try:
            prep.st_spec.flatten(state)
        except (TypeError, ValueError) as e:
            raise type(e)(
                f"{who} returned {name} whose structure differs from initial_state: {e}"
            ) from e
    return tuple(result)


@_utils.no_autograph
def _finish(
    prep: _Prepared, reverse: bool, outputs: Any, final_state: Any, state_sequence: Any = None
) -> tuple[Any, ...]:
    lengths = prep.sequence_length
    if prep.repeat_last and lengths is not None:
        outputs, state_sequence = nestlib.map_structure(
            lambda x: x if x is None else _repeat_last(x, lengths, reverse),
            (outputs, state_sequence),
        )
    if not prep.time_major:
        outputs, state_sequence = nestlib.map_structure(
            lambda x: x if x is None or x.shape.rank == 1 else _swap_time_batch(x),
            (outputs, state_sequence),
        )
    if prep.return_all_states:
        return outputs, final_state, state_sequence
    return outputs, final_state


@_utils.no_autograph
def _repeat_last(x: tf.Tensor, lengths: tf.Tensor, reverse: bool) -> tf.Tensor:
    """``[T, B, ...]`` with each example's last valid entry repeated past its length.

    The last valid entry is the one produced last: at ``length - 1``, or at
    0 when reading backwards. A length of 0 keeps its zeros, as Sonnet does.
    A ``[T]`` sequence (of a rank-0 leaf) is returned as it is.
    """
    if x.shape.rank == 1:
        return x
    last_step = tf.zeros_like(lengths) if reverse else tf.maximum(lengths - 1, 0)
    batch = tf.range(tf.shape(lengths)[0], dtype=lengths.dtype)
    last = tf.gather_nd(x, tf.stack([last_step, batch], axis=1))  # [B, ...]
    past = tf.logical_and(
        tf.logical_not(tf.transpose(tf.sequence_mask(lengths, tf.shape(x)[0]))),
        (lengths > 0)[tf.newaxis, :],
    )  # [T, B]
    past = tf.reshape(past, tf.concat([tf.shape(past), tf.ones([x.shape.rank - 2], tf.int32)], 0))
    return tf.where(past, last[tf.newaxis], x)


def _module_variables(core: Any) -> Sequence[Any]:
    """The variables of ``core`` and its submodules where it is a ``tf.Module``.

    The unrolls read them once for all the steps after the first (see
    :func:`rnn._utils.read_once`; cores that are not ours read theirs as
    they always do).
    """
    return core.variables if isinstance(core, tf.Module) else ()


@_utils.no_autograph
def _prepare_inputs(prep: _Prepared, reverse: bool) -> list[tf.Tensor]:
    if not reverse:
        return list(prep.inputs)
    return [_reverse_time(x, prep.sequence_length) for x in prep.inputs]


@_utils.no_autograph
def _unreverse(
    prep: _Prepared, stepper: _Stepper, dense_outputs: list[tf.Tensor], reverse: bool
) -> tuple[Any, Any]:
    """The output sequence and the state sequence (or None) as nests, in input time order."""
    if reverse:
        dense_outputs = [
            _reverse_time(x, prep.sequence_length if x.shape.rank != 1 else None)
            for x in dense_outputs
        ]
    # Both unrollers step the core at least once (zero time steps are refused),
    # and the first step sets the output Spec.
    assert stepper.out_spec is not None, "the core has not been stepped"
    it = iter(dense_outputs)
    flat = [None if none else next(it) for none in stepper.out_none_at]
    outputs = stepper.out_spec.unflatten(flat)
    if not prep.return_all_states:
        return outputs, None
    return outputs, stepper.state_in(list(it))


def dynamic_unroll(
    core: Any,
    input_sequence: Any,
    initial_state: Any,
    sequence_length: Any = None,
    reverse: bool = False,
    time_major: bool = True,
    parallel_iterations: int = 1,
    swap_memory: bool = False,
    *,
    reset: Any = None,
    reset_state: Any = None,
    return_all_states: bool = False,
    past_length: str = "zeros",
) -> tuple[Any, ...]:
    """Unrolls ``core`` over ``input_sequence`` with a ``tf.while_loop``.

    The number of time steps may be unknown until run time. Returns
    ``(output_sequence, final_state)``; outputs are stacked on the time axis
    in the same layout as the inputs. See the module docstring for the
    ``sequence_length`` and ``reverse`` semantics. When the core has an
    ``unroll_fast_path`` that applies, it is used instead of the loop.

    ``reset`` (bool ``[T, B]``, ``[B, T]`` when not time-major) restarts an
    example's state from ``reset_state`` (default ``initial_state``) before
    each marked step; ``return_all_states=True`` returns ``(output_sequence,
    final_state, state_sequence)``, the states after every step (see the
    module docstring). ``past_length="repeat_last"`` fills the outputs past
    each example's length with its last output instead of zeros (Sonnet 2's
    behaviour).

    >>> import rnn
    >>> core = rnn.VanillaRNN(2)
    >>> out, state = dynamic_unroll(core, tf.ones([3, 4, 5]),
    ...                             core.initial_state(4),
    ...                             sequence_length=[3, 2, 1, 0])
    >>> out.shape.as_list()
    [3, 4, 2]
    >>> float(tf.reduce_sum(tf.abs(out[2, 1:])))
    0.0

    Two episodes per example, the second starting at step 2 for example 0:

    >>> reset = tf.constant([[False] * 4, [False] * 4, [True, False, False, False]])
    >>> out, state, states = dynamic_unroll(core, tf.ones([3, 4, 5]),
    ...                                     core.initial_state(4), reset=reset,
    ...                                     return_all_states=True)
    >>> bool(tf.reduce_all(out[2, 0] == out[0, 0])), states.shape.as_list()
    (True, [3, 4, 2])
    """
    prep = _Prepared(
        core,
        input_sequence,
        initial_state,
        sequence_length,
        time_major,
        "dynamic_unroll",
        need_static_t=False,
        reset=reset,
        reset_state=reset_state,
        return_all_states=return_all_states,
        past_length=past_length,
    )
    fast = _try_fast_path(prep, prep.inputs, reverse)
    if fast is not None:
        return _finish(prep, reverse, *fast)
    inputs = _prepare_inputs(prep, reverse)
    stepper = _Stepper(prep, reverse)
    state0 = stepper.dense(prep.state_leaves)
    first_inputs = prep.inputs_structure([x[0] for x in inputs])
    out0, state1 = stepper.step(tf.constant(0, tf.int32), first_inputs, state0)

    num_steps = prep.num_steps
    input_tas = [
        tf.TensorArray(
            x.dtype, size=num_steps, element_shape=x.shape[1:], clear_after_read=True
        ).unstack(x)
        for x in inputs
    ]
    output_tas = [
        tf.TensorArray(o.dtype, size=num_steps, element_shape=o.shape, clear_after_read=True).write(
            0, o
        )
        for o in out0
    ]
    invariants = [_relaxed(a.shape, b.shape) for a, b in zip(state0, state1)]

    def cond(
        t: tf.Tensor, unused_tas: list[tf.TensorArray], unused_state: list[tf.Tensor]
    ) -> tf.Tensor:
        return t < num_steps

    def body(
        t: tf.Tensor, tas: list[tf.TensorArray], state: list[tf.Tensor]
    ) -> tuple[tf.Tensor, list[tf.TensorArray], list[tf.Tensor]]:
        x_t = prep.inputs_structure([ta.read(t) for ta in input_tas])
        out_t, next_state = stepper.step(t, x_t, state)
        tas = [ta.write(t, o) for ta, o in zip(tas, out_t)]
        return t + 1, tas, next_state

    if prep.static_t == 1:
        final_dense, tas = state1, output_tas
    else:
        with _utils.read_once(_module_variables(core)):  # (the first step built them)
            _, tas, final_dense = tf.while_loop(
                cond,
                body,
                (tf.constant(1, tf.int32), output_tas, state1),
                shape_invariants=(
                    tf.TensorShape([]),
                    [tf.TensorShape(None)] * len(output_tas),
                    invariants,
                ),
                parallel_iterations=parallel_iterations,
                swap_memory=swap_memory,
                maximum_iterations=num_steps,
            )
    dense_outputs = []
    for ta, o in zip(tas, out0):
        stacked = ta.stack()
        stacked.set_shape(tf.TensorShape([prep.static_t]).concatenate(o.shape))
        dense_outputs.append(stacked)
    outputs, states = _unreverse(prep, stepper, dense_outputs, reverse)
    final_state = stepper.state_in(final_dense)
    return _finish(prep, reverse, outputs, final_state, states)


def static_unroll(
    core: Any,
    input_sequence: Any,
    initial_state: Any,
    sequence_length: Any = None,
    reverse: bool = False,
    time_major: bool = True,
    parallel_iterations: int = 1,
    swap_memory: bool = False,
    *,
    reset: Any = None,
    reset_state: Any = None,
    return_all_states: bool = False,
    past_length: str = "zeros",
) -> tuple[Any, ...]:
    """Unrolls ``core`` with a Python loop; the number of steps must be static.

    Same arguments, results and semantics as :func:`dynamic_unroll`
    (``parallel_iterations`` and ``swap_memory`` are accepted for a uniform
    signature and have no effect). A core's ``unroll_fast_path`` is used here
    too when it applies; such a fast path may itself contain a loop (the
    fused LSTM and the layer-by-layer DeepRNN path do).

    >>> import rnn
    >>> core = rnn.GRU(2)
    >>> out, state = static_unroll(core, tf.ones([4, 3, 2]), core.initial_state(4),
    ...                            time_major=False)
    >>> out.shape.as_list(), state.shape.as_list()
    ([4, 3, 2], [4, 2])
    """
    del parallel_iterations, swap_memory
    prep = _Prepared(
        core,
        input_sequence,
        initial_state,
        sequence_length,
        time_major,
        "static_unroll",
        need_static_t=True,
        reset=reset,
        reset_state=reset_state,
        return_all_states=return_all_states,
        past_length=past_length,
    )
    num_steps = prep.static_t
    assert num_steps is not None, "_Prepared(need_static_t=True) refuses an unknown T"
    fast = _try_fast_path(prep, prep.inputs, reverse)
    if fast is not None:
        return _finish(prep, reverse, *fast)
    inputs = _prepare_inputs(prep, reverse)
    per_step = [tf.unstack(x, num=num_steps, axis=0) for x in inputs]
    stepper = _Stepper(prep, reverse)
    state = stepper.dense(prep.state_leaves)
    outputs_per_step = []
    with contextlib.ExitStack() as scope:
        for t in range(num_steps):
            x_t = prep.inputs_structure([steps[t] for steps in per_step])
            out_t, state = stepper.step(tf.constant(t, tf.int32), x_t, state)
            outputs_per_step.append(out_t)
            if t == 0:  # (the first step built the variables)
                scope.enter_context(_utils.read_once(_module_variables(core)))
    dense_outputs = [tf.stack(list(column), axis=0) for column in zip(*outputs_per_step)]
    outputs, states = _unreverse(prep, stepper, dense_outputs, reverse)
    final_state = stepper.state_in(state)
    return _finish(prep, reverse, outputs, final_state, states)


def bidirectional_unroll(
    forward_core: Any,
    backward_core: Any,
    input_sequence: Any,
    forward_initial_state: Any,
    backward_initial_state: Any,
    sequence_length: Any = None,
    time_major: bool = True,
    parallel_iterations: int = 1,
    swap_memory: bool = False,
    *,
    reset: Any = None,
    forward_reset_state: Any = None,
    backward_reset_state: Any = None,
    return_all_states: bool = False,
    past_length: str = "zeros",
) -> tuple[tuple[Any, Any], ...]:
    """Runs ``forward_core`` forwards and ``backward_core`` backwards in time.

    Returns ``((forward_outputs, backward_outputs), (forward_final_state,
    backward_final_state))``. Both output sequences are in input time order,
    so at each ``t`` the forward output has read inputs ``0..t`` and the
    backward output has read ``t..length-1``; with ``sequence_length`` both
    are zero for ``t >= length``. Concatenate them on the last axis for the
    usual bidirectional features. ``reset`` marks segment starts for both
    directions (each core's state is replaced by its own ``*_reset_state``,
    default its initial state); ``return_all_states=True`` adds a third pair,
    the two state sequences (see :func:`dynamic_unroll`).

    >>> import rnn
    >>> fw, bw = rnn.LSTM(2), rnn.GRU(3)
    >>> (out_f, out_b), (s_f, s_b) = bidirectional_unroll(
    ...     fw, bw, tf.ones([5, 2, 4]), fw.initial_state(2), bw.initial_state(2))
    >>> out_f.shape.as_list(), out_b.shape.as_list()
    ([5, 2, 2], [5, 2, 3])
    """
    kwargs = dict(
        sequence_length=sequence_length,
        time_major=time_major,
        parallel_iterations=parallel_iterations,
        swap_memory=swap_memory,
        reset=reset,
        return_all_states=return_all_states,
        past_length=past_length,
    )
    forward = dynamic_unroll(
        forward_core,
        input_sequence,
        forward_initial_state,
        reverse=False,
        reset_state=forward_reset_state,
        **kwargs,
    )
    backward = dynamic_unroll(
        backward_core,
        input_sequence,
        backward_initial_state,
        reverse=True,
        reset_state=backward_reset_state,
        **kwargs,
    )
    return tuple(zip(forward, backward))
