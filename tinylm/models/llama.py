"""Llama: the decoder-only Transformer of today's open models, the whole model in one file.

    tokens -> token embedding -> N × LlamaDecoderLayer -> RMSNorm -> logits
    layer(x):  x = x + Attention(RMSNorm(x));   x = x + SwiGLU(RMSNorm(x))        (pre-norm)

What changed since GPT-2 (tinylm.models.gpt), block by block (lessons/19_since_gpt2.py):

* no position embedding table: the queries and keys are rotated by their position (RoPE,
  nn.RotaryEmbedding), so attention scores depend on relative positions;
* RMSNorm (nn.RMSNorm) in place of LayerNorm: no mean subtracted, no bias;
* the feed-forward sublayer is SwiGLU (nn.SwiGLU), W_down(SiLU(W_gate x) ⊙ W_up x), in place
  of GELU(x W_fc) W_proj;
* grouped-query attention (nn.GroupedQueryAttention): n_kv_heads key/value heads shared by
  the n_head query heads, a smaller KV cache;
* no biases anywhere; the output layer tied to the embedding or not (tie_weights).

Trained, like GPT, on the loss of 004.pretrain.loss, L = -Σ_t log P(w_t | w_<t). The module
names are Hugging Face's LlamaForCausalLM's without its "model." prefix (embed_tokens,
layers.N.self_attn.{q,k,v,o}_proj, layers.N.mlp.{gate,up,down}_proj, layers.N.input_layernorm,
layers.N.post_attention_layernorm, norm, lm_head), and RoPE pairs features in its
"rotate_half" layout, so its weights map one to one.
"""
import math
from dataclasses import dataclass

from ..nn import Dropout, Embedding, GroupedQueryAttention, Linear, Module, ModuleList, RMSNorm, SwiGLU, init
from ..nn import functional as F
from .decoding import KVCacheDecoding
from .inputs import next_token_loss, token_ids


@dataclass
class LlamaConfig:
    vocab_size: int = 65
    block_size: int = 64            # the longest context the model sees (max_position_embeddings)
    n_layer: int = 4
    n_head: int = 4
    n_kv_heads: int = None          # key/value heads; None: n_head (multi-head attention)
    n_embd: int = 128
    intermediate_size: int = None   # SwiGLU's hidden width; None: 8/3 n_embd rounded up to a multiple of 32
    rope_theta: float = 10000.0     # RoPE's base
    rms_norm_eps: float = 1e-5
    tie_weights: bool = True        # the output layer shares the token embedding's weight
    dropout: float = 0.0

    @property
    def kv_heads(self):
        return self.n_head if self.n_kv_heads is None else self.n_kv_heads

    @property
    def hidden_size(self):
        """SwiGLU's width: three matrices of 8/3 n_embd cost what GPT's two of 4 n_embd do."""
        return self.intermediate_size or 32 * math.ceil(8 * self.n_embd / 3 / 32)


class LlamaDecoderLayer(Module):
    """x + Attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)): pre-norm residual sublayers (003.arch
    with the norm moved before each sublayer, as GPT-2 does too)."""

    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.n_embd, eps=config.rms_norm_eps)
        self.self_attn = GroupedQueryAttention(config.n_embd, config.n_head, config.kv_heads, bias=False,
                                               dropout=config.dropout, rope_base=config.rope_theta)
        self.post_attention_layernorm = RMSNorm(config.n_embd, eps=config.rms_norm_eps)
        self.mlp = SwiGLU(config.n_embd, config.hidden_size, bias=False)
        self.dropout = Dropout(config.dropout)

    def forward(self, x, cache=None):
        x = x + self.dropout(self.self_attn(self.input_layernorm(x), cache))
        return x + self.dropout(self.mlp(self.post_attention_layernorm(x)))


class Llama(Module, KVCacheDecoding):
    """The language model: logits for the next token at every position. Generation with a KV
    cache (tinylm.generate) through init_state / step / window (tinylm.models.decoding)."""

    kind = "llama"

    def __init__(self, config):
        super().__init__()
        if config.n_embd % config.n_head or (config.n_embd // config.n_head) % 2:
            raise ValueError(f"Llama: n_embd ({config.n_embd}) must be n_head ({config.n_head}) times an even "
                             "head size (RoPE rotates pairs of features)")
        if config.n_head % config.kv_heads:
            raise ValueError(f"Llama: n_kv_heads ({config.kv_heads}) must divide n_head ({config.n_head})")
        self.config = config
        self.embed_tokens = Embedding(config.vocab_size, config.n_embd)
        self.layers = ModuleList([LlamaDecoderLayer(config) for _ in range(config.n_layer)])
        self.norm = RMSNorm(config.n_embd, eps=config.rms_norm_eps)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.embed_tokens.weight
        # N(0, 0.02) as GPT-2 and Llama; the projections into the residual stream (o_proj, down_proj)
        # scaled by 1/√(2 n_layer), as GPT-2's c_proj; the RMSNorm gains stay at 1
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))
            elif p.ndim == 2:
                init.normal_(p, 0.0, 0.02)

    @classmethod
    def from_pretrained(cls, path):
        """A Llama from a local Hugging Face-format folder (config.json + model.safetensors or
        pytorch_model.bin), its names mapped by tinylm.models.pretrained; nothing is downloaded."""
        from .pretrained import from_pretrained

        return from_pretrained(path, kind=cls.kind)

    def hidden_states(self, idx, prefix=None, caches=None):
        """The forward pass without the output layer: (B, P + T, n_embd) after the final RMSNorm.

            x = [prefix; embed_tokens(idx)];   x = layer(x) for every layer;   h = RMSNorm(x)

        prefix (P, n_embd), optional: vectors put before the token embeddings of every row (a
        soft prompt, 003.finetune); they take positions 0..P-1 and the tokens the positions after
        them (RoPE rotates each by its position). caches: one dict per layer, the KV cache of
        generation (positions continue after the cached ones)."""
        idx = token_ids(idx, self.config.vocab_size, "Llama")
        x = self.embed_tokens(idx)  # no position embedding: RoPE inside attention
        if prefix is not None:
            x = F.cat([prefix.unsqueeze(0).expand(x.shape[0], *prefix.shape), x], 1)
        start = caches[0]["k"].shape[2] if caches and "k" in caches[0] else 0
        if start + x.shape[1] > self.config.block_size:
            raise ValueError(f"Llama: a sequence of {start + x.shape[1]} positions is longer than block_size "
                             f"{self.config.block_size}")
        for i, layer in enumerate(self.layers):
            x = layer(x, caches[i] if caches is not None else None)
        return self.norm(x)

    def forward(self, idx, targets=None, caches=None):
        """idx (B, T) token ids -> (logits (B, T, vocab), loss or None). With targets (B, T), the
        loss is the mean cross-entropy of predicting targets[t] from idx[:t+1]. caches: one dict
        per layer, the KV cache of generation (positions continue after the cached ones)."""
        logits = self.lm_head(self.hidden_states(idx, caches=caches))
        return logits, next_token_loss(logits, targets)
