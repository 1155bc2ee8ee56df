"""Any neural data set for RSA: RSMs (or RDMs) per recording site, or responses per site.

``neurolp rsa --neural FILE --images DIR|NPY`` reads one file, in one of three layouts:

**npz or HDF5 (neurolp layout)** — arrays named by key (npz) or dataset path (HDF5):

============================  =====================================================================
``rsm/<site>`` or ``<site>``  similarity matrices ``[n, n]``, or a stack ``[k, n, n]`` (k subjects)
``rdm/<site>``                dissimilarity matrices (same shapes; zero diagonal), converted below
``responses/<site>``          responses ``[images, trials, neurons]`` (NaN-padded whole trials)
``responses/<site>/<subj>``   the same per subject (several subjects give across-subject ceilings)
``subjects/<site>``           names of the k matrices of a stack (default ``0..k-1``)
``ceiling/<site>``            the site's noise ceiling: a number, or ``[lower, upper]`` (NaN = none)
``stimuli``                   the stimulus order: image names (strings) or integer rows of an image
                              array (``-1`` = a blank grey screen)
``dissimilarity_measure``     how ``rdm/`` matrices were made (default ``"correlation"``)
``ceiling_comparator``        the comparator the given ceilings were computed with (checked)
============================  =====================================================================

A plain key holds one ``[n, n]`` RSM (``np.savez(f, VISp=rsm, stimuli=names)``); one file holds
either matrices or responses, not both.

**rsatoolbox RDMs HDF5** (``RDMs.save(path)``; rsatoolbox 0.3 and pyrsa 3.0): root attributes
``rsatoolbox_version`` and ``dissimilarity_measure``; ``dissimilarities`` ``[n_rdm, n(n−1)/2]`` in
scipy's ``squareform`` order (upper triangle, row by row); groups ``rdm_descriptors`` (one value
per RDM: the site — ``roi``/``area``/``site``/… — and the subject) and ``pattern_descriptors``
(one value per condition: the stimulus names, else ``index``). Strings are stored as bytes.

**Dissimilarities → similarities.** A correlation (or cosine) distance d = 1 − r becomes the RSM
1 − d exactly. Other measures (squared Euclidean, Mahalanobis, crossnobis, Poisson) have no
similarity with a unit diagonal; they become −d. Every comparator here (Kendall τ_a/τ_b, Spearman,
Pearson) and both ceiling pools are unchanged by either map, which are affine with negative slope
on *both* the data's and (through 1 − RSM) the models' side; only the sign convention matters.

**Checks** (each a :class:`~neurolp.errors.DataFormatError` naming the site and the stimulus):
square matrices with one size across sites and equal to the stimulus count, symmetric, a unit
(RSM) or zero (RDM) diagonal, no NaN row (a stimulus without any defined similarity), no infinite
value; responses ``[images, trials, neurons]`` with no stimulus lacking every response and NaN only
as whole padded trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError

__all__ = ["NeuralData", "load_neural", "read_rsatoolbox_rdms", "rdm_to_similarity",
           "SITE_DESCRIPTORS", "SUBJECT_DESCRIPTORS", "STIMULUS_DESCRIPTORS",
           "SIMILARITY_OF_DISTANCE"]

#: rdm descriptors tried, in order, for the site of an rsatoolbox RDM (else one site: the file).
SITE_DESCRIPTORS = ("site", "area", "roi", "region", "brain_area", "area_name")
#: rdm descriptors tried for the subject (else the RDM's index).
SUBJECT_DESCRIPTORS = ("subject", "subj", "participant", "mouse", "animal", "session", "run")
#: pattern descriptors tried for the stimulus names (else ``index``).
STIMULUS_DESCRIPTORS = ("stimulus", "stimuli", "image", "images", "stim", "condition",
                        "conditions", "conds", "name", "names")
#: dissimilarity measures that are 1 − a similarity with unit diagonal.
SIMILARITY_OF_DISTANCE = ("correlation", "1-pearson", "1-correlation", "correlation distance",
                          "pearson", "cosine", "1-cosine")

_TOL = 1e-6
_LAYOUT = ("expected an npz or HDF5 file with rsm/<site> [n, n] (or [k, n, n]) similarity "
           "matrices, rdm/<site> dissimilarities or responses/<site>[/<subject>] [images, trials, "
           "neurons] arrays, plus optional 'stimuli', ceiling/<site> and subjects/<site> (see "
           "`neurolp rsa --help`), or an rsatoolbox RDMs HDF5 file")


@dataclass
class NeuralData:
    """A neural data set: similarity matrices or responses per site, in one stimulus order.

    ``rsms[site]`` is ``[k, n, n]`` (similarities after conversion; k subjects or sessions, named
    by ``subjects[site]``); ``responses[site][subject]`` is ``[images, trials, neurons]``.
    ``ceilings[site]`` = ``(lower, upper)`` as given in the file (NaN where not given).
    ``order`` is the stimulus order (names or integer rows; ``None``: not given).
    """

    path: Path
    format: str                      # "npz" | "hdf5" | "rsatoolbox"
    kind: str                        # "rsm" | "responses"
    n_stimuli: int
    sites: list[str]
    order: list | None = None
    order_source: str = ""
    rsms: dict[str, np.ndarray] = field(default_factory=dict)
    subjects: dict[str, list[str]] = field(default_factory=dict)
    responses: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    ceilings: dict[str, tuple[float, float]] = field(default_factory=dict)
    ceiling_comparator: str | None = None
    conversion: str = "similarities as given"
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = ("similarity matrices" if self.kind == "rsm" else "responses [images, trials, neurons]")
        per = ", ".join(f"{s}: {len(self.subjects.get(s) or self.responses.get(s, {}))}"
                        for s in self.sites)
        text = (f"{self.path} ({self.format}): {what} for {len(self.sites)} site(s) over "
                f"{self.n_stimuli} stimuli; subjects per site {per}")
        if self.kind == "rsm":
            text += f"; {self.conversion}"
        if self.ceilings:
            text += f"; ceilings given for {', '.join(self.ceilings)}"
        return text

    def summary(self) -> pd.DataFrame:
        """One row per site: subjects, neurons, trials, given ceilings."""
        rows = []
        for s in self.sites:
            lo, up = self.ceilings.get(s, (np.nan, np.nan))
            row = {"area": s, "kind": self.kind, "stimuli": self.n_stimuli,
                   "subjects": len(self.subjects.get(s) or self.responses.get(s, {})),
                   "ceiling_lower_given": lo, "ceiling_upper_given": up}
            if self.kind == "responses":
                arrs = list(self.responses[s].values())
                row.update(neurons=int(sum(a.shape[2] for a in arrs)),
                           trials_min=int(min(_trial_counts(a).min() for a in arrs)),
                           trials_max=int(max(a.shape[1] for a in arrs)))
            rows.append(row)
        return pd.DataFrame(rows)

    def to_brain_responses(self):
        """The responses as a :class:`~neurolp.brain.responses.BrainResponses` (one "experiment"
        per site × subject, ``area`` = site, ``mouse`` = subject), so the Allen pipeline's RSMs,
        split-half halves and ceilings apply unchanged."""
        from neurolp.brain.responses import BrainResponses

        if self.kind != "responses":
            raise ConfigError("only response data become BrainResponses (this file holds matrices)")
        rows, responses, ids = [], {}, {}
        eid = 0
        for s in self.sites:
            for subj, arr in self.responses[s].items():
                counts = _trial_counts(arr)
                rows.append({"experiment_id": eid, "area": s, "mouse": subj, "container_id": eid,
                             "depth": np.nan, "layer": "", "cre_line": "",
                             "n_neurons": arr.shape[2], "n_trials_min": int(counts.min()),
                             "n_trials_max": int(arr.shape[1])})
                responses[eid] = np.ascontiguousarray(arr.transpose(1, 0, 2))  # [trials, images, n]
                ids[eid] = np.arange(arr.shape[2])
                eid += 1
        return BrainResponses(pd.DataFrame(rows), responses, ids, None, None)


def _trial_counts(arr: np.ndarray) -> np.ndarray:
    """Valid trials per image of ``[images, trials, neurons]`` (a trial is valid if not NaN)."""
    return (~np.isnan(arr[:, :, 0])).sum(axis=1) if arr.shape[2] else np.zeros(arr.shape[0], int)


def rdm_to_similarity(rdm: np.ndarray, measure: str | None) -> tuple[np.ndarray, str]:
    """Similarities from dissimilarities (see the module docstring) and a description of the map."""
    m = (measure or "").strip().lower()
    if m in SIMILARITY_OF_DISTANCE:
        return 1.0 - rdm, f"RSM = 1 − RDM ({measure} distance)"
    return -rdm, (f"similarity = −dissimilarity ({measure or 'unnamed'} measure: no similarity with "
                  "a unit diagonal; τ, Spearman and Pearson comparisons do not depend on the map)")


# ------------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------------

def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    a = np.asarray(v)
    if a.ndim == 0:
        x = a[()]
        return x.decode("utf-8") if isinstance(x, bytes) else str(x)
    if a.size == 1:
        return _text(a.ravel()[0])
    raise DataFormatError(f"expected a single string, got an array of shape {a.shape}")


def _strings(a) -> list:
    a = np.asarray(a)
    if a.dtype.kind in ("S", "O"):
        return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a.ravel()]
    if a.dtype.kind == "U":
        return [str(x) for x in a.ravel()]
    if a.dtype.kind in ("i", "u"):
        return [int(x) for x in a.ravel()]
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return [int(x) for x in a.ravel()]
    raise DataFormatError(f"a stimulus order must hold names (strings) or integer indices, got "
                          f"{a.dtype} values")


def _read_arrays(path: Path) -> tuple[str, dict[str, np.ndarray], dict[str, object]]:
    """``(format, {key: array}, root attributes)`` of an npz or HDF5 file (HDF5: every dataset by
    its path)."""
    import h5py

    if h5py.is_hdf5(path):
        arrays, attrs = {}, {}
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: f.attrs[k] for k in f.attrs}

                def visit(name, obj):
                    if isinstance(obj, h5py.Dataset):
                        arrays[name] = None if obj.shape is None else obj[()]
                f.visititems(visit)
        except OSError as exc:
            raise DataFormatError(f"{path} is not a readable HDF5 file ({exc})") from None
        return "hdf5", arrays, attrs
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith((b"PK", b"\x93NUMPY")):
        raise DataFormatError(f"{path} is neither an npz nor an HDF5 file; " + _LAYOUT)
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.ndarray):
            raise DataFormatError(f"{path} is a single .npy array, not a named collection; "
                                  + _LAYOUT)
        with z:
            return "npz", {k: np.asarray(z[k]) for k in z.files}, {}
    except ValueError as exc:
        raise DataFormatError(f"cannot read {path} without unpickling ({exc}): store names as "
                              "string arrays, not Python objects; " + _LAYOUT) from None
    except OSError as exc:
        raise DataFormatError(f"{path} is neither an npz nor an HDF5 file ({exc}); " + _LAYOUT) \
            from None


def read_rsatoolbox_rdms(path) -> dict:
    """The contents of an rsatoolbox ``RDMs.save`` HDF5 file, read with h5py (no rsatoolbox needed):
    ``{"dissimilarities" [n_rdm, n(n−1)/2], "measure", "rdm_descriptors", "pattern_descriptors",
    "descriptors", "version"}`` with strings decoded."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("rsatoolbox_version", f.attrs.get("pyrsa_version"))
            if "dissimilarities" not in f:
                raise DataFormatError(f"{path} has no 'dissimilarities' dataset: not an rsatoolbox "
                                      "RDMs file")
            d = np.asarray(f["dissimilarities"][()], dtype=np.float64)
            measure = f.attrs.get("dissimilarity_measure")
            if measure is None and "dissimilarity_measure" in f and \
                    f["dissimilarity_measure"].shape is not None:
                measure = f["dissimilarity_measure"][()]
            groups = {}
            for g in ("rdm_descriptors", "pattern_descriptors", "descriptors"):
                out = {}
                if g in f:
                    grp = f[g]
                    for k in grp:
                        if isinstance(grp[k], h5py.Dataset) and grp[k].shape is not None:
                            v = np.asarray(grp[k][()])
                            out[k] = [x.decode("utf-8") if isinstance(x, bytes) else x
                                      for x in v.ravel()] if v.ndim else v[()]
                    for k in grp.attrs:
                        out[k] = grp.attrs[k]
                groups[g] = out
    except OSError as exc:
        raise DataFormatError(f"{path} is not a readable HDF5 file ({exc})") from None
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2:
        raise DataFormatError(f"{path}: 'dissimilarities' has shape {d.shape}; rsatoolbox stores "
                              "[n_rdm, n_pairs] vectors")
    return {"dissimilarities": d, "measure": None if measure is None else _text(measure),
            "rdm_descriptors": groups["rdm_descriptors"],
            "pattern_descriptors": groups["pattern_descriptors"],
            "descriptors": groups["descriptors"],
            "version": None if version is None else _text(version)}


def _n_from_pairs(m: int, path: Path) -> int:
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise DataFormatError(f"{path}: {m} dissimilarities per RDM is not n(n−1)/2 for any n")
    return n


def _pick(descriptors: dict, wanted: str | None, defaults, what: str, flag: str, count: int,
          path: Path):
    if wanted is not None:
        if wanted not in descriptors:
            raise DataFormatError(f"{flag} {wanted!r}: {path} has no {what} descriptor of that name; "
                                  f"it has {sorted(descriptors)}")
        key = wanted
    else:
        key = next((k for k in defaults if k in descriptors), None)
        if key is None:
            return None, None
    vals = descriptors[key]
    vals = list(vals) if isinstance(vals, (list, tuple, np.ndarray)) else [vals]
    if len(vals) != count:
        raise DataFormatError(f"{path}: {what} descriptor {key!r} has {len(vals)} values for "
                              f"{count} {'RDMs' if what == 'rdm' else 'conditions'}")
    return key, vals


def _from_rsatoolbox(path: Path, site_descriptor, subject_descriptor, stimulus_descriptor):
    from scipy.spatial.distance import squareform

    r = read_rsatoolbox_rdms(path)
    d = r["dissimilarities"]
    n = _n_from_pairs(d.shape[1], path)
    n_rdm = d.shape[0]
    skey, sites = _pick(r["rdm_descriptors"], site_descriptor, SITE_DESCRIPTORS, "rdm",
                        "--site-descriptor", n_rdm, path)
    ukey, subjects = _pick(r["rdm_descriptors"], subject_descriptor, SUBJECT_DESCRIPTORS, "rdm",
                           "--subject-descriptor", n_rdm, path)
    pkey, order = _pick(r["pattern_descriptors"], stimulus_descriptor, STIMULUS_DESCRIPTORS,
                        "pattern", "--stimulus-descriptor", n, path)
    if sites is None:
        sites = [path.stem] * n_rdm
    if subjects is None:
        subjects = list(r["rdm_descriptors"].get("index", range(n_rdm)))
        ukey = "index"
    if order is None and "index" in r["pattern_descriptors"]:
        _, order = _pick(r["pattern_descriptors"], "index", (), "pattern", "", n, path)
        pkey = "index"
    mats = np.stack([squareform(v, checks=False) for v in d])       # zero diagonal, symmetric
    conv_mats, conversion = rdm_to_similarity(mats, r["measure"])
    site_names = [str(s) for s in sites]
    data = NeuralData(path, "rsatoolbox", "rsm", n, list(dict.fromkeys(site_names)),
                      conversion=conversion)
    for s in data.sites:
        idx = [k for k, v in enumerate(site_names) if v == s]
        _check_matrices(mats[idx], s, "rdm", path, order)   # the file's own values
        data.rsms[s] = conv_mats[idx]
        data.subjects[s] = [str(subjects[k]) for k in idx]
    if order is not None:
        data.order = [int(o) if isinstance(o, (int, np.integer)) else str(o) for o in order]
        data.order_source = f"pattern descriptor {pkey!r}"
    data.notes.append(f"rsatoolbox {r['version'] or '?'} RDMs; sites from "
                      f"{'rdm descriptor ' + repr(skey) if skey else 'the file name (no site descriptor)'}"
                      f", subjects from rdm descriptor {ukey!r}")
    return data


def _stim_label(order, i: int) -> str:
    return f"stimulus {i}" + (f" ({order[i]!r})" if order is not None and i < len(order) else "")


def _check_matrices(m: np.ndarray, site: str, kind: str, path: Path, order) -> None:
    """Square, symmetric, unit (rsm) / zero (rdm) diagonal, no NaN row, no infinity."""
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise DataFormatError(f"{path}: {kind}/{site} has shape {m.shape[1:] if m.ndim == 3 else m.shape}; "
                              "a similarity matrix must be square [n, n] (or a stack [k, n, n])")
    if np.isinf(m).any():
        raise DataFormatError(f"{path}: {kind}/{site} contains infinite values")
    n = m.shape[1]
    off = ~np.eye(n, dtype=bool)
    for k in range(m.shape[0]):
        a = m[k]
        which = f"{kind}/{site}" + (f"[{k}]" if m.shape[0] > 1 else "")
        nan_rows = np.flatnonzero(np.isnan(np.where(off, a, np.nan)).all(axis=1)) if n > 1 else []
        if len(nan_rows):
            raise DataFormatError(
                f"{path}: {which} has a NaN row at {_stim_label(order, int(nan_rows[0]))}"
                f"{f' and {len(nan_rows) - 1} more' if len(nan_rows) > 1 else ''}: that stimulus "
                "has no defined similarity; drop it from the data (and from the stimulus order)")
        scale = max(1.0, float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0)
        asym = np.abs(a - a.T)
        asym = np.where(np.isnan(asym), 0.0, asym)
        if asym.max() > _TOL * scale:
            i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
            raise DataFormatError(
                f"{path}: {which} is not symmetric: entry ({i}, {j}) = {a[i, j]:.6g} but "
                f"({j}, {i}) = {a[j, i]:.6g}; RSA needs symmetric similarity matrices (average "
                "the matrix with its transpose if the asymmetry is noise)")
        diag = np.diag(a)
        want = 1.0 if kind == "rsm" else 0.0
        bad = np.flatnonzero(~(np.abs(diag - want) <= _TOL * scale))
        if len(bad):
            raise DataFormatError(
                f"{path}: {which} has {diag[bad[0]]:.6g} on the diagonal at "
                f"{_stim_label(order, int(bad[0]))} (and {len(bad) - 1} more); "
                + ("an RSM has a unit diagonal (a dissimilarity matrix goes under rdm/<site>)"
                   if kind == "rsm" else "a dissimilarity matrix has a zero diagonal (a similarity "
                                         "matrix goes under rsm/<site>)"))


def _check_responses(a: np.ndarray, key: str, path: Path, order) -> np.ndarray:
    if a.ndim != 3:
        raise DataFormatError(f"{path}: {key} has shape {a.shape}; responses must be [images, "
                              "trials, neurons] (a single trial: a trials axis of length 1)")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise DataFormatError(f"{path}: {key} holds {a.dtype} values, not real numbers")
    a = a.astype(np.float32, copy=False) if a.dtype != np.float32 else a
    if min(a.shape) == 0:
        raise DataFormatError(f"{path}: {key} is empty ({a.shape})")
    if np.isinf(a).any():
        raise DataFormatError(f"{path}: {key} contains infinite values")
    nan = np.isnan(a)
    if nan.any():
        whole = nan.all(axis=2)
        partial = nan.any(axis=2) & ~whole
        if partial.any():
            i, t = np.argwhere(partial)[0]
            raise DataFormatError(
                f"{path}: {key} is NaN for some neurons only at {_stim_label(order, int(i))}, "
                f"trial {t}: NaN may only pad whole trials (all neurons) of images shown fewer "
                "times; drop or impute the neurons with missing values")
        empty = np.flatnonzero(whole.all(axis=1))
        if len(empty):
            raise DataFormatError(
                f"{path}: {key} has a NaN row at {_stim_label(order, int(empty[0]))}"
                f"{f' and {len(empty) - 1} more' if len(empty) > 1 else ''}: no trial of that "
                "stimulus has a response; drop it from the data and from the stimulus order")
    return a


def load_neural(path, *, site_descriptor: str | None = None, subject_descriptor: str | None = None,
                stimulus_descriptor: str | None = None) -> NeuralData:
    """Read and check a neural data file (see the module docstring for the layouts)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"--neural {path} does not exist; " + _LAYOUT)
    import h5py

    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            is_rsatoolbox = ("rsatoolbox_version" in f.attrs or "pyrsa_version" in f.attrs
                             or "dissimilarities" in f)
        if is_rsatoolbox:
            return _from_rsatoolbox(path, site_descriptor, subject_descriptor, stimulus_descriptor)
    for flag, v in (("--site-descriptor", site_descriptor), ("--subject-descriptor",
                                                             subject_descriptor),
                    ("--stimulus-descriptor", stimulus_descriptor)):
        if v is not None:
            raise ConfigError(f"{flag} only applies to rsatoolbox RDMs files; {path} is in "
                              "neurolp's layout")
    fmt, arrays, attrs = _read_arrays(path)
    meta = {**{k: v for k, v in attrs.items()}}
    rsm, rdm, resp, ceil, subj = {}, {}, {}, {}, {}
    order = None
    for key, val in arrays.items():
        if val is None:
            continue
        parts = key.strip("/").split("/")
        head = parts[0]
        if key in ("stimuli", "dissimilarity_measure", "ceiling_comparator"):
            meta[key] = val
        elif head in ("rsm", "rdm") and len(parts) == 2:
            (rsm if head == "rsm" else rdm)[parts[1]] = np.asarray(val)
        elif head == "responses" and len(parts) in (2, 3):
            resp.setdefault(parts[1], {})[parts[2] if len(parts) == 3 else parts[1]] = \
                (key, np.asarray(val))
        elif head == "ceiling" and len(parts) == 2:
            ceil[parts[1]] = np.asarray(val)
        elif head == "subjects" and len(parts) == 2:
            subj[parts[1]] = [str(s) for s in _strings(val)]
        elif len(parts) == 1:
            v = np.asarray(val)
            if v.ndim != 2:
                raise DataFormatError(
                    f"{path}: {key!r} has shape {v.shape}; a plain key holds one [n, n] RSM — name "
                    f"a stack of RSMs rsm/{key} and responses responses/{key}")
            rsm[key] = v
        else:
            raise DataFormatError(f"{path}: unexpected entry {key!r}; " + _LAYOUT)
    if "stimuli" in meta:
        order = _strings(meta["stimuli"])
    kinds = [k for k, d in (("rsm", rsm), ("rdm", rdm), ("responses", resp)) if d]
    if not kinds:
        raise DataFormatError(f"{path} holds no site ({sorted(arrays) or 'no arrays'}); " + _LAYOUT)
    if "responses" in kinds and len(kinds) > 1:
        raise DataFormatError(f"{path} mixes similarity matrices and responses; put each kind in "
                              "its own file")
    clash = set(rsm) & set(rdm)
    if clash:
        raise DataFormatError(f"{path}: site(s) {sorted(clash)} have both an RSM and an RDM")
    if "responses" in kinds:
        sites = sorted(resp)
        data = NeuralData(path, fmt, "responses", 0, sites)
        sizes = {}
        for s in sites:
            data.responses[s] = {}
            for sub, (key, a) in sorted(resp[s].items()):
                data.responses[s][sub] = _check_responses(a, key, path, order)
                sizes[key] = a.shape[0]
    else:
        measure = _text(meta["dissimilarity_measure"]) if "dissimilarity_measure" in meta \
            else "correlation"
        sites = sorted(set(rsm) | set(rdm))
        data = NeuralData(path, fmt, "rsm", 0, sites)
        sizes, conversions = {}, set()
        for s in sites:
            kind = "rsm" if s in rsm else "rdm"
            m = np.asarray(rsm.get(s, rdm.get(s)))
            if not np.issubdtype(m.dtype, np.number):
                raise DataFormatError(f"{path}: {kind}/{s} holds {m.dtype} values, not numbers")
            m = m.astype(np.float64)
            m = m[None] if m.ndim == 2 else m
            _check_matrices(m, s, kind, path, order)
            if kind == "rdm":
                m, conv = rdm_to_similarity(m, measure)
                conversions.add(conv)
            else:
                conversions.add("similarities as given")
            data.rsms[s] = m
            sizes[f"{kind}/{s}"] = m.shape[1]
            names = subj.get(s, [str(k) for k in range(m.shape[0])])
            if len(names) != m.shape[0]:
                raise DataFormatError(f"{path}: subjects/{s} names {len(names)} subjects for "
                                      f"{m.shape[0]} matrices")
            data.subjects[s] = names
        data.conversion = "; ".join(sorted(conversions))
        extra = sorted(set(subj) - set(sites))
        if extra:
            raise DataFormatError(f"{path}: subjects/ for unknown site(s) {extra}")
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise DataFormatError(f"{path}: the sites disagree on the number of stimuli ({listing}); "
                              "every site must cover the same stimuli in the same order")
    data.n_stimuli = next(iter(sizes.values()))
    if order is not None:
        if len(order) != data.n_stimuli:
            raise DataFormatError(f"{path}: 'stimuli' lists {len(order)} stimuli but the data has "
                                  f"{data.n_stimuli} (rows/images)")
        data.order = order
        data.order_source = "'stimuli' in the file"
    for s, v in ceil.items():
        if s not in data.sites:
            raise DataFormatError(f"{path}: ceiling/{s} is for an unknown site (sites: "
                                  f"{', '.join(data.sites)})")
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.size not in (1, 2) or np.isinf(v).any():
            raise DataFormatError(f"{path}: ceiling/{s} must be one number or [lower, upper], got "
                                  f"{v.tolist()}")
        data.ceilings[s] = (float(v[0]), float(v[1]) if v.size == 2 else np.nan)
    if "ceiling_comparator" in meta:
        data.ceiling_comparator = _text(meta["ceiling_comparator"]).strip()
    return data
