"""`tinylm bench ddp`: what data-parallel training costs here, and what it would cost on a cluster
(001.compress: distributed training).

1. All-reduce, measured. `mpiexec -n N python -m tinylm.bench_ddp --measure` times MPI Allreduce
   (float32, sum, mpi4py) on messages of 8 B to 64 MiB: the median over repeats of the slowest
   rank's time. The ring model of an all-reduce of n bytes over N ranks,

       T(n) = 2(N−1)·α + 2(N−1)/N · n·β          (α: latency of one step, β: seconds per byte)

   is fitted to those times by least squares on the relative error (so 8 B and 64 MiB both count);
   for N = 2 it reads T(n) = 2α + n·β. The ring sends each rank's 1/N-th of the message N−1 times
   to reduce (reduce-scatter) and N−1 times to share the sums (all-gather): 2(N−1) steps.
2. Training, measured: tokens/s of `tinylm train` (the nanoGPT CPU recipe) on 1 and on N
   processes (`--nproc N`, the same global batch), and the all-reduce of its gradients, timed
   on its own.
3. Projected: step time and scaling efficiency of the ring all-reduce for the GPT recipe and
   for GPT-2 small (124M parameters) on 8, 64 and 512 hosts over three networks, in weak
   scaling (each host keeps its batch):

       compute = 6·P·tokens / FLOP/s       (forward 2·P, backward 4·P FLOPs per token)
       comm    = buckets·2(N−1)·α + 2(N−1)/N · 4P·β      (float32 gradients in buckets)
       efficiency = compute / (compute + communication not hidden behind compute)

   once with nothing hidden, once with the all-reduce overlapped with the backward pass
   (4/6 of compute). The networks' α are assumptions, their β the line rate; see NETWORKS.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .distributed import THREAD_VARIABLES, mpiexec_path
from .processes import python_module

# name: (α in seconds, line rate in bits/s). β = 8 / line rate (the wire's speed, no protocol
# overhead); α is an ASSUMED per-message latency (one hop, software included), not a measurement.
NETWORKS = {
    "25 Gb/s Ethernet": (30e-6, 25e9),
    "100 Gb/s Ethernet": (10e-6, 100e9),
    "400 Gb/s InfiniBand": (2e-6, 400e9),
}
HOSTS = (8, 64, 512)
GPU_HOST_FLOPS = 100e12  # ASSUMED sustained FLOP/s of one GPU host (a round number, not a measurement)
GRAD_BYTES = 4           # float32 gradients
BACKWARD_SHARE = 4 / 6   # of the 6·P FLOPs per token, backward's 4·P: what an overlapped all-reduce hides behind
GPT2_SMALL = {"vocab_size": 50257, "block_size": 1024, "n_layer": 12, "n_embd": 768}
GPT2_TOKENS_PER_HOST = 12 * 1024  # nanoGPT's GPT-2 micro-batch: 12 sequences of 1024 tokens


# --- the model: pure functions ------------------------------------------------------------------
def gpt_parameters(vocab_size, block_size, n_layer, n_embd):
    """Parameters of tinylm's GPT (GPT-2's layout: biases, tied output layer):
    token and position embeddings, 12E² + 13E per block, the final LayerNorm's 2E."""
    return vocab_size * n_embd + block_size * n_embd + n_layer * (12 * n_embd ** 2 + 13 * n_embd) + 2 * n_embd


def ring_allreduce_seconds(nbytes, hosts, alpha, beta, messages=1):
    """Ring all-reduce of nbytes over `hosts` ranks, sent as `messages` messages (buckets):
    each message takes 2(N−1) steps of latency α, and every rank sends and receives
    2(N−1)/N of the bytes, at β seconds per byte. Zero for one host."""
    if hosts == 1:
        return 0.0
    return messages * 2 * (hosts - 1) * alpha + 2 * (hosts - 1) / hosts * nbytes * beta


def efficiency(compute_s, comm_s, hidden_s=0.0):
    """compute / (compute + the communication not hidden behind `hidden_s` of the compute)."""
    return compute_s / (compute_s + max(0.0, comm_s - hidden_s))


def project(params, tokens_per_host, flops, hosts, alpha, beta, bucket_bytes):
    """The step of one host in weak scaling: {compute_s, comm_s, step_s (nothing hidden),
    efficiency (nothing hidden), efficiency_overlap (all-reduce during the backward pass)}."""
    compute = 6 * params * tokens_per_host / flops
    nbytes = GRAD_BYTES * params
    comm = ring_allreduce_seconds(nbytes, hosts, alpha, beta, messages=math.ceil(nbytes / bucket_bytes))
    return {"compute_s": compute, "comm_s": comm, "step_s": compute + comm, "efficiency": efficiency(compute, comm),
            "efficiency_overlap": efficiency(compute, comm, BACKWARD_SHARE * compute)}


def fit_alpha_beta(nbytes, seconds, hosts):
    """(α, β) of T(n) = 2(N−1)α + 2(N−1)/N·n·β by least squares on the relative error, each kept
    at least 0 (one dropped and the other refitted when the free fit makes it negative)."""
    n, t = np.asarray(nbytes, float), np.asarray(seconds, float)
    columns = np.stack([np.full_like(n, 2 * (hosts - 1)), 2 * (hosts - 1) / hosts * n], axis=1) / t[:, None]
    coef = np.linalg.lstsq(columns, np.ones_like(t), rcond=None)[0]
    if (coef < 0).any():
        keep = int(np.argmax(coef))
        coef = np.zeros(2)
        coef[keep] = np.linalg.lstsq(columns[:, keep:keep + 1], np.ones_like(t), rcond=None)[0][0]
    return float(coef[0]), float(coef[1])


# --- measuring, under mpiexec ---------------------------------------------------------------------
def message_sizes(max_bytes):
    """8 B, 32 B, 128 B, … (×4) up to max_bytes, and max_bytes itself."""
    sizes = [8 * 4 ** k for k in range(40) if 8 * 4 ** k <= max_bytes]
    return sizes + ([max_bytes] if sizes[-1] != max_bytes else [])


def measure_allreduce(sizes, repeats):
    """On every rank of MPI's COMM_WORLD: time Allreduce on float32 messages of each size (bytes);
    returns, on rank 0, one {bytes, seconds, repeats, correct} per size (None on the others).
    seconds: the median over repeats of the slowest rank's time (ranks start together after a
    Barrier); fewer repeats for large messages (about 1 GB sent per size, at least 3)."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in sizes:
        send = np.full(max(1, nbytes // 4), comm.rank + 1, dtype=np.float32)
        recv = np.empty_like(send)
        comm.Allreduce(send, recv)  # warm-up: connections, buffers
        count = max(3, min(repeats, int(1e9 // max(nbytes, 1))))
        times = np.empty(count)
        for i in range(count):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(send, recv)
            times[i] = time.perf_counter() - start
        slowest = np.empty_like(times)
        comm.Reduce(times, slowest, op=MPI.MAX, root=0)
        correct = bool(np.all(recv == comm.size * (comm.size + 1) / 2))  # 1 + 2 + … + N on every element
        correct = comm.allreduce(correct, op=MPI.LAND)
        rows.append({"bytes": int(send.nbytes), "seconds": float(np.median(slowest)), "repeats": count,
                     "correct": correct})
    return rows if comm.rank == 0 else None


def _measure_main(argv):
    """`python -m tinylm.bench_ddp --measure MAX_BYTES REPEATS [EXTRA_BYTES ...]`, under mpiexec:
    rank 0 prints one JSON line {nproc, mpi, rows}."""
    from mpi4py import MPI

    max_bytes, repeats, extra = int(argv[0]), int(argv[1]), [int(a) for a in argv[2:]]
    rows = measure_allreduce(message_sizes(max_bytes) + extra, repeats)
    if rows is not None:
        print(json.dumps({"nproc": MPI.COMM_WORLD.size, "mpi": MPI.Get_library_version().strip().splitlines()[0],
                          "rows": rows}))


def run_measure(nproc=2, max_bytes=64 * 2 ** 20, repeats=50, extra=(), timeout=300):
    """Run the measuring script on nproc processes; returns its JSON result."""
    mpiexec = mpiexec_path()
    if mpiexec is None:
        raise RuntimeError("bench ddp needs MPI: pip install 'tinylm[mpi]' (mpi4py and mpich), or a system MPI "
                           "with mpiexec on the PATH")
    command = [mpiexec, "-n", str(nproc), *python_module("tinylm.bench_ddp"), "--measure",
               str(max_bytes), str(repeats), *map(str, extra)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if run.returncode != 0:
        last = (run.stderr.strip() or run.stdout.strip() or "no output").splitlines()[-1]
        raise RuntimeError(f"bench ddp: the all-reduce measurement on {nproc} processes failed: {last}")
    return json.loads(run.stdout.strip().splitlines()[-1])


# --- the training runs ----------------------------------------------------------------------------
def train_speed(nproc, steps, warmup=5, threads=None):
    """tokens/s of `tinylm train` (its defaults: the nanoGPT CPU recipe) on nproc processes, over
    `steps` steps after `warmup` (the median of the per-step speeds in metrics.jsonl). threads:
    BLAS, OpenMP and Numba threads per process (None: tinylm's default, cpus/nproc each)."""
    env = {**os.environ, **({v: str(threads) for v in THREAD_VARIABLES} if threads else {})}
    with tempfile.TemporaryDirectory() as out:
        command = [*python_module("tinylm"), "train", "--max-iters", str(steps + warmup), "--log-interval", "1",
                   "--eval-interval", str(steps + warmup), "--eval-iters", "1", "--no-progress", "--out", out]
        if nproc > 1:
            command += ["--nproc", str(nproc)]
        run = subprocess.run(command, capture_output=True, text=True, cwd=out, env=env)
        if run.returncode != 0:
            last = (run.stderr.strip() or "no output").splitlines()[-1]
            raise RuntimeError(f"bench ddp: `tinylm train` on {nproc} process(es) failed: {last}")
        with open(os.path.join(out, "metrics.jsonl"), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
    speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r and r["step"] >= warmup]
    return float(np.median(speeds))


def blas_flops(n=1024):
    """FLOP/s of NumPy's BLAS on an n³ float32 matmul here (2n³ FLOPs, median time)."""
    from .bench import _median_time

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n ** 3 / _median_time(lambda: a @ b, 10)


# --- the report -------------------------------------------------------------------------------------
def _duration(seconds):
    """A duration with a unit that suits it: 2.1 µs, 35.0 ms, 1.25 s."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"


def _size(nbytes):
    for unit, scale in (("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.4g} {unit}"
    return f"{nbytes} B"


def projection_rows(models, hosts_kinds, bucket_bytes, hosts=HOSTS):
    """One dict per (model, host kind, network, hosts) of the projection."""
    rows = []
    for model, (params, tokens) in models.items():
        for host, flops in hosts_kinds.items():
            for network, (alpha, rate) in NETWORKS.items():
                for n in hosts:
                    rows.append({"model": model, "params": params, "tokens": tokens, "host": host, "flops": flops,
                                 "network": network, "hosts": n,
                                 **project(params, tokens, flops, n, alpha, 8 / rate, bucket_bytes)})
    return rows


def plot_projection(models, hosts_kinds, bucket_bytes, path):
    """Efficiency against hosts (2 to 1024), one panel per model and host kind, one colour per network
    (solid: nothing hidden; dashed: all-reduce during backward). Returns the path, or None without
    matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    counts = [2 ** k for k in range(1, 11)]
    fig = Figure(figsize=(11, 8))
    FigureCanvasAgg(fig)  # off-screen
    axes = fig.subplots(len(models), len(hosts_kinds), squeeze=False, sharex=True)
    for i, (model, (params, tokens)) in enumerate(models.items()):
        for j, (host, flops) in enumerate(hosts_kinds.items()):
            ax = axes[i][j]
            for k, (network, (alpha, rate)) in enumerate(NETWORKS.items()):
                points = [project(params, tokens, flops, n, alpha, 8 / rate, bucket_bytes) for n in counts]
                ax.plot(counts, [p["efficiency"] for p in points], color=f"C{k}", marker="o", label=network)
                ax.plot(counts, [p["efficiency_overlap"] for p in points], color=f"C{k}", linestyle="--")
            ax.set_xscale("log", base=2)
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{model}, {host}", fontsize=9)
            ax.set_ylabel("scaling efficiency")
            ax.grid(alpha=0.3)
            if i == len(models) - 1:
                ax.set_xlabel("hosts (ring all-reduce, weak scaling)")
    axes[0][0].legend(fontsize=8, title="solid: no overlap; dashed: during backward", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    return path


def bench_ddp(nproc=2, steps=40, quick=False, png="ddp_scaling.png", file=None, json_path=None):
    """Measure all-reduce and training here, project to clusters, print the tables, write the PNG.
    Returns {"alpha", "beta", "measure", "training" (one {processes, threads, tokens_per_s} per run),
    "comm_step_s", "blas_flops", "projection"}; json_path: also write it there, with the machine
    (tinylm.machine.describe())."""
    from .data import CharTokenizer, default_corpus_text
    from .distributed import BUCKET_BYTES
    from .machine import describe, lines
    from .table import format_table

    file = file or sys.stdout
    steps = min(steps, 10) if quick else steps
    recipe_params = gpt_parameters(CharTokenizer.train(default_corpus_text()).vocab_size, 64, 4, 128)
    grad_bytes = GRAD_BYTES * recipe_params
    machine_info = describe()
    for line in lines(machine_info):
        print(line, file=file)

    # 1. all-reduce, measured and fitted
    measured = run_measure(nproc, max_bytes=(2 if quick else 64) * 2 ** 20, repeats=10 if quick else 50,
                           extra=[grad_bytes])
    if not all(r["correct"] for r in measured["rows"]):
        raise RuntimeError("bench ddp: an all-reduce returned a wrong sum")
    sizes = [r["bytes"] for r in measured["rows"]]
    seconds = [r["seconds"] for r in measured["rows"]]
    alpha, beta = fit_alpha_beta(sizes, seconds, nproc)
    print(f"\n1. MPI Allreduce (float32 sum) on {nproc} processes of this machine, {measured['mpi']}; median of "
          f"repeats of the slowest rank.\n   Fit of the ring model T(n) = 2(N−1)α + 2(N−1)/N·n·β (least squares on "
          f"the relative error): α = {_duration(alpha)}, β = {beta * 1e9:.3g} ns/B ({1 / beta / 1e9:.3g} GB/s)",
          file=file)
    print(format_table(("message", "measured", "ring model", "n / T", "repeats"),
                       [(_size(r["bytes"]), _duration(r["seconds"]),
                         _duration(ring_allreduce_seconds(r["bytes"], nproc, alpha, beta)),
                         f"{r['bytes'] / r['seconds'] / 1e9:.3g} GB/s", r["repeats"]) for r in measured["rows"]]),
          file=file)

    # 2. training, measured
    cpus = os.cpu_count()
    runs = [(1, None), (nproc, None), (nproc, cpus)]
    speeds = {(n, threads): train_speed(n, steps, threads=threads) for n, threads in runs}
    comm_step = next(r["seconds"] for r in measured["rows"] if r["bytes"] == grad_bytes)
    tokens_per_step = 12 * 64
    print(f"\n2. `tinylm train` (GPT, {recipe_params:,} parameters, global batch 12 × 64 tokens), median over "
          f"{steps} steps after 5 of warm-up; threads: BLAS/OpenMP/Numba threads per process", file=file)
    print(format_table(("processes", "threads", "tokens/s", "step", "speed-up", "gradient all-reduce per step"),
                       [(n, threads or f"{max(1, cpus // n)} (default)", f"{s:,.0f}", _duration(tokens_per_step / s),
                         f"{s / speeds[1, None]:.2f}x",
                         "-" if n == 1 else f"{_duration(comm_step)} ({_size(grad_bytes)}, measured above)")
                        for (n, threads), s in speeds.items()]), file=file)
    print(f"   ({cpus} CPUs: --nproc gives each process cpus/N threads unless the environment sets them; the last "
          f"row is the libraries' own default, {cpus} threads in each of {nproc} processes sharing {cpus} cores)",
          file=file)

    # 3. projection
    flops_here = blas_flops(512 if quick else 1024)
    models = {"GPT recipe": (recipe_params, tokens_per_step),
              "GPT-2 small": (gpt_parameters(**GPT2_SMALL), GPT2_TOKENS_PER_HOST)}
    hosts_kinds = {f"CPU host {flops_here / 1e9:.0f} GFLOP/s": flops_here,
                   f"GPU host {GPU_HOST_FLOPS / 1e12:.0f} TFLOP/s": GPU_HOST_FLOPS}
    rows = projection_rows(models, hosts_kinds, BUCKET_BYTES)
    print(f"\n3. Projection, weak scaling (each host keeps its batch), ring all-reduce of float32 gradients in "
          f"buckets of {_size(BUCKET_BYTES)}.\n"
          f"   compute = 6·P·tokens / FLOP/s. CPU host: the float32 BLAS rate measured here (np.matmul "
          f"{512 if quick else 1024}³): {flops_here / 1e9:.0f} GFLOP/s;\n"
          f"   GPU host: an ASSUMED {GPU_HOST_FLOPS / 1e12:.0f} TFLOP/s sustained. Tokens per host and step: GPT "
          f"recipe 12 × 64, GPT-2 small ({models['GPT-2 small'][0]:,} parameters) 12 × 1024.\n"
          "   Networks: β from the line rate; α ASSUMED (not measured): "
          + ", ".join(f"{name} α = {_duration(a)}" for name, (a, _) in NETWORKS.items()) + ".\n"
          "   efficiency = compute / (compute + communication not hidden); 'overlapped': the all-reduce runs "
          "during the backward pass (4/6 of compute)", file=file)
    print(format_table(("model", "host", "network", "hosts", "compute", "all-reduce", "step", "efficiency",
                        "overlapped"),
                       [(r["model"], r["host"], r["network"], r["hosts"], _duration(r["compute_s"]),
                         _duration(r["comm_s"]), _duration(r["step_s"]), f"{r['efficiency']:.1%}",
                         f"{r['efficiency_overlap']:.1%}") for r in rows]), file=file)
    written = plot_projection(models, hosts_kinds, BUCKET_BYTES, png) if png else None
    if png and written is None:
        print("matplotlib is not installed (pip install 'tinylm[plot]'): no PNG, the table only", file=file)
    elif written:
        print(f"wrote {written}", file=file)
    result = {"alpha": alpha, "beta": beta, "measure": measured,
              "training": [{"processes": n, "threads": threads, "tokens_per_s": s} for (n, threads), s in speeds.items()],
              "comm_step_s": comm_step, "blas_flops": flops_here, "projection": rows}
    if json_path:
        from .bench import write_json

        write_json(json_path, {"bench": "ddp", "machine": machine_info, **result})
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        _measure_main(sys.argv[2:])
    else:
        sys.exit("usage: mpiexec -n N python -m tinylm.bench_ddp --measure MAX_BYTES REPEATS [EXTRA_BYTES ...]")
