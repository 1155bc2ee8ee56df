"""The 118 Allen Brain Observatory natural-scene images (de Vries et al., 2020).

The grey 918×1174 templates ship inside every ``three_session_B`` NWB file of an AllenSDK
``BrainObservatoryCache`` (``stimulus/templates/natural_scenes_image_stack/data``); reading them
needs only h5py, not allensdk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from neurolp.brain.nwb import TEMPLATE_KEY
from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError, InputError

__all__ = ["TEMPLATE_KEY", "natural_scene_templates", "StimulusSpec", "stimulus_spec",
           "preprocess_stimuli", "STIMULUS_METHODS"]

STIMULUS_METHODS = ("anchor", "checkpoint")


def natural_scene_templates(cache_dir: str | Path) -> np.ndarray:
    """``uint8 [n_images, H, W]`` templates (118×918×1174 in real data) from an Allen cache folder.

    ``cache_dir`` is the folder of the cache's ``manifest.json``; the first NWB file under
    ``ophys_experiment_data/`` that holds the natural-scene templates is used.
    """
    import h5py

    cache_dir = Path(cache_dir)
    nwb_dir = cache_dir / "ophys_experiment_data"
    files = sorted(nwb_dir.glob("*.nwb")) if nwb_dir.is_dir() else []
    if not files:
        raise DataNotFoundError(
            f"no Allen Brain Observatory NWB files in {nwb_dir}; the natural-scene images come with "
            "any three_session_B experiment: run `neurolp allen fetch --cache "
            f"{cache_dir}` on a machine with internet access, or point to an existing cache")
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                if TEMPLATE_KEY in f:
                    stack = np.asarray(f[TEMPLATE_KEY][()])
                    break
        except OSError as exc:
            raise DataFormatError(f"{path} is not a readable NWB/HDF5 file ({exc}); delete it and "
                                  "fetch it again") from exc
    else:
        raise DataNotFoundError(
            f"none of the {len(files)} NWB files in {nwb_dir} holds natural-scene templates "
            f"({TEMPLATE_KEY}); fetch a three_session_B experiment into this cache")
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise DataFormatError(f"natural-scene templates in {path} have shape {stack.shape}; "
                              "expected [n_images, height, width]")
    return stack


@dataclass(frozen=True)
class StimulusSpec:
    """How the grey templates become model inputs (recorded in every RSA output).

    * ``"anchor"`` — the Lp-Conv/Bakhtiari recipe: the left square (columns 0–917) of each
      918×1174 image, resized to the model's input size (bilinear, no anti-aliasing, like OpenCV's
      ``cv2.resize``), z-scored per image, replicated to 3 channels.
    * ``"checkpoint"`` — the same crop, resized with anti-aliasing, scaled to [0, 1], replicated to 3
      channels and normalised with the checkpoint's training ``mean``/``std`` per channel.
    """

    method: str
    image_size: int
    crop: str = "left"
    antialias: bool = False
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        crop = {"left": "left square crop", "center": "centre square crop"}[self.crop]
        if self.method == "anchor":
            norm = "per-image z-score"
        else:
            norm = (f"[0,1] then (x−mean)/std with mean={list(self.mean)}, std={list(self.std)}")
        return (f"{self.method}: {crop}, resize to {self.image_size}×{self.image_size} "
                f"({'anti-aliased' if self.antialias else 'no anti-aliasing'}), {norm}, 3 channels")


def stimulus_spec(method: str, image_size: int, normalization: dict | None = None, *,
                  crop: str = "left") -> StimulusSpec:
    """The named preprocessing for a model of input size ``image_size``.

    ``normalization`` is the checkpoint's ``{"mean": [...], "std": [...]}`` (needed by
    ``"checkpoint"``).
    """
    if method not in STIMULUS_METHODS:
        raise ConfigError(f"unknown stimulus preprocessing {method!r}; choose from "
                          f"{', '.join(STIMULUS_METHODS)}")
    if crop not in ("left", "center"):
        raise ConfigError(f"crop must be 'left' or 'center', got {crop!r}")
    if int(image_size) < 8:
        raise InputError(f"image_size must be >= 8, got {image_size}")
    if method == "anchor":
        return StimulusSpec("anchor", int(image_size), crop, False)
    if not normalization or "mean" not in normalization or "std" not in normalization:
        raise ConfigError("the 'checkpoint' stimulus preprocessing needs the checkpoint's training "
                          "normalisation (metadata 'normalization' with 'mean' and 'std'); this model "
                          "has none — use --stimuli anchor")
    mean = tuple(float(v) for v in np.atleast_1d(normalization["mean"]))
    std = tuple(float(v) for v in np.atleast_1d(normalization["std"]))
    if len(mean) not in (1, 3) or len(std) != len(mean) or min(std) <= 0:
        raise ConfigError(f"invalid checkpoint normalisation mean={mean}, std={std}")
    return StimulusSpec("checkpoint", int(image_size), crop, True, mean, std)


def preprocess_stimuli(templates: np.ndarray, spec: StimulusSpec,
                       images: Sequence[int] | None = None):
    """``float32 torch.Tensor [N, 3, S, S]`` model inputs from ``uint8 [N, H, W]`` templates."""
    import torch
    import torch.nn.functional as F

    t = np.asarray(templates)
    if t.ndim != 3:
        raise InputError(f"templates must be [n_images, height, width], got {t.shape}")
    if images is not None:
        t = t[np.asarray(images)]
    n, h, w = t.shape
    side = min(h, w)
    if spec.crop == "left":
        t = t[:, :side, :side]
    else:
        top, left = (h - side) // 2, (w - side) // 2
        t = t[:, top:top + side, left:left + side]
    x = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).unsqueeze(1)
    x = F.interpolate(x, size=(spec.image_size, spec.image_size), mode="bilinear",
                      align_corners=False, antialias=spec.antialias)
    if spec.method == "anchor":
        flat = x.reshape(n, -1)
        mu = flat.mean(dim=1, keepdim=True)
        sd = flat.std(dim=1, keepdim=True).clamp_min(1e-8)
        x = ((flat - mu) / sd).reshape(x.shape)
        x = x.expand(n, 3, spec.image_size, spec.image_size)
    else:
        x = (x / 255.0).expand(n, 3, spec.image_size, spec.image_size)
        mean = torch.tensor(spec.mean if len(spec.mean) == 3 else spec.mean * 3).view(1, 3, 1, 1)
        std = torch.tensor(spec.std if len(spec.std) == 3 else spec.std * 3).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()
