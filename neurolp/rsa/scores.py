"""Model-vs-brain scores per layer × area, noise-normalised, with bootstrap CIs and layer choice.

Per-mouse pipeline (default): for layer ℓ and area a,

    raw(ℓ, a)        = mean over mice m of sim(RSM_ℓ, RSM_{a,m})
    normalised(ℓ, a) = raw(ℓ, a) / ceiling(a)        (ceiling = the across-mice lower bound by
                                                      default; "upper" and "split-half" on request,
                                                      "none": normalised = raw)

An "area" can be any recording site and a "mouse" any subject (``neurolp rsa --neural``); ceilings
that come with the data (``AreaRSMs.ceiling``) replace the computed across-mice bounds, are
reported as given (``ceiling_source`` = "file") and are held fixed in the bootstrap.

A normalised score above 1 is **flagged** (``above_ceiling``), never clipped; nothing is squared.

Bootstrap (``n_boot`` samples, joint over images and mice, rsatoolbox's "dual" resampling): each
sample draws the 118 images with replacement (an RSM entry (i, j) then counts c_i·c_j times,
self-pairs dropped) and, per area, the mice with replacement; raw scores, ceilings, normalised
scores and the max over layers are recomputed exactly on the sample. The ranks of every RSM are
computed once and reused; a sample only re-weights entries.

The max table gives, per area and over all areas ("all", the paper's Fig. 6b statistic), the best
layer and its score with the bootstrap CI *of that layer's score*, and ``best_layer_frequency``,
the share of bootstrap samples in which that layer (and area) is again the best: the max of noisy
scores is biased upwards, so its own bootstrap distribution is not used as a CI.

Layer choice: ``max`` takes the best layer in-sample (the paper's "Max SSM"); ``cv`` also chooses
the layer on one random half of the images and scores it on the other half (and vice versa),
repeated ``cv_splits`` times — an estimate free of the selection bias of the in-sample max.

Anchor pipeline (``population="pooled"``): the similarity to each of the 100 split-half RSMs of the
pooled population, aggregated by the median, divided by the median trial split-half ceiling; the
spread over splits replaces the bootstrap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from neurolp.errors import ConfigError
from neurolp.rsa.brain_rsms import AreaRSMs
from neurolp.rsa.ceilings import POOLS, mice_ceiling, pool_vectors, split_half_ceiling
from neurolp.rsa.compare import (_check_method, compare_matrix, compare_pairs, prepare,
                                 subset_prepared)
from neurolp.rsa.rsm import tril_index

__all__ = ["ScoreConfig", "ScoreTables", "score_layers", "NORMALISERS", "LAYER_SELECTIONS"]

NORMALISERS = ("lower", "upper", "split-half", "none")
LAYER_SELECTIONS = ("max", "cv")


@dataclass(frozen=True)
class ScoreConfig:
    comparator: str = "tau_a"
    normalise_by: str = "lower"          # "lower" | "upper" | "split-half" | "none" (= raw)
    pool: str = "mean"                   # pooled RSM for the across-mice ceiling
    aggregate: str = "mean"              # over mice (mouse) or splits (pooled): "mean" | "median"
    n_boot: int = 1000
    ci: float = 0.95
    layer_selection: str = "max"         # "max" | "cv"
    cv_splits: int = 10
    seed: int = 0
    threads: int | None = None
    mouse_draws: int = 4                 # mouse resamples per image resample in the bootstrap

    def __post_init__(self):
        object.__setattr__(self, "comparator", _check_method(self.comparator))
        if self.normalise_by not in NORMALISERS:
            raise ConfigError(f"normalise_by must be one of {NORMALISERS}, got {self.normalise_by!r}")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.aggregate not in ("mean", "median"):
            raise ConfigError(f"aggregate must be 'mean' or 'median', got {self.aggregate!r}")
        if self.layer_selection not in LAYER_SELECTIONS:
            raise ConfigError(f"layer_selection must be one of {LAYER_SELECTIONS}")
        if not 0 < self.ci < 1:
            raise ConfigError(f"ci must be in (0, 1), got {self.ci}")
        if self.n_boot < 0 or self.cv_splits < 1 or self.mouse_draws < 1:
            raise ConfigError("n_boot must be >= 0, cv_splits and mouse_draws >= 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ScoreTables:
    scores: pd.DataFrame     # one row per layer × area
    samples: pd.DataFrame    # one row per layer × area × mouse (or split)
    maxima: pd.DataFrame     # one row per area, plus area="all" (max over areas and layers)
    boot: dict | None = None  # raw bootstrap arrays (for users who want them)


def _agg(x: np.ndarray, how: str, axis=-1):
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(x, axis=axis) if how == "median" else np.nanmean(x, axis=axis)


def _pct(a: np.ndarray, ci: float, axis=0):
    lo, hi = (1 - ci) / 2 * 100, (1 + ci) / 2 * 100
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(a, lo, axis=axis), np.nanpercentile(a, hi, axis=axis)


def score_layers(layer_names: list[str], layer_vectors: np.ndarray, brain: dict[str, AreaRSMs],
                 config: ScoreConfig | None = None, *, n_images: int | None = None,
                 progress: bool = False, cache: dict | None = None) -> ScoreTables:
    """Scores of every layer against every area (see the module docstring).

    ``cache``: a dict shared by the calls for several models against the same ``brain`` and
    config. The bootstrap's noise ceilings depend on the brain alone (the resampling sequence is the
    same for every model), so they are computed for the first model and reused, bit for bit.
    """
    cfg = config or ScoreConfig()
    X = np.atleast_2d(np.asarray(layer_vectors, dtype=np.float64))
    if len(layer_names) != len(X):
        raise ConfigError(f"{len(layer_names)} layer names for {len(X)} layer RSMs")
    n = X.shape[1]
    if n_images is None:
        n_images = int(round((1 + np.sqrt(1 + 8 * n)) / 2))
    kinds = {a.kind for a in brain.values()}
    if len(kinds) != 1:
        raise ConfigError(f"mixed brain populations {kinds}")
    kind = kinds.pop()
    px = prepare(X)
    if kind == "mouse":
        return _score_mice(layer_names, px, brain, cfg, n_images, progress, cache)
    return _score_pooled(layer_names, px, brain, cfg, n_images)


# ------------------------------------------------------------------------------------------------
# per-mouse pipeline
# ------------------------------------------------------------------------------------------------

def _ceilings(area: AreaRSMs, py, cfg: ScoreConfig, *, weights=None, mult=None) -> dict:
    if area.ceiling is not None:  # given with the data: used as given, never recomputed
        nan = np.full(len(area.labels), np.nan)
        return {"lower": float(area.ceiling[0]), "upper": float(area.ceiling[1]),
                "lower_per_mouse": nan, "upper_per_mouse": nan, "source": "file"}
    c = mice_ceiling(area.vectors, cfg.comparator, cfg.pool, weights=weights, mult=mult,
                     prepared=py, threads=cfg.threads)
    c["source"] = "computed"
    return c


def _split_half_per_mouse(area: AreaRSMs, cfg: ScoreConfig) -> np.ndarray:
    if area.half_pairs is None:
        return np.full(len(area.labels), np.nan)
    vals = split_half_ceiling(area.half_pairs, cfg.comparator, threads=cfg.threads)  # [M, K]
    return _agg(vals, "mean", axis=1)


def _score_mice(names, px, brain, cfg: ScoreConfig, n_images, progress,
                cache: dict | None = None) -> ScoreTables:
    L = len(names)
    areas = [a for a in brain if len(brain[a].labels) > 0]
    empty = [a for a in brain if len(brain[a].labels) == 0]
    prepared = {a: prepare(brain[a].vectors) for a in areas}
    rows, samples = [], []
    norm = {}
    raw_tab = {}
    for a in areas:
        area = brain[a]
        py = prepared[a]
        T = compare_matrix(px, py, cfg.comparator, threads=cfg.threads)      # [L, M]
        raw = _agg(T, cfg.aggregate, axis=1)
        c = _ceilings(area, py, cfg)
        sh_m = _split_half_per_mouse(area, cfg)
        sh = float(_agg(sh_m, "mean")) if np.any(~np.isnan(sh_m)) else np.nan
        denom = {"lower": c["lower"], "upper": c["upper"], "split-half": sh,
                 "none": 1.0}[cfg.normalise_by]
        source = {"lower": c["source"], "upper": c["source"], "split-half": "computed",
                  "none": "none"}[cfg.normalise_by]
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = raw / denom if denom and not np.isnan(denom) else np.full(L, np.nan)
        norm[a], raw_tab[a] = normalised, raw
        note = ""
        if cfg.normalise_by == "none":
            note = "no noise ceiling: normalised = raw"
        elif len(area.labels) < 2 and area.ceiling is None and cfg.normalise_by != "split-half":
            note = "one mouse only: no across-mice ceiling (use --normalise-by split-half)"
        elif not np.isnan(denom) and denom <= 0:
            note = f"ceiling {denom:.3g} <= 0: normalised score undefined"
            normalised = np.full(L, np.nan)
            norm[a] = normalised
        for li, nm in enumerate(names):
            rows.append({"layer": nm, "layer_index": li, "area": a, "n_groups": len(area.labels),
                         "n_neurons": int(np.sum(area.n_neurons)) if len(area.n_neurons) else np.nan,
                         "raw": raw[li], "ceiling_lower": c["lower"], "ceiling_upper": c["upper"],
                         "ceiling_split_half": sh, "normaliser": cfg.normalise_by,
                         "ceiling": np.nan if cfg.normalise_by == "none" else denom,
                         "ceiling_source": source, "normalised": normalised[li], "note": note})
            for mi, mouse in enumerate(area.labels):
                samples.append({"layer": nm, "layer_index": li, "area": a, "group": mouse,
                                "group_kind": "mouse", "raw": T[li, mi],
                                "normalised": T[li, mi] / denom if denom > 0 else np.nan,
                                "ceiling_lower_mouse": c["lower_per_mouse"][mi],
                                "ceiling_upper_mouse": c["upper_per_mouse"][mi],
                                "ceiling_split_half_mouse": sh_m[mi]})
    scores = pd.DataFrame(rows)
    for a in empty:
        scores = pd.concat([scores, pd.DataFrame([{
            "layer": nm, "layer_index": li, "area": a, "n_groups": 0, "n_neurons": 0,
            "raw": np.nan, "ceiling_lower": np.nan, "ceiling_upper": np.nan,
            "ceiling_split_half": np.nan, "normaliser": cfg.normalise_by, "ceiling": np.nan,
            "ceiling_source": "none", "normalised": np.nan, "note": "no mouse with enough neurons"}
            for li, nm in enumerate(names)])], ignore_index=True)
    boot = None
    if cfg.n_boot and areas:
        boot = _bootstrap_mice(names, px, brain, areas, prepared, cfg, n_images, progress, cache)
        scores = _attach_ci(scores, boot, areas, cfg)
    else:
        for col in ("raw_ci_low", "raw_ci_high", "ci_low", "ci_high"):
            scores[col] = np.nan
        scores["ci_kind"] = "none"
    scores["above_ceiling"] = scores["normalised"] > 1
    maxima = _maxima(names, areas + empty, norm, raw_tab, boot, cfg)
    if cfg.layer_selection == "cv" and areas:
        maxima = _cross_validate(names, px, brain, areas, prepared, cfg, n_images, maxima)
    return ScoreTables(scores, pd.DataFrame(samples), maxima, boot)


def _entry_mult(counts: np.ndarray, n_images: int) -> np.ndarray:
    i, j = tril_index(n_images)
    return (counts[i] * counts[j]).astype(np.int64)


def _bootstrap_mice(names, px, brain, areas, prepared, cfg: ScoreConfig, n_images, progress,
                    cache: dict | None = None) -> dict:
    """Joint bootstrap over images and mice.

    Each image resample (images drawn with replacement: entry multiplicities c_i·c_j) is combined
    with ``cfg.mouse_draws`` independent mouse resamples per area, so ``n_boot`` joint samples take
    ``ceil(n_boot / mouse_draws)`` image resamples. For every image resample one batched τ call
    scores every (layer, mouse) pair (a mouse resample then only re-weights them), and one more
    call scores the noise-ceiling pairs of all its mouse resamples (pooled RSMs re-made from the
    sampled mice, rsatoolbox-style).
    """
    rng = np.random.default_rng(cfg.seed + 7919)
    B, L, A = int(cfg.n_boot), len(names), len(areas)
    K = max(1, int(cfg.mouse_draws))
    raw_b = np.full((B, L, A), np.nan)
    lower_b = np.full((B, A), np.nan)
    upper_b = np.full((B, A), np.nan)
    offsets = np.cumsum([0] + [len(brain[a].labels) for a in areas])
    py_all = prepare(np.concatenate([brain[a].vectors for a in areas]))
    M_all = int(offsets[-1])
    ii, jj = np.meshgrid(np.arange(L), np.arange(M_all), indexing="ij")
    layer_mouse = np.stack([ii.ravel(), jj.ravel()], 1)
    need_ceiling = cfg.normalise_by in ("lower", "upper")
    key = ("bootstrap ceilings", id(brain), tuple(areas), n_images, B, K, cfg.seed, cfg.pool,
           cfg.comparator, cfg.aggregate)
    cached = cache.get(key) if cache is not None and need_ceiling else None
    if cached is not None:   # the same draws for every model: only the model side is computed
        need_ceiling = False
    n_img_samples = -(-B // K)
    iterator = range(n_img_samples)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=f"bootstrap ({B} samples: images × mice)", unit="image sample",
                        leave=False)
    for bi in iterator:
        counts = np.bincount(rng.integers(0, n_images, n_images), minlength=n_images)
        mult = _entry_mult(counts, n_images)
        tau = compare_pairs(px, py_all, layer_mouse, cfg.comparator, mult=mult,
                            threads=cfg.threads).reshape(L, M_all)
        pooled, cpairs, cspans = [], [], []
        for b in range(bi * K, min(B, (bi + 1) * K)):
            for ai, a in enumerate(areas):
                M = len(brain[a].labels)
                d = np.bincount(rng.integers(0, M, M), minlength=M).astype(np.float64)
                t = tau[:, offsets[ai]:offsets[ai + 1]]
                S = np.flatnonzero(d > 0)
                if cfg.aggregate == "mean":  # nan-mean over the resampled mice, as the point estimate
                    ok = ~np.isnan(t)
                    wsum = ok.astype(np.float64) @ d
                    with np.errstate(invalid="ignore", divide="ignore"):
                        raw_b[b, :, ai] = np.where(ok, t, 0.0) @ d / wsum
                else:
                    raw_b[b, :, ai] = _agg(np.repeat(t[:, S], d[S].astype(int), axis=1), "median",
                                           axis=1)
                if not need_ceiling:
                    continue
                if brain[a].ceiling is not None:  # given with the data: fixed, not resampled
                    lower_b[b, ai], upper_b[b, ai] = brain[a].ceiling
                    continue
                V = brain[a].vectors
                start = len(pooled)
                pooled.append(pool_vectors(V, d, cfg.pool, mult=mult, prepared=prepared[a]))
                up = [(offsets[ai] + m, start) for m in S]
                lo = []
                if len(S) > 1:
                    for m in S:
                        w2 = d.copy()
                        w2[m] = 0.0
                        lo.append((offsets[ai] + m, len(pooled)))
                        pooled.append(pool_vectors(V, w2, cfg.pool, mult=mult, prepared=prepared[a]))
                cspans.append((b, ai, len(cpairs), len(up), len(lo), d[S]))
                cpairs.extend(up + lo)
        if cpairs:
            pp = subset_prepared(np.stack(pooled), mult > 0)
            cv = compare_pairs(py_all, pp, np.asarray(cpairs), cfg.comparator, mult=mult,
                               threads=cfg.threads)
            for b, ai, st, nu, nl, w in cspans:
                up = cv[st:st + nu]
                ok = ~np.isnan(up)
                upper_b[b, ai] = np.sum(up[ok] * w[ok]) / w[ok].sum() if ok.any() else np.nan
                if nl:
                    lo = cv[st + nu:st + nu + nl]
                    ok = ~np.isnan(lo)
                    lower_b[b, ai] = np.sum(lo[ok] * w[ok]) / w[ok].sum() if ok.any() else np.nan
    if cached is not None:
        lower_b, upper_b = cached[0].copy(), cached[1].copy()
    elif cache is not None and need_ceiling:
        cache[key] = (lower_b.copy(), upper_b.copy(), brain)   # brain kept: its id stays unique
    return {"raw": raw_b, "lower": lower_b, "upper": upper_b, "areas": areas,
            "image_samples": n_img_samples, "mouse_draws": K}


def _normalised_boot(boot, cfg: ScoreConfig, scores_split_half: dict[str, float]) -> np.ndarray:
    raw = boot["raw"]
    if cfg.normalise_by == "lower":
        den = boot["lower"]
    elif cfg.normalise_by == "upper":
        den = boot["upper"]
    elif cfg.normalise_by == "none":
        den = np.ones_like(boot["lower"])
    else:  # split-half ceiling is not resampled: the point value
        den = np.broadcast_to(np.array([scores_split_half[a] for a in boot["areas"]]),
                              boot["lower"].shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = raw / den[:, None, :]
    out[~np.isfinite(out)] = np.nan
    bad = ~(den > 0)
    out[np.broadcast_to(bad[:, None, :], out.shape)] = np.nan
    return out


def _attach_ci(scores: pd.DataFrame, boot: dict, areas, cfg: ScoreConfig) -> pd.DataFrame:
    sh = {a: float(scores.loc[scores["area"] == a, "ceiling_split_half"].iloc[0]) for a in areas}
    nb = _normalised_boot(boot, cfg, sh)
    boot["normalised"] = nb
    rlo, rhi = _pct(boot["raw"], cfg.ci)
    nlo, nhi = _pct(nb, cfg.ci)
    idx = {a: k for k, a in enumerate(areas)}
    scores = scores.copy()
    for col in ("raw_ci_low", "raw_ci_high", "ci_low", "ci_high"):
        scores[col] = np.nan
    for r in range(len(scores)):
        a = scores.at[r, "area"]
        if a not in idx:
            continue
        li, ai = int(scores.at[r, "layer_index"]), idx[a]
        scores.at[r, "raw_ci_low"], scores.at[r, "raw_ci_high"] = rlo[li, ai], rhi[li, ai]
        scores.at[r, "ci_low"], scores.at[r, "ci_high"] = nlo[li, ai], nhi[li, ai]
    invalid = np.isnan(nb).all(axis=1).sum(axis=0)
    scores["n_boot_invalid"] = [int(invalid[idx[a]]) if a in idx else 0 for a in scores["area"]]
    scores["ci_kind"] = (f"bootstrap over images and mice: {cfg.n_boot} samples "
                         f"({boot['image_samples']} image resamples × {boot['mouse_draws']} mouse "
                         f"resamples), {cfg.ci:.0%} percentile")
    return scores


def _maxima(names, areas, norm, raw_tab, boot, cfg: ScoreConfig) -> pd.DataFrame:
    rows = []
    nb = boot.get("normalised") if boot else None
    barea = boot["areas"] if boot else []
    for a in areas:
        v = norm.get(a)
        if v is None or np.all(np.isnan(v)):
            rows.append({"area": a, "best_layer": None, "best_layer_index": np.nan,
                         "max_normalised": np.nan, "max_raw": np.nan})
            continue
        li = int(np.nanargmax(v))
        row = {"area": a, "best_layer": names[li], "best_layer_index": li,
               "max_normalised": float(v[li]), "max_raw": float(raw_tab[a][li])}
        if nb is not None and a in barea:
            ai = barea.index(a)
            lo, hi = _pct(nb[:, li, ai], cfg.ci)
            arg = _nanargmax(nb[:, :, ai], axis=1)
            row.update(max_ci_low=float(lo), max_ci_high=float(hi),
                       best_layer_frequency=float(np.mean(arg == li)))
        rows.append(row)
    # the paper's "Max SSM": the maximum over areas and layers
    valid = [r for r in rows if r["best_layer"] is not None]
    if valid:
        top = max(valid, key=lambda r: r["max_normalised"])
        row = {"area": "all", "best_layer": top["best_layer"], "best_layer_index":
               top["best_layer_index"], "best_area": top["area"],
               "max_normalised": top["max_normalised"], "max_raw": top["max_raw"]}
        if nb is not None and top["area"] in barea:
            ai = barea.index(top["area"])
            lo, hi = _pct(nb[:, top["best_layer_index"], ai], cfg.ci)
            flat = np.where(np.isnan(nb), -np.inf, nb).reshape(nb.shape[0], -1)
            arg = np.argmax(flat, axis=1)
            row.update(max_ci_low=float(lo), max_ci_high=float(hi),
                       best_layer_frequency=float(np.mean(
                           arg == top["best_layer_index"] * nb.shape[2] + ai)))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["above_ceiling"] = out["max_normalised"] > 1
    out["layer_selection"] = "in-sample max"
    return out


def _nanargmax(a, axis):
    filled = np.where(np.isnan(a), -np.inf, a)
    return np.argmax(filled, axis=axis)


def _subset_scores(px, brain, areas, prepared, cfg: ScoreConfig, mult) -> dict[str, np.ndarray]:
    """Normalised scores ``{area: [L]}`` on the entries with multiplicity > 0."""
    out = {}
    L = len(px)
    for a in areas:
        py = prepared[a]
        T = compare_matrix(px, py, cfg.comparator, mult=mult, threads=cfg.threads)
        raw = _agg(T, cfg.aggregate, axis=1)
        if cfg.normalise_by == "none":
            den = 1.0
        elif cfg.normalise_by == "split-half":
            den = np.nan
            if brain[a].half_pairs is not None:
                den = float(_agg(_agg(split_half_ceiling(brain[a].half_pairs, cfg.comparator,
                                                         mult=mult, threads=cfg.threads),
                                      "mean", axis=-1), "mean"))
        else:
            c = _ceilings(brain[a], py, cfg, mult=mult)
            den = c[cfg.normalise_by]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a] = raw / den if den and den > 0 else np.full(L, np.nan)
    return out


def _cross_validate(names, px, brain, areas, prepared, cfg: ScoreConfig, n_images,
                    maxima: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(cfg.seed + 104729)
    evals = {a: [] for a in areas}
    evals_all = []
    chosen = {a: [] for a in areas}
    for _ in range(int(cfg.cv_splits)):
        perm = rng.permutation(n_images)
        half = n_images // 2
        for sel, held in ((perm[:half], perm[half:]), (perm[half:], perm[:half])):
            ca = np.zeros(n_images, np.int64)
            ca[sel] = 1
            cb = np.zeros(n_images, np.int64)
            cb[held] = 1
            sa = _subset_scores(px, brain, areas, prepared, cfg, _entry_mult(ca, n_images))
            sb = _subset_scores(px, brain, areas, prepared, cfg, _entry_mult(cb, n_images))
            best_all, best_val = None, -np.inf
            for a in areas:
                if np.all(np.isnan(sa[a])):
                    continue
                li = int(np.nanargmax(sa[a]))
                chosen[a].append(li)
                evals[a].append(sb[a][li])
                if sa[a][li] > best_val:
                    best_val, best_all = sa[a][li], (a, li)
            if best_all is not None:
                evals_all.append(sb[best_all[0]][best_all[1]])
    maxima = maxima.copy()
    maxima["cv_normalised"] = np.nan
    maxima["cv_layer"] = None
    for r in range(len(maxima)):
        a = maxima.at[r, "area"]
        if a == "all":
            maxima.at[r, "cv_normalised"] = float(np.nanmean(evals_all)) if evals_all else np.nan
        elif a in evals and evals[a]:
            maxima.at[r, "cv_normalised"] = float(np.nanmean(evals[a]))
            vals, cnt = np.unique(chosen[a], return_counts=True)
            maxima.at[r, "cv_layer"] = names[int(vals[np.argmax(cnt)])]
    maxima["cv_kind"] = (f"layer chosen on a random half of the images, scored on the other half "
                         f"({cfg.cv_splits} splits × 2)")
    return maxima


# ------------------------------------------------------------------------------------------------
# pooled (anchor) pipeline
# ------------------------------------------------------------------------------------------------

def _score_pooled(names, px, brain, cfg: ScoreConfig, n_images) -> ScoreTables:
    rows, samples = [], []
    norm, raw_tab = {}, {}
    areas = list(brain)
    if cfg.normalise_by != "split-half":
        raise ConfigError("a pooled population has no mice: normalise by the trial split-half "
                          "ceiling (--normalise-by split-half)")
    for a in areas:
        area = brain[a]
        T = compare_matrix(px, prepare(area.vectors), cfg.comparator, threads=cfg.threads)  # [L, S]
        raw = _agg(T, cfg.aggregate, axis=1)
        if area.half_pairs is not None:
            nc = split_half_ceiling(area.half_pairs[0], cfg.comparator, threads=cfg.threads)
            ceiling = float(_agg(nc, cfg.aggregate))
        else:
            nc, ceiling = np.array([]), np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            normalised = raw / ceiling if ceiling and ceiling > 0 else np.full(len(names), np.nan)
            samp_norm = T / ceiling if ceiling and ceiling > 0 else np.full(T.shape, np.nan)
        lo, hi = _pct(samp_norm, cfg.ci, axis=1)
        rlo, rhi = _pct(T, cfg.ci, axis=1)
        norm[a], raw_tab[a] = normalised, raw
        for li, nm in enumerate(names):
            rows.append({"layer": nm, "layer_index": li, "area": a, "n_groups": T.shape[1],
                         "n_neurons": int(area.n_neurons[0]) if area.n_neurons else 0,
                         "raw": raw[li], "ceiling_lower": np.nan, "ceiling_upper": np.nan,
                         "ceiling_split_half": ceiling, "normaliser": "split-half",
                         "ceiling": ceiling, "ceiling_source": "computed",
                         "normalised": normalised[li],
                         "spread": float(np.nanstd(T[li]) / ceiling / 2) if ceiling else np.nan,
                         "raw_ci_low": rlo[li], "raw_ci_high": rhi[li], "ci_low": lo[li],
                         "ci_high": hi[li], "n_ceiling_splits": int(nc.size),
                         "ci_kind": f"spread over {T.shape[1]} trial split-half RSMs, "
                                    f"{cfg.ci:.0%} percentile", "note": ""})
            for s in range(T.shape[1]):
                samples.append({"layer": nm, "layer_index": li, "area": a, "group": f"split{s}",
                                "group_kind": "trial split", "raw": T[li, s],
                                "normalised": samp_norm[li, s]})
    scores = pd.DataFrame(rows)
    scores["above_ceiling"] = scores["normalised"] > 1
    maxima = _maxima(names, areas, norm, raw_tab, None, cfg)
    maxima["layer_selection"] = "in-sample max (argmax of the median over splits)"
    return ScoreTables(scores, pd.DataFrame(samples), maxima, None)
