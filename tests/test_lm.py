"""Language models end to end: models, generation, checkpoints, the trainer and the CLI."""
import json
import os

import numpy as np
import pytest

import tinylm
from tinylm import checkpoint
from tinylm.generate import generate, next_token_probs
from tinylm.models import GPT, RNNLM, build_model
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

TINY_GPT = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
TINY_RNN = dict(vocab_size=11, block_size=8, n_layer=2, n_embd=8, n_hidden=12)
TINY_LLAMA = dict(vocab_size=11, block_size=8, n_layer=2, n_head=4, n_kv_heads=2, n_embd=16)


def tiny(kind, **overrides):
    tinylm.manual_seed(0)
    return build_model(kind, **{**{"gpt": TINY_GPT, "llama": TINY_LLAMA}.get(kind, TINY_RNN), **overrides})


@pytest.mark.parametrize("kind", ["gpt", "llama", "lstm", "rnn"])
def test_forward_shapes_and_loss(kind, rng):
    model = tiny(kind)
    x, y = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    logits, loss = model(x, y)
    assert logits.shape == (3, 8, 11) and loss.shape == ()
    assert abs(loss.item() - np.log(11)) < 0.5  # untrained: close to uniform guessing
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("kind", ["gpt", "llama"])
def test_transformers_are_causal_and_keep_to_block_size(kind, rng):
    model = tiny(kind).eval()
    x = rng.integers(0, 11, (1, 8))
    changed = x.copy()
    changed[0, 5] = (x[0, 5] + 1) % 11
    a, b = model(x)[0].numpy(), model(changed)[0].numpy()
    np.testing.assert_allclose(a[0, :5], b[0, :5], rtol=1e-5, atol=1e-6)  # the past does not see the future
    assert not np.allclose(a[0, 5:], b[0, 5:])
    with pytest.raises(ValueError, match="longer than block_size 8"):
        model(rng.integers(0, 11, (1, 9)))


def test_gpt_ties_weights():
    model = tiny("gpt")
    assert model.lm_head.weight is model.wte.weight  # Llama's ties: tests/test_llama.py


def test_gradient_accumulation_equals_the_large_batch(rng):
    x, y = rng.integers(0, 11, (8, 8)), rng.integers(0, 11, (8, 8))
    big, small = tiny("gpt"), tiny("gpt")
    big(x, y)[1].backward()
    for half in (slice(0, 4), slice(4, 8)):
        (small(x[half], y[half])[1] / 2).backward()
    for (name, p), q in zip(big.named_parameters(), small.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind, overrides", [("gpt", {}), ("lstm", {}), ("rnn", {}), ("llama", {"n_kv_heads": 4}),
                                             ("llama", {"n_kv_heads": 2}), ("llama", {"n_kv_heads": 1})])
def test_cached_and_uncached_generation_give_the_same_tokens(kind, overrides):
    model = tiny(kind, **overrides)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    for kwargs in ({"do_sample": False}, {"do_sample": True, "top_k": 5, "temperature": 0.9, "seed": 3}):
        cached = generate(model, prompt, max_new_tokens=12, use_cache=True, **kwargs)  # 15 > block_size 8
        uncached = generate(model, prompt, max_new_tokens=12, use_cache=False, **kwargs)
        np.testing.assert_array_equal(cached, uncached)
        assert cached.shape == (2, 15) and (cached[:, :3] == prompt).all()


def test_generation_keywords():
    model = tiny("gpt")
    out = generate(model, [1, 2], max_new_tokens=5, do_sample=True, num_return_sequences=4, seed=0)
    assert out.shape == (4, 7) and len({tuple(r) for r in out}) > 1
    np.testing.assert_array_equal(out, generate(model, [1, 2], max_new_tokens=5, do_sample=True,
                                                num_return_sequences=4, seed=0))
    greedy = generate(model, [1, 2], max_new_tokens=6)
    eos = int(greedy[0, 3])
    stopped = generate(model, [[1, 2], [1, 2]], max_new_tokens=6, eos_token_id=eos)
    first = 2 + list(greedy[0, 2:]).index(eos)  # where greedy decoding first produces eos
    assert stopped.shape[1] == first + 1 and (stopped[:, -1] == eos).all()
    with pytest.raises(ValueError, match="greedy search is deterministic"):
        generate(model, [1], num_return_sequences=2)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        generate(model, [99])
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(model, [1], do_sample=True, top_p=0.0)


def test_top_k_and_top_p_filtering():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    np.testing.assert_allclose(next_token_probs(logits, top_k=2), [[0.625, 0.375, 0, 0]])
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.7), [[0.625, 0.375, 0, 0]])
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.81), [[0.5, 0.3, 0.15, 0]] / np.float64(0.95))
    np.testing.assert_allclose(next_token_probs(logits, top_p=0.1), [[1, 0, 0, 0]])
    hot = next_token_probs(logits, temperature=100.0)
    assert np.ptp(hot) < 0.01


def test_checkpoint_is_atomic_and_errors_are_one_line(tmp_path):
    path = tmp_path / "m.ckpt"
    checkpoint.save(path, {"w": np.arange(3.0)}, {"model": {"kind": "gpt"}, "step": 1})
    arrays, meta = checkpoint.load(path)
    assert meta["step"] == 1 and arrays["w"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]  # no temporary file left behind
    data = path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.ckpt is corrupt or truncated"):
        checkpoint.load(tmp_path / "cut.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(ValueError, match=r"text.ckpt is not a tinylm checkpoint \(not an .npz archive\)"):
        checkpoint.load(tmp_path / "text.ckpt")
    with pytest.raises(FileNotFoundError, match="nope.ckpt does not exist"):
        checkpoint.load(tmp_path / "nope.ckpt")

    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.save(path, {"w": Boom()}, {"model": {}})
    assert checkpoint.load(path)[1]["step"] == 1 and len(list(tmp_path.iterdir())) == 3


def small_config(corpus, out, **kw):
    base = dict(data=corpus, n_layer=1, n_head=2, n_embd=16, n_hidden=16, block_size=16, batch_size=4,
                max_iters=30, eval_interval=10, eval_iters=2, warmup_iters=5, out=str(out), progress=False,
                log_interval=1, lr=3e-3)
    return LMConfig(**{**base, **kw})


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_trainer_learns_and_writes_its_outputs(corpus, tmp_path, kind):
    summary = Trainer(LanguageModeling(small_config(corpus, tmp_path, model=kind, max_iters=60)), log=lambda s: None).run()
    first, last = summary["evals"][0], summary["evals"][-1]
    assert last["val_loss"] < first["val_loss"] - 0.5
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert {"step", "train_loss", "lr", "tokens_per_s"} <= set(rows[1]) and any("val_loss" in r for r in rows)
    assert os.path.exists(tmp_path / "best.ckpt") and os.path.exists(tmp_path / "last.ckpt")
    arrays, meta = checkpoint.load(tmp_path / "best.ckpt")
    model = checkpoint.model_from(arrays, meta)
    assert meta["model"]["kind"] == kind and isinstance(model, GPT if kind == "gpt" else RNNLM)


def test_resume_gives_the_losses_of_an_uninterrupted_run(corpus, tmp_path):
    full = Trainer(LanguageModeling(small_config(corpus, tmp_path / "a", dropout=0.1)), log=lambda s: None).run()
    Trainer(LanguageModeling(small_config(corpus, tmp_path / "b", dropout=0.1, max_iters=17, lr_decay_iters=30)),
            log=lambda s: None).run()
    resumed = Trainer(LanguageModeling(small_config(corpus, tmp_path / "b", dropout=0.1, lr_decay_iters=30, resume=True)),
                      log=lambda s: None).run()
    assert resumed["train_losses"] == full["train_losses"][17:]
    assert [e["val_loss"] for e in resumed["evals"]] == [e["val_loss"] for e in full["evals"][2:]]
    rows = [json.loads(line)["step"] for line in open(tmp_path / "b" / "metrics.jsonl") if "val_loss" not in line]
    assert rows == list(range(30))


def test_resume_refuses_a_different_model(corpus, tmp_path):
    Trainer(LanguageModeling(small_config(corpus, tmp_path, max_iters=2)), log=lambda s: None).run()
    with pytest.raises(ValueError, match=r"does not match the requested model: n_embd=16 \(asked 32\)"):
        Trainer(LanguageModeling(small_config(corpus, tmp_path, n_embd=32, resume=True)), log=lambda s: None).run()
    with pytest.raises(ValueError, match="holds a gpt model, but --model lstm"):
        Trainer(LanguageModeling(small_config(corpus, tmp_path, model="lstm", resume=True)), log=lambda s: None).run()


def test_early_stopping(corpus, tmp_path):
    summary = Trainer(LanguageModeling(small_config(corpus, tmp_path, lr=0.0, min_lr=0.0, patience=2, max_iters=100)),
                      log=lambda s: None).run()
    assert len(summary["evals"]) == 3 and summary["steps"] == 20


def test_cli_train_sample_eval(corpus, tmp_path, capsys):
    from tinylm.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", corpus, "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
                 "--block-size", "16", "--batch-size", "4", "--max-iters", "20", "--eval-interval", "10",
                 "--eval-iters", "2", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "best val loss" in text and "samples:" in text
    assert main(["sample", "--ckpt", str(out / "best.ckpt"), "--prompt", "the", "--max-new-tokens", "10",
                 "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("the")
    assert main(["eval", "--ckpt", str(out / "best.ckpt"), "--data", corpus]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.txt" in err
    assert main(["sample", "--ckpt", str(out / "best.ckpt"), "--temperature", "0"]) == 2


def test_carried_state_trains_and_resumes_exactly(corpus, tmp_path):
    kw = dict(model="lstm", carry_state=True, lr_decay_iters=30)
    full = Trainer(LanguageModeling(small_config(corpus, tmp_path / "a", **kw)), log=lambda s: None).run()
    Trainer(LanguageModeling(small_config(corpus, tmp_path / "b", max_iters=13, **kw)), log=lambda s: None).run()
    resumed = Trainer(LanguageModeling(small_config(corpus, tmp_path / "b", resume=True, **kw)), log=lambda s: None).run()
    assert resumed["train_losses"] == full["train_losses"][13:]
    assert full["evals"][-1]["val_loss"] < full["evals"][0]["val_loss"] - 0.1
    with pytest.raises(ValueError, match="carry-state is for the recurrent models"):
        Trainer(LanguageModeling(small_config(corpus, tmp_path / "c", carry_state=True)), log=lambda s: None).run()


@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_bad_token_ids_get_one_clear_line(kind):
    model = tiny(kind)
    with pytest.raises(ValueError, match=r"expected token ids as an integer array \(batch, time\), got shape \(3,\)"):
        model([1, 2, 3])
    with pytest.raises(ValueError, match=r"token ids must be in 0..10, got 0..11"):
        model(np.array([[0, 11]]))
    assert model([[1, 2, 3]])[0].shape == (1, 3, 11)  # nested lists are fine
