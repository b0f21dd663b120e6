"""Labelled text for classification: reading (text, label) files, the embedded sentiment set,
label ids, stratified splits and text augmentation.

    data = load_labelled("reviews.csv")         # or .jsonl; or default_sentiment()
    labels = LabelSet.from_labels(data.labels)  # "negative" -> 0, "positive" -> 1
    folds = stratified_kfold(data.labels, k=5)  # k-fold cross-validation (001.overfit)
    augment("the food was good .", np.random.default_rng(0), op="replace")
    # -> "the food was fine ."  (synonym replacement, one of four augmentations of 001.overfit)

A CSV file has a header naming a `text` and a `label` column (other columns are ignored);
a JSONL file holds one {"text": ..., "label": ...} object per line. Labels are names
(strings; a JSON number becomes its string, 1 -> "1").
"""
import csv
import json
import os
from typing import NamedTuple

import numpy as np


class Labelled(NamedTuple):
    """Parallel lists: texts[i] is labelled labels[i] (a label name)."""
    texts: list
    labels: list

    def subset(self, index):
        """The examples at the positions in `index`, in that order."""
        return Labelled([self.texts[i] for i in index], [self.labels[i] for i in index])


# --- reading files -------------------------------------------------------------------------
_EXPECTED_JSON = '{"text": ..., "label": ...}'


def load_labelled(path):
    """The examples of a .csv or .jsonl file as a Labelled(texts, labels).

    Every mistake in the file gets a one-line error naming the file, the line and what was
    expected: a missing file, a missing column or key, an empty text, an empty label."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no labelled data file at {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: unknown format {ext or '(no extension)'!r}: expected a .csv file "
                         f"(a header with text,label columns) or a .jsonl file (one {_EXPECTED_JSON} per line)")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: spreadsheet exports start with a BOM
            rows = list(_csv_rows(f, path) if ext == ".csv" else _jsonl_rows(f, path))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); "
                         "convert the file to UTF-8") from None
    if not rows:
        raise ValueError(f"{path} holds no examples")
    for line, text, label in rows:
        if not text.strip():
            raise ValueError(f"{path} line {line}: the text is empty")
        if not label.strip():
            raise ValueError(f"{path} line {line}: the label is empty")
    return Labelled([text for _, text, _ in rows], [label.strip() for _, _, label in rows])


def _csv_rows(f, path):
    """(line number, text, label) for every record of a CSV file with a text,label header."""
    reader = csv.reader(f)
    header = [name.strip() for name in next(reader, [])]
    missing = [name for name in ("text", "label") if name not in header]
    if missing:
        raise ValueError(f"{path} line 1: no {' or '.join(map(repr, missing))} column: the header must name "
                         f"a 'text' and a 'label' column, got {', '.join(map(repr, header)) or 'an empty line'}")
    columns = {name: header.index(name) for name in ("text", "label")}
    for row in reader:
        if not row:
            continue  # a blank line
        for name, i in columns.items():
            if i >= len(row):
                raise ValueError(f"{path} line {reader.line_num}: no {name!r} value: the row has {len(row)} "
                                 f"field(s), the header names {len(header)} ({','.join(header)})")
        if len(row) > len(header):
            raise ValueError(f"{path} line {reader.line_num}: {len(row)} fields, but the header names "
                             f"{len(header)}; put a text holding commas in double quotes")
        yield reader.line_num, row[columns["text"]], row[columns["label"]]


def _jsonl_rows(f, path):
    """(line number, text, label) for every non-blank line of a JSONL file."""
    for line, raw in enumerate(f, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {line}: not valid JSON ({e.msg}); expected {_EXPECTED_JSON}") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {line}: expected an object {_EXPECTED_JSON}, got {type(record).__name__}")
        for key in ("text", "label"):
            if record.get(key) is None:
                raise ValueError(f"{path} line {line}: no {key!r} key; expected {_EXPECTED_JSON}")
        text, label = record["text"], record["label"]
        if not isinstance(text, str):
            raise ValueError(f"{path} line {line}: 'text' must be a string, got {type(text).__name__}")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise ValueError(f"{path} line {line}: 'label' must be a string (or an integer), "
                             f"got {type(label).__name__}")
        yield line, text, str(label)


def encode_texts(tokenizer, texts, max_len, pad_id=0):
    """(ids, attention_mask), int64 arrays (N, T): each text's first max_len token ids (input_ids:
    after the beginning-of-sequence id of a pretrained tokenizer that adds one), padded on the
    right with pad_id up to T, the longest kept length; mask 1 on real tokens, 0 on padding."""
    if max_len < 1:
        raise ValueError(f"no room for the text: {max_len} positions are left for its tokens")
    encoded = [tokenizer.input_ids(text)[:max_len] for text in texts]
    for i, ids in enumerate(encoded):
        if len(ids) <= tokenizer.add_bos:
            raise ValueError(f"text {i} ({texts[i]!r}) has no tokens")
    T = max(map(len, encoded))
    ids, mask = np.full((len(texts), T), pad_id, dtype=np.int64), np.zeros((len(texts), T), dtype=np.int64)
    for i, row in enumerate(encoded):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


# --- label names <-> class ids -------------------------------------------------------------
class LabelSet:
    """The label names a classifier knows, each with a class id 0..C-1 (the names sorted)."""

    def __init__(self, names):
        names = list(names)
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"label names must be distinct non-empty strings, got {names!r}")
        self.names = names
        self.ids = {name: i for i, name in enumerate(names)}

    @classmethod
    def from_labels(cls, labels):
        """The sorted distinct names in `labels`."""
        return cls(sorted(set(labels)))

    def __len__(self):
        return len(self.names)

    def encode(self, labels):
        """Class ids (an int64 array) of label names; a name this set does not know -> ValueError."""
        for label in labels:
            if label not in self.ids:
                raise ValueError(f"unknown label {label!r}: the classifier knows {', '.join(map(repr, self.names))}")
        return np.array([self.ids[label] for label in labels], dtype=np.int64)

    def decode(self, ids):
        return [self.names[int(i)] for i in ids]


# --- stratified splits ---------------------------------------------------------------------
def _shuffled_classes(labels, rng):
    """For each distinct label (sorted), the positions holding it, in a random order."""
    labels = np.asarray(labels)
    return [rng.permutation(np.flatnonzero(labels == name)) for name in sorted(set(labels.tolist()))]


def stratified_split(labels, fraction, seed=0):
    """(kept, held_out) position arrays: held_out takes round(fraction · n_c) examples of each
    label c, so both parts keep the label proportions of the whole."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    kept, held = [], []
    for members in _shuffled_classes(labels, np.random.default_rng(seed)):
        cut = round(fraction * len(members))
        held.append(members[:cut])
        kept.append(members[cut:])
    kept, held = np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))
    if not len(kept) or not len(held):
        raise ValueError(f"{len(labels)} examples are too few to hold out a fraction of {fraction} of each label")
    return kept, held


def stratified_kfold(labels, k, seed=0):
    """k (train, validation) pairs of position arrays for k-fold cross-validation (001.overfit):
    every example is in exactly one validation fold, and each label is dealt round the folds
    like cards, so every fold has (within one) the same number of each label."""
    if not isinstance(k, (int, np.integer)) or not 2 <= k <= len(labels):
        raise ValueError(f"k-fold needs 2 <= k <= {len(labels)} (the number of examples), got k={k!r}")
    fold = np.empty(len(labels), dtype=np.int64)
    dealt = 0  # the next label starts dealing where the previous one stopped: fold sizes stay even
    for members in _shuffled_classes(labels, np.random.default_rng(seed)):
        fold[members] = (dealt + np.arange(len(members))) % k
        dealt += len(members)
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(k)]


# --- the embedded sentiment set --------------------------------------------------------------
# Groups of interchangeable words: the synonyms of augmentation, and the word lists of
# default_sentiment. A group never mixes polarities, so replacing a word by a synonym keeps
# the label.
POSITIVE_GROUPS = [["good", "nice", "fine"], ["great", "excellent", "superb", "wonderful"],
                   ["enjoyable", "pleasant", "delightful", "lovely"], ["amazing", "fantastic", "brilliant"]]
NEGATIVE_GROUPS = [["bad", "poor", "weak"], ["awful", "terrible", "horrible", "dreadful"],
                   ["boring", "dull", "tedious"], ["disappointing", "mediocre", "forgettable"]]
NEUTRAL_GROUPS = [["movie", "film"], ["food", "meal", "dinner"], ["hotel", "room"], ["book", "novel"],
                  ["service", "staff"], ["really", "very", "truly"], ["was", "seemed", "felt"]]
SYNONYMS = {word: [w for w in group if w != word]
            for group in POSITIVE_GROUPS + NEGATIVE_GROUPS + NEUTRAL_GROUPS for word in group}

_SUBJECTS = ["the movie", "the film", "the food", "the meal", "the dinner", "the hotel", "the room", "the book",
             "the novel", "the service", "the staff", "the music", "the plot", "the trip", "this phone", "the game"]
_VERBS = ["was", "seemed", "felt", "is"]
_ADVERBS = ["", "really ", "very ", "truly ", "quite "]
_CLAUSES = {"positive": ["i loved it", "i would recommend it", "i will come back", "worth every penny",
                         "i enjoyed every minute", "we had a great time"],
            "negative": ["i hated it", "i would not recommend it", "i will never come back", "a waste of money",
                         "i want my money back", "we did not have a good time"]}
_POLAR = {"positive": [w for g in POSITIVE_GROUPS for w in g], "negative": [w for g in NEGATIVE_GROUPS for w in g]}
_OTHER = {"positive": "negative", "negative": "positive"}


def _sentence(label, rng):
    """One English sentence whose sentiment is `label`, from one of five templates. Every
    polar word occurs in both labels' sentences (through negation and contrast), so no single
    word decides the label."""
    def pick(options):
        return options[rng.integers(len(options))]

    subject, verb, adverb = pick(_SUBJECTS), pick(_VERBS), pick(_ADVERBS)
    template = rng.integers(5)
    if template == 0:    # plain:        the food was really good .
        return f"{subject} {verb} {adverb}{pick(_POLAR[label])} ."
    if template == 1:    # negated:      the food was not good .  /  the food was not bad at all .
        if label == "negative":
            return f"{subject} {verb} not {adverb}{pick(_POLAR['positive'])} ."
        return f"{subject} {verb} not {pick(_POLAR['negative'])} at all ."
    if template == 2:    # contrast, the clause after "but" decides: the plot was dull but the music was great .
        return (f"{subject} {verb} {pick(_POLAR[_OTHER[label]])} but {pick(_SUBJECTS)} {pick(_VERBS)} "
                f"{adverb}{pick(_POLAR[label])} .")
    if template == 3:    # with a verdict: the food was good , i would recommend it .
        return f"{subject} {verb} {adverb}{pick(_POLAR[label])} , {pick(_CLAUSES[label])} ."
    return f"{pick(_CLAUSES[label])} , {subject} {verb} {adverb}{pick(_POLAR[label])} ."   # verdict first


def default_sentiment(n=400, seed=0):
    """A balanced labelled sentiment set tinylm writes itself: n distinct English sentences,
    n/2 labelled "positive" and n/2 "negative", in a shuffled order; the same seed gives the
    same set. Sentences come from templates with negation ("not good" is negative) and
    contrast ("dull but great" is positive), so a bag of polar words is not enough."""
    if not isinstance(n, (int, np.integer)) or n < 2 or n % 2:
        raise ValueError(f"default_sentiment: n must be an even number of at least 2, got {n!r}")
    rng = np.random.default_rng(seed)
    seen, examples = set(), []
    for label in ["positive", "negative"] * (n // 2):
        text = _sentence(label, rng)
        while text in seen:
            text = _sentence(label, rng)
        seen.add(text)
        examples.append((text, label))
    order = rng.permutation(n)
    return Labelled([examples[i][0] for i in order], [examples[i][1] for i in order])


# verdicts that end a review of sentiment_corpus: each tone's first words differ
_VERDICTS = {"positive": ["loved it .", "highly recommended .", "worth it .", "five stars ."],
             "negative": ["hated it .", "avoid it .", "never again .", "one star ."]}


def sentiment_corpus(n_reviews=500, seed=1):
    """Unlabelled text to pretrain a small language model for default_sentiment: n_reviews
    lines, each a review of one or two sentences in one tone and a short verdict ("loved it .",
    "avoid it ."). Predicting the verdict's first word from the period before it makes the
    model carry the tone of what it read to the end of the sentence — the hidden state that
    the classifier's head reads (a GPT's summary is its last token's)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_reviews):
        label = ("positive", "negative")[rng.integers(2)]
        sentences = [_sentence(label, rng) for _ in range(1 + rng.integers(2))]
        verdicts = _VERDICTS[label]
        lines.append(" ".join(sentences + [verdicts[rng.integers(len(verdicts))]]))
    return "\n".join(lines) + "\n"


# --- text augmentation (001.overfit) -------------------------------------------------------------
AUGMENTATIONS = ("insert", "replace", "delete", "swap")
NEGATIONS = {"not", "no", "never", "nothing", "n't"}  # deleting one would flip the sentiment


def augment(text, rng, op="replace", n=1, vocab=None):
    """A new training text made from `text` by n random edits of one kind (001.overfit's data
    augmentation), the words being the text's whitespace-separated pieces:

      insert   put a synonym of one of its words (or, when none has one, a word of `vocab`,
               else one of its own words) at a random position
      replace  replace a word that has synonyms by one of them (a word of `vocab` when none has);
               n replacements change n different words
      delete   remove a word, never the last one left and never a negation, which would
               flip the meaning ("not good" -> "good")
      swap     exchange two words at different positions

    rng: a numpy.random.Generator, so the same seed gives the same edits. An edit that has
    nothing to work on (replace without synonyms or vocab, swap of one word) is skipped."""
    if op not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {op!r}: expected one of {', '.join(AUGMENTATIONS)}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    words, replaced = text.split(), set()
    for _ in range(n):
        has_synonyms = [i for i, w in enumerate(words) if w in SYNONYMS and i not in replaced]
        if op in ("insert", "replace"):
            if has_synonyms:
                i = has_synonyms[rng.integers(len(has_synonyms))]
                new = SYNONYMS[words[i]][rng.integers(len(SYNONYMS[words[i]]))]
            elif vocab or op == "insert":
                pool = list(vocab or words)
                i, new = rng.integers(len(words)), pool[rng.integers(len(pool))]
            else:
                continue
            if op == "insert":
                words.insert(rng.integers(len(words) + 1), new)
            else:
                words[i] = new
                replaced.add(i)  # n replacements touch n different words
        elif op == "delete":
            deletable = [i for i, w in enumerate(words) if w.lower() not in NEGATIONS]
            if len(words) > 1 and deletable:
                del words[deletable[rng.integers(len(deletable))]]
        elif len(words) > 1:  # swap
            i, j = rng.choice(len(words), size=2, replace=False)
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def augmented(data, copies, seed=0):
    """`data` followed by `copies` augmented versions of each example (001.overfit), each made
    by one edit of a random kind (insert, replace, delete or swap; see augment), label kept."""
    rng = np.random.default_rng(seed)
    texts, labels = list(data.texts), list(data.labels)
    for _ in range(copies):
        for text, label in zip(data.texts, data.labels):
            texts.append(augment(text, rng, AUGMENTATIONS[rng.integers(len(AUGMENTATIONS))]))
            labels.append(label)
    return Labelled(texts, labels)
