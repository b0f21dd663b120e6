"""Causal self-attention without the T×T weights (flash attention): the tiling, shared by the
"numba" set (tinylm.kernels.numba_cpu.attention) and the "cupy" set (tinylm.kernels.cupy_gpu),
which bring their own kernel for the element-wise work of a tile.

    y_i = sum_{j <= i} p_ij v_j,   p_ij = e^(s_ij - lse_i),   s_ij = scale q_i·k_j,
    lse_i = log sum_{j <= i} e^(s_ij)                                as reference.causal_attention

The queries and keys are cut into blocks of `block`, and the work goes one tile at a time: a
block of queries I against a block of keys J <= I (the later keys are all in every query's
future), every head at once. So the memory it needs is a tile of scores per head, whatever T
is. A tile's matrix products are products of all the heads together (xp.matmul: BLAS on the
CPU, cuBLAS on a GPU); the rest of a tile is one kernel of the set, over the heads and the
tile's rows:

forward, the online softmax: each query row keeps a running maximum m, a running sum
l = sum_j e^(s_j - m) and a running output acc = sum_j e^(s_j - m) v_j; a key block that
raises the maximum from m to m' first rescales l and acc by e^(m - m'):
    S = Q_I K_Jᵀ;  softmax_tile(S, ...): scale, mask the future, m' = max(m, max_j scale S),
    S <- P = e^(scale S - m'), r = e^(m - m'), l <- r l + sum_j P;   acc <- r acc + P V_J.
At the end y = acc / l and lse = m + log l, kept for the backward with y.

backward: the weights are recomputed tile by tile from lse, never stored:
    S = Q_I K_Jᵀ,  dP = gy_I V_Jᵀ;  grad_tile(S, dP, ...): S <- P = e^(scale S - lse_I) (0 in
    the future), dP <- dS = scale P (dP - D_I),  D_i = gy_i·y_i (the softmax backward, 001.softmax);
    dQ_I += dS K_J,   dK_J += dSᵀ Q_I,   dV_J += Pᵀ gy_I.
"""
from .reference import xp_of


def _blocks(t, block):
    return [(start, min(start + block, t)) for start in range(0, t, block)]


def forward(q, k, v, scale, softmax_tile, block):
    """y (..., T, dv) and lse (..., T) from q, k (..., T, d) and v (..., T, dv) of one float dtype,
    in any layout xp.matmul takes (strided views included); scale of that dtype. The heads are
    the leading axes; a tile's arrays, made here, are contiguous, and the kernel sees them with
    the heads as one axis: softmax_tile(s (heads, rows, keys), scale, i0, j0, m, total, rescale)."""
    xp = xp_of(q)
    lead, t = q.shape[:-2], q.shape[-2]
    kt = xp.swapaxes(k, -1, -2)
    y = xp.empty(lead + (t, v.shape[-1]), q.dtype)
    lse = xp.empty(lead + (t,), q.dtype)
    for i0, i1 in _blocks(t, block):
        m = xp.full(lead + (i1 - i0,), -xp.inf, q.dtype)
        total = xp.zeros_like(m)
        rescale = xp.empty_like(m)
        for j0, j1 in _blocks(i1, block):  # the key blocks up to this query block's last query
            s = _product(xp, q[..., i0:i1, :], kt[..., j0:j1])
            softmax_tile(_heads(s, 2), scale, i0, j0, _heads(m, 1), _heads(total, 1), _heads(rescale, 1))
            if j0 == 0:  # nothing to rescale yet
                acc = xp.matmul(s, v[..., j0:j1, :])
            else:
                acc *= rescale[..., None]
                acc += xp.matmul(s, v[..., j0:j1, :])
        y[..., i0:i1, :] = acc / total[..., None]
        lse[..., i0:i1] = m + xp.log(total)
    return y, lse


def backward(q, k, v, y, lse, gy, scale, grad_tile, block):
    """(dq, dk, dv) from the forward's inputs, y and lse, and gy (layouts as forward's);
    grad_tile(s, dp, i0, j0, lse, big_d, scale), s and dp (heads, rows, keys), lse and big_d the
    tile's rows (heads, rows)."""
    xp = xp_of(q)
    t = q.shape[-2]
    big_d = (gy * y).sum(axis=-1)  # D_i = gy_i·y_i
    kt, vt = xp.swapaxes(k, -1, -2), xp.swapaxes(v, -1, -2)
    dq, dk, dv = xp.zeros(q.shape, q.dtype), xp.zeros(k.shape, q.dtype), xp.zeros(v.shape, q.dtype)
    for i0, i1 in _blocks(t, block):
        rows_lse, rows_d = _heads(lse[..., i0:i1], 1), _heads(big_d[..., i0:i1], 1)
        for j0, j1 in _blocks(i1, block):
            s = _product(xp, q[..., i0:i1, :], kt[..., j0:j1])
            dp = _product(xp, gy[..., i0:i1, :], vt[..., j0:j1])
            grad_tile(_heads(s, 2), _heads(dp, 2), i0, j0, rows_lse, rows_d, scale)  # s: P, dp: dS
            dv[..., j0:j1, :] += xp.matmul(xp.swapaxes(s, -1, -2), gy[..., i0:i1, :])
            dq[..., i0:i1, :] += xp.matmul(dp, k[..., j0:j1, :])
            dk[..., j0:j1, :] += xp.matmul(xp.swapaxes(dp, -1, -2), q[..., i0:i1, :])
    return dq, dk, dv


def _product(xp, a, b):
    """a @ b (the same leading axes) into a new C-contiguous array, which the tile kernels see
    through a reshaped view: matmul's own result may lay its leading axes out as its inputs'
    (a transposed q gives a transposed s), and reshaping that would copy it."""
    return xp.matmul(a, b, out=xp.empty(a.shape[:-1] + b.shape[-1:], a.dtype))


def _heads(x, axes):
    """x with its leading axes merged into one, the heads, and its last `axes` axes kept: a view
    of the contiguous arrays made here (which the tile kernels write into), a small copy of a
    slice of lse or D (which they only read)."""
    return x.reshape((-1,) + x.shape[x.ndim - axes:])
