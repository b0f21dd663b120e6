"""Checkpoints: one file with everything needed to sample from a model or resume training.

The file is a NumPy .npz archive: every array under its name ("model/…", "optim/…") and one
JSON document ("meta": model kind and config, tokenizer, step, RNG states, anything else).
It is written to a temporary file in the same folder and renamed into place, so a crash
mid-write never leaves a broken checkpoint behind.
"""
import dataclasses
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
    """(arrays, meta) from a checkpoint; a missing file, a folder, a file that is not an .npz
    archive and a corrupt or truncated one each get a one-line error naming the path."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        magic = f.read(4)
    if not magic:
        raise ValueError(f"checkpoint {path} is corrupt or truncated (an empty file)")
    if magic != b"PK\x03\x04":  # every .npz is a zip archive
        raise ValueError(f"{path} is not a tinylm checkpoint (not an .npz archive)")
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


# --- models: saved and loaded here, whatever their kind ------------------------------------------
def save_model(path, model, meta=None, arrays=None, optimizer_state=None, step=None, state=None):
    """Write `model` (its kind, config and weights, and its tokenizer when it has one) to `path`,
    with `meta` and `arrays` added, and the optimizer's state_dict() when given (to resume training).
    `state` replaces model.state_dict() (mixed precision saves its float32 master weights)."""
    payload = {f"model/{k}": v.numpy() for k, v in (state or model.state_dict()).items()}
    payload.update(arrays or {})
    description = {"model": {"kind": model.kind, "config": dataclasses.asdict(model.config)}, **(meta or {})}
    if getattr(model, "tokenizer", None) is not None:
        description["tokenizer"] = model.tokenizer.to_dict()
    if step is not None:
        description["step"] = step
    if optimizer_state is not None:
        saved = optimizer_state
        for i, s in saved["state"].items():
            for k, v in s.items():
                payload[f"optim/{i}/{k}"] = v if isinstance(v, np.ndarray) else v.get()
        description["optimizer"] = {"steps": saved["steps"], "groups": saved["groups"]}
    save(path, payload, description)


def model_state(arrays):
    """The model's state dict inside a checkpoint's arrays (their "model/" names without the prefix)."""
    return {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}


def model_from(arrays, meta, path="the checkpoint"):
    """The model a checkpoint's (arrays, meta) describe, rebuilt and given its weights."""
    from .models import build_model

    kind = meta["model"]["kind"]
    try:
        model = build_model(kind, tokenizer=meta.get("tokenizer"), **meta["model"]["config"])
    except (TypeError, KeyError) as e:
        raise ValueError(f"{path}: the {kind!r} model it describes cannot be built ({e})") from None
    model.load_state_dict(model_state(arrays))
    return model


def load_model(path, kinds=None):
    """(model in evaluation mode, meta) from any checkpoint tinylm writes; its tokenizer, if it
    has one, is model.tokenizer. kinds: the model kinds the caller can use (others: one line)."""
    arrays, meta = load(path)
    kind = meta["model"]["kind"]
    if kinds is not None and kind not in kinds:
        raise ValueError(f"{path} holds a {kind!r} model; expected {' or '.join(map(repr, kinds))}")
    return model_from(arrays, meta, path).eval(), meta


def load_optimizer_state(optimizer, meta, arrays):
    """Give `optimizer` the state save_model wrote (moments by parameter position, settings, steps)."""
    state = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, i, name = key.split("/", 2)
            state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"steps": meta["optimizer"]["steps"], "groups": meta["optimizer"]["groups"],
                               "state": state})
