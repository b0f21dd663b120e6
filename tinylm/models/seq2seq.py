"""An encoder–decoder Transformer (003.arch) for sequence-to-sequence tasks, in one file.

    src -> embedding·√d + sinusoidal positions -> N × encoder block -> memory
    tgt_in -> embedding·√d + sinusoidal positions -> N × decoder block (masked self-attention,
              attention over memory, feed-forward) -> Linear(d_model, tgt_vocab) -> logits

The model of 000.code.transformer, with its three bugs fixed:

* TransformerEncoderLayer(d_model, nhead, ...): the second argument is the number of heads
  (it was given a hidden size);
* the decoder is called as decoder(tgt, memory): the target sequence first, the encoder's
  output second (it was called as (memory, tgt), so the source was decoded);
* the output layer is Linear(d_model, vocab): its input width is the model width d_model
  (it was Linear(hidden_size, ...), which does not match what the decoder outputs).

The decoder sees the target shifted right (<bos> y_1 ... y_n, teacher forcing) under the
causal mask, so position t predicts y_{t+1} from y_<=t and the whole source. Decoding runs
the decoder again on the growing prefix, greedily or with beam search.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..autograd import no_grad
from ..nn import (Embedding, Linear, Module, SinusoidalPositionalEncoding, TransformerDecoder,
                  TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
                  generate_square_subsequent_mask)
from ..tensor import as_tensor
from .inputs import on_model_device


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int = 64
    tgt_vocab_size: int = 64
    d_model: int = 64
    nhead: int = 4
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.1
    max_len: int = 64              # the longest source or target the positions cover
    pad_id: int = 0
    share_embeddings: bool = False  # one table for source, target and output (needs one vocabulary)


class Seq2Seq(Module):
    """forward(src (B, S), tgt_in (B, T)) -> logits (B, T, tgt_vocab_size); pad_id marks padding."""

    kind = "seq2seq"

    def __init__(self, config):
        super().__init__()
        c = self.config = config
        if c.share_embeddings and c.src_vocab_size != c.tgt_vocab_size:
            raise ValueError(f"Seq2Seq: share_embeddings needs one vocabulary, got src_vocab_size "
                             f"{c.src_vocab_size} and tgt_vocab_size {c.tgt_vocab_size}")
        self.src_embed = Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = self.src_embed if c.share_embeddings else Embedding(c.tgt_vocab_size, c.d_model)
        self.positions = SinusoidalPositionalEncoding(c.d_model, c.max_len, batch_first=True)
        layer = dict(d_model=c.d_model, nhead=c.nhead, dim_feedforward=c.dim_feedforward, dropout=c.dropout,
                     batch_first=True)
        self.encoder = TransformerEncoder(TransformerEncoderLayer(**layer), c.num_encoder_layers)
        self.decoder = TransformerDecoder(TransformerDecoderLayer(**layer), c.num_decoder_layers)
        self.generator = Linear(c.d_model, c.tgt_vocab_size)  # d_model wide: 000.code.transformer's 3rd fix
        if c.share_embeddings:
            self.generator.weight = self.tgt_embed.weight
        tables = [self.src_embed] if c.share_embeddings else [self.src_embed, self.tgt_embed]
        for table in tables:
            table.weight.data *= c.d_model ** -0.5  # N(0, 1/d): times √d in _embed, unit-size inputs

    def _embed(self, table, ids):
        """Token vectors scaled by √d_model (as in "Attention Is All You Need"), plus positions."""
        return self.positions(table(ids) * math.sqrt(self.config.d_model))

    def encode(self, src):
        """memory (B, S, d_model) and the source padding mask (B, S), True at padding."""
        src = on_model_device(src, self.src_embed.weight)
        pad = src == self.config.pad_id
        return self.encoder(self._embed(self.src_embed, src), src_key_padding_mask=pad), pad

    def decode(self, tgt_in, memory, src_pad, tgt_pad=None):
        """Logits (B, T, V) for every position of tgt_in, each seeing only tgt_in[:, :t+1]."""
        T = tgt_in.shape[1]
        # 000.code.transformer's 2nd fix: decoder(tgt, memory), the target first
        h = self.decoder(self._embed(self.tgt_embed, tgt_in), memory,
                         tgt_mask=generate_square_subsequent_mask(T, memory.dtype, memory.device), tgt_is_causal=True,
                         tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
        return self.generator(h)

    def forward(self, src, tgt_in):
        memory, src_pad = self.encode(src)
        tgt_in = on_model_device(tgt_in, self.tgt_embed.weight)
        return self.decode(tgt_in, memory, src_pad, tgt_pad=tgt_in == self.config.pad_id)

    def _next_log_probs(self, prefixes, memory, src_pad):
        """log P(next token | prefix, source) (K, V) for K prefixes (K, t) over the same memory rows."""
        logits = self.decode(prefixes, memory, src_pad)[:, -1]
        return logits.log_softmax(-1).numpy().astype(np.float64)

    def _check_decoding(self, src, max_len):
        src = as_tensor(src).numpy().astype(np.int64)  # the search runs on the host
        if src.ndim != 2 or src.shape[1] == 0:
            raise ValueError(f"src must be a non-empty (batch, length) array of ids, got shape {src.shape}")
        if not 1 <= max_len < self.config.max_len:
            raise ValueError(f"max_len must be from 1 to {self.config.max_len - 1} (the positions the model "
                             f"covers, minus <bos>), got {max_len}")
        return src

    def greedy_decode(self, src, max_len, bos, eos):
        """The most likely next token at every step, for each source row of src (B, S).

        Returns (sequences, log_probs): B lists of generated ids (ending with eos when it was
        produced within max_len tokens; <bos> not included) and their log-probabilities
        Σ_t log P(y_t | y_<t, src).
        """
        src = self._check_decoding(src, max_len)
        was_training = self.training
        self.eval()
        with no_grad():
            memory, src_pad = self.encode(src)
            ys = np.full((len(src), 1), bos, dtype=np.int64)
            log_probs = np.zeros(len(src))
            done = np.zeros(len(src), dtype=bool)
            for _ in range(max_len):
                lp = self._next_log_probs(ys, memory, src_pad)
                nxt = lp.argmax(-1)
                log_probs += np.where(done, 0.0, lp[np.arange(len(src)), nxt])
                ys = np.concatenate([ys, np.where(done, eos, nxt)[:, None]], axis=1)
                done |= nxt == eos
                if done.all():
                    break
        self.train(was_training)
        sequences = []
        for row in ys[:, 1:].tolist():
            sequences.append(row[:row.index(eos) + 1] if eos in row else row)
        return sequences, log_probs.tolist()

    def beam_search(self, src, beam_size, max_len, bos, eos, length_penalty=1.0, num_return_sequences=1):
        """Beam search for each source row of src (B, S).

        At every step each of the (at most beam_size) live hypotheses is extended by every token,
        and the beam_size extensions with the highest log-probability Σ_t log P(y_t | y_<t, src)
        are kept; those ending in eos are finished and leave the beam. At the end (no live
        hypothesis left, or max_len tokens) the finished ones and those cut at max_len are
        ranked by   score = log P(y) / len(y)^length_penalty   (len counts eos; length_penalty
        0 ranks by log-probability alone, 1 by the mean per token, favouring longer outputs).

        beam_size=1 is greedy decoding; a beam as wide as every sequence up to max_len makes the
        search exhaustive, so it finds the sequence of highest score exactly.
        Returns (sequences, log_probs) like greedy_decode, with num_return_sequences rows per
        source (best first; fewer if the search met fewer hypotheses), source after source.
        """
        src = self._check_decoding(src, max_len)
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        if not 1 <= num_return_sequences <= beam_size:
            raise ValueError(f"num_return_sequences must be from 1 to beam_size={beam_size}, "
                             f"got {num_return_sequences}")
        was_training = self.training
        self.eval()
        sequences, log_probs = [], []
        with no_grad():
            for row in src:
                memory, src_pad = self.encode(row[None])
                ranked = self._beam_one(memory, src_pad, beam_size, max_len, bos, eos, length_penalty)
                for tokens, lp in ranked[:num_return_sequences]:
                    sequences.append(tokens)
                    log_probs.append(lp)
        self.train(was_training)
        return sequences, log_probs

    def _beam_one(self, memory, src_pad, beam_size, max_len, bos, eos, length_penalty):
        """All final hypotheses (tokens, log-prob) of one source, best score first."""
        live = [([], 0.0)]
        finished = []
        for _ in range(max_len):
            k = len(live)
            prefixes = np.array([[bos] + tokens for tokens, _ in live], dtype=np.int64)
            lp = self._next_log_probs(prefixes, memory.expand(k, *memory.shape[1:]), src_pad.repeat(k, axis=0))
            total = np.array([score for _, score in live])[:, None] + lp   # (k, V): log P of every extension
            best = np.argsort(-total, axis=None, kind="stable")[:beam_size]
            parents, live = live, []
            for beam, token in zip(*np.unravel_index(best, total.shape)):
                hypothesis = (parents[beam][0] + [int(token)], float(total[beam, token]))
                (finished if token == eos else live).append(hypothesis)
            if not live:
                break
        return sorted(finished + live, key=lambda h: -h[1] / len(h[0]) ** length_penalty)
