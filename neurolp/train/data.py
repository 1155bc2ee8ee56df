"""Datasets, splits and seeded, resumable sampling for training and evaluation.

Datasets are read from their original on-disk layouts; nothing is downloaded at run time. A missing
dataset raises :class:`~neurolp.errors.DataNotFoundError` naming the folder that was searched,
the expected layout and where to get the files.

============  ====================================================================================
name          layout under ``--data-dir DIR``
============  ====================================================================================
cifar100      ``DIR/cifar-100-python/{train,test,meta}`` (torchvision's layout, "python version")
cifar10       ``DIR/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (python version)
tinyimagenet  ``DIR/tiny-imagenet-200/{wnids.txt, train/<wnid>/images/*.JPEG,
              val/images/*.JPEG, val/val_annotations.txt}``; all 10,000 val images are the test set
cifar100c     ``DIR/CIFAR-100-C/{<corruption>.npy, labels.npy}`` (evaluation only)
imagefolder   ``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (or ``DIR/val/<class>/*``)
digits        none: scikit-learn's bundled 8×8 digits (1,797 real images), upsampled
synthetic     none: seeded class-specific smooth patterns with shifts, contrast changes and noise
============  ====================================================================================

Splits: ``train`` minus a stratified validation part (``val_fraction``, seeded by ``split_seed``)
is trained on; ``val`` selects the epoch; ``test`` (CIFAR test set, TinyImageNet val set, the
folder's test/ or a fixed 20 % of digits/synthetic) is only reported.

Determinism: the order of the training set in epoch *e* is a permutation seeded by
``(seed, e)``, and the random augmentation of sample *i* in epoch *e* is seeded by
``(seed, e, i)`` (Python, NumPy and torch RNGs are set around the transform and restored after).
Augmentations therefore do not depend on the number of data-loader workers, and a run resumed in
the middle of an epoch sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError
from neurolp.utils.runtime import user_dir

__all__ = ["DatasetInfo", "DATASETS", "CIFAR100C_CORRUPTIONS", "dataset_info", "default_data_dir",
           "Splits", "load_splits", "load_corruption", "list_corruptions", "ArrayImages",
           "FileImages", "read_image", "file_images", "read_bad_log", "Augmented", "EpochBatchSampler", "synthetic_arrays", "digits_arrays"]

DATA_ENV_VAR = "NEUROLP_DATA"
CIFAR100C_CORRUPTIONS = (
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost", "gaussian_blur",
    "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression", "motion_blur", "pixelate",
    "saturate", "shot_noise", "snow", "spatter", "speckle_noise", "zoom_blur",
)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int | None       # None: read from the folder
    default_size: int             # input size when none is given
    paper_size: int               # input size of the paper preset
    native_size: int | None       # stored image size (None: varies)
    flip_ok: bool = True          # horizontal flips preserve the label
    crop_pct: float = 1.0         # evaluation centre-crop fraction
    offline: bool = False         # bundled / generated: needs no data_dir
    layout: str = ""
    source: str = ""


DATASETS: dict[str, DatasetInfo] = {
    "cifar100": DatasetInfo(
        "cifar100", 100, 32, 32, 32,
        layout="DIR/cifar-100-python/ with the files train, test and meta (torchvision's on-disk "
               "layout of the 'CIFAR-100 python version' archive)",
        source="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract with "
               "`tar xzf cifar-100-python.tar.gz -C DIR`)"),
    "cifar10": DatasetInfo(
        "cifar10", 10, 32, 32, 32,
        layout="DIR/cifar-10-batches-py/ with the files data_batch_1 … data_batch_5, test_batch and "
               "batches.meta (the 'CIFAR-10 python version' archive)",
        source="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract with "
               "`tar xzf cifar-10-python.tar.gz -C DIR`)"),
    "tinyimagenet": DatasetInfo(
        "tinyimagenet", 200, 64, 224, 64,
        layout="DIR/tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, "
               "val/images/*.JPEG and val/val_annotations.txt (the original archive, not re-foldered)",
        source="http://cs231n.stanford.edu/tiny-imagenet-200.zip (unzip into DIR)"),
    "cifar100c": DatasetInfo(
        "cifar100c", 100, 32, 32, 32,
        layout="DIR/CIFAR-100-C/ with one <corruption>.npy per corruption (50000×32×32×3 uint8: "
               "5 severities × 10,000 test images) and labels.npy",
        source="https://zenodo.org/record/3555552 (CIFAR-100-C.tar, extract into DIR)"),
    "imagefolder": DatasetInfo(
        "imagefolder", None, 224, 224, None, crop_pct=0.875,
        layout="DIR/train/<class>/<image> and DIR/test/<class>/<image> (or DIR/val/<class>/...), "
               "the same class folders in both",
        source="your own images"),
    "digits": DatasetInfo("digits", 10, 32, 32, 8, flip_ok=False, offline=True,
                          source="scikit-learn's bundled copy of the UCI optical digits (no download)"),
    "synthetic": DatasetInfo("synthetic", 10, 32, 32, 32, offline=True,
                             source="generated from a fixed seed"),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def default_data_dir() -> Path:
    """``$NEUROLP_DATA``, else ``~/.cache/neurolp/datasets``."""
    return user_dir(DATA_ENV_VAR, "datasets")


def _not_found(name: str, data_dir: Path, what: str) -> DataNotFoundError:
    info = DATASETS[name]
    return DataNotFoundError(
        f"{name} not found: {what}. Expected layout: {info.layout}. Get it from {info.source}, "
        f"then pass --data-dir DIR (or set ${DATA_ENV_VAR}); searched DIR = {data_dir}. "
        "neurolp never downloads datasets at run time")


# --- raw datasets (PIL image, label) ---------------------------------------------------------
class ArrayImages:
    """Images held as a ``uint8`` array ``[N, H, W, 3]`` (or a memory map) with integer labels."""

    def __init__(self, images: np.ndarray, targets: Sequence[int]):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise DataFormatError(f"expected uint8 images [N, H, W, 3], got {images.dtype} "
                                  f"{tuple(images.shape)}")
        if len(images) != len(targets):
            raise DataFormatError(f"{len(images)} images but {len(targets)} labels")
        self.images = images
        self.targets = [int(t) for t in targets]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return Image.fromarray(np.ascontiguousarray(self.images[i])), self.targets[i]


class FileImages:
    """Image files with labels, decoded as RGB PIL images.

    ``on_bad="stop"`` raises :class:`DataFormatError` naming an unreadable (corrupt, truncated,
    not-an-image) file; ``"skip"`` lets the next readable file of the list stand in for it (so
    batches, the seeded order and resuming are unaffected), warns once per file on stderr, and
    records it in :attr:`bad` and, when :attr:`bad_log` is set, in that CSV (appended by every
    data-loader process, so it is complete with ``num_workers > 0``).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], on_bad: str = "stop"):
        if on_bad not in ("stop", "skip"):
            raise ConfigError(f"on_bad_sample must be stop or skip, got {on_bad!r}")
        self.samples = list(samples)
        self.targets = [t for _, t in self.samples]
        self.on_bad = on_bad
        self.bad: dict[str, str] = {}
        self.bad_log: Path | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        n = len(self.samples)
        for k in range(n):
            path, target = self.samples[(i + k) % n]
            try:
                return read_image(path), target
            except DataFormatError as exc:
                if self.on_bad == "stop":
                    raise DataFormatError(f"{exc}; remove or replace the file, or pass "
                                          "--on-bad-sample skip to leave unreadable images out") from None
                self._record(path, str(exc))
        raise DataFormatError(f"none of the {n} image files can be read (e.g. {self.samples[i][0]})")

    def _record(self, path: str, reason: str) -> None:
        import sys

        if path in self.bad:
            return
        self.bad[path] = reason
        print(f"neurolp: warning: skipped unreadable image {path}", file=sys.stderr)
        if self.bad_log is not None:
            line = '"' + path.replace('"', '""') + '","' + reason.replace('"', '""') + '"\n'
            with contextlib.suppress(OSError), open(self.bad_log, "a", encoding="utf-8") as fh:
                fh.write(line)  # one short append per file: safe across loader processes


def read_image(path: str | os.PathLike):
    """An image file as an RGB PIL image; any decoding failure is a :class:`DataFormatError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as fh:
            img = Image.open(fh)
            return img.convert("RGB")  # decodes now: a truncated file fails here, not later
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError,
            EOFError) as exc:
        raise DataFormatError(f"cannot read image {path} ({type(exc).__name__}: "
                              f"{str(exc).strip() or 'corrupt file'})") from None


def file_images(split) -> list[FileImages]:
    """The :class:`FileImages` under a split (through subsets), for bad-sample reports."""
    seen, out = split, []
    while seen is not None:
        if isinstance(seen, FileImages):
            out.append(seen)
        seen = getattr(seen, "base", None) or getattr(seen, "raw", None)
    return out


def read_bad_log(path: str | os.PathLike) -> dict[str, str]:
    """The ``path → reason`` records of a bad-sample log (see :class:`FileImages`)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {row[0]: row[1] for row in csv.reader(fh) if len(row) == 2}
    except FileNotFoundError:
        return {}


class _Subset:
    def __init__(self, base, indices: Sequence[int]):
        self.base, self.indices = base, [int(i) for i in indices]
        self.targets = [base.targets[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.base[self.indices[i]]


# --- CIFAR-10/100 (the python-version pickle files, read with an allow-list unpickler) --------
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists/strings and NumPy arrays only: the CIFAR files' content, nothing else."""

    def find_class(self, module: str, name: str):
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                   ("builtins", "bytearray"): bytearray}
        if (module, name) in allowed:
            return allowed[(module, name)]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _np_attr("multiarray", "_reconstruct")
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _np_attr("numeric", "_frombuffer")
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return lambda s, enc="utf-8": codecs.encode(s, enc if enc in ("latin1", "latin-1")
                                                        else "utf-8")
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: CIFAR files hold "
                                     "only NumPy arrays, lists and strings")


def _np_attr(sub: str, name: str):
    import importlib

    for mod in (f"numpy._core.{sub}", f"numpy.core.{sub}"):
        with contextlib.suppress(ImportError, AttributeError):
            return getattr(importlib.import_module(mod), name)
    raise pickle.UnpicklingError(f"numpy has no {sub}.{name}")  # pragma: no cover


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            obj = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
            IndexError, OverflowError, MemoryError) as exc:  # a malformed pickle can raise any of these
        raise DataFormatError(f"{path} is not a CIFAR python-version file ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path} is not a CIFAR python-version file (not a dict)")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


CIFAR100_FILES = ("train", "test", "meta")
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


def _find_root(data_dir: Path, folder: str, files) -> Path | None:
    """``data_dir/folder`` or ``data_dir`` itself, whichever holds all of ``files`` (None: neither)."""
    for cand in (data_dir / folder, data_dir):
        if all((cand / f).is_file() for f in files):
            return cand
    return None


def _read_cifar_split(path: Path, label_key: str, num_classes: int, *,
                      check_count: bool) -> tuple[np.ndarray, list]:
    """Images ``[N, 32, 32, 3]`` and labels of one pickled CIFAR split (``label_key``: CIFAR-10's
    ``labels``, CIFAR-100's ``fine_labels``). ``check_count``: refuse here a label count that differs
    from the image count (CIFAR-10 concatenates its batches; CIFAR-100's :class:`ArrayImages` checks)."""
    d = _read_cifar_pickle(path)
    data, labels = np.asarray(d.get("data")), d.get(label_key)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8 or labels is None:
        raise DataFormatError(f"{path}: expected 'data' uint8 [N, 3072] and '{label_key}', got "
                              f"{data.dtype} {data.shape}")
    bad = f"{label_key} outside 0..{num_classes - 1}"
    if check_count:
        bad = f"{len(labels)} {label_key} for {len(data)} images, or {bad}"
        if len(labels) != len(data):
            raise DataFormatError(f"{path}: {bad}")
    if len(labels) and not (0 <= min(labels) and max(labels) < num_classes):
        raise DataFormatError(f"{path}: {bad}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), list(labels)


def _load_cifar100(data_dir: Path, **_) -> dict[str, Any]:
    root = _find_root(data_dir, "cifar-100-python", CIFAR100_FILES)
    if root is None:
        raise _not_found("cifar100", data_dir,
                         f"no cifar-100-python/{{train,test,meta}} in {data_dir}")
    meta = _read_cifar_pickle(root / "meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("fine_label_names", [])]
    if len(classes) != 100:
        raise DataFormatError(f"{root / 'meta'} lists {len(classes)} fine label names, expected 100")
    out: dict[str, Any] = {"classes": classes}
    for split in ("train", "test"):
        out[split] = ArrayImages(*_read_cifar_split(root / split, "fine_labels", 100, check_count=False))
    return out


def _load_cifar10(data_dir: Path, **_) -> dict[str, Any]:
    root = _find_root(data_dir, "cifar-10-batches-py", CIFAR10_FILES)
    if root is None:
        raise _not_found("cifar10", data_dir, f"no cifar-10-batches-py/{{{','.join(CIFAR10_FILES)}}} "
                                              f"in {data_dir}")
    meta = _read_cifar_pickle(root / "batches.meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("label_names", [])]
    if len(classes) != 10:
        raise DataFormatError(f"{root / 'batches.meta'} lists {len(classes)} label names, expected 10")
    parts = [_read_cifar_split(root / f, "labels", 10, check_count=True) for f in CIFAR10_FILES[:5]]
    test = _read_cifar_split(root / "test_batch", "labels", 10, check_count=True)
    return {"classes": classes,
            "train": ArrayImages(np.concatenate([p[0] for p in parts]), sum((p[1] for p in parts), [])),
            "test": ArrayImages(*test)}


# --- TinyImageNet (original layout, all 10,000 val images) -----------------------------------
def _tiny_root(data_dir: Path) -> Path | None:
    for cand in (data_dir / "tiny-imagenet-200", data_dir):
        if (cand / "wnids.txt").is_file():
            return cand
    return None


def _load_tinyimagenet(data_dir: Path, on_bad_sample: str = "stop", **_) -> dict[str, Any]:
    root = _tiny_root(data_dir)
    if root is None:
        raise _not_found("tinyimagenet", data_dir, f"no tiny-imagenet-200/wnids.txt in {data_dir}")
    wnids = sorted({w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()})
    index = {w: i for i, w in enumerate(wnids)}
    train = []
    for w in wnids:
        folder = root / "train" / w / "images"
        if not folder.is_dir():
            raise _not_found("tinyimagenet", data_dir, f"missing training folder {folder}")
        train += [(str(folder / f), index[w]) for f in sorted(os.listdir(folder))
                  if f.lower().endswith((".jpeg", ".jpg", ".png"))]
    ann = root / "val" / "val_annotations.txt"
    if not ann.is_file():
        refoldered = (root / "val").is_dir() and any((root / "val" / w).is_dir() for w in wnids[:5])
        raise DataFormatError(
            f"{ann} is missing" + (": val/ looks re-foldered into val/<wnid>/ (the official "
                                   "val_format.py does this and also hides half of the images)"
                                   if refoldered else "")
            + ". Restore the original layout: val/images/*.JPEG and val/val_annotations.txt")
    test, unknown = [], set()
    present = set(os.listdir(root / "val" / "images")) if (root / "val" / "images").is_dir() else set()
    for line in ann.read_text().splitlines():
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            continue
        fname, wnid = parts[0], parts[1]
        if wnid not in index:
            unknown.add(wnid)
            continue
        if fname not in present:
            raise DataFormatError(f"{root / 'val' / 'images' / fname} is listed in "
                                  f"{ann.name} but missing")
        test.append((str(root / "val" / "images" / fname), index[wnid]))
    if unknown:
        raise DataFormatError(f"{ann} uses {len(unknown)} wnids not in wnids.txt (e.g. "
                              f"{sorted(unknown)[0]})")
    if not train or not test:
        raise DataFormatError(f"{root}: found {len(train)} training and {len(test)} val images")
    return {"classes": wnids, "train": FileImages(train, on_bad_sample),
            "test": FileImages(test, on_bad_sample)}


# --- any ImageFolder ---------------------------------------------------------------------------
def _load_imagefolder(data_dir: Path, on_bad_sample: str = "stop", **_) -> dict[str, Any]:
    from torchvision.datasets import ImageFolder

    if not (data_dir / "train").is_dir():
        raise _not_found("imagefolder", data_dir, f"no train/ folder in {data_dir}")
    test_dir = next((data_dir / s for s in ("test", "val") if (data_dir / s).is_dir()), None)
    if test_dir is None:
        raise _not_found("imagefolder", data_dir, f"no test/ or val/ folder in {data_dir}")
    try:
        tr, te = ImageFolder(str(data_dir / "train")), ImageFolder(str(test_dir))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataFormatError(f"{data_dir}: {exc}") from exc
    if tr.classes != te.classes:
        raise DataFormatError(f"{data_dir}: train/ and {test_dir.name}/ have different class "
                              f"folders ({len(tr.classes)} vs {len(te.classes)})")
    return {"classes": tr.classes, "train": FileImages(tr.samples, on_bad_sample),
            "test": FileImages(te.samples, on_bad_sample)}


# --- offline datasets ----------------------------------------------------------------------------
def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 digits as uint8 RGB images [N, 8, 8, 3] and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1), d.target.astype(np.int64)


def synthetic_arrays(n: int = 2500, num_classes: int = 10, size: int = 32,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded images whose label is learnable but not trivially: one smooth random RGB pattern per
    class (sharing 80 % of its variance with a common background pattern), shown with a random
    circular shift (up to ±size/4), a random contrast of 0.3–1.1 and Gaussian pixel noise (σ = 70
    grey levels)."""
    rng = np.random.default_rng(seed)
    freq = np.fft.fftfreq(size)
    lowpass = np.exp(-(freq[:, None] ** 2 + freq[None, :] ** 2) / (2 * 0.08 ** 2))

    def smooth(k):
        f = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((k, 3, size, size))) * lowpass))
        return f / f.std(axis=(1, 2, 3), keepdims=True)

    protos = np.sqrt(0.8) * smooth(1) + np.sqrt(0.2) * smooth(num_classes)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    shift = size // 4
    images = np.empty((n, size, size, 3), np.uint8)
    for i, c in enumerate(labels):
        dy, dx = rng.integers(-shift, shift + 1, size=2)
        img = np.roll(protos[c], (dy, dx), axis=(1, 2)) * rng.uniform(0.3, 1.1)
        img = 128 + 45 * img + rng.normal(0, 70, size=img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return images, labels.astype(np.int64)


def _fixed_test_split(targets: np.ndarray, fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(targets))
    return train_test_split(idx, test_size=fraction, stratify=targets, random_state=0)


def _load_offline(images: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    tr, te = _fixed_test_split(labels)
    return {"classes": classes, "train": ArrayImages(images[tr], labels[tr]),
            "test": ArrayImages(images[te], labels[te])}


def _load_digits(data_dir: Path | None = None, **_) -> dict[str, Any]:
    images, labels = digits_arrays()
    return _load_offline(images, labels, [str(i) for i in range(10)])


def _load_synthetic(data_dir: Path | None = None, **_) -> dict[str, Any]:
    images, labels = synthetic_arrays()
    return _load_offline(images, labels, [f"pattern{i}" for i in range(10)])


_LOADERS: dict[str, Callable[..., dict[str, Any]]] = {
    "cifar100": _load_cifar100, "cifar10": _load_cifar10, "tinyimagenet": _load_tinyimagenet,
    "imagefolder": _load_imagefolder, "digits": _load_digits, "synthetic": _load_synthetic,
}


# --- CIFAR-100-C ---------------------------------------------------------------------------------
def _c_root(data_dir: Path) -> Path:
    for cand in (data_dir / "CIFAR-100-C", data_dir):
        if (cand / "labels.npy").is_file():
            return cand
    raise _not_found("cifar100c", data_dir, f"no CIFAR-100-C/labels.npy in {data_dir}")


def list_corruptions(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The corruptions present (``<name>.npy`` next to ``labels.npy``), sorted."""
    root = _c_root(Path(data_dir) if data_dir else default_data_dir())
    return sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")


def load_corruption(data_dir: str | os.PathLike | None, corruption: str, severity: int) -> ArrayImages:
    """The 10,000 (or, in small fixtures, N/5) test images of one corruption at one severity (1–5)."""
    root = _c_root(Path(data_dir) if data_dir else default_data_dir())
    if not 1 <= int(severity) <= 5:
        raise ConfigError(f"severity must be 1..5, got {severity}")
    path = root / f"{corruption}.npy"
    if not path.is_file():
        raise _not_found("cifar100c", root, f"no {path.name} in {root}")
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
        labels = np.load(root / "labels.npy", allow_pickle=False)
    except ValueError as exc:
        raise DataFormatError(f"{path} or labels.npy is not a plain .npy array ({exc})") from exc
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise DataFormatError(f"{path}: expected uint8 [5·N, 32, 32, 3], got {images.dtype} "
                              f"{images.shape}")
    if len(images) != len(labels) or len(images) % 5:
        raise DataFormatError(f"{path}: {len(images)} images and {len(labels)} labels; expected "
                              "equal counts divisible by 5 (5 severities)")
    n = len(images) // 5
    sl = slice((int(severity) - 1) * n, int(severity) * n)
    return ArrayImages(images[sl], labels[sl])


# --- splits ----------------------------------------------------------------------------------
@dataclass
class Splits:
    """Raw (untransformed) splits: each item is ``(PIL image, label)``."""

    train: Any
    val: Any | None
    test: Any
    classes: list[str]
    info: DatasetInfo
    image_size: int
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) if self.val is not None else 0,
                "test": len(self.test)}

    def file_datasets(self) -> list[FileImages]:
        """The image-file datasets behind the splits (none for array datasets), each once."""
        found = {}
        for split in (self.train, self.val, self.test):
            for ds in file_images(split):
                found[id(ds)] = ds
        return list(found.values())

    def log_bad_samples(self, path: str | os.PathLike) -> None:
        """Append skipped unreadable files (``--on-bad-sample skip``) to the CSV ``path``."""
        for ds in self.file_datasets():
            ds.bad_log = Path(path)

    def bad_samples(self) -> dict[str, str]:
        """Unreadable files skipped so far (this process and, through the log, loader workers)."""
        out: dict[str, str] = {}
        for ds in self.file_datasets():
            out.update(ds.bad)
            if ds.bad_log is not None:
                out.update(read_bad_log(ds.bad_log))
        return out


def _split_indices(targets: np.ndarray, fraction: float, seed: int, notes: list[str]):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(targets))
    n_val = int(round(fraction * len(idx)))
    n_classes = int((np.bincount(targets) > 0).sum())
    if n_val < 1 or len(idx) - n_val < max(n_classes, 2):
        fix = ("raise --val-fraction, or pass --val-fraction 0 to report the last epoch" if n_val < 1
               else "choose a smaller --val-fraction that keeps at least one training image per class")
        raise ConfigError(f"--val-fraction {fraction:g} of {len(idx)} training images leaves "
                          f"{n_val} for validation and {len(idx) - n_val} for training "
                          f"({n_classes} classes); {fix} (the default is 0.1)")
    counts = np.bincount(targets)
    if counts[counts > 0].min() >= 2 and n_val >= int((counts > 0).sum()):
        return train_test_split(idx, test_size=n_val, stratify=targets, random_state=seed)
    notes.append("validation split not stratified: some class has fewer than 2 images or there "
                 "are more classes than validation images")
    return train_test_split(idx, test_size=n_val, random_state=seed)


def resolve_image_size(config) -> int:
    info = dataset_info(config.dataset)
    if config.image_size:
        return int(config.image_size)
    return info.paper_size if config.preset == "paper" else info.default_size


def check_dataset_present(config) -> None:
    """Raise the loader's own :class:`DataNotFoundError` (layout, source) when the dataset's folder
    is not there: checked before a run builds anything, without reading the data."""
    info = dataset_info(config.dataset)
    if info.offline or config.dataset == "cifar100c":
        return
    data_dir = Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()
    if config.dataset == "cifar100" and _find_root(data_dir, "cifar-100-python", CIFAR100_FILES) is None:
        raise _not_found("cifar100", data_dir, f"no cifar-100-python/{{train,test,meta}} in {data_dir}")
    if config.dataset == "cifar10" and _find_root(data_dir, "cifar-10-batches-py", CIFAR10_FILES) is None:
        raise _not_found("cifar10", data_dir, f"no cifar-10-batches-py/ with {', '.join(CIFAR10_FILES)} "
                                              f"in {data_dir}")
    if config.dataset == "tinyimagenet" and _tiny_root(data_dir) is None:
        raise _not_found("tinyimagenet", data_dir, f"no tiny-imagenet-200/wnids.txt in {data_dir}")
    if config.dataset == "imagefolder" and not (data_dir / "train").is_dir():
        raise _not_found("imagefolder", data_dir, f"no train/ folder in {data_dir}")


def load_splits(config) -> Splits:
    """The train / val / test splits of ``config.dataset`` (see the module docstring)."""
    info = dataset_info(config.dataset)
    if config.dataset == "cifar100c":
        raise ConfigError("cifar100c is an evaluation set: train on cifar100 and evaluate with "
                          "`neurolp eval --dataset cifar100c`")
    data_dir = Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()
    raw = _LOADERS[config.dataset](data_dir, on_bad_sample=getattr(config, "on_bad_sample", "stop"))
    notes: list[str] = []
    train = raw["train"]
    targets = np.asarray(train.targets)
    if config.max_train_samples and config.max_train_samples < len(train):
        keep = np.sort(np.random.default_rng(config.split_seed).permutation(len(train))
                       [:config.max_train_samples])
        train, targets = _Subset(train, keep), targets[keep]
        notes.append(f"training set reduced to {len(keep)} images (max_train_samples)")
    val = None
    if config.val_fraction > 0:
        tr_idx, va_idx = _split_indices(targets, config.val_fraction, config.split_seed, notes)
        train, val = _Subset(train, np.sort(tr_idx)), _Subset(train, np.sort(va_idx))
    else:
        notes.append("no validation split (val_fraction=0): the last epoch is reported")
    return Splits(train, val, raw["test"], list(raw["classes"]), info, resolve_image_size(config),
                  notes)


# --- seeded per-sample augmentation ------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (splitmix64 steps), cheap enough per sample."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h & ((1 << 63) - 1)


@contextlib.contextmanager
def seeded_rngs(seed: int):
    """Seed Python's, NumPy's and torch's (CPU) global RNGs; restore their states afterwards."""
    import torch

    py, npy, th = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.default_generator.set_state(th)


class Augmented:
    """A raw split with a transform. Keys ``(epoch, i)`` seed the transform by ``(seed, epoch, i)``;
    plain integer keys (evaluation) apply it without touching any RNG."""

    def __init__(self, raw, transform, seed: int = 0):
        self.raw, self.transform, self.seed = raw, transform, int(seed)
        self.targets = raw.targets

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            epoch, i = key
            with seeded_rngs(mix_seed(self.seed, epoch, i)):
                img, target = self.raw[i]
                return self.transform(img), target
        img, target = self.raw[key]
        return self.transform(img), target


class EpochBatchSampler:
    """Batches of ``(epoch, index)`` keys: a ``(seed, epoch)``-seeded permutation, sharded over
    ``world`` processes (rank ``r`` takes positions ``r, r + world, …``), incomplete batches
    dropped. ``set_epoch(e, start_step)`` starts epoch ``e`` at batch ``start_step`` (resume)."""

    def __init__(self, n: int, batch_size: int, seed: int, *, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_rank = n // world
        if self.per_rank < batch_size:
            raise ConfigError(f"batch size {batch_size * world} is larger than the training set "
                              f"({n} images); lower --batch-size")
        self.steps_per_epoch = self.per_rank // batch_size
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = int(epoch), int(start_step)

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step

    def __iter__(self):
        import torch

        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, 0x5A3))
        perm = torch.randperm(self.n, generator=g)[: self.per_rank * self.world]
        mine = perm[self.rank::self.world].tolist()
        for b in range(self.start_step, self.steps_per_epoch):
            yield [(self.epoch, i) for i in mine[b * self.batch_size:(b + 1) * self.batch_size]]


def shard(dataset, rank: int, world: int):
    """Every ``world``-th item starting at ``rank`` (evaluation under DDP; no padding)."""
    return dataset if world == 1 else _Subset(dataset, range(rank, len(dataset), world))
