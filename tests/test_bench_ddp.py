"""`tinylm bench ddp`: the ring all-reduce model on known numbers, the α–β fit, and the
measuring script under mpiexec (skipped without mpi4py or mpiexec)."""
import importlib.util
import math

import pytest

from tinylm import bench_ddp as bd
from tinylm.cli import main
from tinylm.distributed import mpiexec_path


def test_ring_allreduce_time_on_known_numbers():
    # 1 GB over 4 ranks, α = 10 µs, β = 1 ns/B: 2·3 steps of latency, 2·3/4 of the bytes per rank
    assert bd.ring_allreduce_seconds(1e9, 4, 1e-5, 1e-9) == pytest.approx(6e-5 + 1.5)
    assert bd.ring_allreduce_seconds(1e9, 4, 1e-5, 1e-9, messages=3) == pytest.approx(18e-5 + 1.5)
    assert bd.ring_allreduce_seconds(8, 2, 1e-6, 1e-9) == pytest.approx(2e-6 + 8e-9)  # N = 2: 2α + n·β
    assert bd.ring_allreduce_seconds(1e9, 1, 1e-5, 1e-9) == 0.0  # one host sends nothing
    # many hosts: the bytes each rank sends approach 2n, the latency grows as 2(N−1)
    assert bd.ring_allreduce_seconds(1e6, 1000, 0, 1e-9) == pytest.approx(2 * 999 / 1000 * 1e-3)


def test_efficiency_and_projection_on_known_numbers():
    assert bd.efficiency(3.0, 1.0) == 0.75
    assert bd.efficiency(3.0, 1.0, hidden_s=2.0) == 1.0   # all of it hidden behind compute
    assert bd.efficiency(3.0, 1.0, hidden_s=0.5) == pytest.approx(3 / 3.5)
    # 1M parameters, 1000 tokens, 6 GFLOP/s: 6·1e6·1000 / 6e9 = 1 s of compute; 4 MB of gradients
    # in buckets of 1 MB (4 messages), 2 hosts, α = 1 ms, β = 1 ns/B: 4·2·1 ms + 4e6·1e-9 = 12 ms
    p = bd.project(1e6, 1000, 6e9, 2, 1e-3, 1e-9, bucket_bytes=1e6)
    assert p["compute_s"] == pytest.approx(1.0) and p["comm_s"] == pytest.approx(0.012)
    assert p["step_s"] == pytest.approx(1.012) and p["efficiency"] == pytest.approx(1 / 1.012)
    assert p["efficiency_overlap"] == 1.0  # 12 ms hides behind 2/3 s of backward
    assert 8 / bd.NETWORKS["25 Gb/s Ethernet"][1] == pytest.approx(0.32e-9)  # β of 25 Gb/s: 0.32 ns per byte


def test_parameter_counts():
    from tinylm.models import GPT, GPTConfig

    assert bd.gpt_parameters(65, 64, 4, 128) == GPT(GPTConfig()).num_parameters() == 809_856
    assert bd.gpt_parameters(**bd.GPT2_SMALL) == 124_439_808  # GPT-2 small, the "124M" model


def test_fit_recovers_alpha_and_beta():
    sizes = [8 * 4 ** k for k in range(13)]
    for hosts in (2, 4):
        times = [bd.ring_allreduce_seconds(n, hosts, 3e-6, 0.4e-9) for n in sizes]
        alpha, beta = bd.fit_alpha_beta(sizes, times, hosts)
        assert alpha == pytest.approx(3e-6, rel=1e-6) and beta == pytest.approx(0.4e-9, rel=1e-6)
    # pure bandwidth: α would come out negative with noise; it is held at 0 instead
    alpha, beta = bd.fit_alpha_beta([1e3, 1e6], [1e-6 * 0.9, 1e-3], 2)
    assert alpha == 0.0 and beta > 0


def test_message_sizes():
    assert bd.message_sizes(4096) == [8, 32, 128, 512, 2048, 4096]
    assert bd.message_sizes(2048) == [8, 32, 128, 512, 2048]
    assert bd.message_sizes(64 * 2 ** 20)[-1] == 64 * 2 ** 20


def test_measuring_script_under_mpiexec(tmp_path, monkeypatch):
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install 'tinylm[mpi]')")
    if mpiexec_path() is None:
        pytest.skip("no mpiexec beside this Python or on the PATH (pip install 'tinylm[mpi]')")
    monkeypatch.chdir(tmp_path)  # outside the source tree, as a user would run it
    result = bd.run_measure(2, max_bytes=4096, repeats=3, extra=[1000], timeout=120)
    assert result["nproc"] == 2
    assert [r["bytes"] for r in result["rows"]] == [8, 32, 128, 512, 2048, 4096, 1000]
    assert all(r["correct"] and 0 < r["seconds"] < 1 and r["repeats"] == 3 for r in result["rows"])


def test_projection_plot(tmp_path):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (pip install 'tinylm[plot]')")
    models = {"GPT-2 small": (bd.gpt_parameters(**bd.GPT2_SMALL), bd.GPT2_TOKENS_PER_HOST)}
    path = bd.plot_projection(models, {"GPU host": bd.GPU_HOST_FLOPS}, 25 * 2 ** 20, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = bd.projection_rows(models, {"GPU host": bd.GPU_HOST_FLOPS}, 25 * 2 ** 20)
    assert len(rows) == len(bd.NETWORKS) * len(bd.HOSTS)
    assert all(0 < r["efficiency"] <= r["efficiency_overlap"] <= 1 for r in rows)
    by = {(r["network"], r["hosts"]): r["efficiency"] for r in rows}
    assert by["400 Gb/s InfiniBand", 512] > by["25 Gb/s Ethernet", 512]  # a faster network scales better
    assert math.isclose(by["25 Gb/s Ethernet", 8], bd.project(*models["GPT-2 small"], bd.GPU_HOST_FLOPS, 8, 30e-6,
                                                              8 / 25e9, 25 * 2 ** 20)["efficiency"])


def test_bench_ddp_refuses_one_process(capsys):
    assert main(["bench", "ddp", "--processes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--processes" in err


def test_the_report_with_stand_in_measurements(tmp_path, monkeypatch, capsys):
    # the measurements replaced by known numbers: α = 2 µs, β = 0.5 ns/B exactly; 50 GFLOP/s
    def fake_measure(nproc, max_bytes, repeats, extra):
        sizes = bd.message_sizes(max_bytes) + list(extra)
        rows = [{"bytes": n, "seconds": bd.ring_allreduce_seconds(n, nproc, 2e-6, 0.5e-9), "repeats": repeats,
                 "correct": True} for n in sizes]
        return {"nproc": nproc, "mpi": "stand-in MPI", "rows": rows}

    monkeypatch.setattr(bd, "run_measure", fake_measure)
    monkeypatch.setattr(bd, "train_speed", lambda n, steps, threads=None: 1000.0 * n * (2 if threads else 1))
    monkeypatch.setattr(bd, "blas_flops", lambda n: 50e9)
    result = bd.bench_ddp(nproc=2, steps=3, quick=True, png=str(tmp_path / "p.png"), json_path=tmp_path / "r.json")
    out = capsys.readouterr().out
    assert result["alpha"] == pytest.approx(2e-6) and result["beta"] == pytest.approx(0.5e-9)
    assert "α = 2 µs, β = 0.5 ns/B" in out and "CPU host 50 GFLOP/s" in out and "ASSUMED" in out
    speeds = [(r["processes"], r["threads"], r["tokens_per_s"]) for r in result["training"]]
    assert speeds[:2] == [(1, None, 1000.0), (2, None, 2000.0)]
    assert len(result["projection"]) == 2 * 2 * len(bd.NETWORKS) * len(bd.HOSTS)  # 2 models × 2 host kinds
    import json

    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["bench"] == "ddp" and "cpu" in saved["machine"] and saved["alpha"] == result["alpha"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
