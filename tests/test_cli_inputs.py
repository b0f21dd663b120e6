"""Every bad command-line input is one line on stderr, exit status 2, no traceback, and nothing
written: a table over the options of every training command (built from their config fields, so
a new option is covered by itself) and over the files the commands read."""
import dataclasses

import pytest

from tinylm.checkpoint import save_model
from tinylm.cli import main
from tinylm.data import CharTokenizer
from tinylm.models import build_model
from tinylm.tasks.classify import FinetuneConfig
from tinylm.tasks.distill import DistillConfig
from tinylm.tasks.lm import LMConfig
from tinylm.tasks.mlm import PretrainConfig

COMMANDS = {"train": LMConfig, "pretrain": PretrainConfig, "finetune": FinetuneConfig, "compress": DistillConfig}
# sizes whose huge values the memory estimate refuses (fine-tuning takes at most the whole training split a batch)
SIZES = {"train": ("n_embd", "n_layer", "batch_size", "block_size"),
         "pretrain": ("n_embd", "n_layer", "batch_size", "block_size"), "finetune": (), "compress": ("batch_size",)}


def bad_values(command, field):
    """(value, why) pairs that field of command must refuse."""
    meta, kind = field.metadata, field.type if isinstance(field.type, str) else field.type.__name__
    values = []
    if meta["choices"]:
        values.append(("bogus", "not a choice"))
    if kind in ("int", "float"):
        values.append(("x", "wrong type"))
        if meta["min"] is not None:
            values.append((str(meta["min"] - 1), "below the minimum"))
        if meta["max"] is not None:
            values.append((str(meta["max"] + 1), "above the maximum"))
        if meta["below"] is not None:
            values.append((str(meta["below"]), "not below the bound"))
    if kind == "float":
        values += [("nan", "not a number"), ("inf", "infinite")]
    if field.name in SIZES[command]:
        values.append(("1000000000000", "far too large for memory"))
    return values


def option_cases():
    for command, config in COMMANDS.items():
        for field in dataclasses.fields(config):
            if command == "compress" and field.name == "out":
                continue
            for value, why in bad_values(command, field):
                yield pytest.param(command, "--" + field.name.replace("_", "-"), value,
                                   id=f"{command}--{field.name}={value}({why})")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good text, an empty file, a non-UTF-8 file, a folder, and a small GPT checkpoint."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "text.txt").write_text("the cat sat on the mat. a dog ran to the log!\n" * 80, encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "latin1.txt").write_bytes("café crème\n".encode("latin-1") * 50)
    (folder / "folder").mkdir()
    tokenizer = CharTokenizer.train((folder / "text.txt").read_text(encoding="utf-8"))
    gpt = build_model("gpt", tokenizer=tokenizer, vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1,
                      n_head=2, n_embd=8)
    save_model(folder / "gpt.ckpt", gpt)
    return folder


def required(command, files):
    """The arguments a command needs besides the one under test (all valid)."""
    return {"train": ["--data", str(files / "text.txt")], "pretrain": ["--data", str(files / "text.txt")],
            "finetune": ["--ckpt", str(files / "gpt.ckpt")],
            "compress": ["--ckpt", str(files / "gpt.ckpt"), "--distill-from", str(files / "gpt.ckpt"),
                         "--data", str(files / "text.txt")]}[command]


def assert_refused(argv, out, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists(), "the output folder was written"
    return err


@pytest.mark.parametrize("command, option, value", list(option_cases()))
def test_a_bad_option_value_is_refused_in_one_line(files, tmp_path, capsys, command, option, value):
    out = tmp_path / "out"
    where = ["--out", str(out / "x.ckpt")] if command == "compress" else ["--out", str(out)]
    err = assert_refused([command, *required(command, files), *where, "--no-progress", option, value], out, capsys)
    assert option in err or "memory" in err or "invalid" in err


FILE_CASES = [("train", "--data", "empty.txt", "is empty"), ("train", "--data", "latin1.txt", "not UTF-8"),
              ("train", "--data", "folder", "folder"), ("train", "--data", "missing.txt", "missing.txt"),
              ("pretrain", "--data", "latin1.txt", "not UTF-8"), ("finetune", "--data", "text.txt", "unknown format"),
              ("finetune", "--ckpt", "text.txt", "not a tinylm checkpoint"), ("finetune", "--ckpt", "folder", "folder"),
              ("sample", "--ckpt", "missing.ckpt", "does not exist"), ("eval", "--ckpt", "text.txt", "checkpoint"),
              ("compress", "--ckpt", "folder", "folder")]


@pytest.mark.parametrize("command, option, name, message", FILE_CASES)
def test_a_bad_file_is_refused_in_one_line(files, tmp_path, capsys, command, option, name, message):
    out = tmp_path / "out"
    argv = {"train": ["--out", str(out)], "pretrain": ["--out", str(out)],
            "finetune": ["--ckpt", str(files / "gpt.ckpt"), "--out", str(out)], "sample": [],
            "eval": ["--data", str(files / "text.txt")], "compress": ["--prune", "0.5", "--out", str(out / "x.ckpt")]}
    err = assert_refused([command, *argv[command], option, str(files / name)], out, capsys)
    assert message in err


def test_resume_refuses_other_data_or_another_task(files, tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--n-layer", "1", "--n-embd", "8", "--n-head", "2", "--block-size", "16", "--batch-size", "2",
             "--max-iters", "2", "--eval-interval", "2", "--eval-iters", "1", "--no-progress", "--out", str(out)]
    assert main(["train", "--data", str(files / "text.txt"), *small]) == 0
    other = files / "other.txt"
    other.write_text("the mat sat on the cat. a log ran to the dog!\n" * 80, encoding="utf-8")
    capsys.readouterr()
    for argv, message in ((["train", "--data", str(other)], "was trained with data"),
                          (["train", "--data", str(files / "text.txt"), "--tokenizer", "word"], "with tokenizer"),
                          (["pretrain", "--data", str(files / "text.txt")], "not a 'mlm+nsp' one")):
        assert main([*argv, *small, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


OTHER_COMMANDS = [(["sample", "--ckpt", "{gpt}", "--max-new-tokens", "-1"], "max_new_tokens"),
                  (["sample", "--ckpt", "{gpt}", "--temperature", "0"], "temperature"),
                  (["sample", "--ckpt", "{gpt}", "--top-k", "0"], "top_k"),
                  (["sample", "--ckpt", "{gpt}", "--top-p", "2"], "top_p"),
                  (["sample", "--ckpt", "{gpt}", "--num-return-sequences", "0"], "num_return_sequences"),
                  (["sample", "--ckpt", "{gpt}", "--seed", "-1"], "seed"),
                  (["sample", "--ckpt", "{gpt}", "--prompt", "€"], "never saw"),
                  (["eval", "--ckpt", "{gpt}", "--data", "{text}", "--batch-size", "0"], "batch_size"),
                  (["eval", "--ckpt", "{gpt}", "--data", "{text}", "--metrics", "f1"], "--metrics is for"),
                  (["bench", "train", "--steps", "0"], "--steps"), (["demo", "--steps", "0"], "--steps"),
                  (["demo", "--seed", "-1"], "--seed"), (["exercise", "03", "--out", "{text}"], "is a file"),
                  (["exercise", "99", "--out", "{folder}"], "no lesson '99'"), (["lesson", "run", "99"], "no lesson"),
                  (["grade", "{folder}/missing.py"], "missing.py"), (["gradcheck", "bogus"], "invalid choice"),
                  (["compress", "--ckpt", "{gpt}", "--prune", "1.5"], "sparsity"),
                  (["compress", "--ckpt", "{gpt}"], "nothing to do"),
                  (["finetune", "--ckpt", "{gpt}", "--folds", "1"], "k-fold"), (["frobnicate"], "invalid choice")]


@pytest.mark.parametrize("argv, message", OTHER_COMMANDS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OTHER_COMMANDS])
def test_the_other_commands_refuse_bad_input_in_one_line(files, capsys, argv, message):
    names = {"gpt": files / "gpt.ckpt", "text": files / "text.txt", "folder": files / "folder"}
    before = sorted(p.name for p in files.rglob("*"))
    assert main([arg.format(**names) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and message in err, err
    assert sorted(p.name for p in files.rglob("*")) == before
