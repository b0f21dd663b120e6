"""The ops: one Function per op, forward (arrays in, an array out) and backward (dL/d(output) in,
dL/d(each input) out, as Tensors written with Tensor ops) side by side.

Step 1: the elementwise ops. Step 2: the matrix and shape ops. Step 5: softmax's backward.
In steps 1 and 2 an op's backward may return a gradient shaped like the broadcast output:
backward() sums it back to the input's shape (step 3).
"""
import math

import numpy as np

from . import kernels
from .tensor import Function, Tensor

_erf = np.vectorize(math.erf, otypes=[np.float64])  # NumPy has no erf; math's, element by element


# --- step 1: elementwise ops ------------------------------------------------------------------
class Add(Function):
    """y = a + b (NumPy broadcasting)."""

    def forward(self, a, b):
        # BEGIN SOLUTION hint: step 1: the sum of the arrays
        return a + b
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = ∂y/∂b = 1
        return g, g
        # END SOLUTION


class Mul(Function):
    """y = a ⊙ b (NumPy broadcasting)."""

    def forward(self, a, b):
        # BEGIN SOLUTION hint: step 1: the elementwise product
        return a * b
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = b and ∂y/∂b = a; self.inputs holds the Tensors a and b
        a, b = self.inputs
        return g * b, g * a
        # END SOLUTION


class Neg(Function):
    """y = −a."""

    def forward(self, a):
        # BEGIN SOLUTION hint: step 1: minus a
        return -a
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = −1
        return -g
        # END SOLUTION


class Pow(Function):
    """y = a^p for a constant exponent p (a number, the option `exponent`)."""

    def forward(self, a, exponent):
        self.exponent = exponent
        # BEGIN SOLUTION hint: step 1: a to the power exponent
        return a ** exponent
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = p a^(p−1)
        (a,) = self.inputs
        return g * self.exponent * a ** (self.exponent - 1)
        # END SOLUTION


class Exp(Function):
    """y = eᵃ."""

    def forward(self, a):
        # BEGIN SOLUTION hint: step 1: keep the result in self.y: backward needs it
        self.y = np.exp(a)
        return self.y
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = eᵃ = y
        return g * self.y
        # END SOLUTION


class Log(Function):
    """y = ln a (a > 0)."""

    def forward(self, a):
        # BEGIN SOLUTION hint: step 1: the natural logarithm
        return np.log(a)
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = 1/a
        (a,) = self.inputs
        return g / a
        # END SOLUTION


class Tanh(Function):
    """y = tanh a."""

    def forward(self, a):
        # BEGIN SOLUTION hint: step 1: keep the result in self.y: backward needs it
        self.y = np.tanh(a)
        return self.y
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = 1 − tanh²a = 1 − y²
        return g * (1.0 - self.y * self.y)
        # END SOLUTION


class Gelu(Function):
    """y = GELU(a) = a Φ(a), Φ(a) = ½ (1 + erf(a/√2)) the standard normal's distribution function
    (erf is _erf above, element by element)."""

    def forward(self, a):
        # BEGIN SOLUTION hint: step 1: a times ½ (1 + _erf(a / √2))
        return a * 0.5 * (1.0 + _erf(a / math.sqrt(2.0)))
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 1: ∂y/∂a = Φ(a) + a φ(a), φ(a) = e^(−a²/2)/√(2π) the normal density
        (a,) = self.inputs
        x = a.data
        d = 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return g * d
        # END SOLUTION


# --- step 2: matrix and shape ops -------------------------------------------------------------
class MatMul(Function):
    """y = a @ b over the last two axes, for a and b with at least two axes each; the leading
    (batch) axes broadcast as in NumPy: (B, T, C) @ (C, D) is (B, T, D)."""

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"MatMul: both inputs need two axes or more, got shapes {a.shape} and {b.shape}")
        # BEGIN SOLUTION hint: step 2: NumPy's @
        return a @ b
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 2: dL/da = g bᵀ, dL/db = aᵀ g (Tensor.mT transposes the last two axes)
        a, b = self.inputs
        return g @ b.mT, a.mT @ g
        # END SOLUTION


class Sum(Function):
    """y = the sum of a over `axis` (a tuple of axes), kept as sides of 1 when keepdims."""

    def forward(self, a, axis, keepdims):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        # BEGIN SOLUTION hint: step 2: NumPy's sum
        return a.sum(axis=axis, keepdims=keepdims)
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 2: every summed element gets g: put the summed axes back as sides of 1 (reshape), then spread them to self.shape (times ones)
        kept = tuple(1 if i in self.axis else side for i, side in enumerate(self.shape))
        return g.reshape(kept) * Tensor(np.ones(self.shape, dtype=g.dtype))
        # END SOLUTION


class Reshape(Function):
    """y = a with the shape `shape` (the same elements in the same order)."""

    def forward(self, a, shape):
        self.shape = a.shape
        # BEGIN SOLUTION hint: step 2: NumPy's reshape
        return a.reshape(shape)
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 2: the gradient, back in a's shape
        return g.reshape(self.shape)
        # END SOLUTION


class Transpose(Function):
    """y = a with its axes permuted: axis i of y is axis axes[i] of a."""

    def forward(self, a, axes):
        self.axes = axes
        # BEGIN SOLUTION hint: step 2: NumPy's transpose
        return a.transpose(axes)
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 2: permute back with the inverse permutation (np.argsort(axes))
        return g.transpose(tuple(np.argsort(self.axes)))
        # END SOLUTION


class Index(Function):
    """y = a[index]: a slice (a[:, 2:5]) or rows picked by an integer array (an embedding
    lookup, W[ids]); the same row may be picked many times."""

    def forward(self, a, index):
        self.shape, self.index = a.shape, index
        # BEGIN SOLUTION hint: step 2: NumPy's indexing
        return a[index]
        # END SOLUTION

    def backward(self, g):
        # BEGIN SOLUTION hint: step 2: zeros of a's shape, and g added where y came from: np.add.at adds once per pick
        grad = np.zeros(self.shape, dtype=g.dtype)
        np.add.at(grad, self.index, g.data)
        return Tensor(grad)
        # END SOLUTION


# --- step 5: softmax --------------------------------------------------------------------------
class Softmax(Function):
    """y = softmax(a) over the last axis: y_i = e^(a_i) / Σ_j e^(a_j), computed by your kernel
    (kernels.softmax_rows, step 5)."""

    def forward(self, a):
        self.y = kernels.softmax(a)
        return self.y

    def backward(self, g):
        # BEGIN SOLUTION hint: step 5: ∂y_i/∂a_j = y_i (δ_ij − y_j), so dL/da = y ⊙ (g − Σ_j g_j y_j), the sum over the last axis
        y = Tensor(self.y)
        return y * (g - (g * y).sum(-1, keepdims=True))
        # END SOLUTION
