"""Download the paper's natural-scene experiments into an AllenSDK cache (resumable).

This is the only place neurolp imports allensdk, and only when something must be downloaded.
Plan (so that an offline machine fails at once and a complete cache needs no network at all):

1. the experiment catalog ``experiment_containers.json``: read from disk when present, else
   downloaded by ``BrainObservatoryCache.get_experiment_containers`` (raw records, which list each
   container's experiments and session types, so ``get_ophys_experiments`` — which always goes to
   the network, even with a full cache — is not needed);
2. every selected ``three_session_B`` experiment: the NWB file (``get_ophys_experiment_data``) and
   the L0 events (``get_ophys_experiment_events``). Files already complete are skipped; truncated
   or unreadable ones (an interrupted download) are deleted and fetched again;
3. the natural-scene templates (118 × 918 × 1174) ship inside each NWB file and are checked.

Network failures (``OSError``: ``URLError``, ``requests.ConnectionError``) become
:class:`~neurolp.errors.OfflineError` naming the cache and what is still missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from neurolp.brain import nwb
from neurolp.brain.cache import CacheLayout, experiment_table, select_experiments
from neurolp.brain.selection import Selection
from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError, OfflineError

__all__ = ["fetch_natural_scenes", "open_brain_observatory_cache"]


def open_brain_observatory_cache(cache_dir: str | Path):
    """``allensdk``'s ``BrainObservatoryCache`` on ``<cache_dir>/manifest.json`` (lazy import)."""
    try:
        from allensdk.core.brain_observatory_cache import BrainObservatoryCache
    except ImportError as exc:
        raise ConfigError("downloading Allen Brain Observatory data needs allensdk: "
                          "pip install 'neurolp[allen]' (reading an existing cache does not)") from exc
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    return BrainObservatoryCache(manifest_file=str(Path(cache_dir) / "manifest.json"))


def _offline(layout: CacheLayout, what: str, exc: BaseException) -> OfflineError:
    return OfflineError(
        f"cannot reach the Allen Brain Observatory API ({exc.__class__.__name__}: {exc}) while "
        f"fetching into the cache at {layout.root}; still missing: {what}. Run this on a machine with "
        "internet access (the download resumes where it stopped), or copy a populated cache here")


def _file_problems(layout: CacheLayout, eid: int, events: bool) -> dict[str, str]:
    problems = {}
    bad = nwb.check_nwb(layout.nwb_path(eid))
    if bad:
        problems["nwb"] = bad
    if events:
        n_cells = None
        if "nwb" not in problems:
            try:
                n_cells = len(nwb.read_cell_ids(layout.nwb_path(eid)))
            except DataFormatError:
                n_cells = None
        bad = nwb.check_events(layout.events_path(eid), n_cells)
        if bad:
            problems["events"] = bad
    return problems


def fetch_natural_scenes(cache_dir: str | Path, selection: Selection | None = None, *,
                         events: bool = True, boc: Any = None, dry_run: bool = False,
                         progress: bool = True) -> pd.DataFrame:
    """Make ``cache_dir`` hold the selection's natural-scene experiments; one row per experiment.

    ``status`` is ``"present"`` (already complete), ``"downloaded"``, ``"repaired"`` (a truncated
    file was replaced) or, with ``dry_run``, ``"missing"``. ``boc`` replaces allensdk's
    ``BrainObservatoryCache`` (tests pass a stand-in with the same three methods).
    """
    selection = selection or Selection()
    layout = CacheLayout.open(cache_dir)
    layout.root.mkdir(parents=True, exist_ok=True)

    def cache_obj():
        nonlocal boc
        if boc is None:
            boc = open_brain_observatory_cache(layout.root)
        return boc

    # 1. the catalog
    if not layout.containers_json.is_file():
        if dry_run:
            raise DataNotFoundError(f"the experiment catalog {layout.containers_json} is not in the "
                                    "cache yet; run without --dry-run to download it")
        try:
            cache_obj().get_experiment_containers(
                targeted_structures=list(selection.areas), imaging_depths=list(selection.depths),
                cre_lines=list(selection.cre_lines), include_failed=selection.include_failed,
                simple=False)
        except OSError as exc:
            raise _offline(layout, f"the experiment catalog ({layout.containers_json.name}) and "
                                   "every experiment file", exc) from exc
        if not layout.containers_json.is_file():
            raise DataFormatError(f"allensdk did not write {layout.containers_json}; is "
                                  f"{layout.manifest} an allensdk BrainObservatoryCache manifest?")
    table = experiment_table(layout.root)
    unknown = table["session_type"].isna()
    if unknown.any() and not layout.experiments_json.is_file() and not dry_run:
        # the container records do not say which experiment is three_session_B: ask the API for
        # the experiment records (this call always needs the network)
        ids = sorted({int(c) for c in table.loc[unknown, "container_id"].dropna()})
        try:
            cache_obj().get_ophys_experiments(experiment_container_ids=ids, simple=False)
        except OSError as exc:
            raise _offline(layout, f"the session types of {int(unknown.sum())} experiments "
                                   f"({layout.experiments_json.name}) and their files", exc) from exc
        table = experiment_table(layout.root)
    chosen, _ = select_experiments(table, selection)
    if chosen.empty:
        raise DataNotFoundError(f"the Allen catalog in {layout.root} lists no natural-scene "
                                f"experiment for the selection: {selection.describe()}")

    # 2. the experiment files
    plan = []
    for _, row in chosen.iterrows():
        eid = int(row["experiment_id"])
        problems = _file_problems(layout, eid, events)
        plan.append((eid, problems))
    todo = [(eid, p) for eid, p in plan if p]
    status = {eid: "present" for eid, p in plan if not p}
    if dry_run:
        for eid, p in todo:
            status[eid] = "missing"
    elif todo:
        iterator = todo
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(todo, desc="downloading natural-scene experiments", unit="exp")
        done = 0
        for eid, problems in iterator:
            repaired = False
            for kind, problem in problems.items():
                path = layout.nwb_path(eid) if kind == "nwb" else layout.events_path(eid)
                if problem != "missing" and path.exists():
                    path.unlink()  # truncated or corrupt: fetch it again
                    repaired = True
            try:
                if "nwb" in problems:
                    cache_obj().get_ophys_experiment_data(eid)
                if "events" in problems:
                    cache_obj().get_ophys_experiment_events(eid)
            except OSError as exc:
                left = len(todo) - done
                raise _offline(layout, f"{left} of {len(plan)} experiments (next: {eid}; NWB files "
                                       f"go to {layout.nwb_dir})", exc) from exc
            after = _file_problems(layout, eid, events)
            if after:
                raise DataFormatError(
                    f"experiment {eid} was downloaded into {layout.root} but is still not usable "
                    f"({'; '.join(f'{k}: {v}' for k, v in after.items())}); delete its files and "
                    "fetch again")
            status[eid] = "repaired" if repaired else "downloaded"
            done += 1

    # 3. the templates
    if not dry_run:
        from neurolp.brain.stimuli import natural_scene_templates

        natural_scene_templates(layout.root)  # raises with a clear message if none holds them
    out = chosen.drop(columns=["has_nwb", "has_events"]).copy()
    out["status"] = [status[int(e)] for e in out["experiment_id"]]
    out["problems"] = ["; ".join(f"{k}: {v}" for k, v in dict(plan)[int(e)].items())
                       for e in out["experiment_id"]]
    return out.reset_index(drop=True)
