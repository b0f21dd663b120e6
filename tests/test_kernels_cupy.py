"""The CuPy GPU kernels (kernels/cupy_gpu.py, kernels/cuda/*.cu) against the reference.

* test_cuda_source_compiles builds every .cu file the way cupy_gpu does (common.cuh
  pasted in, every kernel instantiated for float and double) and compiles it with
  `nvcc --ptx`. It needs nvcc, not a GPU, so a broken kernel shows up in CPU-only CI.
* The tests marked gpu compare each kernel with tinylm.kernels.reference, computed with
  NumPy on the same values. They skip where CuPy or a CUDA device is missing.
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinylm.backend import cupy_or_none
from tinylm.kernels import reference as ref

CUDA_DIR = Path(__file__).resolve().parents[1] / "kernels" / "cuda"
# The pattern cupy_gpu uses to find the kernels of a file.
KERNEL_NAME = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)")

cp = cupy_or_none()


def gpu(test):
    """Mark a test as needing a CUDA device, and skip it where there is none."""
    return pytest.mark.gpu(pytest.mark.skipif(cp is None, reason="needs CuPy and a CUDA device")(test))


# ---- the CUDA sources, without a GPU ----

def _assembled(cu):
    """The source text cupy_gpu hands to NVRTC for the file `cu`."""
    return cu.read_text().replace('#include "common.cuh"', (CUDA_DIR / "common.cuh").read_text())


@pytest.mark.parametrize("cu", sorted(CUDA_DIR.glob("*.cu")), ids=lambda p: p.name)
def test_cuda_source_compiles(cu, tmp_path):
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
    done = subprocess.run(["nvcc", "--ptx", "-ftz=true", "-Werror", "all-warnings", str(path), "-o", str(ptx)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    entries = re.findall(r"\.entry\s+(\w+)", ptx.read_text())
    assert len(entries) == 2 * len(names), entries


# ---- the kernels against the reference, on a GPU ----

TOL = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5), np.dtype(np.float64): dict(rtol=1e-9, atol=1e-12)}
DTYPES = [np.float32, np.float64]
# (shape, layout): sizes 1, odd, one warp, more than one block of 256 threads, more than
# four rounds of 1024 (row_max_sum's unrolled loop plus its remainder), batched.
CASES = [
    ((1,), "contiguous"),
    ((7,), "contiguous"),
    ((3, 1), "strided"),
    ((4, 32), "contiguous"),
    ((4, 33), "transposed"),
    ((5, 256), "contiguous"),
    ((3, 257), "strided"),
    ((2, 3, 1025), "transposed"),
    ((2, 4099), "contiguous"),
    ((6, 5, 64), "strided"),
]


@pytest.fixture(scope="module")
def k():
    """The CuPy kernel module (imported only where CuPy is)."""
    from tinylm.kernels import cupy_gpu

    return cupy_gpu


def arrays(shape, dtype, layout="contiguous", low=-3.0, high=3.0, seed=0):
    """The same random values as a NumPy array and as a CuPy array laid out as `layout`:
    contiguous, strided (every other value of the last axis) or transposed (axes reversed in memory)."""
    rng = np.random.default_rng(seed)
    if layout == "strided":
        full = rng.uniform(low, high, shape[:-1] + (2 * shape[-1],)).astype(dtype)
        return full[..., ::2], cp.asarray(full)[..., ::2]
    if layout == "transposed":
        full = rng.uniform(low, high, shape[::-1]).astype(dtype)
        return full.T, cp.asarray(full).T
    host = rng.uniform(low, high, shape).astype(dtype)
    return host, cp.asarray(host)


def assert_close(actual, expected, **tol):
    """actual (CuPy) equals expected (NumPy) in dtype, shape and values within the dtype's tolerance."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    np.testing.assert_allclose(cp.asnumpy(actual), expected, **(TOL[np.dtype(expected.dtype)] | tol))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", CASES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_forward(k, name, shape, layout, dtype):
    host, dev = arrays(shape, dtype, layout)
    assert_close(getattr(k, name)(dev), getattr(ref, name)(host))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "cross_entropy"])
def test_extreme_logits(k, name, dtype):
    """Logits of size 1e4: exp overflows unless the max is subtracted first."""
    host, dev = arrays((6, 301), dtype, low=-1e4, high=1e4)
    if name == "cross_entropy":
        target = np.arange(6) * 50
        loss, lse = k.cross_entropy(dev, cp.asarray(target), -100)
        ref_loss, ref_lse = ref.cross_entropy(host, target, -100)
        assert_close(loss, ref_loss)
        assert_close(lse, ref_lse)
    else:
        assert_close(getattr(k, name)(dev), getattr(ref, name)(host))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_minus_infinity(k, dtype):
    """Masked (-inf) entries get probability 0 and do not turn the row into NaN."""
    host, _ = arrays((4, 50), dtype)
    host[:, ::3] = -np.inf
    assert_close(k.softmax(cp.asarray(host)), ref.softmax(host))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", CASES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_backward(k, name, shape, layout, dtype):
    x, _ = arrays(shape, dtype, seed=1)
    y = getattr(ref, name)(x)
    gy, gy_dev = arrays(shape, dtype, layout, seed=2)
    backward = name + "_backward"
    assert_close(getattr(k, backward)(cp.asarray(y), gy_dev), getattr(ref, backward)(y, gy))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1.0, 0.125])
@pytest.mark.parametrize("shape,layout", [
    ((1, 1), "contiguous"),
    ((5, 5), "contiguous"),
    ((3, 7), "strided"),        # S > T: a KV cache of 4 earlier positions
    ((2, 4, 33, 33), "transposed"),
    ((2, 3, 300), "contiguous"),
    ((2, 260, 260), "strided"),  # rows longer than a block
])
def test_causal_softmax(k, shape, layout, scale, dtype):
    host, dev = arrays(shape, dtype, layout)
    assert_close(k.causal_softmax(dev, scale), ref.causal_softmax(host, scale))


@gpu
def test_causal_softmax_query_without_keys_gets_zeros(k):
    """With S < T the first T - S queries see no key: zeros here (NaN in the reference)."""
    host, dev = arrays((5, 3), np.float64)
    y = cp.asnumpy(k.causal_softmax(dev, 1.0))
    assert np.all(y[:2] == 0)
    with np.errstate(invalid="ignore"):  # the reference's NaN rows
        expected = ref.causal_softmax(host, 1.0)
    np.testing.assert_allclose(y[2:], expected[2:], **TOL[np.dtype(np.float64)])


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,layout", CASES)
def test_layer_norm(k, shape, layout, affine, dtype):
    # an offset mean: the variance must come from x - mean, not E[x^2] - mean^2
    host, dev = arrays(shape, dtype, layout, low=2.0, high=8.0)
    w, w_dev = arrays(shape[-1:], dtype, seed=3) if affine else (None, None)
    b, b_dev = arrays(shape[-1:], dtype, seed=4) if affine else (None, None)
    y, mean, rstd = k.layer_norm(dev, w_dev, b_dev, 1e-5)
    ref_y, ref_mean, ref_rstd = ref.layer_norm(host, w, b, 1e-5)
    assert_close(y, ref_y)
    assert_close(mean, ref_mean)
    assert_close(rstd, ref_rstd)


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,layout", CASES)
def test_layer_norm_backward(k, shape, layout, affine, dtype):
    x, _ = arrays(shape, dtype, seed=1)
    w, _ = arrays(shape[-1:], dtype, seed=3) if affine else (None, None)
    _, mean, rstd = ref.layer_norm(x, w, None, 1e-5)
    gy, gy_dev = arrays(shape, dtype, layout, seed=2)
    dx, dw, db = k.layer_norm_backward(gy_dev, cp.asarray(x), cp.asarray(mean), cp.asarray(rstd),
                                       None if w is None else cp.asarray(w))
    ref_dx, ref_dw, ref_db = ref.layer_norm_backward(gy, x, mean, rstd, w)
    assert_close(dx, ref_dx)
    if affine:
        assert_close(dw, ref_dw)
        assert_close(db, ref_db)
    else:
        assert dw is None and db is None


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape,layout", CASES[:4] + [((3, 1000, 7), "transposed"), ((), "contiguous")])
def test_gelu(k, shape, layout, approximate, dtype):
    host, dev = arrays(shape, dtype, layout, low=-6.0, high=6.0)
    gy, gy_dev = arrays(shape, dtype, layout, seed=2)
    assert_close(k.gelu(dev, approximate), ref.gelu(host, approximate))
    assert_close(k.gelu_backward(dev, gy_dev, approximate), ref.gelu_backward(host, gy, approximate))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("n,c", [(1, 1), (1, 7), (5, 33), (64, 1000), (3, 5000)])
def test_cross_entropy(k, n, c, target_dtype, dtype):
    logits, dev = arrays((n, c), dtype, "transposed", low=-5.0, high=5.0)
    target = np.random.default_rng(5).integers(0, c, n).astype(target_dtype)
    target[::3] = -100  # ignored rows
    gloss, _ = arrays((n,), dtype, seed=6)
    loss, lse = k.cross_entropy(dev, cp.asarray(target), -100)
    ref_loss, ref_lse = ref.cross_entropy(logits, target, -100)
    assert_close(loss, ref_loss)
    assert_close(lse, ref_lse)
    dz = k.cross_entropy_backward(dev, lse, cp.asarray(target), cp.asarray(gloss), -100)
    assert_close(dz, ref.cross_entropy_backward(logits, ref_lse, target, gloss, -100))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_shape,b_shape", [((1, 1), (1, 1)), ((2, 3, 4), (4, 5)), ((1, 2, 5), (3, 5, 2))])
def test_matmul(k, a_shape, b_shape, dtype):
    a, a_dev = arrays(a_shape, dtype)
    b, b_dev = arrays(b_shape, dtype, seed=1)
    assert_close(k.matmul(a_dev, b_dev), ref.matmul(a, b))


@gpu
@pytest.mark.parametrize("dtype", DTYPES)
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
    a, a_dev = arrays((m, kk), dtype, layout)
    b, b_dev = arrays((kk, n), dtype, layout, seed=1)
    c = k.matmul_tiled(a_dev, b_dev)
    # sums of up to 257 products of size 9, rounded in a different order: float32 needs a looser atol
    tol = dict(atol=1e-3) if dtype == np.float32 else {}
    assert_close(c, cp.asnumpy(cp.matmul(a_dev, b_dev)), **tol)
    assert_close(c, ref.matmul(a, b), **tol)


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
        k.cross_entropy(x, cp.zeros(2, dtype=cp.float32), -100)


@gpu
def test_gpu_bench_rows():
    from tinylm.bench import bench_gpu_kernels

    rows = bench_gpu_kernels(quick=True, file=__import__("io").StringIO())
    assert [r["kernel"] for r in rows][:2] == ["matmul (cuBLAS)", "matmul_tiled"] and all(r["rate"] > 0 for r in rows)


@pytest.mark.skipif(cp is not None, reason="there is a CUDA device here")
def test_gpu_bench_says_why_without_a_device():
    from tinylm.bench import bench_gpu_kernels

    with pytest.raises(RuntimeError, match="no CUDA device here"):
        bench_gpu_kernels()
