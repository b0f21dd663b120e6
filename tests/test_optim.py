"""Optimizers: one step by hand, trajectories against PyTorch (when installed), clipping, schedule."""
import math

import numpy as np
import pytest

import tinylm
from tinylm import optim


def quadratic_grads(params, targets):
    loss = sum(((p - t) ** 2).sum() for p, t in zip(params, targets))
    loss.backward()
    return loss.item()


def test_sgd_one_step_by_hand():
    w = tinylm.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()              # dL/dw = 2w
    opt.step()
    np.testing.assert_allclose(w.numpy(), [1 - 0.1 * 2, -2 + 0.1 * 4], rtol=1e-6)


def test_adam_one_step_by_hand():
    w = tinylm.tensor([0.5], dtype=tinylm.float64, requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    (w * 3).sum().backward()              # g = 3: m = 0.3, v = 0.009, corrected m/√v = 1
    opt.step()
    assert math.isclose(w.item(), 0.5 - 0.1 * 3 / (3 + 1e-8), rel_tol=1e-12)


@pytest.mark.parametrize("name,kwargs", [
    ("SGD", {"lr": 0.1}), ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01}), ("Adam", {"lr": 0.01, "weight_decay": 0.1, "betas": (0.8, 0.95)}),
    ("AdamW", {"lr": 0.01}), ("AdamW", {"lr": 0.02, "weight_decay": 0.5, "eps": 1e-6})])
def test_trajectories_match_pytorch(name, kwargs, rng):
    torch = pytest.importorskip("torch")
    init = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    targets = [rng.standard_normal((3, 2)), rng.standard_normal(2)]
    ours = [tinylm.Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt, ref = getattr(optim, name)(ours, **kwargs), getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(20):
        opt.zero_grad()
        quadratic_grads(ours, [tinylm.Tensor(t) for t in targets])
        opt.step()
        ref.zero_grad()
        sum(((p - torch.tensor(t)) ** 2).sum() for p, t in zip(theirs, targets)).backward()
        ref.step()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_param_groups_and_state_dict_round_trip(rng):
    a = tinylm.Tensor(rng.standard_normal(3), requires_grad=True)
    b = tinylm.Tensor(rng.standard_normal(3), requires_grad=True)
    opt = optim.AdamW([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.1)
    assert opt.param_groups[0]["weight_decay"] == 0.01 and opt.param_groups[1]["weight_decay"] == 0.0
    quadratic_grads([a, b], [tinylm.zeros(3, dtype=tinylm.float64)] * 2)
    opt.step()
    saved = opt.state_dict()
    a2, b2 = tinylm.Tensor(a.numpy().copy(), requires_grad=True), tinylm.Tensor(b.numpy().copy(), requires_grad=True)
    opt2 = optim.AdamW([{"params": [a2]}, {"params": [b2], "weight_decay": 0.0}], lr=0.1)
    opt2.load_state_dict(saved)
    for o, ps in ((opt, [a, b]), (opt2, [a2, b2])):
        o.zero_grad()
        quadratic_grads(ps, [tinylm.zeros(3, dtype=tinylm.float64)] * 2)
        o.step()
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    with pytest.raises(ValueError, match="parameter groups"):
        optim.AdamW([a2], lr=0.1).load_state_dict(saved)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad=True"):
        optim.SGD([tinylm.zeros(2)], lr=0.1)


def test_clip_grad_norm_scales_to_the_limit():
    a = tinylm.zeros(2, requires_grad=True)
    b = tinylm.zeros(1, requires_grad=True)
    a.grad, b.grad = tinylm.tensor([3.0, 0.0]), tinylm.tensor([4.0])
    assert math.isclose(optim.clip_grad_norm_([a, b], 1.0), 5.0)
    np.testing.assert_allclose([*a.grad.numpy(), *b.grad.numpy()], [0.6, 0.0, 0.8], rtol=1e-5)
    assert math.isclose(optim.clip_grad_norm_([a, b], 10.0), 1.0, rel_tol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0.8], rtol=1e-5)


def test_warmup_cosine_schedule():
    lr = [optim.warmup_cosine(s, 1.0, 0.1, 10, 110) for s in range(130)]
    assert lr[0] == pytest.approx(1 / 11) and lr[9] == pytest.approx(10 / 11)
    assert lr[10] == pytest.approx(1.0) and lr[60] == pytest.approx(0.55)
    assert lr[110] == lr[129] == 0.1 and all(x >= y for x, y in zip(lr[10:], lr[11:]))


def test_linear_warmup_from_zero_beside_nanogpts():
    nanogpt = [optim.warmup_cosine(s, 1.0, 0.1, 10, 110) for s in range(130)]
    linear = [optim.warmup_cosine(s, 1.0, 0.1, 10, 110, warmup="linear") for s in range(130)]
    assert linear[:10] == pytest.approx([t / 10 for t in range(10)]) and linear[0] == 0.0
    assert nanogpt[:10] == pytest.approx([(t + 1) / 11 for t in range(10)])
    assert linear[10:] == nanogpt[10:]  # the same cosine decay after the warm-up
    assert optim.warmup_cosine(0, 1.0, 0.1, 0, 10, warmup="linear") == 1.0  # no warm-up: no division by 0
    with pytest.raises(ValueError, match="warmup must be 'nanogpt' or 'linear', got 'cosine'"):
        optim.warmup_cosine(0, 1.0, 0.1, 10, 110, warmup="cosine")


def test_trainer_follows_the_chosen_warmup(tmp_path):
    import json

    from tinylm.tasks.lm import LanguageModeling, LMConfig
    from tinylm.train import Trainer

    (tmp_path / "text.txt").write_text("the cat sat on the mat.\n" * 100, encoding="utf-8")
    for warmup in ("nanogpt", "linear"):
        out = tmp_path / warmup
        cfg = LMConfig(data=str(tmp_path / "text.txt"), n_layer=1, n_head=2, n_embd=8, block_size=8, batch_size=2,
                       max_iters=6, warmup_iters=4, lr=1.0, min_lr=0.0, eval_interval=6, eval_iters=1, log_interval=1,
                       warmup=warmup, out=str(out), progress=False)
        Trainer(LanguageModeling(cfg), log=lambda s: None).run()
        lrs = [row["lr"] for row in map(json.loads, open(out / "metrics.jsonl")) if "tokens_per_s" in row]
        assert lrs == pytest.approx([optim.warmup_cosine(s, 1.0, 0.0, 4, 6, warmup) for s in range(6)])
    assert lrs[0] == 0.0
