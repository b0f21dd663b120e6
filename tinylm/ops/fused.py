"""The fused ops: softmax, log_softmax, cross-entropy, layer norm, RMSNorm, causal softmax, causal
attention and SwiGLU's gate, each one kernel forward and one kernel backward.

Their classes end in ``Op`` (``LayerNormOp``) so they are not mistaken for the layers of
tinylm.nn (``nn.LayerNorm`` holds the weights and calls ``F.layer_norm``, which applies
``LayerNormOp``).

Each forward and backward calls the kernel set of the input's device (tinylm.backend), which
computes along the last axis; the ops move the axis they work on to the end and back. A
backward wraps its kernel's array result in a Tensor (the contract on tinylm.autograd.Function).
"""
from ..autograd import Function
from ..backend import kernels_for, xp_of
from ..tensor import Tensor


def _to_last(x, dim):
    return xp_of(x).moveaxis(x, dim, -1)


def _from_last(y, dim):
    return xp_of(y).moveaxis(y, -1, dim)


class SoftmaxOp(Function):
    """y_i = e^{x_i} / Σ_j e^{x_j} along `dim` (001.softmax);   dx = y ⊙ (g - Σ_j g_j y_j)."""

    def forward(self, x, dim=-1):
        self.dim = dim
        self.y = kernels_for(x).softmax(_to_last(x, dim))
        return _from_last(self.y, dim)

    def backward(self, g):
        gx = kernels_for(self.y).softmax_backward(self.y, _to_last(g.data, self.dim))
        return Tensor(_from_last(gx, self.dim))


class LogSoftmaxOp(Function):
    """y_i = x_i - log Σ_j e^{x_j} along `dim` (the log of 001.softmax; 004.pretrain.loss reads it at the
    target);   dx = g - softmax(x) Σ_j g_j."""

    def forward(self, x, dim=-1):
        self.dim = dim
        self.y = kernels_for(x).log_softmax(_to_last(x, dim))
        return _from_last(self.y, dim)

    def backward(self, g):
        gx = kernels_for(self.y).log_softmax_backward(self.y, _to_last(g.data, self.dim))
        return Tensor(_from_last(gx, self.dim))


class CrossEntropyOp(Function):
    """L = reduce over rows n of  -log softmax(z_n)[t_n]  (004.pretrain.loss), logits z (N, C),
    integer targets t (N,); rows with t_n == ignore_index do not count.

    dL/dz_nc = w_n (softmax(z_n)_c - [c == t_n]) with w_n = g (sum), g / #counted rows (mean),
    or g_n (none). Forward and backward are one fused kernel each: log-softmax is never stored.
    """

    def forward(self, logits, target, ignore_index=-100, reduction="mean"):
        xp = xp_of(logits)
        self.target, self.ignore_index, self.reduction = target, ignore_index, reduction
        losses, self.lse = kernels_for(logits).cross_entropy(logits, target, ignore_index)
        if reduction == "none":
            return losses
        if reduction == "sum":
            return losses.sum()
        self.counted = int((target != ignore_index).sum())
        return losses.sum() / (self.counted if self.counted else xp.nan)  # all ignored: nan, as PyTorch

    def backward(self, g):
        logits = self.inputs[0].data
        xp = xp_of(logits)
        if self.reduction == "none":
            per_row = g.data
        else:
            scale = 1 if self.reduction == "sum" else 1 / max(self.counted, 1)
            per_row = xp.full(logits.shape[0], g.item() * scale, dtype=self.lse.dtype)
        K = kernels_for(logits)
        return Tensor(K.cross_entropy_backward(logits, self.lse, self.target, per_row, self.ignore_index))


class LayerNormOp(Function):
    """y = (x - μ) / √(σ² + ε) ⊙ w + b over the last axis (μ, σ² the mean and biased variance):
    the "Norm" of Add & Norm in the Transformer (003.arch).

    With x̂ = (x - μ)/√(σ² + ε) and ĝ = g ⊙ w:
        dx = (ĝ - mean(ĝ) - x̂ mean(ĝ ⊙ x̂)) / √(σ² + ε),   dw = Σ_rows g ⊙ x̂,   db = Σ_rows g.
    Inputs: x, or x, w, b.
    """

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        y, self.mean, self.rstd = kernels_for(x).layer_norm(x, weight, bias, eps)
        return y

    def backward(self, g):
        x, *affine = self.inputs
        weight = affine[0].data if affine else None
        dx, dw, db = kernels_for(x.data).layer_norm_backward(g.data, x.data, self.mean, self.rstd, weight)
        return (Tensor(dx),) if not affine else (Tensor(dx), Tensor(dw), Tensor(db))


class RMSNormOp(Function):
    """y = x / √(mean(x²) + ε) ⊙ w over the last axis: RMSNorm (Zhang & Sennrich 2019), Llama's
    norm — LayerNorm (003.arch) without subtracting the mean and without a bias.

    With r = 1/√(mean(x²) + ε), x̂ = x r and ĝ = g ⊙ w:
        dx = r (ĝ - x̂ mean(ĝ ⊙ x̂)),   dw = Σ_rows g ⊙ x̂.
    (LayerNorm's dx has one more term, - mean(ĝ), from the mean it subtracts.) Inputs: x, or x, w.
    """

    def forward(self, x, weight=None, eps=1e-6):
        y, self.rstd = kernels_for(x).rms_norm(x, weight, eps)
        return y

    def backward(self, g):
        x, *affine = self.inputs
        dx, dw = kernels_for(x.data).rms_norm_backward(g.data, x.data, self.rstd, affine[0].data if affine else None)
        return (Tensor(dx),) if not affine else (Tensor(dx), Tensor(dw))


class CausalSoftmaxOp(Function):
    """y = softmax(scale · s + M) over the last axis, M_ij = -∞ where key j lies in the future of
    query i (j > i + S - T for scores s of shape (..., T, S)), else 0 — the masked softmax of
    causal self-attention (000.attn's weights under 003.clm's mask), fused in one kernel;
    ds = scale · y ⊙ (g - Σ_j g_j y_j).
    """

    def forward(self, scores, scale=1.0):
        self.scale = scale
        self.y = kernels_for(scores).causal_softmax(scores, scale)
        return self.y

    def backward(self, g):
        return Tensor(kernels_for(self.y).softmax_backward(self.y, g.data) * self.scale)


class CausalAttentionOp(Function):
    """y = softmax(scale q kᵀ + M) v, M_ij = -∞ for j > i: causal self-attention (004.attn.steps
    with 003.clm's mask), q, k (..., T, d), v (..., T, dv), in one kernel each way that never
    keeps the T×T weights p (flash attention: the forward keeps each query's logsumexp lse, and
    the backward recomputes p = e^(scale q kᵀ - lse) from it):

        dv = pᵀ g,   dp = g vᵀ,   ds = p ⊙ (dp - D), D_i = g_i·y_i,   dq = scale ds k,   dk = scale dsᵀ q.
    """

    def forward(self, q, k, v, scale=1.0):
        self.scale = scale
        self.y, self.lse = kernels_for(q).causal_attention(q, k, v, scale)
        return self.y

    def backward(self, g):
        q, k, v = (t.data for t in self.inputs)
        dq, dk, dv = kernels_for(q).causal_attention_backward(q, k, v, self.y, self.lse, g.data, self.scale)
        return Tensor(dq), Tensor(dk), Tensor(dv)


class SwiGLUOp(Function):
    """y = SiLU(a) ⊙ b = a σ(a) b, a = x W_gateᵀ and b = x W_upᵀ: the gate of Llama's MLP,
    W_down (SiLU(W_gate x) ⊙ W_up x) (Shazeer 2020; beyond the articles, lesson 19). With s = σ(a),

        SiLU'(a) = s (1 + a (1 - s)),   da = g ⊙ b ⊙ SiLU'(a),   db = g ⊙ a s.

    One kernel each way; nothing but the inputs is kept (the backward recomputes s).
    """

    def forward(self, gate, up):
        return kernels_for(gate).swiglu(gate, up)

    def backward(self, g):
        gate, up = (t.data for t in self.inputs)
        da, db = kernels_for(gate).swiglu_backward(gate, up, g.data)
        return Tensor(da), Tensor(db)
