"""Making a trained model smaller and faster to ship: quantization, pruning, distillation (001.compress).

    quantize(model)        every Linear weight stored as int8 plus one float scale per output
                           channel; the weight is rebuilt (dequantized) inside each forward pass
    prune(model, 0.5)      the 50% of Linear weights smallest in magnitude (over all layers at
                           once) set to zero, with masks that keep them zero while fine-tuning
    distillation_loss(...)  the loss that trains a (smaller or compressed) student to match the
                           softened next-token distribution of a larger teacher (the task that
                           trains it: tinylm.tasks.distill)
    compress_checkpoint(...)         all of it on a checkpoint file, with a before/after table
                           of size on disk, parameters, speed and validation loss

A compressed checkpoint is an ordinary tinylm checkpoint whose meta has a "compression"
entry; `load_compressed(path)` rebuilds the model from it (QuantizedLinear layers included).
"""
import os
import tempfile
import time
from collections import Counter

import numpy as np

from . import checkpoint
from .nn import functional as F
from .autograd import no_grad
from .table import format_table
from .data import load_text, load_tokenizer, sequential_batches, train_val_split
from .metrics import evaluate_loss
from .nn import Embedding, Linear, Module
from .nn.layers import check_last_dim
from .tensor import Tensor

# --- int8 quantization ---------------------------------------------------------------------------


def quantize_weight(weight):
    """(q, scale) for a weight matrix W (out, in), symmetric and per output channel (row) c:

        scale_c = max_j |W_cj| / 127,     q_cj = clip(round(W_cj / scale_c), -127, 127)  (int8)

    so W_cj ≈ q_cj · scale_c with |W_cj - q_cj · scale_c| <= scale_c / 2 (rounding to the
    nearest integer). -128 is never used, so +x and -x get the same code with opposite signs.
    The division is done in float64; the scales are stored in the weight's dtype.
    """
    w = weight.data if isinstance(weight, Tensor) else weight
    xp = weight.xp if isinstance(weight, Tensor) else np
    w64 = w.astype(np.float64)
    scale = xp.abs(w64).max(axis=1) / 127
    scale = xp.where(scale == 0, 1.0, scale)  # an all-zero row: any scale gives q = 0 exactly
    q = xp.clip(xp.rint(w64 / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(w.dtype)


class QuantizedLinear(Module):
    """y = x Ŵᵀ + b with Ŵ_cj = q_cj · scale_c: a Linear whose weight is kept as int8 codes q
    (out_features, in_features) and one float scale per output channel (see quantize_weight).

    The int8 weight and the scales are buffers ("weight_int8", "weight_scale"): saved by
    state_dict and moved by to(), but not learned. The bias stays a float Parameter. Ŵ is
    rebuilt (dequantized) on every forward pass, so the memory saving is in storage; the
    arithmetic is the float matmul of Linear.
    """

    def __init__(self, weight_int8, weight_scale, bias=None):
        super().__init__()
        self.out_features, self.in_features = weight_int8.shape
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("weight_scale", weight_scale)
        self.bias = bias

    def dequantized_weight(self, dtype=None):
        """Ŵ = q · scale (one scale per row), as a Tensor of `dtype` (the scales' by default)."""
        dtype = dtype or self.weight_scale.dtype
        return self.weight_int8.astype(dtype) * self.weight_scale.astype(dtype).unsqueeze(1)

    def forward(self, x):
        check_last_dim("QuantizedLinear", x, self.in_features, f"(..., {self.in_features})")
        y = x @ self.dequantized_weight(x.dtype).T
        return y if self.bias is None else y + self.bias

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, weight=int8")


def quantize_linear(linear):
    """A QuantizedLinear computing (almost) what `linear` computes; it shares linear's bias."""
    if not isinstance(linear, Linear):
        raise TypeError(f"quantize_linear: expected a Linear, got {type(linear).__name__}")
    q, scale = quantize_weight(linear.weight)
    return QuantizedLinear(Tensor(q), Tensor(scale), linear.bias)


def _linear_children(model):
    """(parent, attribute name, full name, Linear) for every Linear inside model, in order."""
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Linear):
                yield parent, name, f"{parent_name}.{name}" if parent_name else name, child


def quantize(model):
    """Replace every Linear inside `model` by a QuantizedLinear, in place; returns a summary dict:
    "quantized" (layer names), "skipped" (name -> reason), "float_bytes" and "int8_bytes" (the
    quantized weights' storage before, and after with the scales).

    A Linear whose weight is shared with another layer is left as it is: GPT's lm_head uses the
    token embedding's matrix (weight tying). Quantizing it would either quantize the embedding
    too, or untie the two and store a second (int8) copy — 5 bytes per weight instead of 4,
    larger than leaving the one float matrix shared. Any pruning mask of a quantized layer is
    dropped: its zeros stay zero (round(0 / scale) = 0) and int8 weights are not trained.
    """
    layers = list(_linear_children(model))
    if not layers:
        hint = (" (use quantize_linear for a single Linear)" if isinstance(model, Linear) else
                " (it is already quantized)" if any(isinstance(m, QuantizedLinear) for m in model.modules()) else "")
        raise ValueError(f"quantize: {type(model).__name__} has no Linear layer inside it to quantize{hint}")
    owners = Counter(id(p) for m in model.modules() for p in m._parameters.values() if p is not None)
    summary = {"quantized": [], "skipped": {}, "float_bytes": 0, "int8_bytes": 0}
    for parent, attr, name, linear in layers:
        if owners[id(linear.weight)] > 1:
            summary["skipped"][name] = "weight tied to another layer: kept float and tied"
            continue
        quantized = quantize_linear(linear)
        setattr(parent, attr, quantized)
        summary["quantized"].append(name)
        summary["float_bytes"] += linear.weight.data.nbytes
        summary["int8_bytes"] += quantized.weight_int8.data.nbytes + quantized.weight_scale.data.nbytes
    return summary


# --- magnitude pruning ---------------------------------------------------------------------------

PRUNABLE = {"linear": Linear, "embedding": Embedding}


def check_sparsity(sparsity):
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"prune: sparsity must be a fraction in [0, 1), got {sparsity!r}")


def _prunable_weights(model, include):
    """(module name, module) owning each distinct weight of the kinds in `include`, in model order.
    A Linear weight tied to an Embedding (GPT's lm_head) counts as an embedding."""
    unknown = set(include) - set(PRUNABLE)
    if not include or unknown:
        raise ValueError(f"prune: include must name layer kinds among {sorted(PRUNABLE)}, got {include!r}")
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, Embedding)}
    kinds = tuple(PRUNABLE[k] for k in include)
    seen, owners = set(), []
    for name, module in model.named_modules():
        if not isinstance(module, kinds) or id(module.weight) in seen:
            continue
        if isinstance(module, Linear) and id(module.weight) in embedding_weights and "embedding" not in include:
            continue
        seen.add(id(module.weight))
        owners.append((name, module))
    return owners


def prune(model, sparsity, include=("linear",)):
    """Global unstructured magnitude pruning: zero the round(sparsity · n) weights of smallest |w|
    among all n weights of the layers in `include` ("linear" by default; add "embedding" for
    the embedding tables), ranked together across layers, so a layer of mostly small weights
    loses more of them than a layer of large ones.

    Exactly round(sparsity · n) weights become zero: they are the first of the weights sorted by
    |w|, ties broken by their position (layer order, then row-major). Each pruned layer keeps a
    boolean buffer "weight_mask" (True = kept); call apply_masks(model) after every optimizer
    step to keep pruned weights at zero while fine-tuning, and remove_masks(model) when done.
    Pruning again recomputes the masks from the current weights (pruned ones, being zero, go
    first). Returns a report dict: target, threshold (the largest |w| pruned), zeros, total,
    sparsity, and per-layer sparsity under "layers".
    """
    check_sparsity(sparsity)
    owners = _prunable_weights(model, include)
    if not owners:
        raise ValueError(f"prune: {type(model).__name__} has no {' or '.join(include)} weights to prune")
    magnitudes = np.concatenate([np.abs(m.weight.numpy()).ravel() for _, m in owners])
    n, k = magnitudes.size, round(sparsity * magnitudes.size)
    order = np.argsort(magnitudes, kind="stable")  # stable: equal |w| keep their position order
    keep = np.ones(n, dtype=bool)
    keep[order[:k]] = False
    start = 0
    for _, module in owners:
        size = module.weight.numel()
        mask = keep[start:start + size].reshape(module.weight.shape)
        module.register_buffer("weight_mask", Tensor(module.weight.xp.asarray(mask)))
        start += size
    apply_masks(model)
    return {"target": sparsity, "threshold": float(magnitudes[order[k - 1]]) if k else 0.0,
            "zeros": k, "total": n, "sparsity": k / n,
            "layers": {name: 1 - float(m.weight_mask.numpy().mean()) for name, m in owners}}


def apply_masks(model):
    """w <- w ⊙ mask for every layer with a "weight_mask" buffer; returns how many layers."""
    masked = [m for m in model.modules() if m._buffers.get("weight_mask") is not None]
    for m in masked:
        m.weight.data *= m.weight_mask.data
    return len(masked)


def remove_masks(model):
    """Make pruning permanent: apply the masks, then drop them (the zeros stay, the state_dict
    is the unpruned model's again, and the file does not carry one byte per weight of mask)."""
    apply_masks(model)
    for m in model.modules():
        if "weight_mask" in m._buffers:
            del m.weight_mask


# --- knowledge distillation ----------------------------------------------------------------------


def kl_divergence(student_logits, teacher_logits, temperature=1.0):
    """Mean over positions of KL(p || q) with p = softmax(teacher / T), q = softmax(student / T):

        KL(p || q) = Σ_v p_v (log p_v - log q_v)

    over the last axis (the vocabulary), both log-probabilities by log_softmax (stable)."""
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def distillation_loss(student_logits, teacher_logits, targets, temperature=2.0, alpha=0.5):
    """L = α T² KL(softmax(teacher/T) || softmax(student/T)) + (1 - α) CE(student, targets)
    (Hinton, Vinyals & Dean 2015). The soft term's gradient shrinks as 1/T², hence the T²."""
    vocab = student_logits.shape[-1]
    soft = kl_divergence(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits.reshape(-1, vocab), targets.reshape(-1))
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard


def evaluate_kl(student, teacher, ids, batch_size=16):
    """Mean KL(teacher || student) at T = 1, in nats per token, over every token of `ids`."""
    block = min(student.config.block_size, teacher.config.block_size)
    total, count = 0.0, 0
    modes = student.training, teacher.training
    student.eval()
    teacher.eval()
    with no_grad():
        for x, _ in sequential_batches(ids, batch_size, block):
            total += kl_divergence(student(x)[0], teacher(x)[0]).item() * x.size
            count += x.size
    student.train(modes[0])
    teacher.train(modes[1])
    return total / count


# --- checkpoints and the report ------------------------------------------------------------------


def load_compressed(path):
    """(model, meta) from a checkpoint, compressed or not.

    A quantized checkpoint holds "<layer>.weight_int8" and "<layer>.weight_scale" instead of
    "<layer>.weight". The float architecture is rebuilt by checkpoint.model_from from the
    dequantized weights (Ŵ = q · scale), quantized again, and then given the stored int8
    weights and scales exactly. A pruned-only checkpoint is a plain one (its zeros are stored).
    """
    arrays, meta = checkpoint.load(path)
    if not any(key.endswith(".weight_int8") for key in arrays):
        return checkpoint.model_from(arrays, meta, path), meta
    dense = {}
    for key, value in arrays.items():
        if key.endswith(".weight_int8"):
            layer = key[:-len(".weight_int8")]
            dense[layer + ".weight"] = value * arrays[layer + ".weight_scale"][:, None]
        elif not key.endswith(".weight_scale"):
            dense[key] = value
    model = checkpoint.model_from(dense, meta, path)
    quantize(model)
    model.load_state_dict(checkpoint.model_state(arrays))
    return model, meta


def save_weights(path, model, meta):
    """A checkpoint of the model's weights and `meta` only (no optimizer state), written atomically."""
    checkpoint.save_model(path, model, {k: v for k, v in meta.items() if k not in ("model", "tokenizer")})


def weight_counts(model):
    """(total, nonzero): the weights the model computes with — every distinct parameter and the
    int8 weights of QuantizedLinear layers (their per-channel scales are not counted)."""
    tensors = list(model.parameters()) + [m.weight_int8 for m in model.modules() if isinstance(m, QuantizedLinear)]
    return sum(t.numel() for t in tensors), sum(int((t.numpy() != 0).sum()) for t in tensors)


def forward_tokens_per_s(model, x, repeats=5):
    """Tokens per second of model(x) without gradients: x.size over the fastest of `repeats`
    timed forward passes (after one untimed warm-up pass)."""
    was_training = model.training
    model.eval()
    times = []
    with no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    model.train(was_training)
    return x.size / min(times)


def _measure(label, file_path, size_path, model, x, val_ids):
    total, nonzero = weight_counts(model)
    return {"model": label, "file": file_path, "bytes": os.path.getsize(size_path), "parameters": total,
            "nonzero": nonzero, "tokens_per_s": forward_tokens_per_s(model, x),
            "val_loss": evaluate_loss(model, val_ids)[0]}


_quantize_model, _prune_model = quantize, prune  # compress_checkpoint's arguments reuse these names


def compress_checkpoint(ckpt_path, out_path=None, quantize=None, prune=None, data=None, distill_from=None, log=None,
                        **distill_settings):
    """Compress the model in the checkpoint `ckpt_path` and write it to `out_path` (default:
    "<ckpt name>.compressed.ckpt" beside it); returns the report rows [before, after].

    The steps, in this order, each optional but at least one asked for:
      prune=s           prune(model, s): global magnitude pruning of the Linear weights
      distill_from=P    distillation from the teacher in checkpoint P (tinylm.tasks.distill, a task of
                        the one Trainer), pruning masks kept (recovers some of the quality pruning
                        cost); distill_settings are DistillConfig's fields (max_iters, temperature,
                        alpha, batch_size, lr, device, amp, grad_accum, resume, ...). Its run folder
                        (last.ckpt, metrics.jsonl) is "<out name>.distill" beside the output, so
                        resume=True continues an interrupted distillation exactly.
      quantize="int8"   quantize(model): int8 Linear weights
    `data` is the text (a file, or the default corpus when None) tokenized with the
    checkpoint's tokenizer: distillation trains on its first 90%, validation loss is measured
    on its last 10%. The new checkpoint keeps the original meta (tokenizer, config, ...) except
    the optimizer entry — it holds no optimizer state and cannot resume training — and adds
    "compression", what was done; load it with load_compressed.

    Each row: model, file, bytes (size on disk of a weights-only checkpoint: the "before" one
    is written to a temporary folder, so optimizer state does not count), parameters, nonzero,
    tokens_per_s (a forward pass on a fixed batch of 8 validation windows, both
    models timed in this run) and val_loss (tinylm.metrics.evaluate_loss). See format_report.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if prune is not None:
        check_sparsity(prune)
    if quantize is None and prune is None and distill_from is None:
        raise ValueError("nothing to do: ask for quantize='int8', prune=<sparsity> and/or distill_from=<checkpoint>")
    root, ext = os.path.splitext(os.fspath(ckpt_path))
    out_path = os.fspath(out_path) if out_path is not None else f"{root}.compressed{ext or '.ckpt'}"
    if os.path.abspath(out_path) == os.path.abspath(ckpt_path):
        raise ValueError(f"the output {out_path} is the input checkpoint: choose another file, so the original is kept")
    log = log or (lambda line: None)
    if distill_settings and distill_from is None:
        raise ValueError(f"distillation settings ({', '.join(distill_settings)}) without distill_from")
    if distill_from is not None:
        from .config import validate
        from .tasks.distill import DistillConfig, Distillation  # the tasks sit above this module
        from .train import Trainer

        settings = {"out": os.path.splitext(out_path)[0] + ".distill", "progress": False, **distill_settings}
        distill_cfg = validate(DistillConfig(**settings))  # a bad setting fails now, before any work

    model, meta = load_compressed(ckpt_path)
    teacher = None
    if distill_from is not None:
        teacher, teacher_meta = load_compressed(distill_from)
        if teacher_meta["tokenizer"] != meta["tokenizer"]:
            raise ValueError(f"{distill_from} and {ckpt_path} use different tokenizers: distillation needs one")
    ids = np.asarray(load_tokenizer(meta["tokenizer"]).encode(load_text(data)), dtype=np.int64)
    train_ids, val_ids = train_val_split(ids, 0.1)
    x = next(sequential_batches(val_ids, 8, model.config.block_size))[0]  # the timed batch
    meta = {k: v for k, v in meta.items() if k != "optimizer"}

    with tempfile.TemporaryDirectory() as tmp:
        before_path = os.path.join(tmp, "before.ckpt")
        save_weights(before_path, model, meta)
        before = _measure("before", os.fspath(ckpt_path), before_path, model, x, val_ids)

    done, label = {"source": os.fspath(ckpt_path), "quantize": quantize}, []
    if "compression" in meta:  # compressing a compressed checkpoint: keep the record of the first pass
        done["previous"] = meta.pop("compression")
    if prune is not None:
        done["prune"] = _prune_model(model, prune)
        label.append(f"pruned {prune:.0%}")
        log(f"pruned {done['prune']['zeros']:,} of {done['prune']['total']:,} Linear weights "
            f"(|w| <= {done['prune']['threshold']:.3g})")
    if teacher is not None:
        summary = Trainer(Distillation(distill_cfg, model, teacher, train_ids, val_ids), log).run()
        first, last = summary["evals"][0], summary["evals"][-1]
        done["distill"] = {"teacher": os.fspath(distill_from), "steps": summary["steps"],
                           "temperature": distill_cfg.temperature, "alpha": distill_cfg.alpha,
                           "val_loss_before": first["val_loss"], "val_kl_before": first["val_kl"],
                           "val_loss_after": last["val_loss"], "val_kl_after": last["val_kl"]}
        label.append(f"distilled {summary['steps']} steps")
    remove_masks(model)
    if quantize == "int8":
        done["quantized"] = _quantize_model(model)
        label.append("int8")
        log(f"quantized {len(done['quantized']['quantized'])} Linear layers to int8")
    save_weights(out_path, model, {**meta, "compression": done})
    after = _measure("after: " + ", ".join(label), out_path, out_path, model, x, val_ids)
    return [before, after]


def format_report(rows):
    """The report rows as a plain-text table; sizes also as a ratio to the first row's."""
    head = ("model", "size on disk", "vs first", "parameters", "nonzero", "tokens/s", "val loss")
    first = rows[0]["bytes"]
    body = [(r["model"], f"{r['bytes'] / 1024:,.1f} KiB", f"{r['bytes'] / first:.2f}×", f"{r['parameters']:,}",
             f"{r['nonzero']:,} ({r['nonzero'] / r['parameters']:.0%})", f"{r['tokens_per_s']:,.0f}",
             f"{r['val_loss']:.4f}") for r in rows]
    return format_table(head, body)
