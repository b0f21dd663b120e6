"""The machine a benchmark ran on: CPU, vector width, BLAS, threads — so that figures from
different machines are never compared blindly.

describe() gathers it as a dict (what `tinylm bench … --json FILE` writes); lines() turns
it into the few lines a benchmark prints above its table. What it reports:

* the CPU: its model name, vendor, family and model numbers (/proc/cpuinfo on Linux), the
  number of CPUs this process may use, and the load average (other work slows a benchmark);
* what Numba compiles the kernels for: LLVM's name for the CPU, the widest vector
  instruction set it has (AVX-512, AVX2, ...), and the vector width the kernels use with
  how it was chosen (tinylm.kernels.numba_cpu.target);
* the BLAS NumPy calls (threadpoolctl, where installed: library, version, the core type
  OpenBLAS picked for this CPU, threads, threading layer; else numpy.show_config);
* threads: Numba's count and threading layer (known once a parallel kernel has run);
* the environment variables that change any of this (OPENBLAS_*, OMP_*, MKL_*, NUMBA_*,
  TINYLM_*), and PyTorch's version, BLAS, instruction set and threads when given.
"""
import os
import platform
import sys

import numpy as np

_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "NUMBA_", "TINYLM_", "GOTO", "BLIS_")
_ISA = [("+avx512f", "AVX-512"), ("+avx2", "AVX2"), ("+avx", "AVX"), ("+sse4.2", "SSE4.2"), ("+neon", "NEON"),
        ("+sve", "SVE")]


def _cpu():
    """Model name, vendor, family and model number of the first CPU, and the CPUs usable here."""
    info = {"model_name": platform.processor() or platform.machine(), "vendor": None, "family": None,
            "model": None}
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info.update(model_name=fields.get("model name", info["model_name"]), vendor=fields.get("vendor_id"),
                    family=fields.get("cpu family"), model=fields.get("model"))
    except OSError:  # not Linux
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["cpus"] = usable
    # other work on the machine slows a benchmark down: the 1-minute load average, when the OS has one
    info["load_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return info


def _simd():
    """What Numba compiles for: LLVM's CPU name, the widest vector ISA, the kernels' vector width."""
    from .kernels.numba_cpu import target

    cpu, features = target.host()
    flags = set(features.split(","))
    isa = next((name for flag, name in _ISA if flag in flags), "none known")
    return {"llvm_cpu": cpu, "isa": isa, "vector_bits": target.CHOICE["width"], "how": target.CHOICE["how"]}


def _blas():
    """One dict per BLAS / OpenMP library loaded in this process (threadpoolctl), or NumPy's
    build information when threadpoolctl is not installed."""
    try:
        import threadpoolctl
    except ImportError:
        try:
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
            return [{"user_api": "blas", "internal_api": blas.get("name"), "version": blas.get("version"),
                     "architecture": None, "num_threads": None, "threading_layer": None}]
        except Exception:  # an older NumPy or an unusual build: the name is only informative
            return []
    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    return [{k: lib.get(k) for k in keys} for lib in threadpoolctl.threadpool_info()]


def _numba_threads():
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        layer = "not started"
    return {"threads": numba.get_num_threads(), "threading_layer": layer}


def torch_info(torch):
    """PyTorch's version, BLAS, CPU kernels and threads."""
    blas = "MKL" if torch.backends.mkl.is_available() else "its own"
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas,
            "isa": torch.backends.cpu.get_cpu_capability()}


def describe(torch=None):
    """The machine and the libraries of this process, as a dict of plain values (JSON-ready)."""
    import numba

    return {"cpu": _cpu(), "simd": _simd(), "blas": _blas(), "numba": {"version": numba.__version__,
                                                                          **_numba_threads()},
            "numpy": np.__version__, "python": platform.python_version(), "platform": sys.platform,
            "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)},
            "torch": torch_info(torch) if torch is not None else None}


def lines(info):
    """describe()'s dict as the lines a benchmark prints above its table."""
    cpu, simd = info["cpu"], info["simd"]
    numbers = ", ".join(f"{k} {cpu[k]}" for k in ("family", "model") if cpu[k] is not None)
    width = f"{simd['vector_bits']}-bit vectors" if simd["vector_bits"] else "vector width LLVM's"
    out = [f"cpu: {cpu['model_name']} ({cpu['vendor'] or '?'}{', ' + numbers if numbers else ''}), "
           f"{cpu['cpus']} CPUs usable" + (f", load average {cpu['load_1min']} (1 min)" if cpu["load_1min"] is not None
                                            else ""),
           f"numba {info['numba']['version']}: compiles for {simd['llvm_cpu']}, {simd['isa']}, {width} "
           f"({simd['how']}); {info['numba']['threads']} threads, threading layer {info['numba']['threading_layer']}"]
    for lib in info["blas"]:
        if lib["user_api"] == "blas":
            core = f", {lib['architecture']} kernels" if lib.get("architecture") else ""
            threads = f", {lib['num_threads']} threads ({lib['threading_layer']})" if lib.get("num_threads") else ""
            out.append(f"numpy {info['numpy']} BLAS: {lib['internal_api']} {lib['version']}{core}{threads}")
    if info["torch"]:
        t = info["torch"]
        out.append(f"torch {t['version']}: BLAS {t['blas']}, {t['isa']} kernels, {t['threads']} threads")
    env = " ".join(f"{k}={v}" for k, v in info["env"].items())
    out.append(f"environment: {env or 'no OPENBLAS_/OMP_/MKL_/NUMBA_/TINYLM_ variables set'}")
    return out
