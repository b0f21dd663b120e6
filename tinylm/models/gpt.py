"""GPT: a decoder-only Transformer language model, the whole model in one file.

    tokens -> token embedding + learned position embedding -> N × Block -> LayerNorm -> logits
    Block(x):  x = x + Attention(LayerNorm(x));   x = x + MLP(LayerNorm(x))     (pre-LayerNorm)

This is the "causal LM" of 003.clm done right: decoder-only with a causal mask, not an
encoder–decoder (and not encoder-only, 004.encoderonly). It is trained on the loss of
004.pretrain.loss, L = -Σ_t log P(w_t | w_<t). The output layer shares its weight with the
token embedding (weight tying).
"""
import math
from dataclasses import dataclass

from ..nn import functional as F
from ..nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, init
from ..nn.functional import scaled_dot_product_attention
from .decoding import KVCacheDecoding
from .inputs import next_token_loss, token_ids


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64      # the longest context the model sees
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    activation: str = "gelu"  # the MLP's: "gelu", x Φ(x), or "gelu_tanh", GPT-2's tanh approximation of it
    layer_norm_eps: float = 1e-5


class CausalSelfAttention(Module):
    """Multi-head self-attention with a causal mask (003.mha):

        q, k, v = split(x W_attn + b_attn);   head_i = softmax(q_i k_iᵀ/√d + M) v_i;
        y = Concat(head_1..head_h) W_proj + b_proj,   M_ij = -∞ for j > i (the future).

    With a KV cache (generation), the keys and values of earlier positions are kept, so a new
    token attends to them without recomputing them.
    """

    def __init__(self, config):
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError(f"GPT: n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, head size): each head attends on its own slice
        q, k, v = (t.reshape(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            if "k" in cache:
                k, v = F.cat([cache["k"], k], 2), F.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k.detach(), v.detach()
        if T > 1 and k.shape[2] != T:
            raise ValueError("GPT: with a KV cache, feed the whole prompt first, then one token at a time")
        y = scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                         is_causal=T > 1)
        y = y.transpose(1, 2).reshape(B, T, C)  # Concat(head_1..head_h)
        return self.resid_dropout(self.c_proj(y))


class MLP(Module):
    """The position-wise feed-forward sublayer (003.arch's FFN): GELU(x W_fc + b_fc) W_proj + b_proj, 4× wide."""

    def __init__(self, config):
        super().__init__()
        if config.activation not in ("gelu", "gelu_tanh"):
            raise ValueError(f"GPT: activation must be 'gelu' or 'gelu_tanh', got {config.activation!r}")
        self.approximate = "tanh" if config.activation == "gelu_tanh" else "none"
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        if type(self.c_fc) is Linear:  # GELU(x W_fc + b_fc) as one op: the bias and GELU in one kernel
            h = F.linear_gelu(x, self.c_fc.weight, self.c_fc.bias, approximate=self.approximate)
        else:  # a layer put in its place (tinylm.compress's QuantizedLinear): its own forward
            h = F.gelu(self.c_fc(x), approximate=self.approximate)
        return self.dropout(self.c_proj(h))


class Block(Module):
    """x + Attention(LN(x)), then x + MLP(LN(x)): pre-LayerNorm residual sublayers (003.arch)."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(Module, KVCacheDecoding):
    """The language model: logits for the next token at every position. Generation with a KV
    cache (tinylm.generate) through init_state / step / window (tinylm.models.decoding)."""

    kind = "gpt"

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.wpe = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        # GPT-2's initialisation: N(0, 0.02); residual projections scaled by 1/√(2 n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))
            elif name.endswith("weight") and p.ndim == 2:
                init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                init.zeros_(p)

    @classmethod
    def from_pretrained(cls, path):
        """GPT-2 from a local Hugging Face-format folder (config.json + model.safetensors or
        pytorch_model.bin), its names mapped by tinylm.models.pretrained; nothing is downloaded."""
        from .pretrained import from_pretrained

        return from_pretrained(path, kind=cls.kind)

    def hidden_states(self, idx, prefix=None, caches=None):
        """The forward pass without the output layer: (B, P + T, n_embd) after the final LayerNorm.

            x = [prefix; wte(idx)] + wpe(positions);   x = Block(x) for every block;   h = LN_f(x)

        prefix (P, n_embd), optional: vectors put before the token embeddings of every row (a
        soft prompt, 003.finetune). caches: one dict per block, the KV cache of generation."""
        idx = token_ids(idx, self.config.vocab_size, "GPT")
        x = self.wte(idx)
        if prefix is not None:
            x = F.cat([prefix.unsqueeze(0).expand(x.shape[0], *prefix.shape), x], 1)
        T = x.shape[1]
        start = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        if start + T > self.config.block_size:
            raise ValueError(f"GPT: a sequence of {start + T} positions is longer than block_size "
                             f"{self.config.block_size}")
        x = self.drop(x + self.wpe(self.wte.weight.xp.arange(start, start + T)))
        for i, block in enumerate(self.h):
            x = block(x, caches[i] if caches is not None else None)
        return self.ln_f(x)

    def forward(self, idx, targets=None, caches=None):
        """idx (B, T) token ids -> (logits (B, T, vocab), loss or None). With targets (B, T), the
        loss is the mean cross-entropy of predicting targets[t] from idx[:t+1]."""
        logits = self.lm_head(self.hidden_states(idx, caches=caches))
        return logits, next_token_loss(logits, targets)
