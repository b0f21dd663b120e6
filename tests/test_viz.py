"""The computation graph as DOT text (and rendered when Graphviz's dot is installed)."""
import shutil

import numpy as np
import pytest

import tinylm
from tinylm.viz import draw_graph


def small_graph():
    w = tinylm.tensor([[0.5, -1.0]], requires_grad=True)
    w.name = "w"
    x = tinylm.tensor([[2.0], [1.0]])
    return w, (w @ x).tanh().sum()


def test_dot_text_names_ops_shapes_values_and_grads():
    w, loss = small_graph()
    loss.backward(retain_graph=True)
    dot = draw_graph(loss)
    assert dot.startswith("digraph tinylm {") and dot.rstrip().endswith("}")
    for op in ("MatMul", "Tanh", "Sum"):
        assert f'label="{op}"' in dot
    assert "w (1, 2) float32" in dot and "data [[ 0.5,-1. ]]" in dot
    assert "grad [[2.,1.]]" in dot and dot.count("->") == 7  # d tanh(w·x)/dw = (1 - tanh²(0)) xᵀ


def test_large_tensors_hide_their_values():
    x = tinylm.randn(10, 10, requires_grad=True)
    dot = draw_graph((x * 2).sum())
    assert "(10, 10) float32" in dot and "data" not in dot.split("(10, 10)")[1].split("\n")[0]


def test_writing_and_rendering(tmp_path):
    _, loss = small_graph()
    draw_graph(loss, tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text().startswith("digraph")
    if shutil.which("dot"):
        draw_graph(loss, tmp_path / "g.png")
        assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    else:
        with pytest.raises(RuntimeError, match="needs Graphviz's `dot` program"):
            draw_graph(loss, tmp_path / "g.png")
        assert (tmp_path / "g.png.dot").exists()
    with pytest.raises(ValueError, match=r"expected a \.dot, \.svg, \.png or \.pdf path"):
        draw_graph(loss, tmp_path / "g.jpg")
    assert np.isfinite(loss.item())
