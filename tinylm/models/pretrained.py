"""Local pretrained weights: a Hugging Face-format folder loaded into tinylm's GPT or Llama.

    model = GPT.from_pretrained("path/to/gpt2")       # config.json's model_type "gpt2"
    model = Llama.from_pretrained("path/to/llama")    # model_type "llama"
    model = from_pretrained("path/to/either")

The folder holds config.json and the weights: model.safetensors (read with the safetensors
package's NumPy API), pytorch_model.bin (read with PyTorch, when installed), or either split
into shards listed by a *.index.json. Nothing is downloaded. Every weight becomes float32.
model.tokenizer is the folder's tokenizer when tinylm can read it (pretrained_tokenizer says
why not, otherwise). The model comes in eval mode, as Hugging Face's from_pretrained gives it.

Names, Hugging Face -> tinylm:

GPT-2 (GPT2LMHeadModel; GPT2Model's files lack the "transformer." prefix):
    transformer.wte / wpe / ln_f / h.N.ln_1 / h.N.ln_2        the same names
    transformer.h.N.attn.c_attn.weight (E, 3E)  -> h.N.attn.c_attn.weight (3E, E), transposed:
        GPT-2's Conv1D computes x W + b with W (in, out); tinylm's Linear x Wᵀ + b, W (out, in).
        c_attn is q, k and v fused, in that order, as tinylm's c_attn.
    attn.c_proj, mlp.c_fc, mlp.c_proj                          transposed the same way
    lm_head.weight                                             tied to wte (GPT-2 always ties)
    attn.bias, attn.masked_bias                                the causal mask, not weights: dropped

Llama (LlamaForCausalLM): the names without the "model." prefix, the matrices as they are
(nn.Linear's layout in both). Hugging Face's checkpoints already pair RoPE's features in the
"rotate_half" layout (i with i + d/2) that tinylm's RotaryEmbedding uses, so the q_proj and
k_proj rows need no permutation (Meta's original files, interleaved, would).
"""
import json
import os

import numpy as np

from ..files import read_json

# config.json fields read into the config, per model type (the others are checked below)
_GPT2_FIELDS = {"vocab_size": "vocab_size", "n_positions": "block_size", "n_layer": "n_layer", "n_head": "n_head",
                "n_embd": "n_embd", "layer_norm_epsilon": "layer_norm_eps"}
_LLAMA_FIELDS = {"vocab_size": "vocab_size", "max_position_embeddings": "block_size",
                 "num_hidden_layers": "n_layer", "num_attention_heads": "n_head", "hidden_size": "n_embd",
                 "num_key_value_heads": "n_kv_heads", "intermediate_size": "intermediate_size",
                 "rms_norm_eps": "rms_norm_eps"}
_GELU = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def read_config(path):
    """config.json of the folder at `path`, as a dict."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise (NotADirectoryError if os.path.exists(path) else FileNotFoundError)(
            f"{path} is not a folder: a pretrained model is a folder with config.json and its weights")
    file = os.path.join(path, "config.json")
    config = read_json(file, "model config", missing=f"{path} has no config.json: not a Hugging Face model folder")
    if not isinstance(config, dict):
        raise ValueError(f"{file} must hold a JSON object")
    return config


def read_weights(path):
    """name -> float32 NumPy array of every tensor in the folder's weights: model.safetensors,
    pytorch_model.bin, or the shards their .index.json lists (the first of these found)."""
    path = os.fspath(path)
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            continue
        if not name.endswith(".index.json"):
            return _read_weight_file(file)
        index = read_json(file, "weights index")
        try:
            shards = sorted(set(index["weight_map"].values()))
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{file} is not a weights index (a JSON object with a 'weight_map'): {e}") from None
        weights = {}
        for shard in shards:
            weights.update(_read_weight_file(os.path.join(path, shard)))
        return weights
    raise FileNotFoundError(f"{path} has no weights: expected model.safetensors or pytorch_model.bin "
                            "(or their sharded .index.json)")


def _read_weight_file(file):
    if not os.path.isfile(file):
        raise FileNotFoundError(f"weights file {file} does not exist")
    if file.endswith(".safetensors"):
        try:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file
        except ImportError:
            raise RuntimeError(f"reading {file} needs the safetensors package: pip install safetensors") from None
        try:
            arrays = load_file(file)
        except TypeError as e:  # NumPy has no bfloat16
            if "bfloat16" not in str(e):
                raise
            arrays = _read_with_torch(file, "its bfloat16 tensors, which NumPy cannot hold,")
        except SafetensorError as e:  # a damaged file
            raise ValueError(f"{file} is not a readable safetensors file ({type(e).__name__}: {e})") from None
    else:
        arrays = _read_with_torch(file, "a pytorch_model.bin file")
    return {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}


def _read_with_torch(file, what):
    """The tensors of `file` as float32 NumPy arrays, read by PyTorch."""
    try:
        import torch
    except ImportError:
        raise RuntimeError(f"reading {what} ({file}) needs PyTorch (pip install torch); or save the model as "
                           "float32 or float16 model.safetensors") from None
    if file.endswith(".safetensors"):
        from safetensors.torch import load_file

        tensors = load_file(file)
    else:
        try:
            tensors = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as e:  # torch's errors for a file that is not a state dict
            raise ValueError(f"{file} is not a readable PyTorch state dict ({type(e).__name__}: {e})") from None
    return {k: v.float().numpy() for k, v in tensors.items()}


# --- GPT-2 ---------------------------------------------------------------------------------------
def gpt_config(hf, where="config.json"):
    """tinylm's GPTConfig fields for a GPT-2 config.json; a setting tinylm's GPT does not compute
    is refused, named."""
    fields = _fields(hf, _GPT2_FIELDS, where, {"n_positions": 1024, "layer_norm_epsilon": 1e-5})
    activation = hf.get("activation_function", "gelu_new")
    if activation not in _GELU:
        raise ValueError(f"{where}: activation_function {activation!r} is not supported; expected one of "
                         f"{sorted(_GELU)}")
    n_ctx = hf.get("n_ctx", fields["block_size"])
    refused = {"n_ctx": n_ctx != fields["block_size"],
               "n_inner": hf.get("n_inner") not in (None, 4 * fields["n_embd"]),
               "scale_attn_weights": not hf.get("scale_attn_weights", True),
               "scale_attn_by_inverse_layer_idx": hf.get("scale_attn_by_inverse_layer_idx", False),
               "add_cross_attention": hf.get("add_cross_attention", False),
               "tie_word_embeddings": not hf.get("tie_word_embeddings", True)}
    _refuse(hf, refused, where, {"n_ctx": f"n_ctx must equal n_positions ({fields['block_size']})",
                                 "n_inner": f"n_inner must be 4 n_embd ({4 * fields['n_embd']}) or null"})
    # one dropout probability in tinylm's GPT: the residual one (GPT-2 uses 0.1 for all three)
    return {**fields, "activation": _GELU[activation], "bias": True, "dropout": hf.get("resid_pdrop", 0.1)}


def gpt_state(weights, config):
    """tinylm's GPT state dict from GPT-2's tensors (see the module docstring)."""
    weights = _strip(weights, "transformer.")
    state, used = {}, set()

    def take(name, transpose=False):
        if name not in weights:
            raise ValueError(f"the weights lack {name} (or transformer.{name}), which a GPT-2 with "
                             f"{config['n_layer']} layers has")
        used.add(name)
        return weights[name].T if transpose else weights[name]

    for name in ("wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"):
        state[name] = take(name)
    for i in range(config["n_layer"]):
        for norm in ("ln_1", "ln_2"):
            for p in ("weight", "bias"):
                state[f"h.{i}.{norm}.{p}"] = take(f"h.{i}.{norm}.{p}")
        for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
            state[f"h.{i}.{layer}.weight"] = take(f"h.{i}.{layer}.weight", transpose=True)  # Conv1D
            state[f"h.{i}.{layer}.bias"] = take(f"h.{i}.{layer}.bias")
    if "lm_head.weight" in weights:
        used.add("lm_head.weight")
        if not np.array_equal(weights["lm_head.weight"], state["wte.weight"]):
            raise ValueError("lm_head.weight differs from wte.weight: tinylm's GPT ties them, as GPT-2 does")
    state["lm_head.weight"] = state["wte.weight"]
    mask = {k for k in weights if k.endswith((".attn.bias", ".attn.masked_bias"))}
    _no_leftovers(weights, used | mask)
    return state


# --- Llama ---------------------------------------------------------------------------------------
def llama_config(hf, where="config.json"):
    """tinylm's LlamaConfig fields for a Llama config.json; a setting tinylm's Llama does not
    compute is refused, named."""
    fields = _fields(hf, _LLAMA_FIELDS, where, {"num_key_value_heads": None, "rms_norm_eps": 1e-6,
                                                "max_position_embeddings": 2048})
    rope = hf.get("rope_parameters") or {}  # transformers 5 keeps rope_theta here
    theta = hf.get("rope_theta", rope.get("rope_theta", 10000.0))
    scaling = hf.get("rope_scaling") or ({k: v for k, v in rope.items() if k != "rope_theta"} or None)
    head_dim = hf.get("head_dim")
    refused = {"hidden_act": hf.get("hidden_act", "silu") != "silu",
               "attention_bias": hf.get("attention_bias", False),
               "mlp_bias": hf.get("mlp_bias", False),
               "head_dim": head_dim not in (None, fields["n_embd"] // fields["n_head"]),
               "rope_scaling": scaling not in (None, {"rope_type": "default"}, {"type": "default"})}
    _refuse(hf, refused, where, {"head_dim": f"head_dim must be hidden_size / num_attention_heads "
                                             f"({fields['n_embd'] // fields['n_head']})",
                                 "rope_scaling": f"RoPE scaling {scaling} is not supported, only plain RoPE"})
    return {**fields, "rope_theta": float(theta), "tie_weights": bool(hf.get("tie_word_embeddings", False)),
            "dropout": float(hf.get("attention_dropout", 0.0))}


def llama_state(weights, config):
    """tinylm's Llama state dict from Hugging Face Llama's tensors (see the module docstring)."""
    weights = _strip(weights, "model.")
    names = ["embed_tokens.weight", "norm.weight"]
    for i in range(config["n_layer"]):
        names += [f"layers.{i}.self_attn.{p}_proj.weight" for p in "qkvo"]
        names += [f"layers.{i}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
        names += [f"layers.{i}.input_layernorm.weight", f"layers.{i}.post_attention_layernorm.weight"]
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"the weights lack {missing[0]} (or model.{missing[0]}), which a Llama with "
                         f"{config['n_layer']} layers has")
    state = {n: weights[n] for n in names}
    if config["tie_weights"]:
        if "lm_head.weight" in weights and not np.array_equal(weights["lm_head.weight"], state["embed_tokens.weight"]):
            raise ValueError("config.json ties the output layer to the embedding, but lm_head.weight differs")
        state["lm_head.weight"] = state["embed_tokens.weight"]
    elif "lm_head.weight" in weights:
        state["lm_head.weight"] = weights["lm_head.weight"]
    else:
        raise ValueError("the weights lack lm_head.weight, and config.json does not tie it to the embedding")
    rotary = {k for k in weights if k.endswith("rotary_emb.inv_freq")}  # older files keep RoPE's θ_i
    _no_leftovers(weights, set(state) | {"lm_head.weight"} | rotary)
    return state


# --- shared --------------------------------------------------------------------------------------
def _fields(hf, names, where, defaults):
    out = {}
    for hf_name, name in names.items():
        value = hf.get(hf_name, defaults.get(hf_name))
        if hf_name not in hf and hf_name not in defaults:
            raise ValueError(f"{where} lacks {hf_name}")
        out[name] = value
    return out


def _refuse(hf, refused, where, reasons):
    for key, bad in refused.items():
        if bad:
            raise ValueError(f"{where}: {reasons.get(key, f'{key} = {hf.get(key)!r} is not supported')}")


def _strip(weights, prefix):
    return {k.removeprefix(prefix): v for k, v in weights.items()}


def _no_leftovers(weights, used):
    left = sorted(set(weights) - used)
    if left:
        raise ValueError(f"the weights hold {len(left)} tensors this model has no place for, e.g. {left[0]}")


_KINDS = {"gpt2": ("gpt", gpt_config, gpt_state), "llama": ("llama", llama_config, llama_state)}


def from_pretrained(path, kind=None):
    """The model in a Hugging Face-format folder: a GPT for model_type "gpt2", a Llama for
    "llama"; kind ("gpt" or "llama") insists on one. See the module docstring."""
    from . import build_model

    path = os.fspath(path)
    hf = read_config(path)
    where = os.path.join(path, "config.json")
    model_type = hf.get("model_type")
    if model_type not in _KINDS:
        raise ValueError(f"{where}: model_type {model_type!r} is not supported; expected 'gpt2' or 'llama'")
    tinylm_kind, make_config, make_state = _KINDS[model_type]
    if kind is not None and kind != tinylm_kind:
        raise ValueError(f"{path} holds a {model_type!r} model, not a tinylm {kind!r} one")
    config = make_config(hf, where)
    try:
        state = make_state(read_weights(path), config)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    try:
        tokenizer = pretrained_tokenizer(path)
    except (ValueError, FileNotFoundError):
        tokenizer = None
    model = build_model(tinylm_kind, tokenizer=tokenizer, **config)
    model.load_state_dict(state)
    return model.eval()


def pretrained_tokenizer(path):
    """The tokenizer of a Hugging Face-format folder, the first of: GPT-2's vocab.json +
    merges.txt (the special tokens: the added tokens that tokenizer_config.json lists); a
    tokenizer.json of the same kind (ByteBPETokenizer.from_tokenizer_json says which); a
    SentencePiece tokenizer.model (Llama 2's; SentencePieceTokenizer.from_model_file), also where
    a tokenizer.json beside it describes what ByteBPETokenizer does not compute (Llama 2's
    folders have both). Raises, saying what the folder holds, when there is none tinylm reads.
    Its input_ids puts the folder's beginning-of-sequence token first where the folder asks for
    one (bos_of_folder)."""
    from ..data import ByteBPETokenizer, SentencePieceTokenizer

    path = os.fspath(path)
    file = lambda name: os.path.join(path, name)  # noqa: E731
    tokenizer = None
    if os.path.isfile(file("vocab.json")) and os.path.isfile(file("merges.txt")):
        tokenizer = ByteBPETokenizer.from_files(file("vocab.json"), file("merges.txt"), _special_tokens(path))
    has_model = os.path.isfile(file("tokenizer.model"))
    if tokenizer is None and os.path.isfile(file("tokenizer.json")):
        try:
            tokenizer = ByteBPETokenizer.from_tokenizer_json(file("tokenizer.json"))
        except ValueError:
            if not has_model:
                raise
    if tokenizer is None and has_model:
        tokenizer = SentencePieceTokenizer.from_model_file(file("tokenizer.model"))
    if tokenizer is None:
        found = [n for n in ("spiece.model", "vocab.txt") if os.path.isfile(file(n))]
        raise ValueError(f"{path} has no tokenizer tinylm reads (vocab.json + merges.txt, tokenizer.json or "
                         "tokenizer.model)" + (f"; it has {found[0]}, which tinylm does not read" if found else ""))
    return tokenizer.set_bos(bos_of_folder(path, tokenizer))


# bos_token where tokenizer_config.json names none: the defaults of transformers' LlamaTokenizer
# (a tokenizer.model) and GPT2Tokenizer (vocab.json + merges.txt)
_DEFAULT_BOS = {"sentencepiece": "<s>", "bpe": "<|endoftext|>"}


def bos_of_folder(path, tokenizer):
    """The id that Hugging Face's tokenizer(text).input_ids puts before the text's ids for the
    folder at `path` (read with `tokenizer`), or None. As transformers 5 decides it (read in its
    source and checked with 5.24):

    - with a tokenizer.json in the folder, its post_processor alone (transformers then drops
      tokenizer_config.json's add_bos_token): the special token that a TemplateProcessing's
      "single" template puts before $A (Llama 3's <|begin_of_text|>, Llama 2's <s>), also inside
      a Sequence of post-processors; the "cls" token of RobertaProcessing or BertProcessing;
      nothing for ByteLevel or no post-processor;
    - otherwise tokenizer_config.json's add_bos_token (missing: false, transformers 5's default
      for every tokenizer; transformers 4's Llama tokenizers defaulted to true, and Llama 2's
      folders say true) and bos_token (special_tokens_map.json's first; missing: "<s>" for a
      tokenizer.model, "<|endoftext|>" for vocab.json + merges.txt; null: none).

    What comes after the text is not followed (a template's "</s>" after $A, add_eos_token):
    a prompt is text to continue, not a finished sequence. A post-processor tinylm does not
    read, or a beginning-of-sequence token outside the vocabulary, is one line naming the file.
    """
    path = os.fspath(path)
    where = os.path.join(path, "tokenizer.json")
    if os.path.isfile(where):
        d = read_json(where, "tokenizer.json file")
        if not isinstance(d, dict):
            raise ValueError(f"{where} must hold a JSON object")
        try:
            ids = _ids_before_text(d.get("post_processor"))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ValueError(f"{where}: its post_processor is not laid out as the tokenizers library "
                             f"writes it: {json.dumps(d.get('post_processor'))[:200]}") from None
        if len(ids) > 1:
            raise ValueError(f"{where}: its post_processor puts {len(ids)} tokens before the text, {ids}; tinylm "
                             "puts one beginning-of-sequence token at most")
        if ids and not (isinstance(ids[0], int) and 0 <= ids[0] < tokenizer.vocab_size):
            raise ValueError(f"{where}: its post_processor puts id {ids[0]!r} before the text, which is not "
                             f"in the vocabulary of {tokenizer.vocab_size}")
        return ids[0] if ids else None
    config, where = {}, os.path.join(path, "tokenizer_config.json")
    for name, keys in (("tokenizer_config.json", ("add_bos_token", "bos_token")),
                       ("special_tokens_map.json", ("bos_token",))):
        file = os.path.join(path, name)
        if os.path.isfile(file):
            d = read_json(file, f"{name} file")
            if not isinstance(d, dict):
                raise ValueError(f"{file} must hold a JSON object")
            config.update((k, d[k]) for k in keys if k in d)
    add = config.get("add_bos_token", False)
    if not isinstance(add, bool):
        raise ValueError(f"{where}: add_bos_token must be true or false, got {add!r}")
    bos = config.get("bos_token", _DEFAULT_BOS.get(tokenizer.kind))
    if isinstance(bos, dict):  # an AddedToken: {"content": "<s>", "lstrip": false, ...}
        bos = bos.get("content")
    if not add or bos is None:
        return None
    if not isinstance(bos, str):
        raise ValueError(f"{where}: bos_token must be a string, got {bos!r}")
    bos_id = _token_id(tokenizer, bos)
    if bos_id is None:
        raise ValueError(f"{where}: add_bos_token is true, but its bos_token {bos!r} is not a token of the "
                         "vocabulary")
    return bos_id


def _ids_before_text(processor):
    """The ids a tokenizer.json post_processor (a dict, or None) puts before the text."""
    if processor is None or processor["type"] == "ByteLevel":
        return []
    if processor["type"] == "Sequence":  # each one wraps what the ones before it made
        ids = []
        for inner in processor["processors"]:
            ids = _ids_before_text(inner) + ids
        return ids
    if processor["type"] == "TemplateProcessing":
        ids = []
        for piece in processor["single"]:
            if "Sequence" in piece:  # $A, the text: what follows it is not read
                return ids
            ids += processor["special_tokens"][piece["SpecialToken"]["id"]]["ids"]
        raise ValueError("its TemplateProcessing's single template has no $A, the text")
    if processor["type"] in ("RobertaProcessing", "BertProcessing"):
        return [processor["cls"][1]]  # cls: [token, id]
    raise ValueError(f"its post_processor {processor['type']!r} is not read by tinylm (TemplateProcessing, "
                     "Sequence, ByteLevel, RobertaProcessing and BertProcessing are)")


def _token_id(tokenizer, token):
    """The id of `token` (a string): a special token, or one entry of the vocabulary; else None."""
    if token in tokenizer.special_tokens:
        return tokenizer.special_tokens[token]
    entries = getattr(tokenizer, "pieces", None) or getattr(tokenizer, "token_bytes", [])
    wanted = token if entries and isinstance(entries[0], str) else token.encode("utf-8")
    return entries.index(wanted) if wanted in entries else None


def _special_tokens(path):
    """The added tokens and the bos/eos/unk/pad tokens named in tokenizer_config.json and
    special_tokens_map.json, if the folder has them."""
    tokens = []
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        try:
            with open(os.path.join(path, name), encoding="utf-8") as f:
                d = json.load(f)
        except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(d, dict):
            continue
        values = [v for k, v in d.items() if k in ("bos_token", "eos_token", "unk_token", "pad_token")]
        values += list((d.get("added_tokens_decoder") or {}).values())
        for v in values:
            content = v.get("content") if isinstance(v, dict) else v
            if isinstance(content, str) and content and content not in tokens:
                tokens.append(content)
    return tokens
