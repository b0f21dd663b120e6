"""Reductions. mean and var are built from sum in tinylm.tensor, so their gradients follow
from these two ops."""
import math

from ..autograd import Function


def _axes(ndim, dim):
    """dim (None, an int or a tuple, negatives allowed) as a tuple of axes, checked."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(d % max(ndim, 1) for d in dims)) if ndim else ()


def count(shape, dim):
    """How many elements a reduction over `dim` combines into each output."""
    return math.prod(shape[a] for a in _axes(len(shape), dim))


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    """y = Σ_i x_i over the axes `dim`;   dy/dx_i = 1, so g is copied back to every x_i."""

    def forward(self, x, dim=None, keepdim=False):
        self.axes = _axes(x.ndim, dim)
        return x.sum(axis=self.axes, keepdims=keepdim)

    def backward(self, g):
        x = self.inputs[0]
        return g.reshape(_kept_shape(x.shape, self.axes)).expand(x.shape)


class Max(Function):
    """y = max_i x_i over `dim`;   dy/dx_i = 1/k at the k positions that hold the maximum, else 0."""

    def forward(self, x, dim=None, keepdim=False):
        if x.size == 0:
            raise ValueError(f"max of an empty tensor of shape {x.shape}")
        self.axes = _axes(x.ndim, dim)
        top = x.max(axis=self.axes, keepdims=True)
        hits = x == top
        self.share = hits / hits.sum(axis=self.axes, keepdims=True)
        return top if keepdim else top.reshape(tuple(s for i, s in enumerate(x.shape) if i not in self.axes))

    def backward(self, g):
        return g.reshape(_kept_shape(self.share.shape, self.axes)) * self.share.astype(g.dtype, copy=False)
