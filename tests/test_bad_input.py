"""Bad API input: each case is refused before anything changes, with one line that names what
was wrong and what was expected (DESIGN.md, "Errors")."""
import math
import re

import numpy as np
import pytest

import tinylm
from tinylm import checkpoint, optim
from tinylm.demo import run as demo
from tinylm.generate import _check as check_generate
from tinylm.generate import next_token_probs


def weights():
    return [tinylm.zeros(3, requires_grad=True)]


def generate_kwargs(**changes):
    """generate's keywords (its defaults) with `changes`, in _check's order."""
    kw = dict(max_new_tokens=20, do_sample=False, temperature=1.0, top_k=None, top_p=None,
              num_return_sequences=1, seed=None)
    kw.update(changes)
    return kw


LOGITS = np.zeros((1, 4))

# (id, call, expected exception, regex the message must match)
CASES = [
    # --- tensors from data that are not numbers ---
    ("tensor-strings", lambda: tinylm.Tensor(["a", "b"]), TypeError,
     r"list holding text \(dtype <U1\): expected numbers or booleans"),
    ("tensor-str", lambda: tinylm.tensor("a"), TypeError, r"from str \(dtype <U1\): expected numbers or booleans"),
    ("tensor-None", lambda: tinylm.Tensor(None), TypeError, r"from None \(dtype object\): expected numbers"),
    ("tensor-object", lambda: tinylm.tensor(object()), TypeError, r"from object \(dtype object\)"),
    ("tensor-None-inside", lambda: tinylm.Tensor([1.0, None]), TypeError, r"list holding None \(dtype object\)"),
    ("tensor-list-of-tensors", lambda: tinylm.tensor([tinylm.zeros(2), tinylm.zeros(2)]), TypeError,
     r"holding Tensors \(join tensors with tinylm.stack\)"),
    ("tensor-string-array", lambda: tinylm.Tensor(np.array(["1.0"])), TypeError, r"ndarray holding text"),
    ("tensor-dates", lambda: tinylm.Tensor(np.array(["2020-01-01"], dtype="datetime64[D]")), TypeError,
     r"ndarray holding dates \(dtype datetime64\[D\]\)"),
    ("tensor-ragged", lambda: tinylm.tensor([[1, 2], [3]]), ValueError, r"nested lists have different lengths"),
    ("tensor-text-dtype", lambda: tinylm.tensor([1, 2], dtype=str), TypeError, r"dtype <U0 is not a tensor dtype"),
    ("op-with-text", lambda: tinylm.zeros(2) + "a", TypeError, r"from str \(dtype <U1\)"),
    # --- shapes ---
    ("reshape-minus-two", lambda: tinylm.zeros(2, 3).reshape(-2, 3), ValueError,
     r"reshape: cannot view shape \(2, 3\) \(6 elements\) as \(-2, 3\): sizes must be >= 0, or -1"),
    ("reshape-two-minus-ones", lambda: tinylm.zeros(2, 3).reshape(-1, -1), ValueError,
     r"as \(-1, -1\): only one size can be -1"),
    ("reshape-float", lambda: tinylm.zeros(2, 3).view(2.0, 3), ValueError,
     r"as \(2.0, 3\): sizes must be integers, got float"),
    ("reshape-bool", lambda: tinylm.zeros(2, 3).reshape(True, 6), ValueError, r"sizes must be integers, got bool"),
    ("reshape-text", lambda: tinylm.zeros(2, 3).reshape("6"), ValueError, r"sizes must be integers, got str"),
    ("reshape-wrong-size", lambda: tinylm.zeros(2, 3).reshape(4, 2), ValueError, r"as \(4, 2\): that holds 8 elements"),
    ("reshape-no-divide", lambda: tinylm.zeros(2, 3).reshape(4, -1), ValueError,
     r"hold 4 elements, which does not divide 6"),
    ("reshape-zero-and-minus-one", lambda: tinylm.zeros(2, 3).reshape(0, -1), ValueError, r"-1 next to a size 0"),
    ("expand-negative", lambda: tinylm.zeros(1, 3).expand(-2, 3), ValueError,
     r"expand: cannot expand shape \(1, 3\) to \(-2, 3\): expected 2 or more integer sizes >= 0"),
    ("expand-new-minus-one", lambda: tinylm.zeros(1, 3).expand(-1, 1, 3), ValueError, r"not a new leading one"),
    ("expand-fewer-sides", lambda: tinylm.zeros(1, 3).expand(3), ValueError, r"expected 2 or more"),
    ("expand-not-from-one", lambda: tinylm.zeros(1, 3).expand(2, 2), ValueError, r"only be expanded from size 1"),
    ("permute-repeated", lambda: tinylm.zeros(1, 3).permute(0, 0), ValueError,
     r"permute: dims \(0, 0\) are not a reordering"),
    ("permute-out-of-range", lambda: tinylm.zeros(1, 3).permute(0, 3), ValueError,
     r"dims \(0, 3\) are not a reordering"),
    ("transpose-out-of-range", lambda: tinylm.zeros(1, 3).transpose(0, 5), IndexError,
     r"dim1 5 is out of range for shape \(1, 3\): expected -2..1"),
    ("transpose-float", lambda: tinylm.zeros(1, 3).transpose(0, 1.0), TypeError, r"dim1 must be an integer, got float"),
    ("unsqueeze-out-of-range", lambda: tinylm.zeros(1, 3).unsqueeze(5), IndexError, r"dim 5 is out of range.*-3..2"),
    ("squeeze-out-of-range", lambda: tinylm.zeros(1, 3).squeeze(2), IndexError, r"dim 2 is out of range"),
    ("flatten-backwards", lambda: tinylm.zeros(1, 3).flatten(1, 0), ValueError, r"start_dim 1 comes after end_dim 0"),
    # --- optimizers, clipping, schedule ---
    ("adamw-negative-lr", lambda: optim.AdamW(weights(), lr=-1), ValueError,
     r"AdamW: lr must be a finite number >= 0, got -1"),
    ("adamw-nan-lr", lambda: optim.AdamW(weights(), lr=math.nan), ValueError,
     r"lr must be a finite number >= 0, got nan"),
    ("sgd-inf-lr", lambda: optim.SGD(weights(), lr=math.inf), ValueError,
     r"SGD: lr must be a finite number >= 0, got inf"),
    ("adamw-text-lr", lambda: optim.AdamW(weights(), lr="0.1"), TypeError, r"lr must be a number, got str"),
    ("adamw-beta1", lambda: optim.AdamW(weights(), betas=(1.5, 0.9)), ValueError,
     r"betas\[0\] must be a finite number >= 0 and < 1, got 1.5"),
    ("adam-beta2-one", lambda: optim.Adam(weights(), betas=(0.9, 1.0)), ValueError,
     r"Adam: betas\[1\] must be a finite number >= 0 and < 1, got 1.0"),
    ("adamw-betas-not-pair", lambda: optim.AdamW(weights(), betas=0.9), ValueError, r"betas must be a pair"),
    ("adamw-eps", lambda: optim.AdamW(weights(), eps=-1e-8), ValueError, r"eps must be a finite number >= 0"),
    ("adamw-weight-decay", lambda: optim.AdamW(weights(), weight_decay=-0.1), ValueError,
     r"weight_decay must be a finite number >= 0"),
    ("sgd-momentum", lambda: optim.SGD(weights(), momentum=-1), ValueError,
     r"SGD: momentum must be a finite number >= 0, got -1"),
    ("sgd-group-lr", lambda: optim.SGD([{"params": weights(), "lr": -0.1}]), ValueError, r"SGD: lr must be"),
    ("clip-zero", lambda: optim.clip_grad_norm_(weights(), 0.0), ValueError,
     r"max_norm must be a finite number > 0, got 0.0"),
    ("clip-negative", lambda: optim.clip_grad_norm_(weights(), -1.0), ValueError,
     r"max_norm must be a finite number > 0"),
    ("clip-nan", lambda: optim.clip_grad_norm_(weights(), math.nan), ValueError,
     r"max_norm must be a finite number > 0, got nan"),
    ("schedule-step", lambda: optim.warmup_cosine(-1, 1e-3, 1e-4, 10, 100), ValueError,
     r"warmup_cosine: step must be .* >= 0, got -1"),
    ("schedule-lr", lambda: optim.warmup_cosine(0, -1e-3, 1e-4, 10, 100), ValueError, r"warmup_cosine: lr must"),
    ("schedule-warmup", lambda: optim.warmup_cosine(0, 1e-3, 1e-4, -10, 100), ValueError,
     r"warmup_iters must .* got -10"),
    # --- generation ---
    ("probs-temperature-zero", lambda: next_token_probs(LOGITS, temperature=0), ValueError,
     r"temperature must be a finite number > 0, got 0 \(.*use do_sample=False\)"),
    ("probs-temperature-nan", lambda: next_token_probs(LOGITS, temperature=math.nan), ValueError,
     r"temperature .* got nan"),
    ("probs-top-k-zero", lambda: next_token_probs(LOGITS, top_k=0), ValueError, r"top_k must be an integer >= 1"),
    ("probs-top-k-float", lambda: next_token_probs(LOGITS, top_k=2.5), TypeError,
     r"top_k must be an integer, got float"),
    ("probs-top-p-zero", lambda: next_token_probs(LOGITS, top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
    ("probs-top-p-above-one", lambda: next_token_probs(LOGITS, top_p=1.5), ValueError,
     r"top_p must be in \(0, 1\].*got 1.5"),
    ("generate-temperature", lambda: check_generate(**generate_kwargs(do_sample=True, temperature=-1.0)), ValueError,
     r"temperature must be a finite number > 0"),
    ("generate-top-k", lambda: check_generate(**generate_kwargs(top_k=0)), ValueError,
     r"top_k must be an integer >= 1"),
    ("generate-max-new-tokens", lambda: check_generate(**generate_kwargs(max_new_tokens=-1)), ValueError,
     r"max_new_tokens must be an integer >= 0, got -1"),
    ("generate-max-new-tokens-float", lambda: check_generate(**generate_kwargs(max_new_tokens=5.0)), TypeError,
     r"max_new_tokens must be an integer"),
    ("generate-num-return-sequences", lambda: check_generate(**generate_kwargs(num_return_sequences=0)), ValueError,
     r"num_return_sequences must be an integer >= 1, got 0"),
    ("generate-seed", lambda: check_generate(**generate_kwargs(do_sample=True, seed=-1)), ValueError,
     r"seed must be an integer >= 0"),
    ("generate-greedy-copies", lambda: check_generate(**generate_kwargs(num_return_sequences=2)), ValueError,
     r"greedy search is deterministic"),
    # --- demo (the CLI's `tinylm demo --steps/--seed`) ---
    ("demo-steps", lambda: demo(steps=-1), ValueError, r"steps \(--steps\) must be an integer >= 1, got -1"),
    ("demo-steps-zero", lambda: demo(steps=0), ValueError, r"steps \(--steps\) must be an integer >= 1, got 0"),
    ("demo-seed", lambda: demo(seed=-1), ValueError, r"seed \(--seed\) must be an integer >= 0, got -1"),
    ("demo-lr", lambda: demo(lr=math.nan), ValueError, r"lr must be a finite number > 0"),
]


@pytest.mark.parametrize("call, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(call, error, pattern):
    with pytest.raises(error, match=pattern) as caught:
        call()
    assert "\n" not in str(caught.value)


def test_greedy_decoding_accepts_any_temperature():
    """HF's rule: temperature only matters when sampling, so greedy decoding takes 0 and ignores it."""
    from tinylm.generate import generate
    from tinylm.models import build_model

    tinylm.manual_seed(0)
    model = build_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8).eval()
    greedy = [generate(model, [1, 2], max_new_tokens=5, do_sample=False, temperature=t) for t in (0.0, 1.0, 7.0)]
    assert greedy[0].shape == (1, 7) and all(np.array_equal(greedy[0], g) for g in greedy[1:])


def test_expand_minus_one_keeps_a_side():
    assert tinylm.zeros(1, 3).expand(4, -1).shape == (4, 3)
    assert tinylm.tensor(2.0).transpose(0, -1).shape == ()  # a 0-d tensor is its own transpose


def test_optimizer_load_state_dict_checks_everything_first():
    w = weights()
    opt = optim.AdamW(w, lr=0.1)
    saved = opt.state_dict()
    saved["groups"][0]["betas"] = [1.5, 0.9]
    with pytest.raises(ValueError, match=r"betas\[0\]"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    saved = opt.state_dict()
    saved["groups"][0]["lr"] = 0.5
    saved["state"] = {0: {"exp_avg": np.zeros(2), "exp_avg_sq": np.zeros(2)}}
    with pytest.raises(ValueError, match="does not match its shape"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.1


def test_checkpoint_folder_and_text_file_are_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=rf"^{re.escape(str(tmp_path))} is a folder, not a checkpoint file$"):
        checkpoint.load(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("these are my notes\n")
    with pytest.raises(ValueError, match=r"notes.txt is not a tinylm checkpoint \(not an .npz archive\)$"):
        checkpoint.load(text)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.ckpt is corrupt or truncated \(an empty file\)"):
        checkpoint.load(tmp_path / "empty.ckpt")
