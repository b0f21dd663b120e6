"""Fine-tuning for classification: labelled data, splits, augmentation, the three methods
(feature extraction, full fine-tuning, prompt tuning), the LSTM classifier, and their errors."""
import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

import tinylm
from tinylm import checkpoint
from tinylm.autograd import no_grad
from tinylm.config import validate
from tinylm.data import build_tokenizer
from tinylm.data.labelled import (AUGMENTATIONS, SYNONYMS, LabelSet, augment, augmented, default_sentiment,
                                  encode_texts, load_labelled, sentiment_corpus, stratified_kfold, stratified_split)
from tinylm.data.mlm import SpecialTokens
from tinylm.models.bert import Bert, BertConfig
from tinylm.models.classifier import (BertBody, DecoderBody, LSTMClassifier, LSTMClassifierConfig, TextClassifier,
                                      body_of)
from tinylm.tasks.classify import (Classification, FinetuneConfig, compare_methods, comparison_table,
                                   cross_validate, evaluate, finetune, in_batches, load_classifier, load_pretrained,
                                   predict, score, three_way)
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer


def quiet(line):
    pass


@pytest.fixture(scope="module")
def gpt_ckpt(tmp_path_factory):
    """A tiny GPT pretrained for 300 steps on reviews like the sentiment set's (a few seconds)."""
    folder = tmp_path_factory.mktemp("pretrained")
    corpus = folder / "reviews.txt"
    corpus.write_text(sentiment_corpus(500), encoding="utf-8")
    cfg = LMConfig(data=str(corpus), tokenizer="word", n_layer=2, n_head=2, n_embd=32, block_size=32,
                      batch_size=16, max_iters=300, eval_interval=300, eval_iters=2, lr=1e-2, min_lr=1e-3,
                      warmup_iters=10, out=str(folder / "out"), progress=False)
    return Trainer(LanguageModeling(cfg), log=quiet).run()["last"]


@pytest.fixture(scope="module")
def llama_ckpt(tmp_path_factory):
    """A tiny Llama (grouped-query attention, an output layer of its own) pretrained as gpt_ckpt is."""
    folder = tmp_path_factory.mktemp("llama")
    corpus = folder / "reviews.txt"
    corpus.write_text(sentiment_corpus(500), encoding="utf-8")
    cfg = LMConfig(data=str(corpus), model="llama", tokenizer="word", n_layer=2, n_head=2, n_kv_heads=1, n_embd=32,
                   block_size=32, tie_weights=False, batch_size=16, max_iters=300, eval_interval=300, eval_iters=2,
                   lr=1e-2, min_lr=1e-3, warmup_iters=10, out=str(folder / "out"), progress=False)
    return Trainer(LanguageModeling(cfg), log=quiet).run()["last"]


@pytest.fixture(scope="module")
def bert_ckpt(tmp_path_factory):
    """An untrained tiny BERT saved as tinylm pretrain saves one (the adapter's mechanics only)."""
    path = tmp_path_factory.mktemp("bert") / "bert.ckpt"
    tokenizer = build_tokenizer("word", "\n".join(default_sentiment(100).texts))
    special = SpecialTokens(tokenizer.vocab_size)
    tinylm.manual_seed(0)
    config = BertConfig(vocab_size=special.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16)
    arrays = {f"model/{k}": v.numpy() for k, v in Bert(config).state_dict().items()}
    checkpoint.save(path, arrays, {"model": {"kind": "bert", "config": dataclasses.asdict(config)},
                                   "tokenizer": tokenizer.to_dict(), "special": special.to_dict()})
    return str(path)


# --- labelled files -------------------------------------------------------------------------------
BAD_FILES = [
    ("data.csv", "sentence,label\nthe food was good .,positive\n", r"data\.csv line 1: no 'text' column"),
    ("data.csv", "text,label\nthe food was good .,positive\nthe food was bad .\n", r"line 3: no 'label' value"),
    ("data.csv", "text,label\nthe food was good .,positive\n  ,negative\n", r"line 3: the text is empty"),
    ("data.csv", "text,label\nthe food was good .,\n", r"line 2: the label is empty"),
    ("data.csv", "text,label\ngood, really,positive\n", r"line 2: 3 fields, but the header names 2; put a text"),
    ("data.jsonl", '{"text": "good", "label": "positive"}\n{"text": "bad"}\n', r"line 2: no 'label' key"),
    ("data.jsonl", '{"text": "good", "label": "positive"}\n{"text": "", "label": "negative"}\n',
     r"line 2: the text is empty"),
    ("data.jsonl", '{"text": "good", "label": "positive"}\nnot json\n', r"line 2: not valid JSON"),
    ("data.txt", "good\tpositive\n", r"unknown format '\.txt'"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES)
def test_a_bad_labelled_file_is_one_clear_line_and_nothing_is_written(gpt_ckpt, tmp_path, name, content, message):
    path, out = tmp_path / name, tmp_path / "clf.ckpt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as error:
        finetune(gpt_ckpt, data=str(path), out=str(out), log=quiet)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == [path]  # no checkpoint, no temporary file


def test_labelled_files_read_csv_and_jsonl(tmp_path):
    csv_file, jsonl = tmp_path / "a.csv", tmp_path / "a.jsonl"
    csv_file.write_text('id,text,label\n1,"good, really",pos\n\n2,bad,neg\n', encoding="utf-8")
    jsonl.write_text('{"text": "good, really", "label": "pos"}\n\n{"text": "bad", "label": 0}\n', encoding="utf-8")
    assert load_labelled(csv_file) == (["good, really", "bad"], ["pos", "neg"])
    assert load_labelled(jsonl) == (["good, really", "bad"], ["pos", "0"])  # a number label becomes its name
    with pytest.raises(FileNotFoundError, match="no labelled data file at .*missing.csv"):
        load_labelled(tmp_path / "missing.csv")


def test_an_unknown_label_at_evaluation_names_it_and_the_known_ones(gpt_ckpt, tmp_path):
    out = tmp_path / "clf"
    finetune(gpt_ckpt, data=default_sentiment(60), method="head", out=str(out), epochs=2, log=quiet, progress=False)
    test = (["the food was good .", "the food was meh ."], ["positive", "neutral"])
    with pytest.raises(ValueError, match=r"unknown label 'neutral': the classifier knows 'negative', 'positive'$"):
        evaluate(str(out / "best.ckpt"), test)
    labels = LabelSet.from_labels(["b", "a", "b"])
    assert labels.names == ["a", "b"] and labels.decode(labels.encode(["b", "a"])) == ["b", "a"]


# --- the embedded sentiment set, splits, augmentation ------------------------------------------------
def test_default_sentiment_is_balanced_deterministic_and_not_one_word_deep():
    data = default_sentiment(400, seed=3)
    assert Counter(data.labels) == {"positive": 200, "negative": 200}
    assert len(set(data.texts)) == 400
    assert data == default_sentiment(400, seed=3) and data != default_sentiment(400, seed=4)
    # the best rule "label A when the text has word w" is far from perfect: negation and contrast
    words = {w for text in data.texts for w in text.split()}
    y = np.array([label == "positive" for label in data.labels])
    best = max(max(np.mean(has == y), np.mean(has != y))
               for has in (np.array([w in text.split() for text in data.texts]) for w in words))
    assert best < 0.8
    assert {"not", "but"} <= words


def test_stratified_kfold_puts_every_example_in_one_validation_fold():
    labels = ["a"] * 23 + ["b"] * 11 + ["c"] * 6
    folds = stratified_kfold(labels, 5, seed=1)
    validation = np.concatenate([val for _, val in folds])
    assert sorted(validation) == list(range(40))  # each example exactly once
    for train, val in folds:
        assert sorted(np.concatenate([train, val])) == list(range(40))
        counts = Counter(labels[i] for i in val)
        for name, total in Counter(labels).items():
            assert abs(counts[name] - total / 5) < 1  # stratified: each fold has its share of each label
    assert all((a[1] == b[1]).all() for a, b in zip(folds, stratified_kfold(labels, 5, seed=1)))
    kept, held = stratified_split(labels, 0.25, seed=0)
    assert Counter(labels[i] for i in held) == {"a": 6, "b": 3, "c": 2} and len(kept) + len(held) == 40
    with pytest.raises(ValueError, match="2 <= k <= 40"):
        stratified_kfold(labels, 41)


def test_augmentations_edit_as_described_and_repeat_with_a_seed():
    text = "the food was not good , i would recommend it ."
    words = text.split()
    for seed in range(20):
        inserted = augment(text, np.random.default_rng(seed), "insert").split()
        assert len(inserted) == len(words) + 1
        new = list((Counter(inserted) - Counter(words)).elements())[0]
        assert any(new in SYNONYMS.get(w, []) for w in words)  # a synonym of one of its words
        replaced = augment(text, np.random.default_rng(seed), "replace").split()
        changed = [(a, b) for a, b in zip(words, replaced) if a != b]
        assert len(replaced) == len(words) and len(changed) == 1 and changed[0][1] in SYNONYMS[changed[0][0]]
        deleted = augment(text, np.random.default_rng(seed), "delete", n=2).split()
        assert len(deleted) == len(words) - 2 and "not" in deleted  # a negation is never deleted
        assert not Counter(deleted) - Counter(words)
        swapped = augment(text, np.random.default_rng(seed), "swap").split()
        assert sorted(swapped) == sorted(words) and sum(a != b for a, b in zip(words, swapped)) == 2
    for op in AUGMENTATIONS:
        assert augment(text, np.random.default_rng(7), op, n=2) == augment(text, np.random.default_rng(7), op, n=2)
        assert len({augment(text, np.random.default_rng(s), op) for s in range(10)}) > 1
    data = default_sentiment(10)
    more = augmented(data, 2, seed=0)
    assert more.texts[:10] == data.texts and more.labels == data.labels * 3
    with pytest.raises(ValueError, match="unknown augmentation 'shuffle'"):
        augment(text, np.random.default_rng(0), "shuffle")


# --- the classifiers --------------------------------------------------------------------------------
def test_the_summary_ignores_padding(gpt_ckpt, llama_ckpt, bert_ckpt):
    texts = ["the food was good .", "the movie was not good at all , i would not recommend it ."]
    for ckpt in (gpt_ckpt, llama_ckpt, bert_ckpt):
        for method in ("head", "prompt"):
            tinylm.manual_seed(0)
            model = TextClassifier(load_pretrained(ckpt), 2, method, n_prompt=3).eval()
            together = model(*model.tokenize(texts)).numpy()
            alone = model(*model.tokenize(texts[:1])).numpy()
            np.testing.assert_allclose(together[0], alone[0], rtol=1e-4, atol=1e-5)


def test_bert_body_encodes_as_bert_does(bert_ckpt):
    body = load_pretrained(bert_ckpt)
    body.model.eval()
    ids, mask = body.tokenize(["the food was good .", "bad ."])
    assert (ids[:, 0] == body.special.cls_id).all() and ids[1, mask[1].sum() - 1] == body.special.sep_id
    np.testing.assert_allclose(body.encode(ids, mask).numpy(), body.model.hidden_states(ids, None, mask).numpy(), atol=1e-6)
    assert isinstance(body, BertBody) and (body.summary_positions(mask, 4) == 0).all()


def parameter_values(model):
    return {name: p.numpy().copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("ckpt_name", ["gpt_ckpt", "llama_ckpt", "bert_ckpt"])
@pytest.mark.parametrize("method, learners", [("head", {"head.weight", "head.bias"}),
                                              ("prompt", {"prompt", "head.weight", "head.bias"}),
                                              ("full", None)])
def test_only_what_the_method_trains_changes(request, tmp_path, ckpt_name, method, learners):
    tinylm.manual_seed(0)
    model = TextClassifier(load_pretrained(request.getfixturevalue(ckpt_name)), 2, method, n_prompt=4)
    data = default_sentiment(64)
    learners = learners or {name for name, p in model.named_parameters() if p.requires_grad}
    before = parameter_values(model)
    cfg = FinetuneConfig(method=method, n_prompt=4, epochs=1, lr=1e-2, out=str(tmp_path), progress=False)
    Trainer(Classification(cfg, (data, data, data), LabelSet.from_labels(data.labels), model=model), log=quiet).run()
    after = parameter_values(model)
    assert {name for name in before if not np.array_equal(before[name], after[name])} == learners
    assert model.num_parameters(trainable_only=True) == sum(before[name].size for name in learners)
    assert all(p.grad is None for name, p in model.named_parameters() if name not in learners)


def test_lstm_classifier_reads_each_rows_last_real_token():
    tinylm.manual_seed(0)
    model = LSTMClassifier(LSTMClassifierConfig(vocab_size=20, num_classes=3, n_embd=8, n_hidden=12)).eval()
    ids = np.array([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    logits = model(ids, np.array([3, 5])).numpy()
    assert logits.shape == (2, 3)  # one logit per class, not per word of the vocabulary
    np.testing.assert_allclose(logits[0], model(ids[:1, :3], np.array([3])).numpy()[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"a batch of ids \(B, T\).*ids\[None\]"):
        model(ids[0], np.array([3]))


# --- end to end ---------------------------------------------------------------------------------------
def test_every_method_beats_chance_on_the_sentiment_set(gpt_ckpt):
    results = compare_methods(gpt_ckpt, data=default_sentiment(200), epochs=12, log=quiet, progress=False)
    by_method = {r["method"]: r for r in results}
    assert list(by_method) == ["head", "full", "prompt", "lstm", "ensemble"]
    for r in results:
        assert r["accuracy"] > 0.6, (r["method"], r["accuracy"])  # 40 test texts, half of each label
    assert by_method["head"]["trainable"] == 32 * 2 + 2
    assert by_method["prompt"]["trainable"] == 8 * 32 + 32 * 2 + 2
    assert by_method["full"]["trainable"] == by_method["full"]["parameters"]
    table = comparison_table(results).splitlines()
    assert len(table) == 2 + 5 and table[0].startswith("method") and "prompt tuning" in table[4]


@pytest.mark.parametrize("ckpt_name, method", [("gpt_ckpt", "prompt"), ("bert_ckpt", "full")])
def test_finetune_saves_a_classifier_that_gives_the_same_answers(request, tmp_path, ckpt_name, method):
    out = tmp_path / "sub" / "clf"
    data = default_sentiment(100, seed=5)
    result = finetune(request.getfixturevalue(ckpt_name), data=data, method=method, out=str(out), epochs=3,
                      n_prompt=4, augment=1, log=quiet, progress=False)
    out = out / "best.ckpt"
    assert set(result) >= {"accuracy", "trainable", "seconds"} and json.loads(json.dumps(result)) == result
    model, labels = load_classifier(str(out))
    assert model.method == method and labels.names == ["negative", "positive"]
    test = data.subset(stratified_split(data.labels, 0.2, seed=0)[1])  # finetune's test split
    assert evaluate(str(out), test) == result["accuracy"]
    assert set(predict(str(out), data.texts[:5])) <= {"negative", "positive"}


def test_cross_validation_reports_every_fold(gpt_ckpt):
    report = cross_validate(gpt_ckpt, data=default_sentiment(90), method="head", k=3, epochs=3, log=quiet, progress=False)
    assert len(report["accuracies"]) == 3 and report["mean"] == pytest.approx(np.mean(report["accuracies"]))


def test_a_checkpoint_of_the_wrong_kind_is_one_clear_line(gpt_ckpt, tmp_path):
    lstm = tmp_path / "lstm.ckpt"
    checkpoint.save(lstm, {}, {"model": {"kind": "lstm", "config": {}}})
    out = tmp_path / "clf"
    with pytest.raises(ValueError, match=r"holds a 'lstm' language model; fine-tuning needs a 'gpt', 'llama' or "
                                         r"'bert' checkpoint$"):
        finetune(str(lstm), out=str(out), log=quiet)
    assert not out.exists()
    quantized = tmp_path / "llama.int8.ckpt"
    checkpoint.save(quantized, {}, {"model": {"kind": "llama", "config": {}},
                                    "compression": {"source": "llama.ckpt", "quantize": "int8"}})
    with pytest.raises(ValueError, match=r"holds an int8-quantized model \(tinylm compress\); fine-tuning needs float "
                                         r"weights: give the checkpoint it was made from \(llama.ckpt\)$"):
        finetune(str(quantized), out=str(out), log=quiet)
    with pytest.raises(ValueError, match="not a fine-tuned classifier"):
        load_classifier(gpt_ckpt)
    with pytest.raises(ValueError, match="--method must be one of head, full, prompt, lstm, got 'lora'"):
        finetune(gpt_ckpt, method="lora", log=quiet)


def test_texts_are_cut_and_padded_on_the_right():
    tokenizer = build_tokenizer("char", "abcdef")
    ids, mask = encode_texts(tokenizer, ["abcdef", "b"], 4, pad_id=9)
    assert ids.tolist() == [tokenizer.encode("abcd"), tokenizer.encode("b") + [9, 9, 9]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 0, 0, 0]]


def test_a_pretrained_tokenizers_bos_starts_every_text():
    """As the model read text in pretraining (input_ids); a text of no tokens is still refused."""
    tokenizer = build_tokenizer("char", "abcdef").set_bos(5)
    ids, mask = encode_texts(tokenizer, ["abcdef", "b"], 4, pad_id=9)
    assert ids.tolist() == [[5, *tokenizer.encode("abc")], [5, *tokenizer.encode("b"), 9, 9]]
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    with pytest.raises(ValueError, match="text 1 \\(''\\) has no tokens"):
        encode_texts(tokenizer, ["a", ""], 4)


# --- a Llama body ---------------------------------------------------------------------------------------
def training_loss(model, texts, y):
    return score(in_batches(model, model, model.tokenize(texts)), y)[1]


@pytest.mark.parametrize("method", ["head", "full", "prompt"])
def test_a_llama_body_learns_by_every_method_and_reloads(llama_ckpt, tmp_path, method):
    data = default_sentiment(200)
    cfg = validate(FinetuneConfig(ckpt=llama_ckpt, method=method, epochs=12, n_prompt=4, out=str(tmp_path),
                                  progress=False))
    labelset = LabelSet.from_labels(data.labels)
    train, val, test = three_way(data, cfg)
    y = labelset.encode(train.labels)
    tinylm.manual_seed(0)
    model = TextClassifier(load_pretrained(llama_ckpt), len(labelset), method, n_prompt=4)
    assert isinstance(model.body, DecoderBody) and model.body.model.kind == "llama"
    before = training_loss(model, train.texts, y)
    summary = Trainer(Classification(cfg, (train, val, test), labelset, model=model), log=quiet).run()
    assert training_loss(model, train.texts, y) < before
    loaded, labels = load_classifier(summary["best"])
    assert loaded.method == method and loaded.config.body["kind"] == "llama" and labels.names == labelset.names
    assert evaluate(summary["best"], test) > 0.6  # 40 test texts, half of each label
    arrays, _ = checkpoint.load(summary["best"])
    model.load_state_dict(checkpoint.model_state(arrays))
    ids, mask = model.tokenize(test.texts)
    np.testing.assert_array_equal(in_batches(loaded, loaded, (ids, mask)), in_batches(model, model, (ids, mask)))


def test_finetune_command_takes_a_llama_checkpoint(llama_ckpt, tmp_path, capsys):
    from tinylm.cli import main

    out = tmp_path / "clf"
    assert main(["finetune", "--ckpt", llama_ckpt, "--method", "prompt", "--n-prompt", "4", "--epochs", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert "prompt: test accuracy" in capsys.readouterr().out
    model, _ = load_classifier(str(out / "best.ckpt"))
    assert model.config.body["kind"] == "llama" and model.prompt.shape == (4, 32)


def test_a_hugging_face_llama_is_a_body_as_transformers_reads_it(tmp_path):
    """A Llama loaded by tinylm.models.pretrained: the body's hidden states, soft prompt included,
    are those of transformers' LlamaModel given the same vectors; saved as a checkpoint, it fine-tunes."""
    transformers, torch = pytest.importorskip("transformers"), pytest.importorskip("torch")
    from tinylm.checkpoint import save_model
    from tinylm.models import Llama

    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32, tie_word_embeddings=False, initializer_range=0.2,
        bos_token_id=None, eos_token_id=None, pad_token_id=None)).eval()
    hf.save_pretrained(tmp_path / "llama")
    model = Llama.from_pretrained(tmp_path / "llama")  # no tokenizer file in the folder
    with pytest.raises(ValueError, match=r"the 'llama' model has no tokenizer.*body_of\(model, tokenizer\)$"):
        TextClassifier(model, 2)
    data = default_sentiment(100)
    tokenizer = build_tokenizer("word", "\n".join(data.texts))
    tinylm.manual_seed(0)
    classifier = TextClassifier(body_of(model, tokenizer), 2, "prompt", n_prompt=3).eval()
    ids, mask = classifier.tokenize(data.texts[:4])
    with no_grad():
        got = classifier.body.encode(ids, mask, classifier.prompt).numpy()
    with torch.no_grad():
        tokens = hf.model.embed_tokens(torch.tensor(ids))
        prompt = torch.tensor(classifier.prompt.numpy()).expand(len(ids), -1, -1)
        expected = hf.model(inputs_embeds=torch.cat([prompt, tokens], 1)).last_hidden_state.numpy()
    assert got.shape == (4, 3 + ids.shape[1], 32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    model.tokenizer = tokenizer
    save_model(tmp_path / "llama.ckpt", model)
    finetune(str(tmp_path / "llama.ckpt"), data=data, method="full", out=str(tmp_path / "clf"), epochs=2, log=quiet,
             progress=False)
    assert load_classifier(str(tmp_path / "clf" / "best.ckpt"))[0].config.body["kind"] == "llama"


def test_a_model_that_cannot_be_a_body_is_one_clear_line():
    from tinylm.models import build_model

    rnn = build_model("rnn", vocab_size=10)
    with pytest.raises(ValueError, match=r"a 'rnn' model cannot be a classifier's body; fine-tuning needs a 'gpt', "
                                         r"'llama' or 'bert' model$"):
        TextClassifier(rnn, 2)
