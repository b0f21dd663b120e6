"""Kernel benchmark: the Numba kernels against the NumPy reference, NumPy's BLAS and PyTorch.

bench_kernels() times every kernel of tinylm.kernels.numba_cpu on the shapes of a small GPT
(and a 1024³ matmul) next to the same op from tinylm.ops.reference, np.matmul (matmul rows)
and PyTorch on the CPU (when torch is installed), all in one run on one machine, and prints
a table of ratios. Speed is measured here, never in the tests.
"""
import math
import os
import sys
import time

import numpy as np

from .ops import reference

_BUDGET_S = 0.3  # time spent on one op at most, beyond its warm-up (fewer repeats if slow)


def _median_time(fn, repeats):
    """Median wall time of fn() over up to `repeats` calls, after one warm-up call (which
    compiles a Numba kernel on first use and fills the caches)."""
    fn()
    times = []
    while len(times) < repeats and (len(times) < 3 or sum(times) < _BUDGET_S):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _nbytes(value):
    """Bytes of the arrays in value (an array, or a tuple of them)."""
    if isinstance(value, tuple):
        return sum(_nbytes(v) for v in value)
    return value.nbytes if isinstance(value, np.ndarray) else 0


def _cases(quick, rng, torch):
    """(kernel, args, torch op or None, matmul flop count or None) for every row of the table.

    args are the NumPy arguments shared by the Numba kernel and the reference; the torch op
    is a no-argument function on tensors that share the same memory (`torch and op` is None
    without torch).
    """
    f32 = np.float32
    F = torch.nn.functional if torch else None
    t = torch.from_numpy if torch else None

    def normal(*shape):
        return rng.standard_normal(shape).astype(f32)

    cases = []
    n = 256 if quick else 1024
    for a_shape, b_shape in [((n, n), (n, n)), ((768, 128), (128, 384)), ((48, 64, 32), (48, 32, 64))]:
        a, b = normal(*a_shape), normal(*b_shape)
        flops = 2 * math.prod(a_shape) * b_shape[-1]
        cases.append(("matmul", (a, b), torch and (lambda a=a, b=b: torch.matmul(t(a), t(b))), flops))

    rows = 512 if quick else 4096
    x = normal(rows, 256)
    for shape in [(rows, 256), (48 * 64, 64)]:
        xs = normal(*shape)
        cases.append(("softmax", (xs,), torch and (lambda xs=xs: torch.softmax(t(xs), -1)), None))
    y, gy = reference.softmax(x), normal(rows, 256)
    cases.append(("softmax_backward", (y, gy), None, None))
    cases.append(("log_softmax", (x,), torch and (lambda: torch.log_softmax(t(x), -1)), None))
    cases.append(("log_softmax_backward", (reference.log_softmax(x), gy), None, None))
    cases.append(("causal_softmax", (normal(48, 64, 64), 1 / math.sqrt(32)), None, None))

    x, w, b = normal(768, 128), normal(128), normal(128)
    _, mean, rstd = reference.layer_norm(x, w, b, 1e-5)
    cases.append(("layer_norm", (x, w, b, 1e-5),
                  torch and (lambda: F.layer_norm(t(x), (128,), t(w), t(b), 1e-5)), None))
    cases.append(("layer_norm_backward", (normal(768, 128), x, mean, rstd, w), None, None))

    x = normal(96 if quick else 768, 512)
    for approximate in ("none", "tanh"):
        cases.append((f"gelu[{approximate}]", (x, approximate),
                      torch and (lambda a=approximate: F.gelu(t(x), approximate=a)), None))
        cases.append((f"gelu_backward[{approximate}]", (x, normal(*x.shape), approximate), None, None))

    for classes in (65, 2048):
        z = normal(768, classes)
        target = rng.integers(0, classes, 768)
        target[::10] = -100  # some ignored rows, as padding would give
        cases.append(("cross_entropy", (z, target, -100),
                      torch and (lambda z=z, tg=target: F.cross_entropy(t(z), t(tg), reduction="none")),
                      None))
    _, lse = reference.cross_entropy(z, target, -100)
    cases.append(("cross_entropy_backward", (z, lse, target, normal(768), -100), None, None))
    return cases


def _header(torch):
    import numba

    blas = "?"
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{info['name']} {info['version']}"
    except Exception:  # older NumPy or an unusual build: the name is only informative
        pass
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_"))
    lines = [
        "tinylm kernel benchmark: tinylm.kernels.numba_cpu",
        f"numpy {np.__version__} (BLAS {blas}{', ' + env if env else ''}), "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
        + (f"torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else "torch: not installed")
        + f", {os.cpu_count()} CPUs",
        "time: median of repeated calls after one warm-up call (compilation excluded)",
        "rate: GFLOP/s = 2 M N K / time (matmul); GB/s = bytes of inputs and outputs / time",
        "ratios = other time / numba time (above 1x: numba is faster); ref: tinylm.ops.reference,",
        "  BLAS: np.matmul (matmul rows), torch: the PyTorch CPU op; '-': no such op",
    ]
    return lines


def bench_kernels(quick=False, file=None):
    """Time every Numba kernel against the reference, NumPy's BLAS and PyTorch; print a table.

    quick=True uses smaller sizes and 3 repeats (a smoke test). Returns one dict per row:
    kernel, shape, dtype, time_ms, rate, unit ('GFLOP/s' or 'GB/s'), and the ratios
    vs_reference, vs_blas, vs_torch (None where there is nothing to compare with).
    """
    from .kernels import numba_cpu

    try:
        import torch
    except ImportError:
        torch = None
    file = file or sys.stdout
    repeats = 3 if quick else 25
    rng = np.random.default_rng(0)

    for line in _header(torch):
        print(line, file=file)
    columns = f"{'kernel':24} {'shape':24} {'dtype':7} {'ms':>9} {'rate':>16} {'ref':>8} {'BLAS':>8} {'torch':>8}"
    print(columns, file=file)
    print("-" * len(columns), file=file)

    results = []
    for name, args, torch_op, flops in _cases(quick, rng, torch):
        op = name.split("[")[0]  # gelu[tanh] -> gelu: the approximate flag is in args
        kernel, ref = getattr(numba_cpu, op), getattr(reference, op)
        seconds = _median_time(lambda: kernel(*args), repeats)
        ratio = {"vs_reference": _median_time(lambda: ref(*args), repeats) / seconds,
                 "vs_blas": _median_time(lambda: np.matmul(*args), repeats) / seconds if flops else None,
                 "vs_torch": _median_time(torch_op, repeats) / seconds if torch_op else None}
        if flops:
            rate, unit = flops / seconds / 1e9, "GFLOP/s"
        else:
            rate, unit = (_nbytes(args) + _nbytes(kernel(*args))) / seconds / 1e9, "GB/s"
        shown_args = args[:2] if op == "matmul" else args[:1]  # the operands that set the size
        row = {"kernel": name, "shape": " x ".join(str(a.shape) for a in shown_args),
               "dtype": str(args[0].dtype), "time_ms": seconds * 1e3, "rate": rate, "unit": unit,
               **ratio}
        results.append(row)
        shown = [f"{r:.2f}x" if r is not None else "-" for r in ratio.values()]
        print(f"{name:24} {row['shape']:24} {row['dtype']:7} {seconds * 1e3:9.3f} "
              f"{rate:8.1f} {unit:7} {shown[0]:>8} {shown[1]:>8} {shown[2]:>8}", file=file)
    return results
