"""The basic layers: Linear, Embedding, Dropout, LayerNorm, RMSNorm, SiLU and the SwiGLU feed-forward
(PyTorch's arguments, names, shapes; Hugging Face Llama's names where PyTorch has no such layer)."""
from . import functional as F
from ..factories import zeros
from ..tensor import data_of
from . import init
from .module import Module, Parameter


def check_last_dim(layer, x, size, layout):
    """A one-line ValueError when x's last axis is not `size` (layout names the expected shape)."""
    if x.ndim == 0 or x.shape[-1] != size:
        raise ValueError(f"{layer} expected input {layout}, got {tuple(x.shape)}")


class Linear(Module):
    """y = x Wᵀ + b, W of shape (out_features, in_features) — the affine map in every formula
    (000.rnn's W x_t, 003.mha's projections, the output layer of 001.model).

    Weights and bias start from U(-1/√in_features, 1/√in_features), as in PyTorch.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(zeros(out_features, in_features))
        init.uniform_fan_in_(self.weight, in_features)
        self.bias = Parameter(init.uniform_fan_in_(zeros(out_features), in_features)) if bias else None

    def forward(self, x):
        check_last_dim("Linear", x, self.in_features, f"(..., {self.in_features})")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """out[..., :] = W[ids[...], :]: row i of W (num_embeddings, embedding_dim) is token i's vector
    (002.embedtable). Starts from N(0, 1), as in PyTorch; padding_idx's row stays zero."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = Parameter(zeros(num_embeddings, embedding_dim))
        init.normal_(self.weight)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0

    def forward(self, ids):
        out = F.embedding(ids, self.weight)
        if self.padding_idx is None:
            return out
        keep = out.xp.asarray(data_of(ids) != self.padding_idx)[..., None]
        return F.where(keep, out, 0.0)

    def extra_repr(self):
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class Dropout(Module):
    """Zero each element with probability p while training, scaling the rest by 1/(1-p) (001.overfit)."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class LayerNorm(Module):
    """y = (x - μ) / √(σ² + ε) ⊙ γ + β over the trailing normalized_shape axes (the "Norm" of
    Add & Norm, 003.arch); γ (weight) starts at 1, β (bias) at 0."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(init.ones_(zeros(*shape))) if elementwise_affine else None
        self.bias = Parameter(init.zeros_(zeros(*shape))) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class RMSNorm(Module):
    """y = x / √(mean(x²) + ε) ⊙ γ over the trailing normalized_shape axes: LayerNorm (003.arch)
    without subtracting the mean μ and without the shift β (Zhang & Sennrich 2019; Llama's norm).
    Rescaling by the root mean square alone keeps LayerNorm's invariance to the scale of x and
    costs one reduction instead of two. γ (weight) starts at 1; eps=None takes the machine
    epsilon of the input's dtype. PyTorch's torch.nn.RMSNorm(normalized_shape, eps, elementwise_affine)."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(init.ones_(zeros(*shape))) if elementwise_affine else None

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class SiLU(Module):
    """SiLU(x) = x σ(x), σ the logistic sigmoid (also called swish); d/dx = σ(x)(1 + x(1 - σ(x))).
    Beyond the articles (no SEEDS_GUIDE id): Llama's gate activation, taught in lesson 19."""

    def forward(self, x):
        return F.silu(x)


class SwiGLU(Module):
    """The gated feed-forward sublayer of Llama (Shazeer 2020, "GLU variants improve Transformer"):

        SwiGLU(x) = W_down (SiLU(W_gate x) ⊙ W_up x)

    in place of the Transformer's FFN(x) = W₂ f(W₁ x + b₁) + b₂ (003.arch). The gate SiLU(W_gate x)
    decides, feature by feature, how much of W_up x passes. Three matrices instead of two, so
    a hidden width of 8/3 · d_model costs the parameters of a 4 · d_model FFN. Hugging Face's
    names: gate_proj, up_proj (hidden_features, in_features), down_proj (in_features,
    hidden_features); no biases by default, as in Llama. SiLU(a) ⊙ b is one op, one kernel each
    way (F.swiglu).
    """

    def __init__(self, in_features, hidden_features, bias=False):
        super().__init__()
        self.gate_proj = Linear(in_features, hidden_features, bias=bias)
        self.up_proj = Linear(in_features, hidden_features, bias=bias)
        self.down_proj = Linear(hidden_features, in_features, bias=bias)

    def forward(self, x):
        return self.down_proj(F.swiglu(self.gate_proj(x), self.up_proj(x)))
