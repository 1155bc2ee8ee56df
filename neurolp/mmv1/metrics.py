"""The MMV1 metrics, exactly as the authors computed them (Xu et al. 2023, notebook
``evaluate_model`` + ``mouse_model/evaluation.py``; Kwon et al. 2025, Table 5):

1. predictions and recorded spike counts of the test windows, in time order, are smoothed per
   neuron with a boxcar of ``int(2000 / 48) = 41`` bins: ``np.convolve(x, ones(41) / 41, "same")``
   (zero-padded at the ends);
2. **cc** of a neuron = Pearson's r between its smoothed prediction and smoothed recording over
   time; a session's cc is the mean over its neurons (std over neurons alongside);
3. **MSE** = mean squared difference of the smoothed traces over bins and neurons
   (``sklearn.metrics.mean_squared_error``'s uniform average); per neuron, the same over bins;
4. Table 5 reports mean (std) over mice of the per-session values.

**Segment joins.** The test trace is the concatenation of 10 test parts that are not contiguous in
time (each is the last 30 % of its segment). The authors smoothed the concatenation, so 40 bins at
every join average over two unrelated stretches of the recording. By default each segment's test
part is smoothed on its own (``across_joins=False``), and near its ends the window averages the
bins that exist (``edges="mean"``). Zero padding at every segment end would not do: it pulls both
smoothed traces towards 0 at the same 20 places, which correlates any two positive traces — on
the synthetic data, predictions shuffled in time then still reach cc ≈ 0.15. ``across_joins=True``
(with its default ``edges="zero"``) reproduces the authors' computation exactly; there only the
two ends of the whole trace are padded. The choice moves the numbers by little on ~1 600-bin test
parts, but only the default measures contiguous time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["SMOOTH_BINS", "boxcar_smooth", "smooth_traces", "pearson_per_neuron", "mse_per_neuron",
           "evaluate_traces", "session_summary", "table5", "format_table5", "shuffled_baseline"]

SMOOTH_BINS = int(2000 / 48)  # 41 bins = 2 s at 48 ms


def boxcar_smooth(x: np.ndarray, window: int = SMOOTH_BINS, edges: str = "zero") -> np.ndarray:
    """Centred moving average of every column of ``x`` [T, N].

    ``edges="zero"``: ``np.convolve(x[:, j], ones(window) / window, mode="same")`` (zero padding, the
    authors'); ``"mean"``: near the ends, the mean of the bins that exist (no ramp towards 0).
    Computed with cumulative sums (the same numbers up to rounding). For ``window > T`` the output
    keeps length T (NumPy's ``"same"`` would return ``window`` values).
    """
    if edges not in ("zero", "mean"):
        raise ValueError(f"edges must be 'zero' or 'mean', got {edges!r}")
    x = np.asarray(x, dtype=np.float64)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    t = x.shape[0]
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    # "same" output i is full-convolution output i + (window - 1) // 2, the sum of x[j] over
    # j in [i + (window - 1)//2 - window + 1, i + (window - 1)//2] ∩ [0, T)
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    i = np.arange(t)
    hi = np.clip(i + (window - 1) // 2 + 1, 0, t)
    lo = np.clip(i + (window - 1) // 2 - window + 1, 0, t)
    out = (c[hi] - c[lo]) / (window if edges == "zero" else (hi - lo)[:, None])
    return out[:, 0] if squeeze else out


def smooth_traces(x: np.ndarray, segment_lengths: Sequence[int] | None = None,
                  window: int = SMOOTH_BINS, across_joins: bool = False,
                  edges: str | None = None) -> np.ndarray:
    """Boxcar-smooth a concatenated test trace [T, N]: per segment (default) or across joins.

    ``edges`` (see :func:`boxcar_smooth`) defaults to ``"mean"`` per segment and to the authors'
    ``"zero"`` across joins.
    """
    x = np.asarray(x, dtype=np.float64)
    if across_joins or segment_lengths is None:
        return boxcar_smooth(x, window, edges or "zero")
    lengths = [int(n) for n in segment_lengths]
    if sum(lengths) != x.shape[0]:
        raise ValueError(f"segment lengths sum to {sum(lengths)}, but the trace has {x.shape[0]} bins")
    bounds = np.cumsum([0, *lengths])
    return np.concatenate([boxcar_smooth(x[a:b], window, edges or "mean")
                           for a, b in zip(bounds[:-1], bounds[1:]) if b > a], axis=0)


def pearson_per_neuron(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r over time for each column (``np.corrcoef`` per neuron); NaN for a constant trace."""
    p = np.asarray(pred, dtype=np.float64)
    y = np.asarray(true, dtype=np.float64)
    p = p - p.mean(axis=0)
    y = y - y.mean(axis=0)
    den = np.sqrt((p ** 2).sum(axis=0) * (y ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * y).sum(axis=0) / den
    return np.where(den > 0, r, np.nan)


def mse_per_neuron(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    return ((np.asarray(pred, np.float64) - np.asarray(true, np.float64)) ** 2).mean(axis=0)


def evaluate_traces(pred: np.ndarray, true: np.ndarray, segment_lengths: Sequence[int] | None = None,
                    *, window: int = SMOOTH_BINS, across_joins: bool = False,
                    edges: str | None = None) -> pd.DataFrame:
    """Per-neuron cc and MSE of smoothed traces, plus cc of the unsmoothed traces (``cc_raw``)."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred and true must be [T, N] of the same shape, got {pred.shape}, {true.shape}")
    ps = smooth_traces(pred, segment_lengths, window, across_joins, edges)
    ts = smooth_traces(true, segment_lengths, window, across_joins, edges)
    return pd.DataFrame({"neuron": np.arange(pred.shape[1]), "cc": pearson_per_neuron(ps, ts),
                         "mse": mse_per_neuron(ps, ts), "cc_raw": pearson_per_neuron(pred, true)})


def shuffled_baseline(pred: np.ndarray, true: np.ndarray, segment_lengths: Sequence[int] | None = None,
                      *, window: int = SMOOTH_BINS, across_joins: bool = False,
                      edges: str | None = None, repeats: int = 20, seed: int = 0) -> np.ndarray:
    """Per-neuron cc of the same predictions with their time bins randomly permuted (one
    permutation for all neurons per repeat), averaged over ``repeats``: the chance level that a
    fitted model must beat. [N]"""
    rng = np.random.default_rng(seed)
    ts = smooth_traces(true, segment_lengths, window, across_joins, edges)
    out = np.zeros(np.asarray(pred).shape[1])
    for _ in range(repeats):
        perm = rng.permutation(len(pred))
        out += pearson_per_neuron(smooth_traces(np.asarray(pred)[perm], segment_lengths, window,
                                                across_joins, edges), ts)
    return out / repeats


def session_summary(neurons: pd.DataFrame) -> pd.DataFrame:
    """One row per (session, variant): mean / std over neurons (``np.std``, ddof 0, as the authors)."""
    g = neurons.groupby(["session", "variant"], sort=False)
    out = g.agg(n_neurons=("cc", "size"), cc=("cc", "mean"), cc_std=("cc", lambda s: float(np.std(s))),
                mse=("mse", "mean"), cc_raw=("cc_raw", "mean"),
                n_nan=("cc", lambda s: int(s.isna().sum()))).reset_index()
    return out


def table5(sessions: pd.DataFrame, variants: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy Table 5: per variant and metric, mean and std over sessions (ddof 0) and n."""
    variants = list(variants) if variants is not None else list(dict.fromkeys(sessions["variant"]))
    rows = []
    for v in variants:
        s = sessions[sessions["variant"] == v]
        for metric in ("cc", "mse"):
            vals = s[metric].to_numpy(dtype=float)
            rows.append({"variant": v, "metric": metric, "mean": float(np.mean(vals)),
                         "std": float(np.std(vals)), "n_sessions": int(len(vals))})
    return pd.DataFrame(rows)


def format_table5(tidy: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: rows cc / MSE, one column per variant, cells ``"mean (std)"``."""
    cols = list(dict.fromkeys(tidy["variant"]))
    out = {"MMV1": ["cc", "MSE"]}
    for v in cols:
        s = tidy[tidy["variant"] == v].set_index("metric")
        out[v] = [f"{s.loc['cc', 'mean']:.3f} ({s.loc['cc', 'std']:.3f})",
                  f"{s.loc['mse', 'mean']:.4f} ({s.loc['mse', 'std']:.3f})"]
    return pd.DataFrame(out)
