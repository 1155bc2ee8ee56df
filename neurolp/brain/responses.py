"""Natural-scene responses as tidy trials × images × neurons arrays, cached as a validated artefact.

For every selected experiment the response of each neuron to each presentation of each of the 118
images is the sum or mean of the chosen signal over a window after stimulus onset, optionally minus
the mean over a pre-stimulus baseline:

* ``signal="events"`` — L0 events (``ophys_experiment_events/<id>_events.npz``, key ``"ev"``);
  the Lp-Conv/Bakhtiari pipeline sums events over 15 frames (≈0.5 s at 30 Hz) from onset.
* ``signal="dff"`` — ΔF/F from the NWB file (the AllenSDK ``NaturalScenes`` analysis uses a mean
  over ≈0.5 s against a ≈1 s pre-stimulus baseline on corrected fluorescence).

Blank presentations (frame −1) are dropped. Images shown fewer times than others are padded with
NaN in the trials axis; the per-experiment trial counts are reported (``n_trials_min/max``).

:func:`load_responses` caches the result under ``<cache>/neurolp/`` as ``responses-<key>.npz`` plus a
JSON sidecar holding the parameters, the selection, a SHA-256 of the npz and the size/mtime of every
source file. The artefact is validated on read and rebuilt when stale or corrupt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from neurolp.brain import nwb
from neurolp.brain.cache import CacheLayout, experiment_table, select_experiments, unmatched_filters
from neurolp.brain.selection import Selection
from neurolp.errors import DataFormatError, DataNotFoundError, InputError
from neurolp.utils.io import atomic_write, atomic_write_text, file_sha256

__all__ = ["ResponseParams", "BrainResponses", "experiment_responses", "load_responses",
           "ARTEFACT_VERSION"]

ARTEFACT_VERSION = 1
N_IMAGES = 118


@dataclass(frozen=True)
class ResponseParams:
    """How a response is read out of the traces (frames are 2-photon frames, ≈30 Hz)."""

    signal: str = "events"            # "events" | "dff"
    window_start: int = 0             # first frame of the window, relative to stimulus onset
    window_frames: int = 15           # window length (frames)
    aggregate: str = "mean"           # "mean" | "sum" over the window
    baseline_frames: int = 0          # >0: subtract the mean over this many frames before onset

    def __post_init__(self):
        if self.signal not in ("events", "dff"):
            raise InputError(f"signal must be 'events' or 'dff', got {self.signal!r}")
        if self.aggregate not in ("mean", "sum"):
            raise InputError(f"aggregate must be 'mean' or 'sum', got {self.aggregate!r}")
        if int(self.window_frames) < 1:
            raise InputError(f"window_frames must be >= 1, got {self.window_frames}")
        if int(self.baseline_frames) < 0:
            raise InputError(f"baseline_frames must be >= 0, got {self.baseline_frames}")

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        base = f", minus the mean of {self.baseline_frames} pre-stimulus frames" \
            if self.baseline_frames else ""
        return (f"{self.aggregate} of {'L0 events' if self.signal == 'events' else 'ΔF/F'} over frames "
                f"[{self.window_start}, {self.window_start + self.window_frames}) after onset{base}")


def experiment_responses(trace: np.ndarray, frame: np.ndarray, start: np.ndarray,
                         params: ResponseParams, n_images: int = N_IMAGES) -> tuple[np.ndarray, dict]:
    """``float32 [max_trials, n_images, n_cells]`` responses (NaN-padded) and a report dict.

    ``trace`` is ``[n_cells, n_frames]``; ``frame``/``start`` come from the stimulus table.
    Presentations whose window runs past the trace are left out and counted.
    """
    trace = np.asarray(trace, dtype=np.float32)
    n_cells, n_frames = trace.shape
    blank = frame < 0
    out_of_range = (frame >= n_images)
    if out_of_range.any():
        raise DataFormatError(f"stimulus table refers to image {int(frame.max())} but only {n_images} "
                              "natural-scene images exist")
    w0 = start + int(params.window_start)
    w1 = w0 + int(params.window_frames)
    b0 = start - int(params.baseline_frames)
    outside = (w0 < 0) | (w1 > n_frames) | (b0 < 0)
    keep = ~blank & ~outside
    fr, s0 = frame[keep], w0[keep]
    idx = s0[:, None] + np.arange(int(params.window_frames))[None, :]          # [P, W]
    win = trace[:, idx]                                                        # [C, P, W]
    resp = win.sum(axis=2) if params.aggregate == "sum" else win.mean(axis=2)  # [C, P]
    if params.baseline_frames:
        bidx = (start[keep] - int(params.baseline_frames))[:, None] + \
            np.arange(int(params.baseline_frames))[None, :]
        resp = resp - trace[:, bidx].mean(axis=2)
    # trial index of each presentation within its image (presentation order)
    order = np.lexsort((s0, fr))
    fr_sorted = fr[order]
    first = np.searchsorted(fr_sorted, fr_sorted, side="left")
    trial_sorted = np.arange(len(order)) - first
    trial = np.empty_like(trial_sorted)
    trial[order] = trial_sorted
    counts = np.bincount(fr, minlength=n_images)
    max_trials = int(counts.max()) if len(counts) else 0
    arr = np.full((max_trials, n_images, n_cells), np.nan, dtype=np.float32)
    arr[trial, fr, :] = resp.T
    report = {"n_presentations": int(len(frame)), "n_blank": int(blank.sum()),
              "n_outside_trace": int((outside & ~blank).sum()),
              "n_trials_min": int(counts.min()) if len(counts) else 0, "n_trials_max": max_trials,
              "n_images_missing": int((counts == 0).sum()),
              "n_padded": int((max_trials - counts).sum() * n_cells)}
    return arr, report


@dataclass
class BrainResponses:
    """Responses of the selected experiments plus their metadata.

    ``experiments`` has one row per experiment (area, depth, layer, cre_line, container_id, mouse,
    n_neurons, trial counts, ...); ``responses[experiment_id]`` is ``[trials, images, neurons]``.
    """

    experiments: pd.DataFrame
    responses: dict[int, np.ndarray]
    neuron_ids: dict[int, np.ndarray]
    params: ResponseParams
    selection: Selection
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["experiment_id",
                                                                                 "reason"]))
    from_cache: bool = False
    artefact: Path | None = None

    @property
    def n_images(self) -> int:
        arrs = list(self.responses.values())
        return arrs[0].shape[1] if arrs else N_IMAGES

    @property
    def areas(self) -> list[str]:
        return sorted(self.experiments["area"].unique().tolist())

    def mean_responses(self, experiment_ids: Iterable[int]) -> np.ndarray:
        """Trial-averaged ``[images, neurons]`` of the given experiments, neurons concatenated."""
        mats = [np.nanmean(self.responses[int(e)], axis=0) for e in experiment_ids]
        if not mats:
            return np.zeros((self.n_images, 0), dtype=np.float32)
        return np.concatenate(mats, axis=1)

    def groups(self, by: str = "mouse") -> dict[tuple[str, str], list[int]]:
        """``{(area, group): [experiment_id, ...]}`` with ``by`` = "mouse" or "container_id"."""
        out: dict[tuple[str, str], list[int]] = {}
        for (area, g), df in self.experiments.groupby(["area", by], sort=True):
            out[(str(area), str(g))] = [int(e) for e in df["experiment_id"]]
        return out

    def summary(self) -> pd.DataFrame:
        """Per area: experiments, containers, mice, neurons, depths and Allen layers."""
        e = self.experiments
        if e.empty:
            return pd.DataFrame(columns=["area", "experiments", "containers", "mice", "neurons",
                                         "depths", "layers", "cre_lines"])
        return (e.groupby("area")
                .agg(experiments=("experiment_id", "size"), containers=("container_id", "nunique"),
                     mice=("mouse", "nunique"), neurons=("n_neurons", "sum"),
                     depths=("depth", lambda s: ",".join(map(str, sorted(set(int(v) for v in s))))),
                     layers=("layer", lambda s: ",".join(sorted(set(s)))),
                     cre_lines=("cre_line", lambda s: ",".join(sorted(set(s)))))
                .reset_index())

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per experiment × trial × image × neuron (NaN padding left out)."""
        parts = []
        meta = self.experiments.set_index("experiment_id")
        for eid, arr in self.responses.items():
            t, i, n = np.nonzero(~np.isnan(arr))
            row = meta.loc[eid]
            parts.append(pd.DataFrame({
                "experiment_id": eid, "area": row["area"], "mouse": row["mouse"],
                "container_id": row["container_id"], "depth": row["depth"], "layer": row["layer"],
                "cre_line": row["cre_line"], "trial": t, "image": i,
                "neuron_id": self.neuron_ids[eid][n], "response": arr[t, i, n]}))
        if not parts:
            return pd.DataFrame(columns=["experiment_id", "area", "mouse", "container_id", "depth",
                                         "layer", "cre_line", "trial", "image", "neuron_id",
                                         "response"])
        return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# building and caching
# ------------------------------------------------------------------------------------------------

def _fingerprint(paths: Iterable[Path]) -> list[list]:
    out = []
    for p in paths:
        st = p.stat()
        out.append([p.name, int(st.st_size), int(st.st_mtime_ns)])
    return out


def _artefact_key(selection: Selection, params: ResponseParams) -> str:
    blob = json.dumps({"v": ARTEFACT_VERSION, "selection": selection.to_dict(),
                       "params": params.to_dict()}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _build_one(layout: CacheLayout, eid: int, params: ResponseParams):
    path = layout.nwb_path(eid)
    frame, start, _ = nwb.read_stimulus_table(path)
    cells = nwb.read_cell_ids(path)
    if params.signal == "events":
        trace = nwb.read_events(layout.events_path(eid))
    else:
        trace = nwb.read_dff(path)
    if trace.shape[0] != len(cells):
        raise DataFormatError(
            f"experiment {eid}: {trace.shape[0]} {params.signal} traces but {len(cells)} cells in "
            f"{path.name}; the events file and the NWB file do not belong together — delete both and "
            "run `neurolp allen fetch` again")
    arr, report = experiment_responses(trace, frame, start, params)
    return arr, cells, report


def load_responses(cache_dir: str | Path, selection: Selection | None = None,
                   params: ResponseParams | None = None, *, allow_partial: bool = False,
                   use_artefact: bool = True, rebuild: bool = False, progress: bool = True,
                   artefact_dir: str | Path | None = None) -> BrainResponses:
    """Responses of the selected natural-scene experiments of an Allen cache (no network needed).

    A missing cache, or selected experiments whose files are missing (a partial cache), raise
    :class:`~neurolp.errors.DataNotFoundError` naming what is missing — unless ``allow_partial``,
    in which case they are listed in ``.excluded``.
    """
    selection = selection or Selection()
    params = params or ResponseParams()
    layout = CacheLayout.open(cache_dir)
    table = experiment_table(layout.root)
    chosen, excluded = select_experiments(table, selection)
    if chosen.empty:
        raise DataNotFoundError(
            f"no natural-scene ({selection.session_type}) experiment of the Allen cache at "
            f"{layout.root} matches the selection: {selection.describe()}; "
            + "; ".join(unmatched_filters(table, selection) or
                        [f"the cache knows {len(table)} experiments in areas "
                         f"{sorted(set(table['area'].dropna()))}"])
            + f". Run `neurolp allen fetch --cache {layout.root}` with this selection, or change "
            "--areas/--cre-lines/--depths")
    need_events = params.signal == "events"
    missing = chosen[~chosen["has_nwb"] | (need_events & ~chosen["has_events"])]
    if len(missing):
        what = []
        n_nwb = int((~missing["has_nwb"]).sum())
        n_ev = int((need_events & ~missing["has_events"]).sum())
        if n_nwb:
            what.append(f"{n_nwb} NWB file(s) in {layout.nwb_dir}")
        if n_ev:
            what.append(f"{n_ev} events file(s) in {layout.events_path(0).parent}")
        ids = missing["experiment_id"].tolist()
        listing = ", ".join(map(str, ids[:8])) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
        if not allow_partial:
            raise DataNotFoundError(
                f"partial Allen cache at {layout.root}: {len(ids)} of {len(chosen)} selected "
                f"experiments lack files ({'; '.join(what)}); experiments {listing}. Run `neurolp "
                f"allen fetch --cache {layout.root}` (same --areas/--cre-lines/--depths) to complete "
                "it, or pass --allow-partial to use what is there")
        excluded = pd.concat([excluded, missing.assign(reason="files missing from the cache")],
                             ignore_index=True)
        chosen = chosen[~chosen["experiment_id"].isin(ids)].reset_index(drop=True)
    if chosen["mouse"].isna().any():
        bad = chosen.loc[chosen["mouse"].isna(), "experiment_id"].tolist()
        raise DataFormatError(
            f"no mouse (donor) is known for experiments {bad[:8]} of the cache at {layout.root}: the "
            f"catalog {layout.containers_json.name} is missing and the NWB files carry no "
            "specimen name; run `neurolp allen fetch` to download the catalog")

    eids = [int(e) for e in chosen["experiment_id"]]
    sources = [layout.nwb_path(e) for e in eids]
    if need_events:
        sources += [layout.events_path(e) for e in eids]
    fingerprint = _fingerprint(sources)
    adir = Path(artefact_dir) if artefact_dir is not None else layout.artefact_dir
    key = _artefact_key(selection, params)
    npz_path, meta_path = adir / f"responses-{key}.npz", adir / f"responses-{key}.json"

    if use_artefact and not rebuild:
        got = _read_artefact(npz_path, meta_path, selection, params, eids, fingerprint)
        if got is not None:
            responses, cells, reports = got
            experiments = _experiment_rows(chosen, responses, reports)
            return BrainResponses(experiments, responses, cells, params, selection,
                                  excluded.reset_index(drop=True), True, npz_path)

    responses, cells, reports = {}, {}, {}
    iterator = eids
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(eids, desc="reading natural-scene responses", unit="exp", leave=False)
    for eid in iterator:
        arr, ids, report = _build_one(layout, eid, params)
        responses[eid], cells[eid], reports[eid] = arr, ids, report
    experiments = _experiment_rows(chosen, responses, reports)
    artefact = None
    if use_artefact:
        artefact = _write_artefact(npz_path, meta_path, selection, params, responses, cells, reports,
                                   fingerprint)
    return BrainResponses(experiments, responses, cells, params, selection,
                          excluded.reset_index(drop=True), False, artefact)


def _experiment_rows(chosen: pd.DataFrame, responses, reports) -> pd.DataFrame:
    df = chosen.drop(columns=["has_nwb", "has_events"], errors="ignore").copy()
    df["n_neurons"] = [responses[int(e)].shape[2] for e in df["experiment_id"]]
    for k in ("n_trials_min", "n_trials_max", "n_presentations", "n_blank", "n_outside_trace",
              "n_images_missing"):
        df[k] = [reports[int(e)][k] for e in df["experiment_id"]]
    return df.reset_index(drop=True)


def _write_artefact(npz_path: Path, meta_path: Path, selection, params, responses, cells, reports,
                    fingerprint) -> Path | None:
    try:
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for eid in responses:
            arrays[f"r{eid}"] = responses[eid]
            arrays[f"c{eid}"] = cells[eid]
        with atomic_write(npz_path, "wb") as fh:
            np.savez(fh, **arrays)
        meta = {"version": ARTEFACT_VERSION, "selection": selection.to_dict(),
                "params": params.to_dict(), "experiments": [int(e) for e in responses],
                "reports": {str(k): v for k, v in reports.items()}, "sources": fingerprint,
                "sha256": file_sha256(npz_path)}
        atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")
        return npz_path
    except OSError:
        return None  # read-only cache: work without the artefact


def _read_artefact(npz_path, meta_path, selection, params, eids, fingerprint):
    if not (npz_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if (meta.get("version") != ARTEFACT_VERSION or meta.get("selection") != selection.to_dict()
            or meta.get("params") != params.to_dict() or meta.get("experiments") != eids
            or meta.get("sources") != fingerprint):
        return None  # stale: rebuilt by the caller
    if meta.get("sha256") != file_sha256(npz_path):
        return None  # corrupt
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            responses = {e: np.asarray(z[f"r{e}"]) for e in eids}
            cells = {e: np.asarray(z[f"c{e}"]) for e in eids}
    except (OSError, ValueError, KeyError):
        return None
    reports = {int(k): v for k, v in meta["reports"].items()}
    return responses, cells, reports


def clear_artefacts(cache_dir: str | Path) -> int:
    """Delete neurolp's cached response artefacts of a cache; returns how many files went."""
    adir = CacheLayout.open(cache_dir).artefact_dir
    n = 0
    for p in adir.glob("responses-*") if adir.is_dir() else []:
        os.unlink(p)
        n += 1
    return n
