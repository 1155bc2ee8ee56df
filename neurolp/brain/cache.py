"""An AllenSDK ``BrainObservatoryCache`` folder, read without allensdk and without the network.

Layout (written by allensdk's ``manifest.json``; paths relative to the manifest's folder)::

    manifest.json
    experiment_containers.json          raw API records (specimen.donor..., targeted_structure.acronym)
    ophys_experiments.json              raw API records (optional: only written by get_ophys_experiments)
    ophys_experiment_data/<id>.nwb      NWB 1.x (HDF5)
    ophys_experiment_events/<id>_events.npz

:func:`experiment_table` turns the catalog into one row per natural-scene experiment with area,
depth, Allen layer, Cre line, container and **mouse** (``donor_name``: several containers can belong
to one mouse). When the catalog is absent, the NWB ``general/`` fields are used instead (the mouse
is then the number at the end of ``general/specimen_name``, and the table says so).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurolp.brain import nwb
from neurolp.brain.selection import Selection, cortical_layer
from neurolp.errors import DataFormatError, DataNotFoundError

__all__ = ["CacheLayout", "experiment_table", "select_experiments", "describe_cache", "unmatched_filters",
           "EXPERIMENT_COLUMNS"]

EXPERIMENT_COLUMNS = ["experiment_id", "container_id", "mouse", "specimen", "area", "depth", "layer",
                      "cre_line", "reporter_line", "session_type", "failed", "metadata_source"]

_DEFAULT_SPECS = {
    "EXPERIMENT_CONTAINERS": "experiment_containers.json",
    "EXPERIMENTS": "ophys_experiments.json",
    "EXPERIMENT_DATA": "ophys_experiment_data/%d.nwb",
    "EVENTS_DATA": "ophys_experiment_events/%d_events.npz",
}


@dataclass(frozen=True)
class CacheLayout:
    """Where things live in a cache folder (read from its ``manifest.json`` when there is one)."""

    root: Path
    specs: tuple[tuple[str, str], ...]

    @classmethod
    def open(cls, cache_dir: str | Path) -> "CacheLayout":
        root = Path(cache_dir).expanduser()
        specs = dict(_DEFAULT_SPECS)
        manifest = root / "manifest.json"
        if manifest.is_file():
            try:
                entries = json.loads(manifest.read_text()).get("manifest", [])
                dirs = {e["key"]: e.get("spec", ".") for e in entries
                        if isinstance(e, dict) and e.get("type") == "dir" and "key" in e}
                for e in entries:
                    if isinstance(e, dict) and e.get("type") == "file" and e.get("key") in specs:
                        parent = dirs.get(e.get("parent_key", "BASEDIR"), ".")
                        specs[e["key"]] = str(Path(parent) / e["spec"]) if parent != "." else e["spec"]
            except (ValueError, KeyError, TypeError) as exc:
                raise DataFormatError(f"{manifest} is not a valid allensdk manifest ({exc}); delete "
                                      "it and run `neurolp allen fetch` again") from exc
        return cls(root, tuple(sorted(specs.items())))

    def _spec(self, key: str) -> str:
        return dict(self.specs)[key]

    @property
    def containers_json(self) -> Path:
        return self.root / self._spec("EXPERIMENT_CONTAINERS")

    @property
    def experiments_json(self) -> Path:
        return self.root / self._spec("EXPERIMENTS")

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def nwb_path(self, experiment_id: int) -> Path:
        return self.root / (self._spec("EXPERIMENT_DATA") % int(experiment_id))

    def events_path(self, experiment_id: int) -> Path:
        return self.root / (self._spec("EVENTS_DATA") % int(experiment_id))

    @property
    def nwb_dir(self) -> Path:
        return self.nwb_path(0).parent

    @property
    def artefact_dir(self) -> Path:
        return self.root / "neurolp"


# ------------------------------------------------------------------------------------------------
# raw API records → tidy rows
# ------------------------------------------------------------------------------------------------

def _read_json_list(path: Path) -> list:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc}); delete it and run `neurolp allen "
                              "fetch` again to re-download the catalog") from exc
    if isinstance(data, dict) and "msg" in data:  # an unwrapped API response
        data = data["msg"]
    if not isinstance(data, list):
        raise DataFormatError(f"{path} should hold a list of API records, found {type(data).__name__}")
    return data


def _lines(specimen: dict) -> tuple[str | None, str | None]:
    cre = reporter = None
    for tl in (specimen.get("donor") or {}).get("transgenic_lines") or []:
        kind = tl.get("transgenic_line_type_name")
        if kind == "driver" and "Cre" in str(tl.get("name", "")) and cre is None:
            cre = tl["name"]
        elif kind == "reporter" and reporter is None:
            reporter = tl["name"]
    return cre, reporter


def _record_meta(rec: dict) -> dict:
    specimen = rec.get("specimen") or {}
    donor = specimen.get("donor") or {}
    cre, reporter = _lines(specimen)
    structure = rec.get("targeted_structure")
    area = structure.get("acronym") if isinstance(structure, dict) else structure
    mouse = donor.get("external_donor_name") or donor.get("name") or specimen.get("donor_id")
    return {"mouse": None if mouse is None else str(mouse), "specimen": specimen.get("name"),
            "area": area, "depth": rec.get("imaging_depth"), "cre_line": cre,
            "reporter_line": reporter}


def _rows_from_catalog(layout: CacheLayout) -> list[dict] | None:
    rows: dict[int, dict] = {}
    have_catalog = False
    if layout.containers_json.is_file():
        have_catalog = True
        for c in _read_json_list(layout.containers_json):
            meta = _record_meta(c)
            for e in c.get("ophys_experiments") or []:
                if "id" not in e:
                    continue
                rows[int(e["id"])] = {"experiment_id": int(e["id"]), "container_id": int(c["id"]),
                                      **meta, "session_type": e.get("stimulus_name"),
                                      "failed": bool(c.get("failed", False)),
                                      "metadata_source": "experiment_containers.json"}
    if layout.experiments_json.is_file():
        have_catalog = True
        for e in _read_json_list(layout.experiments_json):
            if "id" not in e:
                continue
            eid = int(e["id"])
            meta = _record_meta(e)
            row = rows.get(eid, {"experiment_id": eid, "metadata_source": "ophys_experiments.json"})
            for k, v in meta.items():
                if row.get(k) is None:
                    row[k] = v
            if row.get("container_id") is None:
                row["container_id"] = e.get("experiment_container_id")
            if row.get("session_type") is None:
                row["session_type"] = e.get("stimulus_name")
            failed = (e.get("experiment_container") or {}).get("failed")
            row["failed"] = bool(row.get("failed", False) or failed)
            rows[eid] = row
    return list(rows.values()) if have_catalog else None


_DONOR_RE = re.compile(r"-(\d+)$")


def _rows_from_nwb(layout: CacheLayout) -> list[dict]:
    rows = []
    for path in sorted(layout.nwb_dir.glob("*.nwb")) if layout.nwb_dir.is_dir() else []:
        try:
            eid = int(path.stem)
        except ValueError:
            continue
        try:
            g = nwb.read_general(path)
        except DataFormatError:
            g = {}
        specimen = g.get("specimen_name")
        mouse = g.get("subject_id")
        if mouse is None and specimen:
            m = _DONOR_RE.search(str(specimen))
            mouse = m.group(1) if m else str(specimen)
        rows.append({"experiment_id": eid, "container_id": g.get("experiment_container_id"),
                     "mouse": None if mouse is None else str(mouse), "specimen": specimen,
                     "area": g.get("targeted_structure"), "depth": g.get("imaging_depth"),
                     "cre_line": g.get("cre_line"), "reporter_line": None,
                     "session_type": g.get("session_type"), "failed": False,
                     "metadata_source": "nwb general/"})
    return rows


def experiment_table(cache_dir: str | Path) -> pd.DataFrame:
    """Every experiment the cache knows about (catalog JSON, else NWB headers), one row each.

    Columns: ``EXPERIMENT_COLUMNS`` plus ``has_nwb`` and ``has_events``.
    """
    layout = CacheLayout.open(cache_dir)
    if not layout.root.is_dir():
        raise DataNotFoundError(
            f"no Allen Brain Observatory cache at {layout.root}: the folder does not exist. Run "
            f"`neurolp allen fetch --cache {layout.root}` on a machine with internet access, or pass "
            "the folder of an existing cache (the one holding manifest.json)")
    rows = _rows_from_catalog(layout)
    if rows is None:
        rows = _rows_from_nwb(layout)
    if not rows:
        raise DataNotFoundError(
            f"the Allen cache at {layout.root} is empty: no {layout.containers_json.name} catalog and "
            f"no NWB files in {layout.nwb_dir}. Run `neurolp allen fetch --cache {layout.root}` on a "
            "machine with internet access")
    df = pd.DataFrame(rows)
    for col in EXPERIMENT_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["depth"] = pd.to_numeric(df["depth"], errors="coerce").astype("Int64")
    df["container_id"] = pd.to_numeric(df["container_id"], errors="coerce").astype("Int64")
    df["layer"] = [cortical_layer(None if pd.isna(d) else int(d), c)
                   for d, c in zip(df["depth"], df["cre_line"])]
    df["has_nwb"] = [layout.nwb_path(e).is_file() for e in df["experiment_id"]]
    df["has_events"] = [layout.events_path(e).is_file() for e in df["experiment_id"]]
    # a catalog without session types (e.g. container records that do not list them): take the
    # session type from the NWB header where the file is there
    unknown = df["session_type"].isna() & df["has_nwb"]
    for i in np.flatnonzero(unknown.to_numpy()):
        try:
            df.loc[df.index[i], "session_type"] = nwb.read_general(
                layout.nwb_path(df["experiment_id"].iloc[i])).get("session_type")
        except DataFormatError:
            pass
    return df[EXPERIMENT_COLUMNS + ["has_nwb", "has_events"]].sort_values(
        ["area", "cre_line", "depth", "experiment_id"], na_position="last").reset_index(drop=True)


def select_experiments(table: pd.DataFrame, selection: Selection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selected natural-scene experiments, experiments of the selection excluded and why)."""
    session_ok = table["session_type"] == selection.session_type
    match = np.array([selection.matches(a, c, None if pd.isna(d) else int(d))
                      for a, c, d in zip(table["area"], table["cre_line"], table["depth"])], bool)
    chosen = table[session_ok.to_numpy() & match]
    failed = np.array([bool(v) if v is not None and v == v else False for v in chosen["failed"]],
                      dtype=bool)
    if selection.include_failed:
        failed[:] = False
    excluded = chosen[failed].assign(reason="experiment container marked failed by the Allen QC")
    return chosen[~failed].reset_index(drop=True), excluded.reset_index(drop=True)


def unmatched_filters(table: pd.DataFrame, selection: Selection) -> list[str]:
    """One line per requested area / Cre line / depth that no natural-scene experiment of the cache
    has, with the values it does have (typos and over-narrow selections show up here)."""
    ns = table[table["session_type"] == selection.session_type]
    lines = []
    for what, col, wanted in (("area", "area", selection.areas), ("Cre line", "cre_line", selection.cre_lines),
                              ("depth", "depth", selection.depths)):
        have = sorted({(int(v) if col == "depth" else str(v)) for v in ns[col].dropna()},
                      key=lambda v: (str(type(v)), v))
        low = {str(v).lower() for v in have}
        missing = [w for w in wanted if str(w).lower() not in low]
        if missing:
            lines.append(f"no natural-scene experiment in the cache has {what}"
                         f"{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                         f"(the cache has: {', '.join(map(str, have)) or 'none'})")
    return lines


def describe_cache(cache_dir: str | Path, selection: Selection | None = None) -> dict:
    """What a cache holds for a selection: counts per area/mouse and which files are missing."""
    layout = CacheLayout.open(cache_dir)
    table = experiment_table(layout.root)
    selection = selection or Selection()
    chosen, excluded = select_experiments(table, selection)
    missing_nwb = chosen.loc[~chosen["has_nwb"], "experiment_id"].tolist()
    missing_events = chosen.loc[~chosen["has_events"], "experiment_id"].tolist()
    per_area = (chosen.groupby("area").agg(experiments=("experiment_id", "size"),
                                            containers=("container_id", "nunique"),
                                            mice=("mouse", "nunique"))
                .reset_index() if len(chosen) else pd.DataFrame(columns=["area", "experiments",
                                                                         "containers", "mice"]))
    return {"cache": str(layout.root), "catalog": layout.containers_json.is_file(),
            "selection": selection.to_dict(), "n_experiments": int(len(chosen)),
            "n_mice": int(chosen["mouse"].nunique()), "n_containers": int(chosen["container_id"].nunique()),
            "missing_nwb": missing_nwb, "missing_events": missing_events,
            "excluded_failed": excluded["experiment_id"].tolist(), "per_area": per_area,
            "experiments": chosen, "layers": chosen["layer"].value_counts().to_dict(),
            "unmatched": unmatched_filters(table, selection)}
