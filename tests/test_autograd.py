"""The backward pass itself: chain rule, accumulation, broadcasting undone, graph lifetime."""
import numpy as np
import pytest

import tinylm
from tinylm.autograd import unbroadcast


def test_chain_rule_by_hand():
    x = tinylm.tensor(2.0, requires_grad=True)
    y = (x * x + 3 * x).exp()          # y = e^(x² + 3x);  dy/dx = (2x + 3) y
    y.backward()
    assert np.isclose(x.grad.item(), 7 * np.exp(10.0), rtol=1e-6)


def test_gradients_accumulate_on_leaves_and_across_uses():
    x = tinylm.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 + 3, 4 + 3])
    y = tinylm.tensor([1.0, 2.0], requires_grad=True)
    z = y * 2
    (z * z + z).sum().backward()       # diamond: z used twice; d/dy = (2z + 1) * 2
    np.testing.assert_allclose(y.grad.numpy(), [(2 * 2 + 1) * 2, (2 * 4 + 1) * 2])


def test_broadcast_gradient_is_summed_back_to_the_input_shape():
    a = tinylm.ones(3, 1, requires_grad=True)
    b = tinylm.ones(2, 1, 4, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (2, 1, 4)
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 8.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full((2, 1, 4), 3.0))
    assert unbroadcast(np.ones((5, 2, 3)), (1, 3)).tolist() == [[10.0, 10.0, 10.0]]


def test_grad_keeps_the_leaf_dtype():
    x = tinylm.ones(3, requires_grad=True)
    (x * np.float64(2.5)).sum().backward()
    assert x.grad.dtype == np.float32


def test_no_grad_records_nothing():
    x = tinylm.ones(2, requires_grad=True)
    with tinylm.no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad
    assert tinylm.is_grad_enabled()


def test_second_backward_through_a_freed_graph_says_what_to_do():
    x = tinylm.ones(2, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = tinylm.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_backward_on_a_non_scalar_needs_a_gradient():
    x = tinylm.ones(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\) needs a gradient argument"):
        y.backward()
    y.backward(tinylm.ones(2, 3) * 0.5)
    np.testing.assert_allclose(x.grad.numpy(), np.ones((2, 3)))
    with pytest.raises(ValueError, match="gradient of shape"):
        (x * 2).backward(np.ones(3))


def test_backward_without_any_grad_input_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (tinylm.ones(2) * 2).sum().backward()


def test_retain_grad_keeps_an_intermediate_gradient():
    x = tinylm.tensor([1.0, -2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


def test_a_long_chain_does_not_overflow_the_stack():
    x = tinylm.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert np.isclose(x.grad.item(), 1.0001 ** 5000, rtol=1e-4)


def test_only_float_tensors_can_require_grad():
    with pytest.raises(TypeError, match=r"only floating-point .* int64.*\.float\(\)"):
        tinylm.tensor([1, 2], requires_grad=True)
    assert tinylm.tensor([1, 2]).float().requires_grad_().requires_grad


def test_integer_results_leave_the_graph():
    x = tinylm.randn(4, requires_grad=True)
    assert x.argmax().grad_fn is None and (x > 0).grad_fn is None and x.long().grad_fn is None


def test_graph_is_freed_after_backward():
    x = tinylm.ones(3, requires_grad=True)
    y = x.exp()
    fn = y.grad_fn
    y.sum().backward()
    assert fn.freed and fn.inputs == ()


class _Twice(tinylm.autograd.Function):
    """y = 2x, with a backward that can be made to break the contract on Function."""

    answer = staticmethod(lambda fn, g: g * 2)

    def forward(self, x, y=None):
        return 2 * x

    def backward(self, g):
        return type(self).answer(self, g)


@pytest.mark.parametrize("answer, message", [
    (lambda fn, g: g.data * 2, "_Twice.backward returned a ndarray as the gradient of input 0"),
    (lambda fn, g: (g * 2, g * 2), "_Twice.backward returned 2 gradients for 1 inputs"),
    (lambda fn, g: [g * 2], "_Twice.backward returned a list"),
    (lambda fn, g: (g * 2).expand(2, 3), None),   # a broadcast output's shape: summed back by autograd
    (lambda fn, g: g.reshape(3, 1), "_Twice: a gradient of shape (3, 1) for an input of shape (3,)"),
])
def test_backward_contract_is_enforced(answer, message):
    """backward returns one Tensor (or None) per input, shaped like the input or the broadcast
    output; anything else is a TypeError that names the op, not a silent wrong gradient."""
    op = type("_Twice", (_Twice,), {"answer": staticmethod(answer)})
    x = tinylm.ones(3, requires_grad=True)
    y = op.apply(x)
    if message is None:
        y.sum().backward()
        assert x.grad.tolist() == [4.0, 4.0, 4.0]
        return
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        y.sum().backward()


def test_every_op_backward_returns_tensors():
    """Each op's backward, called directly, answers in Tensors (or None), one per input."""
    from tinylm.autograd import Function
    x = tinylm.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    w = tinylm.tensor([1.5, 0.5, -1.0], requires_grad=True)
    outputs = [x + w, x - w, x * w, x / w, x.abs() ** w, -x, x.exp(), x.abs().log(), x.abs().sqrt(), x.abs(),
               x.tanh(), x.sigmoid(), x.relu(), tinylm.nn.functional.gelu(x), x.clamp(-0.5, 0.5),
               tinylm.where(x.data > 0, x, w), x @ w.reshape(3, 1), x.sum(), x.max(), x.reshape(3),
               x.permute(1, 0), x.expand(2, 3), x[0, 1:], tinylm.cat([x, x]), x.double(), x.softmax(-1),
               x.log_softmax(-1), tinylm.nn.functional.cross_entropy(x, tinylm.tensor([2])),
               tinylm.ops.LayerNormOp.apply(x, w, w), tinylm.ops.CausalSoftmaxOp.apply(x, scale=0.5),
               tinylm.ops.ScatterAdd.apply(x, shape=(2, 3), index=(slice(0, 1),)),
               tinylm.nn.functional.linear_gelu(x, w.reshape(1, 3), w[:1]), tinylm.ops.CausalAttentionOp.apply(x, x, x),
               tinylm.nn.functional.silu(x), tinylm.ops.RMSNormOp.apply(x, w, eps=1e-6),
               tinylm.ops.Rotary.apply(x[:, :2], cos=np.ones((1, 1)), sin=np.zeros((1, 1))),
               tinylm.nn.functional.swiglu(x, x * w)]
    seen = set()
    for y in outputs:
        fn = y.grad_fn
        assert isinstance(fn, Function)
        seen.add(type(fn).__name__)
        with tinylm.no_grad():
            grads = fn.backward(tinylm.Tensor(np.ones(y.shape, y.dtype)))
        grads = grads if isinstance(grads, tuple) else (grads,)
        assert len(grads) == len(fn.inputs), fn.name
        assert all(g is None or isinstance(g, tinylm.Tensor) for g in grads), fn.name
    ops = {name for name in dir(tinylm.ops) if isinstance(getattr(tinylm.ops, name), type)
           and issubclass(getattr(tinylm.ops, name), Function)}
    assert ops - seen <= {"Copy"}, sorted(ops - seen)   # Copy needs a device: tests/test_fake_cuda.py
