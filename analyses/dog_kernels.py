"""Neural Echos kernel analysis: are the depthwise kernels of a model DoG-like?

Babaiee et al. (WACV 2024), Fig. 5: depthwise kernels min-max normalised to [0, 1], clustered with
k-means; the cluster centres of trained ConvNeXts show excitatory- and inhibitory-centre
receptive fields. For each source (a neurolp checkpoint, a run folder — its ``best.safetensors`` —
or a registry name, built untrained with the seed) this script clusters the depthwise kernels with
:func:`neurolp.layers.kernels.cluster_kernels` and draws the cluster centres, framing the DoG-like
ones (correlation with the best on/off DoG >= the threshold; see that module for the criterion).
Sources with the same label are pooled (``--pool``: one row per model over its seeds).

    python analyses/dog_kernels.py runs/digits/{base,dog}-convnext_micro_s{0,1,2} \\
        dog-convnext_micro base-convnext_micro --pool --out figures

writes ``dog_kernels.png``, ``dog_kernels_clusters.csv`` (one row per source × cluster) and
``dog_kernels_summary.csv`` (one row per source: fraction of DoG-like clusters and of kernels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from neurolp.layers.kernels import (DOG_THRESHOLD, cluster_kernels, depthwise_kernels,  # noqa: E402
                                   plot_kernel_clusters)
from neurolp.utils.io import save_figure, write_csv  # noqa: E402


def resolve(source: str, seed: int):
    """``(label, source for depthwise_kernels, description)``."""
    path = Path(source)
    if path.is_dir():
        path = path / "best.safetensors"
    if path.is_file():
        from neurolp.train.checkpoint import read_metadata

        meta = read_metadata(path)
        acc = (meta.get("metrics") or {}).get("test_acc")
        desc = f"seed {meta.get('seed')}, epoch {meta.get('epoch')}" + (f", test {acc:.2f}%" if acc else "")
        opts = (meta.get("spec") or {}).get("convert_kwargs") or {}
        extra = " " + ",".join(f"{k}={v}" for k, v in sorted(opts.items())) if opts else ""
        return f"{meta['model']}{extra} (trained)", path, desc
    torch.manual_seed(seed)
    from neurolp.models import create_model

    return f"{source} (init)", create_model(source, num_classes=10, image_size=32), f"untrained, seed {seed}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sources", nargs="+", help="checkpoints, run folders or registry names")
    ap.add_argument("--clusters", type=int, default=8, help="k-means clusters (default 8)")
    ap.add_argument("--seed", type=int, default=0, help="k-means seed and the untrained models' seed")
    ap.add_argument("--threshold", type=float, default=DOG_THRESHOLD,
                    help=f"DoG-likeness: correlation with the best on/off DoG (default {DOG_THRESHOLD})")
    ap.add_argument("--kernel-size", type=int, default=None, help="kernel size to analyse (default: most common)")
    ap.add_argument("--pool", action="store_true", help="pool the kernels of sources with the same label")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "figures")
    ap.add_argument("--name", default="dog_kernels", help="output file stem")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    groups: dict[str, list] = {}
    for i, src in enumerate(args.sources):
        label, source, desc = resolve(src, args.seed)
        if not args.pool:
            label = f"{label} [{desc}]" if label in groups or desc.startswith("seed") else label
        kernels, table = depthwise_kernels(source, kernel_size=args.kernel_size)
        table.insert(0, "source", src)
        groups.setdefault(label, []).append((kernels, table, desc))
    results, clusters, summary = {}, [], []
    for label, items in groups.items():
        kernels = np.concatenate([k for k, _, _ in items])
        table = pd.concat([t for _, t, _ in items], ignore_index=True)
        res = cluster_kernels(kernels, args.clusters, seed=args.seed, threshold=args.threshold, table=table)
        results[label] = res
        clusters.append(res.table.assign(label=label))
        summary.append({"label": label, "sources": " ".join(str(t["source"].iloc[0]) for _, t, _ in items),
                        "details": "; ".join(d for _, _, d in items), **res.summary()})
    clusters = pd.concat(clusters, ignore_index=True)
    clusters = clusters[["label"] + [c for c in clusters.columns if c != "label"]]
    write_csv(clusters, args.out / f"{args.name}_clusters.csv", index=False)
    summary = pd.DataFrame(summary)
    write_csv(summary, args.out / f"{args.name}_summary.csv", index=False)
    K = next(iter(results.values())).centres.shape[-1]
    fig = plot_kernel_clusters(results, title=(
        f"k-means ({args.clusters} clusters, seed {args.seed}) of min-max normalised {K}×{K} depthwise "
        f"kernels; framed: DoG-like (ρ ≥ {args.threshold:g}; orange on-centre, blue off-centre)"))
    save_figure(fig, args.out / f"{args.name}.png", dpi=150, bbox_inches="tight")
    cols = ["label", "n_kernels", "dog_like_clusters", "n_clusters", "fraction_dog_like_kernels",
            "fraction_dog_like_strict_kernels", "fraction_dog_like_individually", "median_kernel_corr"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.name}.png, {args.name}_clusters.csv, {args.name}_summary.csv to {args.out}")


if __name__ == "__main__":
    main()
