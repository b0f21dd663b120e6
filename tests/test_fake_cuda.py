"""Every task with device='cuda', on any machine: CuPy replaced by fake_cupy, a stand-in over NumPy
that is as strict as CuPy about host and device arrays (np.asarray of a device array and a host
array inside a device operation are TypeErrors). The kernels are the NumPy reference set on both
devices, so a run on 'cuda' must compute exactly what the same run computes on 'cpu': anything
left on the host, or put there, shows as an error or a different loss. What only a real GPU
shows (the CuPy kernels, NCCL, speed) is in test_cuda.py and .ci/gpu.
"""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_distributed import needs_mpi

import fake_cupy
import tinylm
from tinylm import backend
from tinylm import nn
from tinylm.cli import main
from tinylm.train import read_metrics

TINY = ["--max-iters", "4", "--eval-interval", "2", "--eval-iters", "1", "--batch-size", "2", "--no-progress"]
TINY_LM = [*TINY, "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16"]


@pytest.fixture
def fake_gpu(monkeypatch):
    """`import cupy` gives the stand-in (one fake device); both devices use the reference kernels."""
    cupy = fake_cupy.install(monkeypatch)
    chosen = backend._chosen
    tinylm.set_kernels("numpy")
    backend._half_set.cache_clear()
    yield cupy
    tinylm.set_kernels(chosen)
    backend._half_set.cache_clear()


# ---------------------------------------------------------------------------------------
# The stand-in keeps CuPy's rules
# ---------------------------------------------------------------------------------------

def test_the_stand_in_refuses_what_cupy_refuses(fake_gpu):
    x = fake_gpu.asarray(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(x)
    for mixed in (lambda: x + np.ones(3), lambda: np.ones(3) + x, lambda: fake_gpu.maximum(x, np.ones(3))):
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            mixed()


def test_the_stand_in_computes_on_the_device(fake_gpu):
    x = fake_gpu.asarray(np.arange(6.0).reshape(2, 3))
    for result in (np.exp(x), x.sum(), x[0, 1], x.T @ x, x * 2.0 + np.float32(1), fake_gpu.where(x > 1, x, 0.0)):
        assert isinstance(result, fake_gpu.ndarray)
    assert x.sum().ndim == 0 and float(x.sum()) == 15.0 and int(x.max()) == 5
    assert isinstance(x.get(), np.ndarray) and (x.get() == np.arange(6.0).reshape(2, 3)).all()
    assert tinylm.backend.device_of(x) == "cuda" and tinylm.backend.xp_of(x) is fake_gpu
    assert fake_gpu.asarray(x) is x and (x[np.array([1, 0])].get()[0] == [3, 4, 5]).all()  # host indices: allowed


# ---------------------------------------------------------------------------------------
# Every command's training run: 'cuda' computes what 'cpu' computes
# ---------------------------------------------------------------------------------------

RUNS = {
    "train gpt": ["train", *TINY_LM],
    "train llama": ["train", *TINY_LM, "--model", "llama", "--n-kv-heads", "1"],
    "train lstm": ["train", *TINY, "--model", "lstm", "--n-embd", "16", "--n-hidden", "16", "--block-size", "16"],
    "train gpt, dropout": ["train", *TINY_LM, "--dropout", "0.2"],
    "pretrain bert": ["pretrain", *TINY_LM],
    "pretrain clm": ["pretrain", *TINY_LM, "--objective", "clm"],
}


BODIES = {"gpt": ["train", *TINY_LM], "llama": ["train", *TINY_LM, "--model", "llama"], "bert": ["pretrain", *TINY_LM]}


@pytest.mark.parametrize("body, method", [(body, method) for body in BODIES for method in ("head", "full", "prompt")]
                         + [("gpt", "lstm")])  # the LSTM classifier only takes the body's tokenizer
def test_finetuning_on_cuda(fake_gpu, tmp_path, body, method):
    run(BODIES[body], tmp_path / "body", "cpu")
    finetune = ["finetune", "--ckpt", str(tmp_path / "body" / "best.ckpt"), "--method", method, *TINY,
                "--n-prompt", "2"]
    assert_same(run(finetune, tmp_path / "cuda", "cuda"), run(finetune, tmp_path / "cpu", "cpu"))


def scores(folder):
    """Every loss, accuracy and KL the run logged, step by step (speeds and times left out)."""
    return [{k: v for k, v in row.items() if any(w in k for w in ("loss", "acc", "kl", "step"))}
            for row in read_metrics(folder / "metrics.jsonl")]


def assert_same(a, b, rel=1e-6, abs_tol=1e-7):
    """The same rows of scores, equal to `rel`, or to `abs_tol` for a score near 0: where a kernel sums
    in another order on each device (the embedding's gradient does), a KL of 3e-4, a difference of
    float32 log-probabilities near -4.6, moves by 3e-9."""
    assert [row.keys() for row in a] == [row.keys() for row in b]
    for x, y in zip(a, b):
        assert all(math.isclose(x[k], y[k], rel_tol=rel, abs_tol=abs_tol) for k in x), (x, y)


def run(argv, out, device, logs=None):
    """Scores of a command's run, from its metrics.jsonl in `logs` (default: the folder `out`)."""
    assert main([*argv, "--device", device, "--out", str(out)]) == 0
    return scores(logs or out)


@pytest.mark.parametrize("what", list(RUNS))
def test_a_run_on_cuda_computes_what_it_computes_on_the_cpu(fake_gpu, tmp_path, what):
    on_cpu = run(RUNS[what], tmp_path / "cpu", "cpu")
    on_gpu = run(RUNS[what], tmp_path / "cuda", "cuda")
    assert_same(on_gpu, on_cpu)
    assert len(on_gpu) >= 3


def test_mixed_precision_on_cuda(fake_gpu, tmp_path):
    """float16 on 'cuda' keeps matmul in float16 (the CPU widens it to float32): close, not equal."""
    on_cpu = run(["train", *TINY_LM, "--amp"], tmp_path / "cpu", "cpu")
    on_gpu = run(["train", *TINY_LM, "--amp"], tmp_path / "cuda", "cuda")
    assert_same(on_gpu, on_cpu, rel=0.0, abs_tol=0.02)


def test_resume_on_cuda(fake_gpu, tmp_path):
    """A run stopped after 2 steps and resumed on 'cuda' ends where one run of 4 steps ends."""
    straight = run(["train", *TINY_LM], tmp_path / "straight", "cuda")
    first = [*TINY_LM[:1], "2", *TINY_LM[2:]]  # --max-iters 2
    run(["train", *first], tmp_path / "resumed", "cuda")
    resumed = run(["train", *TINY_LM, "--resume"], tmp_path / "resumed", "cuda")
    assert_same(resumed[-1:], straight[-1:])


def test_distillation_on_cuda(fake_gpu, tmp_path):
    """The teacher goes to the student's device."""
    run(["train", *TINY_LM], tmp_path / "teacher", "cpu")
    ckpt = str(tmp_path / "teacher" / "best.ckpt")
    distill = ["compress", "--ckpt", ckpt, "--distill-from", ckpt, *TINY]
    on_cpu = run(distill, tmp_path / "cpu.ckpt", "cpu", logs=tmp_path / "cpu.distill")  # the training's folder
    on_gpu = run(distill, tmp_path / "cuda.ckpt", "cuda", logs=tmp_path / "cuda.distill")
    assert_same(on_gpu, on_cpu)


@pytest.mark.parametrize("model", ["gpt", "llama"])
def test_bench_train_on_cuda(fake_gpu, monkeypatch, model):
    """bench train's tinylm side with --device cuda: the model and every step on the device, the
    first loss the CPU's, the memory CuPy's pool holds (the stand-in has no pool: a fixed figure)."""
    from tinylm import bench_train

    pool = type("Pool", (), {"total_bytes": lambda self: 3 * 2 ** 20})()
    monkeypatch.setattr(fake_gpu, "get_default_memory_pool", lambda: pool, raising=False)
    on_gpu, on_cpu = (bench_train._run_tinylm(model, 2, False, device) for device in ("cuda", "cpu"))
    assert on_gpu["peak_device_mb"] == 3 and on_gpu["gpu"] == "fake GPU (NumPy)" and "peak_device_mb" not in on_cpu
    assert math.isclose(on_gpu["first_loss"], on_cpu["first_loss"], rel_tol=1e-6)


def test_translation_on_cuda(fake_gpu, tmp_path):
    from tinylm.tasks.seq2seq import train_seq2seq, translate

    small = dict(max_iters=4, eval_interval=2, eval_iters=1, batch_size=4, d_model=16, nhead=2, num_layers=1,
                 dim_feedforward=16, max_eval=3, progress=False)
    results = {device: train_seq2seq(device=device, out=str(tmp_path / device), log=lambda line: None, **small)
               for device in ("cpu", "cuda")}
    assert_same(scores(tmp_path / "cuda"), scores(tmp_path / "cpu"))
    cpu, gpu = results["cpu"], results["cuda"]
    assert gpu["model"].src_embed.weight.device == "cuda"
    for beam_size in (1, 3):
        assert translate(gpu["model"], gpu["vocab"], "1 2", beam_size) == translate(cpu["model"], cpu["vocab"],
                                                                                    "1 2", beam_size)


# ---------------------------------------------------------------------------------------
# Data parallel on 'cuda' without NCCL: MPI with copies through the host
# ---------------------------------------------------------------------------------------

@needs_mpi
@pytest.mark.parametrize("extra", [[], ["--zero", "1"]], ids=["data-parallel", "zero-1"])
def test_two_processes_on_cuda_train_as_one(tmp_path, extra):
    """`--nproc 2 --device cuda` where CuPy has no NCCL (the stand-in has none): the gradients go
    through MPI by way of the host. Every process gets the stand-in from a sitecustomize module."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import fake_cupy\nfake_cupy.install()\n")
    env = {**os.environ, "TINYLM_KERNELS": "numpy",
           "PYTHONPATH": os.pathsep.join([str(site), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    argv = ["train", *TINY_LM, "--batch-size", "4", "--device", "cuda"]
    for name, more in (("one", []), ("two", ["--nproc", "2", *extra])):
        done = subprocess.run([sys.executable, "-m", "tinylm", *argv, *more, "--out", str(tmp_path / name)],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "data parallel on 2 processes" in done.stdout
    assert_same(scores(tmp_path / "two"), scores(tmp_path / "one"), rel=2e-6)


# ---------------------------------------------------------------------------------------
# Models on 'cuda' take their inputs from the host (lists, NumPy arrays) or the device
# ---------------------------------------------------------------------------------------

def test_bert_on_cuda_takes_host_and_device_inputs(fake_gpu):
    from tinylm.models.bert import Bert, BertConfig

    tinylm.manual_seed(0)
    model = Bert(BertConfig(vocab_size=20, n_embd=8, n_head=2, n_layer=1, block_size=8)).eval()
    ids, types, mask = [[1, 5, 6, 2, 0]], [[0, 0, 0, 1, 1]], np.array([[1, 1, 1, 1, 0]])
    labels = dict(mlm_labels=[[-100, 7, -100, -100, -100]], nsp_labels=[1])
    on_cpu = model(ids, types, mask, **labels)
    model.to("cuda")
    on_device = [fake_gpu.asarray(np.asarray(a)) for a in (ids, types, mask)]
    for inputs in ((ids, types, mask), on_device):
        on_gpu = model(*inputs, **labels)
        assert on_gpu.loss.device == "cuda"
        assert float(on_gpu.loss.item()) == pytest.approx(float(on_cpu.loss.item()), rel=1e-6)


def test_gradients_cross_devices(fake_gpu):
    """Copy (Tensor.to): its gradient goes back to the device the tensor came from, and mixing
    devices in one op is one line naming both."""
    x = tinylm.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and y.grad_fn.name == "Copy"
    (y * y).sum().backward()
    assert x.grad.device == "cpu" and np.allclose(x.grad.numpy(), 2 * x.numpy())
    with pytest.raises(RuntimeError, match=r"^mul: tensors on different devices \(cpu and cuda\)"):
        x * y


def test_masks_follow_the_query_to_cuda(fake_gpu):
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = tinylm.randn(1, 4, 8)
    causal = nn.generate_square_subsequent_mask(4)
    on_cpu = mha(x, x, x, attn_mask=causal)[0]
    mha.to("cuda")
    on_gpu = mha(x.to("cuda"), x.to("cuda"), x.to("cuda"), attn_mask=causal)[0]  # a host mask: copied over
    assert on_gpu.device == "cuda" and np.allclose(on_gpu.numpy(), on_cpu.numpy())
    assert nn.generate_square_subsequent_mask(4, device="cuda").device == "cuda"
