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


def test_pretrain_and_compress_commands(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("".join(f"The cat sat on mat {i % 9}. A dog ran to the log {i % 4}!\n" for i in range(200)),
                    encoding="utf-8")
    args = ["--data", str(text), "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "24",
            "--batch-size", "4", "--steps", "6", "--eval-interval", "3", "--eval-iters", "1", "--out"]
    assert main(["pretrain", *args, str(tmp_path / "bert")]) == 0
    assert "nsp accuracy" in capsys.readouterr().out and (tmp_path / "bert" / "best.ckpt").exists()
    assert main(["pretrain", "--objective", "clm", "--tokenizer", "char", *args, str(tmp_path / "gpt")]) == 0
    capsys.readouterr()
    assert main(["compress", "--ckpt", str(tmp_path / "gpt" / "best.ckpt"), "--quantize", "int8", "--prune", "0.5",
                 "--data", str(text)]) == 0
    out = capsys.readouterr().out
    assert "after: pruned 50%, int8" in out and (tmp_path / "gpt" / "best.compressed.ckpt").exists()
    assert main(["compress", "--ckpt", str(tmp_path / "nope.ckpt"), "--prune", "0.5"]) == 2
    assert "nope.ckpt" in capsys.readouterr().err
