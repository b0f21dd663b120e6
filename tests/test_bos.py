"""The beginning-of-sequence token a pretrained model expects: Tokenizer.input_ids, set by
tinylm.models.pretrained.bos_of_folder from a Hugging Face folder. tinylm's own tokenizers add
nothing; the setting survives to_dict and a checkpoint; the folder's files are read as
transformers 5 reads them, and the prompt ids equal transformers.AutoTokenizer's for a Llama 2-style
SentencePiece folder, Llama 3-style tokenizer.json folders and GPT-2 folders (those comparisons
skip without transformers; the sampling comparisons are in test_pretrained.py)."""
import json
import os
import shutil

import pytest

from tinylm.checkpoint import load_model, save_model
from tinylm.data import (ByteBPETokenizer, CharTokenizer, SentencePieceTokenizer, Tokenizer, WordTokenizer,
                         default_corpus_text)
from tinylm.models import build_model
from tinylm.models.pretrained import bos_of_folder, pretrained_tokenizer

EOT, BOT = "<|endoftext|>", "<|begin_of_text|>"
TEXTS = ["Hello world", "", "Whitespace and  indentation:\n\n  x 我", "don't stop 12345"]


@pytest.fixture(scope="module")
def bpe():
    """A byte-level BPE with GPT-2's <|endoftext|> and Llama 3's two special tokens."""
    return ByteBPETokenizer.train(default_corpus_text(40_000), 300, special_tokens=[EOT, BOT, "<|end_of_text|>"])


def write(folder, name, d):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(d))
    return folder


# --- the mechanism -------------------------------------------------------------------------------

def test_tinylms_own_tokenizers_add_nothing(bpe):
    text = default_corpus_text(2_000)
    for tok in (CharTokenizer.train(text), WordTokenizer.train(text), bpe):
        assert not tok.add_bos and tok.input_ids("the cat") == tok.encode("the cat") and tok.input_ids("") == []
        d = tok.to_dict()
        assert "add_bos" not in d and "bos_id" not in d  # the dicts checkpoints already hold, unchanged
        assert not Tokenizer.from_dict(d).add_bos


def test_set_bos_input_ids_and_the_dict(bpe):
    tok = Tokenizer.from_dict(bpe.to_dict())
    bos = tok.special_tokens[BOT]
    assert tok.set_bos(bos) is tok and tok.add_bos and tok.bos_id == bos
    assert tok.input_ids("the cat") == [bos] + bpe.encode("the cat") and tok.input_ids("") == [bos]
    assert tok.encode("the cat") == bpe.encode("the cat")  # encode itself adds nothing
    d = tok.to_dict()
    assert d["add_bos"] is True and d["bos_id"] == bos
    again = Tokenizer.from_dict(json.loads(json.dumps(d)))
    assert again.add_bos and again.bos_id == bos and again.to_dict() == d
    tok.set_bos(None)
    assert not tok.add_bos and tok.input_ids("x") == tok.encode("x") and "add_bos" not in tok.to_dict()
    for bad in (-1, tok.vocab_size, True, "1", 2.0):
        with pytest.raises(ValueError, match=r"bos_id must be a token id in 0\.\.299"):
            tok.set_bos(bad)
    with pytest.raises(ValueError, match="'add_bos' must be true or false, got 'yes'"):
        Tokenizer.from_dict({**d, "add_bos": "yes"})
    with pytest.raises(ValueError, match="'add_bos' is true but there is no 'bos_id'"):
        Tokenizer.from_dict({k: v for k, v in d.items() if k != "bos_id"})
    with pytest.raises(ValueError, match="bos_id must be a token id"):
        Tokenizer.from_dict({**d, "bos_id": 300})


def test_kept_through_a_checkpoint(tmp_path, bpe):
    tok = Tokenizer.from_dict(bpe.to_dict()).set_bos(bpe.special_tokens[BOT])
    model = build_model("llama", tokenizer=tok, vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
                        n_embd=16)
    save_model(tmp_path / "m.ckpt", model)
    loaded = load_model(tmp_path / "m.ckpt")[0].tokenizer
    assert loaded.add_bos and loaded.to_dict() == tok.to_dict()
    assert loaded.input_ids("the cat") == tok.input_ids("the cat")


# --- what a folder says, as transformers reads it -------------------------------------------------

def gpt2_folder(folder, bpe, config=None, special_tokens_map=None):
    """GPT-2's files, with a tokenizer_config.json and special_tokens_map.json when given."""
    folder.mkdir(exist_ok=True)
    bpe.save_files(folder)
    write(folder, "config.json", {"model_type": "gpt2"})
    if config is not None:
        write(folder, "tokenizer_config.json", {"tokenizer_class": "GPT2Tokenizer", **config})
    if special_tokens_map is not None:
        write(folder, "special_tokens_map.json", special_tokens_map)
    return folder


@pytest.mark.parametrize("config, special_tokens_map, expected", [
    (None, None, None),                                                   # no tokenizer_config.json: none
    ({"eos_token": EOT}, None, None),                                     # add_bos_token missing: false
    ({"add_bos_token": False, "bos_token": EOT}, None, None),
    ({"add_bos_token": True}, None, EOT),                                 # GPT2Tokenizer's bos_token
    ({"add_bos_token": True, "bos_token": BOT}, None, BOT),
    ({"add_bos_token": True, "bos_token": {"content": BOT, "special": True}}, None, BOT),  # an AddedToken
    ({"add_bos_token": True, "bos_token": EOT}, {"bos_token": BOT}, BOT),  # special_tokens_map.json first
    ({"add_bos_token": True, "bos_token": None}, None, None),             # no bos_token: none
    ({"add_bos_token": True, "add_eos_token": True}, None, EOT),          # nothing after the text
])
def test_tokenizer_config(tmp_path, bpe, config, special_tokens_map, expected):
    folder = gpt2_folder(tmp_path / "gpt2", bpe, config, special_tokens_map)
    tok = pretrained_tokenizer(folder)
    assert tok.add_bos == (expected is not None)
    if expected is not None:
        assert tok.bos_id == bpe.special_tokens[expected] and tok.input_ids("hi") == [tok.bos_id] + bpe.encode("hi")


def template(before=(), after=()):
    """A TemplateProcessing post-processor as the tokenizers library writes it: `before`, $A, `after`."""
    special = lambda t: {"SpecialToken": {"id": t, "type_id": 0}}  # noqa: E731
    ids = {BOT: 257, "<s>": 1, "</s>": 2}
    text = {"Sequence": {"id": "A", "type_id": 0}}
    return {"type": "TemplateProcessing", "single": [*map(special, before), text, *map(special, after)], "pair": [],
            "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in (*before, *after)}}


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}


@pytest.mark.parametrize("processor, expected", [
    (None, None),
    (BYTE_LEVEL, None),
    (template([BOT]), 257),
    ({"type": "Sequence", "processors": [BYTE_LEVEL, template([BOT])]}, 257),   # Llama 3's
    (template(["<s>"], ["</s>"]), 1),                                           # the </s> after: not added
    (template([], ["</s>"]), None),
    ({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1], "trim_offsets": True}, 1),
])
def test_tokenizer_json_post_processor(tmp_path, bpe, processor, expected):
    folder = write(tmp_path / "m", "tokenizer.json", {"post_processor": processor})
    write(folder, "tokenizer_config.json", {"add_bos_token": expected is None, "bos_token": EOT})  # not read
    assert bos_of_folder(folder, bpe) == expected


@pytest.mark.parametrize("file, content, message", [
    ("tokenizer.json", {"post_processor": {"type": "BlingFire"}},
     r"tokenizer.json: its post_processor 'BlingFire' is not read by tinylm \(TemplateProcessing, Sequence"),
    ("tokenizer.json", {"post_processor": template(["<s>", BOT])},
     r"tokenizer.json: its post_processor puts 2 tokens before the text, \[1, 257\]; tinylm puts one"),
    ("tokenizer.json", {"post_processor": {**template([BOT]), "special_tokens": {BOT: {"ids": [300]}}}},
     "tokenizer.json: its post_processor puts id 300 before the text, which is not in the vocabulary of 300"),
    ("tokenizer.json", {"post_processor": {**template(["<s>"]), "special_tokens": {}}},
     "tokenizer.json: its post_processor is not laid out as the tokenizers library writes it"),
    ("tokenizer.json", {"post_processor": {"type": "TemplateProcessing", "single": []}},
     "tokenizer.json: its TemplateProcessing's single template has no \\$A"),
    ("tokenizer_config.json", {"add_bos_token": "yes"},
     "tokenizer_config.json: add_bos_token must be true or false, got 'yes'"),
    ("tokenizer_config.json", {"add_bos_token": True, "bos_token": "<bos>"},
     "tokenizer_config.json: add_bos_token is true, but its bos_token '<bos>' is not a token of the vocabulary"),
    ("tokenizer_config.json", {"add_bos_token": True, "bos_token": 1}, "tokenizer_config.json: bos_token must be a "
     "string, got 1"),
    ("tokenizer_config.json", [], "tokenizer_config.json must hold a JSON object"),
])
def test_what_tinylm_does_not_read_is_one_line(tmp_path, bpe, file, content, message):
    folder = write(tmp_path / "m", file, content)
    with pytest.raises(ValueError, match=message):
        bos_of_folder(folder, bpe)
    (folder / file).write_text("{")
    with pytest.raises(ValueError, match=f"{file} is not a .*: it is not valid JSON"):
        bos_of_folder(folder, bpe)


def test_sentencepiece_folders_default_to_its_bos_piece(tmp_path):
    """A tokenizer.model folder: add_bos_token (Llama 2's tokenizer_config.json says true), and
    bos_token missing is "<s>" (LlamaTokenizer's default): SentencePiece's own <s>, id 1."""
    pieces = [["<unk>", 0.0, "unknown"], ["<s>", 0.0, "control"], ["</s>", 0.0, "control"], ["▁", -1.0, "normal"],
              ["a", -2.0, "normal"]]
    folder = tmp_path / "m"
    write(folder, "tokenizer_config.json", {"add_bos_token": True})
    tok = SentencePieceTokenizer(pieces, bos_id=1, eos_id=2)
    assert bos_of_folder(folder, tok) == 1
    write(folder, "tokenizer_config.json", {"add_bos_token": True, "bos_token": "a"})  # any piece of the model
    assert bos_of_folder(folder, tok) == 4
    (folder / "tokenizer_config.json").unlink()
    assert bos_of_folder(folder, tok) is None


# --- the same ids as transformers -----------------------------------------------------------------

def hf_ids(folder, text):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(folder)(text).input_ids


def same_ids_as_transformers(folder, texts, eos_after=None):
    """tinylm's input_ids for each text are transformers' (which end with eos_after, when given,
    where transformers adds an end-of-sequence token that tinylm leaves out)."""
    tok = pretrained_tokenizer(folder)
    for text in texts:
        expected = hf_ids(folder, text)
        if eos_after is not None:
            assert expected[-1] == eos_after
            expected = expected[:-1]
        assert tok.input_ids(text) == expected, text
    return tok


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    """tokenizer.model: a SentencePiece BPE with byte fallback, as Llama 2's (<unk> 0, <s> 1, </s> 2).
    transformers 5 reads it with protobuf."""
    spm = pytest.importorskip("sentencepiece")
    pytest.importorskip("transformers")
    pytest.importorskip("google.protobuf")
    folder = tmp_path_factory.mktemp("sp")
    (folder / "corpus.txt").write_text(default_corpus_text(40_000), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(folder / "corpus.txt"), model_prefix=str(folder / "tokenizer"),
                                   model_type="bpe", vocab_size=400, byte_fallback=True,
                                   normalization_rule_name="identity", remove_extra_whitespaces=False,
                                   num_threads=1, minloglevel=2)
    return folder / "tokenizer.model"


LLAMA2 = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
          "eos_token": "</s>", "unk_token": "<unk>"}  # Llama 2's tokenizer_config.json, its tokens


@pytest.mark.parametrize("config, bos, eos", [
    (LLAMA2, True, False),
    ({k: v for k, v in LLAMA2.items() if k not in ("add_bos_token", "bos_token")}, False, False),  # 5's default
    (None, False, False),                                                  # no tokenizer_config.json
    ({**LLAMA2, "add_bos_token": False}, False, False),
    ({**LLAMA2, "add_eos_token": True}, True, True),                       # </s> is not added by tinylm
])
def test_llama2_sentencepiece_folder(tmp_path, sentencepiece_model, config, bos, eos):
    import transformers

    if "add_bos_token" not in (config or {}) and int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4's Llama tokenizers add <s> where add_bos_token is missing; tinylm follows 5")
    folder = write(tmp_path / "llama2", "config.json", {"model_type": "llama"})
    shutil.copy(sentencepiece_model, folder / "tokenizer.model")
    if config is not None:
        write(folder, "tokenizer_config.json", config)
    texts = [t for t in TEXTS if not t.startswith(" ")]  # a leading space: transformers' conversion differs
    tok = same_ids_as_transformers(folder, texts, eos_after=2 if eos else None)
    assert isinstance(tok, SentencePieceTokenizer) and tok.add_bos == bos
    if bos:
        assert tok.input_ids("") == [1]


def llama3_folder(folder, bpe, processor, config=None):
    """A tokenizer.json written by the tokenizers library: `bpe` and its special tokens, with
    `processor` (a tokenizers.processors object, or None) as its post-processor."""
    tokenizers = pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    folder.mkdir()
    vocab_json, merges_txt = bpe.save_files(folder)
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(str(vocab_json), str(merges_txt)))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.add_special_tokens(list(bpe.special_tokens))
    if processor is not None:
        tokenizer.post_processor = processor
    os.remove(vocab_json)
    os.remove(merges_txt)
    tokenizer.save(str(folder / "tokenizer.json"))
    write(folder, "config.json", {"model_type": "llama"})
    if config is not None:
        write(folder, "tokenizer_config.json", config)
    return folder


def llama3_template(bpe, after=()):
    processors = pytest.importorskip("tokenizers").processors
    single = " ".join([BOT, "$A", *after])
    return processors.TemplateProcessing(single=single, pair=f"{single} {BOT}:1 $B:1",
                                         special_tokens=[(t, bpe.special_tokens[t]) for t in (BOT, *after)])


@pytest.mark.parametrize("make, config, bos", [
    (lambda bpe: llama3_template(bpe), None, True),
    (lambda bpe: pytest.importorskip("tokenizers").processors.Sequence(   # Llama 3's own post-processor
        [pytest.importorskip("tokenizers").processors.ByteLevel(trim_offsets=False), llama3_template(bpe)]),
     {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOT, "eos_token": "<|end_of_text|>"}, True),
    (lambda bpe: llama3_template(bpe), {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False},
     True),  # transformers follows tokenizer.json's post-processor
    (lambda bpe: None, {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True, "bos_token": BOT},
     False),
    (lambda bpe: pytest.importorskip("tokenizers").processors.ByteLevel(trim_offsets=False), None, False),
])
def test_llama3_tokenizer_json_folder(tmp_path, bpe, make, config, bos):
    folder = llama3_folder(tmp_path / "llama3", bpe, make(bpe), config)
    tok = same_ids_as_transformers(folder, TEXTS + [default_corpus_text(3_000)])
    assert tok.add_bos == bos and (not bos or tok.bos_id == bpe.special_tokens[BOT])


def test_llama3_template_with_an_end_token(tmp_path, bpe):
    folder = llama3_folder(tmp_path / "llama3", bpe, llama3_template(bpe, after=["<|end_of_text|>"]))
    same_ids_as_transformers(folder, TEXTS, eos_after=bpe.special_tokens["<|end_of_text|>"])


@pytest.mark.parametrize("config", [None, {"add_bos_token": False}, {"add_bos_token": True},
                                    {"add_bos_token": True, "bos_token": BOT}])
def test_gpt2_folder(tmp_path, bpe, config):
    pytest.importorskip("transformers")
    folder = gpt2_folder(tmp_path / "gpt2", bpe, config)
    tok = same_ids_as_transformers(folder, TEXTS)
    assert tok.add_bos == bool(config and config["add_bos_token"])


def test_same_ids_through_a_checkpoint(tmp_path, sentencepiece_model):
    folder = write(tmp_path / "llama2", "config.json", {"model_type": "llama"})
    shutil.copy(sentencepiece_model, folder / "tokenizer.model")
    write(folder, "tokenizer_config.json", LLAMA2)
    tok = pretrained_tokenizer(folder)
    model = build_model("llama", tokenizer=tok, vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2,
                        n_embd=16)
    save_model(tmp_path / "m.ckpt", model)
    loaded = load_model(tmp_path / "m.ckpt")[0].tokenizer
    for text in TEXTS[:3]:
        assert loaded.input_ids(text) == hf_ids(folder, text) == [1] + tok.encode(text)
