"""Hebbian layers trained by Krotov & Hopfield's competing-hidden-units rule (PNAS 116:7723, 2019),
in convolutions as in Manzali (2021), "A Bio-inspired Convolutional Layer" (biopytorch).

For an input ``v`` (one sample, or one patch of a convolution) unit μ receives the current

    I_μ = ⟨W_μ, v⟩_p = Σ_i sgn(W_μi) |W_μi|^{p−1} v_i                       (Lebesgue exponent p)

Units compete (rank-k lateral inhibition): for every sample / patch the unit with the highest
current gets the post-activation ``g = 1``, the unit with the k-th highest gets ``g = −Δ``, all
others 0. Over all samples A of a batch (all B·H_o·W_o patches for a convolution) the update is

    ΔW_μi = Σ_A g_μA v_iA − (Σ_A g_μA I_μA) W_μi          (Hebbian − normalisation; radius R = 1)

which drives every row towards the unit p-sphere ``Σ_i |W_μi|^p = 1``. The convergence metric is
``max_μ |Σ_i |W_μi|^p − 1|`` (Manzali: "converged" below 1e-2). ``W ← W + η ΔW / max|ΔW|``:
the step is normalised by its largest entry, per output kernel (``step_norm="kernel"``,
biopytorch's BioConv2d) or over the whole matrix (``"global"``, Krotov's code and biopytorch's
BioLinear), or not at all (``"none"``, the slides' toy example).

Every layer owns a ``BatchNorm(affine=False)`` on its input: ``training_step`` normalises with the
batch's statistics (and updates the running ones), ``forward`` with the running statistics
(Manzali, slide 16: without zero-mean inputs one unit dominates and training stalls). The forward
pass uses the transformed kernel ``sgn(W)|W|^{p−1}``, i.e. it outputs the currents.

**The conv trick.** The Hebbian term of a convolution is ``Σ_{b,y,x} G[o,b,y,x] · x̃[b,c,y·s+i·d,
x·s+j·d]`` (x̃ the padded input, G the post-activations, s the stride, d the dilation). Unfolding
the B·H_o·W_o patches costs memory K² times the input; instead it is one more convolution with the
roles swapped: input x̃ as ``[C, B, H, W]`` (batch → channels), kernel G as ``[O, B, H_o, W_o]``,
**kernel dilation s and stride d**. The kernel's extent is ``s·(H_o−1)+1`` per axis; cropping x̃
to ``s·(H_o−1) + d·(K−1) + 1`` rows makes the output exactly K×K. (biopytorch expands G with a
Kronecker product and crops to ``H + 2p + 1 − K``, which is wrong when stride > 1 and dilation >
1.) ``hebbian="wgrad"`` computes the same sum as the weight gradient of a convolution
(``torch.nn.grad.conv2d_weight``), and ``"unfold"`` explicitly, as the reference.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from neurolp.errors import ConfigError
from neurolp.layers.local import _resolve_padding

__all__ = ["BioConv2d", "BioLinear", "lp_transform", "rank_activations", "p_sphere_convergence",
           "normalise_step", "conv_hebbian", "STEP_NORMS", "HEBBIAN_METHODS"]

StepNorm = Literal["kernel", "global", "none"]
STEP_NORMS = ("kernel", "global", "none")
HEBBIAN_METHODS = ("conv", "wgrad", "unfold")
_STEP_EPS = 1e-5  # biopytorch's: a step of all zeros stays zero


def lp_transform(w: torch.Tensor, p: float) -> torch.Tensor:
    """``sgn(W)|W|^{p−1}``: the kernel whose dot product with v is ⟨W, v⟩_p."""
    return w.sign() * w.abs().pow(p - 1)


def rank_activations(currents: torch.Tensor, k: int, delta: float, dim: int = 1) -> torch.Tensor:
    """Post-activations ``g``: 1 for the largest current along ``dim``, −Δ for the k-th, else 0."""
    # Unsorted top-k, then its largest and smallest members: rank 1 and rank k (cheaper than sorting).
    vals, idx = currents.topk(k, dim=dim, sorted=False)
    g = torch.zeros_like(currents)
    g.scatter_(dim, idx.gather(dim, vals.argmax(dim, keepdim=True)), 1.0)
    g.scatter_(dim, idx.gather(dim, vals.argmin(dim, keepdim=True)), -float(delta))
    return g


@torch.no_grad()
def p_sphere_convergence(w: torch.Tensor, p: float) -> float:
    """``max_μ |Σ_i |W_μi|^p − 1|`` over output units (rows / kernels)."""
    return float((w.abs().pow(p).flatten(1).sum(1) - 1).abs().max())


def normalise_step(dw: torch.Tensor, mode: StepNorm) -> torch.Tensor:
    """Divide a step by its largest absolute entry, per output unit (``kernel``) or overall."""
    if mode == "none":
        return dw
    if mode == "kernel":
        m = dw.abs().flatten(1).amax(1).view(-1, *([1] * (dw.dim() - 1)))
    elif mode == "global":
        m = dw.abs().max()
    else:
        raise ConfigError(f"step_norm must be one of {', '.join(STEP_NORMS)}, got {mode!r}")
    return dw / (m + _STEP_EPS)


def conv_hebbian(xpad: torch.Tensor, g: torch.Tensor, kernel_size, stride, dilation, groups: int = 1,
                 method: str = "conv") -> torch.Tensor:
    """``Σ_{b,y,x} g[b,o,y,x] · xpad[b,c,y·s+i·d,x·s+j·d]`` → ``[O, C/groups, K_h, K_w]``.

    ``xpad`` is the already padded input ``[B, C, H, W]``, ``g`` the post-activations
    ``[B, O, H_o, W_o]``; see the module docstring for the three methods.
    """
    kh, kw = _pair(kernel_size)
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    b, c, _, _ = xpad.shape
    o, ho, wo = g.shape[1], g.shape[2], g.shape[3]
    cg, og = c // groups, o // groups
    # Rows/columns any tap of any patch reads; the rest (when stride does not divide) is unused.
    hx, wx = sh * (ho - 1) + dh * (kh - 1) + 1, sw * (wo - 1) + dw * (kw - 1) + 1
    xpad = xpad[:, :, :hx, :wx]
    if method == "wgrad":
        return torch.nn.grad.conv2d_weight(xpad, (o, cg, kh, kw), g, stride=(sh, sw),
                                           dilation=(dh, dw), groups=groups)
    if method == "unfold":
        cols = F.unfold(xpad, (kh, kw), dilation=(dh, dw), stride=(sh, sw))      # [B, C·K², L]
        cols = cols.view(b, groups, cg * kh * kw, ho * wo)
        gg = g.reshape(b, groups, og, ho * wo)
        return torch.einsum("bgol,bgkl->gok", gg, cols).reshape(o, cg, kh, kw)
    if method != "conv":
        raise ConfigError(f"hebbian method must be one of {', '.join(HEBBIAN_METHODS)}, got {method!r}")
    xt = xpad.transpose(0, 1)                 # [C, B, H, W]: batch → channels
    gt = g.transpose(0, 1)                    # [O, B, H_o, W_o]: the kernel
    out = []
    for k in range(groups):
        # out[c, o, i, j] = Σ_{b,y,x} G[o,b,y,x] · x̃[c,b,i·d+y·s, j·d+x·s]: kernel dilation s, stride d.
        h = F.conv2d(xt[k * cg:(k + 1) * cg], gt[k * og:(k + 1) * og], stride=(dh, dw), dilation=(sh, sw))
        out.append(h.transpose(0, 1))         # [Og, Cg, K_h, K_w]
    return out[0] if groups == 1 else torch.cat(out, 0)


def _check_rule(k: int, delta: float, p: float, units_per_group: int) -> None:
    if p < 1:
        raise ConfigError(f"lebesgue_p must be >= 1 (the L_p norm), got {p}")
    if k < 2:
        raise ConfigError(f"ranking_param k must be >= 2 (rank 1 is the winner, rank k is pushed away), got {k}")
    if k > units_per_group:
        raise ConfigError(f"ranking_param k={k} exceeds the {units_per_group} units that compete "
                          "(out_channels // groups); lower k or add units")
    if delta < 0:
        raise ConfigError(f"delta (anti-Hebbian strength) must be >= 0, got {delta}")


class _HebbianMixin:
    """What BioConv2d and BioLinear share: the step, the metric, the options."""

    lebesgue_p: float
    ranking_param: int
    delta: float
    step_norm: str

    def lp_weight(self) -> torch.Tensor:
        return lp_transform(self.weight, self.lebesgue_p)

    def convergence(self) -> float:
        """``max_μ |Σ_i |W_μi|^p − 1|`` (0 when every unit lies on the unit p-sphere)."""
        return p_sphere_convergence(self.weight, self.lebesgue_p)

    @torch.no_grad()
    def training_step(self, x: torch.Tensor, lr: float) -> float:
        """One unsupervised update on the batch ``x``; returns the convergence metric."""
        xn = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, training=True,
                          momentum=self.bn.momentum, eps=self.bn.eps)
        self.bn.num_batches_tracked += 1
        dw = normalise_step(self.delta_weights(xn), self.step_norm)
        self.weight.add_(dw, alpha=float(lr))
        return self.convergence()

    def extra_repr(self) -> str:  # noqa: D401
        return (super().extra_repr() + f", lebesgue_p={self.lebesgue_p:g}, ranking_param={self.ranking_param}"
                f", delta={self.delta:g}, step_norm={self.step_norm}")


class BioConv2d(_HebbianMixin, nn.Conv2d):
    """A convolution learnt by the Krotov–Hopfield rule (no bias); ``forward`` gives the currents.

    Arguments as ``nn.Conv2d`` (``padding`` an int/pair, ``"valid"`` or ``"same"``; stride,
    dilation, groups, ``padding_mode``) plus ``lebesgue_p``, ``ranking_param`` (k), ``delta`` (Δ),
    ``step_norm`` (``"kernel"``, biopytorch's default, ``"global"`` or ``"none"``) and ``hebbian``
    (``"conv"``, ``"wgrad"`` or the ``"unfold"`` reference). Competition is among the
    ``out_channels // groups`` kernels of a group, over all patches of the batch.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, lebesgue_p: float = 3,
                 ranking_param: int = 2, delta: float = 0.05, stride=1, padding=0, dilation=1,
                 groups: int = 1, padding_mode: str = "zeros", step_norm: StepNorm = "kernel",
                 hebbian: str = "conv", device=None, dtype=None):
        if padding == "same" and any(s != 1 for s in _pair(stride)):
            raise ConfigError("padding='same' needs stride 1 (the output size is not defined otherwise)")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias=False, padding_mode=padding_mode, device=device, dtype=dtype)
        _check_rule(ranking_param, delta, lebesgue_p, out_channels // groups)
        if step_norm not in STEP_NORMS:
            raise ConfigError(f"step_norm must be one of {', '.join(STEP_NORMS)}, got {step_norm!r}")
        if hebbian not in HEBBIAN_METHODS:
            raise ConfigError(f"hebbian must be one of {', '.join(HEBBIAN_METHODS)}, got {hebbian!r}")
        self.lebesgue_p, self.ranking_param, self.delta = float(lebesgue_p), int(ranking_param), float(delta)
        self.step_norm, self.hebbian = step_norm, hebbian
        self.weight.requires_grad_(False)
        self.bn = nn.BatchNorm2d(in_channels, affine=False, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``W ~ N(0, 1)``, as Krotov & Hopfield and biopytorch."""
        with torch.no_grad():
            nn.init.normal_(self.weight)

    def pad_input(self, x: torch.Tensor) -> torch.Tensor:
        # (left, right, top, bottom), asymmetric for 'same' with even dilated kernels, as nn.Conv2d
        pads = _resolve_padding(self.padding, self.kernel_size, self.dilation, self.stride)
        if not any(pads):
            return x
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        return F.pad(x, pads, mode=mode)

    def currents(self, xpad: torch.Tensor) -> torch.Tensor:
        """``⟨W, v⟩_p`` for every patch of an already padded input: ``[B, O, H_o, W_o]``."""
        return F.conv2d(xpad, self.lp_weight(), None, self.stride, 0, self.dilation, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, training=False, eps=self.bn.eps)
        return self.currents(self.pad_input(xn))

    def functional_weight(self) -> torch.Tensor:
        """The filter bank as seen from the layer's raw input, for functional RFs: ``sgn(W)|W|^{p−1}``
        with the input BatchNorm's per-channel scale ``1/√(var+eps)`` folded in (its shift is a
        constant per-channel offset, like a bias, and is left out)."""
        scale = (self.bn.running_var + self.bn.eps).rsqrt()
        cg = self.in_channels // self.groups
        w = self.lp_weight()
        s = scale.view(self.groups, cg)                          # per group's input channels
        og = self.out_channels // self.groups
        s = s.repeat_interleave(og, 0).view(self.out_channels, cg, 1, 1)
        return (w * s).detach()

    @torch.no_grad()
    def delta_weights(self, x: torch.Tensor, *, return_terms: bool = False):
        """The rule's ΔW on an (already normalised) input ``x [B, C, H, W]``, before step
        normalisation; ``return_terms=True`` gives ``(hebbian, normalisation, currents, g)``."""
        xpad = self.pad_input(x)
        cur = self.currents(xpad)                                        # [B, O, H_o, W_o]
        b, o, ho, wo = cur.shape
        og = o // self.groups
        # Competition within each group, over every patch of the batch.
        cg = cur.view(b, self.groups, og, ho, wo)
        g = rank_activations(cg, self.ranking_param, self.delta, dim=2).view_as(cur)
        hebb = conv_hebbian(xpad, g, self.kernel_size, self.stride, self.dilation, self.groups, self.hebbian)
        norm = -(g * cur).sum((0, 2, 3)).view(o, 1, 1, 1) * self.weight
        if return_terms:
            return hebb, norm, cur, g
        return hebb + norm


class BioLinear(_HebbianMixin, nn.Module):
    """A fully connected layer learnt by the Krotov–Hopfield rule (no bias); inputs are flattened.

    ``step_norm`` defaults to ``"global"`` (Krotov's code, biopytorch's BioLinear).
    """

    def __init__(self, in_features: int, out_features: int, lebesgue_p: float = 3, ranking_param: int = 2,
                 delta: float = 0.05, step_norm: StepNorm = "global", device=None, dtype=None):
        super().__init__()
        _check_rule(ranking_param, delta, lebesgue_p, out_features)
        if step_norm not in STEP_NORMS:
            raise ConfigError(f"step_norm must be one of {', '.join(STEP_NORMS)}, got {step_norm!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.lebesgue_p, self.ranking_param, self.delta = float(lebesgue_p), int(ranking_param), float(delta)
        self.step_norm = step_norm
        self.weight = nn.Parameter(torch.randn(out_features, in_features, device=device, dtype=dtype),
                                   requires_grad=False)
        self.bn = nn.BatchNorm1d(in_features, affine=False, device=device, dtype=dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"lebesgue_p={self.lebesgue_p:g}, ranking_param={self.ranking_param}, delta={self.delta:g}, "
                f"step_norm={self.step_norm}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        xn = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, training=False, eps=self.bn.eps)
        return F.linear(xn, self.lp_weight())

    @torch.no_grad()
    def training_step(self, x: torch.Tensor, lr: float) -> float:
        return super().training_step(x.flatten(1), lr)

    @torch.no_grad()
    def delta_weights(self, x: torch.Tensor, *, return_terms: bool = False):
        """ΔW on an (already normalised) batch ``x [B, in]``; see :meth:`BioConv2d.delta_weights`."""
        x = x.flatten(1)
        cur = F.linear(x, self.lp_weight())                             # [B, O]
        g = rank_activations(cur, self.ranking_param, self.delta, dim=1)
        hebb = g.t() @ x
        norm = -(g * cur).sum(0)[:, None] * self.weight
        if return_terms:
            return hebb, norm, cur, g
        return hebb + norm
