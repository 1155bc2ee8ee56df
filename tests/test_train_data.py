"""Datasets in their real on-disk layouts (tiny fixtures made here), splits and seeded sampling."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError
from neurolp.train.augment import build_transforms
from neurolp.train.config import make_config
from neurolp.train.data import (DATASETS, Augmented, EpochBatchSampler, list_corruptions,
                                load_corruption, load_splits, synthetic_arrays)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest


# --- fixtures in the original formats --------------------------------------------------------
def write_cifar100(root, n_train=300, n_test=100, seed=0):
    """A miniature cifar-100-python/ folder in the format torchvision reads (pickled dicts)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = [int(i % 100) for i in range(n)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        data[:, :1024] = np.asarray(labels, np.uint8)[:, None]  # red plane encodes the label
        with open(folder / split, "wb") as fh:
            pickle.dump({"filenames": [f"img{i}.png" for i in range(n)], "batch_label": split,
                         "fine_labels": labels, "coarse_labels": [l // 5 for l in labels],
                         "data": data}, fh, protocol=2)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(100)],
                     "coarse_label_names": [f"super{i}" for i in range(20)]}, fh, protocol=2)
    return folder


def _jpeg(path, value):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(path, "JPEG")


def write_tinyimagenet(root, wnids=("n02", "n01", "n03"), per_class=4, val_per_class=3):
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        for i in range(per_class):
            _jpeg(folder / "train" / w / "images" / f"{w}_{i}.JPEG", 40 * (i + 1))
        (folder / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for j in range(val_per_class * len(wnids)):
        w = wnids[j % len(wnids)]
        _jpeg(folder / "val" / "images" / f"val_{j}.JPEG", 10 * j)
        lines.append(f"val_{j}.JPEG\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


# --- CIFAR-100 ---------------------------------------------------------------------------------
def test_cifar100_reads_torchvision_layout(tmp_path):
    write_cifar100(tmp_path)
    s = load_splits(make_config(dataset="cifar100", data_dir=str(tmp_path), val_fraction=0.2))
    assert s.sizes() == {"train": 240, "val": 60, "test": 100}
    assert s.classes[:2] == ["class00", "class01"] and s.num_classes == 100 and s.image_size == 32
    img, label = s.test[7]
    assert img.size == (32, 32) and label == 7
    assert np.asarray(img)[..., 0].max() == 7  # red plane decoded in torchvision's HWC order
    # the data folder itself may be passed too
    s2 = load_splits(make_config(dataset="cifar100", data_dir=str(tmp_path / "cifar-100-python")))
    assert len(s2.test) == 100


def test_cifar100_refuses_unsafe_pickles(tmp_path):
    folder = write_cifar100(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "test", "wb") as fh:
        pickle.dump({"data": Evil()}, fh, protocol=2)
    with pytest.raises(DataFormatError, match=r"is not a CIFAR python-version file \(refusing "
                                              r"to unpickle (posix|nt)\.system"):
        load_splits(make_config(dataset="cifar100", data_dir=str(tmp_path)))


def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_splits(make_config(dataset="cifar100", data_dir=str(tmp_path)))
    assert str(err.value) == (
        f"cifar100 not found: no cifar-100-python/{{train,test,meta}} in {tmp_path}. Expected "
        "layout: DIR/cifar-100-python/ with the files train, test and meta (torchvision's on-disk "
        "layout of the 'CIFAR-100 python version' archive). Get it from "
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract with `tar xzf "
        f"cifar-100-python.tar.gz -C DIR`), then pass --data-dir DIR (or set $NEUROLP_DATA); "
        f"searched DIR = {tmp_path}. neurolp never downloads datasets at run time")
    for name in ("tinyimagenet", "imagefolder"):
        with pytest.raises(DataNotFoundError, match=f"^{name} not found: .*Expected layout: "):
            load_splits(make_config(dataset=name, data_dir=str(tmp_path)))
    with pytest.raises(DataNotFoundError, match="^cifar100c not found: no CIFAR-100-C/labels.npy"):
        list_corruptions(tmp_path)


# --- TinyImageNet --------------------------------------------------------------------------------
def test_tinyimagenet_original_layout_uses_every_val_image(tmp_path):
    folder = write_tinyimagenet(tmp_path)
    s = load_splits(make_config(dataset="tinyimagenet", data_dir=str(tmp_path), val_fraction=0.25))
    assert s.classes == ["n01", "n02", "n03"]  # sorted wnids, as ImageFolder would order them
    assert len(s.test) == 9 and s.sizes()["train"] + s.sizes()["val"] == 12
    assert s.image_size == 64
    img, label = s.test[1]  # val_1 is annotated n01
    assert img.size == (64, 64) and label == 0
    assert sorted(s.test.targets) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # paper preset trains at 224 px
    assert load_splits(make_config("paper", dataset="tinyimagenet",
                                   data_dir=str(tmp_path))).image_size == 224
    # the official val_format.py re-folders val/ into val/<wnid>/ (and hides half the images)
    os.remove(folder / "val" / "val_annotations.txt")
    (folder / "val" / "n01").mkdir()
    with pytest.raises(DataFormatError, match="looks re-foldered into val/<wnid>/"):
        load_splits(make_config(dataset="tinyimagenet", data_dir=str(tmp_path)))


def test_tinyimagenet_missing_val_image(tmp_path):
    folder = write_tinyimagenet(tmp_path)
    os.remove(folder / "val" / "images" / "val_4.JPEG")
    with pytest.raises(DataFormatError, match=r"val_4\.JPEG is listed in val_annotations.txt but missing"):
        load_splits(make_config(dataset="tinyimagenet", data_dir=str(tmp_path)))


# --- CIFAR-100-C and ImageFolder -------------------------------------------------------------------
def test_cifar100c_severity_slices(tmp_path):
    folder = tmp_path / "CIFAR-100-C"
    folder.mkdir()
    n = 4
    images = np.zeros((5 * n, 32, 32, 3), np.uint8)
    for s in range(5):
        images[s * n:(s + 1) * n] = s + 1
    np.save(folder / "fog.npy", images)
    np.save(folder / "snow.npy", images)
    np.save(folder / "labels.npy", np.tile(np.arange(n), 5))
    assert list_corruptions(tmp_path) == ["fog", "snow"]
    ds = load_corruption(tmp_path, "fog", 3)
    assert len(ds) == n and np.asarray(ds[0][0]).max() == 3 and ds.targets == [0, 1, 2, 3]
    with pytest.raises(DataNotFoundError, match="no frost.npy"):
        load_corruption(tmp_path, "frost", 1)
    with pytest.raises(ConfigError, match="severity must be 1..5"):
        load_corruption(tmp_path, "fog", 6)
    np.save(folder / "bad.npy", np.zeros((7, 32, 32, 3), np.uint8))
    with pytest.raises(DataFormatError, match="divisible by 5"):
        load_corruption(tmp_path, "bad", 1)


def test_imagefolder(tmp_path):
    from PIL import Image

    for split, k in (("train", 6), ("test", 2)):
        for c, v in (("cat", 30), ("dog", 200)):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(k):
                Image.fromarray(np.full((40, 48, 3), v, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    s = load_splits(make_config(dataset="imagefolder", data_dir=str(tmp_path), val_fraction=0.25,
                                image_size=32))
    assert s.classes == ["cat", "dog"] and s.sizes() == {"train": 9, "val": 3, "test": 4}
    train_tf, eval_tf = build_transforms(make_config(), s.info, 32, [0.5] * 3, [0.5] * 3)
    x = eval_tf(s.test[0][0])
    assert x.shape == (3, 32, 32)
    (tmp_path / "test" / "bird").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "test" / "bird" / "0.png")
    with pytest.raises(DataFormatError, match="different class folders"):
        load_splits(make_config(dataset="imagefolder", data_dir=str(tmp_path)))


# --- offline data, splits ---------------------------------------------------------------------------
def test_offline_datasets_and_stratified_val_split():
    s = load_splits(make_config(dataset="digits"))
    assert s.sizes() == {"train": 1293, "val": 144, "test": 360} and s.image_size == 32
    img, _ = s.train[0]
    assert img.size == (8, 8)  # real 8×8 digits; the transforms upsample
    counts = np.bincount(s.val.targets, minlength=10)
    assert counts.min() >= 13 and counts.max() <= 16  # stratified: ~14.4 per class
    train_idx = set(s.train.indices)
    assert not train_idx & set(s.val.indices)
    # the split depends on split_seed, not on the training seed
    s_seed = load_splits(make_config(dataset="digits", seed=5))
    assert s_seed.val.indices == s.val.indices
    s_other = load_splits(make_config(dataset="digits", split_seed=1))
    assert s_other.val.indices != s.val.indices
    syn = load_splits(make_config(dataset="synthetic", max_train_samples=500))
    assert syn.sizes() == {"train": 450, "val": 50, "test": 500}
    assert "reduced to 500" in syn.notes[0]
    a, la = synthetic_arrays(n=50)
    b, lb = synthetic_arrays(n=50)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and a.shape == (50, 32, 32, 3)


def test_cifar100c_is_not_trainable():
    with pytest.raises(ConfigError, match="cifar100c is an evaluation set"):
        load_splits(make_config(dataset="cifar100c"))


# --- sampling and seeded augmentation ---------------------------------------------------------------
def test_epoch_sampler_is_seeded_resumable_and_sharded():
    s = EpochBatchSampler(50, 8, seed=3)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 6 == s.steps_per_epoch and all(len(b) == 8 for b in full)
    assert all(k[0] == 2 for b in full for k in b)
    s.set_epoch(2, start_step=4)
    assert list(s) == full[4:] and len(s) == 2
    s.set_epoch(3)
    assert list(s) != full
    shards = [EpochBatchSampler(50, 4, seed=3, rank=r, world=2) for r in range(2)]
    for sh in shards:
        sh.set_epoch(2)
    seen = [[i for b in sh for _, i in b] for sh in shards]
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) == len(seen[1]) == 24
    with pytest.raises(ConfigError, match="batch size 64 is larger than the training set"):
        EpochBatchSampler(50, 64, seed=0)


def test_augmentation_is_a_function_of_seed_epoch_index():
    cfg = make_config("paper", dataset="digits", image_size=16)
    s = load_splits(cfg)
    train_tf, _ = build_transforms(cfg, s.info, 16, [0.5] * 3, [0.5] * 3)
    ds = Augmented(s.train, train_tf, seed=7)
    py, npy, th = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    a = [ds[(1, i)] for i in (5, 6, 7)]
    b = [ds[(1, i)] for i in (7, 6, 5)][::-1]  # another order (as another worker would)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and ya == yb
    assert not torch.equal(ds[(2, 5)][0], a[0][0])  # a new epoch draws new augmentations
    assert not torch.equal(Augmented(s.train, train_tf, seed=8)[(1, 5)][0], a[0][0])
    # the global RNG streams (used by Mixup, dropout) are left exactly as they were
    assert random.getstate() == py and np.array_equal(np.random.get_state()[1], npy)
    assert torch.equal(torch.get_rng_state(), th)
    assert a[0][0].shape == (3, 16, 16)


def test_registry_lists_layouts():
    assert set(DATASETS) == {"cifar100", "cifar10", "tinyimagenet", "cifar100c", "imagefolder", "digits",
                             "synthetic"}
    assert "val_annotations.txt" in DATASETS["tinyimagenet"].layout


def test_paper_randaugment_survives_zero_bit_posterize():
    """timm's inc1 posterize reaches 0 bits at magnitude 10; current Pillow raises there."""
    from PIL import Image

    cfg = make_config("paper", auto_augment="rand-m10-n1-inc1")
    train_tf, _ = build_transforms(cfg, DATASETS["digits"], 16, [0.5] * 3, [0.5] * 3)
    ra = next(t for t in train_tf.transforms if hasattr(t, "ops"))
    op = next(o for o in ra.ops if o.name == "PosterizeIncreasing")
    op.prob = 1.0
    out = op(Image.fromarray(np.full((8, 8, 3), 200, np.uint8)))
    assert np.asarray(out).max() == 0  # Pillow < 10 semantics: keep 0 bits -> black
