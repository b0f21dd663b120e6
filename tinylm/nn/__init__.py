"""Layers, written from the formulas, with PyTorch's names, arguments and shapes."""
from . import functional, init
from .attention import GroupedQueryAttention, MultiheadAttention
from .layers import Dropout, Embedding, LayerNorm, Linear, RMSNorm, SiLU, SwiGLU
from .module import Module, ModuleList, Parameter, Sequential
from .positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .transformer import (TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                          TransformerEncoderLayer, generate_square_subsequent_mask)
