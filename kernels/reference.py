"""The reference kernels, and the contract every kernel set fulfils.

This module is the specification of tinylm's hot kernels. It holds

* CONTRACT: the list of kernels every kernel set provides, and for each one its arguments,
  what it returns, the dtypes it accepts, which arguments may come in any memory layout
  and which arrays it updates in place (tests/test_kernel_contract.py runs every entry of
  every kernel set against the functions below);
* one plain array function per kernel: the set called "numpy", which the Numba set
  (tinylm.kernels.numba_cpu) and the CuPy set (tinylm.kernels.cupy_gpu) must agree with.

Every function works on raw arrays (NumPy on the CPU, CuPy on a GPU: ``xp`` is the array
module of the input) and acts along the LAST axis. The ops in ``tinylm.ops`` move the axis
they work on to the end, then ask ``tinylm.backend.kernels_for`` for a kernel set. This
module imports nothing from tinylm: the backend imports the kernels, never the reverse.
"""
import math
from dataclasses import dataclass

import numpy as np


def xp_of(array):
    """numpy or cupy: the module whose functions compute on `array` (DeZero's trick: one code
    path serves both). tinylm.backend re-exports it for the rest of tinylm."""
    if isinstance(array, np.ndarray) or np.isscalar(array) or type(array).__module__.startswith("numpy"):
        return np
    import cupy

    return cupy


# ---------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Out:
    """One result of a kernel: its name, its shape, and the argument whose dtype it has."""

    name: str
    shape: str
    like: str  # the argument whose dtype this result has
    float32_at_least: bool = False  # from float16 input it stays float32 (kept for a backward, or the loss)


@dataclass(frozen=True)
class Kernel:
    """What one kernel takes and gives, in every kernel set.

    Layouts: every argument in `any_layout` may be contiguous, transposed or a strided view
    (the ops pass views: Linear's ``x @ weight.T`` leaves a transposed gradient). A kernel
    whose compiled code needs contiguous data gets it from its set's wrapper, which copies
    the argument (and copies the result back into an in-place argument) — it never hands
    the call to another set.

    dtypes: the float dtypes an op may pass through ``tinylm.backend.kernels_for``. The sets'
    own functions compute in float32 and float64, the float arrays of one call sharing one
    dtype; kernels_for serves float16 arrays by computing in float32 and rounding each result
    to the dtype its Out entry names (backend._half_set).
    """

    args: dict  # argument name -> its shape or meaning, in call order
    returns: tuple = ()  # one Out per result; () for a kernel that only updates arrays in place
    any_layout: tuple = ()  # array arguments that may come in any layout (see above)
    integers: tuple = ()  # array arguments holding integers (class indices); other arrays hold floats
    optional: tuple = ()  # arguments that may be None
    in_place: tuple = ()  # arrays the kernel updates in place: their new values are its result
    dtypes: tuple = ("float16", "float32", "float64")


_ROWS = "(..., n)"
_STATS = "(..., 1)"

CONTRACT = {
    "matmul": Kernel(
        args={"a": "(..., M, K)", "b": "(..., K, N); the leading axes broadcast"},
        returns=(Out("c", "(..., M, N)", like="a"),), any_layout=("a", "b")),
    "softmax": Kernel(args={"x": _ROWS}, returns=(Out("y", _ROWS, like="x"),), any_layout=("x",)),
    "softmax_backward": Kernel(
        args={"y": _ROWS + ", softmax's output", "gy": _ROWS},
        returns=(Out("dx", _ROWS, like="y"),), any_layout=("y", "gy")),
    "log_softmax": Kernel(args={"x": _ROWS}, returns=(Out("y", _ROWS, like="x"),), any_layout=("x",)),
    "log_softmax_backward": Kernel(
        args={"y": _ROWS + ", log_softmax's output", "gy": _ROWS},
        returns=(Out("dx", _ROWS, like="y"),), any_layout=("y", "gy")),
    "causal_softmax": Kernel(
        args={"scores": "(..., T, S) with S >= T", "scale": "float"},
        returns=(Out("y", "(..., T, S)", like="scores"),), any_layout=("scores",)),
    "causal_attention": Kernel(
        args={"q": "(..., T, d)", "k": "(..., T, d)", "v": "(..., T, dv)", "scale": "float"},
        returns=(Out("y", "(..., T, dv)", like="q"), Out("lse", "(..., T)", like="q", float32_at_least=True)),
        any_layout=("q", "k", "v")),
    "causal_attention_backward": Kernel(
        args={"q": "(..., T, d)", "k": "(..., T, d)", "v": "(..., T, dv)", "y": "(..., T, dv), the forward's",
              "lse": "(..., T), the forward's", "gy": "(..., T, dv)", "scale": "float"},
        returns=(Out("dq", "(..., T, d)", like="q"), Out("dk", "(..., T, d)", like="q"),
                 Out("dv", "(..., T, dv)", like="q")),
        any_layout=("q", "k", "v", "y", "lse", "gy")),
    "layer_norm": Kernel(
        args={"x": _ROWS, "weight": "(n,) or None", "bias": "(n,) or None", "eps": "float"},
        returns=(Out("y", _ROWS, like="x"), Out("mean", _STATS, like="x", float32_at_least=True),
                 Out("rstd", _STATS, like="x", float32_at_least=True)),
        any_layout=("x", "weight", "bias"), optional=("weight", "bias")),
    "layer_norm_backward": Kernel(
        args={"gy": _ROWS, "x": _ROWS, "mean": _STATS, "rstd": _STATS, "weight": "(n,) or None"},
        returns=(Out("dx", _ROWS, like="x"), Out("dweight", "(n,), None without weight", like="weight"),
                 Out("dbias", "(n,), None without weight", like="weight")),
        any_layout=("gy", "x", "mean", "rstd", "weight"), optional=("weight",)),
    "rms_norm": Kernel(
        args={"x": _ROWS, "weight": "(n,) or None", "eps": "float"},
        returns=(Out("y", _ROWS, like="x"), Out("rstd", _STATS, like="x", float32_at_least=True)),
        any_layout=("x", "weight"), optional=("weight",)),
    "rms_norm_backward": Kernel(
        args={"gy": _ROWS, "x": _ROWS, "rstd": _STATS, "weight": "(n,) or None"},
        returns=(Out("dx", _ROWS, like="x"), Out("dweight", "(n,), None without weight", like="weight")),
        any_layout=("gy", "x", "rstd", "weight"), optional=("weight",)),
    "gelu": Kernel(
        args={"x": "any shape", "approximate": "'none' or 'tanh'"},
        returns=(Out("y", "x's shape", like="x"),), any_layout=("x",)),
    "gelu_backward": Kernel(
        args={"x": "any shape", "gy": "x's shape", "approximate": "'none' or 'tanh'"},
        returns=(Out("dx", "x's shape", like="x"),), any_layout=("x", "gy")),
    "bias_gelu": Kernel(
        args={"x": _ROWS, "bias": "(n,)", "approximate": "'none' or 'tanh'"},
        returns=(Out("y", _ROWS, like="x"),), any_layout=("x", "bias")),
    "bias_gelu_backward": Kernel(
        args={"x": _ROWS, "bias": "(n,)", "gy": _ROWS, "approximate": "'none' or 'tanh'"},
        returns=(Out("dx", _ROWS, like="x"), Out("dbias", "(n,)", like="bias")), any_layout=("x", "bias", "gy")),
    "swiglu": Kernel(
        args={"gate": "any shape", "up": "gate's shape"},
        returns=(Out("y", "gate's shape", like="gate"),), any_layout=("gate", "up")),
    "swiglu_backward": Kernel(
        args={"gate": "any shape", "up": "gate's shape", "gy": "gate's shape"},
        returns=(Out("dgate", "gate's shape", like="gate"), Out("dup", "gate's shape", like="gate")),
        any_layout=("gate", "up", "gy")),
    "rope": Kernel(
        args={"x": "(..., T, d), d even", "cos": "(T, d/2)", "sin": "(T, d/2); the backward is rope(gy, cos, -sin)"},
        returns=(Out("y", "(..., T, d)", like="x"),), any_layout=("x", "cos", "sin")),
    "cross_entropy": Kernel(
        args={"logits": "(N, C)", "target": "(N,) class indices", "ignore_index": "int"},
        returns=(Out("loss", "(N,)", like="logits", float32_at_least=True),
                 Out("lse", "(N,)", like="logits", float32_at_least=True)),
        any_layout=("logits", "target"), integers=("target",)),
    "cross_entropy_backward": Kernel(
        args={"logits": "(N, C)", "lse": "(N,), from cross_entropy", "target": "(N,) class indices",
              "gloss": "(N,)", "ignore_index": "int"},
        returns=(Out("dz", "(N, C)", like="logits"),),
        any_layout=("logits", "lse", "target", "gloss"), integers=("target",)),
    "adam_step": Kernel(
        args={"w": "any shape", "g": "w's shape", "m": "w's shape", "v": "w's shape", "lr": "float",
              "beta1": "float", "beta2": "float", "eps": "float", "weight_decay": "float",
              "decoupled": "bool: AdamW", "step": "int, from 1"},
        any_layout=("w", "g", "m", "v"), in_place=("w", "m", "v")),
}


# ---------------------------------------------------------------------------------------
# The kernels
# ---------------------------------------------------------------------------------------

def matmul(a, b):
    """C = A B over the last two axes (leading axes broadcast).

    A stack of matrices times one matrix, (..., n, k) @ (k, m), is computed as one 2-D product
    of all the rows, (rows, k) @ (k, m): one large BLAS call instead of a loop of small ones
    (NumPy's stacked matmul can be a hundred times slower on a transposed operand).
    """
    xp = xp_of(a)
    if a.ndim > 2 and b.ndim == 2:
        return xp.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    return xp.matmul(a, b)


def softmax(x):
    """y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j (001.softmax; m keeps exp finite)."""
    xp = xp_of(x)
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(y, gy):
    """dx_i = y_i (g_i - sum_j g_j y_j): the softmax Jacobian diag(y) - y yᵀ times g."""
    return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


def log_softmax(x):
    """y_i = x_i - logsumexp(x) = (x_i - m) - log sum_j exp(x_j - m)."""
    xp = xp_of(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward(y, gy):
    """dx_i = g_i - softmax_i sum_j g_j, with softmax = exp(y) from the forward output y."""
    return gy - xp_of(y).exp(y) * gy.sum(axis=-1, keepdims=True)


def causal_softmax(scores, scale):
    """Softmax of scale*scores over the last axis with future keys masked out.

    scores has shape (..., T, S): query i (of the last T) may see key j when
    j <= i + S - T, so with S == T the usual lower triangle is kept, and with a KV
    cache (S > T) each new query also sees every earlier position.
    """
    xp = xp_of(scores)
    t, s = scores.shape[-2:]
    future = xp.arange(s)[None, :] > xp.arange(t)[:, None] + (s - t)
    return softmax(xp.where(future, -xp.inf, scores * scale))


def causal_attention(q, k, v, scale):
    """Causal self-attention (004.attn.steps with the mask of 003.clm): for each query i,

        y_i = sum_{j <= i} p_ij v_j,   p_ij = e^(s_ij) / sum_{j' <= i} e^(s_ij'),   s_ij = scale q_i·k_j,

    and lse_i = log sum_{j <= i} e^(s_ij), which the backward uses to recompute the weights p
    instead of keeping the T×T matrix (a fused kernel never makes it; this reference does).
    Returns (y, lse).
    """
    xp = xp_of(q)
    t = q.shape[-2]
    s = scale * (q @ xp.swapaxes(k, -1, -2))
    s = xp.where(xp.arange(t)[None, :] > xp.arange(t)[:, None], -xp.inf, s)  # key j after query i
    m = s.max(axis=-1, keepdims=True)
    e = xp.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    return (e / total) @ v, (m + xp.log(total))[..., 0]


def causal_attention_backward(q, k, v, y, lse, gy, scale):
    """Gradients of causal_attention, from the weights recomputed from lse:

        p = e^(s - lse) (0 for j > i),  dv = pᵀ gy,  dp = gy vᵀ,
        ds = p (dp - D),  D_i = sum_j dp_ij p_ij = gy_i·y_i  (the softmax backward, 001.softmax),
        dq = scale ds k,  dk = scale dsᵀ q.
    Returns (dq, dk, dv).
    """
    xp = xp_of(q)
    t = q.shape[-2]
    s = scale * (q @ xp.swapaxes(k, -1, -2))
    p = xp.exp(xp.where(xp.arange(t)[None, :] > xp.arange(t)[:, None], -xp.inf, s) - lse[..., None])
    dp = gy @ xp.swapaxes(v, -1, -2)
    ds = p * (dp - (gy * y).sum(axis=-1, keepdims=True))
    return scale * (ds @ k), scale * (xp.swapaxes(ds, -1, -2) @ q), xp.swapaxes(p, -1, -2) @ gy


def layer_norm(x, weight, bias, eps):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased var).

    Returns (y, mean, rstd) with rstd = 1/sqrt(var + eps), kept for the backward.
    weight and bias may be None (no affine transform).
    """
    xp = xp_of(x)
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    y = xc * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(gy, x, mean, rstd, weight):
    """Gradients of layer_norm, with x̂ = (x - mean) rstd and ĝ = gy * weight:

        dx = rstd (ĝ - mean(ĝ) - x̂ mean(ĝ x̂))      (means over the normalised axis)
        dweight = sum over rows of gy x̂,   dbias = sum over rows of gy

    Returns (dx, dweight, dbias); dweight/dbias are None when weight is None.
    """
    xhat = (x - mean) * rstd
    g = gy if weight is None else gy * weight
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx, None, None
    rows = tuple(range(gy.ndim - 1))
    return dx, (gy * xhat).sum(axis=rows), gy.sum(axis=rows)


def rms_norm(x, weight, eps):
    """y = x / sqrt(mean(x²) + eps) * weight over the last axis (RMSNorm: LayerNorm without the
    mean subtracted and without a bias).

    Returns (y, rstd) with rstd = 1/sqrt(mean(x²) + eps), kept for the backward; weight may be None.
    """
    xp = xp_of(x)
    rstd = 1.0 / xp.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    y = x * rstd
    return (y if weight is None else y * weight), rstd


def rms_norm_backward(gy, x, rstd, weight):
    """Gradients of rms_norm, with x̂ = x rstd and ĝ = gy * weight:

        dx = rstd (ĝ - x̂ mean(ĝ x̂))      (the mean over the normalised axis)
        dweight = sum over rows of gy x̂

    Returns (dx, dweight); dweight is None when weight is None.
    """
    xhat = x * rstd
    g = gy if weight is None else gy * weight
    dx = rstd * (g - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx, None
    return dx, (gy * xhat).sum(axis=tuple(range(gy.ndim - 1)))


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erf(xp, x):
    """erf, element-wise. NumPy has no erf ufunc, so the reference maps math.erf over the
    values (exact, slow: the Numba kernel is the fast path); CuPy has one in cupyx."""
    if xp.__name__ == "numpy":
        return _np_erf(x).astype(x.dtype, copy=False)
    from cupyx.scipy.special import erf  # pragma: no cover - GPU only

    return erf(x)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, approximate="none"):
    """GELU(x) = x Φ(x), Φ(x) = ½(1 + erf(x/√2)); with approximate="tanh":
    ½ x (1 + tanh(√(2/π)(x + 0.044715 x³)))."""
    xp = xp_of(x)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + _erf(xp, x * _INV_SQRT_2))


def gelu_backward(x, gy, approximate="none"):
    """d GELU/dx = Φ(x) + x φ(x), φ(x) = exp(-x²/2)/√(2π); for the tanh form, with
    u = √(2/π)(x + 0.044715 x³) and t = tanh u:  ½(1 + t) + ½ x (1 - t²) √(2/π)(1 + 3·0.044715 x²)."""
    xp = xp_of(x)
    if approximate == "tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
    else:
        d = 0.5 * (1.0 + _erf(xp, x * _INV_SQRT_2)) + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return gy * d.astype(x.dtype, copy=False)


def bias_gelu(x, bias, approximate="none"):
    """y = GELU(x + bias), the bias added to every row: a Linear layer's bias and the GELU after
    it (u = x Wᵀ + b, y = GELU(u)) in one pass over u, for tinylm.ops.LinearOp."""
    return gelu(x + bias, approximate)


def bias_gelu_backward(x, bias, gy, approximate="none"):
    """Gradients of bias_gelu: with u = x + bias, dx = gy GELU'(u) (gelu_backward) and
    dbias = dx summed over the rows. Returns (dx, dbias)."""
    dx = gelu_backward(x + bias, gy, approximate)
    return dx, dx.sum(axis=tuple(range(dx.ndim - 1)))


def sigmoid(xp, x):
    """σ(x) = 1 / (1 + e^(-x)), computed as ½(1 + tanh(x/2)) (the same function): no e^(-x) to overflow."""
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


def swiglu(gate, up):
    """y = SiLU(a) ⊙ b = a σ(a) b, element-wise, a = gate and b = up (beyond the articles, no
    SEEDS_GUIDE id: lesson 19): Llama's MLP is W_down (SiLU(W_gate x) ⊙ W_up x) (Shazeer 2020),
    so a = x W_gateᵀ and b = x W_upᵀ."""
    xp = xp_of(gate)
    return gate * sigmoid(xp, gate) * up


def swiglu_backward(gate, up, gy):
    """Gradients of swiglu, with s = σ(a) and SiLU'(a) = d(a s)/da = s + a s (1 - s):

        da = gy ⊙ b ⊙ s (1 + a (1 - s)),    db = gy ⊙ a s

    Returns (dgate, dup)."""
    xp = xp_of(gate)
    s = sigmoid(xp, gate)
    return gy * up * s * (1.0 + gate * (1.0 - s)), gy * gate * s


def check_rope(x, cos, sin):
    """rope's shapes: x (..., T, d) with d even, cos and sin (T, d/2); anything else is an error."""
    shape = tuple(x.shape)
    if len(shape) < 2 or shape[-1] % 2 or tuple(cos.shape) != (shape[-2], shape[-1] // 2) or cos.shape != sin.shape:
        raise ValueError(f"rope: x must be (..., T, d) with d even, and cos and sin (T, d/2), got x {shape}, "
                         f"cos {tuple(cos.shape)}, sin {tuple(sin.shape)}")


def rope(x, cos, sin):
    """Rotary position embedding (RoPE, Su et al. 2021; beyond the articles, no SEEDS_GUIDE id:
    lesson 19) in the "rotate_half" layout of Hugging Face's Llama: the pair (x_i, x_{i+d/2}) of
    the row at position p (axis -2) is rotated by the angle p θ_i, cos = cos(p θ_i) and
    sin = sin(p θ_i) given as (T, d/2) arrays:

        y_i       = x_i cos - x_{i+d/2} sin
        y_{i+d/2} = x_{i+d/2} cos + x_i sin

    The backward is the same kernel: a rotation's transpose is its inverse, the rotation by the
    opposite angle, so dx = Rᵀ g = rope(g, cos, -sin):
        dx_i = g_i cos + g_{i+d/2} sin,   dx_{i+d/2} = g_{i+d/2} cos - g_i sin.
    """
    xp = xp_of(x)
    check_rope(x, cos, sin)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return xp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def cross_entropy(logits, target, ignore_index):
    """Per-row loss_n = logsumexp(z_n) - z_n[t_n] (004.pretrain.loss: -log softmax at the target).

    logits (N, C), target (N,) integers. Rows whose target is ignore_index get loss 0.
    Returns (loss (N,), lse (N,)); lse = logsumexp per row is kept for the backward.
    """
    xp = xp_of(logits)
    m = logits.max(axis=-1)
    lse = m + xp.log(xp.exp(logits - m[:, None]).sum(axis=-1))
    keep = target != ignore_index
    safe = xp.where(keep, target, 0)
    picked = xp.take_along_axis(logits, safe[:, None], axis=-1)[:, 0]
    return xp.where(keep, lse - picked, 0).astype(logits.dtype, copy=False), lse


def cross_entropy_backward(logits, lse, target, gloss, ignore_index):
    """dz_nc = g_n (softmax(z_n)_c - [c == t_n]); rows with target == ignore_index get 0."""
    xp = xp_of(logits)
    keep = target != ignore_index
    g = xp.where(keep, gloss, 0).astype(logits.dtype, copy=False)
    grad = xp.exp(logits - lse[:, None]) * g[:, None]
    rows = xp.arange(logits.shape[0])
    grad[rows, xp.where(keep, target, 0)] -= g
    return grad


def adam_step(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam (AdamW when decoupled) update of w, m and v, in place; step t counts from 1:

        AdamW: w ← w (1 - lr λ);   Adam: g ← g + λ w
        m ← β1 m + (1-β1) g,   v ← β2 v + (1-β2) g²
        w ← w - lr/(1-β1^t) · m / (√(v/(1-β2^t)) + ε)
    """
    xp = xp_of(w)
    if weight_decay and decoupled:
        w *= 1 - lr * weight_decay
    elif weight_decay:
        g = g + weight_decay * w
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    denom = xp.sqrt(v / (1 - beta2 ** step))
    denom += eps
    w -= (lr / (1 - beta1 ** step)) * (m / denom)
