"""Read Allen Brain Observatory NWB 1.x files (HDF5) and event files with h5py / numpy only.

Dataset paths are those allensdk 2.16's ``BrainObservatoryNwbDataSet`` reads (see
``notes/env-feasibility.md`` §2.5–2.6); no allensdk import is needed to read a populated cache.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from neurolp.errors import DataFormatError

__all__ = ["PIPELINE", "DFF_KEY", "CELL_IDS_KEY", "STIM_BASE", "TEMPLATE_KEY", "read_stimulus_table",
           "read_cell_ids", "read_dff", "read_events", "read_general", "check_nwb", "check_events",
           "find_stimulus_group"]

PIPELINE = "processing/brain_observatory_pipeline"
DFF_KEY = f"{PIPELINE}/DfOverF/imaging_plane_1/data"
CELL_IDS_KEY = f"{PIPELINE}/ImageSegmentation/cell_specimen_ids"
STIM_BASE = "stimulus/presentation"
TEMPLATE_KEY = "stimulus/templates/natural_scenes_image_stack/data"
_STIM_NAMES = ("natural_scenes_stimulus", "natural_scenes")
# what a truncated or damaged .npz / HDF5 file raises while it is opened or read
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error)
_GENERAL = {
    "session_type": "general/session_type",
    "session_id": "general/session_id",
    "experiment_container_id": "general/experiment_container_id",
    "genotype": "general/subject/genotype",
    "specimen_name": "general/specimen_name",
    "subject_id": "general/subject/subject_id",
    "targeted_structure": "general/optophysiology/imaging_plane_1/location",
    "imaging_depth": "general/optophysiology/imaging_plane_1/imaging depth",
}


def _open(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path} is not a readable NWB/HDF5 file ({exc}); it is probably a "
                              "truncated download: delete it and run `neurolp allen fetch` again"
                              ) from exc


def find_stimulus_group(f) -> str | None:
    for name in _STIM_NAMES:
        key = f"{STIM_BASE}/{name}"
        if key in f and "data" in f[key] and "frame_duration" in f[key]:
            return key
    return None


def read_stimulus_table(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frame, start, end)`` of every natural-scene presentation, sorted by start.

    ``frame`` is the image index (−1 = blank), ``start``/``end`` are 2-photon acquisition frames.
    """
    with _open(path) as f:
        key = find_stimulus_group(f)
        if key is None:
            raise DataFormatError(f"{path} has no natural-scene presentation table "
                                  f"({STIM_BASE}/natural_scenes_stimulus); is it a three_session_B "
                                  "experiment?")
        frame = np.asarray(f[key]["data"][()], dtype=np.float64).reshape(-1)
        dur = np.asarray(f[key]["frame_duration"][()], dtype=np.float64)
    if dur.ndim != 2 or dur.shape[1] != 2 or len(dur) != len(frame):
        raise DataFormatError(f"{path}: natural-scene frame_duration has shape {dur.shape}; expected "
                              f"({len(frame)}, 2)")
    start = dur[:, 0].astype(np.int64)
    end = dur[:, 1].astype(np.int64)
    order = np.lexsort((end, start))
    return np.rint(frame[order]).astype(np.int64), start[order], end[order]


def read_cell_ids(path: str | Path) -> np.ndarray:
    with _open(path) as f:
        if CELL_IDS_KEY not in f:
            raise DataFormatError(f"{path} has no {CELL_IDS_KEY}")
        return np.asarray(f[CELL_IDS_KEY][()]).astype(np.int64).reshape(-1)


def read_dff(path: str | Path) -> np.ndarray:
    """ΔF/F traces ``[n_cells, n_frames]`` (float32)."""
    with _open(path) as f:
        if DFF_KEY not in f:
            raise DataFormatError(f"{path} has no ΔF/F traces ({DFF_KEY})")
        return np.asarray(f[DFF_KEY][()], dtype=np.float32)


def read_events(path: str | Path) -> np.ndarray:
    """L0 events ``[n_cells, n_frames]`` (float32) from an ``<id>_events.npz`` (key ``"ev"``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "ev" not in z.files:
                raise DataFormatError(f"{path} has no 'ev' array (keys: {z.files})")
            ev = np.asarray(z["ev"], dtype=np.float32)
    except DataFormatError:
        raise
    except _READ_ERRORS as exc:
        raise DataFormatError(f"{path} is not a readable events file ({type(exc).__name__}: {exc}); it "
                              "is probably a truncated download: delete it and run `neurolp allen "
                              "fetch` again") from exc
    if ev.ndim != 2:
        raise DataFormatError(f"{path}: events have shape {ev.shape}; expected [n_cells, n_frames]")
    return ev


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        if v.shape == ():
            return _decode(v[()])
        if v.size == 1:
            return _decode(v.reshape(-1)[0])
    if isinstance(v, np.generic):
        return v.item()
    return v


def read_general(path: str | Path) -> dict:
    """Experiment metadata from the NWB ``general/`` group (missing keys are left out)."""
    out = {}
    with _open(path) as f:
        for key, h5key in _GENERAL.items():
            if h5key in f:
                out[key] = _decode(f[h5key][()])
    if "imaging_depth" in out:
        try:
            out["imaging_depth"] = int(str(out["imaging_depth"]).split()[0])
        except ValueError:
            out.pop("imaging_depth")
    if "genotype" in out:
        out["cre_line"] = str(out["genotype"]).split(";")[0].split("/")[0]
    for k in ("session_id", "experiment_container_id"):
        if k in out:
            try:
                out[k] = int(out[k])
            except (TypeError, ValueError):
                out.pop(k)
    return out


def check_nwb(path: str | Path, *, need_dff: bool = False) -> str | None:
    """``None`` if the file holds what neurolp reads, else a short description of the problem."""
    import h5py

    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with h5py.File(path, "r") as f:
            if find_stimulus_group(f) is None:
                return "no natural-scene presentation table"
            if CELL_IDS_KEY not in f:
                return "no cell_specimen_ids"
            if need_dff and DFF_KEY not in f:
                return "no ΔF/F traces"
    except _READ_ERRORS as exc:
        return f"unreadable HDF5 ({exc.__class__.__name__}): delete it and fetch again"
    return None


def check_events(path: str | Path, n_cells: int | None = None) -> str | None:
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        with np.load(path, allow_pickle=False) as z:
            if "ev" not in z.files:
                return "no 'ev' array"
            ev = z["ev"]  # reads (and CRC-checks) the whole array: truncation shows up here
            shape = ev.shape
            if ev.dtype.kind not in "fiu":
                return f"events of dtype {ev.dtype}"
    except _READ_ERRORS as exc:
        return f"unreadable npz ({exc.__class__.__name__}): delete it and fetch again"
    if len(shape) != 2:
        return f"events of shape {shape}"
    if n_cells is not None and shape[0] != n_cells:
        return f"{shape[0]} event traces for {n_cells} cells"
    return None
