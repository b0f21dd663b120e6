"""A stand-in for CuPy that computes with NumPy and is as strict as CuPy about where arrays live.

A CuPy array lives on the GPU, and the crossings between host and device are explicit:

* ``cupy.asarray(host)`` copies to the device; ``x.get()`` or ``cupy.asnumpy(x)`` copies back;
* NumPy cannot take a device array implicitly: ``np.asarray(x)`` raises TypeError;
* CuPy's operations refuse host arrays: ``x + host_array`` raises TypeError;
* NumPy functions and ufuncs called on device arrays dispatch to CuPy's (``np.exp(x)`` is a
  device array: NEP 13 and NEP 18), reductions give 0-d device arrays, not NumPy scalars;
* indexing takes host or device integer arrays; ``float(x)``, ``int(x)``, ``x.item()`` copy one value.

A host/device mix-up in model or task code therefore fails only on a GPU, in the first minutes
of a GPU run. `install` puts this module in place of ``cupy`` (with one fake device), so the
tests can run every task with device='cuda' on any machine, on the NumPy reference kernels.
The CuPy kernels themselves are checked elsewhere (the dry run in test_cuda.py; on a GPU).
Not modelled: streams, device memory, speed, and CuPy functions NumPy lacks (RawKernel, ...).
"""
import math
import operator
import sys
import types

import numpy as np

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")  # CuPy's words
SCALARS = (bool, int, float, complex, np.generic)


def _device(obj):
    """The NumPy array behind a device array; host arrays are refused, as CuPy refuses them."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(f"Unsupported type {type(obj)}")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_device(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _device(v) for k, v in obj.items()}
    return obj


def _index(key):
    """An index: device arrays unwrapped, host integer arrays allowed (CuPy copies them over)."""
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


def _wrap(result):
    """Results on the device: arrays and NumPy scalars become device arrays (0-d for a scalar)."""
    if isinstance(result, (np.ndarray, np.generic)):
        return ndarray(np.asarray(result))
    if isinstance(result, (list, tuple)):
        return type(result)(_wrap(r) for r in result)
    return result


class ndarray:  # noqa: N801 (CuPy's name)
    """A device array: a NumPy array that only CuPy-style code may touch."""
    __slots__ = ("_a",)
    __hash__ = None

    def __init__(self, array):
        assert isinstance(array, np.ndarray)
        self._a = array

    # --- the explicit crossings ----------------------------------------------------------
    def get(self, stream=None, out=None):
        return self._a.copy()

    def set(self, host):
        self._a[...] = host

    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __complex__(self):
        return complex(self._a)

    # --- NumPy's protocols: NumPy functions on device arrays compute on the device ------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_device(inputs), **_device(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_device(args), **_device(kwargs)))

    # --- everything else an ndarray has, on the device -----------------------------------
    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__ and the like would hand NumPy the memory
            raise AttributeError(name)
        value = getattr(self._a, name)
        if not callable(value):
            return _wrap(value)
        return lambda *args, **kwargs: _wrap(value(*_device(args), **_device(kwargs)))

    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        self._a[_index(key)] = value._a if isinstance(value, ndarray) else value

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        return f"fake_cupy.{self._a!r}"


def _operators():
    """ndarray's arithmetic and comparison operators: each the NumPy ufunc, under the rules above.
    An operand of another kind (a tinylm Tensor, say) gets NotImplemented, so its own operator runs."""
    def binary(fn, reflected):
        def op(self, other):
            if not isinstance(other, (ndarray, np.ndarray, *SCALARS)):
                return NotImplemented
            a, b = (other, self) if reflected else (self, other)
            return _wrap(fn(_device(a), _device(b)))
        return op

    def in_place(fn):
        def op(self, other):
            fn(self._a, _device(other))
            return self
        return op

    for name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
                 "lshift", "rshift"):
        fn = getattr(operator, name + "_" if name in ("and", "or") else name)
        setattr(ndarray, f"__{name}__", binary(fn, False))
        setattr(ndarray, f"__r{name}__", binary(fn, True))
        setattr(ndarray, f"__i{name}__", in_place(getattr(operator, "i" + name)))
    for name in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(ndarray, f"__{name}__", binary(getattr(operator, name), False))
    for name in ("neg", "pos", "abs", "invert"):
        setattr(ndarray, f"__{name}__", (lambda fn: lambda self: _wrap(fn(self._a)))(getattr(operator, name)))


_operators()
ndarray.__module__ = "cupy"  # as CuPy's own: code may tell device arrays by their type's module


# ---------------------------------------------------------------------------------------
# The module: NumPy's functions on device arrays, and the crossings
# ---------------------------------------------------------------------------------------

class _Ufunc:
    """cupy.add and the like: a NumPy ufunc (with .at, .reduce, ...) on device arrays only."""

    def __init__(self, ufunc):
        self._ufunc = ufunc

    def __call__(self, *args, **kwargs):
        out = kwargs.get("out")
        result = self._ufunc(*_device(args), **_device(kwargs))
        return out if out is not None else _wrap(result)

    def __getattr__(self, name):
        method = getattr(self._ufunc, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: _wrap(method(*_device(args), **_device(kwargs)))


def asarray(a, dtype=None, order=None, **kwargs):
    """A device array: `a` itself when already one of `dtype`, else a copy to the device."""
    if isinstance(a, ndarray) and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    host = a._a if isinstance(a, ndarray) else a
    return ndarray(np.array(host, dtype=dtype, order=order or "K"))


def array(a, dtype=None, copy=True, order="K", **kwargs):
    if isinstance(a, ndarray) and not copy:
        return asarray(a, dtype)
    return ndarray(np.array(a._a if isinstance(a, ndarray) else a, dtype=dtype, order=order))


def asnumpy(a, stream=None, out=None):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


class _Module(types.ModuleType):
    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, types.ModuleType):  # cupy.random & co. are not modelled: never NumPy's
            raise AttributeError(f"the fake cupy has no {name}")
        if isinstance(value, np.ufunc):
            return _Ufunc(value)
        if callable(value) and not isinstance(value, type):
            return lambda *args, **kwargs: _wrap(value(*_device(args), **_device(kwargs)))
        return value  # dtypes (cupy.float32 is numpy.float32), constants


def _erf(x):
    """cupyx.scipy.special.erf: erf element-wise, on device arrays only."""
    return ndarray(np.vectorize(math.erf, otypes=[x.dtype])(_device(x)))


def install(monkeypatch=None):
    """Make `import cupy` give the fake, with one fake CUDA device, and `cupyx.scipy.special`
    its erf; undone by monkeypatch (without one, for the rest of the process)."""
    put = monkeypatch.setitem if monkeypatch is not None else dict.__setitem__
    cupy = _Module("cupy", __doc__)
    cupy.ndarray, cupy.asarray, cupy.array, cupy.asnumpy = ndarray, asarray, array, asnumpy
    cupy.asanyarray = cupy.ascontiguousarray = asarray
    cupy.get_array_module = lambda *args: cupy if any(isinstance(a, ndarray) for a in args) else np
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1,
                                    getDeviceProperties=lambda i: {"name": b"fake GPU (NumPy)"})
    cupy.cuda = types.SimpleNamespace(runtime=runtime)
    put(sys.modules, "cupy", cupy)
    special = types.ModuleType("cupyx.scipy.special")
    special.erf = _erf
    for name, module in (("cupyx", types.ModuleType("cupyx")), ("cupyx.scipy", types.ModuleType("cupyx.scipy")),
                         ("cupyx.scipy.special", special)):
        put(sys.modules, name, module)
    return cupy
