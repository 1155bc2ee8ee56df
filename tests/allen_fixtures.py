"""A synthetic Allen Brain Observatory cache in allensdk's real on-disk layout, and a stand-in for
the ``BrainObservatoryCache`` calls ``neurolp allen fetch`` makes.

Layout (what allensdk 2.16 writes; see notes/env-feasibility.md §2.4–2.6):

* ``manifest.json`` — allensdk's manifest (version 1.3, same keys and specs);
* ``experiment_containers.json`` — raw API records: ``targeted_structure.acronym``,
  ``specimen.donor.external_donor_name`` / ``transgenic_lines``, ``ophys_experiments`` (A, B, C);
* ``ophys_experiment_data/<id>.nwb`` — NWB 1.x HDF5 written with h5py (recipe of §2.5);
* ``ophys_experiment_events/<id>_events.npz`` — key ``"ev"``, cells × frames.

Known tuning: every neuron of area ``a`` responds to image ``i`` with
``rate = softplus(Z_a[i] · w_neuron)`` where ``Z_a`` is an area-specific latent image code, so mice
share their area's representational geometry. With ``noise=0`` the event sum over the response
window is exactly ``rate`` (one event of that amplitude 2 frames after onset).
"""

from __future__ import annotations

import json
import urllib.error
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

N_IMAGES = 118
SESSIONS = ("three_session_A", "three_session_B", "three_session_C")
CRE_REPORTER = "Ai93(TITL-GCaMP6f)"


@dataclass(frozen=True)
class ContainerSpec:
    container_id: int
    mouse: str
    area: str
    depth: int
    cre: str
    n_cells: int
    failed: bool = False

    def experiment_id(self, session: str = "three_session_B") -> int:
        return self.container_id * 10 + SESSIONS.index(session)


DEFAULT_CONTAINERS = (
    ContainerSpec(501, "222001", "VISp", 175, "Cux2-CreERT2", 20),
    ContainerSpec(502, "222001", "VISl", 175, "Cux2-CreERT2", 18),
    ContainerSpec(503, "222002", "VISp", 275, "Emx1-IRES-Cre", 15),
    ContainerSpec(504, "222002", "VISp", 175, "Emx1-IRES-Cre", 12),
    ContainerSpec(505, "222003", "VISp", 175, "Slc17a7-IRES2-Cre", 16),
    ContainerSpec(506, "222003", "VISl", 275, "Slc17a7-IRES2-Cre", 14),
    ContainerSpec(507, "222004", "VISl", 175, "Cux2-CreERT2", 17),
    ContainerSpec(508, "222004", "VISal", 175, "Cux2-CreERT2", 15),
    ContainerSpec(509, "222005", "VISal", 175, "Emx1-IRES-Cre", 13),
    ContainerSpec(510, "222006", "VISp", 175, "Sst-IRES-Cre", 10),      # Cre line not selected
    ContainerSpec(511, "222007", "VISp", 375, "Cux2-CreERT2", 10),      # depth not selected (L5)
    ContainerSpec(512, "222008", "VISl", 175, "Cux2-CreERT2", 10, failed=True),  # QC failed
)
SELECTED = tuple(c for c in DEFAULT_CONTAINERS
                 if c.cre != "Sst-IRES-Cre" and c.depth != 375 and not c.failed)


@dataclass
class SyntheticCache:
    root: Path
    containers: tuple[ContainerSpec, ...]
    rates: dict[int, np.ndarray] = field(default_factory=dict)       # eid → [cells, images]
    latents: dict[str, np.ndarray] = field(default_factory=dict)     # area → [images, d]
    templates: np.ndarray | None = None
    dropped: dict[int, dict[int, int]] = field(default_factory=dict)  # eid → {image: n dropped}
    dead: dict[int, list[int]] = field(default_factory=dict)         # eid → dead cell indices

    def selected_ids(self) -> list[int]:
        return [c.experiment_id() for c in SELECTED if c in self.containers]


def _seed(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def area_latent(area: str, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(_seed("latent", area, seed)).normal(size=(N_IMAGES, d))


def neuron_rates(spec: ContainerSpec, seed: int = 0) -> np.ndarray:
    """``[cells, images]`` tuning of a container's neurons (the ground truth)."""
    z = area_latent(spec.area, seed=seed)
    rng = np.random.default_rng(_seed("w", spec.container_id, seed))
    w = rng.normal(size=(z.shape[1], spec.n_cells)) / np.sqrt(z.shape[1])
    rates = np.log1p(np.exp(1.5 * (z @ w))).T       # softplus, [cells, images]
    if spec.container_id == 501:
        rates[0] = 0.0   # a dead neuron: no event to any image
    return rates


def templates(seed: int = 0, hw=(12, 16)) -> np.ndarray:
    return np.random.default_rng(_seed("templates", seed)).integers(0, 256, (N_IMAGES,) + hw,
                                                                    dtype=np.uint8)


def dropped_trials(spec: ContainerSpec) -> dict[int, int]:
    """Unequal trial counts: container 503 misses 2 presentations of image 5 and 1 of image 7."""
    return {5: 2, 7: 1} if spec.container_id == 503 else {}


def write_nwb(path: Path, spec: ContainerSpec, *, reps: int = 5, sweep: int = 16, noise: float = 0.3,
              seed: int = 0, hw=(12, 16), session: str = "three_session_B", dff: bool = True,
              with_templates: bool = True):
    """One experiment's NWB file and events; returns (rates, events array).

    ``dff=False`` writes only a one-frame ΔF/F placeholder (for large benchmark caches that use
    events only)."""
    eid = spec.experiment_id(session)
    rng = np.random.default_rng(_seed("trials", eid, seed))
    frames = np.concatenate([np.arange(-1, N_IMAGES)] * reps)
    rng.shuffle(frames)
    for img, k in dropped_trials(spec).items():
        idx = np.flatnonzero(frames == img)[:k]
        frames = np.delete(frames, idx)
    pad = 40
    T = 2 * pad + len(frames) * sweep
    starts = pad + np.arange(len(frames)) * sweep
    ts = np.arange(T) / 30.0
    rates = neuron_rates(spec, seed)
    ev = np.zeros((spec.n_cells, T), dtype=np.float32)
    trace = rng.normal(0, 0.01, (spec.n_cells, T)).astype(np.float32) if dff else \
        np.zeros((spec.n_cells, 1), np.float32)
    keep = frames >= 0
    amps = rates[:, frames[keep]] * (1.0 + noise * rng.normal(size=(spec.n_cells, keep.sum())))
    amps = np.clip(amps, 0.0, None).astype(np.float32)
    ev[:, starts[keep] + 2] = amps
    if dff:
        for k in range(4):
            trace[:, starts[keep] + 2 + k] += amps
    p = "processing/brain_observatory_pipeline/"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["general/session_type"] = np.bytes_(session)
        f["general/session_id"] = np.bytes_(str(eid))
        f["general/experiment_container_id"] = np.bytes_(str(spec.container_id))
        f["general/specimen_name"] = np.bytes_(f"{spec.cre.split('-')[0]};Camk2a-tTA;Ai93-{spec.mouse}")
        f["general/subject/genotype"] = np.bytes_(f"{spec.cre}/wt;Camk2a-tTA/wt;{CRE_REPORTER}/wt")
        f["general/optophysiology/imaging_plane_1/location"] = np.bytes_(spec.area)
        f["general/optophysiology/imaging_plane_1/imaging depth"] = np.bytes_(f"{spec.depth} microns")
        f[p + "DfOverF/imaging_plane_1/data"] = trace
        f[p + "DfOverF/imaging_plane_1/timestamps"] = ts[:trace.shape[1]]
        F = 100 + 100 * trace
        f[p + "Fluorescence/imaging_plane_1/data"] = F
        f[p + "Fluorescence/imaging_plane_1/timestamps"] = ts[:trace.shape[1]]
        f[p + "Fluorescence/imaging_plane_1/neuropil_traces"] = np.zeros_like(F)
        f[p + "Fluorescence/imaging_plane_1/r"] = np.full(spec.n_cells, 0.7)
        f[p + "ImageSegmentation/roi_ids"] = np.array([str(i).encode() for i in range(spec.n_cells)])
        f[p + "ImageSegmentation/cell_specimen_ids"] = np.arange(spec.n_cells) + eid * 1000
        f[p + "BehavioralTimeSeries/running_speed/data"] = np.zeros(T)
        f[p + "BehavioralTimeSeries/running_speed/timestamps"] = ts
        f["stimulus/presentation/natural_scenes_stimulus/data"] = frames.astype(float)
        f["stimulus/presentation/natural_scenes_stimulus/frame_duration"] = \
            np.stack([starts, starts + 7], 1).astype(float)
        if with_templates:
            f["stimulus/templates/natural_scenes_image_stack/data"] = templates(seed, hw)
    return rates, ev


def write_events(path: Path, ev: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, ev=ev)


def container_record(spec: ContainerSpec) -> dict:
    """A raw ``ExperimentContainer`` API record (what experiment_containers.json holds)."""
    return {
        "id": spec.container_id, "imaging_depth": spec.depth, "failed": spec.failed,
        "targeted_structure": {"id": 385, "acronym": spec.area, "name": spec.area},
        "specimen": {"id": int(spec.mouse) + 1, "name": f"{spec.cre.split('-')[0]};Camk2a-tTA;"
                                                        f"Ai93-{spec.mouse}",
                     "donor": {"id": int(spec.mouse), "external_donor_name": spec.mouse,
                               "date_of_birth": "2016-01-01T00:00:00Z",
                               "conditions": [],
                               "transgenic_lines": [
                                   {"name": spec.cre, "transgenic_line_type_name": "driver"},
                                   {"name": "Camk2a-tTA", "transgenic_line_type_name": "driver"},
                                   {"name": CRE_REPORTER, "transgenic_line_type_name": "reporter"}]}},
        "ophys_experiments": [{"id": spec.experiment_id(s), "stimulus_name": s,
                               "experiment_container_id": spec.container_id,
                               "imaging_depth": spec.depth} for s in SESSIONS],
    }


def experiment_record(spec: ContainerSpec, session: str) -> dict:
    rec = container_record(spec)
    return {"id": spec.experiment_id(session), "imaging_depth": spec.depth,
            "targeted_structure": rec["targeted_structure"], "specimen": rec["specimen"],
            "experiment_container_id": spec.container_id, "stimulus_name": session,
            "experiment_container": {"id": spec.container_id, "failed": spec.failed}}


def manifest() -> dict:
    files = [("EXPERIMENT_CONTAINERS", "experiment_containers.json"),
             ("EXPERIMENTS", "ophys_experiments.json"),
             ("EXPERIMENT_DATA", "ophys_experiment_data/%d.nwb"),
             ("ANALYSIS_DATA", "ophys_experiment_analysis/%d_%s_analysis.h5"),
             ("EVENTS_DATA", "ophys_experiment_events/%d_events.npz"),
             ("CELL_SPECIMENS", "cell_specimens.json"),
             ("STIMULUS_MAPPINGS", "stimulus_mappings.json"),
             ("EYE_GAZE_DATA", "ophys_eye_gaze_mapping/%d_eyetracking_dlc_to_screen_mapping.h5")]
    return {"manifest": [{"type": "manifest_version", "value": "1.3"},
                         {"key": "BASEDIR", "type": "dir", "spec": "."}]
            + [{"key": k, "type": "file", "spec": s, "parent_key": "BASEDIR"} for k, s in files]}


def write_manifest(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(manifest(), indent=2))


def write_catalog(root: Path, containers=DEFAULT_CONTAINERS):
    (root / "experiment_containers.json").write_text(
        json.dumps([container_record(c) for c in containers], indent=2))


def make_allen_cache(root, containers=DEFAULT_CONTAINERS, *, reps: int = 5, sweep: int = 16,
                     noise: float = 0.3, seed: int = 0, catalog: bool = True,
                     files=None, hw=(12, 16), dff: bool = True) -> SyntheticCache:
    """Write a cache; ``files`` = container ids whose B-session files are written (default: all)."""
    root = Path(root)
    write_manifest(root)
    if catalog:
        write_catalog(root, containers)
    out = SyntheticCache(root, tuple(containers), templates=templates(seed, hw))
    for c in containers:
        eid = c.experiment_id()
        out.latents.setdefault(c.area, area_latent(c.area, seed=seed))
        out.rates[eid] = neuron_rates(c, seed)
        out.dropped[eid] = dropped_trials(c)
        if c.container_id == 501:
            out.dead[eid] = [0]
        if files is not None and c.container_id not in files:
            continue
        _, ev = write_nwb(root / f"ophys_experiment_data/{eid}.nwb", c, reps=reps, sweep=sweep,
                          noise=noise, seed=seed, hw=hw, dff=dff)
        write_events(root / f"ophys_experiment_events/{eid}_events.npz", ev)
    return out


class FakeBrainObservatoryCache:
    """Stand-in for ``allensdk``'s ``BrainObservatoryCache``: the calls ``fetch`` uses, writing the
    same files into the same places allensdk would, or raising ``URLError`` when ``offline``."""

    def __init__(self, root, containers=DEFAULT_CONTAINERS, *, offline: bool = False,
                 strip_session_types: bool = False, **write_kw):
        self.root = Path(root)
        self.containers = tuple(containers)
        self.offline = offline
        self.strip_session_types = strip_session_types
        self.write_kw = write_kw
        self.calls: list[tuple] = []
        write_manifest(self.root)  # the constructor writes manifest.json, as allensdk does

    def _net(self, what):
        self.calls.append(what)
        if self.offline:
            raise urllib.error.URLError("[Errno -2] Name or service not known")

    def get_experiment_containers(self, targeted_structures=None, imaging_depths=None, cre_lines=None,
                                  include_failed=False, simple=True, **_):
        path = self.root / "experiment_containers.json"
        if not path.exists():
            self._net(("containers",))
            recs = [container_record(c) for c in self.containers]
            if self.strip_session_types:
                for r in recs:
                    for e in r["ophys_experiments"]:
                        e.pop("stimulus_name")
            path.write_text(json.dumps(recs))
        recs = json.loads(path.read_text())
        out = [r for r in recs
               if (include_failed or not r["failed"])
               and (targeted_structures is None or r["targeted_structure"]["acronym"] in targeted_structures)
               and (imaging_depths is None or r["imaging_depth"] in imaging_depths)
               and (cre_lines is None or r["specimen"]["donor"]["transgenic_lines"][0]["name"].lower()
                    in {c.lower() for c in cre_lines})]
        assert simple is False, "neurolp needs the raw records (simple=False)"
        return out

    def get_ophys_experiments(self, experiment_container_ids=None, simple=True, **_):
        self._net(("experiments",))
        recs = [experiment_record(c, s) for c in self.containers for s in SESSIONS
                if experiment_container_ids is None or c.container_id in experiment_container_ids]
        (self.root / "ophys_experiments.json").write_text(json.dumps(recs))
        return recs

    def _spec(self, eid):
        for c in self.containers:
            if c.experiment_id() == eid:
                return c
        raise Exception(f"ophys experiment {eid} has no data file")

    def get_ophys_experiment_data(self, eid):
        path = self.root / f"ophys_experiment_data/{eid}.nwb"
        if path.exists():
            return path
        self._net(("nwb", eid))
        _, ev = write_nwb(path, self._spec(eid), **self.write_kw)
        self._events_cache = (eid, ev)
        return path

    def get_ophys_experiment_events(self, eid):
        path = self.root / f"ophys_experiment_events/{eid}_events.npz"
        if path.exists():
            return np.load(path)["ev"]
        self._net(("events", eid))
        spec = self._spec(eid)
        tmp = self.root / ".tmp_fake.nwb"
        _, ev = write_nwb(tmp, spec, **self.write_kw)
        tmp.unlink()
        write_events(path, ev)
        return ev
