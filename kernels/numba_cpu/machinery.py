"""The machinery under the Numba kernels: how they are compiled, and the pieces LLVM needs.

The kernels share the rows of an array among the CPU cores (prange) and keep the loop along
a row simple enough for LLVM to vectorise it: SIMD instructions that work on 8 or 16 floats
at once. Three things matter for that, and are handled here, once:

* e^x. math.exp is a call into the C library, one element at a time. For float32 the kernels
  use exp_f32, a range reduction and a polynomial that LLVM turns into SIMD code; float64
  keeps math.exp (float64 is for gradient checks, where the last bits count, not for speed).
  GELU's Φ(x) (math.erf) gets the same treatment: normal_cdf_f32, a rational function fitted here.
* max. Numba compiles max(a, b) to a compare and a select, which LLVM will not vectorise as a
  reduction; a row's maximum uses maxnum (LLVM's maxnum, promised that no NaN occurs).
* types. Numba types a literal such as 1.0 as float64, and float32 * float64 is float64, so
  a constant that meets float32 data is made with x.dtype.type(...) first.

Fast-math: the kernels let LLVM reorder sums (reassoc: a vectorised sum keeps 8 or 16 partial
sums), fuse multiply-adds (contract), use reciprocals (arcp) and ignore the sign of zero (nsz),
but never assume "no NaN" or "no inf": masked scores are -inf, and a NaN in the input must
reach the output as it does in the reference. Division follows NumPy (error_model="numpy":
x / 0 is inf or nan, as in the reference) rather than Python, whose ZeroDivisionError check
before every division would stop LLVM from vectorising a loop that divides.

Every kernel is compiled once per dtype (float32, float64) on first use and kept on disk
(cached_njit: Numba's cache=True, made stale by a change to any file of this folder), so a
new process loads it instead: the 13 kernels, small and large, compile in about 9 s the
first time and load in under a second after. Small arrays run on one core (TwoWays). The
wrappers lay their inputs out with as_float / as_rows. The width of the vectors (256 or 512
bits on a CPU with AVX-512) is measured once per machine: target.py.
"""
import functools
import hashlib
import math
import types as types_module
import warnings
from pathlib import Path

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.extending import intrinsic, overload

from . import target  # noqa: F401  (first: it sets the vector width before any kernel is defined)

FAST = {"reassoc", "contract", "arcp", "nsz"}  # fast-math without nnan/ninf (see above)
JIT = dict(fastmath=FAST, error_model="numpy")  # the options of every kernel (with cached_njit)


# ---------------------------------------------------------------------------------------
# Compiled once, kept on disk
# ---------------------------------------------------------------------------------------

@functools.cache
def sources_stamp():
    """A hash of every .py file of this folder (the kernel set), read once per process."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class SetCache(FunctionCache):
    """Numba's on-disk cache of one function (what cache=True makes), stale when any file of
    the set changes. Numba stamps a cache with the file that defines the function only, but
    the compiled code also holds what it calls from other files (exp_f32 of this file is
    inside softmax's machine code): with plain cache=True, an edited exp_f32 would leave the
    softmax of the next run computing with the old one."""

    def __init__(self, py_func):
        super().__init__(py_func)  # picks the folder (see cached_njit)
        self._cache_file = IndexDataCacheFile(self.cache_path, self._impl.filename_base, sources_stamp())


CACHED = []  # every dispatcher cached_njit made, in order (tests read their cache counters)


def cached_njit(**options):
    """njit(**options), with the compiled code kept on disk for the next process (SetCache).

    Where: Numba's choice, as for cache=True: the folder NUMBA_CACHE_DIR names, if set; else
    __pycache__ beside the source (a source tree or an editable install); else, where that is
    not writable (a read-only site-packages), the user's cache folder: ~/.cache/numba/
    numba_cpu_<hash of the source folder> (XDG_CACHE_HOME moves it). With no writable folder at
    all the kernels still work, compiled in memory every run, and a warning says so once.
    Each function has an index (name-line.pyXY.nbi) and one machine-code file per signature
    (.nbc); cache_folder() tells where they are.
    """
    def compile_with_cache(fn):
        dispatcher = njit(**options)(fn)
        try:
            dispatcher._cache = SetCache(dispatcher.py_func)  # as Dispatcher.enable_caching does
        except RuntimeError as error:  # Numba: "cannot cache function ...: no locator available"
            if all(d._cache.cache_path is not None for d in CACHED):  # the first to fail says it
                warnings.warn(f"tinylm: no writable folder for Numba's cache ({error}); the kernels compile "
                              "again in every run (set NUMBA_CACHE_DIR to a writable folder)", RuntimeWarning)
        CACHED.append(dispatcher)
        return dispatcher
    return compile_with_cache


def cache_folder():
    """The folder the compiled kernels are kept in, or None when they are not kept."""
    return CACHED[0]._cache.cache_path if CACHED else None


# ---------------------------------------------------------------------------------------
# One core or all of them
# ---------------------------------------------------------------------------------------

PARALLEL_MIN = 1 << 16  # elements: below this, waking the second core costs more than it saves


class TwoWays:
    """A kernel compiled twice: with its prange loops shared among the cores, and as plain
    loops on one core. A call picks by the size of its first array: a small array is done
    before the other core would have woken up (a 64x512 softmax: 6 ms parallel on a busy
    machine, 0.03 ms on one core), a large one is worth sharing."""

    def __init__(self, fn):
        serial = types_module.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                           fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"  # its own files in the cache (by name)
        self.parallel, self.serial = cached_njit(parallel=True, **JIT)(fn), cached_njit(**JIT)(serial)
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__

    def __call__(self, *args):
        return (self.parallel if args[0].size >= PARALLEL_MIN else self.serial)(*args)


# ---------------------------------------------------------------------------------------
# 2^n, max and e^x in a form LLVM vectorises
# ---------------------------------------------------------------------------------------

@intrinsic
def pow2(typingctx, n):
    """2^n for a float32 n holding an integer in [-126, 127], made from bits, not arithmetic.

    A float32 is 1 sign bit, 8 exponent bits e and 23 mantissa bits; with the sign and the
    mantissa 0 it is worth 2^(e - 127). So the 32 bits of 2^n are the integer (n + 127) << 23,
    reinterpreted as a float (C: *(float *)&bits). Written in LLVM IR because Python has no
    such reinterpretation of a scalar.
    """
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        e = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(e, ir.Constant(i32, 23)), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def maxnum(typingctx, a, b):
    """max(a, b) of two floats of one type as LLVM's maxnum, flagged "no NaN" so that a loop
    m = maxnum(m, x[j]) vectorises. A NaN in x still reaches the softmax output, through x - m."""
    if a != b or not isinstance(a, types.Float):
        return None

    def codegen(context, builder, signature, args):
        t = args[0].type
        llvm_maxnum = builder.module.declare_intrinsic("llvm.maxnum", [t], ir.FunctionType(t, [t, t]))
        return builder.call(llvm_maxnum, args, fastmath=("nnan", "nsz"))

    return a(a, b), codegen


# float32 constants of exp_f32. ln 2 is split in two, ln 2 = _LN2_HI + _LN2_LO, with _LN2_HI
# ln 2 rounded to 9 significant bits, so that n * _LN2_HI is exact for every n used.
_LOG2E = np.float32(1 / math.log(2))
_LN2_HI = np.float32(round(math.log(2) * 512) / 512)
_LN2_LO = np.float32(math.log(2) - round(math.log(2) * 512) / 512)
_C2, _C3, _C4, _C5, _C6, _C7 = (np.float32(1 / math.factorial(k)) for k in range(2, 8))
_ZERO, _HALF, _ONE, _INF = np.float32(0), np.float32(0.5), np.float32(1), np.float32(np.inf)
_EXP_MIN, _EXP_MAX = np.float32(-87.3), np.float32(88.3)  # 2^n stays a normal float32 between


@cached_njit(fastmath={"contract"}, error_model="numpy")
def exp_f32(x):
    """e^x for float32 x in [-87.3, 88.3] with relative error < 2e-7; 0 below, inf above.

    e^x = 2^n e^r,  n = round(x log2(e)),  r = x - n ln 2  in [-ln(2)/2, ln(2)/2]:
      e^r = 1 + r + r²/2! + ... + r^7/7!  (Taylor; the first term left out, r^8/8! < 6e-9,
            is below float32's rounding), evaluated by Horner's rule as 7 multiply-adds;
      2^n by pow2.
    r is computed in two steps (n _LN2_HI is exact) so it keeps its bits when n is large.
    No call and no branch (the range checks become selects): LLVM vectorises loops over it.
    Its own fast-math is only "contract", so LLVM cannot reorder the two-step reduction.
    """
    n = np.floor(x * _LOG2E + _HALF)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    e_r = _ONE + r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * _C7))))))
    y = e_r * pow2(n)
    y = _ZERO if x < _EXP_MIN else y
    return _INF if x > _EXP_MAX else y


def exp(x):
    """e^x. Plain Python runs this body; inside @njit code Numba compiles the overload below
    instead: exp_f32 for float32, math.exp for float64."""
    return math.exp(x)


@overload(exp)
def _exp_for_type(x):
    """Numba picks the implementation of exp from the argument's type, when compiling."""
    if x == types.float32:
        return lambda x: exp_f32(x)
    return lambda x: math.exp(x)


# ---------------------------------------------------------------------------------------
# Φ(x), the normal CDF, for GELU: a rational function fitted at import
# ---------------------------------------------------------------------------------------

_INV_SQRT_2 = 1 / math.sqrt(2)
_ERF_Z_MAX = 4.0  # erf(4) = 1 - 1.5e-8: past it, erf is 1 in float32


def fit_erf(m=6, n=4, iterations=10):
    """Coefficients (P, Q), lowest power first, as float32, of the rational function
        erf(z) ≈ z P(z²) / Q(z²),   P of degree m, Q of degree n with Q(0) = 1,
    for 0 <= z <= 4 (erf is odd, and 1 in float32 past 4): fitted here, at import (a few ms),
    to math.erf at 2001 points. The error e(z) = z P - erf Q is linear in the coefficients:
    least squares on e / Q, with Q from the previous round (Sanathanan-Koerner iterations),
    converges to a fit of the relative error of P/Q itself.

    With m = 6, n = 4, Φ(x) = (1 + erf(x/√2)) / 2 computed from it in float32 is within
    2.5e-7 of the true value for every x: 11 multiply-adds and one division, no e^x.
    """
    z = np.linspace(0.0, _ERF_Z_MAX, 2001)
    u, erf = z * z, np.array([math.erf(v) for v in z])
    columns = np.hstack([z[:, None] * u[:, None] ** np.arange(m + 1),         # the coefficients of P
                         -erf[:, None] * u[:, None] ** np.arange(1, n + 1)])  # of Q, after its 1
    q = np.ones(n + 1)
    for _ in range(iterations):
        weight = np.polyval(q[::-1], u)
        solution = np.linalg.lstsq(columns / weight[:, None], erf / weight, rcond=None)[0]
        q = np.concatenate([[1.0], solution[m + 1:]])
    return tuple(np.float32(c) for c in solution[:m + 1]), tuple(np.float32(c) for c in q)


_ERF_P, _ERF_Q = fit_erf()
_INV_SQRT_2_F32, _ERF_Z_MAX_F32 = np.float32(_INV_SQRT_2), np.float32(_ERF_Z_MAX)


@cached_njit(fastmath={"contract"}, error_model="numpy")
def normal_cdf_f32(x):
    """Φ(x) = P(N(0, 1) <= x) = (1 + erf(z)) / 2, z = x/√2, for float32 x; absolute error < 2.5e-7.

    erf(z) = z P(z²) / Q(z²) from fit_erf, with z clamped to [-4, 4] (where erf is ±1 in
    float32 already). Both polynomials by Horner's rule: only multiply-adds, one division and
    two min/max, so LLVM vectorises loops over it (math.erf is a call into the C library for
    each element). Absolute, not relative, accuracy: Φ(-6) = 1e-9 comes out as 0 ± 2.5e-7,
    which GELU's x Φ(x) needs (as PyTorch's erf, whose error is also absolute).
    """
    z = min(max(x * _INV_SQRT_2_F32, -_ERF_Z_MAX_F32), _ERF_Z_MAX_F32)
    u = z * z
    p = _ZERO
    for c in _ERF_P[::-1]:  # Horner's rule, highest power first
        p = p * u + c
    q = _ZERO
    for c in _ERF_Q[::-1]:
        q = q * u + c
    return _HALF + _HALF * (z * p / q)


def normal_cdf(x):
    """Φ(x). Plain Python runs this body, (1 + erf(x/√2)) / 2; inside @njit code Numba compiles
    the overload below: normal_cdf_f32 for float32, this for float64."""
    return 0.5 * (1.0 + math.erf(x * _INV_SQRT_2))


@overload(normal_cdf)
def _normal_cdf_for_type(x):
    """Numba picks the implementation of normal_cdf from the argument's type, when compiling."""
    if x == types.float32:
        return lambda x: normal_cdf_f32(x)
    return lambda x: 0.5 * (1.0 + math.erf(x * _INV_SQRT_2))


# ---------------------------------------------------------------------------------------
# Layout: what a wrapper does before it calls a kernel
# ---------------------------------------------------------------------------------------

def as_float(x, dtype=None, shape=None, contiguous=True):
    """x as a C-contiguous array of float32 or float64 (dtype, or x's own), broadcast to
    `shape` when given: the layout the kernels take. A transposed or strided view is copied
    here, so every kernel serves any layout (the contract, tinylm.kernels.reference).
    contiguous=False keeps a view as it is, for arrays only np.matmul reads (attention.py)."""
    x = np.asarray(x)
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"the numba kernels take float32 or float64 arrays, got {dtype}")
    if shape is not None and x.shape != tuple(shape):
        out = np.empty(shape, dtype)
        out[...] = x  # a broadcasting copy
        return out
    return np.ascontiguousarray(x, dtype) if contiguous else np.asarray(x, dtype)


def as_rows(x, dtype=None, shape=None):
    """as_float(x, dtype, shape) seen as a 2-D array (rows, last axis)."""
    shape = np.shape(x) if shape is None else shape
    return as_float(x, dtype, shape).reshape(math.prod(shape[:-1]), shape[-1])


def row_op(kernel, x, other=None):
    """Run a row kernel kernel(x, [other,] out) on x's rows; `other` is broadcast to x's shape
    and cast to x's dtype. Returns out in x's shape."""
    x2 = as_rows(x)
    out = np.empty_like(x2)
    if other is None:
        kernel(x2, out)
    else:
        kernel(x2, as_rows(other, x2.dtype, np.shape(x)), out)
    return out.reshape(np.shape(x))
