"""Byte-level BPE as GPT-2 has it: its pre-tokenizer, special tokens, streaming, its files
(vocab.json + merges.txt, checked against transformers' GPT2Tokenizer when installed)."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinylm.data import ByteBPETokenizer, default_corpus_text, load_tokenizer
from tinylm.data.tokenizers import PATTERNS, _spell, bytes_to_unicode

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def bpe():
    return ByteBPETokenizer.train(default_corpus_text(60_000), 700, special_tokens=[EOT, "<|end|>", "<|im end|>"])


def pieces(text, pattern="gpt2"):
    return PATTERNS[pattern].findall(text)


# --- GPT-2's pre-tokenizer ---------------------------------------------------------------------

def test_gpt2_pattern_by_hand():
    assert pieces("I don't know, they'll see") == ["I", " don", "'t", " know", ",", " they", "'ll", " see"]
    # a run of whitespace: the last space goes with the next word; newlines split one by one
    # where a non-space follows ("\s+(?!\S)" stops short of it, then "\s+" takes the rest)
    assert pieces("a\n\nb") == ["a", "\n", "\n", "b"]
    assert pieces("a  \n\n  b  ") == ["a", "  \n\n ", " b", "  "]
    assert pieces("x 12345 $$ é_1") == ["x", " 12345", " $$", " é", "_", "1"]
    # Llama 3's: contractions in any case, digits by three, symbols with the newlines after them
    assert pieces("HE'LL pay 12345!\n\n(x)", "llama3") == ["HE", "'LL", " pay", " ", "123", "45", "!\n\n", "(x", ")"]
    # the pattern tinylm used before, kept for old tokenizers: "'t" is two pieces, "\n\n" one
    assert pieces("don't\n\nb", "tinylm-0.1") == ["don", "'", "t", "\n\n", "b"]


@given(st.text())
def test_pieces_join_back(text):
    for pattern in PATTERNS:
        assert "".join(pieces(text, pattern)) == text


def test_old_dicts_keep_their_pattern(bpe):
    old = {"kind": "bpe", "merges": [[100, 111], [256, 110]]}  # "do", "don": a dict from before
    tok = load_tokenizer(old)
    assert tok.pattern == "tinylm-0.1" and tok.to_dict() == old  # written back as it was
    assert [tok.decode([i]) for i in tok.encode("don't")] == ["don", "'", "t"]
    assert bpe.to_dict()["pattern"] == "gpt2"
    assert ByteBPETokenizer([[100, 111], [256, 110]]).encode("don't")[-1:] == [ord("t")]  # "'t" one piece


def test_unknown_pattern():
    with pytest.raises(ValueError, match="unknown pre-tokenizer pattern 'gpt4'"):
        ByteBPETokenizer.train("hello", 260, pattern="gpt4")


# --- special tokens ----------------------------------------------------------------------------

def test_special_tokens_are_reserved_and_never_split(bpe):
    assert bpe.vocab_size == 700
    assert bpe.special_tokens == {EOT: 697, "<|end|>": 698, "<|im end|>": 699}
    ids = bpe.encode(f"the end{EOT}<|end|>x<|im end|>")
    assert ids[-4:] == [697, 698, ids[-2], 699] and bpe.decode(ids[-2:-1]) == "x"
    assert bpe.decode(ids) == f"the end{EOT}<|end|>x<|im end|>"
    # the longest match wins where special tokens overlap; a part of one is plain text
    assert bpe.encode(EOT) == [697] and bpe.encode("<|end|>oftext|>")[0] == 698
    assert 697 not in bpe.encode("<|endoftext|") and 698 not in bpe.encode("<|end")


def test_special_tokens_in_training():
    text = f"hello{EOT}hello{EOT}" * 50
    tok = ByteBPETokenizer.train(text, 300, special_tokens=[EOT])
    # nothing is learned inside or across the special token: only "hello" is merged (4 merges)
    assert tok.vocab_size == 256 + 4 + 1 and tok.token_bytes[259] == b"hello"
    assert tok.encode(f"hello{EOT}") == [259, 260]
    with pytest.raises(ValueError, match=r"at least 256 \(the byte values\) \+ 1"):
        ByteBPETokenizer.train(text, 256, special_tokens=[EOT])
    with pytest.raises(ValueError, match="lists '<a>' more than once"):
        ByteBPETokenizer.train(text, 300, special_tokens=["<a>", "<a>"])


def test_special_tokens_round_trip(bpe, tmp_path):
    d = bpe.to_dict()
    assert d["special_tokens"] == {EOT: 697, "<|end|>": 698, "<|im end|>": 699}
    bpe.save(tmp_path / "bpe.json")
    for tok in (load_tokenizer(d), load_tokenizer(tmp_path / "bpe.json")):
        assert tok.to_dict() == d and tok.encode(f"a{EOT}b") == bpe.encode(f"a{EOT}b")
    with pytest.raises(ValueError, match="the ids after the merges"):
        load_tokenizer({**d, "special_tokens": {EOT: 5}})


# --- streaming ---------------------------------------------------------------------------------

STREAM_PIECES = list("ab '\n\r\t\x1c.!(é1") + ["'S", EOT, "<|im end|>", "<|im ", "end|>"]


@given(st.lists(st.lists(st.sampled_from(STREAM_PIECES), max_size=12).map("".join), max_size=8))
def test_encode_iterable_equals_encode(bpe, parts):
    assert list(bpe.encode_iterable(parts)) == bpe.encode("".join(parts))
    for pattern in ("llama3", "tinylm-0.1"):
        other = ByteBPETokenizer(bpe.merges, special_tokens=list(bpe.special_tokens), pattern=pattern)
        assert list(other.encode_iterable(parts)) == other.encode("".join(parts))


def test_encode_iterable_streams_a_file(bpe, tmp_path):
    text = default_corpus_text(200_000) + EOT + "\n  \n"
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    with open(path, encoding="utf-8", newline="") as f:
        ids = bpe.encode_iterable(f)
        assert iter(ids) is ids  # a generator: nothing is encoded until asked
        assert list(ids) == bpe.encode(text)
    with pytest.raises(TypeError, match="encode_iterable takes a str, got bytes"):
        list(bpe.encode_iterable([b"x"]))


# --- GPT-2's files -----------------------------------------------------------------------------

def test_bytes_to_unicode():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("a")] == "a" and table[0] == "Ā"


def write_files(folder, vocab, merges):
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def test_from_files_by_hand(tmp_path):
    # GPT-2's layout: the 256 bytes in the order of their characters (id 0 is "!"), merges
    # after them, "<|endoftext|>" last
    table = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(sorted(table.values()))}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("'", "t")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[EOT] = len(vocab)
    tok = ByteBPETokenizer.from_files(*write_files(tmp_path, vocab, merges), special_tokens=[EOT])
    assert vocab["!"] == 0 and vocab["Ġ"] == 220 and vocab["Ġthe"] == 258 and vocab[EOT] == 260
    assert tok.encode(" the") == [258] and tok.encode("!") == [0] and tok.encode("\n") == [vocab["Ċ"]]
    # "don't the<|endoftext|>": d o n 't Ġthe <|endoftext|>
    assert tok.encode(f"don't the{EOT}") == [vocab["d"], vocab["o"], vocab["n"], 259, 258, 260]
    assert tok.decode([258, 260]) == f" the{EOT}"
    d = tok.to_dict()
    assert d["vocab"][:3] == ["!", '"', "#"] and load_tokenizer(d).encode(f"the{EOT}") == tok.encode(f"the{EOT}")
    # a special token that vocab.json lacks takes the next id
    assert ByteBPETokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt",
                                       special_tokens=[EOT, "<pad>"]).encode("<pad>") == [261]


def test_from_files_errors(tmp_path):
    table = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(sorted(table.values()))}
    with pytest.raises(ValueError, match="merges.txt line 2: 'Ġx' is not in .*vocab.json"):
        ByteBPETokenizer.from_files(*write_files(tmp_path, vocab, [("Ġx", "y")]))
    with pytest.raises(ValueError, match="merge 0 makes b' y', which is not in 'vocab'"):
        ByteBPETokenizer.from_files(*write_files(tmp_path, vocab, [("Ġ", "y")]))
    del vocab["a"]
    vocab = {t: i for i, t in enumerate(vocab)}
    with pytest.raises(ValueError, match="lacks the byte 0x61"):
        ByteBPETokenizer.from_files(*write_files(tmp_path, vocab, []))
    with pytest.raises(ValueError, match=r"vocab.json: '一' is not a byte string in GPT-2's spelling \('一' stands"):
        ByteBPETokenizer.from_files(*write_files(tmp_path, {**vocab, "a": 255, "\u4e00": 256}, []))
    with pytest.raises(ValueError, match="the ids must be 0..1, each once"):
        ByteBPETokenizer.from_files(*write_files(tmp_path, {"a": 0, "b": 5}, []))
    with pytest.raises(ValueError, match="line 2: expected two tokens separated by one space, got 'a b c'"):
        ByteBPETokenizer.from_files(*write_files(tmp_path, vocab, [("a", "b c")]))
    with pytest.raises(FileNotFoundError, match="no tokenizer file at .*absent.json"):
        ByteBPETokenizer.from_files(tmp_path / "absent.json", tmp_path / "merges.txt")


def test_save_files_round_trip(bpe, tmp_path):
    vocab_json, merges_txt = bpe.save_files(tmp_path)
    with open(merges_txt, encoding="utf-8") as f:
        assert f.readline() == "#version: 0.2\n"
    tok = ByteBPETokenizer.from_files(vocab_json, merges_txt, special_tokens=list(bpe.special_tokens))
    assert tok.token_bytes == bpe.token_bytes and tok.special_tokens == bpe.special_tokens
    for text in TEXTS:
        assert tok.encode(text) == bpe.encode(text)
    with pytest.raises(ValueError, match="GPT-2's files imply GPT-2's pre-tokenizer"):
        ByteBPETokenizer([], pattern="tinylm-0.1").save_files(tmp_path)
    twice = ByteBPETokenizer([[97, 98], [256, 99], [98, 99], [97, 258]])  # "abc" made as ab+c and as a+bc
    with pytest.raises(ValueError, match="ids 257 and 259 are both 'abc'"):
        twice.save_files(tmp_path)


def tokenizer_json(tok):
    """`tok` as Hugging Face tokenizers' tokenizer.json would describe it (GPT-2's layout)."""
    specials = {i: t for t, i in tok.special_tokens.items()}
    return {"version": "1.0", "truncation": None, "padding": None, "normalizer": None, "post_processor": None,
            "added_tokens": [{"id": i, "content": t, "special": True, "lstrip": False, "rstrip": False,
                              "single_word": False, "normalized": False} for t, i in tok.special_tokens.items()],
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {specials.get(i, _spell(t)): i for i, t in enumerate(tok.token_bytes)},
                      "merges": [[_spell(tok.token_bytes[a]), _spell(tok.token_bytes[b])] for a, b in tok.merges]}}


def test_from_tokenizer_json(bpe, tmp_path):
    path = tmp_path / "tokenizer.json"
    d = tokenizer_json(bpe)
    path.write_text(json.dumps(d), encoding="utf-8")
    tok = ByteBPETokenizer.from_tokenizer_json(path)
    assert tok.special_tokens == bpe.special_tokens
    for text in TEXTS:
        assert tok.encode(text) == bpe.encode(text)
    # merges written "a b", as older files do
    d["model"]["merges"] = [" ".join(m) for m in d["model"]["merges"]]
    path.write_text(json.dumps(d), encoding="utf-8")
    assert ByteBPETokenizer.from_tokenizer_json(path).encode(TEXTS[0]) == bpe.encode(TEXTS[0])
    for change, message in ((("pre_tokenizer", "add_prefix_space", True), '"add_prefix_space": true'),
                            (("model", "dropout", 0.1), "sets dropout = 0.1"),
                            (("model", "continuing_subword_prefix", "##"), "sets continuing_subword_prefix")):
        where, key, value = change
        broken = json.loads(json.dumps(d))
        broken[where][key] = value
        path.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            ByteBPETokenizer.from_tokenizer_json(path)
    d["added_tokens"][0]["lstrip"] = True
    path.write_text(json.dumps(d), encoding="utf-8")
    with pytest.raises(ValueError, match="strips spaces or matches whole words only"):
        ByteBPETokenizer.from_tokenizer_json(path)


def gpt2_files(tok, folder):
    """`tok` (trained here) written as GPT-2's files: GPT-2's ids for the bytes, then the merges."""
    table = bytes_to_unicode()
    vocab = {c: i for i, c in enumerate(sorted(table.values()))}
    merges = [(_spell(tok.token_bytes[a]), _spell(tok.token_bytes[b])) for a, b in tok.merges]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab[EOT] = len(vocab)
    return write_files(folder, vocab, merges)


TEXTS = ["Hello world, don't stop! It's 2024.\n\n  x  y ", "a\x1c b\u00a0c\u2003 d\t\t\n\r\n", f"{EOT}The end{EOT}",
         "我喜欢吃苹果 😀 e\u0301 12345 $$$ __init__ ’quoted’ CAPS'LL", "    def f(x):\n        return x  # done\n"]


def test_files_give_the_trained_tokens(tmp_path):
    tok = ByteBPETokenizer.train(default_corpus_text(30_000), 500, special_tokens=[EOT])
    from_files = ByteBPETokenizer.from_files(*gpt2_files(tok, tmp_path), special_tokens=[EOT])
    for text in TEXTS:
        ids = from_files.encode(text)
        assert [from_files.token_bytes[i] for i in ids] == [tok.token_bytes[i] for i in tok.encode(text)]
        assert from_files.decode(ids) == text


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    gpt2_files(ByteBPETokenizer.train(default_corpus_text(50_000), 800), folder)
    return folder


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_folder):
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2Tokenizer.from_pretrained(str(gpt2_folder))


@pytest.fixture(scope="module")
def gpt2_tok(gpt2_folder):
    return ByteBPETokenizer.from_files(gpt2_folder / "vocab.json", gpt2_folder / "merges.txt", special_tokens=[EOT])


def test_same_ids_as_transformers(gpt2_tok, hf_gpt2):
    tok = gpt2_tok
    text = default_corpus_text(20_000) + "".join(TEXTS)
    assert tok.encode(text) == hf_gpt2.encode(text)
    for t in TEXTS:
        assert tok.encode(t) == hf_gpt2.encode(t)
        assert tok.decode(tok.encode(t)) == hf_gpt2.decode(hf_gpt2.encode(t)) == t


@given(st.text(max_size=40))
def test_same_ids_as_transformers_any_text(gpt2_tok, hf_gpt2, text):
    assert gpt2_tok.encode(text) == hf_gpt2.encode(text)


def test_bench_tokenizer_quick(tmp_path, monkeypatch):
    import io

    from tinylm.bench_tokenizer import bench_text, bench_tokenizer

    assert len(bench_text(100_000).encode("utf-8")) >= 100_000
    monkeypatch.chdir(tmp_path)  # its steps run in subprocesses, as a user's would, outside the source tree
    out = io.StringIO()
    results = bench_tokenizer(quick=True, file=out)
    assert results["train"]["vocab_size"] == 2000 and results["encode"]["tokens"] == results["stream"]["tokens"]
    assert "train (tinylm)" in out.getvalue() and "encode_iterable (lines)" in out.getvalue()


def test_llama3_tokenizer_json(tmp_path):
    """Llama 3's kind of tokenizer.json: its pattern, and a chunk found whole in the vocabulary
    taken as one token without the merges (ignore_merges); the same ids as Hugging Face's
    tokenizers library, when installed."""
    tok = ByteBPETokenizer.train(default_corpus_text(60_000), 700, special_tokens=["<|begin_of_text|>"],
                                 pattern="llama3")
    d = tokenizer_json(tok)
    d["model"]["vocab"]["Ġfunctional"] = len(d["model"]["vocab"])  # a word no merge makes
    d["model"]["ignore_merges"] = True
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": PATTERNS["llama3"].pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(d), encoding="utf-8")
    loaded = ByteBPETokenizer.from_tokenizer_json(path)
    assert loaded.pattern == "llama3" and loaded.ignore_merges and loaded.vocab_size == 701
    assert loaded.encode(" functional") == [700] and len(tok.encode(" functional")) > 1
    assert load_tokenizer(loaded.to_dict()).encode(" functional") == [700]
    texts = TEXTS + [" functional functionality", "HE'LL pay 12345!\n\n(x)\r\n", default_corpus_text(5_000)]
    for text in texts:
        assert loaded.decode(loaded.encode(text)) == text
    tokenizers = pytest.importorskip("tokenizers")
    hf = tokenizers.Tokenizer.from_str(json.dumps(d))
    for text in texts:
        assert loaded.encode(text) == hf.encode(text, add_special_tokens=False).ids
