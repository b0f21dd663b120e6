"""Recurrent language models (char-rnn style): embedding -> RNN or LSTM -> linear -> logits.

    h_t = RNN(x_t, h_{t-1})  (000.rnn; or the LSTM of 000.lstm);   logits_t = V h_t + c

which is the corrected 002.rnn: the bias sits inside, the state update is explicit, and the
output layer reads the new state. The hidden state can be carried from one batch to the next
(truncated backpropagation through time) and is carried token by token during generation.
"""
from dataclasses import dataclass

from ..nn import LSTM, RNN, Embedding, Linear, Module
from .inputs import next_token_loss, token_ids


@dataclass
class RNNLMConfig:
    vocab_size: int = 65
    block_size: int = 64      # the length of the training windows (BPTT length)
    n_layer: int = 2
    n_embd: int = 64          # embedding size
    n_hidden: int = 256
    dropout: float = 0.0
    cell: str = "lstm"        # "lstm" or "rnn" (tanh)


class RNNLM(Module):
    """A recurrent language model; forward returns (logits, loss) like GPT, and the final
    hidden state is kept in `self.last_state` for carrying across batches."""

    def __init__(self, config):
        super().__init__()
        if config.cell not in ("lstm", "rnn"):
            raise ValueError(f"RNNLM: cell must be 'lstm' or 'rnn', got {config.cell!r}")
        self.config = config
        self.kind = config.cell
        self.embed = Embedding(config.vocab_size, config.n_embd)
        layer = LSTM if config.cell == "lstm" else RNN
        self.rnn = layer(config.n_embd, config.n_hidden, num_layers=config.n_layer, batch_first=True,
                         dropout=config.dropout)
        self.head = Linear(config.n_hidden, config.vocab_size)
        self.last_state = None

    def forward(self, idx, targets=None, state=None):
        idx = token_ids(idx, self.config.vocab_size, "RNNLM")
        out, self.last_state = self.rnn(self.embed(idx), state)
        logits = self.head(out)
        return logits, next_token_loss(logits, targets)

    def detached_state(self):
        """The last hidden state cut from the graph, to start the next batch from (truncated BPTT)."""
        s = self.last_state
        if s is None:
            return None
        return tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()

    # --- generation: state = the hidden state after the tokens seen so far ------------------
    def init_state(self, batch_size):
        return None

    def step(self, idx, state):
        """Logits of the next token: the whole prompt on the first call, then one token."""
        new = idx if state is None else idx[:, -1:]
        logits, _ = self(new, state=state)
        return logits[:, -1], self.last_state

    def window(self, idx):
        """Without carried state the model re-reads the whole sequence."""
        return idx
