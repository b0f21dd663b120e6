"""tinylm course build: student notebooks without solutions, instructor notebooks, an Otter-Grader
bundle per lesson; the round trip: build, fill in a right and a wrong answer, grade both with
`otter run` (the bundle's plugin calls tinylm's grader) and with `tinylm grade`."""
import json
import re
import subprocess
import sys

import pytest

from tinylm import grading
from tinylm.cli import main

RIGHT = "g = (W @ x + b) - y\n    return np.outer(g, x), g"
WRONG = "g = (W @ x + b) - y\n    return np.outer(g, x), -g"   # the sign of dL/db


def cells(path, kind="code"):
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == kind]


def filled(student, target, body):
    notebook = json.loads(student.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        text = re.sub(r"raise NotImplementedError\(.*\)  # your code here", body, "".join(cell["source"]))
        cell["source"] = text.splitlines(keepends=True)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(notebook), encoding="utf-8")
    return target


def otter_run(bundle, submission, folder):
    folder.mkdir()
    done = subprocess.run([sys.executable, "-m", "otter", "run", "-a", str(bundle), "-o", str(folder), "--no-logo",
                           str(submission)], cwd=folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    tests = json.loads((folder / "results.json").read_text(encoding="utf-8"))["tests"]
    return {t["name"]: (t["score"], t["max_score"]) for t in tests if "score" in t}, done.stdout


def test_course_build_and_the_otter_round_trip(tmp_path, capsys):
    out = tmp_path / "course"
    assert main(["course", "build", "--lessons", "01,13", "--out", str(out), "--time-limit", "20",
                 "--memory-limit", "2048"]) == 0
    assert "note:" not in capsys.readouterr().out  # otter-grader (the test extra) made the zips
    config = json.loads((out / "autograder" / "13_training_speed" / "otter_config.json").read_text(encoding="utf-8"))
    assert config["plugins"] == [{"tinylm.otter_plugin.TinylmGrader": {"time_limit": 20.0, "memory_limit": 2048.0}}]
    student, instructor = out / "student" / "01_tensors_chain_rule.ipynb", out / "instructor" / "01_tensors_chain_rule.ipynb"
    code = "\n".join(cells(student))
    assert "np.outer(g, x)" not in code and "BEGIN SOLUTION" not in code and "scale / 2" not in \
        "\n".join(cells(out / "student" / "13_training_speed.ipynb"))
    assert code.startswith(grading.header_line("01_tensors_chain_rule"))
    assert "# 张量与链式法则" in cells(student, "markdown")[0]
    assert "return np.outer(g, x), g" in "\n".join(cells(instructor))
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "otter run -a autograder/01_tensors_chain_rule-autograder.zip" in readme and "| 13_training_speed |" in readme
    tests = (out / "autograder" / "01_tensors_chain_rule" / "tests" / "mse_gradients.py").read_text(encoding="utf-8")
    assert tests.count("@test_case(") == 6 and "points = 2" in tests

    bundle = out / "autograder" / "01_tensors_chain_rule-autograder.zip"
    right = filled(student, tmp_path / "right" / "01_tensors_chain_rule.ipynb", RIGHT)
    wrong = filled(student, tmp_path / "wrong" / "01_tensors_chain_rule.ipynb", WRONG)
    scores, _ = otter_run(bundle, right, tmp_path / "right-results")
    assert scores == {"mse_gradients": (2.0, 2.0)}
    scores, printed = otter_run(bundle, wrong, tmp_path / "wrong-results")
    assert 0 <= scores["mse_gradients"][0] < 2.0
    assert "dL/db[0]: expected" in printed

    report = grading.grade(wrong, seed=1)
    assert report.score < report.total == 2 and grading.grade(right, seed=1).score == 2
    assert main(["course", "build", "--lessons", "01", "--out", str(out)]) == 2
    assert "is not empty: pass --force" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets")  # raised inside otter's own imports
def test_the_plugin_grades_under_its_configured_limits(monkeypatch, tmp_path):
    from tinylm import otter_plugin

    asked = []
    monkeypatch.setattr(otter_plugin, "grade", lambda path, **limits: asked.append(limits) or grading.GradeReport(
        "01_tensors_chain_rule", str(path), 0, []))
    monkeypatch.delenv(otter_plugin.RESULTS_ENV, raising=False)
    submission = tmp_path / "s.ipynb"
    for config, expected in ((None, {}), ({"memory_limit": 512}, {"memory_limit": 512}),
                             ({"time_limit": 5, "memory_limit": None}, {"time_limit": 5, "memory_limit": None})):
        otter_plugin.TinylmGrader(str(submission), None, config).before_execution(type("Nb", (), {"cells": []})())
        assert asked[-1] == expected
    with pytest.raises(ValueError, match=r"^otter_config.json: TinylmGrader has no setting 'memory': expected "
                                         r"time_limit and memory_limit$"):
        otter_plugin.TinylmGrader(str(submission), None, {"memory": 512}).before_execution(None)


def test_course_build_refuses_bad_limits_in_one_line(tmp_path, capsys):
    for flag, value, unit in (("--time-limit", "0", "seconds"), ("--memory-limit", "-1", "MiB")):
        assert main(["course", "build", "--lessons", "01", "--out", str(tmp_path / "c"), flag, value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{flag} must be a positive number of {unit}" in err
    assert not (tmp_path / "c").exists()  # refused before anything was written
