"""One brain-likeness report for many models: every measure from the library call that defines it.

Per model (a :class:`~neurolp.rsa.ModelSource`: a checkpoint, a weights file or a seeded random
initialisation):

* **MPND p of the first conv's functional RFs** (paper Fig. 1, App. A.2): one functional RF per
  input image (:func:`neurolp.rf.conditions.functional_receptive_fields`, natural images or noise at
  the model's input size and normalisation), all models' RFs and the 17 mouse V1 L2/3 neurons of
  Rossi et al. (2020) (:func:`neurolp.rf.rossi.rossi_receptive_fields`) fitted in one batched
  :func:`neurolp.mpnd.fit_mpnd`; median and IQR per model (:func:`neurolp.rf.conditions.
  summarize_fits`), fits at the p bound counted, and Welch's t-test of each model against V1
  (:func:`neurolp.stats.welch`, Holm-corrected across models).
* **Learned Lp-masks** (Lp models): p, α, θ, γ of every mask (:func:`neurolp.layers.mask_table`),
  median and IQR over all masks and per layer. θ is undefined (NaN) for isotropic masks (γ = 1),
  such as every mask at initialisation.
* **RSA** (Allen cache or ``--neural`` data): :func:`neurolp.rsa.run_rsa` /
  :func:`neurolp.rsa.neural.run_rsa_neural` for all models at once; per area the best layer's
  normalised and raw score with their bootstrap CIs, the cross-validated score when asked, and the
  whole layer profile.
* **Accuracy** on an evaluation set (:func:`neurolp.train.evaluate.evaluate_checkpoint`).

:func:`measures_table` lays everything out as one tidy row per model × measure (× area × layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from neurolp.errors import CheckpointError, ConfigError

__all__ = ["ReportConfig", "ReportResult", "load_report_source", "mpnd_of_models",
           "mask_summary", "accuracy_of_models", "measures_table", "run_report", "V1_LABEL"]

V1_LABEL = "mouse V1 L2/3 (Rossi et al. 2020)"
MEASURE_COLUMNS = ["model", "measure", "area", "layer", "layer_index", "value", "ci_low", "ci_high",
                   "q25", "q75", "n", "detail"]


@dataclass(frozen=True)
class ReportConfig:
    rf_inputs: str = "image"          # "image" | "noise": inputs of the functional RFs
    n_inputs: int = 17                # functional RFs per model (the paper's n)
    rf_images: str | None = None      # a folder of natural images (default: Allen cache, else
    rf_allen_cache: str | None = None  # the photographs shipped in the installed wheels)
    p_max: float = 64.0
    seed: int = 0
    eval_dataset: str | None = None
    data_dir: str | None = None
    eval_split: str = "test"
    batch_size: int = 256


@dataclass
class ReportResult:
    measures: pd.DataFrame               # tidy: one row per model × measure (× area × layer)
    mpnd_fits: pd.DataFrame              # one row per receptive field (models and V1)
    mpnd_summary: pd.DataFrame           # per model: median p, IQR, bound hits, Welch vs V1
    masks: pd.DataFrame                  # one row per Lp-mask of every Lp model
    rsa: object | None                   # RSAResult, or None when no brain data were given
    accuracy: pd.DataFrame               # one row per model (empty without an eval set)
    models: pd.DataFrame                 # model, name, source, input size, parameters, first conv
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)


def load_report_source(name: str, *, checkpoint=None, weights=None, untrained: bool = False,
                       image_size: int | None = None, num_classes: int = 1000, store=None,
                       dataset: str | None = None, seed: int = 0, device: str = "cpu"):
    """A :class:`~neurolp.rsa.ModelSource` from a checkpoint, the newest one in the store, a
    weights file (a state_dict / safetensors of the registry model, e.g. torchvision's ImageNet
    file for ``base-alexnet``; ImageNet normalisation), or a seeded random initialisation."""
    from neurolp.rsa.pipeline import ModelSource, load_model_source

    if weights is None:
        return load_model_source(name, checkpoint=checkpoint, store=store, dataset=dataset,
                                 image_size=image_size, untrained=untrained,
                                 num_classes=num_classes, seed=seed, device=device)
    if checkpoint is not None:
        raise ConfigError(f"{name}: give a checkpoint or a weights file, not both")
    import torch

    from neurolp.models import check_input_size, create_model, parse_model_name
    from neurolp.rf.networks import load_state_dict_file
    from neurolp.train.checkpoint import DEFAULT_NORMALIZATION, state_dict_mismatch

    canon = str(parse_model_name(name))
    if image_size is None:
        raise ConfigError(f"{name}: --weights needs --image-size (the input size the weights were "
                          "trained at, e.g. 224 for torchvision's ImageNet files)")
    torch.manual_seed(seed)
    model = create_model(canon, num_classes=num_classes, image_size=int(image_size))
    check_input_size(model, int(image_size), canon)
    sd = load_state_dict_file(weights)
    missing, unexpected, shapes = state_dict_mismatch(model.state_dict(), sd)
    if shapes or missing or unexpected:
        what = (f"shape {shapes[0]} (file vs model; the classifier's outputs are --num-classes)"
                if shapes else f"missing {missing[:2]}" if missing else f"unexpected {unexpected[:2]}")
        raise CheckpointError(f"weights {weights} do not fit {canon}: {what}")
    model.load_state_dict(sd)
    model = model.to(device).eval()
    return ModelSource(canon, model, int(image_size), dict(DEFAULT_NORMALIZATION), str(weights),
                       {"weights": str(weights), "image_size": int(image_size),
                        "num_classes": num_classes, "normalization": dict(DEFAULT_NORMALIZATION),
                        "model": canon})


def _renormalise(x: np.ndarray, normalization: dict | None) -> np.ndarray:
    """Inputs made with ImageNet statistics (:mod:`neurolp.rf.images`) re-expressed in the
    model's own input normalisation."""
    from neurolp.rf.images import IMAGENET_MEAN, IMAGENET_STD

    if not normalization:
        return x
    mean = np.resize(np.asarray(normalization["mean"], float), 3)
    std = np.resize(np.asarray(normalization["std"], float), 3)
    raw = x * IMAGENET_STD[:, None, None] + IMAGENET_MEAN[:, None, None]
    return (raw - mean[:, None, None]) / std[:, None, None]


def mpnd_of_models(sources, config: ReportConfig, *, progress: bool = False):
    """``(fits, summary, notes)``: MPND fits of every model's first-conv functional RFs and of the
    mouse V1 RFs in one batched fit, and per model the median/IQR of p and its test against V1."""
    from neurolp.mpnd.fit import PMFBins, fit_mpnd
    from neurolp.rf.conditions import functional_receptive_fields, summarize_fits
    from neurolp.rf.functional import first_conv
    from neurolp.rf.images import natural_images, noise_images
    from neurolp.rf.rossi import load_rossi, rossi_receptive_fields
    from neurolp.stats import holm, welch

    notes: list[str] = []
    keys, rfs, meta = [], [], []
    for rf_id, rf in rossi_receptive_fields(load_rossi(), "all").items():
        keys.append(("v1", rf_id))
        rfs.append(rf)
        meta.append({"source": "Rossi et al. 2020 (embedded)", "first_conv": "", "kernel": ""})
    sizes: dict[int, object] = {}
    iterator = sources
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(sources, desc="functional RFs", unit="model", leave=False)
    for src in iterator:
        size = int(src.image_size)
        if size not in sizes:
            sizes[size] = (noise_images(config.n_inputs, size, config.seed)
                           if config.rf_inputs == "noise" else
                           natural_images(config.n_inputs, allen_cache=config.rf_allen_cache,
                                          folder=config.rf_images, size=size, seed=config.seed))
            if config.rf_inputs != "noise":
                notes += [f"functional-RF inputs at {size} px: {sizes[size].source}"] \
                    + list(sizes[size].notes)
        imgs = sizes[size]
        name, conv = first_conv(src.model)
        x = _renormalise(imgs.images, src.normalization) if config.rf_inputs != "noise" \
            else imgs.images
        got, table = functional_receptive_fields(src.model, x, imgs.names)
        for r in table.itertuples(index=False):
            keys.append((src.display, r.rf))
            rfs.append(got[r.rf])
            meta.append({"source": r.source, "first_conv": name or "(model)",
                         "kernel": f"{conv.kernel_size[0]}×{conv.kernel_size[1]}"})
    fits = fit_mpnd(rfs, bins=PMFBins.centred(), p_bounds=(1.0, float(config.p_max)),
                    progress=progress)
    fits.insert(0, "condition", [k[0] for k in keys])
    fits["rf"] = [k[1] for k in keys]
    for col in ("source", "first_conv", "kernel"):
        fits[col] = [m[col] for m in meta]
    order = ["v1"] + [s.display for s in sources]
    summary = summarize_fits(fits, order)
    summary.loc[summary["condition"] == "v1", "label"] = V1_LABEL
    v1 = fits.loc[fits["condition"] == "v1", "p"].to_numpy()
    tests = [welch(fits.loc[fits["condition"] == s.display, "p"].to_numpy(), v1) for s in sources]
    p_raw = np.array([t["pvalue"] for t in tests], dtype=float)
    p_holm = np.full(len(tests), np.nan)
    ok = np.isfinite(p_raw)
    if ok.any():
        p_holm[ok] = holm(p_raw[ok])
    summary["welch_t_vs_v1"] = [np.nan] + [t["t"] for t in tests]
    summary["welch_p_vs_v1"] = [np.nan] + list(p_raw)
    summary["welch_p_holm_vs_v1"] = [np.nan] + list(p_holm)
    summary["welch_note"] = [""] + [t["note"] for t in tests]
    kernels = fits.groupby("condition")["kernel"].first()
    convs = fits.groupby("condition")["first_conv"].first()
    summary["kernel"] = [kernels.get(c, "") for c in summary["condition"]]
    summary["first_conv"] = [convs.get(c, "") for c in summary["condition"]]
    return fits, summary, notes


def mask_summary(sources) -> pd.DataFrame:
    """Every Lp-mask of every Lp model (``mask_table`` rows with the model's name)."""
    from neurolp.layers import mask_table

    frames = []
    for src in sources:
        t = mask_table(src.model)
        if len(t):
            t.insert(0, "model", src.display)
            frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["model", "layer", "depth", "channel", "kernel", "p", "alpha", "theta", "gamma"])


def _eval_meta(src) -> dict:
    from neurolp.train.checkpoint import DEFAULT_NORMALIZATION

    meta = dict(src.metadata or {})
    meta.setdefault("model", src.name)
    meta.setdefault("image_size", src.image_size)
    meta.setdefault("normalization", src.normalization or dict(DEFAULT_NORMALIZATION))
    meta.setdefault("dataset", None)
    meta.setdefault("config", {})
    if "num_classes" not in meta:
        head = [m for m in src.model.modules() if hasattr(m, "out_features")]
        meta["num_classes"] = int(head[-1].out_features) if head else 0
    return meta


def accuracy_of_models(sources, config: ReportConfig, *, device="cpu",
                       progress: bool = False) -> pd.DataFrame:
    """Top-1/top-5 accuracy and loss of every model on ``config.eval_dataset``."""
    from neurolp.train.evaluate import evaluate_checkpoint

    rows = []
    for src in sources:
        res = evaluate_checkpoint((src.model, _eval_meta(src)), config.eval_dataset,
                                  data_dir=config.data_dir, split=config.eval_split,
                                  batch_size=config.batch_size, device=device, progress=progress)
        res.pop("skipped_files", None)
        rows.append({**res, "model": src.display, "registry_name": res.get("model")})
    return pd.DataFrame(rows)


def _row(model, measure, value, **kw) -> dict:
    row = dict.fromkeys(MEASURE_COLUMNS, np.nan)
    row.update(model=model, measure=measure, value=value, area="", layer="", detail="")
    row.update(kw)
    return row


def _quantile_rows(model, measure, values, **kw) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return _row(model, measure, np.nan, n=0, **kw)
    return _row(model, measure, float(np.median(v)), q25=float(np.quantile(v, 0.25)),
                q75=float(np.quantile(v, 0.75)), n=int(v.size), **kw)


def measures_table(models: pd.DataFrame, mpnd_summary: pd.DataFrame | None, fits: pd.DataFrame | None,
                   masks: pd.DataFrame, rsa, accuracy: pd.DataFrame, p_max: float = 64.0) -> pd.DataFrame:
    """The tidy report table (columns :data:`MEASURE_COLUMNS`)."""
    rows = []
    for r in models.itertuples(index=False):
        rows.append(_row(r.model, "parameters", float(r.parameters), detail=r.source))
    if mpnd_summary is not None:
        for r in mpnd_summary.itertuples(index=False):
            model = V1_LABEL if r.condition == "v1" else r.condition
            g = fits[fits["condition"] == r.condition]
            kind = "synaptic inputs of each neuron" if r.condition == "v1" else \
                f"functional RFs of the first conv ({r.first_conv}, {r.kernel})"
            rows.append(_row(model, "mpnd_p", float(r.median_p), q25=float(r.q25_p),
                             q75=float(r.q75_p), n=int(r.n), detail=f"MPND p (median, IQR) of {kind}"))
            rows.append(_row(model, "mpnd_p_at_bound", float(g["p_at_bound"].mean()), n=int(r.n),
                             detail=f"share of fits ending on a p bound [1, {p_max:g}] (box-like "
                                    "RFs go to p_max)"))
            if r.condition != "v1":
                rows.append(_row(model, "mpnd_p_vs_v1_p_holm", float(r.welch_p_holm_vs_v1),
                                 n=int(r.n), detail=f"Welch's t-test of p against mouse V1 "
                                                    f"(t = {r.welch_t_vs_v1:.3g}), Holm-corrected "
                                                    f"over models{'; ' + r.welch_note if r.welch_note else ''}"))
    for model, g in masks.groupby("model", sort=False):
        for col, name in (("p", "lp_p"), ("alpha", "lp_alpha"), ("theta", "lp_theta"),
                          ("gamma", "lp_gamma")):
            note = ("θ (deg) is undefined for isotropic masks (γ = 1)" if col == "theta" else "")
            rows.append(_quantile_rows(model, name, g[col], layer="all",
                                       detail=f"{col} of all {len(g)} Lp-masks (median, IQR)"
                                              + (f"; {note}" if note else "")))
            for (depth, layer), gl in g.groupby(["depth", "layer"], sort=True):
                rows.append(_quantile_rows(model, name, gl[col], layer=layer,
                                           layer_index=int(depth) - 1,
                                           detail=f"{col} of the layer's {len(gl)} masks"))
    if rsa is not None:
        sc = rsa.scores
        for r in rsa.maxima.itertuples(index=False):
            if r.best_layer is None or pd.isna(r.max_normalised):
                rows.append(_row(r.model, "rsa_best_normalised", np.nan, area=r.area,
                                 detail="no score"))
                continue
            area = r.area if r.area != "all" else getattr(r, "best_area", "")
            at = sc[(sc["model"] == r.model) & (sc["area"] == area) & (sc["layer"] == r.best_layer)]
            at = at.iloc[0] if len(at) else None
            freq = getattr(r, "best_layer_frequency", np.nan)
            detail = (f"{at['normaliser']} ceiling {at['ceiling']:.3g} ({at['ceiling_source']})"
                      if at is not None else "")
            if r.area == "all":
                detail = f"best area {area}; " + detail
            if freq == freq:
                detail += f"; layer best in {freq:.0%} of bootstrap samples"
            if bool(r.above_ceiling):
                detail += "; above the noise ceiling"
            rows.append(_row(r.model, "rsa_best_normalised", float(r.max_normalised), area=r.area,
                             layer=r.best_layer, layer_index=r.best_layer_index,
                             ci_low=getattr(r, "max_ci_low", np.nan),
                             ci_high=getattr(r, "max_ci_high", np.nan), detail=detail))
            rows.append(_row(r.model, "rsa_best_raw", float(r.max_raw), area=r.area,
                             layer=r.best_layer, layer_index=r.best_layer_index,
                             ci_low=at["raw_ci_low"] if at is not None else np.nan,
                             ci_high=at["raw_ci_high"] if at is not None else np.nan,
                             detail=f"{rsa.config.comparator} at the best layer (by the normalised "
                                    "score)"))
            if "cv_normalised" in rsa.maxima and pd.notna(getattr(r, "cv_normalised", np.nan)):
                rows.append(_row(r.model, "rsa_cv_normalised", float(r.cv_normalised),
                                 area=r.area, layer=getattr(r, "cv_layer", "") or "",
                                 detail=str(getattr(r, "cv_kind", ""))))
        for r in sc.itertuples(index=False):
            for measure, value, lo, hi in (("rsa_layer_normalised", r.normalised, r.ci_low,
                                            r.ci_high),
                                           ("rsa_layer_raw", r.raw, r.raw_ci_low, r.raw_ci_high)):
                rows.append(_row(r.model, measure, value, area=r.area, layer=r.layer,
                                 layer_index=r.layer_index, ci_low=lo, ci_high=hi,
                                 n=r.n_groups))
    for r in accuracy.itertuples(index=False):
        detail = f"{r.dataset} {r.split} split"
        rows.append(_row(r.model, "accuracy_top1", r.acc, n=r.n, detail=detail + " (%)"))
        rows.append(_row(r.model, "accuracy_top5", r.top5, n=r.n, detail=detail + " (%)"))
        rows.append(_row(r.model, "eval_loss", r.loss, n=r.n, detail=detail + " (cross-entropy)"))
    out = pd.DataFrame(rows, columns=MEASURE_COLUMNS)
    out["layer_index"] = out["layer_index"].astype("Int64")
    out["n"] = out["n"].astype("Int64")
    return out


def _models_table(sources) -> pd.DataFrame:
    from neurolp.rf.functional import first_conv

    rows = []
    for s in sources:
        name, conv = first_conv(s.model)
        src = ("checkpoint " + s.checkpoint if s.checkpoint and not s.metadata.get("weights") else
               "weights " + s.metadata["weights"] if s.metadata.get("weights") else
               f"untrained (seed {s.metadata.get('seed', 0)})")
        rows.append({"model": s.display, "name": s.name, "source": src,
                     "image_size": s.image_size,
                     "parameters": int(sum(p.numel() for p in s.model.parameters())),
                     "first_conv": name, "first_kernel": f"{conv.kernel_size[0]}×{conv.kernel_size[1]}",
                     "lp_layers": sum(1 for m in s.model.modules() if type(m).__name__ == "LpConv2d")})
    return pd.DataFrame(rows)


def run_report(sources: Sequence, config: ReportConfig | None = None, *, rsa=None,
               device: str = "cpu", progress: bool = False) -> ReportResult:
    """Every measure for every model (see the module docstring).

    ``rsa`` is a callable ``rsa(sources) -> RSAResult`` (e.g. ``lambda s: run_rsa(s, cache, cfg)``)
    or ``None`` to leave RSA out; it is called once for all models.
    """
    import time

    config = config or ReportConfig()
    if not sources:
        raise ConfigError("no model to report on")
    labels = [s.display for s in sources]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"model labels must be unique, got {labels}")
    timings = {}
    t0 = time.perf_counter()
    models = _models_table(sources)
    fits, summary, notes = mpnd_of_models(sources, config, progress=progress)
    timings["MPND of first-conv functional RFs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    masks = mask_summary(sources)
    timings["Lp-mask tables"] = time.perf_counter() - t0
    res_rsa = None
    if rsa is not None:
        t0 = time.perf_counter()
        res_rsa = rsa(sources)
        timings["RSA"] = time.perf_counter() - t0
        notes += [f"RSA: {n}" for n in getattr(res_rsa, "notes", [])]
    acc = pd.DataFrame()
    if config.eval_dataset:
        t0 = time.perf_counter()
        acc = accuracy_of_models(sources, config, device=device, progress=progress)
        timings["accuracy"] = time.perf_counter() - t0
    measures = measures_table(models, summary, fits, masks, res_rsa, acc, config.p_max)
    return ReportResult(measures, fits, summary, masks, res_rsa, acc, models, notes, timings)
