"""Stimulus images and their preprocessing into model inputs.

* The 118 Allen Brain Observatory natural-scene images (de Vries et al., 2020): the grey 918×1174
  templates ship inside every ``three_session_B`` NWB file of an AllenSDK ``BrainObservatoryCache``
  (``stimulus/templates/natural_scenes_image_stack/data``); reading them needs only h5py.
* The images of any other neural data set (:func:`load_stimulus_images`): a folder of image files
  or an array, put in the neural data's explicit stimulus order, with an optional blank (grey)
  stimulus.
* :class:`StimulusSpec` / :func:`preprocess_stimuli`: the named, recorded recipe that squares
  (crop, pad or stretch), resizes, scales, replicates grey to 3 channels and normalises them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from neurolp.brain.nwb import TEMPLATE_KEY
from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError, InputError

__all__ = ["TEMPLATE_KEY", "natural_scene_templates", "StimulusSpec", "stimulus_spec",
           "preprocess_stimuli", "STIMULUS_METHODS", "CROPS", "value_scale", "StimulusImages",
           "load_stimulus_images", "IMAGE_SUFFIXES"]

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



#: How a non-square image becomes a square (before the resize to the model's input size).
CROPS = ("left", "center", "pad", "stretch")


@dataclass(frozen=True)
class StimulusSpec:
    """How stimulus images become model inputs (recorded in every RSA output).

    * ``"anchor"`` — the Lp-Conv/Bakhtiari recipe: the left square (columns 0–917) of each
      918×1174 image, resized to the model's input size (bilinear, no anti-aliasing, like OpenCV's
      ``cv2.resize``), z-scored per image, grey replicated to 3 channels.
    * ``"checkpoint"`` — the same square, resized with anti-aliasing, scaled to [0, 1] (uint8 / 255),
      grey replicated to 3 channels and normalised with the checkpoint's training ``mean``/``std``
      per channel.

    ``crop`` makes the square: ``left`` (the anchor's, for the Allen scenes), ``center``, ``pad``
    (pad the short side with the image's mean intensity: nothing is cut off) or ``stretch`` (resize
    without keeping the aspect ratio). Small images are upsampled by the same bilinear resize.
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
        crop = {"left": "left square crop", "center": "centre square crop",
                "pad": "padded to a square with each image's mean intensity",
                "stretch": "stretched to a square (aspect ratio not kept)"}[self.crop]
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
    if crop not in CROPS:
        raise ConfigError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
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


def value_scale(images) -> float:
    """The full-scale value of a set of images: what maps to 1.0 (uint8: 255, uint16: 65535; float
    images: 1 when they lie in [0, 1], 255 when in [0, 255])."""
    arrays = [np.asarray(a) for a in images] if isinstance(images, (list, tuple)) else [np.asarray(images)]
    dt = arrays[0].dtype
    if any(a.dtype != dt for a in arrays):
        raise InputError("stimulus images of one set must share one data type, got "
                         f"{sorted({str(a.dtype) for a in arrays})}")
    if dt == bool:
        return 1.0
    if np.issubdtype(dt, np.integer):
        if np.issubdtype(dt, np.signedinteger) and any(a.size and a.min() < 0 for a in arrays):
            raise InputError("integer stimulus images must be non-negative intensities")
        return float(np.iinfo(dt).max)
    lo = min(float(np.nanmin(a)) for a in arrays)
    hi = max(float(np.nanmax(a)) for a in arrays)
    if not (np.isfinite(lo) and np.isfinite(hi)) or any(np.isnan(a).any() for a in arrays):
        raise InputError("stimulus images contain NaN or infinite values")
    if lo < 0 or hi > 255:
        raise InputError(f"float stimulus images must hold intensities in [0, 1] or [0, 255], got "
                         f"values in [{lo:g}, {hi:g}]; rescale them (or save them as uint8)")
    return 1.0 if hi <= 1.0 else 255.0


def _channels_last(a: np.ndarray) -> np.ndarray:
    """``[n, H, W]`` / ``[n, H, W, C]`` → ``[n, H, W, C]`` with C in (1, 3) (alpha dropped)."""
    if a.ndim == 3:
        return a[..., None]
    if a.ndim == 4 and a.shape[-1] in (1, 3, 4):
        return a[..., :3] if a.shape[-1] == 4 else a
    raise InputError(f"stimulus images must be [n, height, width] (grey) or [n, height, width, 3] "
                     f"(RGB), got shape {a.shape}")


def _square(t: np.ndarray, crop: str) -> np.ndarray:
    """``[n, H, W, C]`` made square by ``crop`` (``stretch``: unchanged, the resize squashes it)."""
    n, h, w, c = t.shape
    if crop == "stretch" or h == w:
        return t
    side = min(h, w)
    if crop == "left":
        return t[:, :side, :side]
    if crop == "center":
        top, left = (h - side) // 2, (w - side) // 2
        return t[:, top:top + side, left:left + side]
    side = max(h, w)  # pad with each image's mean intensity
    fill = t.reshape(n, -1).astype(np.float64).mean(axis=1)
    out = np.empty((n, side, side, c), dtype=np.float64)
    out[:] = fill[:, None, None, None]
    top, left = (side - h) // 2, (side - w) // 2
    out[:, top:top + h, left:left + w] = t
    return out


def _preprocess_batch(t: np.ndarray, spec: StimulusSpec, scale: float):
    import torch
    import torch.nn.functional as F

    t = _square(_channels_last(t), spec.crop)
    n, c = t.shape[0], t.shape[-1]
    x = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(spec.image_size, spec.image_size), mode="bilinear",
                      align_corners=False, antialias=spec.antialias)
    if spec.method == "anchor":
        flat = x.reshape(n, -1)
        mu = flat.mean(dim=1, keepdim=True)
        sd = flat.std(dim=1, keepdim=True).clamp_min(1e-8)
        x = ((flat - mu) / sd).reshape(x.shape)
        return x.expand(n, 3, spec.image_size, spec.image_size) if c == 1 else x
    x = x / scale
    if c == 1:
        x = x.expand(n, 3, spec.image_size, spec.image_size)
    mean = torch.tensor(spec.mean if len(spec.mean) == 3 else spec.mean * 3).view(1, 3, 1, 1)
    std = torch.tensor(spec.std if len(spec.std) == 3 else spec.std * 3).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess_stimuli(templates, spec: StimulusSpec, images: Sequence[int] | None = None, *,
                       scale: float | None = None):
    """``float32 torch.Tensor [N, 3, S, S]`` model inputs from images.

    ``templates`` is a stack ``[N, H, W]`` (grey, e.g. the uint8 Allen templates) or ``[N, H, W, 3]``
    (RGB), or a list of such single images of different sizes (each is squared and resized on its
    own). ``scale`` is the full-scale intensity (default :func:`value_scale`: 255 for uint8).
    """
    import torch

    if isinstance(templates, (list, tuple)):
        arrays = [np.asarray(a) for a in templates]
        if images is not None:
            arrays = [arrays[int(i)] for i in images]
        if not arrays:
            raise InputError("no stimulus image to preprocess")
        for a in arrays:
            if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
                raise InputError(f"a stimulus image must be [height, width] (grey) or "
                                 f"[height, width, 3] (RGB), got shape {a.shape}")
        scale = value_scale(arrays) if scale is None else float(scale)
        if len({a.shape for a in arrays}) == 1:
            t = np.stack(arrays)
        else:
            return torch.cat([_preprocess_batch(a[None], spec, scale) for a in arrays]).contiguous()
    else:
        t = np.asarray(templates)
        if t.ndim not in (3, 4):
            raise InputError(f"templates must be [n_images, height, width], got {t.shape}")
        if images is not None:
            t = t[np.asarray(images)]
        scale = value_scale(t) if scale is None else float(scale)
    return _preprocess_batch(t, spec, scale).contiguous()


# ------------------------------------------------------------------------------------------------
# stimulus images of any neural data set (``neurolp rsa --neural FILE --images DIR|NPY``)
# ------------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class StimulusImages:
    """Images in the neural data's stimulus order (one array ``[H, W]`` or ``[H, W, 3]`` each)."""

    arrays: list
    names: list[str]
    source: str
    scale: float
    blank: list[int]
    notes: list[str]

    def __len__(self) -> int:
        return len(self.arrays)

    def describe(self) -> str:
        shapes = sorted({a.shape[:2] for a in self.arrays}, key=lambda s: s[0] * s[1])
        size = (f"{shapes[0][0]}×{shapes[0][1]}" if len(shapes) == 1 else
                f"{len(shapes)} sizes from {shapes[0][0]}×{shapes[0][1]} to "
                f"{shapes[-1][0]}×{shapes[-1][1]}")
        colour = "RGB" if self.arrays[0].ndim == 3 else "grey"
        text = (f"{len(self.arrays)} {colour} images from {self.source} ({size}, "
                f"{self.arrays[0].dtype}, full scale {self.scale:g} → 1"
                f"{'; grey replicated to 3 channels' if colour == 'grey' else ''})")
        return "; ".join([text] + self.notes)


def _read_image_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("1", "L", "LA", "P") and (im.mode != "P" or not _palette_colour(im)):
                return np.asarray(im.convert("L"))
            if im.mode in ("I", "F") or im.mode.startswith("I;16"):
                return np.asarray(im)
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataFormatError(f"cannot read stimulus image {path} ({exc}); expected a "
                              f"{'/'.join(IMAGE_SUFFIXES)} file — replace it") from exc


def _palette_colour(im) -> bool:
    rgb = np.asarray(im.convert("RGB"))
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 1] != rgb[..., 2]))


def _array_images(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """``[N, H, W(, C)]`` images (and names) from a ``.npy`` or ``.npz`` (keys images[, names])."""
    layout = ("a .npy array [n, height, width] (grey) or [n, height, width, 3] (RGB), or a .npz "
              "with 'images' (that array) and optionally 'names' (a string array)")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith((b"PK", b"\x93NUMPY")):
        raise DataFormatError(f"--images {path} is neither a folder nor a numpy file; expected "
                              + layout)
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.ndarray):
            arr, names = np.asarray(z), None
        else:
            with z:
                if "images" not in z.files:
                    raise DataFormatError(f"{path} holds {sorted(z.files)}, no 'images'; expected "
                                          + layout)
                arr = np.asarray(z["images"])
                names = [str(v) for v in z["names"]] if "names" in z.files else None
    except ValueError as exc:  # object arrays (pickles) are refused
        raise DataFormatError(f"cannot read {path} without unpickling ({exc}); expected {layout}") \
            from None
    except OSError as exc:
        raise DataFormatError(f"{path} is not a readable numpy file ({exc}); expected {layout}") \
            from None
    if arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4) and arr.shape[1] in (1, 3):
        arr = np.moveaxis(arr, 1, -1)  # [N, C, H, W] → channels last
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (1, 3, 4)) \
            or arr.shape[0] == 0:
        raise DataFormatError(f"{path} holds images of shape {arr.shape}; expected {layout}")
    if arr.ndim == 4:
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr[..., :3]
    if names is not None and len(names) != arr.shape[0]:
        raise DataFormatError(f"{path}: {len(names)} names for {arr.shape[0]} images")
    return arr, names


def _grey_blank(arrays: list, dtype) -> tuple[np.ndarray, float]:
    """A uniform image at the mean intensity of ``arrays`` (the mean-luminance grey screen that
    stands for a blank stimulus, as the Allen Brain Observatory shows between scenes)."""
    level = float(np.mean([float(np.mean(a)) for a in arrays]))
    shapes = [a.shape for a in arrays]
    shape = max(set(shapes), key=shapes.count)
    if np.issubdtype(dtype, np.integer):
        level = float(np.round(level))
    return np.full(shape, level, dtype=dtype), level


def load_stimulus_images(path, order=None, *, n_stimuli: int | None = None,
                         blank: str = "blank") -> StimulusImages:
    """The images of a neural data set, in its stimulus order.

    ``path`` is a folder of image files or a ``.npy``/``.npz`` array; ``order`` is the neural
    data's stimulus order: names (matched to file names, with or without suffix, or to an npz's
    ``names``) or integer rows of the array (``-1`` = the blank, the Allen convention). Without an
    order, row k of an array is stimulus k (and the counts must agree). The stimulus named
    ``blank`` (or row −1), when no image file carries that name, is a uniform grey image at the
    mean intensity of the other images. Mismatched counts, unknown names and out-of-range rows are
    errors that name the stimuli.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"--images {path} does not exist; give a folder of image files or a "
                                ".npy/.npz array of images")
    order = None if order is None else list(order)
    if order is not None and len(set(map(str, order))) != len(order):
        dup = sorted({str(o) for o in order if list(map(str, order)).count(str(o)) > 1})
        raise DataFormatError(f"the stimulus order names {dup[:5]} more than once; every stimulus "
                              "must appear once")
    if n_stimuli is not None and order is not None and len(order) != n_stimuli:
        raise DataFormatError(f"the stimulus order lists {len(order)} stimuli but the neural data "
                              f"has {n_stimuli}")
    notes: list[str] = []
    by_index = order is not None and all(isinstance(o, (int, np.integer)) for o in order)
    if path.is_dir():
        if order is None:
            raise DataFormatError(
                f"the neural data does not name its stimuli, so the images in {path} cannot be "
                "matched to them: add a 'stimuli' array of image names to the neural file (or a "
                "pattern descriptor to an rsatoolbox file), or give --images as a .npy array in "
                "the neural data's order")
        if by_index:
            raise DataFormatError(
                f"the neural data orders its stimuli by integer index, which cannot be matched to "
                f"the files in {path}: give --images as a .npy/.npz array (row k = index k), or "
                "store image names in the neural file's 'stimuli'")
        files = sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        by_name = {f.name: f for f in files}
        stems: dict[str, list[Path]] = {}
        for f in files:
            stems.setdefault(f.stem, []).append(f)
        picked, missing = [], []
        for name in map(str, order):
            f = by_name.get(name)
            if f is None and len(stems.get(name, [])) > 1:
                raise DataFormatError(f"stimulus {name!r} matches {len(stems[name])} files in {path} "
                                      f"({', '.join(p.name for p in stems[name])}); keep one")
            f = f or (stems.get(name) or [None])[0]
            if f is None and name != blank:
                missing.append(name)
            picked.append(f)
        if missing:
            raise DataFormatError(
                f"{len(missing)} of {len(order)} stimuli have no image in {path}: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (matched by file name "
                f"with or without suffix, {'/'.join(IMAGE_SUFFIXES)}; a blank grey stimulus must be "
                f"named {blank!r} or set with --blank)")
        arrays = {k: _read_image_file(f) for k, f in enumerate(picked) if f is not None}
        if not arrays:
            raise DataFormatError(f"no stimulus image found in {path}")
        if len({a.ndim for a in arrays.values()}) > 1:
            arrays = {k: (np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a)
                      for k, a in arrays.items()}
            notes.append("grey images replicated to RGB to match the colour ones")
        names = [str(o) for o in order]
        source = f"folder {path}"
    else:
        arr, arr_names = _array_images(path)
        source = f"array {path} {tuple(arr.shape)}"
        if order is None:
            if n_stimuli is not None and arr.shape[0] != n_stimuli:
                raise DataFormatError(f"--images {path} holds {arr.shape[0]} images but the neural "
                                      f"data has {n_stimuli} stimuli (and no 'stimuli' order to "
                                      "pick them by)")
            rows = list(range(arr.shape[0]))
            names = arr_names or [f"image{k}" for k in rows]
            notes.append("stimulus k = image row k (the neural file gives no order)")
        elif by_index:
            bad = [int(o) for o in order if not -1 <= int(o) < arr.shape[0]]
            if bad:
                raise DataFormatError(f"stimulus indices {bad[:5]} are outside the {arr.shape[0]} "
                                      f"images of {path} (0..{arr.shape[0] - 1}; -1 = blank)")
            rows = [int(o) for o in order]
            names = [blank if r == -1 else (arr_names[r] if arr_names else f"image{r}") for r in rows]
        else:
            if arr_names is None:
                raise DataFormatError(
                    f"the neural data names its stimuli but {path} has no names: give --images as a "
                    "folder of named image files, or a .npz with 'images' and 'names', or store "
                    "integer row indices in the neural file's 'stimuli'")
            pos = {nm: k for k, nm in enumerate(arr_names)}
            missing = [str(o) for o in order if str(o) not in pos and str(o) != blank]
            if missing:
                raise DataFormatError(f"{len(missing)} stimuli are not among the names in {path}: "
                                      f"{', '.join(missing[:5])}")
            rows = [pos.get(str(o), -1) for o in order]
            names = [str(o) for o in order]
        arrays = {k: arr[r] for k, r in enumerate(rows) if r != -1}
    blanks = [k for k in range(len(names)) if k not in arrays]
    real = list(arrays.values())
    scale = value_scale(real)
    for k in blanks:
        img, level = _grey_blank(real, real[0].dtype)
        arrays[k] = img
        notes.append(f"stimulus {names[k]!r} = uniform grey at the images' mean intensity "
                     f"{level:.4g} (of {scale:g}), synthesised")
    return StimulusImages([arrays[k] for k in range(len(names))], names, source, scale, blanks,
                          notes)
