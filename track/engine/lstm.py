"""An LSTM layer as one op, whose backward is back-propagation through time (step 8)."""
import numpy as np

from .tensor import Function, Tensor


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class LSTM(Function):
    """The long short-term memory over a whole sequence, in PyTorch's layout and gate order
    (i, f, g, o), from h_0 = c_0 = 0. Inputs: x (T, B, I), w_ih (4H, I), w_hh (4H, H),
    b_ih (4H,), b_hh (4H,); output h_1..h_T, shape (T, B, H). At each step t:

        a_t = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh,  cut into four blocks of H columns
        i_t = σ(a_i),  f_t = σ(a_f),  g_t = tanh(a_g),  o_t = σ(a_o)
        c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

    forward (given) keeps every gate and state; backward goes back from t = T to 1.
    """

    def forward(self, x, w_ih, w_hh, b_ih, b_hh):
        hidden = w_hh.shape[1]
        h = np.zeros((x.shape[1], hidden), dtype=x.dtype)
        c = np.zeros_like(h)
        self.h, self.c, self.gates = [h], [c], []  # h_0..h_T, c_0..c_T, (i, f, g, o) of steps 1..T
        for x_t in x:
            a = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            i, f, g, o = (_sigmoid(a[:, :hidden]), _sigmoid(a[:, hidden:2 * hidden]),
                          np.tanh(a[:, 2 * hidden:3 * hidden]), _sigmoid(a[:, 3 * hidden:]))
            c = f * c + i * g
            h = o * np.tanh(c)
            self.h.append(h)
            self.c.append(c)
            self.gates.append((i, f, g, o))
        return np.stack(self.h[1:])

    def backward(self, grad):
        """dL/dx, dL/dW_ih, dL/dW_hh, dL/db_ih, dL/db_hh from dL/dh_t for every t (grad, (T, B, H)).

        h_t reaches the loss twice: directly (grad[t]) and through step t+1 (via a_{t+1}); c_t too,
        through h_t and through c_{t+1} = f_{t+1} ⊙ c_t + .... Carry dL/dh_t and dL/dc_t backwards.
        """
        # BEGIN SOLUTION hint: step 8: for t from T−1 down to 0: dh = grad[t] + dh carried; dc = dh ⊙ o ⊙ (1 − tanh²c_t) + dc carried; the gates' da (σ' = s(1 − s), tanh' = 1 − g²); dx[t] = da W_ih; dW_ih += daᵀ x_t; dW_hh += daᵀ h_{t−1}; carry dh = da W_hh, dc ⊙ f_t
        x, w_ih, w_hh = (t.data for t in self.inputs[:3])
        g_out = grad.data
        dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
        db = np.zeros(w_ih.shape[0], dtype=x.dtype)
        dh_next, dc_next = np.zeros_like(self.h[0]), np.zeros_like(self.c[0])
        for t in reversed(range(len(self.gates))):
            i, f, g, o = self.gates[t]
            dh = g_out[t] + dh_next
            tanh_c = np.tanh(self.c[t + 1])
            dc = dh * o * (1.0 - tanh_c ** 2) + dc_next
            da = np.concatenate([dc * g * i * (1.0 - i), dc * self.c[t] * f * (1.0 - f),
                                 dc * i * (1.0 - g ** 2), dh * tanh_c * o * (1.0 - o)], axis=1)
            dx[t] = da @ w_ih
            dw_ih += da.T @ x[t]
            dw_hh += da.T @ self.h[t]
            db += da.sum(axis=0)
            dh_next, dc_next = da @ w_hh, dc * f
        return Tensor(dx), Tensor(dw_ih), Tensor(dw_hh), Tensor(db), Tensor(db.copy())
        # END SOLUTION
