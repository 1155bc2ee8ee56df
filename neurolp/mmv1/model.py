"""The MMV1 network: shifter + CNN visual encoder + behaviour encoder + GRU (Xu et al. 2023,
``train_cnn_gru_shifter_table_{2,3}.ipynb``), registered as the ``mmv1`` architecture so that
``create_model("lp2-mmv1", num_classes=N, behav_dim=66)`` builds the paper's Table 5 variants by
:func:`~neurolp.layers.lp_convert` on the visual encoder (its only convolutions).

Per window of ``seq_len`` bins:

* **Shifter** (θ, φ, pitch, roll) → BN → Linear 256 → BN → tanh → Linear 256 → BN → tanh → Linear 3 →
  tanh, plus a learned bias, scaled to (±W/5.5 px, ±H/5.5 px, ±45°) — a translation and a rotation
  about the frame centre applied to each frame with ``affine_grid`` / ``grid_sample`` (bilinear,
  zeros outside). The authors used kornia with the centre given as (x, y) = (30, 40), which is
  not the centre of a 60 × 80 frame; here it is.
* **Visual encoder**, shared over time: 3 × (conv 7×7 stride 2, no padding → BN → ReLU → dropout 0.5)
  with 1 → 128 → 64 → 32 channels (60×80 → 27×37 → 11×16 → 3×5), flatten (480) → linear → N.
* **Behaviour encoder**: BN → linear (B → N); its weight carries the L1 penalty.
* Per bin ``[v, b, v ⊙ b]`` → BN over the 3 streams → 3N features → **GRU** (hidden 512) → last state →
  linear → softplus: the predicted spike count of each neuron in the target bin.

The encoder runs on all ``B·seq_len`` frames at once, so its BatchNorm statistics pool the bins
of a batch (the authors called it once per bin); in evaluation both are the same function.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neurolp.errors import ConfigError
from neurolp.models.registry import ARCHS, register_arch

__all__ = ["Shifter", "affine_warp", "VisualEncoder", "BehaviourEncoder", "MMV1Net", "conv_output_size"]


def conv_output_size(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def affine_warp(frames: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Translate by (dx, dy) pixels and rotate by an angle (degrees, counter-clockwise as displayed,
    about the frame centre) each frame of ``frames`` [M, C, H, W]; ``params`` [M, 3].

    Output pixel ``u'`` (centred pixel coordinates, y down) shows input pixel ``u = Rᵀ(u' − t)``;
    pixels from outside the frame are 0. ``params = 0`` is the identity.
    """
    m, _, h, w = frames.shape
    a = torch.deg2rad(params[:, 2])
    c, s = torch.cos(a), torch.sin(a)
    tx, ty = params[:, 0], params[:, 1]
    theta = torch.stack([
        torch.stack([c, -s * (h / w), -(2.0 / w) * (c * tx - s * ty)], dim=1),
        torch.stack([s * (w / h), c, -(2.0 / h) * (s * tx + c * ty)], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta.to(frames.dtype), [m, frames.shape[1], h, w], align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Shifter(nn.Module):
    """(θ, φ, pitch, roll) per frame → (dx px, dy px, rotation °) (Xu et al. 2023)."""

    def __init__(self, frame_size: tuple[int, int] = (60, 80), hidden: int = 256, in_features: int = 4,
                 max_rotation: float = 45.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm1d(in_features), nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden),
            nn.Tanh(), nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.Tanh(),
            nn.Linear(hidden, 3), nn.Tanh())
        self.bias = nn.Parameter(torch.zeros(3))
        h, w = frame_size
        self.register_buffer("scale", torch.tensor([w / 5.5, h / 5.5, max_rotation]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) + self.bias) * self.scale


class VisualEncoder(nn.Module):
    """3 × (conv k×k stride s → BN → ReLU → dropout), flatten, linear to ``out_features``."""

    def __init__(self, out_features: int, frame_size: tuple[int, int] = (60, 80),
                 channels: Sequence[int] = (128, 64, 32), kernel_size: int = 7, stride: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        h, w = frame_size
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, kernel_size, stride), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Dropout(dropout)]
            h, w = conv_output_size(h, kernel_size, stride), conv_output_size(w, kernel_size, stride)
            if h < 1 or w < 1:
                raise ConfigError(f"{frame_size[0]}×{frame_size[1]} frames are too small for "
                                  f"{len(channels)} convs of {kernel_size}×{kernel_size} with stride "
                                  f"{stride}")
            c_in = c
        self.layers = nn.Sequential(*layers)
        self.feature_shape = (c_in, h, w)
        self.readout = nn.Linear(c_in * h * w, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.layers(x).flatten(1))


class BehaviourEncoder(nn.Module):
    """BN → linear: behavioural features to one value per neuron."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class MMV1Net(nn.Module):
    """``forward(frames [B,S,1,H,W], behaviour [B,S,Bd], shifter_input [B,S,4]) -> counts [B,N]``."""

    def __init__(self, num_neurons: int, behav_dim: int, seq_len: int = 4, hidden_size: int = 512,
                 channels: Sequence[int] = (128, 64, 32), kernel_size: int = 7, stride: int = 2,
                 dropout: float = 0.5, shifter: bool = True, shifter_hidden: int = 256,
                 frame_size: Sequence[int] = (60, 80)):
        super().__init__()
        if num_neurons < 1 or behav_dim < 1 or seq_len < 1 or hidden_size < 1:
            raise ConfigError(f"need num_neurons, behav_dim, seq_len, hidden_size >= 1, got "
                              f"{num_neurons}, {behav_dim}, {seq_len}, {hidden_size}")
        frame_size = (int(frame_size[0]), int(frame_size[1]))
        self.num_neurons, self.behav_dim, self.seq_len = num_neurons, behav_dim, seq_len
        self.frame_size = frame_size
        self.shifter = Shifter(frame_size, shifter_hidden) if shifter else None
        self.visual = VisualEncoder(num_neurons, frame_size, channels, kernel_size, stride, dropout)
        self.behaviour = BehaviourEncoder(behav_dim, num_neurons)
        self.fuse_norm = nn.BatchNorm1d(3)
        self.gru = nn.GRU(3 * num_neurons, hidden_size, num_layers=1, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_neurons)

    def forward(self, frames: torch.Tensor, behaviour: torch.Tensor,
                shifter_input: torch.Tensor | None = None) -> torch.Tensor:
        if frames.dim() == 4:
            frames = frames.unsqueeze(2)
        b, s = frames.shape[:2]
        x = frames.reshape(b * s, *frames.shape[2:])
        if self.shifter is not None:
            if shifter_input is None:
                raise ValueError("this model has a shifter: pass shifter_input [B, S, 4] (θ, φ, pitch, roll)")
            x = affine_warp(x, self.shifter(shifter_input.reshape(b * s, -1)))
        v = self.visual(x)
        beh = self.behaviour(behaviour.reshape(b * s, -1))
        z = self.fuse_norm(torch.stack([v, beh, v * beh], dim=1))     # [B·S, 3, N]
        out, _ = self.gru(z.reshape(b, s, 3 * self.num_neurons))
        return F.softplus(self.readout(out[:, -1]))

    def behaviour_l1(self) -> torch.Tensor:
        """Mean |w| of the behaviour encoder's weight (the authors' L1 term)."""
        return self.behaviour.linear.weight.abs().mean()


def _build(num_classes: int, image_size: int, behav_dim: int = 66, seq_len: int = 4,
           hidden_size: int = 512, channels: Sequence[int] = (128, 64, 32), kernel_size: int = 7,
           stride: int = 2, dropout: float = 0.5, shifter: bool = True, shifter_hidden: int = 256,
           frame_size: Sequence[int] = (60, 80)) -> MMV1Net:
    """MMV1 (shifter + 3-conv CNN + GRU; Xu et al. 2023). ``num_classes`` = neurons; ``image_size`` is
    unused (frames are ``frame_size``)."""
    return MMV1Net(num_classes, behav_dim, seq_len, hidden_size, tuple(channels), kernel_size, stride,
                   dropout, shifter, shifter_hidden, tuple(frame_size))


if "mmv1" not in ARCHS:
    register_arch("mmv1", description="MMV1 (shifter + 3×conv7 CNN + GRU; Xu et al. 2023), N neurons out",
                  tags=("mmv1",))(_build)

