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


def test_bad_arguments_exit_2_with_one_line(tmp_path):
    # run where a user would, outside the source tree (whose tinylm/ folder lacks the installed tinylm.kernels)
    run = subprocess.run([sys.executable, "-m", "tinylm", "demo", "--steps", "many"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 2 and "invalid int value: 'many'" in run.stderr


def test_help_lists_the_commands(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tinylm", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0 and "demo" in run.stdout and "bench" in run.stdout


def test_pretrain_and_compress_commands(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("".join(f"The cat sat on mat {i % 9}. A dog ran to the log {i % 4}!\n" for i in range(200)),
                    encoding="utf-8")
    args = ["--data", str(text), "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "24",
            "--batch-size", "4", "--max-iters", "6", "--eval-interval", "3", "--eval-iters", "1", "--no-progress", "--out"]
    assert main(["pretrain", *args, str(tmp_path / "bert")]) == 0
    assert "nsp accuracy" in capsys.readouterr().out and (tmp_path / "bert" / "best.ckpt").exists()
    assert main(["pretrain", "--objective", "clm", "--tokenizer", "char", *args, str(tmp_path / "gpt")]) == 0
    capsys.readouterr()
    assert main(["compress", "--ckpt", str(tmp_path / "gpt" / "best.ckpt"), "--quantize", "int8", "--prune", "0.5",
                 "--data", str(text)]) == 0
    out = capsys.readouterr().out
    assert "after: pruned 50%, int8" in out and (tmp_path / "gpt" / "best.compressed.ckpt").exists()
    distill = ["compress", "--ckpt", str(tmp_path / "gpt" / "best.ckpt"), "--prune", "0.3", "--data", str(text),
               "--distill-from", str(tmp_path / "gpt" / "best.ckpt"), "--out", str(tmp_path / "small.ckpt"),
               "--grad-accum", "2", "--batch-size", "2"]
    assert main([*distill, "--max-iters", "2"]) == 0
    assert "after: pruned 30%, distilled 2 steps" in capsys.readouterr().out
    assert main([*distill, "--max-iters", "4", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming from" in out and "distilled 4 steps" in out and (tmp_path / "small.distill" / "last.ckpt").exists()
    assert main(["compress", "--ckpt", str(tmp_path / "nope.ckpt"), "--prune", "0.5"]) == 2
    assert "nope.ckpt" in capsys.readouterr().err


def test_finetune_and_eval_metrics_commands(tmp_path, capsys):
    import csv as csv_module

    from tinylm.data import WordTokenizer
    from tinylm.data.labelled import default_sentiment
    from tinylm.models import build_model
    from tinylm.checkpoint import save_model

    data = default_sentiment(60)
    csv = tmp_path / "labels.csv"
    with open(csv, "w", newline="", encoding="utf-8") as f:
        writer = csv_module.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(data.texts, data.labels))
    tok = WordTokenizer.train(" ".join(data.texts))
    model = build_model("gpt", tokenizer=tok, vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    save_model(tmp_path / "lm.ckpt", model)
    assert main(["finetune", "--ckpt", str(tmp_path / "lm.ckpt"), "--data", str(csv), "--method", "head",
                 "--epochs", "2", "--out", str(tmp_path / "cls"), "--no-progress"]) == 0
    assert "head: test accuracy" in capsys.readouterr().out
    assert main(["finetune", "--ckpt", str(tmp_path / "lm.ckpt"), "--data", str(csv), "--method", "head",
                 "--epochs", "3", "--out", str(tmp_path / "cls"), "--no-progress", "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert main(["eval", "--ckpt", str(tmp_path / "cls" / "best.ckpt"), "--data", str(csv), "--metrics", "accuracy,confusion"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out and "precision" not in out
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine film,meh\n", encoding="utf-8")
    assert main(["eval", "--ckpt", str(tmp_path / "cls" / "best.ckpt"), "--data", str(bad)]) == 2
    assert "unknown label 'meh'" in capsys.readouterr().err
    assert main(["finetune", "--ckpt", str(tmp_path / "cls" / "best.ckpt"), "--data", str(csv)]) == 2
    assert "classifier" in capsys.readouterr().err


def test_every_training_command_has_the_trainers_options():
    import dataclasses

    from tinylm.cli import build_parser
    from tinylm.tasks.classify import FinetuneConfig
    from tinylm.tasks.distill import DistillConfig
    from tinylm.tasks.lm import LMConfig
    from tinylm.tasks.mlm import PretrainConfig
    from tinylm.tasks.seq2seq import Seq2SeqTrainConfig

    for config in (LMConfig, PretrainConfig, FinetuneConfig, DistillConfig, Seq2SeqTrainConfig):
        assert all(f.metadata.get("help") for f in dataclasses.fields(config)), config  # every field explained
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in ("train", "pretrain", "finetune", "compress"):
        text = commands[name].format_help()
        for option in ("--resume", "--amp", "--grad-accum", "--device", "--max-iters", "--lr"):
            assert option in text, (name, option)
