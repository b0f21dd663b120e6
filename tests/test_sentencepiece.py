"""SentencePiece tokenizers (tinylm.data.sentencepiece): the protobuf reader on hand-built bytes,
hand-built BPE and unigram models worked out by hand, byte fallback, the unknown id, saving, bad
files; and the same ids as the sentencepiece library for models it trains (skipped without it)."""
import json
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinylm.data import UNK, SentencePieceTokenizer, Tokenizer, default_corpus_text, load_tokenizer
from tinylm.data.sentencepiece import read_fields, read_message, read_varint

TYPES = {"normal": 1, "unknown": 2, "control": 3, "user_defined": 4, "unused": 5, "byte": 6}


# --- a protobuf writer, the reader's mirror, to build files by hand -----------------------------
def varint(n):
    """n as a protobuf varint; a negative n as the ten bytes of its 64-bit two's complement."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number, value):
    """One field: an int (or bool) as a varint, a float as fixed32, a str or bytes length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, float):
        return varint(number << 3 | 5) + struct.pack("<f", value)
    data = value.encode("utf-8") if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def model_proto(pieces, model_type=2, byte_fallback=False, dummy_prefix=False, extra=b""):
    """A ModelProto: pieces [(piece, score, type name)]; model_type 1 unigram, 2 BPE; the
    "identity" normaliser, with or without the dummy prefix; `extra` appended as it is."""
    data = b"".join(field(1, field(1, p) + field(2, float(s)) + field(3, TYPES[t])) for p, s, t in pieces)
    data += field(2, field(3, model_type) + field(35, byte_fallback))
    data += field(3, field(1, "identity") + field(3, dummy_prefix))
    return data + extra


def write(tmp_path, data, name="tokenizer.model"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


SPECIALS = [("<unk>", 0.0, "unknown"), ("<s>", 0.0, "control"), ("</s>", 0.0, "control")]
BYTES = [(f"<0x{b:02X}>", 0.0, "byte") for b in range(256)]


def pieces_of(tok, ids):
    return [tok.pieces[i] for i in ids]


# --- the wire format -----------------------------------------------------------------------------
@pytest.mark.parametrize("data, value", [(b"\x00", 0), (b"\x01", 1), (b"\x7f", 127), (b"\x80\x01", 128),
                                         (b"\xac\x02", 300), (b"\xff" * 9 + b"\x01", (1 << 64) - 1)])
def test_varints(data, value):
    assert read_varint(data + b"rest", 0) == (value, len(data))


@given(st.integers(0, (1 << 64) - 1))
def test_varint_round_trip(n):
    assert read_varint(varint(n), 0) == (n, len(varint(n)))


def test_fields_of_each_wire_type():
    data = field(1, 150) + field(2, 0.5) + field(3, "▁hi") + varint(4 << 3 | 1) + b"12345678"
    assert read_fields(data) == [(1, 0, 150), (2, 5, struct.pack("<f", 0.5)), (3, 2, "▁hi".encode()),
                                 (4, 1, b"12345678")]


@pytest.mark.parametrize("data, message", [
    (b"\x0a\x05ab", "field 1 needs 5 bytes at byte 2, past the end"),
    (b"\x08", "runs past the end"),
    (b"\x0b", "wire type 3"),
    (b"\x00\x01", "field number 0"),
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
])
def test_broken_wire_data(data, message):
    with pytest.raises(ValueError, match=message):
        read_fields(data)


def test_message_defaults_nesting_negative_ints_and_unknown_fields():
    schema = {1: ("name", "string"), 2: ("score", "float"), 3: ("id", "int32"), 4: ("on", "bool"),
              5: ("inner", {1: ("n", "int32")}), 6: ("many", [{1: ("n", "int32")}])}
    data = (field(99, "skipped") + field(1, "a") + field(3, -1) + field(5, field(1, 7) + field(2, 9))
            + field(6, field(1, 1)) + field(6, field(1, 2)) + field(4, True) + field(2, -1.25))
    assert read_message(data, schema) == {"name": "a", "score": -1.25, "id": -1, "on": True, "inner": {"n": 7},
                                          "many": [{"n": 1}, {"n": 2}]}
    with pytest.raises(ValueError, match=r"field 1 \(name\) has wire type 0, expected 2"):
        read_message(field(1, 5), schema)
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        read_message(field(1, b"\xff"), schema)


def test_what_a_model_file_holds(tmp_path):
    extra = field(2, field(40, 0) + field(41, -1) + field(42, 2) + field(43, 1) + field(999, "x"))
    pieces = SPECIALS[:1] + [("<pad>", 0.0, "control"), ("</s>", 0.0, "control"), ("a", -1.5, "normal")]
    tok = SentencePieceTokenizer.from_model_file(write(tmp_path, model_proto(pieces, extra=extra)))
    # the second trainer_spec field overrides the first's fields it sets, as protobuf merges them
    assert tok.pieces == ["<unk>", "<pad>", "</s>", "a"] and tok.scores == [0.0, 0.0, 0.0, -1.5]
    assert (tok.unk_id, tok.bos_id, tok.eos_id, tok.pad_id) == (0, None, 2, 1)
    assert tok.special_tokens == {"<pad>": 1, "</s>": 2} and tok.vocab_size == 4
    assert tok.model_type == "bpe" and not tok.byte_fallback
    assert tok.normalizer == {"name": "identity", "add_dummy_prefix": False, "remove_extra_whitespaces": True,
                              "escape_whitespaces": True}


# --- BPE, unigram, unknowns, bytes, by hand ------------------------------------------------------
@pytest.mark.parametrize("bc, expected", [(-1.0, ["ab", "c"]),     # equal scores: the leftmost pair first
                                          (-0.5, ["a", "bc"])])    # the higher score first
def test_bpe_merges_the_best_scored_pair_first(tmp_path, bc, expected):
    pieces = SPECIALS + [("a", -3.0, "normal"), ("b", -3.0, "normal"), ("c", -3.0, "normal"),
                         ("ab", -1.0, "normal"), ("bc", bc, "normal")]
    tok = SentencePieceTokenizer.from_model_file(write(tmp_path, model_proto(pieces)))
    assert pieces_of(tok, tok.encode("abc")) == expected
    assert tok.decode(tok.encode("abc")) == "abc"


def test_bpe_splits_unused_pieces_back(tmp_path):
    pieces = SPECIALS + [("a", -3.0, "normal"), ("b", -3.0, "normal"), ("c", -3.0, "normal"),
                         ("ab", -1.0, "unused"), ("abc", -0.5, "normal")]
    tok = SentencePieceTokenizer.from_model_file(write(tmp_path, model_proto(pieces)))
    assert pieces_of(tok, tok.encode("abc")) == ["abc"]      # made through the unused "ab"
    assert pieces_of(tok, tok.encode("abab")) == ["a", "b", "a", "b"]


def test_unigram_viterbi_and_its_ties(tmp_path):
    pieces = SPECIALS + [("a", -1.0, "normal"), ("b", -1.0, "normal"), ("aa", -2.0, "normal"),
                         ("ab", -1.5, "normal")]
    tok = SentencePieceTokenizer.from_model_file(write(tmp_path, model_proto(pieces, model_type=1)))
    assert pieces_of(tok, tok.encode("ab")) == ["ab"]        # -1.5 beats a + b = -2
    assert pieces_of(tok, tok.encode("aa")) == ["aa"]        # aa = a + a = -2: the longer last piece
    assert pieces_of(tok, tok.encode("aaa")) == ["a", "aa"]  # a + aa = aa + a = -3: the same rule
    assert pieces_of(tok, tok.encode("aab")) == ["a", "ab"]  # -2.5


@pytest.mark.parametrize("model_type", [1, 2])
def test_unknown_characters(tmp_path, model_type):
    pieces = SPECIALS + [("a", -1.0, "normal"), ("▁", -1.0, "normal")]
    tok = SentencePieceTokenizer.from_model_file(write(tmp_path, model_proto(pieces, model_type)))
    assert tok.encode("a xy a") == [3, 4, 0, 4, 3]   # one unknown id for the run "xy"
    assert tok.encode("x<s>") == [0]                 # control pieces are never read from text
    assert tok.decode(tok.encode("a xy a")) == f"a {UNK} a"
    assert tok.decode([1, 3, 2]) == "a"              # control pieces decode to nothing


@pytest.mark.parametrize("model_type", [1, 2])
def test_byte_fallback(tmp_path, model_type):
    pieces = SPECIALS + BYTES + [("a", -1.0, "normal"), ("▁", -1.0, "normal")]
    tok = SentencePieceTokenizer.from_model_file(write(tmp_path, model_proto(pieces, model_type, byte_fallback=True)))
    byte = {b: 3 + b for b in range(256)}
    assert tok.encode("a😀é") == [259] + [byte[b] for b in "😀é".encode()]
    assert tok.encode("<0x41>") == [byte[b] for b in b"<0x41>"]  # byte pieces are never read from text
    assert tok.decode(tok.encode("a 😀 é")) == "a 😀 é"
    assert tok.decode([byte[0xF0], 259, byte[0xE6], byte[0x88]]) == "\ufffda\ufffd\ufffd"  # one "�" per bad byte


def round_trip_model(tmp_path):
    """Llama 2's settings, in small: BPE, byte fallback, identity normaliser, the dummy prefix, spaces
    kept as they are: decode(encode(text)) == text for every text."""
    pieces = SPECIALS + BYTES + [("▁", -1.0, "normal"), ("t", -1.0, "normal"), ("h", -1.0, "normal"),
                                 ("e", -1.0, "normal"), ("th", -2.0, "normal"), ("▁the", -3.0, "normal"),
                                 ("▁th", -4.0, "normal"), ("▁▁", -5.0, "normal")]
    extra = field(3, field(4, False))  # remove_extra_whitespaces off
    return SentencePieceTokenizer.from_model_file(
        write(tmp_path, model_proto(pieces, byte_fallback=True, dummy_prefix=True, extra=extra)))


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    return round_trip_model(tmp_path_factory.mktemp("round_trip"))


@given(st.text())
def test_decode_encode_is_the_text(round_trip, text):
    assert round_trip.decode(round_trip.encode(text)) == text


def test_normalize_and_the_pieces(round_trip):
    assert round_trip.normalize(" the  the") == "▁▁the▁▁the"
    # ▁ t h e ▁ ▁ t h e: "th" (-2) twice, then "▁th" (-4, the leftmost first), "▁the" (-3), and
    # again "▁th" and "▁the" on the right, before "▁▁" (-5) would come
    assert pieces_of(round_trip, round_trip.encode("the  the")) == ["▁the", "▁", "▁the"]


# --- saving, checking ----------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path, round_trip):
    d = round_trip.to_dict()
    assert d["kind"] == "sentencepiece" and json.loads(json.dumps(d)) == d
    round_trip.save(tmp_path / "tok.json")
    for loaded in (Tokenizer.load(tmp_path / "tok.json"), load_tokenizer(str(tmp_path / "tok.json")),
                   load_tokenizer(d), SentencePieceTokenizer.from_dict(d)):
        assert type(loaded) is SentencePieceTokenizer and loaded.to_dict() == d
        assert loaded.encode(" the 😀  thé ") == round_trip.encode(" the 😀  thé ")


@pytest.mark.parametrize("data, message", [
    (b"", "it has no pieces"),
    (b'{"model": {"type": "BPE"}}', "field 15 has wire type 3"),
    (b"\x0a\x05", "field 1 needs 5 bytes"),
    (model_proto([("a", -1.0, "normal")]), "exactly one unknown piece; this one has 0"),
    (model_proto(SPECIALS + [("a", -1.0, "normal"), ("a", -2.0, "normal")]), "'a', is listed twice"),
    (model_proto(SPECIALS + BYTES[:10], byte_fallback=True), "byte_fallback needs the 256 byte pieces"),
    (model_proto(SPECIALS + BYTES), "byte pieces but byte_fallback is off"),
    (model_proto(SPECIALS, model_type=3), "its model_type is 3"),
    (model_proto(SPECIALS, extra=field(2, field(24, True))), "treat_whitespace_as_suffix"),
    (model_proto(SPECIALS, extra=field(5, field(2, b"rules"))), "denormalisation rules"),
    (model_proto(SPECIALS, extra=field(3, field(2, b"\x08\x00\x00\x00ab"))), "trie size 8 does not fit"),
    (model_proto(SPECIALS) + field(1, field(1, "x") + field(3, 9)), "piece 3 has type 9"),
])
def test_files_that_are_not_sentencepiece_models(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as e:
        SentencePieceTokenizer.from_model_file(path)
    assert str(e.value).startswith(f"{path} is not a SentencePiece model") and "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file at"):
        SentencePieceTokenizer.from_model_file(tmp_path / "absent.model")


@pytest.mark.parametrize("change, message", [
    ({"model_type": "word"}, "model_type 'word' is not read"),
    ({"pieces": [["a", -1.0, "sometimes"]]}, "piece 0 must be"),
    ({"normalizer": {"lowercase": True}}, "unknown normalizer setting 'lowercase'"),
    ({"charsmap": 5}, "'charsmap' must be a base64 string"),
])
def test_bad_dicts(round_trip, change, message):
    with pytest.raises(ValueError, match=message):
        load_tokenizer({**round_trip.to_dict(), **change})


def test_decode_checks_ids(round_trip):
    with pytest.raises(ValueError, match="out of range"):
        round_trip.decode([round_trip.vocab_size])
    with pytest.raises(TypeError, match="encode takes a str"):
        round_trip.encode(b"bytes")


# --- the same ids as the sentencepiece library ---------------------------------------------------
EXTRA_LINES = ["我喜欢吃苹果，也喜欢吃香蕉。", "東京は日本の首都です。", "Café naïve résumé déjà vu", "Ünïcödé ßtraße"]
SENTENCES = [
    "The function returns None.", "  leading spaces", "trailing spaces   ", "repeated   spaces\t\tand tabs",
    "   ", "", "\n\nnew lines\n", "我喜欢吃苹果", "東京タワー and 北京", "unseen: 😀 🎉 ☃ Ω ∑ א ب", "ｆｕｌｌｗｉｄｔｈ ① ﬁ ㍿",
    "e\u0301 vs é", "zero\u200bwidth", "control \x00\x07 chars", "<s> </s> <unk> <0x41> ▁ <sep> <cls>",
    "**********************", "============", "x" * 50, "1234567890 3.14159", "don't stop",
]
CONFIGS = {
    "bpe": {"model_type": "bpe", "vocab_size": 500},
    "bpe_byte_fallback": {"model_type": "bpe", "vocab_size": 700, "byte_fallback": True},
    "unigram": {"model_type": "unigram", "vocab_size": 500},
    "unigram_byte_fallback": {"model_type": "unigram", "vocab_size": 700, "byte_fallback": True},
    "llama2": {"model_type": "bpe", "vocab_size": 700, "byte_fallback": True, "normalization_rule_name": "identity",
               "remove_extra_whitespaces": False, "split_digits": True, "allow_whitespace_only_pieces": True},
    "unigram_user_defined": {"model_type": "unigram", "vocab_size": 600, "user_defined_symbols": ["<sep>", "我喜"],
                             "control_symbols": ["<cls>"], "pad_id": 3, "normalization_rule_name": "nfkc_cf"},
    "bpe_user_defined": {"model_type": "bpe", "vocab_size": 700, "user_defined_symbols": ["<sep>", "我喜"],
                         "control_symbols": ["<cls>"], "add_dummy_prefix": False, "byte_fallback": True},
}


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    """Python's documentation (the default corpus) and a few CJK and accented lines: enough distinct
    characters and words for vocabularies of 500-700 pieces (conftest's corpus has too few)."""
    path = tmp_path_factory.mktemp("spm") / "corpus.txt"
    path.write_text(default_corpus_text(40_000) + "\n".join(EXTRA_LINES * 5) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=list(CONFIGS))
def trained(request, corpus_file):
    """(sentencepiece's processor, tinylm's tokenizer) of a model the library trains on corpus_file."""
    spm = pytest.importorskip("sentencepiece", minversion="0.2.2")  # see SentencePieceTokenizer._unigram
    prefix = corpus_file.parent / request.param
    spm.SentencePieceTrainer.train(input=str(corpus_file), model_prefix=str(prefix), num_threads=1, minloglevel=2,
                                   **CONFIGS[request.param])
    path = f"{prefix}.model"
    return spm.SentencePieceProcessor(model_file=path), SentencePieceTokenizer.from_model_file(path)


def texts():
    """The hand-picked sentences, every line of the corpus, and 300 random mixtures of them."""
    lines = [line for line in (default_corpus_text(40_000) + "\n".join(EXTRA_LINES)).split("\n") if line.strip()]
    rng, parts = random.Random(0), list("ab c  de\t\n我喜欢東京é😀\u0301ｆ①ﬁ\u200b\x00") + ["<s>", "<sep>", "▁", "<0x41>"]
    mixtures = ["".join(rng.choice(parts) for _ in range(rng.randint(1, 30))) for _ in range(200)]
    mixtures += [" " * rng.randint(0, 3) + rng.choice(lines) + " " * rng.randint(0, 3) + rng.choice(parts)
                 for _ in range(100)]
    return SENTENCES + EXTRA_LINES + lines + mixtures


def test_the_same_ids_as_sentencepiece(trained):
    sp, tok = trained
    cases = texts()
    assert len(cases) > 800
    for text in cases:
        assert tok.normalize(text) == sp.normalize(text), text
        assert tok.encode(text) == sp.encode(text), text


def test_the_same_text_as_sentencepiece(trained):
    sp, tok = trained
    unknown = " \u2047 "  # what the library prints for the unknown id; tinylm prints "�"
    for text in texts():
        ids = sp.encode(text)
        assert tok.decode(ids) == sp.decode(ids).replace(unknown, UNK), text
    rng = random.Random(1)
    for _ in range(500):  # any ids, byte pieces that are no UTF-8 and control pieces included
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randint(0, 8))]
        assert tok.decode(ids) == sp.decode(ids).replace(unknown, UNK), ids


def test_the_same_special_ids_as_sentencepiece(trained):
    sp, tok = trained
    assert tok.vocab_size == sp.get_piece_size()
    assert tok.pieces == [sp.id_to_piece(i) for i in range(tok.vocab_size)]
    for ours, theirs in ((tok.unk_id, sp.unk_id()), (tok.bos_id, sp.bos_id()), (tok.eos_id, sp.eos_id()),
                         (tok.pad_id, sp.pad_id())):
        assert ours == (None if theirs < 0 else theirs)
    assert set(tok.special_tokens.values()) == {i for i in range(tok.vocab_size) if sp.is_control(i)}


def test_hand_built_models_as_sentencepiece_reads_them(tmp_path):
    spm = pytest.importorskip("sentencepiece", minversion="0.2.2")
    checks = {  # model -> texts
        model_proto(SPECIALS + [("a", -3.0, "normal"), ("b", -3.0, "normal"), ("c", -3.0, "normal"),
                                ("ab", -1.0, "unused"), ("abc", -0.5, "normal"), ("bc", -1.0, "normal")]):
            ["abc", "ab", "abab", "bcab c", "cabcab"],
        model_proto(SPECIALS + [("a", -1.0, "normal"), ("b", -1.0, "normal"), ("aa", -2.0, "normal"),
                                ("ab", -1.5, "normal"), ("<u>", -9.0, "user_defined")], model_type=1):
            ["ab", "aa", "aaa", "aab", "aaaa b", "a<u>a", "xyza"],
    }
    for data, cases in checks.items():
        sp = spm.SentencePieceProcessor(model_proto=data)
        tok = SentencePieceTokenizer.from_model_file(write(tmp_path, data))
        for text in cases:
            assert tok.encode(text) == sp.encode(text), text
