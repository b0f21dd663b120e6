"""A transduction task the project makes itself: numbers in English words <-> digits.

    "three hundred and forty two"  <->  "3 4 2"

An encoder–decoder Transformer (003.arch) learns to rewrite one sequence into another; this
task needs no download, has a known right answer for every input, and is small enough to
train in seconds. Numbers go from 0 to max_number (at most 999 999); the words follow one
rule: "and" joins "hundred" to what follows it ("one hundred and five", "two thousand one
hundred and ten"), and nowhere else ("two thousand five").

    task = make_task(max_number=999, direction="digits2words", seed=0)
    src, tgt = task.train[0]                 # ("3 4 2", "three hundred and forty two")
    src_ids = task.vocab.encode(src)         # word ids, no <bos>/<eos>
    src, tgt_in, tgt_out = task.vocab.batch(task.train[:8])

Train, validation and test hold different numbers, drawn by a seeded shuffle, so a test
score measures how well the model composes words it has seen into numbers it has not.
"""
from dataclasses import dataclass

import numpy as np

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
MAX_NUMBER = 999_999
DIRECTIONS = ("words2digits", "digits2words")


def _check_number(n):
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"expected an integer from 0 to {MAX_NUMBER}, got {n!r}")


def _below_thousand(n):
    """The words of 1 <= n <= 999 as a list ("and" after "hundred" when something follows)."""
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if hundreds and rest:
        words.append("and")
    if rest >= 20:
        words.append(TENS[rest // 10])
        rest %= 10
    if rest:
        words.append(ONES[rest])
    return words


def number_to_words(n):
    """342 -> "three hundred and forty two", 0 -> "zero", 2005 -> "two thousand five"."""
    _check_number(n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(int(n), 1000)
    words = _below_thousand(thousands) + ["thousand"] if thousands else []
    return " ".join(words + (_below_thousand(rest) if rest else []))


def words_to_number(text):
    """The inverse of number_to_words: "three hundred and forty two" -> 342."""
    total, group = 0, 0  # group: the value of the words since the last "thousand"
    for word in text.split():
        if word in ONES:
            group += ONES.index(word)
        elif word in TENS[2:]:
            group += 10 * TENS.index(word)
        elif word == "hundred":
            group *= 100
        elif word == "thousand":
            total, group = (total + group) * 1000, 0
        elif word != "and":
            raise ValueError(f"{word!r} in {text!r} is not a number word")
    return total + group


def number_to_digits(n):
    """342 -> "3 4 2": one token per digit, so the model spells the number out."""
    _check_number(n)
    return " ".join(str(int(n)))


def digits_to_number(text):
    """"3 4 2" -> 342."""
    digits = "".join(text.split())
    if not digits.isdigit():
        raise ValueError(f"{text!r} is not a sequence of digits")
    return int(digits)


class Vocab:
    """A word-level vocabulary: <pad> = 0, <bos> = 1, <eos> = 2, then the words.

    encode(text) splits on whitespace (no <bos>/<eos> added); decode(ids) drops <pad>/<bos>,
    stops at <eos>, and joins with spaces. An unknown word is an error: the task's words are
    all known in advance.
    """

    PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"

    def __init__(self, words):
        self.tokens = [self.PAD, self.BOS, self.EOS] + [w for w in words if w not in (self.PAD, self.BOS, self.EOS)]
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        if len(self.ids) != len(self.tokens):
            raise ValueError("the vocabulary lists a word twice")
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    def __len__(self):
        return len(self.tokens)

    def encode(self, text):
        unknown = [w for w in text.split() if w not in self.ids]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not in the vocabulary")
        return [self.ids[w] for w in text.split()]

    def decode(self, ids):
        words = []
        for i in ids:
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                words.append(self.tokens[i])
        return " ".join(words)

    def batch(self, pairs):
        """(src, tgt_in, tgt_out) int64 arrays for a list of (source text, target text) pairs:

            src      the source ids, padded with <pad> to the longest source        (B, S)
            tgt_in   <bos> y_1 ... y_n, padded: what the decoder reads (teacher forcing)
            tgt_out  y_1 ... y_n <eos>, padded: what it must predict at each position  (B, T)
        """
        if not pairs:
            raise ValueError("batch needs at least one (source, target) pair")
        sources = [self.encode(s) for s, _ in pairs]
        targets = [self.encode(t) for _, t in pairs]
        src = np.full((len(pairs), max(map(len, sources))), self.pad_id, dtype=np.int64)
        T = max(map(len, targets)) + 1
        tgt_in = np.full((len(pairs), T), self.pad_id, dtype=np.int64)
        tgt_out = np.full((len(pairs), T), self.pad_id, dtype=np.int64)
        for b, (s, t) in enumerate(zip(sources, targets)):
            src[b, :len(s)] = s
            tgt_in[b, :len(t) + 1] = [self.bos_id] + t
            tgt_out[b, :len(t) + 1] = t + [self.eos_id]
        return src, tgt_in, tgt_out

    def to_dict(self):
        return {"kind": "words", "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or d.get("kind") != "words" or not isinstance(d.get("tokens"), list):
            raise ValueError("not a transduction vocabulary: expected {'kind': 'words', 'tokens': [...]}")
        return cls(d["tokens"])


def number_vocab():
    """Every word the task uses: the number words, "hundred", "and", "thousand", the digits 0-9."""
    return Vocab(ONES + TENS[2:] + ["hundred", "and", "thousand"] + [str(d) for d in range(10)])


@dataclass
class TransductionTask:
    """Splits of (source text, target text) pairs and the shared vocabulary."""

    train: list
    val: list
    test: list
    vocab: Vocab
    direction: str
    max_number: int


def make_task(max_number=999, direction="digits2words", seed=0, val_fraction=0.1, test_fraction=0.1):
    """The numbers 0..max_number, shuffled with `seed`, cut into train / val / test (no number
    in two splits), each a list of (source, target) text pairs in `direction`."""
    _check_number(max_number)
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction and test_fraction must be positive with a sum below 1, got "
                         f"{val_fraction} and {test_fraction}")
    numbers = np.random.default_rng(seed).permutation(max_number + 1)
    n_val, n_test = round(len(numbers) * val_fraction), round(len(numbers) * test_fraction)
    if min(n_val, n_test, len(numbers) - n_val - n_test) < 1:
        raise ValueError(f"max_number={max_number} gives too few numbers for three non-empty splits")

    def pairs(chunk):
        words = [number_to_words(n) for n in chunk]
        digits = [number_to_digits(n) for n in chunk]
        return list(zip(words, digits)) if direction == "words2digits" else list(zip(digits, words))

    test, val, train = np.split(numbers, [n_test, n_test + n_val])
    return TransductionTask(pairs(train), pairs(val), pairs(test), number_vocab(), direction, int(max_number))
