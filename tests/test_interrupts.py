"""Stopping `tinylm train` part-way — Ctrl-C (SIGINT), SIGTERM or kill -9 — and resuming gives the run
that never stopped: the same metrics.jsonl row for row (losses, evaluations, learning rates), and no
temporary files left behind."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tinylm.cli import main
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

SETTINGS = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, max_iters=400, eval_interval=50,
                eval_iters=2, log_interval=1, dropout=0.1, lr=3e-3, warmup_iters=10)


def flags(settings):
    return [arg for k, v in settings.items() for arg in ("--" + k.replace("_", "-"), str(v))]


def rows(folder):
    with open(folder / "metrics.jsonl", encoding="utf-8") as f:
        return [{k: v for k, v in json.loads(line).items() if not k.endswith("_per_s")} for line in f if line.strip()]


@pytest.fixture(scope="module")
def straight(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    Trainer(LanguageModeling(LMConfig(data=corpus, out=str(out), progress=False, **SETTINGS)), log=lambda s: None).run()
    return rows(out)


def stop_part_way(corpus, out, signum, after_rows):
    """Start `tinylm train` in a process of its own, send `signum` once metrics.jsonl has after_rows
    rows, and return its exit status and stderr."""
    command = [sys.executable, "-m", "tinylm", "train", "--data", corpus, "--out", str(out), "--no-progress",
               *flags(SETTINGS)]
    process = subprocess.Popen(command, cwd=out.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and metrics.read_text(encoding="utf-8").count("\n") >= after_rows:
            process.send_signal(signum)
            break
        time.sleep(0.005)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


@pytest.mark.parametrize("signum, after_rows, status", [(signal.SIGINT, 30, 130), (signal.SIGTERM, 120, 143),
                                                         (signal.SIGKILL, 80, -9), (signal.SIGKILL, 140, -9)])
def test_stopped_and_resumed_equals_the_run_that_never_stopped(corpus, straight, tmp_path, signum, after_rows,
                                                               status, capsys):
    out = tmp_path / "run"
    code, err = stop_part_way(corpus, out, signum, after_rows)
    assert code == status, err
    if signum != signal.SIGKILL:
        last = err.strip().splitlines()[-1]
        assert "--resume" in last and "saved" in last and "Traceback" not in err
    assert main(["train", "--data", corpus, "--out", str(out), "--no-progress", "--resume", *flags(SETTINGS)]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert rows(out) == straight
    assert not [name for name in os.listdir(out) if name.startswith(".tmp-")]
