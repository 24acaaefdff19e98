"""The Differentiable Neural Computer as an :class:`rnn.RNNCore`.

The controller is any core (an ``rnn.LSTM(64)`` by default; a GRU or a DeepRNN
work unchanged), so the DNC's state nests whatever state the controller has
inside its own namedtuples:

``DNCState(access_output [B, R, W], access_state=AccessState(memory [B, N, W],
read_weights [B, R, N], write_weights [B, Wh, N],
linkage=TemporalLinkageState(link [B, Wh, N, N], precedence_weights [B, Wh, N]),
usage [B, N]), controller_state=...)``.

>>> import tensorflow as tf
>>> import rnn
>>> dnc = DNC(output_size=3, memory_size=8, word_size=4, num_reads=2)
>>> out, state = dnc(tf.ones([2, 5]), dnc.initial_state(2))
>>> out.shape.as_list(), state.access_state.linkage.link.shape.as_list()
([2, 3], [2, 1, 8, 8])
"""

from __future__ import annotations

import collections
from typing import Any

import tensorflow as tf

import nestlib
from rnn._checks import aliased, float_dtype, initializer, initializer_config, positive_int
from rnn._utils import cast_variables
from rnn.base import RNNCore, call_initial_state, is_core
from rnn.dnc.access import AccessState, MemoryAccess
from rnn.dnc.addressing import TemporalLinkageState
from rnn.linear import Linear

__all__ = ["DNC", "DNCState", "AccessState", "TemporalLinkageState"]


class DNCState(
    collections.namedtuple("DNCState", ("access_output", "access_state", "controller_state"))
):
    """State of :class:`DNC`: the last read words, the memory state, the controller state.

    >>> s = DNC(2, memory_size=4, word_size=3, num_reads=1).initial_state(1)
    >>> s.access_output.shape.as_list(), type(s.access_state).__name__
    ([1, 1, 3], 'AccessState')
    """

    __slots__ = ()


def _flatten_batch(name: str, structure: Any) -> tf.Tensor:
    """Concatenates every leaf of a nest of ``[B, ...]`` tensors into ``[B, F]``."""
    leaves = [tf.convert_to_tensor(x) for x in nestlib.flatten(structure) if x is not None]
    if not leaves:
        raise ValueError(f"{name} has no tensors")
    flat = []
    for leaf in leaves:
        if leaf.shape.rank is None or leaf.shape.rank < 1:
            raise ValueError(
                f"{name} leaves need a leading batch dimension, got shape {leaf.shape}"
            )
        if leaf.shape.rank == 1:
            raise ValueError(f"{name} leaves must be [batch, features...], got shape {leaf.shape}")
        features = leaf.shape[1:].num_elements()
        if features is None:
            raise ValueError(
                f"{name} leaves need static feature dimensions, got shape {leaf.shape}"
            )
        flat.append(tf.reshape(leaf, [-1, features]))
    return flat[0] if len(flat) == 1 else tf.concat(flat, axis=1)


class DNC(RNNCore):
    """Differentiable Neural Computer (Graves et al., Nature 2016).

    One step: the controller reads ``concat(inputs, previous read words)``;
    its output drives the memory access (interface projection, usage and
    allocation, content addressing, erase-then-add write, temporal links,
    read weights, read); the output is ``Linear(output_size)`` of
    ``concat(controller output, read words)``, clipped to
    ``[-clip_value, clip_value]`` when ``clip_value`` is given.

    Args:
      output_size: size of the output vector.
      controller: any core (see :func:`rnn.base.is_core`: an
        :class:`rnn.RNNCore`, a Sonnet 2 core, ...); ``rnn.LSTM(64)`` when
        ``None``. A controller whose ``initial_state`` takes no ``dtype`` (a
        Sonnet core) makes its state in its own dtype.
      memory_size: number of memory slots ``N``.
      word_size: width ``W`` of each slot.
      num_reads: read heads ``R``.
      num_writes: write heads ``Wh``.
      clip_value: optional bound on the output's absolute value.
      masked_content: masked content-based addressing (Csordás &
        Schmidhuber, "Improving Differentiable Neural Computers Through
        Memory Masking, De-allocation, and Link Distribution Sharpness
        Control", ICLR 2019): every read and write head also emits a mask
        ``m`` in ``[0, 1]^W`` (a sigmoid) and looks up ``D(k ⊙ m, M[i] ⊙ m)``,
        so a key can match on part of a word (the interface grows by
        ``(R + Wh) W``).
      deallocate: de-allocation (same paper): the memory is multiplied by
        the retention vector ``psi_t`` before each write, so the slots the
        free gates release are wiped and no longer match content lookups.
      sharpen_links: sharpness enhancement of the temporal link
        distributions (same paper): the forward and backward weightings
        become ``S(L w, s)_i = (L w)_i^s / sum_j (L w)_j^s`` with a learned
        exponent ``s >= 1`` per read head, write head and direction (the
        interface grows by ``2 R Wh``). All three are off by default and
        leave the state's structure unchanged; see ``docs/dnc.md``.
      dtype: the variables' dtype (the output and interface layers', and the
        default controller's); None: the first inputs' dtype. Also
        :meth:`initial_state` 's default dtype (else float32). With float32
        variables the DNC also runs float16 or bfloat16 inputs and state
        (``initial_state(batch_size, dtype=tf.float16)``), casting the
        variables on each call (mixed precision; give a controller of your
        own ``dtype=tf.float32`` as well); the memory's similarity, softmaxes
        and allocation are computed in float32 (see :mod:`rnn.dnc.addressing`).
      kernel_initializer, bias_initializer: initializers of the output and
        interface layers (default: truncated normal with standard deviation
        ``1/sqrt(fan_in)``, zeros); a name, a Keras initializer or a callable
        ``(shape, dtype) -> value``. ``w_init`` / ``b_init`` (Sonnet's names)
        are accepted as aliases. The controller has its own.

    Every argument after ``output_size`` is keyword-only.

    >>> import rnn
    >>> dnc = DNC(4, controller=rnn.GRU(8), memory_size=5, word_size=3)
    >>> out, _ = dnc(tf.zeros([1, 2]), dnc.initial_state(1))
    >>> out.shape.as_list()
    [1, 4]
    """

    def __init__(
        self,
        output_size: int,
        *,
        controller: Any = None,
        memory_size: int = 16,
        word_size: int = 16,
        num_reads: int = 4,
        num_writes: int = 1,
        clip_value: float | None = None,
        masked_content: bool = False,
        deallocate: bool = False,
        sharpen_links: bool = False,
        dtype: Any = None,
        kernel_initializer: Any = None,
        bias_initializer: Any = None,
        w_init: Any = None,
        b_init: Any = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        output_size = positive_int("output_size", output_size)
        self._dtype = float_dtype("dtype", dtype)
        kernel_initializer = aliased("kernel_initializer", kernel_initializer, "w_init", w_init)
        bias_initializer = aliased("bias_initializer", bias_initializer, "b_init", b_init)
        initializer("kernel_initializer", kernel_initializer)  # checked here, used by Linear
        initializer("bias_initializer", bias_initializer)
        self._kernel_initializer = kernel_initializer
        self._bias_initializer = bias_initializer
        layer_args = {
            "dtype": self._dtype,
            "kernel_initializer": kernel_initializer,
            "bias_initializer": bias_initializer,
        }
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be positive or None, got {clip_value!r}")
        if controller is not None and not is_core(controller):
            raise TypeError(
                "controller must be an RNNCore or another core (a Sonnet core, any "
                "object callable as controller(inputs, prev_state) with an "
                f"initial_state method), got {type(controller).__name__}"
            )
        with self.name_scope:
            if controller is None:
                import rnn  # The package imports this module: import it late.

                controller = rnn.LSTM(64, dtype=self._dtype)
            self.controller = controller
            self.access = MemoryAccess(
                memory_size,
                word_size,
                num_reads,
                num_writes,
                masked_content=masked_content,
                deallocate=deallocate,
                sharpen_links=sharpen_links,
                name="memory_access",
                **layer_args,
            )
            self.output_layer = Linear(output_size, name="output", **layer_args)
        self.output_size = output_size
        self.clip_value = clip_value

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (the controller is the core itself).

        >>> config = DNC(2, memory_size=4, word_size=3).get_config()
        >>> config["memory_size"], type(config["controller"]).__name__
        (4, 'LSTM')

        The options of Csordás & Schmidhuber (2019) appear only when on, so
        the configs of DNCs without them are what they were before:

        >>> "deallocate" in config, DNC(2, deallocate=True).get_config()["deallocate"]
        (False, True)
        """
        return {
            "output_size": self.output_size,
            "controller": self.controller,
            "memory_size": self.memory_size,
            "word_size": self.word_size,
            "num_reads": self.num_reads,
            "num_writes": self.num_writes,
            "clip_value": self.clip_value,
            # The options only when on (configs without them are unchanged).
            **{
                key: True
                for key in ("masked_content", "deallocate", "sharpen_links")
                if getattr(self.access, key)
            },
            # dtype and the initializers only when given (see rnn.LSTM.get_config).
            **({} if self._dtype is None else {"dtype": self._dtype.name}),
            **{
                key: initializer_config(value)
                for key, value in (
                    ("kernel_initializer", self._kernel_initializer),
                    ("bias_initializer", self._bias_initializer),
                )
                if value is not None
            },
            "name": self.name,
        }

    @property
    def memory_size(self) -> int:
        """Number of memory slots ``N``."""
        return self.access.memory_size

    @property
    def word_size(self) -> int:
        """Width ``W`` of a memory slot."""
        return self.access.word_size

    @property
    def num_reads(self) -> int:
        """Number of read heads ``R``."""
        return self.access.num_reads

    @property
    def num_writes(self) -> int:
        """Number of write heads ``Wh``."""
        return self.access.num_writes

    @property
    def masked_content(self) -> bool:
        """Whether the content lookups are masked (Csordás & Schmidhuber, 2019)."""
        return self.access.masked_content

    @property
    def deallocate(self) -> bool:
        """Whether freed slots are wiped (Csordás & Schmidhuber, 2019)."""
        return self.access.deallocate

    @property
    def sharpen_links(self) -> bool:
        """Whether the link distributions are sharpened (Csordás & Schmidhuber, 2019)."""
        return self.access.sharpen_links

    def initial_state(self, batch_size: Any, dtype: Any = None) -> DNCState:
        """Zero memory and read words, and the controller's own initial state.

        ``dtype=None``: the constructor's ``dtype``, else float32. The
        controller is asked for the same dtype when its ``initial_state``
        takes one (:func:`rnn.base.call_initial_state`).
        """
        dtype = float_dtype("dtype", dtype) or self._dtype or tf.float32
        return DNCState(
            access_output=tf.zeros([batch_size, self.num_reads, self.word_size], dtype),
            access_state=self.access.initial_state(batch_size, dtype),
            controller_state=call_initial_state(self.controller, batch_size, dtype),
        )

    def __call__(self, inputs: Any, prev_state: DNCState) -> tuple[tf.Tensor, DNCState]:
        """One DNC step: returns ``(output [B, output_size], next_state)``.

        ``inputs`` is a ``[B, F]`` tensor or any nest of ``[B, ...]`` tensors
        (flattened and concatenated).
        """
        if not isinstance(prev_state, DNCState):
            raise TypeError(
                f"{self.name}: prev_state must be a DNCState, got {type(prev_state).__name__}"
            )
        inputs = _flatten_batch(f"{self.name} inputs", inputs)
        prev_reads = prev_state.access_output
        if inputs.dtype != prev_reads.dtype:
            raise TypeError(
                f"{self.name}: inputs have dtype {inputs.dtype.name} but the state "
                f"has {prev_reads.dtype.name}"
            )
        controller_input = tf.concat(
            [inputs, tf.reshape(prev_reads, [-1, self.num_reads * self.word_size])], axis=1
        )
        controller_output, controller_state = self.controller(
            controller_input, prev_state.controller_state
        )
        controller_output = _flatten_batch(f"{self.name} controller output", controller_output)
        read_words, access_state = self.access(controller_output, prev_state.access_state)
        output = self.output_layer(
            tf.concat(
                [controller_output, tf.reshape(read_words, [-1, self.num_reads * self.word_size])],
                axis=1,
            )
        )
        if self.clip_value is not None:
            output = tf.clip_by_value(output, -self.clip_value, self.clip_value)
        return output, DNCState(
            access_output=read_words, access_state=access_state, controller_state=controller_state
        )

    def kernels_apply(self) -> bool:
        """Whether float32 unrolls of this DNC traced now run rnn's compiled
        kernels (:meth:`unroll_fast_path`): its configuration is one they
        cover, and they would run here (a CPU without a visible GPU, outside
        XLA, the kernels built and on). A job can ask it to choose between
        them and XLA, which cannot hold them.

        >>> import rnn
        >>> DNC(3, memory_size=4, word_size=2, num_reads=1, deallocate=True).kernels_apply()
        False
        """
        import rnn  # (rnn imports this module)
        from rnn.ops.dnc import sequence

        controller = self.controller
        config = controller.get_config() if type(controller) is rnn.LSTM else None
        return not (
            config is None
            or config["projection_size"] is not None
            or config["use_layer_norm"]
            or config["cell_clip"] is not None
            or self.num_writes != 1
            or self.masked_content
            or self.deallocate
            or self.sharpen_links
            or not sequence.kernels_apply(tf.float32)
        )

    def _kernel_weights(self, input_sequence: Any, initial_state: Any) -> list[Any] | None:
        """The variables :func:`rnn.ops.dnc.dnc_sequence` takes, where it applies
        and would run its compiled kernels (see :meth:`unroll_fast_path`), else None."""
        import rnn  # (rnn imports this module)

        if (
            not isinstance(input_sequence, tf.Tensor)
            or input_sequence.dtype != tf.float32
            or input_sequence.shape.rank != 3
            or input_sequence.shape[-1] is None
            or not isinstance(initial_state, DNCState)
            or not isinstance(initial_state.controller_state, rnn.LSTMState)
            or not self.kernels_apply()
        ):
            return None
        controller = self.controller
        if getattr(controller, "kernel", None) is None or self.output_layer.w is None:
            # Builds the variables (a step on an empty batch).
            self(tf.zeros([0, input_sequence.shape[-1]]), self.initial_state(0))
        layer = self.access.interface_layer
        variables = [
            controller.kernel,
            controller.recurrent_kernel,
            controller.bias,
            layer.w,
            layer.b,
            self.output_layer.w,
            self.output_layer.b,
        ]
        if any(v is None or v.dtype != tf.float32 for v in variables):
            return None
        return cast_variables(tf.float32, variables)

    def unroll_fast_path(
        self,
        input_sequence: Any,
        initial_state: Any,
        sequence_length: tf.Tensor | None,
        reverse: bool,
        *,
        reset: tf.Tensor | None = None,
        reset_state: Any = None,
        return_all_states: bool = False,
    ) -> tuple[Any, ...] | None:
        """Runs the DNC over a whole ``[T, B, I]`` sequence with the compiled kernels.

        Applies where :func:`rnn.ops.dnc.dnc_sequence` would run its compiled
        kernels (float32, a CPU without a visible GPU, not under XLA, the
        kernels loaded and on: :func:`rnn.ops.dnc.set_native_kernels`) and
        covers this DNC: an :class:`rnn.LSTM` controller without projection,
        layer norm or cell clip, one write head, none of the options of
        Csordás & Schmidhuber, float32 throughout, the inputs one tensor.
        Then the recurrence is two compiled ops (forward, backward) and the
        output layer one matmul over all steps; the results are those of
        stepping the core, to float32 rounding. Returns None otherwise (the
        unroller steps the core, as it does under XLA, where the step's
        small ops are fused).

        >>> import rnn
        >>> dnc = DNC(3, memory_size=4, word_size=2, num_reads=1, deallocate=True)
        >>> dnc.unroll_fast_path(tf.ones([5, 2, 4]), dnc.initial_state(2), None, False) is None
        True
        """
        from rnn.ops.dnc import dnc_sequence

        if reset is not None or return_all_states:  # (not declared: the unrollers step then)
            return None
        weights = self._kernel_weights(input_sequence, initial_state)
        if weights is None:
            return None
        kernel, recurrent_kernel, bias, interface_kernel, interface_bias, w_out, b_out = weights
        controller = initial_state.controller_state
        state = [
            controller.hidden,
            controller.cell,
            initial_state.access_output,
            *initial_state.access_state.as_tensors(),
        ]
        hs, rs, final = dnc_sequence(
            input_sequence,
            state,
            kernel,
            recurrent_kernel,
            bias,
            interface_kernel,
            interface_bias,
            sequence_length=sequence_length,
            reverse=reverse,
        )
        n_steps, batch = tf.shape(hs)[0], tf.shape(hs)[1]
        reads = self.num_reads * self.word_size
        features = tf.concat([hs, tf.reshape(rs, [n_steps, batch, reads])], axis=2)
        flat = tf.matmul(tf.reshape(features, [-1, features.shape[-1]]), w_out)
        if b_out is not None:
            flat = flat + b_out
        output = tf.reshape(flat, [n_steps, batch, self.output_size])
        if self.clip_value is not None:
            output = tf.clip_by_value(output, -self.clip_value, self.clip_value)
        if sequence_length is not None:
            valid = tf.sequence_mask(sequence_length, n_steps)  # [B, T]
            valid = tf.transpose(valid)[:, :, tf.newaxis]
            output = tf.where(valid, output, tf.zeros([], output.dtype))
        return output, DNCState(
            access_output=final[2],
            access_state=AccessState.from_tensors(final[3:]),
            controller_state=type(controller)(hidden=final[0], cell=final[1]),
        )
