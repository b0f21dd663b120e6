"""Attention layers: scaled dot-product attention, MultiheadAttention, the Transformer blocks and
stacks, positional encodings and the attention heatmap.

Forwards against NumPy transcriptions of the formulas, masks against brute force, gradients
against central differences and the hand-derived formulas (tinylm.check.attention_formulas),
and, where PyTorch is installed, outputs, attention weights and gradients against torch.
"""
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm
from tinylm.check import compare, gradcheck
from tinylm.check import attention_formulas as AF
from tinylm.nn import LayerNorm, Module
from tinylm.nn import functional as F
from tinylm.nn.attention import MultiheadAttention
from tinylm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinylm.nn.transformer import (TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                                   TransformerEncoderLayer, generate_square_subsequent_mask)
from tinylm.viz import attention_heatmap
from strategies import arrays, shapes


pytestmark = pytest.mark.usefixtures("float64_default")


def leaf(array):
    return tinylm.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def randomize(module, rng, scale=0.5):
    """Random values in every parameter (non-zero biases, LayerNorm weights away from 1)."""
    for p in module.parameters():
        p.data = scale * rng.standard_normal(p.shape)
    return {name: p.numpy() for name, p in module.named_parameters()}


def assert_close(actual, expected, rtol=1e-6, what=""):
    """Equal within rtol of the expected array's largest magnitude (zeros compare absolutely)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(float(np.abs(expected).max()) if expected.size else 0.0, 1.0 if expected.size == 0 else 1e-12)
    err = float(np.abs(actual - expected).max()) if expected.size else 0.0
    assert err <= rtol * scale + 1e-13, f"{what}: max abs err {err:.3g}, scale {scale:.3g}"


# --- scaled dot-product attention ----------------------------------------------------------------


@settings(max_examples=15)
@given(data=st.data())
def test_sdpa_matches_the_formula(data):
    batch = data.draw(shapes(0, 2, max_side=3))
    L, S, E, Ev = (data.draw(st.integers(1, 5)) for _ in range(4))
    q, k, v = (data.draw(arrays(batch + shape)) for shape in ((L, E), (S, E), (S, Ev)))
    kind = data.draw(st.sampled_from(["none", "bool", "float"]))
    scale = data.draw(st.sampled_from([None, 0.3]))
    mask, M = None, 0.0
    if kind == "bool":
        mask = data.draw(arrays((L, S))) > -1.0
        mask[:, data.draw(st.integers(0, S - 1))] = True   # every query may attend to some key
        M = np.where(mask, 0.0, -np.inf)
    elif kind == "float":
        mask = M = data.draw(arrays((L, S)))
    out = F.scaled_dot_product_attention(tinylm.Tensor(q), tinylm.Tensor(k), tinylm.Tensor(v), attn_mask=mask,
                                         scale=scale)
    # softmax(QKᵀ/√d_k + M) V
    expected = AF.softmax(q @ np.swapaxes(k, -1, -2) * (scale or 1 / math.sqrt(E)) + M) @ v
    assert_close(out.numpy(), expected, 1e-12)


@pytest.mark.parametrize("L,S", [(4, 4), (3, 5), (5, 3)])
def test_causal_is_the_lower_triangle_and_sees_no_future(L, S, rng):
    q, k, v = rng.standard_normal((2, L, 3)), rng.standard_normal((2, S, 3)), rng.standard_normal((2, S, 2))
    T = tinylm.Tensor
    causal = F.scaled_dot_product_attention(T(q), T(k), T(v), is_causal=True).numpy()
    tril = F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=np.tril(np.ones((L, S), bool))).numpy()
    assert_close(causal, tril, 1e-14)
    if L == S:
        float_mask = generate_square_subsequent_mask(L)
        assert_close(F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=float_mask).numpy(), causal, 1e-14)
    for i in range(min(L, S)):  # brute force: query i alone over keys 0..i gives the same row
        prefix = F.scaled_dot_product_attention(T(q[:, i:i + 1]), T(k[:, :i + 1]), T(v[:, :i + 1])).numpy()
        assert_close(causal[:, i:i + 1], prefix, 1e-12)
    k2, v2 = k.copy(), v.copy()
    k2[:, -1], v2[:, -1] = 9.0, -9.0                       # change the last key: earlier queries do not see it
    changed = F.scaled_dot_product_attention(T(q), T(k2), T(v2), is_causal=True).numpy()
    assert_close(changed[:, :S - 1], causal[:, :S - 1], 1e-14)


def test_masked_keys_get_zero_weight_and_rows_sum_to_one(rng):
    q, k, v = (tinylm.Tensor(rng.standard_normal(s)) for s in ((2, 4, 3), (2, 5, 3), (2, 5, 3)))
    allowed = rng.random((4, 5)) < 0.6
    allowed[:, 2] = True
    out, w = F.attention(q, k, v, attn_mask=allowed)
    assert np.all(w.numpy()[:, ~allowed] == 0.0)
    assert_close(w.numpy().sum(-1), np.ones((2, 4)), 1e-14)
    assert_close(out.numpy(), w.numpy() @ v.numpy(), 1e-14)


def test_a_query_with_no_key_gets_zeros_not_nan(rng):
    q, k, v = leaf(rng.standard_normal((3, 2))), leaf(rng.standard_normal((4, 2))), leaf(rng.standard_normal((4, 2)))
    allowed = np.ones((3, 4), bool)
    allowed[1] = False
    out, w = F.attention(q, k, v, attn_mask=allowed)
    assert np.all(out.numpy()[1] == 0) and np.all(w.numpy()[1] == 0) and np.isfinite(out.numpy()).all()
    out.sum().backward()
    assert all(np.isfinite(t.grad.numpy()).all() for t in (q, k, v)) and np.all(q.grad.numpy()[1] == 0)


def test_dropout_drops_weights_and_rescales_the_rest(rng):
    q, k, v = (tinylm.Tensor(rng.standard_normal((6, 8, 4))) for _ in range(3))
    _, plain = F.attention(q, k, v)
    tinylm.manual_seed(0)
    out, dropped = F.attention(q, k, v, dropout_p=0.5)
    kept = dropped.numpy() != 0
    assert_close(dropped.numpy()[kept], 2 * plain.numpy()[kept], 1e-14)
    assert 0.35 < kept.mean() < 0.65 and np.allclose(out.numpy(), dropped.numpy() @ v.numpy())


@settings(max_examples=8)
@given(data=st.data())
def test_sdpa_gradients(data):
    L, S, E = (data.draw(st.integers(1, 4)) for _ in range(3))
    q, k, v = (data.draw(arrays(s)) for s in ((2, L, E), (2, S, E), (2, S, 3)))
    causal, bias = data.draw(st.booleans()), data.draw(arrays((L, S)))
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True) if causal else \
        F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # noqa: E731
    report = gradcheck(fn, [leaf(q), leaf(k), leaf(v)])
    assert report.passed, "\n" + report.table()


def test_a_float_mask_with_a_gradient_gets_one(rng):
    q, k, v = (tinylm.Tensor(rng.standard_normal((3, 3))) for _ in range(3))
    bias = leaf(rng.standard_normal((3, 3)))                # e.g. a learned relative-position bias
    report = gradcheck(lambda m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), [bias])
    assert report.passed, "\n" + report.table()


# --- MultiheadAttention ---------------------------------------------------------------------------


def mha_by_heads(p, x_q, x_k, x_v, h, M=0.0):
    """003.mha literally, one head at a time: head_i = Attention(Q W_iᵠ, K W_iᴷ, V W_iⱽ) with W_i the
    rows i·d..(i+1)·d of each projection; MultiHead = Concat(head_1..head_h) Wᴼ. Batch-first arrays."""
    E = x_q.shape[-1]
    d = E // h
    W, b = p["in_proj_weight"], p.get("in_proj_bias", np.zeros(3 * E))
    heads, weights = [], []
    for i in range(h):
        rows = slice(i * d, (i + 1) * d)
        Q = x_q @ W[:E][rows].T + b[:E][rows]
        K = x_k @ W[E:2 * E][rows].T + b[E:2 * E][rows]
        V = x_v @ W[2 * E:][rows].T + b[2 * E:][rows]
        Mi = M[:, i] if np.ndim(M) == 4 else M
        A = AF.softmax(Q @ np.swapaxes(K, -1, -2) / math.sqrt(d) + Mi)
        heads.append(A @ V)
        weights.append(A)
    out = np.concatenate(heads, axis=-1) @ p["out_proj.weight"].T + p.get("out_proj.bias", 0.0)
    return out, np.stack(weights, axis=1)


@settings(max_examples=12)
@given(data=st.data())
def test_mha_matches_the_per_head_formula(data):
    h, d = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    N, L, S = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch_first, bias = data.draw(st.booleans()), data.draw(st.booleans())
    m = MultiheadAttention(h * d, h, bias=bias, batch_first=batch_first)
    p = randomize(m, np.random.default_rng(data.draw(st.integers(0, 1000))))
    x_q, x_k, x_v = (data.draw(arrays(s)) for s in ((N, L, h * d), (N, S, h * d), (N, S, h * d)))
    layout = (lambda x: x) if batch_first else (lambda x: np.swapaxes(x, 0, 1))
    out, w = m(*(tinylm.Tensor(layout(x)) for x in (x_q, x_k, x_v)), average_attn_weights=False)
    expected, expected_w = mha_by_heads(p, x_q, x_k, x_v, h)
    assert_close(out.numpy(), layout(expected), 1e-12)
    assert_close(w.numpy(), expected_w, 1e-12)
    _, mean_w = m(*(tinylm.Tensor(layout(x)) for x in (x_q, x_k, x_v)))
    assert_close(mean_w.numpy(), expected_w.mean(axis=1), 1e-12)


def test_mha_unbatched_equals_a_batch_of_one(rng):
    m = MultiheadAttention(4, 2)
    randomize(m, rng)
    q, k = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    mask, padding = rng.standard_normal((2, 3, 5)), np.array([False, True, False, False, False])
    out, w = m(tinylm.Tensor(q), tinylm.Tensor(k), tinylm.Tensor(k), attn_mask=mask, key_padding_mask=padding,
               average_attn_weights=False)
    out1, w1 = m(tinylm.Tensor(q[:, None]), tinylm.Tensor(k[:, None]), tinylm.Tensor(k[:, None]), attn_mask=mask,
                 key_padding_mask=padding[None], average_attn_weights=False)
    assert out.shape == (3, 4) and w.shape == (2, 3, 5)
    assert_close(out.numpy(), out1.numpy()[:, 0], 1e-14)
    assert_close(w.numpy(), w1.numpy()[0], 1e-14)


def test_key_padding_gives_the_unpadded_answer(rng):
    m = MultiheadAttention(6, 3, batch_first=True)
    randomize(m, rng)
    q, kv = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 5, 6))
    padding = np.zeros((2, 5), bool)
    padding[1, 2:] = True                                   # the second item has 2 real keys
    out, w = m(tinylm.Tensor(q), tinylm.Tensor(kv), tinylm.Tensor(kv), key_padding_mask=padding)
    short, short_w = m(tinylm.Tensor(q[1:]), tinylm.Tensor(kv[1:, :2]), tinylm.Tensor(kv[1:, :2]))
    assert_close(out.numpy()[1], short.numpy()[0], 1e-13)
    assert_close(w.numpy()[1, :, :2], short_w.numpy()[0], 1e-13)
    assert np.all(w.numpy()[1, :, 2:] == 0)
    full, _ = m(tinylm.Tensor(q[:1]), tinylm.Tensor(kv[:1]), tinylm.Tensor(kv[:1]))
    assert_close(out.numpy()[0], full.numpy()[0], 1e-13)   # an unpadded item is untouched


def test_mha_mask_kinds_agree(rng):
    m = MultiheadAttention(4, 2, batch_first=True)
    p = randomize(m, rng)
    x = rng.standard_normal((3, 4, 4))
    T = tinylm.Tensor
    banned = np.triu(np.ones((4, 4), bool), 1)              # True = may NOT attend, for MultiheadAttention
    as_bool = m(T(x), T(x), T(x), attn_mask=banned)[0].numpy()
    as_float = m(T(x), T(x), T(x), attn_mask=generate_square_subsequent_mask(4), is_causal=True)[0].numpy()
    assert_close(as_bool, as_float, 1e-14)
    assert_close(as_bool, mha_by_heads(p, x, x, x, 2, np.where(banned, -np.inf, 0.0))[0], 1e-12)
    # one mask per (item, head): (N*num_heads, L, S), head h of item n at row n·num_heads + h
    per_head = rng.random((3 * 2, 4, 4)) < 0.4
    per_head[..., 0] = False
    bias = rng.standard_normal((3, 4))
    out, w = m(T(x), T(x), T(x), attn_mask=per_head, key_padding_mask=bias, average_attn_weights=False)
    M = np.where(per_head, -np.inf, 0.0).reshape(3, 2, 4, 4) + bias[:, None, None, :]
    expected, expected_w = mha_by_heads(p, x, x, x, 2, M)
    assert np.all(w.numpy()[per_head.reshape(3, 2, 4, 4)] == 0)
    assert_close(out.numpy(), expected, 1e-12)
    assert_close(w.numpy(), expected_w, 1e-12)


def test_mha_init_names_and_shapes(rng):
    tinylm.manual_seed(0)
    m = MultiheadAttention(8, 2)
    assert [(n, p.shape) for n, p in m.named_parameters()] == [
        ("in_proj_weight", (24, 8)), ("in_proj_bias", (24,)), ("out_proj.weight", (8, 8)), ("out_proj.bias", (8,))]
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    w = m.in_proj_weight.numpy()
    bound = math.sqrt(6 / (8 + 24))                         # xavier_uniform_: fan_in 8, fan_out 24
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.abs(m.out_proj.weight.numpy()).max() <= 1 / math.sqrt(8)
    no_bias = MultiheadAttention(8, 2, bias=False)
    assert list(no_bias.state_dict()) == ["in_proj_weight", "out_proj.weight"]
    out, w = no_bias(tinylm.randn(3, 2, 8), tinylm.randn(3, 2, 8), tinylm.randn(3, 2, 8), need_weights=False)
    assert out.shape == (3, 2, 8) and w is None


def test_mha_dropout_only_while_training(rng):
    m = MultiheadAttention(4, 2, dropout=0.5, batch_first=True)
    x = tinylm.Tensor(rng.standard_normal((2, 6, 4)))
    eval_out = m.eval()(x, x, x)[0].numpy()
    m.dropout = 0.0
    assert_close(eval_out, m(x, x, x)[0].numpy(), 1e-14)
    m.dropout = 0.5
    train_out, w = m.train()(x, x, x, average_attn_weights=False)
    assert not np.allclose(train_out.numpy(), eval_out) and (w.numpy() == 0).any()


def test_mha_gradients_with_masks(rng):
    m = MultiheadAttention(4, 2)
    randomize(m, rng)
    mask, padding = rng.standard_normal((3, 4)), np.array([[False, False, True, False], [False] * 4])
    fn = lambda q, k, v: m(q, k, v, attn_mask=mask, key_padding_mask=padding)  # noqa: E731  (output and weights)
    report = gradcheck(fn, [leaf(rng.standard_normal((3, 2, 4))), leaf(rng.standard_normal((4, 2, 4))),
                            leaf(rng.standard_normal((4, 2, 4)))])
    assert report.passed, "\n" + report.table()


# --- Transformer blocks -------------------------------------------------------------------------


def numpy_encoder(p, x, nhead, norm_first, mask=None, padding=None):
    """003.arch encoder block in NumPy: post-norm from tinylm.check.attention_formulas, pre-norm
    x + MHA(LN₁(x)), then x + FFN(LN₂(x)), composed from the same pieces."""
    if not norm_first:
        return AF.encoder_layer(p, x, nhead, mask, padding)[0]
    n1 = AF.layer_norm(x, p["norm1.weight"], p["norm1.bias"])[0]
    x = x + AF.mha(p, "self_attn.", n1, n1, n1, nhead, mask, padding)[0]
    return x + AF.feed_forward(p, AF.layer_norm(x, p["norm2.weight"], p["norm2.bias"])[0])[0]


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_and_decoder_layers_match_the_formulas(norm_first, kernel_set, rng):
    """Under every CPU kernel set (the masks put -inf into the softmax kernels)."""
    enc = TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True, norm_first=norm_first)
    p = randomize(enc, rng)
    x = rng.standard_normal((2, 3, 4))
    mask, padding = generate_square_subsequent_mask(3).numpy(), np.array([[False] * 3, [False, False, True]])
    out = enc(tinylm.Tensor(x), src_mask=mask, src_key_padding_mask=padding).numpy()
    assert_close(out, numpy_encoder(p, x, 2, norm_first, mask, padding), 1e-12)
    if not norm_first:
        dec = TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True)
        p = randomize(dec, rng)
        memory = rng.standard_normal((2, 5, 4))
        out = dec(tinylm.Tensor(x), tinylm.Tensor(memory), tgt_mask=mask, memory_key_padding_mask=padding[:, [0] * 5])
        expected = AF.decoder_layer(p, x, memory, 2, tgt_mask=mask, memory_key_padding_mask=padding[:, [0] * 5])[0]
        assert_close(out.numpy(), expected, 1e-12)


def test_decoder_self_attention_is_causal(rng):
    dec = TransformerDecoderLayer(4, 2, dim_feedforward=8, dropout=0.0)
    randomize(dec, rng)
    tgt, memory = rng.standard_normal((4, 1, 4)), rng.standard_normal((3, 1, 4))
    mask = generate_square_subsequent_mask(4)
    out = dec(tinylm.Tensor(tgt), tinylm.Tensor(memory), tgt_mask=mask, tgt_is_causal=True).numpy()
    later = tgt.copy()
    later[3] = 5.0                                          # a different last token changes only the last row
    out2 = dec(tinylm.Tensor(later), tinylm.Tensor(memory), tgt_mask=mask, tgt_is_causal=True).numpy()
    assert_close(out2[:3], out[:3], 1e-13)
    assert not np.allclose(out2[3], out[3])


@pytest.mark.parametrize("norm_first,activation", [(True, "gelu"), (False, "relu")])
def test_transformer_layer_gradients(norm_first, activation, rng):
    kw = dict(dim_feedforward=5, dropout=0.0, activation=activation, norm_first=norm_first, batch_first=True)
    enc, dec = TransformerEncoderLayer(4, 2, **kw), TransformerDecoderLayer(4, 2, **kw)
    randomize(enc, rng)
    randomize(dec, rng)
    mask = generate_square_subsequent_mask(3)
    src, tgt, memory = (leaf(rng.standard_normal(s)) for s in ((2, 3, 4), (2, 3, 4), (2, 2, 4)))
    report = gradcheck(lambda s: enc(s, src_mask=mask), [src])
    assert report.passed, "\n" + report.table()
    report = gradcheck(lambda t, m: dec(t, m, tgt_mask=mask, tgt_is_causal=True), [tgt, memory])
    assert report.passed, "\n" + report.table()


def test_stacks_are_deep_copies_applied_in_turn(rng):
    layer = TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0)
    stack = TransformerEncoder(layer, 3, norm=LayerNorm(4))
    names = list(stack.state_dict())
    assert names[0] == "layers.0.self_attn.in_proj_weight" and "layers.2.norm2.bias" in names
    assert names[-2:] == ["norm.weight", "norm.bias"]
    first, second = stack.layers[0], stack.layers[1]
    assert first is not layer and first.linear1.weight is not second.linear1.weight
    assert np.array_equal(first.linear1.weight.numpy(), second.linear1.weight.numpy())  # equal at the start
    randomize(stack, rng)
    x = tinylm.Tensor(rng.standard_normal((3, 2, 4)))
    by_hand = x
    for each in stack.layers:
        by_hand = each(by_hand)
    assert_close(stack(x).numpy(), stack.norm(by_hand).numpy(), 1e-14)
    dec_stack = TransformerDecoder(TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0), 2)
    assert dec_stack(x, x).shape == (3, 2, 4) and len(dec_stack.layers) == 2 and dec_stack.norm is None


def test_generate_square_subsequent_mask():
    mask = generate_square_subsequent_mask(3)
    assert mask.dtype == np.float64 and mask.numpy().tolist() == [[0, -np.inf, -np.inf], [0, 0, -np.inf], [0, 0, 0]]
    assert generate_square_subsequent_mask(2, dtype=np.float32).dtype == np.float32


# --- hand-derived gradients: compare() three ways ------------------------------------------------


@pytest.mark.parametrize("name", list(AF.CASES))
def test_compare_cases_pass(name):
    fn, formula, inputs = AF.CASES[name]()
    report = compare(fn, formula, inputs)
    assert report.passed, "\n" + report.table(name)
    checked = [k for k, v in inputs.items() if isinstance(v, tinylm.Tensor)]
    assert [row.name for row in report] == checked and len(checked) >= 1


def test_compare_catches_wrong_formulas():
    fn, _, inputs = AF.CASES["softmax"]()
    wrong = lambda g, input: {"input": AF.softmax(input) * g}  # noqa: E731  (forgets the -Σ g y term)
    report = compare(fn, wrong, inputs)
    assert not report.passed and "FAIL" in report.table()
    assert report["input"].autograd_vs_numeric < 1e-6 and report["input"].formula_vs_numeric > 1e-3

    fn, formula, inputs = AF.CASES["mha"]()

    def no_sum_over_rows(grad_out, **arrays):            # drops the out_proj.bias gradient's sum over rows
        grads = formula(grad_out, **arrays)
        return {**grads, "out_proj.bias": grad_out[0, 0]}

    report = compare(fn, no_sum_over_rows, inputs)
    assert not report.passed and not report["out_proj.bias"].passed and report["query"].passed


# --- PyTorch parity ------------------------------------------------------------------------------


def torch_copy(torch, tinylm_module, torch_module, rng):
    """Random float64 values into torch_module, then the same state dict into tinylm_module."""
    torch_module.double()
    with torch.no_grad():
        for p in torch_module.parameters():
            p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
    tinylm_module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})


def assert_same_gradients(torch, tinylm_module, torch_module, ours, theirs, outputs, rng):
    """Outputs equal, and so are the gradients of L = Σ v ⊙ outputs w.r.t. inputs and every parameter.
    ours/theirs: the tinylm and torch input tensors (requires_grad); outputs: pairs (tinylm, torch)."""
    loss_ours, loss_theirs = 0.0, 0.0
    for a, b in outputs:
        assert_close(a.numpy(), b.detach().numpy(), what="output")
        v = rng.standard_normal(a.shape)
        loss_ours = loss_ours + (a * tinylm.Tensor(v)).sum()
        loss_theirs = loss_theirs + (b * torch.tensor(v)).sum()
    loss_ours.backward()
    loss_theirs.backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a.grad.numpy(), b.grad.numpy(), what=f"input {i} grad")
    torch_params = dict(torch_module.named_parameters())
    for name, p in tinylm_module.named_parameters():
        assert_close(p.grad.numpy(), torch_params[name].grad.numpy(), what=f"{name} grad")


def inputs_pair(torch, *arrays):
    ours = [leaf(a) for a in arrays]
    return ours, [torch.tensor(a, requires_grad=True) for a in arrays]


@pytest.mark.parametrize("case", ["bool", "float", "causal", "scale"])
def test_sdpa_matches_pytorch(case, rng):
    torch = pytest.importorskip("torch")
    ours, theirs = inputs_pair(torch, rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 6, 5)),
                               rng.standard_normal((2, 3, 6, 2)))
    allowed = rng.random((4, 6)) < 0.6
    allowed[:, 1] = True
    kwargs = {"bool": dict(attn_mask=allowed), "float": dict(attn_mask=rng.standard_normal((3, 4, 6))),
              "causal": dict(is_causal=True), "scale": dict(scale=0.7, attn_mask=allowed)}[case]
    torch_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = F.scaled_dot_product_attention(*ours, **kwargs)
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, **torch_kwargs)
    assert_same_gradients(torch, Module(), torch.nn.Module(), ours, theirs, [(out, expected)], rng)


MHA_SETUPS = {
    "seq_first": dict(batch_first=False),
    "batch_first_masks": dict(batch_first=True, attn_mask="bool", key_padding_mask="bool"),
    "float_masks_per_head": dict(batch_first=False, attn_mask="float3d", key_padding_mask="float"),
    "heads_not_averaged": dict(batch_first=True, average_attn_weights=False, attn_mask="float"),
    "unbatched": dict(batch_first=False, unbatched=True, key_padding_mask="bool"),
    "no_bias": dict(batch_first=True, bias=False, key_padding_mask="bool"),
}


@pytest.mark.parametrize("setup", list(MHA_SETUPS))
def test_mha_matches_pytorch(setup, rng):
    torch = pytest.importorskip("torch")
    s = dict(MHA_SETUPS[setup])
    batch_first, bias = s.pop("batch_first"), s.pop("bias", True)
    unbatched, average = s.pop("unbatched", False), s.pop("average_attn_weights", True)
    E, H, N, L, S = 6, 3, 2, 4, 5
    ours_m, theirs_m = MultiheadAttention(E, H, bias=bias, batch_first=batch_first), \
        torch.nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first)
    torch_copy(torch, ours_m, theirs_m, rng)
    shape = (lambda n: (n, E)) if unbatched else (lambda n: (N, n, E)) if batch_first else (lambda n: (n, N, E))
    ours, theirs = inputs_pair(torch, rng.standard_normal(shape(L)), rng.standard_normal(shape(S)),
                               rng.standard_normal(shape(S)))
    masks = {}
    padding = rng.random((S,) if unbatched else (N, S)) < 0.3
    padding[..., 0] = False
    for name, kind in s.items():
        masks[name] = {"bool": (rng.random((L, S)) < 0.3) & (np.arange(S) > 0) if name == "attn_mask" else padding,
                       "float": rng.standard_normal((L, S) if name == "attn_mask" else padding.shape),
                       "float3d": rng.standard_normal((N * H, L, S))}[kind]
    out, w = ours_m(*ours, average_attn_weights=average, **masks)
    t_out, t_w = theirs_m(*theirs, average_attn_weights=average, **{k: torch.tensor(v) for k, v in masks.items()})
    assert w.shape == tuple(t_w.shape)
    assert_same_gradients(torch, ours_m, theirs_m, ours, theirs, [(out, t_out), (w, t_w)], rng)


LAYER_SETUPS = [(norm_first, activation, batch_first) for norm_first in (False, True)
                for activation in ("relu", "gelu") for batch_first in (False, True)]


@pytest.mark.filterwarnings("ignore:Support for mismatched")  # torch: a float src_mask with a bool padding mask
@pytest.mark.parametrize("norm_first,activation,batch_first", LAYER_SETUPS)
def test_encoder_layer_matches_pytorch(norm_first, activation, batch_first, rng):
    torch = pytest.importorskip("torch")
    kw = dict(dim_feedforward=12, dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    ours_m, theirs_m = TransformerEncoderLayer(8, 2, **kw), torch.nn.TransformerEncoderLayer(8, 2, **kw)
    torch_copy(torch, ours_m, theirs_m, rng)            # train mode, dropout 0: no fast path in torch
    ours, theirs = inputs_pair(torch, rng.standard_normal((2, 5, 8) if batch_first else (5, 2, 8)))
    padding = np.array([[False] * 5, [False] * 3 + [True] * 2])
    mask = generate_square_subsequent_mask(5)
    out = ours_m(*ours, src_mask=mask, src_key_padding_mask=padding)
    expected = theirs_m(*theirs, src_mask=torch.tensor(mask.numpy()), src_key_padding_mask=torch.tensor(padding))
    assert_same_gradients(torch, ours_m, theirs_m, ours, theirs, [(out, expected)], rng)


@pytest.mark.parametrize("norm_first,activation,batch_first", LAYER_SETUPS)
def test_decoder_layer_matches_pytorch(norm_first, activation, batch_first, rng):
    torch = pytest.importorskip("torch")
    kw = dict(dim_feedforward=12, dropout=0.0, activation=activation, batch_first=batch_first, norm_first=norm_first)
    ours_m, theirs_m = TransformerDecoderLayer(8, 2, **kw), torch.nn.TransformerDecoderLayer(8, 2, **kw)
    torch_copy(torch, ours_m, theirs_m, rng)
    ours, theirs = inputs_pair(torch, *(rng.standard_normal((2, n, 8) if batch_first else (n, 2, 8)) for n in (4, 6)))
    tgt_mask, memory_padding = generate_square_subsequent_mask(4), np.array([[False] * 6, [False] * 4 + [True] * 2])
    out = ours_m(*ours, tgt_mask=tgt_mask, memory_key_padding_mask=memory_padding, tgt_is_causal=True)
    expected = theirs_m(*theirs, tgt_mask=torch.tensor(tgt_mask.numpy()),
                        memory_key_padding_mask=torch.tensor(memory_padding), tgt_is_causal=True)
    assert_same_gradients(torch, ours_m, theirs_m, ours, theirs, [(out, expected)], rng)


def test_stacks_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    kw = dict(dim_feedforward=12, dropout=0.0, batch_first=True)
    ours_m = TransformerEncoder(TransformerEncoderLayer(8, 2, **kw), 2, norm=LayerNorm(8))
    theirs_m = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, **kw), 2,
                                           norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    assert sorted(ours_m.state_dict()) == sorted(theirs_m.state_dict())
    torch_copy(torch, ours_m, theirs_m, rng)
    ours, theirs = inputs_pair(torch, rng.standard_normal((2, 5, 8)))
    mask = generate_square_subsequent_mask(5)
    out, expected = ours_m(*ours, mask=mask, is_causal=True), theirs_m(*theirs, mask=torch.tensor(mask.numpy()),
                                                                        is_causal=True)
    assert_same_gradients(torch, ours_m, theirs_m, ours, theirs, [(out, expected)], rng)

    ours_d = TransformerDecoder(TransformerDecoderLayer(8, 2, **kw), 2, norm=LayerNorm(8))
    theirs_d = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, **kw), 2, norm=torch.nn.LayerNorm(8))
    assert sorted(ours_d.state_dict()) == sorted(theirs_d.state_dict())
    torch_copy(torch, ours_d, theirs_d, rng)
    ours, theirs = inputs_pair(torch, rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 3, 8)))
    out = ours_d(*ours, tgt_mask=mask, tgt_is_causal=True)
    expected = theirs_d(*theirs, tgt_mask=torch.tensor(mask.numpy()), tgt_is_causal=True)
    assert_same_gradients(torch, ours_d, theirs_d, ours, theirs, [(out, expected)], rng)


# --- positional encodings ------------------------------------------------------------------------


@pytest.mark.parametrize("d_model", [6, 5])
def test_sinusoidal_table_is_the_formula(d_model, rng):
    layer = SinusoidalPositionalEncoding(d_model, max_len=7)
    pe = layer.pe.numpy()
    for pos in range(7):
        for i in range(0, d_model, 2):                    # column i = 2k holds sin, column 2k+1 cos
            assert math.isclose(pe[pos, i], math.sin(pos / 10000 ** (i / d_model)), abs_tol=1e-12)
            if i + 1 < d_model:
                assert math.isclose(pe[pos, i + 1], math.cos(pos / 10000 ** (i / d_model)), abs_tol=1e-12)
    assert list(layer.state_dict()) == ["pe"] and list(layer.parameters()) == []
    x = rng.standard_normal((2, 4, d_model))
    assert_close(layer(tinylm.Tensor(x)).numpy(), x + pe[:4], 1e-15)
    seq_first = SinusoidalPositionalEncoding(d_model, max_len=7, batch_first=False)
    assert_close(seq_first(tinylm.Tensor(x.swapaxes(0, 1))).numpy(), (x + pe[:4]).swapaxes(0, 1), 1e-15)


def test_learned_positions_add_embedding_rows(rng):
    layer = LearnedPositionalEmbedding(6, 3)
    table = layer.embedding.weight.numpy()
    x = leaf(rng.standard_normal((2, 4, 3)))
    out = layer(x)
    assert_close(out.numpy(), x.numpy() + table[:4], 1e-15)
    out.sum().backward()                                   # each used row gets one 1 per batch item
    grad = layer.embedding.weight.grad.numpy()
    assert np.all(grad[:4] == 2.0) and np.all(grad[4:] == 0.0) and np.all(x.grad.numpy() == 1.0)
    seq_first = LearnedPositionalEmbedding(6, 3, batch_first=False)
    y = rng.standard_normal((4, 2, 3))
    assert_close(seq_first(tinylm.Tensor(y)).numpy(), y + seq_first.embedding.weight.numpy()[:4, None], 1e-15)
    assert list(layer.state_dict()) == ["embedding.weight"]


# --- attention heatmap ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Glyph")  # no font with Chinese glyphs installed: boxes, still a PNG
def test_attention_heatmap_png_or_install_hint(tmp_path, rng):
    weights = tinylm.Tensor(AF.softmax(rng.standard_normal((3, 4))))
    path = tmp_path / "attn.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r'pip install "tinylm\[plot\]"'):
            attention_heatmap(weights, (["a", "b", "c"], ["w", "x", "y", "z"]), path)
        return
    assert attention_heatmap(weights, (["a", "b", "c"], ["w", "x", "y", "z"]), path, title="head 0") == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    square = tmp_path / "self.png"
    attention_heatmap(AF.softmax(rng.standard_normal((3, 3))), ["我", "喜欢", "吃"], square)
    assert square.read_bytes()[:4] == b"\x89PNG"


def test_attention_heatmap_without_matplotlib(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)       # as if matplotlib were not installed
    with pytest.raises(RuntimeError, match=r'^attention_heatmap needs matplotlib: pip install "tinylm\[plot\]"$'):
        attention_heatmap(np.eye(2), ["a", "b"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# --- errors ----------------------------------------------------------------------------------------


def mha_call(**kwargs):
    m = MultiheadAttention(4, 2)
    x = tinylm.randn(3, 2, 4)
    return lambda: m(kwargs.pop("query", x), kwargs.pop("key", x), kwargs.pop("value", x), **kwargs)


ERRORS = {
    "heads": (lambda: MultiheadAttention(6, 4), ValueError, r"embed_dim \(6\) must be divisible by num_heads \(4\)"),
    "kdim": (lambda: MultiheadAttention(4, 2, kdim=3), ValueError, "kdim=3 is not supported"),
    "width": (mha_call(query=tinylm.randn(3, 2, 5)), ValueError,
              r"MultiheadAttention query expected input \(L, N, 4\), got \(3, 2, 5\)"),
    "ndim": (mha_call(key=tinylm.randn(3, 4)), ValueError, "all batched .* or all unbatched"),
    "lengths": (mha_call(value=tinylm.randn(5, 2, 4)), ValueError, "key and value .* with the same S"),
    "attn_mask": (mha_call(attn_mask=np.zeros((3, 4), bool)), ValueError,
                  r"attn_mask of shape \(3, 4\), expected \(L, S\) = \(3, 3\) or \(N\*num_heads, L, S\) = \(4, 3, 3\)"),
    "padding": (mha_call(key_padding_mask=np.zeros((3, 2), bool)), ValueError,
                r"key_padding_mask of shape \(3, 2\), expected \(N, S\) = \(2, 3\)"),
    "mask_dtype": (mha_call(attn_mask=np.zeros((3, 3), int)), TypeError, "must be boolean or floating, got int64"),
    "is_causal": (mha_call(is_causal=True), ValueError, "attn_mask is needed: pass attn_mask=generate_square"),
    "sdpa_both": (lambda: F.scaled_dot_product_attention(tinylm.randn(2, 3), tinylm.randn(2, 3), tinylm.randn(2, 3),
                                                         attn_mask=np.ones((2, 2), bool), is_causal=True),
                  ValueError, "give attn_mask or is_causal=True, not both"),
    "sdpa_mask": (lambda: F.scaled_dot_product_attention(tinylm.randn(2, 3), tinylm.randn(4, 3), tinylm.randn(4, 3),
                                                         attn_mask=np.ones((2, 3), bool)),
                  ValueError, r"attn_mask of shape \(2, 3\) does not broadcast to .* \(2, 4\)"),
    "sdpa_width": (lambda: F.scaled_dot_product_attention(tinylm.randn(2, 3), tinylm.randn(4, 2), tinylm.randn(4, 3)),
                   ValueError, r"key \(\.\.\., S, 3\)"),
    "activation": (lambda: TransformerEncoderLayer(4, 2, activation="swish"), ValueError,
                   "activation must be 'relu', 'gelu' or a function, got 'swish'"),
    "num_layers": (lambda: TransformerEncoder(TransformerEncoderLayer(4, 2), 0), ValueError,
                   "num_layers must be a positive integer"),
    "too_long": (lambda: SinusoidalPositionalEncoding(4, max_len=3)(tinylm.randn(1, 5, 4)), ValueError,
                 "a sequence of 5 positions is longer than max_len=3"),
    "learned_long": (lambda: LearnedPositionalEmbedding(3, 4)(tinylm.randn(1, 5, 4)), ValueError,
                     "longer than max_len=3"),
    "pos_width": (lambda: LearnedPositionalEmbedding(3, 4)(tinylm.randn(1, 2, 5)), ValueError,
                  r"expected input \(batch, seq, 4\), got \(1, 2, 5\)"),
    "heatmap_tokens": (lambda: attention_heatmap(np.eye(3), ["a", "b"], "x.png"), ValueError,
                       "2 query and 2 key tokens for weights of shape \\(3, 3\\)"),
    "heatmap_path": (lambda: attention_heatmap(np.eye(2), ["a", "b"], "x.jpg"), ValueError, "expected a .png path"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_name_what_was_expected(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error, match=message):
        call()
