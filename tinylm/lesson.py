"""Lessons: running them and turning them into exercises (grading: tinylm.grading).

A lesson is a script in "percent" cell format (``# %%`` code cells, ``# %% [markdown]``
text cells), so it runs with ``python`` and opens as a notebook (Jupytext, VS Code). Inside,

    from tinylm.lesson import check, graded, fast

    check("softmax sums to one", abs(p.sum() - 1) < 1e-12)      # a demonstration: must hold
    graded("my BPTT matches autograd", lambda: compare(...).passed)  # the learner's code, as feedback

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
import time
from importlib import resources
from pathlib import Path

from .files import atomic_write

FAST_ENV = "TINYLM_LESSON_FAST"
OUT_ENV = "TINYLM_LESSON_OUT"
_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?:\s+hint:\s*(?P<hint>.*))?$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_CELL = re.compile(r"^# %%")


class CheckFailed(AssertionError):
    """A lesson check did not hold (raised when a lesson runs on its own)."""


def fast():
    """True in fast mode (`tinylm lesson run NAME --fast`, and the test suite): use smaller sizes."""
    return os.environ.get(FAST_ENV) == "1"


def output_dir():
    """Where a lesson writes its pictures (TINYLM_LESSON_OUT, default ./lesson_output)."""
    path = Path(os.environ.get(OUT_ENV, "lesson_output"))
    path.mkdir(parents=True, exist_ok=True)
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
        raise CheckFailed(f"check failed: {name}" + (f" ({detail})" if detail else ""))
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


def run(name_or_path, fast_mode=False, out=None):
    """Run a lesson as a script; its checks raise CheckFailed if one does not hold."""
    path = Path(name_or_path) if Path(name_or_path).suffix == ".py" else find(name_or_path)
    start = time.perf_counter()
    with _mode(fast_mode, out):
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
        exec(code, _namespace(path))
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
    """`tinylm lesson run NAME [--fast]`."""
    path = find(args.name)
    title, _ = describe(path)
    print(f"=== {path.stem}: {title}")
    seconds = run(path, fast_mode=args.fast, out=args.out)
    print(f"=== {path.stem} finished in {seconds:.1f}s")
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
