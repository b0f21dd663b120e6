"""`tinylm lesson run` reads as a lesson: explanations printed between the results (--quiet: the
results only), a folder per lesson for its pictures, a learner's file run with failing checks
reported; in a notebook a failing check is recorded and the pictures show inline; every lesson
opens with a glossary."""
import sys
import types

import pytest

from tinylm import lesson
from tinylm.cli import main

MINI = '''# %% [markdown]
# # 小课 A small lesson
#
# * **softmax** — turns scores into weights.

# %%
from tinylm.lesson import check, graded, picture, pyplot


def double(x):
    return 2 * x


# %% [markdown]
# ## 图 A picture
#
# Below, one line.

# %%
plt = pyplot()
fig, ax = plt.subplots()
ax.plot([0, 1], [0, 1])
picture(fig, "03_line.png")
check("two is two", 2 == 2)
graded("double(2) is 4", lambda: double(2) == 4)

# %%
print("the last cell ran")
'''


def write(tmp_path, text, name="03_mini.py"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_explanations_between_results_and_pictures_in_the_lessons_folder(tmp_path, capsys):
    path = write(tmp_path, MINI)
    assert main(["lesson", "run", str(path), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"its pictures and files go to {tmp_path / 'out' / '03'}" in out
    assert "小课 A small lesson\n=================" in out        # a heading, underlined by display width
    assert "• softmax — turns scores into weights." in out and "**" not in out
    assert out.index("图 A picture\n------------") < out.index("picture: ") < out.index("✓ two is two")
    assert (tmp_path / "out" / "03" / "03_line.png").is_file() and "wrote 03_line.png" in out

    assert main(["lesson", "run", str(path), "--quiet", "--out", str(tmp_path / "out")]) == 0
    quiet = capsys.readouterr().out
    assert "turns scores into weights" not in quiet and "Below, one line" not in quiet and "✓ two is two" in quiet


def test_a_learners_file_reports_failing_checks_and_goes_on(tmp_path, capsys):
    blank = MINI.replace("    return 2 * x\n", "    raise NotImplementedError('return twice x')\n")
    blank = blank.replace('print("the last cell ran")', 'double(1)\n\n# %%\nprint("the last cell ran")')
    assert main(["lesson", "run", str(write(tmp_path, blank)), "--fast", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "✗ double(2) is 4: not implemented yet (return twice x)" in out
    lines = blank.splitlines()
    cell, raised = lines.index("double(1)"), lines.index("    raise NotImplementedError('return twice x')") + 1
    assert f"✗ the cell at line {cell} stopped at line {raised}: NotImplementedError: return twice x" in out
    assert "the last cell ran" in out and "2 checks did not hold" in out
    assert main(["lesson", "run", str(tmp_path / "nothing.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_lesson_stops_at_a_failing_check_and_errors_name_the_files_line(tmp_path):
    path = write(tmp_path, MINI.replace("check(\"two is two\", 2 == 2)", "check(\"two is three\", 2 == 3)"))
    with pytest.raises(lesson.CheckFailed, match="two is three"):
        lesson.run(path, out=tmp_path)
    path = write(tmp_path, MINI.replace('print("the last cell ran")', "1 / 0"))
    with pytest.raises(ZeroDivisionError) as error:
        lesson.run(path, out=tmp_path)
    assert error.traceback[-1].lineno + 1 == MINI.splitlines().index('print("the last cell ran")') + 1


def test_in_a_notebook_a_failing_check_is_recorded_and_pictures_show_inline(tmp_path, monkeypatch, capsys):
    shown = []
    display = types.ModuleType("IPython.display")
    display.Image = lambda filename: ("image", filename)
    display.display = shown.append
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    monkeypatch.setattr(lesson, "_in_notebook", lambda: True)
    path = write(tmp_path, MINI.replace("check(\"two is two\", 2 == 2)", "check(\"two is three\", 2 == 3)"))
    lesson.run(path, out=tmp_path)       # no CheckFailed: Run All goes on
    out = capsys.readouterr().out
    assert "✗ two is three" in out and "the last cell ran" in out
    assert shown == [("image", str(tmp_path / "03" / "03_line.png"))]


def test_every_lesson_opens_with_a_glossary():
    required = {"01": ["梯度下降", "损失函数", "学习率", "优化器"], "05": ["查询", "值", "注意力分数"], "07": ["变换器"],
                "09": ["损失函数", "优化器", "学习率", "变换器"]}
    for name, path in lesson.lesson_files().items():
        first = lesson.cells(path.read_text(encoding="utf-8"))[0]
        assert "术语 Glossary" in first, name
        glossary = first[first.index("术语 Glossary"):]
        for term in required.get(name[:2], []):
            assert term in glossary, (name, term)
