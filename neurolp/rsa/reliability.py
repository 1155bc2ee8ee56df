"""Neuron selection by split-half reliability, Spearman–Brown corrected.

For each neuron the trials of every image are split at random into two halves (among that
image's valid trials, as for the split-half RSMs of :mod:`neurolp.rsa.brain_rsms`); the Pearson
correlation across images of the two half-mean responses, r_half, is averaged over ``n_splits``
random splits and stepped up to the reliability of the full trial count with the Spearman–Brown
formula (Spearman 1910; Brown 1910):

    r_SB = 2 r_half / (1 + r_half)

Neurons with r_SB below ``threshold`` (and neurons constant across images, whose r is undefined)
are dropped. This is the "internal consistency" filter of Brain-Score's neural benchmarks and of
Conwell et al. (2021) and Nayebi et al. (2023) on the Allen data; the threshold is a parameter
(no consensus value exists; 0.3–0.5 are common). Populations left with fewer neurons than
``min_neurons`` are then left out of the RSMs by :func:`~neurolp.rsa.brain_rsms.brain_rsms`, which
names them.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from neurolp.errors import InputError

__all__ = ["spearman_brown", "neuron_reliability", "select_reliable"]


def spearman_brown(r, factor: float = 2.0):
    """Reliability of ``factor`` × the data from the reliability ``r`` of one part (default: the
    full data from one half): ``factor·r / (1 + (factor − 1)·r)``."""
    r = np.asarray(r, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return factor * r / (1.0 + (factor - 1.0) * r)


def _columnwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r across rows (images) for every column (neuron) of ``a`` and ``b``."""
    da = a - a.mean(axis=0, keepdims=True)
    db = b - b.mean(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (da * db).sum(axis=0) / np.sqrt((da * da).sum(axis=0) * (db * db).sum(axis=0))
    r[~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def neuron_reliability(arr: np.ndarray, n_splits: int = 10, seed: int = 0) -> tuple[np.ndarray,
                                                                                     np.ndarray]:
    """``(r_half, r_SB)`` per neuron of one population ``[trials, images, neurons]``."""
    from neurolp.rsa.brain_rsms import _half_masks

    if n_splits < 1:
        raise InputError(f"reliability needs n_splits >= 1, got {n_splits}")
    arr = np.asarray(arr, dtype=np.float64)
    rng = np.random.default_rng(seed)
    filled = np.nan_to_num(arr, nan=0.0)
    rs = []
    for _ in range(int(n_splits)):
        a, b = (m.astype(np.float64) for m in _half_masks(arr, rng))  # [trials, images]
        ma = np.einsum("ti,tin->in", a, filled) / a.sum(axis=0)[:, None]
        mb = np.einsum("ti,tin->in", b, filled) / b.sum(axis=0)[:, None]
        rs.append(_columnwise_corr(ma, mb))
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r_half = np.nanmean(np.stack(rs), axis=0)
    return r_half, spearman_brown(r_half)


def select_reliable(brain, threshold: float, *, n_splits: int = 10, seed: int = 0,
                    progress: bool = False):
    """``(BrainResponses with only the reliable neurons, per-neuron table, per-population table)``.

    ``brain`` is a :class:`~neurolp.brain.responses.BrainResponses` (Allen experiments, or a neural
    file's sites × subjects). The per-population table has one row per experiment: area, mouse
    (subject), neurons, reliable neurons, median r_SB.
    """
    if not -1.0 <= float(threshold) <= 1.0:
        raise InputError(f"the reliability threshold must lie in [-1, 1], got {threshold}")
    exps = brain.experiments
    rows, per_neuron = [], []
    responses, ids = {}, {}
    iterator = list(exps.itertuples(index=False))
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="neuron reliability", unit="population", leave=False)
    for k, r in enumerate(iterator):
        eid = int(r.experiment_id)
        arr = brain.responses[eid]
        try:
            r_half, r_sb = neuron_reliability(arr, n_splits, seed + 7 * k)
        except InputError as exc:
            raise InputError(f"neuron reliability of {r.area} / {r.mouse} needs >= 2 trials per "
                             f"image: {str(exc).split(';')[0]}; drop --reliability") from None
        keep = r_sb >= threshold          # NaN (a constant neuron) is never kept
        responses[eid] = np.ascontiguousarray(arr[:, :, keep])
        ids[eid] = np.asarray(brain.neuron_ids[eid])[keep]
        per_neuron.append(pd.DataFrame({
            "area": r.area, "mouse": str(r.mouse), "experiment_id": eid,
            "neuron_id": np.asarray(brain.neuron_ids[eid]), "r_half": r_half,
            "reliability": r_sb, "kept": keep}))
        finite = r_sb[np.isfinite(r_sb)]
        rows.append({"area": r.area, "mouse": str(r.mouse), "experiment_id": eid,
                     "neurons": int(arr.shape[2]), "neurons_reliable": int(keep.sum()),
                     "neurons_constant": int(np.isnan(r_sb).sum()),
                     "reliability_median": float(np.median(finite)) if finite.size else np.nan,
                     "threshold": float(threshold), "splits": int(n_splits)})
    experiments = exps.copy()
    experiments["n_neurons"] = [responses[int(e)].shape[2] for e in experiments["experiment_id"]]
    out = replace(brain, experiments=experiments, responses=responses, neuron_ids=ids)
    neurons = pd.concat(per_neuron, ignore_index=True) if per_neuron else pd.DataFrame()
    return out, neurons, pd.DataFrame(rows)
