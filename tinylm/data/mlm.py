"""The data of BERT-style pre-training (003.mlm, 003.nsp): special tokens, sentence pairs, masking.

    text -> sentences -> pairs (A, B, is_next): B is A's next sentence half of the time
         -> [CLS] A [SEP] B [SEP] [PAD]... with segment ids 0 (A) / 1 (B)
         -> 15% of the tokens selected to be predicted: 80% of them become [MASK], 10% a
            random token, 10% stay as they are

    special = SpecialTokens(tokenizer.vocab_size)       # [PAD] [CLS] [SEP] [MASK] after the vocabulary
    batch = build_bert_batch(nsp_pairs(split_sentences(text), rng, 16), tokenizer, special, 64, rng)
    out = bert(**batch)                                   # out.loss, out.mlm_logits, out.nsp_logits
"""
import re

import numpy as np


class SpecialTokens:
    """The four special tokens, given the ids after the tokenizer's own vocabulary (base_vocab_size):

        [PAD] fills a short input;  [CLS] starts it (its vector feeds NSP and classifiers);
        [SEP] ends each sentence;   [MASK] hides a token the MLM must predict.
    """

    NAMES = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")

    def __init__(self, base_vocab_size):
        if not isinstance(base_vocab_size, (int, np.integer)) or base_vocab_size < 1:
            raise ValueError(f"base_vocab_size must be a positive integer, got {base_vocab_size!r}")
        self.base_vocab_size = int(base_vocab_size)
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = range(self.base_vocab_size, self.base_vocab_size + 4)

    @property
    def ids(self):
        return (self.pad_id, self.cls_id, self.sep_id, self.mask_id)

    @property
    def vocab_size(self):
        """The model's vocabulary: the tokenizer's ids and the four special ones."""
        return self.base_vocab_size + len(self.NAMES)

    def decode(self, ids, tokenizer):
        """Text of ids with the special tokens written as [CLS], [SEP], ... (padding left out)."""
        pieces, run = [], []
        for i in list(ids) + [self.pad_id]:  # a final [PAD] flushes the last run of ordinary ids
            if i < self.base_vocab_size:
                run.append(i)
                continue
            if run:
                pieces.append(tokenizer.decode(run))
                run = []
            if i != self.pad_id:
                pieces.append(self.NAMES[i - self.base_vocab_size])
        return " ".join(pieces)

    def to_dict(self):
        return {"base_vocab_size": self.base_vocab_size}

    @classmethod
    def from_dict(cls, d):
        return cls(d["base_vocab_size"])


def mask_tokens(ids, rng, vocab_size, special_ids, mask_id, prob=0.15):
    """003.mlm, as BERT does it: (inputs, labels) for the masked-LM task.

    In each sequence (a row of ids (B, T), or ids (T,)), round(prob · n) of its n non-special
    positions (at least one) are selected at random, without repetition. Each selected
    position gets, independently:
        80%: [MASK] (mask_id)    10%: a random ordinary token    10%: its own token, unchanged
    labels holds the original token at the selected positions and -100 (ignored) elsewhere.
    Random tokens are drawn uniformly from 0..vocab_size-1 minus the special ids. Keeping or
    randomising some selected tokens means the model cannot tell which inputs are real, so it
    keeps a good representation of every token (not only of [MASK]) for fine-tuning, where
    [MASK] never appears.
    """
    ids = np.asarray(ids)
    if ids.ndim not in (1, 2) or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError(f"mask_tokens expected token ids of shape (T,) or (B, T), got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    if not 0 <= prob <= 1:
        raise ValueError(f"mask_tokens: prob must be between 0 and 1, got {prob}")
    rows = ids.reshape(-1, ids.shape[-1]).astype(np.int64)
    inputs, labels = rows.copy(), np.full_like(rows, -100)
    ordinary = np.setdiff1d(np.arange(vocab_size), special_ids)
    selectable = ~np.isin(rows, special_ids)
    for r in range(len(rows)):
        candidates = np.flatnonzero(selectable[r])
        if prob == 0 or not len(candidates):
            continue
        chosen = rng.choice(candidates, size=max(1, round(prob * len(candidates))), replace=False)
        labels[r, chosen] = rows[r, chosen]
        u = rng.random(len(chosen))                       # one draw per selected position
        inputs[r, chosen[u < 0.8]] = mask_id              # 80%: [MASK]
        randomised = chosen[(u >= 0.8) & (u < 0.9)]       # 10%: a random token
        inputs[r, randomised] = rng.choice(ordinary, size=len(randomised))
        # the other 10% (u >= 0.9) keep their token: predicted, but not hidden
    return inputs.reshape(ids.shape), labels.reshape(ids.shape)


def split_sentences(text):
    """The sentences of text: pieces ending at ., ! or ? (kept) or at a line break, stripped;
    pieces without a letter or digit (empty lines, stray punctuation) are dropped."""
    if not isinstance(text, str):
        raise TypeError(f"split_sentences takes a str, got {type(text).__name__}")
    pieces = (p.strip() for p in re.split(r"(?<=[.!?])|\n", text))
    return [p for p in pieces if re.search(r"\w", p)]


def nsp_pairs(sentences, rng, n):
    """003.nsp: n pairs (A, B, is_next) from a list of consecutive sentences.

    A is a random sentence that has a successor; with probability 1/2, B is that successor
    (is_next=True), otherwise a random sentence from elsewhere in the corpus: never A itself,
    and never a sentence with the same text as the true next one (is_next=False).
    """
    sentences = list(sentences)
    if len(sentences) < 3:
        raise ValueError(f"next sentence prediction needs at least 3 sentences (a pair and another one to "
                         f"draw a random B from), got {len(sentences)}")
    codes = {}  # one integer per distinct sentence text, to compare texts quickly
    text_id = np.array([codes.setdefault(s, len(codes)) for s in sentences])
    pairs = []
    for _ in range(n):
        i = int(rng.integers(0, len(sentences) - 1))
        if rng.random() < 0.5:
            pairs.append((sentences[i], sentences[i + 1], True))
            continue
        others = np.flatnonzero(text_id != text_id[i + 1])
        others = others[others != i]
        if not len(others):
            raise ValueError(f"no sentence differs from both {sentences[i]!r} and its successor: the corpus "
                             "needs more distinct sentences for next sentence prediction")
        pairs.append((sentences[i], sentences[int(rng.choice(others))], False))
    return pairs


def truncate_pair(a, b, budget):
    """Drop tokens from the end of the longer of a and b until len(a) + len(b) <= budget."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) >= len(b) else b).pop()
    return a, b


def build_bert_batch(pairs, tokenizer, special, max_len, rng, mask_prob=0.15):
    """A BERT batch from (A, B, is_next) text pairs, as a dict of int64 arrays ready for model(**batch):

        input_ids       [CLS] A [SEP] B [SEP] [PAD]..., masked by mask_tokens   (B, max_len)
        token_type_ids  0 on [CLS] A [SEP], 1 on B [SEP], 0 on padding
        attention_mask  1 on real tokens, 0 on padding
        mlm_labels      the original token where one is to be predicted, -100 elsewhere
        nsp_labels      0 when B follows A, 1 when it is a random sentence      (B,)

    A pair longer than max_len is cut by truncate_pair (the longer sentence loses its end).
    """
    if max_len < 5:
        raise ValueError(f"max_len must be at least 5 ([CLS] A [SEP] B [SEP] with a token each), got {max_len}")
    if not pairs:
        raise ValueError("build_bert_batch needs at least one sentence pair")
    n = len(pairs)
    input_ids = np.full((n, max_len), special.pad_id, dtype=np.int64)
    token_type_ids = np.zeros((n, max_len), dtype=np.int64)
    attention_mask = np.zeros((n, max_len), dtype=np.int64)
    for row, (a_text, b_text, _) in enumerate(pairs):
        a, b = truncate_pair(tokenizer.encode(a_text), tokenizer.encode(b_text), max_len - 3)
        sequence = [special.cls_id] + a + [special.sep_id] + b + [special.sep_id]
        input_ids[row, :len(sequence)] = sequence
        token_type_ids[row, len(a) + 2:len(sequence)] = 1
        attention_mask[row, :len(sequence)] = 1
    inputs, labels = mask_tokens(input_ids, rng, special.vocab_size, special.ids, special.mask_id, mask_prob)
    return {"input_ids": inputs, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
            "mlm_labels": labels, "nsp_labels": np.array([0 if is_next else 1 for *_, is_next in pairs])}
