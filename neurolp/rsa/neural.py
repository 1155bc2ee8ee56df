"""RSA against any neural data set (``neurolp rsa --neural FILE --images DIR|NPY``).

The file (:func:`neurolp.brain.neural.load_neural`) holds either similarity matrices per site
(several per site = subjects or sessions) with optional per-site noise ceilings, or responses
``[images, trials, neurons]`` per site and subject. Either way they become the same per-area
:class:`~neurolp.rsa.brain_rsms.AreaRSMs` the Allen pipeline scores, so the comparators, the
ceilings, the bootstrap over stimuli and subjects, the layer choice and every output table work
unchanged; ``area`` holds the site name and ``mouse`` the subject.

* **Matrices**: each site's RSMs as given (dissimilarities converted, see
  :mod:`neurolp.brain.neural`); ceilings given in the file are used and reported as given
  (``ceiling_source`` = "file"), else computed across the site's subjects (Nili lower and upper
  bounds) when it has several.
* **Responses**: neurolp builds the RSMs (Pearson across neurons, units centred by default) and its
  own ceilings — across subjects, and the trial split-half ceiling — exactly as for the Allen
  data, after an optional neuron selection by split-half reliability (Spearman–Brown).

The normaliser, unless given, follows the data (:func:`default_normaliser`): the lower bound when
every site has one (given, or ≥ 2 subjects), else the trial split-half ceiling for responses with
repeated trials, else none (scores reported raw).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import pandas as pd

from neurolp.brain.neural import NeuralData
from neurolp.errors import ConfigError, InputError
from neurolp.rsa.brain_rsms import AreaRSMs
from neurolp.rsa.pipeline import (ModelSource, RSAConfig, RSAResult, merge_reliability,
                                  reliable_population, score_sources)
from neurolp.rsa.rsm import rsm_vector

__all__ = ["default_normaliser", "check_neural_config", "neural_rsms", "run_rsa_neural",
           "with_neural_defaults"]


def _has_lower(data: NeuralData, site: str) -> bool:
    given = data.ceilings.get(site)
    if given is not None and np.isfinite(given[0]):
        return True
    n = len(data.subjects.get(site) or data.responses.get(site, {}))
    return n >= 2


def _min_trials(data: NeuralData) -> int:
    if data.kind != "responses":
        return 0
    return int(min((~np.isnan(a[:, :, 0])).sum(axis=1).min()
                   for subj in data.responses.values() for a in subj.values()))


def default_normaliser(data: NeuralData) -> tuple[str, str]:
    """``(normalise_by, why)`` for a neural data set (see the module docstring)."""
    if all(_has_lower(data, s) for s in data.sites):
        given = [s for s in data.sites if s in data.ceilings]
        why = ("the ceilings given in the file" if len(given) == len(data.sites) else
               "the across-subject lower noise ceiling (leave-one-subject-out)"
               + (f"; the file's own ceilings for {', '.join(given)}" if given else ""))
        return "lower", why
    if data.kind == "responses" and _min_trials(data) >= 2:
        return "split-half", ("the trial split-half ceiling (a site has one subject and no ceiling "
                              "in the file)")
    return "none", ("no noise ceiling: a site has one subject, no ceiling in the file and no "
                    "repeated trials, so scores are reported raw")


def check_neural_config(data: NeuralData, cfg: RSAConfig) -> list[str]:
    """Refuse option combinations the data cannot support (before any work); returns notes."""
    from neurolp.rsa.compare import _check_method

    notes: list[str] = []
    if data.ceilings:
        if cfg.population == "pooled":
            raise ConfigError(f"{data.path} gives noise ceilings per site, which apply to per-"
                              "subject scores: drop --population pooled (or remove the ceilings)")
        if data.ceiling_comparator is not None:
            given = _check_method(data.ceiling_comparator)
            if given != cfg.comparator and cfg.normalise_by in ("lower", "upper"):
                raise ConfigError(
                    f"the ceilings in {data.path} were computed with {given} but the scores use "
                    f"{cfg.comparator}; pass --comparator {given} (a ceiling only bounds scores "
                    "of its own comparator)")
        else:
            notes.append(f"{data.path.name} does not say which comparator its ceilings were "
                         f"computed with (key 'ceiling_comparator'); they are used as given with "
                         f"{cfg.comparator}")
    if data.kind == "rsm":
        if cfg.population == "pooled":
            raise ConfigError(f"{data.path} holds similarity matrices; the pooled population (and "
                              "the lpconv preset) needs responses [images, trials, neurons]: use "
                              "--population mouse")
        if cfg.reliability is not None:
            raise ConfigError(f"--reliability selects neurons from responses, but {data.path} "
                              "holds similarity matrices")
        if cfg.normalise_by == "split-half":
            raise ConfigError(f"the trial split-half ceiling needs responses with trials; "
                              f"{data.path} holds similarity matrices: use --normalise-by lower, "
                              "upper or none (or give ceiling/<site> in the file)")
    elif _min_trials(data) < 2 and (cfg.normalise_by == "split-half" or cfg.population == "pooled"):
        raise InputError(f"{data.path}: some stimulus has a single trial, so there is no "
                         "trial split-half (ceiling or pooled split RSMs); give repeated "
                         "trials, several subjects per site (--normalise-by lower), or "
                         "--normalise-by none")
    return notes


def neural_rsms(data: NeuralData, cfg: RSAConfig, *, progress: bool = False):
    """``(rsms {site: AreaRSMs}, report, per-neuron reliability or None, notes)`` of a neural data
    set under ``cfg`` (population, centring, minimum neurons, split-halves, reliability)."""
    from neurolp.rsa.brain_rsms import brain_rsms

    notes = check_neural_config(data, cfg)
    if data.kind == "rsm":
        rsms, rows = {}, []
        for s in data.sites:
            vec = rsm_vector(data.rsms[s])
            rsms[s] = AreaRSMs(s, "mouse", vec, list(data.subjects[s]), [], None, None,
                               ceiling=data.ceilings.get(s))
            for k, subj in enumerate(data.subjects[s]):
                rows.append({"area": s, "population": f"subject {subj}", "mouse": subj,
                             "neurons": np.nan, "undefined_pairs": int(np.isnan(vec[k]).sum()),
                             "included": True, "reason": ""})
        report = pd.DataFrame(rows)
        for s, obj in rsms.items():
            obj.report = report[report["area"] == s].reset_index(drop=True)
        return rsms, report, None, notes
    brain = data.to_brain_responses()
    brain, neurons, rel = reliable_population(brain, cfg, progress)
    n_trial_splits = cfg.n_trial_splits
    if _min_trials(data) < 2:
        if n_trial_splits:
            notes.append("trial split-half ceiling not computed: some stimulus has a single trial")
        n_trial_splits = 0
    rsms, report = brain_rsms(brain, population=cfg.population, centre=cfg.centre,
                              min_neurons=cfg.min_neurons, n_splits=cfg.n_splits,
                              n_trial_splits=n_trial_splits, seed=cfg.seed)
    for s, obj in rsms.items():
        obj.ceiling = data.ceilings.get(s)
    report = merge_reliability(report, rel)
    if rel is not None:
        low = report[~report["included"]] if "included" in report else report.iloc[0:0]
        for r in low.itertuples(index=False):
            notes.append(f"{r.area} / {r.mouse}: {r.neurons_used} reliable neurons < "
                         f"--min-neurons {cfg.min_neurons}: left out")
    return rsms, report, neurons, notes


def run_rsa_neural(sources: Sequence[ModelSource], data: NeuralData, images,
                   config: RSAConfig | None = None, *, layers=None, device: str = "cpu",
                   keep_rsms: bool = False, progress: bool = False,
                   notes: Sequence[str] = ()) -> RSAResult:
    """Score every model against a neural data set (see the module docstring).

    ``images`` is a :class:`~neurolp.brain.stimuli.StimulusImages` in the data's stimulus order
    (:func:`~neurolp.brain.stimuli.load_stimulus_images`). Without ``config`` the default preset
    is used with the normaliser chosen by :func:`default_normaliser`.
    """
    from neurolp.rsa.pipeline import _clock

    timings: dict[str, float] = {}
    notes = list(notes)
    if config is None:
        norm, why = default_normaliser(data)
        config = RSAConfig.from_preset("default", normalise_by=norm, crop="center")
        notes.append(f"normalised by {norm}: {why}")
    cfg = config.validate()
    if not sources:
        raise ConfigError("no model to score")
    if len(images) != data.n_stimuli:
        raise InputError(f"{len(images)} stimulus images for {data.n_stimuli} stimuli in "
                         f"{data.path}")
    t0 = _clock()
    rsms, report, neurons, more = neural_rsms(data, cfg, progress=progress)
    notes += more
    timings["brain RSMs"] = _clock() - t0
    res = score_sources(sources, images.arrays, rsms, report, cfg, [], n_images=data.n_stimuli,
                        layers=layers, device=device, keep_rsms=keep_rsms, progress=progress,
                        timings=timings, scale=images.scale, stimuli_note=images.describe(),
                        undefined_hint="add ceiling/<site> entries to the neural file, give several "
                                       "subjects per site, lower --min-neurons or --reliability, "
                                       "or pass --normalise-by none for raw scores")
    res.selection = {"neural": str(data.path), "format": data.format, "kind": data.kind,
                     "sites": list(data.sites), "stimuli": data.n_stimuli,
                     "stimulus_order": data.order_source or "row order",
                     "conversion": data.conversion if data.kind == "rsm" else "",
                     "ceilings_given": {s: list(v) for s, v in data.ceilings.items()},
                     "notes": list(data.notes)}
    res.brain_summary = data.summary()
    res.reliability = neurons
    res.notes = notes + list(data.notes)
    res.brain_source = "neural"
    return res


def with_neural_defaults(cfg: RSAConfig, data: NeuralData, *, normalise_given: bool,
                         crop_given: bool) -> tuple[RSAConfig, list[str]]:
    """``cfg`` with the data-dependent defaults the user did not set (normaliser, crop)."""
    notes = []
    changes = {}
    if not normalise_given and cfg.population == "mouse":   # pooled: always its split-half
        norm, why = default_normaliser(data)
        changes["normalise_by"] = norm
        notes.append(f"normalised by {norm}: {why}")
    if not crop_given:
        changes["crop"] = "center"
    return replace(cfg, **changes), notes
