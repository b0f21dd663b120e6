"""gradcheck itself: it passes correct gradients, catches wrong ones, and says where."""
import numpy as np
import pytest

import tinylm
from tinylm.autograd import Function
from tinylm.check import GradcheckError, gradcheck


class WrongSquare(Function):
    """y = x², with a deliberately wrong derivative (3x instead of 2x) for one element."""

    def forward(self, x):
        return x * x

    def backward(self, g):
        x = self.inputs[0]
        wrong = np.ones(x.shape)
        wrong.flat[-1] = 1.5
        return g * x * 2 * wrong


def test_correct_gradients_pass_with_a_table(rng):
    a = tinylm.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = tinylm.Tensor(rng.standard_normal(3), requires_grad=True)
    report = gradcheck(lambda a, b: (a * b).tanh(), {"a": a, "b": b})
    assert report.passed and bool(report)
    assert report["a"].shape == (2, 3) and report["b"].max_abs_err < 1e-8
    table = report.table()
    assert table.splitlines()[0].split()[:2] == ["input", "shape"] and table.count("PASS") == 2


def test_a_wrong_backward_is_caught_at_its_index(rng):
    x = tinylm.Tensor(rng.uniform(1, 2, (2, 2)), requires_grad=True)
    report = gradcheck(lambda x: WrongSquare.apply(x), [x])
    assert not report.passed and report[0].worst_index == (1, 1) and "FAIL" in report.table()
    assert np.isclose(report[0].autograd, 1.5 * report[0].numeric)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(2, 2\)\) at index \(1, 1\)"):
        gradcheck(lambda x: WrongSquare.apply(x), [x], raise_on_fail=True)


def test_checks_only_inputs_that_require_grad_and_runs_in_float64(rng):
    seen = []

    def fn(x, w, k):
        seen.append(x.dtype)
        return (x @ w) * k

    x = tinylm.Tensor(rng.standard_normal((2, 3)).astype(np.float32), requires_grad=True)
    w = tinylm.Tensor(rng.standard_normal((3, 2)))
    report = gradcheck(fn, [x, w, 2.0])
    assert [c.name for c in report] == ["input 0"] and report.passed
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None  # the caller's tensor is left alone


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(lambda x: x * 2, [tinylm.ones(2)])
