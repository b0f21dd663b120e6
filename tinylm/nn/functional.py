"""tinylm.nn.functional: PyTorch's torch.nn.functional names over tinylm's ops."""
import math

from ..functional import (cat, cross_entropy, dropout, embedding, gelu, layer_norm, log_softmax, relu,
                          sigmoid, softmax, split, stack, tanh, where)

__all__ = ["cat", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "log_softmax", "relu",
           "sigmoid", "softmax", "split", "stack", "tanh", "where", "scaled_dot_product_attention"]
