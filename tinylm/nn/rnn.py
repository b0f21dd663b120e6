"""Recurrent layers — RNN, LSTM, GRU — and their one-step cells, written from the formulas.

Constructor arguments, parameter names, shapes and gate order are PyTorch's, so a PyTorch
state dict converted to NumPy loads and gives the same outputs. For layer k of a stack
(the cells drop the "_l{k}" suffix), with G gates (RNN 1, LSTM 4, GRU 3):

    weight_ih_l{k}  (G·hidden_size, input_size for k = 0, else hidden_size)   every gate's W_x·, stacked
    weight_hh_l{k}  (G·hidden_size, hidden_size)                               every gate's W_h·, stacked
    bias_ih_l{k}, bias_hh_l{k}  (G·hidden_size,)

Every parameter starts from U(-1/√hidden_size, 1/√hidden_size), as in PyTorch. One time step
is the cell's `step`, ordinary Tensor ops (matmul, sigmoid, tanh, chunk); a layer runs the
same step at every time t, so backward() is backpropagation through time with no code of its
own here. tinylm.check.rnn_formulas derives the same gradients by hand, to check them.
"""
import warnings

from . import functional as F
from ..factories import zeros
from . import init
from .layers import check_last_dim
from .module import Module, Parameter


def affine(x, weight, bias):
    """x Wᵀ + b, or x Wᵀ without a bias (bias=False layers)."""
    y = x @ weight.T
    return y if bias is None else y + bias


def new_parameter(hidden_size, *shape):
    """A Parameter of `shape` drawn from U(-1/√hidden_size, 1/√hidden_size), PyTorch's RNN init."""
    return Parameter(init.uniform_fan_in_(zeros(*shape), hidden_size))


def check_sizes(layer, input_size, hidden_size):
    for name, size in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"{layer}: {name} must be a positive integer, got {size!r}")


def check_nonlinearity(layer, nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{layer}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


def check_input(layer, input, ranks, size, layout):
    """A one-line ValueError when input has the wrong number of axes or features (layout names them)."""
    if input.ndim not in ranks:
        raise ValueError(f"{layer} expected input {layout}, got {tuple(input.shape)}")
    check_last_dim(layer, input, size, layout)


def initial_state(layer, hx, state_names, shape, like, axes):
    """hx as a tuple of state tensors of `shape` — (h,) for RNN and GRU, (h, c) for LSTM — or
    zeros like `like` when hx is None. A wrong hx gets a one-line ValueError naming `axes`."""
    if hx is None:
        return tuple(zeros(shape, dtype=like.dtype, device=like.device) for _ in state_names)
    if len(state_names) == 1:
        hx = (hx,)
    elif not isinstance(hx, (tuple, list)) or len(hx) != len(state_names):
        raise ValueError(f"{layer} expected hx = ({', '.join(state_names)}), a tuple of "
                         f"{len(state_names)} tensors, got {type(hx).__name__}")
    for name, t in zip(state_names, hx):
        if tuple(t.shape) != shape:
            raise ValueError(f"{layer} expected {name} of shape {shape} {axes}, got {tuple(t.shape)}")
    return tuple(hx)


class CellBase(Module):
    """What the three cells share: parameters, input and state checks, and the call.

    A subclass sets `gates` (blocks of hidden_size rows in each weight), `state_names`
    (("h",), or ("h", "c") for the LSTM) and the static method
    `step(x, state, weight_ih, weight_hh, bias_ih, bias_hh) -> new state`, the formula.
    """

    gates, state_names = 1, ("h",)

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        check_sizes(type(self).__name__, input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gates * hidden_size
        self.weight_ih = new_parameter(hidden_size, rows, input_size)
        self.weight_hh = new_parameter(hidden_size, rows, hidden_size)
        self.bias_ih = new_parameter(hidden_size, rows) if bias else None
        self.bias_hh = new_parameter(hidden_size, rows) if bias else None

    def step_arguments(self):
        """What `step` takes after (x, state): the weights and biases (None without bias)."""
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def forward(self, input, hx=None):
        """input (batch, input_size) or (input_size,) unbatched; hx the state, zeros when None.
        Returns the new state: h', or (h', c') for the LSTM, shaped (batch, hidden_size) or (hidden_size,)."""
        name = type(self).__name__
        size = self.input_size
        check_input(name, input, (1, 2), size, f"(batch, {size}) or ({size},) unbatched")
        axes = "(batch, hidden_size)" if input.ndim == 2 else "(hidden_size,) for an unbatched input"
        shape = input.shape[:-1] + (self.hidden_size,)
        state = initial_state(name, hx, self.state_names, shape, input, axes)
        new = self.step(input, state, *self.step_arguments())
        return new if len(new) > 1 else new[0]

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(CellBase):
    """One step of the simple recurrent network, 000.rnn, h_t = f(W x_t + U h_{t-1} + b):

        h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)     (relu instead of tanh with nonlinearity='relu')

    W = weight_ih (hidden_size, input_size), U = weight_hh (hidden_size, hidden_size), and b is
    stored in two halves, bias_ih + bias_hh, as PyTorch does. forward(input, hx=None) -> h'.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh"):
        check_nonlinearity("RNNCell", nonlinearity)
        super().__init__(input_size, hidden_size, bias)
        self.nonlinearity = nonlinearity

    @staticmethod
    def step(x, state, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity):
        (h,) = state
        # 000.rnn: h_t = f(W x_t + U h_{t-1} + b)
        pre = affine(x, weight_ih, bias_ih) + affine(h, weight_hh, bias_hh)
        return (pre.tanh() if nonlinearity == "tanh" else pre.relu(),)

    def step_arguments(self):
        return super().step_arguments() + (self.nonlinearity,)


class LSTMCell(CellBase):
    """One step of the long short-term memory, 000.lstm:

        i = σ(W_ii x + b_ii + W_hi h + b_hi)       input gate
        f = σ(W_if x + b_if + W_hf h + b_hf)       forget gate
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)    candidate cell C̃
        o = σ(W_io x + b_io + W_ho h + b_ho)       output gate
        c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

    weight_ih (4·hidden_size, input_size) stacks W_ii, W_if, W_ig, W_io in PyTorch's gate order
    i, f, g, o; weight_hh (4·hidden_size, hidden_size) and the biases likewise.
    forward(input, (h, c)=None) -> (h', c').
    """

    gates, state_names = 4, ("h", "c")

    @staticmethod
    def step(x, state, weight_ih, weight_hh, bias_ih, bias_hh):
        h, c = state
        # every gate's W_x· x_t + b_x· + W_h· h_{t-1} + b_h· as one block, split in the order i, f, g, o
        pre = affine(x, weight_ih, bias_ih) + affine(h, weight_hh, bias_hh)
        pre_i, pre_f, pre_g, pre_o = pre.chunk(4, dim=-1)
        # i_t, f_t, o_t = σ(·);   C̃_t = g_t = tanh(·)
        i, f, g, o = pre_i.sigmoid(), pre_f.sigmoid(), pre_g.tanh(), pre_o.sigmoid()
        # C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t
        c = f * c + i * g
        # h_t = o_t ⊙ tanh(C_t)
        h = o * c.tanh()
        return h, c


class GRUCell(CellBase):
    """One step of the gated recurrent unit, 002.gru as corrected in SEEDS_GUIDE, in PyTorch's form:

        r = σ(W_ir x + b_ir + W_hr h + b_hr)             reset gate
        z = σ(W_iz x + b_iz + W_hz h + b_hz)             update gate
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))    candidate state h̃
        h' = (1 - z) ⊙ n + z ⊙ h

    PyTorch's update is the mirror image of 002.gru's corrected h_t = (1 − z_t)⊙h_{t−1} + z_t⊙h̃_t:
    here z weighs the old state and 1 − z the candidate, so PyTorch's z is 002.gru's 1 − z.
    PyTorch also resets after the product, r ⊙ (W_hn h + b_hn), where 002.gru writes W(r ⊙ h).
    weight_ih (3·hidden_size, input_size) stacks W_ir, W_iz, W_in in PyTorch's gate order r, z, n;
    weight_hh and the biases likewise. forward(input, hx=None) -> h'.
    """

    gates = 3

    @staticmethod
    def step(x, state, weight_ih, weight_hh, bias_ih, bias_hh):
        (h,) = state
        # the input and the hidden parts of the three gates, each split in the order r, z, n
        x_r, x_z, x_n = affine(x, weight_ih, bias_ih).chunk(3, dim=-1)
        h_r, h_z, h_n = affine(h, weight_hh, bias_hh).chunk(3, dim=-1)
        # r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr),   z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        # n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
        n = (x_n + r * h_n).tanh()
        # h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}
        return ((1 - z) * n + z * h,)


class RNNBase(Module):
    """What RNN, LSTM and GRU share: a stack of num_layers cells run over a whole sequence.

    Layer k reads the output sequence of layer k - 1 (the input, for k = 0); while training,
    dropout is applied to every layer's output but the last one's. A subclass sets `gates`,
    `state_names` and `step` (its cell's).
    """

    gates, state_names = 1, ("h",)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False):
        super().__init__()
        name = type(self).__name__
        check_sizes(name, input_size, hidden_size)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"{name}: num_layers must be an integer >= 1, got {num_layers!r}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be between 0 and 1, got {dropout}")
        if bidirectional:
            raise ValueError(f"{name}: bidirectional=True is not supported by tinylm; run a second {name} "
                             "over the reversed sequence and concatenate the two outputs instead")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between layers, so with num_layers=1 it does nothing")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, dropout, False
        rows = self.gates * hidden_size
        for k in range(num_layers):
            columns = input_size if k == 0 else hidden_size  # layer k > 0 reads layer k - 1's h_t
            setattr(self, f"weight_ih_l{k}", new_parameter(hidden_size, rows, columns))
            setattr(self, f"weight_hh_l{k}", new_parameter(hidden_size, rows, hidden_size))
            if bias:
                setattr(self, f"bias_ih_l{k}", new_parameter(hidden_size, rows))
                setattr(self, f"bias_hh_l{k}", new_parameter(hidden_size, rows))

    def step_arguments(self, k):
        """What `step` takes after (x, state) in layer k: its weights and biases (None without bias)."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return tuple(getattr(self, f"{name}_l{k}", None) for name in names)

    def forward(self, input, hx=None):
        """input (seq, batch, input_size) — (batch, seq, input_size) with batch_first=True — or
        (seq, input_size) unbatched; hx the initial state of every layer, zeros when None.

        Returns (output, h_n), or (output, (h_n, c_n)) for the LSTM: output holds the last layer's
        h_t at every step t, (seq, batch, hidden_size) (batch first with batch_first=True), and h_n,
        c_n the final state of every layer, (num_layers, batch, hidden_size). Unbatched input
        drops the batch axis everywhere.
        """
        name, batched = type(self).__name__, input.ndim == 3
        order = "(batch, seq" if self.batch_first else "(seq, batch"
        check_input(name, input, (2, 3), self.input_size, f"{order}, {self.input_size}) with "
                    f"batch_first={self.batch_first}, or (seq, {self.input_size}) unbatched")
        x = input.transpose(0, 1) if self.batch_first and batched else input  # (seq, [batch,] input_size)
        if x.shape[0] == 0:
            raise ValueError(f"{name}: the input sequence is empty (input of shape {tuple(input.shape)})")
        axes = ("(num_layers, batch, hidden_size)" if batched
                else "(num_layers, hidden_size) for an unbatched input")
        shape = (self.num_layers,) + x.shape[1:-1] + (self.hidden_size,)
        state = initial_state(name, hx, [s + "0" for s in self.state_names], shape, input, axes)

        finals = []
        for k in range(self.num_layers):
            layer_state = tuple(s[k] for s in state)  # (h0[k],) or (h0[k], c0[k])
            outputs = []
            for x_t in x:  # the input at time t, (batch, features)
                layer_state = self.step(x_t, layer_state, *self.step_arguments(k))
                outputs.append(layer_state[0])
            x = F.stack(outputs)  # this layer's h_t for every t: the next layer's input
            if k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, self.training)
            finals.append(layer_state)
        output = x.transpose(0, 1) if self.batch_first and batched else x
        final = tuple(F.stack([f[j] for f in finals]) for j in range(len(self.state_names)))
        return output, (final if len(final) > 1 else final[0])

    def extra_repr(self):
        options = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            options.append(f"num_layers={self.num_layers}")
        if not self.bias:
            options.append("bias=False")
        if self.batch_first:
            options.append("batch_first=True")
        if self.dropout:
            options.append(f"dropout={self.dropout}")
        return ", ".join(options)


class RNN(RNNBase):
    """The simple recurrent network, 000.rnn, h_t = f(W x_t + U h_{t-1} + b), over a sequence;
    for each layer k and step t (RNNCell.step):

        h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)     (relu with nonlinearity='relu')

    with W = weight_ih_l{k}, U = weight_hh_l{k}, b = bias_ih_l{k} + bias_hh_l{k}.
    RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False,
    dropout=0.0); forward(input, h0=None) -> (output, h_n).
    """

    step = staticmethod(RNNCell.step)

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False):
        check_nonlinearity("RNN", nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity

    def step_arguments(self, k):
        return super().step_arguments(k) + (self.nonlinearity,)

    def extra_repr(self):
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class LSTM(RNNBase):
    """The long short-term memory, 000.lstm, over a sequence; for each layer k and step t
    (LSTMCell.step):

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     (C̃_t)
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,   h_t = o_t ⊙ tanh(c_t)

    weight_ih_l{k} stacks W_ii, W_if, W_ig, W_io (PyTorch's gate order i, f, g, o); weight_hh_l{k}
    and the biases likewise. LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0); forward(input, (h0, c0)=None) -> (output, (h_n, c_n)).
    """

    gates, state_names = 4, ("h", "c")
    step = staticmethod(LSTMCell.step)


class GRU(RNNBase):
    """The gated recurrent unit, 002.gru as corrected in SEEDS_GUIDE, in PyTorch's form, over a
    sequence; for each layer k and step t (GRUCell.step):

        r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    PyTorch's update is the mirror image of 002.gru's corrected h_t = (1 − z_t)⊙h_{t−1} + z_t⊙h̃_t:
    here z_t weighs the old state and 1 − z_t the candidate n_t, so PyTorch's z_t is 002.gru's
    1 − z_t. PyTorch also resets after the product, r_t ⊙ (W_hn h_{t-1} + b_hn), where 002.gru
    writes W(r_t ⊙ h_{t-1}). weight_ih_l{k} stacks W_ir, W_iz, W_in (gate order r, z, n);
    weight_hh_l{k} and the biases likewise. GRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0); forward(input, h0=None) -> (output, h_n).
    """

    gates = 3
    step = staticmethod(GRUCell.step)
