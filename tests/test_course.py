"""tinylm course build: student notebooks without solutions, instructor notebooks, an Otter-Grader
bundle per lesson; the round trip: build, fill in a right and a wrong answer, grade both with
`otter run` (the bundle's plugin calls tinylm's grader) and with `tinylm grade`."""
import json
import re
import subprocess
import sys

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
    assert main(["course", "build", "--lessons", "01,13", "--out", str(out)]) == 0
    assert "note:" not in capsys.readouterr().out  # otter-grader (the test extra) made the zips
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
