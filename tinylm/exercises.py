"""What `tinylm grade` asks of each lesson's exercises: the grader's inputs, points, the library
functions each exercise re-implements, and the first two levels of `tinylm hint`.

One `Exercise` per function of a lesson that holds a `# BEGIN SOLUTION` block. Its `cases`
draws the inputs from a generator seeded by the grading (the same inputs in the grading process
and in the child process that runs the learner's code): a few fixed edge cases, then random
ones. The expected values are never written here: they are what the lesson's own solution
returns on the same inputs (tinylm.grading). `reimplements` names what the exercise asks the
learner to write again — dotted library names (a module stands for all of it), names of the
lesson's own helpers, or "@" (the matmul operator); `numpy_only` adds the whole tinylm package
for exercises written in NumPy. Level 3 of a hint is the recipe on the lesson's
`# BEGIN SOLUTION hint:` line.

Why seeded NumPy generators and not hypothesis: the same inputs must be built in two processes
(the learner's code runs in one, the solution in the other) and compared as a whole; hypothesis
draws and shrinks one example at a time, which would cost a process round trip per example.

`gradient(args, got)` of a gradient exercise gives what tinylm.check.compare needs to set
autograd, central differences and the learner's gradients side by side when a check fails:
(fn, inputs, {input name: the learner's gradient}), fn(**inputs) being the scalar Σ G ⊙ f whose
gradient the exercise computes.
"""
import zlib
from dataclasses import dataclass

import numpy as np

BACKWARD = ("tinylm.tensor.Tensor.backward", "tinylm.autograd.backward")


@dataclass(frozen=True)
class Exercise:
    lesson: str              # the lesson's two digits
    name: str                # the function the learner writes
    points: float
    cases: object            # rng -> [(label, {argument: value})], the arguments in the function's order
    hints: tuple             # hint levels 1 and 2 (level 3 is the lesson's recipe)
    reimplements: tuple = ()
    numpy_only: bool = False
    outputs: tuple = ()      # names of a tuple result's parts, for the report
    observe: object = None   # (args, result) -> what is compared (default: the result)
    gradient: object = None
    rtol: float = 1e-6
    atol: float = 1e-9

    @property
    def targets(self):
        return self.reimplements + (("tinylm",) if self.numpy_only else ())

    def make_cases(self, seed):
        rng = np.random.default_rng([int(seed), zlib.crc32(f"{self.lesson}.{self.name}".encode())])
        return [(label, dict(args)) for label, args in self.cases(rng)]

    def observed(self, args, result):
        return result if self.observe is None else self.observe(args, result)


def _t(array, grad=True):
    from .tensor import Tensor

    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=grad)


def _weighted(out, g):
    """Σ G ⊙ out: the scalar whose gradient a function given grad_out = G computes."""
    from .tensor import Tensor

    return (out * Tensor(np.asarray(g, dtype=np.float64))).sum()


def _randomised(module, rng):
    """module, float64, every parameter drawn from rng (the same numbers in both processes)."""
    module = module.double()
    for p in module.parameters():
        p.data[...] = rng.uniform(-0.5, 0.5, p.shape)
    return module


def _sizes(rng, *ranges):
    return [int(rng.integers(lo, hi + 1)) for lo, hi in ranges]


# --- 01 tensors and the chain rule ------------------------------------------------------------
def _mse_cases(rng):
    W = np.array([[0.5, -1.0, 0.25], [1.5, 0.0, -0.5]])
    yield "the lesson's example, W 2×3", dict(W=W, b=np.array([0.1, -0.2]), x=np.array([1.0, 2.0, -1.0]),
                                               y=np.array([0.0, 1.0]))
    W, b, x = rng.normal(size=(3, 4)), rng.normal(size=3), rng.normal(size=4)
    yield "a perfect fit: the residual and both gradients are 0", dict(W=W, b=b, x=x, y=W @ x + b)
    yield "one output, one input", dict(W=rng.normal(size=(1, 1)), b=rng.normal(size=1), x=rng.normal(size=1),
                                        y=rng.normal(size=1))
    for k in range(3):
        out, inp = _sizes(rng, (2, 6), (2, 6))
        yield f"random W {out}×{inp} ({k + 1})", dict(W=rng.normal(size=(out, inp)), b=rng.normal(size=out),
                                                      x=rng.normal(size=inp), y=rng.normal(size=out))


def _mse_gradient(args, got):
    from .tensor import Tensor

    def loss(W, b, x, y):
        return 0.5 * ((Tensor(y) - (W @ Tensor(x) + b)) ** 2).sum()

    return loss, {"W": _t(args["W"]), "b": _t(args["b"]), "x": args["x"], "y": args["y"]}, \
        {"W": got[0], "b": got[1]}


# --- 02 RNN -----------------------------------------------------------------------------------
def _rnn_args(rng, steps, inputs, hidden, grad_last_only=False):
    u = lambda *shape: rng.uniform(-0.8, 0.8, shape)  # noqa: E731
    grad = u(steps, hidden)
    if grad_last_only:
        grad[:-1] = 0.0
    return dict(grad_out=grad, input=u(steps, inputs), h0=u(1, hidden), weight_ih_l0=u(hidden, inputs),
                weight_hh_l0=u(hidden, hidden), bias_ih_l0=u(hidden), bias_hh_l0=u(hidden))


def _rnn_cases(rng):
    yield "one step (T = 1)", _rnn_args(rng, 1, 2, 3)
    yield "three steps, 2 inputs, 3 units", _rnn_args(rng, 3, 2, 3)
    yield "a gradient at the last step only (as for a classifier)", _rnn_args(rng, 5, 2, 3, grad_last_only=True)
    yield "one unit", _rnn_args(rng, 4, 3, 1)
    for k in range(2):
        steps, inputs, hidden = _sizes(rng, (4, 9), (1, 4), (1, 5))
        yield f"random, T = {steps}, {inputs} inputs, {hidden} units ({k + 1})", _rnn_args(rng, steps, inputs, hidden)


def _rnn_gradient(args, got):
    from .check.rnn_formulas import run_layer
    from .nn import RNN

    layer = RNN(args["input"].shape[1], args["h0"].shape[1]).double()
    names = [n for n in args if n != "grad_out"]
    return (lambda grad_out, **t: _weighted(run_layer(layer, **t)[0], grad_out),
            {"grad_out": args["grad_out"], **{n: _t(args[n]) for n in names}}, {n: got[n] for n in names})


# --- 03 LSTM ----------------------------------------------------------------------------------
def _lstm_args(rng, batch, inputs, hidden, forget_bias=0.0, zero_state=False):
    n = lambda *shape: rng.normal(size=shape)  # noqa: E731
    bias_ih = n(4 * hidden)
    bias_ih[hidden:2 * hidden] += forget_bias
    h, c = n(batch, hidden), n(batch, hidden)
    if zero_state:
        h, c = np.zeros_like(h), np.zeros_like(c)
    return dict(x=n(batch, inputs), h=h, c=c, weight_ih=n(4 * hidden, inputs), weight_hh=n(4 * hidden, hidden),
                bias_ih=bias_ih, bias_hh=n(4 * hidden))


def _lstm_cases(rng):
    yield "zero states, batch 1, 3 inputs, 4 units", _lstm_args(rng, 1, 3, 4, zero_state=True)
    yield "a batch of 5, 3 inputs, 4 units", _lstm_args(rng, 5, 3, 4)
    yield "a forget gate held open (its bias +20): c' ≈ c + i·g", _lstm_args(rng, 2, 2, 3, forget_bias=20.0)
    yield "one unit", _lstm_args(rng, 3, 2, 1)
    for k in range(2):
        batch, inputs, hidden = _sizes(rng, (1, 4), (1, 4), (2, 5))
        yield f"random, batch {batch}, {inputs} inputs, {hidden} units ({k + 1})", _lstm_args(rng, batch, inputs,
                                                                                          hidden)


# --- 04 GRU -----------------------------------------------------------------------------------
def _gru_args(rng, inputs, hidden, z_shift=0.0):
    u = lambda *shape: rng.uniform(-0.8, 0.8, shape)  # noqa: E731
    bias_hh = u(3 * hidden)
    bias_hh[hidden:2 * hidden] += z_shift
    return dict(grad_out=u(hidden), input=u(inputs), hx=u(hidden), weight_ih=u(3 * hidden, inputs),
                weight_hh=u(3 * hidden, hidden), bias_ih=u(3 * hidden), bias_hh=bias_hh)


def _gru_cases(rng):
    yield "3 inputs, 4 units", _gru_args(rng, 3, 4)
    yield "z ≈ 1 (its bias +30): the state is copied, dL/dhx = grad_out", _gru_args(rng, 3, 4, z_shift=30.0)
    yield "one input, one unit", _gru_args(rng, 1, 1)
    for k in range(3):
        inputs, hidden = _sizes(rng, (1, 4), (2, 5))
        yield f"random, {inputs} inputs, {hidden} units ({k + 1})", _gru_args(rng, inputs, hidden)


def _gru_gradient(args, got):
    from .check import use_tensors
    from .nn import GRUCell

    cell = GRUCell(len(args["input"]), len(args["hx"])).double()
    def fn(grad_out, input, hx, **p):
        use_tensors(cell, p)
        return _weighted(cell(input, hx), grad_out)

    names = [n for n in args if n != "grad_out"]
    return fn, {"grad_out": args["grad_out"], **{n: _t(args[n]) for n in names}}, {n: got[n] for n in names}


# --- 05 attention -----------------------------------------------------------------------------
def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_cases(rng):
    yield "the lesson's row of 4", dict(y=_softmax(np.array([1.0, -0.5, 0.25, 2.0])), g=np.array([0.3, -1.0, 0.5, 0.2]))
    yield "a batch of rows (3, 5)", dict(y=_softmax(rng.normal(0, 2, (3, 5))), g=rng.normal(size=(3, 5)))
    yield "a (2, 3, 4) array: the last axis only", dict(y=_softmax(rng.normal(size=(2, 3, 4))),
                                                        g=rng.normal(size=(2, 3, 4)))
    yield "a nearly one-hot y (logits 40 apart)", dict(y=_softmax(np.array([[40.0, 0.0, -40.0, 1.0]])),
                                                       g=rng.normal(size=(1, 4)))
    yield "g the same along each row: dx = 0", dict(y=_softmax(rng.normal(size=(2, 6))), g=np.full((2, 6), 0.7))
    for k in range(2):
        rows, cols = _sizes(rng, (1, 4), (2, 9))
        yield f"random ({rows}, {cols}) ({k + 1})", dict(y=_softmax(rng.normal(0, 3, (rows, cols))),
                                                         g=rng.normal(size=(rows, cols)))


def _softmax_gradient(args, got):
    from .nn import functional as F

    return (lambda x, g: _weighted(F.softmax(x, dim=-1), g),
            {"x": _t(np.log(args["y"])), "g": args["g"]}, {"x": got})


def _attention_args(rng, lead, length, keys, dim, dim_v):
    n = lambda *shape: rng.normal(size=(*lead, *shape))  # noqa: E731
    return dict(q=n(length, dim), k=n(keys, dim), v=n(keys, dim_v), g=n(length, dim_v))


def _attention_cases(rng):
    yield "no batch: 3 queries, 5 keys, d = 4", _attention_args(rng, (), 3, 5, 4, 3)
    yield "one query, one key: the weight is 1, dQ = dK = 0", _attention_args(rng, (), 1, 1, 2, 2)
    yield "a batch of 2", _attention_args(rng, (2,), 3, 4, 2, 3)
    yield "batch 2 × 2 heads", _attention_args(rng, (2, 2), 4, 3, 3, 2)
    for k in range(2):
        length, keys, dim, dim_v = _sizes(rng, (1, 5), (1, 6), (1, 4), (1, 4))
        yield f"random, L = {length}, S = {keys}, d = {dim} ({k + 1})", _attention_args(rng, (2,), length, keys,
                                                                                       dim, dim_v)


def _attention_gradient(args, got):
    from .nn import functional as F

    return (lambda q, k, v, g: _weighted(F.scaled_dot_product_attention(q, k, v), g),
            {"q": _t(args["q"]), "k": _t(args["k"]), "v": _t(args["v"]), "g": args["g"]},
            dict(zip("qkv", got)))


# --- 06 multi-head attention ------------------------------------------------------------------
def _split_cases(rng):
    yield "the lesson's shape: 1 × 3 positions, E = 4, 2 heads", dict(x=rng.normal(size=(1, 3, 4)), num_heads=2)
    yield "one head: only a new axis", dict(x=rng.normal(size=(2, 3, 6)), num_heads=1)
    yield "E heads of one feature each", dict(x=rng.normal(size=(2, 2, 5)), num_heads=5)
    for k in range(3):
        n, length, heads, dim = _sizes(rng, (1, 3), (1, 5), (2, 4), (1, 4))
        yield f"random ({n}, {length}, {heads}·{dim}), {heads} heads ({k + 1})", dict(
            x=rng.normal(size=(n, length, heads * dim)), num_heads=heads)


def _merge_cases(rng):
    yield "2 heads of (3, 2)", dict(x=rng.normal(size=(1, 2, 3, 2)))
    yield "one head", dict(x=rng.normal(size=(2, 1, 3, 4)))
    for k in range(3):
        n, heads, length, dim = _sizes(rng, (1, 3), (2, 4), (1, 5), (1, 4))
        yield f"random ({n}, {heads}, {length}, {dim}) ({k + 1})", dict(x=rng.normal(size=(n, heads, length, dim)))


def _in_proj_args(rng, lead, length, keys, dim):
    n = lambda *shape: rng.normal(size=(*lead, *shape))  # noqa: E731
    return dict(x_q=n(length, dim), x_k=n(keys, dim), x_v=n(keys, dim), d_q=n(length, dim), d_k=n(keys, dim),
                d_v=n(keys, dim))


def _in_proj_cases(rng):
    yield "batch 2, 3 queries, 4 keys, E = 4", _in_proj_args(rng, (2,), 3, 4, 4)
    yield "no batch axis: (L, E) arrays", _in_proj_args(rng, (), 3, 2, 3)
    yield "E = 1", _in_proj_args(rng, (2,), 2, 3, 1)
    for k in range(2):
        length, keys, dim = _sizes(rng, (1, 4), (1, 5), (2, 5))
        yield f"random, L = {length}, S = {keys}, E = {dim} ({k + 1})", _in_proj_args(rng, (2,), length, keys, dim)


def _in_proj_gradient(args, got):
    dim = args["x_q"].shape[-1]
    rng = np.random.default_rng(0)

    def fn(in_proj_weight, in_proj_bias, **a):
        total = 0
        for i, p in enumerate("qkv"):
            rows = slice(i * dim, (i + 1) * dim)
            projected = _t(a[f"x_{p}"], False) @ in_proj_weight[rows].T + in_proj_bias[rows]
            total = total + _weighted(projected, a[f"d_{p}"])
        return total

    return fn, {"in_proj_weight": _t(rng.normal(size=(3 * dim, dim))), "in_proj_bias": _t(rng.normal(size=3 * dim)),
                **args}, {"in_proj_weight": got[0], "in_proj_bias": got[1]}


# --- 07 transformer ---------------------------------------------------------------------------
def _layer_norm_args(rng, shape, eps=None, spread=1.0, center=1.0):
    args = dict(x=center + spread * rng.normal(size=shape), gamma=rng.normal(1.0, 0.5, shape[-1]),
                g=rng.normal(size=shape))
    if eps is not None:
        args["eps"] = eps
    return args


def _layer_norm_cases(rng):
    yield "(2, 3, 5), as in the lesson", _layer_norm_args(rng, (2, 3, 5))
    yield "one vector (E,)", _layer_norm_args(rng, (6,))
    yield "E = 1: x̂ = 0, so dx = 0", _layer_norm_args(rng, (3, 1))
    yield "nearly constant rows: ε = 1e-3 matters", _layer_norm_args(rng, (2, 4), eps=1e-3, spread=1e-3)
    for k in range(2):
        rows, dim = _sizes(rng, (1, 4), (2, 8))
        yield f"random ({rows}, {dim}) ({k + 1})", _layer_norm_args(rng, (rows, dim))


def _layer_norm_gradient(args, got):
    from .nn import functional as F

    eps = args.get("eps", 1e-5)
    return (lambda x, gamma, beta, g: _weighted(F.layer_norm(x, x.shape[-1], gamma, beta, eps), g),
            {"x": _t(args["x"]), "gamma": _t(args["gamma"]), "beta": _t(np.zeros_like(args["gamma"])), "g": args["g"]},
            {"x": got[0], "gamma": got[1], "beta": got[2]})


def _mask_cases(rng):
    for length in (1, 2, 5):
        yield f"length {length}", dict(length=length)
    for k in range(2):
        yield f"random length ({k + 1})", dict(length=int(rng.integers(3, 13)))


MASKS = ("tinylm.nn.transformer.generate_square_subsequent_mask", "tinylm.nn.functional.causal_mask")


# --- 08 text to ids ---------------------------------------------------------------------------
def _sgns_args(rng, dim, negatives, scale=1.0):
    return dict(v_c=scale * rng.normal(size=dim), u_o=scale * rng.normal(size=dim),
                u_neg=scale * rng.normal(size=(negatives, dim)))


def _sgns_cases(rng):
    yield "d = 3, two negatives", _sgns_args(rng, 3, 2)
    yield "one negative", _sgns_args(rng, 4, 1)
    yield "one dimension", _sgns_args(rng, 1, 3)
    yield "large dot products: σ near 0 and 1", _sgns_args(rng, 4, 3, scale=3.0)
    for k in range(2):
        dim, negatives = _sizes(rng, (2, 8), (1, 6))
        yield f"random, d = {dim}, K = {negatives} ({k + 1})", _sgns_args(rng, dim, negatives)


def _sgns_gradient(args, got):
    def loss(v_c, u_o, u_neg):
        return -((u_o * v_c).sum().sigmoid().log() + (-(u_neg @ v_c)).sigmoid().log().sum())

    return loss, {n: _t(a) for n, a in args.items()}, dict(zip(("v_c", "u_o", "u_neg"), got))


# --- 09 causal pre-training -------------------------------------------------------------------
def _shift_cases(rng):
    yield "the ids 0..9", dict(ids=np.arange(10))
    yield "two tokens: one pair", dict(ids=np.array([7, 3]))
    for k in range(3):
        yield f"random ids ({k + 1})", dict(ids=rng.integers(0, 50, int(rng.integers(3, 21))))


def _allowed_mask_cases(rng):
    for length in (1, 2, 6):
        yield f"T = {length}", dict(T=length)
    for k in range(2):
        yield f"random T ({k + 1})", dict(T=int(rng.integers(3, 13)))


# --- 10 MLM and NSP ---------------------------------------------------------------------------
def _corrupt_args(rng, n, chosen_count, boundaries=()):
    ids = rng.integers(5, 100, n)
    chosen = np.sort(rng.choice(n, chosen_count, replace=False))
    u = rng.random(chosen_count)
    u[:len(boundaries)] = boundaries
    random_ids = rng.integers(5, 100, int(((u >= 0.8) & (u < 0.9)).sum()))
    return dict(ids=ids, chosen=chosen, u=u, random_ids=random_ids, mask_id=4)


def _corrupt_cases(rng):
    yield "the lesson's boundary example", dict(ids=np.arange(10, 20), chosen=np.array([1, 3, 4, 6, 8, 9]),
                                                u=np.array([0.05, 0.8, 0.95, 0.79999, 0.9, 0.85]),
                                                random_ids=np.array([7, 2]), mask_id=99)
    yield "u exactly 0.8 and 0.9, and just below them", _corrupt_args(rng, 12, 6, (0.8, 0.9, 0.79999, 0.89999))
    yield "one selected position", _corrupt_args(rng, 8, 1)
    for k in range(3):
        n = int(rng.integers(10, 40))
        yield f"random, {n} ids ({k + 1})", _corrupt_args(rng, n, int(rng.integers(1, n // 2)))


def _mlm_args(rng, batch, length, vocab, scale=1.0, selected=None):
    labels = np.where(rng.random((batch, length)) < 0.4, rng.integers(0, vocab, (batch, length)), -100)
    if selected is not None:
        labels[...] = -100
        labels.flat[selected] = 1
    if not (labels != -100).any():
        labels.flat[0] = 2
    return dict(logits=scale * rng.normal(size=(batch, length, vocab)), labels=labels)


def _mlm_cases(rng):
    yield "batch 2, 5 positions, 7 words", _mlm_args(rng, 2, 5, 7)
    yield "one selected position", _mlm_args(rng, 1, 4, 5, selected=2)
    yield "logits in the thousands: subtract the max before exp", _mlm_args(rng, 2, 3, 6, scale=3000.0)
    for k in range(2):
        batch, length, vocab = _sizes(rng, (1, 3), (2, 6), (3, 12))
        yield f"random ({batch}, {length}, {vocab}) ({k + 1})", _mlm_args(rng, batch, length, vocab)


# --- 11 fine-tuning ---------------------------------------------------------------------------
def _classifier(rng, method, body="gpt", classes=2, prompt=3):
    from .models.bert import Bert, BertConfig
    from .models.classifier import BertBody, GPTBody, TextClassifier
    from .models.gpt import GPT, GPTConfig
    from .data.mlm import SpecialTokens

    if body == "gpt":
        made = GPTBody(GPT(GPTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=8)), None)
    else:
        made = BertBody(Bert(BertConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8)), None,
                        SpecialTokens(16))
    return TextClassifier(made, classes, method, n_prompt=prompt).requires_grad_(True)


def _freeze_cases(rng):
    yield "feature extraction, a GPT body, 2 classes", dict(classifier=_classifier(rng, "head"))
    yield "prompt tuning: the soft prompt keeps learning", dict(classifier=_classifier(rng, "prompt", prompt=4))
    yield "a BERT body, 3 classes", dict(classifier=_classifier(rng, "head", body="bert", classes=3))


def _freeze_observe(args, result):
    learning = sorted(n for n, p in args["classifier"].named_parameters() if p.requires_grad)
    return int(result), ", ".join(learning)


def _prompt_args(rng, batch, prompt, length, dim):
    return dict(prompt=_t(rng.normal(size=(prompt, dim))), x=_t(rng.normal(size=(batch, length, dim)), False))


def _prompt_cases(rng):
    yield "2 texts, a prompt of 3, 4 tokens, E = 5", _prompt_args(rng, 2, 3, 4, 5)
    yield "one text", _prompt_args(rng, 1, 2, 3, 4)
    yield "a prompt of one vector", _prompt_args(rng, 3, 1, 2, 4)
    yield "random sizes", _prompt_args(rng, *_sizes(rng, (1, 4), (1, 4), (1, 5), (2, 6)))


def _prompt_observe(args, result):
    """The prompted input, and the prompt's gradient through it (the prompt must still learn)."""
    from .tensor import Tensor

    if not isinstance(result, Tensor):
        raise TypeError(f"a {type(result).__name__}; expected a tinylm Tensor, so that the prompt can learn")
    weights = np.cos(np.arange(result.numpy().size)).reshape(result.shape)
    _weighted(result, weights).backward()
    grad = args["prompt"].grad
    return result.numpy(), None if grad is None else grad.numpy()


# --- 12 generation ----------------------------------------------------------------------------
def _top_p_cases(rng):
    probs = _softmax(np.array([2.0, 1.0, 0.5, 0.1, -1.0]))
    for top_p in (0.5, 0.8, 0.95, 1.0):
        yield f"5 tokens, top_p = {top_p}", dict(probs=probs, top_p=top_p)
    yield "a tiny top_p keeps the most likely token", dict(probs=probs[::-1].copy(), top_p=1e-9)
    for k, top_p in enumerate((0.3, 0.6, 0.9)):
        size = int(rng.integers(10, 51))
        yield f"random, {size} tokens, top_p = {top_p}", dict(probs=_softmax(2 * rng.normal(size=size)), top_p=top_p)


# --- 13 training speed ------------------------------------------------------------------------
def _scale_cases(rng):
    yield "an overflow halves the scale and resets the count", dict(scale=1024.0, found_inf=True, clean_steps=7,
                                                                     growth_interval=10)
    yield "a clean step keeps the scale and counts", dict(scale=1024.0, found_inf=False, clean_steps=3,
                                                          growth_interval=10)
    yield "the 10th clean step doubles the scale", dict(scale=1024.0, found_inf=False, clean_steps=9,
                                                        growth_interval=10)
    yield "the 9th does not", dict(scale=1024.0, found_inf=False, clean_steps=8, growth_interval=10)
    yield "an overflow on the step that would double", dict(scale=64.0, found_inf=True, clean_steps=9,
                                                            growth_interval=10)
    yield "interval 1: every clean step doubles", dict(scale=2.0, found_inf=False, clean_steps=0, growth_interval=1)
    for k in range(2):
        interval = int(rng.integers(2, 30))
        yield f"random ({k + 1})", dict(scale=float(2.0 ** rng.integers(-4, 40)), found_inf=bool(rng.random() < 0.3),
                                        clean_steps=int(rng.integers(0, interval)), growth_interval=interval)


# --- 14 over-fitting --------------------------------------------------------------------------
def _stopping_cases(rng):
    toy = [1.0, 0.8, 0.7, 0.72, 0.69, 0.75, 0.8, 0.9, 0.95, 0.5]
    yield "the lesson's curve, patience 3", dict(val_losses=toy, patience=3)
    yield "the lesson's curve, patience 6: never stops", dict(val_losses=toy, patience=6)
    yield "worse from the first epoch on, patience 2", dict(val_losses=[1.0, 2.0, 3.0, 4.0], patience=2)
    yield "an equal loss is no improvement", dict(val_losses=[1.0, 1.0, 1.0, 1.0], patience=2)
    yield "patience 1", dict(val_losses=[3.0, 2.0, 2.5, 1.0], patience=1)
    for k in range(3):
        curve = np.cumsum(rng.normal(0, 1, int(rng.integers(5, 31)))) + 50
        yield f"a random curve of {len(curve)} epochs ({k + 1})", dict(val_losses=curve.tolist(),
                                                                       patience=int(rng.integers(1, 6)))


def _vote_cases(rng):
    table = lambda m, *shape: [rng.dirichlet(np.ones(shape[-1]), shape[:-1]) for _ in range(m)]  # noqa: E731
    yield "three models, 4 examples, 3 classes", dict(probs_list=table(3, 4, 3))
    yield "one model: its own prediction", dict(probs_list=table(1, 5, 4))
    yield "a tie goes to the smaller class", dict(probs_list=[np.array([0.75, 0.25]), np.array([0.25, 0.75])])
    for k in range(2):
        models, rows, classes = _sizes(rng, (2, 5), (1, 6), (2, 5))
        yield f"random, {models} models ({k + 1})", dict(probs_list=table(models, rows, classes))


# --- 15 metrics -------------------------------------------------------------------------------
def _f1_cases(rng):
    true = ["cat", "cat", "cat", "cat", "dog", "dog", "dog", "bird", "bird", "bird"]
    pred = ["cat", "cat", "dog", "cat", "dog", "dog", "cat", "bird", "cat", "bird"]
    yield "the animals", dict(pred=pred, true=true)
    yield "every prediction right", dict(pred=[1, 2, 2, 0], true=[1, 2, 2, 0])
    yield "a class predicted but never true", dict(pred=[0, 1, 2, 2], true=[0, 1, 1, 1])
    for k in range(2):
        yield f"300 random labels, class 5 never true ({k + 1})", dict(pred=rng.integers(0, 6, 300).tolist(),
                                                                      true=rng.integers(0, 5, 300).tolist())


def _clip_cases(rng):
    silly, ref_a, ref_b = "the " * 7, "the cat is on the mat", "there is a cat on the mat"
    yield "'the' ×7, unigrams", dict(hyp=silly.split(), refs=[ref_a.split(), ref_b.split()], n=1)
    yield "bigrams", dict(hyp="the cat the cat on the mat".split(), refs=[ref_a.split(), ref_b.split()], n=2)
    yield "a hypothesis shorter than n", dict(hyp=["the", "cat"], refs=[ref_a.split()], n=3)
    words = "a b c d e".split()
    for k in range(3):
        n = int(rng.integers(1, 5))
        draw = lambda: [words[i] for i in rng.integers(0, 5, int(rng.integers(3, 12)))]  # noqa: E731
        yield f"random words, n = {n} ({k + 1})", dict(hyp=draw(), refs=[draw() for _ in range(int(rng.integers(1, 4)))],
                                                       n=n)


def _brevity_cases(rng):
    for c, r in ((6, 7), (8, 7), (7, 7), (1, 10)):
        yield f"c = {c}, r = {r}", dict(c=c, r=r)
    for k in range(2):
        yield f"random ({k + 1})", dict(c=int(rng.integers(1, 30)), r=int(rng.integers(1, 30)))


# --- 16 compression ---------------------------------------------------------------------------
def _quantize_cases(rng):
    W = rng.normal(size=(6, 8)) * rng.uniform(0.001, 3, (6, 1))
    W[2] = 0.0
    yield "6 rows of different sizes, row 2 all zero", dict(W=W)
    yield "one weight", dict(W=np.array([[-0.3]]))
    W = rng.normal(size=(3, 5))
    W[1, 3] = 40.0
    yield "a row with one large weight", dict(W=W)
    for k in range(2):
        rows, cols = _sizes(rng, (1, 10), (1, 12))
        yield f"random {rows}×{cols} ({k + 1})", dict(W=rng.normal(size=(rows, cols)) * rng.uniform(0.01, 5))


def _quantize_observe(args, result):
    q, scale = result
    return q, scale, str(np.asarray(q).dtype)


def _prune_cases(rng):
    tied = [np.array([[0.1, -0.3], [0.1, 0.2]]), np.array([[0.1, 0.5, -0.1]])]
    yield "ties: the earliest go first", dict(weights=tied, sparsity=3 / 7)
    layers = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    yield "sparsity 0: nothing goes", dict(weights=layers, sparsity=0.0)
    yield "sparsity 1: everything goes", dict(weights=layers, sparsity=1.0)
    for k, sparsity in enumerate((0.3, 0.5, 0.9)):
        weights = [rng.normal(size=tuple(_sizes(rng, (1, 5), (1, 5)))) for _ in range(int(rng.integers(1, 4)))]
        yield f"random layers, sparsity {sparsity}", dict(weights=weights, sparsity=sparsity)


# --- 17 the article's programs ----------------------------------------------------------------
def _last_step_cases(rng):
    for batch_first in (False, True):
        shape = (2, 5, 3) if batch_first else (5, 2, 3)
        yield f"batch_first={batch_first}", dict(out=_t(rng.normal(size=shape), False), batch_first=batch_first)
    yield "one step", dict(out=_t(rng.normal(size=(1, 3, 2)), False), batch_first=False)
    yield "one sequence, batch first", dict(out=_t(rng.normal(size=(1, 4, 2)), False), batch_first=True)


def _encoder_decoder(rng, dim, heads, layers):
    from . import nn

    block = dict(dim_feedforward=6, dropout=0.0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(dim, heads, **block), layers)
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(dim, heads, **block), layers)
    return _randomised(encoder, rng), _randomised(decoder, rng)


def _decode_cases(rng):
    for label, (src_len, tgt_len, batch) in (("S = 4 source, T = 3 target tokens", (4, 3, 2)),
                                             ("S = T, where no shape gives a swap away", (3, 3, 1)),
                                             ("one target token", (2, 1, 2))):
        encoder, decoder = _encoder_decoder(rng, 4, 2, 1)
        yield label, dict(encoder=encoder, decoder=decoder, src=_t(rng.normal(size=(src_len, batch, 4)), False),
                          tgt=_t(rng.normal(size=(tgt_len, batch, 4)), False))
    encoder, decoder = _encoder_decoder(rng, 4, 2, 2)
    yield "two layers each", dict(encoder=encoder, decoder=decoder, src=_t(rng.normal(size=(5, 2, 4)), False),
                                  tgt=_t(rng.normal(size=(4, 2, 4)), False))


def _readout_cases(rng):
    out = _t(rng.normal(size=(3, 5, 2)), False)
    yield "lengths 5, 2, 1", dict(out=out, lengths=np.array([5, 2, 1]))
    yield "every row full", dict(out=out, lengths=np.array([5, 5, 5]))
    yield "lengths as a list", dict(out=out, lengths=[1, 3, 4])
    batch, length = _sizes(rng, (1, 6), (1, 8))
    yield "random", dict(out=_t(rng.normal(size=(batch, length, 3)), False), lengths=rng.integers(1, length + 1, batch))


# --- 18 kernels -------------------------------------------------------------------------------
def _tile_cases(rng):
    A4 = np.array([[1.0, 2, 0, 1], [0, 1, 3, 0], [2, 0, 1, 1], [1, 1, 0, 2]])
    B4 = np.array([[1.0, 0, 2, 0], [0, 1, 0, 1], [1, 1, 0, 0], [0, 2, 1, 1]])
    yield "the 4×4 example, tile (0, 2)", dict(A=A4, Bt=np.ascontiguousarray(B4.T), i=0, j=2)
    yield "K = 1: one product each", dict(A=rng.normal(size=(2, 1)), Bt=rng.normal(size=(2, 1)), i=0, j=0)
    for k in range(3):
        m, n, inner = _sizes(rng, (1, 4), (1, 4), (1, 9))
        i, j = 2 * int(rng.integers(0, m)), 2 * int(rng.integers(0, n))
        yield f"random {2 * m}×{inner} @ {inner}×{2 * n}, tile ({i}, {j})", dict(
            A=rng.normal(size=(2 * m, inner)), Bt=rng.normal(size=(2 * n, inner)), i=i, j=j)


def _online_cases(rng):
    yield "a new maximum at every step", dict(x=np.arange(8) * 1e3)
    yield "masked keys (−∞), the first among them", dict(x=np.array([-np.inf, 2.0, -np.inf, 5.0, 1.0]))
    yield "±1e4: e^x would overflow", dict(x=np.array([1e4, -1e4, 0.0, 1e4 - 1, -3e3]))
    yield "one element", dict(x=np.array([-2.5]))
    for scale in (1.0, 30.0, 1e3):
        yield f"random, scale {scale:g}", dict(x=rng.normal(size=int(rng.integers(2, 20))) * scale)


# --- 19 since GPT-2 ---------------------------------------------------------------------------
def _rms_norm_cases(rng):
    yield "(2, 3, 5)", _layer_norm_args(rng, (2, 3, 5))
    yield "one vector (E,)", _layer_norm_args(rng, (6,))
    yield "E = 1", _layer_norm_args(rng, (3, 1))
    yield "small values: ε = 1e-3 matters", _layer_norm_args(rng, (2, 4), eps=1e-3, spread=1e-2, center=0.0)
    for k in range(2):
        rows, dim = _sizes(rng, (1, 4), (2, 8))
        yield f"random ({rows}, {dim}) ({k + 1})", _layer_norm_args(rng, (rows, dim))


def _rms_norm_gradient(args, got):
    from .nn import functional as F

    eps = args.get("eps", 1e-6)
    return (lambda x, gamma, g: _weighted(F.rms_norm(x, x.shape[-1], gamma, eps), g),
            {"x": _t(args["x"]), "gamma": _t(args["gamma"]), "g": args["g"]}, {"x": got[0], "gamma": got[1]})


def _rope_cases(rng):
    yield "6 positions, d = 8", dict(x=rng.normal(size=(6, 8)))
    yield "d = 2: one pair", dict(x=rng.normal(size=(4, 2)))
    yield "batch and heads in front: (2, 3, 5, 4)", dict(x=rng.normal(size=(2, 3, 5, 4)))
    yield "positions 2.. (offset 2, a KV cache's)", dict(x=rng.normal(size=(3, 6)), offset=2)
    yield "another base (100)", dict(x=rng.normal(size=(5, 4)), offset=0, base=100.0)
    length, half = _sizes(rng, (1, 9), (1, 5))
    yield f"random ({length}, {2 * half}), offset", dict(x=rng.normal(size=(length, 2 * half)),
                                                          offset=int(rng.integers(0, 50)))


def _kv_cache_cases(rng):
    yield "Llama 2 70B, 4096 tokens, multi-head", dict(layers=80, kv_heads=64, head_dim=128, positions=4096)
    yield "…with its 8 key/value heads", dict(layers=80, kv_heads=8, head_dim=128, positions=4096)
    yield "a batch of 4, float32", dict(layers=32, kv_heads=8, head_dim=128, positions=1024, batch=4,
                                         bytes_per_number=4)
    yield "one of everything", dict(layers=1, kv_heads=1, head_dim=1, positions=1, batch=1, bytes_per_number=1)
    layers, heads, dim, positions = _sizes(rng, (1, 48), (1, 16), (8, 256), (1, 8192))
    yield "random", dict(layers=layers, kv_heads=heads, head_dim=dim, positions=positions,
                         batch=int(rng.integers(1, 9)), bytes_per_number=int(rng.choice([1, 2, 4])))


# --- 20 data parallelism ----------------------------------------------------------------------
def _rank_grads(rng, ranks, shapes):
    return [{name: rng.normal(size=shape) for name, shape in shapes.items()} for _ in range(ranks)]


def _mean_cases(rng):
    shapes = {"wte.weight": (5, 3), "h.0.mlp.c_fc.bias": (4,)}
    yield "four ranks, two parameters", dict(grads_per_rank=_rank_grads(rng, 4, shapes))
    yield "one rank: its own gradient", dict(grads_per_rank=_rank_grads(rng, 1, shapes))
    yield "8 ranks", dict(grads_per_rank=_rank_grads(rng, 8, {"w": (2, 2)}))
    yield "random", dict(grads_per_rank=_rank_grads(rng, int(rng.integers(2, 7)), {"a": (3,), "b": (2, 4), "c": ()}))


def _weighted_cases(rng):
    shapes = {"wte.weight": (5, 3), "h.0.mlp.c_fc.bias": (4,)}
    yield "counts 16, 8, 2, 4", dict(grads_per_rank=_rank_grads(rng, 4, shapes), counts=[16, 8, 2, 4])
    yield "equal counts: the plain mean", dict(grads_per_rank=_rank_grads(rng, 3, shapes), counts=[5, 5, 5])
    yield "a rank with no counted token", dict(grads_per_rank=_rank_grads(rng, 3, {"w": (2,)}), counts=[3, 0, 1])
    ranks = int(rng.integers(2, 7))
    yield "random", dict(grads_per_rank=_rank_grads(rng, ranks, {"a": (3,), "b": (2, 4)}),
                         counts=rng.integers(1, 50, ranks).tolist())


def _ring_cases(rng):
    def digits(ranks, width):  # rank r's value in chunk c is (c + 1)·10^r, as in the lesson
        return [np.repeat((np.arange(ranks)[:, None] + 1) * 10 ** r, width, axis=1) for r in range(ranks)]

    yield "four ranks, step 0", dict(buffers=digits(4, 1), step=0)
    yield "four ranks, step 2", dict(buffers=digits(4, 2), step=2)
    yield "two ranks", dict(buffers=digits(2, 3), step=0)
    ranks = int(rng.integers(3, 7))
    yield f"random floats, {ranks} ranks", dict(buffers=[rng.normal(size=(ranks, 2)) for _ in range(ranks)],
                                                step=int(rng.integers(0, ranks - 1)))


def _ring_observe(args, result):
    return result, [np.array(b) for b in args["buffers"]]


EXERCISES = [
    Exercise("01", "mse_gradients", 2, _mse_cases, (
        "Start from the loss: what is ∂L/∂ŷ for L = ½ Σ (y − ŷ)²? The ½ and the square's 2 cancel.",
        "With the residual g = ŷ − y: ŷ_i = Σ_j W_ij x_j + b_i, so ∂ŷ_i/∂W_ij = x_j and ∂ŷ_i/∂b_i = 1. "
        "Which product of two vectors gives a matrix of all g_i x_j?"),
        BACKWARD, numpy_only=True, outputs=("dL/dW", "dL/db"), gradient=_mse_gradient),
    Exercise("02", "rnn_bptt", 4, _rnn_cases, (
        "Walk the steps backwards: the gradient reaching h_t comes from grad_out[t] and from step t+1.",
        "At step t: dh = grad_out[t] + W_hhᵀ δa_{t+1}; through tanh, δa = dh ⊙ (1 − h_t²); each weight "
        "collects a sum over the steps of outer products of δa with what it multiplied."),
        BACKWARD + ("tinylm.check.rnn_formulas",), numpy_only=True, gradient=_rnn_gradient),
    Exercise("03", "lstm_cell_step", 3, _lstm_cases, (
        "All four gates come from one pre-activation a = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh; "
        "split it into four equal blocks.",
        "PyTorch's block order is i, f, g, o (not the article's i, f, o, C̃): σ on i, f, o, tanh on g; "
        "then c' = f c + i g and h' = o tanh(c')."),
        ("tinylm.nn.rnn", "tinylm.check.rnn_formulas"), numpy_only=True, outputs=("h'", "c'")),
    Exercise("04", "gru_step_gradient", 4, _gru_cases, (
        "Reverse h' = (1 − z) n + z h one line at a time: what reaches n, z and h directly?",
        "δn = g (1 − z), δz = g (h − n); then through tanh, the two sigmoids and r ⊙ gh_n. "
        "Stack [δa_r, δa_z, δa_n] for gi and [δa_r, δa_z, r δa_n] for gh; dhx also gets g z."),
        BACKWARD + ("tinylm.check.rnn_formulas", "tinylm.nn.rnn"), numpy_only=True, gradient=_gru_gradient),
    Exercise("05", "softmax_vjp", 2, _softmax_cases, (
        "The Jacobian of softmax is ∂y_i/∂x_j = y_i (δ_ij − y_j); you never need to build it.",
        "Multiply it by g: dx_i = y_i (g_i − Σ_j g_j y_j). The sum runs along the last axis; keep that axis."),
        BACKWARD + ("tinylm.check.attention_formulas",), numpy_only=True, gradient=_softmax_gradient),
    Exercise("05", "attention_backward", 3, _attention_cases, (
        "Recompute the forward (scores, weights A) first; then go back through O = A V, the softmax, "
        "and S = Q Kᵀ s.",
        "dV = Aᵀ G and dA = G Vᵀ; your softmax_vjp turns dA into dS; then dQ = dS K s and dK = dSᵀ Q s. "
        "Transpose only the last two axes, so batches work."),
        BACKWARD + ("tinylm.check.attention_formulas",), numpy_only=True, outputs=("dQ", "dK", "dV"),
        gradient=_attention_gradient),
    Exercise("06", "split_heads", 1, _split_cases, (
        "Head i owns the columns i·d .. (i+1)·d: a reshape can cut the last axis into (heads, d).",
        "reshape (N, L, E) to (N, L, h, d), then move the head axis before the positions."),
        ("tinylm.check.attention_formulas", "tinylm.nn.attention"), numpy_only=True),
    Exercise("06", "merge_heads", 1, _merge_cases, (
        "This undoes split_heads: do its two steps in reverse order.",
        "Move the head axis back behind the positions, then reshape (N, L, h, d) to (N, L, h·d)."),
        ("tinylm.check.attention_formulas", "tinylm.nn.attention"), numpy_only=True),
    Exercise("06", "in_proj_grads", 2, _in_proj_cases, (
        "Each of Q, K, V is a Linear layer y = x Wᵀ + b of its own; in_proj_weight stacks the three W.",
        "With every array flattened to rows (−1, E): dW = dPᵀ x and db = Σ_rows dP, for each (x, dP) pair, "
        "concatenated in the order Q, K, V."),
        BACKWARD + ("tinylm.check.attention_formulas",), numpy_only=True,
        outputs=("d in_proj_weight", "d in_proj_bias"), gradient=_in_proj_gradient),
    Exercise("07", "layer_norm_backward", 3, _layer_norm_cases, (
        "dγ and dβ are easy: y = x̂ γ + β. dx is harder because the mean and the variance depend on x too.",
        "With r = 1/√(σ² + ε), x̂ = (x − μ) r and ĝ = g γ: dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ x̂)), means along "
        "the last axis; dγ, dβ sum over every other axis."),
        BACKWARD + ("tinylm.check.attention_formulas", "tinylm.kernels", "tinylm.backend"), numpy_only=True,
        outputs=("dx", "dγ", "dβ"), gradient=_layer_norm_gradient),
    Exercise("07", "blocked_mask", 1, _mask_cases, (
        "True above the diagonal: key j is in query i's future exactly when j > i.",
        "Compare np.arange(length) laid out as a row with itself laid out as a column; broadcasting "
        "makes the (length, length) table."),
        MASKS, numpy_only=True),
    Exercise("08", "sgns_gradients", 3, _sgns_cases, (
        "Differentiate the two kinds of terms separately: −log σ(x) and −log σ(−x), each of x = u·v_c.",
        "d/dx[−log σ(x)] = σ(x) − 1 and d/dx[−log σ(−x)] = σ(x); then d(u·v_c)/dv_c = u and "
        "d(u·v_c)/du = v_c. One row of dJ/du_neg per negative."),
        BACKWARD, numpy_only=True, outputs=("dJ/dv_c", "dJ/du_o", "dJ/du_neg"), gradient=_sgns_gradient),
    Exercise("09", "shifted_pairs", 1, _shift_cases, (
        "The target at position t is the token right after the input's token t.",
        "Both halves are slices of ids: one without its last token, one without its first."),
        ("tinylm.data",), numpy_only=True, outputs=("x", "y")),
    Exercise("09", "causal_mask", 1, _allowed_mask_cases, (
        "True where attention is allowed: query i may see key j when j ≤ i (the lower triangle).",
        "Compare the key index as a row vector with the query index as a column vector."),
        MASKS, numpy_only=True),
    Exercise("10", "bert_corrupt", 2, _corrupt_cases, (
        "Labels first: -100 everywhere except at the chosen positions, where they keep the original id.",
        "Then the inputs, at the chosen positions only: [MASK] when u < 0.8, the next random id when "
        "0.8 ≤ u < 0.9, unchanged otherwise. Copy ids before you change anything."),
        ("tinylm.data.mlm",), numpy_only=True, outputs=("inputs", "labels")),
    Exercise("10", "mlm_loss", 2, _mlm_cases, (
        "Only the positions with a label other than -100 count; pick those rows of logits first.",
        "A stable log-softmax subtracts each row's maximum before exp; then average −log p at the labels."),
        ("tinylm.nn.functional.cross_entropy", "tinylm.nn.functional.log_softmax", "log_softmax_rows"),
        numpy_only=True),
    Exercise("11", "freeze_body", 2, _freeze_cases, (
        "A parameter stops learning when its requires_grad is False; the body's parameters are named "
        "'body.…'.",
        "Loop over classifier.named_parameters(): switch off the body's, then add up numel() of those "
        "that still require a gradient."),
        ("tinylm.nn.module.Module.num_parameters",), observe=_freeze_observe,
        outputs=("numbers that learn", "parameters that learn")),
    Exercise("11", "prepend_prompt", 2, _prompt_cases, (
        "Use tinylm operations, not NumPy: the prompt must stay in the graph to learn.",
        "Give the prompt a batch axis and expand it to (B, P, E); join it and x along the time axis "
        "(axis 1) with F.cat."),
        ("tinylm.models.classifier.GPTBody.encode", "tinylm.models.classifier.BertBody.encode",
         "tinylm.models.gpt.GPT.hidden_states", "tinylm.models.bert.Bert.hidden_states"),
        observe=_prompt_observe, outputs=("prompted input", "the prompt's gradient")),
    Exercise("12", "top_p_filter", 3, _top_p_cases, (
        "Rank the tokens from most to least likely; the nucleus is the shortest head of that ranking "
        "whose mass reaches top_p.",
        "Keep a token while the mass ranked strictly above it is < top_p (so the most likely token always "
        "stays); zero the others and divide by what is left."),
        ("tinylm.generate",), numpy_only=True),
    Exercise("13", "update_scale", 2, _scale_cases, (
        "Two events change the scale: an overflow, and growth_interval clean steps in a row.",
        "An overflow halves the scale and resets the count; a clean step adds one to the count, and when it "
        "reaches growth_interval the scale doubles and the count restarts."),
        ("tinylm.amp",), numpy_only=True, outputs=("scale", "clean steps")),
    Exercise("14", "early_stopping", 2, _stopping_cases, (
        "Track three things over the epochs: the best loss so far, its epoch, and the epochs since it.",
        "Only a strictly lower loss resets the count; stop at the epoch where the count reaches patience, "
        "or report the last epoch if it never does."),
        ("stopping_reference", "tinylm.train"), numpy_only=True, outputs=("best epoch", "stop epoch")),
    Exercise("14", "soft_vote", 1, _vote_cases, (
        "Average the models' probabilities, then pick the most likely class.",
        "np.stack the list (the model axis first), mean over axis 0, argmax over the last axis (which "
        "picks the smaller class on a tie)."),
        ("tinylm.metrics.average_probs", "tinylm.metrics.vote"), numpy_only=True,
        outputs=("mean probabilities", "predicted class")),
    Exercise("15", "macro_f1", 2, _f1_cases, (
        "Macro F1 is the plain mean of one F1 per class; the classes are those in pred or in true.",
        "Per class c count tp (predicted c, was c), fp (predicted c, was not), fn (was c, predicted "
        "something else); F1 = 2tp / (2tp + fp + fn)."),
        ("tinylm.metrics",), numpy_only=True),
    Exercise("15", "clipped_counts", 2, _clip_cases, (
        "Count the hypothesis's n-grams; an n-gram is matched at most as often as it appears in one "
        "reference.",
        "m = Σ over hypothesis n-grams of min(count, max over references of its count there); t = the "
        "number of hypothesis n-grams. collections.Counter helps."),
        ("tinylm.metrics",), numpy_only=True, outputs=("matched", "total")),
    Exercise("15", "brevity_penalty", 1, _brevity_cases, (
        "Only a hypothesis shorter than the reference is penalised.",
        "1 when c ≥ r, else exp(1 − r/c)."),
        ("tinylm.metrics",), numpy_only=True),
    Exercise("16", "quantize_per_channel", 2, _quantize_cases, (
        "One scale per row, chosen so the row's largest |w| becomes the code ±127.",
        "scale = max|row| / 127 (1 for an all-zero row); q = round(W / scale), clipped to ±127, stored as "
        "int8."),
        ("tinylm.compress",), numpy_only=True, observe=_quantize_observe,
        outputs=("codes", "scales", "the codes' dtype")),
    Exercise("16", "global_prune_masks", 2, _prune_cases, (
        "Global: rank all weights of all matrices together by |w|, not each matrix on its own.",
        "Concatenate every |w|, take a stable argsort, drop the first round(s·n), and cut the flat mask "
        "back into the matrices' shapes."),
        ("tinylm.compress",), numpy_only=True),
    Exercise("17", "last_time_step", 1, _last_step_cases, (
        "Which axis is time depends on batch_first.",
        "Without batch_first time is axis 0 (out[-1]); with it, axis 1 (out[:, -1])."),
        ("tinylm.models.classifier",)),
    Exercise("17", "encode_then_decode", 2, _decode_cases, (
        "Two calls: the encoder reads the source, the decoder reads the target and attends to what the "
        "encoder made.",
        "memory = encoder(src); decoder(tgt, memory, tgt_mask=...) with a causal T×T mask "
        "(nn.generate_square_subsequent_mask) — the target first, the memory second."),
        ("EncoderDecoder", "decode_right", "decode_swapped")),
    Exercise("17", "last_real_token", 1, _readout_cases, (
        "Each row has its own last real token, at position lengths[b] − 1.",
        "Index the rows and the positions together: out[np.arange(B), lengths − 1]."),
        ("tinylm.models.classifier",)),
    Exercise("18", "tile_2x2", 2, _tile_cases, (
        "Each k contributes one product to each of the four accumulators.",
        "Load a0, a1 from column k of A (rows i, i+1) and b0, b1 from column k of Bt (rows j, j+1); "
        "then c_rs += a_r b_s."),
        ("@", "numpy.matmul", "numpy.dot", "numpy.einsum", "numpy.inner", "numpy.tensordot", "numpy.ndarray.dot",
         "matmul_ijk", "matmul_ikj", "tiled_matmul"), numpy_only=True),
    Exercise("18", "online_max_sum", 2, _online_cases, (
        "When a new maximum arrives, the sum so far was measured against the old one: rescale it.",
        "m_new = max(m, v); s = s e^(m − m_new) + e^(v − m_new); m = m_new."),
        ("max_sum", "numpy.max", "numpy.amax", "numpy.sum", "numpy.ndarray.max", "numpy.ndarray.sum"),
        numpy_only=True, outputs=("m", "s")),
    Exercise("19", "rms_norm_backward", 3, _rms_norm_cases, (
        "Like LayerNorm's backward, but RMSNorm subtracts no mean: one term fewer in dx.",
        "With r = 1/√(mean(x²) + ε), x̂ = x r and ĝ = g γ: dx = r (ĝ − x̂ mean(ĝ x̂)) along the last axis; "
        "dγ sums g x̂ over every other axis."),
        BACKWARD + ("tinylm.check.llm_formulas", "tinylm.kernels", "tinylm.backend"), numpy_only=True,
        outputs=("dx", "dγ"), gradient=_rms_norm_gradient),
    Exercise("19", "rope", 3, _rope_cases, (
        "Each pair (x_i, x_{i+d/2}) is a point in a plane, turned by the angle p·θ_i at position p.",
        "θ_i = base^(−2i/d) for i < d/2; angles = positions (offset .. offset+T−1) as a column times θ; "
        "with halves x1, x2: [x1 cos − x2 sin, x2 cos + x1 sin]."),
        ("tinylm.nn.positional", "tinylm.check.llm_formulas"), numpy_only=True),
    Exercise("19", "kv_cache_bytes", 1, _kv_cache_cases, (
        "Every layer keeps a key and a value vector per key/value head, per position, per sequence.",
        "Multiply the two (K and V) by layers, kv_heads, head_dim, positions, batch and the bytes of a "
        "number."),
        (), numpy_only=True),
    Exercise("20", "all_reduce_mean", 1, _mean_cases, (
        "The result has the same names as one rank's dict; each value combines all the ranks' arrays.",
        "For each name: add up the ranks' arrays and divide by the number of ranks."),
        ("tinylm.distributed",), numpy_only=True),
    Exercise("20", "all_reduce_weighted", 2, _weighted_cases, (
        "A rank that counted more tokens should weigh more: by its share of all the counted tokens.",
        "For each name: Σ_r n_r g_r / Σ_r n_r."),
        ("tinylm.distributed",), numpy_only=True),
    Exercise("20", "reduce_scatter_step", 2, _ring_cases, (
        "All ranks send at the same moment: take every message out before adding any of them.",
        "N = len(buffers); rank r sends chunk c = (r − step) mod N to rank (r + 1) mod N, which adds it to "
        "its own chunk c; return the size of one message."),
        ("tinylm.distributed", "all_gather_step", "ring_all_reduce"), numpy_only=True, observe=_ring_observe,
        outputs=("values sent", "buffers after the step")),
]


def for_lesson(lesson_name):
    """The exercises of a lesson ("03_lstm"), in the lesson's order."""
    return [e for e in EXERCISES if e.lesson == lesson_name[:2]]


def find(lesson_name, name):
    for e in for_lesson(lesson_name):
        if e.name == name:
            return e
    raise ValueError(f"lesson {lesson_name} has no exercise {name!r}")


def hint(exercise, level):
    """Hint `level` (1, 2: nudges; 3: the recipe written in the lesson) of an exercise."""
    if level in (1, 2):
        return exercise.hints[level - 1]
    if level != 3:
        raise ValueError(f"--level must be 1, 2 or 3, got {level}")
    from .lesson import _BEGIN, find

    path = find(exercise.lesson)
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {exercise.name}("))
    for line in lines[start:]:
        match = _BEGIN.match(line)
        if match:
            return (match.group("hint") or "").strip() or "(the lesson gives no recipe here)"
    raise ValueError(f"{path.name}: {exercise.name} holds no solution block")


def nudge_hints(lesson_name, text):
    """A learner's copy with each `raise NotImplementedError(recipe)` giving the level-1 hint
    instead: the recipe is level 3 of `tinylm hint`, for when the nudges were not enough."""
    for spec in for_lesson(lesson_name):
        nudge = f"{spec.hints[0]} (more: tinylm hint {spec.lesson} {spec.name} --level 2)"
        text = text.replace(f"NotImplementedError({hint(spec, 3)!r})", f"NotImplementedError({nudge!r})")
    return text
