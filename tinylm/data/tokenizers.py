"""Tokenizers: text <-> lists of integer ids (001.pipeline: clean -> tokenize -> encode to ids).

Four kinds, from the simplest to the ones today's language models use:

- CharTokenizer: one id per distinct character of the training text.
- WordTokenizer: one id per word, punctuation mark, CJK character or run of whitespace.
- ByteBPETokenizer: byte-level byte-pair encoding (GPT-2's kind), learned from the training
  text or read from GPT-2's vocab.json and merges.txt (from_files); special tokens such as
  "<|endoftext|>"; encode_iterable streams a large file through it with bounded memory.
- SentencePieceTokenizer (tinylm.data.sentencepiece): SentencePiece's BPE and unigram models
  (Llama 2's tokenizer.model), read from their files, not trained here.

Every tokenizer has `encode(text) -> list[int]`, `decode(ids) -> str`, `vocab_size`,
`to_dict()` (a JSON-ready dict with a "kind" field, so a checkpoint can embed it),
`from_dict(d)`, `save(path)` and `load(path)`. `load_tokenizer(path_or_dict)` reads any kind;
`build_tokenizer(kind, text, vocab_size)` trains one.

`input_ids(text)` is what a language model reads: encode(text), after the beginning-of-sequence
id where the model was trained with one before every text (`add_bos` and `bos_id`: Llama 2's <s>,
Llama 3's <|begin_of_text|>; set by tinylm.models.pretrained from a Hugging Face folder). tinylm's
own char, word and BPE tokenizers have none: for them input_ids is encode.

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
import regex

from ..files import atomic_write, read_json

UNK = "\ufffd"  # what the unknown id decodes to: "�"


class Tokenizer:
    """What every tokenizer shares: saving, loading and checking ids.

    A subclass sets `kind` (its name in files) and `field` (the key of the one list that
    defines it in `to_dict()`, passed back to its constructor by `from_dict`).
    """
    kind = field = None
    bos_id = None    # the id of the beginning-of-sequence token, where the tokenizer has one
    add_bos = False  # whether input_ids puts bos_id before every text

    def set_bos(self, bos_id):
        """From now on input_ids(text) starts with bos_id (None: with nothing, as encode). Returns
        the tokenizer."""
        if bos_id is None:
            self.add_bos = False
            return self
        if isinstance(bos_id, bool) or not isinstance(bos_id, (int, np.integer)) or not 0 <= bos_id < self.vocab_size:
            raise ValueError(f"bos_id must be a token id in 0..{self.vocab_size - 1}, got {bos_id!r}")
        self.bos_id, self.add_bos = int(bos_id), True
        return self

    def input_ids(self, text):
        """The ids a language model reads for `text`: encode(text), after bos_id when add_bos is set
        (Hugging Face's tokenizer(text).input_ids). Never an end-of-sequence id after it: a prompt
        is text to continue."""
        ids = self.encode(text)
        return [self.bos_id, *ids] if self.add_bos else ids

    def _with_bos(self, d):
        """`d`, a to_dict, with "add_bos" and "bos_id" when input_ids adds bos_id (a tokenizer
        without one writes the dict it always wrote)."""
        if self.add_bos:
            d.update(add_bos=True, bos_id=self.bos_id)
        return d

    @classmethod
    def from_dict(cls, d):
        """Rebuild a tokenizer from `to_dict()`'s output; on `Tokenizer` itself, of any kind."""
        if not isinstance(d, dict) or not isinstance(d.get("kind"), str):
            raise ValueError("not a tokenizer: expected a JSON object with a 'kind' field")
        from .sentencepiece import SentencePieceTokenizer  # beside this module, built on Tokenizer

        kinds = {k.kind: k for k in (CharTokenizer, WordTokenizer, ByteBPETokenizer, SentencePieceTokenizer)}
        if d["kind"] not in kinds:
            raise ValueError(f"unknown tokenizer kind {d['kind']!r}; expected one of {sorted(kinds)}")
        if cls is not Tokenizer and d["kind"] != cls.kind:
            raise ValueError(f"holds a {d['kind']!r} tokenizer, not a {cls.kind!r} one")
        kind = kinds[d["kind"]]
        if kind.field not in d:
            raise ValueError(f"a {kind.kind!r} tokenizer needs a {kind.field!r} field")
        add_bos = d.get("add_bos", False)
        if not isinstance(add_bos, bool):
            raise ValueError(f"'add_bos' must be true or false, got {add_bos!r}")
        if add_bos and d.get("bos_id") is None:
            raise ValueError("'add_bos' is true but there is no 'bos_id'")
        tokenizer = kind._from_fields(d)
        return tokenizer.set_bos(d["bos_id"]) if add_bos else tokenizer

    @classmethod
    def _from_fields(cls, d):
        """The tokenizer of a checked dict: its one defining list (a subclass with more fields
        reads them too)."""
        return cls(d[cls.field])

    def save(self, path):
        """Write `to_dict()` as JSON, through a temporary file renamed into place, so a crash
        mid-write never leaves a half-written tokenizer where a good one was."""
        atomic_write(path, lambda f: json.dump(self.to_dict(), f, ensure_ascii=False))

    @classmethod
    def load(cls, path):
        """Read a file written by `save`; on `Tokenizer` itself, of any kind."""
        path = os.fspath(path)
        d = read_json(path, "tokenizer file")
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
        return self._with_bos({"kind": self.kind, "chars": list(self.chars)})


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
        return self._with_bos({"kind": self.kind, "tokens": list(self.tokens)})


# --- byte-level BPE ---------------------------------------------------------------------------

# Pre-tokenizers. BPE first cuts the text into chunks, and merges never cross a chunk boundary,
# so a token never spans two words. Every character falls in some chunk: the chunks join back to
# the text. A tokenizer names its pattern in to_dict()'s "pattern" field.
#   "gpt2" (the default), GPT-2's pattern, tried in this order at each position:
#       a contraction 's 't 're 've 'm 'll 'd (so "don't" -> "don", "'t")
#     | letters, | digits, | other symbols: each a run, with the one space before it if any
#     | whitespace not followed by a non-space: "\n\n  x" -> "\n\n ", " x" (the last space joins
#       the word)  | any other whitespace: "\n\nx" -> "\n", "\n", "x" (GPT-2's split)
#   "llama3", Llama 3's (and OpenAI's cl100k): the contractions in any case ('S, 'LL) | letters,
#     with one character before them that is no letter, digit or newline (" the", "(the", "\tthe")
#     | digits, three at most ("12345" -> "123", "45") | other symbols, with one space before
#     them and the newlines after them ("!\n\n" is one chunk) | whitespace ending in newlines
#     | whitespace not followed by a non-space | any other whitespace.
#   "tinylm-0.1", tinylm's first pattern, kept so that tokenizers trained with it (their dicts
#     have no "pattern" field) encode as they did: letters | digits | other symbols (underscore
#     included), each a run with the one space before it | a run of whitespace.
PATTERNS = {
    "gpt2": regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""),
    "llama3": regex.compile(r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
                            r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""),
    "tinylm-0.1": re.compile(r" ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+"),
}
# Where encode_iterable may cut: places that are a chunk boundary whatever text comes next. In
# "gpt2" and "tinylm-0.1" whitespace can only start a chunk or fill one, so a non-space followed
# by a space is a boundary. In "llama3" symbols take the newlines after them, so it is a
# non-space followed by a space other than \r or \n. Searched backwards ((?r)), with each
# pattern's own whitespace: for Python's re module (and str.isspace) the separators
# U+001C..U+001F are whitespace, for the regex module they are not.
_SAFE_CUTS = {"gpt2": regex.compile(r"(?r)\S\s"), "llama3": regex.compile(r"(?r)\S[^\S\r\n]"),
              "tinylm-0.1": regex.compile(r"(?r)[^\s\x1c-\x1f][\s\x1c-\x1f]")}


def bytes_to_unicode():
    """GPT-2's spelling of the 256 bytes as printable characters (vocab.json and merges.txt
    write byte strings this way): {byte: character}.

    The printable Latin-1 bytes ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the other
    68 (control characters, the space, ...) take chr(256), chr(257), ... in byte order, so the
    space 0x20 is "Ġ" (U+0120) and the newline 0x0a is "Ċ" (U+010A)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TO_CHAR = bytes_to_unicode()
_CHAR_TO_BYTE = {c: b for b, c in _BYTE_TO_CHAR.items()}


def _spell(token):
    """A byte string in GPT-2's spelling: b" the" -> "Ġthe"."""
    return "".join(_BYTE_TO_CHAR[b] for b in token)


def _unspell(text, where):
    """The bytes a GPT-2-spelled string stands for: "Ġthe" -> b" the"."""
    try:
        return bytes(_CHAR_TO_BYTE[c] for c in text)
    except KeyError as e:
        raise ValueError(f"{where}: {text!r} is not a byte string in GPT-2's spelling ({e.args[0]!r} stands "
                         "for no byte)") from None


# Among equally frequent pairs, training merges the lexicographically greatest pair of byte
# strings, (bytes(a), bytes(b)) compared as a tuple. Python's heap pops the smallest entry, so
# each token gets a key string whose ascending order is its bytes' descending order: every byte
# x becomes chr(255 - x), and chr(256), above them all, ends the string (so that b"a", a prefix of
# b"ab" and thus smaller, gets the larger key).
_FLIP = bytes(range(255, -1, -1))


def _descending_key(token):
    return token.translate(_FLIP).decode("latin-1") + "\u0100"


def _hf_pattern(pre):
    """The name in PATTERNS of what a tokenizer.json pre-tokenizer computes, or None. Hugging Face
    writes GPT-2's as ByteLevel with use_regex (its built-in regex is GPT-2's), and Llama 3's as a
    Sequence: Split by the regex (each match a chunk), then ByteLevel without its regex."""
    def byte_level(p, use_regex):
        return (p.get("type") == "ByteLevel" and not p.get("add_prefix_space")
                and bool(p.get("use_regex", True)) == use_regex)
    if byte_level(pre, True):
        return "gpt2"
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not steps or len(steps) != 2 or not byte_level(steps[1], False):
        return None
    split = steps[0]
    if split.get("type") != "Split" or split.get("behavior") != "Isolated" or split.get("invert"):
        return None
    source = (split.get("pattern") or {}).get("Regex")
    return next((name for name in ("gpt2", "llama3") if PATTERNS[name].pattern == source), None)


def _check_special_tokens(tokens):
    """`tokens` as a list of distinct non-empty strings."""
    if isinstance(tokens, str) or not all(isinstance(t, str) and t for t in tokens):
        raise ValueError(f"special_tokens must be a list of non-empty strings, got {tokens!r}")
    repeated = [t for t, n in Counter(tokens).items() if n > 1]
    if repeated:
        raise ValueError(f"special_tokens lists {repeated[0]!r} more than once")
    return list(tokens)


def _special_splitter(specials):
    """A regex whose split() gives [text, special, text, special, ..., text]: at each position
    the longest special token is tried first, so "<|endoftext|>" wins over "<|end|>"."""
    if not specials:
        return None
    return re.compile("(" + "|".join(re.escape(t) for t in sorted(specials, key=len, reverse=True)) + ")")


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
    """Byte-level byte-pair encoding (BPE), the tokenizer of GPT-2 and most models since.

    Any text is a sequence of UTF-8 bytes, so there is no unknown id. The text is cut into
    chunks (PATTERNS); in each chunk the ids start as one per byte, and merges join adjacent
    pairs: merge k turns the pair (a, b) into one new id. Encoding applies the merges in the
    order they were learned (the lowest rank first). decode joins the tokens' bytes; decoding
    ids that cut a character's bytes shows "�" there (UTF-8 decoding with errors="replace").

    Ids of a tokenizer trained here: 0..255 the byte values, 256 + k merge k, then the special
    tokens. A tokenizer read from GPT-2's files (from_files) keeps the files' ids (GPT-2's id 0
    is "!" and "<|endoftext|>" is 50256): `vocab` then lists the bytes of every id.

    Special tokens (e.g. "<|endoftext|>") each encode to their own reserved id, and are found in
    the text before it is cut into chunks: never split, never merged with their neighbours, and
    left out of BPE training. Where two could match, the leftmost wins, and at one position the
    longest ("<|endoftext|>" rather than "<|end|>").
    """
    kind, field = "bpe", "merges"

    def __init__(self, merges, special_tokens=(), pattern="gpt2", vocab=None, ignore_merges=False):
        """merges: pairs of ids, in the order learned. special_tokens: a list of strings (their ids
        follow the merges) or a dict {string: id}. pattern: a name in PATTERNS. vocab: the byte
        string of every id (the special tokens' UTF-8 included), for ids not laid out as bytes,
        then merges, then special tokens; a special token's id then comes from the dict.
        ignore_merges (with a vocab, as Llama 3's tokenizer): a chunk that is a token of the
        vocabulary is that one token, without applying the merges."""
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pre-tokenizer pattern {pattern!r}; expected one of {sorted(PATTERNS)}")
        if not isinstance(merges, (list, tuple)):
            raise ValueError(f"'merges' must be a list of pairs of ids, got {type(merges).__name__}")
        names = _check_special_tokens(list(special_tokens))
        special_ids = list(special_tokens.values()) if isinstance(special_tokens, dict) else None
        if vocab is None:
            self.token_bytes, reserved = [bytes([b]) for b in range(256)], set()
        else:
            if not isinstance(vocab, (list, tuple)) or not all(isinstance(t, bytes) and t for t in vocab):
                raise ValueError("'vocab' must be a list of non-empty byte strings, one per id")
            if special_ids is None:
                raise ValueError("with a 'vocab', special_tokens must be a dict {string: id}")
            for t, i in zip(names, special_ids):
                if not isinstance(i, int) or not 0 <= i < len(vocab) or vocab[i] != t.encode("utf-8"):
                    raise ValueError(f"special token {t!r} needs the id of its bytes in 'vocab', got {i!r}")
            self.token_bytes, reserved = list(vocab), set(special_ids)
        ids_of = {t: i for i, t in enumerate(self.token_bytes) if i not in reserved}  # bytes -> id
        if len(ids_of) + len(reserved) != len(self.token_bytes):
            raise ValueError("'vocab' lists a byte string more than once")
        missing = [b for b in range(256) if bytes([b]) not in ids_of]
        if missing:
            raise ValueError(f"'vocab' lacks the byte 0x{missing[0]:02x}: a byte-level vocabulary has all 256")
        self.byte_ids = [ids_of[bytes([b])] for b in range(256)]  # the id of each byte value
        self.merges, self.ranks, self.merged = [], {}, {}  # merged[(a, b)]: the id the merge makes
        for k, pair in enumerate(merges):
            limit = len(self.token_bytes)  # without a vocab: 256 + k, the ids made so far
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(isinstance(i, int) and 0 <= i < limit and i not in reserved for i in pair)):
                raise ValueError(f"merge {k} must be a pair of ids below {limit}, got {pair!r}")
            pair = tuple(pair)
            if pair in self.ranks:
                raise ValueError(f"merge {k} repeats merge {self.ranks[pair]}, {pair}")
            joined = self.token_bytes[pair[0]] + self.token_bytes[pair[1]]
            if vocab is None:
                self.merged[pair] = len(self.token_bytes)
                self.token_bytes.append(joined)
            elif joined in ids_of:
                self.merged[pair] = ids_of[joined]
            else:
                raise ValueError(f"merge {k} makes {joined!r}, which is not in 'vocab'")
            self.ranks[pair] = k
            self.merges.append(pair)
        if vocab is None:  # the special tokens take the ids after the merges
            first = len(self.token_bytes)
            expected = list(range(first, first + len(names)))
            if special_ids is None:
                special_ids = expected
            elif not all(isinstance(i, int) for i in special_ids) or sorted(special_ids) != expected:
                raise ValueError(f"the special tokens must have the ids after the merges, {expected}, "
                                 f"got {special_ids}")
            self.token_bytes += [None] * len(names)
            for t, i in zip(names, special_ids):
                self.token_bytes[i] = t.encode("utf-8")
        self.special_tokens = dict(zip(names, special_ids))
        self._explicit_vocab = vocab is not None
        if ignore_merges and vocab is None:
            raise ValueError("ignore_merges needs a 'vocab': it looks chunks up in it")
        self.ignore_merges, self._ids_of = bool(ignore_merges), ids_of
        self._chunks, self._cut = PATTERNS[pattern], _SAFE_CUTS[pattern]
        self.pattern = pattern
        self._splitter = _special_splitter(names)
        self._cache = {}  # chunk -> its ids: a text repeats the same words again and again

    @classmethod
    def _from_fields(cls, d):
        """A dict without a "pattern" field was written before there was a choice: "tinylm-0.1"."""
        vocab = d.get("vocab")
        if vocab is not None:
            if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
                raise ValueError("'vocab' must be a list of strings")
            vocab = [_unspell(t, f"vocab entry {i}") for i, t in enumerate(vocab)]
        specials = d.get("special_tokens", {})
        if not isinstance(specials, dict):
            raise ValueError(f"'special_tokens' must be a JSON object {{string: id}}, got {specials!r}")
        return cls(d["merges"], special_tokens=specials, pattern=d.get("pattern", "tinylm-0.1"), vocab=vocab,
                   ignore_merges=d.get("ignore_merges", False) is True)

    def to_dict(self):
        d = {"kind": self.kind, "merges": [list(pair) for pair in self.merges]}
        if self.pattern != "tinylm-0.1":
            d["pattern"] = self.pattern
        if self.special_tokens:
            d["special_tokens"] = dict(self.special_tokens)
        if self._explicit_vocab:
            d["vocab"] = [_spell(t) for t in self.token_bytes]
        if self.ignore_merges:
            d["ignore_merges"] = True
        return self._with_bos(d)

    # --- training -------------------------------------------------------------------------------
    @classmethod
    def train(cls, text, vocab_size, special_tokens=(), pattern="gpt2"):
        """Learn vocab_size - 256 - len(special_tokens) merges from `text` (fewer if the text runs
        out of pairs); the special tokens take the last ids.

        Each step merges the most frequent adjacent pair; among equally frequent pairs, the
        lexicographically greatest pair of byte strings (bytes(a), bytes(b)) — so training is
        deterministic, and independent of how ids are numbered. The special tokens are cut out of
        the text first: nothing is learned across or inside them.

        A full recount of all pairs after every merge would cost a pass over the text per merge;
        instead the counts are kept up to date: a merge touches only the chunks that hold the
        merged pair (an index from each pair to its chunks), and only their pairs' counts change.
        """
        _check_training_text(text)
        specials = _check_special_tokens(list(special_tokens))
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 256 + len(specials):
            raise ValueError(f"vocab_size must be an integer of at least 256 (the byte values) + "
                             f"{len(specials)} (the special tokens), got {vocab_size!r}")
        if pattern not in PATTERNS:
            raise ValueError(f"unknown pre-tokenizer pattern {pattern!r}; expected one of {sorted(PATTERNS)}")
        # Step 1: cut the text into chunks; work on each distinct chunk once, weighted by how
        # often it occurs ("the" is one entry, however many times the text says it).
        splitter, chunk_counts = _special_splitter(specials), Counter()
        for i, part in enumerate(splitter.split(text) if splitter else [text]):
            if i % 2 == 0:  # the odd parts are the special tokens
                chunk_counts.update(PATTERNS[pattern].findall(part))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs = list(chunk_counts.values())
        # Step 2: count every adjacent pair of ids, and note which chunks hold each pair.
        pair_counts, holders = Counter(), defaultdict(set)
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += freqs[w]
                holders[pair].add(w)
        # Step 3: a heap of (-count, keys of the pair's byte strings, pair) pops the most frequent
        # pair, and among equals the greatest pair of byte strings (see _descending_key). A count
        # that falls leaves its entry in the heap, too high; when such an entry comes to the top it
        # is pushed again with the pair's count now. A merge makes new pairs, (x, new) and (new, y),
        # but never raises the count of an old one, so every pair's entries stay at or above its
        # count, and an entry that is up to date when it reaches the top is the greatest.
        key = [_descending_key(bytes([b])) for b in range(256)]
        heap = [(-n, key[a], key[b], a, b) for (a, b), n in pair_counts.items()]
        heapq.heapify(heap)
        merges, token_bytes = [], [bytes([b]) for b in range(256)]
        while 256 + len(merges) + len(specials) < vocab_size and heap:
            entry = heapq.heappop(heap)
            pair, count = entry[3:], pair_counts.get(entry[3:], 0)
            if count != -entry[0]:
                if count > 0:
                    heapq.heappush(heap, (-count, *entry[1:]))
                continue
            # Step 4: merge the pair into a new id in every chunk that holds it: the chunk's old
            # pairs leave the counts, its new pairs join them.
            new_id = 256 + len(merges)
            merges.append(pair)
            token_bytes.append(token_bytes[pair[0]] + token_bytes[pair[1]])
            key.append(_descending_key(token_bytes[-1]))
            made = set()
            for w in holders.pop(pair):
                old, freq = words[w], freqs[w]
                words[w] = new = _merge(old, pair, new_id)
                for p in zip(old, old[1:]):
                    pair_counts[p] -= freq
                for p in zip(new, new[1:]):
                    pair_counts[p] += freq
                    if new_id in p:
                        holders[p].add(w)  # (a chunk that lost a pair may stay listed: harmless)
                        made.add(p)
            del pair_counts[pair]  # now 0
            for a, b in made:
                heapq.heappush(heap, (-pair_counts[(a, b)], key[a], key[b], a, b))
        return cls(merges, special_tokens=specials, pattern=pattern)

    # --- GPT-2's files ------------------------------------------------------------------------
    @classmethod
    def from_files(cls, vocab_json, merges_txt, special_tokens=()):
        """A tokenizer from GPT-2-format files, giving their ids: `vocab_json` maps each token,
        spelled with bytes_to_unicode(), to its id; `merges_txt` has a "#version" line, then one
        merge per line in rank order, its two tokens separated by a space ("Ġ t" joins b" " and
        b"t"). special_tokens: strings that keep their vocab.json id, or take the next free ids
        when vocab.json lacks them. GPT-2's pre-tokenizer pattern."""
        vocab_json, merges_txt = os.fspath(vocab_json), os.fspath(merges_txt)
        ids = read_json(vocab_json, "vocab.json file", missing=f"no tokenizer file at {vocab_json}")
        try:
            with open(merges_txt, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            raise FileNotFoundError(f"no tokenizer file at {merges_txt}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{merges_txt} is not a merges.txt file: it is not UTF-8 text ({e})") from None
        merges = []
        for n, line in enumerate(lines, 1):
            if (n == 1 and line.startswith("#version")) or not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(f"{merges_txt} line {n}: expected two tokens separated by one space, got {line!r}")
            merges.append((parts, f"{merges_txt} line {n}"))
        return cls._from_spelled(ids, merges, special_tokens, vocab_json)

    def save_files(self, folder):
        """Write this tokenizer as GPT-2's files, folder/vocab.json and folder/merges.txt, with its
        own ids (from_files reads them back with the same ids, and so do Hugging Face's GPT-2
        tokenizers); the special tokens are in vocab.json. Returns the two paths. GPT-2's files
        cannot hold two ids with the same bytes (training can make one string by two merges):
        such a tokenizer is refused, naming the ids."""
        if self.pattern != "gpt2":
            raise ValueError(f"GPT-2's files imply GPT-2's pre-tokenizer; this tokenizer uses {self.pattern!r}")
        vocab, specials = {}, {i: t for t, i in self.special_tokens.items()}
        for i, token in enumerate(self.token_bytes):
            spelled = specials.get(i, _spell(token))
            if spelled in vocab:
                raise ValueError(f"ids {vocab[spelled]} and {i} are both {spelled!r}: GPT-2's vocab.json keeps one")
            vocab[spelled] = i
        lines = ["#version: 0.2"] + [f"{_spell(self.token_bytes[a])} {_spell(self.token_bytes[b])}"
                                     for a, b in self.merges]
        paths = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
        atomic_write(paths[0], lambda f: json.dump(vocab, f, ensure_ascii=False))
        atomic_write(paths[1], lambda f: f.write("\n".join(lines) + "\n"))
        return paths

    @classmethod
    def from_tokenizer_json(cls, path):
        """A tokenizer from Hugging Face tokenizers' tokenizer.json, when it describes what this
        class computes: a BPE model over bytes, cut into chunks by GPT-2's or Llama 3's pattern
        (_hf_pattern), no normalizer; merges applied by rank, or skipped for a chunk that is in
        the vocabulary (ignore_merges, Llama 3's). Its added tokens become special tokens.
        Anything else (SentencePiece's "▁" pieces and byte fallback, other patterns, ...) is
        refused, naming the setting. encode adds nothing the text does not hold; the token that
        the file's post-processor puts first (Llama 3's <|begin_of_text|>) is read by
        tinylm.models.pretrained.pretrained_tokenizer, which sets it for input_ids."""
        path = os.fspath(path)
        d = read_json(path, "tokenizer.json file", missing=f"no tokenizer file at {path}")
        model, pre = d.get("model") or {}, d.get("pre_tokenizer") or {}

        def refuse(what):
            raise ValueError(f"{path}: {what}; tinylm reads byte-level BPE tokenizers with GPT-2's or "
                             "Llama 3's pre-tokenizer")
        if model.get("type") != "BPE":
            refuse(f"the model is {model.get('type')!r}, not 'BPE'")
        if d.get("normalizer") is not None:
            refuse(f"it has a normalizer ({d['normalizer'].get('type')!r})")
        pattern = _hf_pattern(pre)
        if pattern is None:
            refuse(f"its pre-tokenizer is {pre.get('type')!r}: {json.dumps(pre)[:200]}")
        for key, ok in (("dropout", None), ("byte_fallback", False), ("continuing_subword_prefix", ""),
                        ("end_of_word_suffix", "")):
            if model.get(key) not in (ok, None):
                refuse(f"its BPE model sets {key} = {model[key]!r}")
        specials = {}
        for t in d.get("added_tokens") or []:
            if t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
                refuse(f"the added token {t.get('content')!r} strips spaces or matches whole words only")
            specials[t["content"]] = t["id"]
        ids = model.get("vocab")
        merges = [((m.split(" ") if isinstance(m, str) else m), f"{path} merge {k}")
                  for k, m in enumerate(model.get("merges") or [])]
        if not isinstance(ids, dict):
            refuse("its BPE model has no vocabulary")
        ids = dict(ids)
        for t, i in specials.items():
            if ids.get(t, i) != i:
                refuse(f"the added token {t!r} has id {i} but the vocabulary gives it {ids[t]}")
            ids[t] = i
        return cls._from_spelled(ids, merges, list(specials), path, pattern=pattern,
                                 ignore_merges=model.get("ignore_merges") is True)

    @classmethod
    def _from_spelled(cls, ids, merges, special_tokens, where, **options):
        """The tokenizer of a vocabulary {GPT-2-spelled token: id} and merges [(pair of spelled
        tokens, where the merge was read)]: the common part of from_files and from_tokenizer_json."""
        specials = _check_special_tokens(list(special_tokens))
        if not isinstance(ids, dict) or not all(isinstance(i, int) for i in ids.values()):
            raise ValueError(f"{where} must map each token to an integer id")
        ids = dict(ids)
        for t in specials:
            if t not in ids:
                ids[t] = len(ids)
        if sorted(ids.values()) != list(range(len(ids))):
            raise ValueError(f"{where}: the ids must be 0..{len(ids) - 1}, each once")
        vocab = [b""] * len(ids)
        for token, i in ids.items():
            vocab[i] = token.encode("utf-8") if token in specials else _unspell(token, where)
        pairs = []
        for parts, place in merges:
            if len(parts) != 2:
                raise ValueError(f"{place}: expected two tokens, got {parts!r}")
            for part in parts:
                if part not in ids:
                    raise ValueError(f"{place}: {part!r} is not in {where}")
            pairs.append((ids[parts[0]], ids[parts[1]]))
        try:
            return cls(pairs, special_tokens={t: ids[t] for t in specials}, vocab=vocab, **options)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    # --- encoding -----------------------------------------------------------------------------
    @property
    def vocab_size(self):
        return len(self.token_bytes)

    def _encode_chunk(self, chunk):
        """A chunk's ids: start from its bytes and apply the merges in the order they were
        learned: repeatedly merge the adjacent pair with the lowest rank."""
        data = chunk.encode("utf-8")
        if self.ignore_merges and data in self._ids_of:
            return [self._ids_of[data]]
        ids = [self.byte_ids[b] for b in data]
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.ranks.get(p, len(self.merges)))
            if pair not in self.ranks:
                break  # no adjacent pair was ever merged: done
            ids = _merge(ids, pair, self.merged[pair])
        return ids

    def encode(self, text):
        _check_text(text)
        ids = []
        for i, part in enumerate(self._splitter.split(text) if self._splitter else [text]):
            if i % 2:  # the odd parts are the special tokens
                ids.append(self.special_tokens[part])
                continue
            for chunk in self._chunks.findall(part):
                if chunk not in self._cache:
                    if len(self._cache) >= _CACHE_SIZE:
                        self._cache.clear()  # so that a long stream of new words keeps memory bounded
                    self._cache[chunk] = self._encode_chunk(chunk)
                ids.extend(self._cache[chunk])
        return ids

    def encode_iterable(self, texts):
        """Yield the ids of "".join(texts), one at a time, reading `texts` (e.g. an open file: its
        lines) as it goes: the same ids as encode("".join(texts)), in memory only the text since
        the last safe cut.

        A safe cut is a place where the chunks end whatever text comes next: between a non-space
        and a space (_SAFE_CUTS), and not inside what could be a special token containing spaces."""
        buffer = ""
        for text in texts:
            _check_text(text, "encode_iterable")
            buffer += text
            cut = self._last_safe_cut(buffer)
            if cut:
                yield from self.encode(buffer[:cut])
                buffer = buffer[cut:]
        yield from self.encode(buffer)

    def _last_safe_cut(self, text):
        """The last safe cut in `text` (see encode_iterable), or 0 if there is none."""
        end = len(text)
        while True:
            found = self._cut.search(text, 0, end)
            if found is None:
                return 0
            cut = found.start() + 1
            if not any(t.startswith(text[start:start + len(t)])  # a special token could span the cut
                       for t in self.special_tokens if any(c.isspace() for c in t)
                       for start in range(max(0, cut - len(t) + 1), cut)):
                return cut
            end = cut  # look further back

    def decode(self, ids):
        data = b"".join(self.token_bytes[i] for i in self._checked_ids(ids))
        return data.decode("utf-8", errors="replace")


_CACHE_SIZE = 1 << 16  # chunks whose ids an encoder remembers


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
