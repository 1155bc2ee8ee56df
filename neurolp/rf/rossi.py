"""Biological receptive fields: functional synapses of mouse V1 L2/3 neurons (Rossi et al. 2020).

Rossi, F., Harris, K. D. & Carandini, M. "Spatial connectivity matches direction selectivity in visual
cortex". Nature 588, 648–652 (2020). Data: github.com/lfedros/Rossi-et-al-2020, folder ``Data/``.
Used by Kwon et al. (ICLR 2025) for Fig. 1 (App. A.1, A.3): per postsynaptic neuron (n = 17), the
x–y offsets of its excitatory and inhibitory presynaptic inputs from the soma.

Two ways in:

* :func:`load_rossi_raw` reads the authors' raw layout: ``postSyn_NN.mat`` (``spaceXYZ`` = (0, 0,
  depth µm) of the soma, ``animal_genotype``, ``prefDir``), ``spatialEX_NN.mat`` and
  ``spatialIN_NN.mat`` (``spaceXYZ`` n × 3 in µm: x, y relative to the soma, z = depth; one input is
  stored as a 1-D array of length 3, no input as an empty array).
* :func:`load_rossi` with no argument reads the embedded table ``neurolp/data/rossi2020_offsets.csv``
  (made from the raw files by ``scripts/build_rossi2020_table.py``; provenance in
  ``data/README.md`` and ``rossi2020_offsets.json``).

Both return one tidy table, one row per presynaptic input (see :data:`COLUMNS`).
:func:`rossi_receptive_fields` turns it into one receptive field per neuron (all, excitatory or
inhibitory inputs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from neurolp.errors import DataFormatError, DataNotFoundError, InputError
from neurolp.mpnd.fit import ReceptiveField

__all__ = ["COLUMNS", "SELECTIONS", "EMBEDDED_TABLE", "load_rossi", "load_rossi_raw", "load_rossi_table",
           "rossi_receptive_fields", "embedded_table_path"]

#: Columns of the tidy table: neuron ID, genotype of the animal, soma depth (µm), preferred direction
#: (deg, NaN where unknown), input type ("EX"/"IN"), offsets from the soma (µm), presynaptic depth (µm).
COLUMNS = ("neuron", "genotype", "soma_depth_um", "pref_dir_deg", "input", "dx_um", "dy_um", "z_um")
SELECTIONS = {"all": ("EX", "IN"), "ex": ("EX",), "in": ("IN",)}
EMBEDDED_TABLE = "rossi2020_offsets.csv"
_RAW = {"EX": "spatialEX_{:02d}.mat", "IN": "spatialIN_{:02d}.mat"}
_SOURCE = ("the authors' Data/ folder of github.com/lfedros/Rossi-et-al-2020 (postSyn_NN.mat, "
           "spatialEX_NN.mat, spatialIN_NN.mat)")


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataNotFoundError(f"missing {path}: each postSyn_NN.mat needs spatialEX_NN.mat and "
                                f"spatialIN_NN.mat next to it, as in {_SOURCE}")
    try:
        return loadmat(str(path), squeeze_me=True)
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError/OSError on bad files
        raise DataFormatError(f"{path} is not a readable MATLAB 5 MAT-file ({type(exc).__name__}: {exc}); "
                              "expected the file as published by Rossi et al. 2020 — re-copy it") from exc


def _field(mat: dict, path: Path, name: str, expected: str):
    if name not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DataFormatError(f"{path} has no field {name!r} (expected {expected}); fields found: {found}")
    return mat[name]


def _xyz(mat: dict, path: Path, *, soma: bool = False) -> np.ndarray:
    expected = "(0, 0, depth) of the soma in µm" if soma else "an n×3 array of x, y, z positions in µm"
    raw = _field(mat, path, "spaceXYZ", expected)
    try:
        arr = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: spaceXYZ is not numeric; expected {expected}") from exc
    if soma:
        if arr.size != 3:
            raise DataFormatError(f"{path}: spaceXYZ has shape {arr.shape}; expected {expected}")
        arr = arr.reshape(3)
    else:
        if arr.size == 0:
            return np.zeros((0, 3))
        arr = np.atleast_2d(arr)  # one input is stored as a 1-D array of length 3
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise DataFormatError(f"{path}: spaceXYZ has shape {np.shape(raw)}; expected {expected}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0] if arr.ndim == 2 else [0]).tolist()
        raise DataFormatError(f"{path}: spaceXYZ has NaN/inf values (rows {rows[:10]}); expected finite "
                              "positions in µm")
    return arr


def _scalar_str(mat: dict, name: str) -> str:
    v = mat.get(name)
    if v is None:
        return ""
    v = np.asarray(v)
    return str(v.item()) if v.size == 1 else ""


def _scalar_float(mat: dict, name: str) -> float:
    try:
        v = np.asarray(mat.get(name, np.nan), dtype=np.float64)
    except (TypeError, ValueError):
        return float("nan")
    return float(v.item()) if v.size == 1 else float("nan")


def load_rossi_raw(folder: str | Path) -> pd.DataFrame:
    """Read the raw Rossi et al. 2020 MAT files in ``folder`` into the tidy table (:data:`COLUMNS`).

    Neurons are the IDs of the ``postSyn_NN.mat`` files; every one needs its ``spatialEX_NN.mat`` and
    ``spatialIN_NN.mat``. Offsets are presynaptic x, y minus the soma's x, y (which is (0, 0) in the
    published files). Raises :class:`DataNotFoundError` for a missing folder or file and
    :class:`DataFormatError`, naming the file and the field, for malformed content.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"Rossi et al. 2020 data folder {folder} does not exist; expected {_SOURCE}")
    ids = []
    for f in folder.iterdir():
        m = re.fullmatch(r"postSyn_(\d+)\.mat", f.name)
        if m:
            ids.append(int(m.group(1)))
    if not ids:
        raise DataNotFoundError(f"no postSyn_NN.mat files in {folder}; expected {_SOURCE}")
    frames = []
    for nid in sorted(ids):
        post_path = folder / f"postSyn_{nid:02d}.mat"
        post = _loadmat(post_path)
        soma = _xyz(post, post_path, soma=True)
        genotype = _scalar_str(post, "animal_genotype")
        pref = _scalar_float(post, "prefDir")
        for kind, pattern in _RAW.items():
            path = folder / pattern.format(nid)
            xyz = _xyz(_loadmat(path), path)
            frames.append(pd.DataFrame({
                "neuron": nid, "genotype": genotype, "soma_depth_um": soma[2], "pref_dir_deg": pref,
                "input": kind, "dx_um": xyz[:, 0] - soma[0], "dy_um": xyz[:, 1] - soma[1], "z_um": xyz[:, 2],
            }, columns=list(COLUMNS)))
    table = pd.concat(frames, ignore_index=True)
    table["neuron"] = table["neuron"].astype(np.int64)
    table.attrs["neurons"] = sorted(ids)  # a neuron without inputs has no row but must not vanish
    return table


def _data_file(name: str):
    """A file of the embedded data package ``neurolp.data`` (the repository's ``data/`` folder).

    Falls back to ``<repo>/data`` when ``neurolp.data`` is not importable (a source checkout whose
    editable install predates the package mapping).
    """
    from importlib.resources import files

    try:
        return files("neurolp.data").joinpath(name)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "data" / name


def embedded_table_path():
    """The embedded table as an ``importlib.resources`` traversable (``neurolp/data/…``)."""
    return _data_file(EMBEDDED_TABLE)


def load_rossi_table(path=None) -> pd.DataFrame:
    """Read a tidy Rossi table (CSV written by ``scripts/build_rossi2020_table.py``; default: embedded)."""
    src = embedded_table_path() if path is None else Path(path)
    name = "the embedded table neurolp/data/" + EMBEDDED_TABLE if path is None else str(path)
    try:
        with src.open("r") as fh:
            table = pd.read_csv(fh)
    except FileNotFoundError as exc:
        raise DataNotFoundError(f"{name} does not exist; regenerate it with "
                                "`python scripts/build_rossi2020_table.py` or reinstall neurolp") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{name} is not a readable CSV ({exc})") from exc
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataFormatError(f"{name} lacks columns {missing}; expected {', '.join(COLUMNS)}")
    for col in ("dx_um", "dy_um", "neuron"):
        values = pd.to_numeric(table[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if bad.any():
            rows = (np.flatnonzero(bad)[:5] + 2).tolist()  # +2: the header is line 1
            raise DataFormatError(f"{name}: column {col} has {int(bad.sum())} missing or non-numeric "
                                  f"value(s) (lines {rows}, e.g. {table[col].iloc[np.flatnonzero(bad)[0]]!r}); "
                                  "expected finite numbers (µm offsets, integer neuron IDs)")
        table[col] = values
    if not set(table["input"]).issubset({"EX", "IN"}):
        raise DataFormatError(f"{name}: column 'input' must hold EX or IN, found "
                              f"{sorted(set(table['input']) - {'EX', 'IN'})}")
    if path is None:
        _check_embedded(table)
    table["genotype"] = table["genotype"].fillna("")
    return table[list(COLUMNS)]


def _check_embedded(table: pd.DataFrame) -> None:
    """Compare per-neuron input counts with the provenance record shipped next to the table."""
    meta_file = _data_file(EMBEDDED_TABLE.replace(".csv", ".json"))
    try:
        meta = json.loads(meta_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    expected = meta.get("counts", {})
    got = table.groupby(["neuron", "input"]).size()
    for nid, counts in expected.items():
        for kind, n in counts.items():
            if int(got.get((int(nid), kind), 0)) != int(n):
                raise DataFormatError(f"the embedded table {EMBEDDED_TABLE} has {int(got.get((int(nid), kind), 0))} "
                                      f"{kind} inputs for neuron {nid}, its provenance record says {n}: the file "
                                      "was modified; regenerate it with scripts/build_rossi2020_table.py")


def load_rossi(path=None) -> pd.DataFrame:
    """The Rossi et al. 2020 table: embedded (``path=None``), a raw MAT folder, or a CSV table."""
    if path is None:
        return load_rossi_table()
    path = Path(path)
    if path.is_dir():
        return load_rossi_raw(path)
    if path.suffix.lower() == ".csv":
        return load_rossi_table(path)
    if not path.exists():
        raise DataNotFoundError(f"{path} does not exist; pass the folder of the raw MAT files ({_SOURCE}) "
                                "or a CSV made by scripts/build_rossi2020_table.py")
    raise InputError(f"{path} is neither a folder of Rossi et al. MAT files nor a .csv table")


def rossi_receptive_fields(table: pd.DataFrame | None = None, inputs: str = "all", *,
                           skipped: list | None = None) -> dict[str, ReceptiveField]:
    """One receptive field per neuron: ``{"neuron01": ReceptiveField(points [n, 2] in µm), ...}``.

    ``inputs``: ``"all"`` (excitatory + inhibitory, the paper's Fig. 1), ``"ex"`` or ``"in"``.
    A neuron whose selection has fewer than 2 inputs cannot be standardised: it raises
    :class:`InputError` naming the neuron and the file its inputs come from, or, when a
    ``skipped`` list is given, is left out and recorded there as ``(neuron id, reason)``. Neurons
    the raw loader saw without any input (``table.attrs["neurons"]``) count too.
    """
    if inputs not in SELECTIONS:
        raise InputError(f"unknown input selection {inputs!r}; use one of {', '.join(SELECTIONS)}")
    table = load_rossi_table() if table is None else table
    kinds = SELECTIONS[inputs]
    sel = table[table["input"].isin(kinds)]
    neurons = sorted(set(table["neuron"].unique()) | set(table.attrs.get("neurons", ())))
    rfs = {}
    for nid in neurons:
        g = sel[sel["neuron"] == nid]
        if len(g) < 2:
            files = " and ".join(_RAW[k].format(int(nid)) for k in kinds)
            label = {"all": "inputs", "ex": "excitatory inputs", "in": "inhibitory inputs"}[inputs]
            reason = (f"neuron {int(nid):02d} has {len(g)} {label} ({files}); a receptive field needs "
                      ">= 2 inputs to be standardised to zero mean and unit variance")
            if skipped is None:
                raise InputError(f"{reason} — use another selection (e.g. all inputs) or drop this "
                                 "neuron from the data")
            skipped.append((f"neuron{int(nid):02d}", reason))
            continue
        rfs[f"neuron{int(nid):02d}"] = ReceptiveField(g[["dx_um", "dy_um"]].to_numpy(dtype=np.float64))
    if not rfs:
        raise InputError(f"the Rossi table has no neuron with >= 2 {inputs} inputs"
                         + (f" ({len(skipped)} skipped: {skipped[0][1]})" if skipped else ""))
    return rfs
