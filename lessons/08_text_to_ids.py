# %% [markdown]
# # 从文本到编号与词向量 Text to ids and word embeddings (001.pipeline, 002.tokens, 002.embedtable, 002.word2vec, 002.glove)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 数据预处理 — preprocessing — clean → tokenize → encode, before any training.
# * 文本清洗 — text cleaning — tidying the raw text (spaces, stray characters).
# * 分词 — tokenization; word segmentation — cutting text into pieces; for Chinese, deciding where
#   words end.
# * 编码 — encoding — turning each piece into an integer id.
# * 正向最大匹配 — forward maximum matching — segmentation by the longest dictionary word at each
#   position.
# * 字节对编码 — byte-pair encoding (BPE) — merging the most frequent pair of pieces, again and
#   again.
# * 词嵌入 / 词向量 — word embedding / word vector — a learned vector per word, a row of the
#   embedding table.
# * 损失函数 — loss function — what word2vec and GloVe really minimise.
# * 优化器 — optimizer — Adam, which trains the embeddings.
# * 学习率 — learning rate — the size of the optimizer's steps.
#
# Before a network sees a sentence, the sentence becomes a list of integers, and each
# integer becomes a vector. This lesson follows that road:
#
# * **001.pipeline** — 数据预处理: clean (文本清洗) → tokenize (分词) → encode to ids (编码),
#   by hand and with tinylm's three tokenizers, including a few steps of byte-pair encoding.
# * **002.tokens** — article 002 segments four Chinese sentences, and every one of its four
#   segmentations drops words (喜欢, 一种, 营养, 身体健康). We show what is lost, then segment
#   the sentences so they join back exactly.
# * **002.embedtable** — 词嵌入: a table of 3-d vectors for ten words. Looking a word up is a
#   one-hot vector times the table, and the gradient of a look-up is a scatter-add.
# * **002.word2vec** and **002.glove** — the article writes both as "a weight matrix times the
#   word vectors, through sgn or softmax". Neither formula can be trained. We show why, then
#   train what word2vec and GloVe really optimise.

# %%
from collections import Counter

import numpy as np

import tinylm
from tinylm.check import compare
from tinylm.data import UNK, ByteBPETokenizer, CharTokenizer, WordTokenizer
from tinylm.lesson import check, fast, graded, picture, pyplot
from tinylm.nn import Embedding
from tinylm.optim import Adam

rng = np.random.default_rng(0)
tinylm.manual_seed(0)

# %% [markdown]
# ## 数据预处理 Preprocessing: clean → tokenize → encode (001.pipeline)
#
# Article 001 (§3.2.1) lists three steps. Its cleaning step removes punctuation and stop
# words, which suits a classifier. A *language model* has to write punctuation and "the"
# itself, so here cleaning only tidies the text (one space between words, no stray tabs or
# newlines) and keeps every word:

# %%
raw = "  The cat sat on the mat.\n\tThe dog sat on the log.  "
clean = " ".join(raw.split())
print(repr(clean))
stripped = [w.strip(".") for w in clean.lower().split() if w.strip(".") not in ("the", "on")]
print("with punctuation and stop words removed:", stripped)
check("whitespace cleaning keeps every word", clean.split() == raw.split())
check("removing stop words loses words a language model must write", "the" not in stripped)

# %% [markdown]
# **Tokenizing by hand.** Split the text into word pieces. A word keeps the single space in
# front of it (" cat"), and a full stop is a piece of its own. Because the spaces stay inside
# the pieces, joining the pieces gives back the text exactly.
#
# **Encoding by hand.** Id 0 is reserved for unknown pieces ("�"). The other pieces get ids
# 1, 2, … with the most frequent first, and equal counts in alphabetical order.

# %%
pieces = []
for k, word in enumerate(clean.split(" ")):
    lead = "" if k == 0 else " "
    if word.endswith("."):
        pieces += [lead + word[:-1], "."]
    else:
        pieces.append(lead + word)
counts = Counter(pieces)
ranked = sorted(counts, key=lambda piece: (-counts[piece], piece))
vocab = {UNK: 0, **{piece: i + 1 for i, piece in enumerate(ranked)}}
ids_by_hand = [vocab[p] for p in pieces]
print("pieces:", pieces)
print("ids:   ", ids_by_hand)
check("the pieces join back to the text", "".join(pieces) == clean)

# %% [markdown]
# The same with tinylm's tokenizers. `WordTokenizer` follows the rule we just used.
# `CharTokenizer` gives one id per character: its vocabulary is the sorted set of characters
# plus "�". Both map a piece they never saw to the unknown id, so "bird" decodes to "�".

# %%
word_tok = WordTokenizer.train(clean)
char_tok = CharTokenizer.train(clean)
print("WordTokenizer:", word_tok.encode(clean))
print("CharTokenizer:", char_tok.encode(clean)[:16], "...")
check("WordTokenizer splits like the hand split", WordTokenizer.split(clean) == pieces)
check("WordTokenizer's ids equal the hand ids", word_tok.encode(clean) == ids_by_hand)
check("CharTokenizer's ids: index in the sorted character set",
      char_tok.encode(clean) == [sorted(set(clean) | {UNK}).index(c) for c in clean])
check("decode(encode(text)) gives back the text",
      word_tok.decode(word_tok.encode(clean)) == clean and char_tok.decode(char_tok.encode(clean)) == clean)
unseen = word_tok.encode("The bird sat.")
print("'The bird sat.' ->", unseen, "->", repr(word_tok.decode(unseen)))
check("an unseen word becomes the unknown id 0", unseen[1] == 0)

# %% [markdown]
# ### 字节对编码 Byte-pair encoding, a few merges by hand
#
# The character and word tokenizers both have a weak side. Characters make long sequences,
# and words leave every unseen word unknown. Byte-level BPE sits between the two. It starts
# from the 256 byte values, so any text can be encoded. It then repeats one step: find the
# most frequent adjacent pair of ids inside a word, and give that pair a new id (256, 257, …).
# On a tiny text, by hand:

# %%
bpe_text = "low lower lowest low low newer newest new"
chunk_counts = Counter(("" if k == 0 else " ") + w for k, w in enumerate(bpe_text.split(" ")))
words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
freqs = list(chunk_counts.values())


def merge_pair(ids, pair, new_id):
    """ids with every occurrence of `pair`, read left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


merges, spelled = [], {b: bytes([b]) for b in range(256)}
for k in range(6):
    pair_counts = Counter()
    for w, n in zip(words, freqs):
        for pair in zip(w, w[1:]):
            pair_counts[pair] += n
    # the most frequent pair; among equals, the greatest pair of byte strings (as tinylm and
    # GPT-2's trainers do), so the result does not depend on how the ids happen to be numbered
    best = max(pair_counts, key=lambda p: (pair_counts[p], spelled[p[0]], spelled[p[1]]))
    merges.append(best)
    spelled[256 + k] = spelled[best[0]] + spelled[best[1]]
    words = [merge_pair(w, best, 256 + k) for w in words]
    print(f"merge {k}: {best} seen {pair_counts[best]}x -> id {256 + k} = {spelled[256 + k]!r}")

bpe = ByteBPETokenizer.train(bpe_text, 256 + 6)
check("tinylm's BPE learns the same merges in the same order", bpe.merges == merges)
encoded = bpe.encode(bpe_text)
print("tokens:", [bpe.token_bytes[i].decode() for i in encoded])
check("BPE round-trips", bpe.decode(encoded) == bpe_text)
cjk = "我喜欢吃苹果"
print(f"{cjk!r}: {len(char_tok.encode(cjk))} char ids (all unknown here), "
      f"{len(bpe.encode(cjk))} byte ids (UTF-8 uses 3 bytes per character)")
check("byte-level BPE encodes text it never saw, without unknown ids", bpe.decode(bpe.encode(cjk)) == cjk)

# %% [markdown]
# ## 分词 Word segmentation of the article's corpus (002.tokens)
#
# Chinese puts no spaces between words, so segmentation has to decide where words end.
# Article 002 (§4.2.1) segments its four sentences like this:

# %%
sentences = ["我喜欢吃苹果。", "苹果是一种水果。", "水果可以提供营养。", "营养有助于身体健康。"]
article_tokens = [["我", "吃", "苹果", "。"], ["苹果", "是", "水果", "。"],
                  ["水果", "可以", "提供", "。"], ["营养", "有", "助于", "。"]]
for s, toks in zip(sentences, article_tokens):
    print(f"{s}  ->  {'/'.join(toks)}  joined: {''.join(toks)}")
lost = ["".join(c for c in s if c not in "".join(t)) for s, t in zip(sentences, article_tokens)]
print("lost:", lost)
check("none of the article's segmentations joins back to its sentence",
      all("".join(t) != s for s, t in zip(sentences, article_tokens)))
check("all four drop words: 喜欢, 一种, 营养, 身体健康", lost == ["喜欢", "一种", "营养", "身体健康"])

# %% [markdown]
# A segmenter has to cover every character exactly once. The classic dictionary method is
# forward maximum matching (正向最大匹配). At each position, take the longest dictionary word
# that starts there; if none does, take a single character. No character can be skipped, so
# the pieces always join back to the sentence.

# %%
dictionary = {"我", "喜欢", "吃", "苹果", "是", "一种", "水果", "可以", "提供", "营养", "有助于", "身体", "健康"}
longest = max(map(len, dictionary))


def max_match(sentence):
    out, i = [], 0
    while i < len(sentence):
        size = next(n for n in range(min(longest, len(sentence) - i), 0, -1)
                    if n == 1 or sentence[i:i + n] in dictionary)
        out.append(sentence[i:i + size])
        i += size
    return out


segmented = [max_match(s) for s in sentences]
for toks in segmented:
    print("/".join(toks))
check("every segmentation joins back to its sentence", all("".join(t) == s for s, t in zip(sentences, segmented)))
check("every word the article lost is kept: 喜欢, 一种, 营养, 身体, 健康",
      {"喜欢", "一种", "营养", "身体", "健康"} <= {w for toks in segmented for w in toks})
corpus_text = "".join(sentences)
for kind in (CharTokenizer, WordTokenizer):
    tok = kind.train(corpus_text)
    check(f"tinylm's {kind.__name__} round-trips the four sentences",
          tok.decode(tok.encode(corpus_text)) == corpus_text)

# %% [markdown]
# tinylm's `WordTokenizer` needs no dictionary: it treats every CJK character as one
# piece. It knows nothing about Chinese words, but it never loses a character.
#
# ## 词嵌入 An embedding table (002.embedtable)
#
# Article 002 (§4.2.2) gives each of its ten words a 3-d vector: row `i` of a table
# `E` (10 × 3). There are three ways to look up the words of a sentence:
# index the rows `E[ids]`; multiply the one-hot matrix by the table, `onehot(ids) E`; or call
# `tinylm.nn.Embedding`.

# %%
table_words = ["我", "吃", "苹果", "是", "水果", "可以", "提供", "营养", "有", "助于"]
E = np.arange(1, 31).reshape(10, 3) / 10            # row i = [0.3i+0.1, 0.3i+0.2, 0.3i+0.3]
ids = np.array([table_words.index(w) for w in ["苹果", "是", "水果", "水果", "可以", "苹果"]])
onehot = np.eye(10)[ids]                            # (6, 10): one 1 per row
emb = Embedding(10, 3)
emb.weight.data = E.copy()
looked_up = emb(ids).numpy()
print("ids:", ids)
print(looked_up)
check("indexing rows = one-hot × table", np.allclose(E[ids], onehot @ E))
check("tinylm.nn.Embedding = the hand look-up", np.allclose(looked_up, E[ids]))

# %% [markdown]
# **The gradient of a look-up.** Say the loss is `L = Σ v ⊙ E[ids]`, with `v` the upstream
# gradient (6 × 3). Then row `r` of `∂L/∂E` is the sum of the `v` rows whose id is `r`. This
# is a *scatter-add*: 苹果 and 水果 each occur twice, so their rows collect two
# contributions. In matrix form it is `onehot(ids)ᵀ v`. A plain assignment `G[ids] = v` would
# keep only the last of each repeated row, which is wrong.

# %%
def lookup_formula(grad_out, W):
    G = np.zeros_like(W)
    np.add.at(G, ids, grad_out)                     # scatter-add: repeated ids add up
    return {"W": G}


report = compare(lambda W: tinylm.nn.functional.embedding(ids, W), lookup_formula,
                 {"W": tinylm.Tensor(E, requires_grad=True)})
print(report.table("E[ids]: autograd vs numeric vs scatter-add"))
check("the look-up's gradient, three ways", report.passed)
v = np.random.default_rng(0).standard_normal((len(ids), 3))   # compare's upstream gradient (seed 0)
assigned = np.zeros_like(E)
assigned[ids] = v
check("the one-hot form onehotᵀ v gives the same scatter-add", np.allclose(onehot.T @ v, lookup_formula(v, E)["W"]))
check("a plain assignment loses the repeated rows", not np.allclose(assigned, onehot.T @ v))

# %% [markdown]
# ## Word2Vec 词向量: the article's formula cannot be trained (002.word2vec)
#
# Article 002 (§4.1.1) writes `embed_i = sgn(W·[h_1 … h_n])`. Take `h` to be word i's one-hot
# vector, so `W h` is column i of a 3 × 10 matrix `W`. The sign function then has two flaws:
#
# 1. Its output is ±1 in each coordinate. A 3-d vector can only be one of 2³ = 8 corners,
#    so ten words cannot all get different vectors.
# 2. It is flat everywhere except at 0, where it jumps. Its derivative is 0 wherever it
#    exists. No gradient ever reaches `W`, so no training can change it.
#
# Below, `sgn(z)` is computed as `z / |z|` (for z ≠ 0), so tinylm can try to differentiate it.

# %%
W_sgn = np.random.default_rng(1).standard_normal((3, 10))


def article_word2vec(W):
    z = W @ tinylm.Tensor(np.eye(10))             # column i = W·h for word i's one-hot h
    return (z / z.abs()).T                        # sgn, one row per word


signs = article_word2vec(tinylm.Tensor(W_sgn)).numpy()
print("distinct embeddings among 10 words:", len({tuple(r) for r in signs}))
report = compare(article_word2vec, lambda g, W: {"W": np.zeros_like(W)},
                 {"W": tinylm.Tensor(W_sgn, requires_grad=True)})
print(report.table("sgn(W h): autograd vs numeric vs the formula 0"))
check("sgn maps ten words onto at most 8 corners: some words share a vector",
      len({tuple(r) for r in signs}) < 10)
check("all three agree: the gradient is zero, so W can never be trained", report.passed)

# %% [markdown]
# ### Skip-gram with negative sampling (002.word2vec, corrected)
#
# What word2vec actually learns are two vectors per word: `v_w` when the word is the centre
# of a window, and `u_w` when it appears as context. For a centre word `c`, a word `o` seen
# near it, and `K` "negative" words drawn at random, it maximises
# `log σ(u_oᵀ v_c) + Σ_k log σ(−u_kᵀ v_c)`. Training minimises the negative,
#
#     J = −log σ(u_oᵀ v_c) − Σ_k log σ(−u_kᵀ v_c),
#
# which pulls the true context towards the centre and pushes the random words away. Small
# numbers first, by hand and with two `tinylm.nn.Embedding` tables:

# %%
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


n_words, c, o, negs = 5, 0, 1, np.array([3, 4, 3])     # word 3 drawn twice as a negative
V0 = np.array([[0.5, -0.2, 0.1], [0.3, 0.1, 0.0], [0.0, 0.2, 0.2], [-0.1, 0.4, 0.3], [0.2, 0.2, -0.5]])
U0 = np.array([[0.1, 0.1, 0.1], [0.4, 0.3, -0.1], [0.2, 0.0, 0.1], [-0.3, 0.2, 0.5], [0.1, -0.4, 0.2]])
J_hand = -np.log(sigmoid(U0[o] @ V0[c])) - np.log(sigmoid(-U0[negs] @ V0[c])).sum()


def sgns_loss(V, U):
    v = tinylm.nn.functional.embedding(np.array(c), V)
    u_o = tinylm.nn.functional.embedding(np.array(o), U)
    u_neg = tinylm.nn.functional.embedding(negs, U)
    return -((u_o * v).sum().sigmoid().log() + (-(u_neg @ v)).sigmoid().log().sum())


V_emb, U_emb = Embedding(n_words, 3), Embedding(n_words, 3)
V_emb.weight.data, U_emb.weight.data = V0.copy(), U0.copy()
J_tinylm = sgns_loss(V_emb.weight, U_emb.weight).item()
print(f"J by hand {J_hand:.6f}, with tinylm {J_tinylm:.6f}")
check("the skip-gram loss by hand equals tinylm's", np.isclose(J_hand, J_tinylm))

# %% [markdown]
# Now derive its gradient. Use `d/dx [−log σ(x)] = σ(x) − 1` and `d/dx [−log σ(−x)] = σ(x)`,
# then the chain rule through the dot products. Return the gradients with respect to `v_c`,
# `u_o`, and each row of `u_neg` (one row per negative draw):

# %%
def sgns_gradients(v_c, u_o, u_neg):
    """dJ/dv_c (d,), dJ/du_o (d,), dJ/du_neg (K, d) of J = -log σ(u_o·v_c) - Σ_k log σ(-u_k·v_c)."""
    # BEGIN SOLUTION hint: d/dx[-log σ(x)] = σ(x) - 1 and d/dx[-log σ(-x)] = σ(x); then chain through x = u·v_c
    s_pos = sigmoid(u_o @ v_c)
    s_neg = sigmoid(u_neg @ v_c)
    return (s_pos - 1) * u_o + s_neg @ u_neg, (s_pos - 1) * v_c, np.outer(s_neg, v_c)
    # END SOLUTION


def sgns_three_ways():
    """Autograd vs central differences vs your formula, scattered into the two tables."""
    def formula(grad_out, V, U):
        g_v, g_o, g_neg = sgns_gradients(V[c], U[o], U[negs])
        GV, GU = np.zeros_like(V), np.zeros_like(U)
        GV[c] = g_v
        GU[o] += g_o
        np.add.at(GU, negs, g_neg)                   # a word drawn twice collects both rows
        return {"V": grad_out * GV, "U": grad_out * GU}

    result = compare(sgns_loss, formula, {"V": tinylm.Tensor(V0, requires_grad=True),
                                          "U": tinylm.Tensor(U0, requires_grad=True)})
    print(result.table("skip-gram J: autograd vs numeric vs your formula"))
    return result.passed


graded("your skip-gram gradient passes the three-way check", lambda: sgns_three_ways())
graded("your dJ/du_o is (σ(u_o·v_c) − 1) v_c at a second point",
       lambda: np.allclose(sgns_gradients(U0[2], V0[4], U0[:2])[1], (sigmoid(V0[4] @ U0[2]) - 1) * U0[2]))

# %% [markdown]
# ### Training a tiny skip-gram
#
# The corpus is made up: 300 four-word sentences in two topics. Fruit sentences use
# {吃, 甜, 新鲜, 果汁} around a fruit, and travel sentences use {坐, 快, 出发, 车票} around a
# vehicle. Fruits never share a sentence with vehicles, but fruits share contexts with
# other fruits. Skip-gram should therefore place 苹果 near 香蕉 and far from 汽车.
# Similarity is measured with the cosine of the centre vectors `v`.

# %%
topics = [(["苹果", "香蕉", "葡萄", "西瓜"], ["吃", "甜", "新鲜", "果汁"]),
          (["汽车", "火车", "飞机", "轮船"], ["坐", "快", "出发", "车票"])]
subjects = ["我", "你", "他", "她"]
corpus = []
for _ in range(300):
    items, context = topics[rng.integers(2)]
    corpus.append([subjects[rng.integers(4)], context[rng.integers(4)], items[rng.integers(4)],
                   context[rng.integers(4)]])
words_sg = sorted({w for s in corpus for w in s})
index = {w: i for i, w in enumerate(words_sg)}
pairs = np.array([(index[s[i]], index[s[j]]) for s in corpus for i in range(len(s))
                  for j in range(max(0, i - 2), min(len(s), i + 3)) if j != i])   # window of 2
noise = np.bincount(pairs[:, 1], minlength=len(words_sg)) ** 0.75    # negatives ~ unigram^¾
noise = noise / noise.sum()
items = [index[w] for w in topics[0][0] + topics[1][0]]
same_topic = np.equal.outer(np.arange(8) < 4, np.arange(8) < 4) & ~np.eye(8, dtype=bool)


def topic_cosines(table):
    vecs = table[items] / np.linalg.norm(table[items], axis=1, keepdims=True)
    sims = vecs @ vecs.T
    return sims[same_topic].mean(), sims[~same_topic & ~np.eye(8, dtype=bool)].mean()


d, K, batch = 8, 4, 256
V_sg, U_sg = Embedding(len(words_sg), d), Embedding(len(words_sg), d)
V_sg.weight.data = 0.1 * rng.standard_normal((len(words_sg), d)).astype(np.float32)
U_sg.weight.data = np.zeros((len(words_sg), d), dtype=np.float32)
before = topic_cosines(V_sg.weight.numpy())
opt = Adam([V_sg.weight, U_sg.weight], lr=0.05)
sg_losses = []
for step in range(60 if fast() else 200):
    pick = pairs[rng.integers(0, len(pairs), batch)]
    neg = rng.choice(len(words_sg), size=(batch, K), p=noise)
    v = V_sg(pick[:, 0])                                           # (B, d) centre vectors
    pos = (v * U_sg(pick[:, 1])).sum(-1)                           # u_oᵀ v_c
    neg_scores = (U_sg(neg) @ v.unsqueeze(-1)).squeeze(-1)         # u_kᵀ v_c, (B, K)
    loss = -(pos.sigmoid().log().mean() + (-neg_scores).sigmoid().log().sum(-1).mean())
    opt.zero_grad()
    loss.backward()
    opt.step()
    sg_losses.append(loss.item())
after = topic_cosines(V_sg.weight.numpy())
print(f"loss {sg_losses[0]:.3f} -> {sg_losses[-1]:.3f}")
print(f"cosine within a topic / across topics: before {before[0]:+.2f} / {before[1]:+.2f}, "
      f"after {after[0]:+.2f} / {after[1]:+.2f}")
vecs = V_sg.weight.numpy() / np.linalg.norm(V_sg.weight.numpy(), axis=1, keepdims=True)
print("nearest to 苹果:", [words_sg[i] for i in np.argsort(-(vecs @ vecs[index["苹果"]]))[1:4]])
check("the skip-gram loss went down", sg_losses[-1] < 0.8 * sg_losses[0])
check("after training, same-topic words are much closer than cross-topic ones", after[0] - after[1] > 0.5)
check("...which they were not before training", before[0] - before[1] < 0.3)

# %% [markdown]
# ## GloVe: the article's formula has no objective (002.glove)
#
# The article's second formula is `embed_i = softmax(A·[h_1 … h_n])`. Every output of a
# softmax is positive, and the outputs sum to 1. The vectors are therefore stuck on a triangle
# (a 2-d simplex) inside 3-d space. Two of them can never point in opposite directions, so
# every cosine is positive. The formula also never mentions the text: nothing in it says
# which words occur together.

# %%
A = np.random.default_rng(2).standard_normal((3, 10))
soft = tinylm.nn.functional.softmax(tinylm.Tensor(A.T), dim=-1).numpy()   # row i = softmax(A h_i)
unit = soft / np.linalg.norm(soft, axis=1, keepdims=True)
print(f"smallest cosine between two of these 'embeddings': {(unit @ unit.T).min():.3f}")
check("every softmax 'embedding' sums to 1 (only 2 free coordinates)", np.allclose(soft.sum(1), 1))
check("no two of them can be dissimilar: every cosine is positive", (unit @ unit.T).min() > 0)

# %% [markdown]
# ### GloVe's weighted least squares (002.glove, corrected)
#
# GloVe starts from co-occurrence counts: `X_ij` = how often word j appears near word i,
# with a neighbour at distance d counting 1/d. Each word gets two vectors, `w_i` and `w̃_j`,
# and two biases. These are fitted so that `w_iᵀ w̃_j + b_i + b̃_j ≈ log X_ij`:
#
#     J = Σ_{X_ij > 0} f(X_ij) (w_iᵀ w̃_j + b_i + b̃_j − log X_ij)²,   f(x) = min(1, (x / x_max)^¾)
#
# The weight f keeps rare, noisy pairs from counting as much as frequent ones. First the
# counts, from the four segmented sentences with a window of 2:

# %%
glove_words = sorted({w for toks in segmented for w in toks})
gi = {w: i for i, w in enumerate(glove_words)}
X = np.zeros((len(glove_words), len(glove_words)))
for toks in segmented:
    for i, w in enumerate(toks):
        for j in range(max(0, i - 2), min(len(toks), i + 3)):
            if j != i:
                X[gi[w], gi[toks[j]]] += 1 / abs(i - j)
print("neighbours of 水果:", {w: float(X[gi["水果"], gi[w]]) for w in glove_words if X[gi["水果"], gi[w]]})
check("the counts are symmetric", np.allclose(X, X.T))

x_max = 2.0
f = np.where(X > 0, np.minimum(1.0, (X / x_max) ** 0.75), 0.0)   # f(0) = 0: absent pairs drop out
logX = np.log(np.where(X > 0, X, 1.0))
n_g, d_g = len(glove_words), 3
g_rng = np.random.default_rng(3)
W0, Wt0 = 0.3 * g_rng.standard_normal((n_g, d_g)), 0.3 * g_rng.standard_normal((n_g, d_g))
b0, bt0 = np.zeros(n_g), np.zeros(n_g)

err = W0 @ Wt0.T + b0[:, None] + bt0[None, :] - logX
J_glove_hand = (f * err ** 2).sum()


def glove_loss(W, Wt, b, bt):
    e = W @ Wt.T + b.unsqueeze(1) + bt.unsqueeze(0) - tinylm.Tensor(logX)
    return (tinylm.Tensor(f) * e ** 2).sum()


J_glove = glove_loss(*(tinylm.Tensor(a) for a in (W0, Wt0, b0, bt0))).item()
print(f"GloVe loss by hand {J_glove_hand:.6f}, with tinylm {J_glove:.6f}")
check("the GloVe loss by hand equals tinylm's", np.isclose(J_glove_hand, J_glove))

# %% [markdown]
# Its gradient by hand: let `M = 2 f ⊙ (W W̃ᵀ + b + b̃ᵀ − log X)`. Then `∂J/∂W = M W̃`,
# `∂J/∂W̃ = Mᵀ W`, `∂J/∂b = M 1` (row sums) and `∂J/∂b̃ = Mᵀ 1` (column sums).

# %%
def glove_formula(grad_out, W, Wt, b, bt):
    M = 2 * f * (W @ Wt.T + b[:, None] + bt[None, :] - logX)
    return {"W": grad_out * M @ Wt, "Wt": grad_out * M.T @ W, "b": grad_out * M.sum(1), "bt": grad_out * M.sum(0)}


report = compare(glove_loss, glove_formula, {name: tinylm.Tensor(a, requires_grad=True)
                                             for name, a in zip(("W", "Wt", "b", "bt"), (W0, Wt0, b0, bt0))})
print(report.table("GloVe J: autograd vs numeric vs the hand formula"))
check("GloVe's gradient, three ways", report.passed)

# %% [markdown]
# A few steps of training with tinylm's Adam lower the loss:

# %%
params = [tinylm.Tensor(a.copy(), requires_grad=True) for a in (W0, Wt0, b0, bt0)]
opt = Adam(params, lr=0.05)
glove_losses = []
for step in range(50 if fast() else 200):
    loss = glove_loss(*params)
    opt.zero_grad()
    loss.backward()
    opt.step()
    glove_losses.append(loss.item())
print(f"GloVe loss {glove_losses[0]:.4f} -> {glove_losses[-1]:.4f}")
check("training lowers GloVe's loss", glove_losses[-1] < 0.2 * glove_losses[0])

try:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].plot(sg_losses)
    axes[0].set_title("skip-gram J")
    axes[1].semilogy(glove_losses)
    axes[1].set_title("GloVe J")
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    picture(fig, "08_embedding_losses.png")
except ImportError:
    print("(matplotlib not installed: no loss plot)")
