"""Grading a learner's exercises from outside their file.

`tinylm grade FILE` never runs the learner's file. It reads it, takes out the exercise
functions (the functions that hold a solution block in the lesson) and any helper functions
of the learner's own they call, and runs only those, in a separate process with a time limit
per exercise and a memory limit, on the grader's own inputs: fixed edge cases plus random ones
drawn from a seed chosen for this grading. The child process sends back the values the learner's functions
returned; the expected values are computed here, in the grading process, by the lesson's own
solution (read from the installed lesson, never from the learner's file), and compared here.

Why extract the functions instead of importing the learner's file: a file's top-level code is
where `sys.exit(0)`, a monkeypatched grader or an edited check would run, and a lesson's
top-level code also trains models (minutes). The exercise functions alone run in seconds, in a
fresh namespace holding the lesson's imports and helper functions (from the installed lesson).
So nothing the file does at top level is ever executed, and what the exercise functions do can
change only the values they return. Those values are all a learner can influence; making them
right for the grader's random inputs, which the child never sees the answers to, is solving
the exercise.

Each exercise (tinylm.exercises) declares the library functions it asks the learner to write
again. Using one scores 0 with that reason: seen in the source (a name or attribute that
resolves to it), or at run time (the child replaces those functions by recorders before the
learner's code is loaded). The learner's code may not reach outside the lesson's namespace
either: no `eval`, `exec`, `open`, `getattr`, dunder attributes, or imports other than
numpy, math, cmath, collections, itertools, functools and operator.

Copying: a file that still holds the lesson's `# BEGIN SOLUTION` markers is the installed
lesson (which holds the solutions), not an exercise copy, and scores 0. A file that was not
written by `tinylm exercise` (it lacks the header line that command writes) scores 0 for every
exercise whose code is the lesson's solution token for token. What this cannot prevent: a
learner who reads the installed lesson (or any other source) and types its solution into their
exercise copy; a correct solution may legitimately look like the reference, so that alone is
never penalised (the report notes it, for the instructor).
"""
import ast
import base64
import functools
import importlib
import inspect
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .processes import python_module

HEADER = re.compile(r"^# tinylm exercise (?P<lesson>\d\d_\w+):")
MARKER = re.compile(r"^\s*# (BEGIN|END) SOLUTION\b", re.M)
ALLOWED_IMPORTS = ("numpy", "math", "cmath", "collections", "itertools", "functools", "operator")
ALLOWED_MODULES = ALLOWED_IMPORTS + ("tinylm",)  # modules a global name of the lesson may point to
MACHINERY = ("tinylm.lesson", "tinylm.grading", "tinylm.exercises", "tinylm.course", "tinylm.otter_plugin")
ESCAPES = {"eval", "exec", "compile", "open", "__import__", "globals", "locals", "vars", "getattr", "setattr",
           "delattr", "breakpoint", "input", "exit", "quit", "help", "memoryview"}
TIME_LIMIT = 30.0      # seconds per exercise in the child process (default of --time-limit)
# MiB of address space for the child process (RLIMIT_AS, default of --memory-limit). Measured (Linux,
# numpy 2.4 with OpenBLAS, numba 0.68): the child's peak address space (VmPeak) while grading every
# lesson's solutions is 115-150 MiB, 325 MiB for lesson 18, which imports Numba; its resident peak
# 40-100 MiB. What makes it grow is threads, each with its own stack and buffers: with a thread per
# core it was 155-190 MiB on 2 cores, and a Numba parallel loop took a process to 0.5 GiB with 2
# threads, 1.5 GiB with 16 and 1.8 GiB with 64 (OpenBLAS starts a thread per core as numpy is
# imported). CHILD_ENV below keeps every pool at one thread, so the figure does not grow with the
# machine's core count. 4 GiB is over ten times the measured peak and far below what would take a
# grading machine down.
MEMORY_LIMIT = 4096
SETUP_LIMIT = 120.0    # seconds for the child to import the lesson's modules and build the inputs
PRINTED_LINES = 20     # the last lines of the learner's own output shown in a report
# the child: unbuffered output (what was printed before a crash shows), tinylm's NumPy reference
# kernels, exact and quick to load (the inputs are small; Numba's would cost a second to import), and
# one thread per pool (OpenBLAS, OpenMP, MKL, Numba): the inputs are small, and each thread costs
# address space the memory limit counts (see MEMORY_LIMIT)
CHILD_ENV = {"PYTHONUNBUFFERED": "1", "TINYLM_KERNELS": "numpy", "OPENBLAS_NUM_THREADS": "1",
             "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
_REFERENCE_LOCK = threading.Lock()  # the solutions run in this process, where tinylm's grad mode is global
# ast.parse from two threads at once can fail in CPython 3.11 and 3.12 with "SystemError: AST constructor
# recursion depth mismatch" (python/cpython#106905: the depth count is shared); grade() may run in threads
_PARSE_LOCK = threading.Lock()


def _parse(source):
    """ast.parse(source), one thread at a time (see _PARSE_LOCK)."""
    with _PARSE_LOCK:
        return ast.parse(source)


# --- the lesson, taken apart ---------------------------------------------------------------
def header_line(lesson_name):
    """The first line `tinylm exercise` writes into a learner's copy."""
    return (f"# tinylm exercise {lesson_name}: fill in the blocks marked 'your code here', "
            "then run `tinylm grade` on this file\n")


def exercise_names(source):
    """The top-level functions of a lesson that hold a `# BEGIN SOLUTION` block, in order."""
    tree = _parse(source)
    begins = [i for i, line in enumerate(source.splitlines(), 1) if re.match(r"\s*# BEGIN SOLUTION", line)]
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(node.lineno <= b <= node.end_lineno for b in begins)]


def _segment(lines, node):
    """The source of a top-level statement (its decorators included), padded with blank lines so
    that line numbers in a traceback are those of the file."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n" * (first - 1) + "".join(lines[first - 1:node.end_lineno])


def lesson_namespace(lesson_name, with_solutions):
    """A fresh namespace with the installed lesson's imports and helper functions and classes,
    and, with_solutions, its exercise functions too (the reference solutions). A helper whose
    definition needs the lesson's running state (a class body using a size set earlier) is left
    out: the grader never runs the lesson, so no exercise can rely on it."""
    from .lesson import find

    path = find(lesson_name)
    source = path.read_text(encoding="utf-8")
    names = exercise_names(source)
    lines = source.splitlines(keepends=True)
    namespace = {"__name__": f"lesson_{path.stem}"}
    for node in _parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(_segment(lines, node), str(path), "exec"), namespace)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and (with_solutions or node.name not in names):
            try:
                exec(compile(_segment(lines, node), str(path), "exec"), namespace)
            except NameError:
                continue
    return namespace


@functools.lru_cache(maxsize=None)
def _reference(lesson_name):
    """(namespace with the solutions, {exercise: its ast node}) of an installed lesson, once per process."""
    from .lesson import find

    source = find(lesson_name).read_text(encoding="utf-8")
    names = exercise_names(source)
    nodes = {n.name: n for n in _parse(source).body if isinstance(n, ast.FunctionDef) and n.name in names}
    return lesson_namespace(lesson_name, with_solutions=True), nodes


def notebook_source(path):
    """The code cells of a notebook as one script (IPython magics turned into comments)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    code = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            code.append(re.sub(r"^(\s*)([%!])", r"\1# \2", text, flags=re.M))
    return "\n\n".join(code) + "\n"


def learner_source(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return notebook_source(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")


def which_lesson(path, source):
    """The lesson a learner's file belongs to: named by its header line, else by its file name."""
    from .lesson import find

    for line in source.splitlines()[:5]:
        match = HEADER.match(line)
        if match:
            return find(match.group("lesson"))
    return find(Path(path).stem)


# --- what the learner's code may use --------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """A library function an exercise re-implements: a module (all of it), a function, a class,
    a method (matched by its attribute name), a lesson helper, or "@" (the matmul operator)."""

    label: str
    kind: str
    obj: object = None
    owner: object = None
    attr: str = ""


def resolve_targets(names, namespace):
    targets = []
    for name in names:
        if name == "@":
            targets.append(Target("the @ operator", "operator"))
        elif "." not in name:
            targets.append(Target(f"the lesson's {name}", "lesson", namespace[name], attr=name))
        else:
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj = importlib.import_module(".".join(parts[:cut]))
                    break
                except ImportError:
                    continue
            owner = None
            for attr in parts[cut:]:
                owner, obj = obj, getattr(obj, attr)
            kind = ("module" if isinstance(obj, types.ModuleType) else "class" if inspect.isclass(obj)
                    else "method" if inspect.isclass(owner) else "function")
            targets.append(Target(name, kind, obj, owner, parts[-1]))
    return targets


def _matches(obj, target):
    if target.kind == "module":
        home = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
        return isinstance(home, str) and (home == target.obj.__name__ or home.startswith(target.obj.__name__ + "."))
    return target.kind in ("function", "class", "lesson", "method") and obj is target.obj


class _Locals(ast.NodeVisitor):
    """Every name a function binds itself (arguments, assignments, loop variables, inner defs)."""

    def __init__(self):
        self.names = set()

    def visit_Name(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.names.add(node.id)

    def visit_arg(self, node):
        self.names.add(node.arg)

    def visit_FunctionDef(self, node):
        self.names.add(node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_alias(self, node):
        self.names.add((node.asname or node.name).split(".")[0])


def _chain(node):
    """(root name, [attributes]) of a.b.c, or (None, []) when it does not start at a name."""
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.insert(0, node.attr)
        node = node.value
    return (node.id, attrs) if isinstance(node, ast.Name) else (None, attrs)


def _lookup(namespace, root, attrs):
    """The object a.b.c names, following modules and classes only (never running other code)."""
    obj = namespace[root]
    found = [obj]
    for attr in attrs:
        if not (isinstance(obj, types.ModuleType) or inspect.isclass(obj)) or attr not in dir(obj):
            break
        obj = inspect.getattr_static(obj, attr)
        found.append(obj)
    return found


def static_problems(nodes, namespace, targets, own_names):
    """What the learner's functions use that they may not: (escapes, uses of targets), as text.
    own_names: the learner's own top-level functions (they may call each other)."""
    escapes, uses = [], []
    method_attrs = {t.attr: t for t in targets if t.kind == "method"}
    for fn in nodes:
        scope = _Locals()
        scope.visit(fn)
        local = scope.names - {fn.name}
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not _allowed_import(node):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                escapes.append(f"imports {module or '.'} (an exercise may import only {', '.join(ALLOWED_IMPORTS)})")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
                uses += [t.label for t in targets if t.kind == "operator"]
            elif isinstance(node, ast.Attribute):
                if node.attr.startswith("_"):
                    escapes.append(f"uses the attribute {node.attr} (private and dunder attributes reach outside "
                                   "the exercise)")
                if node.attr in method_attrs:
                    uses.append(method_attrs[node.attr].label)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in local:
                name = node.id
                if name.startswith("__") or (name in ESCAPES and name not in namespace and name not in own_names):
                    escapes.append(f"uses {name} (an exercise may not run code or reach outside its namespace)")
                elif name in namespace:
                    root, attrs = _chain(_outermost(fn, node))
                    for obj in _lookup(namespace, name, attrs if root == name else []):
                        home = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", "")
                        if isinstance(obj, types.ModuleType) and home.split(".")[0] not in ALLOWED_MODULES:
                            escapes.append(f"uses the module {home} (allowed: {', '.join(ALLOWED_MODULES)})")
                        elif isinstance(home, str) and home.startswith(MACHINERY):
                            escapes.append(f"uses {_name_of(obj, namespace)} (the lessons' and the grader's "
                                           "machinery are out of an exercise's reach)")
                        if any(_matches(obj, t) for t in targets):
                            uses.append(_name_of(obj, namespace))
    return sorted(set(escapes)), sorted(set(uses))


def _allowed_import(node):
    if isinstance(node, ast.ImportFrom):
        return not node.level and node.module is not None and node.module.split(".")[0] in ALLOWED_IMPORTS
    return all(alias.name.split(".")[0] in ALLOWED_IMPORTS for alias in node.names)


def _name_of(obj, namespace):
    """How a report names a function, class or module the learner used."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", "")
    if module == namespace.get("__name__"):
        return f"the lesson's {obj.__name__}"
    return f"{module}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _outermost(fn, name_node):
    """The longest a.b.c attribute chain that starts at name_node inside fn."""
    best = name_node
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute):
            inner = node
            while isinstance(inner, ast.Attribute):
                inner = inner.value
            if inner is name_node and _depth(node) > _depth(best):
                best = node
    return best


def _depth(node):
    return len(_chain(node)[1])


# --- the child process ----------------------------------------------------------------------
_active = False   # in the child: True while a learner's function runs
_used = []        # in the child: (label, indices of the targets it belongs to) of every call made then


def _describe(owner, attr):
    name = getattr(owner, "__qualname__", None) or getattr(owner, "__name__", "")
    module = owner.__name__ if isinstance(owner, types.ModuleType) else getattr(owner, "__module__", "")
    return f"{module}.{attr}" if isinstance(owner, types.ModuleType) else f"{module}.{name}.{attr}"


def _locations(target):
    """The (owner, attribute) places a target's functions live in."""
    if target.kind in ("function", "method"):
        return [(target.owner, target.attr)]
    if target.kind == "class":
        return [(target.obj, attr) for attr, value in vars(target.obj).items() if inspect.isfunction(value)]
    if target.kind == "module":
        found = []
        prefix = target.obj.__name__
        for name, module in list(sys.modules.items()):
            if not (name == prefix or name.startswith(prefix + ".")) or name in ("tinylm.grading", "tinylm.exercises"):
                continue
            for attr, value in list(vars(module).items()):
                if getattr(value, "__module__", None) != name:
                    continue
                if inspect.isfunction(value):
                    found.append((module, attr))
                elif inspect.isclass(value):
                    found += [(value, m) for m, member in vars(value).items() if inspect.isfunction(member)]
        return found
    return []


def _install_recorders(targets, namespace):
    """Replace the functions of every target by ones that record their calls while a learner's
    function runs: module functions, Python classes' methods and the lesson's helpers (methods of
    C types, numpy.ndarray's, cannot be replaced: the static check covers them)."""
    places = {}
    for index, target in enumerate(targets):
        if target.kind == "lesson":
            places.setdefault((id(namespace), target.attr), [namespace, target.attr, set()])[2].add(index)
        for owner, attr in _locations(target):
            places.setdefault((id(owner), attr), [owner, attr, set()])[2].add(index)
    replaced = {}
    for owner, attr, indices in places.values():
        original = owner[attr] if owner is namespace else inspect.getattr_static(owner, attr)
        function = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original
        if not callable(function):
            continue
        label = f"the lesson's {attr}" if owner is namespace else _describe(owner, attr)
        wrapped = _recorder(label, frozenset(indices), function)
        if isinstance(original, (staticmethod, classmethod)):
            wrapped = type(original)(wrapped)
        if owner is namespace:
            namespace[attr] = wrapped
            continue
        try:
            setattr(owner, attr, wrapped)
        except (TypeError, AttributeError):
            continue
        replaced[id(original)] = wrapped
    for key, value in list(namespace.items()):  # names the lesson imported: `from m import f`
        if id(value) in replaced:
            namespace[key] = replaced[id(value)]


def _recorder(label, indices, fn):
    def recording(*args, **kwargs):
        if _active:
            _used.append((label, indices))
        return fn(*args, **kwargs)

    try:
        functools.update_wrapper(recording, fn, updated=())
    except (AttributeError, TypeError):
        pass
    return recording


def plain(value):
    """A result as plain data: arrays (a Tensor's too; numbers as 0-d arrays), lists, tuples,
    dicts with text keys, text and None."""
    from .tensor import Tensor

    if isinstance(value, Tensor):
        value = value.numpy()
    if isinstance(value, (bool, int, float, np.generic)):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"an array of {value.dtype} (expected numbers or booleans)")
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"a {type(value).__name__} (expected arrays, numbers, tuples, lists or dicts)")


def encode(value):
    """plain data -> JSON-able, arrays as raw bytes (decode() reads nothing else back)."""
    if isinstance(value, np.ndarray):
        value = np.array(value, order="C")
        return {"array": value.dtype.str, "shape": list(value.shape),
                "data": base64.b64encode(value.tobytes()).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[k, encode(v)] for k, v in value.items()]}
    return value


def decode(data):
    """encode()'s output back to plain data; anything else is refused (the child is not trusted)."""
    if data is None or isinstance(data, str):
        return data
    if isinstance(data, dict) and set(data) == {"array", "shape", "data"}:
        dtype, shape = np.dtype(str(data["array"])), tuple(int(s) for s in data["shape"])
        if dtype.kind not in "biuf" or any(s < 0 for s in shape):
            raise ValueError("not an array of numbers")
        return np.frombuffer(base64.b64decode(data["data"]), dtype=dtype).reshape(shape).copy()
    if isinstance(data, dict) and len(data) == 1:
        (kind, items), = data.items()
        if kind in ("list", "tuple") and isinstance(items, list):
            return (list if kind == "list" else tuple)(decode(v) for v in items)
        if kind == "dict" and isinstance(items, list):
            return {str(k): decode(v) for k, v in items}
    raise ValueError("unexpected data from the grading process")


def _error_text(error, file, memory_limit=None):
    """One line: the exception and the learner's line it came from. A MemoryError under a memory
    limit is the learner's code asking for more than the limit allows."""
    if isinstance(error, NotImplementedError):
        return f"not implemented yet ({error})" if str(error) else "not implemented yet"
    where = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == file]
    line = f" (your line {where[-1].lineno}: {where[-1].line.strip()})" if where and where[-1].line else ""
    if isinstance(error, SystemExit):
        return f"it called exit({error.code}){line}"
    if isinstance(error, MemoryError) and memory_limit is not None:
        asked = f"; {str(error).splitlines()[0]}" if str(error) else ""  # numpy's says how much it asked for
        return f"used more than {memory_limit:g} MiB of memory (the memory limit){asked}{line}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}{line}"


def _limit_memory(mib):
    """Cap this process's address space at `mib` MiB (RLIMIT_AS; never above a hard limit already
    set): past it an allocation fails with MemoryError instead of taking the machine's memory.
    Returns whether a limit is in force. Linux; where the `resource` module is missing (Windows)
    or the system refuses the limit (macOS does not enforce RLIMIT_AS), the child runs without one."""
    try:
        import resource
    except ImportError:
        return False
    limit = int(mib * 2 ** 20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):
        return False
    return True


def _out_of_memory(error):
    """Whether `error` says the process ran out of address space: a MemoryError, or an extension
    module that could not be mapped into memory (the dynamic loader's ENOMEM, seen by Python as an
    ImportError "failed to map segment from shared object")."""
    text = str(error)
    return isinstance(error, MemoryError) or "failed to map segment" in text or "Cannot allocate memory" in text


def check_limits(time_limit, memory_limit, names=("time_limit", "memory_limit")):
    """time_limit: a positive number of seconds; memory_limit: a positive number of MiB, or None (no
    limit). Anything else is one line naming the setting (`names`: how the caller spells them)."""
    for value, name, unit in ((time_limit, names[0], "seconds"), (memory_limit, names[1], "MiB")):
        if value is None and unit == "MiB":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a positive number of {unit}, got {value!r}")
        if not value > 0:  # NaN too
            raise ValueError(f"{name} must be a positive number of {unit}, got {value:g}")


def _child(job_path):
    """The child process: load the learner's functions into the lesson's namespace, call them on
    the cases, write one JSON line per case and per exercise."""
    global _active
    from . import exercises as specs

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    memory_limit = job.get("memory_limit")
    if memory_limit is not None and not _limit_memory(memory_limit):
        memory_limit = None  # no limit in force: a MemoryError is then the machine's
    results = open(job["results"], "a", encoding="utf-8")

    def send(**record):
        results.write(json.dumps(record) + "\n")
        results.flush()

    try:
        namespace = lesson_namespace(job["lesson"], with_solutions=False)
        chosen = [specs.find(job["lesson"], name) for name in job["exercises"]]
        cases = {spec.name: spec.make_cases(job["seed"]) for spec in chosen}
    except (MemoryError, ImportError) as e:
        if memory_limit is None or not _out_of_memory(e):
            raise
        sys.exit(f"the memory limit of {memory_limit:g} MiB is too low for the grader itself (loading lesson "
                 f"{job['lesson']} and its inputs): raise it (--memory-limit)")
    targets = []
    for spec in chosen:
        targets += [t for t in resolve_targets(spec.targets, namespace) if t not in targets]
    mine = {spec.name: {targets.index(t) for t in resolve_targets(spec.targets, namespace)} for spec in chosen}
    _install_recorders(targets, namespace)
    send(loading=True)
    load_errors = []
    for code in job["sources"]:
        try:
            exec(compile(code, job["file"], "exec"), namespace)
        except BaseException as e:  # noqa: B036  (the learner's code at definition time)
            load_errors.append(_error_text(e, job["file"], memory_limit))
    for spec in chosen:
        send(start=spec.name)
        _used.clear()
        fn = namespace.get(spec.name)
        for label, args in cases[spec.name]:
            if fn is None:
                send(exercise=spec.name, label=label, error="your function could not be defined: "
                     + "; ".join(load_errors), value=None, changed=[])
                continue
            before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
            _active = True
            try:
                result, error = fn(*args.values()), None
            except BaseException as e:  # noqa: B036  (an exit or a KeyboardInterrupt is the learner's too)
                if isinstance(e, MemoryError):  # free what the learner's frames hold: room to report it
                    traceback.clear_frames(e.__traceback__)
                error = _error_text(e, job["file"], memory_limit)
            finally:
                _active = False
            changed = [k for k, v in before.items()
                       if not (v.shape == args[k].shape and np.array_equal(v, args[k], equal_nan=True))]
            value = None
            if error is None:
                try:
                    value = encode(plain(spec.observed(args, result)))
                except Exception as e:
                    error = (f"your function returned {e}" if isinstance(e, TypeError)
                             else _error_text(e, job["file"], memory_limit))
            send(exercise=spec.name, label=label, error=error, value=value, changed=changed)
        send(done=spec.name, used=sorted({label for label, indices in _used if indices & mine[spec.name]}))


@dataclass
class _ChildRun:
    records: dict        # exercise -> [case records]
    used: dict           # exercise -> [target labels]
    stopped: dict        # exercise -> why it has no results
    printed: str


def _run_child(lesson_name, names, sources, file, seed, time_limit, memory_limit):
    """Run the learner's functions in child processes until every exercise has results or a
    reason why not (a time limit, a crash); a crash in one exercise does not stop the others.
    memory_limit: MiB of address space for each child (None: no limit)."""
    records, used, stopped, printed = {n: [] for n in names}, {}, {}, []
    pending = list(names)
    while pending:
        with tempfile.TemporaryDirectory(prefix="tinylm-grade-") as tmp:
            job = {"lesson": lesson_name, "exercises": pending, "sources": sources, "file": str(file),
                   "seed": seed, "results": str(Path(tmp) / "results.jsonl"), "memory_limit": memory_limit}
            (Path(tmp) / "job.json").write_text(json.dumps(job), encoding="utf-8")
            Path(job["results"]).touch()
            with open(Path(tmp) / "printed.txt", "w+", encoding="utf-8", errors="replace") as out:
                process = subprocess.Popen([*python_module("tinylm.grading"), str(Path(tmp) / "job.json")],
                                           cwd=tmp, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env={**os.environ, **CHILD_ENV})
                current, started, offset, loaded, finished = None, time.monotonic(), 0, False, set()
                timed_out = False
                while True:
                    code = process.poll()
                    with open(job["results"], encoding="utf-8") as f:
                        f.seek(offset)
                        chunk = f.read()
                    complete = chunk[:chunk.rfind("\n") + 1]
                    offset += len(complete.encode("utf-8"))
                    for line in complete.splitlines():
                        record = _record(line)
                        if record is None:
                            continue
                        if record.get("loading"):
                            loaded, started = True, time.monotonic()
                        elif "start" in record and record["start"] in records:
                            current, started = record["start"], time.monotonic()
                        elif "exercise" in record and record["exercise"] == current:
                            records[current].append(record)
                        elif "done" in record and record["done"] == current:
                            used[current] = [str(u) for u in record.get("used", [])][:20]
                            finished.add(current)
                            current, started = None, time.monotonic()
                    if code is not None:
                        break
                    if time.monotonic() - started > (time_limit if loaded else SETUP_LIMIT):
                        process.kill()
                        process.wait()
                        timed_out = True
                        break
                    time.sleep(0.02)
                out.seek(0)
                printed.append(out.read()[-20000:])
        for name in pending:
            if name in finished:
                continue
            if name == current:
                if timed_out:
                    stopped[name] = f"stopped after {time_limit:g} s (the time limit per exercise)"
                elif memory_limit is not None and _last_line(printed[-1]).startswith(": MemoryError"):
                    stopped[name] = f"used more than {memory_limit:g} MiB of memory (the memory limit)"
                else:
                    stopped[name] = f"the grading process ended while running it (exit status {process.returncode})"
            elif current is None:
                why = f"over {time_limit:g} s" if timed_out else f"exit status {process.returncode}"
                stopped[name] = f"your functions could not be loaded ({why})"
        if not loaded:  # the grader's own part failed (importing the lesson, building its inputs)
            raise RuntimeError(f"the grading process failed before running {file}" + _last_line(printed[-1]))
        pending = [n for n in pending if n not in finished and n not in stopped]
    return _ChildRun(records, used, stopped, "".join(printed))


def _record(line):
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return f": {lines[-1][:200]}" if lines else ""


# --- comparing ------------------------------------------------------------------------------
def _fmt(x):
    return f"{x:.6g}" if isinstance(x, (float, np.floating)) else repr(x.item() if hasattr(x, "item") else x)


def compare_values(expected, got, name, rtol, atol):
    """None when got matches expected, else one line naming the output: shapes, max abs and rel
    error, the first differing element."""
    if isinstance(expected, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"{name}: expected an array of shape {expected.shape}, got {_kind(got)}"
        if got.shape != expected.shape:
            return f"{name}: expected shape {expected.shape}, got shape {got.shape}"
        if (expected.dtype.kind == "b") != (got.dtype.kind == "b"):
            return f"{name}: expected {expected.dtype} values, got {got.dtype}"
        if expected.dtype.kind in "biu" and got.dtype.kind in "biu":
            bad = expected != got
        else:
            bad = ~np.isclose(got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                              equal_nan=True)
        if not bad.any():
            return None
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f"[{', '.join(map(str, index))}]" if index else ""
        text = f"{name}{at}: expected {_fmt(expected[index])}, got {_fmt(got[index])}"
        if expected.dtype.kind == "f" or got.dtype.kind == "f":
            with np.errstate(all="ignore"):
                diff = np.abs(got.astype(np.float64) - expected)
                abs_err = float(np.nanmax(np.where(np.isfinite(diff), diff, np.inf)))
                rel_err = abs_err / max(float(np.nanmax(np.abs(expected))) if expected.size else 0.0, 1e-300)
            text += f" (shape {got.shape}; max abs err {abs_err:.3g}, max rel err {rel_err:.3g}; {int(bad.sum())} of {bad.size} differ)"
        elif bad.size > 1:
            text += f" ({int(bad.sum())} of {bad.size} differ)"
        return text
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"{name}: expected {len(expected)} values, got {_kind(got)}"
        if len(got) != len(expected):
            return f"{name}: expected {len(expected)} values, got {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            problem = compare_values(e, g, f"{name}[{i}]" if name else f"value {i}", rtol, atol)
            if problem:
                return problem
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{name}: expected a dict with keys {', '.join(expected)}, got {_kind(got)}"
        missing = [k for k in expected if k not in got]
        if missing:
            return f"{name}: no value for {', '.join(map(repr, missing))}"
        for key in expected:
            problem = compare_values(expected[key], got[key], f"{name}[{key!r}]" if name else key, rtol, atol)
            if problem:
                return problem
        return None
    return None if expected == got else f"{name}: expected {expected!r}, got {_kind(got)}"


def _kind(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}" if value.ndim else f"the number {_fmt(value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return "None" if value is None else repr(value) if isinstance(value, str) else f"a {type(value).__name__}"


def _named(value, names):
    """Give a tuple result's parts the exercise's names, for messages."""
    if names and isinstance(value, (list, tuple)) and len(value) == len(names):
        return dict(zip(names, value))
    return value


# --- the report -----------------------------------------------------------------------------
@dataclass
class Check:
    label: str
    passed: bool
    detail: str = ""


@dataclass
class ExerciseResult:
    name: str
    points: float
    checks: list = field(default_factory=list)
    reason: str = ""           # why it scores 0 whatever its checks say (forbidden call, refused file)
    table: str = ""            # the three-way gradient table of a failing gradient exercise
    same_as_reference: bool = False

    @property
    def earned(self):
        if self.reason or not self.checks:
            return 0.0
        return round(self.points * sum(c.passed for c in self.checks) / len(self.checks), 2)


@dataclass
class GradeReport:
    lesson: str
    file: str
    seed: int
    exercises: list
    printed: str = ""

    @property
    def score(self):
        return round(sum(e.earned for e in self.exercises), 2)

    @property
    def total(self):
        return sum(e.points for e in self.exercises)

    def to_dict(self):
        return {"lesson": self.lesson, "file": self.file, "seed": self.seed, "score": self.score, "total": self.total,
                "exercises": {e.name: {"points": e.points, "earned": e.earned, "reason": e.reason,
                                       "checks": [(c.label, c.passed, c.detail) for c in e.checks]}
                              for e in self.exercises}}

    def text(self):
        from .table import format_table

        rows = [(e.name, f"{_num(e.earned)}/{_num(e.points)}", f"{sum(c.passed for c in e.checks)}/{len(e.checks)}",
                 "PASS" if e.earned == e.points else "FAIL") for e in self.exercises]
        lines = [f"lesson {self.lesson}, graded outside your file (seed {self.seed}: "
                 f"`tinylm grade {self.file} --seed {self.seed}` repeats these inputs)", "",
                 format_table(("exercise", "points", "checks", "result"), rows)]
        for e in self.exercises:
            lines += ["", f"{e.name}: {_num(e.earned)} of {_num(e.points)} points"]
            if e.reason:
                lines.append(f"  scores 0: {e.reason}")
            details = {c.detail for c in e.checks}
            if len(e.checks) > 1 and not any(c.passed for c in e.checks) and len(details) == 1:
                lines.append(f"  ✗ all {len(e.checks)} checks: {details.pop()}")
            else:
                lines += [f"  {'✓' if c.passed else '✗'} {c.label}" + ("" if c.passed else f": {c.detail}")
                          for c in e.checks]
            if e.table:
                lines += ["  " + line for line in e.table.splitlines()]
            if e.same_as_reference:
                lines.append("  (note: token for token the lesson's own solution)")
        printed = [line for line in self.printed.splitlines() if line.strip()][-PRINTED_LINES:]
        if printed:
            lines += ["", "your code printed (context only, never scored):"] + ["  | " + p for p in printed]
        lines += ["", f"score: {_num(self.score)}/{_num(self.total)}"]
        return "\n".join(lines)


def _num(x):
    return f"{x:g}"


# --- grading --------------------------------------------------------------------------------
def _same_code(a, b):
    return ast.dump(a, annotate_fields=False) == ast.dump(b, annotate_fields=False)


def _helpers(tree, lesson_names, start):
    """The learner's own top-level functions that the functions in `start` call, transitively,
    and the allowed imports of the file; lesson helpers and exercises are not among them."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    own = {name: node for name, node in defs.items() if name not in lesson_names}
    seen, todo = set(), list(start)
    while todo:
        node = todo.pop()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and sub.id in own and sub.id not in seen:
                seen.add(sub.id)
                todo.append(own[sub.id])
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and _allowed_import(n)]
    return [own[name] for name in sorted(seen)], imports


def grade(file, seed=None, time_limit=TIME_LIMIT, memory_limit=MEMORY_LIMIT):
    """Grade a learner's copy of a lesson (.py or .ipynb): a GradeReport. time_limit: seconds per
    exercise; memory_limit: MiB of address space for the process that runs the learner's code
    (None: no limit; see _limit_memory for the systems that enforce it). An exercise whose code
    asks for more fails its checks with "used more than N MiB of memory"."""
    from . import exercises as specs

    check_limits(time_limit, memory_limit)
    file = Path(file)
    source = learner_source(file)
    lesson_path = which_lesson(file, source)
    lesson_name = lesson_path.stem
    chosen = specs.for_lesson(lesson_name)
    seed = secrets.randbelow(2 ** 31) if seed is None else int(seed)
    results = {s.name: ExerciseResult(s.name, s.points) for s in chosen}
    report = GradeReport(lesson_name, str(file), seed, list(results.values()))

    def refuse(reason, names=None):
        for name in names or results:
            results[name].reason = reason
        return report

    if MARKER.search(source):
        return refuse("this file still holds the lesson's # BEGIN SOLUTION markers: it is the installed lesson "
                      "with its solutions, not your exercise copy (write one with "
                      f"`tinylm exercise {lesson_name[:2]} --out DIR`)")
    try:
        tree = _parse(source)
    except SyntaxError as e:
        return refuse(f"your file does not parse: line {e.lineno}: {e.msg}")
    namespace, reference_nodes = _reference(lesson_name)
    lines = source.splitlines(keepends=True)
    lesson_names = set(namespace) | set(reference_nodes)
    written_by_exercise = any(HEADER.match(line) for line in source.splitlines()[:5])
    defs = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            defs[node.name] = node  # the last definition wins, as when Python runs the file
    to_run, sources = [], []
    for spec in chosen:
        node = defs.get(spec.name)
        if node is None:
            refuse(f"your file has no top-level function {spec.name}", [spec.name])
            continue
        helpers, imports = _helpers(tree, lesson_names, [node])
        targets = resolve_targets(spec.targets, namespace)
        escapes, uses = static_problems([node, *helpers], namespace, targets, {n.name for n in helpers})
        same = _same_code(node, reference_nodes[spec.name])
        results[spec.name].same_as_reference = same
        if escapes:
            refuse(f"your code {escapes[0]}; not run", [spec.name])
            continue
        if uses:
            results[spec.name].reason = (f"it uses {', '.join(uses)}, which this exercise asks you to write "
                                         "yourself")
        if same and not written_by_exercise:
            refuse("this is the installed lesson's solution, in a file that `tinylm exercise` did not write "
                   "(its first line is not the exercise header)", [spec.name])
            continue
        to_run.append(spec.name)
        for part in [*imports, *helpers, node]:
            code = _segment(lines, part)
            if code not in sources:
                sources.append(code)
    if to_run:
        child = _run_child(lesson_name, to_run, sources, file, seed, time_limit, memory_limit)
        report.printed = child.printed
        with _REFERENCE_LOCK:
            for spec in chosen:
                if spec.name in to_run:
                    _score(spec, results[spec.name], child, seed, namespace)
    return report


def _score(spec, result, child, seed, namespace):
    """Compare what the learner's function returned with the reference on the same cases."""
    if spec.name in child.stopped:
        result.reason = result.reason or child.stopped[spec.name]
    if child.used.get(spec.name):
        result.reason = (f"it called {', '.join(sorted(set(child.used[spec.name])))} while running, which this "
                         "exercise asks you to write yourself")
    reference = namespace[spec.name]
    got_by_label = {r.get("label"): r for r in child.records.get(spec.name, [])}
    first_failure = None
    for label, args in spec.make_cases(seed):
        record = got_by_label.get(label)
        if record is None:
            result.checks.append(Check(label, False, "not reached"))
            continue
        expected = plain(spec.observed(args, reference(*args.values())))
        if record.get("error"):
            result.checks.append(Check(label, False, str(record["error"])[:500]))
            continue
        try:
            got = decode(record.get("value"))
        except (ValueError, TypeError, KeyError) as e:
            result.checks.append(Check(label, False, f"unreadable result ({e})"))
            continue
        problem = compare_values(_named(expected, spec.outputs), _named(got, spec.outputs), "", spec.rtol,
                                 spec.atol)
        changed = [str(c) for c in record.get("changed", [])][:5]
        if problem is None and changed:
            problem = f"your function changed its argument {', '.join(changed)} in place"
        result.checks.append(Check(label, problem is None, (problem or "").lstrip(": ")))
        if problem and first_failure is None:
            first_failure = (label, args, got)
    if spec.gradient is not None and first_failure is not None:
        result.table = _gradient_table(spec, *first_failure)


def _gradient_table(spec, label, args, got):
    """Autograd, central differences and the learner's gradients, side by side, for one case."""
    from .check import compare

    try:
        fn, inputs, yours = spec.gradient(args, got)
        small = sum(np.size(v.data if hasattr(v, "data") else v) for v in inputs.values()) <= 400
        if not small:
            return ""
        report = compare(fn, lambda w, **_: {n: w * np.asarray(g, dtype=np.float64) for n, g in yours.items()},
                         inputs)
    except Exception as e:  # a gradient of the wrong shape or kind: the check above says what is wrong
        return f"(no three-way table: {str(e).splitlines()[0] if str(e) else type(e).__name__})"
    return report.table(f"gradients three ways on “{label}”: autograd vs numeric vs yours (formula)")


# --- the commands ---------------------------------------------------------------------------
def main_grade(args):
    """`tinylm grade FILE [--seed N] [--time-limit S] [--memory-limit MIB]`: exit 0 only at full marks."""
    check_limits(args.time_limit, args.memory_limit, ("--time-limit", "--memory-limit"))
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    report = grade(args.file, seed=args.seed, time_limit=args.time_limit, memory_limit=args.memory_limit)
    print(report.text())
    return 0 if report.score == report.total else 1


def main_hint(args):
    """`tinylm hint NN [EXERCISE] [--level 1|2|3]`."""
    from . import exercises as specs
    from .lesson import find

    path = find(args.lesson)
    chosen = specs.for_lesson(path.stem)
    if args.exercise is not None:
        names = [s.name for s in chosen]
        if args.exercise not in names:
            raise ValueError(f"lesson {path.stem} has no exercise {args.exercise!r}: expected one of {', '.join(names)}")
        chosen = [s for s in chosen if s.name == args.exercise]
    for spec in chosen:
        print(f"{path.stem} · {spec.name} ({_num(spec.points)} points) — hint {args.level} of 3:")
        print(f"  {specs.hint(spec, args.level)}")
    return 0


if __name__ == "__main__":
    _child(sys.argv[1])
