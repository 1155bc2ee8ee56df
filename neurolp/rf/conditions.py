"""The receptive-field conditions of Fig. 1f–g and the whole fit-mpnd pipeline as one library call.

Conditions (:data:`CONDITIONS`; the paper's five are :data:`DEFAULT_CONDITIONS`, in Table 8 order):

* ``v1`` — mouse V1 L2/3, all functional inputs of each of the 17 neurons (Rossi et al. 2020);
  ``v1-ex`` / ``v1-in`` — excitatory / inhibitory inputs only (App. A.3);
* ``trained-image``, ``trained-noise``, ``untrained-noise``, ``untrained-image`` — functional RFs of
  the first conv layer (AlexNet Conv1 by default) of an ImageNet-trained or a seeded randomly
  initialised network, with natural-image or Gaussian-noise inputs; one RF per input (n = 17).

:func:`run_fit_mpnd` collects the RFs, fits all of them in one batched MPND fit, compares p between
conditions (Welch + Holm) and averages the PMFs per condition; the CLI only writes its outputs. A
trained condition whose weights are missing is *skipped* and listed with the reason, never dropped
silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from neurolp.errors import CheckpointError, ConfigError, InputError

if TYPE_CHECKING:  # torch and pandas load lazily: `neurolp --help` reads CONDITIONS from here
    import pandas as pd

    from neurolp.mpnd.fit import PMFBins, ReceptiveField

__all__ = ["Condition", "CONDITIONS", "DEFAULT_CONDITIONS", "parse_conditions", "RFSet",
           "collect_receptive_fields", "functional_receptive_fields", "FitMPNDResult", "run_fit_mpnd",
           "summarize_fits"]


@dataclass(frozen=True)
class Condition:
    name: str
    label: str
    kind: str                      # "biological" | "artificial"
    color: str
    selection: str | None = None   # Rossi inputs: "all" | "ex" | "in"
    trained: bool | None = None
    inputs: str | None = None      # "noise" | "image"


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("v1", "Mouse V1 L2/3", "biological", "#1b7837", selection="all"),
    Condition("v1-ex", "Mouse V1 L2/3 (EX)", "biological", "#5aae61", selection="ex"),
    Condition("v1-in", "Mouse V1 L2/3 (IN)", "biological", "#9970ab", selection="in"),
    Condition("trained-image", "Trained + Image", "artificial", "#2166ac", trained=True, inputs="image"),
    Condition("trained-noise", "Trained + Noise", "artificial", "#67a9cf", trained=True, inputs="noise"),
    Condition("untrained-noise", "Untrained + Noise", "artificial", "#ef8a62", trained=False, inputs="noise"),
    Condition("untrained-image", "Untrained + Image", "artificial", "#b2182b", trained=False, inputs="image"),
)}
DEFAULT_CONDITIONS = ("v1", "trained-image", "trained-noise", "untrained-noise", "untrained-image")


def parse_conditions(spec: str | Iterable[str | Condition] | None = None) -> list[Condition]:
    """Conditions from names (a list, or comma-separated strings; ``"all"`` = every condition) or
    :class:`Condition` objects; duplicates are dropped, order is kept."""
    if spec is None:
        return [CONDITIONS[n] for n in DEFAULT_CONDITIONS]
    items = [spec] if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in items:
        if isinstance(item, Condition):
            names.append(item.name)
            continue
        names += [s.strip().lower() for s in str(item).split(",") if s.strip()]
    if not names:
        raise ConfigError(f"no conditions given; valid: {', '.join(CONDITIONS)}")
    if names == ["all"]:
        names = list(CONDITIONS)
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise ConfigError(f"unknown condition{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                          f"valid conditions: {', '.join(CONDITIONS)} (or 'all')")
    return [CONDITIONS[n] for n in dict.fromkeys(names)]


@dataclass
class RFSet:
    """Collected receptive fields: ``rfs[(condition, rf_id)]``, per-RF metadata, skipped conditions."""

    rfs: dict = field(default_factory=dict)
    meta: list = field(default_factory=list)       # dicts: condition, rf, source, activity_threshold, n_functional
    skipped: list = field(default_factory=list)    # dicts: condition, reason
    notes: list = field(default_factory=list)      # human-readable notes (image sources …)

    def meta_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.meta, columns=["condition", "rf", "source", "activity_threshold",
                                                "n_functional"])

    def skipped_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.skipped, columns=["condition", "reason"])


def functional_receptive_fields(network, images: np.ndarray, names: Sequence[str] | None = None,
                                progress=None) -> tuple[dict[str, ReceptiveField], pd.DataFrame]:
    """One functional RF per input image for the first conv layer of ``network`` (App. A.2).

    Returns ``({"input00": ReceptiveField, ...}, table)``: each RF's points are the kernel's tap
    offsets (x = Δw, y = −Δh), weighted by their functional-synapse counts, with the tap cells as its
    PMF bins; the table lists per input its name, the activity threshold θ = std(|Z|)
    (``activity_threshold``) and the number of functional synapses.
    """
    import pandas as pd

    from neurolp.mpnd.fit import ReceptiveField, lattice_edges
    from neurolp.rf.functional import conv_weight, counts_to_rf, first_conv, functional_synapse_counts

    _, conv = first_conv(network)
    W = conv_weight(conv).double().cpu().numpy()
    imgs = np.asarray(images, dtype=np.float64)
    if imgs.ndim != 4:
        raise InputError(f"images must be [n, C, H, W], got shape {imgs.shape}")
    if imgs.shape[1] != conv.in_channels:
        if conv.in_channels == 1:
            imgs = imgs.mean(axis=1, keepdims=True)
        else:
            raise InputError(f"the first conv layer expects {conv.in_channels} input channels, the images "
                             f"have {imgs.shape[1]}")
    names = list(names) if names is not None else [f"input{i:02d}" for i in range(len(imgs))]
    rfs, rows = {}, []
    for i, x in enumerate(imgs):
        res = functional_synapse_counts(x, W, groups=conv.groups, dilation=conv.dilation)
        pts, w = counts_to_rf(res.counts)
        rf_id = f"input{i:02d}"
        rfs[rf_id] = ReceptiveField(pts, w, edges=lattice_edges(res.counts.shape))
        rows.append({"rf": rf_id, "source": names[i], "activity_threshold": res.theta,
                     "n_functional": res.n_above})
        if progress is not None:
            progress.update(1)
    return rfs, pd.DataFrame(rows)


def collect_receptive_fields(
    conditions=None, *, rossi=None, images=None, allen_cache=None, weights=None, model: str = "alexnet",
    n_inputs: int = 17, seed: int = 0, progress: bool = False,
) -> RFSet:
    """Receptive fields of every condition (see module docstring); trained conditions without
    weights are recorded in ``skipped`` with the file name and folder to put it in."""
    from neurolp.rf.images import natural_images, noise_images
    from neurolp.rf.networks import build_network, find_trained_weights
    from neurolp.rf.rossi import load_rossi, rossi_receptive_fields

    conds = parse_conditions(conditions)
    if n_inputs < 2:
        raise InputError(f"--n-inputs must be >= 2 (one RF per input, and the t-tests need two), got {n_inputs}")
    out = RFSet()
    artificial = [c for c in conds if c.kind == "artificial"]
    runnable = []
    for c in artificial:
        if c.trained:
            found = find_trained_weights(model, weights)
            if found.path is None:
                out.skipped.append({"condition": c.name, "reason": found.reason})
                continue
        runnable.append(c)

    table = None
    for c in conds:
        if c.kind != "biological":
            continue
        table = load_rossi(rossi) if table is None else table
        left_out: list = []
        for rf_id, rf in rossi_receptive_fields(table, c.selection, skipped=left_out).items():
            out.rfs[(c.name, rf_id)] = rf
            out.meta.append({"condition": c.name, "rf": rf_id, "source": "Rossi et al. 2020 " +
                             ("(embedded table)" if rossi is None else str(rossi)),
                             "activity_threshold": np.nan, "n_functional": len(rf.points)})
        for rf_id, reason in left_out:
            out.skipped.append({"condition": c.name, "reason": f"{rf_id} left out: {reason}"})

    if not runnable:
        return out
    inputs: dict[str, object] = {}
    if any(c.inputs == "noise" for c in runnable):
        inputs["noise"] = noise_images(n_inputs, 224, seed)
    if any(c.inputs == "image" for c in runnable):
        inputs["image"] = natural_images(n_inputs, allen_cache=allen_cache, folder=images, size=224, seed=seed)
        out.notes.append(f"natural images: {inputs['image'].source}")
        out.notes += inputs["image"].notes
    nets = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(inputs[c.inputs].images) for c in runnable), desc="functional RFs",
                   unit="input", leave=False)
    try:
        for c in runnable:
            if c.trained not in nets:
                try:
                    nets[c.trained] = build_network(model, trained=bool(c.trained), weights=weights, seed=seed)
                except CheckpointError as exc:
                    if weights is not None:
                        raise
                    out.skipped.append({"condition": c.name, "reason": str(exc)})
                    continue
            imgset = inputs[c.inputs]
            rfs, tab = functional_receptive_fields(nets[c.trained], imgset.images, imgset.names, bar)
            for r in tab.itertuples(index=False):
                out.rfs[(c.name, r.rf)] = rfs[r.rf]
                out.meta.append({"condition": c.name, "rf": r.rf, "source": r.source,
                                 "activity_threshold": r.activity_threshold, "n_functional": r.n_functional})
    finally:
        if bar is not None:
            bar.close()
    return out


@dataclass
class FitMPNDResult:
    """Everything ``neurolp fit-mpnd`` writes: fits, pairwise stats, Table-8 matrix, mean PMFs, skipped."""

    fits: pd.DataFrame
    stats: pd.DataFrame
    matrix: pd.DataFrame
    pmfs: pd.DataFrame
    skipped: pd.DataFrame
    summary: pd.DataFrame
    notes: list
    config: dict


def summarize_fits(fits: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per condition: n, median p (IQR), mean ± sd, how many fits converged / ended on a p bound."""
    import pandas as pd

    order = list(order) if order is not None else list(pd.unique(fits["condition"]))
    rows = []
    for name in order:
        g = fits[fits["condition"] == name]
        if g.empty:
            continue
        rows.append({"condition": name, "label": CONDITIONS[name].label if name in CONDITIONS else name,
                     "n": len(g), "median_p": g["p"].median(), "q25_p": g["p"].quantile(0.25),
                     "q75_p": g["p"].quantile(0.75), "mean_p": g["p"].mean(), "sd_p": g["p"].std(ddof=1),
                     "median_sigma": g["sigma"].median(), "converged": int(g["converged"].sum()),
                     "p_at_bound": int(g["p_at_bound"].sum()),
                     "p_at_min": int(g["p_at_min"].sum()) if "p_at_min" in g else 0,
                     "p_at_max": int(g["p_at_max"].sum()) if "p_at_max" in g else 0})
    return pd.DataFrame(rows)


def run_fit_mpnd(
    conditions=None, *, rossi=None, images=None, allen_cache=None, weights=None, model: str = "alexnet",
    n_inputs: int = 17, seed: int = 0, objective: str = "pmf", loss: str = "mse", C: str = "isotropic",
    bins: PMFBins | None = None, p_max: float = 64.0, progress: bool = False,
) -> FitMPNDResult:
    """Collect RFs, fit MPNDs (one batched fit), compare p between conditions, average PMFs."""
    from neurolp.mpnd.fit import PMFBins, fit_mpnd, rf_pmfs
    from neurolp.stats import pairwise_matrix, pairwise_welch

    conds = parse_conditions(conditions)
    bins = bins or PMFBins.centred()
    rset = collect_receptive_fields(conds, rossi=rossi, images=images, allen_cache=allen_cache,
                                    weights=weights, model=model, n_inputs=n_inputs, seed=seed,
                                    progress=progress)
    if not rset.rfs:
        reasons = "; ".join(f"{s['condition']}: {s['reason']}" for s in rset.skipped)
        raise InputError(f"no receptive fields to fit — every condition was skipped ({reasons})")
    keys = list(rset.rfs)
    fits = fit_mpnd([rset.rfs[k] for k in keys], objective=objective, loss=loss, C=C, bins=bins,
                    p_bounds=(1.0, p_max), progress=progress)
    meta = rset.meta_table()
    fits.insert(0, "condition", [k[0] for k in keys])
    fits["rf"] = [k[1] for k in keys]
    fits = fits.merge(meta, on=["condition", "rf"], how="left")
    fits.insert(1, "label", [CONDITIONS[c].label for c in fits["condition"]])
    order = [c.name for c in conds if c.name in set(fits["condition"])]
    stats = pairwise_welch(fits, value="p", group="condition", order=order)
    matrix = pairwise_matrix(stats, order=order)
    matrix.index = [CONDITIONS[n].label for n in matrix.index]
    matrix.columns = [CONDITIONS[n].label for n in matrix.columns]
    matrix.index.name = "Welch's t-test (Holm-corrected p)"

    per_rf = rf_pmfs({k: rset.rfs[k] for k in keys}, fits, bins)
    per_rf["condition"] = [k[0] for k in per_rf["rf"]]
    pmfs = (per_rf.groupby(["condition", "bins", "ix", "iy"], sort=False)
            [["x", "y", "x_width", "y_width", "empirical", "fitted"]].mean().reset_index())
    skipped = rset.skipped_table()
    config = {"conditions": [c.name for c in conds], "rossi": rossi, "images": images,
              "allen_cache": allen_cache, "weights": weights, "model": model, "n_inputs": n_inputs,
              "seed": seed, "objective": objective, "loss": loss, "C": C, "bins": bins.describe(),
              "p_max": p_max}
    return FitMPNDResult(fits, stats, matrix, pmfs, skipped, summarize_fits(fits, order), rset.notes, config)
