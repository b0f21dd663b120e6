"""Layers, written from the formulas, with PyTorch's names, arguments and shapes."""
from . import functional, init
from .layers import Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList, Parameter, Sequential
