"""Element-wise ops. Each backward is the local derivative times the incoming gradient g;
when an input was broadcast, tinylm.autograd sums its gradient back to the input's shape."""
import numpy as np

from ..autograd import Function
from ..backend import kernels_for, xp_of
from ..tensor import Tensor, data_of


class Binary(Function):
    """Two inputs broadcast together (NumPy's rules); a mismatch names both shapes and the op."""

    @classmethod
    def apply(cls, a, b, **options):
        sa, sb = np.shape(data_of(a)), np.shape(data_of(b))
        if sa != sb:
            try:
                np.broadcast_shapes(sa, sb)
            except ValueError:
                raise ValueError(f"{cls.__name__.lower()}: shapes {sa} and {sb} cannot be broadcast together "
                                 "(sides must be equal or 1, aligned from the right)") from None
        return super().apply(a, b, **options)


class Add(Binary):
    """z = x + y;   dz/dx = 1,  dz/dy = 1."""

    def forward(self, x, y):
        return x + y

    def backward(self, g):
        return g, g


class Sub(Binary):
    """z = x - y;   dz/dx = 1,  dz/dy = -1."""

    def forward(self, x, y):
        return x - y

    def backward(self, g):
        return g, -g


class Mul(Binary):
    """z = x y;   dz/dx = y,  dz/dy = x."""

    def forward(self, x, y):
        return x * y

    def backward(self, g):
        x, y = self.inputs
        return g * y, g * x


class Div(Binary):
    """z = x / y;   dz/dx = 1/y,  dz/dy = -x/y²."""

    def forward(self, x, y):
        return x / y

    def backward(self, g):
        x, y = self.inputs
        return g / y, -g * x / (y * y)


class Pow(Binary):
    """z = x^y;   dz/dx = y x^(y-1),  dz/dy = x^y ln x  (only computed when y needs a gradient)."""

    def forward(self, x, y):
        self.z = x ** y
        return self.z

    def backward(self, g):
        x, y = self.inputs
        gx = g * y * x ** (y - 1) if x.requires_grad else None
        gy = g * self.z * x.log() if y.requires_grad else None
        return gx, gy


class Neg(Function):
    """z = -x;   dz/dx = -1."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Exp(Function):
    """y = eˣ;   dy/dx = eˣ = y."""

    def forward(self, x):
        self.y = xp_of(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = ln x;   dy/dx = 1/x."""

    def forward(self, x):
        return xp_of(x).log(x)

    def backward(self, g):
        return g / self.inputs[0]


class Sqrt(Function):
    """y = √x;   dy/dx = 1 / (2√x) = 1 / (2y)."""

    def forward(self, x):
        self.y = x ** 0.5
        return self.y

    def backward(self, g):
        return g * 0.5 / self.y


class Abs(Function):
    """y = |x|;   dy/dx = sign(x)  (0 at x = 0)."""

    def forward(self, x):
        return abs(x)

    def backward(self, g):
        return g * (self.inputs[0].data > 0) - g * (self.inputs[0].data < 0)


class Tanh(Function):
    """y = tanh x (the f of 000.rnn, the squashing of 000.lstm's candidate and output);   dy/dx = 1 - y²."""

    def forward(self, x):
        self.y = xp_of(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class Sigmoid(Function):
    """y = σ(x) = 1 / (1 + e⁻ˣ) (the gates of 000.lstm and of 002.gru's corrected form), computed as
    ½(1 + tanh(x/2)) so no exp overflows;   dy/dx = y (1 - y)."""

    def forward(self, x):
        self.y = 0.5 * (1 + xp_of(x).tanh(0.5 * x))
        return self.y

    def backward(self, g):
        return g * (self.y * (1 - self.y))


class Relu(Function):
    """y = max(x, 0);   dy/dx = 1 where x > 0, else 0."""

    def forward(self, x):
        self.positive = x > 0
        return xp_of(x).maximum(x, 0)

    def backward(self, g):
        return g * self.positive


class Gelu(Function):
    """y = x Φ(x) (or its tanh approximation), 003.arch's feed-forward activation;   dy/dx = Φ(x) + x φ(x).
    Kernel: gelu / gelu_backward."""

    def forward(self, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        return kernels_for(x).gelu(x, approximate)

    def backward(self, g):
        x = self.inputs[0].data
        return Tensor(kernels_for(x).gelu_backward(x, g.data, self.approximate))


class Silu(Function):
    """y = SiLU(x) = x σ(x) (the "swish" of SwiGLU; beyond the articles, lesson 19);
    dy/dx = σ(x) (1 + x (1 - σ(x))).
    σ is computed as ½(1 + tanh(x/2)), as in Sigmoid, so no exp overflows."""

    def forward(self, x):
        self.s = 0.5 * (1 + xp_of(x).tanh(0.5 * x))
        return x * self.s

    def backward(self, g):
        x = self.inputs[0].data
        return g * (self.s * (1 + x * (1 - self.s)))


class Rotary(Function):
    """Rotary position embedding (RoPE, Su et al. 2021; beyond the articles, lesson 19) in the half-split layout of HF's
    Llama ("rotate_half"): for x (..., T, d), d even, the pair (x_i, x_{i+d/2}) of the token at
    position p is rotated by the angle p θ_i, with cos = cos(p θ_i), sin = sin(p θ_i) given (T, d/2):

        y_i       = x_i cos - x_{i+d/2} sin
        y_{i+d/2} = x_{i+d/2} cos + x_i sin           i.e. y = R x, R a rotation of each pair

    dx = Rᵀ g, the rotation by the opposite angle (the same kernel, with -sin):
        dx_i = g_i cos + g_{i+d/2} sin,   dx_{i+d/2} = g_{i+d/2} cos - g_i sin.
    One kernel each way (kernels' rope): both halves written in one pass, x read in any layout.
    """

    def forward(self, x, cos, sin):
        self.cos, self.sin = cos, sin
        return kernels_for(x).rope(x, cos, sin)

    def backward(self, g):
        return Tensor(kernels_for(g.data).rope(g.data, self.cos, -self.sin))


class Clamp(Function):
    """y = min(max(x, low), high);   dy/dx = 1 where low <= x <= high, else 0."""

    def forward(self, x, low=None, high=None):
        xp = xp_of(x)
        self.inside = (x >= (-xp.inf if low is None else low)) & (x <= (xp.inf if high is None else high))
        return xp.clip(x, low, high)

    def backward(self, g):
        return g * self.inside


class Where(Binary):
    """z = a where cond else b;   dz/da = cond,  dz/db = not cond."""

    def forward(self, a, b, cond):
        self.cond = cond
        return xp_of(a).where(cond, a, b)

    def backward(self, g):
        return g * self.cond, g * ~self.cond
