"""MMV1 figures: cc per variant with neurons as points (Table 5 as a plot), and predicted vs recorded
test traces (smoothed as the metric smooths them) of the best-predicted neurons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from neurolp.mmv1.metrics import SMOOTH_BINS, smooth_traces
from neurolp.utils.io import save_figure

__all__ = ["plot_cc", "plot_traces", "load_predictions"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_cc(neurons: pd.DataFrame, path: str | Path, *, variants: Sequence[str] | None = None,
            title: str | None = None) -> Path:
    """One column per variant: every neuron's cc (points, coloured by session), each session's mean
    (short line) and the mean over sessions ± std (black); the time-shuffled chance level in grey."""
    plt = _plt()
    variants = list(variants) if variants is not None else list(dict.fromkeys(neurons["variant"]))
    sessions = list(dict.fromkeys(neurons["session"]))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(variants) + 2.0), 3.6))
    rng = np.random.default_rng(0)
    for i, v in enumerate(variants):
        sub = neurons[neurons["variant"] == v]
        means = []
        for j, s in enumerate(sessions):
            cc = sub.loc[sub["session"] == s, "cc"].to_numpy(float)
            if not len(cc):
                continue
            x = i + (j - (len(sessions) - 1) / 2) * 0.18
            ax.scatter(x + rng.uniform(-0.05, 0.05, len(cc)), cc, s=9, alpha=0.6, color=colours(j % 10),
                       label=s if i == 0 else None, linewidths=0)
            ax.plot([x - 0.07, x + 0.07], [np.nanmean(cc)] * 2, color=colours(j % 10), lw=2)
            means.append(np.nanmean(cc))
        if means:
            ax.errorbar(i + 0.42, np.mean(means), yerr=np.std(means), fmt="o", color="black", ms=4,
                        capsize=3)
        if "cc_shuffled" in sub:
            ax.plot([i - 0.4, i + 0.4], [sub["cc_shuffled"].mean()] * 2, color="0.6", lw=1, ls="--")
    ax.set_xticks(range(len(variants)))
    ax.set_xticklabels(variants)
    ax.set_ylabel("cc (smoothed, per neuron)")
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.set_title(title or "MMV1 test cc per variant\npoints: neurons · black: mean ± std over sessions"
                 " · dashed: shuffled in time", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=150)


def plot_traces(records: Sequence[Any], path: str | Path, *, n_neurons: int = 3,
                window: int = SMOOTH_BINS, across_joins: bool = False) -> Path:
    """Smoothed recorded (black) and predicted (one colour per variant) test traces of the
    ``n_neurons`` best-predicted neurons (by mean cc over variants) of each session; dotted lines
    mark the joins between segments' test parts."""
    plt = _plt()
    recs = [r if isinstance(r, dict) else {"session": r.session, "variant": r.variant, "pred": r.pred,
                                           "true": r.true, "segment_lengths": r.segment_lengths,
                                           "neuron_ids": r.neurons["neuron_id"].to_numpy(),
                                           "cc": r.neurons["cc"].to_numpy()} for r in records]
    sessions = list(dict.fromkeys(r["session"] for r in recs))
    variants = list(dict.fromkeys(r["variant"] for r in recs))
    colours = plt.get_cmap("tab10")
    rows = [(s, k) for s in sessions for k in range(n_neurons)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.5 * len(rows) + 0.6), squeeze=False)
    for s in sessions:
        mine = [r for r in recs if r["session"] == s]
        cc = np.nanmean(np.stack([r["cc"] for r in mine]), axis=0)
        best = np.argsort(-np.nan_to_num(cc, nan=-2))[:n_neurons]
        lengths = mine[0]["segment_lengths"]
        true = smooth_traces(mine[0]["true"], lengths, window, across_joins)
        joins = np.cumsum(lengths)[:-1]
        for k, j in enumerate(best):
            ax = axes[rows.index((s, k)), 0]
            ax.plot(true[:, j], color="black", lw=1.2, label="recorded")
            for r in mine:
                p = smooth_traces(r["pred"], lengths, window, across_joins)
                ax.plot(p[:, j], lw=0.9, color=colours(variants.index(r["variant"]) % 10),
                        label=f"{r['variant']} (cc {r['cc'][j]:.2f})")
            for x in joins:
                ax.axvline(x, color="0.8", lw=0.6, ls=":")
            ax.set_ylabel("spikes/bin", fontsize=7)
            ax.set_title(f"{s}, neuron {int(mine[0]['neuron_ids'][j])}", fontsize=8, loc="left")
            ax.legend(fontsize=6, frameon=False, ncol=min(len(variants) + 1, 7), loc="upper right")
            ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("test bin (48 ms; segments' test parts concatenated)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=130)


def load_predictions(folder: str | Path, neurons: pd.DataFrame | None = None) -> list[dict]:
    """The ``predictions/<session>__<variant>.npz`` files of a run, as records for :func:`plot_traces`
    (``cc`` from ``neurons`` when given, else recomputed with the default smoothing)."""
    from neurolp.mmv1.metrics import evaluate_traces

    out = []
    for f in sorted(Path(folder).glob("*__*.npz")):
        session, variant = f.stem.split("__", 1)
        with np.load(f, allow_pickle=False) as z:
            rec = {k: z[k] for k in ("pred", "true", "segment_lengths", "neuron_ids")}
        rec.update(session=session, variant=variant, segment_lengths=rec["segment_lengths"].tolist())
        if neurons is not None:
            sub = neurons[(neurons["session"] == session) & (neurons["variant"] == variant)]
            rec["cc"] = sub.sort_values("neuron")["cc"].to_numpy(float)
        else:
            rec["cc"] = evaluate_traces(rec["pred"], rec["true"], rec["segment_lengths"])["cc"].to_numpy()
        out.append(rec)
    return out
