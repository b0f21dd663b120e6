"""Writing files so that nothing a user saved is ever lost or half-written."""
import os
import tempfile


def atomic_write(path, write, binary=False):
    """Call write(f) on a temporary file in path's folder, then rename it onto path.

    A crash mid-write leaves the old file as it was (and no temporary file behind): os.replace
    is atomic within one file system. A missing folder is a FileNotFoundError naming it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no folder {folder}")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
