"""atomic_write: files get the permissions open() would give them, so others can read them."""
import os
import stat

import pytest

from tinylm import files


@pytest.fixture
def restore_umask():
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def no_proc(*args, **kwargs):
    raise OSError("no /proc/self/status here")


@pytest.mark.usefixtures("restore_umask")
@pytest.mark.parametrize("proc", [True, False], ids=["umask-from-proc", "umask-from-os.umask"])
def test_a_new_file_follows_the_umask(tmp_path, monkeypatch, proc):
    if not proc:
        monkeypatch.setattr(files, "open", no_proc, raising=False)
    os.umask(0o022)
    files.atomic_write(tmp_path / "shared.txt", lambda f: f.write("hello"))
    assert mode(tmp_path / "shared.txt") == 0o644
    assert os.umask(0o022) == 0o022  # reading the umask left it as it was
    os.umask(0o077)
    files.atomic_write(tmp_path / "private.bin", lambda f: f.write(b"x"), binary=True)
    assert mode(tmp_path / "private.bin") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["private.bin", "shared.txt"]


@pytest.mark.usefixtures("restore_umask")
def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    files.atomic_write(path, lambda f: f.write("new"))
    assert path.read_text() == "new" and mode(path) == 0o640
