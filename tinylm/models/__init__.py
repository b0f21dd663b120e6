"""The models, each a readable file with a config dataclass, and the one registry of them.

A model has `kind` (its name in checkpoints), `config` (a dataclass) and, when it reads text,
`tokenizer`. `build_model(kind, tokenizer=None, **config)` makes one; tinylm.checkpoint saves
and loads any of them (save_model, load_model). Adding a model = one file here + one line in MODELS.
"""
from .bert import Bert, BertConfig
from .classifier import LSTMClassifier, LSTMClassifierConfig, TextClassifier, TextClassifierConfig
from .gpt import GPT, GPTConfig
from .llama import Llama, LlamaConfig
from .rnn_lm import RNNLM, RNNLMConfig
from .seq2seq import Seq2Seq, Seq2SeqConfig

# kind -> (model class, config class)
MODELS = {"gpt": (GPT, GPTConfig), "llama": (Llama, LlamaConfig), "lstm": (RNNLM, RNNLMConfig),
          "rnn": (RNNLM, RNNLMConfig),
          "bert": (Bert, BertConfig), "seq2seq": (Seq2Seq, Seq2SeqConfig),
          "lstm_classifier": (LSTMClassifier, LSTMClassifierConfig), "classifier": (TextClassifier, TextClassifierConfig)}


def build_model(kind, tokenizer=None, **config):
    """A fresh model of `kind` from its config fields, with `tokenizer` (a tokenizer, its
    to_dict() form, or None) as model.tokenizer."""
    from ..data import load_tokenizer

    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}: expected one of {', '.join(MODELS)}")
    if isinstance(tokenizer, dict):
        tokenizer = load_tokenizer(tokenizer)
    model_cls, config_cls = MODELS[kind]
    if kind in ("lstm", "rnn"):
        config = {**config, "cell": kind}
    if hasattr(model_cls, "from_config"):  # a model that holds another model (a classifier's body)
        return model_cls.from_config(config, tokenizer)
    model = model_cls(config_cls(**config))
    model.tokenizer = tokenizer
    return model
