# %% [markdown]
# # 文本生成 Text generation: greedy search, sampling, temperature, top-k, top-p, KV cache (004.generate)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 文本生成 — text generation — writing one token at a time, each from the model's next-token
#   distribution.
# * 贪心解码 — greedy decoding — always take the most likely next token.
# * 采样 / 抽样 — sampling — draw the next token at random from the distribution.
# * 温度 — temperature — T in softmax(z / T): below 1 sharper, above 1 flatter.
# * 核采样 — nucleus (top-p) sampling — draw only from the smallest set of tokens whose
#   probabilities reach p.
# * 束搜索 — beam search — keep the best few partial texts at every step.
# * 缓存 — (KV) cache — the keys and values of earlier positions, kept so they are not recomputed.
# * 变换器 — Transformer(s) — also the name of Hugging Face's library, whose generate is compared
#   here.
# * 优化器 — optimizer — AdamW, which trains the tiny GPT.
#
# Article 004 (§4.3) asks GPT-2 for five continuations of a prompt:
# `generate(input_ids, max_length=50, num_return_sequences=5)`. With no other argument, that
# call uses greedy decoding, which always picks the most likely next token. Greedy decoding is
# deterministic: it has one text to give, not five. Current Hugging Face Transformers refuses
# the call with a ValueError (greedy decoding without beam search supports only
# `num_return_sequences=1`), and so does tinylm. Different texts need *sampling*
# (`do_sample=True`) or beam search.
#
# This lesson trains a tiny GPT for a few steps and shows the bug. It then works each
# sampling rule by hand on a small logit vector and compares it with
# `tinylm.generate.next_token_probs`. The rules are temperature scaling, top-k, the nucleus
# (top-p) filter, renormalisation and the draw itself. It ends with the KV cache, which gives
# the same tokens faster.

# %%
import time

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data import CharTokenizer, default_corpus_text, get_batch
from tinylm.generate import generate, next_token_probs
from tinylm.lesson import check, fast, graded, picture, pyplot
from tinylm.models import GPT, GPTConfig
from tinylm.optim import AdamW

tinylm.manual_seed(0)
text = default_corpus_text(100_000)
tok = CharTokenizer.train(text)
data = np.array(tok.encode(text))

model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32))
opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
batch_rng = np.random.default_rng(0)
for step in range(60 if fast() else 250):
    x, y = get_batch(data, 8, 64, batch_rng)
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"a GPT of {model.num_parameters():,} parameters, trained {step + 1} steps: loss {loss.item():.3f}")
prompt = np.array(tok.encode("The "))

# %% [markdown]
# ## 贪心解码 Greedy decoding cannot give five different texts (004.generate)
#
# Greedy decoding takes `argmax` of the logits at every step, so the same prompt always leads
# to the same text. tinylm's `generate` follows Hugging Face's keywords. It refuses the
# article's combination and says why, as Hugging Face's own `generate` does (shown on a tiny
# randomly initialised GPT-2 when the `transformers` package is installed). (Hugging Face's
# `max_length=50` counts the prompt, and tinylm's `max_new_tokens` does not.)

# %%
new_tokens = 50 - len(prompt)
try:
    generate(model, prompt, max_new_tokens=new_tokens, num_return_sequences=5)
    refused = False
except ValueError as e:
    refused = True
    print("ValueError:", e)
check("generate refuses greedy decoding with num_return_sequences=5", refused)
try:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError:
    print("(transformers and torch not installed: Hugging Face's own refusal is not shown)")
else:
    hf_gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=16, n_positions=64,
                                         bos_token_id=0, eos_token_id=0))
    try:
        hf_gpt2.generate(torch.tensor([[1, 2, 3]]), max_length=50, num_return_sequences=5, pad_token_id=0)
        hf_refused = False
    except ValueError as e:
        hf_refused = True
        print("Hugging Face's ValueError:", e)
    check("Hugging Face's generate refuses the article's call too", hf_refused)

greedy_runs = np.concatenate([generate(model, prompt, max_new_tokens=new_tokens) for _ in range(5)])
print("greedy:", repr(tok.decode(greedy_runs[0])))
check("five greedy runs give five identical texts", all(np.array_equal(r, greedy_runs[0]) for r in greedy_runs))
tail = tok.decode(greedy_runs[0][len(prompt):])[-24:]
cycle = next((n for n in range(1, len(tail)) if tail[n:] == tail[:-n]), len(tail))   # the tail's shortest period
print(f"the greedy text ends repeating {tail[-cycle:]!r} ({cycle} character{'s' if cycle > 1 else ''}) over and over")
check("the greedy text falls into a loop of at most 4 characters", cycle <= 4)

# %% [markdown]
# ## 采样 Sampling gives different texts
#
# The greedy text above falls into a loop: after a few characters it repeats one short cycle
# over and over (the line above names the cycle and its length). Argmax picks the most likely
# next character, and for a weak character-level model the most likely continuation of a
# short cycle is the cycle again. Always taking the top token makes dull, repetitive text even
# with strong models. With `do_sample=True`, each step *draws* the next token from the model's
# distribution, so the five rows differ. `seed` makes the draws repeatable.

# %%
sampled = generate(model, prompt, max_new_tokens=new_tokens, do_sample=True, num_return_sequences=5, seed=0)
for row in sampled:
    print("sampled:", repr(tok.decode(row)))
again = generate(model, prompt, max_new_tokens=new_tokens, do_sample=True, num_return_sequences=5, seed=0)
check("sampling gives different continuations", len({tuple(r) for r in sampled}) >= 4)
check("the same seed gives the same samples", np.array_equal(sampled, again))
for label, kwargs in (("temperature 0.5", {"temperature": 0.5}), ("top_k 5", {"top_k": 5}),
                      ("top_p 0.8", {"top_p": 0.8})):
    out = generate(model, prompt, max_new_tokens=new_tokens, do_sample=True, seed=0, **kwargs)
    print(f"{label:16s}", repr(tok.decode(out[0])))

# %% [markdown]
# ## 温度 Temperature, by hand
#
# Each rule changes the distribution the next token is drawn from. Take five logits. The
# temperature T divides them before the softmax: `p = softmax(z / T)`. A small T sharpens
# the distribution towards greedy, and a large T flattens it towards uniform.

# %%
z = np.array([3.0, 2.0, 1.2, 0.5, -1.0])


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


entropies = []
for temp in (0.25, 0.5, 1.0, 2.0, 8.0):
    p = softmax(z / temp)
    entropies.append(-(p * np.log(p)).sum())
    print(f"T = {temp:4}: p = {np.round(p, 4)}   entropy {entropies[-1]:.3f} nats")
    check(f"T = {temp}: by hand = next_token_probs", np.allclose(p, next_token_probs(z[None], temperature=temp)[0]))
check("a higher temperature always flattens the distribution", np.all(np.diff(entropies) > 0))
check("T → 0 approaches greedy (one-hot on the argmax)", softmax(z / 0.01)[0] > 0.999)
check("T → ∞ approaches uniform", np.allclose(softmax(z / 1e4), 0.2, atol=1e-3))

# %% [markdown]
# The temperature also scales the gradient. With `p = softmax(z/T)`, the vector-Jacobian
# product for an upstream gradient g is `∂(g·p)/∂z = p ⊙ (g − g·p) / T`. Three ways, at
# T = 0.5:

# %%
temp = 0.5
report = compare(lambda logits: F.softmax(logits / temp),
                 lambda g, logits: {"logits": softmax(logits / temp) * (g - g @ softmax(logits / temp)) / temp},
                 {"logits": tinylm.Tensor(z, requires_grad=True)})
print(report.table("softmax(z / T): autograd vs numeric vs p ⊙ (g − g·p) / T"))
check("the tempered softmax's gradient, three ways", report.passed)

# %% [markdown]
# ## Top-k, by hand
#
# Keep the k largest logits, set the rest to −∞ (probability 0), then take the softmax.
# This is the same as renormalising the k largest probabilities.

# %%
for k in (1, 2, 3):
    kept = np.where(z >= np.sort(z)[-k], z, -np.inf)
    p_k = softmax(kept)
    print(f"top_k = {k}: {np.round(p_k, 4)}")
    check(f"top_k = {k}: by hand = next_token_probs", np.allclose(p_k, next_token_probs(z[None], top_k=k)[0]))
    check(f"top_k = {k}: = the k largest probabilities, renormalised",
          np.allclose(p_k, np.where(kept > -np.inf, softmax(z), 0) / softmax(z)[kept > -np.inf].sum()))

# %% [markdown]
# ## Top-p 核采样 Nucleus sampling
#
# Top-k keeps a fixed number of tokens. Top-p keeps as many as the distribution needs: the
# *smallest* set of most likely tokens whose probability adds up to at least p. Sort the
# probabilities in decreasing order. A token is kept when the tokens ranked above it hold
# less than p between them, which means the token that first crosses p is kept too. Then
# renormalise. Here are the sorted probabilities and running sums for our logits:

# %%
p = softmax(z)
order = np.argsort(-p)
print("sorted p:     ", np.round(p[order], 4))
print("sum before it:", np.round(np.cumsum(p[order]) - p[order], 4))


def top_p_filter(probs, top_p):
    """Nucleus filter of one probability vector: keep the smallest set of most likely tokens
    whose total reaches top_p, zero the rest, renormalise."""
    # BEGIN SOLUTION hint: sort descending; keep a token while the mass ranked above it is < top_p; renormalise
    order = np.argsort(-probs, kind="stable")
    above = np.cumsum(probs[order]) - probs[order]
    keep = np.zeros(len(probs), dtype=bool)
    keep[order] = above < top_p
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum()
    # END SOLUTION


rows = np.random.default_rng(1).standard_normal((4, 50)) * 2
graded("your top-p filter = next_token_probs on the small logits (p = 0.5, 0.8, 0.95, 1)",
       lambda: all(np.allclose(top_p_filter(p, tp), next_token_probs(z[None], top_p=tp)[0])
                   for tp in (0.5, 0.8, 0.95, 1.0)))
graded("your top-p filter = next_token_probs on random rows of 50 logits",
       lambda: all(np.allclose(top_p_filter(softmax(r), tp), next_token_probs(r[None], top_p=tp)[0])
                   for r in rows for tp in (0.3, 0.6, 0.9)))
graded("a tiny top_p keeps only the most likely token",
       lambda: np.allclose(top_p_filter(p, 1e-9), np.eye(5)[0]))
graded("after temperature and top-k, your filter still matches",
       lambda: np.allclose(top_p_filter(next_token_probs(z[None], temperature=0.7, top_k=4)[0], 0.9),
                           next_token_probs(z[None], temperature=0.7, top_k=4, top_p=0.9)[0]))

# %% [markdown]
# ## 抽样 The draw itself
#
# Once the probabilities are fixed, the draw uses the inverse of the cumulative
# distribution. Take `u` uniform in [0, 1); the chosen token is the number of running sums
# that are still below `u`. Over many draws the frequencies match the probabilities. With
# the same seed, the first token `generate` picks is exactly the one we get by hand.

# %%
probs = next_token_probs(z[None], temperature=0.8, top_k=4)[0]
u = np.random.default_rng(5).random(20_000)
draws = (np.cumsum(probs)[None, :] < u[:, None]).sum(1)
freq = np.bincount(draws, minlength=len(z)) / len(u)
print("p:        ", np.round(probs, 4))
print("frequency:", np.round(freq, 4))
check("inverse-CDF draws follow the probabilities", np.abs(freq - probs).max() < 0.015)

with tinylm.no_grad():
    model.eval()
    prompt_logits = model(prompt[None])[0].numpy()[:, -1]
probs_model = next_token_probs(prompt_logits, temperature=0.8, top_k=10)
first = int((np.cumsum(probs_model[0]) < np.random.default_rng(7).random((1, 1))[0, 0]).sum())
by_generate = generate(model, prompt, max_new_tokens=1, do_sample=True, temperature=0.8, top_k=10, seed=7)[0, -1]
print(f"first sampled token by hand {tok.decode([first])!r}, by generate {tok.decode([by_generate])!r}")
check("the hand draw picks the same token as generate", first == by_generate)

# %% [markdown]
# ## KV 缓存 The KV cache: same tokens, less work
#
# Without a cache, every new token runs the model over the whole visible window again. But
# the keys and values of earlier positions never change, because causal attention cannot
# look ahead. So GPT keeps them (`use_cache=True`), and each step processes only the newest
# token. The tokens are identical. Only the amount of work differs.

# %%
n_new = 40 if fast() else 60
outputs = {}
for use_cache in (True, False):
    outputs[use_cache] = generate(model, prompt, max_new_tokens=n_new, use_cache=use_cache)
    outputs[("sampled", use_cache)] = generate(model, prompt, max_new_tokens=n_new, do_sample=True, top_p=0.9,
                                               seed=3, use_cache=use_cache)
check("the KV cache gives the same greedy tokens as recomputation", np.array_equal(outputs[True], outputs[False]))
check("...and the same sampled tokens", np.array_equal(outputs[("sampled", True)], outputs[("sampled", False)]))

# %% [markdown]
# Our model is so small that Python's overhead per step hides the saving. The timing is
# clearer on a wider, untrained GPT with a longer window. Untrained is fine here, since
# only the amount of work matters. Each path runs once to warm up before it is timed:

# %%
wide = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=2, n_head=4, n_embd=128))
n_wide = 60 if fast() else 100
timings, wide_out = {}, {}
for use_cache in (True, False):
    generate(wide, prompt, max_new_tokens=4, use_cache=use_cache)
    start = time.perf_counter()
    wide_out[use_cache] = generate(wide, prompt, max_new_tokens=n_wide, use_cache=use_cache)
    timings[use_cache] = time.perf_counter() - start
positions = (sum(min(len(prompt) + i, 128) for i in range(n_wide)), len(prompt) + n_wide - 1)
print(f"{n_wide} tokens: with the cache {timings[True]:.3f}s, recomputing {timings[False]:.3f}s "
      f"({timings[False] / timings[True]:.1f}x faster with the cache)")
print(f"positions pushed through the model: recomputing {positions[0]}, with the cache {positions[1]}")
check("the wide model's tokens agree too", np.array_equal(wide_out[True], wide_out[False]))

try:
    plt = pyplot()

    settings = {"T=1": {}, "T=0.5": {"temperature": 0.5}, "T=2": {"temperature": 2.0},
                "top_k=2": {"top_k": 2}, "top_p=0.8": {"top_p": 0.8}}
    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.8 / len(settings)
    for i, (label, kwargs) in enumerate(settings.items()):
        ax.bar(np.arange(len(z)) + i * width, next_token_probs(z[None], **kwargs)[0], width, label=label)
    ax.set_xlabel("token")
    ax.set_ylabel("probability")
    ax.legend(fontsize=7)
    fig.tight_layout()
    picture(fig, "12_decoding_rules.png")
except ImportError:
    print("(matplotlib not installed: no plot)")
