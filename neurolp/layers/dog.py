"""Difference-of-Gaussians (DoG) initialisation of depthwise convolutions.

Babaiee, Kiasari, Rus & Grosu, "Neural Echos: Depthwise Convolutional Filters Replicate Biological
Receptive Fields", WACV 2024 (arXiv 2401.10178): trained depthwise kernels look like retinal
centre-surround receptive fields, so depthwise layers are initialised with on-centre (excitatory)
and off-centre (inhibitory) DoG kernels of several centre-to-surround ratios γ.

The kernel follows the closed form of the authors' earlier On-Off Center-Surround work (Babaiee et
al., ICML 2021), as summarised in ``notes/seed-systems.md`` §C.2 (reimplemented from the formulas):

* centre radius ``r = γ (K + 1) / 2``, centre cell ``c = (K - 1) / 2`` (0-based),
  ``σ = r / (2γ) · sqrt((1 - γ²) / (-ln γ))``;
* ``E = exp(-d² / (2γ²σ²)) / γ²`` (centre), ``I = exp(-d² / (2σ²))`` (surround); ``E = I`` exactly
  at ``d = r``, so ``r`` is the zero crossing of ``E - I`` (the centre-surround border);
* ``w = A_c E + A_s I`` with ``(A_c, A_s)`` solving the 2×2 system "the centre cells (E >= I,
  i.e. d <= r) sum to +1, the surround cells (d > r) sum to -1"; so the kernel sums to 0. The
  off-centre kernel is ``-w``.

The original partition compared E and I in floating point, so cells lying exactly on the circle
``d = r`` (the 4 edge midpoints for K = 3, γ = 0.5, or the 4 cells at distance 2 for K = 7,
γ = 0.5) fell on either side by rounding noise. Here cells with ``|d - r| <= tie_tol`` are explicit
E = I ties and belong to the centre, which gives the published K = 3, γ = 0.5 kernel (centre 1.509,
edges -0.127, corners -0.250). Tie cells carry ``(A_c + A_s) E``, which is negative, so "centre mass
+1" is a statement about the region d <= r, not about the positive entries alone (for K = 7,
γ = 0.5 the positive entries sum to 1.049).

K must be odd (the centre is a cell) and γ must leave some cell outside the circle: see
:func:`dog_gamma_range`.

Not in the public descriptions (marked UNVERIFIED in the notes) and therefore choices made here,
each an argument: "alternate" gives even channels on-centres and odd channels off-centres, with γ
cycling over ``gammas`` per on/off pair; the kernels keep their unit mass (``scale=1``) rather than
being rescaled to the layer's default initialisation (``scale="match"`` does that); biases are left
as they were.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from neurolp.errors import ConfigError

__all__ = ["dog_kernel", "dog_coefficients", "dog_gamma_range", "dog_gaussians", "dog_centre_mask",
           "depthwise_convs", "init_depthwise_dog_",
           "DEFAULT_GAMMAS", "TIE_TOL"]

DEFAULT_GAMMAS = (0.3, 0.5, 0.7)  # valid for every K >= 3 (see dog_gamma_range)
TIE_TOL = 1e-6                    # cells within this distance (pixels) of d = r are E = I ties


def dog_gamma_range(K: int) -> tuple[float, float]:
    """The open interval of γ for which a K×K DoG has a surround: the corners must lie outside the
    centre circle, ``γ (K + 1) / 2 < sqrt(2) (K - 1) / 2``, and γ < 1 (E is the narrower Gaussian)."""
    return 0.0, min(1.0, math.sqrt(2) * (K - 1) / (K + 1))


def _check(K, gamma, tie_tol: float = TIE_TOL) -> tuple[int, float]:
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 3 or K % 2 == 0:
        raise ConfigError(f"DoG kernel size K must be an odd integer >= 3 (the centre is a cell), got {K!r}")
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        raise ConfigError(f"DoG γ must be a number in (0, 1), got {gamma!r}") from None
    if not 0 < gamma < 1:
        raise ConfigError(f"DoG γ (centre-to-surround ratio) must lie in (0, 1), got {gamma}")
    r, corner = gamma * (K + 1) / 2, math.sqrt(2) * (K - 1) / 2
    if r >= corner - tie_tol:
        raise ConfigError(f"γ = {gamma} leaves a {K}×{K} DoG without surround cells (centre radius "
                          f"{r:.3f} >= corner distance {corner:.3f}); "
                          f"use γ < {dog_gamma_range(int(K))[1]:.3f} for K = {K}")
    return int(K), gamma


def _radius_sigma(K: int, gamma: float) -> tuple[float, float]:
    r = gamma * (K + 1) / 2
    return r, r / (2 * gamma) * math.sqrt((1 - gamma ** 2) / (-math.log(gamma)))


def dog_gaussians(d, K: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The centre ``E(d) = exp(-d²/(2γ²σ²)) / γ²`` and surround ``I(d) = exp(-d²/(2σ²))`` profiles
    of a K×K DoG at distances ``d`` from the centre (they cross at ``d = r``)."""
    K, gamma = _check(K, gamma)
    _, sigma = _radius_sigma(K, gamma)
    d2 = np.asarray(d, dtype=np.float64) ** 2
    return np.exp(-d2 / (2 * gamma ** 2 * sigma ** 2)) / gamma ** 2, np.exp(-d2 / (2 * sigma ** 2))


def _grids(K: int, gamma: float, tie_tol: float):
    r, sigma = _radius_sigma(K, gamma)
    c = (K - 1) / 2
    yy, xx = np.mgrid[0:K, 0:K].astype(np.float64)
    d = np.sqrt((xx - c) ** 2 + (yy - c) ** 2)
    E, I = dog_gaussians(d, K, gamma)
    centre = d <= r + tie_tol  # E >= I: inside the circle, ties (d = r up to rounding) included
    return E, I, centre, r, sigma


def dog_coefficients(K: int, gamma: float, *, tie_tol: float = TIE_TOL) -> dict[str, float]:
    """``A_c``, ``A_s``, the centre radius ``r`` and surround width ``σ`` of a K×K DoG (on-centre)."""
    K, gamma = _check(K, gamma, tie_tol)
    E, I, centre, r, sigma = _grids(K, gamma, tie_tol)
    surround = ~centre
    # Σ_centre (A_c E + A_s I) = +1 and Σ_surround (A_c E + A_s I) = -1: a 2×2 solve by Cramer's rule.
    a, b = E[centre].sum(), I[centre].sum()
    c, d = E[surround].sum(), I[surround].sum()
    det = a * d - b * c  # > 0: E >= I on the centre (E > I at d = 0), E < I on the surround
    A_c = (d + b) / det
    A_s = -(a + c) / det
    return {"A_c": float(A_c), "A_s": float(A_s), "r": r, "sigma": sigma}


def dog_kernel(K: int, gamma: float, on: bool = True, *, tie_tol: float = TIE_TOL,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The ``[K, K]`` DoG kernel of centre-to-surround ratio ``gamma`` (Neural Echos / OOCS).

    On-centre (``on=True``): the centre disc ``d <= r = γ (K + 1) / 2`` (where E >= I) has total
    mass +1, the surround ``d > r`` mass -1, so the kernel sums to 0. ``on=False`` gives the
    off-centre kernel ``-w``.
    E.g. ``dog_kernel(3, 0.5)`` has centre 1.509, edges -0.127, corners -0.250.
    """
    K, gamma = _check(K, gamma, tie_tol)
    E, I, _, _, _ = _grids(K, gamma, tie_tol)
    co = dog_coefficients(K, gamma, tie_tol=tie_tol)
    w = co["A_c"] * E + co["A_s"] * I
    return torch.as_tensor(w if on else -w, dtype=dtype, device="cpu")


def dog_centre_mask(K: int, gamma: float, *, tie_tol: float = TIE_TOL) -> torch.Tensor:
    """The ``[K, K]`` boolean centre region ``d <= r`` (ties included) of :func:`dog_kernel`."""
    K, gamma = _check(K, gamma, tie_tol)
    return torch.as_tensor(_grids(K, gamma, tie_tol)[2], device="cpu")


def depthwise_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """``(name, conv)`` of every depthwise convolution: ``groups == in_channels == out_channels``
    and a kernel larger than 1×1 (a model that *is* such a conv gives ``[("", model)]``)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups == m.in_channels == m.out_channels
            and max(m.kernel_size) > 1]


def _generator(seed: int | None) -> torch.Generator:
    if seed is None:  # follow the global RNG (seeded by `neurolp train --seed`)
        seed = int(torch.randint(0, 2 ** 62, (1,), device="cpu"))
    return torch.Generator(device="cpu").manual_seed(int(seed))


def _validate_gammas(gammas) -> tuple[float, ...]:
    if isinstance(gammas, (int, float)):
        gammas = (gammas,)
    try:
        gammas = tuple(float(g) for g in gammas)
    except (TypeError, ValueError):
        raise ConfigError(f"gammas must be a list of numbers in (0, 1), got {gammas!r}") from None
    if not gammas:
        raise ConfigError("gammas is empty; give at least one centre-to-surround ratio, e.g. [0.5]")
    return gammas


@torch.no_grad()
def init_depthwise_dog_(model: nn.Module, gammas: Sequence[float] | float = DEFAULT_GAMMAS, *,
                        pattern: str = "alternate", share: float = 1.0, seed: int | None = None,
                        scale: float | str = 1.0, layers: Iterable[str] | None = None):
    """Overwrite the kernels of ``model``'s depthwise convolutions with DoG kernels, in place.

    * ``gammas`` — centre-to-surround ratios to use;
    * ``pattern`` — ``"alternate"``: channel ``i`` is on-centre when ``i`` is even, off-centre when
      odd, γ = ``gammas[(i // 2) % len(gammas)]``; ``"random"``: on/off with probability ½ and γ
      uniform over ``gammas``, per channel;
    * ``share`` — fraction of each layer's channels replaced (a seeded random subset; the other
      channels keep their initialisation), as in the third-party replication's sweep;
    * ``seed`` — seeds the subset and the random pattern (None: drawn from the global torch RNG);
    * ``scale`` — multiplies every kernel (1: unit centre and surround mass), or ``"match"``: each
      kernel is rescaled to the root-mean-square of the layer's weights before the call, so only the
      shape of the initialisation changes, not its scale (e.g. ConvNeXt's trunc-normal σ = 0.02);
    * ``layers`` — restrict to these module names (default: all depthwise convs).

    Returns a DataFrame with one row per replaced channel: ``layer, channel, on, gamma, K``. Models
    on the meta device are validated but left unwritten.
    """
    import pandas as pd

    gammas = _validate_gammas(gammas)
    if pattern not in ("alternate", "random"):
        raise ConfigError(f"DoG pattern must be 'alternate' or 'random', got {pattern!r}")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ConfigError(f"DoG share (fraction of channels initialised) must lie in (0, 1], got {share!r}")
    if scale != "match" and (isinstance(scale, bool) or not isinstance(scale, (int, float))
                             or not math.isfinite(scale) or scale == 0):
        raise ConfigError(f"DoG scale must be a finite non-zero number or 'match', got {scale!r}")
    convs = depthwise_convs(model)
    if layers is not None:
        wanted = list(layers)
        names = {n for n, _ in convs}
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ConfigError(f"unknown depthwise layer(s) {unknown}; depthwise convs of this model: "
                              f"{', '.join(sorted(names)) or 'none'}")
        convs = [(n, m) for n, m in convs if n in wanted]
    if not convs:
        raise ConfigError(f"{type(model).__name__} has no depthwise convolution (groups == in_channels "
                          "== out_channels, kernel > 1×1) to initialise with DoG kernels")
    gen = _generator(seed)
    rows = []
    for name, conv in convs:
        kh, kw = conv.kernel_size
        if kh != kw:
            raise ConfigError(f"depthwise conv {name!r} has a {kh}×{kw} kernel; DoG kernels are square")
        bank = {(on, g): dog_kernel(kh, g, on) for g in gammas for on in (True, False)}
        if scale == "match":
            rms = 1.0 if conv.weight.is_meta else float(conv.weight.pow(2).mean().sqrt())
            bank = {key: k * (rms / float(k.pow(2).mean().sqrt())) for key, k in bank.items()}
        else:
            bank = {key: k * scale for key, k in bank.items()}
        n = conv.out_channels
        if share < 1:
            chosen = torch.randperm(n, generator=gen, device="cpu")[: max(1, round(share * n))]
            chosen = chosen.sort().values.tolist()
        else:
            chosen = list(range(n))
        if pattern == "random":
            ons = (torch.rand(n, generator=gen, device="cpu") < 0.5).tolist()
            gis = torch.randint(0, len(gammas), (n,), generator=gen, device="cpu").tolist()
        else:
            ons = [i % 2 == 0 for i in range(n)]
            gis = [(i // 2) % len(gammas) for i in range(n)]
        weight = conv.weight
        for i in chosen:
            kernel = bank[(ons[i], gammas[gis[i]])]
            if not weight.is_meta:
                weight[i, 0].copy_(kernel.to(weight.dtype))
            rows.append((name, i, ons[i], gammas[gis[i]], kh))
    return pd.DataFrame(rows, columns=["layer", "channel", "on", "gamma", "K"])
