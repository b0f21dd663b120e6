"""`tinylm bench train`: training speed against the same model in PyTorch eager.

Both train nanoGPT's small CPU GPT (n_layer 4, n_head 4, n_embd 128, block_size 64,
batch_size 12, dropout 0, AdamW, float32) on the same batches of the embedded corpus, or
(--model llama) a Llama of the same sizes: RMSNorm, rotary positions, a SwiGLU MLP of
LlamaConfig's default width (352), grouped-query attention with 2 key/value heads, the head
tied to the embedding. Each runs in its own process, so its peak memory (maximum resident set
size) is its own. With --converge both train for the full schedule and report the validation loss.
With device "cuda" both train on the GPU (tinylm through CuPy, PyTorch through its CUDA build): each
step's loss.item() waits for the GPU, so the time is the GPU's; the memory column is then the
device memory each framework's allocator holds at the end (its peak: neither hands memory back).

The PyTorch models (torch_model) are written here in plain torch, with tinylm's parameter
names, so a tinylm state dict loads into them (tests/test_bench_train.py checks that the two
compute the same logits and loss).
"""
import json
import math
import subprocess
import sys
import time

import numpy as np

from .processes import python_module

RECIPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "lr": 1e-3,
          "min_lr": 1e-4, "warmup_iters": 100, "weight_decay": 0.1, "betas": (0.9, 0.99), "grad_clip": 1.0}
LLAMA = {"n_kv_heads": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-5}  # and LlamaConfig's default MLP width
MODELS = ("gpt", "llama")


def _data():
    from .data import CharTokenizer, default_corpus_text, train_val_split

    text = default_corpus_text()
    tok = CharTokenizer.train(text)
    return tok.vocab_size, *train_val_split(np.asarray(tok.encode(text), dtype=np.int64))


def _batches(data, n, seed):
    from .data import get_batch

    rng = np.random.default_rng(seed)
    return [get_batch(data, RECIPE["batch_size"], RECIPE["block_size"], rng) for _ in range(n)]


def _lr(step, total):
    from .optim import warmup_cosine

    return warmup_cosine(step, RECIPE["lr"], RECIPE["min_lr"], RECIPE["warmup_iters"], total)


# --- tinylm ---------------------------------------------------------------------------------
def tinylm_model(name, vocab):
    """The recipe's GPT or Llama in tinylm (seeded by the caller)."""
    from .models import GPT, GPTConfig, Llama, LlamaConfig

    sizes = {"vocab_size": vocab, "block_size": RECIPE["block_size"], "n_layer": RECIPE["n_layer"],
             "n_head": RECIPE["n_head"], "n_embd": RECIPE["n_embd"], "dropout": 0.0}
    if name == "llama":
        return Llama(LlamaConfig(**sizes, **LLAMA))
    return GPT(GPTConfig(**sizes))


def _run_tinylm(name, steps, converge, device="cpu"):
    import tinylm

    from .backend import check_device
    from .optim import clip_grad_norm_
    from .train import TrainConfig, configure_optimizer

    vocab, train, val = _data()
    tinylm.manual_seed(0)
    # A hand-written loop on purpose, not tinylm.train.Trainer: it mirrors the PyTorch loop below line for
    # line, so the two frameworks are timed on the same work (no checkpoints, evaluations or metrics).
    model = tinylm_model(name, vocab).to(check_device(device))
    opt = configure_optimizer(model.parameters(), TrainConfig(lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"],
                                                 beta1=RECIPE["betas"][0], beta2=RECIPE["betas"][1]))

    def step_fn(i, x, y):
        for g in opt.param_groups:
            g["lr"] = _lr(i, steps)
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(model.parameters(), RECIPE["grad_clip"])
        opt.step()
        opt.zero_grad()
        return loss.item()

    def eval_fn(x, y):
        with tinylm.no_grad():
            return model(x, y)[1].item()

    result = _time(step_fn, eval_fn, steps, converge, train, val)
    if device == "cuda":  # CuPy's memory pool keeps what it allocated: its size is the peak
        import cupy

        result["peak_device_mb"] = cupy.get_default_memory_pool().total_bytes() / 2 ** 20
        result["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return result


# --- PyTorch eager, the same architectures ----------------------------------------------------
def torch_model(name, vocab):
    """The recipe's GPT or Llama in plain PyTorch eager, with tinylm's parameter names and init
    (seeded by the caller). forward(idx, targets) -> the mean cross-entropy; logits(idx) -> logits."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from .models import LlamaConfig

    E, H, T = RECIPE["n_embd"], RECIPE["n_head"], RECIPE["block_size"]

    class LM(nn.Module):
        """What both models share: the loss of their logits, and tinylm's init (N(0, 0.02) matrices,
        the projections into the residual stream N(0, 0.02/√(2 n_layer)), zero biases, norms' gains 1)."""

        def forward(self, idx, targets):
            logits = self.logits(idx)
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

        def init(self, residual_projections):
            for pname, p in self.named_parameters():
                if pname.endswith(residual_projections):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * RECIPE["n_layer"]))
                elif p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif pname.endswith("bias"):
                    nn.init.zeros_(p)

    class GPTBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(E), nn.LayerNorm(E)
            self.c_attn, self.attn_proj = nn.Linear(E, 3 * E), nn.Linear(E, E)
            self.c_fc, self.mlp_proj = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)

        def forward(self, x):
            B, T, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(E, dim=2)
            q, k, v = (t.view(B, T, H, E // H).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(E // H)
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf")).softmax(-1)
            x = x + self.attn_proj((att @ v).transpose(1, 2).reshape(B, T, E))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class GPT(LM):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, E), nn.Embedding(T, E)
            self.h = nn.ModuleList(GPTBlock() for _ in range(RECIPE["n_layer"]))
            self.ln_f, self.lm_head = nn.LayerNorm(E), nn.Linear(E, vocab, bias=False)
            self.lm_head.weight = self.wte.weight
            self.init("proj.weight")

        def logits(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
            for block in self.h:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    # Llama (tinylm.models.llama): x + Attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)); no biases
    d, KV = E // H, LLAMA["n_kv_heads"]
    hidden = LlamaConfig(n_embd=E).hidden_size
    # RoPE as tinylm.nn.RotaryEmbedding: θ_i = base^(-2i/d), the pair (x_i, x_{i+d/2}) of position p
    # rotated by p θ_i; the angles in float64, cos and sin (T, d/2) rounded to float32
    angles = torch.arange(T, dtype=torch.float64)[:, None] * LLAMA["rope_theta"] ** (
        -torch.arange(0, d, 2, dtype=torch.float64) / d)

    class Rotary(nn.Module):
        """cos and sin as buffers (not saved: no parameters), so they go where the model goes."""

        def __init__(self):
            super().__init__()
            self.register_buffer("cos", angles.cos().float(), persistent=False)
            self.register_buffer("sin", angles.sin().float(), persistent=False)

        def forward(self, x):  # x (B, heads, T, d)
            c, s = self.cos[:x.shape[-2]], self.sin[:x.shape[-2]]
            x1, x2 = x[..., :d // 2], x[..., d // 2:]
            return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj, self.o_proj = nn.Linear(E, E, bias=False), nn.Linear(E, E, bias=False)
            self.k_proj, self.v_proj = nn.Linear(E, KV * d, bias=False), nn.Linear(E, KV * d, bias=False)
            self.rope = Rotary()

        def forward(self, x):
            B, T, _ = x.shape
            q = self.rope(self.q_proj(x).view(B, T, H, d).transpose(1, 2))
            k = self.rope(self.k_proj(x).view(B, T, KV, d).transpose(1, 2))
            v = self.v_proj(x).view(B, T, KV, d).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)  # query head i: kv i // (H/KV)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, E))

    class SwiGLU(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj = nn.Linear(E, hidden, bias=False), nn.Linear(E, hidden, bias=False)
            self.down_proj = nn.Linear(hidden, E, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class LlamaLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = nn.RMSNorm(E, eps=LLAMA["rms_norm_eps"])
            self.post_attention_layernorm = nn.RMSNorm(E, eps=LLAMA["rms_norm_eps"])
            self.self_attn, self.mlp = Attention(), SwiGLU()

        def forward(self, x):
            x = x + self.self_attn(self.input_layernorm(x))
            return x + self.mlp(self.post_attention_layernorm(x))

    class Llama(LM):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(vocab, E)
            self.layers = nn.ModuleList(LlamaLayer() for _ in range(RECIPE["n_layer"]))
            self.norm = nn.RMSNorm(E, eps=LLAMA["rms_norm_eps"])
            self.lm_head = nn.Linear(E, vocab, bias=False)
            self.lm_head.weight = self.embed_tokens.weight
            self.init(("o_proj.weight", "down_proj.weight"))

        def logits(self, idx):
            x = self.embed_tokens(idx)
            for layer in self.layers:
                x = layer(x)
            return self.lm_head(self.norm(x))

    return {"gpt": GPT, "llama": Llama}[name]()


def _run_torch(name, steps, converge, device="cpu"):
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"PyTorch {torch.__version__} has no CUDA device here (torch.cuda.is_available() is "
                           "False): the GPU comparison needs PyTorch's CUDA build")
    vocab, train, val = _data()
    torch.manual_seed(0)
    model = torch_model(name, vocab).to(device)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": RECIPE["weight_decay"]},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=RECIPE["lr"], betas=RECIPE["betas"])

    def step_fn(i, x, y):
        for g in opt.param_groups:
            g["lr"] = _lr(i, steps)
        loss = model(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, RECIPE["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    def eval_fn(x, y):
        with torch.no_grad():
            return model(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)).item()

    result = _time(step_fn, eval_fn, steps, converge, train, val)
    if device == "cuda":
        result["peak_device_mb"] = torch.cuda.max_memory_reserved() / 2 ** 20
        result["gpu"] = torch.cuda.get_device_name()
    return result


def _time(step_fn, eval_fn, steps, converge, train, val):
    """Warm up 3 steps (compilation, caches), then time `steps` steps; optionally evaluate."""
    import resource

    warmup = 0 if converge else 3
    batches = _batches(train, steps + warmup, seed=1)
    for i, (x, y) in enumerate(batches[:warmup]):
        step_fn(i, x, y)
    start = time.perf_counter()
    losses = [step_fn(i, x, y) for i, (x, y) in enumerate(batches[warmup:])]
    seconds = time.perf_counter() - start
    result = {"steps": steps, "seconds": seconds, "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:])),
              "tokens_per_s": steps * RECIPE["batch_size"] * RECIPE["block_size"] / seconds}
    if converge:
        result["val_loss"] = float(np.mean([eval_fn(x, y) for x, y in _batches(val, 200, seed=2)]))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


WORKERS = {"tinylm": _run_tinylm, "pytorch": _run_torch}


def _worker(name, model, steps, converge, device):
    """One run, printed as JSON with the machine it ran on (after the run: its peak memory is read)."""
    result = WORKERS[name](model, steps, converge, device)
    if name == "tinylm":
        from .machine import describe

        result["machine"] = describe()
    else:  # the PyTorch process does not load Numba
        import torch

        from .machine import torch_info

        result["torch"] = torch_info(torch)
    print(json.dumps(result))


def _recipe(model):
    """The model's sizes, in one line."""
    from .models import LlamaConfig

    sizes = " ".join(f"{k}={RECIPE[k]}" for k in ("n_layer", "n_head", "n_embd", "block_size", "batch_size"))
    if model == "gpt":
        return f"GPT {sizes}"
    return (f"Llama {sizes} n_kv_heads={LLAMA['n_kv_heads']} "
            f"intermediate_size={LlamaConfig(n_embd=RECIPE['n_embd']).hidden_size}")


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def bench_train(steps=50, quick=False, converge=False, file=None, json_path=None, model="gpt", device="cpu"):
    """Train `model` ("gpt" or "llama") in tinylm and in PyTorch on `device` ("cpu" or "cuda"), each
    in a subprocess; print the machine and a table, and return {framework: result}. json_path: also
    write {"machine": tinylm.machine.describe() of the tinylm run, "model": model, "results": ...}."""
    from .backend import check_device

    if model not in MODELS:
        raise ValueError(f"bench train: unknown model {model!r}: expected one of {', '.join(MODELS)}")
    check_device(device)  # no GPU, or one without its kernels: one line, before any run
    file = file or sys.stdout
    steps = min(steps, 5) if quick else steps
    names = ["tinylm"] + (["pytorch"] if torch_available() else [])
    results = {}
    for name in names:
        run = subprocess.run([*python_module("tinylm.bench_train"), name, model, str(steps), str(int(converge)),
                              device], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"bench train: the {name} run failed: {run.stderr.strip().splitlines()[-1]}")
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    from .table import format_table

    memory = "peak_device_mb" if device == "cuda" else "peak_rss_mb"
    head = ["framework", "steps", "tokens/s", "ratio", "GPU memory (MB)" if device == "cuda" else "peak RSS (MB)",
            "loss (last 10)"] + (["val loss"] if converge else [])
    base = results["pytorch"]["tokens_per_s"] if "pytorch" in results else None
    rows = [[n, r["steps"], f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / base:.2f}x" if base else "-",
             f"{r[memory]:.0f}", f"{r['last_loss']:.4f}"] + ([f"{r['val_loss']:.4f}"] if converge else [])
            for n, r in results.items()]
    from .machine import lines

    machine_info = {**results["tinylm"].pop("machine"), "torch": results.get("pytorch", {}).pop("torch", None)}
    for line in lines(machine_info):
        print(line, file=file)
    if device == "cuda":
        print("gpu: " + ", ".join(f"{r['gpu']} ({n})" for n, r in results.items()), file=file)
    print(f"{_recipe(model)}, AdamW, float32, on the {'GPU' if device == 'cuda' else 'CPU'}; ratio = tokens/s over "
          "PyTorch eager's" + ("" if base else " (PyTorch not installed)"), file=file)
    print(format_table(head, rows), file=file)
    if json_path:
        from .bench import write_json

        write_json(json_path, {"bench": "train", "model": model, "machine": machine_info, "results": results})
    return results


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), bool(int(sys.argv[4])), sys.argv[5])
