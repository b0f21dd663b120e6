"""Checking gradients three ways: autograd, central differences, and a hand-derived formula.

gradcheck: autograd against central differences (float64).
compare:   autograd, central differences and your own derived gradient, side by side.
"""
from .compare import CompareReport, compare, use_tensors
from .gradcheck import GradcheckError, GradcheckReport, gradcheck
