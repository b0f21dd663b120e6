"""Backpropagation through time, derived by hand, in plain NumPy: RNN (tanh), LSTM, GRU.

Each formula takes dL/d(output) — grad_out, (seq, batch, hidden_size), the gradient of the
loss with respect to every h_t of a one-layer recurrent network — and that network's
inputs by PyTorch's names, and returns dL/d(each input) in the form tinylm.check.compare
expects. It first runs the forward again, keeping every intermediate value, then walks
the sequence backwards, t = T-1 … 0.

Notation (rows are batch items, as in the code): x_t is input[t], (batch, input_size);
h_{-1} = h0[0]; the pre-activations of step t are

    a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh        (batch, G·hidden_size)

and every "d" name is dL/d(that value). The loss reaches h_t in two ways: directly,
dy_t = grad_out[t], and through the next step's pre-activations, so

    dh_t = dy_t + da_{t+1} W_hh          (the carried term is zero after the last step)

CASES maps "rnn", "lstm", "gru" to a zero-argument function returning (fn, formula, inputs)
for compare(fn, formula, inputs): fn runs the tinylm layer with the inputs as its parameters.
"""
import numpy as np

from ..nn.rnn import GRU, LSTM, RNN
from ..tensor import Tensor
from .compare import use_tensors


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def zero_grads(**arrays):
    """Every gradient starts at zero; the sums over t add into them."""
    return {name: np.zeros_like(a) for name, a in arrays.items()}


def affine_backward(grads, t, x_t, h_prev, d_ih, d_hh, weight_ih, weight_hh):
    """Step t's two affine maps, a_ih = x_t W_ihᵀ + b_ih and a_hh = h_{t-1} W_hhᵀ + b_hh, given
    d_ih = dL/da_ih and d_hh = dL/da_hh: add their gradients into `grads`, return their part of dh_{t-1}."""
    grads["input"][t] = d_ih @ weight_ih          # dx_t = d_ih W_ih
    grads["weight_ih_l0"] += d_ih.T @ x_t         # dW_ih = Σ_t d_ihᵀ x_t
    grads["bias_ih_l0"] += d_ih.sum(axis=0)       # db_ih = Σ_t Σ_batch d_ih
    grads["weight_hh_l0"] += d_hh.T @ h_prev      # dW_hh = Σ_t d_hhᵀ h_{t-1}
    grads["bias_hh_l0"] += d_hh.sum(axis=0)       # db_hh = Σ_t Σ_batch d_hh
    return d_hh @ weight_hh                       # dh_{t-1} gets d_hh W_hh


def rnn_bptt(grad_out, input, h0, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0):
    """dL/d(every input) of the tanh RNN (000.rnn):  h_t = tanh(a_t),  output y_t = h_t."""
    # forward, keeping h[t + 1] = h_t (h[0] = h_{-1} = h0[0])
    h = [h0[0]]
    for x_t in input:
        h.append(np.tanh(x_t @ weight_ih_l0.T + bias_ih_l0 + h[-1] @ weight_hh_l0.T + bias_hh_l0))
    grads = zero_grads(input=input, h0=h0, weight_ih_l0=weight_ih_l0, weight_hh_l0=weight_hh_l0,
                       bias_ih_l0=bias_ih_l0, bias_hh_l0=bias_hh_l0)
    dh_carried = np.zeros_like(h0[0])                # da_{t+1} W_hh; nothing comes after the last step
    for t in reversed(range(len(input))):
        dh = grad_out[t] + dh_carried                # dh_t = dy_t + da_{t+1} W_hh
        da = dh * (1 - h[t + 1] ** 2)                # da_t = dh_t ⊙ tanh'(a_t) = dh_t ⊙ (1 - h_t²)
        # a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh: da_t reaches both affine maps unchanged
        dh_carried = affine_backward(grads, t, input[t], h[t], da, da, weight_ih_l0, weight_hh_l0)
    grads["h0"][0] = dh_carried                      # dh_{-1} = da_0 W_hh
    return grads


def lstm_bptt(grad_out, input, h0, c0, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0):
    """dL/d(every input) of the LSTM (000.lstm), gate blocks of a_t in the order i, f, g, o:
    i_t, f_t, o_t = σ(a_·),  g_t = tanh(a_g),  c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,  h_t = o_t ⊙ tanh(c_t)."""
    # forward, keeping h[t + 1] = h_t, c[t + 1] = c_t and the gates of every step
    h, c, gates = [h0[0]], [c0[0]], []
    for x_t in input:
        a = x_t @ weight_ih_l0.T + bias_ih_l0 + h[-1] @ weight_hh_l0.T + bias_hh_l0
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
        i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
        c.append(f * c[-1] + i * g)
        h.append(o * np.tanh(c[-1]))
        gates.append((i, f, g, o))
    grads = zero_grads(input=input, h0=h0, c0=c0, weight_ih_l0=weight_ih_l0, weight_hh_l0=weight_hh_l0,
                       bias_ih_l0=bias_ih_l0, bias_hh_l0=bias_hh_l0)
    dh_carried = np.zeros_like(h0[0])                # da_{t+1} W_hh
    dc_carried = np.zeros_like(c0[0])                # dc_{t+1} ⊙ f_{t+1}: c_t's part in c_{t+1}
    for t in reversed(range(len(input))):
        i, f, g, o = gates[t]
        tanh_c = np.tanh(c[t + 1])
        dh = grad_out[t] + dh_carried                # dh_t = dy_t + da_{t+1} W_hh
        do = dh * tanh_c                             # h_t = o_t ⊙ tanh(c_t):  do_t = dh_t ⊙ tanh(c_t)
        # dc_t = dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ o_t ⊙ (1 - tanh²(c_t))
        dc = dc_carried + dh * o * (1 - tanh_c ** 2)
        # c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        di = dc * g                                  # di_t = dc_t ⊙ g_t
        df = dc * c[t]                               # df_t = dc_t ⊙ c_{t-1}
        dg = dc * i                                  # dg_t = dc_t ⊙ i_t
        dc_carried = dc * f                          # c_{t-1}'s part: dc_t ⊙ f_t
        # through the nonlinearities, σ' = σ(1 - σ) and tanh' = 1 - tanh², back to the blocks of a_t
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=-1)
        dh_carried = affine_backward(grads, t, input[t], h[t], da, da, weight_ih_l0, weight_hh_l0)
    grads["h0"][0] = dh_carried                      # dh_{-1} = da_0 W_hh
    grads["c0"][0] = dc_carried                      # dc_{-1} = dc_0 ⊙ f_0
    return grads


def gru_bptt(grad_out, input, h0, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0):
    """dL/d(every input) of the GRU in PyTorch's form (002.gru, corrected). Its two affine maps
    stay apart, gi_t = x_t W_ihᵀ + b_ih and gh_t = h_{t-1} W_hhᵀ + b_hh, blocks in the order r, z, n:
    r_t = σ(gi_r + gh_r),  z_t = σ(gi_z + gh_z),  n_t = tanh(gi_n + r_t ⊙ gh_n),
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}."""
    # forward, keeping h[t + 1] = h_t and r_t, z_t, n_t, gh_n of every step
    h, saved = [h0[0]], []
    for x_t in input:
        gi_r, gi_z, gi_n = np.split(x_t @ weight_ih_l0.T + bias_ih_l0, 3, axis=-1)
        gh_r, gh_z, gh_n = np.split(h[-1] @ weight_hh_l0.T + bias_hh_l0, 3, axis=-1)
        r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
        n = np.tanh(gi_n + r * gh_n)
        h.append((1 - z) * n + z * h[-1])
        saved.append((r, z, n, gh_n))
    grads = zero_grads(input=input, h0=h0, weight_ih_l0=weight_ih_l0, weight_hh_l0=weight_hh_l0,
                       bias_ih_l0=bias_ih_l0, bias_hh_l0=bias_hh_l0)
    dh_carried = np.zeros_like(h0[0])                # what step t+1 passes back to h_t
    for t in reversed(range(len(input))):
        r, z, n, gh_n = saved[t]
        dh = grad_out[t] + dh_carried                # dh_t = dy_t + (step t+1's part)
        # h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
        dn = dh * (1 - z)                            # dn_t = dh_t ⊙ (1 - z_t)
        dz = dh * (h[t] - n)                         # dz_t = dh_t ⊙ (h_{t-1} - n_t)
        dh_direct = dh * z                           # h_{t-1}'s direct part: dh_t ⊙ z_t
        # n_t = tanh(gi_n + r_t ⊙ gh_n)
        da_n = dn * (1 - n ** 2)                     # d(gi_n + r_t ⊙ gh_n) = dn_t ⊙ (1 - n_t²); = dgi_n
        dr = da_n * gh_n                             # dr_t = da_n ⊙ gh_n
        dgh_n = da_n * r                             # dgh_n = da_n ⊙ r_t
        # r_t = σ(gi_r + gh_r), z_t = σ(gi_z + gh_z): the same gradient reaches both halves
        da_r = dr * r * (1 - r)
        da_z = dz * z * (1 - z)
        d_ih = np.concatenate([da_r, da_z, da_n], axis=-1)
        d_hh = np.concatenate([da_r, da_z, dgh_n], axis=-1)
        dh_carried = dh_direct + affine_backward(grads, t, input[t], h[t], d_ih, d_hh, weight_ih_l0, weight_hh_l0)
    grads["h0"][0] = dh_carried                      # dh_{-1}: the direct part plus d_hh W_hh, at t = 0
    return grads


def run_layer(layer, input, h0, c0=None, **parameters):
    """layer(input, hx) computed with the given tensors in place of its parameters (by PyTorch
    name): assigning a plain tensor replaces the Parameter, so backward reaches that very tensor."""
    use_tensors(layer, parameters)
    return layer(input, h0 if c0 is None else (h0, c0))


def make_case(layer_class, formula, states):
    """(fn, formula, inputs) for compare(): a one-layer layer_class and small random float64 inputs
    named like PyTorch's (input, h0[, c0], weight_ih_l0, ...); fn returns the output sequence."""
    seq, batch, input_size, hidden_size = 4, 2, 3, 3
    layer = layer_class(input_size, hidden_size)
    rng = np.random.default_rng(0)
    shapes = {"input": (seq, batch, input_size), **{s: (1, batch, hidden_size) for s in states}}
    shapes.update((name, p.shape) for name, p in layer.named_parameters())
    inputs = {name: Tensor(rng.uniform(-0.8, 0.8, shape), requires_grad=True) for name, shape in shapes.items()}

    def fn(**tensors):
        return run_layer(layer, **tensors)[0]

    return fn, formula, inputs


CASES = {
    "rnn": lambda: make_case(RNN, rnn_bptt, ("h0",)),
    "lstm": lambda: make_case(LSTM, lstm_bptt, ("h0", "c0")),
    "gru": lambda: make_case(GRU, gru_bptt, ("h0",)),
}
