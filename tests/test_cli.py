"""The `tinylm` command: the demo main job and its errors."""
import subprocess
import sys

from tinylm.cli import main


def test_demo_loss_goes_down_and_gradients_check(capsys):
    assert main(["demo", "--steps", "120"]) == 0
    out = capsys.readouterr().out
    losses = [float(line.split()[1]) for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(losses) >= 4 and losses[-1] < losses[0] - 0.5
    assert out.count("PASS") == 5 and "FAIL" not in out


def test_bad_arguments_exit_2_with_one_line():
    run = subprocess.run([sys.executable, "-m", "tinylm", "demo", "--steps", "many"], capture_output=True, text=True)
    assert run.returncode == 2 and "invalid int value: 'many'" in run.stderr


def test_help_lists_the_commands():
    run = subprocess.run([sys.executable, "-m", "tinylm", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "demo" in run.stdout and "bench" in run.stdout
