"""Reverse-mode automatic differentiation.

A Function is one node of the computation graph. Its ``forward`` computes on raw arrays
(NumPy or CuPy); its ``backward`` receives dL/d(output) as a Tensor and returns dL/d(input)
for each input as a Tensor, written with Tensor ops so it runs on any device (the contract
is written on ``Function``). ``Tensor.backward()`` visits the nodes in reverse topological
order and applies the chain rule:

    dL/dx = sum over every use y = f(..., x, ...) of  (dL/dy) · (dy/dx)

Broadcasting is undone here, in one place (``unbroadcast``), not in every backward: when
an input of shape (3, 1) took part in an op whose output is (2, 3, 4), its gradient is
summed over the broadcast axes back to (3, 1).
"""
import contextlib
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def set_grad_enabled(mode):
    """Record (True) or don't record (False) operations for backward inside the block."""
    prev = is_grad_enabled()
    _state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        _state.grad_enabled = prev


def no_grad():
    """``with tinylm.no_grad():`` — run ops without building a graph (evaluation, updates)."""
    return set_grad_enabled(False)


class Function:
    """One op: ``forward`` on arrays, ``backward`` on Tensors, side by side in each subclass.

    ``Op.apply(*inputs, **options)`` wires a call into the graph: it turns the inputs into
    Tensors (numbers and arrays take the first Tensor's device), calls ``forward`` on their
    arrays, and — when gradients are being recorded and an input requires them — remembers
    the input Tensors in ``self.inputs`` so ``backward`` can use them. The contract every op
    fulfils (the same as CMU needle's):

    ``forward(self, *arrays, **options) -> array``
        The op's output from the inputs' raw arrays (NumPy or CuPy, all on one device), one
        positional argument per input in the order given to ``apply``. ``options`` are the
        keyword arguments that are not differentiated (``dim``, ``shape``, ``eps``...).
        Whatever backward needs besides the inputs is kept on ``self`` (``self.y`` for exp).

    ``backward(self, grad) -> a Tensor or None per input``
        ``grad`` is dL/d(output), a Tensor shaped like the output. Return dL/d(input) for
        every input, in input order: a tuple with one entry per input (an op of one input
        may return its one Tensor alone). Each entry is

        * a Tensor, written with the engine's own Tensor ops (``g * self.y``, ``g @ b.mT``),
          so one backward runs on any device; backward runs under ``no_grad()``, so these
          ops build no graph. An op whose backward is a fused kernel wraps the kernel's
          array result: ``Tensor(kernels_for(x).softmax_backward(...))``;
        * or None: no gradient (the input needs none, or is a constant such as a mask).

        A gradient is shaped like its input, or like the op's broadcast output: autograd
        sums it back over the broadcast axes (``unbroadcast``) and casts it to the input's
        dtype, in one place, so no backward deals with broadcasting. ``autograd.backward``
        raises a TypeError naming the op for a raw array, a wrong count of gradients, or a
        shape that does not broadcast to the input's.
    """

    inputs = ()       # the input Tensors (set only when the node is recorded)
    freed = False     # True once backward ran without retain_graph

    @classmethod
    def apply(cls, *inputs, **options):
        tensors = inputs
        if not all(isinstance(x, Tensor) for x in inputs):  # a number or array beside a Tensor
            ref = next(x for x in inputs if isinstance(x, Tensor))
            tensors = tuple(x if isinstance(x, Tensor) else as_tensor(x, like=ref) for x in inputs)
        kind = type(tensors[0].data)
        if any(type(t.data) is not kind for t in tensors[1:]):  # NumPy and CuPy arrays differ in type
            device = tensors[0].device
            for t in tensors[1:]:
                if t.device != device:
                    raise RuntimeError(
                        f"{cls.__name__.lower()}: tensors on different devices ({device} and {t.device}); "
                        f"move them to one device with .to('{device}') first")
        fn = cls()
        data = fn.forward(*(t.data for t in tensors), **options)
        record = is_grad_enabled() and any(t.requires_grad for t in tensors) and data.dtype.kind == "f"
        if record:
            fn.inputs = tensors
        return Tensor(data, _fn=fn if record else None)

    @property
    def name(self):
        return type(self).__name__


def unbroadcast(grad, shape, op="unbroadcast"):
    """Sum `grad` (an array) over the axes that broadcasting added or stretched, back to `shape`."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0 or any(side not in (1, g) for side, g in zip(shape, grad.shape[extra:])):
        raise TypeError(f"{op}: a gradient of shape {grad.shape} for an input of shape {shape}; a "
                        "gradient must have the input's shape or the op's broadcast output shape")
    axes = tuple(range(extra)) + tuple(
        extra + i for i, side in enumerate(shape) if side == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def topological_order(root):
    """Every node reachable from `root`, each before the nodes it was computed from.

    Iterative depth-first search (a recursive one would overflow on a long RNN unroll).
    """
    order, seen, stack = [], set(), [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node.grad_fn is not None:
            stack.extend((t, False) for t in node.grad_fn.inputs if t.requires_grad and id(t) not in seen)
    return order[::-1]


def backward(root, grad=None, retain_graph=False):
    """Accumulate d root / d leaf into ``leaf.grad`` for every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad: no input of the "
                           "computation had requires_grad=True (or it ran under no_grad())")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {root.shape} needs a gradient argument: "
                "call loss.backward() on a scalar, or y.backward(grad) with grad shaped like y")
        grad = root.xp.ones_like(root.data)
    else:
        grad = grad.data if isinstance(grad, Tensor) else root.xp.asarray(grad, dtype=root.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {root.shape}")

    order = topological_order(root)
    grads = {id(root): grad}
    with no_grad():
        for node in order:
            g = grads.pop(id(node), None)
            if g is None:
                continue
            fn = node.grad_fn
            if fn is None or node._retains_grad:
                node.grad = Tensor(g) if node.grad is None else Tensor(node.grad.data + g)
            if fn is None:
                continue
            if fn.freed:
                raise RuntimeError(
                    "backward through a graph a second time: its saved values were freed by the first "
                    "backward(). Call backward(retain_graph=True) the first time, or run the forward again")
            input_grads = fn.backward(Tensor(g))
            if type(input_grads) is not tuple:
                input_grads = (input_grads,)
            if len(input_grads) != len(fn.inputs):
                raise TypeError(f"{fn.name}.backward returned {len(input_grads)} gradients for "
                                f"{len(fn.inputs)} inputs: return one Tensor (or None) per input, in input order")
            for i, (t, gi) in enumerate(zip(fn.inputs, input_grads)):
                if gi is None:
                    continue
                if not isinstance(gi, Tensor):
                    raise TypeError(f"{fn.name}.backward returned a {type(gi).__name__} as the gradient of "
                                    f"input {i}: return a Tensor (wrap a kernel's array as Tensor(array)) "
                                    "or None")
                if not t.requires_grad:
                    continue
                gi = gi.data
                if gi.shape != t.shape:
                    gi = unbroadcast(gi, t.shape, fn.name)
                if gi.dtype != t.dtype:
                    gi = gi.astype(t.dtype)
                grads[id(t)] = grads[id(t)] + gi if id(t) in grads else gi
            if not retain_graph:
                fn.__dict__.clear()  # drop the inputs and saved arrays: memory back now
                fn.freed = True


from .tensor import Tensor, as_tensor  # noqa: E402  (tensor.py builds on this module: import it last)
