"""Reading and writing files: nothing a user saved is ever lost or half-written, and a file that
is not what it should be is one clear line."""
import json
import os
import stat
import tempfile


def _umask():
    """The process's umask, read without leaving it changed (Linux: from /proc, no change at all)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)  # the strictest common mask for the instant it is read, then put back
    os.umask(mask)
    return mask


def atomic_write(path, write, binary=False):
    """Call write(f) on a temporary file in path's folder, then rename it onto path.

    A crash mid-write leaves the old file as it was (and no temporary file behind): os.replace
    is atomic within one file system. A missing folder is a FileNotFoundError naming it.
    The file gets the permissions open() would give it: an existing file's, else those the
    umask leaves of 0666 (0644 under the usual umask 022), so others can read what they may.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: no folder {folder}")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)  # mode 0600 until it is complete
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_bytes(path, what):
    """The bytes of the file at `path`. A missing file, or a folder, is one line naming it and `what`
    it should have been."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder, not a {what}") from None


def read_json(path, what, missing=None):
    """The JSON document in the file at `path`. A missing file, or one that is not JSON, is one line
    naming the file and `what` it should have been (missing: the message for a missing file)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(missing or f"no {what} at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a {what}: it is not valid JSON ({e})") from None
