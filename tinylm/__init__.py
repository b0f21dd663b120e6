"""tinylm: a from-scratch, readable deep-learning engine for language models."""
from . import functional
from .autograd import is_grad_enabled, no_grad, set_grad_enabled
from .backend import get_kernels, set_kernels
from .factories import arange, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .functional import cat, split, stack, where
from .random import manual_seed
from .tensor import (Tensor, bool_, float16, float32, float64, get_default_dtype, int32, int64,
                     set_default_dtype)

__version__ = "0.1.0"
