"""Evaluation metrics for language models."""
import math

import numpy as np

from . import functional as F
from .autograd import no_grad
from .data import sequential_batches


def evaluate_loss(model, ids, batch_size=16):
    """Mean cross-entropy in nats per predicted token over `ids`, read in consecutive windows of
    the model's block_size; returns (loss, number of tokens predicted)."""
    ids = np.asarray(ids, dtype=np.int64)
    block = model.config.block_size
    if len(ids) <= block:
        raise ValueError(f"the text has {len(ids)} tokens: evaluation needs more than block_size ({block})")
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    with no_grad():
        for x, y in sequential_batches(ids, batch_size, block):
            logits, _ = model(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.size
    model.train(was_training)
    return total / count, count


def perplexity(loss):
    """exp(mean cross-entropy in nats): the number of equally likely choices the model hesitates between."""
    return math.exp(loss)
