"""Generation with a KV cache, for the decoder-only Transformers (GPT, Llama).

tinylm.generate asks a model for init_state(batch), step(idx, state) and window(idx). A
Transformer's state is its KV cache: one dict per block holding the keys and values of every
position seen so far ({"k": (B, heads, S, d), "v": ...}), so each new token costs one position's
work instead of the whole context's (004.generate).
"""


class KVCacheDecoding:
    """init_state, step and window for a model whose forward(idx, caches=...) fills one cache dict
    per block and whose config has n_layer and block_size."""

    def init_state(self, batch_size):
        return None

    def step(self, idx, state):
        """Logits of the next token after idx (B, T), reusing and extending `state` (the KV
        cache). When the context outgrows block_size, the cache restarts from the last
        block_size tokens (the positions shift, so nothing cached can be reused)."""
        cached = state[0]["k"].shape[2] if state else 0
        if state is None or cached + 1 > self.config.block_size:
            state = [{} for _ in range(self.config.n_layer)]
            new = idx[:, -self.config.block_size:]
        else:
            new = idx[:, -1:]
        logits, _ = self(new, caches=state)
        return logits[:, -1], state

    def window(self, idx):
        """The part of idx the model can see without a cache: the last block_size tokens."""
        return idx[:, -self.config.block_size:]
