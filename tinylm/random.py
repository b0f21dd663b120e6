"""tinylm's random numbers: one NumPy generator, seeded by manual_seed.

Numbers are drawn on the CPU and copied to the tensor's device, so one seed gives the
same weights, dropout masks and samples on every device.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed tinylm's generator (weights, randn, dropout masks, sampling)."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))


def generator():
    """The generator in use (a numpy.random.Generator)."""
    return _generator


def get_state():
    """The generator's state, for checkpoints (restore with set_state)."""
    return _generator.bit_generator.state


def set_state(state):
    _generator.bit_generator.state = state
