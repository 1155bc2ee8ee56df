"""Inputs and networks for functional RFs: image sources, preprocessing, offline weight lookup."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from neurolp.errors import CheckpointError, ConfigError, DataFormatError, DataNotFoundError, InputError
from neurolp.rf.images import IMAGENET_MEAN, IMAGENET_STD, folder_images, natural_images, noise_images, preprocess
from neurolp.rf.networks import build_network, find_trained_weights, load_state_dict_file


def test_preprocess_resize_crop_normalise():
    img = np.zeros((100, 300, 3), dtype=np.uint8)
    img[:, 150:] = 255                       # right half white
    out = preprocess(img, size=50)
    assert out.shape == (3, 50, 50)
    # shorter side → 50, width → 150, centre crop keeps columns 50..99: half black, half white
    white = (1 - IMAGENET_MEAN) / IMAGENET_STD
    black = -IMAGENET_MEAN / IMAGENET_STD
    np.testing.assert_allclose(out[:, :, -5:].mean(axis=(1, 2)), white, atol=1e-6)
    np.testing.assert_allclose(out[:, :, :5].mean(axis=(1, 2)), black, atol=1e-6)
    grey = preprocess(np.full((60, 60), 128, dtype=np.uint8), size=32)
    np.testing.assert_allclose(grey[:, 0, 0], (128 / 255 - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-6)


def test_noise_images_seeded():
    a, b = noise_images(3, 16, seed=1), noise_images(3, 16, seed=1)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, noise_images(3, 16, seed=2).images)
    assert abs(a.images.std() - 1) < 0.1


def _write_pngs(folder, n):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(folder / f"img{i}.png")


def test_folder_images_draw_and_crops(tmp_path):
    _write_pngs(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    s = folder_images(tmp_path / "imgs", n=2, size=32, seed=0)
    assert s.images.shape == (2, 3, 32, 32) and len(set(s.names)) == 2
    more = folder_images(tmp_path / "imgs", n=5, size=32, seed=0)     # 3 images, 2 extra crops
    assert len(more.names) == 5 and sum("crop" in n for n in more.names) == 2
    assert more.notes and "random crops" in more.notes[0]


def test_folder_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        folder_images(tmp_path / "missing")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(InputError, match="is not a folder"):
        folder_images(tmp_path / "f.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no images"):
        folder_images(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(DataFormatError, match="cannot read image .*a.jpg"):
        folder_images(tmp_path / "broken", n=1)


def test_natural_images_default_are_shipped_photographs():
    s = natural_images(4, size=32, seed=0)
    assert s.images.shape == (4, 3, 32, 32)
    assert "scikit-image" in s.source
    assert np.isfinite(s.images).all()


def test_default_images_are_natural_scenes_only():
    from neurolp.rf.images import WHEEL_IMAGES

    names = {name for _, name in WHEEL_IMAGES}
    # no micrographs, telescope images or textures: their statistics are not natural scenes'
    assert not names & {"immunohistochemistry", "hubble_deep_field", "moon", "brick", "grass", "gravel",
                        "retina", "cell", "microaneurysms"}
    s = natural_images(17, size=32, seed=0)
    distinct = {n.split("[")[0] for n in s.names}
    assert len(s.names) == 17 and len(distinct) == len(WHEEL_IMAGES) == 11
    assert sum("[crop" in n for n in s.names) == 6 and any("random crops" in n for n in s.notes)


def test_weights_lookup_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    found = find_trained_weights("alexnet")
    assert found.path is None
    assert "alexnet-owt-7be5be79.pth" in found.reason and str(tmp_path / "torch" / "hub" / "checkpoints") in found.reason
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth"):
        build_network("alexnet", trained=True)
    # a drop-in file in the hub cache is found and loaded (a partial state_dict of conv1 suffices)
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    w = torch.randn(64, 3, 11, 11)
    torch.save({"features.0.weight": w, "features.0.bias": torch.zeros(64)}, ckpt / "alexnet-owt-7be5be79.pth")
    assert find_trained_weights("alexnet").path == ckpt / "alexnet-owt-7be5be79.pth"
    net = build_network("alexnet", trained=True)
    torch.testing.assert_close(net.features[0].weight, w)


def test_untrained_network_is_seeded():
    a = build_network("alexnet", seed=3).features[0].weight
    b = build_network("alexnet", seed=3).features[0].weight
    c = build_network("alexnet", seed=4).features[0].weight
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


def test_bad_weights_and_models(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        find_trained_weights("alexnet", tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_state_dict_file(tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.randn(64, 3, 5, 5)}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="does not match alexnet"):
        build_network("alexnet", trained=True, weights=tmp_path / "shape.pth")
    torch.save({"conv1.weight": torch.randn(64, 3, 7, 7)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no tensor features.0.weight"):
        build_network("alexnet", trained=True, weights=tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="unknown model"):
        build_network("alexnot")


def test_allen_cache_images(tmp_path):
    import h5py

    from neurolp.brain.stimuli import TEMPLATE_KEY
    from neurolp.rf.images import allen_images

    nwb = tmp_path / "cache" / "ophys_experiment_data"
    nwb.mkdir(parents=True)
    stack = np.random.default_rng(0).integers(0, 255, (6, 46, 59), dtype=np.uint8)
    with h5py.File(nwb / "500.nwb", "w") as f:
        f.create_dataset(TEMPLATE_KEY, data=stack)
    s = natural_images(3, allen_cache=tmp_path / "cache", folder=tmp_path / "ignored", size=32, seed=0)
    assert s.images.shape == (3, 3, 32, 32) and "Allen natural scenes" in s.source
    assert all(n.startswith("natural_scene_") for n in s.names) and len(set(s.names)) == 3
    idx = int(s.names[0].split("_")[-1])
    np.testing.assert_allclose(s.images[0], preprocess(stack[idx], 32))   # grey → RGB, resize, crop
    with pytest.raises(DataNotFoundError, match="no Allen Brain Observatory NWB files"):
        allen_images(tmp_path / "nocache", 2)


def test_neurolp_checkpoint_is_rebuilt_as_trained(tmp_path):
    """A neurolp checkpoint keeps its own classes and input size (here a 32-px CIFAR stem), and a
    checkpoint of another model is refused by name."""
    from neurolp.models import create_model, is_registry_name
    from neurolp.train.checkpoint import save_checkpoint

    torch.manual_seed(3)
    model = create_model("lp2-smallcnn", num_classes=7, image_size=32)
    path = save_checkpoint(tmp_path / "ck.safetensors", model)
    net = build_network("lp2-smallcnn", trained=True, weights=path)
    saved = dict(model.named_parameters())
    for name, p in net.named_parameters():
        assert torch.equal(p, saved[name]), name
    assert net.training is False
    with pytest.raises(CheckpointError, match="holds lp2-smallcnn, not base-smallcnn"):
        build_network("base-smallcnn", trained=True, weights=path)
    assert is_registry_name("lp2-nosucharch") and not is_registry_name("resnet18")
