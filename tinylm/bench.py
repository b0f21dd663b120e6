"""Kernel benchmark: the Numba kernels against the NumPy reference, NumPy's BLAS and PyTorch.

bench_kernels() times every kernel of the contract (tinylm.kernels.reference.CONTRACT) in
tinylm.kernels.numba_cpu on the shapes of a small GPT (and a 1024³ matmul; Adam over every
parameter of the default GPT) next to the same op from tinylm.kernels.reference, np.matmul
(matmul rows) and PyTorch on the CPU (when torch is installed), all in one run on one
machine, and prints a table of ratios. Speed is measured here, never in the tests.
"""
import math
import sys
import time
from functools import partial

import numpy as np

from .kernels import reference

_BUDGET_S = 0.3  # time spent on one op at most, beyond its warm-up (fewer repeats if slow)
_PAUSE_S = 0.2  # between libraries, for their idle threads to go to sleep


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


class _Each(tuple):
    """The arguments of several calls, one tuple each: a row that times a whole optimizer step,
    one adam_step per parameter."""


_ADAMW = (1e-3, 0.9, 0.999, 1e-8, 0.01, True, 1)  # lr, beta1, beta2, eps, weight_decay, decoupled, step


def _gpt_adam_steps(rng):
    """The adam_step arguments of every parameter of the default GPT (`tinylm train`'s) after one
    backward, laid out as training leaves them."""
    from .models import build_model
    from .tensor import Tensor

    model = build_model("gpt", vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    idx = rng.integers(0, 65, (2, 65))
    model(Tensor(idx[:, :-1]), Tensor(idx[:, 1:]))[1].backward()
    return _Each((p.data, p.grad.data, np.zeros_like(p.data), np.zeros_like(p.data), *_ADAMW)
                 for p in model.parameters())


def _torch_adamw_step(torch, steps):
    """torch.optim.AdamW(fused=True).step over the same values (fused: the fastest of PyTorch's
    CPU AdamW; its gradients are contiguous, as PyTorch's backward leaves them)."""
    params = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w, *_ in steps]
    for p, (_, g, *_) in zip(params, steps):
        p.grad = torch.from_numpy(np.ascontiguousarray(g))
    lr, beta1, beta2, eps, weight_decay, _, _ = _ADAMW
    return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay,
                             fused=True).step


def _torch_attention(q, k, v, scale):
    """The op sequence causal_attention replaces in PyTorch eager (nanoGPT's manual attention, and
    `tinylm bench train`'s PyTorch model): scores, mask, softmax, weighted sum."""
    import torch

    t = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * scale
    return scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf")).softmax(-1) @ v


def _torch_backward(torch, fn, arrays, gy, differentiated=None):
    """The backward of fn(*arrays) through PyTorch's autograd, its graph built once here, so that
    only the backward is timed: the gradients of the first `differentiated` arrays (default all)."""
    differentiated = len(arrays) if differentiated is None else differentiated
    inputs = [torch.from_numpy(a.copy()).requires_grad_(i < differentiated) for i, a in enumerate(arrays)]
    out = fn(*inputs)
    grad = torch.from_numpy(gy)
    return lambda *args: torch.autograd.grad(out, inputs[:differentiated], grad, retain_graph=True)


def _torch_attention_backward(torch, q, k, v, gy):
    """The backward of _torch_attention through PyTorch's autograd."""
    return _torch_backward(torch, lambda q, k, v: _torch_attention(q, k, v, 1 / math.sqrt(q.shape[-1])), (q, k, v), gy)


def _torch_swiglu(a, b):
    """The op sequence swiglu replaces in PyTorch eager (Hugging Face's LlamaMLP, `tinylm bench
    train --model llama`'s PyTorch model): F.silu(gate) * up."""
    import torch

    return torch.nn.functional.silu(a) * b


def _torch_rope(x, cos, sin):
    """The op sequence rope replaces in PyTorch eager (`tinylm bench train --model llama`'s PyTorch
    model; Hugging Face's x cos + rotate_half(x) sin does the same work with cos, sin repeated twice)."""
    import torch

    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def _torch_bias_gelu_backward(torch):
    """What PyTorch's autograd runs for the backward of gelu(x + b): GELU's backward at x + b,
    then the bias gradient, a sum over the rows."""
    def backward(x, b, gy, approximate):
        dx = torch.ops.aten.gelu_backward(gy, x + b, approximate=approximate)
        return dx, dx.sum(0)
    return backward


def _cases(quick, rng, torch):
    """(kernel, args, torch op or None, matmul flop count or None) for every row of the table.

    args are the NumPy arguments of the Numba kernel and of the reference; the torch op takes
    the same arguments with every array turned into a tensor that shares its memory.
    """
    F = torch.nn.functional if torch else None

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    def on_torch(op):  # None without torch
        return op if torch else None

    cases = []
    n = 256 if quick else 1024
    for a_shape, b_shape in [((n, n), (n, n)), ((768, 128), (128, 384)), ((48, 64, 32), (48, 32, 64))]:
        flops = 2 * math.prod(a_shape) * b_shape[-1]
        cases.append(("matmul", (normal(*a_shape), normal(*b_shape)),
                      on_torch(lambda a, b: torch.matmul(a, b)), flops))

    rows = 512 if quick else 4096
    for shape in [(rows, 256), (48 * 64, 64)]:
        cases.append(("softmax", (normal(*shape),), on_torch(lambda x: torch.softmax(x, -1)), None))
    x, gy = normal(rows, 256), normal(rows, 256)
    cases.append(("softmax_backward", (reference.softmax(x), gy), None, None))
    cases.append(("log_softmax", (x,), on_torch(lambda x: torch.log_softmax(x, -1)), None))
    cases.append(("log_softmax_backward", (reference.log_softmax(x), gy), None, None))
    cases.append(("causal_softmax", (normal(48, 64, 64), 1 / math.sqrt(32)), None, None))
    # the default GPT's attention: batch 12 x 4 heads, T = 64, head size 32; and a longer T
    for heads, t in [(48, 64), (4 if quick else 8, 512 if quick else 1024)]:
        q, k, v, gy = (normal(heads, t, 32) for _ in range(4))
        y, lse = reference.causal_attention(q, k, v, 1 / math.sqrt(32))
        cases.append(("causal_attention", (q, k, v, 1 / math.sqrt(32)), on_torch(_torch_attention), None))
        cases.append(("causal_attention_backward", (q, k, v, y, lse, gy, 1 / math.sqrt(32)),
                      _torch_attention_backward(torch, q, k, v, gy) if torch else None, None))

    x, w, b = normal(768, 128), normal(128), normal(128)
    _, mean, rstd = reference.layer_norm(x, w, b, 1e-5)
    cases.append(("layer_norm", (x, w, b, 1e-5),
                  on_torch(lambda x, w, b, eps: F.layer_norm(x, x.shape[-1:], w, b, eps)), None))
    cases.append(("layer_norm_backward", (normal(768, 128), x, mean, rstd, w), None, None))
    _, rstd = reference.rms_norm(x, w, 1e-5)
    cases.append(("rms_norm", (x, w, 1e-5), on_torch(lambda x, w, eps: F.rms_norm(x, x.shape[-1:], w, eps)), None))
    cases.append(("rms_norm_backward", (normal(768, 128), x, rstd, w), None, None))

    x, b, gy = normal(96 if quick else 768, 512), normal(512), normal(96 if quick else 768, 512)
    for approximate in ("none", "tanh"):
        cases.append((f"gelu[{approximate}]", (x, approximate),
                      on_torch(lambda x, a: F.gelu(x, approximate=a)), None))
        cases.append((f"gelu_backward[{approximate}]", (x, gy, approximate),
                      on_torch(lambda x, gy, a: torch.ops.aten.gelu_backward(gy, x, approximate=a)), None))
    # the MLP's first layer after its product: bias, then GELU; torch: the ops it replaces
    cases.append(("bias_gelu[none]", (x, b, "none"), on_torch(lambda x, b, a: F.gelu(x + b, approximate=a)), None))
    cases.append(("bias_gelu_backward[none]", (x, b, gy, "none"), on_torch(_torch_bias_gelu_backward(torch)), None))
    # the Llama of `tinylm bench train --model llama`: its MLP's gate (768 rows of 352) and RoPE on its
    # queries (12 x 4 heads, T = 64, d = 32: the transposed view of the q projection that attention
    # hands over); torch: the op sequences they replace, and their backward by autograd
    a, b, gy = normal(768, 352), normal(768, 352), normal(768, 352)
    cases.append(("swiglu", (a, b), on_torch(_torch_swiglu), None))
    cases.append(("swiglu_backward", (a, b, gy), _torch_backward(torch, _torch_swiglu, (a, b), gy) if torch else None,
                  None))
    q = normal(12, 64, 4, 32).transpose(0, 2, 1, 3)
    angles = np.arange(64)[:, None] * 10000.0 ** (-np.arange(0, 32, 2) / 32)
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    cases.append(("rope", (q, cos, sin), on_torch(_torch_rope), None))
    cases.append(("rope[backward]", (normal(12, 4, 64, 32), cos, -sin),
                  _torch_backward(torch, _torch_rope, (q, cos, sin), normal(12, 4, 64, 32), 1) if torch else None,
                  None))

    for classes in (65, 2048):
        z = normal(768, classes)
        target = rng.integers(0, classes, 768)
        target[::10] = -100  # some ignored rows, as padding gives
        cases.append(("cross_entropy", (z, target, -100), on_torch(
            lambda z, t, ignore: F.cross_entropy(z, t, reduction="none", ignore_index=ignore)), None))
    _, lse = reference.cross_entropy(z, target, -100)
    cases.append(("cross_entropy_backward", (z, lse, target, normal(768), -100), None, None))

    steps = _gpt_adam_steps(rng)
    cases.append(("adam_step[gpt]", steps, _torch_adamw_step(torch, steps) if torch else None, None))
    return cases


def _header(machine_info, passes):
    """The machine (tinylm.machine) and the definitions, printed above the table."""
    from .machine import lines

    return [
        "tinylm kernel benchmark: tinylm.kernels.numba_cpu",
        *lines(machine_info),
        f"time: median of repeated calls after one warm-up call (compilation excluded), "
        f"best of {passes} passes",
        "rate: GFLOP/s = 2 M N K / time (matmul); GB/s = bytes of inputs and outputs / time",
        "ratios = other time / numba time (above 1x: numba is faster); ref: tinylm.kernels.reference,",
        "  BLAS: np.matmul (matmul rows), torch: the PyTorch CPU op; '-': no such op",
        "causal_attention(_backward): flash attention, no T x T weights kept; torch: the op sequence it replaces",
        "  (q kᵀ · scale, masked_fill, softmax, @ v) and that sequence's backward by autograd",
        "gelu_backward: torch's aten.gelu_backward; bias_gelu(_backward): GELU(x + b) and its backward with the",
        "  bias gradient (sum over rows); torch: the same op sequence, gelu(x + b) / gelu_backward + sum",
        "swiglu(_backward): SiLU(gate) * up of the bench Llama's MLP; torch: F.silu(gate) * up, and its autograd",
        "  backward; rope: the bench Llama's queries, a transposed view; rope[backward]: the same kernel with",
        "  -sin on the gradient; torch: the rotated halves concatenated, and its autograd backward",
        "adam_step[gpt]: one AdamW step, adam_step on every parameter of the default GPT (the gradients",
        "  of one backward); torch: torch.optim.AdamW(fused=True).step() on the same values",
    ]


def bench_kernels(quick=False, file=None, json_path=None):
    """Time every Numba kernel against the reference, NumPy's BLAS and PyTorch; print a table.

    quick=True uses smaller sizes and 3 repeats (a smoke test). Returns one dict per row:
    kernel, shape, dtype, time_ms, rate, unit ('GFLOP/s' or 'GB/s'), and the ratios
    vs_reference, vs_blas, vs_torch (None where there is nothing to compare with).
    json_path: also write {"machine": tinylm.machine.describe(), "rows": the rows} there.
    """
    from .backend import _load
    from .machine import describe

    numba_cpu = _load("numba")  # as tinylm loads it: Numba's OpenMP threads wait passively (backend._load)
    try:
        import torch
    except ImportError:
        torch = None
    file = file or sys.stdout
    repeats, passes = (3, 1) if quick else (25, 2)
    rng = np.random.default_rng(0)

    numba_cpu.softmax(np.zeros((1024, 128), np.float32))  # starts Numba's threads: the header names their layer
    machine_info = describe(torch)
    for line in _header(machine_info, passes):
        print(line, file=file)
    columns = (f"{'kernel':24} {'shape':28} {'dtype':7} {'ms':>9} {'rate':>16} "
               f"{'ref':>8} {'BLAS':>8} {'torch':>8}")
    print(columns, file=file)
    print("-" * len(columns), file=file)

    # One library at a time, over all the cases, with a pause in between: the worker threads
    # of OpenBLAS, OpenMP and Numba keep spinning for a while after a call, and on a machine
    # with few cores they slow down whichever library runs next (calls that alternate between
    # libraries can take 10x longer). Each time is the best of `passes` passes over the
    # libraries, so that a burst of load from elsewhere rarely decides a ratio.
    cases = _cases(quick, rng, torch)
    seconds = {}
    for _ in range(passes):
        for impl in ("numba", "reference", "blas", "torch"):
            time.sleep(_PAUSE_S)
            for i, (name, args, torch_op, _) in enumerate(cases):
                call = _call(impl, _op(name), args, torch_op, torch)
                t = _median_time(call, repeats) if call else None
                seconds[impl, i] = t if seconds.get((impl, i)) is None else min(t, seconds[impl, i])

    results = []
    for i, (name, args, _, flops) in enumerate(cases):
        t = seconds["numba", i]
        ratio = {f"vs_{impl}": seconds[impl, i] / t if seconds[impl, i] else None
                 for impl in ("reference", "blas", "torch")}
        if flops:
            rate, unit = flops / t / 1e9, "GFLOP/s"
        else:
            rate, unit = (_nbytes(args) + _nbytes(_call("numba", _op(name), args)())) / t / 1e9, "GB/s"
        if isinstance(args, _Each):
            shape, dtype = f"{len(args)} params, {sum(a[0].size for a in args)} values", args[0][0].dtype
        else:
            sized = args[:2] if name == "matmul" else args[:1]  # the operands that set the size
            shape, dtype = " x ".join(str(a.shape) for a in sized), args[0].dtype
        row = {"kernel": name, "shape": shape, "dtype": str(dtype), "time_ms": t * 1e3, "rate": rate, "unit": unit,
               **ratio}
        results.append(row)
        shown = [f"{r:.2f}x" if r is not None else "-" for r in ratio.values()]
        print(f"{name:24} {row['shape']:28} {row['dtype']:7} {t * 1e3:9.3f} "
              f"{rate:8.1f} {unit:7} {shown[0]:>8} {shown[1]:>8} {shown[2]:>8}", file=file)
    if json_path:
        write_json(json_path, {"bench": "kernels", "machine": machine_info, "rows": results})
    return results


def write_json(path, record):
    """Write a benchmark's record (machine and figures) as JSON, atomically."""
    import json

    from .files import atomic_write

    atomic_write(path, lambda f: json.dump(record, f, indent=1))


def _op(name):
    """The function a row calls: gelu[tanh] is gelu (its "tanh" is among the arguments)."""
    return name.split("[")[0]


def _call(impl, op, args, torch_op=None, torch=None):
    """op(*args) as a no-argument function for one implementation, or None where it has none."""
    from .kernels import numba_cpu

    if isinstance(args, _Each):  # one call per argument tuple; torch_op is the whole torch step
        if impl == "torch":
            return torch_op
        calls = [_call(impl, op, a) for a in args]
        return None if None in calls else lambda: [call() for call in calls]
    if impl == "numba":
        return partial(getattr(numba_cpu, op), *args)
    if impl == "reference":
        return partial(getattr(reference, op), *args)
    if impl == "blas":
        return partial(np.matmul, *args) if op == "matmul" else None
    if torch_op is None:
        return None
    tensors = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args]  # same memory
    return partial(torch_op, *tensors)


def _gpu_time(cupy, fn, repeats=20):
    """Median time of fn() on the GPU, measured with CUDA events, after one warm-up call."""
    fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def bench_gpu_kernels(quick=False, file=None):
    """On a CUDA device: the CuPy kernels against cuBLAS (matmul) and against the device's copy
    bandwidth measured in the same run (the other kernels read and write memory once or twice:
    copy bandwidth is their ceiling). Returns one dict per row; prints a table."""
    from .backend import cupy_or_none

    cupy = cupy_or_none()
    if cupy is None:
        raise RuntimeError("bench: no CUDA device here (the GPU rows need CuPy and an NVIDIA GPU)")
    from .kernels import cupy_gpu

    file = file or sys.stdout
    n = 1024 if quick else 4096
    rows = 1024 if quick else 8192
    gen = cupy.random.default_rng(0)
    a, b = gen.standard_normal((n, n), dtype=cupy.float32), gen.standard_normal((n, n), dtype=cupy.float32)
    x = gen.standard_normal((rows, 8192 if not quick else 1024), dtype=cupy.float32)
    copy_out = cupy.empty_like(x)
    copy_s = _gpu_time(cupy, lambda: cupy.copyto(copy_out, x))
    copy_gbs = 2 * x.nbytes / copy_s / 1e9  # read and write
    cublas_s = _gpu_time(cupy, lambda: cupy.matmul(a, b))
    flops = 2 * n ** 3
    results = [{"kernel": "matmul (cuBLAS)", "shape": f"{n}^3", "rate": flops / cublas_s / 1e12, "unit": "TFLOP/s",
                "ratio": 1.0, "versus": "cuBLAS"}]
    tiled_s = _gpu_time(cupy, lambda: cupy_gpu.matmul_tiled(a, b))
    results.append({"kernel": "matmul_tiled", "shape": f"{n}^3", "rate": flops / tiled_s / 1e12,
                    "unit": "TFLOP/s", "ratio": cublas_s / tiled_s, "versus": "cuBLAS"})
    target = gen.integers(0, x.shape[1], rows)
    w, bias = cupy.ones(x.shape[1], cupy.float32), cupy.zeros(x.shape[1], cupy.float32)
    for name, fn, moved in [
            ("softmax", lambda: cupy_gpu.softmax(x), 2 * x.nbytes),
            ("log_softmax", lambda: cupy_gpu.log_softmax(x), 2 * x.nbytes),
            ("layer_norm", lambda: cupy_gpu.layer_norm(x, w, bias, 1e-5), 2 * x.nbytes),
            ("rms_norm", lambda: cupy_gpu.rms_norm(x, w, 1e-5), 2 * x.nbytes),
            ("cross_entropy", lambda: cupy_gpu.cross_entropy(x, target, -100), x.nbytes)]:
        s = _gpu_time(cupy, fn)
        results.append({"kernel": name, "shape": str(x.shape), "rate": moved / s / 1e9, "unit": "GB/s",
                        "ratio": moved / s / 1e9 / copy_gbs, "versus": "copy bandwidth"})
    from .table import format_table

    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}; copy bandwidth "
          f"{copy_gbs:.0f} GB/s (measured); ratio = share of cuBLAS speed (matmul) or of copy bandwidth", file=file)
    print(format_table(("kernel", "shape", "rate", "ratio", "versus"),
                       [(r["kernel"], r["shape"], f"{r['rate']:.2f} {r['unit']}", f"{r['ratio']:.2f}x", r["versus"])
                        for r in results]), file=file)
    return results
