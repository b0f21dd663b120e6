"""Evaluation metrics, each computed from its formula, with the formula beside the code.

- language modelling: `evaluate_loss`, `perplexity`;
- classification (004.metrics): `accuracy`, `confusion_matrix`, `precision_recall_f1`;
- generated text against references (004.metrics): `corpus_bleu` and `sentence_bleu` (the
  numbers sacrebleu gives with tokenize="none"), `rouge_n` and `rouge_l` (those of rouge-score);
- uncertainty and ensembles (001.uncertainty): `confidence`, `entropy`, `vote`, `average_probs`.

Class labels may be any hashable values (ints, strings). Bad input raises a one-line ValueError.
"""
import math
import re
from collections import Counter

import numpy as np

from .nn import functional as F
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


# ---------------------------------------------------------------------------------------------
# Classification (004.metrics)


def _as_list(labels, name):
    """A 1-D label sequence as a plain list (array items become Python scalars: 3, not np.int64(3))."""
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got an array of shape {labels.shape}")
        return labels.tolist()
    return list(labels)


def _check_pair(pred, true):
    """pred and true as lists of the same, non-zero length."""
    pred, true = _as_list(pred, "pred"), _as_list(true, "true")
    if len(pred) != len(true):
        raise ValueError(f"pred has {len(pred)} labels but true has {len(true)}: they must pair up one to one")
    if not true:
        raise ValueError("pred and true are empty: there is nothing to score")
    return pred, true


def _ratio(numerator, denominator):
    """numerator / denominator (element-wise on arrays), 0.0 wherever the denominator is 0."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def accuracy(pred, true):
    """The fraction of correct predictions (004.metrics):  acc = (1/N) Σ_i [pred_i = true_i]."""
    pred, true = _check_pair(pred, true)
    return sum(p == t for p, t in zip(pred, true)) / len(true)


def confusion_matrix(pred, true, labels=None):
    """Counts of (true, predicted) label pairs (004.metrics), laid out as scikit-learn lays them:

        C[i, j] = #{k : true_k = labels[i] and pred_k = labels[j]}

    Rows are true labels, columns predicted labels, so the diagonal counts correct predictions.
    Note the argument order: pred first, then true (scikit-learn takes y_true first).
    labels: the order of rows and columns; by default the sorted labels seen in pred or true. When
    given, every label in pred and true must be one of them (a ValueError names the first that is not).
    Returns (C, labels) with C an int64 array of shape (K, K), K = len(labels).
    """
    pred, true = _check_pair(pred, true)
    if labels is None:
        try:
            labels = sorted(set(pred) | set(true))
        except TypeError:
            raise ValueError("labels of different types cannot be sorted: "
                             "pass labels=[...] in the order you want") from None
    else:
        labels = _as_list(labels, "labels")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels {labels} name a label more than once")
        known = set(labels)
        for label in true + pred:
            if label not in known:
                raise ValueError(f"label {label!r} is not one of the known labels {labels}")
    row = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for p, t in zip(pred, true):
        matrix[row[t], row[p]] += 1
    return matrix, labels


def precision_recall_f1(pred, true, average="macro", labels=None):
    """Precision, recall and F1 read off the confusion matrix C (004.metrics). For a class c:

        TP = C[c, c]                     predicted c and was c
        FP = Σ_i C[i, c] − TP            predicted c but was not (the rest of column c)
        FN = Σ_j C[c, j] − TP            was c but predicted otherwise (the rest of row c)
        precision = TP / (TP + FP)       recall = TP / (TP + FN)
        F1 = 2·precision·recall / (precision + recall) = 2TP / (2TP + FP + FN)

    Zero division: a ratio whose denominator is 0 (a class never predicted, or never present)
    is 0.0, as with scikit-learn's zero_division=0.

    average="macro": the unweighted mean over classes of each per-class score (a rare class
        weighs as much as a frequent one);
    average="micro": TP, FP and FN summed over classes first, then the three ratios; as each
        sample has exactly one label, micro precision = recall = F1 = accuracy;
    average=None: one entry per class, {label: {"precision", "recall", "f1", "support"}},
        support = how many times the class is the true label.
    Averaged results are {"precision", "recall", "f1"}. labels: as in confusion_matrix; a class
    listed there but never seen counts in the macro mean with scores 0.0.
    """
    if average not in ("macro", "micro", None):
        raise ValueError(f"average must be 'macro', 'micro' or None, got {average!r}")
    matrix, labels = confusion_matrix(pred, true, labels)
    tp = np.diag(matrix)
    fp = matrix.sum(axis=0) - tp
    fn = matrix.sum(axis=1) - tp
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
    if average is None:
        return {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(tp[i] + fn[i])}
                for i, label in enumerate(labels)}
    return {"precision": float(np.mean(precision)), "recall": float(np.mean(recall)), "f1": float(np.mean(f1))}


# ---------------------------------------------------------------------------------------------
# Generated text against references: BLEU and ROUGE (004.metrics)

# The smoothing methods of corpus_bleu, with sacrebleu's default smooth_value for each.
BLEU_SMOOTHING = {"exp": None, "floor": 0.1, "add-k": 1, "none": None}


def _ngrams(tokens, n):
    """Counter of the n-grams of `tokens` (each a tuple of n consecutive tokens)."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _token_list(tokens, what):
    """A list of tokens; a string here is a mistake (BLEU would count its characters)."""
    if isinstance(tokens, str):
        raise ValueError(f"{what} is a string: pass a list of tokens, e.g. text.split()")
    return list(tokens)


def _reference_lists(references, i):
    """The references of hypothesis i as a list of token lists. A list whose items are lists
    (or tuples) holds several references; any other list is one reference (so [] is one empty reference)."""
    references = _token_list(references, f"references[{i}]")
    if references and isinstance(references[0], (list, tuple)):
        return [_token_list(ref, f"references[{i}][{j}]") for j, ref in enumerate(references)]
    return [references]


def corpus_bleu(hypotheses, references, max_n=4, smooth="exp", smooth_value=None, effective_order=False):
    """Corpus BLEU in 0..100 (004.metrics; Papineni et al. 2002), the number sacrebleu's
    corpus_bleu gives with tokenize="none" for the same tokens joined by spaces.

    hypotheses: one token list per generated sentence. references: for each hypothesis, a list
    of reference token lists (their number may vary), or a single reference token list.

    Counts summed over the corpus, for each order n = 1..N (N = max_n):
        m_n = Σ_g min(count_hyp(g), max_ref count_ref(g))    clipped matches of the hypothesis n-grams g
        t_n = Σ_g count_hyp(g)                                hypothesis n-grams
        c = Σ hypothesis lengths,   r = Σ reference lengths closest to each hypothesis's length
            (on a tie, the shorter reference)
    Brevity penalty:  BP = 1 if c ≥ r, else exp(1 − r/c) (0 when c = 0).
    BLEU = 100 · BP · exp((1/N) Σ_n log p_n), with p_n = m_n / t_n except where smoothing applies:
        "exp"   (sacrebleu's default; NIST): the k-th order with m_n = 0 gets p_n = 1 / (2^k t_n);
        "floor" (default smooth_value 0.1):  an order with m_n = 0 gets p_n = smooth_value / t_n;
        "add-k" (default smooth_value 1):    p_n = (m_n + k) / (t_n + k) for n ≥ 2, k = smooth_value;
        "none":  a zero precision makes BLEU 0.
    BLEU is 0 when no n-gram matches at all, and (without effective_order) when some order has
    no hypothesis n-grams (t_n = 0). effective_order=True averages over N' = the orders with
    t_n > 0 (t_n + k with add-k) instead of N, as sacrebleu does for sentence BLEU.
    """
    if smooth not in BLEU_SMOOTHING:
        raise ValueError(f"smooth must be one of {list(BLEU_SMOOTHING)}, got {smooth!r}")
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, got {max_n}")
    k = BLEU_SMOOTHING[smooth] if smooth_value is None else smooth_value
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists: "
                         "give one list per hypothesis")
    if not hypotheses:
        raise ValueError("no hypotheses: BLEU needs at least one sentence")

    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        hyp, refs = _token_list(hyp, f"hypotheses[{i}]"), _reference_lists(refs, i)
        hyp_len += len(hyp)
        ref_len += min((len(ref) for ref in refs), key=lambda length: (abs(length - len(hyp)), length))
        for n in range(1, max_n + 1):
            hyp_counts, max_ref_counts = _ngrams(hyp, n), Counter()
            for ref in refs:
                max_ref_counts |= _ngrams(ref, n)  # Counter | Counter: the larger count of each n-gram
            matches[n - 1] += sum((hyp_counts & max_ref_counts).values())  # & : the smaller count (clipping)
            totals[n - 1] += sum(hyp_counts.values())

    if not any(matches):
        return 0.0
    if hyp_len >= ref_len:
        brevity = 1.0
    else:
        brevity = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    log_precisions, zero_orders = [], 0
    for n, (m, t) in enumerate(zip(matches, totals), start=1):
        if smooth == "add-k" and n > 1:
            m, t = m + k, t + k
        if t == 0:  # no hypothesis is n tokens long: this order and the higher ones are left out
            break
        if m > 0:
            p = m / t
        elif smooth == "exp":
            zero_orders += 1
            p = 1 / (2 ** zero_orders * t)
        elif smooth == "floor":
            p = k / t
        else:
            p = 0.0
        if p == 0:  # log 0 = −∞: the geometric mean is 0
            return 0.0
        log_precisions.append(math.log(p))
    order = len(log_precisions) if effective_order else max_n
    if len(log_precisions) < order:  # a missing order has precision 0
        return 0.0
    return 100 * brevity * math.exp(sum(log_precisions) / order)


def sentence_bleu(hypothesis, references, max_n=4, smooth="exp", smooth_value=None, effective_order=True):
    """BLEU of one hypothesis token list against its references (004.metrics): corpus_bleu of a
    one-sentence corpus. effective_order defaults to True, as in sacrebleu's sentence_bleu, so a
    sentence shorter than max_n is not scored 0 for lacking the longer n-grams."""
    return corpus_bleu([hypothesis], [references], max_n, smooth, smooth_value, effective_order)


def rouge_tokenize(text):
    """The tokens rouge-score's default tokenizer makes without stemming: the text lowercased,
    every run of characters other than a-z and 0-9 taken as a break.
    "The cat's 2 hats!" -> ['the', 'cat', 's', '2', 'hats']."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _rouge_tokens(text_or_tokens):
    """A string is tokenized by rouge_tokenize; a token list is used as it is."""
    return rouge_tokenize(text_or_tokens) if isinstance(text_or_tokens, str) else list(text_or_tokens)


def _precision_recall_fmeasure(overlap, hyp_count, ref_count):
    """precision = overlap / hyp_count, recall = overlap / ref_count, F = 2PR / (P + R); 0.0 for a zero denominator."""
    precision, recall = float(_ratio(overlap, hyp_count)), float(_ratio(overlap, ref_count))
    fmeasure = float(_ratio(2 * precision * recall, precision + recall))
    return {"precision": precision, "recall": recall, "fmeasure": fmeasure}


def rouge_n(hyp, ref, n):
    """ROUGE-N of a hypothesis against one reference (004.metrics; Lin 2004), as rouge-score computes it:

        overlap = Σ_g min(count_hyp(g), count_ref(g))   over the n-grams g
        precision = overlap / #hypothesis n-grams,   recall = overlap / #reference n-grams,
        fmeasure = 2 · precision · recall / (precision + recall)   (each 0.0 for a zero denominator)

    hyp, ref: token lists, or strings tokenized by rouge_tokenize. Returns {"precision", "recall", "fmeasure"}.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    hyp_counts, ref_counts = _ngrams(_rouge_tokens(hyp), n), _ngrams(_rouge_tokens(ref), n)
    overlap = sum((hyp_counts & ref_counts).values())
    return _precision_recall_fmeasure(overlap, sum(hyp_counts.values()), sum(ref_counts.values()))


def _lcs_length(a, b):
    """Length of the longest common subsequence of a and b, by dynamic programming over prefixes:
    L[i][j] = L[i-1][j-1] + 1 if a_i = b_j, else max(L[i-1][j], L[i][j-1]); one row kept at a time."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(hyp, ref):
    """ROUGE-L of a hypothesis against one reference (004.metrics; Lin 2004), as rouge-score computes it:

        LCS = length of the longest common subsequence (in order, not necessarily adjacent)
        precision = LCS / len(hyp),   recall = LCS / len(ref),
        fmeasure = 2 · precision · recall / (precision + recall)   (each 0.0 for a zero denominator)

    hyp, ref: token lists, or strings tokenized by rouge_tokenize. Returns {"precision", "recall", "fmeasure"}.
    """
    hyp, ref = _rouge_tokens(hyp), _rouge_tokens(ref)
    return _precision_recall_fmeasure(_lcs_length(hyp, ref), len(hyp), len(ref))


# ---------------------------------------------------------------------------------------------
# Prediction confidence and ensembles (001.uncertainty)


def _check_probs(probs, name):
    """probs as a float64 array whose last axis is a probability distribution (≥ 0, summing to 1 within 1e-5)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 0 or probs.size == 0:
        raise ValueError(f"{name} is empty: expected probabilities over classes on the last axis, "
                         f"got shape {probs.shape}")
    if not np.all(probs >= 0):
        raise ValueError(f"{name} holds a negative or NaN probability: expected values in [0, 1]")
    sums = probs.sum(axis=-1)
    off = np.abs(sums - 1) > 1e-5
    if off.any():
        raise ValueError(f"{name} must sum to 1 along the last axis, but a row sums to {sums[off].flat[0]:.6g}")
    return probs


def confidence(probs):
    """The confidence of a prediction (001.uncertainty): the probability of the predicted class,
    max_c p_c, along the last axis of `probs` (shape (..., C)). Near 1: sure; near 1/C: guessing."""
    return _check_probs(probs, "probs").max(axis=-1)


def entropy(probs):
    """The uncertainty of a prediction (001.uncertainty), in nats, along the last axis of `probs`:

        H(p) = −Σ_c p_c log p_c,   with 0 · log 0 = 0

    0 for a one-hot (certain) prediction, log C for a uniform one over C classes.
    """
    probs = _check_probs(probs, "probs")
    log_probs = np.log(probs, out=np.zeros_like(probs), where=probs > 0)
    return -(probs * log_probs).sum(axis=-1) + 0.0  # + 0.0 turns the −0.0 of a certain prediction into 0.0


def vote(predictions):
    """Hard voting of an ensemble (001.uncertainty): for each sample, the label most models predicted,

        vote_i = argmax_label #{m : predictions[m][i] = label}

    A tie goes to the smallest of the tied labels, so the answer does not depend on model order.
    predictions: one label sequence per model, all the same length. Returns a list, one label per sample.
    """
    predictions = [_as_list(p, f"predictions[{m}]") for m, p in enumerate(predictions)]
    if not predictions:
        raise ValueError("vote needs the predictions of at least one model")
    for m, p in enumerate(predictions):
        if len(p) != len(predictions[0]):
            raise ValueError(f"predictions[0] has {len(predictions[0])} labels but predictions[{m}] has {len(p)}")
    if not predictions[0]:
        raise ValueError("the predictions are empty: there is nothing to vote on")
    voted = []
    for votes in zip(*predictions):
        counts = Counter(votes)
        most = max(counts.values())
        voted.append(min(label for label, count in counts.items() if count == most))
    return voted


def average_probs(probs_list):
    """Soft voting of an ensemble (001.uncertainty): the mean of the models' probabilities,

        p̄ = (1/M) Σ_m p_m,   prediction = argmax_c p̄_c   (a tie goes to the smallest class index)

    probs_list: one array of shape (..., C) per model, all the same shape. Returns (p̄, prediction).
    """
    arrays = [_check_probs(p, f"probs_list[{m}]") for m, p in enumerate(probs_list)]
    if not arrays:
        raise ValueError("average_probs needs the probabilities of at least one model")
    for m, a in enumerate(arrays):
        if a.shape != arrays[0].shape:
            raise ValueError(f"probs_list[0] has shape {arrays[0].shape} but probs_list[{m}] has shape {a.shape}")
    mean = np.mean(arrays, axis=0)
    return mean, mean.argmax(axis=-1)
