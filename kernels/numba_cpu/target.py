"""How wide the kernels' SIMD vectors are: chosen once per machine, by measuring.

LLVM compiles the kernels for the CPU it runs on (Numba hands it the host CPU's name and its
features) and vectorises each loop with the vector width that CPU's *tuning* prefers. On a
CPU with AVX-512 that preference is a line in LLVM's tuning tables, not a property of the
kernel: Intel's server cores (skylake-avx512 up to sapphirerapids and later) are tuned to
prefer 256-bit vectors ("prefer-256-bit": the first AVX-512 cores lowered their clock for
512-bit code), AMD's Zen 4 and Zen 5 get 512-bit vectors. The same softmax kernel ran in
0.29 ms with 512-bit vectors and 0.72 ms with LLVM's choice of 256 on a Xeon (issue 14), and
neither width wins on every machine.

So where there is a choice (AVX-512: 256 or 512 bits), the kernels try both: at the first
import on a machine, two short child processes each compile a few kernels with one width
(the LLVM feature -prefer-256-bit or +prefer-256-bit), time them on one core, and print the
times; the faster width is kept in vector_width.json in the folder of Numba's cache, under a
key made of the CPU's name, its features and the Numba version. Every later import reads it
(nothing measured, and the kernels compiled for that width are already in Numba's cache).
A CPU without AVX-512 has one width (AVX2's 256 bits, SSE's or NEON's 128): nothing to
choose. TINYLM_VECTOR_WIDTH=256 or 512 chooses without measuring; NUMBA_CPU_FEATURES set by
the user is left alone (NUMBA_CPU_NAME=sapphirerapids on another AVX-512 CPU compiles with
that CPU's tuning: a way to see the choice an Intel server gets).

The width is Numba's setting for the whole process: LLVM's target machine is made once,
when the first @njit function is created, from numba.config.CPU_FEATURES. machinery.py
imports this module before it defines any kernel; a library that created a Numba function
before tinylm loaded its kernels leaves LLVM's own choice in place (CHOICE["how"] says so).
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llvmlite.binding as llvm
import numba
import numpy as np
from numba.core import config
from numba.core.caching import CompileResultCacheImpl
from numba.core.codegen import get_host_cpu_features

FLAG = {256: "+prefer-256-bit", 512: "-prefer-256-bit"}  # the LLVM feature that sets each width
_CHILD = "TINYLM_VECTOR_WIDTH"  # also how a user chooses; a child process measures the width it names
_MARGIN = 1.05  # 512 bits must be 5% faster to be kept: otherwise 256 (LLVM's safe choice for Intel)


def host():
    """(CPU name, LLVM feature string) that Numba compiles for."""
    return config.CPU_NAME or llvm.get_host_cpu_name(), config.CPU_FEATURES or get_host_cpu_features()


def natural_width(features):
    """The widest float vectors of the feature set, in bits: what a CPU without a choice gets."""
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 512
    if "+avx" in flags:  # AVX and AVX2: 256-bit float vectors
        return 256
    return 128  # SSE on x86, NEON on ARM


def _started():
    """Whether Numba's CPU target (with its LLVM target machine) exists already in this process."""
    from numba.core.registry import cpu_target

    return "_toplevel_target_context" in vars(cpu_target)


def _json_path():
    """vector_width.json in the folder where Numba keeps this folder's compiled kernels, or None."""
    try:
        return Path(CompileResultCacheImpl(_json_path).locator.get_cache_path()) / "vector_width.json"
    except RuntimeError:  # no writable folder: measure again in every process
        return None


def _key(cpu, features):
    digest = hashlib.sha256(features.encode()).hexdigest()[:16]
    return f"{cpu} {digest} numba {numba.__version__}"


def _measure_in_child(width):
    """{kernel: seconds} from a child process whose kernels use `width`-bit vectors."""
    env = {**os.environ, _CHILD: str(width)}
    code = f"import {__package__}.target as t; t.print_times()"
    # cwd: a neutral folder, so the child imports the installed tinylm, not a source tree's tinylm/ that
    # happens to be the current folder (its kernels/ sits beside it, not inside)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd=tempfile.gettempdir())
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure():
    """Time both widths, twice each, in alternating child processes; the best time per kernel."""
    best = {256: {}, 512: {}}
    for _ in range(2):
        for width in (256, 512):
            for name, seconds in _measure_in_child(width).items():
                best[width][name] = min(seconds, best[width].get(name, np.inf))
    return best


def pick(times):
    """512 when its kernels are faster by _MARGIN in geometric mean over the kernels, else 256."""
    ratios = [times[256][k] / times[512][k] for k in times[256]]
    return 512 if float(np.exp(np.mean(np.log(ratios)))) > _MARGIN else 256


def decide(cpu, features, path, asked=None, measure=measure):
    """The vector width for kernels compiled for `cpu` with `features`: a dict with width
    (bits), how (in words), file (the JSON it is kept in) and times (seconds per kernel and
    width) when measured now. asked: TINYLM_VECTOR_WIDTH's value, if any; path: the JSON file
    of earlier choices (None: keep nothing); measure: how to time the two widths."""
    width = natural_width(features)
    if width < 512:
        return {"width": width, "how": "the only width of this CPU"}
    if asked:
        if asked not in ("256", "512"):
            raise ValueError(f"{_CHILD} must be 256 or 512, got {asked!r}")
        return {"width": int(asked), "how": f"set by {_CHILD}"}
    key = _key(cpu, features)
    known = json.loads(path.read_text()) if path is not None and path.exists() else {}
    if key in known:
        return {"width": known[key]["width"], "how": "measured once on this machine", "file": str(path)}
    times = measure()
    choice = {"width": pick(times), "how": "measured now", "file": str(path), "times": times}
    if path is not None:
        known[key] = {"width": choice["width"], "times_us": {
            w: {k: round(s * 1e6, 2) for k, s in t.items()} for w, t in times.items()}}
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(known, indent=1))
        os.replace(temporary, path)  # a process reading it sees the old file or the new one
    return choice


def _choose():
    """decide() for this process, applied: numba.config.CPU_FEATURES gets the width's flag."""
    cpu, features = host()
    if config.CPU_FEATURES is not None:
        return {"width": None, "how": "NUMBA_CPU_FEATURES set by the user: LLVM's choice for them"}
    if _started():
        return {"width": None, "how": "Numba started before tinylm's kernels: LLVM's choice for " + cpu}
    choice = decide(cpu, features, _json_path(), os.environ.get(_CHILD))
    if natural_width(features) == 512:
        config.CPU_FEATURES = features + "," + FLAG[choice["width"]]
    return choice


def print_times():
    """In a child process: time a few kernels, on one core, with this process's width; print JSON.

    Small arrays, so the serial version of each kernel runs (the width decides how fast one
    core computes; threads would only add noise), best of many calls."""
    from . import activations, normalization, softmax_family

    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 256)).astype(np.float32)
    w, b = np.ones(256, np.float32), np.zeros(256, np.float32)
    calls = {"softmax": lambda: softmax_family.softmax(x), "gelu": lambda: activations.gelu(x),
             "gelu_backward": lambda: activations.gelu_backward(x, x),
             "layer_norm": lambda: normalization.layer_norm(x, w, b, 1e-5)}
    times = {}
    for name, call in calls.items():
        call()  # compiles, or loads from Numba's cache
        best = np.inf
        for _ in range(200):
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
        times[name] = best
    print(json.dumps(times))


CHOICE = _choose()  # at import, before machinery.py defines the first kernel
