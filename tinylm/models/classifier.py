"""Text classifiers: a pretrained body with a linear head (003.finetune), and an LSTM classifier.

TextClassifier: a pretrained GPT, Llama or BERT reads a text and gives one hidden state per
token; one of them is the summary of the text (GPT and Llama: the last real token, the only one
that has seen all the others through causal attention; BERT: the [CLS] token). A linear head
turns the summary into class logits:

    P(· | x) = softmax(W · dropout(summary(x)) + b)          trained on 004.finetune.loss

method says what learns: "head" (feature extraction: the body is frozen), "full" (body and
head) or "prompt" (prompt tuning: P trainable vectors put in front of the token embeddings;
the body is frozen and the gradient flows through it to the prompt and the head).
A body is a small adapter around the pretrained model (DecoderBody for the decoder-only GPT and
Llama, BertBody): how it tokenizes a text, where the summary is; its hidden states are the
model's own `hidden_states`.

LSTMClassifier: the IMDB sentiment example of 002.code.imdb, corrected.

    ids (B, T) -> Embedding -> LSTM (batch first) -> h at each row's last real token (B, H)
               -> Dropout -> Linear -> logits (B, num_classes)

trained on L = -Σ_i log P(y_i | x_i) (004.finetune.loss). What it fixes in the article's code:

- the output layer has one output per class (num_classes), not vocab_size: a two-label
  task needs two logits, not a distribution over words;
- the LSTM is built with batch_first=True and fed (batch, time, features), so "the last
  step" is out[:, t] along time — not out[-1] read from a (time, batch) tensor as if it were
  batch first, which picks the last example of the batch (the bug of 000.code.lstm too);
- the summary is the hidden state at each row's own last real token, found from its length,
  not out[:, -1], which in a right-padded batch is a padding step for every shorter text;
- predictions take a batch dimension: forward wants ids of shape (B, T), one text is a batch
  of one, and a 1-D input gets an error instead of being read as B texts of one token;
- no removed torchtext API (Field, IMDB.splits, Dataset.zip): texts are encoded by tinylm's
  own tokenizer, trained on the training texts, where a word it never saw (a Chinese
  sentence given to an English vocabulary, say) becomes the unknown id, not a crash;
- the article's figure of 2,500 IMDB test reviews is 25,000; here the data set is whatever
  (text, label) file is given, or tinylm's own embedded sentiment set.
"""
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..data.labelled import encode_texts
from ..data.mlm import SpecialTokens
from ..nn import LSTM, Dropout, Embedding, Linear, Module, Parameter
from ..random import generator
from .bert import Bert
from .gpt import GPT
from .inputs import on_model_device
from .llama import Llama

METHODS = ("head", "full", "prompt")


@dataclass
class LSTMClassifierConfig:
    vocab_size: int
    num_classes: int = 2
    n_embd: int = 64          # embedding size
    n_hidden: int = 128       # LSTM hidden size
    n_layer: int = 1
    dropout: float = 0.2      # before the output layer (and between LSTM layers when n_layer > 1)


class LSTMClassifier(Module):
    """Logits of each text's class from the LSTM state after its last real token."""

    kind = "lstm_classifier"

    def __init__(self, config):
        super().__init__()
        if config.num_classes < 2:
            raise ValueError(f"LSTMClassifier: num_classes must be at least 2, got {config.num_classes}")
        self.config = config
        self.embed = Embedding(config.vocab_size, config.n_embd)
        self.rnn = LSTM(config.n_embd, config.n_hidden, num_layers=config.n_layer, batch_first=True,
                        dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.drop = Dropout(config.dropout)
        self.head = Linear(config.n_hidden, config.num_classes)

    def forward(self, ids, lengths):
        """ids (B, T) token ids, right-padded; lengths (B,) the number of real tokens of each
        row (1..T). Returns logits (B, num_classes)."""
        ids, lengths = on_model_device(ids, self.embed.weight), on_model_device(lengths, self.embed.weight)
        if ids.ndim != 2:
            raise ValueError(f"LSTMClassifier expected a batch of ids (B, T), got shape {ids.shape}; "
                             "for one text pass a batch of one, ids[None]")
        B, T = ids.shape
        if lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"LSTMClassifier expected lengths (B,) = ({B},) between 1 and T = {T}, "
                             f"got shape {lengths.shape} with values {lengths.min()}..{lengths.max()}")
        out, _ = self.rnn(self.embed(ids))        # (B, T, n_hidden): h_t of every step, batch first
        last = out[out.xp.arange(B), lengths - 1]  # (B, n_hidden): each row's own last real step
        return self.head(self.drop(last))


# --- bodies: pretrained models seen as text encoders ------------------------------------------
class DecoderBody(Module):
    """A pretrained decoder-only language model (GPT or Llama, the kinds in DECODERS) and its
    tokenizer as a text encoder. The summary of a text is the hidden state at its last real
    token. Attention is causal, so a real token never sees the padding on its right, and the
    mask is not needed (a body attending both ways needs it). A soft prompt goes in front of the
    token embeddings, through the model's own hidden_states(ids, prefix=prompt); it takes the
    first P positions (GPT's learned position embeddings, Llama's RoPE rotations) and the text
    the P after them."""

    def __init__(self, model, tokenizer):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        config = model.config
        self.vocab_size, self.n_embd, self.max_len = config.vocab_size, config.n_embd, config.block_size
        # An output layer of its own (Llama with tie_weights False) plays no part in classification:
        # frozen, it is left out of the trainable parameters. A tied one is the embedding table, which
        # stays trainable.
        model.lm_head.requires_grad_(False)
        self.token_embedding.weight.requires_grad = True

    @property
    def token_embedding(self):
        return getattr(self.model, DECODERS[type(self.model)])

    def tokenize(self, texts, n_prompt=0):
        """(ids, attention_mask) of the texts, cut to leave room for n_prompt prompt vectors."""
        return encode_texts(self.tokenizer, texts, self.max_len - n_prompt)

    def embed(self, ids):
        return self.token_embedding(ids)

    def encode(self, ids, attention_mask, prompt=None):
        """Hidden states (B, P + T, E), the P soft-prompt vectors, if any, first."""
        return self.model.hidden_states(ids, prefix=prompt)

    def summary_positions(self, attention_mask, n_prompt=0):
        """The last real token of each right-padded row, after the n_prompt prompt positions."""
        return n_prompt + on_model_device(attention_mask, self.token_embedding.weight).sum(1) - 1


GPTBody = DecoderBody  # the name lesson 11 and its exercises use for a GPT's body


class BertBody(Module):
    """A pretrained BERT (objective mlm+nsp) as a text encoder. A text is read as
    [CLS] tokens [SEP] [PAD]...; its summary is the hidden state of [CLS] (003.finetune).
    A soft prompt goes right after [CLS]: [CLS] p_1..p_P tokens [SEP]."""

    def __init__(self, bert, tokenizer, special=None):
        super().__init__()
        self.model, self.tokenizer = bert, tokenizer
        self.special = special or SpecialTokens(tokenizer.vocab_size)
        self.vocab_size, self.n_embd, self.max_len = bert.config.vocab_size, bert.config.n_embd, bert.config.block_size
        # The pre-training heads (MLM, pooler + NSP) play no part in classification: frozen, they
        # are left out of the trainable parameters. mlm_decoder.weight is the embedding table
        # itself (tied), which stays trainable.
        for head in (bert.mlm_dense, bert.mlm_norm, bert.mlm_decoder, bert.pooler, bert.nsp_classifier):
            head.requires_grad_(False)
        bert.word_embeddings.weight.requires_grad = True

    def tokenize(self, texts, n_prompt=0):
        """[CLS] + each text's first tokens + [SEP], [PAD] after, leaving room for the prompt."""
        tokens, mask = encode_texts(self.tokenizer, texts, self.max_len - 2 - n_prompt, self.special.pad_id)
        (n, T), lengths = tokens.shape, mask.sum(1)
        ids = np.full((n, T + 2), self.special.pad_id, dtype=np.int64)
        ids[:, 0], ids[:, 1:T + 1] = self.special.cls_id, tokens
        ids[np.arange(n), lengths + 1] = self.special.sep_id
        return ids, (np.arange(T + 2) < (lengths + 2)[:, None]).astype(np.int64)

    def embed(self, ids):
        return self.model.word_embeddings(ids)

    def encode(self, ids, attention_mask, prompt=None):
        """Hidden states (B, P + T, E) of BERT's last block (one segment), the prompt after [CLS]."""
        return self.model.hidden_states(ids, attention_mask=attention_mask, prefix=prompt)

    def summary_positions(self, attention_mask, n_prompt=0):
        """[CLS], first in every row."""
        return np.zeros(len(attention_mask), dtype=np.int64)


# The decoder-only language models a DecoderBody wraps, each with the name of its token embedding.
DECODERS = {GPT: "wte", Llama: "embed_tokens"}
BODIES = {GPT: DecoderBody, Llama: DecoderBody, Bert: BertBody}


def body_of(model, tokenizer=None):
    """The body adapter of a pretrained GPT, Llama or BERT (tokenizer: default the model's own)."""
    if type(model) not in BODIES:
        raise ValueError(f"a {getattr(model, 'kind', type(model).__name__)!r} model cannot be a classifier's body; "
                         "fine-tuning needs a 'gpt', 'llama' or 'bert' model")
    tokenizer = tokenizer or getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError(f"the {model.kind!r} model has no tokenizer, and a classifier's body needs one to read "
                         "texts: give it one, body_of(model, tokenizer)")
    return BODIES[type(model)](model, tokenizer)


@dataclass
class TextClassifierConfig:
    num_classes: int = 2
    method: str = "head"      # head | full | prompt
    n_prompt: int = 8         # soft-prompt length P (method "prompt")
    dropout: float = 0.1      # before the head
    body: dict = field(default_factory=dict)  # the body model: {"kind": ..., "config": {...}}


class TextClassifier(Module):
    """body -> summary vector -> dropout -> Linear -> class logits, trained by `method`.
    forward(ids, attention_mask) -> logits (B, C); `tokenize(texts)` gives its inputs."""

    kind = "classifier"

    def __init__(self, body, num_classes, method="head", n_prompt=8, dropout=0.1):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
        if not isinstance(body, (DecoderBody, BertBody)):
            body = body_of(body)
        self.body, self.method = body, method
        self.n_prompt = n_prompt if method == "prompt" else 0
        self.config = TextClassifierConfig(num_classes, method, self.n_prompt, dropout,
                                           {"kind": body.model.kind, "config": dataclasses.asdict(body.model.config)})
        if self.n_prompt:
            # start the soft prompt from the embeddings of random tokens: vectors the body knows
            rows = generator().integers(0, body.vocab_size, self.n_prompt)
            self.prompt = Parameter(body.embed(rows).data.copy())
        else:
            self.prompt = None
        self.drop = Dropout(dropout)
        self.head = Linear(body.n_embd, num_classes)
        if method != "full":
            body.requires_grad_(False)  # feature extraction and prompt tuning: the body does not learn

    @classmethod
    def from_config(cls, config, tokenizer):
        """A classifier of `config` (weights still to load) around a body built from its description."""
        from . import build_model

        config = TextClassifierConfig(**config)
        body = build_model(config.body["kind"], tokenizer=tokenizer, **config.body["config"])
        return cls(body, config.num_classes, config.method, config.n_prompt, config.dropout)

    @property
    def tokenizer(self):
        return self.body.tokenizer

    def train(self, mode=True):
        """A frozen body stays in evaluation mode (no dropout): it gives the features it was trained to."""
        super().train(mode)
        if self.method != "full":
            self.body.eval()
        return self

    def tokenize(self, texts):
        """(ids, attention_mask) of the texts, as the body reads them (with room for the prompt)."""
        return self.body.tokenize(list(texts), self.n_prompt)

    def summarize(self, ids, attention_mask):
        """(B, E): the body's hidden state at each text's summary position."""
        hidden = self.body.encode(ids, attention_mask, self.prompt)
        positions = self.body.summary_positions(attention_mask, self.n_prompt)
        return hidden[hidden.xp.arange(len(positions)), hidden.xp.asarray(positions)]

    def classify(self, summary):
        """Class logits (B, C) from summary vectors (B, E)."""
        return self.head(self.drop(summary))

    def forward(self, ids, attention_mask):
        return self.classify(self.summarize(ids, attention_mask))
