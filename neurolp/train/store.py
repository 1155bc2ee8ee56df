"""The checkpoint store: where finished training runs publish their models and RSA finds them.

The store is a folder (``$NEUROLP_CHECKPOINTS``, else ``$XDG_CACHE_HOME/neurolp/checkpoints``,
else ``~/.cache/neurolp/checkpoints``; the CLI's ``--store`` overrides both). A finished
``neurolp train`` copies its selected model (best validation accuracy) to
``<store>/<dataset>/<model>/<model>__<dataset>__s<seed>__<UTC time>.safetensors``. Any neurolp
checkpoint placed anywhere below the store is found as well: the store is indexed by reading each
file's header metadata, not by its name. In-progress snapshots (``kind="last"``) are listed but
never chosen by :func:`find_checkpoint`.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from neurolp.errors import CheckpointError
from neurolp.utils.runtime import user_dir

__all__ = ["ENV_VAR", "default_store", "find_checkpoint", "list_checkpoints", "publish_checkpoint",
           "resolve_checkpoint"]

ENV_VAR = "NEUROLP_CHECKPOINTS"
_COLUMNS = ["model", "arch", "variant", "dataset", "image_size", "num_classes", "seed", "epoch",
            "val_acc", "test_acc", "kind", "created", "size_MB", "status", "path"]


def default_store() -> Path:
    """``$NEUROLP_CHECKPOINTS``, else ``$XDG_CACHE_HOME/neurolp/checkpoints`` (``~/.cache/...``)."""
    return user_dir(ENV_VAR, "checkpoints")


def _scan(store: Path):
    """``(path, metadata or None, error or None)`` for every ``*.safetensors`` below ``store``."""
    from neurolp.train.checkpoint import read_metadata

    if not store.is_dir():
        return
    for path in sorted(store.rglob("*.safetensors")):
        if any(part.startswith(".") for part in path.relative_to(store).parts):
            continue  # temporary files of atomic writes, staging folders
        try:
            yield path, read_metadata(path), None
        except CheckpointError as exc:
            yield path, None, str(exc)


def _canonical(model_name: str) -> str:
    from neurolp.models import parse_model_name

    return str(parse_model_name(model_name))


def list_checkpoints(store: str | os.PathLike | None = None):
    """One row per checkpoint file in the store (newest first), unreadable ones included.

    Columns: model, arch, variant, dataset, image_size, num_classes, seed, epoch, val_acc,
    test_acc, kind, created, size_MB, status (``"ok"`` or why the file cannot be read), path.
    """
    import pandas as pd

    store = Path(store) if store is not None else default_store()
    rows = []
    for path, meta, err in _scan(store):
        size = path.stat().st_size / 2**20
        if meta is None:
            rows.append({"path": str(path), "size_MB": size, "status": err, "kind": None})
            continue
        metrics = meta.get("metrics") or {}
        rows.append({"model": meta["model"], "arch": meta.get("arch"), "variant": meta.get("variant"),
                     "dataset": meta.get("dataset"), "image_size": meta.get("image_size"),
                     "num_classes": meta.get("num_classes"), "seed": meta.get("seed"),
                     "epoch": meta.get("epoch"), "val_acc": metrics.get("val_acc"),
                     "test_acc": metrics.get("test_acc"), "kind": meta.get("kind"),
                     "created": meta.get("created"), "size_MB": size, "status": "ok",
                     "path": str(path)})
    df = pd.DataFrame(rows, columns=_COLUMNS)
    if len(df):
        df = df.sort_values("created", ascending=False, na_position="last", kind="stable")
        df = df.reset_index(drop=True)
    return df


def find_checkpoint(model_name: str, *, store: str | os.PathLike | None = None,
                    dataset: str | None = None, image_size: int | None = None) -> Path:
    """The newest readable checkpoint of ``model_name`` (e.g. ``"lp2-resnet18"``) in the store.

    ``dataset`` and ``image_size`` narrow the match. In-progress snapshots (``kind="last"``) are
    not considered. No match raises :class:`CheckpointError` that says how to train one.
    """
    name = _canonical(model_name)
    store = Path(store) if store is not None else default_store()
    matches, unreadable = [], []
    for path, meta, err in _scan(store):
        if meta is None:
            unreadable.append(path)
            continue
        if meta["model"] != name or meta.get("kind") == "last":
            continue
        if dataset is not None and meta.get("dataset") != dataset:
            continue
        if image_size is not None and meta.get("image_size") != int(image_size):
            continue
        matches.append((str(meta.get("created") or ""), path.stat().st_mtime, path))
    if matches:
        return max(matches)[2]
    where = f"dataset={dataset}" if dataset else ""
    if image_size is not None:
        where += (", " if where else "") + f"image_size={image_size}"
    dataset_arg = dataset or "tinyimagenet"
    msg = (f"no checkpoint of {name}{f' ({where})' if where else ''} in the checkpoint store "
           f"{store}{'' if store.is_dir() else ' (the folder does not exist)'}. Train one with "
           f"`neurolp train --model {name} --dataset {dataset_arg} --data-dir DIR` (a finished run "
           f"publishes its model to the store), or point --store / ${ENV_VAR} at the folder that "
           f"holds it; `neurolp checkpoints` lists what is there")
    if unreadable:
        msg += f". {len(unreadable)} unreadable file(s) were ignored, e.g. {unreadable[0]}"
    raise CheckpointError(msg)


def resolve_checkpoint(spec: str | os.PathLike, *, store: str | os.PathLike | None = None,
                       dataset: str | None = None, image_size: int | None = None) -> Path:
    """A checkpoint path as given, or, for a model name, the newest match in the store."""
    path = Path(spec)
    if path.suffix == ".safetensors" or path.exists() or os.sep in str(spec):
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder; pass a checkpoint file such as "
                                  f"{path / 'best.safetensors'}")
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return path
    return find_checkpoint(str(spec), store=store, dataset=dataset, image_size=image_size)


def publish_checkpoint(path: str | os.PathLike, store: str | os.PathLike | None = None) -> Path:
    """Copy a finished run's checkpoint into the store (atomically) and return its new path.

    The copy is re-labelled ``kind="final"`` by rewriting the metadata; weights are untouched.
    """
    from neurolp.train.checkpoint import read_metadata
    from neurolp.utils.io import atomic_write

    path = Path(path)
    meta = read_metadata(path)
    store = Path(store) if store is not None else default_store()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dataset = str(meta.get("dataset") or "unknown")
    seed = meta.get("seed")
    for part in (dataset, str(meta["model"])):  # path components from file metadata: stay inside
        if not part or part in (".", "..") or any(c in part for c in "/\\\0"):
            raise CheckpointError(f"{path} has an unusable dataset or model name {part!r} for the store")
    name = f"{meta['model']}__{dataset}__s{seed}__{stamp}.safetensors"
    dest = store / dataset / meta["model"] / name
    blob = _relabel(path.read_bytes(), "final", path)
    with atomic_write(dest, "wb") as fh:
        fh.write(blob)
    read_metadata(dest)  # verify what landed
    return dest


def _relabel(blob: bytes, kind: str, path: Path) -> bytes:
    """Rewrite the header's ``kind`` and ``created`` without touching the data section."""
    import json

    from neurolp.train.checkpoint import _now, _parse_header

    header, start = _parse_header(blob, path)
    meta = json.loads(header["__metadata__"]["neurolp"])
    meta["kind"] = kind
    meta["published"] = _now()
    header["__metadata__"]["neurolp"] = json.dumps(meta)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to a multiple of 8 bytes
    return len(raw).to_bytes(8, "little") + raw + bytes(memoryview(blob)[start:])

