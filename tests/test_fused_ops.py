"""The fused ops of a GPT step against the unfused ops they replace, in float64, under every
kernel set that loads here: the same values, the same gradients (autograd through the
unfused ops), and gradients against central differences (tinylm.check.gradcheck).

    LinearOp            x Wᵀ + b  and  GELU(x Wᵀ + b)   vs  x @ W.T + b, F.gelu
    CausalAttentionOp   scaled_dot_product_attention(q, k, v, is_causal=True)   vs  F.attention's
                        scores, mask, softmax and product (which keep the T×T weights); with
                        enable_gqa, fewer key/value heads broadcast over their query heads
    SwiGLUOp            F.swiglu(gate, up)   vs  F.silu(gate) * up
    Rotary              RotaryEmbedding's kernel   vs  the rotated halves concatenated
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylm
import tinylm.nn.functional as F
from strategies import arrays
from tinylm.check import gradcheck


@pytest.fixture(autouse=True)
def each_kernel_set(kernel_set):
    return kernel_set


def leaves(*arrays_):
    return [tinylm.Tensor(a, requires_grad=True) for a in arrays_]


def assert_same_values_and_gradients(fused, unfused, arrays_, seed=0, check=True):
    """fused(*tensors) equals unfused(*tensors), and so do the gradients of a random projection
    of the output with respect to every input; fused also passes gradcheck (check=True)."""
    a, b = leaves(*arrays_), leaves(*arrays_)
    y_fused, y_plain = fused(*a), unfused(*b)
    np.testing.assert_allclose(y_fused.data, y_plain.data, rtol=1e-12, atol=1e-12)
    weights = np.random.default_rng(seed).standard_normal(y_plain.shape)
    (y_fused * tinylm.Tensor(weights)).sum().backward()
    (y_plain * tinylm.Tensor(weights)).sum().backward()
    for got, want in zip(a, b):
        np.testing.assert_allclose(got.grad.data, want.grad.data, rtol=1e-10, atol=1e-12)
    if check:
        report = gradcheck(fused, leaves(*arrays_))
        assert report.passed, "\n" + report.table()


@st.composite
def linear_arrays(draw, bias=True):
    """x (..., in), W (out, in), and b (out,) with bias."""
    lead = draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    n_in, n_out = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    out = [draw(arrays(tuple(lead) + (n_in,))), draw(arrays((n_out, n_in)))]
    return out + [draw(arrays((n_out,)))] if bias else out


@given(data=st.data(), bias=st.booleans())
def test_linear_is_x_wt_plus_b(data, bias):
    arrays_ = data.draw(linear_arrays(bias))
    unfused = (lambda x, w, b: x @ w.T + b) if bias else (lambda x, w: x @ w.T)
    assert_same_values_and_gradients(F.linear, unfused, arrays_)


@given(data=st.data(), bias=st.booleans(), approximate=st.sampled_from(["none", "tanh"]))
def test_linear_gelu_is_gelu_of_linear(data, bias, approximate):
    arrays_ = data.draw(linear_arrays(bias))

    def fused(*t):
        return F.linear_gelu(*t, approximate=approximate)

    def unfused(x, w, b=None):
        return F.gelu(x @ w.T + (b if b is not None else 0.0), approximate=approximate)

    assert_same_values_and_gradients(fused, unfused, arrays_)


def test_linear_weight_gradient_is_contiguous_and_only_what_is_asked(rng):
    """dW = Gᵀ X comes out in W's own layout (no transposed view for the optimizer); inputs
    that need no gradient get none."""
    x, w, b = rng.standard_normal((3, 5, 4)), rng.standard_normal((6, 4)), rng.standard_normal(6)
    wt, bt = tinylm.Tensor(w, requires_grad=True), tinylm.Tensor(b)
    xt = tinylm.Tensor(x)
    F.linear_gelu(xt, wt, bt).sum().backward()
    assert wt.grad.data.flags.c_contiguous and xt.grad is None and bt.grad is None


def test_linear_refuses_shapes_that_do_not_fit(rng):
    x, w = tinylm.Tensor(rng.standard_normal((2, 3))), tinylm.Tensor(rng.standard_normal((4, 5)))
    with pytest.raises(ValueError, match="do not fit"):
        F.linear(x, w)
    with pytest.raises(ValueError, match="bias of shape"):
        F.linear(x, tinylm.Tensor(rng.standard_normal((4, 3))), tinylm.Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="approximate"):
        F.linear_gelu(x, tinylm.Tensor(rng.standard_normal((4, 3))), approximate="erf")


@st.composite
def attention_arrays(draw):
    """q, k (..., T, d) and v (..., T, dv)."""
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    t, d, dv = draw(st.integers(1, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return [draw(arrays(lead + (t, d))), draw(arrays(lead + (t, d))), draw(arrays(lead + (t, dv)))]


def sdpa(scale=None):
    def fused(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    return fused


def attention(scale=None):
    def unfused(q, k, v):
        return F.attention(q, k, v, is_causal=True, scale=scale)[0]
    return unfused


@given(data=st.data(), scale=st.sampled_from([None, 0.7]))
def test_causal_attention_is_the_unfused_attention(data, scale):
    assert_same_values_and_gradients(sdpa(scale), attention(scale), data.draw(attention_arrays()))


def test_causal_attention_past_one_block(rng):
    """T = 300: three blocks of queries and keys in the Numba set (the online softmax rescales)."""
    arrays_ = [rng.standard_normal((2, 300, 4)) for _ in range(3)]
    assert_same_values_and_gradients(sdpa(), attention(), arrays_, check=False)


def test_only_causal_self_attention_without_dropout_or_mask_is_fused(rng):
    def op(q, k, **kwargs):
        return type(F.scaled_dot_product_attention(q, k, k, **kwargs).grad_fn).__name__

    q = tinylm.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert op(q, tinylm.Tensor(rng.standard_normal((2, 3, 4))), is_causal=True) == "CausalAttentionOp"
    longer = tinylm.Tensor(rng.standard_normal((2, 5, 4)))  # a KV cache: 5 keys for 3 queries
    assert op(q, longer, is_causal=True) != "CausalAttentionOp"
    assert op(q, q, attn_mask=np.tril(np.ones((3, 3), bool))) != "CausalAttentionOp"
    assert op(q, q, is_causal=True, dropout_p=0.5) != "CausalAttentionOp"


@st.composite
def grouped_attention_arrays(draw):
    """q (..., H·g, T, d), k (..., H, T, d), v (..., H, T, dv): g query heads per key/value head."""
    lead = tuple(draw(st.lists(st.integers(1, 2), min_size=0, max_size=1)))
    kv, group = draw(st.integers(1, 3)), draw(st.integers(2, 3))
    t, d, dv = draw(st.integers(1, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return [draw(arrays(lead + (kv * group, t, d))), draw(arrays(lead + (kv, t, d))), draw(arrays(lead + (kv, t, dv)))]


@given(data=st.data())
def test_grouped_query_causal_attention_is_the_unfused_attention(data):
    """enable_gqa: the key/value heads are broadcast views over their groups of query heads (no
    copy), the fused op runs on them, and autograd sums their gradients over each group."""
    def fused(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

    def unfused(q, k, v):
        return F.attention(q, k, v, is_causal=True, enable_gqa=True)[0]

    assert_same_values_and_gradients(fused, unfused, data.draw(grouped_attention_arrays()))


def test_grouped_query_causal_attention_is_fused(rng):
    q = tinylm.Tensor(rng.standard_normal((2, 4, 3, 5)), requires_grad=True)
    k = tinylm.Tensor(rng.standard_normal((2, 2, 3, 5)), requires_grad=True)
    y = F.scaled_dot_product_attention(q, k, k, is_causal=True, enable_gqa=True)
    assert type(y.grad_fn.inputs[0].grad_fn).__name__ == "CausalAttentionOp"  # under the heads' reshape
    masked = F.scaled_dot_product_attention(q, k, k, attn_mask=np.tril(np.ones((3, 3), bool)), enable_gqa=True)
    assert "CausalAttentionOp" not in type(masked.grad_fn.inputs[0].grad_fn).__name__


@given(data=st.data())
def test_swiglu_is_silu_times_up(data):
    shape = tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    gate = data.draw(arrays(shape, low=-6.0, high=6.0))
    assert_same_values_and_gradients(F.swiglu, lambda a, b: F.silu(a) * b, [gate, data.draw(arrays(shape))])


def test_swiglu_refuses_halves_of_two_shapes():
    with pytest.raises(ValueError, match=r"swiglu: gate \(2, 3\) and up \(2, 4\) must have one shape"):
        F.swiglu(tinylm.ones(2, 3), tinylm.ones(2, 4))


@given(data=st.data(), offset=st.integers(0, 40))
def test_rotary_kernel_is_the_rotated_halves(data, offset):
    """The kernel, on a transposed view as attention hands it over, against the formula written
    with slices and a concatenation (what the op computed before it had a kernel)."""
    from tinylm.nn import RotaryEmbedding

    lead, t, half = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 7)), data.draw(st.integers(1, 4))
    rotary = RotaryEmbedding(2 * half)

    def halves(x):
        cos, sin = (tinylm.Tensor(a) for a in rotary.cos_sin(offset, x.shape[-2], x))
        x1, x2 = x[..., :half], x[..., half:]
        return F.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    x = data.draw(arrays((2, t, lead, 2 * half)))
    assert_same_values_and_gradients(lambda a: rotary(a.transpose(1, 2), offset=offset),
                                     lambda a: halves(a.transpose(1, 2)), [x])
