"""The kernel contract, run: every kernel of tinylm.kernels.reference.CONTRACT, in every kernel
set that runs here, against the reference.

* The matrix (test_kernel_follows_the_contract): each kernel set ("numpy", "numba", and "cupy"
  where a CUDA device answers; its cases are marked gpu and skip without one) x each kernel x
  each dtype the contract lists x three layouts of every array argument (contiguous, a
  transposed view, every other element of a wider array), on hypothesis-drawn shapes and
  values. The kernels come from backend.kernels_for, so float16 is served as tinylm serves it
  (in float32, rounded). Each result must have the contract's dtype, the reference's shape and
  the reference's value computed in float64 on the same inputs; adam_step must update w, m
  and v in place.
* The Numba Adam updates every parameter of the default GPT; float16 Adam works.
* Checks of one set: the Numba building blocks (fast e^x, Φ), large and odd matmuls, extreme
  and masked logits, clear errors, the CUDA sources compiling with nvcc (no GPU needed), the
  GPU teaching matmul, the benchmarks running. Speed is measured by tinylm.bench, not here.
"""
import inspect
import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import cpu_kernel_sets
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from strategies import arrays, matmul_shapes, row_shapes, shapes

import tinylm
from tinylm import backend
from tinylm.kernels import numba_cpu as nb
from tinylm.kernels import reference as ref
from tinylm.kernels.numba_cpu import machinery
from tinylm.kernels.reference import CONTRACT

cp = backend.cupy_or_none()


def gpu(test):
    """Mark a test as needing a CUDA device, and skip it where there is none."""
    return pytest.mark.gpu(pytest.mark.skipif(cp is None, reason="needs CuPy and a CUDA device")(test))


SETS = cpu_kernel_sets() + [pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
    cp is None, reason="needs CuPy and a CUDA device")])]
LAYOUTS = ["contiguous", "transposed", "strided"]
IGNORE = -100  # the ignore_index of the cross-entropy cases

# (rtol, atol) by result dtype; a float16 result is rounded once more than the reference
TOL = {np.float16: (2e-3, 1e-3), np.float32: (1e-5, 1e-6), np.float64: (1e-12, 1e-12)}
TOL_GPU = {**TOL, np.float32: (1e-4, 1e-5), np.float64: (1e-9, 1e-12)}


def laid_out(value, layout, xp=np):
    """A copy of value (a NumPy array) on the set's device (xp: numpy or cupy), in the memory
    layout `layout`: C-contiguous, a transposed view (of a copy with the axes reversed), or
    every other element of a wider array. The values are the same in every layout; the copy
    keeps value itself unchanged by a kernel that works in place."""
    if not isinstance(value, np.ndarray):
        return value
    if layout == "transposed" and value.ndim >= 2:
        return xp.asarray(np.array(value.T, order="C")).T
    if layout == "strided" and value.ndim >= 1:
        wide = np.zeros(value.shape[:-1] + (2 * value.shape[-1],), value.dtype)
        wide[..., ::2] = value
        return xp.asarray(wide)[..., ::2]
    return xp.asarray(np.array(value, order="C"))


def kernels_of(set_name, probe):
    """The kernels backend.kernels_for gives for the array `probe` with kernel set `set_name` chosen."""
    tinylm.set_kernels(set_name)
    try:
        return backend.kernels_for(probe)
    finally:
        tinylm.set_kernels(None)


def assert_matches(got, want, dtype, set_name, roundings=0.0):
    """got (an array of any device) has `dtype`, want's shape, and want's values (float64, rounded
    to `dtype`) within dtype's tolerance, plus an absolute error of `roundings` machine epsilons
    of the dtype the kernel computes in (float32 for float16: backend._half_set)."""
    got = backend.to_device(got, "cpu")
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    rtol, atol = (TOL_GPU if set_name == "cupy" else TOL)[np.dtype(dtype).type]
    eps = np.finfo(np.promote_types(dtype, np.float32)).eps
    np.testing.assert_allclose(got.astype(np.float64), want.astype(dtype).astype(np.float64),
                               rtol=rtol, atol=atol + roundings * eps)


# ---------------------------------------------------------------------------------------
# The cases: for each kernel, arguments drawn in one dtype, and the roundings (in machine
# epsilons) its results may carry beyond the dtype's tolerance
# ---------------------------------------------------------------------------------------

def values(draw, shape, dtype, low=-2.0, high=2.0):
    return draw(arrays(shape, dtype, low, high))


def at_least_float32(dtype):
    """The dtype of values kept for a backward (a row's mean, 1/std, logsumexp) and of the loss."""
    return np.promote_types(dtype, np.float32)


def matmul_roundings(a, b):
    """A sum of K products of size up to |a| |b|: K roundings of that size, twice over."""
    return 8 * a.shape[-1] * float(abs(a).max(initial=0)) * float(abs(b).max(initial=0))


def matmul_case(draw, dtype):
    a_shape, b_shape = draw(matmul_shapes())
    a, b = values(draw, a_shape, dtype), values(draw, b_shape, dtype)
    return {"a": a, "b": b}, matmul_roundings(a, b)


def forward_case(draw, dtype):
    return {"x": values(draw, draw(row_shapes()), dtype)}, 0


def backward_case(forward):
    def case(draw, dtype):
        shape = draw(row_shapes())
        y = getattr(ref, forward)(values(draw, shape, np.float64)).astype(dtype)  # a forward's output
        return {"y": y, "gy": values(draw, shape, dtype)}, 0
    return case


def causal_softmax_case(draw, dtype):
    # S = T + extra keys: extra > 0 is a KV cache, where each query also sees the earlier keys
    t, extra = draw(st.integers(1, 40)), draw(st.integers(0, 30))
    scores = values(draw, draw(shapes(0, 2, max_side=3)) + (t, t + extra), dtype)
    return {"scores": scores, "scale": draw(st.floats(0.05, 3.0))}, 0


def causal_attention_case(draw, dtype):
    # T past one block of the Numba set (128) now and then: the online softmax over key blocks
    t = draw(st.one_of(st.integers(1, 40), st.just(131)))
    lead = draw(shapes(0, 2, max_side=3))
    d, dv = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    q, k = values(draw, lead + (t, d), dtype), values(draw, lead + (t, d), dtype)
    # y is a weighted mean of v, from weights whose scores sum d products (measured: 12 roundings
    # at d = 9, T = 131); lse a log of a sum of T terms
    return {"q": q, "k": k, "v": values(draw, lead + (t, dv), dtype), "scale": draw(st.floats(0.1, 1.0))}, 4 * d + 8


def causal_attention_backward_case(draw, dtype):
    args, roundings = causal_attention_case(draw, dtype)
    wide = {name: a.astype(np.float64) if isinstance(a, np.ndarray) else a for name, a in args.items()}
    y, lse = ref.causal_attention(*wide.values())
    stats = at_least_float32(dtype)
    t = args["q"].shape[-2]
    # each gradient adds up to T terms, each a product of a few rounded values (measured: 58
    # roundings at d = 9, T = 131)
    return ({"q": args["q"], "k": args["k"], "v": args["v"], "y": y.astype(dtype), "lse": lse.astype(stats),
             "gy": values(draw, y.shape, dtype), "scale": args["scale"]}, roundings * (1 + t // 8))


def layer_norm_case(draw, dtype):
    shape = draw(row_shapes())
    # an offset mean (2..8): the variance must come from x - mean, not E[x²] - mean²
    low, high = draw(st.sampled_from([(-2.0, 2.0), (2.0, 8.0)]))
    x = values(draw, shape, dtype, low, high)
    affine = draw(st.booleans())
    weight = values(draw, shape[-1:], dtype) if affine else None
    bias = values(draw, shape[-1:], dtype) if affine else None
    # x - mean keeps the rounding of the mean, about √n roundings of |x| (NumPy adds up a
    # strided row one value at a time), and y = (x - mean) rstd weight multiplies it by
    # rstd |weight| (rstd reaches 1/sqrt(eps) = 316 for a row of nearly equal values)
    _, _, rstd = ref.layer_norm(x.astype(np.float64), None, None, 1e-5)
    roundings = 2 * float(rstd.max()) * float(abs(x).max()) * (4 + math.sqrt(shape[-1]))
    return {"x": x, "weight": weight, "bias": bias, "eps": 1e-5}, roundings


def layer_norm_backward_case(draw, dtype):
    args, in_xhat = layer_norm_case(draw, dtype)  # the roundings in x̂ = (x - mean) rstd
    x = args["x"]
    _, mean, rstd = ref.layer_norm(x.astype(np.float64), None, None, 1e-5)
    stats = at_least_float32(dtype)
    # dx = rstd (ĝ - mean ĝ - x̂ mean(ĝ x̂)) with |ĝ| <= 4 multiplies x̂'s roundings by about
    # 8 rstd; dweight adds up gy x̂ over every row
    rows = math.prod(x.shape[:-1])
    return ({"gy": values(draw, x.shape, dtype), "x": x, "mean": mean.astype(stats), "rstd": rstd.astype(stats),
             "weight": args["weight"]}, in_xhat * (8 * float(rstd.max()) + rows))


def rms_norm_case(draw, dtype):
    shape = draw(row_shapes())
    x = values(draw, shape, dtype, *draw(st.sampled_from([(-2.0, 2.0), (2.0, 8.0)])))
    weight = values(draw, shape[-1:], dtype) if draw(st.booleans()) else None
    # y = x rstd weight: the rounding of the mean of squares (√n roundings, as layer norm's mean)
    # times |x| rstd |weight| (rstd up to 1/sqrt(eps) only when every x is near 0)
    _, rstd = ref.rms_norm(x.astype(np.float64), None, 1e-5)
    return {"x": x, "weight": weight, "eps": 1e-5}, 2 * float(rstd.max()) * float(abs(x).max()) * (4 + math.sqrt(shape[-1]))


def rms_norm_backward_case(draw, dtype):
    args, in_xhat = rms_norm_case(draw, dtype)
    x = args["x"]
    _, rstd = ref.rms_norm(x.astype(np.float64), None, 1e-5)
    rows = math.prod(x.shape[:-1])
    return ({"gy": values(draw, x.shape, dtype), "x": x, "rstd": rstd.astype(at_least_float32(dtype)),
             "weight": args["weight"]}, in_xhat * (8 * float(rstd.max()) + rows))


def gelu_case(draw, dtype):
    x = values(draw, draw(shapes(0, 3, max_side=40)), dtype, -8.0, 8.0)  # both tails: x Φ(x) -> 0 and -> x
    # The reference's tanh form rounds 1 + tanh u and 1 - tanh² u at 1, where tanh u is near
    # -1 (the left tail); those roundings are multiplied by x (up to 8) and gy (up to 2)
    return {"x": x, "approximate": draw(st.sampled_from(["none", "tanh"]))}, 64


def gelu_backward_case(draw, dtype):
    args, roundings = gelu_case(draw, dtype)
    return {"x": args["x"], "gy": values(draw, args["x"].shape, dtype), "approximate": args["approximate"]}, roundings


def bias_gelu_case(draw, dtype):
    shape = draw(row_shapes())
    x = values(draw, shape, dtype, -6.0, 6.0)  # x + bias reaches both tails of GELU
    # as gelu's roundings; the bias adds one rounding of x + bias, and dbias sums dx over the rows
    return {"x": x, "bias": values(draw, shape[-1:], dtype), "approximate": draw(st.sampled_from(["none", "tanh"]))}, 64


def bias_gelu_backward_case(draw, dtype):
    args, roundings = bias_gelu_case(draw, dtype)
    rows = math.prod(args["x"].shape[:-1])
    return {"x": args["x"], "bias": args["bias"], "gy": values(draw, args["x"].shape, dtype),
            "approximate": args["approximate"]}, roundings * (1 + rows)


def swiglu_case(draw, dtype):
    shape = draw(shapes(0, 3, max_side=40))
    # gates into both tails of σ; σ from e^x (the Numba set) against ½(1 + tanh(x/2)) (the
    # reference), its rounding times |a b| up to 16
    return {"gate": values(draw, shape, dtype, -8.0, 8.0), "up": values(draw, shape, dtype)}, 64


def swiglu_backward_case(draw, dtype):
    args, roundings = swiglu_case(draw, dtype)
    return {**args, "gy": values(draw, args["gate"].shape, dtype)}, roundings


def rope_case(draw, dtype):
    t, half = draw(st.integers(1, 70)), draw(st.one_of(st.integers(1, 20), st.just(64)))
    x = values(draw, draw(shapes(0, 3, max_side=3)) + (t, 2 * half), dtype)
    angles = draw(st.integers(0, 1000)) + np.arange(t)[:, None] * 10000.0 ** (-np.arange(half) / half)
    # each output is x_i cos ± x_j sin: two products and a sum, rounded in the dtype
    return {"x": x, "cos": np.cos(angles).astype(dtype), "sin": np.sin(angles).astype(dtype)}, 4


def logits_and_targets(draw, dtype):
    """(N, C) logits and N class indices (int64 or int32), some of them IGNORE."""
    n, classes = draw(st.integers(1, 30)), draw(st.one_of(st.integers(1, 300), st.just(1025)))
    target = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)),
                      dtype=draw(st.sampled_from([np.int64, np.int32])))
    target[np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))] = IGNORE
    return values(draw, (n, classes), dtype), target


def cross_entropy_case(draw, dtype):
    logits, target = logits_and_targets(draw, dtype)
    return {"logits": logits, "target": target, "ignore_index": IGNORE}, 0


def cross_entropy_backward_case(draw, dtype):
    logits, target = logits_and_targets(draw, dtype)
    _, lse = ref.cross_entropy(logits.astype(np.float64), target, IGNORE)
    stats = at_least_float32(dtype)
    return {"logits": logits, "lse": lse.astype(stats), "target": target,
            "gloss": values(draw, target.shape, stats), "ignore_index": IGNORE}, 0


def adam_step_case(draw, dtype):
    shape = draw(shapes(0, 3, max_side=8))
    w, g, m = (values(draw, shape, dtype) for _ in range(3))
    decay, decoupled = draw(st.sampled_from([(0.0, True), (0.1, True), (0.1, False)]))  # none, AdamW, Adam + L2
    return {"w": w, "g": g, "m": m, "v": values(draw, shape, dtype, 0.0, 2.0), "lr": 1e-2, "beta1": 0.9,
            "beta2": 0.99, "eps": 1e-8, "weight_decay": decay, "decoupled": decoupled,
            "step": draw(st.integers(1, 3))}, 0


CASES = {
    "matmul": matmul_case,
    "softmax": forward_case,
    "softmax_backward": backward_case("softmax"),
    "log_softmax": forward_case,
    "log_softmax_backward": backward_case("log_softmax"),
    "causal_softmax": causal_softmax_case,
    "causal_attention": causal_attention_case,
    "causal_attention_backward": causal_attention_backward_case,
    "layer_norm": layer_norm_case,
    "layer_norm_backward": layer_norm_backward_case,
    "rms_norm": rms_norm_case,
    "rms_norm_backward": rms_norm_backward_case,
    "gelu": gelu_case,
    "gelu_backward": gelu_backward_case,
    "bias_gelu": bias_gelu_case,
    "bias_gelu_backward": bias_gelu_backward_case,
    "swiglu": swiglu_case,
    "swiglu_backward": swiglu_backward_case,
    "rope": rope_case,
    "cross_entropy": cross_entropy_case,
    "cross_entropy_backward": cross_entropy_backward_case,
    "adam_step": adam_step_case,
}


# ---------------------------------------------------------------------------------------
# The matrix
# ---------------------------------------------------------------------------------------

def test_every_kernel_of_the_contract_has_a_case_and_its_signature():
    assert list(CASES) == list(CONTRACT)
    modules = [ref, nb] + ([backend._load("cupy")] if cp is not None else [])
    for name, kernel in CONTRACT.items():
        for module in modules:
            params = list(inspect.signature(getattr(module, name)).parameters)
            assert params == list(kernel.args), (module.__name__, name, params)


def expected(kernel, name, args):
    """The reference's results in float64 (for adam_step: w, m and v after the update), and
    the dtype the contract gives each."""
    wide = {k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in args.items()}  # copies: adam_step updates these
    out = getattr(ref, name)(*wide.values())
    if kernel.in_place:
        return [wide[k] for k in kernel.in_place], [args[k].dtype for k in kernel.in_place]
    outs = out if len(kernel.returns) > 1 else (out,)
    dtypes = []
    for result in kernel.returns:
        like = args[result.like]
        dtype = None if like is None else like.dtype
        dtypes.append(at_least_float32(dtype) if dtype is not None and result.float32_at_least else dtype)
    return list(outs), dtypes


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name,dtype", [(name, dtype) for name, kernel in CONTRACT.items() for dtype in kernel.dtypes])
@pytest.mark.parametrize("set_name", SETS)
@settings(max_examples=15)
@given(data=st.data())
def test_kernel_follows_the_contract(set_name, name, dtype, layout, data):
    kernel = CONTRACT[name]
    args, roundings = CASES[name](data.draw, np.dtype(dtype))
    xp = cp if set_name == "cupy" else np
    passed = {k: laid_out(v, layout, xp) if k in kernel.any_layout else v for k, v in args.items()}
    probe = next(passed[k] for k in kernel.any_layout if k not in kernel.integers and passed[k] is not None)
    out = getattr(kernels_of(set_name, probe), name)(*passed.values())

    wants, dtypes = expected(kernel, name, args)
    if kernel.in_place:
        assert out is None
        gots = [passed[k] for k in kernel.in_place]  # the arrays handed over, now updated
    else:
        gots = list(out) if len(kernel.returns) > 1 else [out]
    assert len(gots) == len(wants)
    for got, want, want_dtype in zip(gots, wants, dtypes):
        if want is None:
            assert got is None
        else:
            assert_matches(got, want, want_dtype, set_name, roundings)


# ---------------------------------------------------------------------------------------
# Adam on a real model
# ---------------------------------------------------------------------------------------

def test_numba_adam_updates_every_parameter_of_the_default_gpt(monkeypatch):
    """The default `tinylm train` model. Linear's weight gradients were transposed views, which
    the Numba Adam once handed to the reference (97% of the parameters); since LinearOp they
    come out contiguous, and a transposed gradient is one of the contract's layouts above."""
    from tinylm.kernels.numba_cpu import optimizers
    from tinylm.models import build_model
    from tinylm.optim import AdamW

    if "numba" not in cpu_kernel_sets():
        pytest.skip("numba does not load here")
    assert tinylm.get_kernels() == "numba"  # the default CPU set
    tinylm.manual_seed(0)
    model = build_model("gpt", vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    idx = np.random.default_rng(0).integers(0, 65, (2, 65))
    _, loss = model(tinylm.Tensor(idx[:, :-1]), tinylm.Tensor(idx[:, 1:]))
    loss.backward()
    params = list(model.parameters())
    before = [(p.data.copy(), p.grad.data.copy()) for p in params]

    updated = []
    kernel = optimizers._adam_kernel

    def counted(w, *rest):
        updated.append(w)
        kernel(w, *rest)

    monkeypatch.setattr(optimizers, "_adam_kernel", counted)
    AdamW(params, lr=1e-3).step()
    assert len(updated) == len(params)
    assert all(any(np.shares_memory(w, p.data) for w in updated) for p in params)
    for p, (w, g) in zip(params, before):
        ref.adam_step(w, g, np.zeros_like(w), np.zeros_like(w), 1e-3, 0.9, 0.999, 1e-8, 0.01, True, 1)
        np.testing.assert_array_equal(p.data, w)  # the same operations in the same order: bit for bit


def test_adam_on_float16_parameters():
    from tinylm.nn import Parameter
    from tinylm.optim import Adam

    values = np.random.default_rng(0).standard_normal((2, 3, 4))
    p = Parameter(values[0].astype(np.float16))
    p.grad = tinylm.Tensor(values[1].astype(np.float16).T.copy().T)  # a transposed view, in float16
    opt = Adam([p], lr=1e-2, weight_decay=0.1)
    opt.step()
    w = values[0].astype(np.float16).astype(np.float64)
    ref.adam_step(w, values[1].astype(np.float16).astype(np.float64), np.zeros_like(w), np.zeros_like(w),
                  1e-2, 0.9, 0.999, 1e-8, 0.1, False, 1)
    assert p.data.dtype == np.float16 and opt.state[id(p)]["exp_avg"].dtype == np.float16
    np.testing.assert_allclose(p.data.astype(np.float64), w.astype(np.float16).astype(np.float64),
                               rtol=2e-3, atol=1e-3)


# ---------------------------------------------------------------------------------------
# Extreme and masked values, in every set
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "cross_entropy"])
@pytest.mark.parametrize("set_name", SETS)
def test_extreme_logits(set_name, name, dtype):
    """Logits of size 1e4: e^x overflows unless the max is subtracted first."""
    x = np.random.default_rng(0).uniform(-1e4, 1e4, (6, 301)).astype(dtype)
    xp = cp if set_name == "cupy" else np
    target = np.arange(6) * 50
    extra = (xp.asarray(target), IGNORE) if name == "cross_entropy" else ()
    on_device = xp.asarray(x)
    got = getattr(kernels_of(set_name, on_device), name)(on_device, *extra)
    want = getattr(ref, name)(x.astype(np.float64), *((target, IGNORE) if extra else ()))
    for g, w in zip(got, want) if name == "cross_entropy" else [(got, want)]:
        assert np.isfinite(backend.to_device(g, "cpu")).all()
        assert_matches(g, w, dtype, set_name, roundings=4e4)  # a few roundings of values of 1e4


@pytest.mark.parametrize("set_name", SETS)
def test_softmax_of_minus_infinity(set_name):
    """Masked (-inf) entries get probability 0 and do not turn the row into NaN."""
    x = np.random.default_rng(0).uniform(-3, 3, (4, 50)).astype(np.float32)
    x[:, ::3] = -np.inf
    on_device = (cp if set_name == "cupy" else np).asarray(x)
    got = kernels_of(set_name, on_device).softmax(on_device)
    assert_matches(got, ref.softmax(x.astype(np.float64)), np.float32, set_name)


@pytest.mark.parametrize("set_name", cpu_kernel_sets())
def test_softmax_keeps_minus_inf_and_nan(set_name):
    x = np.array([[0.0, -np.inf, 1.0], [0.0, np.nan, 1.0]], np.float32)
    got = kernels_of(set_name, x).softmax(x)
    assert got[0, 1] == 0 and np.isclose(got[0].sum(), 1) and np.isnan(got[1]).all()


# ---------------------------------------------------------------------------------------
# The Numba set: matmul beyond the matrix's small shapes, the building blocks, errors
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=15)
@given(data=st.data(), n=st.integers(1, 150), k=st.integers(1, 150), m=st.integers(1, 150))
def test_numba_matmul_larger_than_a_block(dtype, data, n, k, m):
    # past the 4x4 tile and the 64-column block, with leftover rows and columns
    layout = data.draw(st.sampled_from(LAYOUTS))
    a, b = (laid_out(data.draw(arrays(shape, dtype)), layout) for shape in [(n, k), (k, m)])
    assert_matches(nb.matmul(a, b), ref.matmul(a.astype(np.float64), b.astype(np.float64)), dtype, "numba",
                   matmul_roundings(a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_matmul_70x130x65_batched_transposed(dtype, rng):
    a = rng.standard_normal((3, 1, 130, 70)).astype(dtype).swapaxes(-1, -2)
    b = rng.standard_normal((2, 130, 65)).astype(dtype)
    assert_matches(nb.matmul(a, b), ref.matmul(a.astype(np.float64), b.astype(np.float64)), dtype, "numba",
                   matmul_roundings(a, b))


def test_numba_matmul_mixed_and_integer_dtypes(rng):
    a, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((3, 4))
    assert_matches(nb.matmul(a, b), ref.matmul(a, b), np.float64, "numba", matmul_roundings(a, b))
    i, j = rng.integers(-5, 5, (4, 3)), rng.integers(-5, 5, (3, 2))
    got = nb.matmul(i, j)
    assert got.dtype == np.matmul(i, j).dtype and np.array_equal(got, np.matmul(i, j))


@njit
def _exp_each(x, out):
    for i in range(x.shape[0]):
        out[i] = machinery.exp(x[i])


def test_fast_exp_float32_accuracy_and_range():
    x = np.linspace(-87.3, 88.3, 1_000_003, dtype=np.float32)
    got = np.empty_like(x)
    _exp_each(x, got)
    want = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got - want) / want) < 2e-7
    edges = np.array([-np.inf, -1e4, -88.0, 89.0, 1e4, np.inf, np.nan], np.float32)
    out = np.empty_like(edges)
    _exp_each(edges, out)
    assert (out[:3] == 0).all() and (out[3:6] == np.inf).all() and np.isnan(out[6])


@njit
def _normal_cdf_each(x, out):
    for i in range(x.shape[0]):
        out[i] = machinery.normal_cdf(x[i])


def test_normal_cdf_float32_accuracy():
    x = np.linspace(-12.0, 9.0, 1_000_003, dtype=np.float32)
    got = np.empty_like(x)
    _normal_cdf_each(x, got)
    want = np.array([math.erfc(-v / math.sqrt(2)) / 2 for v in x.astype(np.float64)])
    assert np.max(np.abs(got - want)) < 2.5e-7  # absolute accuracy, as GELU's x Φ(x) needs


def test_numba_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="do not match"):
        nb.matmul(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="approximate"):
        nb.gelu(np.ones(3), "sigmoid")
    with pytest.raises(ValueError, match="class index"):
        nb.cross_entropy(np.zeros((2, 3)), np.array([0, 3]), IGNORE)
    with pytest.raises(ValueError, match="one class index per row"):
        nb.cross_entropy(np.zeros((2, 3)), np.array([0]), IGNORE)
    with pytest.raises(TypeError, match="float32 or float64"):
        nb.softmax(np.ones((2, 3), np.int64))
    with pytest.raises(TypeError, match="float32 or float64"):
        nb.adam_step(*(np.ones(3, np.float16) for _ in range(4)), 1e-3, 0.9, 0.999, 1e-8, 0.0, True, 1)
    with pytest.raises(ValueError, match="one shape"):
        nb.adam_step(np.ones(3), np.ones(4), np.ones(3), np.ones(3), 1e-3, 0.9, 0.999, 1e-8, 0.0, True, 1)


def test_bench_kernels_quick(tmp_path):
    import json

    from tinylm.bench import bench_kernels

    out = io.StringIO()
    rows = bench_kernels(quick=True, file=out, json_path=tmp_path / "k.json")
    assert {row["kernel"].split("[")[0] for row in rows} == set(CONTRACT)
    assert all(row["time_ms"] > 0 and row["rate"] > 0 and row["vs_reference"] > 0 for row in rows)
    assert "numba" in out.getvalue() and "adam_step" in out.getvalue() and "\ncpu: " in out.getvalue()
    saved = json.loads((tmp_path / "k.json").read_text())
    assert saved["rows"] == rows and saved["machine"]["numba"]["threading_layer"] != "not started"


# ---------------------------------------------------------------------------------------
# The CuPy set: the CUDA sources (nvcc, no GPU), and what only the GPU has
# ---------------------------------------------------------------------------------------

CUDA_DIR = Path(__file__).resolve().parents[1] / "kernels" / "cuda"
# The pattern cupy_gpu uses to find the kernels of a file.
KERNEL_NAME = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)")


def _assembled(cu):
    """The source text cupy_gpu hands to NVRTC for the file `cu`."""
    return cu.read_text().replace('#include "common.cuh"', (CUDA_DIR / "common.cuh").read_text())


@pytest.mark.parametrize("arch", [[], ["-arch=sm_90", "-std=c++17"]], ids=["default-arch", "sm_90"])
@pytest.mark.parametrize("cu", sorted(CUDA_DIR.glob("*.cu")), ids=lambda p: p.name)
def test_cuda_source_compiles(cu, arch, tmp_path):
    """Every .cu file, built the way cupy_gpu does (common.cuh pasted in, every kernel
    instantiated for float and double), compiles with `nvcc --ptx`, for nvcc's default (oldest)
    architecture and for the H100/H200's sm_90 in C++17: a broken kernel shows up in CPU-only CI."""
    source = _assembled(cu)
    # NVRTC has no C/C++ standard headers and no include path here: nothing may be included.
    assert "#include" not in source, f"{cu.name}: NVRTC cannot resolve this #include"
    names = KERNEL_NAME.findall(source)
    assert names, f"{cu.name} defines no __global__ kernel"
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not on PATH")
    # Taking each kernel's address instantiates the template, as NVRTC's name expressions do.
    instances = ", ".join(f"(const void*)&{n}<{t}>" for n in names for t in ("float", "double"))
    path = tmp_path / cu.name
    path.write_text(f"{source}\nconst void* tinylm_instances[] = {{{instances}}};\n")
    ptx = tmp_path / "out.ptx"
    done = subprocess.run(["nvcc", "--ptx", *arch, "-ftz=true", "-Werror", "all-warnings", str(path), "-o", str(ptx)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    entries = re.findall(r"\.entry\s+(\w+)", ptx.read_text())
    assert len(entries) == 2 * len(names), entries


@pytest.fixture(scope="module")
def k():
    """The CuPy kernel set, loaded as tinylm loads it (where it cannot be, the one-line reason)."""
    return backend._load("cupy")


@gpu
def test_causal_softmax_query_without_keys_gets_zeros(k):
    """With S < T (outside the contract, which asks S >= T) the first T - S queries see no key:
    zeros here, NaN in the reference."""
    host = np.random.default_rng(0).uniform(-3, 3, (5, 3))
    y = cp.asnumpy(k.causal_softmax(cp.asarray(host), 1.0))
    assert np.all(y[:2] == 0)
    with np.errstate(invalid="ignore"):  # the reference's NaN rows
        want = ref.causal_softmax(host, 1.0)
    np.testing.assert_allclose(y[2:], want[2:], rtol=1e-9, atol=1e-12)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,kk,n,layout", [
    (1, 1, 1, "contiguous"),
    (1, 7, 1, "contiguous"),
    (17, 33, 9, "transposed"),
    (128, 128, 128, "contiguous"),
    (129, 257, 130, "strided"),
    (300, 5, 200, "contiguous"),
    (64, 0, 3, "contiguous"),  # an empty sum: zeros
])
def test_matmul_tiled(k, m, kk, n, layout, dtype):
    gen = np.random.default_rng(0)
    a, b = (gen.uniform(-3, 3, shape).astype(dtype) for shape in [(m, kk), (kk, n)])
    c = k.matmul_tiled(laid_out(a, layout, cp), laid_out(b, layout, cp))
    # sums of up to 257 products of size 9, rounded in a different order
    assert_matches(c, ref.matmul(a.astype(np.float64), b.astype(np.float64)), dtype, "cupy", matmul_roundings(a, b))


@gpu
def test_bad_inputs_get_clear_errors(k):
    x = cp.ones((2, 3), dtype=cp.float32)
    with pytest.raises(TypeError, match="float32 or float64"):
        k.softmax(cp.ones((2, 3), dtype=cp.int32))
    with pytest.raises(ValueError, match="expected"):
        k.softmax_backward(x, cp.ones((2, 4), dtype=cp.float32))
    with pytest.raises(ValueError, match="non-empty last axis"):
        k.softmax(cp.ones((2, 0), dtype=cp.float32))
    with pytest.raises(ValueError, match=r"\(M, K\) by \(K, N\)"):
        k.matmul_tiled(x, x)
    with pytest.raises(ValueError, match="approximate"):
        k.gelu(x, "fast")
    with pytest.raises(TypeError, match="integers"):
        k.cross_entropy(x, cp.zeros(2, dtype=cp.float32), IGNORE)


@gpu
def test_gpu_bench_rows():
    from tinylm.bench import bench_gpu_kernels

    rows = bench_gpu_kernels(quick=True, file=io.StringIO())
    assert [r["kernel"] for r in rows][:2] == ["matmul (cuBLAS)", "matmul_tiled"] and all(r["rate"] > 0 for r in rows)


@pytest.mark.skipif(cp is not None, reason="there is a CUDA device here")
def test_gpu_bench_says_why_without_a_device():
    from tinylm.bench import bench_gpu_kernels

    with pytest.raises(RuntimeError, match="no CUDA device here"):
        bench_gpu_kernels()
