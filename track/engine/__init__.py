"""Your engine: a Tensor with reverse-mode autograd, kernels, an optimizer, an LSTM, attention
and a small GPT — the pieces of tinylm, written by you, step by step.

    tensor.py     Tensor, Function, no_grad; unbroadcast (step 3); topological_order, backward (step 4)
    ops.py        elementwise ops (step 1); matrix and shape ops (step 2); softmax (step 5)
    kernels.py    a softmax kernel (step 5) and a tiled matmul kernel (step 6) in Numba
    optim.py      Adam (step 7)
    lstm.py       an LSTM layer whose backward is back-propagation through time (step 8)
    attention.py  causal scaled dot-product attention with its backward by hand (step 9)
    gpt.py        a small GPT on all of the above: cross-entropy and the training loop (step 10)

Check a step with `tinylm track check DIR --step N` (DIR holds this folder), or every step so
far with `tinylm track check DIR`.
"""
from .tensor import Function, Tensor, backward, no_grad, topological_order, unbroadcast

__all__ = ["Function", "Tensor", "backward", "no_grad", "topological_order", "unbroadcast"]
