"""Metrics (004.metrics, 001.uncertainty) against brute-force counting and the reference libraries.

The classification metrics and the ensemble votes are checked against direct counts over
hypothesis-generated label lists (and against scikit-learn where it happens to be installed).
BLEU is checked against sacrebleu and ROUGE against rouge-score on random token sequences over
small vocabularies, so that n-grams overlap; those tests skip where the library is missing.
"""
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinylm
from tinylm.metrics import (accuracy, average_probs, confidence, confusion_matrix, corpus_bleu, entropy,
                            evaluate_loss, perplexity, precision_recall_f1, rouge_l, rouge_n, rouge_tokenize,
                            sentence_bleu, vote)
from tinylm.models import build_model

SMOOTHINGS = ["exp", "floor", "add-k", "none"]


@pytest.fixture(scope="module")
def sacrebleu():
    return pytest.importorskip("sacrebleu")


@pytest.fixture(scope="module")
def rouge_scorer():
    return pytest.importorskip("rouge_score.rouge_scorer")


# ---------------------------------------------------------------------------------------------
# Loss and perplexity


def test_evaluate_loss_is_the_mean_cross_entropy_of_consecutive_windows(rng):
    tinylm.manual_seed(0)
    model = build_model("gpt", vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=8)
    ids = rng.integers(0, 7, 30)  # 29 targets: three windows of 8, then a tail of 5
    loss, count = evaluate_loss(model, ids, batch_size=2)

    total = 0.0
    for start in range(0, 29, 8):
        x, y = ids[start:min(start + 8, 29)], ids[start + 1:min(start + 8, 29) + 1]
        logits = model(x[None])[0].numpy()[0].astype(np.float64)
        log_probs = logits - logits.max(-1, keepdims=True)
        log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
        total -= log_probs[np.arange(len(y)), y].sum()
    assert count == 29
    assert loss == pytest.approx(total / 29, rel=1e-5)
    assert model.training  # evaluate_loss puts the model back in training mode


def test_perplexity_is_exp_of_the_loss():
    assert perplexity(math.log(5.0)) == pytest.approx(5.0)  # 5 equally likely choices
    assert perplexity(0.0) == 1.0


# ---------------------------------------------------------------------------------------------
# Classification: brute-force counts

ALPHABETS = [(0, 1, 2, 3), ("cat", "dog", "eel")]


@st.composite
def label_pairs(draw):
    """(pred, true): equal-length label lists over a small alphabet of ints or strings."""
    alphabet = draw(st.sampled_from(ALPHABETS))
    pairs = draw(st.lists(st.tuples(st.sampled_from(alphabet), st.sampled_from(alphabet)), min_size=1, max_size=30))
    return [p for p, _ in pairs], [t for _, t in pairs]


def counted_scores(pred, true, c):
    """Precision, recall and F1 of class c, counted one sample at a time (zero division -> 0.0)."""
    tp = sum(1 for p, t in zip(pred, true) if p == c and t == c)
    predicted, actual = sum(1 for p in pred if p == c), sum(1 for t in true if t == c)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, actual


@given(label_pairs())
def test_accuracy_counts_the_correct_predictions(pair):
    pred, true = pair
    assert accuracy(pred, true) == sum(1 for p, t in zip(pred, true) if p == t) / len(true)
    assert accuracy(np.array(pred), np.array(true)) == accuracy(pred, true)


@given(label_pairs())
def test_confusion_matrix_counts_true_predicted_pairs(pair):
    pred, true = pair
    matrix, labels = confusion_matrix(pred, true)
    assert labels == sorted(set(pred) | set(true))
    for i, t in enumerate(labels):
        for j, p in enumerate(labels):
            assert matrix[i, j] == sum(1 for a, b in zip(pred, true) if b == t and a == p)
    assert matrix.sum() == len(true) and np.trace(matrix) == sum(1 for p, t in zip(pred, true) if p == t)

    # labels given: that order, and a class never seen gets an empty row and column
    order = labels[::-1] + ["never"]
    given_matrix, given_labels = confusion_matrix(pred, true, labels=order)
    assert given_labels == order
    np.testing.assert_array_equal(given_matrix[:-1, :-1], matrix[::-1, ::-1])
    assert given_matrix[-1].sum() == given_matrix[:, -1].sum() == 0


@given(label_pairs())
def test_precision_recall_f1_match_counting(pair):
    pred, true = pair
    labels = sorted(set(pred) | set(true))
    per_class = precision_recall_f1(pred, true, average=None)
    assert list(per_class) == labels
    counted = {c: counted_scores(pred, true, c) for c in labels}
    for c, (precision, recall, f1, support) in counted.items():
        assert per_class[c]["precision"] == pytest.approx(precision)
        assert per_class[c]["recall"] == pytest.approx(recall)
        assert per_class[c]["f1"] == pytest.approx(f1)
        assert per_class[c]["support"] == support

    macro = precision_recall_f1(pred, true, average="macro")
    for key, column in (("precision", 0), ("recall", 1), ("f1", 2)):
        assert macro[key] == pytest.approx(sum(scores[column] for scores in counted.values()) / len(labels))

    # one label per sample: every false positive of one class is a false negative of another
    micro = precision_recall_f1(pred, true, average="micro")
    assert micro == pytest.approx({"precision": accuracy(pred, true), "recall": accuracy(pred, true),
                                   "f1": accuracy(pred, true)})


def test_zero_division_gives_zero():
    # class 1 is never predicted and never true: its precision, recall and F1 are 0/0 -> 0.0
    scores = precision_recall_f1([0, 0, 2], [0, 2, 2], average=None, labels=[0, 1, 2])
    assert scores[1] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert scores[0] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    macro = precision_recall_f1([0, 0, 2], [0, 2, 2], labels=[0, 1, 2])
    assert macro == pytest.approx({"precision": 1.5 / 3, "recall": 1.5 / 3, "f1": (2 / 3 + 2 / 3) / 3})


# ---------------------------------------------------------------------------------------------
# BLEU


@st.composite
def bleu_corpora(draw):
    """(hypotheses, references): 1-4 sentences of 0-8 tokens over 1-4 words, each with 1-3
    references (their number varies), so n-grams overlap often but not always."""
    vocabulary = "abcd"[:draw(st.integers(1, 4))]
    sentence = st.lists(st.sampled_from(vocabulary), max_size=8)
    size = draw(st.integers(1, 4))
    hypotheses = [draw(sentence) for _ in range(size)]
    return hypotheses, [draw(st.lists(sentence, min_size=1, max_size=3)) for _ in range(size)]


def sacrebleu_score(sacrebleu, hypotheses, references, **options):
    """sacrebleu's corpus BLEU of the same tokens: space-joined, no tokenizer, one stream per
    reference position (None where a hypothesis has fewer references)."""
    streams = [[" ".join(refs[k]) if k < len(refs) else None for refs in references]
               for k in range(max(len(refs) for refs in references))]
    metric = sacrebleu.metrics.BLEU(tokenize="none", **options)
    return metric.corpus_score([" ".join(hyp) for hyp in hypotheses], streams).score


def test_bleu_known_values():
    # p1..p4 = 4/5, 3/4, 2/3, 1/2; no brevity penalty: BLEU = 100 · (1/5)^(1/4)
    assert corpus_bleu([list("abcde")], [[list("abcdf")]]) == pytest.approx(100 * 0.2 ** 0.25)
    # a perfect but short hypothesis: c = 4, r = 8 -> BP = exp(1 − 8/4)
    assert corpus_bleu([list("abcd")], [[list("abcdefgh")]]) == pytest.approx(100 * math.exp(-1))
    assert sentence_bleu(list("abcd"), [list("abcd"), list("xyz")]) == pytest.approx(100.0)


def test_bleu_closest_reference_length_prefers_the_shorter_on_a_tie():
    # c = 4, references of length 3 and 5 are equally close: r = 3, so no brevity penalty
    assert corpus_bleu([list("abcd")], [[list("abc"), list("abcde")]], max_n=1) == pytest.approx(100.0)


@given(bleu_corpora())
def test_bleu_accepts_a_single_reference_per_hypothesis(corpus):
    hypotheses, references = corpus
    firsts = [refs[0] for refs in references]
    assert corpus_bleu(hypotheses, firsts) == corpus_bleu(hypotheses, [[ref] for ref in firsts])


@pytest.mark.parametrize("smooth", SMOOTHINGS)
@given(corpus=bleu_corpora(), max_n=st.integers(1, 4), effective_order=st.booleans(),
       smooth_value=st.sampled_from([None, 0.5, 2]))
def test_corpus_bleu_matches_sacrebleu(sacrebleu, smooth, corpus, max_n, effective_order, smooth_value):
    hypotheses, references = corpus
    ours = corpus_bleu(hypotheses, references, max_n, smooth, smooth_value, effective_order)
    theirs = sacrebleu_score(sacrebleu, hypotheses, references, smooth_method=smooth, smooth_value=smooth_value,
                             max_ngram_order=max_n, effective_order=effective_order)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("smooth", SMOOTHINGS)
@given(corpus=bleu_corpora())
def test_default_bleu_matches_sacrebleu_functions(sacrebleu, smooth, corpus):
    hypotheses, references = corpus
    expected = sacrebleu_score(sacrebleu, hypotheses, references, smooth_method=smooth)
    assert corpus_bleu(hypotheses, references, smooth=smooth) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # sentence BLEU: sacrebleu's sentence_bleu, effective order on by default
    hyp, refs = hypotheses[0], references[0]
    expected = sacrebleu.sentence_bleu(" ".join(hyp), [" ".join(ref) for ref in refs], smooth_method=smooth,
                                       tokenize="none").score
    assert sentence_bleu(hyp, refs, smooth=smooth) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("smooth", SMOOTHINGS)
@given(corpus=bleu_corpora())
def test_bleu_without_any_overlap_is_zero(sacrebleu, smooth, corpus):
    hypotheses, references = corpus
    references = [[[word.upper() for word in ref] for ref in refs] for refs in references]  # no common word
    assert corpus_bleu(hypotheses, references, smooth=smooth) == 0.0
    assert sacrebleu_score(sacrebleu, hypotheses, references, smooth_method=smooth) == 0.0


# ---------------------------------------------------------------------------------------------
# ROUGE


class WhitespaceTokenizer:
    """For rouge-score: tokens are the space-separated words, exactly as given to tinylm."""

    def tokenize(self, text):
        return text.split()


def assert_same_rouge(ours, theirs):
    assert ours == pytest.approx({"precision": theirs.precision, "recall": theirs.recall,
                                  "fmeasure": theirs.fmeasure}, rel=1e-12, abs=1e-12)


@given(hyp=st.lists(st.sampled_from("abcd"), max_size=12), ref=st.lists(st.sampled_from("abcd"), max_size=12))
def test_rouge_on_tokens_matches_rouge_score(rouge_scorer, hyp, ref):
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rouge3", "rougeL"], tokenizer=WhitespaceTokenizer())
    theirs = scorer.score(" ".join(ref), " ".join(hyp))  # rouge-score takes the reference (target) first
    for n in (1, 2, 3):
        assert_same_rouge(rouge_n(hyp, ref, n), theirs[f"rouge{n}"])
    assert_same_rouge(rouge_l(hyp, ref), theirs["rougeL"])


TEXT = st.text(alphabet="aAbBcC12 .,'!-\té", max_size=30)


@given(hyp=TEXT, ref=TEXT)
def test_rouge_on_strings_matches_rouge_score_default_tokenizer(rouge_scorer, hyp, ref):
    from rouge_score.tokenizers import DefaultTokenizer

    assert rouge_tokenize(hyp) == DefaultTokenizer(use_stemmer=False).tokenize(hyp)
    theirs = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(ref, hyp)
    assert_same_rouge(rouge_n(hyp, ref, 1), theirs["rouge1"])
    assert_same_rouge(rouge_n(hyp, ref, 2), theirs["rouge2"])
    assert_same_rouge(rouge_l(hyp, ref), theirs["rougeL"])


def test_rouge_known_values():
    # LCS of "the cat sat" and "the cat on the mat" is "the cat": P = 2/3, R = 2/5
    assert rouge_l("The cat sat!", "the cat on the mat") == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 5, "fmeasure": 2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5)})
    # bigrams: hyp {a b, b a, a b} against ref {a b}: clipped overlap 1
    assert rouge_n(list("aba") + ["b"], list("ab"), 2) == pytest.approx(
        {"precision": 1 / 3, "recall": 1.0, "fmeasure": 0.5})
    assert rouge_n([], list("ab"), 1) == {"precision": 0.0, "recall": 0.0, "fmeasure": 0.0}
    assert rouge_tokenize("The cat's 2 hats!") == ["the", "cat", "s", "2", "hats"]


# ---------------------------------------------------------------------------------------------
# Confidence and ensembles (001.uncertainty)


@st.composite
def prob_arrays(draw, rows=None, classes=None):
    """A (rows, classes) array of softmax probabilities from random logits."""
    rows = rows or draw(st.integers(1, 5))
    classes = classes or draw(st.integers(1, 5))
    logits = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(0, 2, (rows, classes))
    probs = np.exp(logits)
    return probs / probs.sum(-1, keepdims=True)


@given(prob_arrays())
def test_confidence_and_entropy_follow_their_formulas(probs):
    np.testing.assert_array_equal(confidence(probs), [max(row) for row in probs])
    expected = [-sum(p * math.log(p) for p in row if p > 0) for row in probs]
    np.testing.assert_allclose(entropy(probs), expected, rtol=1e-12, atol=1e-12)
    assert confidence(probs[0]) == max(probs[0])  # one distribution on its own


def test_entropy_extremes():
    assert entropy([0.0, 1.0, 0.0]) == 0.0  # 0 · log 0 counts as 0: a certain prediction
    assert entropy(np.full(4, 0.25)) == pytest.approx(math.log(4))  # uniform: log C
    assert confidence(np.full(4, 0.25)) == 0.25


@given(st.integers(1, 5).flatmap(
    lambda models: st.integers(1, 10).flatmap(
        lambda samples: st.lists(st.lists(st.sampled_from("abc"), min_size=samples, max_size=samples),
                                 min_size=models, max_size=models))))
def test_vote_takes_the_most_common_label_and_the_smallest_on_a_tie(predictions):
    voted = vote(predictions)
    for i, label in enumerate(voted):
        column = [model[i] for model in predictions]
        best = max(column.count(c) for c in column)
        assert label == min(c for c in column if column.count(c) == best)
    assert vote([["b", "a"], ["a", "b"]]) == ["a", "a"]  # 1 vote each: the smaller label wins


@given(st.integers(1, 4).flatmap(lambda models: st.lists(prob_arrays(rows=3, classes=4),
                                                         min_size=models, max_size=models)))
def test_average_probs_is_the_mean_and_its_argmax(probs_list):
    mean, predicted = average_probs(probs_list)
    expected = sum(probs_list) / len(probs_list)
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    np.testing.assert_array_equal(predicted, [int(np.argmax(row)) for row in expected])


# ---------------------------------------------------------------------------------------------
# Bad input: one clear line


@pytest.mark.parametrize("call, message", [
    (lambda: accuracy([1, 2], [1]), "pred has 2 labels but true has 1"),
    (lambda: accuracy([], []), "pred and true are empty"),
    (lambda: accuracy(np.zeros((2, 2)), [1, 2]), "pred must be 1-D, got an array of shape (2, 2)"),
    (lambda: confusion_matrix([1, "x"], [1, 1], labels=[1, 2]), "label 'x' is not one of the known labels [1, 2]"),
    (lambda: confusion_matrix([1, 2], [1, 1], labels=[1, 2, 1]), "name a label more than once"),
    (lambda: confusion_matrix([1, "x"], [1, 1]), "labels of different types cannot be sorted"),
    (lambda: precision_recall_f1([1], [1], average="weighted"), "average must be 'macro', 'micro' or None"),
    (lambda: confidence([0.5, 0.4]), "probs must sum to 1 along the last axis, but a row sums to 0.9"),
    (lambda: entropy([1.5, -0.5]), "negative"),
    (lambda: confidence([]), "probs is empty"),
    (lambda: corpus_bleu([["a"]], []), "1 hypotheses but 0 reference lists"),
    (lambda: corpus_bleu([], []), "no hypotheses"),
    (lambda: corpus_bleu(["a b"], [["a b"]]), "hypotheses[0] is a string: pass a list of tokens"),
    (lambda: sentence_bleu(["a"], "a"), "references[0] is a string"),
    (lambda: corpus_bleu([["a"]], [["a"]], smooth="add-one"), "smooth must be one of"),
    (lambda: corpus_bleu([["a"]], [["a"]], max_n=0), "max_n must be at least 1"),
    (lambda: rouge_n("a", "a", 0), "n must be at least 1"),
    (lambda: vote([[1, 2], [1]]), "predictions[0] has 2 labels but predictions[1] has 1"),
    (lambda: vote([]), "at least one model"),
    (lambda: average_probs([[0.5, 0.5], [1.0, 0.0, 0.0]]),
     "probs_list[0] has shape (2,) but probs_list[1] has shape (3,)"),
])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
