"""The build-the-engine track: the learner writes the engine itself, step by step.

`tinylm track start --out DIR` writes DIR/engine/, a package of seven files in which every part
the learner writes is `raise NotImplementedError("step N: ...")`; `tinylm track check DIR`
checks the steps in order (`--step N`: that step alone) with property tests against tinylm
(checks.py). Each step builds on the learner's earlier ones: the backward pass runs their ops,
the LSTM and attention run on their Tensor and backward pass (attention on their kernels too),
and the last step trains a small GPT on all of it.

One source: engine/ here holds the reference solutions between `# BEGIN SOLUTION` and
`# END SOLUTION` lines (the lessons' markers); the learner's copy is made from it by
tinylm.lesson.make_exercise, so the skeleton and the solutions cannot drift apart.
"""
import importlib.util
import sys
from importlib import resources
from pathlib import Path

from ..files import atomic_write
from ..lesson import make_exercise

PACKAGE = "engine"  # the learner's package: DIR/engine/


def engine_sources():
    """{file name: reference source} of every file of the engine package."""
    folder = resources.files("tinylm.track.engine")
    return {f.name: f.read_text(encoding="utf-8") for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".py")}


def skeleton(source):
    """The learner's copy of one engine file: each solution block replaced by its raise."""
    return make_exercise(source) if "# BEGIN SOLUTION" in source else source


def start(out, force=False):
    """Write the skeleton package into OUT/engine (and OUT/README.md); returns the package folder."""
    from .checks import STEPS

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file: expected a folder for the track")
    target = out / PACKAGE
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists and may hold your work: choose another --out, or pass "
                              "--force to overwrite it with a blank skeleton")
    target.mkdir(parents=True, exist_ok=True)
    for name, source in engine_sources().items():
        text = skeleton(source)
        atomic_write(target / name, lambda f, text=text: f.write(text))
    steps = "\n".join(f"{s.number:>2}. {s.title} — {s.where}" for s in STEPS)
    readme = (f"# Build the engine\n\nFill in every `raise NotImplementedError(\"step N: ...\")` of `{PACKAGE}/`, "
              f"step by step:\n\n```\n{steps}\n```\n\nCheck a step: `tinylm track check {out} --step N`; "
              f"every step in order: `tinylm track check {out}`.\n")
    atomic_write(out / "README.md", lambda f: f.write(readme))
    return target


def load_engine(folder):
    """Import the learner's package FOLDER/engine (a fresh import, under the name `engine`)."""
    init = Path(folder) / PACKAGE / "__init__.py"
    if not init.is_file():
        raise FileNotFoundError(f"no {init}: expected the folder given to `tinylm track start --out`")
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = module
    spec.loader.exec_module(module)
    for part in ("ops", "kernels", "optim", "lstm", "attention", "gpt"):
        importlib.import_module(f"{PACKAGE}.{part}")
    return module


def reference_engine():
    """The reference solutions, as a package like the learner's."""
    import tinylm.track.engine as engine

    for part in ("ops", "kernels", "optim", "lstm", "attention", "gpt"):
        importlib.import_module(f"tinylm.track.engine.{part}")
    return engine


def check(engine, step=None, examples=25, report=print):
    """Check `step` of `engine`, or every step in order up to the first that fails; report
    (a callable) gets one line per step as it finishes. Returns the StepResults."""
    from .checks import STEPS, run_step

    if step is not None and not 1 <= step <= len(STEPS):
        raise ValueError(f"--step must be 1..{len(STEPS)}, got {step}")
    if examples < 1:
        raise ValueError(f"--examples must be at least 1, got {examples}")
    results = []
    for s in [STEPS[step - 1]] if step is not None else STEPS:
        result = run_step(engine, s, examples)
        results.append(result)
        note = f"  {result.detail}" if result.passed and result.detail else ""
        report(f"step {s.number:>2} {'PASS' if result.passed else 'FAIL'} {result.seconds:5.1f}s  {s.title}{note}")
        if not result.passed:
            report(f"         {s.where}\n" + "\n".join(f"         {line}" for line in result.detail.splitlines()))
            if step is None and s.number < len(STEPS):
                report(f"steps {s.number + 1}-{len(STEPS)} use this one: make it pass first")
            break
    return results


def main_start(args):
    target = start(args.out, force=args.force)
    print(f"wrote {target}/ and {Path(args.out) / 'README.md'}: begin with step 1 in {target / 'ops.py'}, "
          f"then run `tinylm track check {args.out} --step 1`")
    return 0


def main_check(args):
    results = check(load_engine(args.dir), args.step, args.examples)
    return 0 if all(r.passed for r in results) else 1
