"""Local pretrained weights (tinylm.models.pretrained): tiny randomly initialised transformers
GPT-2 and Llama models, saved as Hugging Face folders, loaded into tinylm: float32 logits within
1e-4 and the same greedy generations. Skipped without transformers and PyTorch (CI has both)."""
import json
import os
import shutil

import numpy as np
import pytest

from tinylm.autograd import no_grad
from tinylm.cli import main
from tinylm.data import ByteBPETokenizer, default_corpus_text
from tinylm.generate import generate
from tinylm.models import GPT, Llama
from tinylm.models.pretrained import from_pretrained, pretrained_tokenizer
from tinylm.tensor import Tensor

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

EOT = "<|endoftext|>"
VOCAB = 300  # room for the 256 bytes, some merges and "<|endoftext|>", for the sampling tests


def save(model, folder):
    model.save_pretrained(folder)
    return folder


def gpt2(folder, **config):
    torch.manual_seed(0)
    config = {"vocab_size": VOCAB, "n_positions": 64, "n_embd": 32, "n_layer": 2, "n_head": 4,
              "initializer_range": 0.2, "bos_token_id": None, "eos_token_id": None, **config}
    return save(transformers.GPT2LMHeadModel(transformers.GPT2Config(**config)).eval(), folder)


def llama(folder, **config):
    torch.manual_seed(0)
    config = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
              "tie_word_embeddings": False, "initializer_range": 0.2, "bos_token_id": None, "eos_token_id": None,
              "pad_token_id": None, **config}
    return save(transformers.LlamaForCausalLM(transformers.LlamaConfig(**config)).eval(), folder)


def hf_model(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder).eval()


def max_logit_difference(folder, ids):
    """max |tinylm's logits - transformers'| on the token ids `ids` (B, T)."""
    with torch.no_grad():
        expected = hf_model(folder)(torch.tensor(ids)).logits.numpy()
    with no_grad():
        got = from_pretrained(folder)(Tensor(ids))[0].numpy()
    assert got.shape == expected.shape and got.dtype == np.float32
    return float(np.abs(got - expected).max())


def same_greedy_generation(folder, prompt, n=30):
    with torch.no_grad():
        expected = hf_model(folder).generate(torch.tensor(prompt), max_new_tokens=n, do_sample=False).numpy()
    got = np.asarray(generate(from_pretrained(folder), prompt, max_new_tokens=n, do_sample=False))
    assert len(set(expected[0, prompt.shape[1]:].tolist())) > 3  # not a run of one repeated token
    return np.array_equal(got, expected)


IDS = np.random.default_rng(0).integers(0, VOCAB, (2, 24))


@pytest.mark.parametrize("make, config", [
    (gpt2, {}),
    (llama, {}),                                                               # grouped-query attention, untied
    (llama, {"num_key_value_heads": 4, "tie_word_embeddings": True, "rope_theta": 500000.0}),
    (llama, {"num_key_value_heads": 1, "rms_norm_eps": 1e-5}),                 # multi-query attention
])
def test_same_logits_and_greedy_tokens_as_transformers(tmp_path, make, config):
    folder = make(tmp_path / "model", **config)
    assert max_logit_difference(folder, IDS) < 1e-4
    assert same_greedy_generation(folder, IDS[:1, :5])


def test_classmethods_and_what_they_build(tmp_path):
    model = GPT.from_pretrained(gpt2(tmp_path / "gpt2"))
    assert model.config.activation == "gelu_tanh" and model.config.block_size == 64 and not model.training
    assert model.lm_head.weight is model.wte.weight
    model = Llama.from_pretrained(llama(tmp_path / "llama"))
    assert model.config.n_kv_heads == 2 and model.lm_head.weight is not model.embed_tokens.weight
    with pytest.raises(ValueError, match="holds a 'llama' model, not a tinylm 'gpt' one"):
        GPT.from_pretrained(tmp_path / "llama")


def test_pytorch_model_bin_and_shards(tmp_path):
    folder = gpt2(tmp_path / "bin")
    hf = hf_model(folder)
    os.remove(folder / "model.safetensors")
    torch.save(hf.state_dict(), folder / "pytorch_model.bin")  # lm_head.weight included, tied
    assert max_logit_difference(folder, IDS) < 1e-4
    sharded = tmp_path / "shards"
    llama(tmp_path / "whole")
    hf_model(tmp_path / "whole").save_pretrained(sharded, max_shard_size="40KB")
    assert os.path.isfile(sharded / "model.safetensors.index.json")
    assert max_logit_difference(sharded, IDS) < 1e-4


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("make, changes, message", [
    (gpt2, {"activation_function": "relu"}, "activation_function 'relu' is not supported"),
    (gpt2, {"n_inner": 100}, "n_inner must be 4 n_embd"),
    (gpt2, {"n_ctx": 32}, "n_ctx must equal n_positions"),
    (gpt2, {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx = True is not supported"),
    (gpt2, {"model_type": "bert"}, "model_type 'bert' is not supported"),
    (gpt2, {"n_layer": 3}, "lack h.2.ln_1.weight"),
    (gpt2, {"n_layer": 1}, "the weights hold 12 tensors this model has no place for, e.g. h.1.attn.c_attn.bias"),
    (gpt2, {"n_embd": None}, "lacks n_embd"),
    (llama, {"hidden_act": "gelu"}, "hidden_act = 'gelu' is not supported"),
    (llama, {"rope_parameters": {"rope_type": "llama3", "factor": 8.0, "rope_theta": 500000.0}},
     "RoPE scaling .*llama3.* is not supported"),
    (llama, {"head_dim": 16}, "head_dim must be hidden_size / num_attention_heads"),
    (llama, {"tie_word_embeddings": True}, "lm_head.weight differs"),
])
def test_unsupported_settings_are_refused_in_one_line(tmp_path, capsys, make, changes, message):
    folder = make(tmp_path / "model")
    edit_config(folder, **changes)
    with pytest.raises(ValueError, match=message):
        from_pretrained(folder)
    capsys.readouterr()  # transformers' progress bar
    assert main(["sample", "--pretrained", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinylm sample: error:")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        from_pretrained(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        from_pretrained(tmp_path)
    folder = gpt2(tmp_path / "model")
    os.remove(folder / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="has no weights: expected model.safetensors or pytorch_model.bin"):
        from_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        from_pretrained(folder)


# --- with the folder's tokenizer: tinylm sample --pretrained ---------------------------------------

@pytest.fixture(scope="module")
def bpe():
    return ByteBPETokenizer.train(default_corpus_text(40_000), VOCAB, special_tokens=[EOT])


def cli_sample(folder, prompt, capsys, n=20):
    capsys.readouterr()
    assert main(["sample", "--pretrained", str(folder), "--prompt", prompt, "--no-do-sample",
                 "--max-new-tokens", str(n)]) == 0
    return capsys.readouterr().out


def hf_sample(folder, prompt, n=20):
    """transformers' greedy continuation of `prompt`, tokenized as its tokenizer does by default (a
    beginning-of-sequence token first where the folder asks for one), decoded without that token."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(prompt).input_ids
    before = len(ids) - len(tokenizer(prompt, add_special_tokens=False).input_ids)  # the tokens before the text
    with torch.no_grad():
        out = hf_model(folder).generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)
    return tokenizer.decode(out[0][before:])


def test_sample_gpt2_with_vocab_and_merges(tmp_path, capsys, bpe):
    folder = gpt2(tmp_path / "gpt2")
    bpe.save_files(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer", "eos_token": EOT}))
    assert pretrained_tokenizer(folder).special_tokens == {EOT: VOCAB - 1}
    assert GPT.from_pretrained(folder).tokenizer.encode(f"the{EOT}") == bpe.encode(f"the{EOT}")
    prompt = "The function returns"
    assert cli_sample(folder, prompt, capsys) == hf_sample(folder, prompt) + "\n"


def write_tokenizer_json(bpe, path):
    """`bpe` as Hugging Face tokenizers' tokenizer.json, written by the tokenizers library."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab_json, merges_txt = bpe.save_files(path.parent)
    model = tokenizers.models.BPE.from_file(str(vocab_json), str(merges_txt))
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    tokenizer.add_special_tokens([EOT])
    os.remove(vocab_json)
    os.remove(merges_txt)
    tokenizer.save(str(path))
    return tokenizer


def test_sample_llama_with_tokenizer_json(tmp_path, capsys, bpe):
    folder = llama(tmp_path / "llama")
    hf_tokenizer = write_tokenizer_json(bpe, folder / "tokenizer.json")
    tok = ByteBPETokenizer.from_tokenizer_json(folder / "tokenizer.json")
    for text in (default_corpus_text(5_000), f"don't\n\n  stop{EOT} 我 😀 12345"):
        assert tok.encode(text) == hf_tokenizer.encode(text).ids == bpe.encode(text)
    prompt = "Whitespace and  indentation:\n\n  x"
    assert cli_sample(folder, prompt, capsys) == hf_sample(folder, prompt) + "\n"


# Llama 2's tokenizer_config.json (its tokens): <s> before every text, no </s> after it
LLAMA2_TOKENIZER_CONFIG = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                           "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
# and the post-processor of the tokenizer.json beside its tokenizer.model
LLAMA2_POST_PROCESSOR = {"type": "TemplateProcessing",
                         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}}],
                         "pair": [],  # (two texts: not read by tinylm)
                         "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}


def test_sample_llama_with_sentencepiece_model(tmp_path, capsys):
    """Llama 2's kind of tokenizer: a SentencePiece BPE with byte fallback, in tokenizer.model, and
    <s> before every text (tokenizer_config.json's add_bos_token); transformers tokenizes the prompt
    its default way (transformers 5 reads tokenizer.model with protobuf)."""
    from tinylm.checkpoint import load_model, save_model
    from tinylm.data import UNK, SentencePieceTokenizer

    spm = pytest.importorskip("sentencepiece")
    pytest.importorskip("google.protobuf")
    folder = llama(tmp_path / "llama", vocab_size=400)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(default_corpus_text(40_000), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"), model_type="bpe",
                                   vocab_size=400, byte_fallback=True, normalization_rule_name="identity",
                                   remove_extra_whitespaces=False, num_threads=1, minloglevel=2)
    (folder / "tokenizer_config.json").write_text(json.dumps(LLAMA2_TOKENIZER_CONFIG))
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    tok = pretrained_tokenizer(folder)
    prompt = "Whitespace and  indentation:\n\n  x 我"
    ids = transformers.AutoTokenizer.from_pretrained(folder)(prompt).input_ids
    assert isinstance(tok, SentencePieceTokenizer) and tok.input_ids(prompt) == ids == [1] + sp.encode(prompt)
    with torch.no_grad():
        out = hf_model(folder).generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False)
    expected = tok.decode(out[0].tolist())
    assert expected == sp.decode(out[0].tolist()).replace(" \u2047 ", UNK)  # the unknown id: "�" in tinylm
    assert cli_sample(folder, prompt, capsys) == expected + "\n"
    model = from_pretrained(folder)
    save_model(tmp_path / "llama.ckpt", model)
    assert load_model(tmp_path / "llama.ckpt")[0].tokenizer.to_dict() == tok.to_dict()
    assert cli_sample_ckpt(tmp_path / "llama.ckpt", prompt, capsys) == expected + "\n"
    # Llama 2's folders have a tokenizer.json beside it, which ByteBPETokenizer refuses; its
    # post-processor puts <s> first too
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "byte_fallback": True},
                                                       "post_processor": LLAMA2_POST_PROCESSOR}))
    assert pretrained_tokenizer(folder).to_dict() == tok.to_dict()


def test_sample_eval_llama_with_a_beginning_of_text_token(tmp_path, capsys, bpe):
    """Llama 3's kind of tokenizer.json: its post-processor puts a token before every text (here
    <|endoftext|>, in Llama 3 <|begin_of_text|>). The prompt starts with it, as in transformers; an
    empty prompt is that token alone; the samples are printed without it; a checkpoint keeps it, and
    tinylm eval reads a text after it."""
    from tinylm.checkpoint import load_model, save_model
    from tinylm.metrics import evaluate_loss

    processors = pytest.importorskip("tokenizers").processors
    folder = llama(tmp_path / "llama")
    hf_tokenizer = write_tokenizer_json(bpe, folder / "tokenizer.json")
    template = processors.TemplateProcessing(single=f"{EOT} $A", pair=f"{EOT} $A {EOT}:1 $B:1",
                                             special_tokens=[(EOT, VOCAB - 1)])
    hf_tokenizer.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    hf_tokenizer.save(str(folder / "tokenizer.json"))
    tok = pretrained_tokenizer(folder)
    prompt = "The function returns"
    assert tok.input_ids(prompt) == transformers.AutoTokenizer.from_pretrained(folder)(prompt).input_ids \
        == [VOCAB - 1] + bpe.encode(prompt)
    for text in (prompt, ""):
        assert cli_sample(folder, text, capsys) == hf_sample(folder, text) + "\n"
    assert not cli_sample(folder, "", capsys).startswith(EOT)
    save_model(tmp_path / "llama.ckpt", from_pretrained(folder))
    model, _ = load_model(tmp_path / "llama.ckpt")
    assert model.tokenizer.to_dict() == tok.to_dict() and model.tokenizer.add_bos
    assert cli_sample_ckpt(tmp_path / "llama.ckpt", prompt, capsys) == cli_sample(folder, prompt, capsys)
    text = default_corpus_text(1_000)
    (tmp_path / "text.txt").write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(tmp_path / "llama.ckpt"), "--data", str(tmp_path / "text.txt")]) == 0
    loss, n = evaluate_loss(model, [VOCAB - 1] + bpe.encode(text))
    assert n == len(bpe.encode(text))  # every token of the text predicted, the first one from <|endoftext|>
    assert f"{n} tokens predicted, loss {loss:.4f} nats/token" in capsys.readouterr().out


def test_an_empty_prompt_without_a_beginning_of_sequence_token(tmp_path, capsys, bpe):
    folder = gpt2(tmp_path / "gpt2")
    bpe.save_files(folder)  # GPT-2 puts nothing before a text
    capsys.readouterr()
    assert main(["sample", "--pretrained", str(folder), "--prompt", ""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the prompt is empty and the tokenizer has no beginning-of-sequence token" in err
    (folder / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True, "bos_token": EOT}))
    assert cli_sample(folder, "", capsys) == hf_sample(folder, "") + "\n"


def test_tokenizers_tinylm_does_not_read(tmp_path, capsys, bpe):
    folder = llama(tmp_path / "llama")
    (folder / "tokenizer.model").write_bytes(b"\x0a\x05")  # a broken SentencePiece file
    assert from_pretrained(folder).tokenizer is None
    capsys.readouterr()
    assert main(["sample", "--pretrained", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tokenizer.model is not a SentencePiece model" in err
    os.remove(folder / "tokenizer.model")
    (folder / "vocab.txt").write_text("[UNK]\n")
    with pytest.raises(ValueError, match="has no tokenizer tinylm reads .*; it has vocab.txt, which tinylm does not"):
        pretrained_tokenizer(folder)
    write_tokenizer_json(bpe, folder / "tokenizer.json")
    d = json.loads((folder / "tokenizer.json").read_text())
    llama3 = {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": r"\p{N}{1,3}"},
                                                     "behavior": "Isolated", "invert": False},
                                                    {"type": "ByteLevel", "use_regex": False}]}
    for change, message in (({"pre_tokenizer": llama3}, "its pre-tokenizer is 'Sequence'"),
                            ({"normalizer": {"type": "NFC"}}, "it has a normalizer \\('NFC'\\)"),
                            ({"model": {**d["model"], "byte_fallback": True}}, "sets byte_fallback = True"),
                            ({"model": {**d["model"], "type": "Unigram"}}, "the model is 'Unigram', not 'BPE'")):
        (folder / "tokenizer.json").write_text(json.dumps({**d, **change}))
        with pytest.raises(ValueError, match=message):
            pretrained_tokenizer(folder)
    shutil.rmtree(folder)


def test_a_pretrained_model_saved_as_a_checkpoint(tmp_path, capsys, bpe):
    from tinylm.checkpoint import load_model, save_model

    folder = gpt2(tmp_path / "gpt2")
    bpe.save_files(folder)
    model = GPT.from_pretrained(folder)
    save_model(tmp_path / "gpt2.ckpt", model)
    loaded, _ = load_model(tmp_path / "gpt2.ckpt")
    assert loaded.config == model.config and loaded.tokenizer.to_dict() == model.tokenizer.to_dict()
    with no_grad():
        np.testing.assert_array_equal(loaded(Tensor(IDS))[0].numpy(), model(Tensor(IDS))[0].numpy())
    prompt = "The function returns"
    assert cli_sample(folder, prompt, capsys) == cli_sample_ckpt(tmp_path / "gpt2.ckpt", prompt, capsys)


def cli_sample_ckpt(path, prompt, capsys, n=20):
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(path), "--prompt", prompt, "--no-do-sample", "--max-new-tokens", str(n)]) == 0
    return capsys.readouterr().out
