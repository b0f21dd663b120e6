"""Instructor export: `tinylm course build --lessons 01,03,05 --out DIR`.

DIR/
  README.md                       for the instructor: what is where, how to grade
  student/NN_name.ipynb           the exercise copy as a notebook: no solutions in it
  instructor/NN_name.ipynb        the whole lesson with its solutions
  autograder/NN_name/             an Otter-Grader configuration per lesson:
      tests/EXERCISE.py           one Otter test file per exercise, one test case per check
      otter_config.json           Otter runs tinylm's grader as a plugin (tinylm.otter_plugin),
                                  with the course's time and memory limits
      requirements.txt
  autograder/NN_name-autograder.zip   `otter generate`'s bundle (when otter-grader is installed)

Why Otter-Grader and not nbgrader: `otter run -a ZIP SUBMISSION` grades one notebook locally
with no server, database or course folder (nbgrader's autograde needs its gradebook database and
course layout), and the same zip is Gradescope's autograder format. The tests do not run the
learner's notebook: the plugin grades the submitted file with tinylm.grading (the learner's
functions in a separate process, on the grader's inputs) before Otter executes anything and
hands Otter an empty notebook, so the learner's code never runs in Otter's kernel, where the
test cases read the results.
"""
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .files import atomic_write

RESULTS_FILE = ".tinylm-grade.json"


def notebook(source, header=""):
    """A percent-format lesson as notebook JSON (nbformat 4): `# %% [markdown]` cells become
    Markdown without their comment signs, `# %%` cells code; `header` opens the first code cell."""
    from .lesson import cells

    out = []
    for chunk in cells(source):
        first, _, body = chunk.partition("\n")
        if first.startswith("# %% [markdown]"):
            text = "\n".join(re.sub(r"^# ?", "", line) for line in body.rstrip("\n").splitlines())
            out.append({"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)})
        else:
            code = (body if first.startswith("# %%") else chunk).strip("\n")
            if header and not any(c["cell_type"] == "code" for c in out):
                code = header + code
            if code.strip():
                out.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                            "source": code.splitlines(keepends=True)})
    return {"cells": out, "nbformat": 4, "nbformat_minor": 4,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def _write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=1, ensure_ascii=False) + "\n"))


def _write_text(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text))


def otter_test_file(lesson_name, spec):
    """One Otter test file (its exception-based format) for an exercise: a test case per check,
    each worth its share of the exercise's points, reading the plugin's results."""
    labels = [[label for label, _ in spec.make_cases(seed)] for seed in (0, 1)]
    share = spec.points / len(labels[0])
    cases = "\n".join(
        f"@test_case(points={share!r}, hidden=False)\n"
        f"def check_{i + 1}():\n"
        f"    check({spec.name!r}, {i})  # {a if a == b else 'a random case'}\n"
        for i, (a, b) in enumerate(zip(*labels)))
    return (f'"""{lesson_name} · {spec.name}: written by `tinylm course build`. The checks are made by\n'
            f'tinylm.grading (run by the plugin tinylm.otter_plugin.TinylmGrader before Otter runs anything)."""\n'
            "from otter.test_files import test_case\n\nfrom tinylm.otter_plugin import check\n\n"
            f"OK_FORMAT = False\n\nname = {spec.name!r}\npoints = {spec.points!r}\n\n\n{cases}")


def _otter_available():
    return importlib.util.find_spec("otter") is not None


def build(lessons, out, force=False, time_limit=None, memory_limit=None):
    """Write the course for `lessons` (names or numbers) into out; returns (written paths, notes).
    time_limit (seconds per exercise) and memory_limit (MiB) go into each autograder's plugin
    configuration; None keeps the grader's defaults (tinylm.grading.TIME_LIMIT, MEMORY_LIMIT)."""
    from . import exercises as specs
    from .exercises import nudge_hints
    from .grading import MEMORY_LIMIT, TIME_LIMIT, check_limits, header_line
    from .lesson import find, make_exercise

    limits = {"time_limit": TIME_LIMIT if time_limit is None else time_limit,
              "memory_limit": MEMORY_LIMIT if memory_limit is None else memory_limit}
    check_limits(limits["time_limit"], limits["memory_limit"], ("--time-limit", "--memory-limit"))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file: expected a folder for the course")
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} is not empty: pass --force to write the course over it")
    paths = [find(name) for name in lessons]
    if not paths:
        raise ValueError("--lessons names no lesson: expected e.g. 01,03,05 (see `tinylm lesson list`)")
    written, notes, zips = [], [], _otter_available()
    for path in paths:
        source = path.read_text(encoding="utf-8")
        chosen = specs.for_lesson(path.stem)
        student = out / "student" / f"{path.stem}.ipynb"
        _write_json(student, notebook(nudge_hints(path.stem, make_exercise(source)), header=header_line(path.stem)))
        instructor = out / "instructor" / f"{path.stem}.ipynb"
        _write_json(instructor, notebook(source))
        folder = out / "autograder" / path.stem
        if folder.exists():
            shutil.rmtree(folder)
        for spec in chosen:
            _write_text(folder / "tests" / f"{spec.name}.py", otter_test_file(path.stem, spec))
        _write_json(folder / "otter_config.json", {"lang": "python",
                                                   "plugins": [{"tinylm.otter_plugin.TinylmGrader": limits}]})
        _write_text(folder / "requirements.txt", "# the grading image needs tinylm installed too (see README.md)\n")
        written += [student, instructor, folder]
        if zips:
            bundle = out / "autograder" / f"{path.stem}-autograder.zip"
            done = subprocess.run([sys.executable, "-m", "otter", "generate", "-t", "tests", "-o",
                                   str(bundle.resolve()), "--no-environment"],
                                  cwd=folder, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"otter generate failed for {path.stem}: "
                                   + (done.stderr.strip().splitlines() or ["(no message)"])[-1])
            written.append(bundle)
    if not zips:
        notes.append("otter-grader is not installed: no autograder zips (pip install 'otter-grader[grading]', "
                     "then build again, or run `otter generate -t tests` in each autograder/ folder)")
    _write_text(out / "README.md", instructor_readme(paths, zips))
    written.append(out / "README.md")
    return written, notes


def instructor_readme(paths, zips):
    from . import exercises as specs

    rows = []
    for path in paths:
        chosen = specs.for_lesson(path.stem)
        rows.append(f"| {path.stem} | " + ", ".join(f"`{s.name}` ({s.points:g})" for s in chosen)
                    + f" | {sum(s.points for s in chosen):g} |")
    first = paths[0].stem
    return f"""# Course materials built by `tinylm course build`

| lesson | exercises (points) | total |
|---|---|---|
{chr(10).join(rows)}

## What is where

* `student/` — one notebook per lesson for the learners. Every solution is replaced by
  `raise NotImplementedError(hint)`; the first code cell starts with the line
  `# tinylm exercise NN_name: …` that tells the grader which lesson it is. Hand these out.
* `instructor/` — the same lessons with their solutions (and the `# BEGIN SOLUTION` markers).
  Keep them to yourself: a submitted copy of one still holds the markers and scores 0.
* `autograder/NN_name/` — an [Otter-Grader](https://otter-grader.readthedocs.io) configuration
  per lesson: `tests/` holds one test file per exercise (one test case per check, each worth its
  share of the exercise's points) and `otter_config.json` names the plugin
  `tinylm.otter_plugin.TinylmGrader` with the limits it grades under (`time_limit` in seconds
  per exercise, `memory_limit` in MiB: change them there, or with `tinylm course build
  --time-limit S --memory-limit MIB`). {"`autograder/NN_name-autograder.zip` is the bundle `otter generate` made from it." if zips else "Run `otter generate -t tests` in the folder to make the zip (otter-grader was not installed when this was built)."}

## Grading

One submission, locally (no server, no Docker, no database):

    otter run -a autograder/{first}-autograder.zip -o results/ SUBMISSION.ipynb

writes `results/results.json` with each check's points. Or, without Otter:

    tinylm grade SUBMISSION.ipynb

prints the report (each exercise's points; each check with expected vs got: shapes, max
abs/rel error, the first differing element; the three-way gradient table for a gradient
exercise) and exits 0 only at full marks. Both give the same scores: the plugin calls the same
grader. On Gradescope, upload the zip as the autograder; the grading image needs tinylm (add a
line installing it from where you keep it to `requirements.txt` before `otter generate`).

## How the grader works, and what it can and cannot prevent

The learner's notebook is never executed. The grader reads the code cells, takes out the
exercise functions (and any helper functions of the learner's that they call), and runs only
those in a separate process, with a time limit per exercise and a memory limit (`--time-limit`,
`--memory-limit`), on inputs drawn from a fresh seed (the report names it;
`tinylm grade FILE --seed N` repeats a grading). The expected values come from the installed
lesson's solutions, computed in the grading process, never in the one that
runs the learner's code. Under Otter the plugin does this before Otter runs anything and gives
Otter's kernel an empty notebook. So `sys.exit`, a monkeypatched grader or an edited check in
the notebook change nothing.

Each exercise declares the library functions it asks the learner to write again (macro F1 may
not call `tinylm.metrics`, the per-channel quantizer not `tinylm.compress`, …); a use of one,
seen in the code or caught at run time, scores the exercise 0 with that reason. An exercise may
import only numpy, math, cmath, collections, itertools, functools and operator, and may not use
`eval`, `exec`, `open`, `getattr` or dunder attributes.

A submitted instructor copy (it holds the solution markers) scores 0. What no rule can catch: a
learner who reads a solution (in the installed tinylm package, whose lessons are its teaching
material, or anywhere else) and types it into their copy. A correct answer may legitimately
look like the reference, so that is not penalised; the report notes "token for token the
lesson's own solution" for you to judge.

Hints for the learners: `tinylm hint NN [EXERCISE] --level 1|2|3` (level 3 is the recipe).
"""


def main_build(args):
    """`tinylm course build --lessons 01,03,05 --out DIR [--force] [--time-limit S] [--memory-limit MIB]`."""
    lessons = [name.strip() for name in args.lessons.split(",") if name.strip()]
    written, notes = build(lessons, args.out, force=args.force, time_limit=args.time_limit,
                           memory_limit=args.memory_limit)
    for path in written:
        print(f"wrote {path}")
    for note in notes:
        print(f"note: {note}")
    return 0
