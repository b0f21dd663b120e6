"""BERT pre-training (003.mlm, 003.nsp) and the encoder–decoder Transformer (003.arch,
000.code.transformer fixed): masking and pair statistics, the models, beam search against
brute force, the numbers task, and short training runs."""
import itertools
import math

import numpy as np
import pytest

import tinylm
from tinylm import checkpoint
from tinylm.data import build_tokenizer
from tinylm.data.transduction import (Vocab, digits_to_number, make_task, number_to_digits, number_to_words,
                                      words_to_number)
from tinylm.models.bert import Bert, BertConfig
from tinylm.models.seq2seq import Seq2Seq, Seq2SeqConfig
from tinylm.data.mlm import (SpecialTokens, build_bert_batch, mask_tokens, nsp_pairs,
                             split_sentences, truncate_pair)
from tinylm.tasks.mlm import load_bert, pretrain
from tinylm.tasks.seq2seq import load_seq2seq, sequence_loss, train_seq2seq, translate

ANIMALS = ["cat", "dog", "bird", "fox", "cow", "owl"]
PLACES = ["mat", "roof", "hill", "barn", "tree"]


def story(n=80, seed=0):
    """A small corpus of simple sentences, one per line or ended by a full stop."""
    rng = np.random.default_rng(seed)
    lines = [f"the {rng.choice(ANIMALS)} sat on the {rng.choice(PLACES)}." for _ in range(n)]
    return " ".join(lines[:n // 2]) + "\n" + "\n".join(lines[n // 2:]) + "\n"


def within(observed, p, n, sigmas=4):
    """observed share within `sigmas` binomial standard deviations of p over n draws."""
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


# --- 003.mlm: masking -------------------------------------------------------------------------
def test_mask_tokens_selects_15_percent_and_replaces_80_10_10(rng):
    V = 1000
    special = SpecialTokens(V)
    ids = rng.integers(0, V, size=(300, 80))
    ids[:, 0], ids[:, 40], ids[:, 70] = special.cls_id, special.sep_id, special.sep_id
    ids[:, 71:] = special.pad_id
    inputs, labels = mask_tokens(ids, np.random.default_rng(1), special.vocab_size, special.ids, special.mask_id)

    is_special = np.isin(ids, special.ids)
    selected = labels != -100
    assert not (selected & is_special).any()                     # special tokens are never selected
    assert (inputs[is_special] == ids[is_special]).all()
    assert (labels[selected] == ids[selected]).all()             # labels: the original token
    assert (inputs[~selected] == ids[~selected]).all()           # the rest is untouched
    assert within(selected.sum() / (~is_special).sum(), 0.15, (~is_special).sum())
    assert selected.any(axis=1).all()

    n = selected.sum()
    masked = inputs[selected] == special.mask_id
    randomised = ~masked & (inputs[selected] != ids[selected])
    kept = inputs[selected] == ids[selected]
    # a random token equals the original with probability 1/V: then it counts as kept
    assert within(masked.mean(), 0.8, n)
    assert within(randomised.mean(), 0.1 * (1 - 1 / V), n)
    assert within(kept.mean(), 0.1 + 0.1 / V, n)
    assert (inputs[selected][randomised] < V).all()               # random tokens are ordinary ones

    again = mask_tokens(ids, np.random.default_rng(1), special.vocab_size, special.ids, special.mask_id)
    assert all((a == b).all() for a, b in zip(again, (inputs, labels)))    # seeded: reproducible


def test_mask_tokens_one_sequence_and_bad_input(rng):
    inputs, labels = mask_tokens(np.arange(20), rng, 30, [25, 26], 27)
    assert inputs.shape == labels.shape == (20,) and (labels != -100).sum() == 3   # round(0.15 · 20)
    assert (mask_tokens([5, 25], rng, 30, [25], 27)[1] != -100).tolist() == [True, False]  # at least one
    with pytest.raises(ValueError, match="shape"):
        mask_tokens(np.zeros((2, 2, 2), dtype=int), rng, 30, [25], 27)
    with pytest.raises(ValueError, match="dtype"):
        mask_tokens(np.zeros(4), rng, 30, [25], 27)
    with pytest.raises(ValueError, match="prob"):
        mask_tokens(np.arange(4), rng, 30, [25], 27, prob=1.5)


# --- 003.nsp: sentence pairs --------------------------------------------------------------------
def test_split_sentences():
    text = "Hello world. How are you?\nFine!  ...\n\n  last line without a stop\n"
    assert split_sentences(text) == ["Hello world.", "How are you?", "Fine!", "last line without a stop"]
    assert split_sentences("") == [] and split_sentences(" \n.\n") == []


def test_nsp_pairs_are_balanced_and_negatives_are_never_the_next_sentence(rng):
    sentences = [f"sentence {i}." for i in range(50)]
    pairs = nsp_pairs(sentences, rng, 4000)
    is_next = np.array([p[2] for p in pairs])
    assert within(is_next.mean(), 0.5, len(pairs))
    for a, b, nxt in pairs:
        i = sentences.index(a)
        assert i < len(sentences) - 1
        assert (b == sentences[i + 1]) == nxt and b != a
    # with repeated texts, the true next sentence's text is excluded wherever it occurs
    repeated = ["a.", "b.", "c.", "b."]
    negatives = {b for a, b, nxt in nsp_pairs(repeated, rng, 400) if a == "a." and not nxt}
    assert negatives == {"c."}


def test_nsp_bad_input(rng):
    with pytest.raises(ValueError, match="at least 3 sentences"):
        nsp_pairs(split_sentences(""), rng, 4)
    with pytest.raises(ValueError, match="more distinct sentences"):
        nsp_pairs(["a.", "b.", "b."], np.random.default_rng(3), 200)


def test_build_bert_batch_layout_and_long_pairs(rng):
    text = story()
    tokenizer = build_tokenizer("word", text)
    special = SpecialTokens(tokenizer.vocab_size)
    long_a = " ".join(["the cat sat on the mat"] * 5)
    pairs = [("the cat sat.", "the dog sat on the roof.", True), (long_a, "the owl sat.", False)]
    batch = build_bert_batch(pairs, tokenizer, special, 16, rng)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "mlm_labels", "nsp_labels"}
    assert batch["input_ids"].shape == (2, 16) and batch["nsp_labels"].tolist() == [0, 1]
    ids, types, attention = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    a_len = len(tokenizer.encode("the cat sat."))
    n = a_len + len(tokenizer.encode("the dog sat on the roof.")) + 3
    assert ids[0, 0] == special.cls_id and ids[0, a_len + 1] == ids[0, n - 1] == special.sep_id
    assert types[0].tolist() == [0] * (a_len + 2) + [1] * (n - a_len - 2) + [0] * (16 - n)
    assert attention[0].tolist() == [1] * n + [0] * (16 - n) and (ids[0, n:] == special.pad_id).all()
    # the long pair fills the row exactly; the long sentence A lost its end, B is whole
    assert attention[1].all() and ids[1, -1] == special.sep_id
    b_ids = tokenizer.encode("the owl sat.")
    assert types[1].sum() == len(b_ids) + 1
    assert truncate_pair(list(range(10)), [7, 8], 6) == ([0, 1, 2, 3], [7, 8])
    assert truncate_pair([1, 2, 3], list(range(10)), 6) == ([1, 2, 3], [0, 1, 2])
    shown = special.decode(np.where(batch["mlm_labels"][0] >= 0, batch["mlm_labels"][0], ids[0]), tokenizer)
    assert shown == "[CLS] the cat sat. [SEP] the dog sat on the roof. [SEP]"
    with pytest.raises(ValueError, match="at least 5"):
        build_bert_batch(pairs, tokenizer, special, 4, rng)


# --- the BERT model ------------------------------------------------------------------------------
def tiny_bert(vocab=20, **overrides):
    tinylm.manual_seed(0)
    config = dict(vocab_size=vocab, block_size=10, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    return Bert(BertConfig(**{**config, **overrides}))


def tiny_bert_batch(rng, vocab=20, B=3, T=10):
    special = SpecialTokens(vocab - 4)
    ids = rng.integers(0, vocab - 4, (B, T))
    ids[:, 0], ids[:, 4], ids[:, 7] = special.cls_id, special.sep_id, special.sep_id
    ids[:, 8:] = special.pad_id
    types = np.zeros_like(ids)
    types[:, 5:8] = 1
    attention = (ids != special.pad_id).astype(np.int64)
    inputs, labels = mask_tokens(ids, rng, vocab, special.ids, special.mask_id, prob=0.4)
    return {"input_ids": inputs, "token_type_ids": types, "attention_mask": attention, "mlm_labels": labels,
            "nsp_labels": rng.integers(0, 2, B)}


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_bert_forward_shapes_and_joint_loss(rng):
    model = tiny_bert().eval()
    batch = tiny_bert_batch(rng)
    out = model(**batch)
    assert out.mlm_logits.shape == (3, 10, 20) and out.nsp_logits.shape == (3, 2)
    assert model.hidden_states(batch["input_ids"]).shape == (3, 10, 8)
    assert model.mlm_decoder.weight is model.word_embeddings.weight              # tied decoder
    # the losses, from the logits in NumPy
    mlm_lp, nsp_lp = log_softmax(out.mlm_logits.numpy()), log_softmax(out.nsp_logits.numpy())
    where = batch["mlm_labels"] != -100
    mlm = -mlm_lp[where, batch["mlm_labels"][where]].mean()
    nsp = -nsp_lp[np.arange(3), batch["nsp_labels"]].mean()
    assert out.mlm_loss.item() == pytest.approx(mlm, rel=1e-5)
    assert out.nsp_loss.item() == pytest.approx(nsp, rel=1e-5)
    assert out.loss.item() == pytest.approx(mlm + nsp, rel=1e-5)
    assert abs(out.mlm_loss.item() - math.log(20)) < 0.3                           # untrained: near uniform
    assert model(batch["input_ids"], nsp_labels=batch["nsp_labels"]).loss.item() > 0
    assert model(batch["input_ids"]).loss is None


def test_bert_reads_both_directions_but_never_padding(rng):
    model = tiny_bert().eval()
    batch = tiny_bert_batch(rng)
    kw = {k: batch[k] for k in ("token_type_ids", "attention_mask")}
    h = model.hidden_states(batch["input_ids"], **kw).numpy()
    later = batch["input_ids"].copy()
    later[:, 6] = (later[:, 6] + 1) % 16
    assert not np.allclose(model.hidden_states(later, **kw).numpy()[:, 1], h[:, 1])      # no causal mask
    padded = batch["input_ids"].copy()
    padded[:, 9] = 3                                                                # under attention_mask 0
    np.testing.assert_allclose(model.hidden_states(padded, **kw).numpy()[:, :8], h[:, :8], rtol=1e-5, atol=1e-6)


def test_bert_bad_input(rng):
    model = tiny_bert()
    with pytest.raises(ValueError, match="max_len=10"):
        model(rng.integers(0, 20, (1, 11)))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(rng.integers(0, 20, (2, 5)), token_type_ids=np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="attention_mask"):
        model(rng.integers(0, 20, (2, 5)), attention_mask=np.ones(5, dtype=int))
    with pytest.raises(ValueError, match=r"\(batch, length\)"):
        model(np.arange(5))


def test_bert_gradients_match_central_differences(rng):
    """The joint loss's gradient, in float64, against (L(w + ε) - L(w - ε)) / 2ε for a few weights."""
    tinylm.set_default_dtype(np.float64)
    try:
        model = tiny_bert()
        batch = tiny_bert_batch(rng)
        model(**batch).loss.backward()
        params = dict(model.named_parameters())
        for name in ("word_embeddings.weight", "token_type_embeddings.weight", "position_embeddings.embedding.weight",
                     "encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.0.linear1.weight",
                     "mlm_dense.weight", "mlm_decoder.bias", "pooler.weight", "nsp_classifier.bias"):
            p = params[name]
            assert p.dtype == np.float64
            for _ in range(3):
                idx = tuple(int(rng.integers(0, s)) for s in p.shape)
                saved = p.data[idx]
                p.data[idx] = saved + 1e-6
                up = model(**batch).loss.item()
                p.data[idx] = saved - 1e-6
                down = model(**batch).loss.item()
                p.data[idx] = saved
                assert p.grad.numpy()[idx] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-9), name
    finally:
        tinylm.set_default_dtype(np.float32)


# --- pre-training -------------------------------------------------------------------------------
def test_short_pretrain_lowers_the_loss_and_its_checkpoint_loads(tmp_path):
    data = tmp_path / "story.txt"
    data.write_text(story(120))
    logs = []
    result = pretrain(objective="mlm+nsp", data=str(data), tokenizer="word", n_layer=1, n_head=2, n_embd=32,
                      block_size=20, batch_size=16, max_iters=50, lr=3e-3, warmup_iters=5, eval_interval=25,
                      eval_iters=3, dropout=0.0, seed=0, out=str(tmp_path / "bert"), log=logs.append)
    first, last = result["evals"][0], result["evals"][-1]
    assert [e["step"] for e in result["evals"]] == [0, 25, 50] and len(result["train_losses"]) == 50
    assert last["val_loss"] < first["val_loss"] - 1.0 and last["mlm_loss"] < first["mlm_loss"] - 1.0
    assert result["best_metrics"]["val_loss"] == min(e["val_loss"] for e in result["evals"])
    assert any("nsp accuracy" in line for line in logs)

    model, tokenizer, special = load_bert(result["last"])
    arrays, meta = checkpoint.load(result["last"])
    assert meta["model"]["kind"] == "bert" and meta["step"] == 50
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), arrays[f"model/{name}"])
    assert tokenizer.to_dict() == build_tokenizer("word", story(120)).to_dict()
    assert special.ids == tuple(range(tokenizer.vocab_size, tokenizer.vocab_size + 4))
    assert model.config.vocab_size == special.vocab_size
    # the loaded model predicts masked words far better than chance
    rng = np.random.default_rng(5)
    batch = build_bert_batch(nsp_pairs(split_sentences(story(120)), rng, 32), tokenizer, special, 20, rng)
    assert model(**batch).mlm_loss.item() < math.log(special.vocab_size) - 1.0


def test_pretrain_clm_objective_and_bad_options(tmp_path):
    data = tmp_path / "story.txt"
    data.write_text(story(120))
    result = pretrain(objective="clm", data=str(data), tokenizer="char", n_layer=1, n_head=2, n_embd=16,
                      block_size=16, batch_size=8, max_iters=6, eval_interval=3, eval_iters=1,
                      out=str(tmp_path / "gpt"), log=lambda line: None)
    assert result["objective"] == "clm" and result["steps"] == 6
    assert checkpoint.load(result["last"])[1]["model"]["kind"] == "gpt"
    with pytest.raises(ValueError, match="not a pre-trained BERT"):
        load_bert(result["last"])
    with pytest.raises(ValueError, match="--objective must be one of"):
        pretrain(objective="mlm")
    short = tmp_path / "short.txt"
    short.write_text("One sentence. Two sentences.\n")
    with pytest.raises(ValueError, match="sentences"):
        pretrain(data=str(short), out=str(tmp_path / "x"), log=lambda line: None)


# --- the numbers task ---------------------------------------------------------------------------
def test_numbers_round_trip_and_known_spellings():
    for n in range(1000):
        assert words_to_number(number_to_words(n)) == n
        assert digits_to_number(number_to_digits(n)) == n
    for n in (1000, 2005, 13_117, 100_100, 999_999):
        assert words_to_number(number_to_words(n)) == n
    assert number_to_words(0) == "zero" and number_to_words(40) == "forty"
    assert number_to_words(342) == "three hundred and forty two" and number_to_digits(342) == "3 4 2"
    assert number_to_words(105) == "one hundred and five" and number_to_words(700) == "seven hundred"
    assert number_to_words(2005) == "two thousand five"
    assert number_to_words(112_013) == "one hundred and twelve thousand thirteen"
    for bad in (-1, 1_000_000, 2.5, True):
        with pytest.raises(ValueError, match="integer from 0"):
            number_to_words(bad)
    with pytest.raises(ValueError, match="not a number word"):
        words_to_number("three hundred and lots")
    with pytest.raises(ValueError, match="digits"):
        digits_to_number("3 x 2")


def test_task_splits_and_batches():
    task = make_task(999, "words2digits", seed=3)
    numbers = {name: {digits_to_number(t) for _, t in getattr(task, name)} for name in ("train", "val", "test")}
    assert [len(numbers[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    assert set.union(*numbers.values()) == set(range(1000))                        # no overlap, nothing lost
    assert all(words_to_number(s) == digits_to_number(t) for s, t in task.train)
    assert make_task(999, "words2digits", seed=3).test == task.test != make_task(999, "words2digits", seed=4).test
    flipped = make_task(999, "digits2words", seed=3)
    assert flipped.test == [(t, s) for s, t in task.test]

    vocab = task.vocab
    src, tgt_in, tgt_out = vocab.batch([("forty two", "4 2"), ("seven", "7")])
    assert src.tolist() == [vocab.encode("forty two"), vocab.encode("seven") + [vocab.pad_id]]
    assert tgt_in.tolist() == [[vocab.bos_id] + vocab.encode("4 2"), [vocab.bos_id, vocab.ids["7"], vocab.pad_id]]
    assert tgt_out.tolist() == [vocab.encode("4 2") + [vocab.eos_id], [vocab.ids["7"], vocab.eos_id, vocab.pad_id]]
    assert vocab.decode([vocab.bos_id] + vocab.encode("4 2") + [vocab.eos_id, vocab.ids["9"]]) == "4 2"
    assert Vocab.from_dict(vocab.to_dict()).tokens == vocab.tokens
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("forty banana")
    with pytest.raises(ValueError, match="direction"):
        make_task(99, "words2roman")
    with pytest.raises(ValueError, match="too few numbers"):
        make_task(3)


# --- the encoder–decoder --------------------------------------------------------------------------
def tiny_seq2seq(V=5, **overrides):
    tinylm.manual_seed(0)
    config = dict(src_vocab_size=V, tgt_vocab_size=V, d_model=8, nhead=2, num_encoder_layers=1,
                  num_decoder_layers=1, dim_feedforward=16, dropout=0.0, max_len=8)
    return Seq2Seq(Seq2SeqConfig(**{**config, **overrides})).eval()


def test_seq2seq_forward_masks_and_000_code_transformer_fixes(rng):
    model = tiny_seq2seq(V=7)
    src, tgt = rng.integers(3, 7, (2, 5)), rng.integers(3, 7, (2, 4))
    src[1, 3:] = 0                                                                   # padding
    logits = model(src, tgt).numpy()
    assert logits.shape == (2, 4, 7)
    assert model.generator.in_features == model.config.d_model                       # fix 3: Linear(d_model, V)
    unpadded = model(src[1:, :3], tgt[1:]).numpy()[0]
    np.testing.assert_allclose(unpadded, logits[1], rtol=1e-5, atol=1e-6)                # padding is never seen
    later = tgt.copy()
    later[:, 2] = 3 + (later[:, 2] - 2) % 4
    np.testing.assert_allclose(model(src, later).numpy()[:, :2], logits[:, :2], rtol=1e-5, atol=1e-6)  # causal
    assert not np.allclose(model(src, later).numpy()[:, 2:], logits[:, 2:])
    other_src = src.copy()
    other_src[0] = 3 + (src[0] - 2) % 4
    assert not np.allclose(model(other_src, tgt).numpy()[0], logits[0])   # fix 2: the decoder reads the source
    with pytest.raises(ValueError, match="share_embeddings"):
        Seq2Seq(Seq2SeqConfig(src_vocab_size=5, tgt_vocab_size=6, share_embeddings=True))
    shared = tiny_seq2seq(share_embeddings=True)
    assert shared.generator.weight is shared.src_embed.weight is shared.tgt_embed.weight


def brute_force(model, src, max_len, bos, eos, length_penalty):
    """Every complete output (ending in eos, or max_len long) scored by teacher forcing, best first."""
    V = model.config.tgt_vocab_size
    memory, src_pad = model.encode(src[None])
    scored = []
    for length in range(1, max_len + 1):
        seqs = np.array([seq for seq in itertools.product(range(V), repeat=length)
                         if eos not in seq[:-1] and (length == max_len or seq[-1] == eos)])
        tgt_in = np.concatenate([np.full((len(seqs), 1), bos), seqs[:, :-1]], axis=1)
        lp = log_softmax(model.decode(tgt_in, memory.expand(len(seqs), *memory.shape[1:]),
                                      src_pad.repeat(len(seqs), axis=0)).numpy())
        totals = np.take_along_axis(lp, seqs[..., None], axis=-1).sum(axis=(1, 2))
        scored += [(seq, float(t), float(t) / length ** length_penalty) for seq, t in zip(seqs.tolist(), totals)]
    return sorted(scored, key=lambda s: -s[2])


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_is_exact_when_the_beam_holds_every_sequence(rng, length_penalty):
    V, L, bos, eos = 4, 3, 1, 2
    model = tiny_seq2seq(V=V)
    model.generator.weight.data *= 6                     # sharper distributions: greedy and best differ more
    src = rng.integers(0, V, (3, 4))
    for row in src:
        ranked = brute_force(model, row, L, bos, eos, length_penalty)
        seqs, lps = model.beam_search(row[None], V ** L, L, bos, eos, length_penalty, num_return_sequences=5)
        assert seqs == [s for s, _, _ in ranked[:5]]
        np.testing.assert_allclose(lps, [lp for _, lp, _ in ranked[:5]], rtol=1e-6)


def test_beam_of_one_is_greedy_and_a_wide_beam_is_never_worse(rng):
    model = tiny_seq2seq(V=6)
    model.generator.weight.data *= 6
    src = rng.integers(0, 6, (8, 5))
    greedy, greedy_lp = model.greedy_decode(src, 5, 1, 2)
    beam, beam_lp = model.beam_search(src, 1, 5, 1, 2)
    assert beam == greedy
    np.testing.assert_allclose(beam_lp, greedy_lp, rtol=1e-6)
    wide, wide_lp = model.beam_search(src, 6 ** 3, 3, 1, 2, length_penalty=0.0)
    short, short_lp = model.greedy_decode(src, 3, 1, 2)
    assert all(w >= g - 1e-5 for w, g in zip(wide_lp, short_lp))  # float32 rounding
    with pytest.raises(ValueError, match="max_len"):
        model.greedy_decode(src, 8, 1, 2)
    with pytest.raises(ValueError, match="non-empty"):
        model.beam_search(np.zeros((1, 0), dtype=int), 2, 3, 1, 2)
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.beam_search(src, 2, 3, 1, 2, num_return_sequences=3)


def test_label_smoothing_loss():
    logits = tinylm.tensor(np.log([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]))
    target = np.array([[0, 2]])
    plain = -(np.log(0.7) + np.log(0.8)) / 2
    assert sequence_loss(logits, target, pad_id=1).item() == pytest.approx(plain, rel=1e-5)
    uniform = -(np.log([0.7, 0.2, 0.1]).mean() + np.log([0.1, 0.1, 0.8]).mean()) / 2
    assert sequence_loss(logits, target, 1, 0.1).item() == pytest.approx(0.9 * plain + 0.1 * uniform, rel=1e-5)
    padded = np.array([[0, 1]])                                                     # position 2 is padding
    assert sequence_loss(logits, padded, 1, 0.1).item() == pytest.approx(
        0.9 * -np.log(0.7) - 0.1 * np.log([0.7, 0.2, 0.1]).mean(), rel=1e-5)


def test_short_seq2seq_training_translates_unseen_numbers(tmp_path):
    result = train_seq2seq(max_iters=200, d_model=32, nhead=2, num_layers=1, dim_feedforward=64, dropout=0.0,
                           lr=3e-3, warmup_iters=10, eval_interval=100, beam_size=3, max_eval=40,
                           out=str(tmp_path), log=lambda line: None)
    losses = result["train_losses"]
    assert np.mean(losses[-20:]) < np.mean(losses[:5]) / 3
    greedy, beam = result["test"]["greedy"], result["test"]["beam"]
    # chance is ~0 exact matches (1000 numbers); BLEU over the number words (measured: 77.5%, 84)
    assert greedy["exact_match"] >= 0.4 and beam["exact_match"] >= 0.4
    assert greedy["bleu"] > 60 and beam["bleu"] > 60
    model, vocab = load_seq2seq(result["checkpoint"])
    source = make_task(999, "digits2words", seed=0).test[0][0]
    assert translate(model, vocab, source, beam_size=3) == beam["outputs"][0]
    assert translate(model, vocab, source, beam_size=1) == greedy["outputs"][0]
    with pytest.raises(ValueError, match="not a pre-trained BERT"):
        load_bert(result["checkpoint"])
    with pytest.raises(ValueError, match="non-empty"):
        translate(model, vocab, "")
