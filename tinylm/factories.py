"""Ways to make tensors: from data, filled with a value, random, or a range."""
import numpy as np

from .random import generator
from .tensor import Tensor, _as_array, get_default_dtype


def _shape(shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise ValueError(f"expected a shape of non-negative integers, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def _make(array, dtype, requires_grad, device):
    dtype = get_default_dtype() if dtype is None else dtype
    return Tensor(array.astype(dtype, copy=False), requires_grad=requires_grad, device=device)


def tensor(data, dtype=None, requires_grad=False, device=None):
    """A new tensor holding a copy of `data` (Python floats become the default dtype, float32)."""
    return Tensor(_as_array(data, dtype, copy=True), requires_grad=requires_grad, device=device)


def zeros(*shape, dtype=None, requires_grad=False, device=None):
    return _make(np.zeros(_shape(shape)), dtype, requires_grad, device)


def ones(*shape, dtype=None, requires_grad=False, device=None):
    return _make(np.ones(_shape(shape)), dtype, requires_grad, device)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    return _make(np.full(_shape((shape,)), fill_value), dtype, requires_grad, device)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=t.device)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad, device=t.device)


def randn(*shape, dtype=None, requires_grad=False, device=None):
    """Standard normal samples from tinylm's generator (seed it with tinylm.manual_seed)."""
    return _make(generator().standard_normal(_shape(shape)), dtype, requires_grad, device)


def rand(*shape, dtype=None, requires_grad=False, device=None):
    """Uniform samples in [0, 1) from tinylm's generator."""
    return _make(generator().random(_shape(shape)), dtype, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    """start, start+step, ... below end (integers stay int64 unless a dtype is given)."""
    values = np.arange(start, end, step) if end is not None else np.arange(start)
    if dtype is None and values.dtype.kind == "f":
        dtype = get_default_dtype()
    return Tensor(values.astype(dtype or np.int64), requires_grad=requires_grad, device=device)
