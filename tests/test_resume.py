"""Every task of the one Trainer resumes exactly: a run stopped at step k and resumed writes the
same metrics.jsonl (losses, evaluations, learning rates) as a run that never stopped."""
import json

import numpy as np

import pytest

from tinylm.compress import compress_checkpoint
from tinylm.data.labelled import default_sentiment
from tinylm.tasks.classify import finetune
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.tasks.mlm import pretrain
from tinylm.train import Trainer


def quiet(line):
    pass


def metrics(folder):
    """metrics.jsonl without the speed columns (timings differ from run to run)."""
    with open(folder / "metrics.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [{k: v for k, v in row.items() if not k.endswith("_per_s")} for row in rows]


def stopped_and_resumed(run, tmp_path, short, full, folder=""):
    """metrics of run(out, length=full) and of run(out, length=short) then run(..., length=full, resume=True)."""
    logs = []
    run(tmp_path / "straight", full, False, quiet)
    run(tmp_path / "resumed", short, False, quiet)
    run(tmp_path / "resumed", full, True, logs.append)
    assert any(line.startswith("resuming from") for line in logs)  # it continued, it did not start again
    straight, resumed = metrics(tmp_path / "straight" / folder), metrics(tmp_path / "resumed" / folder)
    assert any("val_loss" in row for row in straight) and any("train_loss" in row for row in straight)
    return straight, resumed


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "story.txt"
    path.write_text("".join(f"The cat sat on mat {i % 9}. A dog ran to the log {i % 4}! It was day {i % 5}.\n"
                            for i in range(150)), encoding="utf-8")
    return str(path)


def test_pretrain_mlm_nsp_resumes_exactly(text, tmp_path):
    def run(out, steps, resume, log):
        pretrain(data=text, n_layer=1, n_head=2, n_embd=16, block_size=24, batch_size=4, max_iters=steps,
                 lr_decay_iters=8, warmup_iters=2, eval_interval=3, eval_iters=2, dropout=0.1, log_interval=1,
                 out=str(out), resume=resume, progress=False, log=log)

    straight, resumed = stopped_and_resumed(run, tmp_path, 6, 8)
    assert resumed == straight


def test_finetune_resumes_exactly(tmp_path):
    pretrained = tmp_path / "lm"
    corpus = tmp_path / "reviews.txt"
    corpus.write_text("\n".join(default_sentiment(60).texts), encoding="utf-8")
    Trainer(LanguageModeling(LMConfig(data=str(corpus), tokenizer="word", n_layer=1, n_head=2, n_embd=16,
                                      block_size=16, batch_size=4, max_iters=3, eval_interval=3, eval_iters=1,
                                      out=str(pretrained), progress=False)), log=quiet).run()

    def run(out, epochs, resume, log):
        finetune(str(pretrained / "last.ckpt"), data=default_sentiment(60), method="prompt", n_prompt=2,
                 epochs=epochs, batch_size=8, dropout=0.2, log_interval=1, out=str(out), resume=resume,
                 progress=False, log=log)

    straight, resumed = stopped_and_resumed(run, tmp_path, 1, 3)
    assert resumed == straight


def test_compress_distillation_resumes_exactly(text, tmp_path):
    teacher = tmp_path / "teacher"
    Trainer(LanguageModeling(LMConfig(data=text, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                                      max_iters=4, eval_interval=4, eval_iters=1, out=str(teacher),
                                      progress=False)), log=quiet).run()

    def run(out, steps, resume, log):
        out.mkdir(exist_ok=True)
        compress_checkpoint(teacher / "last.ckpt", out / "small.ckpt", prune=0.3, data=text,
                            distill_from=teacher / "last.ckpt", max_iters=steps, eval_interval=2, batch_size=2,
                            grad_accum=2, log_interval=1, resume=resume, log=log)

    straight, resumed = stopped_and_resumed(run, tmp_path, 4, 6, folder="small.distill")
    assert resumed == straight and len([row for row in straight if "val_kl" in row]) == 4


def small_lm(text, out, **settings):
    return LMConfig(**{**dict(data=text, n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=8,
                                eval_interval=4, eval_iters=1, log_interval=1, out=str(out), progress=False),
                       **settings})


def test_a_torn_last_metrics_line_is_dropped_on_resume_with_a_warning(text, tmp_path):
    Trainer(LanguageModeling(small_lm(text, tmp_path, max_iters=4)), log=quiet).run()
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 4, "train_lo')  # killed while writing this row
    logs = []
    Trainer(LanguageModeling(small_lm(text, tmp_path, resume=True)), log=logs.append).run()
    assert any("dropped a torn last line of" in line and "metrics.jsonl" in line for line in logs)
    steps = [row["step"] for row in metrics(tmp_path) if "val_loss" not in row]
    assert steps == list(range(8))
    svg = (tmp_path / "loss.svg").read_text(encoding="utf-8")  # the loss curve, with no plotting library
    assert svg.startswith("<svg") and svg.count("<polyline") == 2


def test_a_loss_that_is_not_finite_stops_training_and_writes_no_nan(text, tmp_path):
    class Exploding(LanguageModeling):
        def loss(self, batch):
            loss = super().loss(batch)
            return loss * float("nan") if self.model.training and self.steps_done == 5 else loss

        def after_step(self):
            self.steps_done += 1

    task = Exploding(small_lm(text, tmp_path))
    task.steps_done = 0
    with pytest.raises(RuntimeError, match=r"loss became nan at step 5; nothing of that step was saved, the last "
                                           r"good checkpoint is .*last.ckpt"):
        Trainer(task, log=quiet).run()
    rows = (tmp_path / "metrics.jsonl").read_text(encoding="utf-8")
    assert "NaN" not in rows and max(row["step"] for row in metrics(tmp_path)) == 4
    from tinylm import checkpoint

    arrays, meta = checkpoint.load(tmp_path / "last.ckpt")
    assert meta["step"] == 4 and all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")
