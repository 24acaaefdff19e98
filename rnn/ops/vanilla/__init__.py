"""The vanilla (Elman) RNN's whole-sequence program: :func:`vanilla_sequence`.

``rnn.VanillaRNN`` with its default ``tanh`` runs whole sequences through
it when the unrollers ask for one (``programs.py`` holds the forward and
backward programs, ``sequence.py`` the public function). TensorFlow ops
only: the step is a single ``[H, H] x [H, B]`` matmul and a ``tanh``, so
hoisting the input projection and batching the weight gradients is where
the time goes, not the executor's per-op costs a compiled loop removes.
"""

from rnn.ops.vanilla.sequence import vanilla_sequence

__all__ = ["vanilla_sequence"]
