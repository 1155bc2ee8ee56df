"""Brain RSMs per area: one per mouse (default) or split-half RSMs of a pooled population (anchor).

* ``population="mouse"`` — each mouse's neurons in an area (all its experiments/containers there)
  form one population; its RSM is built from trial-averaged responses. Mice with fewer than
  ``min_neurons`` usable neurons are left out and reported. Optionally ``n_trial_splits`` pairs of
  disjoint trial halves per mouse give the trial split-half ceiling.
* ``population="pooled"`` — the Lp-Conv/Bakhtiari pipeline: all experiments of an area (all mice and
  containers) are concatenated into one pseudo-population; ``n_splits`` RSMs each from a random
  half of the trials (the "100 split-half RSMs"), and ``n_trial_splits`` pairs of RSMs from
  disjoint halves for the split-half noise ceiling.

Halves are drawn per experiment and per image among that image's valid (non-padded) trials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurolp.brain.responses import BrainResponses
from neurolp.errors import ConfigError, DataNotFoundError, InputError
from neurolp.rsa.rsm import pearson_rsm, rsm_vector

__all__ = ["AreaRSMs", "brain_rsms", "POPULATIONS"]

POPULATIONS = ("mouse", "pooled")


@dataclass
class AreaRSMs:
    """RSM vectors of one area.

    ``vectors[k]`` is the k-th RSM's strict lower triangle: one per mouse (``kind="mouse"``,
    ``labels`` = mouse ids) or one per random trial half (``kind="pooled"``). ``half_pairs`` is
    ``[n_groups, n_trial_splits, 2, n]`` (disjoint trial halves, for the split-half ceiling).
    ``ceiling`` holds noise ceilings that came with the data (``neurolp rsa --neural``): the scores
    use them instead of computing the across-mice bounds.
    """

    area: str
    kind: str
    vectors: np.ndarray
    labels: list[str]
    n_neurons: list[int]
    half_pairs: np.ndarray | None = None
    full_vectors: np.ndarray | None = None   # pooled: the RSM of all trials, for reference
    report: pd.DataFrame = field(default_factory=pd.DataFrame)
    ceiling: tuple[float, float] | None = None  # (lower, upper) given with the data: used as given


def _half_masks(arr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``[trials, images]`` of two disjoint random halves of each image's valid trials."""
    valid = ~np.isnan(arr[:, :, 0]) if arr.shape[2] else np.zeros(arr.shape[:2], bool)
    keys = rng.random(valid.shape)
    keys[~valid] = np.inf
    order = np.argsort(keys, axis=0)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(len(keys))[:, None], axis=0)
    nvalid = valid.sum(axis=0)
    if arr.shape[2] and nvalid.min() < 2:
        bad = np.flatnonzero(nvalid < 2)
        raise InputError(f"image(s) {bad[:5].tolist()} have fewer than 2 valid trials in an experiment; "
                         "split-half RSMs and ceilings need at least 2 (pass --trial-splits 0 to skip "
                         "the split-half ceiling of the default preset, or leave that area out)")
    half = nvalid // 2
    a = valid & (ranks < half[None, :])
    b = valid & (ranks >= half[None, :])
    return a, b


class _Trials:
    """Per-experiment ``[images, trials, neurons]`` NaN-free copies, made once, for fast half means."""

    def __init__(self, brain: BrainResponses):
        self.brain = brain
        self._cache: dict[int, np.ndarray] = {}

    def arr(self, e: int) -> np.ndarray:
        return self.brain.responses[e]

    def mean(self, e: int, mask: np.ndarray) -> np.ndarray:
        """Mean over the trials selected by ``mask [trials, images]`` → ``[images, neurons]``."""
        a0t = self._cache.get(e)
        if a0t is None:
            a0t = np.ascontiguousarray(np.nan_to_num(self.arr(e), nan=0.0).transpose(1, 0, 2))
            self._cache[e] = a0t
        m = mask.T.astype(a0t.dtype)[:, None, :]                 # [images, 1, trials]
        cnt = mask.sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.matmul(m, a0t)[:, 0, :] / cnt[:, None]


def brain_rsms(brain: BrainResponses, *, population: str = "mouse", centre: bool = True,
               min_neurons: int = 10, n_splits: int = 100, n_trial_splits: int = 0,
               seed: int = 0, areas=None) -> tuple[dict[str, AreaRSMs], pd.DataFrame]:
    """RSMs per area (see module docstring) and a report, one row per population or mouse."""
    if population not in POPULATIONS:
        raise ConfigError(f"population must be one of {POPULATIONS}, got {population!r}")
    rng = np.random.default_rng(seed)
    exps = brain.experiments
    wanted = list(areas) if areas else brain.areas
    missing = [a for a in wanted if a not in set(exps["area"])]
    if missing:
        raise DataNotFoundError(f"no experiment for area(s) {missing} in the selected brain data "
                                f"(areas present: {', '.join(brain.areas)})")
    out: dict[str, AreaRSMs] = {}
    report = []
    for area in wanted:
        sub = exps[exps["area"] == area]
        if population == "mouse":
            vecs, labels, counts, halves = [], [], [], []
            for mouse, df in sub.groupby("mouse", sort=True):
                eids = [int(e) for e in df["experiment_id"]]
                X = brain.mean_responses(eids)
                rsm, info = pearson_rsm(X, centre=centre)
                row = {"area": area, "population": f"mouse {mouse}", "mouse": str(mouse),
                       "experiments": len(eids), "containers": df["container_id"].nunique(),
                       "depths": _depths(df["depth"]),
                       "layers": ",".join(sorted(set(df["layer"]))),
                       "neurons": info.n_units, "dead_neurons": info.n_dead,
                       "nan_neurons": info.n_nan, "neurons_used": info.n_used,
                       "undefined_images": info.n_undefined_images, "included": True, "reason": ""}
                if info.n_used < min_neurons:
                    row.update(included=False, reason=f"{info.n_used} usable neurons < min_neurons "
                                                      f"{min_neurons}")
                elif info.n_undefined_images:
                    row.update(reason=f"{info.n_undefined_images} image(s) with undefined RSM rows "
                                      "(their pairs are left out of comparisons)")
                report.append(row)
                if not row["included"]:
                    continue
                vecs.append(rsm_vector(rsm))
                labels.append(str(mouse))
                counts.append(info.n_used)
                if n_trial_splits:
                    halves.append(_split_pairs(_Trials(brain), eids, n_trial_splits, rng, centre))
            if not vecs:
                out[area] = AreaRSMs(area, "mouse", np.zeros((0, 0)), [], [], None, None,
                                     pd.DataFrame(report))
                continue
            out[area] = AreaRSMs(area, "mouse", np.stack(vecs), labels, counts,
                                 np.stack(halves) if halves else None)
        else:
            eids = [int(e) for e in sub["experiment_id"]]
            full, info = pearson_rsm(brain.mean_responses(eids), centre=centre)
            vecs = []
            trials = _Trials(brain)
            for _ in range(int(n_splits)):
                parts = []
                for e in eids:
                    a, _ = _half_masks(trials.arr(e), rng)
                    parts.append(trials.mean(e, a))
                rsm, _ = pearson_rsm(np.concatenate(parts, axis=1), centre=centre)
                vecs.append(rsm_vector(rsm))
            halves = (_split_pairs(trials, eids, n_trial_splits, rng, centre)
                      if n_trial_splits else None)
            report.append({"area": area, "population": "pooled", "mouse": "",
                           "experiments": len(eids), "containers": sub["container_id"].nunique(),
                           "mice": sub["mouse"].nunique(),
                           "depths": _depths(sub["depth"]),
                           "layers": ",".join(sorted(set(sub["layer"]))),
                           "neurons": info.n_units, "dead_neurons": info.n_dead,
                           "nan_neurons": info.n_nan, "neurons_used": info.n_used,
                           "undefined_images": info.n_undefined_images, "included": True,
                           "reason": ""})
            out[area] = AreaRSMs(area, "pooled", np.stack(vecs), [f"split{k}" for k in range(len(vecs))],
                                 [info.n_used] * len(vecs),
                                 halves[None] if halves is not None else None, rsm_vector(full)[None])
    rep = pd.DataFrame(report)
    for a, obj in out.items():
        obj.report = rep[rep["area"] == a].reset_index(drop=True)
    return out, rep


def _depths(values) -> str:
    """Imaging depths as "175,275" (none for data without depths, e.g. a --neural file)."""
    return ",".join(str(int(d)) for d in sorted(set(values)) if pd.notna(d))


def _split_pairs(trials: "_Trials", eids, k: int, rng, centre: bool) -> np.ndarray:
    """``[k, 2, n]`` RSM vectors from disjoint random trial halves of the pooled experiments."""
    pairs = []
    for _ in range(int(k)):
        pa, pb = [], []
        for e in eids:
            a, b = _half_masks(trials.arr(e), rng)
            pa.append(trials.mean(e, a))
            pb.append(trials.mean(e, b))
        ra, _ = pearson_rsm(np.concatenate(pa, axis=1), centre=centre)
        rb, _ = pearson_rsm(np.concatenate(pb, axis=1), centre=centre)
        pairs.append(np.stack([rsm_vector(ra), rsm_vector(rb)]))
    return np.stack(pairs)
