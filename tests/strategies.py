"""hypothesis strategies shared by every test: shapes, broadcasting pairs, values.

Values are drawn from a seeded NumPy generator rather than element by element, so they
are continuous (no ties at max, no x == 0 at relu's kink) and cheap to draw.
"""
import numpy as np
from hypothesis import strategies as st

MAX_SIDE = 5


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=MAX_SIDE):
    """Array shapes, e.g. (), (3,), (2, 1, 4)."""
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


@st.composite
def broadcastable_pairs(draw, min_dims=0, max_dims=3):
    """Two shapes that broadcast together under NumPy's rules (some sides set to 1 or dropped)."""
    out = draw(shapes(min_dims, max_dims))
    def squash(shape):
        shape = list(shape[draw(st.integers(0, len(shape))):])
        return tuple(1 if draw(st.booleans()) else s for s in shape)
    a, b = squash(out), squash(out)
    return (a, out) if draw(st.booleans()) else (out, b) if draw(st.booleans()) else (a, b)


@st.composite
def arrays(draw, shape, dtype=np.float64, low=-2.0, high=2.0):
    """A random array of `shape` from a generator seeded by hypothesis."""
    gen = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return gen.uniform(low, high, size=shape).astype(dtype)


@st.composite
def matmul_shapes(draw):
    """(a_shape, b_shape) for batched matmul with broadcasting batch axes; sides may be 1 or odd."""
    n, k, m = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    batch_a, batch_b = draw(broadcastable_pairs(0, 2))
    return batch_a + (n, k), batch_b + (k, m)


def row_shapes(max_row=70, long_rows=(257, 1025, 4099)):
    """Shapes (..., n) for the row kernels: n of 1..max_row (past a 16-float SIMD register) or
    one of long_rows (past a GPU block of 256 threads, and four rounds of 1024), under 0-2
    leading axes."""
    last = st.one_of(st.integers(1, max_row), st.sampled_from(long_rows))
    return st.tuples(shapes(0, 2, max_side=3), last).map(lambda s: s[0] + (s[1],))
