"""Representational similarity matrices (RSMs): Pearson correlation between images.

``pearson_rsm(X)`` with ``X`` = ``[images, units]``:

1. units that are constant across images ("dead": a ReLU map that never fires, a neuron with no
   event) or hold NaN are **excluded and counted** — they make correlations undefined or shift them;
2. ``centre=True`` (default, as the Lp-Conv/Bakhtiari code) subtracts each unit's mean across
   images; ``centre=False`` is the plain ``np.corrcoef`` RSM (rsatoolbox, Brain-Score);
3. RSM[a, b] = Pearson correlation across units of image a's and image b's response vectors.
   An image whose (centred) vector is constant across units has an undefined row: NaN, counted.

Comparisons use the strict lower triangle (:func:`rsm_vector`, ``np.tril_indices(n, -1)``), the
anchor's convention: 6,903 entries for 118 images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurolp.errors import InputError

__all__ = ["pearson_rsm", "rsm_vector", "vector_to_rsm", "tril_index", "RSMInfo"]


@dataclass(frozen=True)
class RSMInfo:
    n_units: int            # units given
    n_dead: int             # constant across images: excluded
    n_nan: int              # with NaN responses: excluded
    n_undefined_images: int  # images whose row is undefined (NaN in the RSM)

    @property
    def n_used(self) -> int:
        return self.n_units - self.n_dead - self.n_nan


def tril_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the strict lower triangle of an ``n × n`` matrix."""
    return np.tril_indices(n, k=-1)


def rsm_vector(rsm) -> np.ndarray:
    """The strict lower triangle of an RSM (or of a stack ``[..., n, n]``) as a vector."""
    rsm = np.asarray(rsm)
    n = rsm.shape[-1]
    if rsm.shape[-2] != n:
        raise InputError(f"an RSM must be square, got shape {rsm.shape}")
    i, j = tril_index(n)
    return rsm[..., i, j]


def vector_to_rsm(vec, diagonal: float = 1.0) -> np.ndarray:
    """Inverse of :func:`rsm_vector` (symmetric, with ``diagonal`` on the diagonal)."""
    vec = np.asarray(vec, dtype=np.float64)
    m = vec.shape[-1]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise InputError(f"{m} is not the length of a strict lower triangle")
    out = np.full(vec.shape[:-1] + (n, n), diagonal, dtype=np.float64)
    i, j = tril_index(n)
    out[..., i, j] = vec
    out[..., j, i] = vec
    return out


def pearson_rsm(X, centre: bool = True) -> tuple[np.ndarray, RSMInfo]:
    """``(rsm [N, N] float64, RSMInfo)`` from responses ``X`` of shape ``[N, ...]`` (flattened).

    Accepts numpy arrays or torch tensors; large inputs are handled in float32 with torch (the
    matrix product dominates), small ones in float64.
    """
    import torch

    t = torch.as_tensor(X)
    if t.ndim < 2:
        raise InputError(f"responses must be [images, units...], got shape {tuple(t.shape)}")
    n = t.shape[0]
    t = t.reshape(n, -1)
    if not torch.is_floating_point(t):
        t = t.float()
    big = t.numel() > 20_000_000
    t = t.float() if big else t.double()
    n_units = t.shape[1]
    nan_cols = torch.isnan(t).any(dim=0)
    n_nan = int(nan_cols.sum())
    if n_nan:
        t = t[:, ~nan_cols]
    dead = (t.amax(dim=0) == t.amin(dim=0)) if t.shape[1] else torch.zeros(0, dtype=torch.bool)
    n_dead = int(dead.sum())
    if n_dead:
        t = t[:, ~dead]
    if t.shape[1] < 2:
        rsm = np.full((n, n), np.nan)
        return rsm, RSMInfo(n_units, n_dead, n_nan, n)
    if centre:
        t = t - t.mean(dim=0, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    norm = torch.linalg.vector_norm(t, dim=1)
    undefined = norm <= (torch.finfo(t.dtype).eps * 16) * norm.max().clamp_min(1e-300)
    z = t / norm.clamp_min(1e-300).unsqueeze(1)
    rsm = (z @ z.T).double().numpy()
    np.clip(rsm, -1.0, 1.0, out=rsm)
    und = undefined.numpy()
    rsm[und, :] = np.nan
    rsm[:, und] = np.nan
    np.fill_diagonal(rsm, 1.0)
    return rsm, RSMInfo(n_units, n_dead, n_nan, int(und.sum()))
