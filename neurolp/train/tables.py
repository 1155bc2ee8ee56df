"""Paper tables from checkpoints: Table 1 (accuracy over seeds, Welch's t-test against ``base``)
and Tables 6–7 (per-layer distribution of trained p).

Everything starts from checkpoint metadata (:func:`collect_runs`), so the tables can be rebuilt
from the store at any time; functions return tidy DataFrames and :func:`format_table` renders the
Table-1 layout as Markdown or LaTeX.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable

from neurolp.errors import ConfigError, DataNotFoundError

__all__ = ["variant_label", "collect_runs", "welch_test", "stars", "classification_table",
           "format_table", "p_distribution", "p_summary", "format_p_table", "VARIANT_ORDER"]

# Table 1's row order: base, large, the frozen † model, then p_init from large to small.
VARIANT_ORDER = ("base", "large", "lp256f", "lp16", "lp8", "lp4", "lp2")
# Table 1's column order (then Table 9's architectures).
ARCH_TITLES = {"alexnet": "AlexNet", "vgg16": "VGG-16", "resnet18": "ResNet-18",
               "resnet34": "ResNet-34", "resnet50": "ResNet-50", "resnext50_32x4d": "ResNeXt-50",
               "densenet121": "DenseNet-121", "convnext_tiny": "ConvNeXt-T", "smallcnn": "SmallCNN"}


def variant_label(model_name: str) -> str:
    """``"lp2-resnet18"`` → ``"lp2"``; ``"base-vgg16"`` → ``"base"``."""
    from neurolp.models import parse_model_name

    parsed = parse_model_name(model_name)
    return str(parsed)[: -len(parsed.arch) - 1]


def _checkpoint_files(sources) -> list[Path]:
    files: list[Path] = []
    for src in sources:
        src = Path(src)
        if src.is_dir():
            files += sorted(p for p in src.rglob("*.safetensors")
                            if not any(part.startswith(".") for part in p.relative_to(src).parts))
        elif src.is_file():
            files.append(src)
        else:
            raise DataNotFoundError(f"{src} does not exist (expected a checkpoint or a folder of them)")
    return files


def collect_runs(sources: Iterable[str | os.PathLike] | None = None, *,
                 kinds: Iterable[str] = ("final", "best", "model")):
    """One row per trained model found in ``sources`` (files or folders; default: the store).

    The same weights found twice (a run's ``best.safetensors`` and its published copy) count once.
    Columns: model, arch, variant, p_init, dataset, image_size, seed, epoch, val_acc, test_acc,
    kind, path.
    """
    import pandas as pd

    from neurolp.train.checkpoint import read_metadata
    from neurolp.train.store import default_store

    sources = [default_store()] if sources is None else list(sources)
    rows, seen = [], set()
    for path in _checkpoint_files(sources):
        meta = read_metadata(path)
        if meta.get("kind") not in set(kinds) or meta.get("weights_sha256") in seen:
            continue
        seen.add(meta.get("weights_sha256"))
        m = meta.get("metrics") or {}
        rows.append({"model": meta["model"], "arch": meta.get("arch"),
                     "variant": variant_label(meta["model"]), "p_init": meta.get("p_init"),
                     "dataset": meta.get("dataset"), "image_size": meta.get("image_size"),
                     "seed": meta.get("seed"), "epoch": meta.get("epoch"),
                     "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"),
                     "kind": meta.get("kind"), "path": str(path)})
    return pd.DataFrame(rows, columns=["model", "arch", "variant", "p_init", "dataset", "image_size",
                                       "seed", "epoch", "val_acc", "test_acc", "kind", "path"])


def welch_test(a, b) -> tuple[float, float]:
    """Welch's unequal-variance t-test of ``a`` against ``b``: ``(t, p)`` (NaN when undefined).

    A thin view of :func:`neurolp.stats.welch` (the project's one Welch implementation).
    """
    from neurolp.stats import welch

    res = welch(a, b)
    return float(res["t"]), float(res["pvalue"])


def stars(p: float) -> str:
    """Table 1's marks: ``***`` p < 0.001, ``**`` p < 0.01, ``*`` p < 0.05, ``ns`` otherwise and
    ``""`` when untestable (:func:`neurolp.stats.stars` with the paper's typography)."""
    from neurolp.stats import stars as _stars

    if p is None:
        return ""
    return {"n.s": "ns", "n/a": ""}.get(str(_stars(float(p))), str(_stars(float(p))))


def _arch_key(a: str) -> tuple:
    order = list(ARCH_TITLES)
    return (order.index(a), "") if a in order else (len(order), a)


def _variant_key(v: str) -> tuple:
    return (VARIANT_ORDER.index(v), "") if v in VARIANT_ORDER else (len(VARIANT_ORDER), v)


def classification_table(runs, *, metric: str = "test_acc", baseline: str = "base"):
    """Mean ± std (ddof 1) of ``metric`` per dataset × arch × variant over seeds, with Welch's
    t-test against the ``baseline`` variant of the same dataset and arch, significance stars,
    the difference to the baseline, and the rank within each dataset × arch (1 = best)."""
    import numpy as np
    import pandas as pd

    need = {"dataset", "arch", "variant", metric}
    if not need <= set(runs.columns):
        raise ConfigError(f"runs need columns {sorted(need)}; got {sorted(runs.columns)}")
    runs = runs.dropna(subset=[metric])
    rows = []
    for (dataset, arch), g in runs.groupby(["dataset", "arch"], sort=False):
        base = g.loc[g["variant"] == baseline, metric].to_numpy(float)
        for variant, h in g.groupby("variant", sort=False):
            x = h[metric].to_numpy(float)
            t, p = (math.nan, math.nan) if variant == baseline else welch_test(x, base)
            rows.append({"dataset": dataset, "arch": arch, "variant": variant, "n": len(x),
                         "mean": x.mean(), "std": x.std(ddof=1) if len(x) > 1 else math.nan,
                         "delta": x.mean() - base.mean() if len(base) else math.nan,
                         "t": t, "p_value": p, "stars": "" if variant == baseline else stars(p)})
    df = pd.DataFrame(rows, columns=["dataset", "arch", "variant", "n", "mean", "std", "delta", "t",
                                     "p_value", "stars"])
    if df.empty:
        return df.assign(rank=pd.Series(dtype=int))
    df["rank"] = df.groupby(["dataset", "arch"])["mean"].rank(ascending=False, method="min").astype(int)
    df["_a"], df["_k"] = df["arch"].map(_arch_key), df["variant"].map(_variant_key)
    df = df.sort_values(["dataset", "_a", "_k"], kind="stable").drop(columns=["_a", "_k"])
    return df.reset_index(drop=True).replace({np.inf: math.nan})


def _row_title(variant: str, fmt: str) -> str:
    import re

    if variant == "base":
        return "(Base) Conv k×k" if fmt == "markdown" else "(Base) Conv $k\\times k$"
    if variant == "large":
        return "(Large) Conv l×l" if fmt == "markdown" else "(Large) Conv $l\\times l$"
    m = re.fullmatch(r"lp([\d.]+)(f?)", variant)
    if m:
        dag = ("†" if fmt == "markdown" else "$^\\dagger$") if m.group(2) else ""
        return (f"Lp-Conv{dag} p_init={m.group(1)}" if fmt == "markdown"
                else f"$L_p$-Conv{dag} $p_{{init}}={m.group(1)}$")
    return variant


def format_table(summary, fmt: str = "markdown", *, digits: int = 2) -> str:
    """Table 1 layout: one block per dataset, variants as rows, architectures as columns.

    Cells read ``<stars> mean ± std``; the best mean per column is bold, the second underlined,
    a significant decrease against base is marked (↓ in Markdown, red in LaTeX: needs ``xcolor``).
    ``fmt`` is ``"markdown"`` or ``"latex"``.
    """
    if fmt not in ("markdown", "latex"):
        raise ConfigError(f"fmt must be markdown or latex, got {fmt!r}")
    lines: list[str] = []
    for dataset, d in summary.groupby("dataset", sort=False):
        archs = list(dict.fromkeys(d["arch"]))
        variants = sorted(dict.fromkeys(d["variant"]), key=_variant_key)
        cells = {}
        for r in d.itertuples():
            std = "" if math.isnan(r.std) else (f" $\\pm$ {r.std:.{digits}f}" if fmt == "latex"
                                                 else f" ± {r.std:.{digits}f}")
            value = f"{r.mean:.{digits}f}{std}"
            if r.delta < 0 and r.p_value < 0.05:  # the paper's red: a significant decrease
                value = f"{value} ↓" if fmt == "markdown" else f"\\textcolor{{red}}{{{value}}}"
            if r.rank == 1 and len(d[d["arch"] == r.arch]) > 1:
                value = f"**{value}**" if fmt == "markdown" else f"\\textbf{{{value}}}"
            elif r.rank == 2:
                value = f"<u>{value}</u>" if fmt == "markdown" else f"\\underline{{{value}}}"
            if not r.stars:
                cells[(r.variant, r.arch)] = value
            elif fmt == "markdown":  # escaped, so the stars are not read as emphasis
                cells[(r.variant, r.arch)] = r.stars.replace("*", "\\*") + " " + value
            else:
                cells[(r.variant, r.arch)] = f"\\textsuperscript{{{r.stars}}}{value}"
        titles = [ARCH_TITLES.get(a, a) for a in archs]
        if fmt == "markdown":
            lines += [f"**{dataset}**", "", "| Layer | " + " | ".join(titles) + " |",
                      "|---|" + "---|" * len(archs)]
            for v in variants:
                lines.append(f"| {_row_title(v, fmt)} | "
                             + " | ".join(cells.get((v, a), "–") for a in archs) + " |")
            lines.append("")
        else:
            lines += [f"% {dataset}", "\\begin{tabular}{l" + "c" * len(archs) + "}", "\\toprule",
                      f"\\multicolumn{{{len(archs) + 1}}}{{c}}{{{dataset}}} \\\\", "\\midrule",
                      "Layer & " + " & ".join(titles) + " \\\\", "\\midrule"]
            for v in variants:
                lines.append(f"{_row_title(v, fmt)} & "
                             + " & ".join(cells.get((v, a), "--") for a in archs) + " \\\\")
            lines += ["\\bottomrule", "\\end{tabular}", ""]
    if fmt == "markdown":
        lines.append("Welch's t-test against base: ns p ≥ 0.05, \\* p < 0.05, \\*\\* p < 0.01, "
                     "\\*\\*\\* p < 0.001. Bold: best, underlined: second best, ↓: significantly "
                     "below base.")
    return "\n".join(lines) + "\n"


def p_distribution(sources: Iterable[str | os.PathLike] | None = None, *, device="cpu"):
    """Every trained Lp-mask of every checkpoint in ``sources``: :func:`~neurolp.layers.mask_table`
    rows (layer, depth, channel, p, α, θ, γ, …) with model, arch, variant, p_init, dataset, seed
    and path. Checkpoints without Lp layers are left out and listed in ``df.attrs["skipped"]``."""
    import pandas as pd

    from neurolp.layers import lp_layers, mask_table
    from neurolp.train.checkpoint import load_model

    runs = collect_runs(sources, kinds=("final", "best", "model"))
    frames, skipped = [], []
    for r in runs.itertuples():
        model, meta = load_model(r.path, device)
        if not lp_layers(model):
            skipped.append(r.path)
            continue
        t = mask_table(model)
        for col in ("model", "arch", "variant", "p_init", "dataset", "seed", "path"):
            t.insert(0 if col == "model" else len(t.columns), col, getattr(r, col))
        frames.append(t)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs["skipped"] = skipped
    return df


def p_summary(masks):
    """Tables 6–7: median and std (ddof 1) of p over all masks of a layer, pooled over seeds, per
    dataset × arch × p_init × layer depth; plus mean, count and the number of runs."""
    if masks.empty:
        raise ConfigError("no Lp-masks to summarise (no lp{p}- checkpoints found)")
    g = masks.groupby(["dataset", "arch", "p_init", "depth"], sort=True)
    out = g["p"].agg(median="median", std="std", mean="mean", n_masks="count").reset_index()
    out["n_runs"] = g["path"].nunique().to_numpy()
    out["layer"] = g["layer"].first().to_numpy()
    return out


def format_p_table(summary, fmt: str = "markdown", *, digits: int = 2) -> str:
    """Tables 6–7 layout: rows arch × layer depth, columns p_init, cells ``median ± std``."""
    if fmt not in ("markdown", "latex"):
        raise ConfigError(f"fmt must be markdown or latex, got {fmt!r}")
    pm = " $\\pm$ " if fmt == "latex" else " ± "
    lines = []
    for dataset, d in summary.groupby("dataset", sort=False):
        ps = sorted(d["p_init"].unique())
        head = [f"Lp-Conv (p={p:g})" if fmt == "markdown" else f"$L_p$-Conv ($p={p:g}$)" for p in ps]
        if fmt == "markdown":
            lines += [f"**{dataset}**", "", "| Model | Layer | " + " | ".join(head) + " |",
                      "|---|---|" + "---|" * len(ps)]
        else:
            lines += [f"% {dataset}", "\\begin{tabular}{ll" + "c" * len(ps) + "}", "\\toprule",
                      "Model & Layer & " + " & ".join(head) + " \\\\", "\\midrule"]
        for arch, a in d.groupby("arch", sort=False):
            for i, depth in enumerate(sorted(a["depth"].unique())):
                cells = []
                for p in ps:
                    r = a[(a["depth"] == depth) & (a["p_init"] == p)]
                    if r.empty:
                        cells.append("–" if fmt == "markdown" else "--")
                    else:
                        std = r["std"].iloc[0]
                        cells.append(f"{r['median'].iloc[0]:.{digits}f}"
                                     + ("" if math.isnan(std) else f"{pm}{std:.{digits}f}"))
                name = ARCH_TITLES.get(arch, arch) if i == 0 else ""
                if fmt == "markdown":
                    lines.append(f"| {name} | {depth} | " + " | ".join(cells) + " |")
                else:
                    lines.append(f"{name} & {depth} & " + " & ".join(cells) + " \\\\")
        lines += [""] if fmt == "markdown" else ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines) + "\n"
