"""The package's shape: what `import tinylm` makes usable, as `import torch` does for torch.nn."""
import subprocess
import sys
import tempfile


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
