"""RNN, LSTM, GRU and their cells: forward against NumPy transcriptions of the formulas,
gradients against central differences and the hand-derived BPTT (tinylm.check.rnn_formulas),
PyTorch parity where torch is installed, and the error messages."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinylm
from tinylm.check import compare, gradcheck
from tinylm.check.rnn_formulas import CASES, run_layer, sigmoid
from tinylm.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

LAYERS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
CELLS = {"RNNCell": RNNCell, "LSTMCell": LSTMCell, "GRUCell": GRUCell}


pytestmark = pytest.mark.usefixtures("float64_default")


def flatten(result):
    """(output, h_n), (output, (h_n, c_n)), h' or (h', c') as a flat list of tensors."""
    if isinstance(result, tuple):
        return [t for part in result for t in flatten(part)]
    return [result]


def leaf(array):
    return tinylm.Tensor(np.array(array, dtype=np.float64), requires_grad=True)


# --- the formulas, transcribed gate by gate in NumPy ---------------------------------------

def gate_rows(w, k, hidden):
    """Block k of a stacked gate weight or bias: rows k·hidden … (k+1)·hidden."""
    return w[k * hidden:(k + 1) * hidden]


def numpy_step(kind, x, state, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """One step of each formula, the gates written out one by one (PyTorch's gate order)."""
    hidden = w_hh.shape[1]
    b_ih = np.zeros(w_ih.shape[0]) if b_ih is None else b_ih
    b_hh = np.zeros(w_hh.shape[0]) if b_hh is None else b_hh

    def gate(k):  # W_i· x + b_i· + W_h· h + b_h· for gate block k
        return (x @ gate_rows(w_ih, k, hidden).T + gate_rows(b_ih, k, hidden)
                + state[0] @ gate_rows(w_hh, k, hidden).T + gate_rows(b_hh, k, hidden))

    if kind == "RNN":  # h_t = f(W x_t + U h_{t-1} + b)
        f = np.tanh if nonlinearity == "tanh" else (lambda a: np.maximum(a, 0))
        return (f(gate(0)),)
    if kind == "LSTM":  # i, f, g, o;  c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)
        i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
        c = f * state[1] + i * g
        return o * np.tanh(c), c
    # GRU: r, z, n;  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));  h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
    h = state[0]
    r, z = sigmoid(gate(0)), sigmoid(gate(1))
    n = np.tanh(x @ gate_rows(w_ih, 2, hidden).T + gate_rows(b_ih, 2, hidden)
                + r * (h @ gate_rows(w_hh, 2, hidden).T + gate_rows(b_hh, 2, hidden)))
    return ((1 - z) * n + z * h,)


def numpy_layer(kind, params, x, state, num_layers, nonlinearity="tanh"):
    """The stacked layer over x (seq, [batch,] features): loop over layers, then over time."""
    finals = []
    for k in range(num_layers):
        w = [params.get(f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        layer_state, outputs = tuple(s[k] for s in state), []
        for x_t in x:
            layer_state = numpy_step(kind, x_t, layer_state, *w, nonlinearity)
            outputs.append(layer_state[0])
        x = np.stack(outputs)
        finals.append(layer_state)
    return x, [np.stack([f[j] for f in finals]) for j in range(len(state))]


def numpy_params(module):
    return {name: p.numpy() for name, p in module.named_parameters()}


# --- (1) forward against the transcriptions -----------------------------------------------

@settings(max_examples=12)
@given(kind=st.sampled_from(["RNN", "RNN relu", "LSTM", "GRU"]), seq=st.integers(1, 4),
       batch=st.integers(0, 3), input_size=st.integers(1, 4), hidden=st.integers(1, 4),
       num_layers=st.integers(1, 2), batch_first=st.booleans(), bias=st.booleans(), with_hx=st.booleans(),
       seed=st.integers(0, 2**16))
def test_layer_forward_matches_the_formula(kind, seq, batch, input_size, hidden, num_layers, batch_first, bias,
                                          with_hx, seed):
    """batch=0 stands for an unbatched (seq, input_size) input."""
    name, nonlinearity = (kind.split() + ["tanh"])[:2]
    options = {"nonlinearity": nonlinearity} if name == "RNN" else {}
    layer = LAYERS[name](input_size, hidden, num_layers, bias=bias, batch_first=batch_first, **options)
    rng = np.random.default_rng(seed)
    lead = (seq, batch) if batch else (seq,)
    x = rng.standard_normal(lead + (input_size,))
    n_states = 2 if name == "LSTM" else 1
    state = [rng.standard_normal((num_layers,) + lead[1:] + (hidden,)) if with_hx
             else np.zeros((num_layers,) + lead[1:] + (hidden,)) for _ in range(n_states)]
    hx = None
    if with_hx:
        hx = tuple(map(tinylm.Tensor, state)) if name == "LSTM" else tinylm.Tensor(state[0])
    swap = batch_first and batch  # the layer sees (batch, seq, features)
    output, *finals = flatten(layer(tinylm.Tensor(x.swapaxes(0, 1) if swap else x), hx))

    expected, expected_finals = numpy_layer(name, numpy_params(layer), x, state, num_layers, nonlinearity)
    expected = expected.swapaxes(0, 1) if swap else expected
    np.testing.assert_allclose(output.numpy(), expected, rtol=1e-12, atol=1e-12)
    assert len(finals) == n_states
    for got, want in zip(finals, expected_finals):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=12)
@given(kind=st.sampled_from(["RNNCell", "RNNCell relu", "LSTMCell", "GRUCell"]), batch=st.integers(0, 3),
       input_size=st.integers(1, 4), hidden=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_cell_forward_matches_the_formula(kind, batch, input_size, hidden, bias, seed):
    name, nonlinearity = (kind.split() + ["tanh"])[:2]
    options = {"nonlinearity": nonlinearity} if name == "RNNCell" else {}
    cell = CELLS[name](input_size, hidden, bias=bias, **options)
    rng = np.random.default_rng(seed)
    lead = (batch,) if batch else ()
    x = rng.standard_normal(lead + (input_size,))
    state = [rng.standard_normal(lead + (hidden,)) for _ in range(2 if name == "LSTMCell" else 1)]
    hx = tuple(map(tinylm.Tensor, state)) if name == "LSTMCell" else tinylm.Tensor(state[0])
    got = flatten(cell(tinylm.Tensor(x), hx))

    p = numpy_params(cell)
    want = numpy_step(name.removesuffix("Cell"), x, state, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                      p.get("bias_hh"), nonlinearity)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("module_class, options, x_shape, zeros_shape", [
    (LSTM, {"num_layers": 2}, (4, 2, 3), (2, 2, 2)), (LSTMCell, {}, (3,), (2,)), (GRU, {}, (4, 3), (1, 2))])
def test_zero_state_is_the_default(module_class, options, x_shape, zeros_shape):
    module = module_class(3, 2, **options)
    x = tinylm.Tensor(np.random.default_rng(1).standard_normal(x_shape))
    zeros = tinylm.zeros(zeros_shape)
    default = flatten(module(x))
    given_zeros = flatten(module(x, (zeros, zeros) if isinstance(module, (LSTM, LSTMCell)) else zeros))
    assert len(default) == len(given_zeros)
    for a, b in zip(default, given_zeros):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_float32_by_default():
    tinylm.set_default_dtype(np.float32)  # the fixture restores float64 afterwards
    lstm = LSTM(3, 2)
    x = tinylm.randn(4, 2, 3, requires_grad=True)
    output, (h_n, c_n) = lstm(x)
    output.sum().backward()
    dtypes = {output.dtype, h_n.dtype, c_n.dtype, x.grad.dtype, lstm.weight_hh_l0.grad.dtype}
    assert dtypes == {np.dtype(np.float32)}


def test_parameters_have_pytorch_names_shapes_and_init():
    lstm = LSTM(5, 3, num_layers=2, bias=True)
    shapes = {name: p.shape for name, p in lstm.named_parameters()}
    assert shapes == {"weight_ih_l0": (12, 5), "weight_hh_l0": (12, 3), "bias_ih_l0": (12,), "bias_hh_l0": (12,),
                      "weight_ih_l1": (12, 3), "weight_hh_l1": (12, 3), "bias_ih_l1": (12,), "bias_hh_l1": (12,)}
    assert [n for n, _ in GRU(5, 3, bias=False).named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert [n for n, _ in GRUCell(5, 3).named_parameters()] == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    bound = 1 / np.sqrt(3)
    values = np.concatenate([p.numpy().ravel() for p in lstm.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.8 * bound


def test_dropout_acts_between_layers_only_while_training():
    tinylm.manual_seed(0)
    dropped = GRU(3, 4, num_layers=2, dropout=0.5)
    plain = GRU(3, 4, num_layers=2)
    plain.load_state_dict(dropped.state_dict())
    x = tinylm.Tensor(np.random.default_rng(2).standard_normal((5, 2, 3)))
    assert not np.allclose(dropped(x)[0].numpy(), plain(x)[0].numpy())
    dropped.eval()
    np.testing.assert_array_equal(dropped(x)[0].numpy(), plain(x)[0].numpy())
    with pytest.warns(UserWarning, match="num_layers=1"):
        GRU(3, 4, dropout=0.5)


def test_backward_through_a_long_sequence():
    rnn = RNN(2, 3)
    x = leaf(np.random.default_rng(3).standard_normal((300, 1, 2)) * 0.1)
    rnn(x)[0].sum().backward()
    assert x.grad.shape == x.shape and np.isfinite(x.grad.numpy()).all()
    assert rnn.weight_hh_l0.grad.shape == (3, 3)


# --- (2) gradients against central differences ---------------------------------------------

def gradcheck_module(module, x, states):
    """gradcheck with respect to the input, the initial states and every parameter."""
    inputs = {"input": leaf(x), **{name: leaf(s) for name, s in states.items()},
              **{name: leaf(p.numpy()) for name, p in module.named_parameters()}}
    report = gradcheck(lambda **tensors: tuple(flatten(run_layer(module, **tensors))), inputs)
    assert report.passed, "\n" + report.table()
    assert {c.name for c in report} == set(inputs)


@pytest.mark.parametrize("name, options, num_layers, batch_first", [
    ("RNN", {}, 1, False), ("RNN", {}, 2, True), ("RNN", {"nonlinearity": "relu"}, 2, False),
    ("LSTM", {}, 1, True), ("LSTM", {}, 2, False), ("GRU", {}, 1, False), ("GRU", {}, 2, True),
    ("GRU", {"bias": False}, 1, True)])
def test_layer_gradients(name, options, num_layers, batch_first):
    tinylm.manual_seed(4)
    layer = LAYERS[name](3, 2, num_layers, batch_first=batch_first, **options)
    rng = np.random.default_rng(5)
    states = {s: rng.standard_normal((num_layers, 2, 2)) for s in (("h0", "c0") if name == "LSTM" else ("h0",))}
    x = rng.standard_normal((2, 3, 3) if batch_first else (3, 2, 3))  # batch 2, seq 3, input_size 3
    gradcheck_module(layer, x, states)


@pytest.mark.parametrize("name, options", [
    ("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {})])
@pytest.mark.parametrize("batch", [(2,), ()])
def test_cell_gradients(name, options, batch):
    tinylm.manual_seed(6)
    cell = CELLS[name](3, 2, **options)
    rng = np.random.default_rng(7)
    states = {s: rng.standard_normal(batch + (2,)) for s in (("h0", "c0") if name == "LSTMCell" else ("h0",))}
    gradcheck_module(cell, rng.standard_normal(batch + (3,)), states)


# --- (3) three ways: autograd, central differences, hand-derived BPTT ------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_derived_bptt_agrees(name):
    fn, formula, inputs = CASES[name]()
    report = compare(fn, formula, inputs)
    assert report.passed, "\n" + report.table(name)
    assert [r.name for r in report] == list(inputs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_formula_missing_a_term_is_caught(name):
    """A classic slip: only the last output's gradient dy_{T-1} flows back, the dy_t of the earlier
    steps are left out of dh_t = dy_t + da_{t+1} W_hh."""
    fn, formula, inputs = CASES[name]()

    def last_step_only(grad_out, **arrays):
        kept = np.zeros_like(grad_out)
        kept[-1] = grad_out[-1]
        return formula(kept, **arrays)

    report = compare(fn, last_step_only, inputs)
    assert not report.passed and "FAIL" in report.table()
    assert not report["input"].passed and report["input"].autograd_vs_numeric < 1e-6


# --- (4) PyTorch parity ------------------------------------------------------------------------

def torch_state_dict(module):
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def assert_same_as_torch(torch, reference, module, x, hx):
    """Outputs, final states, and the gradients of Σ v ⊙ outputs with respect to the input, hx and
    every parameter, all within 1e-6 relative."""
    module.load_state_dict(torch_state_dict(reference))
    t_x = torch.tensor(x, requires_grad=True)
    t_hx = [torch.tensor(s, requires_grad=True) for s in hx]
    ours_x, ours_hx = leaf(x), [leaf(s) for s in hx]
    theirs = flatten(reference(t_x, tuple(t_hx) if len(hx) > 1 else t_hx[0]))
    ours = flatten(module(ours_x, tuple(ours_hx) if len(hx) > 1 else ours_hx[0]))
    assert len(ours) == len(theirs)
    rng = np.random.default_rng(8)
    weights = [rng.standard_normal(tuple(t.shape)) for t in theirs]
    sum(((t * torch.tensor(w)).sum() for t, w in zip(theirs, weights))).backward()
    sum(((o * tinylm.Tensor(w)).sum() for o, w in zip(ours, weights))).backward()

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * max(np.abs(b).max(), 1e-12))

    for o, t in zip(ours, theirs):
        close(o.numpy(), t.detach().numpy())
    for o, t in zip([ours_x] + ours_hx, [t_x] + t_hx):
        close(o.grad.numpy(), t.grad.numpy())
    parameters = dict(module.named_parameters())
    for name, p in reference.named_parameters():
        close(parameters[name].grad.numpy(), p.grad.numpy())


@pytest.mark.parametrize("name, options", [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {}), ("LSTM", {"bias": False})])
@pytest.mark.parametrize("batch_first, batched", [(False, True), (True, True), (True, False)])
def test_layers_match_pytorch(name, options, batch_first, batched):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = getattr(torch.nn, name)(3, 4, num_layers=2, batch_first=batch_first, **options).double()
    module = LAYERS[name](3, 4, num_layers=2, batch_first=batch_first, **options)
    assert list(module.state_dict()) == list(reference.state_dict())
    rng = np.random.default_rng(9)
    x_shape = ((2, 5) if batch_first else (5, 2)) if batched else (5,)
    state_shape = (2, 2, 4) if batched else (2, 4)
    hx = [rng.standard_normal(state_shape) for _ in range(2 if name == "LSTM" else 1)]
    assert_same_as_torch(torch, reference, module, rng.standard_normal(x_shape + (3,)), hx)


@pytest.mark.parametrize("name, options", [
    ("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("LSTMCell", {}), ("GRUCell", {}),
    ("GRUCell", {"bias": False})])
@pytest.mark.parametrize("batch", [(3,), ()])
def test_cells_match_pytorch(name, options, batch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    reference = getattr(torch.nn, name)(3, 4, **options).double()
    module = CELLS[name](3, 4, **options)
    rng = np.random.default_rng(10)
    hx = [rng.standard_normal(batch + (4,)) for _ in range(2 if name == "LSTMCell" else 1)]
    assert_same_as_torch(torch, reference, module, rng.standard_normal(batch + (3,)), hx)


# --- (5) errors ----------------------------------------------------------------------------------

def test_wrong_input_names_the_expected_layout():
    lstm = LSTM(8, 4, batch_first=True)
    layout = r"LSTM expected input \(batch, seq, 8\) with batch_first=True, or \(seq, 8\) unbatched"
    with pytest.raises(ValueError, match=layout + r", got \(5, 3\)"):
        lstm(tinylm.zeros(5, 3))
    with pytest.raises(ValueError, match=layout + r", got \(2, 5, 3, 8\)"):
        lstm(tinylm.zeros(2, 5, 3, 8))
    with pytest.raises(ValueError, match=r"GRU expected input \(seq, batch, 8\) with batch_first=False"):
        GRU(8, 4)(tinylm.zeros(5, 2, 7))
    with pytest.raises(ValueError, match=r"GRUCell expected input \(batch, 8\) or \(8,\) unbatched, "
                                         r"got \(2, 5, 8\)"):
        GRUCell(8, 4)(tinylm.zeros(2, 5, 8))
    with pytest.raises(ValueError, match=r"RNN: the input sequence is empty"):
        RNN(8, 4)(tinylm.zeros(0, 2, 8))


def test_wrong_state_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"GRU expected h0 of shape \(2, 3, 4\) "
                                         r"\(num_layers, batch, hidden_size\), got \(1, 3, 4\)"):
        GRU(8, 4, num_layers=2)(tinylm.zeros(5, 3, 8), tinylm.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"LSTM expected c0 of shape \(1, 4\) \(num_layers, hidden_size\) for an "
                                         r"unbatched input, got \(1, 1, 4\)"):
        LSTM(8, 4)(tinylm.zeros(5, 8), (tinylm.zeros(1, 4), tinylm.zeros(1, 1, 4)))
    with pytest.raises(ValueError, match=r"LSTM expected hx = \(h0, c0\), a tuple of 2 tensors, got Tensor"):
        LSTM(8, 4)(tinylm.zeros(5, 2, 8), tinylm.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"LSTMCell expected c of shape \(2, 4\) \(batch, hidden_size\), "
                                         r"got \(4,\)"):
        LSTMCell(8, 4)(tinylm.zeros(2, 8), (tinylm.zeros(2, 4), tinylm.zeros(4)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="LSTM: bidirectional=True is not supported"):
        LSTM(8, 4, bidirectional=True)
    with pytest.raises(ValueError, match="RNN: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        RNN(8, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="GRU: dropout must be between 0 and 1, got 1.5"):
        GRU(8, 4, dropout=1.5)
    with pytest.raises(ValueError, match="GRU: num_layers must be an integer >= 1, got 0"):
        GRU(8, 4, num_layers=0)
    with pytest.raises(ValueError, match="RNNCell: hidden_size must be a positive integer, got 0"):
        RNNCell(8, 0)
