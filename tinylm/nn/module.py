"""Module and Parameter: the containers layers are built from (PyTorch's names and behaviour)."""
from collections import OrderedDict

import numpy as np

from ..backend import check_device, to_device
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module learns: requires_grad by default, listed by parameters()."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model.

    Assigning a Parameter or a Module to an attribute registers it, so parameters(),
    state_dict(), to() and train()/eval() reach it; names follow the attribute path
    ("layers.0.weight"), as in PyTorch.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if isinstance(value, Parameter):
            table = self._parameters
        elif isinstance(value, Module):
            table = self._modules
        elif name in self._buffers and (value is None or isinstance(value, Tensor)):
            table = self._buffers  # assigning to a buffer's name updates the buffer
        else:
            table = None
        for other in (self._parameters, self._buffers, self._modules):
            if other is not table:
                other.pop(name, None)
        if table is not None:
            table[name] = value  # an existing name keeps its place in the order
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """A tensor saved in state_dict and moved by to(), but not learned (e.g. a causal mask)."""
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- walking the tree ---------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def children(self):
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(self, prefix=""):
        seen = set()
        for path, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:  # a shared (tied) weight is listed once
                    seen.add(id(p))
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix=""):
        for path, module in self.named_modules(prefix):
            for name, b in module._buffers.items():
                if b is not None:
                    yield (f"{path}.{name}" if path else name), b

    def buffers(self):
        return (b for _, b in self.named_buffers())

    # --- state -------------------------------------------------------------------------
    def _named_state(self):
        """(name, tensor) for every parameter and buffer, tied ones under each of their names."""
        for path, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, t in table.items():
                    if t is not None:
                        yield (f"{path}.{name}" if path else name), t

    def state_dict(self):
        """name -> Tensor (detached, sharing data) for every parameter and buffer."""
        return OrderedDict((name, t.detach()) for name, t in self._named_state())

    def load_state_dict(self, state_dict, strict=True):
        """Copy values (Tensors, NumPy arrays or nested lists of numbers) into the parameters and
        buffers of the same names.

        Every mismatch is listed in one error: missing keys, unexpected keys (when strict), keys
        whose shape differs and values that are not numbers. Every value is converted first, so
        nothing is changed unless all of them check out.
        """
        own = OrderedDict(self._named_state())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        wrong_shape, wrong_value = [], []
        values = {}
        for key in own:
            if key not in state_dict:
                continue
            value, t = state_dict[key], own[key]
            try:
                array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            except ValueError:  # NumPy cannot make an array of a ragged nested list
                wrong_value.append(f"{key}: nested lists of different lengths")
                continue
            if array.shape != t.shape:
                wrong_shape.append(f"{key}: expected shape {t.shape}, got {array.shape}")
            elif array.dtype.kind not in "biuf":
                wrong_value.append(f"{key}: expected numbers, got dtype {array.dtype}")
            else:
                values[key] = to_device(array.astype(t.dtype, copy=True), t.device)
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if wrong_shape:
            problems.append("wrong shapes: " + "; ".join(wrong_shape))
        if wrong_value:
            problems.append("values that are not numbers: " + "; ".join(wrong_value))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + " | ".join(problems))
        for key, array in values.items():
            own[key].data = array
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # --- modes and devices ----------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def to(self, target):
        """Move every parameter, gradient and buffer to a device ('cpu' or 'cuda'), or convert
        the floating ones to a dtype (e.g. tinylm.float64), in place."""
        if not isinstance(target, str):
            return self._cast(np.dtype(target))
        device = check_device(target)
        for t in list(self.parameters()) + list(self.buffers()):
            t.data = to_device(t.data, device)
            if t.grad is not None:
                t.grad = Tensor(to_device(t.grad.data, device))
        return self

    def _cast(self, dtype):
        if dtype.kind != "f":
            raise TypeError(f"a module's parameters can only be cast to a floating dtype, not {dtype}")
        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                if t.grad is not None:
                    t.grad = Tensor(t.grad.data.astype(dtype))
        return self

    def double(self):
        """float64 parameters and buffers (for gradient checks)."""
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, flag=True):
        for p in self.parameters():
            p.requires_grad = flag
        return self

    def num_parameters(self, trainable_only=False):
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # --- printing ----------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules, registered as "0", "1", …"""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self._modules[str(len(self._modules))] = module
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after another: Sequential(a, b)(x) == b(a(x))."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for m in self:
            x = m(x)
        return x
