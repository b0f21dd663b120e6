"""Tokenizers: text <-> lists of integer ids (001.pipeline: clean -> tokenize -> encode to ids).

Three kinds, from the simplest to the one today's language models use:

- CharTokenizer: one id per distinct character of the training text.
- WordTokenizer: one id per word, punctuation mark, CJK character or run of whitespace.
- ByteBPETokenizer: byte-level byte-pair encoding, learned from the training text.

Every tokenizer has `encode(text) -> list[int]`, `decode(ids) -> str`, `vocab_size`,
`to_dict()` (a JSON-ready dict with a "kind" field, so a checkpoint can embed it),
`from_dict(d)`, `save(path)` and `load(path)`. `load_tokenizer(path_or_dict)` reads any kind;
`build_tokenizer(kind, text, vocab_size)` trains one.

Unknown input: the char and word tokenizers encode anything not seen in training as one
"unknown" id, which decodes to "�" (U+FFFD, the replacement character, also what the BPE
decoder prints for an invalid byte sequence). So a user's prompt with an unseen character
still runs. The byte-level BPE needs no unknown id: every text is a sequence of bytes.
"""
import heapq
import json
import os
import re
from collections import Counter, defaultdict

import numpy as np

from ..files import atomic_write

UNK = "\ufffd"  # what the unknown id decodes to: "�"


class Tokenizer:
    """What every tokenizer shares: saving, loading and checking ids.

    A subclass sets `kind` (its name in files) and `field` (the key of the one list that
    defines it in `to_dict()`, passed back to its constructor by `from_dict`).
    """
    kind = field = None

    @classmethod
    def from_dict(cls, d):
        """Rebuild a tokenizer from `to_dict()`'s output; on `Tokenizer` itself, of any kind."""
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise ValueError("not a tokenizer: expected a JSON object with a 'kind' field")
        kinds = {k.kind: k for k in (CharTokenizer, WordTokenizer, ByteBPETokenizer)}
        if d["kind"] not in kinds:
            raise ValueError(f"unknown tokenizer kind {d['kind']!r}; expected one of {sorted(kinds)}")
        if cls is not Tokenizer and d["kind"] != cls.kind:
            raise ValueError(f"holds a {d['kind']!r} tokenizer, not a {cls.kind!r} one")
        kind = kinds[d["kind"]]
        if kind.field not in d:
            raise ValueError(f"a {kind.kind!r} tokenizer needs a {kind.field!r} field")
        return kind(d[kind.field])

    def save(self, path):
        """Write `to_dict()` as JSON, through a temporary file renamed into place, so a crash
        mid-write never leaves a half-written tokenizer where a good one was."""
        atomic_write(path, lambda f: json.dump(self.to_dict(), f, ensure_ascii=False))

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; on `Tokenizer` itself, of any kind."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"no tokenizer file at {path}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a tokenizer file: it is not valid JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def _checked_ids(self, ids):
        """`ids` (a list or 1-D array of ints, each in [0, vocab_size)) as a list of ints."""
        array = np.asarray(ids)
        if array.ndim != 1:
            raise ValueError(f"decode takes one sequence of ids (1-D), got shape {array.shape}")
        if array.size == 0:
            return []
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"decode takes integer ids, got dtype {array.dtype}")
        low, high = array.min(), array.max()
        if low < 0 or high >= self.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"token id {bad} is out of range for a vocabulary of {self.vocab_size}")
        return array.tolist()


def _check_text(text, what="encode"):
    if not isinstance(text, str):
        raise TypeError(f"{what} takes a str, got {type(text).__name__}")


def _check_training_text(text):
    _check_text(text, "train")
    if not text:
        raise ValueError("the training text is empty: a tokenizer needs text to learn from")


def _check_vocabulary(tokens, name):
    """`tokens` must be a list of distinct non-empty strings (a tokenizer's vocabulary)."""
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) and t for t in tokens):
        raise ValueError(f"{name!r} must be a list of non-empty strings")
    repeated = [t for t, n in Counter(tokens).items() if n > 1]
    if repeated:
        raise ValueError(f"{name!r} lists {repeated[0]!r} more than once")
    if UNK not in tokens:
        raise ValueError(f"{name!r} lacks the unknown token {UNK!r}")
    return list(tokens)


class CharTokenizer(Tokenizer):
    """One id per character. The vocabulary is the sorted set of the training text's
    characters plus "�", the id that any character unseen in training is encoded to."""
    kind, field = "char", "chars"

    def __init__(self, chars):
        self.chars = _check_vocabulary(chars, "chars")
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("'chars' must hold single characters")
        self.ids = {c: i for i, c in enumerate(self.chars)}
        self.unk_id = self.ids[UNK]

    @classmethod
    def train(cls, text):
        _check_training_text(text)
        return cls(sorted(set(text) | {UNK}))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        _check_text(text)
        return [self.ids.get(c, self.unk_id) for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in self._checked_ids(ids))

    def to_dict(self):
        return {"kind": self.kind, "chars": list(self.chars)}


# CJK ideographs (unified, extension A, compatibility, and the supplementary planes'
# extensions B and up) and CJK symbols and punctuation: one token per character, since
# Chinese and Japanese text has no spaces between words.
_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# The word pieces, tried in this order at each position of the text:
#   a CJK character | a word, with the single space before it if any | a run of whitespace |
#   any other single character (a punctuation mark, a symbol, a combining accent).
# Every character falls in one of them, so joining the pieces gives back the text exactly.
_WORD_PIECES = re.compile(rf"[{_CJK}]| ?[^\W{_CJK}]+|\s+|\S")


class WordTokenizer(Tokenizer):
    """One id per word piece: a word (letters, digits, underscores) together with the one
    space before it, a punctuation mark, a CJK character, or a run of other whitespace.

    "我喜欢吃苹果, and I like apples." -> 我 喜 欢 吃 苹 果 , ␣and ␣I ␣like ␣apples .
    Because the spaces are inside the tokens, decode is a plain join, and
    decode(encode(text)) == text for any text whose pieces are all in the vocabulary.
    A piece not in the vocabulary becomes the unknown id 0, decoding to "�".
    """
    kind, field = "word", "tokens"

    def __init__(self, tokens):
        self.tokens = _check_vocabulary(tokens, "tokens")
        if self.tokens[0] != UNK:
            raise ValueError(f"'tokens' must start with the unknown token {UNK!r} (id 0)")
        self.ids = {t: i for i, t in enumerate(self.tokens)}

    @staticmethod
    def split(text):
        """The text's word pieces, in order ("".join of them is the text)."""
        return _WORD_PIECES.findall(text)

    @classmethod
    def train(cls, text, vocab_size=None):
        """Vocabulary: the unknown token, then every piece of `text`, most frequent first
        (ties in alphabetical order), cut to the `vocab_size` most frequent when given."""
        _check_training_text(text)
        if vocab_size is not None and (not isinstance(vocab_size, (int, np.integer)) or vocab_size < 2):
            raise ValueError(f"vocab_size must be an integer of at least 2 (the unknown token and one word), "
                             f"got {vocab_size!r}")
        counts = Counter(cls.split(text))
        counts.pop(UNK, None)  # "�" in the text is already id 0
        ranked = sorted(counts, key=lambda piece: (-counts[piece], piece))
        return cls([UNK] + ranked[:None if vocab_size is None else vocab_size - 1])

    @property
    def vocab_size(self):
        return len(self.tokens)

    def encode(self, text):
        _check_text(text)
        return [self.ids.get(piece, 0) for piece in self.split(text)]

    def decode(self, ids):
        return "".join(self.tokens[i] for i in self._checked_ids(ids))

    def to_dict(self):
        return {"kind": self.kind, "tokens": list(self.tokens)}


# BPE chunks: merges never cross a chunk boundary, so a token never spans two words.
#   a run of letters | a run of digits | a run of other symbols (underscore included),
#   each with the single space before it if any | a run of whitespace.
# As above, every character falls in one of them, so the chunks join back to the text.
_CHUNKS = re.compile(r" ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+")


def _merge(ids, pair, new_id):
    """`ids` with each occurrence of `pair`, read left to right, replaced by `new_id`:
    _merge([5, 6, 6, 6], (6, 6), 300) == [5, 300, 6]."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class ByteBPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (BPE).

    Ids 0..255 are the 256 byte values, so any text can be encoded: its UTF-8 bytes.
    Training then learns merges: id 256 + k stands for the pair of ids merges[k], chosen
    because it was the most frequent adjacent pair once merges 0..k-1 were applied.
    decode(encode(text)) == text for every text; decode of an arbitrary id sequence
    that cuts a character's bytes shows "�" there (UTF-8 decoding with errors="replace").
    """
    kind, field = "bpe", "merges"

    def __init__(self, merges):
        if not isinstance(merges, (list, tuple)):
            raise ValueError(f"'merges' must be a list of pairs of ids, got {type(merges).__name__}")
        self.merges = []
        for k, pair in enumerate(merges):
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(isinstance(i, int) and 0 <= i < 256 + k for i in pair)):
                raise ValueError(f"merge {k} must be a pair of ids below {256 + k}, got {pair!r}")
            self.merges.append(tuple(pair))
        self.ranks = {pair: k for k, pair in enumerate(self.merges)}
        self.token_bytes = [bytes([b]) for b in range(256)]
        for a, b in self.merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self._cache = {}  # chunk -> its ids: a text repeats the same words again and again

    @classmethod
    def train(cls, text, vocab_size):
        """Learn vocab_size - 256 merges from `text` (fewer if the text runs out of pairs).

        A full recount of all pairs after every merge would cost a pass over the text per
        merge; instead the counts are kept up to date: a merge touches only the chunks that
        hold the merged pair, and only their pairs' counts change.
        """
        _check_training_text(text)
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an integer of at least 256 (the byte values), got {vocab_size!r}")
        # Step 1: split the text into chunks; work on each distinct chunk once, weighted by
        # how often it occurs ("the" is one entry, however many times the text says it).
        chunk_counts = Counter(_CHUNKS.findall(text))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())
        # Step 2: count every adjacent pair of ids, and note which chunks hold each pair.
        pair_counts, holders = Counter(), defaultdict(set)
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += freqs[w]
                holders[pair].add(w)
        # Step 3: a heap of (-count, pair) finds the most frequent pair quickly; among equally
        # frequent pairs it gives the smallest (a, b), so training is deterministic. When a
        # count changes a new entry is pushed; outdated entries are skipped when popped.
        heap = [(-n, pair) for pair, n in pair_counts.items()]
        heapq.heapify(heap)
        merges = []
        while 256 + len(merges) < vocab_size and heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -negative_count:
                continue  # outdated entry
            # Step 4: merge the pair into a new id in every chunk that holds it, and update
            # the pair counts by the difference between the chunk's pairs after and before.
            new_id = 256 + len(merges)
            merges.append(pair)
            for w in holders.pop(pair):
                old = words[w]
                words[w] = new = _merge(old, pair, new_id)
                change = Counter(zip(new, new[1:]))
                change.subtract(zip(old, old[1:]))
                for p, n in change.items():
                    if n == 0:
                        continue
                    pair_counts[p] += n * freqs[w]
                    if n > 0:
                        holders[p].add(w)  # (a chunk that lost a pair may stay listed: harmless)
                    if pair_counts[p] == 0:
                        del pair_counts[p]
                    else:
                        heapq.heappush(heap, (-pair_counts[p], p))
        return cls(merges)

    @property
    def vocab_size(self):
        return 256 + len(self.merges)

    def _encode_chunk(self, chunk):
        """A chunk's ids: start from its bytes and apply the learned merges in the order they
        were learned: repeatedly merge the adjacent pair with the lowest rank."""
        ids = list(chunk.encode("utf-8"))
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.merges)))
            if pair not in self.ranks:
                break  # no adjacent pair was ever merged: done
            ids = _merge(ids, pair, 256 + self.ranks[pair])
        return ids

    def encode(self, text):
        _check_text(text)
        ids = []
        for chunk in _CHUNKS.findall(text):
            if chunk not in self._cache:
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return ids

    def decode(self, ids):
        data = b"".join(self.token_bytes[i] for i in self._checked_ids(ids))
        return data.decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind, "merges": [list(pair) for pair in self.merges]}


def load_tokenizer(source):
    """A tokenizer of any kind from a file written by `save` or a dict from `to_dict` (also the
    word vocabulary of the transduction task, tinylm.data.transduction.Vocab)."""
    if isinstance(source, dict) and source.get("kind") == "words":
        from .transduction import Vocab

        return Vocab.from_dict(source)
    return Tokenizer.from_dict(source) if isinstance(source, dict) else Tokenizer.load(source)


def build_tokenizer(kind, text, vocab_size=None):
    """Train a tokenizer of `kind` ("char", "word" or "bpe") on `text`.

    vocab_size: required for "bpe" (at least 256), an optional cap for "word", and not
    accepted for "char" (its vocabulary is the text's characters).
    """
    if kind == "char":
        if vocab_size is not None:
            raise ValueError("a char tokenizer's vocabulary is the text's characters: leave vocab_size out")
        return CharTokenizer.train(text)
    if kind == "word":
        return WordTokenizer.train(text, vocab_size)
    if kind == "bpe":
        if vocab_size is None:
            raise ValueError("a bpe tokenizer needs a vocab_size (at least 256), e.g. 512")
        return ByteBPETokenizer.train(text, vocab_size)
    raise ValueError(f"unknown tokenizer kind {kind!r}; expected 'char', 'word' or 'bpe'")
