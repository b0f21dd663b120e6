"""Scaled dot-product attention as one op, its backward by hand (step 9)."""
import math

import numpy as np

from . import kernels
from .tensor import Function, Tensor


class Attention(Function):
    """O = softmax(Q Kᵀ / √d + M) V for q, k, v of shape (B, heads, T, d) (000.attn):

        S = Q Kᵀ / √d,   M_ij = −∞ for j > i when causal (no looking ahead), else 0,
        P = softmax(S + M) over the last axis,   O = P V.

    forward (given) runs on your kernels: matmul_tiled (step 6) and softmax_rows (step 5).
    """

    def forward(self, q, k, v, causal=False):
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        s = kernels.matmul(q, np.swapaxes(k, -1, -2)) * self.scale
        if causal:
            t = s.shape[-1]
            s = np.where(np.arange(t)[None, :] <= np.arange(t)[:, None], s, -np.inf)
        self.p = kernels.softmax(s)
        return kernels.matmul(self.p, v)

    def backward(self, g):
        """dL/dQ, dL/dK, dL/dV from dL/dO = g, with Tensor ops (Tensor.mT swaps the last two axes)."""
        # BEGIN SOLUTION hint: step 9: O = P V gives dV = Pᵀ g and dP = g Vᵀ; softmax (step 5) gives dS = P ⊙ (dP − Σ_j dP_j P_j); S = Q Kᵀ/√d gives dQ = dS K/√d, dK = dSᵀ Q/√d (M is a constant)
        q, k, v = self.inputs
        p = Tensor(self.p)
        dv = p.mT @ g
        dp = g @ v.mT
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))
        return ds @ k * self.scale, ds.mT @ q * self.scale, dv
        # END SOLUTION
