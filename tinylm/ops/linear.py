"""The linear layer as one op: y = x Wᵀ + b, and optionally the GELU after it, forward and backward."""
from ..autograd import Function
from ..backend import kernels_for
from ..tensor import Tensor


class LinearOp(Function):
    """y = x Wᵀ + b over the last axis of x (Linear: 003.mha's projections, the output layer of
    001.model); with gelu="none" or "tanh", y = GELU(x Wᵀ + b) (the first layer of a GPT's MLP).
    Inputs: x (..., in), W (out, in), and b (out,) when there is a bias.

    All rows of x are one matrix X (rows, in); G = dL/dY (rows, out):
        Y = X Wᵀ + b               dX = G W,   dW = Gᵀ X,   db = Σ_rows G
    With GELU, U = X Wᵀ is kept for the backward and Y = GELU(U + b) comes from one kernel
    (bias_gelu, which adds b on the way); the backward's first kernel (bias_gelu_backward)
    gives G_U = G ⊙ GELU'(U + b) and db = Σ_rows G_U, then dX and dW as above, from G_U.

    Each product is one 2-D BLAS call on row-major arrays: Wᵀ is W read with BLAS's transpose
    flag, and dW = Gᵀ X comes out (out, in), W's own layout — no transposed copy either way,
    and W's gradient is contiguous for the optimizer. (x @ weight.T through MatMul, Permute
    and Add made a stacked product, a transposed gradient and a separate pass for the bias.)
    """

    def forward(self, x, weight, bias=None, gelu=None):
        K = kernels_for(x)
        self.gelu = gelu
        y = K.matmul(x.reshape(-1, x.shape[-1]), weight.T)
        if gelu is not None:
            self.u = y  # X Wᵀ, before the bias
            y = K.gelu(y, gelu) if bias is None else K.bias_gelu(y, bias, gelu)
        elif bias is not None:
            y += bias  # in place: y is the product's own new array
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        x, weight, *bias = self.inputs
        K = kernels_for(g.data)
        g2 = g.data.reshape(-1, weight.shape[0])
        db = None
        if self.gelu is not None and bias:
            g2, db = K.bias_gelu_backward(self.u, bias[0].data, g2, self.gelu)
        elif self.gelu is not None:
            g2 = K.gelu_backward(self.u, g2, self.gelu)
        elif bias and bias[0].requires_grad:
            db = g2.sum(axis=0)
        dx = Tensor(K.matmul(g2, weight.data).reshape(x.shape)) if x.requires_grad else None
        dw = Tensor(K.matmul(g2.T, x.data.reshape(-1, x.shape[-1]))) if weight.requires_grad else None
        return (dx, dw) if not bias else (dx, dw, Tensor(db) if db is not None and bias[0].requires_grad else None)
