"""Mixed precision (004.speed): float16 compute, float32 master weights, dynamic loss scaling."""
import numpy as np
import pytest

import tinylm
import tinylm.nn.functional as F
from tinylm import checkpoint
from tinylm.amp import LossScaler, MixedPrecision
from tinylm.models import build_model
from tinylm.optim import SGD, AdamW
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer


def test_loss_scaler_halves_on_overflow_and_grows_after_a_run():
    s = LossScaler(init_scale=1024, growth_interval=3)
    s.update(False)
    assert s.scale == 512 and s.good_steps == 0
    for _ in range(3):
        s.update(True)
    assert s.scale == 1024
    restored = LossScaler()
    restored.load_state_dict(s.state_dict())
    assert restored.scale == 1024
    with pytest.raises(ValueError, match="growth_factor > 1"):
        LossScaler(growth_factor=1.0)


def test_float16_ops_compute_their_reductions_in_float32():
    z = tinylm.Tensor(np.array([[10.0, 0.0, -10.0, 3.0]] * 2, dtype=np.float16), requires_grad=True)
    loss = F.cross_entropy(z, np.array([0, 3]))
    assert loss.dtype == np.float32  # the loss stays float32, as under PyTorch's autocast
    exact = F.cross_entropy(tinylm.Tensor(z.numpy().astype(np.float64)), np.array([0, 3])).item()
    assert abs(loss.item() - exact) < 2e-3
    loss.backward()
    assert z.grad.dtype == np.float16 and np.isfinite(z.grad.numpy()).all()


def tiny_gpt():
    tinylm.manual_seed(0)
    return build_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)


def test_masters_are_float32_and_the_model_float16(rng):
    model = tiny_gpt()
    reference = tiny_gpt()
    mp = MixedPrecision(model)
    assert all(p.dtype == np.float16 for p in model.parameters())
    assert all(m.dtype == np.float32 for m in mp.master_parameters())
    opt = SGD(mp.master_parameters(), lr=0.1)
    ref_opt = SGD(list(reference.parameters()), lr=0.1)
    x, y = rng.integers(0, 11, (4, 8)), rng.integers(0, 11, (4, 8))
    for _ in range(5):
        mp.backward(model(x, y)[1])
        assert mp.step(opt)
        reference(x, y)[1].backward()
        ref_opt.step()
        ref_opt.zero_grad()
    for p, m, r in zip(model.parameters(), mp.master_parameters(), reference.parameters()):
        np.testing.assert_array_equal(p.numpy(), m.numpy().astype(np.float16))  # the model is the rounded master
        np.testing.assert_allclose(m.numpy(), r.numpy(), atol=5e-3)             # and follows float32 training
    assert mp.master_state_dict()["wte.weight"].dtype == np.float32


def test_an_overflowing_step_is_skipped_and_the_scale_halved(rng):
    model = tiny_gpt()
    mp = MixedPrecision(model, LossScaler(init_scale=2.0 ** 60))
    opt = AdamW(mp.master_parameters(), lr=1e-2)
    before = [m.numpy().copy() for m in mp.master_parameters()]
    mp.backward(model(rng.integers(0, 11, (2, 8)), rng.integers(0, 11, (2, 8)))[1])
    assert not mp.step(opt)
    assert mp.scaler.scale == 2.0 ** 59
    assert all(np.array_equal(b, m.numpy()) for b, m in zip(before, mp.master_parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_trainer_with_amp_learns_and_saves_float32_weights(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcabcabd " * 300, encoding="utf-8")
    cfg = LMConfig(data=str(text), n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=30,
                      eval_interval=15, eval_iters=2, warmup_iters=3, lr=1e-2, out=str(tmp_path / "run"),
                      progress=False, amp=True)
    summary = Trainer(LanguageModeling(cfg), log=lambda s: None).run()
    assert summary["evals"][-1]["val_loss"] < summary["evals"][0]["val_loss"] - 0.5
    arrays, meta = checkpoint.load(tmp_path / "run" / "last.ckpt")
    assert arrays["model/wte.weight"].dtype == np.float32 and meta["loss_scaler"]["scale"] > 0
