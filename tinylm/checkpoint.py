"""Checkpoints: one file with everything needed to sample from a model or resume training.

The file is a NumPy .npz archive: every array under its name ("model/…", "optim/…") and one
JSON document ("meta": model kind and config, tokenizer, step, RNG states, anything else).
It is written to a temporary file in the same folder and renamed into place, so a crash
mid-write never leaves a broken checkpoint behind.
"""
import json
import os
import zipfile

import numpy as np

from .files import atomic_write


def save(path, arrays, meta):
    """Write arrays (name -> NumPy array) and meta (JSON-serialisable dict) to `path`, atomically."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    payload = dict(arrays)
    payload["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload), binary=True)


def load(path):
    """(arrays, meta) from a checkpoint; a missing, corrupt or truncated file gets a one-line error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, UnicodeDecodeError) as e:
        reason = "no 'meta' entry" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise ValueError(f"checkpoint {path} is corrupt or truncated ({reason})") from None
    if not isinstance(meta, dict) or "model" not in meta:
        raise ValueError(f"checkpoint {path} is not a tinylm checkpoint (no model description)")
    return arrays, meta
