"""Every lesson runs to completion (fast mode), every source formula id is taught, and the
exercise / grade commands work (the grader itself: tests/test_grading.py)."""
import re
from pathlib import Path

import pytest

from tinylm import lesson

LESSONS = lesson.lesson_files()


def seed_ids():
    """The ids of SEEDS_GUIDE.md (from ../shared when present, else the copy in lessons/)."""
    guide = Path(__file__).resolve().parents[2] / "shared" / "SEEDS_GUIDE.md"
    if guide.is_file():
        return sorted(set(re.findall(r"^\| (\d{3}\.[a-z0-9.]+)", guide.read_text(encoding="utf-8"), re.M)))
    return (lesson.lessons_dir() / "seed_ids.txt").read_text(encoding="utf-8").split()


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs(name, tmp_path, capsys):
    assert lesson.run(LESSONS[name], fast_mode=True, out=tmp_path / "out") > 0
    assert "✓" in capsys.readouterr().out


def test_every_source_formula_id_is_taught():
    taught = set()
    for path in LESSONS.values():
        taught.update(lesson.describe(path)[1])
    missing = [i for i in seed_ids() if i not in taught]
    assert not missing, f"ids no lesson cites: {missing}"


def test_lesson_cli(tmp_path, capsys):
    from tinylm.cli import main

    assert main(["lesson", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in LESSONS)
    assert main(["lesson", "run", "01", "--fast", "--out", str(tmp_path)]) == 0
    assert "finished" in capsys.readouterr().out and (tmp_path / "01" / "01_graph.dot").exists()
    assert main(["exercise", "01", "--out", str(tmp_path / "ex")]) == 0
    assert main(["grade", str(tmp_path / "ex" / "01_tensors_chain_rule.py")]) == 1
    assert "score: 0/2" in capsys.readouterr().out
    assert main(["lesson", "run", "99_nothing"]) == 2
    assert "no lesson '99_nothing'" in capsys.readouterr().err


def test_lesson_list_fits_100_columns_with_aligned_chinese(capsys):
    from tinylm.table import display_width, format_table

    assert display_width("注意力 ab") == 9 and display_width("e\u0301") == 1  # wide: 2 columns, combining: 0
    head, _, *rows = format_table(("check", "result"), [("注意力", "PASS"), ("softmax", "FAIL")]).splitlines()
    starts = [display_width(line[:line.index(word)]) for line, word in zip([head, *rows], ["result", "PASS", "FAIL"])]
    assert starts == [9, 9, 9]
    lesson.main_list(None)
    lines = capsys.readouterr().out.splitlines()
    assert max(display_width(line) for line in lines) <= lesson.LIST_WIDTH == 100
    column = lines[0].index("title")  # the names are ASCII: characters and columns agree up to here
    names = [line[:column].strip() for line in lines[2:]]
    assert [n for n in names if n] == list(LESSONS) and all(n == "" or line[column] != " "
                                                           for n, line in zip(names, lines[2:]))


def test_exercise_markers_are_checked():
    with pytest.raises(ValueError, match="never closed"):
        lesson.make_exercise("x = 1\n# BEGIN SOLUTION\ny = 2\n")
    with pytest.raises(ValueError, match="no solution blocks"):
        lesson.make_exercise("x = 1\n")
    text = lesson.make_exercise("def f():\n    # BEGIN SOLUTION hint: add one\n    return 1\n    # END SOLUTION\n")
    assert text == "def f():\n    raise NotImplementedError('add one')  # your code here\n"
