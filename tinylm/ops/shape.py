"""Ops that move values around without changing them: reshape, permute, expand, indexing,
concatenation, and moves between dtypes and devices. Each backward moves the gradient back."""
import numpy as np

from ..autograd import Function
from ..backend import to_device, xp_of
from ..tensor import data_of


class Reshape(Function):
    """y = x viewed with a new shape;   the gradient is g viewed with x's shape."""

    def forward(self, x, shape):
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot view shape {x.shape} ({x.size} elements) as {shape}") from None

    def backward(self, g):
        return g.reshape(self.inputs[0].shape)


class Permute(Function):
    """y = x with its axes reordered (y.shape[i] = x.shape[dims[i]]);   the gradient is g with the
    inverse order."""

    def forward(self, x, dims):
        if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)):
            raise ValueError(f"permute: dims {dims} are not a reordering of the {x.ndim} axes of shape {x.shape}")
        self.dims = dims
        return x.transpose(dims)

    def backward(self, g):
        return g.permute(tuple(np.argsort([d % g.ndim for d in self.dims])))


class Expand(Function):
    """y = x broadcast to `shape` (a view, no copy);   the gradient is summed back by autograd."""

    def forward(self, x, shape):
        try:
            return xp_of(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: shape {x.shape} cannot be broadcast to {shape}") from None

    def backward(self, g):
        return g


def normalize_index(index):
    """An index with Tensors and lists turned into arrays, so NumPy (or CuPy) can apply it."""
    items = index if isinstance(index, tuple) else (index,)
    out = []
    for item in items:
        item = data_of(item)
        if isinstance(item, list):
            item = np.asarray(item)
        if hasattr(item, "dtype") and item.dtype.kind not in "iub":
            raise IndexError(f"tensors used as indices must be integer or boolean, got {item.dtype}")
        out.append(item)
    return tuple(out)


class GetItem(Function):
    """y = x[index] (ints, slices, None, ..., integer arrays, boolean masks);
    the gradient scatters g back into zeros shaped like x, adding where an index repeats."""

    def forward(self, x, index):
        self.index = index
        return x[index]

    def backward(self, g):
        return ScatterAdd.apply(g, shape=self.inputs[0].shape, index=self.index)


class ScatterAdd(Function):
    """y = zeros(shape); y[index] += x (repeated indices add up) — the adjoint of GetItem;
    the gradient is g[index]."""

    def forward(self, x, shape, index):
        self.index = index
        y = xp_of(x).zeros(shape, dtype=x.dtype)
        if any(hasattr(i, "dtype") for i in index):
            xp_of(x).add.at(y, index, x)  # integer arrays may repeat a position
        else:
            y[index] = x                  # ints and slices never do
        return y

    def backward(self, g):
        return g[self.index]


class Cat(Function):
    """y = [x_1; x_2; ...] along `dim`;   the gradient of x_k is the slice of g that x_k became."""

    def forward(self, *xs, dim=0):
        first = xs[0]
        self.dim = dim % max(first.ndim, 1)
        for k, x in enumerate(xs):
            if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                                           if i != self.dim):
                raise ValueError(f"cat: tensor {k} has shape {x.shape} but tensor 0 has shape {first.shape}; "
                                 f"all sides except dim {dim} must match")
        self.sizes = [x.shape[self.dim] for x in xs]
        return xp_of(first).concatenate(xs, axis=self.dim)

    def backward(self, g):
        return tuple(split(g, self.sizes, self.dim))


def cat(tensors, dim=0):
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    """Join tensors of equal shape along a new axis `dim`."""
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors need the same shape, got {sorted(shapes)}")
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def split(x, split_size_or_sections, dim=0):
    """Pieces of x along `dim`: of size split_size each (the last may be smaller), or of the
    listed sizes. Each piece is a slice (GetItem), so gradients flow back to x."""
    side = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, side - s) for s in range(0, side, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != side:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but dim {dim} has {side} elements")
    lead = (slice(None),) * (dim % x.ndim)
    starts = np.cumsum([0] + sizes)
    return tuple(x[lead + (slice(int(a), int(b)),)] for a, b in zip(starts[:-1], starts[1:]))


class Cast(Function):
    """y = x converted to `dtype`;   the gradient is converted back (by autograd) to x's dtype."""

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return g


class Copy(Function):
    """y = x copied to `device` ('cpu' or 'cuda');   the gradient is copied back."""

    def forward(self, x, device):
        self.source = "cpu" if isinstance(x, np.ndarray) else "cuda"
        return to_device(x, device)

    def backward(self, g):
        return g.to(self.source)
