"""Data-parallel training over MPI: the same command on N processes is the same training as on one
(losses and final weights within float32 rounding); checkpoints move between process counts; ZeRO-1
changes the memory, not the numbers. The MPI runs need the `mpi` extra (mpi4py and mpiexec)."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinylm import checkpoint
from tinylm.distributed import World, mpiexec_path, partition, shard, world

needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or mpiexec_path() is None,
                               reason="MPI runs need mpi4py and mpiexec: pip install 'tinylm[mpi]'")


def test_a_world_of_one_outside_mpiexec():
    here = world()
    assert (here.rank, here.size, here.is_root) == (0, 1, True)
    grads = [np.arange(3.0), np.ones((2, 2))]
    World().allreduce_mean(grads)  # nothing to talk to: unchanged
    assert grads[0].tolist() == [0, 1, 2] and here.mean(2.5) == 2.5 and here.any(True)


def test_each_rank_gets_its_rows_of_every_array():
    batch = {"x": np.arange(12).reshape(6, 2), "pair": (np.arange(6), np.arange(6) * 10)}
    parts = [shard(batch, r, 3) for r in range(3)]
    assert parts[1]["x"].tolist() == [[4, 5], [6, 7]] and parts[2]["pair"][1].tolist() == [40, 50]
    assert np.concatenate([p["x"] for p in parts]).tolist() == batch["x"].tolist()
    with pytest.raises(ValueError, match="a batch of 6 rows does not split evenly over 4 processes"):
        shard(batch, 0, 4)


def test_zero_shards_are_consecutive_and_balanced():
    owners = partition([100, 1, 1, 100, 50, 50], 2)
    assert owners == [0, 0, 0, 1, 1, 1]
    assert partition([5] * 8, 4) == [0, 0, 1, 1, 2, 2, 3, 3] and partition([1, 1, 1], 5) == [0, 2, 4]


SETTINGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
            "--eval-interval", "5", "--eval-iters", "2", "--log-interval", "1", "--lr-decay-iters", "10",
            "--no-progress"]


def train(corpus, out, *more):
    """`tinylm train` in a process of its own (outside the source tree); returns its stdout."""
    run = subprocess.run([sys.executable, "-m", "tinylm", "train", "--data", corpus, "--out", str(out), *SETTINGS,
                          *more], capture_output=True, text=True, cwd=os.path.dirname(out), timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout


def losses(out):
    with open(out / "metrics.jsonl", encoding="utf-8") as f:
        return [(row["step"], row.get("train_loss"), row.get("val_loss")) for row in map(json.loads, f)]


def assert_same_training(a, b):
    """The same rows, losses within float32 rounding, and the same final weights."""
    rows_a, rows_b = losses(a), losses(b)
    assert [r[0] for r in rows_a] == [r[0] for r in rows_b]
    np.testing.assert_allclose([[r[1] or 0, r[2] or 0] for r in rows_a], [[r[1] or 0, r[2] or 0] for r in rows_b],
                               rtol=2e-6)
    weights_a, weights_b = (checkpoint.model_state(checkpoint.load(folder / "last.ckpt")[0]) for folder in (a, b))
    for name in weights_a:
        np.testing.assert_allclose(weights_a[name], weights_b[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def one_process(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    train(corpus, out, "--max-iters", "10")
    return out


@needs_mpi
@pytest.mark.parametrize("extra", [[], ["--zero", "1"]], ids=["data-parallel", "zero-1"])
def test_two_processes_train_as_one(corpus, one_process, tmp_path, extra):
    out = tmp_path / "two"
    text = train(corpus, out, "--max-iters", "10", "--nproc", "2", *extra)
    assert "data parallel on 2 processes: global batch 4, 2 per process" in text
    assert ("ZeRO-1: optimizer state" in text) == bool(extra)
    assert_same_training(one_process, out)


@needs_mpi
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_checkpoint_moves_between_process_counts(corpus, one_process, tmp_path, first, then):
    out = tmp_path / "moved"
    train(corpus, out, "--max-iters", "5", "--nproc", str(first))
    assert "resuming from" in train(corpus, out, "--max-iters", "10", "--nproc", str(then), "--resume")
    assert_same_training(one_process, out)


@needs_mpi
def test_an_uneven_batch_is_refused_in_one_line(corpus, tmp_path):
    run = subprocess.run([sys.executable, "-m", "tinylm", "train", "--data", corpus, "--out", str(tmp_path / "x"),
                          *SETTINGS, "--batch-size", "3", "--nproc", "2"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and "--batch-size 3 does not split evenly over --nproc 2 processes" in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr  # refused before mpiexec starts
