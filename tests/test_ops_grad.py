"""Every op's gradient against central differences in float64, on hypothesis-drawn shapes
(broadcasting included), under every kernel set that loads here."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylm
import tinylm.nn.functional as F
from tinylm.check import gradcheck
from strategies import arrays, broadcastable_pairs, matmul_shapes, shapes

@pytest.fixture(autouse=True)
def each_kernel_set(kernel_set):
    """Every test here runs under every CPU kernel set (tests/conftest.py)."""
    return kernel_set


def leaf(array):
    return tinylm.Tensor(array, requires_grad=True)


def assert_grads(fn, *arrays):
    report = gradcheck(fn, [leaf(a) for a in arrays])
    assert report.passed, "\n" + report.table()


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "where": lambda a, b: tinylm.where(a > 0, a, b),
}


@pytest.mark.parametrize("op", BINARY)
@given(data=st.data())
def test_binary_ops_broadcast(op, data):
    sa, sb = data.draw(broadcastable_pairs())
    a = data.draw(arrays(sa, low=0.5, high=2.0) if op in ("pow",) else arrays(sa))
    b = data.draw(arrays(sb, low=0.5, high=2.0) if op in ("div", "pow") else arrays(sb))
    assert_grads(BINARY[op], a, b)


UNARY = {
    "neg": (lambda x: -x, -2, 2),
    "exp": (lambda x: x.exp(), -2, 2),
    "log": (lambda x: x.log(), 0.2, 3),
    "sqrt": (lambda x: x.sqrt(), 0.2, 3),
    "abs": (lambda x: x.abs(), -2, 2),
    "tanh": (lambda x: x.tanh(), -2, 2),
    "sigmoid": (lambda x: x.sigmoid(), -4, 4),
    "relu": (lambda x: x.relu(), -2, 2),
    "gelu": (lambda x: F.gelu(x), -3, 3),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), -3, 3),
    "silu": (lambda x: F.silu(x), -4, 4),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), -2, 2),
    "pow_scalar": (lambda x: x ** 3, -2, 2),
    "rpow": (lambda x: 2.0 ** x, -2, 2),
    "rsub_rdiv": (lambda x: 1.0 - 2.0 / (x * x + 1), -2, 2),
    "masked_fill": (lambda x: x.masked_fill(x < 0, 0.25), -2, 2),
}


@pytest.mark.parametrize("op", UNARY)
@given(data=st.data())
def test_unary_ops(op, data):
    fn, low, high = UNARY[op]
    x = data.draw(arrays(data.draw(shapes()), low=low, high=high))
    if op in ("abs", "relu", "clamp", "masked_fill"):  # keep away from the kinks
        x = np.where(np.abs(x) < 1e-3, 0.5, x)
        x = np.where(np.abs(x - 0.7) < 1e-3, 0.5, np.where(np.abs(x + 0.5) < 1e-3, 0.1, x))
    assert_grads(fn, x)


def dims(ndim):
    """A dim argument for a tensor of `ndim` axes: None, an axis (maybe negative) or a tuple."""
    if ndim == 0:
        return st.just(None)
    axis = st.integers(-ndim, ndim - 1)
    return st.one_of(st.none(), axis, st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                               unique=True).map(tuple))


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "var", "std"])
@given(data=st.data())
def test_reductions(op, data):
    shape = data.draw(shapes(1, 3, min_side=2 if op in ("var", "std") else 1))  # var of one value: 0/0
    x = data.draw(arrays(shape))
    dim, keepdim = data.draw(dims(len(shape))), data.draw(st.booleans())
    if op in ("max", "min"):  # like torch.max: all axes, or one axis giving (values, indices)
        dim = dim[0] if isinstance(dim, tuple) else dim
        fn = (lambda t: getattr(t, op)()) if dim is None else (lambda t: getattr(t, op)(dim, keepdim).values)
    else:
        fn = lambda t: getattr(t, op)(dim, keepdim)  # noqa: E731
    assert_grads(fn, x)


@given(data=st.data())
def test_matmul_batched_broadcasting(data):
    sa, sb = data.draw(matmul_shapes())
    assert_grads(lambda a, b: a @ b, data.draw(arrays(sa)), data.draw(arrays(sb)))


@pytest.mark.parametrize("shapes_", [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((4, 2, 3), (3,))])
def test_matmul_vectors(shapes_, rng):
    a, b = (rng.standard_normal(s) for s in shapes_)
    assert_grads(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@given(data=st.data())
def test_softmax_family(op, data):
    shape = data.draw(shapes(1, 3))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(arrays(shape, low=-3, high=3))
    assert_grads(lambda t: getattr(F, op)(t, dim), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(data=st.data())
def test_cross_entropy(reduction, data):
    n, c = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))
    target = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    if data.draw(st.booleans()) and n > 1:
        target[0] = -100  # an ignored row
    logits = data.draw(arrays((n, c), low=-3, high=3))
    assert_grads(lambda z: F.cross_entropy(z, target, reduction=reduction), logits)


def test_cross_entropy_spatial_and_single(rng):
    assert_grads(lambda z: F.cross_entropy(z, np.array([[0, 2], [1, 1]])), rng.standard_normal((2, 3, 2)))
    assert_grads(lambda z: F.cross_entropy(z, np.array(1)), rng.standard_normal(4))


@given(data=st.data())
def test_layer_norm(data):
    shape = data.draw(shapes(1, 3, min_side=2))
    x = data.draw(arrays(shape))
    w, b = data.draw(arrays(shape[-1:])), data.draw(arrays(shape[-1:]))
    assert_grads(lambda t, w_, b_: F.layer_norm(t, shape[-1], w_, b_), x, w, b)
    assert_grads(lambda t: F.layer_norm(t, shape[-1]), x)


def test_layer_norm_over_two_axes_and_weight_only(rng):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))
    assert_grads(lambda t, w_: F.layer_norm(t, (3, 4), w_), x, w)


@given(data=st.data())
def test_rms_norm(data):
    shape = data.draw(shapes(1, 3, min_side=1))
    x, w = data.draw(arrays(shape)), data.draw(arrays(shape[-1:]))
    assert_grads(lambda t, w_: F.rms_norm(t, shape[-1], w_, eps=1e-6), x, w)
    assert_grads(lambda t: F.rms_norm(t, shape[-1]), x)


def test_rms_norm_over_two_axes(rng):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))
    assert_grads(lambda t, w_: F.rms_norm(t, (3, 4), w_), x, w)


@given(data=st.data())
def test_swiglu(data):
    shape = data.draw(shapes(1, 3))
    assert_grads(F.swiglu, data.draw(arrays(shape, low=-4, high=4)), data.draw(arrays(shape)))


@given(data=st.data(), half=st.integers(1, 4), offset=st.integers(0, 50))
def test_rotary(data, half, offset):
    from tinylm.nn import RotaryEmbedding

    x = data.draw(arrays(data.draw(shapes(0, 2, max_side=3)) + (data.draw(st.integers(1, 5)), 2 * half)))
    assert_grads(lambda t: RotaryEmbedding(2 * half)(t, offset=offset), x)


@given(data=st.data())
def test_reshape_permute_expand(data):
    shape = data.draw(shapes(1, 3))
    x = data.draw(arrays(shape))
    order = data.draw(st.permutations(range(len(shape))))
    assert_grads(lambda t: t.permute(order).reshape(-1) * np.arange(x.size), x)
    assert_grads(lambda t: (t.unsqueeze(0).expand((3,) + shape) * np.arange(3).reshape((3,) + (1,) * len(shape))), x)
    assert_grads(lambda t: t.transpose(0, -1).flatten() ** 2, x)


INDEXES = {
    "int": lambda t: t[1],
    "slice": lambda t: t[1:, ::2],
    "negative_step_free": lambda t: t[-1, 1:3],
    "int_array_repeats": lambda t: t[np.array([0, 2, 0, 0])],
    "two_arrays": lambda t: t[np.array([0, 1, 2]), np.array([3, 3, 0])],
    "bool_mask": lambda t: t[t.data > 0],
    "ellipsis_none": lambda t: t[..., None, 2],
    "tensor_index": lambda t: t[tinylm.tensor([2, 1, 2])],
    "mixed": lambda t: t[1:, np.array([0, 0, 3])],
}


@pytest.mark.parametrize("kind", INDEXES)
def test_indexing(kind, rng):
    assert_grads(INDEXES[kind], rng.standard_normal((3, 4)))


@given(data=st.data())
def test_gradient_of_rows_picked_by_one_integer_array(data):
    """An embedding's gradient (rows of the table picked by ids of any shape, repeated and negative
    ids among them) is np.add.at's, computed by sorting the rows (ops.shape._add_rows)."""
    rows = data.draw(st.integers(1, 6))
    ids = np.array(data.draw(st.lists(st.integers(-rows, rows - 1), min_size=0, max_size=12)), dtype=np.int64)
    ids = ids.reshape((2, -1)) if ids.size % 2 == 0 and data.draw(st.booleans()) else ids
    table = leaf(data.draw(arrays((rows, 3))))
    g = data.draw(arrays(ids.shape + (3,)))
    table[ids].backward(tinylm.Tensor(g))
    want = np.zeros((rows, 3))
    np.add.at(want, ids, g)
    np.testing.assert_allclose(table.grad.numpy(), want, rtol=1e-12, atol=1e-12)


def test_embedding_scatter_adds_repeated_ids(rng):
    ids = np.array([[0, 2, 2], [4, 0, 2]])
    assert_grads(lambda w: F.embedding(ids, w), rng.standard_normal((5, 3)))


@given(data=st.data())
def test_cat_stack_split(data):
    shape = data.draw(shapes(1, 3))
    dim = data.draw(st.integers(0, len(shape) - 1))
    other = shape[:dim] + (data.draw(st.integers(1, 4)),) + shape[dim + 1:]
    a, b, c = data.draw(arrays(shape)), data.draw(arrays(other)), data.draw(arrays(shape))
    weights = np.arange(1, a.size + b.size + 1, dtype=float)
    assert_grads(lambda x, y: tinylm.cat([x, y], dim).reshape(-1) * weights, a, b)
    assert_grads(lambda x, z: (tinylm.stack([x, z], dim) * 2.0).sum() + (tinylm.stack([z, x], -1) ** 2).sum(), a, c)
    pieces = lambda x: tinylm.cat([p * (k + 1.0) for k, p in enumerate(x.split(2, dim))], dim)  # noqa: E731
    assert_grads(pieces, a)


def test_dropout_gradient_uses_the_same_mask(rng):
    x = leaf(rng.standard_normal((50, 8)))
    tinylm.manual_seed(3)
    y = F.dropout(x, 0.3)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.numpy() / np.where(x.numpy() == 0, 1, x.numpy()))
    kept = y.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy()[kept], 1 / 0.7)
    assert (x.grad.numpy()[~kept] == 0).all() and 0.2 < (~kept).mean() < 0.4


def test_composite_chain_through_many_ops(rng):
    def fn(x, w, b):
        h = F.layer_norm(x @ w + b, 4).tanh()
        return F.cross_entropy(h.reshape(-1, 4), np.array([0, 3, 1, 2, 2, 1])) + F.gelu(h).var()
    assert_grads(fn, rng.standard_normal((2, 3, 5)), rng.standard_normal((5, 4)), rng.standard_normal(4))


@given(data=st.data())
def test_causal_softmax(data):
    t = data.draw(st.integers(1, 5))
    s = t + data.draw(st.integers(0, 3))  # S > T: queries at the end of a longer (cached) sequence
    x = data.draw(arrays(data.draw(shapes(0, 2)) + (t, s)))
    assert_grads(lambda z: tinylm.ops.CausalSoftmaxOp.apply(z, scale=0.7), x)
