"""The data layer: tokenizers (char, word, byte-level BPE), the default corpus, splits, batches."""
import json
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinylm.data import (UNK, Batcher, ByteBPETokenizer, CharTokenizer, Tokenizer, WordTokenizer,
                         build_tokenizer, default_corpus_text, get_batch, load_text, load_tokenizer,
                         sequential_batches, train_val_split)
from tinylm.data.tokenizers import PATTERNS, _merge

MIXED = "我喜欢吃苹果, and I like apples. Café naïve 😀😀 e\u0301 — 東京。 the the the 12345"


@pytest.fixture(scope="module")
def corpus():
    return default_corpus_text()


@pytest.fixture(scope="module")
def corpus_bpe(corpus):
    return ByteBPETokenizer.train(corpus, 512)


@pytest.fixture(scope="module")
def tokenizers(corpus):
    """One small tokenizer of each kind."""
    text = corpus[:20_000] + MIXED
    return {"char": CharTokenizer.train(text), "word": WordTokenizer.train(text, 500),
            "bpe": ByteBPETokenizer.train(text, 300)}


# --- byte-level BPE ---

def test_bpe_merges_hand_checked():
    # "aaabdaaabac": "aa" occurs 4 times (overlapping) -> 256, giving 256 a b d 256 a b a c;
    # then (256, 97) = (b"aa", b"a") and (97, 98) = (b"a", b"b") occur twice each: the greater pair
    # of byte strings, (b"aa", b"a"), wins -> 257 = "aaa"; then (257, 98) twice -> 258 = "aaab":
    # 258 d 258 a c; then all pairs occur once: (b"d", b"aaab") is the greatest.
    tok = ByteBPETokenizer.train("aaabdaaabac", 260)
    assert tok.merges == [(97, 97), (256, 97), (257, 98), (100, 258)]
    assert tok.vocab_size == 260
    assert tok.token_bytes[258] == b"aaab" and tok.token_bytes[259] == b"daaab"
    assert tok.encode("aaabdaaabac") == [258, 259, ord("a"), ord("c")]
    assert tok.decode([258, 259, ord("a"), ord("c")]) == "aaabdaaabac"


def test_merge_replaces_left_to_right():
    assert _merge([5, 6, 6, 6], (6, 6), 300) == [5, 300, 6]
    assert _merge([1, 2, 1, 2], (1, 2), 256) == [256, 256]


def test_bpe_merges_never_cross_chunks():
    # letters and punctuation are separate chunks: no pair to merge at all
    tok = ByteBPETokenizer.train("a.a.a.a.", 300)
    assert tok.merges == [] and tok.vocab_size == 256
    # " the" is one chunk: its merges build the whole word, space included
    tok = ByteBPETokenizer.train(" the the the", 259)
    assert tok.encode(" the") == [258] and tok.token_bytes[258] == b" the"


def reference_merges(text, vocab_size):
    """The textbook algorithm, slow and plain: recount every pair before every merge; among
    equally frequent pairs, the greatest pair of byte strings (then the smallest ids) wins."""
    words = [list(chunk.encode("utf-8")) for chunk in PATTERNS["gpt2"].findall(text)]
    merges, spelled = [], [bytes([b]) for b in range(256)]
    while 256 + len(merges) < vocab_size:
        counts = Counter(pair for w in words for pair in zip(w, w[1:]))
        if not counts:
            break
        pair = max(counts, key=lambda p: (counts[p], spelled[p[0]], spelled[p[1]], -p[0], -p[1]))
        merges.append(pair)
        spelled.append(spelled[pair[0]] + spelled[pair[1]])
        words = [_merge(w, pair, 255 + len(merges)) for w in words]
    return merges


@given(st.text(alphabet="ab c.\n", min_size=1, max_size=60), st.integers(256, 290))
def test_bpe_incremental_counts_match_full_recount(text, vocab_size):
    assert ByteBPETokenizer.train(text, vocab_size).merges == reference_merges(text, vocab_size)


@given(st.text())
def test_bpe_round_trip_any_text(tokenizers, text):
    tok = tokenizers["bpe"]
    assert tok.decode(tok.encode(text)) == text


def test_bpe_round_trip_unicode(tokenizers, corpus_bpe):
    text = MIXED + "\U0001F468\u200d\U0001F469\u200d\U0001F467 ﷽ 𠀀 \t\r\n"
    for tok in (tokenizers["bpe"], corpus_bpe):
        ids = tok.encode(text)
        assert all(0 <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text


def test_bpe_learns_multibyte_characters():
    # the 6 bytes of "苹果" occur 3 times, more than any pair with the space: 5 merges join them
    tok = ByteBPETokenizer.train("苹果 苹果 苹果", 261)
    assert tok.encode("苹果") == [260] and tok.token_bytes[260] == "苹果".encode("utf-8")
    assert tok.decode(tok.encode(" 苹果苹")) == " 苹果苹"


@given(st.lists(st.integers(0, 299), max_size=30))
def test_bpe_decode_any_ids(tokenizers, ids):
    assert isinstance(tokenizers["bpe"].decode(ids), str)


def test_bpe_decode_cut_character_is_replaced():
    tok = ByteBPETokenizer([])
    assert tok.decode(list("é".encode("utf-8"))[:1]) == "\ufffd"
    assert tok.decode(np.array(list("é".encode("utf-8")))) == "é"


def test_bpe_is_deterministic(corpus):
    text = corpus[:30_000]
    assert ByteBPETokenizer.train(text, 320).merges == ByteBPETokenizer.train(text, 320).merges


def test_bpe_on_default_corpus(corpus, corpus_bpe):
    assert corpus_bpe.vocab_size == 512
    ids = corpus_bpe.encode(corpus)
    assert corpus_bpe.decode(ids) == corpus
    assert len(ids) < len(corpus.encode("utf-8")) / 2  # 256 merges halve the length at least


def test_bpe_vocab_size_below_256():
    with pytest.raises(ValueError, match="at least 256"):
        ByteBPETokenizer.train("hello", 200)
    with pytest.raises(ValueError, match="needs a vocab_size"):
        build_tokenizer("bpe", "hello")


# --- char ---

@given(st.text(min_size=1))
def test_char_round_trip_on_training_text(text):
    tok = CharTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text


def test_char_vocabulary_and_unknown():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == sorted(set("hello world") | {UNK})
    assert tok.vocab_size == len(set("helo wrd")) + 1
    assert tok.encode("he") == [tok.chars.index("h"), tok.chars.index("e")]
    ids = tok.encode("hex!")  # x and ! were not in the training text
    assert ids[2] == ids[3] == tok.unk_id
    assert tok.decode(ids) == "he\ufffd\ufffd"


# --- word ---

def test_word_splits_cjk_and_punctuation():
    text = "我喜欢吃苹果, and I like apples."
    assert WordTokenizer.split(text) == ["我", "喜", "欢", "吃", "苹", "果", ",", " and", " I", " like",
                                         " apples", "."]
    tok = WordTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 13  # 12 distinct pieces and the unknown token


def test_word_cjk_ranges():
    # extension A, a compatibility ideograph, CJK punctuation, extension B
    assert WordTokenizer.split("㐀豈丁。𠀀ab") == ["㐀", "豈", "丁", "。", "𠀀", "ab"]


@given(st.text(min_size=1))
def test_word_round_trip_on_training_text(text):
    tok = WordTokenizer.train(text)
    assert "".join(WordTokenizer.split(text)) == text
    assert tok.decode(tok.encode(text)) == text


def test_word_unknown_and_vocab_cap():
    tok = WordTokenizer.train("x y x y z", vocab_size=3)
    # counts: " y" 2, then " x", " z", "x" once each, ties in string order (" " < "x")
    assert tok.tokens == [UNK, " y", " x"]
    assert tok.encode("x y z") == [0, 1, 0]
    assert tok.decode(tok.encode("x y z")) == "\ufffd y\ufffd"


def test_word_on_corpus_round_trip(corpus):
    tok = WordTokenizer.train(corpus)
    assert tok.decode(tok.encode(corpus)) == corpus
    assert tok.tokens[:2] == [UNK, max(Counter(WordTokenizer.split(corpus)).items(), key=lambda kv: kv[1])[0]]


# --- save, load, dicts ---

@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_save_load_round_trip(tokenizers, tmp_path, kind):
    tok = tokenizers[kind]
    path = tmp_path / f"{kind}.json"
    tok.save(path)
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left behind
    d = tok.to_dict()
    assert d["kind"] == kind and json.loads(json.dumps(d)) == d
    for loaded in (type(tok).load(path), Tokenizer.load(path), load_tokenizer(path), load_tokenizer(str(path)),
                   load_tokenizer(d), type(tok).from_dict(d)):
        assert type(loaded) is type(tok)
        assert loaded.to_dict() == d
        assert loaded.encode(MIXED) == tok.encode(MIXED)


def test_failed_save_keeps_the_old_file(tokenizers, tmp_path, monkeypatch):
    path = tmp_path / "tok.json"
    tokenizers["char"].save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(json, "dump", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        tokenizers["bpe"].save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["tok.json"]


def test_build_tokenizer_kinds():
    text = "one two, three"
    assert isinstance(build_tokenizer("char", text), CharTokenizer)
    assert build_tokenizer("word", text, 3).vocab_size == 3
    assert build_tokenizer("bpe", text, 260).vocab_size == 260
    with pytest.raises(ValueError, match="unknown tokenizer kind 'wordpiece'"):
        build_tokenizer("wordpiece", text)
    with pytest.raises(ValueError, match="leave vocab_size out"):
        build_tokenizer("char", text, 100)


def test_load_errors(tokenizers, tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_tokenizer(missing)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"kind": "bpe", "merg')
    with pytest.raises(ValueError, match="corrupt.json is not a tokenizer file"):
        load_tokenizer(corrupt)
    word = tmp_path / "word.json"
    tokenizers["word"].save(word)
    with pytest.raises(ValueError, match="word.json: holds a 'word' tokenizer, not a 'char' one"):
        CharTokenizer.load(word)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "bpe", "merges": [[97, 98], [97, 400]]}))
    with pytest.raises(ValueError, match=r"bad.json: merge 1 must be a pair of ids below 257"):
        load_tokenizer(bad)
    not_a_tokenizer = tmp_path / "list.json"
    not_a_tokenizer.write_text("[1, 2]")
    with pytest.raises(ValueError, match="list.json: not a tokenizer"):
        load_tokenizer(not_a_tokenizer)


@pytest.mark.parametrize("d, message", [
    ({"kind": "wordpiece"}, "unknown tokenizer kind"),
    ({"kind": "sentencepiece"}, "needs a 'pieces' field"),
    ({"kind": "char"}, "needs a 'chars' field"),
    ({"kind": "char", "chars": ["a", "a", UNK]}, "'a' more than once"),
    ({"kind": "char", "chars": ["a", "bc", UNK]}, "single characters"),
    ({"kind": "word", "tokens": ["a", UNK]}, "must start with the unknown token"),
    ({"kind": "word", "tokens": ["a"]}, "lacks the unknown token"),
    ({"kind": "bpe", "merges": 5}, "must be a list of pairs"),
])
def test_from_dict_errors(d, message):
    with pytest.raises(ValueError, match=message):
        load_tokenizer(d)


def test_save_into_missing_folder(tokenizers, tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder"):
        tokenizers["char"].save(tmp_path / "absent" / "tok.json")


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_encode_decode_errors(tokenizers, kind):
    tok = tokenizers[kind]
    with pytest.raises(ValueError, match=f"token id {tok.vocab_size} is out of range"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(ValueError, match="token id -1"):
        tok.decode([-1])
    with pytest.raises(ValueError, match="1-D"):
        tok.decode(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="takes a str, got bytes"):
        tok.encode(b"hello")
    assert tok.decode([]) == "" and tok.encode("") == []


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_empty_training_text(kind):
    with pytest.raises(ValueError, match="training text is empty"):
        build_tokenizer(kind, "", None if kind != "bpe" else 300)


# --- corpus ---

def test_default_corpus(corpus):
    assert len(corpus) > 400_000
    assert "def" in corpus and load_text() == corpus
    assert default_corpus_text(1000) == corpus[:1000]


def test_load_text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("line one\r\nlíne two 我\n".encode("utf-8"))
    assert load_text(path) == "line one\r\nlíne two 我\n"  # exactly as stored


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_text(tmp_path / "missing.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin.txt is not UTF-8 text: byte 3 \(0xe9\)"):
        load_text(latin)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        load_text(empty)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_text(tmp_path)


def test_train_val_split():
    ids = list(range(1000))
    train, val = train_val_split(ids, 0.1)
    assert (len(train), len(val)) == (900, 100)
    assert train.dtype == val.dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)  # contiguous, in order
    train, val = train_val_split(ids, 0.0)
    assert len(train) == 1000 and len(val) == 0


@pytest.mark.parametrize("ids, fraction, message", [
    (range(10), 1.0, r"val_fraction must be in \[0, 1\)"),
    (range(3), 0.1, "3 ids are too few"),
    ([0.5, 1.5], 0.5, "1-D sequence of integers"),
])
def test_train_val_split_errors(ids, fraction, message):
    with pytest.raises(ValueError, match=message):
        train_val_split(list(ids), fraction)


# --- batches ---

def test_get_batch_shapes_and_shift():
    data = np.arange(100) * 3
    x, y = get_batch(data, 8, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])  # y is x shifted by one
    np.testing.assert_array_equal(y[:, -1], x[:, -1] + 3)  # ...continuing the data
    assert np.all(np.diff(x, axis=1) == 3)  # each row is a contiguous window


def test_get_batch_covers_every_start():
    data = np.arange(10)
    x, y = get_batch(data, 500, 9, np.random.default_rng(1))  # only one window fits
    assert (x == data[:-1]).all() and (y == data[1:]).all()
    x, _ = get_batch(data, 500, 3, np.random.default_rng(1))
    assert set(x[:, 0]) == set(range(7))  # starts 0..len-T-1, the last one included


def test_get_batch_reproducible():
    data = np.arange(1000)
    a = get_batch(data, 4, 8, np.random.default_rng(42))
    b = get_batch(data, 4, 8, np.random.default_rng(42))
    c = get_batch(data, 4, 8, np.random.default_rng(43))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_batcher_matches_get_batch():
    data = np.arange(500)
    batcher = Batcher(data, 4, 8, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    for (x, y), _ in zip(batcher, range(3)):
        ex, ey = get_batch(data, 4, 8, rng)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_batch_errors():
    with pytest.raises(ValueError, match="has 10 tokens, too few for block_size 10"):
        get_batch(np.arange(10), 2, 10, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        get_batch(np.arange(100), 2, 10, 0)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        Batcher(np.arange(100), 2, 10, None)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        get_batch(np.arange(100), 0, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="1-D array of token ids"):
        list(sequential_batches(np.zeros((4, 4), dtype=np.int64), 2, 2))


@given(st.integers(2, 80), st.integers(1, 5), st.integers(1, 9))
def test_sequential_batches_cover_every_token_once(n, batch_size, block_size):
    data = np.arange(n) * 2
    if n < block_size + 1:
        with pytest.raises(ValueError, match="too few"):
            list(sequential_batches(data, batch_size, block_size))
        return
    batches = list(sequential_batches(data, batch_size, block_size))
    xs = np.concatenate([x.reshape(-1) for x, _ in batches])
    ys = np.concatenate([y.reshape(-1) for _, y in batches])
    np.testing.assert_array_equal(xs, data[:-1])
    np.testing.assert_array_equal(ys, data[1:])
    assert all(x.shape == y.shape and x.shape[0] <= batch_size and x.shape[1] <= block_size
               for x, y in batches)
    assert all(x.shape[1] == block_size for x, _ in batches[:-1])
