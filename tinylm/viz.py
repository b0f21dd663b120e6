"""Pictures of what the engine did: the computation graph as Graphviz DOT, the loss curve as SVG.

draw_graph walks back from a tensor through the grad_fn records, so call it before
backward() (or after backward(retain_graph=True)): a plain backward frees the graph.
"""
import os
import shutil
import subprocess

import numpy as np

SMALL = 12  # tensors with at most this many elements show their values (and grads)


def _fmt(array):
    return np.array2string(np.asarray(array), precision=3, separator=",", suppress_small=True).replace("\n", "")


def _tensor_label(t):
    name = t.name or ("param" if t.is_leaf and t.requires_grad else "tensor" if t.is_leaf else "")
    lines = [f"{name} {tuple(t.shape)} {t.dtype}".strip()]
    if t.data.size <= SMALL:
        lines.append("data " + _fmt(t.numpy()))
        if t.grad is not None:
            lines.append("grad " + _fmt(t.grad.numpy()))
    return "\\n".join(line.replace('"', "'") for line in lines)


def to_dot(root):
    """The graph that produced `root` as DOT text: boxes are tensors, ellipses are ops."""
    lines = ["digraph tinylm {", "  rankdir=LR;", '  node [fontname="monospace", fontsize=10];']
    seen, stack = set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        style = ', style=filled, fillcolor="#dbe9f6"' if t.is_leaf and t.requires_grad else ""
        lines.append(f'  t{id(t)} [shape=box, label="{_tensor_label(t)}"{style}];')
        fn = t.grad_fn
        if fn is None:
            continue
        lines.append(f'  f{id(fn)} [shape=ellipse, label="{fn.name}"];')
        lines.append(f"  f{id(fn)} -> t{id(t)};")
        if fn.freed:
            lines.append(f'  freed{id(fn)} [shape=plaintext, label="(graph freed by backward)"];')
            lines.append(f"  freed{id(fn)} -> f{id(fn)};")
        for x in fn.inputs:
            lines.append(f"  t{id(x)} -> f{id(fn)};")
            stack.append(x)
    lines.append("}")
    return "\n".join(lines)


def draw_graph(tensor, path=None):
    """The computation graph of `tensor` as DOT text; written to `path` when given.

    path ending in .dot gets the text; .svg or .png is rendered with Graphviz's `dot`
    program (the DOT text is then also kept beside it as path + '.dot').
    """
    dot = to_dot(tensor)
    if path is None:
        return dot
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in ("dot", "gv", "svg", "png", "pdf"):
        raise ValueError(f"draw_graph: cannot write {path!r}: expected a .dot, .svg, .png or .pdf path")
    target = path if fmt in ("dot", "gv") else path + ".dot"
    with open(target, "w", encoding="utf-8") as f:
        f.write(dot + "\n")
    if target != path:
        if shutil.which("dot") is None:
            raise RuntimeError(f"draw_graph: rendering {fmt.upper()} needs Graphviz's `dot` program "
                               f"(e.g. apt-get install graphviz); the DOT text is in {target}")
        subprocess.run(["dot", f"-T{fmt}", target, "-o", path], check=True, capture_output=True)
    return dot


def attention_heatmap(weights, tokens, path, title=None):
    """Draw attention weights as a heatmap PNG at `path` and return the path.

    weights (L, S), an array or Tensor: row i holds how much query token i attends to each key
    token j (each row of a softmax sums to 1). tokens labels both axes: one list when queries
    and keys are the same sequence (self-attention), or a pair (query_tokens, key_tokens).
    Needs matplotlib (pip install "tinylm[plot]"); it draws off-screen (the Agg canvas). Chinese
    tokens need a font with their glyphs in matplotlib's settings, e.g.
    matplotlib.rcParams["font.sans-serif"].insert(0, "Noto Sans CJK SC"); else they show as boxes.
    """
    w = np.asarray(weights.detach().numpy() if hasattr(weights, "detach") else weights, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"attention_heatmap: expected weights of shape (L, S), got {w.shape}")
    pair = len(tokens) == 2 and all(isinstance(t, (list, tuple)) for t in tokens)
    query_tokens, key_tokens = (list(tokens[0]), list(tokens[1])) if pair else (list(tokens), list(tokens))
    if (len(query_tokens), len(key_tokens)) != w.shape:
        raise ValueError(f"attention_heatmap: {len(query_tokens)} query and {len(key_tokens)} key tokens for "
                         f"weights of shape {w.shape}: expected {w.shape[0]} and {w.shape[1]}")
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        raise ValueError(f"attention_heatmap: cannot write {path!r}: expected a .png path")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise RuntimeError('attention_heatmap needs matplotlib: pip install "tinylm[plot]"') from None

    rows, cols = w.shape
    fig = Figure(figsize=(max(3.0, 0.45 * cols + 2.0), max(2.5, 0.45 * rows + 1.5)))
    FigureCanvasAgg(fig)  # draw into memory, never a window
    ax = fig.add_subplot()
    image = ax.imshow(w, cmap="Blues", vmin=0.0, aspect="auto")
    ax.set_xticks(range(cols), labels=[str(t) for t in key_tokens], rotation=90)
    ax.set_yticks(range(rows), labels=[str(t) for t in query_tokens])
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, label="attention weight")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def loss_curve_svg(rows, path, width=640, height=360):
    """The training and validation losses of metrics.jsonl rows as an SVG line chart, written with
    no plotting library (any browser shows it): train_loss of the training rows, val_loss of the
    evaluation rows, against the step. Returns path, or None when there is nothing to draw."""
    from .files import atomic_write

    series = {"train": [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r and "val_loss" not in r],
              "val": [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]}
    points = [p for line in series.values() for p in line]
    if not points:
        return None
    left, right, top, bottom = 60, 20, 20, 40
    (x0, x1), (y0, y1) = [(min(v), max(v)) for v in zip(*points)]
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1e-9)

    def xy(step, loss):
        return (left + (step - x0) / (x1 - x0) * (width - left - right),
                top + (y1 - loss) / (y1 - y0) * (height - top - bottom))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">step ({x0:g} to {x1:g})</text>',
             f'<text x="4" y="{top + 4}">{y1:.3f}</text><text x="4" y="{height - bottom}">{y0:.3f}</text>',
             f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
             'loss (nats per prediction)</text>']
    for (name, line), colour, y in zip(series.items(), ("#1f77b4", "#d62728"), (top + 12, top + 28)):
        if line:
            coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in (xy(*p) for p in line))
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>')
            parts.append(f'<text x="{width - right - 60}" y="{y}" fill="{colour}">{name}</text>')
    parts.append("</svg>\n")
    atomic_write(path, lambda f: f.write("\n".join(parts)))
    return path
