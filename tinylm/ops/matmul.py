"""Matrix multiplication, batched over leading axes that broadcast like NumPy's matmul."""
import numpy as np

from ..autograd import Function
from ..backend import kernels_for


class MatMul(Function):
    """C = A B over the last two axes (000.attn's Q Kᵀ and its weighted sum of V; every projection);
    dL/dA = G Bᵀ,  dL/dB = Aᵀ G.

    Batch axes broadcast; tinylm.autograd sums the gradient over the axes an input was
    broadcast along. The product itself comes from the kernel set (kernels_for).
    """

    def forward(self, a, b):
        return kernels_for(a).matmul(a, b)

    def backward(self, g):
        a, b = self.inputs
        ga = g @ b.mT if a.requires_grad else None
        if not b.requires_grad:
            return ga, None
        if b.ndim == 2 and a.ndim > 2:
            # b was shared by every matrix of the stack: the sum of aᵢᵀ gᵢ over the stack is
            # one product of all rows, (rows, k)ᵀ @ (rows, m)
            return ga, a.reshape(-1, a.shape[-1]).mT @ g.reshape(-1, g.shape[-1])
        return ga, a.mT @ g


def matmul(a, b):
    """a @ b with NumPy's rules: a 1-D operand is a row (left) or column (right) vector."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    left, right = a.unsqueeze(0) if a.ndim == 1 else a, b.unsqueeze(-1) if b.ndim == 1 else b
    if left.shape[-1] != right.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: the last side of the first "
                         f"({left.shape[-1]}) must equal the second-to-last side of the second ({right.shape[-2]})")
    try:
        np.broadcast_shapes(left.shape[:-2], right.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch axes of shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together") from None
    out = MatMul.apply(left, right)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out
