"""What a benchmark says about the machine (tinylm.machine), and how the kernels' vector width is
chosen (tinylm.kernels.numba_cpu.target): the decision on made-up CPUs with a made-up timer (no
child processes), the JSON it keeps, and a fresh process honouring TINYLM_VECTOR_WIDTH."""
import json
import os
import subprocess
import sys

import pytest

from tinylm import machine
from tinylm.kernels.numba_cpu import target

AVX512 = "+64bit,+avx,+avx2,+avx512f,+fma,+sse4.2"
AVX2 = "+64bit,+avx,+avx2,-avx512f,+fma,+sse4.2"


def timer(ratio, calls):
    """A stand-in for target.measure: the 512-bit kernels take 1/ratio of the 256-bit time."""
    def measure():
        calls.append(1)
        return {256: {"softmax": 2e-5, "gelu": 3e-5}, 512: {"softmax": 2e-5 / ratio, "gelu": 3e-5 / ratio}}
    return measure


def test_a_cpu_without_avx512_has_nothing_to_choose(tmp_path):
    calls = []
    choice = target.decide("znver2", AVX2, tmp_path / "w.json", measure=timer(2.0, calls))
    assert choice["width"] == 256 and not calls and not (tmp_path / "w.json").exists()
    assert target.natural_width("+neon,+fp-armv8") == 128


@pytest.mark.parametrize("ratio,width", [(1.5, 512), (1.02, 256), (0.8, 256)])
def test_measured_once_then_read(tmp_path, ratio, width):
    """512 bits only when clearly faster (5%); the choice is kept and read back, not measured again."""
    calls, path = [], tmp_path / "vector_width.json"
    first = target.decide("sapphirerapids", AVX512, path, measure=timer(ratio, calls))
    assert first["width"] == width and first["how"] == "measured now" and len(calls) == 1
    kept = json.loads(path.read_text())
    (entry,) = kept.values()
    assert entry["width"] == width and set(entry["times_us"]) == {"256", "512"}
    again = target.decide("sapphirerapids", AVX512, path, measure=timer(ratio, calls))
    assert again["width"] == width and again["how"] == "measured once on this machine" and len(calls) == 1
    other = target.decide("znver4", AVX512, path, measure=timer(1.5, calls))  # another CPU: its own entry
    assert other["width"] == 512 and len(calls) == 2 and len(json.loads(path.read_text())) == 2


def test_asked_width_and_bad_values(tmp_path):
    calls = []
    assert target.decide("icelake-server", AVX512, tmp_path / "w.json", "256", timer(2.0, calls))["width"] == 256
    assert not calls
    with pytest.raises(ValueError, match="TINYLM_VECTOR_WIDTH must be 256 or 512"):
        target.decide("icelake-server", AVX512, tmp_path / "w.json", "1024", timer(2.0, calls))


def test_a_fresh_process_compiles_with_the_width_asked(tmp_path):
    code = ("import json; from tinylm.kernels.numba_cpu import target; from numba.core import config; "
            "print(json.dumps([target.CHOICE, config.CPU_FEATURES]))")
    env = {**os.environ, "TINYLM_VECTOR_WIDTH": "256", "NUMBA_CACHE_DIR": str(tmp_path)}
    env.pop("NUMBA_CPU_FEATURES", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    choice, features = json.loads(done.stdout.strip().splitlines()[-1])
    if target.natural_width(target.host()[1]) == 512:
        assert choice["width"] == 256 and features.endswith(",+prefer-256-bit")
    else:  # nothing to choose on this CPU: LLVM's features as they are
        assert choice["how"] == "the only width of this CPU" and features is None


def test_machine_description_and_its_lines():
    info = machine.describe()
    json.dumps(info)  # plain values only: it goes into --json files
    assert info["cpu"]["cpus"] >= 1 and info["simd"]["isa"] and info["numba"]["threads"] >= 1
    text = "\n".join(machine.lines(info))
    assert text.startswith("cpu: ") and "numba" in text and "vectors" in text and "environment" in text


def test_bench_takes_json(tmp_path):
    from tinylm.cli import build_parser

    args = build_parser().parse_args(["bench", "train", "--json", str(tmp_path / "t.json")])
    assert args.json == str(tmp_path / "t.json")


STEPS = r"""
import json, resource, numpy as np, tinylm
from tinylm.models import build_model
from tinylm.optim import AdamW
model = build_model("gpt", vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128)
opt = AdamW(model.parameters())
idx = np.random.default_rng(0).integers(0, 65, (12, 65))
def step():
    model(tinylm.Tensor(idx[:, :-1]), tinylm.Tensor(idx[:, 1:]))[1].backward()
    opt.step()
    opt.zero_grad()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    step()
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3))
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_training_steps_reuse_freed_memory(tmp_path):
    """backend.reuse_freed_memory: a step's temporary arrays reuse the memory the last step freed,
    instead of fresh pages from the OS (a page fault per 4 KB); MALLOC_TRIM_THRESHOLD_ set by the
    user (here glibc's default) leaves glibc as it is."""
    def faults(**env):
        done = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, **env}, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert faults() * 10 < faults(MALLOC_TRIM_THRESHOLD_="131072")
