"""The "numba" kernel set: the hot ops as Numba kernels for the CPU.

The functions, signatures and results are those of tinylm.kernels.reference (read that
first: it is the specification, in plain NumPy, with the contract every set fulfils). Each
public function is a thin NumPy wrapper: it checks the dtype, lays the inputs out as
C-contiguous arrays of shape (rows, last axis), allocates the outputs and calls an @njit
kernel that fills them.

One file per family of kernels:

    matrix_product.py  matmul (register tiles, packed Bᵀ, cache blocks)
    softmax_family.py  softmax, log_softmax, causal_softmax and their backwards
    attention.py       causal_attention (flash attention: no T×T weights) and its backward
    normalization.py   layer_norm, rms_norm and their backwards
    activations.py     gelu, bias_gelu (a Linear's bias, then GELU), swiglu (SiLU(gate) ⊙ up)
                       and their backwards
    rotary.py          rope (rotary position embedding), its own backward
    losses.py          cross_entropy and its backward
    optimizers.py      adam_step (Adam and AdamW)
    machinery.py       how they are compiled: the fast-math options, one core or all of
                       them, a vectorisable e^x and Φ(x), the layout every wrapper makes
"""
from .activations import bias_gelu, bias_gelu_backward, gelu, gelu_backward, swiglu, swiglu_backward
from .attention import causal_attention, causal_attention_backward
from .losses import cross_entropy, cross_entropy_backward
from .matrix_product import matmul
from .normalization import layer_norm, layer_norm_backward, rms_norm, rms_norm_backward
from .optimizers import adam_step
from .rotary import rope
from .softmax_family import (causal_softmax, log_softmax, log_softmax_backward, softmax,
                             softmax_backward)

__all__ = ["matmul", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward", "causal_softmax",
           "causal_attention", "causal_attention_backward",
           "layer_norm", "layer_norm_backward", "rms_norm", "rms_norm_backward", "gelu", "gelu_backward",
           "bias_gelu", "bias_gelu_backward", "swiglu", "swiglu_backward", "rope", "cross_entropy",
           "cross_entropy_backward", "adam_step"]
