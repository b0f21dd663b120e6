"""tinylm grade: the learner's functions run outside their file, on the grader's inputs, against the
lesson's solutions. Every lesson's solution scores full marks, a blank 0, a wrong answer is
named with expected vs got, and the ways a file could fool the grader score 0 with a reason."""
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tinylm import exercises, grading, lesson
from tinylm.cli import main

LESSONS = lesson.lesson_files()
BLANK = re.compile(r"raise NotImplementedError\(.*\)  # your code here")


def learner_copy(name, folder, edits=(), header=True, file_name=None):
    """The installed lesson as a learner who typed its solutions would have it (the solution
    markers gone), with `edits` (old, new) applied; header: the line `tinylm exercise` writes."""
    path = lesson.find(name)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    text = "".join(line for line in lines if not (lesson._BEGIN.match(line.rstrip("\n")) or lesson._END.match(line)))
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    target = folder / (file_name or path.name)
    target.write_text((grading.header_line(path.stem) if header else "") + text, encoding="utf-8")
    return target


def blank_copy(name, folder, body=None, top=""):
    """`tinylm exercise`'s copy; body replaces every blank, `top` goes right after the header."""
    path = lesson.write_exercise(name, folder)
    text = path.read_text(encoding="utf-8")
    if body is not None:
        text = BLANK.sub(body, text)
    header, rest = text.split("\n", 1)
    path.write_text(header + "\n" + top + rest, encoding="utf-8")
    return path


def by_name(report):
    return {e.name: e for e in report.exercises}


def test_every_exercise_of_every_lesson_has_a_spec():
    for name, path in LESSONS.items():
        assert [s.name for s in exercises.for_lesson(name)] == grading.exercise_names(
            path.read_text(encoding="utf-8")), name
        for spec in exercises.for_lesson(name):
            assert all(len(spec.hints[i]) > 20 for i in (0, 1)) and exercises.hint(spec, 3), spec.name
            assert len({label for label, _ in spec.make_cases(3)}) == len(spec.make_cases(3)) >= 3, spec.name


def test_every_lessons_solution_scores_full_marks(tmp_path):
    def one(name):
        start = time.perf_counter()
        report = grading.grade(learner_copy(name, tmp_path), seed=11)
        return name, report, time.perf_counter() - start

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, LESSONS))
    for name, report, seconds in results:
        assert report.score == report.total > 0, report.text()
        assert all(e.same_as_reference and not e.reason for e in report.exercises), name
    print("seconds to grade:", {name: round(seconds, 1) for name, _, seconds in results})


def test_a_blank_copy_scores_zero_and_the_rest_of_the_file_never_runs(tmp_path, capsys):
    report = grading.grade(blank_copy("02", tmp_path), seed=1)
    assert report.score == 0 and report.total == 4
    assert all(c.detail.startswith("not implemented yet") for c in report.exercises[0].checks)
    assert "all 6 checks: not implemented yet" in report.text()
    assert "(more: tinylm hint 02 rnn_bptt --level 2)" in (tmp_path / "02_rnn.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("name, old, new, exercise, expected", [
    ("01", "return np.outer(g, x), g", "return np.outer(g, x), -g", "mse_gradients",
     [r"dL/db\[0\]: expected -1\.65, got 1\.65 \(shape \(2,\); max abs err 3\.3, max rel err 2", r"b +\(2,\).* FAIL"]),
    ("03", "a_i, a_f, a_g, a_o = np.split", "a_i, a_f, a_o, a_g = np.split", "lstm_cell_step",
     [r"h'\[0, 0\]: expected [-0-9.e]+, got [-0-9.e]+ \(shape \(1, 4\); max abs err"]),
    ("05", "np.swapaxes(d_s, -1, -2) @ q * s, d_v", "-np.swapaxes(d_s, -1, -2) @ q * s, d_v", "attention_backward",
     [r"dK\[0, 0\]: expected", r"\bk +\(5, 4\) .* FAIL", r"\bq +\(3, 4\) .* PASS"]),
])
def test_a_wrong_answer_is_named_with_expected_and_got(tmp_path, name, old, new, exercise, expected):
    report = grading.grade(learner_copy(name, tmp_path, [(old, new)]), seed=5)
    result = by_name(report)[exercise]
    assert 0 <= result.earned < result.points and not result.reason
    text = report.text()
    for pattern in expected:
        assert re.search(pattern, text), (pattern, text)


def test_exiting_monkeypatching_and_edited_checks_at_top_level_change_nothing(tmp_path):
    top = ("import sys\nimport tinylm.lesson, tinylm.grading\n"
           "tinylm.lesson._evaluate = lambda condition: (True, '')\n"
           "tinylm.grading.compare_values = lambda *args: None\nprint('score: 2/2')\nsys.exit(0)\n")
    path = blank_copy("01", tmp_path, top=top)
    text = re.sub(r'graded\("(.*?)", .*\)', r'graded("\1", True)', path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    report = grading.grade(path, seed=2)
    assert report.score == 0 and report.exercises[0].checks[0].detail.startswith("not implemented yet")


def test_exiting_inside_the_exercise_scores_zero_with_the_reason(tmp_path):
    report = grading.grade(blank_copy("01", tmp_path, body="import sys; sys.exit(0)"), seed=2)
    assert report.score == 0
    assert report.exercises[0].reason.startswith("your code imports sys (an exercise may import only numpy")
    path = blank_copy("13", tmp_path / "b", body="raise SystemExit(0)")
    assert by_name(grading.grade(path, seed=2))["update_scale"].checks[0].detail.startswith("it called exit(0)")


def test_calling_the_library_function_the_exercise_reimplements_scores_zero(tmp_path):
    f1 = "return precision_recall_f1(pred, true)['f1']"
    quantize = "return quantize_weight(W)"
    layer_norm = "d = layernorm_formula(g, x, gamma, np.zeros_like(gamma))\n    return d['input'], d['weight'], d['bias']"
    mask = "return np.isinf(nn.generate_square_subsequent_mask(length).numpy())"
    cases = {"15": [(f1, "macro_f1", "tinylm.metrics.precision_recall_f1")],
             "16": [(quantize, "quantize_per_channel", "tinylm.compress.quantize_weight")],
             "07": [(layer_norm, "layer_norm_backward", "tinylm.check.attention_formulas.layernorm_formula"),
                    (mask, "blocked_mask", "tinylm.nn.transformer.generate_square_subsequent_mask")]}
    for number, uses in cases.items():
        path = blank_copy(number, tmp_path / number)
        for body, exercise, _ in uses:
            text = path.read_text(encoding="utf-8")
            line = BLANK.search(text, text.index(f"def {exercise}("))
            path.write_text(text[:line.start()] + body + text[line.end():], encoding="utf-8")
        report = by_name(grading.grade(path, seed=3))
        for _, exercise, used in uses:
            result = report[exercise]
            assert result.earned == 0 and used in result.reason, (exercise, result.reason)
            assert sum(c.passed for c in result.checks) >= len(result.checks) - 1, "right values (but ε), yet 0"


def test_a_call_the_source_does_not_show_is_caught_at_run_time(tmp_path):
    body = ("d = np\n        block = d.dot(A[i:i + 2], Bt[j:j + 2].T)\n"
            "        c00, c01, c10, c11 = block.ravel()")
    result = by_name(grading.grade(blank_copy("18", tmp_path, body=body), seed=4))["tile_2x2"]
    assert result.earned == 0 and "it called numpy.dot while running" in result.reason


def test_copies_of_the_installed_lesson_score_zero(tmp_path):
    installed = tmp_path / "01_tensors_chain_rule.py"
    installed.write_text(lesson.find("01").read_text(encoding="utf-8"), encoding="utf-8")
    report = grading.grade(installed, seed=1)
    assert report.score == 0 and "# BEGIN SOLUTION markers" in report.exercises[0].reason
    (tmp_path / "stripped").mkdir()
    stripped = grading.grade(learner_copy("01", tmp_path / "stripped", header=False), seed=1)
    assert stripped.score == 0 and "`tinylm exercise` did not write" in stripped.exercises[0].reason


def test_code_that_reaches_outside_the_exercise_is_not_run(tmp_path):
    for body in ("return open('/etc/passwd').read()", "return W.__class__", "return getattr(np, 'outer')(W, x), b"):
        folder = tmp_path / str(abs(hash(body)))
        result = grading.grade(blank_copy("01", folder, body=body), seed=1).exercises[0]
        assert result.earned == 0 and result.reason.endswith("; not run") and not result.checks, body


def test_a_learner_file_that_loops_forever_is_stopped(tmp_path):
    path = blank_copy("13", tmp_path, body="while True:\n            pass")
    start = time.perf_counter()
    report = grading.grade(path, seed=1, time_limit=2)
    assert time.perf_counter() - start < 30
    assert report.score == 0 and "stopped after 2 s (the time limit per exercise)" in report.exercises[0].reason


def test_own_helpers_and_printed_output_context_only(tmp_path):
    edits = [("def macro_f1(pred, true):", "def f1_of(tp, fp, fn):\n    print('score: 5/5')\n"
              "    return 2 * tp / (2 * tp + fp + fn)\n\n\ndef macro_f1(pred, true):"),
             ("scores.append(2 * tp / (2 * tp + fp + fn))", "scores.append(f1_of(tp, fp, fn))"),
             ("return 1.0 if c >= r else math.exp(1 - r / c)", "return 1.0 if c > r else math.exp(1 - r / c) + 0.1")]
    report = grading.grade(learner_copy("15", tmp_path, edits), seed=9)
    assert by_name(report)["macro_f1"].earned == 2 and not by_name(report)["macro_f1"].same_as_reference
    assert 0 < by_name(report)["brevity_penalty"].earned < 1
    assert "your code printed (context only, never scored):\n  | score: 5/5" in report.text()
    assert report.score == 4 + by_name(report)["brevity_penalty"].earned
    assert report.text().endswith(f"score: {report.score:g}/5")


def test_exercise_refuses_to_overwrite_and_hint_has_three_levels(tmp_path, capsys):
    assert main(["exercise", "12", "--out", str(tmp_path)]) == 0
    copy = tmp_path / "12_generation.py"
    copy.write_text(copy.read_text(encoding="utf-8") + "# my work\n", encoding="utf-8")
    assert main(["exercise", "12", "--out", str(tmp_path)]) == 2
    assert "exists (your work?): pass --force" in capsys.readouterr().err
    assert copy.read_text(encoding="utf-8").endswith("# my work\n")
    assert main(["exercise", "12", "--out", str(tmp_path), "--force"]) == 0
    assert not copy.read_text(encoding="utf-8").endswith("# my work\n")
    capsys.readouterr()
    spec = exercises.find("12_generation", "top_p_filter")
    for level in (1, 2, 3):
        assert main(["hint", "12", "top_p_filter", "--level", str(level)]) == 0
        assert exercises.hint(spec, level) in capsys.readouterr().out
    assert exercises.hint(spec, 3).startswith("sort descending")
    assert main(["hint", "12", "nucleus"]) == 2
    assert "has no exercise 'nucleus': expected one of top_p_filter" in capsys.readouterr().err


def test_grade_cli_exit_status(tmp_path, capsys):
    assert main(["grade", str(learner_copy("09", tmp_path)), "--seed", "3"]) == 0
    assert "score: 2/2" in capsys.readouterr().out
    assert main(["grade", str(blank_copy("09", tmp_path / "b"))]) == 1
    assert "score: 0/2" in capsys.readouterr().out
    assert main(["grade", str(tmp_path / "nothing.py")]) == 2
    assert main(["grade", str(tmp_path / "09_causal_pretraining.py"), "--time-limit", "0"]) == 2
    assert "--time-limit must be a positive number of seconds, got 0" in capsys.readouterr().err


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory limit is Linux's RLIMIT_AS")


@linux_only
def test_code_that_asks_for_more_memory_than_the_limit_is_reported_as_such(tmp_path):
    # 16 GiB at once (np.empty touches none of it: were the limit not in force, this would fail the
    # checks, not the machine), then a list growing 8 MiB at a time up to the limit
    edits = [("    best, best_epoch, stale = np.inf, 0, 0", "    big = np.empty(2 ** 31)\n"
              "    best, best_epoch, stale = np.inf, 0, 0")]
    path = learner_copy("14", tmp_path, edits)
    report = grading.grade(path, seed=1, memory_limit=512)
    result = by_name(report)["early_stopping"]
    assert result.earned == 0 and result.checks
    for check in result.checks:
        assert check.detail.startswith("used more than 512 MiB of memory (the memory limit); Unable to allocate "
                                       "16.0 GiB"), check.detail
        assert re.search(r"\(your line \d+: big = np\.empty\(2 \*\* 31\)\)$", check.detail), check.detail
    assert by_name(report)["soft_vote"].earned == by_name(report)["soft_vote"].points  # the same process goes on
    assert "used more than 512 MiB of memory" in report.text()
    grow = ("def grow():\n    chunks, chunk = [], np.ones(2 ** 20)\n    while True:\n"
            "        chunks.append(chunk.copy())\n\n\ndef soft_vote(probs_list):\n    grow()")
    (tmp_path / "b").mkdir()
    path = learner_copy("14", tmp_path / "b", [("def soft_vote(probs_list):", grow)])
    result = by_name(grading.grade(path, seed=1, memory_limit=512))["soft_vote"]
    assert result.earned == 0 and result.checks
    assert all(c.detail.startswith("used more than 512 MiB of memory (the memory limit); Unable to allocate "
                                   "8.00 MiB") for c in result.checks), result.checks[0].detail
    # memory still held after the MemoryError (a default argument outlives the call), taken a few bytes
    # at a time: the process may have no room left to go on, and then the exercise it ran says why
    held = ("def grow(chunks=[]):\n    while True:\n        chunks.append(len(chunks) * 1.5)\n\n\n"
            "def soft_vote(probs_list):\n    grow()")
    (tmp_path / "c").mkdir()
    report = grading.grade(learner_copy("14", tmp_path / "c", [("def soft_vote(probs_list):", held)]), seed=1,
                           memory_limit=512)
    result = by_name(report)["soft_vote"]
    assert result.earned == 0 and (result.reason or result.checks[0].detail).startswith(
        "used more than 512 MiB of memory (the memory limit)"), (result.reason, result.checks)
    assert by_name(report)["early_stopping"].earned == 2


@linux_only
def test_a_normal_solution_passes_under_a_tight_memory_limit_and_the_grader_needs_some(tmp_path):
    assert grading.grade(learner_copy("14", tmp_path), seed=2, memory_limit=512).score == 3
    assert grading.grade(learner_copy("18", tmp_path), seed=2, memory_limit=1024).score == 4  # imports Numba
    with pytest.raises(RuntimeError, match=r"the memory limit of 20 MiB is too low for the grader itself"):
        grading.grade(learner_copy("13", tmp_path), seed=2, memory_limit=20)


def test_a_bad_memory_limit_is_one_line(tmp_path, capsys):
    path = learner_copy("09", tmp_path)
    for bad, shown in (("0", "0"), ("-5", "-5"), ("nan", "nan")):
        assert main(["grade", str(path), "--memory-limit", bad]) == 2
        assert f"--memory-limit must be a positive number of MiB, got {shown}\n" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^memory_limit must be a positive number of MiB, got '4 GB'$"):
        grading.grade(path, memory_limit="4 GB")
    assert main(["grade", str(path), "--seed", "3", "--memory-limit", "2048"]) == 0
