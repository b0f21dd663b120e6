"""The package's shape: what `import tinylm` makes usable, as `import torch` does for torch.nn."""
import subprocess
import sys
import tempfile

import pytest


def run_fresh(code):
    """Run `code` in a fresh interpreter (this one has imported every submodule already), outside
    the source tree, as a user would (its tinylm/ folder lacks the installed tinylm.kernels)."""
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=folder)


def test_import_tinylm_makes_the_subpackages_usable():
    done = run_fresh("import tinylm; tinylm.nn.Linear; tinylm.nn.functional.softmax; tinylm.optim.AdamW; "
                     "tinylm.check.gradcheck; tinylm.cat, tinylm.stack, tinylm.split, tinylm.where")
    assert done.returncode == 0, done.stderr


def test_import_tinylm_stays_light():
    """No compiler, GPU library or plotting library is loaded until something asks for it."""
    done = run_fresh("import sys, tinylm; print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & "
                     "{'numba', 'cupy', 'matplotlib', 'torch'})))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("version", [(3, 11), (3, 10)], ids=["-P", "runpy"])
def test_a_child_process_imports_this_tinylm_not_the_working_folders(tmp_path, monkeypatch, version):
    """tinylm's child processes (--nproc, the benches, the grader) started from a folder that holds
    a tinylm/ of its own (a source checkout: no tinylm.kernels there) still import this tinylm."""
    from tinylm import processes

    decoy = tmp_path / "tinylm"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the working folder\\'s tinylm')\n")
    plain = subprocess.run([sys.executable, "-m", "tinylm", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode != 0 and "the working folder's tinylm" in plain.stderr  # what `python -m` does
    monkeypatch.setattr(processes.sys, "version_info", version)
    done = subprocess.run([*processes.python_module("tinylm"), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: tinylm"), done.stderr
