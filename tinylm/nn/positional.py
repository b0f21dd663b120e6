"""Position information for attention, which by itself does not see token order.

Attention mixes the values with weights that depend on the query and key contents only, so
permuting the input tokens permutes the outputs the same way: without a position signal a
Transformer reads a bag of words. Both layers here add a vector that depends on the position
to each token's embedding (the "embedding" step of 001.model and 003.arch):

    SinusoidalPositionalEncoding   fixed:   PE[pos, 2i] = sin(pos / 10000^(2i/d)),
                                             PE[pos, 2i+1] = cos(pos / 10000^(2i/d))
    LearnedPositionalEmbedding     learned: one trained vector per position (GPT-2's wpe)

RotaryEmbedding adds nothing: it rotates each query and key by an angle proportional to its
position (Llama's RoPE), so that their dot product depends on the distance between them.
"""
import functools

import numpy as np

from .. import ops
from ..factories import arange
from ..tensor import Tensor, get_default_dtype
from .layers import Embedding, check_last_dim
from .module import Module


def _check_length(layer, x, batch_first, max_len, d_model):
    """The sequence length of x (batch, seq, d) or (seq, batch, d), checked against max_len."""
    layout = f"(batch, seq, {d_model})" if batch_first else f"(seq, batch, {d_model})"
    if x.ndim != 3:
        raise ValueError(f"{layer} expected input {layout}, got {tuple(x.shape)}")
    check_last_dim(layer, x, d_model, layout)
    length = x.shape[1] if batch_first else x.shape[0]
    if length > max_len:
        raise ValueError(f"{layer}: a sequence of {length} positions is longer than max_len={max_len}; "
                         f"build the layer with max_len >= {length}")
    return length


class SinusoidalPositionalEncoding(Module):
    """x + PE[:seq], with the fixed table of "Attention Is All You Need":

        PE[pos, 2i]   = sin(pos / 10000^(2i/d_model))
        PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))

    Each pair of columns is a rotation at its own frequency, from 1 down to 1/10000 radians
    per position, so PE[pos + k] is a fixed linear function of PE[pos] for every offset k.
    The table, pe (max_len, d_model), is a buffer: saved in state_dict, never trained.
    Input (batch, seq, d_model), or (seq, batch, d_model) with batch_first=False.
    """

    def __init__(self, d_model, max_len=5000, batch_first=True):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        pos = np.arange(max_len)[:, None]                          # pos, a column
        two_i = np.arange(0, d_model, 2)                           # 2i = 0, 2, 4, ...
        angle = pos / 10000.0 ** (two_i / d_model)                 # pos / 10000^(2i/d)
        pe = np.zeros((max_len, d_model))
        pe[:, 0::2] = np.sin(angle)                                # PE[pos, 2i]
        pe[:, 1::2] = np.cos(angle[:, :d_model // 2])              # PE[pos, 2i+1] (none past an odd d_model)
        self.register_buffer("pe", Tensor(pe.astype(get_default_dtype())))

    def forward(self, x):
        length = _check_length("SinusoidalPositionalEncoding", x, self.batch_first, self.max_len, self.d_model)
        table = self.pe[:length]                                   # (seq, d_model)
        return x + (table if self.batch_first else table.unsqueeze(1))

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEmbedding(Module):
    """x + P[:seq]: an Embedding of positions (row p of embedding.weight, (max_len, d_model), is
    the vector added at position p), trained with the rest of the model, as GPT-2 does.
    It starts from N(0, 1) like any Embedding. Input (batch, seq, d_model), or (seq, batch,
    d_model) with batch_first=False; positions past max_len have no vector, so they are an error.
    """

    def __init__(self, max_len, d_model, batch_first=True):
        super().__init__()
        self.max_len, self.d_model, self.batch_first = max_len, d_model, batch_first
        self.embedding = Embedding(max_len, d_model)

    def forward(self, x):
        length = _check_length("LearnedPositionalEmbedding", x, self.batch_first, self.max_len, self.d_model)
        table = self.embedding(arange(length, device=x.device))   # rows 0 .. seq-1
        return x + (table if self.batch_first else table.unsqueeze(1))

    def extra_repr(self):
        return f"max_len={self.max_len}, d_model={self.d_model}, batch_first={self.batch_first}"


@functools.lru_cache(maxsize=64)
def _rope_tables(inv_freq, offset, length, dtype, xp):
    """RotaryEmbedding.cos_sin's tables (inv_freq: θ_i's float64 bytes; xp: numpy or cupy), kept
    for the next call with the same arguments."""
    angles = np.arange(offset, offset + length)[:, None] * np.frombuffer(inv_freq)  # p θ_i
    tables = tuple(xp.asarray(f(angles).astype(dtype)) for f in (np.cos, np.sin))
    for table in tables:
        if isinstance(table, np.ndarray):
            table.flags.writeable = False
    return tables


class RotaryEmbedding(Module):
    """Rotary position embedding (RoPE, Su et al. 2021; beyond the articles, no SEEDS_GUIDE id: lesson 19
    teaches it, in place of 003.arch's added positions), applied to the queries and the keys of
    attention — not to the token embeddings. For a head of dimension d (even), the feature pair
    (x_i, x_{i+d/2}) of the token at position p is rotated by the angle p θ_i:

        θ_i = base^(-2i/d),  i = 0 .. d/2 - 1          (the frequencies of the sinusoidal table)
        y_i       = x_i cos(p θ_i) - x_{i+d/2} sin(p θ_i)
        y_{i+d/2} = x_{i+d/2} cos(p θ_i) + x_i sin(p θ_i)

    Pairing i with i + d/2 (the "rotate_half" layout of Hugging Face's Llama, not the
    interleaved pairs (x_{2i}, x_{2i+1}) of the paper and of Meta's code) is what weights
    converted to Hugging Face's format expect. Rotations compose by adding angles and are
    orthogonal, so for a query at position m and a key at position n,

        (R_m q) · (R_n k) = q · R_{n-m} k

    depends on the offset n - m only: attention scores see relative positions. No parameters.
    forward(x, offset=0): x (..., T, d) holds positions offset .. offset + T - 1 (with a KV
    cache, offset = the number of positions already cached). The backward is the rotation
    by the opposite angles (tinylm.ops.Rotary).
    """

    def __init__(self, dim, base=10000.0):
        super().__init__()
        if not isinstance(dim, int) or dim <= 0 or dim % 2:
            raise ValueError(f"RotaryEmbedding: dim must be a positive even number (features come in pairs), got {dim}")
        if not base > 1:
            raise ValueError(f"RotaryEmbedding: base must be a number > 1, got {base}")
        self.dim, self.base = dim, base
        self.inv_freq = base ** (-np.arange(0, dim, 2) / dim)     # θ_i, float64

    def cos_sin(self, offset, length, like):
        """cos(p θ_i), sin(p θ_i) for p = offset .. offset + length - 1: two (length, d/2) arrays
        in like's dtype, on its device (angles computed in float64). Computed once for each
        (positions, dtype, device) and kept (read-only on the CPU): every layer's queries and keys
        in every step of training ask for the same two tables."""
        return _rope_tables(self.inv_freq.tobytes(), offset, length, np.dtype(like.dtype).str, like.xp)

    def forward(self, x, offset=0):
        check_last_dim("RotaryEmbedding", x, self.dim, f"(..., T, {self.dim})")
        if x.ndim < 2:
            raise ValueError(f"RotaryEmbedding expected input (..., T, {self.dim}), got {tuple(x.shape)}")
        cos, sin = self.cos_sin(offset, x.shape[-2], x)
        return ops.Rotary.apply(x, cos=cos, sin=sin)

    def extra_repr(self):
        return f"dim={self.dim}, base={self.base}"
