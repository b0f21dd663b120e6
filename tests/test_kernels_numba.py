"""The Numba kernels (tinylm.kernels.numba_cpu) against the NumPy reference (tinylm.kernels.reference).

Every kernel must give the reference's result within float tolerance, on hypothesis-drawn
shapes: sides of 1, odd sides, rows longer than a SIMD register, matrices larger than a
block, non-contiguous inputs (transposed or strided views), leading batch axes, float32 and
float64, and extreme logits. Speed is not tested here: see tinylm.bench.
"""
import io
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from strategies import arrays, matmul_shapes, shapes

from tinylm.kernels import numba_cpu as nb
from tinylm.kernels.numba_cpu import machinery
from tinylm.kernels import reference as ref

DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-12)}


def assert_close(got, want, dtype, scale=1.0):
    """got equals want within dtype's tolerance (atol times `scale`), with want's shape and
    dtype; tuples (and None entries) are compared item by item."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, dtype, scale)
        return
    if want is None:
        assert got is None
        return
    assert got.shape == want.shape and got.dtype == want.dtype == dtype
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * scale)


@st.composite
def float_arrays(draw, shape, dtype, low=-2.0, high=2.0):
    """An array of `shape`: contiguous, a transposed view, or every other element of a wider
    array (the kernels' wrappers must lay all of them out before calling a kernel)."""
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    if layout == "transposed":
        return draw(arrays(shape[::-1], dtype, low, high)).T
    if layout == "strided" and shape:
        return draw(arrays(shape[:-1] + (2 * shape[-1],), dtype, low, high))[..., ::2]
    return draw(arrays(shape, dtype, low, high))


def row_shapes(max_row=70):
    """Shapes with a last axis of 1..max_row (past a 16-float SIMD register) and 0-2 leading axes."""
    return st.tuples(shapes(0, 2), st.integers(1, max_row)).map(lambda s: s[0] + (s[1],))


# ---------------------------------------------------------------------------------------
# matmul
# ---------------------------------------------------------------------------------------

def assert_matmul(a, b, dtype):
    want = ref.matmul(a, b)
    # both sides round every product and sum: allow for K of them
    assert_close(nb.matmul(a, b), want, dtype, scale=a.shape[-1])


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_matmul_batched_and_broadcast(dtype, data):
    a_shape, b_shape = data.draw(matmul_shapes())
    a, b = data.draw(float_arrays(a_shape, dtype)), data.draw(float_arrays(b_shape, dtype))
    assert_matmul(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(data=st.data(), n=st.integers(1, 150), k=st.integers(1, 150), m=st.integers(1, 150))
def test_matmul_larger_than_a_block(dtype, data, n, k, m):
    # past the 4x4 tile and the 64-column block, with leftover rows and columns
    a, b = data.draw(float_arrays((n, k), dtype)), data.draw(float_arrays((k, m), dtype))
    assert_matmul(a, b, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_70x130x65_batched_transposed(dtype, rng):
    a = rng.standard_normal((3, 1, 130, 70)).astype(dtype).swapaxes(-1, -2)
    b = rng.standard_normal((2, 130, 65)).astype(dtype)
    assert_matmul(a, b, dtype)


def test_matmul_mixed_and_integer_dtypes(rng):
    a, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((3, 4))
    assert_close(nb.matmul(a, b), ref.matmul(a, b), np.float64, scale=3)
    i, j = rng.integers(-5, 5, (4, 3)), rng.integers(-5, 5, (3, 2))
    got = nb.matmul(i, j)
    assert got.dtype == np.matmul(i, j).dtype and np.array_equal(got, np.matmul(i, j))


def test_matmul_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        nb.matmul(np.ones((2, 3)), np.ones((4, 2)))


# ---------------------------------------------------------------------------------------
# softmax family
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), shape=row_shapes(), extreme=st.booleans())
def test_softmax_forward(name, dtype, data, shape, extreme):
    x = data.draw(float_arrays(shape, dtype))
    if extreme:  # logits of magnitude 1e4: e^x overflows unless the max is subtracted
        x = x * dtype(5e3)
    got = getattr(nb, name)(x)
    assert np.isfinite(got).all()
    assert_close(got, getattr(ref, name)(x), dtype, scale=abs(x).max() if name == "log_softmax" else 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(data=st.data(), shape=row_shapes())
def test_softmax_backward(name, dtype, data, shape):
    y = getattr(ref, name)(data.draw(arrays(shape, dtype)))
    gy = data.draw(float_arrays(shape, dtype))
    backward = name + "_backward"
    assert_close(getattr(nb, backward)(y, gy), getattr(ref, backward)(y, gy), dtype)


def test_softmax_keeps_minus_inf_and_nan():
    x = np.array([[0.0, -np.inf, 1.0], [0.0, np.nan, 1.0]], np.float32)
    got = nb.softmax(x)
    assert got[0, 1] == 0 and np.isclose(got[0].sum(), 1) and np.isnan(got[1]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), batch=shapes(0, 2), t=st.integers(1, 40), extra=st.integers(0, 30),
       scale=st.floats(0.05, 3.0))
def test_causal_softmax(dtype, data, batch, t, extra, scale):
    # S = T + extra keys: extra > 0 is a KV cache, where each query also sees the earlier keys
    scores = data.draw(float_arrays(batch + (t, t + extra), dtype))
    got = nb.causal_softmax(scores, scale)
    assert_close(got, ref.causal_softmax(scores, scale), dtype)
    assert np.allclose(got.sum(axis=-1), 1)


# ---------------------------------------------------------------------------------------
# fast exp and normal CDF (float32)
# ---------------------------------------------------------------------------------------

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
        out[i] = machinery.normal_cdf(x[i], machinery.exp(np.float32(-0.5) * x[i] * x[i]))


def test_normal_cdf_float32_accuracy():
    x = np.linspace(-12.0, 9.0, 1_000_003, dtype=np.float32)
    got = np.empty_like(x)
    _normal_cdf_each(x, got)
    want = np.array([math.erfc(-v / math.sqrt(2)) / 2 for v in x.astype(np.float64)])
    assert np.max(np.abs(got - want)) < 4e-7
    left = x < 0  # Φ(x) = e Q / 2 there, with no cancellation: relative accuracy down to 1e-33
    assert np.max(np.abs(got[left] - want[left]) / want[left]) < 1e-5


# ---------------------------------------------------------------------------------------
# layer norm
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), shape=row_shapes(), affine=st.booleans())
def test_layer_norm(dtype, data, shape, affine):
    x = data.draw(float_arrays(shape, dtype))
    n = shape[-1]
    weight = data.draw(arrays((n,), dtype)) if affine else None
    bias = data.draw(arrays((n,), dtype)) if affine else None
    out = nb.layer_norm(x, weight, bias, 1e-5)
    want = ref.layer_norm(x, weight, bias, 1e-5)
    assert out[1].shape == shape[:-1] + (1,)
    _, mean, rstd = want
    # y and dx are rstd times differences of O(1) values: a rounding there is scaled by
    # rstd, up to 1/sqrt(eps) = 316 for a row of equal values (a row of 1 included)
    amplified = 10 * rstd.max()
    assert_close(out, want, dtype, scale=amplified)
    gy = data.draw(float_arrays(shape, dtype))
    dx, dweight, dbias = nb.layer_norm_backward(gy, x, mean, rstd, weight)
    want_dx, want_dweight, want_dbias = ref.layer_norm_backward(gy, x, mean, rstd, weight)
    assert_close(dx, want_dx, dtype, scale=amplified)
    # dweight and dbias add up a column over every row: allow for that many roundings
    assert_close((dweight, dbias), (want_dweight, want_dbias), dtype, scale=math.prod(shape[:-1]))


# ---------------------------------------------------------------------------------------
# GELU
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@given(data=st.data(), shape=shapes(0, 3, max_side=40))
def test_gelu(approximate, dtype, data, shape):
    x = data.draw(float_arrays(shape, dtype, -8.0, 8.0))  # both tails: x Φ(x) -> 0 and -> x
    gy = data.draw(float_arrays(shape, dtype))
    # The reference runs in float64: in float32 its 1 + tanh u and 1 - tanh² u cancel in the
    # left tail (tanh u rounds to -1), where the kernel's σ(2u) keeps its digits.
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    assert_close(nb.gelu(x, approximate), ref.gelu(x64, approximate).astype(dtype), dtype)
    assert_close(nb.gelu_backward(x, gy, approximate),
                 ref.gelu_backward(x64, gy64, approximate).astype(dtype), dtype)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        nb.gelu(np.ones(3), "sigmoid")


# ---------------------------------------------------------------------------------------
# cross-entropy
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), n=st.integers(1, 30), classes=st.integers(1, 300), extreme=st.booleans())
def test_cross_entropy(dtype, data, n, classes, extreme):
    logits = data.draw(float_arrays((n, classes), dtype))
    if extreme:
        logits = logits * dtype(5e3)
    target = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    ignored = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    target[ignored] = -100
    loss, lse = nb.cross_entropy(logits, target, -100)
    assert np.isfinite(loss).all() and (loss[ignored] == 0).all()
    want = ref.cross_entropy(logits, target, -100)
    assert_close((loss, lse), want, dtype, scale=abs(logits).max())
    gloss = data.draw(arrays((n,), dtype))
    grad = nb.cross_entropy_backward(logits, want[1], target, gloss, -100)
    assert np.isfinite(grad).all() and (grad[ignored] == 0).all()
    assert_close(grad, ref.cross_entropy_backward(logits, want[1], target, gloss, -100), dtype)


def test_cross_entropy_rejects_bad_targets():
    with pytest.raises(ValueError, match="class index"):
        nb.cross_entropy(np.zeros((2, 3)), np.array([0, 3]), -100)
    with pytest.raises(ValueError, match="one class index per row"):
        nb.cross_entropy(np.zeros((2, 3)), np.array([0]), -100)


def test_kernels_reject_integer_arrays():
    with pytest.raises(TypeError, match="float32 or float64"):
        nb.softmax(np.ones((2, 3), np.int64))


# ---------------------------------------------------------------------------------------
# the benchmark runs (a smoke test: speed itself is not tested)
# ---------------------------------------------------------------------------------------

def test_bench_kernels_quick():
    from tinylm.bench import bench_kernels

    out = io.StringIO()
    rows = bench_kernels(quick=True, file=out)
    kernels = {row["kernel"].split("[")[0] for row in rows}
    public = {"matmul", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
              "causal_softmax", "layer_norm", "layer_norm_backward", "gelu", "gelu_backward",
              "cross_entropy", "cross_entropy_backward"}
    assert kernels == public
    assert all(row["time_ms"] > 0 and row["rate"] > 0 and row["vs_reference"] > 0 for row in rows)
    assert "numba" in out.getvalue() and "matmul" in out.getvalue()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decay", [(0.0, True), (0.1, True), (0.1, False)])
def test_adam_step_equals_the_reference(dtype, decay):
    gen = np.random.default_rng(0)
    state = [gen.standard_normal((7, 5)).astype(dtype) for _ in range(3)]
    state[2] = np.abs(state[2])  # v >= 0
    grad = gen.standard_normal((7, 5)).astype(dtype)
    ours, expected = [a.copy() for a in state], [a.copy() for a in state]
    for step in (1, 2, 3):
        nb.adam_step(ours[0], grad, ours[1], ours[2], 1e-2, 0.9, 0.99, 1e-8, decay[0], decay[1], step)
        ref.adam_step(expected[0], grad, expected[1], expected[2], 1e-2, 0.9, 0.99, 1e-8, decay[0], decay[1], step)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, **tol)
