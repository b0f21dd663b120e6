"""Checking the token ids a language model is given."""
import numpy as np

from ..tensor import Tensor, data_of


def token_ids(idx, vocab_size, model):
    """idx as a (batch, time) integer array of ids below vocab_size, or a one-line error."""
    ids = idx.data if isinstance(idx, Tensor) else idx
    if not hasattr(ids, "dtype"):
        ids = np.asarray(ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"{model} expected token ids as an integer array (batch, time), got shape "
                         f"{tuple(ids.shape)} dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"{model}: token ids must be in 0..{vocab_size - 1}, got {int(ids.min())}..{int(ids.max())}")
    return ids


def on_model_device(x, like):
    """x (token ids, token types, a mask or labels: a nested list, an array or a Tensor) as an
    array on the device of `like`, a tensor of the model (a parameter, its logits): a model's
    inputs go where the model is. NumPy ids are copied to the GPU; CuPy ids given to a model on
    the CPU are an error (CuPy's), not a silent copy back."""
    return like.xp.asarray(data_of(x))
