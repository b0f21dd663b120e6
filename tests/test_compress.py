"""Compression (001.compress): int8 quantization, magnitude pruning, distillation, compressed checkpoints."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import arrays

import tinylm
from tinylm import checkpoint
from tinylm.check import gradcheck
from tinylm.compress import (QuantizedLinear, apply_masks, compress_checkpoint, distillation_loss,
                             format_report, kl_divergence, load_compressed, prune, quantize, quantize_linear,
                             quantize_weight, remove_masks, save_weights)
from tinylm.data import load_text, load_tokenizer, train_val_split
from tinylm.generate import generate
from tinylm.metrics import evaluate_loss
from tinylm.models import build_model
from tinylm.nn import Embedding, LayerNorm, Linear, Sequential
from tinylm.optim import AdamW
from tinylm.tasks.distill import distill
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

TINY_GPT = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_gpt(seed=0, **kw):
    tinylm.manual_seed(seed)
    return build_model("gpt", **{**TINY_GPT, **kw})


def linear_weights(model):
    """The weights prune() ranks by default: every Linear's, except GPT's head (tied to the embedding)."""
    return [m.weight for name, m in model.named_modules() if isinstance(m, Linear) and name != "lm_head"]


def zeros_in(weights):
    return sum(int((w.numpy() == 0).sum()) for w in weights)


# --- quantization ------------------------------------------------------------------------------


@given(st.integers(1, 6), st.integers(1, 6), st.data())
def test_quantize_dequantize_error_is_at_most_half_a_step(rows, cols, data):
    w = data.draw(arrays((rows, cols), np.float32, -3.0, 3.0))
    w[data.draw(st.integers(0, rows - 1))] *= data.draw(st.sampled_from([0.0, 1e-6, 1.0]))  # zero or tiny rows
    q, scale = quantize_weight(w)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and np.abs(q).max() <= 127
    err = np.abs(w - q * scale[:, None].astype(np.float64))
    assert (err <= scale[:, None] * (0.5 + 1e-5)).all()  # scale/2, up to float32 rounding of the scale
    nonzero = np.abs(w).max(axis=1) > 0
    assert (np.abs(q[nonzero]).max(axis=1) == 127).all()  # the largest weight of a row uses the full range


def test_quantized_linear_computes_what_the_linear_computes(rng):
    tinylm.manual_seed(0)
    linear = Linear(32, 24)
    quantized = quantize_linear(linear)
    x = tinylm.Tensor(rng.standard_normal((5, 32)).astype(np.float32), requires_grad=True)
    y, y_q = linear(x).numpy(), quantized(x)
    assert np.linalg.norm(y_q.numpy() - y) / np.linalg.norm(y) < 0.01
    y_q.sum().backward()
    assert x.grad is not None and quantized.bias.grad is not None  # gradients reach the input and the bias
    assert quantized.weight_int8.dtype == np.int8 and quantized.num_parameters() == 24  # only the bias is learned


def test_quantized_gpt_keeps_its_tied_head_and_round_trips(rng, tmp_path):
    model = tiny_gpt()
    x = rng.integers(0, 11, (2, 8))
    float_logits = model.eval()(x)[0].numpy()
    summary = quantize(model)
    assert len(summary["quantized"]) == 4 * 2 and list(summary["skipped"]) == ["lm_head"]
    assert isinstance(model.h[0].attn.c_attn, QuantizedLinear) and isinstance(model.lm_head, Linear)
    assert model.lm_head.weight is model.wte.weight  # still tied, still float
    assert summary["int8_bytes"] < summary["float_bytes"] / 3
    logits = model(x)[0].numpy()
    assert np.abs(logits - float_logits).max() < 0.05 * np.abs(float_logits).max()
    state = model.state_dict()
    assert state["h.0.mlp.c_fc.weight_int8"].dtype == np.int8 and "h.0.mlp.c_fc.weight" not in state

    other = tiny_gpt(seed=1)
    quantize(other)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.eval()(x)[0].numpy(), logits)

    path = tmp_path / "q.ckpt"
    save_weights(path, model, {"model": {"kind": "gpt", "config": TINY_GPT}, "compression": {"quantize": "int8"}})
    loaded, _ = load_compressed(path)
    np.testing.assert_array_equal(loaded.h[1].mlp.c_proj.weight_int8.numpy(), model.h[1].mlp.c_proj.weight_int8.numpy())
    np.testing.assert_array_equal(loaded.eval()(x)[0].numpy(), logits)


# --- pruning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sparsity", [0, 0.1, 0.5, 0.77, 0.999])
def test_prune_zeroes_exactly_the_target_share_of_linear_weights(sparsity):
    model = tiny_gpt()
    wte = model.wte.weight.numpy().copy()
    report = prune(model, sparsity)
    weights = linear_weights(model)
    n = sum(w.numel() for w in weights)
    assert report["total"] == n and report["zeros"] == round(sparsity * n) == zeros_in(weights)
    assert report["sparsity"] == pytest.approx(sparsity, abs=1 / n)
    np.testing.assert_array_equal(model.wte.weight.numpy(), wte)  # the (tied) embedding is left alone
    kept = np.concatenate([np.abs(w.numpy()[w.numpy() != 0]) for w in weights])
    assert kept.size == 0 or kept.min() >= report["threshold"]  # global: nothing kept is smaller than the cut
    assert set(report["layers"]) == {n for n, m in model.named_modules() if isinstance(m, Linear)} - {"lm_head"}


def test_prune_breaks_ties_by_position_and_can_include_embeddings():
    model = Sequential(Linear(2, 3, bias=False), Linear(3, 2, bias=False))
    for layer in model:
        layer.weight.data[:] = 1.0  # twelve equal magnitudes
    prune(model, 5 / 12)
    np.testing.assert_array_equal(model[0].weight_mask.numpy(), [[0, 0], [0, 0], [0, 1]])  # first five by index
    assert model[1].weight_mask.numpy().all()

    gpt = tiny_gpt()
    report = prune(gpt, 0.5, include=("linear", "embedding"))
    n = sum(w.numel() for w in linear_weights(gpt)) + gpt.wte.weight.numel() + gpt.wpe.weight.numel()
    assert report["total"] == n and report["zeros"] == round(0.5 * n) and "wte" in report["layers"]


def test_masks_survive_an_optimizer_step(rng):
    model = tiny_gpt()
    report = prune(model, 0.6)
    optimizer = AdamW(model.parameters(), lr=1e-2)
    x, y = rng.integers(0, 11, (4, 8)), rng.integers(0, 11, (4, 8))
    model(x, y)[1].backward()
    optimizer.step()
    assert zeros_in(linear_weights(model)) < report["zeros"]  # the update moved pruned weights
    assert apply_masks(model) == 8
    assert zeros_in(linear_weights(model)) == report["zeros"]
    remove_masks(model)
    assert not any(k.endswith("weight_mask") for k in model.state_dict())
    assert zeros_in(linear_weights(model)) == report["zeros"]


# --- distillation -------------------------------------------------------------------------------


def test_kl_and_distillation_gradients_match_central_differences(rng):
    student = tinylm.Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    teacher = tinylm.Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert gradcheck(lambda s, t: kl_divergence(s, t, temperature=2.0), [student, teacher]).passed
    targets = np.array([0, 4, 2])
    assert gradcheck(lambda s: distillation_loss(s, teacher.detach(), targets, 2.0, 0.3), [student]).passed
    p, q = (np.exp(z / 2) / np.exp(z / 2).sum(-1, keepdims=True) for z in (teacher.numpy(), student.numpy()))
    expected = (p * (np.log(p) - np.log(q))).sum(-1).mean()  # KL(p || q) written directly
    assert kl_divergence(student, teacher, 2.0).item() == pytest.approx(expected, rel=1e-12)
    assert kl_divergence(student, student, 2.0).item() == pytest.approx(0.0, abs=1e-12)


def test_distillation_brings_the_student_closer_to_the_teacher(rng):
    teacher = tiny_gpt(seed=1, n_embd=32)
    teacher.wte.weight.data *= 40  # a fixed random teacher with confident (far from uniform) predictions
    student = tiny_gpt(seed=2)
    ids = rng.integers(0, 11, 400)
    result = distill(student, teacher, ids[:300], ids[300:], steps=15, alpha=1.0, lr=1e-2)
    assert len(result["losses"]) == 15
    assert result["val_kl_after"] < 0.5 * result["val_kl_before"]
    with pytest.raises(ValueError, match="vocabulary"):
        distill(tiny_gpt(vocab_size=12), teacher, ids[:300], ids[300:], steps=1)


# --- compressed checkpoints ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A GPT trained for 20 steps on a small text: (checkpoint path, text path)."""
    folder = tmp_path_factory.mktemp("trained")
    corpus = folder / "corpus.txt"
    corpus.write_text("".join(f"the cat sat on mat {i % 7}. a dog ran to the log {i % 5}!\n" for i in range(200)),
                      encoding="utf-8")
    cfg = LMConfig(data=str(corpus), n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, max_iters=20,
                      eval_interval=10, eval_iters=2, warmup_iters=5, out=str(folder), progress=False, lr=3e-3)
    return Trainer(LanguageModeling(cfg), log=lambda s: None).run()["last"], str(corpus)


def test_compress_checkpoint_int8_and_pruning_end_to_end(trained, tmp_path):
    ckpt, corpus = trained
    rows = compress_checkpoint(ckpt, tmp_path / "small.ckpt", quantize="int8", prune=0.5, data=corpus)
    before, after = rows
    assert after["bytes"] < 0.6 * before["bytes"] and after["parameters"] == before["parameters"]
    assert after["nonzero"] < before["nonzero"] and np.isfinite(after["val_loss"]) and after["tokens_per_s"] > 0
    table = format_report(rows)
    assert table.splitlines()[0].startswith("model") and "after: pruned 50%, int8" in table

    model, meta = load_compressed(after["file"])
    assert "optimizer" not in meta and meta["compression"]["prune"]["target"] == 0.5
    quantized = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    n = sum(m.weight_int8.numel() for m in quantized)
    assert len(quantized) == 4 and zeros_in(m.weight_int8 for m in quantized) >= round(0.5 * n)
    tokenizer = load_tokenizer(meta["tokenizer"])
    val = train_val_split(tokenizer.encode(load_text(corpus)))[1]
    assert evaluate_loss(model, val)[0] == pytest.approx(after["val_loss"], rel=1e-6)  # what was measured is what loads
    out = generate(model, [tokenizer.encode("the cat")], max_new_tokens=5)
    assert out.shape == (1, 12)


def test_compress_checkpoint_pruned_and_distilled(trained, tmp_path):
    ckpt, corpus = trained
    rows = compress_checkpoint(ckpt, tmp_path / "pruned.ckpt", prune=0.3, data=corpus, distill_from=ckpt,
                               max_iters=3)
    arrays, meta = checkpoint.load(rows[-1]["file"])
    model = checkpoint.model_from(arrays, meta)  # not quantized: a plain checkpoint, the zeros stored
    assert meta["compression"]["distill"]["steps"] == 3
    assert "after: pruned 30%, distilled 3 steps" in format_report(rows)
    weights = linear_weights(model)
    assert zeros_in(weights) == round(0.3 * sum(w.numel() for w in weights))  # the masks held during distillation


def test_bad_input_gets_one_clear_line(trained, tmp_path):
    ckpt, corpus = trained
    cases = [
        (lambda: prune(tiny_gpt(), 1.5), ValueError, r"sparsity must be a fraction in \[0, 1\), got 1.5"),
        (lambda: quantize(Sequential(Embedding(5, 3), LayerNorm(3))), ValueError, "has no Linear layer"),
        (lambda: compress_checkpoint(tmp_path / "missing.ckpt", quantize="int8"), FileNotFoundError,
         "missing.ckpt does not exist"),
        (lambda: compress_checkpoint(ckpt, quantize="int4"), ValueError, "quantize must be None or 'int8'"),
        (lambda: compress_checkpoint(ckpt), ValueError, "nothing to do"),
        (lambda: compress_checkpoint(ckpt, ckpt, quantize="int8"), ValueError, "is the input checkpoint"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message) as info:
            call()
        assert "\n" not in str(info.value)
