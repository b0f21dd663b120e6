"""The Tensor and its reverse-mode automatic differentiation.

A Tensor holds a NumPy array (``data``); one that came out of an op while gradients were
being recorded also holds the Function that made it (``grad_fn``), and that Function holds
its input Tensors (``inputs``): together they are the computation graph. ``backward()``
walks the graph from the loss back to the leaves, applying the chain rule at every node:

    dL/dx = Σ over every use y = f(..., x, ...) of  (dL/dy) · (∂y/∂x)

This engine imports nothing from tinylm: it is yours. The checks compare it with tinylm.
"""
import contextlib

import numpy as np

_recording = [True]  # False inside no_grad()


@contextlib.contextmanager
def no_grad():
    """Inside the block ops record nothing: for backward passes and optimizer updates."""
    before = _recording[0]
    _recording[0] = False
    try:
        yield
    finally:
        _recording[0] = before


class Function:
    """One op of the graph. Each subclass (ops.py) writes two methods side by side:

    ``forward(self, *arrays, **options) -> array``
        the output from the inputs' arrays, one positional argument per input; ``options`` are
        settings that get no gradient (an axis, a shape, an exponent). What backward needs
        besides the inputs is kept on ``self`` (``self.y`` for exp).
    ``backward(self, grad) -> a Tensor or None per input``
        ``grad`` is dL/d(output), a Tensor shaped like the output. Return dL/d(input) for each
        input, in input order (a tuple; an op of one input may return its Tensor alone),
        written with Tensor ops — they run under no_grad(), so they record nothing. A gradient
        may have the input's shape or the broadcast output's: backward() sums it back to the
        input's shape (unbroadcast, step 3), so no op deals with broadcasting.

    ``Op.apply(*inputs, **options)`` wires one call into the graph.
    """

    inputs = ()

    @classmethod
    def apply(cls, *inputs, **options):
        like = next((x for x in inputs if isinstance(x, Tensor)), None)
        dtype = like.dtype if like is not None else None  # a number beside a float32 Tensor stays float32
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=dtype)) for x in inputs)
        fn = cls()
        out = Tensor(fn.forward(*(t.data for t in tensors), **options))
        if _recording[0] and any(t.requires_grad for t in tensors):
            fn.inputs = tensors
            out.grad_fn, out.requires_grad = fn, True
        return out


class Tensor:
    """An array that can record the ops applied to it. Tensor(data, requires_grad=False):
    data is an array, a number or a nested list; anything not floating becomes float64."""

    __array_ufunc__ = None  # numpy_array + tensor calls Tensor.__radd__, not NumPy's add

    def __init__(self, data, requires_grad=False):
        data = np.asarray(data)
        self.data = data if data.dtype.kind == "f" else data.astype(np.float64)
        self.requires_grad = requires_grad
        self.grad = None      # dL/d(this tensor), a Tensor, after backward() (leaves only)
        self.grad_fn = None   # the Function that made this tensor (None for a leaf)

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)

    def __repr__(self):
        return f"Tensor({self.data!r}{', requires_grad=True' if self.requires_grad else ''})"

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def backward(self, grad=None):
        """dL/d(leaf) into leaf.grad for every leaf this tensor was computed from (step 4)."""
        backward(self, grad)

    # --- ops (ops.py) -----------------------------------------------------------------
    def __add__(self, other):
        return ops.Add.apply(self, other)

    __radd__ = __add__

    def __neg__(self):
        return ops.Neg.apply(self)

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        return ops.Mul.apply(self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (other ** -1.0 if isinstance(other, Tensor) else 1.0 / other)

    def __rtruediv__(self, other):
        return other * self ** -1.0

    def __pow__(self, exponent):
        return ops.Pow.apply(self, exponent=float(exponent))

    def __matmul__(self, other):
        return ops.MatMul.apply(self, other)

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def gelu(self):
        return ops.Gelu.apply(self)

    def sum(self, axis=None, keepdims=False):
        axis = tuple(range(self.ndim)) if axis is None else tuple(a % self.ndim for a in np.atleast_1d(axis))
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        count = self.data.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return self.sum(axis, keepdims) * (1.0 / count)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(shape))

    def transpose(self, *axes):
        """Permute the axes (all of them, like np.transpose); no axes: reverse them."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ops.Transpose.apply(self, axes=tuple(axes) or tuple(reversed(range(self.ndim))))

    @property
    def mT(self):
        """The last two axes swapped (a batch of matrices transposed)."""
        axes = list(range(self.ndim))
        axes[-2:] = axes[:-3:-1]
        return self.transpose(axes)

    def __getitem__(self, index):
        return ops.Index.apply(self, index=index)

    def softmax(self):
        """softmax over the last axis (step 5)."""
        return ops.Softmax.apply(self)


def unbroadcast(grad, shape):
    """Sum the array `grad` over the axes that broadcasting added or stretched, back to `shape`.

    An input of shape (3, 1) that took part in an op whose output is (2, 3, 4) was used 2·4 times
    per element; its gradient is the sum of the output gradient over those uses: over axis 0 (added
    in front) and axis 2 (stretched from 1), giving shape (3, 1) again.
    """
    # BEGIN SOLUTION hint: step 3: sum over the leading axes grad has in excess, then (keepdims) over each axis where shape has 1 and grad does not
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    stretched = tuple(i for i, side in enumerate(shape) if side == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad
    # END SOLUTION


def topological_order(root):
    """Every tensor that requires grad and that `root` was computed from (root first), each
    before every tensor it was computed from, each once. Follow t.grad_fn.inputs from root.

    Without recursion: a chain of thousands of ops (an unrolled RNN) must not hit Python's
    recursion limit. One way is a depth-first search on your own stack that appends a node
    once all its inputs are appended, then reverses the list.
    """
    # BEGIN SOLUTION hint: step 4: depth-first search with a stack of (tensor, inputs_done) pairs; append a tensor after its inputs, then reverse
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node.grad_fn is not None:
            stack.extend((t, False) for t in node.grad_fn.inputs if t.requires_grad and id(t) not in seen)
    return order[::-1]
    # END SOLUTION


def backward(root, grad=None):
    """Add dL/d(leaf) into leaf.grad (a Tensor) for every leaf (a tensor with requires_grad and no
    grad_fn) that `root` was computed from. grad is dL/d(root), an array (ones when omitted, for a
    scalar loss).

    Visit topological_order(root); for each tensor, call its grad_fn.backward on the gradient
    gathered so far, bring each input's gradient to the input's shape (unbroadcast) and add it to
    what that input has gathered: a tensor used twice gets the sum. Run the backward methods
    under no_grad(). A leaf that already has a .grad gets the new gradient added (as PyTorch does).
    """
    # BEGIN SOLUTION hint: step 4: a dict id(tensor) -> gradient array, seeded with dL/droot; walk topological_order(root), passing Tensor(gradient) to grad_fn.backward
    grads = {id(root): np.ones_like(root.data) if grad is None else np.asarray(grad, dtype=root.dtype)}
    with no_grad():
        for node in topological_order(root):
            g = grads.pop(id(node), None)
            if g is None:  # every op that used it returned None for it
                continue
            if node.grad_fn is None:
                node.grad = Tensor(g) if node.grad is None else Tensor(node.grad.data + g)
                continue
            input_grads = node.grad_fn.backward(Tensor(g))
            input_grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
            for x, gx in zip(node.grad_fn.inputs, input_grads):
                if gx is None or not x.requires_grad:
                    continue
                gx = unbroadcast(gx.data, x.shape)
                grads[id(x)] = grads[id(x)] + gx if id(x) in grads else gx
    # END SOLUTION


from . import ops  # noqa: E402  (ops.py builds on this module: import it last)
