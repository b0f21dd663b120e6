"""The Numba kernels are kept on disk: a new process loads them instead of compiling again.

Each check runs fresh Python processes in a temporary folder (the source tree's tinylm/ lacks
the installed tinylm.kernels), with NUMBA_CACHE_DIR set for those processes only, so the cache
starts empty and no other run shares it. Robust, not timed: the dispatchers count cache hits
(loaded from disk) and misses (compiled).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")

# Every kernel of the set once, float32, on a small array (one core) and a large one (all cores,
# machinery.PARALLEL_MIN = 65,536 elements); then the cache counters of every dispatcher.
CALL_EVERY_KERNEL = r"""
import json
import numpy as np
from tinylm.kernels import numba_cpu as k
from tinylm.kernels.numba_cpu import machinery

rng = np.random.default_rng(0)
for rows in (64, 2048):
    x, g = rng.random((2, rows, 65), dtype=np.float32)
    k.matmul(x, rng.random((65, 33), dtype=np.float32))
    k.softmax_backward(k.softmax(x), g)
    k.log_softmax_backward(k.log_softmax(x), g)
    k.causal_softmax(x.reshape(rows // 16, 16, 65), 0.5)
    y, mean, rstd = k.layer_norm(x, None, None, 1e-5)
    k.layer_norm_backward(g, x, mean, rstd, np.ones(65, np.float32))
    for approximate in ("none", "tanh"):
        k.gelu_backward(x, k.gelu(x, approximate), approximate)
    k.swiglu_backward(x, g, k.swiglu(x, g))
    angles = np.arange(rows, dtype=np.float32)[:, None] * np.ones(32, np.float32)
    k.rope(x[..., :64], np.cos(angles), np.sin(angles))  # a strided view, read as it is
    target = rng.integers(0, 65, rows)
    loss, lse = k.cross_entropy(x, target, -1)
    k.cross_entropy_backward(x, lse, target, np.ones(rows, np.float32), -1)
    w = x.reshape(-1).copy()
    k.adam_step(w, g.reshape(-1), np.zeros_like(w), np.zeros_like(w), 1e-3, 0.9, 0.99, 1e-8, 0.1, True, 1)
print(json.dumps({"folder": machinery.cache_folder(),
                  "hits": {d.py_func.__qualname__: sum(d.stats.cache_hits.values()) for d in machinery.CACHED},
                  "misses": {d.py_func.__qualname__: sum(d.stats.cache_misses.values()) for d in machinery.CACHED}}))
"""


def run_python(code, folder, cache):
    """Run `code` in a new Python process in `folder`, Numba's cache in `cache`; its last line, as JSON."""
    # the vector width given, not measured (kernels/numba_cpu/target.py): measuring would compile
    # some kernels in child processes, and this process would load them instead of compiling them
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "TINYLM_VECTOR_WIDTH": "512"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          cwd=folder, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_loads_every_kernel_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    first = run_python(CALL_EVERY_KERNEL, tmp_path, cache)
    assert Path(first["folder"]).is_relative_to(cache)
    compiled = {name for name, count in first["misses"].items() if count}
    # the kernels called from Python, both ways where there are two (the helpers they call,
    # such as exp_f32 or tile_4x4, are compiled into them)
    expected = {"_adam_kernel"} | {name + suffix for suffix in ("", "_serial") for name in (
        "_matmul_kernel", "_softmax_kernel", "_softmax_backward_kernel", "_log_softmax_kernel",
        "_log_softmax_backward_kernel", "_causal_softmax_kernel", "_layer_norm_kernel",
        "_layer_norm_backward_kernel", "_gelu_kernel", "_gelu_backward_kernel", "_swiglu_kernel",
        "_swiglu_backward_kernel", "_rope_kernel", "_cross_entropy_kernel", "_cross_entropy_backward_kernel")}
    assert expected <= compiled
    assert sorted(Path(first["folder"]).glob("*.nbi")) and sorted(Path(first["folder"]).glob("*.nbc"))

    second = run_python(CALL_EVERY_KERNEL, tmp_path, cache)
    assert second["folder"] == first["folder"]
    assert {name: count for name, count in second["misses"].items() if count} == {}  # nothing compiled
    assert {name for name, count in second["hits"].items() if count} >= expected


def test_a_change_in_another_file_of_the_set_recompiles(tmp_path):
    """log_softmax calls exp from machinery.py; Numba alone stamps its cache with
    softmax_family.py only, so an edited machinery.py would go unnoticed (machinery.SetCache)."""
    import tinylm.kernels.numba_cpu as numba_cpu

    # the whole kernels folder (the set imports its shared tiling, ../flash.py), as a package kpkg
    shutil.copytree(Path(numba_cpu.__file__).parents[1], tmp_path / "kpkg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import json, numpy as np\n"
            "from kpkg import numba_cpu as kset\n"
            "from kpkg.numba_cpu import machinery\n"
            "y = kset.log_softmax(np.zeros((2, 3), np.float32))\n"
            "print(json.dumps({'y': float(y[0, 0]), "
            "'misses': sum(sum(d.stats.cache_misses.values()) for d in machinery.CACHED)}))")
    cache = tmp_path / "cache"
    assert run_python(code, tmp_path, cache)["misses"] > 0
    assert run_python(code, tmp_path, cache)["misses"] == 0
    machinery = tmp_path / "kpkg" / "numba_cpu" / "machinery.py"
    source = machinery.read_text()
    assert source.count("    y = e_r * pow2(n)\n") == 1
    machinery.write_text(source.replace("    y = e_r * pow2(n)\n", "    y = e_r * pow2(n) * _HALF\n"))
    edited = run_python(code, tmp_path, cache)  # e^x halved: log_softmax of zeros is log(2/3), not log(1/3)
    assert edited["misses"] > 0
    assert edited["y"] == pytest.approx(-0.405465, abs=1e-5)
