"""Checkpoints: one self-describing safetensors file per model, plus a resumable training state.

A **model checkpoint** is a single ``.safetensors`` file. The tensors are the model's
``state_dict``; the header's ``__metadata__`` holds one JSON document (key ``"neurolp"``) with what
is needed to rebuild and use the model without its training run: the registry name and its
``neurolp_spec`` (so :func:`~neurolp.models.create_model` rebuilds the architecture), the number of
classes and their names, the input size and normalisation, the dataset, epoch, metrics, seed, the
full training config, the neurolp version and git commit, and a SHA-256 of the tensor data.
Reading the metadata needs only the header (:func:`read_metadata`, no torch); loading verifies the
checksum, so a truncated or bit-flipped file fails with :class:`~neurolp.errors.CheckpointError`
instead of producing a silently wrong model.

A **training state** (``state.pt`` in a run folder) holds what resuming needs besides the weights:
optimiser, scheduler, grad scaler, EMA, RNG states and the data position. It is written with
``torch.save`` and read with ``torch.load(weights_only=True)``: only tensors and plain Python
containers, never arbitrary pickled objects.

Every file is written atomically (temporary file + ``os.replace``), so a run killed at any moment
leaves either the previous complete file or the new complete one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from neurolp.errors import CheckpointError

__all__ = ["FORMAT", "FORMAT_VERSION", "DEFAULT_NORMALIZATION", "save_checkpoint", "load_model",
           "load_weights", "read_metadata", "unwrap_model", "save_state", "load_state"]

FORMAT = "neurolp-checkpoint"
FORMAT_VERSION = 1
STATE_FORMAT = "neurolp-train-state"
# ImageNet statistics: what the official code (DeiT's create_transform) used for every dataset.
DEFAULT_NORMALIZATION = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
_REQUIRED = ("model", "num_classes", "image_size", "normalization", "dataset", "classes", "epoch",
             "metrics", "seed", "config", "neurolp_version", "git_commit")


def unwrap_model(model):
    """The plain ``nn.Module`` inside ``DistributedDataParallel`` / ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):      # torch.compile
            model = model._orig_mod
        elif hasattr(model, "module") and type(model).__name__ in ("DistributedDataParallel",
                                                                     "DataParallel"):
            model = model.module
        else:
            return model


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _jsonable(obj: Any) -> Any:
    from neurolp.utils.io import _jsonable as j

    return j(obj)


def _sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(path: str | os.PathLike, model, metadata: dict[str, Any] | None = None, *,
                    kind: str = "model") -> Path:
    """Write ``model``'s weights and ``metadata`` to one safetensors file, atomically.

    ``model`` must come from :func:`neurolp.models.create_model` (it carries ``neurolp_spec``);
    DDP and ``torch.compile`` wrappers are unwrapped. ``metadata`` may give any of ``dataset``,
    ``classes``, ``normalization`` (``{"mean": [...], "std": [...]}``), ``epoch``, ``metrics``,
    ``seed``, ``config`` and free extra keys; ``model``, ``num_classes``, ``image_size``, ``spec``,
    ``neurolp_version``, ``git_commit``, ``created`` and the checksum are filled in. ``kind`` labels
    the file (``"last"``/``"best"`` inside a run folder, ``"final"`` in the store, ``"model"``
    otherwise); :func:`~neurolp.train.store.find_checkpoint` ignores ``"last"`` snapshots.
    """
    import safetensors.torch as st

    from neurolp import __version__
    from neurolp.utils.io import atomic_write, git_commit

    model = unwrap_model(model)
    spec = getattr(model, "neurolp_spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError("save_checkpoint needs a model built by neurolp.models.create_model "
                              "(it records model.neurolp_spec, which rebuilds the architecture)")
    meta: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
        "model": spec["name"], "arch": spec.get("arch"), "variant": spec.get("variant"),
        "p_init": spec.get("p_init"), "frozen": spec.get("frozen"),
        "num_classes": spec["num_classes"], "image_size": spec["image_size"], "in_chans": 3,
        "normalization": dict(DEFAULT_NORMALIZATION), "dataset": None, "classes": None, "epoch": 0,
        "metrics": {}, "seed": None, "config": {}, "neurolp_version": __version__,
        "git_commit": git_commit(), "created": _now(),
    }
    for key, value in (metadata or {}).items():
        if key in ("model", "num_classes", "image_size", "spec") and value is not None \
                and value != meta.get(key, spec.get(key)):
            raise CheckpointError(f"metadata[{key!r}] = {value!r} contradicts the model itself "
                                  f"({meta.get(key, spec.get(key))!r})")
        if key not in ("format", "format_version", "spec", "weights_sha256"):
            meta[key] = value
    meta["spec"] = spec
    if meta["classes"] is not None and len(meta["classes"]) != meta["num_classes"]:
        raise CheckpointError(f"{len(meta['classes'])} class names for a model with "
                              f"{meta['num_classes']} outputs")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # The data section of a safetensors file depends on the tensors only, so its hash can go into
    # the header: serialise once to hash the data, then again with the hash in the metadata.
    probe = st.save(tensors)
    data = memoryview(probe)[8 + int.from_bytes(probe[:8], "little"):]
    meta["weights_sha256"] = _sha256(data)
    blob = st.save(tensors, metadata={"format": FORMAT, "neurolp": json.dumps(_jsonable(meta))})
    if memoryview(blob)[8 + int.from_bytes(blob[:8], "little"):] != data:  # pragma: no cover
        raise RuntimeError("safetensors layout changed: data section depends on the metadata")
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fh.write(blob)
    return path


def _parse_header(blob: bytes, path: Path, size: int | None = None) -> tuple[dict, int]:
    size = len(blob) if size is None else size
    if len(blob) < 8:
        raise CheckpointError(f"{path} is not a checkpoint: {len(blob)} bytes, too short for a "
                              "safetensors header (truncated or empty file?)")
    n = int.from_bytes(blob[:8], "little")
    if n > size - 8 or n > 100_000_000:
        raise CheckpointError(f"{path} is truncated or not a safetensors file: its header claims "
                              f"{n} bytes but the file has {size}")
    try:
        header = json.loads(bytes(blob[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupted: its safetensors header is not valid JSON "
                              f"({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is corrupted: its safetensors header is not a JSON object")
    return header, 8 + n


def _neurolp_meta(header: dict, path: Path) -> dict:
    raw = (header.get("__metadata__") or {})
    if raw.get("format") != FORMAT or "neurolp" not in raw:
        raise CheckpointError(f"{path} is a safetensors file but not a neurolp checkpoint (no "
                              "'neurolp' metadata); make one with `neurolp train` or "
                              "neurolp.train.save_checkpoint")
    try:
        meta = json.loads(raw["neurolp"])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is corrupted: its neurolp metadata is not valid JSON") from exc
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version!r}; this neurolp "
                              f"reads up to {FORMAT_VERSION}: upgrade neurolp")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CheckpointError(f"{path} is missing metadata {missing}; it was not written by "
                              "neurolp.train.save_checkpoint")
    return meta


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, reading only the file's header (fast, no torch)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) == 8:
            n = int.from_bytes(head, "little")
            size = path.stat().st_size
            head += fh.read(n) if n <= min(size - 8, 100_000_000) else b""
    header, _ = _parse_header(head, path, path.stat().st_size)
    meta = _neurolp_meta(header, path)
    try:
        offsets = [int(v["data_offsets"][1]) for k, v in header.items()
                   if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{path} is corrupted: malformed tensor offsets in its header") from exc
    expected = 8 + int.from_bytes(head[:8], "little") + max(offsets, default=0)
    if path.stat().st_size != expected:
        raise CheckpointError(f"{path} is truncated or corrupted: {path.stat().st_size} bytes on "
                              f"disk, its header describes {expected}")
    return meta


def _load_tensors(path: Path, map_location: str = "cpu") -> tuple[dict, dict]:
    import safetensors.torch as st

    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    blob = path.read_bytes()
    header, start = _parse_header(blob, path)
    meta = _neurolp_meta(header, path)
    digest = _sha256(memoryview(blob)[start:])
    if digest != meta.get("weights_sha256"):
        raise CheckpointError(f"{path} is corrupted: the SHA-256 of its weights ({digest[:12]}…) "
                              f"does not match the one recorded when it was saved "
                              f"({str(meta.get('weights_sha256'))[:12]}…); re-train or re-copy it")
    try:
        tensors = st.load(blob)
    except Exception as exc:  # safetensors raises its own error type for malformed files
        raise CheckpointError(f"{path} is corrupted: safetensors cannot read it ({exc})") from exc
    if map_location != "cpu":
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return tensors, meta


def state_dict_mismatch(own: dict, tensors: dict) -> tuple[list[str], list[str], list[str]]:
    """``(missing, unexpected, shapes)`` of a state_dict ``tensors`` against a model's ``own``:
    keys it lacks, keys the model lacks (sorted), and ``"key (file shape) vs (model shape)"``."""
    missing = [k for k in own if k not in tensors]
    unexpected = sorted(k for k in tensors if k not in own)
    shapes = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
    return missing, unexpected, shapes


def load_weights(model, path: str | os.PathLike, *, strict: bool = True) -> dict[str, Any]:
    """Load a checkpoint's weights into an existing model; returns the metadata.

    Mismatched architectures (missing, unexpected or differently shaped tensors) raise
    :class:`CheckpointError` naming the first few offending tensors.
    """
    path = Path(path)
    tensors, meta = _load_tensors(path)
    target = unwrap_model(model)
    missing, unexpected, shapes = state_dict_mismatch(target.state_dict(), tensors)
    if shapes or (strict and (missing or unexpected)):
        spec = getattr(target, "neurolp_spec", {}) or {}
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {'; '.join(shapes[:3])})")
        raise CheckpointError(
            f"{path} does not match the model: checkpoint holds {meta.get('model')} "
            f"({meta.get('num_classes')} classes, {meta.get('image_size')} px), the model is "
            f"{spec.get('name', type(target).__name__)} ({spec.get('num_classes')} classes, "
            f"{spec.get('image_size')} px): {'; '.join(parts)}")
    target.load_state_dict(tensors, strict=strict)
    return meta


def load_model(path: str | os.PathLike, device="cpu", *, expect_model: str | None = None):
    """Rebuild a checkpoint's model with ``create_model`` and load its weights.

    Returns ``(model, metadata)``; the model is in eval mode on ``device``. The metadata holds at
    least ``model``, ``num_classes``, ``image_size``, ``normalization`` (``mean``/``std``),
    ``dataset``, ``classes``, ``epoch``, ``metrics``, ``seed``, ``config``, ``neurolp_version`` and
    ``git_commit``. ``expect_model`` (a registry name) checks the checkpoint holds that model.
    Corrupted, truncated or mismatched files raise :class:`CheckpointError`.
    """
    from neurolp.errors import ConfigError
    from neurolp.models import create_model, parse_model_name

    path = Path(path)
    meta = read_metadata(path)
    if expect_model is not None and str(parse_model_name(expect_model)) != meta["model"]:
        raise CheckpointError(f"{path} holds {meta['model']}, not {parse_model_name(expect_model)}")
    spec = meta.get("spec") or {}
    try:
        model = create_model(meta["model"], num_classes=int(meta["num_classes"]),
                             image_size=int(meta["image_size"]),
                             drop_path_rate=float(spec.get("drop_path_rate") or 0.0),
                             convert_kwargs=spec.get("convert_kwargs") or None,
                             **(spec.get("arch_kwargs") or {}))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} describes a model this neurolp cannot build "
                              f"({meta['model']}: {exc})") from exc
    load_weights(model, path)
    model.eval()
    import torch

    return model.to(torch.device(device) if isinstance(device, str) else device), meta


# --- training state (resume) ----------------------------------------------------------------
def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a resumable training state atomically (tensors and plain containers only)."""
    import torch

    from neurolp.utils.io import atomic_write

    state = {"format": STATE_FORMAT, "format_version": FORMAT_VERSION, **state}
    with atomic_write(path, "wb") as fh:
        torch.save(state, fh)
    return Path(path)


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training state with ``torch.load(weights_only=True)``; clear errors when damaged."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"training state {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"training state {path} is empty (a run killed while writing it, or "
                              "a full disk) and cannot be resumed; delete it to start over")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError,
            KeyError, IndexError, OSError) as exc:
        detail = (str(exc).strip().splitlines() or ["no message"])[0][:200]
        raise CheckpointError(f"training state {path} is corrupted or truncated and cannot be "
                              f"resumed ({type(exc).__name__}: {detail}); delete it to start over"
                              ) from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a neurolp training state")
    return state
