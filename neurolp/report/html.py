"""The report as one self-contained HTML page: tables inline, figures embedded as base64 PNGs, no
script, no external file or server — it opens offline and can be mailed or archived as is."""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["summary_table", "render_html"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ddd;margin-top:1.8em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;margin:.4em 0}
.meta{color:#666;font-size:.85em}code{background:#f6f6f6;padding:0 .2em}
details{margin:.6em 0}summary{cursor:pointer;color:#245}
.note{font-size:.85em;color:#444}
"""


def _fmt(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}g}"


def _mi(median, q25, q75) -> str:
    if not np.isfinite(median):
        return "–"
    return f"{median:.3g} [{q25:.3g}, {q75:.3g}]"


def summary_table(result) -> pd.DataFrame:
    """One row per model: the headline of every measure (what the page opens with)."""
    m = result.measures
    rows = []
    v1 = m[(m["measure"] == "mpnd_p") & (m["model"].str.startswith("mouse V1"))]
    for r in result.models.itertuples(index=False):
        g = m[m["model"] == r.model]

        def one(measure, **where):
            sel = g[g["measure"] == measure]
            for k, v in where.items():
                sel = sel[sel[k] == v]
            return sel.iloc[0] if len(sel) else None

        row = {"model": r.model, "source": r.source, "first conv": r.first_kernel,
               "parameters": f"{r.parameters / 1e6:.2f} M"}
        p = one("mpnd_p")
        row["MPND p (median [IQR])"] = _mi(p["value"], p["q25"], p["q75"]) if p is not None else "–"
        t = one("mpnd_p_vs_v1_p_holm")
        row["vs V1 (Holm p)"] = _fmt(t["value"]) if t is not None else "–"
        b = one("mpnd_p_at_bound")
        row["fits at p bound"] = f"{b['value']:.0%}" if b is not None else "–"
        for name, label in (("lp_p", "learned p"), ("lp_alpha", "α"), ("lp_theta", "θ"),
                            ("lp_gamma", "γ")):
            x = one(name, layer="all")
            row[label] = _mi(x["value"], x["q25"], x["q75"]) if x is not None else "–"
        best = one("rsa_best_normalised", area="all")
        if best is not None and np.isfinite(best["value"]):
            ci = (f" [{best['ci_low']:.3g}, {best['ci_high']:.3g}]"
                  if np.isfinite(best["ci_low"]) else "")
            row["best RSA (normalised, CI)"] = f"{best['value']:.3g}{ci}"
            mx = result.rsa.maxima
            top = mx[(mx["model"] == r.model) & (mx["area"] == "all")]
            area = top["best_area"].iloc[0] if len(top) and "best_area" in top else ""
            row["at layer / area"] = f"{best['layer']} / {area}"
            raw = one("rsa_best_raw", area="all")
            row["best RSA (raw)"] = _fmt(raw["value"]) if raw is not None else "–"
        acc = one("accuracy_top1")
        if acc is not None:
            row["top-1 (%)"] = f"{acc['value']:.2f}"
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(v1):
        r = v1.iloc[0]
        out.attrs["v1"] = _mi(r["value"], r["q25"], r["q75"])
    return out


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


def _table(df: pd.DataFrame, digits: int = 4) -> str:
    if df is None or df.empty:
        return "<p class=note>(none)</p>"
    return df.to_html(index=False, na_rep="–", border=0, escape=True,
                      float_format=lambda v: f"{v:.{digits}g}")


def render_html(result, figures: dict[str, Path], *, title: str = "neurolp brain-likeness report",
                command: str = "", provenance: dict | None = None) -> str:
    """The page (a string). ``figures`` maps a section key (``mpnd``, ``masks``, ``rsa_best``,
    ``rsa_profiles``, ``accuracy``, ``heatmap:<model>``) to a PNG file."""
    from neurolp import __version__

    prov = provenance or {}
    esc = html.escape
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p class=meta>{len(result.models)} model(s); generated {esc(now)} by neurolp "
             f"{esc(__version__)}" + (f" (git {esc(str(prov['git_commit'])[:12])})"
                                      if prov.get("git_commit") else "")
             + (f"; seed {esc(str(prov['seed']))}" if "seed" in prov else "") + "</p>"]
    if command:
        parts.append(f"<p class=meta>command: <code>{esc(command)}</code></p>")
    summ = summary_table(result)
    parts.append("<h2>Summary</h2>")
    if "v1" in summ.attrs:
        parts.append(f"<p>Mouse V1 L2/3 synaptic inputs (Rossi et al. 2020): MPND p = "
                     f"{esc(summ.attrs['v1'])} (median [IQR]); the paper reports p near 2 for V1.</p>")
    parts.append(_table(summ))
    parts.append("<h2>First-layer receptive fields (MPND, paper Fig. 1)</h2>")
    parts.append("<p class=note>One functional receptive field per input image: the tap offsets of "
                 "the first convolution's functional synapses (|input × weight| above its std, App. "
                 "A.2), fitted with the multivariate p-generalised normal distribution together with "
                 "the mouse V1 receptive fields. p → the upper bound means a box-like (flat) RF; "
                 "untrained convolutions typically end there.</p>")
    if "mpnd" in figures:
        parts.append(_img(figures["mpnd"]))
    cols = [c for c in ("label", "n", "median_p", "q25_p", "q75_p", "p_at_bound", "kernel",
                        "welch_t_vs_v1", "welch_p_holm_vs_v1", "welch_note")
            if c in result.mpnd_summary]
    parts.append(_table(result.mpnd_summary[cols]))
    parts.append("<h2>Learned Lp-masks (p, α, θ, γ)</h2>")
    if len(result.masks):
        if "masks" in figures:
            parts.append(_img(figures["masks"]))
        agg = (result.masks.groupby("model", sort=False)
               .agg(layers=("layer", "nunique"), masks=("p", "size"), p_median=("p", "median"),
                    alpha_median=("alpha", "median"), theta_median=("theta", "median"),
                    gamma_median=("gamma", "median")).reset_index())
        parts.append(_table(agg))
        parts.append("<p class=note>θ is undefined for isotropic masks (γ = 1), e.g. every mask of "
                     "an untrained Lp model.</p>")
    else:
        parts.append("<p class=note>No model has Lp layers.</p>")
    parts.append("<h2>Representational similarity to the brain (paper Fig. 6, 11)</h2>")
    rsa = result.rsa
    if rsa is None:
        parts.append("<p class=note>Not run: no brain data (--allen-cache or --neural).</p>")
    else:
        cfg = rsa.config
        brain = (f"neural data {rsa.selection.get('neural')}" if rsa.brain_source == "neural" else
                 "Allen Brain Observatory natural scenes")
        parts.append(f"<p class=note>{esc(brain)}; preset {esc(cfg.preset)}: comparator "
                     f"{esc(cfg.comparator)}, normalised by {esc(cfg.normalise_by)}, "
                     f"{cfg.n_boot} bootstrap samples over stimuli and subjects, layer choice "
                     f"{esc(cfg.layer_selection)}. The best layer's CI is the bootstrap CI of that "
                     "layer's score (the max over layers is biased upwards).</p>")
        for n in rsa.notes:
            parts.append(f"<p class=note>{esc(str(n))}</p>")
        for key in ("rsa_best", "rsa_profiles", "rsa_max"):
            if key in figures:
                parts.append(_img(figures[key]))
        mx = rsa.maxima.drop(columns=[c for c in ("checkpoint", "preset", "stimuli")
                                      if c in rsa.maxima])
        parts.append(_table(mx))
        heat = [k for k in figures if k.startswith("heatmap:")]
        if heat:
            parts.append("<details><summary>layer × area heatmaps</summary>")
            parts += [_img(figures[k]) for k in heat]
            parts.append("</details>")
        stim = "".join(f"<li>{esc(m)}: {esc(s)}</li>" for m, s in rsa.stimuli.items())
        parts.append(f"<details><summary>stimulus preprocessing</summary><ul>{stim}</ul></details>")
    parts.append("<h2>Accuracy</h2>")
    if len(result.accuracy):
        if "accuracy" in figures:
            parts.append(_img(figures["accuracy"]))
        parts.append(_table(result.accuracy))
    else:
        parts.append("<p class=note>Not run: no evaluation set (--eval-dataset).</p>")
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(str(n))}</li>" for n in result.notes)
                     + "</ul>")
    parts.append("<h2>All measures</h2><details><summary>the tidy table (report.csv)</summary>"
                 + _table(result.measures) + "</details>")
    if result.timings:
        parts.append("<p class=meta>time: " + esc(", ".join(f"{k} {v:.1f} s"
                                                           for k, v in result.timings.items()))
                     + "</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
