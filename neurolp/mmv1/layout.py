"""The published MMV1 on-disk layout (Xu, Hou, Niell & Beyeler, NeurIPS 2023; data on OSF,
DOI 10.17605/OSF.IO/MSP3A, ``mouse-data-10-segment-split-70-30-48ms.zip``)::

    <root>/<session>/{train,test}_<key>_seg_<i>.npy

One folder per recording session (mouse), e.g. ``070921_J553RT``, ``101521_J559NC``,
``110421_J569LT``. Each recording is cut into segments (10 in the published data) and each segment
into a training part (first 70 % in time) and a test part (last 30 %), in 48-ms bins. Keys:

========================  ===============  ===============================================
key                       shape            meaning
========================  ===============  ===============================================
``nsp``                   (T, N)           spike counts per bin of every recorded neuron
``vid_mean``              (T, 60, 80)      head-camera ("world") frame, mean over the bin
``vid_middle``            (T, 60, 80)      head-camera frame, the middle one of the bin
``vid_shift_mean``        (T, 60, 80)      eye-position-corrected frame, mean over the bin
``vid_shift_middle``      (T, 60, 80)      eye-position-corrected frame, middle of the bin
``speed``                 (T,)             running speed
``pitch``, ``roll``       (T,)             head orientation (IMU)
``phi``, ``th``           (T,)             horizontal / vertical eye position
``eyerad``                (T,)             pupil radius
========================  ===============  ===============================================

Files are opened memory-mapped (``np.load(..., mmap_mode="r", allow_pickle=False)``): a full
session's videos are never copied into RAM, and nothing but plain numeric arrays is ever read.
This module finds and checks the files; :mod:`neurolp.mmv1.data` turns them into model inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurolp.errors import DataFormatError, DataNotFoundError

__all__ = ["SPLITS", "VIDEO_KEYS", "BEHAVIOUR_KEYS", "ALL_KEYS", "SHIFTER_KEYS", "BIN_MS",
           "LAYOUT_HINT", "segment_file", "SessionFiles", "list_sessions", "scan_session",
           "open_array"]

SPLITS = ("train", "test")
VIDEO_KEYS = ("vid_mean", "vid_middle", "vid_shift_mean", "vid_shift_middle")
BEHAVIOUR_KEYS = ("speed", "pitch", "roll", "phi", "th", "eyerad")  # the authors' column order
SHIFTER_KEYS = ("th", "phi", "pitch", "roll")  # shifter inputs, in the authors' order (θ, φ, pitch, roll)
ALL_KEYS = ("nsp", *VIDEO_KEYS, *BEHAVIOUR_KEYS)
BIN_MS = 48.0

LAYOUT_HINT = ("expected <root>/<session>/{train,test}_<key>_seg_<i>.npy with keys "
               f"{', '.join(ALL_KEYS)} (the OSF data set 10.17605/OSF.IO/MSP3A, "
               "mouse-data-10-segment-split-70-30-48ms.zip, unzipped; `neurolp mmv1 fit --synthetic` "
               "writes a small example in this layout)")

_FILE_RE = re.compile(r"^(train|test)_(.+)_seg_(\d+)\.npy$")


def segment_file(session_dir: str | Path, split: str, key: str, seg: int) -> Path:
    """The path of one array: ``<session_dir>/<split>_<key>_seg_<seg>.npy``."""
    return Path(session_dir) / f"{split}_{key}_seg_{seg}.npy"


@dataclass
class SessionFiles:
    """The files of one session: ``files[(split, key, seg)] -> path`` and the segment indices."""

    name: str
    folder: Path
    files: dict[tuple[str, str, int], Path]
    segments: list[int] = field(default_factory=list)

    def keys(self) -> set[str]:
        return {k for _, k, _ in self.files}

    def path(self, split: str, key: str, seg: int) -> Path:
        return segment_file(self.folder, split, key, seg)


def _session_candidates(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and any(
        _FILE_RE.match(f.name) for f in d.iterdir() if f.is_file()))


def list_sessions(root: str | Path) -> list[str]:
    """Session folders under ``root`` (folders holding ``{train,test}_<key>_seg_<i>.npy`` files)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"MMV1 data folder {root} does not exist; {LAYOUT_HINT}")
    sessions = [d.name for d in _session_candidates(root)]
    if not sessions:
        if any(_FILE_RE.match(f.name) for f in root.iterdir() if f.is_file()):
            raise DataFormatError(f"{root} holds segment files itself: point --data at the folder "
                                  f"above it (one sub-folder per session); {LAYOUT_HINT}")
        raise DataNotFoundError(f"no MMV1 session folders in {root}; {LAYOUT_HINT}")
    return sessions


def scan_session(root: str | Path, session: str, required: tuple[str, ...] = ALL_KEYS) -> SessionFiles:
    """Find a session's files and check that every (split, required key, segment) is there.

    The segments are the union of the indices found in any file name; a missing file is named in
    the error, so a partly copied folder fails before any work starts.
    """
    folder = Path(root).expanduser() / session
    if not folder.is_dir():
        available = ", ".join(list_sessions(root)) if Path(root).is_dir() else "none"
        raise DataNotFoundError(f"session folder {folder} does not exist (sessions in {root}: "
                                f"{available}); {LAYOUT_HINT}")
    files: dict[tuple[str, str, int], Path] = {}
    for f in folder.iterdir():
        m = _FILE_RE.match(f.name)
        if m and f.is_file():
            files[(m.group(1), m.group(2), int(m.group(3)))] = f
    segments = sorted({s for _, _, s in files})
    if not segments:
        raise DataFormatError(f"session folder {folder} has no segments (no "
                              f"{{train,test}}_<key>_seg_<i>.npy files); {LAYOUT_HINT}")
    missing = [segment_file(folder, split, key, s) for s in segments for split in SPLITS
               for key in required if (split, key, s) not in files]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataNotFoundError(f"missing file {missing[0]}{more} (session {session} has segments "
                                f"{_ranges(segments)}); {LAYOUT_HINT}")
    return SessionFiles(session, folder, files, segments)


def _ranges(values: list[int]) -> str:
    if values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}" if len(values) > 1 else str(values[0])
    return ", ".join(map(str, values))


def open_array(path: Path, ndim: int | tuple[int, ...], what: str) -> np.ndarray:
    """``np.load(path, mmap_mode="r")`` of a plain numeric array with the expected dimensionality."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFormatError(f"cannot read {path} as a .npy array ({exc}); the file is corrupted or "
                              "not a NumPy array file; copy it again from the OSF archive") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise DataFormatError(f"{path} holds {getattr(arr, 'dtype', type(arr))} data, expected numbers "
                              f"({what})")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise DataFormatError(f"{path} has shape {arr.shape}, expected {what}")
    return arr
