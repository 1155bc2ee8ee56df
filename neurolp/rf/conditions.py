"""The receptive-field conditions of Fig. 1f–g and the whole fit-mpnd pipeline as one library call.

Conditions (:data:`CONDITIONS`; the paper's five are :data:`DEFAULT_CONDITIONS`, in Table 8 order):

* ``v1`` — mouse V1 L2/3, all functional inputs of each of the 17 neurons (Rossi et al. 2020);
  ``v1-ex`` / ``v1-in`` — excitatory / inhibitory inputs only (App. A.3);
* ``trained-image``, ``trained-noise``, ``untrained-noise``, ``untrained-image`` — functional RFs of
  the first conv layer (AlexNet Conv1 by default) of an ImageNet-trained or a seeded randomly
  initialised network, with natural-image or Gaussian-noise inputs.

Two kinds of artificial RF (``rf=``):

* ``"pooled"`` (default): one RF per input (n = 17, the paper's n), all filters and channels pooled,
  one activity threshold θ = std(|Z|) per input over the whole layer;
* ``"per-filter"``: one RF per filter (a post-synaptic unit, as a V1 neuron is; n = 64 for AlexNet),
  its functional synapses pooled over the inputs, each input with the filter's own θ_o = std(|Z_o|),
  as the paper's single-filter ``W_ARF ∈ R^{C_i×K_h×K_w}`` reads (App. A.2).

Untrained RFs come from one seeded network by default, so their n counts inputs, not networks;
``untrained_networks=N`` draws N independently seeded networks (seeds ``seed, seed+1, …``) and takes
input i's RF from network ``i mod N``, so with N = n_inputs the within-group spread is between
networks.

:func:`run_fit_mpnd` collects the RFs, fits all of them in one batched MPND fit (converged, or the
paper's early-stopped Adam with its p-trajectory), summarises p per condition (medians with
bootstrap CIs), compares conditions (Mann–Whitney and Welch on log p, Holm; groups with fits at a
bound are not testable: :func:`neurolp.stats.compare_groups`), averages the PMFs per condition and,
on request, builds the robustness table (:mod:`neurolp.rf.sensitivity`); the CLI only writes its
outputs. A trained condition whose weights are missing is *skipped* and listed with the reason,
never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from neurolp.errors import CheckpointError, ConfigError, InputError
from neurolp.mpnd.defaults import PAPER_LR, PAPER_STEPS

if TYPE_CHECKING:  # torch and pandas load lazily: `neurolp --help` reads CONDITIONS from here
    import pandas as pd

    from neurolp.mpnd.fit import PMFBins, ReceptiveField

__all__ = ["Condition", "CONDITIONS", "DEFAULT_CONDITIONS", "parse_conditions", "RFSet", "RF_KINDS",
           "collect_receptive_fields", "functional_receptive_fields", "FitMPNDResult", "run_fit_mpnd",
           "summarize_fits", "MIN_INPUTS"]

RF_KINDS = ("pooled", "per-filter")
#: RFs with fewer functional inputs than this are flagged ``few_inputs`` (their p is poorly determined).
MIN_INPUTS = 30


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
    meta: list = field(default_factory=list)       # dicts: condition, rf, source, activity_threshold,
    #                                                n_functional, network_seed
    skipped: list = field(default_factory=list)    # dicts: condition, reason
    notes: list = field(default_factory=list)      # human-readable notes (image sources …)

    def meta_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.meta, columns=["condition", "rf", "source", "activity_threshold",
                                                "n_functional", "network_seed"])

    def skipped_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.skipped, columns=["condition", "reason"])


def functional_receptive_fields(network, images: np.ndarray, names: Sequence[str] | None = None,
                                progress=None, rf: str = "pooled",
                                ids: Sequence[str] | None = None) -> tuple[dict[str, ReceptiveField], pd.DataFrame]:
    """Functional RFs of the first conv layer of ``network`` for ``images [n, C, H, W]`` (App. A.2).

    ``rf="pooled"``: one RF per input (``"input00"``, … or ``ids``), all filters pooled, θ = std(|Z|)
    per input. ``rf="per-filter"``: one RF per filter (``"filter00"``, …), pooled over the inputs,
    with each filter's own θ_o. Each RF's points are the kernel's tap offsets (x = Δw, y = −Δh),
    weighted by their functional-synapse counts, with the tap cells as its PMF bins. The table lists
    per RF its source, the activity threshold (per-filter: the median θ_o over inputs) and the number
    of functional synapses.
    """
    import pandas as pd

    from neurolp.mpnd.fit import ReceptiveField, lattice_edges
    from neurolp.rf.functional import conv_weight, counts_to_rf, first_conv, functional_synapse_counts

    if rf not in RF_KINDS:
        raise InputError(f"unknown RF kind {rf!r}; use {' or '.join(map(repr, RF_KINDS))}")
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
    ids = list(ids) if ids is not None else [f"input{i:02d}" for i in range(len(imgs))]
    per_filter = rf == "per-filter"
    rfs, rows = {}, []
    filt_counts, filt_theta = 0, []
    for i, x in enumerate(imgs):
        res = functional_synapse_counts(x, W, groups=conv.groups, dilation=conv.dilation, per_filter=per_filter)
        if per_filter:
            filt_counts = filt_counts + res.filter_counts
            filt_theta.append(res.filter_theta)
        else:
            pts, w = counts_to_rf(res.counts)
            rfs[ids[i]] = ReceptiveField(pts, w, edges=lattice_edges(res.counts.shape))
            rows.append({"rf": ids[i], "source": names[i], "activity_threshold": res.theta,
                         "n_functional": res.n_above})
        if progress is not None:
            progress.update(1)
    if per_filter:
        theta = np.median(np.stack(filt_theta), axis=0)
        for o, counts in enumerate(filt_counts):
            rf_id = f"filter{o:02d}"
            if counts.sum() == 0:  # an all-zero filter has no functional synapses: nothing to fit
                continue
            pts, w = counts_to_rf(counts)
            rfs[rf_id] = ReceptiveField(pts, w, edges=lattice_edges(counts.shape))
            rows.append({"rf": rf_id, "source": f"filter {o} over {len(imgs)} inputs",
                         "activity_threshold": float(theta[o]), "n_functional": int(counts.sum())})
    return rfs, pd.DataFrame(rows, columns=["rf", "source", "activity_threshold", "n_functional"])


def collect_receptive_fields(
    conditions=None, *, rossi=None, images=None, allen_cache=None, weights=None, model: str = "alexnet",
    n_inputs: int = 17, seed: int = 0, progress: bool = False, rf: str = "pooled",
    untrained_networks: int = 1,
) -> RFSet:
    """Receptive fields of every condition (see module docstring); trained conditions without
    weights are recorded in ``skipped`` with the file name and folder to put it in."""
    from neurolp.rf.functional import first_conv
    from neurolp.rf.images import natural_images, noise_images
    from neurolp.rf.networks import build_network, find_trained_weights
    from neurolp.rf.rossi import load_rossi, rossi_receptive_fields

    conds = parse_conditions(conditions)
    if n_inputs < 2:
        raise InputError(f"--n-inputs must be >= 2 (one RF per input, and the t-tests need two), got {n_inputs}")
    if rf not in RF_KINDS:
        raise InputError(f"unknown RF kind {rf!r}; use {' or '.join(map(repr, RF_KINDS))}")
    if not 1 <= int(untrained_networks) <= n_inputs:
        raise InputError(f"--untrained-networks must be in [1, --n-inputs = {n_inputs}] (input i uses network "
                         f"i mod N), got {untrained_networks}")
    if rf == "per-filter" and untrained_networks > 1:
        raise InputError("--untrained-networks > 1 needs --rf pooled: per-filter RFs are the units of one "
                         "network")
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
        for rf_id, r in rossi_receptive_fields(table, c.selection, skipped=left_out).items():
            out.rfs[(c.name, rf_id)] = r
            out.meta.append({"condition": c.name, "rf": rf_id, "source": "Rossi et al. 2020 " +
                             ("(embedded table)" if rossi is None else str(rossi)),
                             "activity_threshold": np.nan, "n_functional": len(r.points), "network_seed": np.nan})
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
    if untrained_networks > 1 and any(c.trained is False for c in runnable):
        out.notes.append(f"untrained RFs from {untrained_networks} independently seeded networks (seeds "
                         f"{seed}–{seed + untrained_networks - 1}; input i from network i mod {untrained_networks})")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(inputs[c.inputs].images) for c in runnable), desc="functional RFs",
                   unit="input", leave=False)
    convs: dict = {}   # (trained, network index) → its first conv (the rest of the network is dropped)
    try:
        for c in runnable:
            imgset = inputs[c.inputs]
            n = len(imgset.images)
            n_nets = 1 if c.trained else int(untrained_networks)
            got: list = []
            for k in range(n_nets):
                key = (bool(c.trained), k)
                if key not in convs:
                    try:
                        net = build_network(model, trained=bool(c.trained), weights=weights, seed=seed + k)
                    except CheckpointError as exc:
                        if weights is not None:
                            raise
                        out.skipped.append({"condition": c.name, "reason": str(exc)})
                        got = []
                        break
                    convs[key] = first_conv(net)[1]
                    del net
                idx = list(range(k, n, n_nets))
                rfs, tab = functional_receptive_fields(
                    convs[key], imgset.images[idx], [imgset.names[i] for i in idx], bar, rf=rf,
                    ids=[f"input{i:02d}" for i in idx])
                got += [(r, rfs[r.rf], np.nan if c.trained else seed + k) for r in tab.itertuples(index=False)]
            for r, rfield, net_seed in sorted(got, key=lambda t: t[0].rf):
                out.rfs[(c.name, r.rf)] = rfield
                out.meta.append({"condition": c.name, "rf": r.rf, "source": r.source,
                                 "activity_threshold": r.activity_threshold, "n_functional": r.n_functional,
                                 "network_seed": net_seed})
    finally:
        if bar is not None:
            bar.close()
    return out


@dataclass
class FitMPNDResult:
    """Everything ``neurolp fit-mpnd`` writes: fits, per-condition summary (medians with bootstrap CIs),
    pairwise tests, Table-8 matrices, mean PMFs, skipped conditions, the paper fit's p-trajectory
    (empty for the converged fit) and the robustness table (None unless asked for)."""

    fits: pd.DataFrame
    stats: pd.DataFrame
    matrix: pd.DataFrame
    pmfs: pd.DataFrame
    skipped: pd.DataFrame
    summary: pd.DataFrame
    notes: list
    config: dict
    matrix_welch: pd.DataFrame | None = None
    trajectory: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    sensitivity_summary: pd.DataFrame | None = None


def summarize_fits(fits: pd.DataFrame, order: Sequence[str] | None = None, *, p_max: float | None = None,
                   p_min: float = 1.0, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per condition: n, median p with its percentile-bootstrap CI (``display``: "≥ p_max" when the
    median is on the bound), IQR, mean ± sd, geometric mean, how many fits converged / ended on a p
    bound / have few inputs, and the median converged p (``median_p_optimum``)."""
    import pandas as pd

    from neurolp.stats import group_summary

    order = list(order) if order is not None else list(pd.unique(fits["condition"]))
    p_max = float(fits["p"].max()) if p_max is None else p_max
    has = {c: c in fits for c in ("p_at_min", "p_at_max", "few_inputs", "p_optimum")}
    gs = group_summary(fits, "p", "condition", order, at_lower="p_at_min" if has["p_at_min"] else None,
                       at_upper="p_at_max" if has["p_at_max"] else None, bounds=(p_min, p_max), level=level,
                       n_boot=n_boot, seed=seed).set_index("condition")
    rows = []
    for name in order:
        g = fits[fits["condition"] == name]
        if g.empty:
            continue
        q = gs.loc[name]
        rows.append({"condition": name, "label": CONDITIONS[name].label if name in CONDITIONS else name,
                     "n": len(g), "median_p": q["median"], "ci_lo": q["ci_lo"], "ci_hi": q["ci_hi"],
                     "ci_level": level, "display": q["display"], "censored": bool(q["censored"]),
                     "q25_p": q["q25"], "q75_p": q["q75"], "mean_p": g["p"].mean(),
                     "sd_p": g["p"].std(ddof=1), "geo_mean_p": q["geo_mean"],
                     "median_p_optimum": g["p_optimum"].median() if has["p_optimum"] else q["median"],
                     "median_sigma": g["sigma"].median(), "converged": int(g["converged"].sum()),
                     "p_at_bound": int(g["p_at_bound"].sum()),
                     "p_at_min": int(g["p_at_min"].sum()) if has["p_at_min"] else 0,
                     "p_at_max": int(g["p_at_max"].sum()) if has["p_at_max"] else 0,
                     "few_inputs": int(g["few_inputs"].sum()) if has["few_inputs"] else 0})
    return pd.DataFrame(rows)


def run_fit_mpnd(
    conditions=None, *, rossi=None, images=None, allen_cache=None, weights=None, model: str = "alexnet",
    n_inputs: int = 17, seed: int = 0, objective: str = "pmf", loss: str = "mse", C: str = "isotropic",
    bins: PMFBins | None = None, p_max: float = 64.0, fit: str = "converged", lr: float = PAPER_LR,
    steps: int = PAPER_STEPS, record_every: int = 10, rf: str = "pooled", untrained_networks: int = 1,
    min_inputs: int = MIN_INPUTS, n_boot: int = 10000, sensitivity: bool = False,
    sensitivity_widths: Sequence[float] | None = None, progress: bool = False,
) -> FitMPNDResult:
    """Collect RFs, fit MPNDs (one batched fit), summarise and compare p between conditions, average
    PMFs, and with ``sensitivity=True`` refit under other binnings, objectives and fits
    (:func:`neurolp.rf.sensitivity.sensitivity_table`)."""
    import pandas as pd

    from neurolp.mpnd.fit import PMFBins, default_standardize, fit_mpnd, rf_pmfs
    from neurolp.stats import compare_groups, pairwise_matrix

    conds = parse_conditions(conditions)
    bins = bins or PMFBins.centred()
    rset = collect_receptive_fields(conds, rossi=rossi, images=images, allen_cache=allen_cache,
                                    weights=weights, model=model, n_inputs=n_inputs, seed=seed,
                                    progress=progress, rf=rf, untrained_networks=untrained_networks)
    if not rset.rfs:
        reasons = "; ".join(f"{s['condition']}: {s['reason']}" for s in rset.skipped)
        raise InputError(f"no receptive fields to fit — every condition was skipped ({reasons})")
    keys = list(rset.rfs)
    fits, traj = fit_mpnd([rset.rfs[k] for k in keys], objective=objective, loss=loss, C=C, bins=bins,
                          p_bounds=(1.0, p_max), fit=fit, lr=lr, steps=steps, record_every=record_every,
                          return_trajectory=True, progress=progress)
    meta = rset.meta_table()
    fits.insert(0, "condition", [k[0] for k in keys])
    fits["rf"] = [k[1] for k in keys]
    fits = fits.merge(meta, on=["condition", "rf"], how="left")
    fits.insert(1, "label", [CONDITIONS[c].label for c in fits["condition"]])
    fits["few_inputs"] = fits["n_functional"] < min_inputs
    if len(traj):
        pos = traj["rf"].to_numpy()
        traj.insert(0, "condition", [keys[i][0] for i in pos])
        traj["rf"] = [keys[i][1] for i in pos]
    order = [c.name for c in conds if c.name in set(fits["condition"])]
    stats = compare_groups(fits, "p", "condition", order, at_lower="p_at_min", at_upper="p_at_max",
                           bounds=(1.0, p_max))
    labels = {n: CONDITIONS[n].label for n in order}
    matrices = {}
    for test, title in (("mann-whitney", "Mann-Whitney U (Holm-corrected p)"),
                        ("welch-log", "Welch's t-test on log p (Holm-corrected p)")):
        matrices[test] = pairwise_matrix(stats[stats["test"] == test], order=order,
                                         title=title).rename(index=labels, columns=labels)

    per_rf = rf_pmfs({k: rset.rfs[k] for k in keys}, fits, bins)
    per_rf["condition"] = [k[0] for k in per_rf["rf"]]
    pmfs = (per_rf.groupby(["condition", "bins", "ix", "iy"], sort=False)
            [["x", "y", "x_width", "y_width", "empirical", "fitted"]].mean().reset_index())
    skipped = rset.skipped_table()
    config = {"conditions": [c.name for c in conds], "rossi": rossi, "images": images,
              "allen_cache": allen_cache, "weights": weights, "model": model, "n_inputs": n_inputs,
              "seed": seed, "objective": objective, "loss": loss, "C": C, "bins": bins.describe(),
              "p_max": p_max, "fit": fit, "lr": lr if fit == "paper" else None,
              "steps": steps if fit == "paper" else None, "rf": rf, "untrained_networks": untrained_networks,
              "min_inputs": min_inputs, "n_boot": n_boot, "sensitivity": sensitivity,
              "standardize": default_standardize(C)}
    summary = summarize_fits(fits, order, p_max=p_max, n_boot=n_boot, seed=seed)
    sens = sens_summary = None
    if sensitivity:
        from neurolp.rf.sensitivity import sensitivity_summary, sensitivity_table

        sens = sensitivity_table({k: rset.rfs[k] for k in keys}, fits, p_max=p_max, lr=lr, steps=steps,
                                 widths=sensitivity_widths, n_boot=n_boot, seed=seed, progress=progress)
        sens_summary = sensitivity_summary(sens)
    return FitMPNDResult(fits, stats, matrices["mann-whitney"], pmfs, skipped, summary, rset.notes, config,
                         matrix_welch=matrices["welch-log"], trajectory=traj if fit == "paper" else None,
                         sensitivity=sens, sensitivity_summary=sens_summary)
