# %% [markdown]
# # 数据并行 Data parallelism by hand: split the batch, all-reduce the gradients, shard the optimizer (001.compress)
#
# 术语 Glossary (Chinese — English):
#
# | 中文 | English |
# |---|---|
# | 分布式训练 | distributed training |
# | 数据并行 | data parallelism |
# | 进程 / 秩 | process / rank (its number, 0 … N−1) |
# | 全局批量 / 分片 | global batch / shard (one rank's slice of it) |
# | 全归约 | all-reduce (every rank ends with the sum, or mean, of all ranks' arrays) |
# | 归约散射 | reduce-scatter (every rank ends with the sum of one chunk) |
# | 全收集 | all-gather (every rank ends with every rank's chunk) |
# | 环形全归约 | ring all-reduce |
# | 通信量 | communication volume, traffic |
# | 延迟 / 带宽 | latency (α) / bandwidth (1/β) |
# | 优化器状态 | optimizer state (Adam's two moments) |
# | 零冗余优化器 | ZeRO, the Zero Redundancy Optimizer |
# | 扩展效率 | scaling efficiency |
#
# Article 001 (§9.9) lists 分布式训练和推理 (distributed training and inference) among the ways
# to scale (**001.compress**). Lesson 16 showed the core fact on two replicas: averaging their
# gradients gives the big batch's gradient. This lesson takes it apart:
#
# 1. why the average is exact, on four ranks of a small GPT, and where it stops being exact
#    (a loss averaged over a number of counted tokens that differs between ranks);
# 2. how the average travels: ring all-reduce, a reduce-scatter then an all-gather, step by
#    step on four simulated ranks in NumPy, with the traffic of each rank counted;
# 3. what ZeRO stage 1 saves: Adam's moments split across the ranks.
#
# The real thing is `tinylm train --nproc 2` (tinylm/distributed.py, over MPI), and
# `tinylm bench ddp` measures the all-reduce here and projects it to clusters. You write three
# pieces: the mean of the ranks' gradients, its token-weighted form, and one reduce-scatter step.

# %%
import numpy as np

import tinylm
from tinylm.bench_ddp import GPT2_SMALL, NETWORKS, gpt_parameters, ring_allreduce_seconds
from tinylm.distributed import partition
from tinylm.lesson import check, graded
from tinylm.models import GPT, GPTConfig
from tinylm.optim import AdamW
from tinylm.table import format_table

rng = np.random.default_rng(0)
tinylm.manual_seed(0)

# %% [markdown]
# ## 切分批量 Split the batch, average the gradients
#
# Each of N ranks holds the same weights and takes its 1/N of the global batch: rank r gets
# rows `[r·B/N, (r+1)·B/N)`. The loss is a mean over the B·T predicted tokens. When every
# shard holds the same number of tokens,
#
#     L = (1/BT) Σ_i ℓ_i = (1/N) Σ_r [ (N/BT) Σ_{i in shard r} ℓ_i ] = (1/N) Σ_r L_r
#
# and since the gradient is linear, `∇L = (1/N) Σ_r ∇L_r`: the mean of the shards'
# gradients. That mean is what an all-reduce computes. A tiny GPT in float64, a batch of 8
# sequences, four ranks of two sequences each:

# %%
config = GPTConfig(vocab_size=32, block_size=8, n_layer=1, n_head=2, n_embd=16)
model = GPT(config).double()
B, T, N = 8, 8, 4
x = rng.integers(0, 32, (B, T))
y = rng.integers(0, 32, (B, T))
shards = [slice(r * B // N, (r + 1) * B // N) for r in range(N)]


def gradients(x, y):
    """{name: dL/dparameter} of the model's loss on (x, y), and the loss."""
    model.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    return {name: p.grad.numpy().copy() for name, p in model.named_parameters()}, loss.item()


full, full_loss = gradients(x, y)
per_rank = [gradients(x[s], y[s]) for s in shards]
rank_grads = [g for g, _ in per_rank]
print("full-batch loss", full_loss, " the ranks' losses", [round(loss, 4) for _, loss in per_rank])
check("the full batch's loss is the mean of the four shards' losses",
      np.isclose(full_loss, np.mean([loss for _, loss in per_rank]), rtol=1e-12))
check("but no single shard's gradient is the full batch's",
      not any(np.allclose(g["h.0.mlp.c_fc.weight"], full["h.0.mlp.c_fc.weight"]) for g in rank_grads))


# %%
def all_reduce_mean(grads_per_rank):
    """{name: the mean over ranks} of a list of {name: gradient array} dicts, one per rank."""
    # BEGIN SOLUTION hint: for each name, add up the ranks' arrays and divide by the number of ranks
    return {name: sum(g[name] for g in grads_per_rank) / len(grads_per_rank) for name in grads_per_rank[0]}
    # END SOLUTION


def same_as_full(grads, reference=None):
    reference = full if reference is None else reference
    return all(np.allclose(grads[name], reference[name], rtol=1e-10, atol=1e-13) for name in reference)


graded("the mean of the four ranks' gradients is the full batch's gradient",
       lambda: same_as_full(all_reduce_mean(rank_grads)))
graded("and stays so for 2 and 8 ranks",
       lambda: all(same_as_full(all_reduce_mean([gradients(x[r * B // n:(r + 1) * B // n],
                                                           y[r * B // n:(r + 1) * B // n])[0] for r in range(n)]))
                   for n in (2, 8)))

# %% [markdown]
# Every rank then takes the same optimizer step from the same weights with the same
# gradient, so the ranks stay identical without ever sending weights (only at the start,
# when rank 0 broadcasts its initial weights). `tinylm train --nproc N` does exactly this:
# `--batch-size` stays the global batch, every rank draws it from the same seeded generator
# and computes on its slice.
#
# ## 不等的词元数 Where it breaks: a different number of counted tokens per rank
#
# The identity needs equal shares. Padding breaks it: targets equal to −1 are not predicted
# and not counted (`ignore_index`), so the loss is a sum over the *counted* tokens divided by
# their number. If rank r counts n_r tokens, its loss is `L_r = (1/n_r) Σ_{i in r} ℓ_i` and the
# full batch's is `L = (1/Σn_r) Σ_i ℓ_i = Σ_r (n_r/Σn) L_r`: a *weighted* mean. The plain mean
# of the rank gradients gives each rank's tokens the weight 1/(N·n_r), too much for a rank
# with few tokens. Lesson 13 met the same problem in gradient accumulation. Below, rank 0 has
# no padding and rank 2 keeps only 2 of its 16 targets:

# %%
y_pad = y.copy()
y_pad[2:4, 4:] = -1        # rank 1: 8 of 16 counted
y_pad[4:6, :7] = -1        # rank 2: 2 of 16
y_pad[6:8, 2:] = -1        # rank 3: 4 of 16
counts = [int((y_pad[s] != -1).sum()) for s in shards]
full_pad, _ = gradients(x, y_pad)
rank_pad = [gradients(x[s], y_pad[s])[0] for s in shards]
plain = {name: np.mean([g[name] for g in rank_pad], axis=0) for name in full_pad}
worst = max(np.abs(plain[n] - full_pad[n]).max() / np.abs(full_pad[n]).max() for n in full_pad)
print("counted tokens per rank:", counts, f" plain mean vs full batch: up to {worst:.0%} of the largest entry off")
check("with unequal counts, the plain mean is not the full batch's gradient", not same_as_full(plain, full_pad))


# %%
def all_reduce_weighted(grads_per_rank, counts):
    """{name: Σ_r n_r·g_r / Σ_r n_r}: each rank's gradient weighted by its number of counted tokens."""
    # BEGIN SOLUTION hint: multiply each rank's arrays by its count, add them up, divide by the sum of the counts
    total = sum(counts)
    return {name: sum(n * g[name] for n, g in zip(counts, grads_per_rank)) / total for name in grads_per_rank[0]}
    # END SOLUTION


graded("weighting each rank by its counted tokens gives the full batch's gradient",
       lambda: same_as_full(all_reduce_weighted(rank_pad, counts), full_pad))
graded("with equal counts the weighted mean is the plain mean",
       lambda: same_as_full(all_reduce_weighted(rank_grads, [16] * N)))

# %% [markdown]
# Over a network, the weighted mean costs one more all-reduce: each rank multiplies its
# gradient by n_r before the gradient all-reduce (a sum), and the sum Σ n_r travels as a
# second, one-number all-reduce. PyTorch's DistributedDataParallel does not do this for you:
# it averages per rank, so a masked language model (whose counted tokens differ from rank
# to rank) trains on the weighted-by-rank mean, not the big batch's gradient. tinylm's
# `distributed` does the same, and says so. The causal LM of `tinylm train` has no padding,
# so there every rank counts B·T/N tokens and the plain mean is exact.
#
# ## 环形全归约 Ring all-reduce, step by step
#
# The simplest all-reduce sends every gradient to rank 0, which adds them and sends the sum
# back: rank 0 receives and sends (N−1)·n values, so its link is the bottleneck and the time
# grows with N. The *ring* (Baidu brought it to deep learning from HPC, Horovod made it common)
# keeps every link equally busy. The ranks stand in a circle, rank r sends only to r+1 (mod N),
# and each rank's array is cut into N chunks.
#
# * **Reduce-scatter**, N−1 steps. At step s, every rank r sends chunk `(r − s) mod N` to rank
#   r+1, which adds it to its own copy of that chunk. All ranks send at the same time. A chunk
#   travelling round the ring collects one more rank's values per step. After N−1 steps rank r
#   holds the complete sum of chunk `(r + 1) mod N`.
# * **All-gather**, N−1 steps. At step s, rank r sends chunk `(r + 1 − s) mod N`, a complete
#   one, to r+1, which overwrites its copy. After N−1 steps every rank holds every sum.
#
# Each step, each rank sends one chunk, n/N values. 2(N−1) steps send `2(N−1)/N · n` values
# per rank: less than 2n, however many ranks there are.
#
# Below, rank r's value in chunk c is `(c+1)·10^r`. The digits of a partial sum then show
# which ranks it holds: 4044 in chunk 3 holds ranks 0, 1 and 3. Each rank's buffer is an array
# of shape (N, n/N), one row per chunk.

# %%
def reduce_scatter_step(buffers, step):
    """One step of reduce-scatter, in place: every rank r sends its chunk (r − step) mod N to
    rank (r + 1) mod N, which adds it to its own chunk. All ranks send at once, so read every
    message before adding any. Returns the number of values one rank sent."""
    # BEGIN SOLUTION hint: N = len(buffers); messages = [(r, c, buffers[r][c].copy()) with c = (r − step) % N]; then buffers[(r + 1) % N][c] += data; return the size of one message
    n = len(buffers)
    messages = [(r, (r - step) % n, buffers[r][(r - step) % n].copy()) for r in range(n)]
    for r, c, data in messages:
        buffers[(r + 1) % n][c] += data
    return messages[0][2].size
    # END SOLUTION


def all_gather_step(buffers, step):
    """One step of all-gather, in place: every rank r sends its complete chunk (r + 1 − step) mod N
    to rank (r + 1) mod N, which overwrites its copy. Returns the number of values one rank sent."""
    n = len(buffers)
    messages = [(r, (r + 1 - step) % n, buffers[r][(r + 1 - step) % n].copy()) for r in range(n)]
    for r, c, data in messages:
        buffers[(r + 1) % n][c] = data
    return messages[0][2].size


def ring_all_reduce(arrays, show=False):
    """Sum the ranks' 1-D arrays with a ring (each cut into N chunks). Returns (each rank's result,
    the values each rank sent). show=True prints every rank's chunks after every step."""
    n = len(arrays)
    buffers = [a.astype(np.int64 if a.dtype.kind == "i" else np.float64).reshape(n, -1).copy() for a in arrays]
    sent = 0
    for phase, step_fn in (("reduce-scatter", reduce_scatter_step), ("all-gather", all_gather_step)):
        for step in range(n - 1):
            sent += step_fn(buffers, step)
            if show:
                print(f"{phase} step {step}")
                print(format_table(["rank", *[f"chunk {c}" for c in range(n)]],
                                   [[r, *(" ".join(map(str, chunk)) for chunk in b)] for r, b in enumerate(buffers)]))
    return [b.reshape(-1) for b in buffers], sent


def rank_values(n):
    """Rank r's array: (c + 1)·10^r in chunk c (one value per chunk)."""
    return [np.array([(c + 1) * 10 ** r for c in range(n)]) for r in range(n)]


print(format_table(["rank", *[f"chunk {c}" for c in range(N)]], [[r, *a] for r, a in enumerate(rank_values(N))]))

# %% [markdown]
# The all-gather alone first: start from the state a reduce-scatter leaves (rank r holding the
# complete sum of chunk r+1, its other chunks still its own values) and let it run.

# %%
start = [a.reshape(N, 1).copy() for a in rank_values(N)]
sums = sum(rank_values(N))                                    # [1111, 2222, 3333, 4444]
for r in range(N):
    start[r][(r + 1) % N] = sums[(r + 1) % N]
gathered_sent = sum(all_gather_step(start, step) for step in range(N - 1))
check("after N−1 all-gather steps every rank holds every chunk's sum",
      all(np.array_equal(b.reshape(-1), sums) for b in start))
check("and each rank sent (N−1)/N of the array: 3 of 4 values", gathered_sent == (N - 1) * 4 // N == 3)


# %%
def reduce_scatter_leaves_one_sum_per_rank():
    buffers = [a.reshape(N, 1).copy() for a in rank_values(N)]
    for step in range(N - 1):
        reduce_scatter_step(buffers, step)
    return all(buffers[r][(r + 1) % N, 0] == sums[(r + 1) % N] for r in range(N))


def ring_sums_and_traffic(n, length):
    arrays = [rng.standard_normal(length) for _ in range(n)]
    results, sent = ring_all_reduce(arrays)
    return all(np.allclose(res, sum(arrays)) for res in results) and sent == 2 * (n - 1) * length // n


graded("after N−1 reduce-scatter steps, rank r holds the complete sum of chunk (r+1) mod N",
       reduce_scatter_leaves_one_sum_per_rank)
graded("ring all-reduce gives every rank the sum (the digits example)",
       lambda: all(np.array_equal(res, sums) for res in ring_all_reduce(rank_values(N), show=True)[0]))
graded("on 2, 3, 4 and 8 ranks, each rank sends 2(N−1)/N·n values and every rank gets the sum",
       lambda: all(ring_sums_and_traffic(n, 24 * n) for n in (2, 3, 4, 8)))

# %% [markdown]
# ## 通信时间 What the ring costs: the α–β model
#
# A message of m bytes takes `α + m·β`: a fixed latency α, then β seconds per byte (1/β is
# the bandwidth). The ring takes 2(N−1) steps of n/N bytes each:
#
#     T(n) = 2(N−1)·α + 2(N−1)/N · n·β
#
# The bandwidth term hardly grows with N, since 2(N−1)/N < 2. The latency term grows as
# 2(N−1). A model sends its gradients in a few large buckets (tinylm, like PyTorch, in
# buckets of 25 MiB), and each bucket pays the latency term. The 124M-parameter GPT-2 small
# has about 498 MB of float32 gradients. Here is its all-reduce on the networks `tinylm bench
# ddp` assumes (β from the line rate, α an assumption; the bench also measures α and β of
# this machine's MPI):

# %%
p_124m = gpt_parameters(**GPT2_SMALL)
grad_bytes = 4 * p_124m
buckets = -(-grad_bytes // (25 * 2 ** 20))                      # ceil
rows = []
for name, (alpha, rate) in NETWORKS.items():
    for hosts in (8, 64, 512):
        latency = buckets * 2 * (hosts - 1) * alpha
        bandwidth = 2 * (hosts - 1) / hosts * grad_bytes * 8 / rate
        rows.append([name, hosts, f"{latency * 1e3:.2f} ms", f"{bandwidth * 1e3:.1f} ms",
                     f"{ring_allreduce_seconds(grad_bytes, hosts, alpha, 8 / rate, buckets) * 1e3:.1f} ms"])
print(f"GPT-2 small: {p_124m:,} parameters, {grad_bytes / 1e6:.0f} MB of gradients in {buckets} buckets")
print(format_table(["network", "hosts", "latency term", "bandwidth term", "all-reduce"], rows))
alpha, rate = NETWORKS["25 Gb/s Ethernet"]
check("from 8 to 512 hosts the bandwidth term grows by (2·511/512)/(2·7/8) ≈ 1.14 only",
      np.isclose((511 / 512) / (7 / 8), 1.1406, atol=1e-4))
check("while the latency term grows 511/7 = 73 times",
      np.isclose(ring_allreduce_seconds(grad_bytes, 512, alpha, 0, buckets)
                 / ring_allreduce_seconds(grad_bytes, 8, alpha, 0, buckets), 73))

# %% [markdown]
# Compute per step is about 6·P FLOPs per token (2·P forward, 4·P backward), so the share
# of time spent talking depends on how fast a host computes: a slow host hides any network,
# a fast GPU exposes it. `tinylm bench ddp` prints that projection as a table and a picture.
# Large clusters cut the latency term with trees and hierarchies (a ring inside each machine,
# another between machines) and hide the rest by starting each bucket's all-reduce while the
# backward pass is still computing earlier layers.
#
# ## 零冗余优化器 What ZeRO-1 saves
#
# Plain data parallelism keeps N identical copies of everything: the weights, the gradients
# and the optimizer state. Adam's state is two moments per parameter (m and v), in float32 8
# bytes per parameter, twice the weights. ZeRO stage 1 splits the *optimizer state*: rank r
# keeps the moments of its 1/N of the parameters, updates only those parameters, and then
# shares the updated weights with the others (an all-gather). The gradients needed are the
# reduce-scatter's output, so a ZeRO-1 step moves as many bytes as a plain all-reduce.
#
# First the real state of tinylm's AdamW on the default GPT (`tinylm train`'s model), after
# one step:

# %%
gpt = GPT(GPTConfig())
params = list(gpt.parameters())
P = sum(p.numel() for p in params)
ids = rng.integers(0, 65, (2, 65))
gpt(ids[:, :-1], ids[:, 1:])[1].backward()
adam = AdamW(params, lr=1e-3)
adam.step()
state_bytes = sum(a.nbytes for s in adam.state.values() for a in s.values() if isinstance(a, np.ndarray))
print(f"default GPT: {P:,} parameters, {sum(p.data.nbytes for p in params):,} bytes of weights, "
      f"{state_bytes:,} bytes of Adam state")
check("Adam keeps two float32 moments: 8 bytes per parameter", state_bytes == 8 * P == 6_478_848)

# %% [markdown]
# Split the parameters, in order, into N groups of about equal size (a parameter stays whole):
# each rank owns one group's moments.

# %%
sizes = [p.numel() for p in params]
owner, done = [], 0
for size in sizes:                                         # a group closes once it reaches its fair share
    owner.append(min(N - 1, int(done * N // P)))
    done += size
per_rank_bytes = [8 * sum(s for s, o in zip(sizes, owner) if o == r) for r in range(N)]
print("Adam state per rank, ZeRO-1 on 4 ranks:", per_rank_bytes, " even split:", 8 * P // N)
check("the four shards hold all the state, none twice", sum(per_rank_bytes) == state_bytes)
check("each rank keeps about a quarter (within the largest parameter, 128·512 values)",
      max(abs(b - state_bytes / N) for b in per_rank_bytes) <= 8 * max(sizes))
check("tinylm's Trainer splits them the same way (tinylm.distributed.partition)", owner == partition(sizes, N))

# %% [markdown]
# Per rank, in float32: weights 4P, gradients 4P, Adam state 8P, that is 16 bytes per parameter
# without ZeRO and `8P + 8P/N` with ZeRO-1:

# %%
rows = []
for name, count in (("default GPT", P), ("GPT-2 small", p_124m)):
    for ranks in (4, 8, 64):
        rows.append([name, f"{count:,}", ranks, f"{8 * count / 1e6:,.1f} MB", f"{8 * count / ranks / 1e6:,.2f} MB",
                     f"{16 * count / 1e6:,.1f} MB", f"{(8 * count + 8 * count / ranks) / 1e6:,.1f} MB"])
print(format_table(["model", "parameters", "ranks", "Adam state", "ZeRO-1 per rank", "total per rank",
                    "total, ZeRO-1"], rows))
check("GPT-2 small: 995.5 MB of Adam state, 124.4 MB per rank on 8 ranks",
      round(8 * p_124m / 1e6, 1) == 995.5 and round(8 * p_124m / 8 / 1e6, 1) == 124.4)
check("so ZeRO-1 takes a rank's memory from 16 towards 8 bytes per parameter",
      np.isclose((8 * p_124m + 8 * p_124m / 64) / p_124m, 8.125))

# %% [markdown]
# With mixed precision (tinylm's `--amp`), the optimizer also keeps a float32 master copy of
# the weights: 12 bytes per parameter of state, all of which ZeRO-1 splits. ZeRO stage 2
# splits the gradients as well (each rank keeps only the reduce-scatter's chunk it owns), and
# stage 3 the weights themselves, fetched layer by layer when needed. `tinylm train --nproc 2
# --zero 1` runs stage 1 and prints the optimizer state a rank keeps.
