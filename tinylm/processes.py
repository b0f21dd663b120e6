"""Child Python processes that import the tinylm this process imported."""
import sys


def python_module(module):
    """The command that runs `python -m module` in a child process, without the working folder at
    the front of its import path.

    `python -m` puts the working folder first, so run from a source checkout of tinylm, the child
    would import the folder tinylm/ there, which lacks tinylm.kernels (installation puts the
    kernels/ folder there), instead of the installed package: `tinylm train --nproc 2` in the
    checkout failed with "No module named 'tinylm.kernels'". Python 3.11's -P leaves the folder
    out; on 3.10 the child takes it out itself before running the module (runpy, as -m does)."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module]
    return [sys.executable, "-c", f"import runpy, sys; del sys.path[0]; "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"]
