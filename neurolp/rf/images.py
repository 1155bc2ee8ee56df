"""Inputs for functional receptive fields (paper App. A.2, A.10): Gaussian noise or natural images.

All functions return ``float64 [n, 3, size, size]`` arrays in the network's input space (ImageNet
mean/std normalisation, as torchvision's pretrained models expect) plus a name per image.

Natural images, first available source wins (:func:`natural_images`):

1. the 118 Allen Brain Observatory natural scenes (the paper's), from an Allen cache folder
   (:func:`neurolp.brain.stimuli.natural_scene_templates`);
2. a folder of image files (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.tif``, ``.tiff``);
3. photographs of natural scenes that ship inside installed wheels, so a fresh offline machine has
   natural images: 8 from scikit-image, 2 from scikit-learn and 1 from matplotlib (11 in all; the
   other 6 of the paper's 17 are random crops of them). Images whose statistics are not those of
   natural scenes are left out: micrographs (``immunohistochemistry``), telescope images
   (``hubble_deep_field``, ``moon``) and textures (``brick``, ``grass``, ``gravel``).

Preprocessing: grey images are replicated to RGB, the shorter side is resized to ``size`` (bilinear,
antialiased) and the centre ``size × size`` crop is taken; when more images are asked for than a
source holds, the extra ones are seeded random crops of the same images. ``n`` images are drawn
without replacement with a seeded RNG from a larger pool (e.g. 17 of the 118 Allen scenes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurolp.errors import DataFormatError, DataNotFoundError, InputError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_SUFFIXES", "ImageSet", "noise_images", "natural_images",
           "folder_images", "allen_images", "wheel_images", "preprocess", "WHEEL_IMAGES"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Photographs of natural scenes shipped inside wheels: (package, loader name). Not micrographs,
#: telescope images or textures (see the module docstring).
WHEEL_IMAGES = (
    ("skimage", "astronaut"), ("skimage", "chelsea"), ("skimage", "coffee"), ("skimage", "rocket"),
    ("skimage", "camera"), ("skimage", "coins"), ("skimage", "clock"), ("skimage", "stereo_motorcycle"),
    ("sklearn", "china.jpg"), ("sklearn", "flower.jpg"), ("matplotlib", "grace_hopper.jpg"),
)


@dataclass
class ImageSet:
    """Preprocessed inputs ``images [n, 3, size, size]`` with their names and a description of the source."""

    images: np.ndarray
    names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)


def _to_rgb_float(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / (255.0 if a.max() <= 255 else float(np.iinfo(a.dtype).max))
    else:
        a = a.astype(np.float64)
        if a.max() > 1.0:
            a = a / 255.0
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[:, :, :3]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    else:
        raise InputError(f"an image must be H×W, H×W×3 or H×W×4, got shape {a.shape}")
    return a


def preprocess(img, size: int = 224, crop: tuple[float, float] | None = None) -> np.ndarray:
    """``[3, size, size]`` network input from an image (H×W grey or H×W×3/4, uint8 or float in [0, 1]).

    Resize the shorter side to ``size`` (bilinear, antialiased), crop ``size × size`` (centre, or at
    the relative position ``crop = (fy, fx)`` in [0, 1]²), normalise with the ImageNet mean/std.
    """
    import torch
    import torch.nn.functional as F

    a = _to_rgb_float(img)
    h, w = a.shape[:2]
    if min(h, w) < 8:
        raise InputError(f"image of {h}×{w} pixels is too small to resize to {size}×{size}")
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]
    t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
    fy, fx = (0.5, 0.5) if crop is None else crop
    top, left = int(round((nh - size) * fy)), int(round((nw - size) * fx))
    t = t[:, top:top + size, left:left + size].clamp(0.0, 1.0).numpy()
    return (t - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]


def noise_images(n: int, size: int = 224, seed: int = 0) -> ImageSet:
    """``n`` Gaussian RGB noise inputs, iid N(0, 1) per pixel and channel (in normalised input space)."""
    if n < 1:
        raise InputError(f"need at least one input, got n={n}")
    rng = np.random.default_rng([seed, 1])
    return ImageSet(rng.standard_normal((n, 3, size, size)), [f"noise{i:02d}" for i in range(n)],
                    "Gaussian RGB noise N(0, 1)")


def _select(pool_size: int, n: int, seed: int) -> list[tuple[int, tuple[float, float] | None]]:
    """Which pool images to use and how to crop them: n distinct when possible, then random crops."""
    rng = np.random.default_rng([seed, 2])
    if pool_size >= n:
        return [(int(i), None) for i in sorted(rng.choice(pool_size, size=n, replace=False))]
    out = [(i, None) for i in range(pool_size)]
    while len(out) < n:
        i = len(out) % pool_size
        out.append((i, (float(rng.uniform()), float(rng.uniform()))))
    return out


def _build(loaders: list, names: list[str], n: int, size: int, seed: int, source: str) -> ImageSet:
    picks = _select(len(loaders), n, seed)
    imgs, out_names = [], []
    for i, crop in picks:
        imgs.append(preprocess(loaders[i](), size, crop))
        out_names.append(names[i] if crop is None else f"{names[i]}[crop {crop[0]:.2f},{crop[1]:.2f}]")
    notes = []
    if len(loaders) < n:
        notes.append(f"{source} holds {len(loaders)} images for {n} inputs: the extra "
                     f"{n - len(loaders)} are random crops of the same images")
    return ImageSet(np.stack(imgs), out_names, source, notes)


def folder_images(folder, n: int = 17, size: int = 224, seed: int = 0) -> ImageSet:
    """``n`` images from a folder of image files (sorted by name, then a seeded draw)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.exists():
        raise DataNotFoundError(f"image folder {folder} does not exist; expected a folder of "
                                f"{'/'.join(IMAGE_SUFFIXES)} files")
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; --images expects a folder of image files")
    try:
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
    except OSError as exc:
        raise DataNotFoundError(f"cannot read image folder {folder} ({exc}); check its permissions") from exc
    if not files:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")

    def loader(path: Path):
        def load():
            try:
                with Image.open(path) as im:
                    return np.asarray(im.convert("RGB"))
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise DataFormatError(f"cannot read image {path} ({exc}); expected a "
                                      f"{'/'.join(IMAGE_SUFFIXES)} file — remove or replace it") from exc
        return load

    return _build([loader(f) for f in files], [f.name for f in files], n, size, seed, f"image folder {folder}")


def allen_images(cache_dir, n: int = 17, size: int = 224, seed: int = 0) -> ImageSet:
    """``n`` of the 118 Allen Brain Observatory natural scenes (grey) from an Allen cache folder."""
    from neurolp.brain.stimuli import natural_scene_templates

    stack = natural_scene_templates(cache_dir)
    loaders = [(lambda i=i: stack[i]) for i in range(stack.shape[0])]
    names = [f"natural_scene_{i:03d}" for i in range(stack.shape[0])]
    return _build(loaders, names, n, size, seed, f"Allen natural scenes in {cache_dir}")


def _wheel_loader(pkg: str, name: str):
    if pkg == "skimage":
        def load():
            import skimage.data

            img = getattr(skimage.data, name)()
            return img[0] if isinstance(img, tuple) else img
    elif pkg == "sklearn":
        def load():
            from PIL import Image
            import sklearn.datasets

            path = Path(sklearn.datasets.__file__).parent / "images" / name
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
    else:
        def load():
            import matplotlib
            from PIL import Image

            with Image.open(Path(matplotlib.get_data_path()) / "sample_data" / name) as im:
                return np.asarray(im.convert("RGB"))
    return load


def wheel_images(n: int = 17, size: int = 224, seed: int = 0) -> ImageSet:
    """``n`` photographs of natural scenes shipped inside installed wheels (no network needed)."""
    loaders, names, missing = [], [], []
    for pkg, name in WHEEL_IMAGES:
        try:
            img = _wheel_loader(pkg, name)()  # availability differs between package versions
        except Exception:  # noqa: BLE001 - any failure means "not shipped in this version"
            missing.append(f"{pkg}:{name}")
            continue
        loaders.append(lambda img=img: img)
        names.append(f"{pkg}:{name}")
    if not loaders:
        raise DataNotFoundError("no natural images found in the installed scikit-image, scikit-learn or "
                                "matplotlib; pass --images DIR (a folder of image files) or --allen-cache DIR")
    out = _build(loaders, names, n, size, seed,
                 "photographs of natural scenes shipped in scikit-image/scikit-learn/matplotlib")
    if missing:
        out.notes.append(f"not available in this environment: {', '.join(missing)}")
    return out


def natural_images(n: int = 17, *, allen_cache=None, folder=None, size: int = 224, seed: int = 0) -> ImageSet:
    """Natural-image inputs from the first source given: Allen cache, image folder, else wheel photographs."""
    if n < 1:
        raise InputError(f"need at least one input, got n={n}")
    if allen_cache is not None:
        return allen_images(allen_cache, n, size, seed)
    if folder is not None:
        return folder_images(folder, n, size, seed)
    return wheel_images(n, size, seed)
