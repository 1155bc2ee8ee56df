"""Lp-convolution (Kwon et al., ICLR 2025, §3, Eq. 2–3, App. A.21).

``LpConv2d`` is an ``nn.Conv2d`` whose weight is multiplied, per output channel, by a trainable
Lp-mask ``M_o(Δs) = exp(−‖C_o Δs‖_p^p)`` (β = 1) before the convolution. Each output channel owns
a 2×2 matrix ``C_o`` and an exponent ``p_o`` (trained as ``log₂ p``, as in the official code); the
mask is shared by all input channels of that filter, so grouped and depthwise convs work as is.

Defaults follow the paper and the official code: offsets in raw taps from the kernel centre
((l−1)/2), ``C`` a free 2×2 matrix initialised to ``diag(1/σ)`` with σ = k/2 of the *original*
kernel size k (when built by :func:`~neurolp.layers.lp_convert`), ``p`` initialised to ``p_init``.
What the official code leaves implicit is an explicit option here:

* ``learn_C`` / ``learn_p`` freeze either part (``lp256f`` freezes both: the paper's †);
* ``p_min`` (default 1) floors the p used in the forward pass. Below p = 1, ``|z|^p`` has unbounded
  slope at z → 0 and C's gradient blows up near the kernel centre; the paper requires p ≥ 1 for the
  L_p norm anyway. The floor is a straight-through clamp (gradients pass as if unclamped), so call
  :meth:`LpConv2d.constrain_` (or :func:`~neurolp.layers.constrain_lp_`) after each optimiser step
  to project log₂p back onto the floor — projected gradient descent; the official Sudoku code
  clamped p the same way;
* ``C_param``: ``"free"`` (the paper's unconstrained matrix, state-dict key ``C``) or ``"spd"``
  (``C = L Lᵀ`` with a lower-triangular ``L`` whose diagonal is kept positive, the paper's suggested
  Cholesky constraint; state-dict key ``L``).

For inference, the masked weight is cached while no gradient is needed (eval mode under
``no_grad``, or frozen C and p), :meth:`LpConv2d.bake` folds the mask into a plain ``nn.Conv2d``
(identical outputs), and :meth:`LpConv2d.crop` returns a smaller plain conv over the taps where the
mask exceeds ``eps``.
"""

from __future__ import annotations

import math
import threading
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from neurolp.mpnd.mask import lp_mask, offset_grid

__all__ = ["LpConv2d", "LargeConv2d", "masked_conv2d", "enlarged_kernel_size", "release_scratch"]

CParam = Literal["free", "spd"]


def enlarged_kernel_size(k: int) -> int:
    """The paper's enlarged kernel ``l = 2⌈k/2⌉ + k`` (2k+1 for odd k, 2k for even k)."""
    return 2 * math.ceil(k / 2) + k


_scratch = threading.local()


def _masked(weight: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``weight * m`` for the duration of one conv call.

    On CPU the product goes into a per-thread scratch buffer that is reused across layers and steps:
    without a caching allocator, a fresh weight-sized buffer costs more in page faults than the
    multiply itself. The buffer holds no state between calls (it is never saved for backward).
    """
    if weight.device.type != "cpu" or not weight.is_contiguous():
        return weight * m
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buf = buffers.get(weight.dtype)
    if buf is None or buf.numel() < weight.numel():
        buf = buffers[weight.dtype] = torch.empty(weight.numel(), dtype=weight.dtype)
    return torch.mul(weight, m, out=buf[: weight.numel()].view(weight.shape))


def release_scratch() -> None:
    """Free this thread's CPU scratch buffer (it is as large as the largest Lp layer's weight)."""
    _scratch.__dict__.pop("buffers", None)


class _MaskedConv2dFn(torch.autograd.Function):
    """``conv2d(x, weight ⊙ mask)`` that does not keep ``weight ⊙ mask`` alive for backward.

    A plain ``F.conv2d(x, weight * mask)`` saves the masked weight (a full copy of the weight) until
    backward; here it is recomputed from ``weight`` and ``mask``, so peak memory matches an unmasked
    conv of the same size.
    """

    @staticmethod
    def forward(ctx, x, weight, mask, bias, stride, padding, dilation, groups):
        w = _masked(weight, mask.unsqueeze(1))
        ctx.save_for_backward(x, weight, mask)
        ctx.conf = (stride, padding, dilation, groups, None if bias is None else bias.shape)
        return torch.ops.aten.convolution(x, w, bias, stride, padding, dilation, False, [0, 0], groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mask = ctx.saved_tensors
        stride, padding, dilation, groups, bias_shape = ctx.conf
        need_x, need_w, need_m, need_b = ctx.needs_input_grad[:4]
        m = mask.unsqueeze(1)
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad_out, x, _masked(weight, m), bias_shape, stride, padding, dilation, False, [0, 0], groups,
            [need_x, need_w or need_m, need_b and bias_shape is not None],
        )
        g_mask = _channel_dot(gw, weight) if need_m else None
        g_weight = gw.mul_(m) if need_w else None  # gw is ours: scale it in place, no new buffer
        return gx, g_weight, g_mask, gb, None, None, None, None


def _channel_dot(a: torch.Tensor, b: torch.Tensor, block_bytes: int = 1 << 22) -> torch.Tensor:
    """``(a * b).sum(dim=1)`` for ``[O, I, H, W]`` tensors, in output-channel blocks.

    Blocks keep the temporary product small enough to stay in cache and in the allocator's reused
    memory; one full-size temporary costs as much in page faults as the multiply itself.
    """
    step = max(1, block_bytes // max(1, a[0].numel() * a.element_size()))
    if step >= a.shape[0]:
        return (a * b).sum(dim=1)
    return torch.cat([(a[i:i + step] * b[i:i + step]).sum(dim=1) for i in range(0, a.shape[0], step)])


def masked_conv2d(x, weight, mask, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Functional Lp-convolution: ``conv2d(x, weight * mask[:, None])`` with numeric padding."""
    return _MaskedConv2dFn.apply(x, weight, mask, bias, list(_pair(stride)), list(_pair(padding)),
                                 list(_pair(dilation)), groups)


class LpConv2d(nn.Conv2d):
    """``nn.Conv2d`` with channel-wise trainable Lp-masks (Kwon et al., ICLR 2025, Eq. 3).

    Args beyond ``nn.Conv2d``'s:
        p_init: initial exponent p (2 ≈ Gaussian, biological; 16/256 ≈ box, artificial).
        sigma_init: σ of ``C₀ = diag(1/σ)`` per spatial dim; default half this layer's kernel size.
            :func:`lp_convert` passes half the *original* kernel size, as the paper does.
        learn_C, learn_p: train C and p (both True in ``lp{p}-`` models, both False in ``lp{p}f-``).
        p_min: floor on the p used in the forward pass (see the module docstring).
        C_param: ``"free"`` (paper) or ``"spd"`` (symmetric positive-definite ``C = L Lᵀ``).
        base_kernel_size: the kernel size before enlargement (provenance; set by ``lp_convert``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device=None,
        dtype=None,
        *,
        p_init: float = 2.0,
        sigma_init=None,
        learn_C: bool = True,
        learn_p: bool = True,
        p_min: float = 1.0,
        C_param: CParam = "free",
        base_kernel_size=None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, device, dtype)
        if p_init <= 0:
            raise ValueError(f"p_init must be > 0, got {p_init}")
        if p_min <= 0:
            raise ValueError(f"p_min must be > 0, got {p_min}")
        if C_param not in ("free", "spd"):
            raise ValueError(f"C_param must be 'free' or 'spd', got {C_param!r}")
        sigma = _pair(sigma_init) if sigma_init is not None else tuple(k / 2 for k in self.kernel_size)
        if min(sigma) <= 0:
            raise ValueError(f"sigma_init must be > 0, got {sigma_init}")
        self.p_init = float(p_init)
        self.sigma_init = tuple(float(s) for s in sigma)
        self.p_min = float(p_min)
        self.C_param = C_param
        self.base_kernel_size = None if base_kernel_size is None else _pair(base_kernel_size)

        factory = {"device": device, "dtype": torch.float32}  # mask parameters stay float32
        self.log2p = nn.Parameter(torch.full((out_channels,), math.log2(p_init), **factory),
                                  requires_grad=learn_p)
        C0 = torch.zeros(out_channels, 2, 2, **factory)
        C0[:, 0, 0], C0[:, 1, 1] = 1.0 / sigma[0], 1.0 / sigma[1]
        if C_param == "free":
            self.C = nn.Parameter(C0, requires_grad=learn_C)
        else:
            # C = L Lᵀ; store log of L's diagonal so it stays positive. diag(1/σ) = L Lᵀ, L = diag(σ^-½).
            L0 = torch.zeros_like(C0)
            L0[:, 0, 0], L0[:, 1, 1] = -0.5 * math.log(sigma[0]), -0.5 * math.log(sigma[1])
            self.L = nn.Parameter(L0, requires_grad=learn_C)
        self.register_buffer("offsets", offset_grid(self.kernel_size, device=device), persistent=False)
        self._cache: tuple | None = None

    # --- parameters -------------------------------------------------------------------------
    def C_matrix(self) -> torch.Tensor:
        """The effective ``C [out, 2, 2]`` (the parameter itself for ``C_param="free"``)."""
        if self.C_param == "free":
            return self.C
        L = torch.tril(self.L, diagonal=-1) + torch.diag_embed(torch.exp(torch.diagonal(self.L, dim1=-2, dim2=-1)))
        return L @ L.transpose(-1, -2)

    @property
    def p(self) -> torch.Tensor:
        """The exponent used in the forward pass: ``max(2^log2p, p_min)`` per output channel.

        A straight-through clamp: the value is floored, the gradient is that of ``2^log2p``, so a
        p sitting on the floor can still grow (projected gradient descent with :meth:`constrain_`).
        """
        p = torch.exp2(self.log2p)
        return p + (p.clamp(min=self.p_min) - p).detach()

    def _mask_params(self) -> tuple[nn.Parameter, ...]:
        return (self.log2p, self.C if self.C_param == "free" else self.L)

    @torch.no_grad()
    def constrain_(self) -> LpConv2d:
        """Project ``log₂p`` back onto ``p ≥ p_min`` in place (call after an optimiser step)."""
        self.log2p.clamp_(min=math.log2(self.p_min))
        return self

    def mask(self) -> torch.Tensor:
        """The Lp-masks ``[out, K_h, K_w]`` in [0, 1]."""
        return lp_mask(self.C_matrix(), self.p, self.offsets)

    # --- forward ----------------------------------------------------------------------------
    def _needs_mask_grad(self) -> bool:
        return torch.is_grad_enabled() and any(q.requires_grad for q in self._mask_params())

    def masked_weight(self) -> torch.Tensor:
        """``weight ⊙ M`` (cached while no gradient to C, p or the weight is needed)."""
        needs_grad = torch.is_grad_enabled() and (self.weight.requires_grad or self._needs_mask_grad())
        if needs_grad:
            return self.weight * self.mask().to(self.weight.dtype).unsqueeze(1)
        key = (self.weight.data_ptr(), self.weight._version, self.weight.dtype, self.weight.device,
               *((q.data_ptr(), q._version) for q in self._mask_params()))
        if self._cache is None or self._cache[0] != key:
            with torch.no_grad():
                w = self.weight * self.mask().to(self.weight.dtype).unsqueeze(1)
            self._cache = (key, w)
        return self._cache[1]

    def _apply(self, fn, *args, **kwargs):
        self._cache = None  # moving or casting the module invalidates the cached masked weight
        return super()._apply(fn, *args, **kwargs)

    def _pad_input(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Apply non-zero padding modes and string paddings explicitly, returning numeric padding."""
        if self.padding_mode == "zeros" and not isinstance(self.padding, str):
            return x, self.padding
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, self._reversed_padding_repeated_twice, mode=mode), (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight_grad = torch.is_grad_enabled() and self.weight.requires_grad
        if not (weight_grad or self._needs_mask_grad()):
            return self._conv_forward(x, self.masked_weight(), self.bias)
        x, padding = self._pad_input(x)
        weight, mask, bias = self.weight, self.mask(), self.bias
        if torch.is_autocast_enabled(x.device.type):
            dt = torch.get_autocast_dtype(x.device.type)
            x, weight, mask = x.to(dt), weight.to(dt), mask.to(dt)
            bias = None if bias is None else bias.to(dt)
        else:
            mask = mask.to(weight.dtype)
        return masked_conv2d(x, weight, mask, bias, self.stride, padding, self.dilation, self.groups)

    # --- inference ----------------------------------------------------------------------------
    def _plain_conv(self, kernel_size, padding) -> nn.Conv2d:
        return nn.Conv2d(self.in_channels, self.out_channels, kernel_size, self.stride, padding,
                         self.dilation, self.groups, self.bias is not None, self.padding_mode,
                         device=self.weight.device, dtype=self.weight.dtype)

    @torch.no_grad()
    def bake(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` with the mask folded into its weight (identical outputs)."""
        conv = self._plain_conv(self.kernel_size, self.padding)
        conv.weight.copy_(self.weight * self.mask().to(self.weight.dtype).unsqueeze(1))
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv.train(self.training)

    def _crop_margins(self, eps: float) -> tuple[int, int]:
        support = self.mask().detach().amax(dim=0) > eps  # [K_h, K_w], union over output channels
        margins = []
        for dim, k in enumerate(self.kernel_size):
            kept = support.any(dim=1 - dim).nonzero().flatten()
            r = k // 2 if kept.numel() == 0 else min(int(kept[0]), k - 1 - int(kept[-1]))
            r = min(r, (k - 1) // 2)
            if isinstance(self.padding, str):
                r = r if self.padding == "same" else 0
            else:  # the cropped conv needs non-negative padding: pad − r·dilation ≥ 0
                r = min(r, self.padding[dim] // self.dilation[dim])
            margins.append(r)
        return margins[0], margins[1]

    @torch.no_grad()
    def crop(self, eps: float = 1e-3) -> nn.Conv2d:
        """A smaller plain ``nn.Conv2d`` over the taps where some channel's mask exceeds ``eps``.

        Lp-masks are point-symmetric (M(Δs) = M(−Δs)), so the kept box is centred and the output
        geometry is unchanged. Dropped taps each carry ``|w·M| ≤ eps·|w|``; the exact bound on the
        output change is ``max|x| · crop_error_bound(eps)`` per output channel.
        """
        rh, rw = self._crop_margins(eps)
        kh, kw = self.kernel_size
        if isinstance(self.padding, str):
            padding = self.padding
        else:
            padding = (self.padding[0] - rh * self.dilation[0], self.padding[1] - rw * self.dilation[1])
        conv = self._plain_conv((kh - 2 * rh, kw - 2 * rw), padding)
        w = self.weight * self.mask().to(self.weight.dtype).unsqueeze(1)
        conv.weight.copy_(w[..., rh:kh - rh, rw:kw - rw])
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv.train(self.training)

    @torch.no_grad()
    def crop_error_bound(self, eps: float = 1e-3) -> torch.Tensor:
        """Per output channel, Σ|w ⊙ M| over the taps :meth:`crop` drops (times max|x| bounds the error)."""
        rh, rw = self._crop_margins(eps)
        w = (self.weight * self.mask().to(self.weight.dtype).unsqueeze(1)).abs().float()
        kh, kw = self.kernel_size
        return w.sum(dim=(1, 2, 3)) - w[..., rh:kh - rh, rw:kw - rw].sum(dim=(1, 2, 3))

    def extra_repr(self) -> str:
        s = super().extra_repr()
        learn = [n for n, q in zip(("p", "C"), self._mask_params()) if q.requires_grad]
        s += f", p_init={self.p_init:g}, sigma_init={self.sigma_init}, C_param={self.C_param!r}"
        s += f", learn={'+'.join(learn) or 'none'}"
        if self.base_kernel_size is not None:
            s += f", base_kernel_size={self.base_kernel_size}"
        return s


class LargeConv2d(nn.Conv2d):
    """A plain enlarged conv (the paper's "Large" baseline): ``l×l`` kernel, no mask.

    Identical to ``nn.Conv2d``; the subclass only records ``base_kernel_size`` so conversions are
    idempotent and reports can say what was enlarged.
    """

    def __init__(self, *args, base_kernel_size=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.base_kernel_size = None if base_kernel_size is None else _pair(base_kernel_size)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", base_kernel_size={self.base_kernel_size}"
