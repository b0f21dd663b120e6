"""Corpora and batches: the text to learn from, split into training and validation ids,
cut into (input, target) windows for next-token prediction.

    text = load_text()                              # or load_text("my_book.txt")
    ids = tokenizer.encode(text)
    train, val = train_val_split(ids, 0.1)
    x, y = get_batch(train, batch_size=32, block_size=64, rng=np.random.default_rng(0))
    # y[b, t] is the token that follows x[b, t]: the model learns P(y[b, t] | x[b, :t+1])
"""
import os

import numpy as np

from ..files import read_bytes


def default_corpus_text(limit=None):
    """The English documentation text inside CPython (pydoc_data.topics, about 460 KB):
    a corpus every Python installation has, so nothing is downloaded. `limit`: keep only
    the first `limit` characters."""
    from pydoc_data.topics import topics

    text = "".join(topics[key] for key in sorted(topics))
    return text[:limit] if limit else text


def load_text(path=None):
    """The UTF-8 text of the file at `path`, or the default corpus when `path` is None.

    The text is returned exactly as stored (line endings included)."""
    if path is None:
        return default_corpus_text()
    path = os.fspath(path)
    data = read_bytes(path, "text file")
    if not data:
        raise ValueError(f"{path} is empty: there is no text to learn from")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: byte {e.start} (0x{data[e.start]:02x}) "
                         f"cannot be decoded ({e.reason}); convert the file to UTF-8") from None


def train_val_split(ids, val_fraction=0.1):
    """(train, val): the first (1 - val_fraction) of the ids and the last val_fraction, as
    int64 arrays. Contiguous rather than shuffled, so validation text is text the model
    never saw, not windows overlapping the training ones."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"ids must be a 1-D sequence of integers, got shape {ids.shape} dtype {ids.dtype}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(len(ids) * val_fraction)
    if n_val == len(ids) or (val_fraction > 0 and n_val == 0):
        raise ValueError(f"{len(ids)} ids are too few to split with val_fraction={val_fraction}")
    ids = ids.astype(np.int64)
    cut = len(ids) - n_val
    return ids[:cut], ids[cut:]


def _check_batch_args(data, batch_size, block_size):
    """`data` as a 1-D int64 array, after checking it holds at least one window of
    block_size + 1 tokens (an input of block_size and its target shifted by one)."""
    data = np.asarray(data)
    if data.ndim != 1 or (data.size and not np.issubdtype(data.dtype, np.integer)):
        raise ValueError(f"data must be a 1-D array of token ids, got shape {data.shape} dtype {data.dtype}")
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if len(data) < block_size + 1:
        raise ValueError(f"the data has {len(data)} tokens, too few for block_size {block_size}: "
                         f"a window needs block_size + 1 = {block_size + 1} tokens")
    return data.astype(np.int64, copy=False)


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")


def get_batch(data, batch_size, block_size, rng):
    """A random batch of windows: x[b] = data[i:i+T], y[b] = data[i+1:i+T+1] for a random
    start i per row, both int64 arrays (batch_size, block_size). `rng` is a
    numpy.random.Generator, so the same seed gives the same batches."""
    data = _check_batch_args(data, batch_size, block_size)
    _check_rng(rng)
    # the last start that leaves room for the target: i + block_size + 1 <= len(data)
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    index = starts[:, None] + np.arange(block_size)  # (B, T): index[b, t] = starts[b] + t
    return data[index], data[index + 1]


def sequential_batches(data, batch_size, block_size):
    """Every token of `data` once, for evaluation: (x, y) batches of consecutive
    non-overlapping windows of block_size, in order.

    Full windows come batch_size at a time (the last batch may have fewer rows); the tail
    shorter than block_size, if any, comes last as a batch of one shorter window. Batches
    differ in size, so average a loss over them weighted by y.size.
    """
    data = _check_batch_args(data, batch_size, block_size)
    n_windows, tail = divmod(len(data) - 1, block_size)  # the last token is only a target
    for first in range(0, n_windows, batch_size):
        starts = np.arange(first, min(first + batch_size, n_windows)) * block_size
        index = starts[:, None] + np.arange(block_size)
        yield data[index], data[index + 1]
    if tail:
        start = n_windows * block_size
        yield data[None, start:start + tail], data[None, start + 1:start + tail + 1]


class Batcher:
    """Endless random training batches from one split: `x, y = next(batcher)`, or
    `for step, (x, y) in zip(range(steps), batcher)`. See `get_batch`."""

    def __init__(self, data, batch_size, block_size, rng):
        self.data = _check_batch_args(data, batch_size, block_size)
        _check_rng(rng)
        self.batch_size, self.block_size, self.rng = batch_size, block_size, rng

    def __iter__(self):
        return self

    def __next__(self):
        return get_batch(self.data, self.batch_size, self.block_size, self.rng)
