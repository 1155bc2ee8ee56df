"""Lp-mask math shared by LpConv2d, MPND fitting and plots (paper Eq. 2).

``M_o(Δs) = exp(−Σ_i |(C_o Δs)_i|^{p_o})`` over raw offsets Δs from the kernel centre, β = 1.
"""

from __future__ import annotations

import torch

__all__ = ["abs_pow", "offset_grid", "lp_mask"]

# exp(-e^LOG_MAX) is exactly 0 in float32/float64, so clamping the log-power here changes no value
# but keeps |z|^p finite (and its gradient free of 0·inf) for large p.
LOG_MAX = 60.0
# Mask values below e^-MASK_CUTOFF (~1e-20) are set to exactly 0. They change no output measurably,
# but left in, their products in the convolution (and its backward) reach float32's subnormal range,
# which made CPU training of lp16 models ~11x slower than lp2 (measured on SudokuCNN).
MASK_CUTOFF = 46.0


def abs_pow(z: torch.Tensor, p: torch.Tensor | float) -> torch.Tensor:
    """``|z|^p`` with finite values and gradients for every p > 0 (0 where z = 0).

    Computed as ``exp(p·log|z|)``: the log-domain form lets huge p (256, the paper's binary-mask
    limit) saturate instead of overflowing, and ``where`` gives exact zeros at the kernel centre.
    """
    a = z.abs()
    nonzero = a > 0
    logs = torch.log(torch.where(nonzero, a, torch.ones_like(a)))
    return torch.where(nonzero, torch.exp((p * logs).clamp(max=LOG_MAX)), torch.zeros_like(a))


def offset_grid(kernel_size: tuple[int, int] | int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Offsets ``[2, K_h, K_w]`` (Δh, Δw) of every tap from the kernel centre ((K−1)/2), in taps.

    Odd kernels have an exact zero at the centre; even kernels have half-integer offsets.
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    h = torch.arange(kh, device=device, dtype=dtype) - (kh - 1) / 2
    w = torch.arange(kw, device=device, dtype=dtype) - (kw - 1) / 2
    hh, ww = torch.meshgrid(h, w, indexing="ij")
    return torch.stack([hh, ww])


def lp_mask(C: torch.Tensor, p: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Lp-masks ``[O, K_h, K_w]`` in [0, 1] from ``C [O, 2, 2]``, ``p [O]`` and ``offsets [2, K_h, K_w]``."""
    z = torch.einsum("oij,jhw->oihw", C, offsets)
    s = abs_pow(z, p.reshape(-1, 1, 1, 1)).sum(dim=1)
    return torch.exp(-s).masked_fill(s > MASK_CUTOFF, 0.0)
