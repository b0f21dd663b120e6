"""Tensor construction, dtypes, conversion and the factories."""
import numpy as np
import pytest

import tinylm


def test_python_floats_default_to_float32_arrays_keep_their_dtype():
    assert tinylm.tensor([1.0, 2.0]).dtype == np.float32
    assert tinylm.tensor([1, 2]).dtype == np.int64
    assert tinylm.tensor(np.zeros(2)).dtype == np.float64
    assert tinylm.Tensor(np.zeros(2, np.float16)).dtype == np.float16
    assert tinylm.tensor([True]).dtype == np.bool_


def test_tensor_copies_but_Tensor_shares():
    a = np.zeros(3)
    tinylm.tensor(a).data[0] = 1
    assert a[0] == 0
    tinylm.Tensor(a).data[0] = 1
    assert a[0] == 1


def test_set_default_dtype():
    try:
        tinylm.set_default_dtype(tinylm.float64)
        assert tinylm.tensor([1.5]).dtype == np.float64 and tinylm.randn(2).dtype == np.float64
    finally:
        tinylm.set_default_dtype(tinylm.float32)
    with pytest.raises(TypeError, match="floating dtype"):
        tinylm.set_default_dtype(np.int32)


def test_scalars_keep_the_tensor_dtype():
    x = tinylm.ones(2)
    assert (x * 2.5).dtype == np.float32 and (2 ** x).dtype == np.float32
    assert (tinylm.arange(3) * 2).dtype == np.int64
    assert (tinylm.arange(3) * 0.5).dtype.kind == "f"


def test_properties_and_conversions():
    x = tinylm.arange(6, dtype=tinylm.float32).reshape(2, 3)
    assert x.shape == (2, 3) and x.ndim == 2 and x.device == "cpu" and x.numel() == 6
    assert x.size() == (2, 3) and x.size(1) == 3 and len(x) == 2
    assert x.sum().item() == 15.0 and x.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert isinstance(x.numpy(), np.ndarray) and x.double().dtype == np.float64
    d = (x.requires_grad_() * 2).detach()
    assert d.grad_fn is None and not d.requires_grad
    with pytest.raises(ValueError, match="one element"):
        x.item()


def test_repr_is_readable():
    x = tinylm.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert "grad_fn=<Mul>" in repr(x * 2)
    assert "dtype=float64" in repr(tinylm.zeros(1, dtype=tinylm.float64))


def test_factories():
    assert tinylm.zeros(2, 3).shape == (2, 3) and tinylm.ones((4,)).numpy().sum() == 4
    assert tinylm.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert tinylm.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert tinylm.zeros_like(tinylm.ones(2, dtype=tinylm.float64)).dtype == np.float64
    assert tinylm.rand(1000).numpy().min() >= 0 and tinylm.rand(1000).numpy().max() < 1
    with pytest.raises(ValueError, match="non-negative integers"):
        tinylm.zeros(2, -1)


def test_manual_seed_reproduces_random_tensors():
    tinylm.manual_seed(7)
    a = tinylm.randn(5).numpy()
    tinylm.manual_seed(7)
    np.testing.assert_array_equal(a, tinylm.randn(5).numpy())
    assert abs(tinylm.randn(20000).numpy().std() - 1) < 0.03
    with pytest.raises(ValueError, match="non-negative integer"):
        tinylm.manual_seed(-1)


def test_comparisons_and_setitem():
    x = tinylm.tensor([1.0, -2.0, 3.0])
    assert (x > 0).tolist() == [True, False, True] and (x == 3).any().item()
    x[1] = 0.0
    assert x.tolist() == [1.0, 0.0, 3.0]
    w = tinylm.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w[0] = 2.0


def test_numpy_array_on_the_left_uses_tensor_ops():
    y = np.ones(2) + tinylm.ones(2, requires_grad=True)
    assert isinstance(y, tinylm.Tensor) and y.grad_fn is not None


def test_cuda_unavailable_is_one_clear_line():
    if tinylm.backend.cupy_or_none() is not None:
        assert tinylm.ones(2).to("cuda").device == "cuda"
        return
    with pytest.raises(RuntimeError, match="device 'cuda' is not available here"):
        tinylm.ones(2).to("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tinylm.ones(2).to("tpu")
