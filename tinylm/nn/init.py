"""Weight initialisation, in place, from tinylm's seeded generator (PyTorch's schemes)."""
import math

import numpy as np

from ..backend import to_device
from ..random import generator


def _fill(t, values):
    t.data = to_device(values.astype(t.dtype), t.device)
    return t


def uniform_(t, a=0.0, b=1.0):
    """Values drawn from U(a, b)."""
    return _fill(t, generator().uniform(a, b, t.shape))


def normal_(t, mean=0.0, std=1.0):
    """Values drawn from N(mean, std²)."""
    return _fill(t, generator().normal(mean, std, t.shape))


def zeros_(t):
    return _fill(t, np.zeros(t.shape))


def ones_(t):
    return _fill(t, np.ones(t.shape))


def fan_in_out(t):
    """(fan_in, fan_out) of a weight of shape (out, in, ...)."""
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def xavier_uniform_(t, gain=1.0):
    """U(-a, a) with a = gain √(6 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_in, fan_out = fan_in_out(t)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -a, a)


def uniform_fan_in_(t, fan_in):
    """U(-1/√fan_in, 1/√fan_in): PyTorch's default for Linear (weight and bias) and the RNNs."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform_(t, -bound, bound)
