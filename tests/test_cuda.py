"""The GPU half (issue 16): what can be checked of it on any machine, and what only a GPU shows.

Everywhere:
* every CUDA launch of the CuPy set, made by its wrappers with NumPy standing in for CuPy (a
  "dry run"), names a kernel its .cu file defines as a template, passes each argument with the
  exact C type of the kernel's parameter (CuPy would hand a Python int over as a long long) and
  fits CUDA's launch limits; sizes beyond one launch are refused in one line before any launch;
* a GPU whose CuPy kernel set cannot be loaded is a one-line error, never the reference kernels;
* `tinylm bench --device` and `.ci/gpu` without a GPU.
On a GPU (marked gpu; the same tests run here for the CPU kernel sets, which shows the tests
themselves right): ±inf and NaN logits, ignore_index inside [0, C) and rows all ignored,
layer_norm_backward's weight gradient over many rows, out-of-range targets, and a GPT's
training step through Tensor, in float64 and with float16 (--amp).
"""
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernel_contract import CASES, IGNORE, LAYOUTS, SETS, assert_matches, cp, gpu, kernels_of, laid_out

import tinylm
import tinylm.kernels
import tinylm.nn.functional as F
from tinylm import backend
from tinylm.cli import main
from tinylm.kernels import reference as ref
from tinylm.kernels.reference import CONTRACT

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------
# The dry run: cupy_gpu's wrappers on NumPy arrays, every launch checked instead of run
# ---------------------------------------------------------------------------------------

_SIGNATURE = re.compile(r"(template\s*<typename T>\s*)?__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?"
                        r"(\w+)\s*\(([^)]*)\)")
_C_TYPES = {"int": np.int32, "long long": np.int64}  # the C types of the kernels' integers
NO_LAUNCH = {"matmul": "cuBLAS, through cupy.matmul", "adam_step": "the reference's code on CuPy arrays",
             "swiglu": "the reference's code on CuPy arrays", "swiglu_backward": "the reference's code on CuPy arrays",
             "rope": "the reference's code on CuPy arrays"}


def c_type(param):
    """The C type of a kernel parameter: 'const T* __restrict__ x' -> 'T*', 'long long n' -> 'long long'."""
    ctype = re.sub(r"\b(const|__restrict__)\b|\w+\s*$", "", param)  # qualifiers and the name go
    return " ".join(ctype.replace("*", " * ").split()).replace(" *", "*")


def kernel_signatures(cuda_dir):
    """{family: {kernel: [its parameters' C types]}} from the .cu files, common.cuh pasted in as cupy_gpu does."""
    found = {}
    for cu in sorted(cuda_dir.glob("*.cu")):
        source = cu.read_text().replace('#include "common.cuh"', (cuda_dir / "common.cuh").read_text())
        found[cu.stem] = {}
        for template, name, params in _SIGNATURE.findall(source):
            assert template, f"{cu.name}: {name} is not a template: the name expression {name}<float> cannot resolve"
            found[cu.stem][name] = [c_type(p) for p in params.split(",")]
    return found


class DryRun:
    """A private copy of tinylm.kernels.cupy_gpu whose `cupy` is NumPy and whose launches are checked
    against the kernel's C signature and CUDA's limits, then recorded (name, dtype, grid, block)."""

    def __init__(self):
        path = Path(tinylm.kernels.__file__).with_name("cupy_gpu.py")
        spec = importlib.util.spec_from_file_location("tinylm.kernels.cupy_gpu", path)
        self.module = importlib.util.module_from_spec(spec)  # not in sys.modules: the real one is untouched
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, "cupy", np)  # the wrappers use only functions NumPy has too
            spec.loader.exec_module(self.module)
        self.signatures = kernel_signatures(self.module._SOURCES)
        self.module._kernel = self.kernel
        self.launches = []

    def kernel(self, family, name, dtype):
        assert name in self.signatures[family], f"{family}.cu has no kernel {name}"
        assert dtype in (np.float32, np.float64), (name, dtype)
        return lambda grid, block, args: self.launch(family, name, np.dtype(dtype), grid, block, args)

    def launch(self, family, name, dtype, grid, block, args):
        params = self.signatures[family][name]
        assert len(args) == len(params), (name, params, args)
        for ctype, arg in zip(params, args):
            if ctype.endswith("*"):  # an array: C-contiguous, of the element type
                want = dtype if ctype == "T*" else np.dtype(_C_TYPES[ctype[:-1]])
                assert isinstance(arg, np.ndarray) and arg.dtype == want and arg.flags.c_contiguous, (name, ctype)
            else:  # a scalar of exactly the C type
                want = dtype.type if ctype == "T" else _C_TYPES[ctype]
                assert type(arg) is want, (name, ctype, type(arg))
        assert 1 <= len(grid) <= 3 and min(grid) >= 1 and grid[0] <= 2**31 - 1, (name, grid)
        assert all(g <= 65535 for g in grid[1:]), (name, grid)
        assert len(block) == 1 and block[0] % 32 == 0 and 32 <= block[0] <= 1024, (name, block)  # whole warps
        self.launches.append((name, dtype, tuple(grid), tuple(block)))


@pytest.fixture(scope="module")
def dry():
    return DryRun()


def test_the_kernel_names_are_those_cupy_gpu_asks_nvrtc_for(dry):
    """The names cupy_gpu turns into name expressions (its _KERNEL_NAME) are the template kernels
    found here, in every .cu file."""
    for family, kernels in dry.signatures.items():
        source = (dry.module._SOURCES / f"{family}.cu").read_text()
        assert dry.module._KERNEL_NAME.findall(source) == list(kernels), family


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CONTRACT))
@settings(max_examples=4)
@given(data=st.data())
def test_every_launch_fits_its_kernel(dry, name, dtype, layout, data):
    kernel = CONTRACT[name]
    args, _ = CASES[name](data.draw, np.dtype(dtype))
    passed = [laid_out(v, layout) if k in kernel.any_layout else v for k, v in args.items()]
    before = len(dry.launches)
    with np.errstate(all="ignore"):  # the results are memory no kernel wrote
        getattr(dry.module, name)(*passed)
    assert len(dry.launches) > before or name in NO_LAUNCH


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (129, 7, 300), (8_388_480, 1, 1)])  # the last: grid.y = 65535
def test_matmul_tiled_launch(dry, m, k, n):
    a, b = np.broadcast_to(np.float32(1), (m, k)), np.ones((k, n), np.float32)
    dry.module.matmul_tiled(a, b)
    assert dry.launches[-1] == ("matmul_tiled", np.float32, (math.ceil(n / 128), math.ceil(m / 128)), (256,))


def huge(*shape):
    """A float32 array of `shape` with no memory behind it (every element is one value)."""
    return np.broadcast_to(np.float32(0), shape)


TOO_LARGE = {
    "rows": (lambda k: k.softmax(huge(2**31, 1)), "2,147,483,647"),
    "row length": (lambda k: k.log_softmax(huge(1, 2**31)), "2,147,483,647"),
    "matmul_tiled M": (lambda k: k.matmul_tiled(huge(8_388_481, 1), huge(1, 1)), "8,388,480"),
    "matmul_tiled K": (lambda k: k.matmul_tiled(huge(1, 2**31), huge(2**31, 1)), "2,147,483,647"),
    "layer_norm_backward columns": (lambda k: k.layer_norm_backward(
        huge(1, 16_776_961), huge(1, 16_776_961), huge(1, 1), huge(1, 1), huge(16_776_961)), "16,776,960"),
    "rms_norm_backward columns": (lambda k: k.rms_norm_backward(
        huge(1, 16_776_961), huge(1, 16_776_961), huge(1, 1), huge(16_776_961)), "16,776,960"),
}


@pytest.mark.parametrize("what", list(TOO_LARGE))
def test_sizes_beyond_one_launch_are_refused_in_one_line(dry, what):
    """Refused before anything is copied or launched (the arrays here would take gigabytes)."""
    call, limit = TOO_LARGE[what]
    with pytest.raises(ValueError, match=limit) as refused:
        call(dry.module)
    assert "\n" not in str(refused.value)


# ---------------------------------------------------------------------------------------
# A GPU without its kernels; the CLI and CI script without a GPU
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("module_text", [None, 'raise ImportError("libnvrtc.so.13: cannot open\\nsecond line")'],
                         ids=["not-installed", "failing-import"])
def test_a_gpu_without_its_kernels_is_an_error_not_the_reference(monkeypatch, tmp_path, module_text):
    if module_text is not None:
        (tmp_path / "broken_kernels.py").write_text(module_text)
        monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(backend, "cupy_or_none", lambda: object())  # CuPy and a CUDA device answer
    monkeypatch.setitem(backend._MODULES, "cupy", "broken_kernels" if module_text else "tinylm.kernels.no_such_module")
    monkeypatch.delitem(backend._loaded, "cupy", raising=False)
    backend._default_set.cache_clear()
    try:
        for attempt in (lambda: backend.check_device("cuda"), lambda: backend._default_set("cuda"),
                        lambda: tinylm.set_kernels("cupy")):
            with pytest.raises(RuntimeError, match="kernel set 'cupy' .* cannot be loaded here") as refused:
                attempt()
            assert "\n" not in str(refused.value)
    finally:
        backend._default_set.cache_clear()


def test_bench_device(capsys):
    assert main(["bench", "ddp", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda is for bench kernels and train" in err
    if cp is None:
        for what, says in (("kernels", "no CUDA device here"), ("train", "device 'cuda' is not available here")):
            assert main(["bench", what, "--device", "cuda"]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and says in err


@pytest.mark.parametrize("nvidia_smi", [None, "echo 'NVIDIA-SMI has failed: no driver'; exit 9"],
                         ids=["no-nvidia-smi", "failing-nvidia-smi"])
def test_ci_gpu_without_a_gpu_says_so_in_one_line(tmp_path, nvidia_smi):
    """Hermetic on any machine: the PATH holds a failing nvidia-smi, or none (a bare folder)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    path = str(folder)
    if nvidia_smi is not None:
        (folder / "nvidia-smi").write_text(f"#!/bin/sh\n{nvidia_smi}\n")
        (folder / "nvidia-smi").chmod(0o755)
        path += os.pathsep + os.environ["PATH"]
    run = subprocess.run([shutil.which("bash"), str(ROOT / ".ci" / "gpu")], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PATH": path, "OUT": str(tmp_path / "out")})
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert run.stdout.count("\n") == 1 and "no NVIDIA GPU here" in run.stdout
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------
# What only a GPU shows (each also run on the CPU sets, against the same reference)
# ---------------------------------------------------------------------------------------

def non_finite_logits(cols, dtype):
    """Rows holding +inf, NaN, -inf (masked) logits, and a row masked entirely."""
    x = np.random.default_rng(0).uniform(-3, 3, (7, cols))
    x[0, cols // 2] = np.inf
    x[1] = -np.inf                # every logit masked
    x[2, cols - 1] = np.nan
    x[3, ::3] = -np.inf           # some masked
    x[4, [0, cols - 1]] = np.inf  # two +inf
    x[5] = -np.inf
    x[5, cols // 3] = 1.0         # one logit left
    return x.astype(dtype)


@pytest.mark.parametrize("cols", [4, 300])  # one warp's lanes, and rows walked by many threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("set_name", SETS)
def test_non_finite_logits_give_what_the_reference_gives(set_name, dtype, cols):
    """NaN wherever the reference has NaN (a row without a finite maximum is NaN throughout), -inf
    and 0 where it has them."""
    x = non_finite_logits(cols, dtype)
    target = np.arange(len(x)) * 7 % cols
    target[6] = IGNORE
    xp = cp if set_name == "cupy" else np
    k = kernels_of(set_name, xp.asarray(x))
    with np.errstate(invalid="ignore"):
        wide = x.astype(np.float64)
        for name in ("softmax", "log_softmax"):
            assert_matches(getattr(k, name)(xp.asarray(x)), getattr(ref, name)(wide), dtype, set_name)
        loss, lse = k.cross_entropy(xp.asarray(x), xp.asarray(target), IGNORE)
        want_loss, want_lse = ref.cross_entropy(wide, target, IGNORE)
        assert_matches(loss, want_loss, dtype, set_name)
        assert_matches(lse, want_lse, dtype, set_name)
        gloss = np.linspace(0.5, 1.5, len(x)).astype(dtype)
        dz = k.cross_entropy_backward(xp.asarray(x), xp.asarray(want_lse.astype(dtype)), xp.asarray(target),
                                      xp.asarray(gloss), IGNORE)
        assert_matches(dz, ref.cross_entropy_backward(wide, want_lse, target, gloss, IGNORE), dtype, set_name)


@pytest.mark.parametrize("ignore_index", [3, IGNORE])
@pytest.mark.parametrize("all_ignored", [False, True])
@pytest.mark.parametrize("set_name", SETS)
def test_ignore_index_inside_the_classes_and_rows_all_ignored(set_name, ignore_index, all_ignored):
    gen = np.random.default_rng(1)
    z = gen.uniform(-3, 3, (40, 7))
    target = np.full(40, ignore_index) if all_ignored else gen.integers(0, 7, 40)
    if not all_ignored:
        target[::5] = ignore_index
    xp = cp if set_name == "cupy" else np
    k = kernels_of(set_name, xp.asarray(z))
    loss, lse = k.cross_entropy(xp.asarray(z), xp.asarray(target), ignore_index)
    want_loss, want_lse = ref.cross_entropy(z, target, ignore_index)
    assert_matches(loss, want_loss, np.float64, set_name)
    assert_matches(lse, want_lse, np.float64, set_name)
    dz = k.cross_entropy_backward(xp.asarray(z), lse, xp.asarray(target), xp.ones(40), ignore_index)
    want = ref.cross_entropy_backward(z, want_lse, target, np.ones(40), ignore_index)
    assert_matches(dz, want, np.float64, set_name)
    assert not want[target == ignore_index].any()  # an ignored row has no gradient


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("set_name", SETS)
def test_layer_norm_backward_over_many_rows(set_name, dtype):
    """1000 rows: 31 full chunks of 32 rows and a last one of 8 (the CUDA weight gradient sums
    chunks of 32 rows in separate blocks), 300 columns: two blocks of columns, the second partial."""
    gen = np.random.default_rng(2)
    x, gy = gen.uniform(-2, 2, (2, 1000, 300))
    weight = gen.uniform(-2, 2, 300)
    x, gy, weight = x.astype(dtype), gy.astype(dtype), weight.astype(dtype)
    _, mean, rstd = ref.layer_norm(x.astype(np.float64), None, None, 1e-5)
    xp = cp if set_name == "cupy" else np
    got = kernels_of(set_name, xp.asarray(x)).layer_norm_backward(
        xp.asarray(gy), xp.asarray(x), xp.asarray(mean.astype(dtype)), xp.asarray(rstd.astype(dtype)), xp.asarray(weight))
    want = ref.layer_norm_backward(gy.astype(np.float64), x.astype(np.float64), mean, rstd, weight.astype(np.float64))
    # each of the 1000 terms of a column's sum, |gy x̂| <= 2 * 2 rstd, may be rounded once
    roundings = 1000 * 4 * float(rstd.max())
    for g, w in zip(got, want):
        assert_matches(g, w, dtype, set_name, roundings)


@gpu
def test_out_of_range_targets_on_the_gpu():
    """The kernels give NaN losses, never a read outside the row; F.cross_entropy refuses them first."""
    k = backend._load("cupy")
    z = cp.asarray(np.random.default_rng(0).uniform(-2, 2, (4, 5)))
    target = cp.asarray([0, 5, -1, 4])
    loss, lse = k.cross_entropy(z, target, IGNORE)
    loss = cp.asnumpy(loss)
    assert np.isnan(loss[[1, 2]]).all() and np.isfinite(loss[[0, 3]]).all()
    dz = cp.asnumpy(k.cross_entropy_backward(z, lse, target, cp.ones(4), IGNORE))
    assert np.isfinite(dz).all()  # rows 1 and 2: the softmax, with no target to subtract
    with pytest.raises(IndexError, match="target 5 is out of range for 5 classes"):
        F.cross_entropy(tinylm.Tensor(z), target)


def small_gpt(device, dtype):
    from tinylm.models import build_model

    tinylm.manual_seed(0)
    return build_model("gpt", vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0).to(
        dtype).to(device)


@gpu
def test_a_gpt_training_step_on_the_gpu_matches_the_cpu():
    """Ops through Tensor on the GPU, served by the CuPy set: the loss, every gradient and one AdamW
    step of a small GPT, in float64, agree with the same model on the CPU."""
    from tinylm.optim import AdamW

    assert backend.kernels_for(cp.zeros(2)) is backend._load("cupy")
    x, y = np.random.default_rng(0).integers(0, 11, (2, 4, 8))
    results = {}
    for device in ("cpu", "cuda"):
        model = small_gpt(device, np.float64)
        _, loss = model(backend.to_device(x, device), backend.to_device(y, device))
        loss.backward()
        grads = [backend.to_device(p.grad.data, "cpu") for p in model.parameters()]
        AdamW(model.parameters(), lr=1e-2).step()
        results[device] = loss.item(), grads, [backend.to_device(p.data, "cpu") for p in model.parameters()]
    (cpu_loss, cpu_grads, cpu_weights), (gpu_loss, gpu_grads, gpu_weights) = results["cpu"], results["cuda"]
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-12)
    for want, got in zip(cpu_grads + cpu_weights, gpu_grads + gpu_weights):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@gpu
def test_amp_on_the_gpu_follows_float32_training():
    """float16 on the GPU (matmul in float16 on cuBLAS, the other kernels in float32): five SGD steps
    with MixedPrecision keep the float32 master weights within 5e-3 of float32 training on the CPU,
    as tests/test_amp.py checks on the CPU."""
    from tinylm.amp import MixedPrecision
    from tinylm.optim import SGD

    model, reference = small_gpt("cuda", np.float32), small_gpt("cpu", np.float32)
    mp = MixedPrecision(model)
    opt, ref_opt = SGD(mp.master_parameters(), lr=0.1), SGD(list(reference.parameters()), lr=0.1)
    x, y = np.random.default_rng(0).integers(0, 11, (2, 4, 8))
    for _ in range(5):
        loss = model(cp.asarray(x), cp.asarray(y))[1]
        assert loss.dtype == np.float32  # the loss stays float32
        mp.backward(loss)
        assert mp.step(opt)
        reference(x, y)[1].backward()
        ref_opt.step()
        ref_opt.zero_grad()
    for p, m, r in zip(model.parameters(), mp.master_parameters(), reference.parameters()):
        assert p.dtype == np.float16 and m.dtype == np.float32
        np.testing.assert_allclose(backend.to_device(m.data, "cpu"), r.numpy(), atol=5e-3)
