"""Lessons: running them and turning them into exercises (grading: tinylm.grading).

A lesson is a script in "percent" cell format (``# %%`` code cells, ``# %% [markdown]``
text cells), so it runs with ``python`` and opens as a notebook (Jupytext, VS Code). Inside,

    from tinylm.lesson import check, graded, fast

    check("softmax sums to one", abs(p.sum() - 1) < 1e-12)      # a demonstration: must hold
    graded("my BPTT matches autograd", lambda: compare(...).passed)  # the learner's code, as feedback
    picture(fig, "03_gates.png")   # saved in output_dir() (lesson_output/03/), inline in a notebook

`tinylm lesson run` runs a lesson cell by cell and prints its Markdown cells as text between the
results. A failing check stops a lesson; in a learner's file run that way, and in a notebook, it
is printed with ✗ and the run goes on.

The learner's parts sit between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines; a hint
may follow on the BEGIN line: ``# BEGIN SOLUTION hint: dL/dW = xᵀ g``. ``tinylm exercise``
replaces each such block by ``raise NotImplementedError(hint)``. The ``graded`` checks are
feedback while the learner runs their file; the score comes from ``tinylm grade``
(tinylm.grading), which never runs the file: it calls the learner's exercise functions in a
separate process on inputs of its own and compares them with the lesson's solutions.
"""
import contextlib
import os
import re
import sys
import time
import traceback
from importlib import resources
from pathlib import Path

from .files import atomic_write

FAST_ENV = "TINYLM_LESSON_FAST"
OUT_ENV = "TINYLM_LESSON_OUT"
_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+hint:\s*(?P<hint>.*))?$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_CELL = re.compile(r"^# %%")
_MARKDOWN = re.compile(r"^# %% \[markdown\]")
_NUMBER = re.compile(r"^(\d\d)_")

_lesson = None        # the number ("03") of the lesson `run` is running
_keep_going = False   # while `run` runs a learner's file: a check that fails is reported, and the run goes on
_failed = []          # the checks that failed while going on (a learner's file, a notebook)


class CheckFailed(AssertionError):
    """A lesson check did not hold (raised when a lesson runs on its own)."""


def fast():
    """True in fast mode (`tinylm lesson run NAME --fast`, and the test suite): use smaller sizes."""
    return os.environ.get(FAST_ENV) == "1"


def _in_notebook():
    """True inside a Jupyter kernel (IPython running with a kernel attached)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def lesson_number():
    """The running lesson's number ("03"): the lesson `run` runs, else the file that Python or a
    notebook runs (03_lstm.py, 03_lstm.ipynb); None when it cannot be told."""
    if _lesson:
        return _lesson
    main = sys.modules.get("__main__")
    names = [getattr(main, name, None) for name in ("__file__", "__vsc_ipynb_file__", "__session__")]  # python
    for name in [*names, os.environ.get("JPY_SESSION_NAME")]:  # FILE; VS Code; Jupyter (ipykernel, jupyter_server)
        number = _NUMBER.match(Path(str(name or "")).name)
        if number:
            return number.group(1)
    return None


def output_folder(base=None, number=None):
    """OUT/NN: the folder of lesson NN's pictures and files. OUT is `base`, else TINYLM_LESSON_OUT,
    else ./lesson_output; NN is `number`, else lesson_number() (no NN when that is unknown)."""
    base = Path(base if base is not None else os.environ.get(OUT_ENV, "lesson_output"))
    number = number or lesson_number()
    return base / number if number else base


def output_dir():
    """Where the running lesson writes its pictures and files, one folder per lesson
    (output_folder(): lesson_output/03/ for lesson 03 by default); made if missing."""
    path = output_folder()
    path.mkdir(parents=True, exist_ok=True)
    return path


def pyplot():
    """matplotlib.pyplot for a lesson's pictures: inline in a notebook (IPython's inline backend is
    kept), off-screen (the Agg backend) anywhere else. ImportError without matplotlib."""
    import matplotlib

    if not _in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def picture(figure, name=None):
    """Keep one of the lesson's pictures and show where it is. `figure` is a matplotlib figure, saved
    as output_dir()/name and closed, or (no name) the path of a picture already written, e.g. by
    tinylm.viz.attention_heatmap. In a notebook the picture shows inline below the cell; elsewhere
    its path is printed. Returns the path."""
    if name is None:
        path = Path(figure)
    else:
        path = output_dir() / name
        figure.savefig(path)
        pyplot().close(figure)
    if _in_notebook():
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    else:
        print(f"  picture: {path}")
    return path


def _evaluate(condition):
    """(passed, detail) of a bool, or of a callable returning a bool (None counts as passing)."""
    try:
        value = condition() if callable(condition) else condition
        return (value is None or bool(value)), ""
    except NotImplementedError as e:
        return False, f"not implemented yet ({e})" if str(e) else "not implemented yet"
    except Exception as e:  # a learner's code may fail in any way: report it, don't stop
        return False, f"{type(e).__name__}: {e}"


def _record(name, condition):
    passed, detail = _evaluate(condition)
    if not passed:
        message = f"check failed: {name}" + (f" ({detail})" if detail else "")
        if not (_keep_going or _in_notebook()):  # a lesson run stops; a learner's file or notebook goes on
            raise CheckFailed(message)
        _failed.append(message)
        print(f"  ✗ {name}" + (f": {detail}" if detail else ""))
        return False
    print(f"  ✓ {name}")
    return True


def check(name, condition):
    """A fact the lesson demonstrates; a lesson run stops if it does not hold."""
    return _record(name, condition)


def graded(name, condition):
    """A check of the learner's own code (a solution block), shown when the file runs: feedback,
    not the score (`tinylm grade` tests the learner's functions on inputs of its own)."""
    return _record(name, condition)


# --- finding and running lessons ------------------------------------------------------------

def three_way(title, fn, formula, inputs):
    """A gradient checked three ways (tinylm.check.compare: autograd, central differences and the
    hand-derived `formula`): print the table; True when all three agree."""
    from .check import compare

    report = compare(fn, formula, inputs)
    print(report.table(title))
    return report.passed

def lessons_dir():
    """The folder holding the lesson scripts (installed as the tinylm.lessons package)."""
    return Path(str(resources.files("tinylm.lessons")))


def lesson_files():
    """{name: path} of every lesson, e.g. "03_lstm" -> .../03_lstm.py, in order."""
    return {p.stem: p for p in sorted(lessons_dir().glob("[0-9][0-9]_*.py"))}


def describe(path):
    """(title, ids): the first Markdown heading and the SEEDS_GUIDE ids the lesson cites."""
    text = Path(path).read_text(encoding="utf-8")
    title = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("# # ")), path.stem)
    ids = sorted(set(re.findall(r"\b00[0-4]\.[a-z0-9]+(?:\.[a-z0-9]+)*", text)))
    return title, ids


def find(name):
    """The lesson called `name` ("03_lstm", "03" or "lstm")."""
    files = lesson_files()
    for key, path in files.items():
        if name in (key, key[:2], key[3:]):
            return path
    raise ValueError(f"no lesson {name!r}: expected one of {', '.join(files)} (see `tinylm lesson list`)")


def cells(source):
    """The code of each cell (Markdown cells included: they are comments)."""
    chunks, current = [], []
    for line in source.splitlines(keepends=True):
        if _CELL.match(line) and current:
            chunks.append("".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("".join(current))
    return chunks


@contextlib.contextmanager
def _mode(fast_mode, out):
    saved = {k: os.environ.get(k) for k in (FAST_ENV, OUT_ENV)}
    os.environ[FAST_ENV] = "1" if fast_mode else "0"
    if out is not None:
        os.environ[OUT_ENV] = str(out)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _namespace(path):
    return {"__name__": "__main__", "__file__": str(path)}


def markdown_text(cell):
    """A Markdown cell as plain text: the comment marks and **s gone, headings underlined, bullets •."""
    from .table import display_width

    lines = []
    for raw in cell.splitlines()[1:]:  # the first line is "# %% [markdown]"
        text = raw[2:] if raw.startswith("# ") else raw[1:] if raw.startswith("#") else raw
        heading = re.match(r"(#{1,4}) (.*)", text)
        if heading:
            title = heading.group(2).replace("**", "")
            lines += [title, ("=" if len(heading.group(1)) == 1 else "-") * display_width(title)]
        else:
            lines.append(re.sub(r"^(\s*)\* ", r"\1• ", text.replace("**", "")))
    return "\n".join(lines).strip("\n")


def failed_checks():
    """The checks that failed in the last run that went on past them (a learner's file)."""
    return list(_failed)


def run(name_or_path, fast_mode=False, out=None, quiet=False, keep_going=False):
    """Run a lesson (a name, or the path of a lesson file, a learner's copy too) cell by cell,
    printing its explanations (the Markdown cells) as text between the results unless quiet.
    A check that fails raises CheckFailed; with keep_going it is printed and kept (failed_checks()),
    and so is a cell that stops with an error, and the run goes on. Returns the seconds it took."""
    global _lesson, _keep_going
    path = Path(name_or_path) if Path(name_or_path).suffix == ".py" else find(name_or_path)
    source = path.read_text(encoding="utf-8")
    number = _NUMBER.match(path.name)
    namespace, line, start = _namespace(path), 1, time.perf_counter()
    saved, _failed[:] = (_lesson, _keep_going), []
    _lesson, _keep_going = (number.group(1) if number else None), keep_going
    try:
        with _mode(fast_mode, out):
            for cell in cells(source):
                if _MARKDOWN.match(cell):
                    if not quiet:
                        print("\n" + markdown_text(cell) + "\n")
                else:
                    try:  # blank lines in front: errors name the line of the file
                        exec(compile("\n" * (line - 1) + cell, str(path), "exec"), namespace)
                    except Exception as e:
                        if not keep_going or isinstance(e, CheckFailed):
                            raise
                        where = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
                        _failed.append(f"the cell at line {line} stopped at line {where[-1]}: {type(e).__name__}: {e}")
                        print(f"  ✗ {_failed[-1]}")
                line += cell.count("\n")
    finally:
        _lesson, _keep_going = saved
    return time.perf_counter() - start


# --- exercises and grading -------------------------------------------------------------------
def make_exercise(source):
    """The learner's copy: each solution block replaced by raise NotImplementedError(hint)."""
    out, inside, blocks = [], False, 0
    for number, line in enumerate(source.splitlines(keepends=True), 1):
        begin = _BEGIN.match(line.rstrip("\n"))
        if begin:
            if inside:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution block")
            inside, blocks = True, blocks + 1
            hint = (begin.group("hint") or "write this part").strip()
            out.append(f"{begin.group('indent')}raise NotImplementedError({hint!r})  # your code here\n")
        elif _END.match(line):
            if not inside:
                raise ValueError(f"line {number}: END SOLUTION without a BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("a BEGIN SOLUTION block is never closed by END SOLUTION")
    if not blocks:
        raise ValueError("this lesson has no solution blocks to turn into an exercise")
    return "".join(out)


def write_exercise(name, out_dir, force=False):
    """Write the learner's copy of lesson `name` into out_dir (its first line the header that
    tinylm.grading looks for); returns its path. An existing copy is the learner's work: it is
    overwritten only with force."""
    from .exercises import nudge_hints
    from .grading import header_line

    path = find(name)
    text = header_line(path.stem) + nudge_hints(path.stem, make_exercise(path.read_text(encoding="utf-8")))
    target = Path(out_dir) / path.name
    if target.parent.exists() and not target.parent.is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file: expected a folder for the learner's copy")
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists (your work?): pass --force to overwrite it with a blank copy")
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda f: f.write(text))
    return target


def main_run(args):
    """`tinylm lesson run NAME|FILE.py [--fast] [--quiet] [--out DIR]`: a lesson, or a learner's
    copy of one (a failing check is then reported and the run goes on; exit status 1 at the end)."""
    learner = args.name.endswith(".py")
    path = Path(args.name) if learner else find(args.name)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    number = _NUMBER.match(path.name)
    folder = output_folder(args.out, number.group(1) if number else None)
    print(f"=== {path.stem}: {describe(path)[0]}\n=== its pictures and files go to {folder}{os.sep}")
    started = time.time()
    try:
        seconds = run(path, fast_mode=args.fast, out=args.out, quiet=args.quiet, keep_going=learner)
    except CheckFailed as e:
        print(f"=== {path.stem} stopped: {e}", file=sys.stderr)
        return 1
    written = sorted(p.name for p in folder.glob("*") if p.is_file() and p.stat().st_mtime >= started - 1) \
        if folder.is_dir() else []
    print(f"=== {path.stem} finished in {seconds:.1f}s" + (f"; wrote {', '.join(written)} in {folder}{os.sep}"
                                                           if written else ""))
    if _failed:
        print(f"=== {len(_failed)} check{'s' if len(_failed) > 1 else ''} did not hold: see the ✗ lines above")
        return 1
    return 0


LIST_WIDTH = 100  # columns of `tinylm lesson list`


def main_list(_args):
    """`tinylm lesson list`: each lesson's name, title and source ids, wrapped to LIST_WIDTH columns."""
    from .table import display_width, pad, wrap

    names = lesson_files()
    left = max(display_width(name) for name in [*names, "lesson"]) + 2
    right = LIST_WIDTH - left
    lines = [pad("lesson", left) + "title / source ids", pad("-" * (left - 2), left) + "-" * right]
    for name, path in names.items():
        title, ids = describe(path)
        title = re.sub(r"\s*\((?:00[0-4]\.[a-z0-9.]+(?:,\s*)?)+\)$", "", title)  # ids in the title: listed below
        id_lines = wrap(" ".join(ids), right - len("ids: "))
        body = wrap(title, right) + ["ids: " + id_lines[0]] + ["     " + text for text in id_lines[1:]]
        lines += [pad(name if i == 0 else "", left) + text for i, text in enumerate(body)]
    print("\n".join(lines))
    return 0


def main_exercise(args):
    target = write_exercise(args.name, args.out, force=args.force)
    print(f"wrote {target}: fill in the blocks marked 'your code here', then run `tinylm grade {target}`")
    return 0
