"""An LSTM text classifier: the IMDB sentiment example of 002.code.imdb, corrected.

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
from dataclasses import dataclass

import numpy as np

from ..nn import LSTM, Dropout, Embedding, Linear, Module
from ..tensor import data_of


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
        ids, lengths = np.asarray(data_of(ids)), np.asarray(data_of(lengths))
        if ids.ndim != 2:
            raise ValueError(f"LSTMClassifier expected a batch of ids (B, T), got shape {ids.shape}; "
                             "for one text pass a batch of one, ids[None]")
        B, T = ids.shape
        if lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"LSTMClassifier expected lengths (B,) = ({B},) between 1 and T = {T}, "
                             f"got shape {lengths.shape} with values {lengths.min()}..{lengths.max()}")
        out, _ = self.rnn(self.embed(ids))        # (B, T, n_hidden): h_t of every step, batch first
        last = out[np.arange(B), lengths - 1]     # (B, n_hidden): each row's own last real step
        return self.head(self.drop(last))
