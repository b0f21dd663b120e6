"""The blocks of today's LLMs (RMSNorm, SiLU, SwiGLU, RoPE, grouped-query attention): forward
against a NumPy transcription of the formula, gradients three ways (autograd, central
differences, the hand-derived formula of tinylm.check.llm_formulas), PyTorch parity where
PyTorch has the op (torch.nn.RMSNorm, F.silu, scaled_dot_product_attention(enable_gqa=True))."""
import numpy as np
import pytest

import tinylm
import tinylm.nn.functional as F
from tinylm import nn
from tinylm.check import compare
from tinylm.check import llm_formulas as hand


def torch_or_skip():
    return pytest.importorskip("torch")


def T(array, grad=False):
    return tinylm.Tensor(array, requires_grad=grad)


@pytest.mark.parametrize("name", hand.CASES)
def test_gradients_three_ways(name):
    report = compare(*hand.CASES[name]())
    assert report.passed, "\n" + report.table()


# --- RMSNorm ---------------------------------------------------------------------------------------

def test_rmsnorm_forward_is_the_formula(rng, kernel_set):
    x, w = rng.standard_normal((2, 3, 6)), rng.standard_normal(6)
    norm = nn.RMSNorm(6, eps=1e-6).double()
    norm.weight.data[...] = w
    want = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6) * w
    np.testing.assert_allclose(norm(T(x)).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(hand.rms_norm(x, w)[0], want, rtol=1e-12)
    # no mean is subtracted: a constant row is not sent to zero, unlike LayerNorm
    np.testing.assert_allclose(F.rms_norm(T(np.full((1, 4), 3.0)), 4).numpy(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("eps,affine,shape", [(None, True, 6), (1e-5, False, 6), (1e-6, True, (3, 6))])
def test_rmsnorm_matches_pytorch(rng, eps, affine, shape):
    torch = torch_or_skip()
    ours = nn.RMSNorm(shape, eps=eps, elementwise_affine=affine).double()
    theirs = torch.nn.RMSNorm(shape, eps=eps, elementwise_affine=affine, dtype=torch.float64)
    if affine:
        w = rng.normal(1, 0.5, theirs.weight.shape)
        theirs.weight.data = torch.tensor(w)
        ours.load_state_dict({"weight": w})
    x = rng.standard_normal((2, 3, 6)) * 0.01  # small values: eps matters
    xo, xt = T(x, True), torch.tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape)
    yo, yt = ours(xo), theirs(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    yo.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-10)
    if affine:
        np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-9, atol=1e-10)


def test_rmsnorm_float32_eps_default_and_errors():
    x = tinylm.Tensor(np.zeros((2, 4), np.float32))
    assert np.all(nn.RMSNorm(4)(x).numpy() == 0)  # eps = float32's machine epsilon: no 0/0
    assert "elementwise_affine=False" in repr(nn.RMSNorm(4, elementwise_affine=False))
    with pytest.raises(ValueError, match="does not end with normalized_shape"):
        nn.RMSNorm(5)(x)
    with pytest.raises(ValueError, match="weight has shape"):
        F.rms_norm(x, 4, tinylm.ones(3))


# --- SiLU and SwiGLU --------------------------------------------------------------------------------

def test_silu_matches_the_formula_and_pytorch(rng):
    x = rng.normal(0, 4, (3, 7))
    x[0, :3] = [-800.0, 0.0, 800.0]  # no overflow in σ
    xo = T(x, True)
    y = nn.SiLU()(xo)
    with np.errstate(over="ignore"):  # e^800 = inf in the formula: x / inf = -0
        np.testing.assert_allclose(y.numpy(), x / (1 + np.exp(-x)), rtol=1e-12, atol=1e-300)
    y.backward(tinylm.ones(3, 7).double())
    torch = torch_or_skip()
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.silu(xt)
    yt.sum().backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-300)


def test_swiglu_forward_is_the_formula(rng):
    layer = nn.SwiGLU(4, 6).double()
    x = rng.standard_normal((2, 3, 4))
    p = {name: t.numpy() for name, t in layer.named_parameters()}
    assert set(p) == {"gate_proj.weight", "up_proj.weight", "down_proj.weight"}  # no biases, HF's names
    a, b = x @ p["gate_proj.weight"].T, x @ p["up_proj.weight"].T
    want = (a / (1 + np.exp(-a)) * b) @ p["down_proj.weight"].T
    np.testing.assert_allclose(layer(T(x)).numpy(), want, rtol=1e-12)
    assert nn.SwiGLU(4, 6, bias=True).num_parameters() == 3 * 24 + 6 + 6 + 4


# --- RoPE -----------------------------------------------------------------------------------------

def test_rope_rotates_the_halves_as_hugging_face_llama(rng):
    """Feature i pairs with feature i + d/2 (rotate_half), angle p·base^(-2i/d)."""
    rotary = nn.RotaryEmbedding(8)
    e0 = np.zeros((1, 8))
    e0[0, 0] = 1.0
    at_3 = rotary(T(np.repeat(e0, 4, 0)).double()).numpy()[3]  # position 3
    want = np.zeros(8)
    want[0], want[4] = np.cos(3.0), np.sin(3.0)  # θ_0 = 1
    np.testing.assert_allclose(at_3, want, atol=1e-15)
    x = rng.standard_normal((2, 3, 5, 8))
    cos, sin = hand.rope_angles(np.arange(5), 8)
    np.testing.assert_allclose(rotary(T(x)).numpy(), hand.rope(x, cos, sin), rtol=1e-12, atol=1e-15)
    torch = torch_or_skip()  # the rotate_half formula as Hugging Face's Llama writes it, in torch

    def rotate_half(t):
        return torch.cat((-t[..., 4:], t[..., :4]), dim=-1)

    emb = torch.cat((torch.tensor(np.arange(5)[:, None] * 10000.0 ** (-np.arange(0, 8, 2) / 8),),) * 2, dim=-1)
    xt = torch.tensor(x)
    np.testing.assert_allclose(rotary(T(x)).numpy(), (xt * emb.cos() + rotate_half(xt) * emb.sin()).numpy(),
                               rtol=1e-12, atol=1e-15)


def test_rope_scores_depend_on_the_offset_only(rng):
    rotary = nn.RotaryEmbedding(6)
    q, k = rng.standard_normal(6), rng.standard_normal(6)

    def score(m, n):
        qm = rotary(T(np.tile(q, (m + 1, 1)))).numpy()[m]
        kn = rotary(T(np.tile(k, (n + 1, 1)))).numpy()[n]
        return qm @ kn

    assert abs(score(3, 1) - score(12, 10)) < 1e-12 and abs(score(0, 5) - score(7, 12)) < 1e-12
    assert abs(score(3, 1) - score(3, 2)) > 1e-3
    # a rotation keeps lengths
    x = rng.standard_normal((4, 6))
    np.testing.assert_allclose(np.linalg.norm(rotary(T(x), offset=9).numpy(), axis=-1), np.linalg.norm(x, axis=-1))


def test_rope_offset_continues_the_positions(rng):
    rotary = nn.RotaryEmbedding(4, base=500.0)
    x = rng.standard_normal((1, 2, 7, 4))
    whole = rotary(T(x)).numpy()
    np.testing.assert_allclose(rotary(T(x[:, :, 4:]), offset=4).numpy(), whole[:, :, 4:], rtol=1e-12)


def test_rope_errors():
    with pytest.raises(ValueError, match="positive even number"):
        nn.RotaryEmbedding(5)
    with pytest.raises(ValueError, match="base must be"):
        nn.RotaryEmbedding(4, base=1.0)
    with pytest.raises(ValueError, match=r"expected input \(\.\.\., T, 4\)"):
        nn.RotaryEmbedding(4)(tinylm.ones(3, 6))


# --- grouped-query attention -------------------------------------------------------------------------

@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_gqa_forward_is_the_formula_with_repeated_kv_heads(rng, kv_heads):
    layer = nn.GroupedQueryAttention(16, 4, kv_heads).double()
    x = rng.standard_normal((2, 5, 16))
    p = {name: t.numpy() for name, t in layer.named_parameters()}
    assert p["k_proj.weight"].shape == (kv_heads * 4, 16)
    np.testing.assert_allclose(layer(T(x)).numpy(), hand.gqa(p, x, 4, kv_heads)[0], rtol=1e-10, atol=1e-12)


def test_sdpa_enable_gqa_matches_pytorch(rng):
    torch = torch_or_skip()
    q, k, v = rng.standard_normal((2, 6, 5, 3)), rng.standard_normal((2, 2, 5, 3)), rng.standard_normal((2, 2, 5, 4))
    mask = rng.random((2, 6, 5, 5)) < 0.7
    mask[..., 0] = True
    for kwargs in ({"is_causal": True}, {"attn_mask": mask}, {"attn_mask": mask[:, :1]}):
        ours = [T(a, True) for a in (q, k, v)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        yo = F.scaled_dot_product_attention(*ours, enable_gqa=True, **kwargs)
        yt = torch.nn.functional.scaled_dot_product_attention(
            *theirs, enable_gqa=True, **{k: torch.tensor(v) if k == "attn_mask" else v for k, v in kwargs.items()})
        np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.standard_normal(yo.shape)
        yo.backward(g)
        yt.backward(torch.tensor(g))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_gqa_kv_cache_equals_the_whole_sequence(rng):
    layer = nn.GroupedQueryAttention(8, 4, 2).double()
    x = rng.standard_normal((2, 6, 8))
    cache = {}
    steps = [layer(T(x[:, :2]), cache).numpy()] + [layer(T(x[:, t:t + 1]), cache).numpy() for t in range(2, 6)]
    np.testing.assert_allclose(np.concatenate(steps, 1), layer(T(x)).numpy(), rtol=1e-10, atol=1e-12)
    assert cache["k"].shape == (2, 2, 6, 2)  # the 2 key/value heads are cached, not the 4 query heads
    with pytest.raises(ValueError, match="whole prompt first"):
        layer(T(x[:, :2]), cache)


def test_gqa_errors():
    with pytest.raises(ValueError, match="must be a positive integer dividing num_heads"):
        nn.GroupedQueryAttention(8, 4, 3)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.GroupedQueryAttention(10, 4)
    with pytest.raises(ValueError, match=r"expected input \(N, L, 8\)"):
        nn.GroupedQueryAttention(8, 2)(tinylm.ones(2, 3, 6))
    with pytest.raises(ValueError, match="divides them"):
        F.scaled_dot_product_attention(tinylm.ones(1, 4, 2, 3), tinylm.ones(1, 3, 2, 3), tinylm.ones(1, 3, 2, 3),
                                       enable_gqa=True)
