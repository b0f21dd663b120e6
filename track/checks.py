"""The checks of the track: for each step, property tests (hypothesis) of your engine against tinylm.

Each check draws inputs (shapes, values, settings) with hypothesis, computes the same thing with
your engine and with tinylm in float64, and compares: shapes first, then values (the largest
absolute and relative error and the first element that differs). hypothesis runs derandomized
(the same examples every run) and, on a failure, shrinks it to a small example, shown below the
error. A step's check calls only that step's code and the earlier steps' (yours too).
"""
import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.autograd import unbroadcast as tinylm_unbroadcast
from tinylm.data import load_text
from tinylm.optim import Adam


# --- comparing ----------------------------------------------------------------------------------
def agree(what, got, expected, rtol=1e-7, atol=1e-9):
    """Raise an AssertionError naming `what` unless the arrays have one shape and agree within
    rtol/atol: the message gives the largest errors and the first element that differs."""
    if not isinstance(got, np.ndarray) and not np.isscalar(got):
        raise AssertionError(f"{what}: got a {type(got).__name__}, expected an array")
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"{what}: shape {got.shape}, expected {expected.shape}")
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        error = np.abs(got - expected)
        relative = error / np.maximum(np.abs(expected), atol)
        raise AssertionError(f"{what}: max abs error {np.nanmax(error):.3g}, max rel error {np.nanmax(relative):.3g}; "
                             f"first difference at {first}: got {got[first]:.9g}, expected {expected[first]:.9g}")


def summed_back(what, got, shape):
    """A gradient of the op's broadcast output shape summed back to the input's `shape`, as your
    backward() will do in step 3 (tinylm's unbroadcast here, so steps 1 and 2 don't need yours)."""
    try:
        return tinylm_unbroadcast(got, shape)
    except TypeError:
        raise AssertionError(f"{what}: shape {got.shape}, expected {shape} or the op's broadcast output shape") from None


def tensors(engine, arrays):
    """Each array as a Tensor of your engine and of tinylm, both requiring grad."""
    return ([engine.Tensor(a.copy(), requires_grad=True) for a in arrays],
            [tinylm.Tensor(a.copy(), requires_grad=True) for a in arrays])


def gradient_of(what, tensor):
    """tensor.grad of your engine as an array (an AssertionError naming `what` if it is missing)."""
    if tensor.grad is None:
        raise AssertionError(f"{what}: .grad is None after backward()")
    return tensor.grad.data


def op_gradients(engine, name, output, g, count):
    """Your op's backward(g) called on the node that made `output`: one array per input."""
    if output.grad_fn is None:
        raise AssertionError(f"{name}.apply gave a tensor without grad_fn from inputs that require grad")
    with engine.no_grad():
        grads = output.grad_fn.backward(engine.Tensor(g))
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != count:
        raise AssertionError(f"{name}.backward returned {len(grads)} gradients for {count} inputs")
    for i, gi in enumerate(grads):
        if not isinstance(gi, engine.Tensor):
            raise AssertionError(f"{name}.backward returned a {type(gi).__name__} for input {i}: return a Tensor")
    return [gi.data for gi in grads]


@contextlib.contextmanager
def float64_tinylm():
    """tinylm layers built inside have float64 parameters."""
    before = tinylm.get_default_dtype()
    tinylm.set_default_dtype(np.float64)
    try:
        yield
    finally:
        tinylm.set_default_dtype(before)


def numba_compiled(what, function):
    if not hasattr(function, "py_func"):
        raise AssertionError(f"{what} is not compiled by Numba: decorate it with @njit")


# --- hypothesis strategies --------------------------------------------------------------------
def _st():
    from hypothesis import strategies as st

    return st


def shapes(min_dims=0, max_dims=3, max_side=4):
    st = _st()
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def squashed(out):
    """Shapes that broadcast to the shape `out`: some leading axes dropped, some sides set to 1."""
    st = _st()

    @st.composite
    def shape(draw):
        cut = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else side for side in out[cut:])

    return shape()


def broadcast_pairs(min_dims=0, max_dims=3):
    """(output shape, input shape) pairs: the input broadcasts to the output."""
    return shapes(min_dims, max_dims).flatmap(lambda out: _st().tuples(_st().just(out), squashed(out)))


def seeds():
    return _st().integers(0, 2 ** 32 - 1)


# --- the steps --------------------------------------------------------------------------------
ELEMENTWISE = {  # name: (number of inputs, tinylm's function, low, high), in the order of ops.py
    "Add": (2, lambda a, b: a + b, -3, 3), "Mul": (2, lambda a, b: a * b, -3, 3), "Neg": (1, lambda a: -a, -3, 3),
    "Pow": (1, None, 0.2, 2), "Exp": (1, lambda a: a.exp(), -3, 3), "Log": (1, lambda a: a.log(), 0.1, 3),
    "Tanh": (1, lambda a: a.tanh(), -3, 3), "Gelu": (1, F.gelu, -3, 3),
}


def step1(engine, given, st):
    """Each elementwise op's forward and backward (its vector-Jacobian product for a random g)."""

    def elementwise(name):
        count, function, low, high = ELEMENTWISE[name]

        @given(st.data(), seeds(), st.sampled_from([2.0, 3.0, -1.0, 0.5, -1.5]))
        def forward_backward(data, seed, exponent):
            out_shape, other = data.draw(broadcast_pairs())
            rng = np.random.default_rng(seed)
            arrays = [rng.uniform(low, high, s) for s in ([out_shape, other] if count == 2 else [out_shape])]
            ours, theirs = tensors(engine, arrays)
            options = {"exponent": exponent} if name == "Pow" else {}
            y = getattr(engine.ops, name).apply(*ours, **options)
            expected = theirs[0] ** exponent if name == "Pow" else function(*theirs)
            agree(f"{name} forward", y.data, expected.numpy())
            g = rng.normal(size=expected.shape)
            expected.backward(tinylm.Tensor(g))
            for i, (got, x) in enumerate(zip(op_gradients(engine, name, y, g, count), theirs)):
                what = f"{name} backward, dL/d(input {i})"
                agree(what, summed_back(what, got, x.shape), x.grad.numpy())

        forward_backward()

    for name in ELEMENTWISE:
        elementwise(name)


def step2(engine, given, st):
    """MatMul (batch axes broadcast), Sum, Reshape, Transpose and Index: forward and backward."""

    def run(name, arrays, ours_fn, theirs_fn, rng):
        ours, theirs = tensors(engine, arrays)
        y, expected = ours_fn(*ours), theirs_fn(*theirs)
        agree(f"{name} forward", y.data, expected.numpy())
        g = rng.normal(size=expected.shape)
        expected.backward(tinylm.Tensor(g))
        for i, (got, x) in enumerate(zip(op_gradients(engine, name, y, g, len(arrays)), theirs)):
            what = f"{name} backward, dL/d(input {i})"
            agree(what, summed_back(what, got, x.shape) if name == "MatMul" else got, x.grad.numpy())

    ops = engine.ops

    @given(seeds(), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.data())
    def matmul(seed, n, k, m, data):
        batch_a, batch_b = data.draw(broadcast_pairs(0, 2))
        if data.draw(st.booleans()):
            batch_a, batch_b = batch_b, batch_a
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=batch_a + (n, k)), rng.normal(size=batch_b + (k, m))
        run("MatMul", [a, b], lambda a, b: ops.MatMul.apply(a, b), lambda a, b: a @ b, rng)

    @given(seeds(), shapes(1, 3), st.data(), st.booleans())
    def total(seed, shape, data, keepdims):
        axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
        rng = np.random.default_rng(seed)
        run(f"Sum over axes {axes}", [rng.normal(size=shape)], lambda a: ops.Sum.apply(a, axis=axes, keepdims=keepdims),
            lambda a: a.sum(dim=axes, keepdim=keepdims), rng)

    @given(seeds(), shapes(1, 3), st.data())
    def reshape_transpose(seed, shape, data):
        rng = np.random.default_rng(seed)
        target = data.draw(st.sampled_from([(-1,), shape[::-1], (1,) + shape, (int(np.prod(shape)), 1)]))
        run(f"Reshape to {target}", [rng.normal(size=shape)], lambda a: ops.Reshape.apply(a, shape=target),
            lambda a: a.reshape(target), rng)
        for axes, array in ((tuple(data.draw(st.permutations(range(len(shape))))), rng.normal(size=shape)),
                            ((1, 2, 0), rng.normal(size=(2, 3, 4)))):  # a permutation that is not its own inverse
            run(f"Transpose by {axes}", [array], lambda a: ops.Transpose.apply(a, axes=axes),
                lambda a: a.permute(axes), rng)

    @given(seeds(), st.integers(1, 5), st.integers(1, 4), shapes(1, 2, 6), st.integers(0, 3))
    def index(seed, rows, cols, id_shape, start):
        rng = np.random.default_rng(seed)
        ids = rng.integers(0, rows, size=id_shape)  # repeats: a row picked twice gets both gradients
        run(f"Index by ids of shape {id_shape}", [rng.normal(size=(rows, cols))],
            lambda a: ops.Index.apply(a, index=ids), lambda a: F.embedding(ids, a), rng)
        columns = slice(min(start, cols - 1), cols)
        run(f"Index by [:, {columns.start}:]", [rng.normal(size=(rows, cols))],
            lambda a: ops.Index.apply(a, index=(slice(None), columns)), lambda a: a[:, columns], rng)

    for check in (matmul, total, reshape_transpose, index):
        check()


def step3(engine, given, st):
    """unbroadcast(grad, shape) against tinylm's, for random shapes that broadcast."""

    @given(st.data(), seeds())
    def sums_back(data, seed):
        out_shape, shape = data.draw(broadcast_pairs())
        grad = np.random.default_rng(seed).normal(size=out_shape)
        got = engine.unbroadcast(grad.copy(), shape)
        agree(f"unbroadcast of a {out_shape} gradient to {shape}", got, tinylm_unbroadcast(grad, shape))

    sums_back()


def _random_graph(engine, data, st):
    """The same random computation in your engine and in tinylm: leaves of shapes that broadcast
    together (one a constant), then ops on random earlier results, so some are used twice."""
    out_shape = data.draw(shapes(1, 3, 3))
    leaf_shapes = [out_shape] + [data.draw(squashed(out_shape)) for _ in range(2)]
    rng = np.random.default_rng(data.draw(seeds()))
    arrays = [rng.uniform(-1, 1, s) for s in leaf_shapes]
    ours, theirs = tensors(engine, arrays)
    ours[2].requires_grad, theirs[2].requires_grad = False, False
    nodes = [list(pair) for pair in zip(ours, theirs)]
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["add", "mul", "sub", "tanh", "square", "sum", "exp"]))
        a = nodes[data.draw(st.integers(0, len(nodes) - 1))]
        b = nodes[data.draw(st.integers(0, len(nodes) - 1))]
        kind = "tanh" if kind == "sum" and a[0].ndim == 0 else kind
        new = []
        for x, y in zip(a, b):
            new.append({"add": lambda: x + y, "mul": lambda: x * y, "sub": lambda: x - y, "tanh": lambda: x.tanh(),
                        "square": lambda: x ** 2, "exp": lambda: (x * 0.5).exp(),
                        "sum": lambda: x.sum(-1, keepdims=True) if isinstance(x, engine.Tensor)
                        else x.sum(-1, keepdim=True)}[kind]())
        nodes.append(new)
    weights = rng.normal(size=(len(nodes),))
    loss_ours = sum((node[0] * float(w)).sum() for node, w in zip(nodes, weights) if node[0].requires_grad)
    loss_theirs = sum((node[1] * float(w)).sum() for node, w in zip(nodes, weights) if node[1].requires_grad)
    return ours, theirs, loss_ours, loss_theirs


def step4(engine, given, st):
    """topological_order's properties; backward() on random graphs (shared inputs, broadcasting,
    a constant) against tinylm; gradients add up over two backward calls; a 3000-op chain."""

    @given(st.data())
    def order(data):
        _, _, loss, _ = _random_graph(engine, data, st)
        got = engine.topological_order(loss)
        ids = [id(t) for t in got]
        if not got or got[0] is not loss:
            raise AssertionError("topological_order: the root must come first")
        if len(set(ids)) != len(ids):
            raise AssertionError("topological_order: a tensor appears twice")
        reachable, stack = {id(loss)}, [loss]
        while stack:
            node = stack.pop()
            for x in (node.grad_fn.inputs if node.grad_fn else ()):
                if x.requires_grad and id(x) not in reachable:
                    reachable.add(id(x))
                    stack.append(x)
        if set(ids) != reachable:
            raise AssertionError(f"topological_order: {len(ids)} tensors, expected the {len(reachable)} that require "
                                 "grad and that the root was computed from")
        position = {i: n for n, i in enumerate(ids)}
        for node in got:
            for x in (node.grad_fn.inputs if node.grad_fn else ()):
                if x.requires_grad and position[id(x)] < position[id(node)]:
                    raise AssertionError("topological_order: a tensor comes before the tensor computed from it")

    @given(st.data())
    def gradients(data):
        ours, theirs, loss_ours, loss_theirs = _random_graph(engine, data, st)
        agree("the loss", loss_ours.data, loss_theirs.numpy())
        loss_ours.backward()
        loss_theirs.backward()
        for i in (0, 1):
            agree(f"leaf {i} (shape {theirs[i].shape}): its .grad", gradient_of(f"leaf {i}", ours[i]),
                  theirs[i].grad.numpy())
        if ours[2].grad is not None:
            raise AssertionError("a tensor with requires_grad=False got a .grad")

    gradients()
    order()
    x = engine.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    for _ in range(2):
        (x * x).sum().backward()
    agree("x.grad after two backward() calls of Σx² (they add up, as in PyTorch)", gradient_of("x", x), 4 * x.data)
    y = engine.Tensor(np.array(1.0), requires_grad=True)
    out = y
    for _ in range(3000):
        out = out * 1.0001
    out.backward()
    agree("the gradient through a chain of 3000 ops", gradient_of("y", y), 1.0001 ** 3000, rtol=1e-9)


def step5(engine, given, st):
    """softmax_rows against tinylm's softmax (large values, masked −inf entries, float32 and
    float64); the Softmax op's gradient through your backward()."""
    numba_compiled("kernels.softmax_rows", engine.kernels.softmax_rows)

    @given(seeds(), st.integers(1, 5), st.integers(1, 9), st.sampled_from([1.0, 30.0, 1000.0]),
           st.sampled_from([np.float64, np.float32]), st.booleans())
    def kernel(seed, rows, cols, scale, dtype, masked):
        rng = np.random.default_rng(seed)
        x = (rng.normal(size=(rows, cols)) * scale).astype(dtype)
        if masked and cols > 1:
            x[rng.random((rows, cols)) < 0.4] = -np.inf
            x[:, 0] = np.where(np.isinf(x[:, 0]), 0.0, x[:, 0])  # one finite value per row
        got = engine.kernels.softmax_rows(x)
        if got.dtype != dtype:
            raise AssertionError(f"softmax_rows of a {np.dtype(dtype).name} array gave {got.dtype}: keep the dtype")
        tolerance = 1e-5 if dtype == np.float32 else 1e-12
        agree(f"softmax_rows of a ({rows}, {cols}) {np.dtype(dtype).name} array (values up to {scale:g})", got,
              F.softmax(tinylm.Tensor(x.astype(np.float64))).numpy(), rtol=tolerance, atol=tolerance)

    @given(seeds(), shapes(1, 3))
    def gradient(seed, shape):
        rng = np.random.default_rng(seed)
        (a,), (b,) = tensors(engine, [rng.normal(size=shape)])
        g = rng.normal(size=shape)
        y = a.softmax()
        agree("Softmax forward", y.data, F.softmax(b).numpy())
        (y * g).sum().backward()
        (F.softmax(b) * tinylm.Tensor(g)).sum().backward()
        agree("Softmax backward: dL/da", gradient_of("a", a), b.grad.numpy())

    kernel()
    gradient()


def step6(engine, given, st):
    """matmul_tiled against tinylm's matmul for sizes on both sides of TILE, float32 and float64."""
    numba_compiled("kernels.matmul_tiled", engine.kernels.matmul_tiled)
    tile = engine.kernels.TILE

    @given(seeds(), st.integers(1, 2 * tile + 3), st.integers(1, 2 * tile + 3), st.integers(1, 2 * tile + 3),
           st.sampled_from([np.float64, np.float32]))
    def product(seed, n, k, m, dtype):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(n, k)).astype(dtype), rng.normal(size=(k, m)).astype(dtype)
        got = engine.kernels.matmul_tiled(a, b)
        if got.dtype != dtype:
            raise AssertionError(f"matmul_tiled of {np.dtype(dtype).name} arrays gave {got.dtype}: keep the dtype")
        tolerance = 1e-4 if dtype == np.float32 else 1e-12
        expected = (tinylm.Tensor(a.astype(np.float64)) @ tinylm.Tensor(b.astype(np.float64))).numpy()
        agree(f"matmul_tiled of ({n}, {k}) @ ({k}, {m}) {np.dtype(dtype).name}", got, expected,
              rtol=tolerance, atol=tolerance * math.sqrt(k))

    product()


def step7(engine, given, st):
    """Adam against tinylm.optim.Adam: the parameters after each of a few steps on a quadratic
    loss, its gradient from your backward()."""

    @given(seeds(), st.lists(shapes(0, 2), min_size=1, max_size=3), st.sampled_from([1e-3, 1e-2, 0.1]),
           st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]), st.sampled_from([1e-8, 1e-3]),
           st.sampled_from([0.0, 0.1]), st.integers(1, 5))
    def steps(seed, param_shapes, lr, betas, eps, weight_decay, count):
        rng = np.random.default_rng(seed)
        ours, theirs = tensors(engine, [rng.normal(size=s) for s in param_shapes])
        targets = [rng.normal(size=s) for s in param_shapes]
        mine = engine.optim.Adam(ours, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        reference = Adam(theirs, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        for step in range(1, count + 1):
            for params, optimizer in ((ours, mine), (theirs, reference)):
                optimizer.zero_grad()
                sum(((p - t) ** 2 * (i + 1.0)).sum() for i, (p, t) in enumerate(zip(params, targets))).backward()
                optimizer.step()
            for i, (a, b) in enumerate(zip(ours, theirs)):
                agree(f"parameter {i} after step {step} (lr={lr}, betas={betas}, eps={eps}, "
                      f"weight_decay={weight_decay})", a.data, b.numpy(), rtol=1e-9, atol=1e-12)

    steps()


def step8(engine, given, st):
    """The LSTM op's output and its gradients (x and every weight) through your backward(),
    against tinylm.nn.LSTM with the same weights."""

    @given(seeds(), st.integers(1, 6), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4))
    def bptt(seed, steps, batch, n_in, hidden):
        rng = np.random.default_rng(seed)
        with float64_tinylm():
            layer = tinylm.nn.LSTM(n_in, hidden)
        names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        params = dict(layer.named_parameters())
        x = rng.normal(size=(steps, batch, n_in))
        ours, _ = tensors(engine, [x] + [params[n].numpy() for n in names])
        xt = tinylm.Tensor(x.copy(), requires_grad=True)
        out = engine.lstm.LSTM.apply(*ours)
        expected = layer(xt)[0]
        agree("LSTM output h_1..h_T", out.data, expected.numpy())
        g = rng.normal(size=expected.shape)
        (out * g).sum().backward()
        (expected * tinylm.Tensor(g)).sum().backward()
        for name, mine, theirs in zip(["x"] + names, ours, [xt] + [params[n] for n in names]):
            agree(f"LSTM dL/d{name} (T={steps}, B={batch}, I={n_in}, H={hidden})", gradient_of(name, mine),
                  theirs.grad.numpy())

    bptt()


def step9(engine, given, st):
    """The Attention op (causal or not) and dL/dQ, dL/dK, dL/dV through your backward(), against
    tinylm's scaled_dot_product_attention."""

    @given(seeds(), st.integers(1, 2), st.integers(1, 2), st.integers(1, 6), st.integers(1, 5), st.booleans())
    def attention(seed, batch, heads, length, size, causal):
        rng = np.random.default_rng(seed)
        arrays = [rng.normal(size=(batch, heads, length, size)) for _ in range(3)]
        ours, theirs = tensors(engine, arrays)
        out = engine.attention.Attention.apply(*ours, causal=causal)
        expected = F.scaled_dot_product_attention(*theirs, is_causal=causal)
        what = f"(B={batch}, heads={heads}, T={length}, d={size}, causal={causal})"
        agree(f"attention output {what}", out.data, expected.numpy())
        g = rng.normal(size=expected.shape)
        (out * g).sum().backward()
        (expected * tinylm.Tensor(g)).sum().backward()
        for name, mine, reference in zip("QKV", ours, theirs):
            agree(f"attention dL/d{name} {what}", gradient_of(name, mine), reference.grad.numpy())

    attention()


TRAIN_TEXT_CHARS = 20000  # of tinylm's embedded corpus, for the training run of step 10


def step10(engine, given, st):
    """Your GPT against tinylm's GPT with the same weights (logits, loss, every gradient), your
    train() against the same steps with tinylm's Adam, then a real run: the loss must fall."""
    from tinylm.models.gpt import GPT, GPTConfig

    gpt = engine.gpt

    @given(seeds(), st.integers(1, 8), st.integers(1, 3), most=4)
    def same_model(seed, length, batch):
        rng = np.random.default_rng(seed)
        config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)
        with float64_tinylm():
            tinylm.manual_seed(seed % 1000)
            reference = GPT(config)
        mine = gpt.GPT(11, block_size=8, n_layer=2, n_head=2, n_embd=16)
        mine.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
        idx, targets = rng.integers(0, 11, size=(batch, length)), rng.integers(0, 11, size=(batch, length))
        logits, loss = mine(idx, targets)
        expected_logits, expected_loss = reference(tinylm.Tensor(idx), tinylm.Tensor(targets))
        agree("GPT logits", logits.data, expected_logits.numpy())
        agree("GPT loss (your cross_entropy)", loss.data, expected_loss.numpy())
        loss.backward()
        expected_loss.backward()
        theirs = dict(reference.named_parameters())
        for name, p in mine.named_parameters():
            agree(f"GPT dL/d({name})", gradient_of(name, p), theirs[name].grad.numpy())

    same_model()

    ids = np.random.default_rng(0).integers(0, 11, size=200)
    with float64_tinylm():
        tinylm.manual_seed(0)
        reference = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    mine = gpt.GPT(11, block_size=8, n_layer=1, n_head=2, n_embd=16)
    mine.load_state_dict({k: v.numpy() for k, v in reference.state_dict().items()})
    losses = gpt.train(mine, ids, steps=5, batch_size=4, lr=1e-2, seed=0)
    rng, optimizer, expected = np.random.default_rng(0), Adam(reference.parameters(), lr=1e-2), []
    for _ in range(5):
        x, y = gpt.get_batch(ids, 4, 8, rng)
        _, loss = reference(tinylm.Tensor(x), tinylm.Tensor(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    agree("the losses of train()'s first 5 steps (tinylm: the same batches and Adam)", np.array(losses),
          np.array(expected), rtol=1e-9)

    text = load_text()[:TRAIN_TEXT_CHARS]
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    model, start = gpt.GPT(len(chars)), time.perf_counter()
    losses = gpt.train(model, ids)
    first, last = losses[0], float(np.mean(losses[-10:]))
    if not last < first - 1.0:
        raise AssertionError(f"training: loss {first:.3f} -> {last:.3f} (mean of the last 10 steps) in {len(losses)} "
                             "steps; expected it to fall by more than 1")
    return (f"your GPT ({sum(p.data.size for p in model.parameters()):,} parameters) trained on "
            f"{len(text):,} characters: loss {first:.2f} -> {last:.2f} in {len(losses)} steps, "
            f"{time.perf_counter() - start:.1f}s")


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    where: str
    check: object


STEPS = [
    Step(1, "elementwise ops: forward and backward", "ops.py: Add, Mul, Neg, Pow, Exp, Log, Tanh, Gelu", step1),
    Step(2, "matrix and shape ops", "ops.py: MatMul, Sum, Reshape, Transpose, Index", step2),
    Step(3, "undoing broadcasting", "tensor.py: unbroadcast", step3),
    Step(4, "topological order and the backward pass", "tensor.py: topological_order, backward", step4),
    Step(5, "a softmax kernel in Numba, softmax's backward", "kernels.py: softmax_rows; ops.py: Softmax.backward",
         step5),
    Step(6, "a tiled matmul kernel in Numba", "kernels.py: matmul_tiled", step6),
    Step(7, "an Adam step", "optim.py: Adam.step", step7),
    Step(8, "LSTM: back-propagation through time", "lstm.py: LSTM.backward", step8),
    Step(9, "attention's backward", "attention.py: Attention.backward", step9),
    Step(10, "a small GPT trained on your engine", "gpt.py: CrossEntropy, train", step10),
]


@dataclass
class StepResult:
    step: Step
    passed: bool
    detail: str
    seconds: float


def run_step(engine, step, examples=25):
    """Run one step's check on `engine` (your package); a StepResult with what failed, if anything."""
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st
    except ImportError:
        raise RuntimeError('the track\'s checks need hypothesis: pip install "tinylm[track]"') from None
    profile = settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=False,
                       report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                       phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])

    def given_here(*strategies, most=examples):
        """hypothesis's given, except that a part not written yet stops the test at once (no shrinking)."""
        def decorate(test):
            missing = []

            @functools.wraps(test)
            def body(*args, **kwargs):
                if not missing:
                    try:
                        test(*args, **kwargs)
                    except NotImplementedError as e:
                        missing.append(e)

            run = settings(profile, max_examples=min(most, examples))(given(*strategies)(body))

            def checked():
                run()
                if missing:
                    raise missing[0]
            return checked
        return decorate

    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            note = step.check(engine, given_here, st)
        return StepResult(step, True, note or "", time.perf_counter() - start)
    except Exception as e:  # the learner's code may fail in any way: report it
        error = e
    while isinstance(getattr(error, "exceptions", None), tuple):  # hypothesis found several failures: the first
        error = error.exceptions[0]
    if isinstance(error, NotImplementedError):
        return StepResult(step, False, f"not written yet: {error}", time.perf_counter() - start)
    detail = str(error) if isinstance(error, AssertionError) else f"{type(error).__name__}: {error}"
    notes = getattr(error, "__notes__", [])  # hypothesis's smallest failing example
    return StepResult(step, False, "\n".join([detail, *notes]), time.perf_counter() - start)
