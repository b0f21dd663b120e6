"""Forward values against NumPy transcriptions of each formula, numeric stability, and the
shape/dtype errors each op raises, under every kernel set that loads here."""
import math

import numpy as np
import pytest

import tinylm
import tinylm.nn.functional as F


@pytest.fixture(autouse=True)
def each_kernel_set(kernel_set):
    """Every test here runs under every CPU kernel set (tests/conftest.py)."""
    return kernel_set


def T(a):
    return tinylm.Tensor(np.asarray(a, dtype=np.float64))


def test_softmax_matches_the_formula(rng):
    z = rng.standard_normal((3, 5))
    e = np.exp(z)
    np.testing.assert_allclose(F.softmax(T(z), -1).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(F.softmax(T(z), 0).numpy(), e / e.sum(0, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(T(z), 1).numpy(), np.log(e / e.sum(-1, keepdims=True)), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_is_finite_at_logits_of_1e4(dtype):
    z = tinylm.Tensor(np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4, -1e4, -1e4]], dtype=dtype),
                      requires_grad=True)
    p, logp = F.softmax(z), F.log_softmax(z)
    assert np.isfinite(p.numpy()).all() and np.isfinite(logp.numpy()).all()
    np.testing.assert_allclose(p.numpy()[0], [1 / (1 + math.exp(-1)), 0, 0, math.exp(-1) / (1 + math.exp(-1))],
                               rtol=1e-5)
    np.testing.assert_allclose(p.numpy()[1], 0.25, rtol=1e-6)
    loss = F.cross_entropy(z, np.array([1, 2]))
    assert np.isclose(loss.item(), (2e4 + math.log1p(math.exp(-1)) + math.log(4)) / 2, rtol=1e-5)
    (loss + p.sum() + logp.sum()).backward()
    assert np.isfinite(z.grad.numpy()).all()


def test_cross_entropy_reductions_and_ignore_index(rng):
    z, t = rng.standard_normal((4, 3)), np.array([0, 2, -100, 1])
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    per_row = np.array([-logp[0, 0], -logp[1, 2], 0.0, -logp[3, 1]])
    np.testing.assert_allclose(F.cross_entropy(T(z), t, reduction="none").numpy(), per_row, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(T(z), t, reduction="sum").item(), per_row.sum(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(T(z), t).item(), per_row.sum() / 3, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(T(z), np.array([5, 5, 5, 5]), ignore_index=5).item(), np.nan)
    np.testing.assert_allclose(F.cross_entropy(T(z), tinylm.tensor([0, 2, 1, 1])).item(),
                               -(logp[0, 0] + logp[1, 2] + logp[2, 1] + logp[3, 1]) / 4, rtol=1e-12)


def test_layer_norm_matches_the_formula(rng):
    x, w, b = rng.standard_normal((2, 3, 6)), rng.standard_normal(6), rng.standard_normal(6)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mu) / np.sqrt(var + 1e-5) * w + b
    np.testing.assert_allclose(F.layer_norm(T(x), 6, T(w), T(b)).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_gelu_exact_and_tanh(rng):
    x = rng.standard_normal(50) * 3
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(T(x)).numpy(), exact, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F.gelu(T(x), "tanh").numpy(), approx, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="approximate must be"):
        F.gelu(T(x), "fast")


def test_elementwise_values(rng):
    x = rng.uniform(0.1, 2, (3, 4))
    for got, want in [(T(x).exp(), np.exp(x)), (T(x).log(), np.log(x)), (T(x).sqrt(), np.sqrt(x)),
                      (T(-x).abs(), x), (T(x).tanh(), np.tanh(x)), (T(x - 1).relu(), np.maximum(x - 1, 0)),
                      (T(x).sigmoid(), 1 / (1 + np.exp(-x))), (T(x).clamp(0.5, 1.5), np.clip(x, 0.5, 1.5)),
                      (T(x) ** 0.5, x ** 0.5), (1 / T(x), 1 / x)]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert np.isfinite(T([-1000.0, 1000.0]).sigmoid().numpy()).all()


def test_reductions_values(rng):
    x = rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(T(x).sum((0, 2)).numpy(), x.sum((0, 2)))
    np.testing.assert_allclose(T(x).mean(1, keepdim=True).numpy(), x.mean(1, keepdims=True))
    np.testing.assert_allclose(T(x).var(-1).numpy(), x.var(-1, ddof=1))
    np.testing.assert_allclose(T(x).var(correction=0).numpy(), x.var())
    values, indices = T(x).max(1)
    np.testing.assert_allclose(values.numpy(), x.max(1))
    np.testing.assert_array_equal(indices.numpy(), x.argmax(1))
    assert T(x).min().item() == x.min()


def test_max_splits_the_gradient_between_ties():
    x = tinylm.tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5, 0.0]


def test_indexing_matches_numpy(rng):
    x = rng.standard_normal((4, 5))
    for index in [1, (slice(1, 3), 2), (Ellipsis, None, 1), np.array([3, 0, 3]), x > 0,
                  (np.array([0, 1]), np.array([4, 4]))]:
        np.testing.assert_array_equal(T(x)[index].numpy(), x[index])


def test_cat_stack_split_values(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 1))
    np.testing.assert_array_equal(tinylm.cat([T(a), T(b)], 1).numpy(), np.concatenate([a, b], 1))
    np.testing.assert_array_equal(tinylm.stack([T(a), T(a)], 1).numpy(), np.stack([a, a], 1))
    assert [p.shape for p in T(a).split(2, dim=1)] == [(2, 2), (2, 1)]
    assert [p.shape for p in T(a).split([1, 2], dim=1)] == [(2, 1), (2, 2)]
    assert [p.shape for p in T(a).chunk(3, dim=1)] == [(2, 1)] * 3


def test_matmul_values_batched(rng):
    a, b = rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2))
    np.testing.assert_allclose((T(a) @ T(b)).numpy(), a @ b, rtol=1e-12)
    v = rng.standard_normal(4)
    np.testing.assert_allclose((T(v) @ T(v)).numpy(), v @ v)
    np.testing.assert_allclose((T(a) @ T(v)).numpy(), a @ v, rtol=1e-12)


# --- errors -------------------------------------------------------------------------------

def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) do not match"):
        tinylm.zeros(2, 3) @ tinylm.zeros(4, 5)
    with pytest.raises(ValueError, match=r"matmul: batch axes of shapes \(2, 3, 4\) and \(3, 4, 1\)"):
        tinylm.zeros(2, 3, 4) @ tinylm.zeros(3, 4, 1)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        tinylm.zeros(()) @ tinylm.zeros(3)


def test_broadcast_mismatch_names_both_shapes_and_the_op():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        tinylm.zeros(2, 3) + tinylm.zeros(4)
    with pytest.raises(ValueError, match=r"mul: shapes \(2,\) and \(3,\)"):
        tinylm.zeros(2) * np.zeros(3)


def test_cat_and_stack_mismatch():
    with pytest.raises(ValueError, match=r"cat: tensor 1 has shape \(2, 4\) but tensor 0 has shape \(3, 4\)"):
        tinylm.cat([tinylm.zeros(3, 4), tinylm.zeros(2, 4)], dim=1)
    with pytest.raises(ValueError, match="same shape"):
        tinylm.stack([tinylm.zeros(3), tinylm.zeros(2)])
    with pytest.raises(ValueError, match="non-empty"):
        tinylm.cat([])


def test_shape_op_errors():
    with pytest.raises(ValueError, match=r"reshape: cannot view shape \(2, 3\) \(6 elements\) as \(4,\)"):
        tinylm.zeros(2, 3).reshape(4)
    with pytest.raises(ValueError, match="permute"):
        tinylm.zeros(2, 3).permute(0, 0)
    with pytest.raises(ValueError, match=r"split: sizes \[1, 1\] add up to 2"):
        tinylm.zeros(3).split([1, 1])
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        tinylm.zeros(2, 3).sum(2)


def test_loss_and_lookup_errors():
    z = tinylm.zeros(4, 3)
    with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
        F.cross_entropy(z, np.array([0, 1, 3, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(z, np.zeros(4))
    with pytest.raises(ValueError, match=r"expected target shape \(4,\)"):
        F.cross_entropy(z, np.zeros(3, dtype=int))
    with pytest.raises(IndexError, match="id 9 is out of range for a table of 5 rows"):
        F.embedding(np.array([1, 9]), tinylm.zeros(5, 2))
    with pytest.raises(ValueError, match="layer_norm: input of shape"):
        F.layer_norm(tinylm.zeros(2, 3), 4)
    with pytest.raises(TypeError, match="boolean"):
        tinylm.where(tinylm.zeros(2), 1.0, tinylm.zeros(2))
    with pytest.raises(ValueError, match="dropout: p must be"):
        F.dropout(tinylm.zeros(2), 1.5)


def test_causal_softmax_masks_the_future(rng):
    s = rng.standard_normal((2, 3, 5))
    y = tinylm.ops.CausalSoftmaxOp.apply(T(s), scale=0.5).numpy()
    for i in range(3):
        visible = 5 - 3 + i + 1
        e = np.exp(0.5 * s[:, i, :visible])
        np.testing.assert_allclose(y[:, i, :visible], e / e.sum(-1, keepdims=True), rtol=1e-12)
        assert (y[:, i, visible:] == 0).all()
