"""The data layer (001.pipeline: clean -> tokenize -> encode to ids): tokenizers, the
default corpus, the train/validation split and batches of (input, target) windows."""
from .corpus import Batcher, default_corpus_text, get_batch, load_text, sequential_batches, train_val_split
from .sentencepiece import SentencePieceTokenizer
from .tokenizers import (UNK, ByteBPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, build_tokenizer,
                         load_tokenizer)

__all__ = ["Batcher", "ByteBPETokenizer", "CharTokenizer", "SentencePieceTokenizer", "Tokenizer", "UNK",
           "WordTokenizer", "build_tokenizer", "default_corpus_text", "get_batch", "load_text", "load_tokenizer",
           "sequential_batches", "train_val_split"]
