"""Locally connected layers and weight sharing (Pogodin, Mehta, Lillicrap, Latham, "Towards Biologically
Plausible Convolutional Networks", NeurIPS 2021, arXiv 2106.13031).

A convolution shares one kernel between all output positions; cortex cannot copy synapses between
neurons, so Pogodin et al. replace each conv by a *locally connected* (LC) layer — the same receptive
fields, one kernel per output position — and recover most of the convolution's inductive bias by
*weight sharing* applied every N training steps:

* **instant** sharing: every kernel is replaced by the mean over the positions of its congruence
  class ``(h mod P, w mod P)`` (positions whose receptive fields tile the input without overlap);
* **dynamic** sharing (the "sleep phase"): the layer sees noise tiled with period k over its input,
  so all members of a class receive the same patch ``x``; lateral inhibition subtracts the class mean
  response ``z̄`` and each kernel follows the anti-Hebbian rule
  ``Δw_i = −η [ mean_patterns((z_i − z̄) x) + γ (w_i − w_i⁰) ]`` for ``iters`` iterations of
  ``n_patterns`` patterns. For identical inputs this is gradient descent on ``Σ_i (z_i − z̄)²``,
  which contracts the within-class spread of the kernels; γ pulls them back to the kernels they had
  before the sleep phase. Units whose receptive field touches the padding are not updated.

Here ``P = k / gcd(k, stride)`` per axis, the period of identical patches under k-periodic noise;
it is the paper's ``mod k`` for every layer it uses (k = 3, stride 1 or 2).

``SNR_w`` (per layer, logged once per epoch): for every weight coordinate (out, in, ky, kx), the mean
and the (unbiased) standard deviation across the layer's *non-padded* output positions; SNR_w is the
average of ``|mean| / std`` (std = 0 counts as 1e-20), the convention of the authors' training log.
It is large for nearly convolutional layers and ≈ 0 for independent initialisations.

Sharing moves every kernel at once, so BatchNorm running statistics go stale; after each event
:class:`BatchNormRefresh` re-estimates them on the last training batch (training is unchanged).

Implementation: patches gathered channels-last + a batched matmul over positions. The weight is stored as
``[H_out, W_out, C_out, C_in/groups, k_h, k_w]`` (``weight[i, j]`` is the conv kernel of position
(i, j)). ``chunk_rows`` bounds memory: output rows are computed in chunks and, when gradients are
needed, each chunk is recomputed in the backward pass (activation checkpointing), so the unfolded
input — k² times the input — never exists for more than one chunk.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair
from torch.utils.checkpoint import checkpoint

from neurolp.errors import ConfigError, InputError
from neurolp.layers.convert import Filter, _as_predicate, _is_plain_conv, _set_submodule

__all__ = ["LocallyConnected2d", "lc_convert", "lc_layers", "share_instant_", "share_dynamic_",
           "snr_w", "within_class_variance", "set_weight_sharing", "restart_batchnorm_", "BatchNormRefresh",
           "SharingMode"]

SharingMode = Literal["instant", "dynamic"]
_SNR_STD_FLOOR = 1e-20


def _resolve_padding(padding, kernel_size, dilation, stride) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` for ``F.pad`` from a conv-style padding (int, pair, 'valid', 'same')."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        if stride != (1, 1):
            raise ConfigError("padding='same' needs stride 1 (as in nn.Conv2d)")
        tot = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        # nn.Conv2d puts the extra row/column of an even kernel at the bottom/right
        return tot[1] // 2, tot[1] - tot[1] // 2, tot[0] // 2, tot[0] - tot[0] // 2
    if isinstance(padding, str):
        raise ConfigError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = _pair(padding)
    return pw, pw, ph, ph


class _Patches(torch.autograd.Function):
    """``[B, H, W, C]`` → ``[L, groups, B, k_h·k_w·C/g]``: one gather forward; the backward adds the
    k² tap gradients back with strided slices (much faster than autograd's generic unfold backward)."""

    @staticmethod
    def _windows(x, kernel_size, stride, dilation):
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        return x.unfold(1, dh * (kh - 1) + 1, sh).unfold(2, dw * (kw - 1) + 1, sw)[..., ::dh, ::dw]

    @staticmethod
    def forward(ctx, x, kernel_size, stride, dilation, groups):
        p = _Patches._windows(x, kernel_size, stride, dilation)   # [B, rows, W_out, C, kh, kw]
        b, rows, cols = p.shape[:3]
        ctx.geometry = (x.shape, kernel_size, stride, dilation, groups)
        p = p.unflatten(3, (groups, -1)).permute(1, 2, 3, 0, 5, 6, 4)  # [rows, W_out, g, B, kh, kw, C/g]
        out = p.reshape(rows * cols, groups, b, -1)
        return out.clone() if out._is_view() else out  # (a view only in degenerate shapes, e.g. B = 1, k = 1)

    @staticmethod
    def backward(ctx, grad):
        shape, (kh, kw), (sh, sw), (dh, dw), groups = ctx.geometry
        b, _, _, c = shape
        gx = grad.new_zeros(shape)
        cols = (shape[2] - dw * (kw - 1) - 1) // sw + 1
        g = grad.reshape(-1, cols, groups, b, kh, kw, c // groups)
        rows = g.shape[0]
        for i in range(kh):
            for j in range(kw):
                dst = gx[:, i * dh: i * dh + (rows - 1) * sh + 1: sh, j * dw: j * dw + (cols - 1) * sw + 1: sw]
                dst.unflatten(3, (groups, -1)).add_(g[:, :, :, :, i, j].permute(3, 0, 1, 2, 4))
        return gx, None, None, None, None


class LocallyConnected2d(nn.Module):
    """A 2-D locally connected layer: a convolution's geometry with one kernel per output position.

    Args mirror ``nn.Conv2d`` (``padding`` may be an int, a pair, ``"valid"`` or ``"same"``; zeros
    only) plus ``input_size`` ``(H, W)``, which fixes the number of positions. The bias is one value
    per output channel, as in a conv.

    ``init_eps``: ``None`` draws every position's kernel independently (Kaiming normal, fan-out, as
    for the convs of ResNet); ``ε ≥ 0`` draws one kernel and gives every position
    ``(w + ε ξ_i) / sqrt(1 + ε²)`` with ``ξ_i`` of the same std (``ε = 0``: a convolution).
    ``chunk_rows``: compute (and back-propagate) this many output rows at a time; ``None``: all.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, input_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, *, init_eps: float | None = None,
                 chunk_rows: int | None = None, device=None, dtype=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ConfigError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                              f"divisible by groups ({groups})")
        if chunk_rows is not None and chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be >= 1 or None, got {chunk_rows}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.input_size = tuple(int(s) for s in _pair(input_size))
        self.padding = padding
        self.pad = _resolve_padding(padding, self.kernel_size, self.dilation, self.stride)
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        hp = self.input_size[0] + self.pad[2] + self.pad[3]
        wp = self.input_size[1] + self.pad[0] + self.pad[1]
        self.output_size = ((hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1)
        if min(self.output_size) < 1:
            raise ConfigError(f"a {kh}×{kw} kernel does not fit a {self.input_size} input with padding "
                              f"{padding} and dilation {self.dilation}")
        self.chunk_rows = chunk_rows
        # the period (in output positions) of identical patches when the input repeats every k pixels
        self.share_period = (kh // math.gcd(kh, sh), kw // math.gcd(kw, sw))
        fk = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(*self.output_size, out_channels, in_channels // groups, kh, kw, **fk))
        self.bias = nn.Parameter(torch.empty(out_channels, **fk)) if bias else None
        self.sharing: dict | None = None   # set by set_weight_sharing (training-time behaviour)
        self.neurolp_name: str | None = None  # module name, set by lc_convert (metric keys)
        self.bn_refresh: BatchNormRefresh | None = None  # set by set_weight_sharing on the last LC layer
        self.reset_parameters(init_eps)

    # --- initialisation -------------------------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self, init_eps: float | None = None) -> None:
        kh, kw = self.kernel_size
        std = nn.init.calculate_gain("relu") / math.sqrt(self.out_channels * kh * kw / self.groups)
        if init_eps is None:
            self.weight.normal_(0, std)
        else:
            kernel = torch.empty_like(self.weight[0, 0]).normal_(0, std)
            self._set_from_kernel(kernel, init_eps)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels // self.groups * kh * kw)
            self.bias.uniform_(-bound, bound)

    @torch.no_grad()
    def _set_from_kernel(self, kernel: torch.Tensor, eps: float) -> None:
        if eps < 0:
            raise ConfigError(f"init_eps must be >= 0 (or None for independent kernels), got {eps}")
        self.weight.copy_(kernel.expand_as(self.weight))
        if eps > 0:
            sd = kernel.std() if kernel.numel() > 1 else kernel.abs().mean()
            self.weight.add_(torch.randn_like(self.weight) * (eps * sd)).div_(math.sqrt(1 + eps ** 2))

    @classmethod
    @torch.no_grad()
    def from_conv(cls, conv: nn.Conv2d, input_size, *, eps: float = 0.0,
                  chunk_rows: int | None = None) -> "LocallyConnected2d":
        """An LC layer computing ``conv`` on ``input_size`` inputs: its kernel copied to every position
        (``eps > 0`` adds per-position deviations, see the class doc). Weights are copied, not tied."""
        if conv.padding_mode != "zeros":
            raise ConfigError(f"LocallyConnected2d supports zero padding only, not padding_mode="
                              f"{conv.padding_mode!r}")
        lc = cls(conv.in_channels, conv.out_channels, conv.kernel_size, input_size, conv.stride, conv.padding,
                 conv.dilation, conv.groups, conv.bias is not None, chunk_rows=chunk_rows,
                 device=conv.weight.device, dtype=conv.weight.dtype)
        lc._set_from_kernel(conv.weight.detach(), eps)
        if conv.bias is not None:
            lc.bias.copy_(conv.bias)
        lc.weight.requires_grad_(conv.weight.requires_grad)
        return lc.train(conv.training)

    # --- forward --------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"input_size={self.input_size}, output_size={self.output_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.chunk_rows is not None:
            s += f", chunk_rows={self.chunk_rows}"
        return s

    def _patches(self, xp: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        """Patches of the padded channels-last input ``xp [B, H, W, C]`` for output rows ``[r0, r1)``:
        ``[L, groups, B, k_h·k_w·C_in/g]`` (taps outer, channels inner)."""
        kh, sh, dh = self.kernel_size[0], self.stride[0], self.dilation[0]
        slab = xp[:, r0 * sh: (r1 - 1) * sh + dh * (kh - 1) + 1]
        return _Patches.apply(slab, self.kernel_size, self.stride, self.dilation, self.groups)

    def _kernels(self, r0: int, r1: int) -> torch.Tensor:
        """Weights of output rows ``[r0, r1)`` as ``[L, groups, k_h·k_w·C_in/g, C_out/g]`` (the patch order)."""
        w = self.weight[r0:r1].unflatten(2, (self.groups, -1))      # [rows, W_out, g, C_out/g, C_in/g, kh, kw]
        w = w.permute(0, 1, 2, 5, 6, 4, 3)                          # [rows, W_out, g, kh, kw, C_in/g, C_out/g]
        return w.reshape(-1, self.groups, w[0, 0, 0, ..., 0].numel(), self.out_channels // self.groups)

    def _to_weight_layout(self, g: torch.Tensor, rows: int) -> torch.Tensor:
        """Inverse of :meth:`_kernels` for a ``[L, groups, C_out/g, k_h·k_w·C_in/g]`` tensor."""
        (kh, kw), og = self.kernel_size, self.out_channels // self.groups
        g = g.reshape(rows, self.output_size[1], self.groups, og, kh, kw, -1)
        return g.permute(0, 1, 2, 3, 6, 4, 5).reshape(rows, self.output_size[1], *self.weight.shape[2:])

    def _rows(self, xp: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        out = torch.matmul(self._patches(xp, r0, r1), self._kernels(r0, r1))  # [L, g, B, C_out/g]
        if out.requires_grad:  # the incoming gradient is position-minor; batched matmuls want it dense
            out.register_hook(torch.Tensor.contiguous)
        b = out.shape[2]
        return out.permute(2, 1, 3, 0).reshape(b, self.out_channels, r1 - r0, self.output_size[1])

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """The zero-padded input, channels last ``[B, H, W, C]`` (the patches' layout)."""
        x = x.permute(0, 2, 3, 1)
        l, r, t, b = self.pad
        return F.pad(x, (0, 0, l, r, t, b)) if any(self.pad) else x.contiguous()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[-2:]) != self.input_size or x.shape[1] != self.in_channels:
            where = f" {self.neurolp_name!r}" if self.neurolp_name else ""
            raise InputError(
                f"LocallyConnected2d{where} takes [B, {self.in_channels}, {self.input_size[0]}, "
                f"{self.input_size[1]}] inputs, got {list(x.shape)}: a locally connected layer has one "
                "kernel per position, so the model only accepts the image size it was built for "
                "(create_model(..., image_size=...) / --image-size)")

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """The layer without its bias (what the sleep phase and the conv equivalence use)."""
        self._check_input(x)
        xp = self._pad(x)
        ho = self.output_size[0]
        step = ho if self.chunk_rows is None else min(self.chunk_rows, ho)
        if step >= ho:
            return self._rows(xp, 0, ho)
        recompute = torch.is_grad_enabled() and (xp.requires_grad or self.weight.requires_grad)
        outs = [checkpoint(self._rows, xp, r0, min(r0 + step, ho), use_reentrant=False) if recompute
                else self._rows(xp, r0, min(r0 + step, ho)) for r0 in range(0, ho, step)]
        return torch.cat(outs, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    # --- positions and classes ------------------------------------------------------------------
    def valid_positions(self) -> torch.Tensor:
        """``[H_out, W_out]`` bool: output positions whose receptive field lies inside the input."""
        masks = []
        for n, k, s, d, lo, size in zip(self.output_size, self.kernel_size, self.stride, self.dilation,
                                        (self.pad[2], self.pad[0]), self.input_size):
            start = torch.arange(n, device=self.weight.device) * s - lo
            masks.append((start >= 0) & (start + d * (k - 1) <= size - 1))
        return masks[0][:, None] & masks[1][None, :]

    def position_classes(self) -> torch.Tensor:
        """``[H_out, W_out]`` long: the congruence class ``(i mod P_h)·P_w + (j mod P_w)`` of each position."""
        ph, pw = self.share_period
        i = torch.arange(self.output_size[0], device=self.weight.device) % ph
        j = torch.arange(self.output_size[1], device=self.weight.device) % pw
        return i[:, None] * pw + j[None, :]

    # --- training-time hooks (neurolp.train.hooks) ----------------------------------------------
    def neurolp_after_step(self, step: int) -> None:
        cfg = self.sharing
        if not cfg or step % cfg["every"]:
            return
        if cfg["mode"] == "instant":
            share_instant_(self)
        else:
            gen = torch.Generator(device=self.weight.device)
            gen.manual_seed(cfg.get("seed", 0) * 1_000_003 + step)  # the same on every DDP process
            share_dynamic_(self, eta=cfg["eta"], gamma=cfg["gamma"], iters=cfg["iters"],
                           n_patterns=cfg["n_patterns"], generator=gen)
        if self.bn_refresh is not None:
            self.bn_refresh()

    def neurolp_epoch_metrics(self) -> dict[str, float]:
        return {f"snr_w.{self.neurolp_name}": snr_w(self)} if self.neurolp_name else {}


# --- weight sharing ---------------------------------------------------------------------------------
@torch.no_grad()
def share_instant_(layer: LocallyConnected2d) -> LocallyConnected2d:
    """Instant weight sharing: each kernel becomes the mean over its class ``(h mod P, w mod P)``."""
    ph, pw = layer.share_period
    w = layer.weight
    for i in range(ph):
        for j in range(pw):
            w[i::ph, j::pw] = w[i::ph, j::pw].mean(dim=(0, 1), keepdim=True)
    return layer


def _tiled_noise(layer: LocallyConnected2d, n: int, generator) -> torch.Tensor:
    """``n`` noise patterns ``N(0, 1)`` of size ``[C_in, k_h, k_w]`` tiled over the layer's input."""
    (kh, kw), (h, w) = layer.kernel_size, layer.input_size
    tile = torch.randn(n, layer.in_channels, kh, kw, generator=generator, device=layer.weight.device,
                       dtype=layer.weight.dtype)
    return tile.repeat(1, 1, -(-h // kh), -(-w // kw))[:, :, :h, :w]


@torch.no_grad()
def share_dynamic_(layer: LocallyConnected2d, *, eta: float = 0.1, gamma: float = 1e-5, iters: int = 100,
                   n_patterns: int = 128, generator: torch.Generator | None = None) -> LocallyConnected2d:
    """Dynamic weight sharing (the sleep phase): ``iters`` anti-Hebbian updates on tiled noise.

    Each iteration draws ``n_patterns`` noise patterns tiled with period k, computes the responses
    ``z`` (no bias), subtracts the class mean ``z̄`` over the non-padded members of each class
    (lateral inhibition) and applies ``Δw_i = −η [mean((z_i − z̄) x_i) + γ (w_i − w_i⁰)]`` to the
    non-padded units; ``w⁰`` are the kernels before the sleep phase.
    """
    if eta <= 0 or gamma < 0 or iters < 0 or n_patterns < 1:
        raise ConfigError(f"need eta > 0, gamma >= 0, iters >= 0, n_patterns >= 1; got eta={eta}, "
                          f"gamma={gamma}, iters={iters}, n_patterns={n_patterns}")
    w = layer.weight
    w0 = w.detach().clone()
    valid = layer.valid_positions().flatten()
    if not valid.any():
        return layer
    cls = layer.position_classes().flatten()
    idx = valid.nonzero().squeeze(1)
    n_cls = layer.share_period[0] * layer.share_period[1]
    count = torch.zeros(n_cls, device=w.device, dtype=w.dtype).index_add_(
        0, cls[idx], torch.ones_like(idx, dtype=w.dtype))
    gate = valid.to(w.dtype).view(*layer.output_size, 1, 1, 1, 1)
    ho, wo = layer.output_size
    g, og = layer.groups, layer.out_channels // layer.groups
    chunk = layer.chunk_rows
    for _ in range(iters):
        x = _tiled_noise(layer, n_patterns, generator)
        z = layer.linear(x).flatten(2)                                   # [n, C_out, L]
        zbar = torch.zeros(*z.shape[:2], n_cls, device=w.device, dtype=w.dtype).index_add_(2, cls[idx], z[:, :, idx])
        err = z - (zbar / count.clamp(min=1))[:, :, cls]                 # lateral inhibition
        err = err.view(n_patterns, g, og, ho, wo)
        xp = layer._pad(x)
        step = ho if chunk is None else chunk
        grad = torch.empty_like(w)
        for r0 in range(0, ho, step):                                    # bounded memory, as the forward
            r1 = min(r0 + step, ho)
            p = layer._patches(xp, r0, r1)                               # [L, g, n, K]
            e = err[:, :, :, r0:r1].flatten(3).permute(3, 1, 0, 2)       # [L, g, n, C_out/g]
            grad[r0:r1] = layer._to_weight_layout((e.transpose(-1, -2) @ p).div_(n_patterns), r1 - r0)
        w.sub_(eta * gate * (grad + gamma * (w - w0)))
    return layer


# --- diagnostics ------------------------------------------------------------------------------------
@torch.no_grad()
def snr_w(layer: LocallyConnected2d) -> float:
    """SNR_w: mean over weight coordinates of ``|mean| / std`` across non-padded positions (module doc)."""
    w = layer.weight[layer.valid_positions()]            # [n_valid, C_out, C_in/g, kh, kw]
    if w.shape[0] < 2:
        return float("nan")
    return float((w.mean(0).abs() / w.std(0).clamp(min=_SNR_STD_FLOOR)).mean())


@torch.no_grad()
def within_class_variance(layer: LocallyConnected2d) -> float:
    """Mean over weight coordinates and classes of the variance of the kernels across the non-padded
    members of a class (0 for shared weights; what the sleep phase lowers)."""
    valid, cls = layer.valid_positions().flatten(), layer.position_classes().flatten()
    w = layer.weight.flatten(0, 1)
    tot, n = 0.0, 0
    for c in cls.unique():
        members = w[valid & (cls == c)]
        if members.shape[0] > 1:
            tot += float(members.var(0, unbiased=False).mean()) * members.shape[0]
            n += members.shape[0]
    return tot / n if n else 0.0


# --- conversion -------------------------------------------------------------------------------------
def lc_layers(model: nn.Module) -> list[tuple[str, LocallyConnected2d]]:
    """``(name, layer)`` for every :class:`LocallyConnected2d` in ``model``, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LocallyConnected2d)]


@torch.no_grad()
def _trace_conv_inputs(model: nn.Module, input_size, in_chans: int) -> dict[nn.Conv2d, list[tuple[int, int]]]:
    """Input sizes ``(H, W)`` of every ``nn.Conv2d`` that runs on a dummy input, in call order."""
    seen: dict[nn.Conv2d, list[tuple[int, int]]] = {}

    def hook(mod, args):
        size = tuple(args[0].shape[-2:])
        if size not in seen.setdefault(mod, []):
            seen[mod].append(size)

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model.eval()(torch.zeros(1, in_chans, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return seen


def lc_convert(model: nn.Module, input_size=None, *, skip_first: int = 1, keep_pointwise: bool = True,
               init_eps: float | None = None, chunk_rows: int | None = None, in_chans: int | None = None,
               include: Filter = None, exclude: Filter = None) -> nn.Module:
    """Replace ``nn.Conv2d`` layers by :class:`LocallyConnected2d` in place and return the model.

    Each conv's input size is traced with one dummy forward pass of a ``[1, in_chans, *input_size]``
    zero input (eval mode); ``input_size`` defaults to the ``image_size`` a model made by
    :func:`~neurolp.models.create_model` was built for. Args:
        skip_first: keep the first ``skip_first`` convs *in call order* convolutional (Pogodin et al.
            keep the stem; 0 converts it too).
        keep_pointwise: keep 1×1 convs convolutional (they have no spatial kernel to share).
        init_eps: ``None`` — fresh independent kernels per position (the paper's LC networks);
            ``ε ≥ 0`` — the replaced conv's kernel at every position plus ε-scaled deviations
            (``0``: the network computes exactly what it did).
        chunk_rows: see :class:`LocallyConnected2d`.
        in_chans: channels of the dummy input (default: ``model.in_chans`` or the first conv's).
        include, exclude: module-name glob patterns or ``(name, module) -> bool`` predicates, as in
            :func:`~neurolp.layers.lp_convert`.

    LC layers are not convs, so converting twice changes nothing. A conv that does not run on the
    dummy input, or whose class overrides ``nn.Conv2d.forward``, raises :class:`ConfigError` unless
    excluded.
    """
    if input_size is None:
        input_size = (getattr(model, "neurolp_spec", None) or {}).get("image_size")
        if input_size is None:
            raise ConfigError("lc_convert needs input_size (H, W): locally connected layers have one kernel "
                              "per position, so each conv's input size is traced on an input of that size")
    input_size = tuple(int(s) for s in _pair(input_size))
    if skip_first < 0:
        raise ConfigError(f"skip_first must be >= 0, got {skip_first}")
    if isinstance(model, nn.Conv2d):
        return LocallyConnected2d.from_conv(model, input_size, eps=0.0 if init_eps is None else init_eps,
                                            chunk_rows=chunk_rows)
    if in_chans is None:
        in_chans = getattr(model, "in_chans", None) or next(
            (m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    sizes = _trace_conv_inputs(model, input_size, in_chans)
    order = {m: i for i, m in enumerate(sizes)}
    inc, exc = _as_predicate(include, True), _as_predicate(exclude, False)
    targets = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d) or not inc(name, m) or exc(name, m):
            continue
        if m in order and order[m] < skip_first or keep_pointwise and m.kernel_size == (1, 1):
            continue
        if m not in sizes:
            raise ConfigError(f"conv {name!r} does not run on a {input_size} input, so its input size is "
                              f"unknown; pass exclude=[{name!r}] to leave it as it is")
        if len(sizes[m]) > 1:
            raise ConfigError(f"conv {name!r} runs on inputs of sizes {' and '.join(map(str, sizes[m]))}; a "
                              f"locally connected layer needs one input size: pass exclude=[{name!r}]")
        if not _is_plain_conv(m):
            raise ConfigError(f"cannot convert {name} ({type(m).__name__}): it overrides nn.Conv2d's "
                              f"forward, which a locally connected layer would drop; pass exclude=[{name!r}]")
        targets.append((name, m))
    for name, conv in targets:
        lc = LocallyConnected2d.from_conv(conv, sizes[conv][0], eps=0.0 if init_eps is None else init_eps,
                                          chunk_rows=chunk_rows)
        if init_eps is None:
            lc.reset_parameters(None)  # fresh kernels (and bias), independent per position
        lc.neurolp_name = name
        _set_submodule(model, name, lc)
    return model


def restart_batchnorm_(norms) -> None:
    """Restart the running averages of BatchNorm layers: ``momentum=None`` and
    ``num_batches_tracked=0``, so the next training batch replaces them and later ones are averaged
    cumulatively."""
    for m in norms:
        m.momentum = None
        m.num_batches_tracked.zero_()


class BatchNormRefresh:
    """Re-estimate a model's BatchNorm statistics after a weight-sharing event.

    Sharing moves every LC kernel at once (the first instant sharing of independent kernels shrinks
    them by up to √(class size) ≈ 10), so the running statistics, which remember the activations of
    before, are wrong in eval mode: on digits an lcws10-resnet20 evaluated at 10 % with them and at
    49 % with batch statistics, and when an epoch ends on a sharing step nothing corrects them
    before evaluation (18 % vs 90 %). After each event this restarts the running averages
    (:func:`restart_batchnorm_`) and runs the model once, BatchNorms in training mode and everything
    else in eval mode, on the last training batch (kept by a forward pre-hook); later batches are
    averaged in cumulatively until the next event. Training itself is unchanged (it uses batch
    statistics), and no random numbers are drawn.

    A plain object held by the model's last LC layer (whose hook runs after every layer has shared),
    not a module: it adds nothing to the state dict or to a ``Sequential``'s forward.
    """

    def __init__(self, model: nn.Module, norms):
        self.model, self.norms, self.last_input = model, list(norms), None
        self.handle = model.register_forward_pre_hook(self.remember)

    def remember(self, module, args) -> None:
        if module.training and args and torch.is_tensor(args[0]):
            self.last_input = args[0].detach()

    @torch.no_grad()
    def __call__(self) -> None:
        restart_batchnorm_(self.norms)
        if self.last_input is None:
            return
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        for m in self.norms:
            m.train()
        try:
            self.model(self.last_input)
        finally:
            for m, mode in modes:
                m.training = mode

    def remove(self) -> None:
        self.handle.remove()
        self.last_input = None


def set_weight_sharing(model: nn.Module, mode: SharingMode | None, every: int = 10, *, eta: float = 0.1,
                       gamma: float = 1e-5, iters: int = 100, n_patterns: int = 128, seed: int = 0,
                       bn_restart: bool = True) -> nn.Module:
    """Make every LC layer of ``model`` share weights every ``every`` optimiser steps during
    ``neurolp train`` (through ``neurolp_after_step``); ``mode=None`` switches sharing off.
    ``bn_restart``: the last LC layer also re-estimates the model's BatchNorm statistics after each
    event (:class:`BatchNormRefresh`)."""
    if mode is None:
        cfg = None
    elif mode not in ("instant", "dynamic"):
        raise ConfigError(f"weight sharing mode must be 'instant' or 'dynamic', got {mode!r}")
    elif every < 1 or eta <= 0 or gamma < 0 or iters < 0 or n_patterns < 1:
        raise ConfigError(f"need every >= 1, eta > 0, gamma >= 0, iters >= 0 and n_patterns >= 1; got "
                          f"every={every}, eta={eta}, gamma={gamma}, iters={iters}, n_patterns={n_patterns}")
    else:
        cfg = dict(mode=mode, every=int(every), eta=float(eta), gamma=float(gamma), iters=int(iters),
                   n_patterns=int(n_patterns), seed=int(seed))
    layers = lc_layers(model)
    for i, (_, layer) in enumerate(layers):
        layer.sharing = None if cfg is None else {**cfg, "seed": cfg["seed"] * 1000 + i}
    for _, layer in layers:
        if layer.bn_refresh is not None:
            layer.bn_refresh.remove()
            layer.bn_refresh = None
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if layers and cfg is not None and bn_restart and norms:
        # the last LC layer: the training hooks run in module order, so every layer has shared by then
        layers[-1][1].bn_refresh = BatchNormRefresh(model, norms)
    return model
