"""`tinylm gradcheck LAYER`: every layer's gradients three ways — autograd, central differences
and the hand-derived formula of tinylm.check.rnn_formulas / attention_formulas / llm_formulas."""
from .compare import compare

LAYERS = ("rnn", "lstm", "gru", "attention", "mha", "layernorm", "softmax", "encoder", "decoder",
          "rmsnorm", "silu", "swiglu", "rope", "gqa")


def cases():
    """name -> zero-argument function giving (fn, formula, inputs), in LAYERS order."""
    from .attention_formulas import CASES as attention
    from .llm_formulas import CASES as llm
    from .rnn_formulas import CASES as recurrent

    found = {**recurrent, **attention, **llm}
    return {name: found[name] for name in LAYERS}


def run(names, out=print):
    """Print one table per layer; True when every row of every table passes."""
    table = cases()
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown layer {unknown[0]!r}: expected one of {', '.join(LAYERS)} or all")
    passed = True
    for name in names:
        fn, formula, inputs = table[name]()
        report = compare(fn, formula, inputs)
        out(report.table(title=f"{name}: autograd vs numeric vs hand-derived formula (float64)") + "\n")
        passed = passed and report.passed
    out("all PASS" if passed else "some checks FAIL")
    return passed
