"""BERT: an encoder-only Transformer pre-trained with MLM and NSP, the whole model in one file.

    [CLS] A [SEP] B [SEP] [PAD]...
      -> token embedding + segment embedding (0 for A, 1 for B) + learned position embedding
      -> LayerNorm -> dropout -> N × encoder block (003.arch: self-attention, Add & Norm,
         feed-forward with GELU, Add & Norm; post-norm, as BERT)       = hidden states h (B, T, H)
      MLM head (003.mlm), every position:  LayerNorm(GELU(h W_t + b_t)) Eᵀ + b  -> logits over the vocabulary
      NSP head (003.nsp), on [CLS] only:   tanh(h_[CLS] W_p + b_p) (the "pooler") -> Linear(H, 2)

E is the token embedding table itself (weight tying), so the MLM head scores a position's
vector against every token's input vector. Every token attends to every other token (no
causal mask: an encoder reads both directions); padding is hidden from attention by
attention_mask. The pre-training loss is the sum of both tasks:

    L = CE(MLM logits at the selected positions, original tokens) + CE(NSP logits, is-next label)

For fine-tuning (003.finetune), `hidden_states` gives the hidden states; h[:, 0], the [CLS] vector
(or `pooler` of it), feeds a classification head.
"""
from dataclasses import dataclass

from ..nn import functional as F
from ..nn import (Dropout, Embedding, LayerNorm, LearnedPositionalEmbedding, Linear, Module,
                  TransformerEncoder, TransformerEncoderLayer, init)
from ..tensor import Tensor
from .inputs import on_model_device


@dataclass
class BertConfig:
    vocab_size: int = 512      # including the special tokens [PAD] [CLS] [SEP] [MASK]
    block_size: int = 64       # the longest input, [CLS] A [SEP] B [SEP] with padding
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128          # hidden size H
    n_inner: int = None        # feed-forward width (None: 4 H)
    type_vocab_size: int = 2   # segments A and B
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12


@dataclass
class BertOutput:
    """What BERT's forward returns; the losses are None when their labels were not given."""

    mlm_logits: Tensor        # (B, T, vocab_size)
    nsp_logits: Tensor        # (B, 2): class 0 = B follows A, class 1 = B is a random sentence
    loss: Tensor = None       # mlm_loss + nsp_loss (or the one that was given)
    mlm_loss: Tensor = None
    nsp_loss: Tensor = None


class Bert(Module):
    """forward(input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None, nsp_labels=None)
    -> BertOutput. attention_mask: 1 for real tokens, 0 for padding; mlm_labels: the original token
    at the positions to predict and -100 elsewhere; nsp_labels: 0 when B follows A, 1 when not
    (Hugging Face's convention)."""

    kind = "bert"

    def __init__(self, config):
        super().__init__()
        c = self.config = config
        H = c.n_embd
        self.word_embeddings = Embedding(c.vocab_size, H)
        self.token_type_embeddings = Embedding(c.type_vocab_size, H)
        self.position_embeddings = LearnedPositionalEmbedding(c.block_size, H)
        self.embed_norm = LayerNorm(H, eps=c.layer_norm_eps)
        self.embed_dropout = Dropout(c.dropout)
        block = TransformerEncoderLayer(H, c.n_head, dim_feedforward=c.n_inner or 4 * H, dropout=c.dropout,
                                        activation="gelu", layer_norm_eps=c.layer_norm_eps, batch_first=True)
        self.encoder = TransformerEncoder(block, c.n_layer)
        # MLM head: transform, then the tied decoder (its weight IS word_embeddings.weight) with its own bias
        self.mlm_dense = Linear(H, H)
        self.mlm_norm = LayerNorm(H, eps=c.layer_norm_eps)
        self.mlm_decoder = Linear(H, c.vocab_size)
        self.mlm_decoder.weight = self.word_embeddings.weight
        # NSP head: the pooler (dense + tanh on [CLS]) and a 2-way classifier
        self.pooler = Linear(H, H)
        self.nsp_classifier = Linear(H, 2)
        # BERT's initialisation: weights N(0, 0.02), biases 0, LayerNorm gains 1
        for name, p in self.named_parameters():
            if p.ndim == 2:
                init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                init.zeros_(p)

    def hidden_states(self, input_ids, token_type_ids=None, attention_mask=None, prefix=None):
        """Hidden states h (B, T, H) of the last encoder block; h[:, 0] is the [CLS] vector.

            x = LN(word(ids) + segment(types) + positions);   h = Encoder(Dropout(x))

        prefix (P, H), optional: vectors put in right after [CLS] (a soft prompt, 003.finetune),
        then h is (B, 1 + P + T - 1, H); attention never hides them, whatever attention_mask says."""
        weight = self.word_embeddings.weight
        ids = on_model_device(input_ids, weight)
        if ids.ndim != 2:
            raise ValueError(f"BERT expected input_ids of shape (batch, length), got {ids.shape}")
        types = weight.xp.zeros_like(ids) if token_type_ids is None else on_model_device(token_type_ids, weight)
        if types.shape != ids.shape:
            raise ValueError(f"BERT: token_type_ids of shape {types.shape} do not match input_ids {ids.shape}")
        mask = None if attention_mask is None else on_model_device(attention_mask, weight)
        if mask is not None and mask.shape != ids.shape:
            raise ValueError(f"BERT: attention_mask of shape {mask.shape} does not match input_ids {ids.shape}")
        x = self.word_embeddings(ids) + self.token_type_embeddings(types)
        if prefix is not None:
            B, P = ids.shape[0], prefix.shape[0]
            x = F.cat([x[:, :1], prefix.unsqueeze(0).expand(B, *prefix.shape), x[:, 1:]], 1)
            if mask is not None:
                mask = weight.xp.concatenate([mask[:, :1], weight.xp.ones((B, P), dtype=mask.dtype), mask[:, 1:]], 1)
        x = self.embed_dropout(self.embed_norm(self.position_embeddings(x)))
        return self.encoder(x, src_key_padding_mask=None if mask is None else mask == 0)  # True: hidden key

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None, nsp_labels=None):
        h = self.hidden_states(input_ids, token_type_ids, attention_mask)
        mlm_logits = self.mlm_decoder(self.mlm_norm(F.gelu(self.mlm_dense(h))))     # 003.mlm
        nsp_logits = self.nsp_classifier(self.pooler(h[:, 0]).tanh())               # 003.nsp
        out = BertOutput(mlm_logits, nsp_logits)
        if mlm_labels is not None:
            out.mlm_loss = F.cross_entropy(mlm_logits.reshape(-1, self.config.vocab_size),
                                           on_model_device(mlm_labels, mlm_logits).reshape(-1), ignore_index=-100)
        if nsp_labels is not None:
            out.nsp_loss = F.cross_entropy(nsp_logits, on_model_device(nsp_labels, nsp_logits))
        losses = [loss for loss in (out.mlm_loss, out.nsp_loss) if loss is not None]
        if losses:
            out.loss = losses[0] + losses[1] if len(losses) == 2 else losses[0]
        return out
