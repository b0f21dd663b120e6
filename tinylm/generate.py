"""Text generation from a language model, with Hugging Face's `generate` keywords.

Each step turns the logits of the next token into a choice (004.generate):
greedy takes the most likely token; sampling divides the logits by `temperature`, keeps
the `top_k` most likely tokens and/or the smallest set whose probability reaches `top_p`
(nucleus sampling), and draws from the renormalised softmax.
"""
import math
import numbers

import numpy as np

from .autograd import no_grad
from .random import generator


def _number(name, value, integer=False):
    """value, unless it is not a number (an integer when `integer`): then a TypeError naming it."""
    kinds = (int, np.integer) if integer else numbers.Real
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        raise TypeError(f"{name} must be {'an integer' if integer else 'a number'}, "
                        f"got {type(value).__name__} {value!r}")
    return value


def _check_sampling(temperature, top_k, top_p, sampling=True):
    """One line naming the first sampling keyword out of range (temperature only when sampling)."""
    if sampling and not (math.isfinite(_number("temperature", temperature)) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r} "
                         "(for greedy decoding, always the most likely token, use do_sample=False)")
    if top_k is not None and _number("top_k", top_k, integer=True) < 1:
        raise ValueError(f"top_k must be an integer >= 1 (or None: no top-k filter), got {top_k!r}")
    if top_p is not None and not 0 < _number("top_p", top_p) <= 1:
        raise ValueError(f"top_p must be in (0, 1] (or None: no nucleus filter), got {top_p!r}")


def _check(max_new_tokens, do_sample, temperature, top_k, top_p, num_return_sequences, seed):
    """generate's keywords, checked before anything runs: one line naming the first one wrong."""
    if _number("max_new_tokens", max_new_tokens, integer=True) < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if _number("num_return_sequences", num_return_sequences, integer=True) < 1:
        raise ValueError(f"num_return_sequences must be an integer >= 1, got {num_return_sequences!r}")
    if seed is not None and _number("seed", seed, integer=True) < 0:
        raise ValueError(f"seed must be an integer >= 0 (or None: tinylm's generator), got {seed!r}")
    _check_sampling(temperature, top_k, top_p, sampling=do_sample)
    if num_return_sequences > 1 and not do_sample:
        raise ValueError(
            f"num_return_sequences={num_return_sequences} with greedy decoding would return "
            f"{num_return_sequences} copies of the same text (greedy search is deterministic — the mistake "
            "of 004.generate): pass do_sample=True")


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """Sampling probabilities (rows sum to 1) from logits (B, V), after temperature (> 0), top-k
    (>= 1) and top-p (in (0, 1]); a value out of range is a one-line ValueError naming it."""
    _check_sampling(temperature, top_k, top_p)
    z = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)                       # keep the top_k largest logits
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=-1)
        before = np.cumsum(sorted_p, axis=-1) - sorted_p        # probability of the tokens ranked above
        keep_sorted = before < top_p                              # the smallest set reaching top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)
        p = np.where(keep, p, 0.0)
        p /= p.sum(axis=-1, keepdims=True)
    return p


def generate(model, input_ids, max_new_tokens=20, do_sample=False, temperature=1.0, top_k=None, top_p=None,
             num_return_sequences=1, eos_token_id=None, seed=None, use_cache=True):
    """Continue each row of input_ids (B, T) or (T,) by up to max_new_tokens tokens.

    Returns a NumPy int64 array (B * num_return_sequences, T + new): each prompt followed by its
    continuation; rows that produced eos_token_id are padded with it after that point.
    use_cache=True reuses the model's state (GPT: the KV cache; RNN/LSTM: the hidden state);
    False recomputes from the visible window each step — the same tokens, only slower.
    A keyword out of range is refused before anything runs, in one line naming it.
    """
    _check(max_new_tokens, do_sample, temperature, top_k, top_p, num_return_sequences, seed)
    ids = np.asarray(input_ids, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"input_ids must be a non-empty (batch, length) array of token ids, got shape {ids.shape}")
    vocab = model.config.vocab_size
    if ids.min() < 0 or ids.max() >= vocab:
        raise ValueError(f"input_ids hold ids outside the vocabulary 0..{vocab - 1}")
    ids = np.repeat(ids, num_return_sequences, axis=0)
    rng = np.random.default_rng(seed) if seed is not None else generator()
    finished = np.zeros(len(ids), dtype=bool)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            state = None
            for _ in range(max_new_tokens):
                if use_cache:
                    logits, state = model.step(ids, state)
                else:
                    logits = model(model.window(ids))[0][:, -1]
                logits = logits.numpy()
                if do_sample:
                    p = next_token_probs(logits, temperature, top_k, top_p)
                    u = rng.random((len(p), 1))
                    nxt = np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), vocab - 1)  # inverse CDF
                else:
                    nxt = logits.argmax(axis=-1)
                if eos_token_id is not None:
                    nxt = np.where(finished, eos_token_id, nxt)
                    finished |= nxt == eos_token_id
                ids = np.concatenate([ids, nxt[:, None].astype(np.int64)], axis=1)
                if eos_token_id is not None and finished.all():
                    break
    finally:
        model.train(was_training)
    return ids
