"""Knowledge distillation (001.compress): a student learns the teacher's softened predictions.

    batch: random windows x, y of the training ids (as for a language model)
    loss  = α T² KL(softmax(teacher(x)/T) || softmax(student(x)/T)) + (1 - α) CE(student(x), y)
            (tinylm.compress.distillation_loss; the teacher is fixed, computed without a graph)
    after every step, the student's pruning masks are applied again (pruned weights stay zero)

    result = distill(student, teacher, train_ids, val_ids, steps=100)
"""
import tempfile
from dataclasses import dataclass

from .. import checkpoint
from ..autograd import no_grad
from ..compress import apply_masks, distillation_loss, evaluate_kl
from ..config import option
from ..data import get_batch
from ..metrics import evaluate_loss
from ..train import Task, Trainer, TrainConfig, estimate_bytes, fingerprint_of


@dataclass
class DistillConfig(TrainConfig):
    temperature: float = option(2.0, "softmax temperature T of the soft targets", min=1e-6)
    alpha: float = option(0.5, "weight of the soft (KL) term; 1 - alpha weighs the hard cross-entropy",
                          min=0.0, max=1.0)
    # the loop's defaults for distillation: a constant learning rate, evaluated before and after
    max_iters: int = option(100, "distillation steps", min=1)
    batch_size: int = option(8, "sequences per micro-batch", min=1)
    min_lr: float = option(None, "learning rate at the end of the cosine decay (default: lr, constant)", min=0.0)
    warmup_iters: int = option(0, "linear warm-up steps", min=0)
    weight_decay: float = option(0.0, "weight decay (matrices only; decoupled for adamw)", min=0.0)
    beta2: float = option(0.999, "Adam beta2", min=0.0, below=1.0)
    eval_interval: int = option(None, "steps between evaluations (default: only before and after)", min=1)
    seed: int = option(0, "random seed", min=0)
    out: str = option("out-distill", "output folder (last.ckpt, metrics.jsonl)")


class Distillation(Task):
    """Train `student` towards the fixed `teacher` on train_ids; evaluation: the student's
    cross-entropy (val_loss) and its KL to the teacher at T = 1 (val_kl) on val_ids.
    The student is given (often pruned, with masks): a resumed run loads its saved weights into it."""

    kind = "distill"
    unit = "tokens"

    def __init__(self, cfg, student, teacher, train_ids, val_ids):
        super().__init__(cfg)
        if student.config.vocab_size != teacher.config.vocab_size:
            raise ValueError(f"distill: the student's vocabulary ({student.config.vocab_size} tokens) differs from "
                             f"the teacher's ({teacher.config.vocab_size}): they must share one tokenizer")
        self.student, self.teacher, self.train_ids, self.val_ids = student, teacher, train_ids, val_ids
        self.block = min(student.config.block_size, teacher.config.block_size)

    def memory_needed(self):
        """The student's training state, and per token a student's activations (about 16 values per
        layer and width) and the two models' logits."""
        c = self.student.config
        per_token = c.n_layer * 16 * c.n_embd + 4 * c.vocab_size
        return estimate_bytes(self.student.num_parameters(), self.cfg.batch_size * self.block * per_token)

    def setup(self, saved):
        self.model = self.student
        if saved is not None:
            arrays, _ = saved
            self.model.load_state_dict(checkpoint.model_state(arrays))
        self.model.train()
        self.teacher.eval().to(self.cfg.device)  # the student goes there with the Trainer

    def fingerprint(self):
        return {"data": fingerprint_of(self.train_ids.tobytes()), "teacher": self.teacher.num_parameters()}

    def schedule(self):
        return self.cfg.max_iters, self.cfg.eval_interval or self.cfg.max_iters

    def describe(self):
        return (f"distilling into a student of {self.model.num_parameters():,} parameters from a teacher of "
                f"{self.teacher.num_parameters():,}; T = {self.cfg.temperature}, alpha = {self.cfg.alpha}")

    def batch(self, i, rng):
        return get_batch(self.train_ids, self.cfg.batch_size, self.block, rng)

    def batch_items(self, batch):
        return batch[0].size

    def loss(self, batch):
        x, y = batch
        with no_grad():
            teacher_logits = self.teacher(x)[0]
        return distillation_loss(self.model(x)[0], teacher_logits, y, self.cfg.temperature, self.cfg.alpha)

    def after_step(self):
        apply_masks(self.model)

    def evaluate(self, step):
        return {"val_loss": evaluate_loss(self.model, self.val_ids)[0],
                "val_kl": evaluate_kl(self.model, self.teacher, self.val_ids)}


def distill(student, teacher, ids_train, ids_val, steps, log=None, **settings):
    """Train `student` for `steps` steps on random batches of ids_train to minimise
    distillation_loss against the fixed `teacher` (settings: DistillConfig's fields: temperature,
    alpha, batch_size, lr, out, resume, ...). Pruning masks of the student are re-applied after
    every step.

    Returns {"losses": per step, "val_loss_before"/"val_loss_after": the student's cross-entropy
    on ids_val, "val_kl_before"/"val_kl_after": its KL to the teacher on ids_val (T = 1)}.
    """
    with tempfile.TemporaryDirectory(prefix="tinylm-distill-") as tmp:
        settings = {"out": tmp, "progress": False, **settings}
        task = Distillation(DistillConfig(max_iters=steps, **settings), student, teacher, ids_train, ids_val)
        summary = Trainer(task, log or (lambda line: None)).run()
    first, last = summary["evals"][0], summary["evals"][-1]
    return {"losses": summary["train_losses"], "val_loss_before": first["val_loss"], "val_kl_before": first["val_kl"],
            "val_loss_after": last["val_loss"], "val_kl_after": last["val_kl"]}
