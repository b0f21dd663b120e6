"""The Llama model (its shapes, loss, causality and cached generation are in test_lm.py with the other
language models): tied and untied heads, Hugging Face's parameter names, cached logits equal to
recomputed ones, checkpoints, training through `tinylm train`."""
import numpy as np
import pytest

import tinylm
from tinylm import checkpoint
from tinylm.models import Llama, LlamaConfig, build_model

TINY = dict(vocab_size=11, block_size=8, n_layer=2, n_head=4, n_kv_heads=2, n_embd=16)


def tiny(**kw):
    tinylm.manual_seed(0)
    return build_model("llama", **{**TINY, **kw})


def test_hugging_face_names_and_shapes_no_biases():
    model = tiny(tie_weights=False)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes["embed_tokens.weight"] == (11, 16) and shapes["lm_head.weight"] == (11, 16)
    assert shapes["norm.weight"] == (16,)
    for i in range(2):
        layer = f"layers.{i}."
        assert shapes[layer + "self_attn.q_proj.weight"] == (16, 16)
        assert shapes[layer + "self_attn.k_proj.weight"] == (8, 16)  # 2 key/value heads of size 4
        assert shapes[layer + "self_attn.v_proj.weight"] == (8, 16)
        assert shapes[layer + "self_attn.o_proj.weight"] == (16, 16)
        assert shapes[layer + "mlp.gate_proj.weight"] == shapes[layer + "mlp.up_proj.weight"] == (64, 16)
        assert shapes[layer + "mlp.down_proj.weight"] == (16, 64)
        assert shapes[layer + "input_layernorm.weight"] == shapes[layer + "post_attention_layernorm.weight"] == (16,)
    assert not any("bias" in name for name in shapes)
    assert len(shapes) == 3 + 2 * 9


def test_tied_and_untied_heads():
    tied, untied = tiny(), tiny(tie_weights=False)
    assert tied.lm_head.weight is tied.embed_tokens.weight
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    assert untied.num_parameters() == tied.num_parameters() + 11 * 16
    assert "lm_head.weight" in tied.state_dict()  # saved under both names, as GPT's tied head


def test_order_matters_without_a_position_table(rng):
    """No position embedding: only RoPE tells positions apart (attention alone reads a bag of
    words), so swapping two earlier tokens changes the last position's output."""
    model = tiny().eval()
    x = np.array([[1, 2, 3, 4, 5]])
    swapped = np.array([[2, 1, 3, 4, 5]])
    assert not np.allclose(model(x)[0].numpy()[0, -1], model(swapped)[0].numpy()[0, -1])


def test_cached_logits_equal_recomputed_logits(rng):
    """Position by position: the logits from the KV cache are those of the full forward pass."""
    model = tiny(n_kv_heads=1).double().eval()
    x = rng.integers(0, 11, (2, 8))
    full = model(x)[0].numpy()
    caches = [{} for _ in range(2)]
    steps = [model(x[:, :3], caches=caches)[0].numpy()]
    steps += [model(x[:, t:t + 1], caches=caches)[0].numpy() for t in range(3, 8)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-10, atol=1e-12)
    assert caches[0]["k"].shape == (2, 1, 8, 4)  # one key/value head cached, not four


def test_bad_configs_and_ids_get_one_line():
    with pytest.raises(ValueError, match="must divide n_head"):
        build_model("llama", **{**TINY, "n_kv_heads": 3})
    with pytest.raises(ValueError, match="even head size"):
        build_model("llama", **{**TINY, "n_embd": 12, "n_head": 4})  # head size 3
    with pytest.raises(ValueError, match="token ids must be in 0..10"):
        tiny()(np.array([[1, 11]]))


def test_checkpoint_round_trip(tmp_path, rng):
    model = tiny(tie_weights=False)
    checkpoint.save_model(tmp_path / "m.ckpt", model)
    loaded, meta = checkpoint.load_model(tmp_path / "m.ckpt")
    assert isinstance(loaded, Llama) and meta["model"]["kind"] == "llama"
    assert loaded.config == LlamaConfig(**TINY, tie_weights=False)
    x = rng.integers(0, 11, (2, 8))
    np.testing.assert_array_equal(loaded(x)[0].numpy(), model.eval()(x)[0].numpy())


def test_trainer_learns_and_resumes_exactly(corpus, tmp_path):
    from tinylm.tasks.lm import LanguageModeling, LMConfig
    from tinylm.train import Trainer

    def run(out, **kw):
        cfg = LMConfig(**{**dict(data=corpus, model="llama", n_layer=1, n_head=4, n_kv_heads=2, n_embd=16,
                                 block_size=16, batch_size=4, max_iters=40, eval_interval=10, eval_iters=2,
                                 warmup_iters=5, lr=3e-3, out=str(out), progress=False), **kw})
        return Trainer(LanguageModeling(cfg), log=lambda s: None).run()

    full = run(tmp_path / "a")
    assert full["evals"][-1]["val_loss"] < full["evals"][0]["val_loss"] - 0.5
    model, _ = checkpoint.load_model(tmp_path / "a" / "best.ckpt")
    assert isinstance(model, Llama) and model.config.n_kv_heads == 2
    run(tmp_path / "b", max_iters=20, lr_decay_iters=40)
    resumed = run(tmp_path / "b", resume=True)
    assert [e["val_loss"] for e in resumed["evals"]] == [e["val_loss"] for e in full["evals"]][3:]  # steps 30, 40


def test_cli_train_llama_untied_then_sample(corpus, tmp_path, capsys):
    from tinylm.cli import main

    out = tmp_path / "run"
    assert main(["train", "--model", "llama", "--data", corpus, "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
                 "--n-kv-heads", "1", "--intermediate-size", "24", "--no-tie-weights", "--block-size", "16",
                 "--batch-size", "4", "--max-iters", "10", "--eval-interval", "5", "--eval-iters", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert "samples:" in capsys.readouterr().out
    model, _ = checkpoint.load_model(out / "best.ckpt")
    assert model.config.intermediate_size == 24 and model.lm_head.weight is not model.embed_tokens.weight
    assert main(["sample", "--ckpt", str(out / "best.ckpt"), "--prompt", "the", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("the")
    assert main(["train", "--model", "llama", "--data", corpus, "--n-head", "4", "--n-kv-heads", "3",
                 "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "must divide n_head" in capsys.readouterr().err and not (tmp_path / "bad").exists()
