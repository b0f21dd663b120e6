"""A small GPT on your engine, and its training (step 10).

The layers (given) are tinylm's GPT written with your ops, with its parameter names, so a
tinylm GPT's weights load into this one and the two must compute the same numbers:

    tokens → wte(tokens) + wpe(positions) → N × Block → LayerNorm → logits = h wteᵀ
    Block(x):  x = x + Attention(LN(x));   x = x + MLP(LN(x))

You write the loss (cross-entropy, as one op) and the training loop.
"""
import numpy as np

from . import kernels
from .attention import Attention
from .optim import Adam
from .tensor import Function, Tensor


class Module:
    """A layer: its parameters are the Tensors with requires_grad among its attributes, and
    those of the Modules (or lists of Modules) among them, named like PyTorch ("h.0.ln_1.weight")."""

    def named_parameters(self, prefix=""):
        seen = set()
        for name, value in vars(self).items():
            items = [(f"{name}.{i}", v) for i, v in enumerate(value)] if isinstance(value, list) else [(name, value)]
            for key, item in items:
                if isinstance(item, Module):
                    yield from item.named_parameters(f"{prefix}{key}.")
                elif isinstance(item, Tensor) and item.requires_grad and id(item) not in seen:
                    seen.add(id(item))
                    yield prefix + key, item

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def load_state_dict(self, state):
        """Copy arrays (a dict name -> array, e.g. a tinylm model's state_dict) into the parameters."""
        for name, p in self.named_parameters():
            value = np.asarray(state[name], dtype=p.dtype)
            if value.shape != p.shape:
                raise ValueError(f"{name}: an array of shape {value.shape} for a parameter of shape {p.shape}")
            p.data = value.copy()

    def __call__(self, *args):
        return self.forward(*args)


def parameter(rng, *shape, std=0.02):
    return Tensor(rng.normal(0.0, std, shape) if std else np.zeros(shape), requires_grad=True)


class Linear(Module):
    """y = x Wᵀ + b, W of shape (out, in) as in PyTorch."""

    def __init__(self, rng, n_in, n_out):
        self.weight, self.bias = parameter(rng, n_out, n_in), parameter(rng, n_out, std=0)

    def forward(self, x):
        return x @ self.weight.transpose() + self.bias


class Embedding(Module):
    """Row i of the table for token (or position) i: y = weight[ids]."""

    def __init__(self, rng, n, n_embd):
        self.weight = parameter(rng, n, n_embd)

    def forward(self, ids):
        return self.weight[ids]


class LayerNorm(Module):
    """y = (x − mean) / √(var + ε) ⊙ weight + bias over the last axis (var without correction)."""

    def __init__(self, n):
        self.weight, self.bias = Tensor(np.ones(n), requires_grad=True), Tensor(np.zeros(n), requires_grad=True)

    def forward(self, x):
        centred = x - x.mean(-1, keepdims=True)
        variance = (centred * centred).mean(-1, keepdims=True)
        return centred * (variance + 1e-5) ** -0.5 * self.weight + self.bias


class CausalSelfAttention(Module):
    """q, k, v = split(x W_attnᵀ + b_attn), one (B, heads, T, d) slice per head; causal attention
    (your Attention, step 9); the heads side by side again, then the projection W_proj."""

    def __init__(self, rng, n_embd, n_head):
        self.n_head = n_head
        self.c_attn, self.c_proj = Linear(rng, n_embd, 3 * n_embd), Linear(rng, n_embd, n_embd)

    def forward(self, x):
        B, T, C = x.shape
        qkv = self.c_attn(x)
        q, k, v = (qkv[:, :, i * C:(i + 1) * C].reshape(B, T, self.n_head, C // self.n_head).transpose(0, 2, 1, 3)
                   for i in range(3))
        y = Attention.apply(q, k, v, causal=True)
        return self.c_proj(y.transpose(0, 2, 1, 3).reshape(B, T, C))


class MLP(Module):
    """GELU(x W_fcᵀ + b_fc) W_projᵀ + b_proj, four times wider inside."""

    def __init__(self, rng, n_embd):
        self.c_fc, self.c_proj = Linear(rng, n_embd, 4 * n_embd), Linear(rng, 4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.c_fc(x).gelu())


class Block(Module):
    def __init__(self, rng, n_embd, n_head):
        self.ln_1, self.attn = LayerNorm(n_embd), CausalSelfAttention(rng, n_embd, n_head)
        self.ln_2, self.mlp = LayerNorm(n_embd), MLP(rng, n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(Module):
    """The language model: model(idx) → (logits (B, T, vocab), None); model(idx, targets) →
    (logits, the mean cross-entropy of predicting targets[:, t] from idx[:, :t+1])."""

    def __init__(self, vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32, seed=0):
        rng = np.random.default_rng(seed)
        self.block_size = block_size
        self.wte, self.wpe = Embedding(rng, vocab_size, n_embd), Embedding(rng, block_size, n_embd)
        self.h = [Block(rng, n_embd, n_head) for _ in range(n_layer)]
        self.ln_f = LayerNorm(n_embd)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(np.arange(T))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.transpose()  # the output layer shares the embedding's weight
        loss = None if targets is None else cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
        return logits, loss


class CrossEntropy(Function):
    """L = (1/N) Σ_n −log softmax(z_n)[y_n] for logits z (N, V) and integer targets y (N,)
    (the option `targets`): the mean negative log-likelihood of the right tokens."""

    def forward(self, z, targets):
        self.targets = targets
        # BEGIN SOLUTION hint: step 10: keep self.p = kernels.softmax(z) for backward; the loss is the mean of log Σ_j e^(z_j) − z_y, with the row maximum taken out first so nothing overflows
        self.p = kernels.softmax(z)
        top = z.max(axis=1, keepdims=True)
        log_sum = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
        return np.mean(log_sum - z[np.arange(len(z)), targets])
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 10: ∂L/∂z_n = (softmax(z_n) − onehot(y_n)) / N
        d = self.p.copy()
        d[np.arange(len(d)), self.targets] -= 1.0
        return g * Tensor(d / len(d))
        # END SOLUTION


def cross_entropy(logits, targets):
    return CrossEntropy.apply(logits, targets=np.asarray(targets))


def get_batch(ids, batch_size, block_size, rng):
    """batch_size windows of block_size token ids from random places in ids, and the same
    windows one token later (the targets)."""
    starts = rng.integers(0, len(ids) - block_size, size=batch_size)
    x = np.stack([ids[s:s + block_size] for s in starts])
    y = np.stack([ids[s + 1:s + 1 + block_size] for s in starts])
    return x, y


def train(model, ids, steps=150, batch_size=8, lr=1e-2, seed=0):
    """Train `model` on the token ids `ids` (a 1-D integer array) with your Adam for `steps`
    steps; returns the training loss of every step."""
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x, y = get_batch(ids, batch_size, model.block_size, rng)
        # BEGIN SOLUTION hint: step 10: the loss of the batch (model(x, y)), the old gradients cleared, backward, an optimizer step; append loss.item() to losses
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        # END SOLUTION
    return losses
