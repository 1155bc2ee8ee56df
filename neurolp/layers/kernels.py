"""Kernel analysis of depthwise convolutions: do trained kernels look like DoG receptive fields?

Following Babaiee et al., "Neural Echos" (WACV 2024): collect the depthwise kernels of a model,
min-max normalise each to [0, 1], flatten and cluster them with k-means, and look at the cluster
centres. Excitatory-centre (on) and inhibitory-centre (off) centre-surround clusters dominate in
trained ConvNeXts.

The paper judged the cluster centres by eye. The criterion here is explicit: a centre is
**DoG-like** when its Pearson correlation with the best-matching on- or off-centre DoG of the same
size (:func:`~neurolp.layers.dog.dog_kernel` over a grid of γ) is at least ``threshold`` (0.8 by
default). Correlation ignores offset and scale, so min-max normalisation does not change it.
A caveat shared with the paper's analysis: after min-max normalisation a zero-sum DoG and a centred
blob on a flat background differ only in the depth of the surround, so a plain Gaussian blob also
scores high. The ``opposite_surround`` column therefore also reports whether the *raw* kernels of
the cluster (each divided by its largest magnitude, then averaged) have a centre and a surround of
opposite signs, the stricter centre-surround test (``dog_like_strict``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neurolp.errors import ConfigError, InputError
from neurolp.layers.dog import depthwise_convs, dog_centre_mask, dog_gamma_range, dog_kernel

__all__ = ["depthwise_kernels", "minmax_normalise", "dog_templates", "match_dog", "cluster_kernels",
           "KernelClusters", "plot_kernel_clusters", "DOG_THRESHOLD"]

DOG_THRESHOLD = 0.8


def depthwise_kernels(source, *, kernel_size: int | None = None):
    """The depthwise kernels of a model, a checkpoint file or a registry name (random init).

    Returns ``(kernels, table)``: a float64 array ``[N, K, K]`` and a DataFrame with one row per
    kernel (``layer, channel, K``). Only kernels of one size are returned, ``kernel_size`` or the
    most common one; the table's ``attrs["skipped"]`` counts the others by size.
    """
    import pandas as pd

    model = _as_model(source)
    convs = [(n, m) for n, m in depthwise_convs(model) if m.kernel_size[0] == m.kernel_size[1]]
    if not convs:
        raise InputError(f"{_describe(source)} has no square depthwise convolution (groups == "
                         "in_channels == out_channels, kernel > 1×1) to analyse")
    sizes = Counter()
    for _, m in convs:
        sizes[m.kernel_size[0]] += m.out_channels
    K = kernel_size if kernel_size is not None else sizes.most_common(1)[0][0]
    if K not in sizes:
        raise ConfigError(f"no {K}×{K} depthwise kernels in {_describe(source)}; sizes present: "
                          f"{', '.join(f'{k}×{k}' for k in sorted(sizes))}")
    kernels, rows = [], []
    for name, m in convs:
        if m.kernel_size[0] != K:
            continue
        w = m.weight.detach().to("cpu", torch.float64)[:, 0].numpy()
        kernels.append(w)
        rows += [(name, i, K) for i in range(w.shape[0])]
    table = pd.DataFrame(rows, columns=["layer", "channel", "K"])
    table.attrs["skipped"] = {k: n for k, n in sizes.items() if k != K}
    return np.concatenate(kernels), table


def _describe(source) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def _as_model(source) -> nn.Module:
    if isinstance(source, nn.Module):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix == ".safetensors" or path.exists():
            from neurolp.train.checkpoint import load_model

            return load_model(path)[0]
        from neurolp.models import create_model

        return create_model(str(source), num_classes=10, image_size=32)
    raise ConfigError(f"expected a model, a checkpoint path or a registry name, got {type(source).__name__}")


def minmax_normalise(kernels) -> np.ndarray:
    """Each kernel mapped affinely to [0, 1] (constant kernels become 0.5 everywhere)."""
    k = np.asarray(kernels, dtype=np.float64)
    flat = k.reshape(len(k), -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    span = hi - lo
    out = np.where(span > 0, (flat - lo) / np.where(span > 0, span, 1), 0.5)
    return out.reshape(k.shape)


def default_gammas(K: int, step: float = 0.05) -> np.ndarray:
    """γ = 0.1, 0.15, … below the largest γ a K×K DoG allows (includes init's 0.3, 0.5, 0.7)."""
    hi = dog_gamma_range(K)[1]
    g = np.round(np.arange(0.1, hi, step), 6)
    return g[g < hi - 1e-3]


def dog_templates(K: int, gammas=None) -> tuple[np.ndarray, list[tuple[bool, float]]]:
    """On- and off-centre K×K DoG kernels over ``gammas``: ``(templates [2G, K, K], [(on, γ), ...])``."""
    gammas = default_gammas(K) if gammas is None else np.asarray(gammas, dtype=np.float64)
    labels = [(on, float(g)) for g in gammas for on in (True, False)]
    return np.stack([dog_kernel(K, g, on, dtype=torch.float64).numpy() for on, g in labels]), labels


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` [N, D] with each row of ``b`` [M, D] → [N, M]."""
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    na, nb = np.linalg.norm(a, axis=1, keepdims=True), np.linalg.norm(b, axis=1, keepdims=True)
    return (a @ b.T) / np.where(na > 0, na, np.inf) / np.where(nb > 0, nb, np.inf).T


def match_dog(kernels, gammas=None, *, threshold: float = DOG_THRESHOLD):
    """The best-matching DoG of each kernel ``[N, K, K]``: DataFrame ``on, gamma, corr, dog_like``."""
    import pandas as pd

    k = np.asarray(kernels, dtype=np.float64)
    if k.ndim != 3 or k.shape[1] != k.shape[2]:
        raise ConfigError(f"kernels must have shape [N, K, K], got {tuple(k.shape)}")
    templates, labels = dog_templates(k.shape[1], gammas)
    c = _corr(k.reshape(len(k), -1), templates.reshape(len(templates), -1))
    best = c.argmax(1)
    corr = c[np.arange(len(k)), best]
    return pd.DataFrame({"on": [labels[i][0] for i in best], "gamma": [labels[i][1] for i in best],
                         "corr": corr, "dog_like": corr >= threshold})


@dataclass
class KernelClusters:
    """The k-means clustering of a set of depthwise kernels.

    ``centres`` [k, K, K] (in normalised units, sorted by cluster size), ``labels`` [N] (cluster of
    each kernel), ``table`` (one row per cluster: ``cluster, size, share, on, gamma, corr, dog_like,
    opposite_surround, dog_like_strict``) and ``kernels`` (the table of kernels with ``cluster`` and
    each kernel's own best DoG match: ``on, gamma, corr, dog_like``).
    """

    centres: np.ndarray
    labels: np.ndarray
    table: "object"
    kernels: "object"
    threshold: float

    @property
    def fraction_dog_like_clusters(self) -> float:
        return float(self.table["dog_like"].mean())

    @property
    def fraction_dog_like_kernels(self) -> float:
        """The share of kernels that fall in DoG-like clusters."""
        return float(self.table.loc[self.table["dog_like"], "share"].sum())

    def summary(self) -> dict:
        t = self.table
        return {"n_kernels": int(len(self.labels)), "K": int(self.centres.shape[-1]),
                "n_clusters": int(len(t)), "dog_like_clusters": int(t["dog_like"].sum()),
                "fraction_dog_like_clusters": self.fraction_dog_like_clusters,
                "fraction_dog_like_kernels": self.fraction_dog_like_kernels,
                "fraction_dog_like_strict_kernels": float(t.loc[t["dog_like_strict"], "share"].sum()),
                "fraction_dog_like_individually": float(self.kernels["dog_like"].mean()),
                "median_kernel_corr": float(self.kernels["corr"].median()),
                "on_clusters": int((t["dog_like"] & t["on"]).sum()),
                "off_clusters": int((t["dog_like"] & ~t["on"]).sum()), "threshold": self.threshold}


def cluster_kernels(kernels, n_clusters: int = 8, *, seed: int = 0, threshold: float = DOG_THRESHOLD,
                    gammas=None, table=None) -> KernelClusters:
    """Min-max normalise ``kernels`` [N, K, K], k-means them (``n_init=10``, ``random_state=seed``)
    and judge each cluster centre against on/off DoG templates (see the module docstring).

    With fewer distinct kernels than ``n_clusters`` there is one cluster per distinct kernel.

    ``table`` (from :func:`depthwise_kernels`) is returned with a ``cluster`` column added.
    """
    import pandas as pd
    from sklearn.cluster import KMeans

    raw = np.asarray(kernels, dtype=np.float64)
    if raw.ndim != 3 or raw.shape[1] != raw.shape[2]:
        raise ConfigError(f"kernels must have shape [N, K, K], got {tuple(raw.shape)}")
    N, K = len(raw), raw.shape[1]
    if not 1 <= n_clusters <= N:
        raise ConfigError(f"n_clusters must lie in [1, {N}] (the number of kernels), got {n_clusters}")
    if not 0 < threshold <= 1:
        raise ConfigError(f"the DoG correlation threshold must lie in (0, 1], got {threshold}")
    x = minmax_normalise(raw).reshape(N, -1)
    # fewer distinct kernels than clusters (e.g. an untrained DoG init): one cluster per kernel shape
    n_clusters = min(n_clusters, len(np.unique(x.round(12), axis=0)))
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(x)
    sizes = np.bincount(km.labels_, minlength=n_clusters)
    order = np.argsort(-sizes, kind="stable")  # cluster 0 = the largest
    relabel = np.empty(n_clusters, dtype=int)
    relabel[order] = np.arange(n_clusters)
    labels = relabel[km.labels_]
    centres = km.cluster_centers_[order].reshape(n_clusters, K, K)
    match = match_dog(centres, gammas, threshold=threshold)
    # raw sign structure: each kernel scaled by its largest magnitude, averaged per cluster
    scaled = raw / np.maximum(np.abs(raw).reshape(N, -1).max(1), 1e-12)[:, None, None]
    opposite = []
    for c in range(n_clusters):
        mean = scaled[labels == c].mean(0)
        mask = dog_centre_mask(K, match.at[c, "gamma"]).numpy()
        centre, surround = mean[mask].mean(), mean[~mask].mean()
        sign = 1 if match.at[c, "on"] else -1
        opposite.append(bool(sign * centre > 0 > sign * surround))
    out = pd.DataFrame({"cluster": np.arange(n_clusters), "size": sizes[order], "share": sizes[order] / N})
    out = pd.concat([out, match], axis=1)
    out["opposite_surround"] = opposite
    out["dog_like_strict"] = out["dog_like"] & out["opposite_surround"]
    kt = table.copy() if table is not None else pd.DataFrame({"index": np.arange(N)})
    kt["cluster"] = labels
    each = match_dog(raw, gammas, threshold=threshold)   # each kernel on its own, same criterion
    for col in ("on", "gamma", "corr", "dog_like"):
        kt[col] = each[col].to_numpy()
    return KernelClusters(centres, labels, out, kt, threshold)


def plot_kernel_clusters(results: dict, *, title: str | None = None):
    """A grid of cluster centres: one row per labelled :class:`KernelClusters`, largest cluster
    first; DoG-like centres are framed (orange: on-centre, blue: off-centre) and annotated with
    their share of kernels and best-matching γ / correlation. Returns the figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n_rows = len(results)
    n_cols = max(len(r.centres) for r in results.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.25 * n_cols + 1.6, 1.45 * n_rows + 0.8),
                             squeeze=False)
    for row, (label, res) in enumerate(results.items()):
        s = res.summary()
        for col in range(n_cols):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(res.centres):
                ax.axis("off")
                continue
            ax.imshow(res.centres[col], cmap="gray", vmin=0, vmax=1)
            r = res.table.iloc[col]
            colour = ("tab:orange" if r["on"] else "tab:blue") if r["dog_like"] else "0.75"
            for spine in ax.spines.values():
                spine.set_color(colour)
                spine.set_linewidth(3 if r["dog_like"] else 0.8)
            ax.set_title(f"{100 * r['share']:.0f}%  ρ={r['corr']:.2f}", fontsize=7, pad=2)
            if col == 0:
                ax.set_ylabel(f"{label}\nDoG-like clusters {s['dog_like_clusters']}/{s['n_clusters']}\n"
                              f"({100 * s['fraction_dog_like_kernels']:.0f}% of kernels;\n"
                              f"{100 * s['fraction_dog_like_individually']:.0f}% DoG-like one by one)", fontsize=7,
                              rotation=0, ha="right", va="center")
    fig.suptitle(title or "k-means centres of min-max normalised depthwise kernels "
                 "(framed: DoG-like, orange on-centre / blue off-centre)", fontsize=9)
    fig.tight_layout()
    return fig
