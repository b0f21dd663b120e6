"""Language models, each a readable file with a config dataclass."""
from .gpt import GPT, GPTConfig
from .rnn_lm import RNNLM, RNNLMConfig

MODELS = {"gpt": (GPT, GPTConfig), "lstm": (RNNLM, RNNLMConfig), "rnn": (RNNLM, RNNLMConfig)}


def build_model(kind, **config):
    """A fresh model of `kind` ('gpt', 'lstm' or 'rnn') from config fields."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}: expected one of {', '.join(MODELS)}")
    model_cls, config_cls = MODELS[kind]
    if kind in ("lstm", "rnn"):
        config = {**config, "cell": kind}
    return model_cls(config_cls(**config))
