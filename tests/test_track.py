"""The build-the-engine track: the reference solutions pass every step's checks; the skeleton is
the solutions with each solution block replaced by its raise; the CLI starts and checks it; a
wrong backward is caught with the tensor named and the numbers shown."""
import re
import shutil

import pytest

from tinylm import track
from tinylm.cli import main
from tinylm.track.checks import STEPS


def test_the_reference_solutions_pass_every_step():
    results = track.check(track.reference_engine(), examples=15, report=lambda line: None)
    assert [r.step.number for r in results] == list(range(1, 11))
    assert all(r.passed for r in results), [(r.step.number, r.detail) for r in results if not r.passed]
    assert "loss 4." in results[-1].detail  # the GPT's training run, reported


def test_the_skeleton_is_the_solutions_with_each_block_blank():
    sources = track.engine_sources()
    assert set(sources) == {"__init__.py", "tensor.py", "ops.py", "kernels.py", "optim.py", "lstm.py",
                            "attention.py", "gpt.py"}
    steps = set()
    for name, source in sources.items():
        blank = track.skeleton(source)
        assert "BEGIN SOLUTION" not in blank and "END SOLUTION" not in blank
        blocks = source.count("# BEGIN SOLUTION")
        raises = re.findall(r"raise NotImplementedError\(['\"]step (\d+): ", blank)
        assert len(raises) == blocks, name
        steps.update(int(n) for n in raises)
    assert steps == {s.number for s in STEPS} == set(range(1, 11))


def test_start_and_check_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "course"
    assert main(["track", "start", "--out", str(out)]) == 0
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert (out / "engine" / "ops.py").is_file() and " 1. elementwise ops" in readme and "track check" in readme
    assert main(["track", "start", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["track", "check", str(out), "--step", "1", "--examples", "3"]) == 1
    report = capsys.readouterr().out
    assert "step  1 FAIL" in report and "not written yet: step 1: " in report
    assert main(["track", "check", str(out), "--examples", "3"]) == 1
    assert "steps 2-10 use this one" in capsys.readouterr().out

    # the learner writes step 1: ops.py as the reference has it; step 1 passes, step 2 is still to do
    (out / "engine" / "ops.py").write_text(track.engine_sources()["ops.py"], encoding="utf-8")
    assert main(["track", "check", str(out), "--step", "1", "--examples", "3"]) == 0
    assert main(["track", "check", str(out), "--step", "3", "--examples", "3"]) == 1
    assert "not written yet: step 3: " in capsys.readouterr().out
    assert main(["track", "check", str(out), "--step", "11"]) == 2
    assert "--step must be 1..10" in capsys.readouterr().err
    assert main(["track", "check", str(tmp_path / "nothing")]) == 2


def test_a_wrong_backward_is_caught_and_shown(tmp_path):
    shutil.copytree(track.reference_engine().__path__[0], tmp_path / "engine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    ops = tmp_path / "engine" / "ops.py"
    ops.write_text(ops.read_text(encoding="utf-8").replace("return g * b, g * a", "return g * b, g * b"),
                   encoding="utf-8")
    lines = []
    (result,) = track.check(track.load_engine(tmp_path), step=1, examples=10, report=lines.append)
    assert not result.passed
    assert re.search(r"Mul backward, dL/d\(input 1\): max abs error [0-9.e-]+, max rel error [0-9.e-]+; "
                     r"first difference at \(.*\): got -?[0-9.e-]+, expected -?[0-9.e-]+", result.detail)
    assert "Falsifying example" in result.detail or "Failing test case" in result.detail


@pytest.mark.parametrize("bad", ["--examples", "--step"])
def test_bad_numbers_are_one_line(tmp_path, capsys, bad):
    track.start(tmp_path)
    assert main(["track", "check", str(tmp_path), bad, "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
