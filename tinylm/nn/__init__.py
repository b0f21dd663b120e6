"""Layers, written from the formulas, with PyTorch's names, arguments and shapes."""
from .module import Module, ModuleList, Parameter, Sequential
