"""`tinylm bench train`: GPT training speed against the same model in PyTorch eager.

Both train nanoGPT's small CPU GPT (n_layer 4, n_head 4, n_embd 128, block_size 64,
batch_size 12, dropout 0, AdamW, float32) on the same batches of the embedded corpus. Each
runs in its own process, so its peak memory (maximum resident set size) is its own.
With --converge both train for the full schedule and report the validation loss.
"""
import json
import math
import subprocess
import sys
import time

import numpy as np

RECIPE = {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64, "batch_size": 12, "lr": 1e-3,
          "min_lr": 1e-4, "warmup_iters": 100, "weight_decay": 0.1, "betas": (0.9, 0.99), "grad_clip": 1.0}


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
def _run_tinylm(steps, converge):
    import tinylm
    from .models import GPT, GPTConfig
    from .optim import clip_grad_norm_
    from .train import TrainConfig, configure_optimizer

    vocab, train, val = _data()
    tinylm.manual_seed(0)
    # A hand-written loop on purpose, not tinylm.train.Trainer: it mirrors the PyTorch loop below line for
    # line, so the two frameworks are timed on the same work (no checkpoints, evaluations or metrics).
    model = GPT(GPTConfig(vocab_size=vocab, block_size=RECIPE["block_size"], n_layer=RECIPE["n_layer"],
                          n_head=RECIPE["n_head"], n_embd=RECIPE["n_embd"], dropout=0.0))
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

    return _time(step_fn, eval_fn, steps, converge, train, val)


# --- PyTorch eager, the same architecture ------------------------------------------------------
def _run_torch(steps, converge):
    import torch
    from torch import nn
    from torch.nn import functional as F

    E, H = RECIPE["n_embd"], RECIPE["n_head"]

    class Block(nn.Module):
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
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
            x = x + self.attn_proj((att @ v).transpose(1, 2).reshape(B, T, E))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, E), nn.Embedding(RECIPE["block_size"], E)
            self.h = nn.ModuleList(Block() for _ in range(RECIPE["n_layer"]))
            self.ln_f, self.lm_head = nn.LayerNorm(E), nn.Linear(E, vocab, bias=False)
            self.lm_head.weight = self.wte.weight
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * RECIPE["n_layer"]))
                elif p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    vocab, train, val = _data()
    torch.manual_seed(0)
    model = GPT(vocab)
    params = list(model.parameters())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": RECIPE["weight_decay"]},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=RECIPE["lr"], betas=RECIPE["betas"])

    def step_fn(i, x, y):
        for g in opt.param_groups:
            g["lr"] = _lr(i, steps)
        loss = model(torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, RECIPE["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    def eval_fn(x, y):
        with torch.no_grad():
            return model(torch.from_numpy(x), torch.from_numpy(y)).item()

    return _time(step_fn, eval_fn, steps, converge, train, val)


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


def _worker(name, steps, converge):
    """One run, printed as JSON with the machine it ran on (after the run: its peak memory is read)."""
    result = WORKERS[name](steps, converge)
    if name == "tinylm":
        from .machine import describe

        result["machine"] = describe()
    else:  # the PyTorch process does not load Numba
        import torch

        from .machine import torch_info

        result["torch"] = torch_info(torch)
    print(json.dumps(result))


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def bench_train(steps=50, quick=False, converge=False, file=None, json_path=None):
    """Train both models in subprocesses; print the machine and a table, and return {name: result}.
    json_path: also write {"machine": tinylm.machine.describe() of the tinylm run, "results": ...} there."""
    file = file or sys.stdout
    steps = min(steps, 5) if quick else steps
    names = ["tinylm"] + (["pytorch"] if torch_available() else [])
    results = {}
    for name in names:
        run = subprocess.run([sys.executable, "-m", "tinylm.bench_train", name, str(steps), str(int(converge))],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"bench train: the {name} run failed: {run.stderr.strip().splitlines()[-1]}")
        results[name] = json.loads(run.stdout.strip().splitlines()[-1])
    from .table import format_table

    head = ["framework", "steps", "tokens/s", "ratio", "peak RSS (MB)", "loss (last 10)"] + \
        (["val loss"] if converge else [])
    base = results["pytorch"]["tokens_per_s"] if "pytorch" in results else None
    rows = [[n, r["steps"], f"{r['tokens_per_s']:,.0f}", f"{r['tokens_per_s'] / base:.2f}x" if base else "-",
             f"{r['peak_rss_mb']:.0f}", f"{r['last_loss']:.4f}"] + ([f"{r['val_loss']:.4f}"] if converge else [])
            for n, r in results.items()]
    from .machine import lines

    machine_info = {**results["tinylm"].pop("machine"), "torch": results.get("pytorch", {}).pop("torch", None)}
    for line in lines(machine_info):
        print(line, file=file)
    print(f"GPT n_layer={RECIPE['n_layer']} n_head={RECIPE['n_head']} n_embd={RECIPE['n_embd']} "
          f"block_size={RECIPE['block_size']} batch_size={RECIPE['batch_size']}, AdamW, float32; "
          "ratio = tokens/s over PyTorch eager's" + ("" if base else " (PyTorch not installed)"), file=file)
    print(format_table(head, rows), file=file)
    if json_path:
        from .bench import write_json

        write_json(json_path, {"bench": "train", "machine": machine_info, "results": results})
    return results


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), bool(int(sys.argv[3])))
