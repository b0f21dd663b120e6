"""Tensor: an array, its gradient, and the Function that made it.

A Tensor wraps a NumPy array (or a CuPy array on a GPU). Arithmetic on Tensors calls
the op classes in tinylm.ops; each records itself as the ``grad_fn`` of its output when
an input has ``requires_grad=True``, and ``backward()`` walks those records back
(tinylm.autograd).
"""
import collections
import numbers

import numpy as np

from . import autograd
from .backend import check_device, device_of, to_device, xp_of

float16, float32, float64 = np.float16, np.float32, np.float64
int32, int64, bool_ = np.int32, np.int64, np.bool_

_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype):
    """Set the dtype of tensors made from Python floats (float32 unless changed)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: expected a floating dtype (float32 or float64), got {dtype}")
    _default_dtype = dtype


def get_default_dtype():
    return _default_dtype


_NOT_NUMBERS = {"U": "text", "S": "bytes", "M": "dates", "m": "time spans", "V": "raw records"}


def _check_numeric(dtype, data):
    """A TypeError naming what `data` holds unless `dtype` holds numbers or booleans."""
    if dtype.kind in "biufc":
        return
    name = lambda v: "None" if v is None else type(v).__name__  # noqa: E731
    if isinstance(data, (list, tuple)) or hasattr(data, "shape"):
        if dtype.kind == "O":
            bad = [v for v in np.asarray(data, dtype=object).flat if not isinstance(v, (numbers.Number, np.bool_))]
            held = name(bad[0]) if bad else "numbers kept as Python objects (too large for int64?)"
            if bad and isinstance(bad[0], Tensor):
                held += "s (join tensors with tinylm.stack)"
        else:
            held = _NOT_NUMBERS[dtype.kind]
        subject = f"{name(data)} holding {held}"
    else:
        subject = name(data)
    raise TypeError(f"cannot make a tensor from {subject} (dtype {dtype}): expected numbers or booleans, "
                    "nested lists of them, or a numeric array")


def _as_array(data, dtype=None, copy=False):
    """An array from a Tensor, array, scalar or nested list of numbers or booleans; Python floats
    get the default dtype. Anything else (text, None, objects, ragged lists) is refused."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy"):
        arr = data
    else:
        try:
            arr = np.asarray(data)
        except ValueError as e:
            if "inhomogeneous" not in str(e):
                raise
            raise ValueError(f"cannot make a tensor from {type(data).__name__}: its nested lists have "
                             "different lengths (a tensor needs equal lengths at each level)") from None
        if dtype is None and arr.dtype.kind == "f" and not isinstance(data, np.generic):
            dtype = _default_dtype  # tensor([1.0, 2.0]) is float32, like PyTorch
    _check_numeric(arr.dtype, data)
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "biufc":
            raise TypeError(f"dtype {dtype} is not a tensor dtype: expected a number or boolean dtype "
                            "(e.g. tinylm.float32, tinylm.int64, tinylm.bool_)")
        if arr.dtype != dtype:
            return arr.astype(dtype)
    return arr.copy() if copy else arr


def _scalar_dtype(x, like):
    """PyTorch's rule: a Python number never changes a tensor's dtype, except that a float
    next to an integer or boolean tensor gives the default float dtype."""
    kind = like.dtype.kind
    if kind == "f" or (kind in "iu" and not isinstance(x, float)) or (kind == "b" and isinstance(x, bool)):
        return like.dtype
    return _default_dtype if isinstance(x, float) else np.dtype(np.int64)


def data_of(x):
    """The array inside a Tensor; anything else unchanged."""
    return x.data if isinstance(x, Tensor) else x


def as_tensor(x, like=None):
    """x as a Tensor; a Python number next to a tensor `like` takes like's dtype and device."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float)):
        return Tensor(like.xp.asarray(x, dtype=_scalar_dtype(x, like)))
    arr = _as_array(x)
    if like is not None and like.device != device_of(arr):
        arr = to_device(arr, like.device)
    return Tensor(arr)


MaxResult = collections.namedtuple("MaxResult", "values indices")


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Tensor(data, requires_grad=False, dtype=None): data is an array, a number or a nested
    list. An array is used as it is (no copy, like torch.from_numpy); tinylm.tensor copies.
    """

    __array_priority__ = 1000  # numpy_array + tensor calls Tensor.__radd__, not numpy's add
    __slots__ = ("data", "grad", "grad_fn", "_requires_grad", "_retains_grad", "name", "__weakref__")

    def __init__(self, data, requires_grad=False, dtype=None, device=None, _fn=None):
        if _fn is None:
            data = _as_array(data, dtype)
            if device is not None:
                data = to_device(data, device)
        elif not hasattr(data, "shape"):  # a NumPy scalar from a full reduction
            data = xp_of(data).asarray(data)
        self.data = data
        self.grad = None
        self.grad_fn = _fn
        self._retains_grad = False
        self.name = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    # --- what it is -------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad or self.grad_fn is not None

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, this one is {self.dtype}: "
                            "convert it first with .float() (or .double())")
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad=False on a computed tensor: use .detach() to cut it from the graph")
        self._requires_grad = bool(flag)

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return device_of(self.data)

    @property
    def xp(self):
        """The array module (numpy or cupy) of this tensor's data."""
        return xp_of(self.data)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.ndim

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4, threshold=60, edgeitems=3,
                               prefix="tensor(")
        extras = []
        if self.dtype != np.int64 and self.dtype != _default_dtype:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # --- leaving the graph, changing type or device -------------------------------------
    def numpy(self):
        """The data as a NumPy array (shared with the tensor on the CPU, copied from a GPU)."""
        return self.data if self.device == "cpu" else self.data.get()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same data, cut from the graph (no grad_fn, requires_grad False)."""
        return Tensor(self.data)

    def to(self, target):
        """A copy on device 'cpu'/'cuda', or converted to a dtype (e.g. tinylm.float64)."""
        if isinstance(target, str):
            if device_of(self.data) == check_device(target):
                return self
            return ops.Copy.apply(self, device=check_device(target))
        return self.astype(target)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def astype(self, dtype):
        if self.dtype == np.dtype(dtype):
            return self
        return ops.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return self.astype(np.int64)

    def bool(self):
        return self.astype(np.bool_)

    # --- autograd ---------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Compute d self / d leaf for every leaf with requires_grad; add it to ``leaf.grad``."""
        autograd.backward(self, grad, retain_graph)

    def retain_grad(self):
        """Keep .grad on this computed (non-leaf) tensor after backward, for inspection."""
        self._retains_grad = True
        return self

    # --- arithmetic (tinylm.ops.elementwise) ---------------------------------------------
    def __add__(self, other):
        return ops.Add.apply(self, other)

    def __radd__(self, other):
        return ops.Add.apply(other, self)

    def __sub__(self, other):
        return ops.Sub.apply(self, other)

    def __rsub__(self, other):
        return ops.Sub.apply(other, self)

    def __mul__(self, other):
        return ops.Mul.apply(self, other)

    def __rmul__(self, other):
        return ops.Mul.apply(other, self)

    def __truediv__(self, other):
        return ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        return ops.Div.apply(other, self)

    def __pow__(self, other):
        return ops.Pow.apply(self, other)

    def __rpow__(self, other):
        return ops.Pow.apply(other, self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(as_tensor(other, like=self), self)

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def abs(self):
        return ops.Abs.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def relu(self):
        return ops.Relu.apply(self)

    def clamp(self, min=None, max=None):
        return ops.Clamp.apply(self, low=min, high=max)

    def masked_fill(self, mask, value):
        return ops.where(mask, value, self)

    def softmax(self, dim=-1):
        return ops.SoftmaxOp.apply(self, dim=dim)

    def log_softmax(self, dim=-1):
        return ops.LogSoftmaxOp.apply(self, dim=dim)

    # --- comparisons: boolean tensors, outside the graph -----------------------------------
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other):
        return self._compare(other, self.xp.equal)

    def __ne__(self, other):
        return self._compare(other, self.xp.not_equal)

    def __lt__(self, other):
        return self._compare(other, self.xp.less)

    def __le__(self, other):
        return self._compare(other, self.xp.less_equal)

    def __gt__(self, other):
        return self._compare(other, self.xp.greater)

    def __ge__(self, other):
        return self._compare(other, self.xp.greater_equal)

    def __invert__(self):
        return Tensor(~self.data)

    def __and__(self, other):
        return self._compare(other, self.xp.logical_and)

    def __or__(self, other):
        return self._compare(other, self.xp.logical_or)

    __hash__ = object.__hash__

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous: "
                             "use (t).any() or (t).all()")
        return bool(self.data)

    def any(self):
        return Tensor(self.data.any())

    def all(self):
        return Tensor(self.data.all())

    # --- reductions (tinylm.ops.reduce) ---------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return ops.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim=False):
        """sum / n, n = the number of elements reduced."""
        return self.sum(dim, keepdim) / ops.count(self.shape, dim)

    def var(self, dim=None, keepdim=False, correction=1):
        """Σ (x - mean)² / (n - correction); correction=1 is the unbiased estimate (PyTorch's default)."""
        centred = self - self.mean(dim, keepdim=True)
        return (centred * centred).sum(dim, keepdim) / (ops.count(self.shape, dim) - correction)

    def std(self, dim=None, keepdim=False, correction=1):
        return self.var(dim, keepdim, correction).sqrt()

    def max(self, dim=None, keepdim=False):
        """The largest value; with dim, (values, indices) like torch.max."""
        values = ops.Max.apply(self, dim=dim, keepdim=keepdim)
        if dim is None:
            return values
        return MaxResult(values, self.argmax(dim, keepdim))

    def min(self, dim=None, keepdim=False):
        values = -ops.Max.apply(-self, dim=dim, keepdim=keepdim)
        if dim is None:
            return values
        return MaxResult(values, self.argmin(dim, keepdim))

    def argmax(self, dim=None, keepdim=False):
        return Tensor(self.xp.argmax(self.data, axis=dim, keepdims=keepdim))

    def argmin(self, dim=None, keepdim=False):
        return Tensor(self.xp.argmin(self.data, axis=dim, keepdims=keepdim))

    # --- shapes (tinylm.ops.shape) ------------------------------------------------------
    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def _axis(self, dim, ndim=None, what="dim"):
        """dim as an axis in 0..ndim-1 (negative dims count from the end); ndim: self.ndim unless given."""
        ndim = self.ndim if ndim is None else ndim
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{what} must be an integer, got {type(dim).__name__} {dim!r}")
        if not -max(ndim, 1) <= dim < max(ndim, 1):
            raise IndexError(f"{what} {dim} is out of range for shape {self.shape}: expected "
                             f"{-max(ndim, 1)}..{max(ndim, 1) - 1}")
        return int(dim) % max(ndim, 1)

    def flatten(self, start_dim=0, end_dim=-1):
        start, end = self._axis(start_dim, what="start_dim"), self._axis(end_dim, what="end_dim")
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} in shape {self.shape}")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1:])

    def unsqueeze(self, dim):
        dim = self._axis(dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dim = self._axis(dim)
        if self.ndim == 0 or self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return ops.Permute.apply(self, dims=tuple(dims))

    def transpose(self, dim0, dim1):
        dims = list(range(self.ndim))
        dim0, dim1 = self._axis(dim0, what="dim0"), self._axis(dim1, what="dim1")
        if dims:  # a 0-d tensor is its own transpose
            dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(dims)

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self):
        """Transpose of the last two axes (batched matrices)."""
        return self.transpose(-2, -1)

    def expand(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Expand.apply(self, shape=tuple(shape))

    def contiguous(self):
        return self

    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        side = self.shape[dim]
        return self.split(-(-side // chunks), dim)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=ops.normalize_index(index))

    def __setitem__(self, index, value):
        if self.requires_grad:
            raise RuntimeError("in-place assignment into a tensor that requires grad would corrupt its "
                               "gradient: build a new tensor (e.g. with tinylm.where) instead")
        self.data[ops.normalize_index(index)] = value.data if isinstance(value, Tensor) else value

    def __iter__(self):
        return (self[i] for i in range(len(self)))


from . import ops  # noqa: E402  (the ops import Tensor from this module)
