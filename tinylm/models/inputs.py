"""What the language models share around their forward: the token ids they take, where their
inputs go, and the next-token loss."""
import numpy as np

from ..nn import functional as F
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


def next_token_loss(logits, targets):
    """L = -1/N Σ_{b,t} log softmax(logits[b, t])[targets[b, t]] (004.pretrain.loss) for logits
    (B, T, V) and targets (B, T), targets[b, t] the token that follows position t; a target of -1
    does not count (nor in N). None without targets."""
    if targets is None:
        return None
    B, T = logits.shape[:2]
    return F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1), ignore_index=-1)
