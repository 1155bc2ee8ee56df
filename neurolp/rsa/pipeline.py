"""``neurolp rsa`` as a library call: presets, model loading, brain RSMs, scores, one result object.

Two presets (every option can still be overridden):

* ``default`` — the per-mouse pipeline: L0 events averaged over 15 frames after onset, one RSM per
  mouse and area (Pearson, per-unit centring), Kendall's τ_a on the strict lower triangle, score =
  mean over mice, normalised by the across-mice lower bound (leave-one-mouse-out), upper bound and
  trial split-half ceiling reported too, 1000 bootstrap samples over images and mice, stimuli with
  the checkpoint's training normalisation.
* ``lpconv`` — the official Lp-Conv pipeline (``jeakwon/lpconv:ssm.py`` over Bakhtiari et al.'s
  brain code): events **summed** over 15 frames, one pooled population per area (all mice and
  containers), 100 RSMs from random trial halves, Kendall's τ_b, score = median over the 100
  splits / median trial split-half ceiling (50 splits), in-sample max over layers, the anchor's
  stimuli (left crop, per-image z-score). Unlike the official script, the model is in eval mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from neurolp.errors import CheckpointError, ConfigError, InputError

__all__ = ["RSAConfig", "PRESETS", "ModelSource", "RSAResult", "load_model_source", "run_rsa",
           "model_rsms", "score_sources", "reliable_population", "merge_reliability"]


@dataclass(frozen=True)
class RSAConfig:
    preset: str = "default"
    population: str = "mouse"          # "mouse" | "pooled"
    comparator: str = "tau_a"
    normalise_by: str = "lower"        # "lower" | "upper" | "split-half"
    pool: str = "mean"
    aggregate: str = "mean"            # over mice / splits
    n_boot: int = 1000
    ci: float = 0.95
    layer_selection: str = "max"       # "max" | "cv"
    cv_splits: int = 10
    centre: bool = True
    min_neurons: int = 10
    n_splits: int = 100                # pooled: random-half RSMs
    n_trial_splits: int = 10           # split-half ceiling repetitions (per mouse, or pooled)
    signal: str = "events"
    window_start: int = 0
    window_frames: int = 15
    response_aggregate: str = "mean"
    baseline_frames: int = 0
    stimuli: str = "checkpoint"        # "checkpoint" | "anchor"
    crop: str = "left"
    batch_size: int | None = None
    max_features: int | None = None
    reduce: str = "pool"
    seed: int = 0
    threads: int | None = None
    mouse_draws: int = 4
    reliability: float | None = None   # keep neurons with split-half reliability (Spearman–Brown) >= this
    reliability_splits: int = 10

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_preset(cls, name: str = "default", **overrides) -> "RSAConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        values = dict(PRESETS[name])
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown RSA option(s) {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(preset=name, **values)

    def validate(self) -> "RSAConfig":
        from neurolp.utils.checks import check_choice, check_float, check_int

        try:
            for name, lo in (("n_boot", 0), ("cv_splits", 2), ("min_neurons", 1), ("n_splits", 0),
                             ("n_trial_splits", 0), ("window_start", 0), ("window_frames", 1),
                             ("baseline_frames", 0), ("seed", 0), ("mouse_draws", 1),
                             ("reliability_splits", 1)):
                check_int(getattr(self, name), name, min=lo)
            for name in ("batch_size", "max_features", "threads"):
                if getattr(self, name) is not None:
                    check_int(getattr(self, name), name, min=1)
            check_float(self.ci, "ci", min=0, max=1, min_open=True, max_open=True)
            if self.reliability is not None:
                check_float(self.reliability, "reliability", min=-1, max=1)
            for name, choices in (("population", ("mouse", "pooled")),
                                  ("comparator", ("tau_a", "tau_b", "spearman", "pearson")),
                                  ("normalise_by", ("lower", "upper", "split-half", "none")),
                                  ("crop", ("left", "center", "pad", "stretch")),
                                  ("pool", ("mean", "rank")), ("aggregate", ("mean", "median")),
                                  ("layer_selection", ("max", "cv")), ("signal", ("events", "dff")),
                                  ("response_aggregate", ("mean", "sum")),
                                  ("stimuli", ("checkpoint", "anchor")), ("reduce", ("pool", "project"))):
                check_choice(getattr(self, name), name, choices)
        except InputError as exc:
            raise ConfigError(f"invalid RSA option: {exc}") from None
        if self.population == "pooled" and self.normalise_by not in ("split-half", "none"):
            raise ConfigError("the pooled population has no mice, so no across-mice ceiling: use "
                              "--normalise-by split-half (the lpconv preset does)")
        if self.population == "pooled" and self.n_boot:
            raise ConfigError("bootstrap over images and mice needs per-mouse RSMs (--population "
                              "mouse); the pooled (lpconv) pipeline reports the spread over its "
                              "trial split-half RSMs instead: use --bootstrap 0")
        if self.population == "pooled" and self.layer_selection == "cv":
            raise ConfigError("--layer-selection cv is implemented for the per-mouse pipeline")
        if self.population == "pooled" and self.normalise_by == "none":
            raise ConfigError("the pooled population is normalised by its split-half ceiling: use "
                              "--normalise-by split-half")
        if self.normalise_by == "split-half" and self.n_trial_splits < 1:
            raise ConfigError("normalising by the split-half ceiling needs --trial-splits >= 1")
        if self.population == "pooled" and self.n_splits < 1:
            raise ConfigError(f"the pooled population is scored on random-half RSMs: --splits must be "
                              f">= 1, got {self.n_splits} (the lpconv preset uses 100)")
        return self


PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(population="mouse", comparator="tau_a", normalise_by="lower", pool="mean",
                    aggregate="mean", n_boot=1000, layer_selection="max", centre=True,
                    n_splits=0, n_trial_splits=10, signal="events", window_start=0,
                    window_frames=15, response_aggregate="mean", baseline_frames=0,
                    stimuli="checkpoint"),
    "lpconv": dict(population="pooled", comparator="tau_b", normalise_by="split-half",
                   aggregate="median", n_boot=0, layer_selection="max", centre=True, n_splits=100,
                   n_trial_splits=50, signal="events", window_start=0, window_frames=15,
                   response_aggregate="sum", baseline_frames=0, stimuli="anchor"),
}


@dataclass
class ModelSource:
    """A model to score: its registry name, the module, and what is known about its training."""

    name: str
    model: Any
    image_size: int
    normalization: dict | None = None
    checkpoint: str | None = None
    metadata: dict = field(default_factory=dict)
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


def load_model_source(name: str, *, checkpoint: str | Path | None = None, store=None,
                      dataset: str | None = None, image_size: int | None = None,
                      untrained: bool = False, num_classes: int = 200, seed: int = 0,
                      device: str = "cpu") -> ModelSource:
    """Resolve ``--model`` (and ``--checkpoint``) to a loaded model.

    With ``checkpoint`` the file is loaded and must hold ``name``; otherwise the newest checkpoint
    of ``name`` in the store is used (``neurolp.train.store.find_checkpoint``). ``untrained``
    builds a randomly initialised model instead (``image_size`` then required). A checkpoint made
    for another input size than ``image_size`` is refused.
    """
    from neurolp.models import create_model, parse_model_name
    from neurolp.train.checkpoint import DEFAULT_NORMALIZATION, load_model
    from neurolp.train.store import find_checkpoint

    canon = str(parse_model_name(name))
    if untrained:
        if checkpoint is not None:
            raise ConfigError("--untrained and --checkpoint exclude each other")
        import torch

        if image_size is None or int(image_size) < 8:
            raise ConfigError(f"an untrained model needs an input size >= 8 (--image-size), got "
                              f"{image_size!r}")
        torch.manual_seed(seed)
        size = int(image_size)
        model = create_model(canon, num_classes=num_classes, image_size=size).eval()
        from neurolp.models import check_input_size

        check_input_size(model, size, canon)
        model = model.to(device)   # as a loaded checkpoint: activations run where the model is
        # normalised as a training run would have been
        return ModelSource(canon, model, size, dict(DEFAULT_NORMALIZATION), None,
                           {"untrained": True, "seed": seed}, f"{canon} (untrained)")
    if checkpoint is None:
        path = find_checkpoint(canon, store=store, dataset=dataset, image_size=image_size)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
    model, meta = load_model(path, device=device, expect_model=canon)
    size = int(meta["image_size"])
    if image_size is not None and int(image_size) != size:
        raise CheckpointError(
            f"checkpoint {path} was made for {size}×{size} inputs ({meta.get('dataset')}), not "
            f"{image_size}×{image_size}: the stimuli are resized to the checkpoint's input size, so "
            f"drop --image-size or pass a checkpoint trained at {image_size} px")
    return ModelSource(canon, model, size, meta.get("normalization"), str(path), meta)


@dataclass
class RSAResult:
    scores: pd.DataFrame         # model × layer × area
    samples: pd.DataFrame        # model × layer × area × mouse/split
    maxima: pd.DataFrame         # model × area (+ "all")
    brain_report: pd.DataFrame   # one row per mouse (or pooled population) and area
    layer_info: pd.DataFrame     # model × layer: units, dead units, reduction
    config: RSAConfig
    selection: dict
    stimuli: dict                # model → stimulus preprocessing description
    excluded: pd.DataFrame       # experiments, mice, layers left out and why
    brain_summary: pd.DataFrame | None = None
    brain_rsms: dict | None = None
    model_rsms: dict | None = None
    response_params: dict | None = None
    from_cache: bool = False
    timings: dict = field(default_factory=dict)   # seconds per stage
    reliability: pd.DataFrame | None = None       # per neuron, when selected by reliability
    notes: list = field(default_factory=list)     # data-dependent choices, printed in the summary
    brain_source: str = "allen"                   # "allen" | "neural"

    def summary_lines(self) -> list[str]:
        cfg = self.config
        norm = ("not normalised (no noise ceiling)" if cfg.normalise_by == "none" else
                f"normalised by the {cfg.normalise_by} ceiling")
        lines = [f"preset: {cfg.preset} (population={cfg.population}, comparator={cfg.comparator}, "
                 f"{norm}, aggregate={cfg.aggregate}, bootstrap={cfg.n_boot})"]
        lines += [f"note: {n}" for n in self.notes]
        for model, df in self.maxima.groupby("model", sort=False):
            allrow = df[df["area"] == "all"]
            if len(allrow):
                r = allrow.iloc[0]
                ci = ""
                if "max_ci_low" in r and pd.notna(r.get("max_ci_low")):
                    ci = f" [{r['max_ci_low']:.3f}, {r['max_ci_high']:.3f}]"
                flag = "  (> 1: above the ceiling)" if r["above_ceiling"] else ""
                cv = ""
                if "cv_normalised" in r and pd.notna(r.get("cv_normalised")):
                    cv = f"; cross-validated {r['cv_normalised']:.3f}"
                lines.append(f"{model}: max normalised score {r['max_normalised']:.3f}{ci} at "
                             f"{r['best_layer']} / {r['best_area']}{flag}{cv}")
            for _, r in df[df["area"] != "all"].iterrows():
                if r["best_layer"] is None or pd.isna(r["max_normalised"]):
                    lines.append(f"  {r['area']}: no score")
                    continue
                lines.append(f"  {r['area']}: {r['max_normalised']:.3f} at {r['best_layer']}"
                             f"{' (> 1)' if r['above_ceiling'] else ''}")
        undefined = int(self.scores["normalised"].isna().sum())
        if undefined:
            lines.append(f"WARNING: {undefined} of {len(self.scores)} layer × area scores are undefined "
                         f"({_undefined_reasons(self.scores, self.excluded)}); see the note column of "
                         "rsa_scores.csv")
        n_above = int(self.scores["above_ceiling"].sum())
        if n_above:
            lines.append(f"{n_above} layer × area score(s) exceed the noise ceiling (flagged in "
                         "above_ceiling; not clipped)")
        if len(self.excluded):
            kinds = self.excluded["kind"].value_counts().to_dict()
            lines.append("excluded (see excluded.csv): " + ", ".join(
                f"{v} {k}(s)" for k, v in sorted(kinds.items())))
            for _, r in self.excluded[self.excluded["kind"] == "area"].iterrows():
                lines.append(f"  area {r['item']}: {r['reason']}")
        return lines


def _undefined_reasons(scores: pd.DataFrame, excluded: pd.DataFrame) -> str:
    """Why scores are NaN, from the per-row notes and the exclusions (one short clause)."""
    bad = scores[scores["normalised"].isna()]
    notes = [n for n in pd.unique(bad.get("note", pd.Series(dtype=str))) if isinstance(n, str) and n]
    parts = [f"{', '.join(sorted(set(bad.loc[bad['note'] == n, 'area'])))}: {n}" for n in notes]
    if not parts and "raw" in bad and bad["raw"].isna().all():
        parts.append("the model and brain RSMs share no defined pair of images")
    if not parts and len(excluded):
        parts.append(f"{len(excluded)} item(s) excluded (see excluded.csv)")
    return "; ".join(parts) or "ceilings are zero or undefined"


def model_rsms(source: ModelSource, templates, cfg: RSAConfig, layers=None,
               device: str = "cpu", progress: bool = False, *, scale: float | None = None):
    """Layer RSMs of one model on the stimuli (the Allen templates, or a list of images of any
    size: see :func:`~neurolp.brain.stimuli.preprocess_stimuli`), with the stimulus spec used."""
    from neurolp.brain.stimuli import preprocess_stimuli, stimulus_spec
    from neurolp.rsa.activations import layer_rsms

    spec = stimulus_spec(cfg.stimuli, source.image_size, source.normalization, crop=cfg.crop)
    inputs = preprocess_stimuli(templates, spec, scale=scale)
    lr = layer_rsms(source.model, inputs, layers, centre=cfg.centre, batch_size=cfg.batch_size,
                    max_features=cfg.max_features, reduce=cfg.reduce, seed=cfg.seed, device=device,
                    progress=progress)
    return lr, spec


def run_rsa(sources: Sequence[ModelSource], allen_cache, config: RSAConfig | None = None, *,
            selection=None, layers=None, areas=None, allow_partial: bool = False,
            device: str = "cpu", keep_rsms: bool = False, progress: bool = False) -> RSAResult:
    """Score every model against the Allen natural-scene responses (see the module docstring)."""
    from neurolp.brain.responses import ResponseParams, load_responses
    from neurolp.brain.selection import Selection
    from neurolp.brain.stimuli import natural_scene_templates
    from neurolp.rsa.brain_rsms import brain_rsms

    timings: dict[str, float] = {}
    t0 = _clock()
    cfg = (config or RSAConfig.from_preset("default")).validate()
    if not sources:
        raise ConfigError("no model to score")
    selection = selection or Selection()
    if areas:
        selection = replace(selection, areas=tuple(areas))
    params = ResponseParams(cfg.signal, cfg.window_start, cfg.window_frames, cfg.response_aggregate,
                            cfg.baseline_frames)
    brain = load_responses(allen_cache, selection, params, allow_partial=allow_partial,
                           progress=progress)
    timings["brain responses"] = _clock() - t0
    t0 = _clock()
    templates = natural_scene_templates(allen_cache)
    timings["stimulus templates"] = _clock() - t0
    t0 = _clock()
    if templates.shape[0] != brain.n_images:
        raise ConfigError(f"{templates.shape[0]} stimulus templates but responses to "
                          f"{brain.n_images} images")
    brain, neurons, rel = reliable_population(brain, cfg, progress)
    rsms, report = brain_rsms(brain, population=cfg.population, centre=cfg.centre,
                              min_neurons=cfg.min_neurons, n_splits=cfg.n_splits,
                              n_trial_splits=cfg.n_trial_splits, seed=cfg.seed)
    report = merge_reliability(report, rel)
    timings["brain RSMs"] = _clock() - t0
    excluded = [brain.excluded.assign(kind="experiment")[["kind", "experiment_id", "reason"]]
                .rename(columns={"experiment_id": "item"})] if len(brain.excluded) else []
    absent = [a for a in selection.areas if a not in set(brain.experiments["area"])]
    if absent:
        excluded.append(pd.DataFrame({"kind": "area", "item": absent,
                                      "reason": "no natural-scene experiment of the selection in "
                                                "the cache"}))
    res = score_sources(sources, templates, rsms, report, cfg, excluded, n_images=brain.n_images,
                        layers=layers, device=device, keep_rsms=keep_rsms, progress=progress,
                        timings=timings)
    res.selection = selection.to_dict()
    res.brain_summary = brain.summary()
    res.response_params = params.to_dict()
    res.from_cache = brain.from_cache
    res.reliability = neurons
    return res


def _clock() -> float:
    import time

    return time.perf_counter()


def reliable_population(brain, cfg: RSAConfig, progress: bool = False):
    """``(brain, per-neuron table, per-population table)``: the reliable neurons only when
    ``cfg.reliability`` is set (see :mod:`neurolp.rsa.reliability`), else ``brain`` unchanged."""
    if cfg.reliability is None:
        return brain, None, None
    from neurolp.rsa.reliability import select_reliable

    return select_reliable(brain, cfg.reliability, n_splits=cfg.reliability_splits, seed=cfg.seed,
                           progress=progress)


def merge_reliability(report: pd.DataFrame, rel: pd.DataFrame | None) -> pd.DataFrame:
    """Add the neurons recorded before the reliability selection and their median reliability
    to the brain report (per mouse/subject, or per area for a pooled population)."""
    if rel is None or report.empty:
        return report
    report = report.copy()
    before, med = [], []
    for r in report.itertuples(index=False):
        sel = rel[(rel["area"] == r.area) & ((rel["mouse"] == str(r.mouse)) if r.mouse else True)]
        before.append(int(sel["neurons"].sum()))
        med.append(float(sel["reliability_median"].median()) if len(sel) else np.nan)
    report["neurons_recorded"] = before
    report["reliability_median"] = med
    report["reliability_threshold"] = float(rel["threshold"].iloc[0]) if len(rel) else np.nan
    return report


def score_sources(sources: Sequence[ModelSource], templates, rsms: dict, report: pd.DataFrame,
                  cfg: RSAConfig, excluded: list, *, n_images: int, layers=None,
                  device: str = "cpu", keep_rsms: bool = False, progress: bool = False,
                  timings: dict | None = None, scale: float | None = None,
                  stimuli_note: str = "", undefined_hint: str | None = None) -> RSAResult:
    """Layer RSMs of every model on ``templates`` scored against the brain RSMs ``rsms`` (the part
    of the pipeline shared by the Allen data and ``--neural`` files)."""
    from neurolp.rsa.scores import ScoreConfig, score_layers

    timings = {} if timings is None else timings
    excluded = list(excluded)
    bad = report[~report["included"]] if "included" in report else report.iloc[0:0]
    if len(bad):
        excluded.append(pd.DataFrame({"kind": "mouse", "item": bad["area"] + "/" + bad["mouse"],
                                      "reason": bad["reason"]}))
    scfg = ScoreConfig(cfg.comparator, cfg.normalise_by, cfg.pool, cfg.aggregate, cfg.n_boot,
                       cfg.ci, cfg.layer_selection, cfg.cv_splits, cfg.seed, cfg.threads,
                       cfg.mouse_draws)
    all_scores, all_samples, all_max, all_info, stim = [], [], [], [], {}
    model_rsm_store = {}
    shared: dict = {}   # brain-only bootstrap work, done for the first model and reused
    for src in sources:
        t0 = _clock()
        lr, spec = model_rsms(src, templates, cfg, layers, device=device, progress=progress,
                              scale=scale)
        timings[f"{src.display}: layer RSMs"] = _clock() - t0
        t0 = _clock()
        vectors = lr.vectors()
        tables = score_layers(lr.names, vectors, rsms, scfg, n_images=n_images,
                              progress=progress, cache=shared)
        timings[f"{src.display}: scores"
                f"{f' + {cfg.n_boot} bootstrap samples' if cfg.n_boot else ''}"] = _clock() - t0
        ident = {"model": src.display, "checkpoint": src.checkpoint or "", "preset": cfg.preset,
                 "comparator": cfg.comparator, "stimuli": cfg.stimuli}
        info = lr.info.copy()
        for df in (tables.scores, tables.samples, tables.maxima, info):
            for k, v in reversed(list(ident.items())):
                df.insert(0, k, v)
        # dead units are reported per layer in the scores table as well
        dead = dict(zip(info["layer"], info["n_dead"]))
        units = dict(zip(info["layer"], info["n_units"]))
        tables.scores["n_units"] = tables.scores["layer"].map(units)
        tables.scores["n_dead_units"] = tables.scores["layer"].map(dead)
        und = info[info["n_undefined_images"] > 0]
        for _, r in und.iterrows():
            excluded.append(pd.DataFrame([{"kind": "layer images", "item": f"{src.display}/{r['layer']}",
                                           "reason": f"{r['n_undefined_images']} image(s) with a "
                                                     "constant activation vector: undefined RSM row, "
                                                     "its pairs left out"}]))
        all_scores.append(tables.scores)
        all_samples.append(tables.samples)
        all_max.append(tables.maxima)
        all_info.append(info)
        stim[src.display] = spec.describe() + (f"; {stimuli_note}" if stimuli_note else "")
        if keep_rsms:
            model_rsm_store[src.display] = lr
    exc = pd.concat(excluded, ignore_index=True) if excluded else pd.DataFrame(
        columns=["kind", "item", "reason"])
    scores = pd.concat(all_scores, ignore_index=True)
    if not scores["normalised"].notna().any():
        raise InputError("every layer × area score is undefined, so there is nothing to report: "
                         + _undefined_reasons(scores, exc) + "; "
                         + (undefined_hint or "widen the selection (--areas/--depths/--cre-lines), "
                                              "lower --min-neurons, or use --normalise-by "
                                              "split-half"))
    return RSAResult(scores,
                     pd.concat(all_samples, ignore_index=True),
                     pd.concat(all_max, ignore_index=True), report,
                     pd.concat(all_info, ignore_index=True), cfg, {}, stim, exc,
                     None, rsms if keep_rsms else None,
                     model_rsm_store if keep_rsms else None, None, False, timings)
