"""tinylm: a from-scratch, readable deep-learning engine for language models.

``import tinylm`` makes the subpackages usable as attributes, as ``import torch`` does:
``tinylm.nn`` (with ``tinylm.nn.functional``), ``tinylm.optim`` and ``tinylm.check``.
"""
from .autograd import is_grad_enabled, no_grad, set_grad_enabled
from .backend import get_kernels, set_kernels
from .factories import arange, full, ones, ones_like, rand, randn, tensor, zeros, zeros_like
from .random import manual_seed
from .tensor import (Tensor, bool_, float16, float32, float64, get_default_dtype, int32, int64,
                     set_default_dtype)
from . import nn, optim, check  # noqa: E402  (after Tensor: they build on it)
from .nn.functional import cat, split, stack, where

__version__ = "0.1.0"
