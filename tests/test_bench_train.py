"""`tinylm bench train` (tinylm.bench_train): the PyTorch models it times compute what tinylm's do,
and the command runs for both models. Speed itself is measured by the benchmark, not here."""
import io
import json

import numpy as np
import pytest

import tinylm
from tinylm import bench_train
from tinylm.cli import build_parser

torch = pytest.importorskip("torch", reason="the PyTorch side of bench train needs torch")

VOCAB = 65


def both(name):
    """tinylm's model and the bench's PyTorch model of `name`, the PyTorch one holding tinylm's weights."""
    tinylm.manual_seed(0)
    ours = bench_train.tinylm_model(name, VOCAB)
    theirs = bench_train.torch_model(name, VOCAB)
    state = ours.state_dict()
    assert set(theirs.state_dict()) == set(state)  # the same names, one to one
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in state.items()})
    return ours, theirs


def test_the_bench_llama_is_tinylm_llama():
    """RMSNorm, RoPE in the rotate_half layout, SwiGLU and 2 key/value heads, written in plain
    torch: with tinylm's weights loaded, the same logits, loss and gradients."""
    ours, theirs = both("llama")
    assert ours.config.kv_heads == 2 and ours.config.hidden_size == theirs.layers[0].mlp.gate_proj.out_features
    idx = np.random.default_rng(0).integers(0, VOCAB, (3, bench_train.RECIPE["block_size"] + 1))
    x, y = np.ascontiguousarray(idx[:, :-1]), np.ascontiguousarray(idx[:, 1:])
    logits, loss = ours(x, y)
    loss.backward()
    their_loss = theirs(torch.from_numpy(x), torch.from_numpy(y))
    their_loss.backward()
    np.testing.assert_allclose(theirs.logits(torch.from_numpy(x)).detach().numpy(), logits.numpy(),
                               rtol=1e-4, atol=2e-5)
    assert abs(their_loss.item() - loss.item()) < 1e-5
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-3, atol=2e-6, err_msg=name)


def test_the_bench_models_start_as_tinylm_models():
    """The same init scheme: N(0, 0.02) matrices, the residual projections scaled by 1/√(2 n_layer),
    norm gains 1, zero biases; and as many parameters."""
    for name, scaled in (("gpt", "proj.weight"), ("llama", ("o_proj.weight", "down_proj.weight"))):
        tinylm.manual_seed(0)
        torch.manual_seed(0)
        ours, theirs = bench_train.tinylm_model(name, VOCAB), bench_train.torch_model(name, VOCAB)
        assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
        std = {"matrix": 0.02, "scaled": 0.02 / np.sqrt(2 * bench_train.RECIPE["n_layer"])}
        for pname, p in theirs.named_parameters():
            w = p.detach().numpy()
            if p.dim() == 2:
                want = std["scaled" if pname.endswith(scaled) else "matrix"]
                assert abs(w.std() - want) < 0.15 * want, pname
            else:
                assert np.all(w == (0 if pname.endswith("bias") else 1)), pname


def test_cli_takes_the_model():
    parse = build_parser().parse_args
    assert parse(["bench", "train"]).model == "gpt"
    assert parse(["bench", "train", "--model", "llama"]).model == "llama"
    with pytest.raises(SystemExit):
        parse(["bench", "train", "--model", "bert"])
    with pytest.raises(ValueError, match="unknown model 'bert'"):
        bench_train.bench_train(model="bert")


def test_bench_train_llama_runs(tmp_path):
    """Two steps each side, in their own processes: the table, the recipe line and the JSON."""
    out = io.StringIO()
    results = bench_train.bench_train(steps=2, file=out, json_path=tmp_path / "t.json", model="llama")
    text = out.getvalue()
    assert "Llama n_layer=4 n_head=4 n_embd=128 block_size=64 batch_size=12 n_kv_heads=2 intermediate_size=352" in text
    assert "\ncpu: " in "\n" + text and set(results) == {"tinylm", "pytorch"}
    vocab = bench_train._data()[0]
    for r in results.values():  # after three warm-up steps: near log(vocab), the loss of a uniform guess
        assert r["steps"] == 2 and r["tokens_per_s"] > 0 and abs(r["first_loss"] - np.log(vocab)) < 0.3
    assert abs(results["tinylm"]["first_loss"] - results["pytorch"]["first_loss"]) < 0.05  # same batches and init
    saved = json.loads((tmp_path / "t.json").read_text())
    assert saved["model"] == "llama" and saved["results"] == results


def test_the_pytorch_side_on_the_gpu():
    """On a GPU, PyTorch's step on CUDA reports its device memory; without one, a clear refusal."""
    if torch.cuda.is_available():
        result = bench_train._run_torch("gpt", 1, False, "cuda")
        assert result["peak_device_mb"] > 0 and result["gpu"]
    else:
        with pytest.raises(RuntimeError, match=r"has no CUDA device here \(torch.cuda.is_available\(\) is False\)"):
            bench_train._run_torch("gpt", 1, False, "cuda")
