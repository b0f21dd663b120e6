"""Shared test set-up: the hypothesis profile, float64 for gradient checks, kernel sets."""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# deadline=None: a first Numba call compiles for seconds. In CI, derandomize so a red run
# is reproducible.
settings.register_profile(
    "tinylm",
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("tinylm")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small, repetitive text file for training tests (cats, dogs and numbers, 300 lines): its path."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("".join(f"the cat sat on mat {i % 7}. a dog ran to the log {i % 5}!\n" for i in range(300)),
                    encoding="utf-8")
    return str(path)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def cpu_kernel_sets():
    """Every kernel set that can serve the CPU here ('numpy' always; 'numba' where it loads)."""
    import tinylm

    names = []
    for name in ("numpy", "numba"):
        try:
            tinylm.set_kernels(name)
            names.append(name)
        except RuntimeError:
            pass
    tinylm.set_kernels(None)
    return names


@pytest.fixture(params=cpu_kernel_sets())
def kernel_set(request):
    """Run a test once per kernel set (the MiniTorch test matrix): use it with autouse in a module."""
    import tinylm

    tinylm.set_kernels(request.param)
    yield request.param
    tinylm.set_kernels(None)


@pytest.fixture
def float64_default():
    """Layers built in a test get float64 parameters (gradients are checked in float64), so
    float64 state dicts load without rounding."""
    import tinylm

    before = tinylm.get_default_dtype()
    tinylm.set_default_dtype(np.float64)
    yield
    tinylm.set_default_dtype(before)
