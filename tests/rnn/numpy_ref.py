"""NumPy reference implementations of one step of each core, for the tests.

Written from the papers' / Keras' equations, independently of rnn.cores:
every function takes NumPy arrays (float64 recommended) and returns
``(output, next_state)``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def layer_norm(x, scale, offset, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + offset


def vanilla_step(x, h, kernel, recurrent_kernel, bias, activation=np.tanh):
    h_new = activation(x @ kernel + h @ recurrent_kernel + bias)
    return h_new, h_new


def lstm_step(
    x, h, c, kernel, recurrent_kernel, bias, projection=None, layer_norm_params=None, cell_clip=None
):
    """Returns ``(output, (h_new, c_new))``; gate order i, f, candidate, o."""
    units = c.shape[-1]
    xw = x @ kernel
    hu = h @ recurrent_kernel
    if layer_norm_params is not None:
        ks, ko, rs, ro, cs, co = layer_norm_params
        xw = layer_norm(xw, ks, ko)
        hu = layer_norm(hu, rs, ro)
    z = xw + hu + bias
    zi, zf, zg, zo = (z[:, k * units : (k + 1) * units] for k in range(4))
    i, f, o = sigmoid(zi), sigmoid(zf), sigmoid(zo)
    g = np.tanh(zg)
    c_new = f * c + i * g
    if cell_clip is not None:
        c_new = np.clip(c_new, -cell_clip, cell_clip)
    shown = c_new if layer_norm_params is None else layer_norm(c_new, cs, co)
    h_new = o * np.tanh(shown)
    if projection is not None:
        h_new = h_new @ projection
    return h_new, (h_new, c_new)


def gru_step(x, h, kernel, recurrent_kernel, bias, reset_after):
    """Keras' GRU equations (update z, reset r, candidate)."""
    units = h.shape[-1]
    wz, wr, wh = (kernel[:, k * units : (k + 1) * units] for k in range(3))
    uz, ur, uh = (recurrent_kernel[:, k * units : (k + 1) * units] for k in range(3))
    if reset_after:
        bx, bh = bias[0], bias[1]
    else:
        bx, bh = bias, np.zeros_like(bias)
    bxz, bxr, bxh = (bx[k * units : (k + 1) * units] for k in range(3))
    bhz, bhr, bhh = (bh[k * units : (k + 1) * units] for k in range(3))
    z = sigmoid(x @ wz + bxz + h @ uz + bhz)
    r = sigmoid(x @ wr + bxr + h @ ur + bhr)
    if reset_after:
        cand = np.tanh(x @ wh + bxh + r * (h @ uh + bhh))
    else:
        cand = np.tanh(x @ wh + bxh + (r * h) @ uh)
    h_new = z * h + (1 - z) * cand
    return h_new, h_new


def unroll(step, xs, state, lengths=None, reverse=False):
    """Reference unroll of ``step(x_t, state) -> (out, state)`` over [T, B, F].

    Loops example by example so the sequence_length / reverse semantics are
    spelled out directly: example b runs over its valid prefix (backwards
    when ``reverse``), outputs land at the input's time index, and steps at
    or after its length give zero output and leave its state alone.
    ``state`` is a tuple of [B, ...] arrays.
    """
    num_steps, batch = xs.shape[0], xs.shape[1]
    lengths = [num_steps] * batch if lengths is None else list(lengths)
    outputs = None
    finals = [np.array(s, copy=True) for s in state]
    for b in range(batch):
        st = tuple(s[b : b + 1] for s in state)
        order = range(lengths[b])
        if reverse:
            order = reversed(list(order))
        for t in order:
            out, st = step(xs[t, b : b + 1], st)
            if outputs is None:
                outputs = np.zeros((num_steps, batch) + out.shape[1:])
            outputs[t, b] = out[0]
        for k, s in enumerate(st):
            finals[k][b] = s[0]
    if outputs is None:  # every length was zero: shape from one dummy step
        out, _ = step(xs[0, :1], tuple(s[:1] for s in state))
        outputs = np.zeros((num_steps, batch) + out.shape[1:])
    return outputs, tuple(finals)
