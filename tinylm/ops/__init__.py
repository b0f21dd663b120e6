"""The op set: one Function class per op, forward and backward side by side."""
from ..tensor import Tensor, data_of
from .elementwise import (Abs, Add, Clamp, Div, Exp, Gelu, Log, Mul, Neg, Pow, Relu, Rotary, Sigmoid, Silu, Sqrt,
                          Sub, Tanh, Where)
from .matmul import MatMul, matmul
from .linear import LinearOp
from .fused import (CausalAttentionOp, CausalSoftmaxOp, CrossEntropyOp, LayerNormOp, LogSoftmaxOp, RMSNormOp,
                    SoftmaxOp, SwiGLUOp)
from .reduce import Max, Sum, count
from .shape import (Cast, Cat, Copy, Expand, GetItem, Permute, Reshape, ScatterAdd, cat, normalize_index,
                    split, stack)


def where(cond, a, b):
    """a where cond is true, else b (element-wise, broadcasting); cond is a boolean tensor or array."""
    cond = data_of(cond)
    if getattr(cond, "dtype", None) is None or cond.dtype.kind != "b":
        raise TypeError(f"where: the condition must be a boolean tensor, got {type(cond).__name__} "
                        f"{getattr(cond, 'dtype', '')}".rstrip())
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where: at least one of the two value arguments must be a tensor")
    return Where.apply(a, b, cond=cond)
