"""nn.Module bookkeeping and the basic layers (Linear, Embedding, Dropout, LayerNorm)."""
import numpy as np
import pytest

import tinylm
from tinylm import nn
from tinylm.check import gradcheck


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.norm = nn.LayerNorm(3)
        self.register_buffer("scale", tinylm.ones(3))

    def forward(self, x):
        return self.norm(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(3, 10, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x) @ tinylm.ones(3, 4) if b is not self.blocks[-1] else b(x)
        return self.head(self.drop(x))


def test_parameters_are_registered_with_pytorch_style_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["embed.weight", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.norm.weight",
                     "blocks.0.norm.bias", "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.norm.weight",
                     "blocks.1.norm.bias", "head.weight"]
    # PyTorch's order: a module's own parameters and buffers, then its children's
    assert list(net.state_dict()) == names[:1] + ["blocks.0.scale"] + names[1:5] + ["blocks.1.scale"] + names[5:]
    assert net.num_parameters() == 40 + 2 * (12 + 3 + 6) + 30
    assert all(p.requires_grad for p in net.parameters())


def test_shared_weights_are_listed_once():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    net[1].weight = net[0].weight  # tied, as GPT ties its embedding and output layer
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_state_dict_round_trip_accepts_numpy_and_tensors():
    a, b = Net(), Net()
    b.load_state_dict({k: v.numpy() for k, v in a.state_dict().items()})
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    b.load_state_dict(a.state_dict())
    state = b.state_dict()
    state["head.weight"].data[0, 0] = 123.0  # the state dict shares memory, as in PyTorch
    assert b.head.weight.data[0, 0] == 123.0


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    net = Net()
    before = net.head.weight.numpy().copy()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    del state["embed.weight"]
    state["extra.bias"] = np.zeros(2)
    state["head.weight"] = np.zeros((3, 3))
    state["blocks.0.fc.bias"] = np.zeros(4)
    with pytest.raises(ValueError) as err:
        net.load_state_dict(state)
    msg = str(err.value)
    assert "missing keys: embed.weight" in msg and "unexpected keys: extra.bias" in msg
    assert "head.weight: expected shape (10, 3), got (3, 3)" in msg and "blocks.0.fc.bias" in msg
    np.testing.assert_array_equal(net.head.weight.numpy(), before)
    del state["extra.bias"]
    state["head.weight"], state["blocks.0.fc.bias"] = np.zeros((10, 3)), np.zeros(3)
    result = net.load_state_dict(state, strict=False)
    assert result["missing_keys"] == ["embed.weight"] and (net.head.weight.numpy() == 0).all()


def test_load_state_dict_with_values_that_are_not_numbers_changes_nothing():
    net = Net()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    state = {k: np.ones_like(v) for k, v in before.items()}
    state["blocks.1.fc.bias"] = np.full(before["blocks.1.fc.bias"].shape, "x")  # right shape, late in the order
    with pytest.raises(ValueError, match=r"values that are not numbers: blocks.1.fc.bias: expected numbers, "
                                         r"got dtype <U1$"):
        net.load_state_dict(state)
    state["embed.weight"] = [[0.0] * 4] * 9 + [[0.0]]
    with pytest.raises(ValueError, match=r"embed.weight: nested lists of different lengths; blocks.1.fc.bias"):
        net.load_state_dict(state)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)


def test_train_eval_switches_dropout():
    net = Net()
    ids = np.arange(10).reshape(2, 5)
    net.eval()
    assert not any(m.training for m in net.modules())
    np.testing.assert_array_equal(net(ids).numpy(), net(ids).numpy())
    net.train()
    tinylm.manual_seed(0)
    assert not np.array_equal(net(ids).numpy(), net(ids).numpy())


def test_zero_grad_and_backward_through_a_model():
    net = Net().eval()
    out = net(np.array([[1, 2, 3]]))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_is_a_tree():
    text = repr(Net())
    assert text.startswith("Net(\n  (embed): Embedding(10, 4)")
    assert "(0): Block(\n      (fc): Linear(in_features=4, out_features=3, bias=True)" in text
    assert "(drop): Dropout(p=0.5)" in text and "(head): Linear(in_features=3, out_features=10, bias=False)" in text


def test_layers_match_their_formulas(rng):
    lin = nn.Linear(4, 2)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(lin(tinylm.Tensor(x)).numpy(), x @ lin.weight.numpy().T + lin.bias.numpy(), rtol=1e-5)
    bound = 1 / np.sqrt(4)
    assert np.abs(lin.weight.numpy()).max() <= bound and np.abs(lin.bias.numpy()).max() <= bound
    emb = nn.Embedding(6, 3, padding_idx=2)
    np.testing.assert_array_equal(emb(np.array([2, 5])).numpy(), np.stack([np.zeros(3), emb.weight.numpy()[5]]))
    ln = nn.LayerNorm(4)
    y = ln(tinylm.Tensor(x)).numpy()
    np.testing.assert_allclose(y, (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5),
                               rtol=1e-4, atol=1e-5)


def test_layer_gradients_against_central_differences(rng):
    def linear(x, w, b):
        layer = nn.Linear(3, 2)
        layer.weight, layer.bias = w, b  # the checked tensors stand in for the parameters
        return layer(x)

    def layer_norm(x, w, b):
        layer = nn.LayerNorm(2)
        layer.weight, layer.bias = w, b
        return layer(x)

    def embedding(w):
        layer = nn.Embedding(5, 2)
        layer.weight = w
        return layer(np.array([[0, 4, 4], [1, 0, 2]]))

    leaf = lambda *shape: tinylm.Tensor(rng.standard_normal(shape), requires_grad=True)  # noqa: E731
    for fn, inputs in [(linear, [leaf(4, 3), leaf(2, 3), leaf(2)]), (layer_norm, [leaf(4, 2), leaf(2), leaf(2)]),
                       (embedding, [leaf(5, 2)])]:
        report = gradcheck(fn, inputs)
        assert report.passed, report.table()


def test_bad_input_names_the_expected_layout():
    with pytest.raises(ValueError, match=r"Linear expected input \(\.\.\., 4\), got \(2, 3\)"):
        nn.Linear(4, 2)(tinylm.zeros(2, 3))
    with pytest.raises(ValueError, match="Dropout: p must be between 0 and 1"):
        nn.Dropout(2)
    with pytest.raises(RuntimeError, match=r"super\(\).__init__\(\)"):
        class Broken(nn.Module):
            def __init__(self):
                self.w = nn.Parameter(tinylm.zeros(1))
        Broken()


def test_module_to_cpu_is_a_no_op_and_cuda_says_why():
    net = Net()
    assert net.to("cpu") is net and net.head.weight.device == "cpu"
    if tinylm.backend.cupy_or_none() is None:
        with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
            net.to("cuda")


def test_module_dtype_casts_parameters_and_buffers():
    net = Block().double()
    assert all(t.dtype == np.float64 for t in list(net.parameters()) + list(net.buffers()))
    y = net(tinylm.Tensor(np.ones((2, 4))))
    assert y.dtype == np.float64
    assert net.float().fc.weight.dtype == np.float32
    with pytest.raises(TypeError, match="floating dtype"):
        net.to(tinylm.int64)
