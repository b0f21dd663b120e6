"""Devices and kernels: which array module holds a tensor, and which kernels compute on it.

Two questions are answered here and nowhere else:

* the array module (``xp``) of an array: ``numpy`` for "cpu", ``cupy`` for "cuda"
  (DeZero's trick: one code path serves both, ``xp = xp_of(array)``; xp_of is written
  beside the reference kernels, which need it and never import the backend);
* the kernel set that serves the hot ops: "numpy" (the reference, tinylm.kernels.reference),
  "numba" (CPU, tinylm.kernels.numba_cpu) or "cupy" (GPU, tinylm.kernels.cupy_gpu).
  ``set_kernels(name)`` or the TINYLM_KERNELS environment variable choose one; by default
  the CPU gets its fastest kernel set that can be loaded, and a GPU the CuPy set (a GPU whose
  CuPy set cannot be loaded is an error, not a silent fall back to the slow reference). Every
  set provides the kernels of the contract, tinylm.kernels.reference.CONTRACT.

Ops never import Numba or CuPy: they call ``kernels_for(array)`` and use what it returns.
"""
import ctypes
import functools
import importlib
import os
import platform
import types

import numpy as np

from .kernels.reference import CONTRACT, xp_of  # noqa: F401 (xp_of is re-exported)

DEVICES = ("cpu", "cuda")
KERNEL_SETS = {"numpy": ("cpu", "cuda"), "numba": ("cpu",), "cupy": ("cuda",)}
_MODULES = {"numpy": "tinylm.kernels.reference", "numba": "tinylm.kernels.numba_cpu", "cupy": "tinylm.kernels.cupy_gpu"}
_DEFAULT = {"cpu": ("numba", "numpy"), "cuda": ("cupy",)}  # in order of preference; the last one must load
# OpenBLAS beats the (teaching) Numba matmul, so the CPU default takes matmul from NumPy.
_FASTER_ELSEWHERE = {"numba": {"matmul": "numpy"}}

_ENV_CHOICE = os.environ.get("TINYLM_KERNELS") or None  # read once, at import
_chosen = None  # a kernel-set name from set_kernels, or None: TINYLM_KERNELS, else the default


def cupy_or_none():
    """The cupy module when CuPy is installed and a CUDA device answers, else None."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # CuPy present, but no driver or device
        return None


def device_of(array):
    """'cpu' or 'cuda'."""
    return "cpu" if xp_of(array) is np else "cuda"


def check_device(device):
    """Normalise a device name ('cpu', 'cuda', 'cuda:0') or raise a one-line error."""
    name = str(device).split(":")[0]
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'cuda'")
    if name == "cuda":
        if cupy_or_none() is None:
            raise RuntimeError("device 'cuda' is not available here: CUDA needs CuPy (pip install "
                               "'tinylm[gpu-cuda13]', or [gpu-cuda12] where nvidia-smi shows CUDA 12) "
                               "and an NVIDIA GPU with its driver")
        get_kernels(name)  # a GPU without its kernels fails here, before any work is done
    return name


def to_device(array, device):
    """Copy `array` to `device` (no copy when it is already there)."""
    device = check_device(device)
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.get()
    return cupy_or_none().asarray(array)


def set_kernels(name):
    """Choose the kernel set for every op: 'numpy', 'numba' or 'cupy'; None restores the default."""
    global _chosen
    if name is not None:
        _load(name)  # fail now, with a clear message, rather than inside the first op
    _chosen = name


def get_kernels(device="cpu"):
    """The name of the kernel set that serves `device` now."""
    name = _chosen or _ENV_CHOICE
    if name is None:
        return _default(device)
    if name not in KERNEL_SETS:
        raise ValueError(f"unknown kernel set {name!r} (TINYLM_KERNELS): expected one of {', '.join(KERNEL_SETS)}")
    # e.g. 'numba' chosen while a tensor lives on the GPU: that device keeps its default
    return name if device in KERNEL_SETS[name] else _default(device)


def kernels_for(array):
    """The kernels that compute on `array` (tinylm.kernels.reference.CONTRACT lists them).

    float16 arrays (mixed precision) get the float32 kernels wrapped by _half_set.
    """
    device = device_of(array)
    if array.dtype == np.float16:
        return _half_set(device, get_kernels(device) if _chosen or _ENV_CHOICE else None)
    if _chosen is None and _ENV_CHOICE is None:
        return _default_set(device)
    return _load(get_kernels(device))


_loaded = {}


def reuse_freed_memory():
    """Keep large freed blocks in this process's heap for the next arrays (glibc's malloc).

    glibc gives each block of 128 KB or more (a threshold it raises as such blocks are freed)
    pages of its own from the OS (mmap) and hands them back when the block is freed (munmap);
    the next block gets fresh pages, which the OS zeroes on first touch, one page fault per
    4 KB. A training step makes tens of MB of temporary arrays: 9,300 page faults per step of
    the default GPT (batch 12), a quarter of its time (63 -> 48 ms on one core of an AMD EPYC).
    With mmap's threshold at 64 MB and the heap trimmed only past 256 MB, the freed blocks are
    reused. Called when the first kernel set loads; left alone where MALLOC_MMAP_THRESHOLD_ or
    MALLOC_TRIM_THRESHOLD_ is set (the user's choice) and outside glibc."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(m_mmap_threshold, 64 << 20)) and bool(mallopt(m_trim_threshold, 256 << 20))


def _load(name):
    if name not in _loaded:
        if name not in KERNEL_SETS:
            raise ValueError(f"unknown kernel set {name!r}: expected one of {', '.join(KERNEL_SETS)}")
        if not _loaded:
            reuse_freed_memory()
        if name == "numba":
            # Numba's OpenMP threads spin for a while after each parallel kernel; on a 2-core CPU
            # they then starve OpenBLAS's matmul threads (a 0.3 ms matmul took 8 ms). Passive
            # waiting makes them sleep instead. Read by OpenMP when the first kernel starts.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            module = importlib.import_module(_MODULES[name])
        except Exception as e:  # not installed, or failing on import (CuPy's errors span several lines)
            first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RuntimeError(f"kernel set {name!r} ({_MODULES[name]}) cannot be loaded here: "
                               f"{first_line}") from None
        missing = [k for k in CONTRACT if not callable(getattr(module, k, None))]
        if missing:
            raise RuntimeError(f"kernel set {name!r} ({module.__name__}) lacks the kernels {', '.join(missing)}")
        _loaded[name] = module
    return _loaded[name]


def _default(device):
    """The first kernel set of the device's preference list that loads. The last one's failure is
    the error: "cuda" lists only "cupy", so with CuPy installed but its kernels not loadable every
    CUDA op fails in one line, instead of running on the reference kernels without a word."""
    *preferred, last = _DEFAULT[device]
    for name in preferred:
        try:
            _load(name)
            return name
        except RuntimeError:
            continue
    _load(last)
    return last


@functools.cache
def _default_set(device):
    """The default kernels of a device: its fastest kernel set, except the kernels listed in
    _FASTER_ELSEWHERE, which come from the set measured faster (`tinylm bench kernels`)."""
    name = _default(device)
    module = _load(name)
    overrides = {k: getattr(_load(other), k) for k, other in _FASTER_ELSEWHERE.get(name, {}).items()}
    if not overrides:
        return module
    return types.SimpleNamespace(**{k: overrides.get(k) or getattr(module, k) for k in CONTRACT})


@functools.cache
def _half_set(device, name):
    """The kernels for float16 arrays: each computes in float32 and rounds its results to the
    dtype the contract names, as mixed-precision training does — the sums inside softmax,
    layer norm and cross-entropy lose too much in float16. Values kept for the backward (a
    row's logsumexp, mean, 1/std) and the loss itself stay float32; a kernel that works in
    place (adam_step) writes its float32 results back into the float16 arrays. On a GPU,
    matmul stays in float16 (tensor cores; cuBLAS accumulates in float32)."""
    full = _default_set(device) if name is None else _load(name)
    kernels = {k: _in_float32(getattr(full, k), k, CONTRACT[k]) for k in CONTRACT}
    if device == "cuda":
        kernels["matmul"] = full.matmul
    return types.SimpleNamespace(**kernels)


def _in_float32(fn, name, kernel):
    """fn computing in float32 for float16 arguments; `kernel` is its CONTRACT entry."""
    def is_half(a):
        return getattr(a, "dtype", None) == np.float16

    def half(*args, **kwargs):
        given = {**dict(zip(kernel.args, args)), **kwargs}
        wide = {k: a.astype(np.float32) if is_half(a) else a for k, a in given.items()}
        out = fn(**wide)
        for k in kernel.in_place:  # the float16 arrays get the float32 results, rounded
            if is_half(given[k]):
                given[k][...] = wide[k]
        if not kernel.returns:
            return out
        outs = out if len(kernel.returns) > 1 else (out,)
        outs = tuple(o.astype(np.float16) if o is not None and is_half(given[r.like]) and not r.float32_at_least
                     else o for o, r in zip(outs, kernel.returns))
        return outs if len(kernel.returns) > 1 else outs[0]

    half.__name__ = name
    half.__doc__ = f"{name} computed in float32, for float16 arrays"
    return half
