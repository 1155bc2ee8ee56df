"""Reading neural data files (npz, HDF5, rsatoolbox RDMs HDF5) and their stimulus images: layouts,
conversions, explicit stimulus order, the blank stimulus, preprocessing, and every malformed input
as one clear error."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from neural_fixtures import to_rsatoolbox_vectors, write_rsatoolbox_rdms
from neurolp.brain.neural import load_neural, rdm_to_similarity
from neurolp.brain.stimuli import (load_stimulus_images, preprocess_stimuli, stimulus_spec,
                                   value_scale)
from neurolp.errors import ConfigError, DataFormatError
from neurolp.rsa.rsm import pearson_rsm


def _rsms(k, n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([pearson_rsm(rng.normal(size=(n, 12)))[0] for _ in range(k)])


def test_npz_rsms_plain_and_stacked_with_ceilings_and_names(tmp_path):
    a, b = _rsms(1, 6)[0], _rsms(3, 6, seed=1)
    names = np.array([f"s{i}" for i in range(6)])
    np.savez(tmp_path / "n.npz", VISp=a, **{"rsm/LM": b, "ceiling/LM": [0.4, 0.6],
                                            "ceiling/VISp": 0.5, "subjects/LM": ["m1", "m2", "m3"]},
             stimuli=names, ceiling_comparator="tau_a")
    d = load_neural(tmp_path / "n.npz")
    assert (d.kind, d.format, d.n_stimuli, d.sites) == ("rsm", "npz", 6, ["LM", "VISp"])
    assert d.order == list(names) and d.subjects == {"LM": ["m1", "m2", "m3"], "VISp": ["0"]}
    np.testing.assert_array_equal(d.rsms["LM"], b)
    assert d.ceilings["LM"] == (0.4, 0.6) and d.ceilings["VISp"][0] == 0.5
    assert np.isnan(d.ceilings["VISp"][1]) and d.ceiling_comparator == "tau_a"
    s = d.summary().set_index("area")
    assert s.loc["LM", "subjects"] == 3 and s.loc["VISp", "ceiling_lower_given"] == 0.5


def test_rdm_conversion_correlation_exact_and_others_sign_flipped(tmp_path):
    r = _rsms(2, 7)
    np.savez(tmp_path / "d.npz", **{"rdm/V1": 1 - r})
    d = load_neural(tmp_path / "d.npz")
    np.testing.assert_allclose(d.rsms["V1"], r, atol=1e-15)
    assert "1 − RDM" in d.conversion
    sq = np.stack([np.square(np.subtract.outer(x, x)) for x in np.random.default_rng(2).normal(size=(2, 7))])
    np.savez(tmp_path / "e.npz", **{"rdm/V1": sq}, dissimilarity_measure="squared euclidean")
    e = load_neural(tmp_path / "e.npz")
    np.testing.assert_array_equal(e.rsms["V1"], -sq)
    assert "−dissimilarity" in e.conversion
    assert rdm_to_similarity(np.zeros((2, 2)), "Correlation")[1].startswith("RSM = 1 − RDM")


def test_hdf5_responses_per_subject(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 4, 7)).astype(np.float32)
    a[2, 3] = np.nan                        # image 2 shown 3 times: a padded trial
    b = rng.normal(size=(5, 4, 3))
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["responses/V1/m1"] = a
        f["responses/V1/m2"] = b
        f["responses/LM"] = b
        f["stimuli"] = np.array([b"a", b"b", b"c", b"d", b"e"])
        f["ceiling/V1"] = [0.3, 0.5]
    d = load_neural(tmp_path / "r.h5")
    assert (d.kind, d.format, d.sites, d.order) == ("responses", "hdf5", ["LM", "V1"], list("abcde"))
    assert set(d.responses["V1"]) == {"m1", "m2"} and set(d.responses["LM"]) == {"LM"}
    br = d.to_brain_responses()
    assert list(br.experiments["area"]) == ["LM", "V1", "V1"]
    assert list(br.experiments["mouse"]) == ["LM", "m1", "m2"]
    np.testing.assert_array_equal(br.responses[1], a.transpose(1, 0, 2))  # [trials, images, n]
    assert br.experiments.loc[1, "n_trials_min"] == 3
    assert d.summary().set_index("area").loc["V1", "neurons"] == 10


def test_rsatoolbox_file_sites_subjects_order_and_squareform(tmp_path):
    r = _rsms(4, 5)
    names = ["cat", "dog", "car", "sun", "sea"]
    write_rsatoolbox_rdms(tmp_path / "x.hdf5", to_rsatoolbox_vectors(1 - r), "correlation",
                          {"roi": ["V1", "LM", "V1", "LM"], "subj": ["s0", "s0", "s1", "s1"]},
                          {"image": names})
    d = load_neural(tmp_path / "x.hdf5")
    assert (d.format, d.sites, d.order) == ("rsatoolbox", ["V1", "LM"], names)
    assert d.subjects == {"V1": ["s0", "s1"], "LM": ["s0", "s1"]}
    # the upper-triangle (squareform) vectors come back as the very same matrices
    np.testing.assert_allclose(d.rsms["V1"], r[[0, 2]], atol=1e-15)
    np.testing.assert_allclose(d.rsms["LM"], r[[1, 3]], atol=1e-15)
    assert d.order_source == "pattern descriptor 'image'" and "'roi'" in d.notes[0]
    # no site descriptor: one site named after the file; explicit descriptors are checked
    write_rsatoolbox_rdms(tmp_path / "one.h5", to_rsatoolbox_vectors(1 - r[:2]), None,
                          {"subject": ["a", "b"]}, {})
    one = load_neural(tmp_path / "one.h5")
    assert one.sites == ["one"] and one.subjects["one"] == ["a", "b"] and one.order == list(range(5))
    assert "unnamed" in one.conversion
    with pytest.raises(DataFormatError, match="--site-descriptor 'area'.*no rdm descriptor"):
        load_neural(tmp_path / "x.hdf5", site_descriptor="area")


def test_real_rsatoolbox_file_when_installed(tmp_path):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    r = _rsms(3, 6)
    rdms = rsatoolbox.rdm.RDMs(1 - r, dissimilarity_measure="correlation",
                               rdm_descriptors={"roi": ["V1"] * 3, "subj": ["a", "b", "c"]},
                               pattern_descriptors={"image": [f"i{k}" for k in range(6)]})
    rdms.save(str(tmp_path / "real.h5"))
    d = load_neural(tmp_path / "real.h5")
    np.testing.assert_allclose(d.rsms["V1"], r, atol=1e-12)
    assert d.order == [f"i{k}" for k in range(6)]


@pytest.mark.parametrize("mutate, pattern", [
    (lambda m: m.__setitem__((0, 1, 2), 0.9), r"rsm/V1\[0\] is not symmetric: entry \(1, 2\)"),
    (lambda m: m.__setitem__((1, 3, 3), 0.5), r"rsm/V1\[1\] has 0.5 on the diagonal at stimulus 3 \('s3'\)"),
    (lambda m: (m.__setitem__((0, 4, slice(None)), np.nan), m.__setitem__((0, slice(None), 4), np.nan)),
     r"NaN row at stimulus 4 \('s4'\)"),
    (lambda m: m.__setitem__((0, 0, 1), np.inf), "infinite values"),
])
def test_malformed_rsms_are_one_clear_error(tmp_path, mutate, pattern):
    m = _rsms(2, 6)
    mutate(m)
    np.savez(tmp_path / "bad.npz", **{"rsm/V1": m}, stimuli=[f"s{i}" for i in range(6)])
    with pytest.raises(DataFormatError, match=pattern):
        load_neural(tmp_path / "bad.npz")


def test_malformed_files(tmp_path):
    r = _rsms(1, 6)[0]
    cases = {
        "counts": ({"rsm/V1": r, "rsm/LM": _rsms(1, 5)[0]}, "disagree on the number of stimuli"),
        "order": ({"rsm/V1": r, "stimuli": ["a", "b"]}, "'stimuli' lists 2 stimuli but the data has 6"),
        "square": ({"rsm/V1": r[:, :5]}, "must be square"),
        "rdm-diag": ({"rdm/V1": r}, "a dissimilarity matrix has a zero diagonal"),
        "mixed": ({"rsm/V1": r, "responses/LM": np.zeros((6, 2, 3))}, "mixes similarity matrices and responses"),
        "plain-3d": ({"V1": np.zeros((6, 2, 3))}, r"name a stack of RSMs rsm/V1 and responses responses/V1"),
        "ceiling-site": ({"rsm/V1": r, "ceiling/LM": 0.5}, "ceiling/LM is for an unknown site"),
        "ceiling-shape": ({"rsm/V1": r, "ceiling/V1": [1, 2, 3]}, r"must be one number or \[lower, upper\]"),
        "empty": ({"stimuli": ["a"]}, "holds no site"),
        "subjects": ({"rsm/V1": np.stack([r, r]), "subjects/V1": ["a"]}, "names 1 subjects for 2 matrices"),
        "resp-2d": ({"responses/V1": np.zeros((6, 3))}, r"must be \[images, trials, neurons\]"),
        "both": ({"rsm/V1": r, "rdm/V1": 1 - r}, "have both an RSM and an RDM"),
    }
    for name, (arrays, pattern) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataFormatError, match=pattern):
            load_neural(tmp_path / f"{name}.npz")
    a = np.random.default_rng(0).normal(size=(4, 3, 5))
    a[1, 0, 2] = np.nan                           # one neuron missing in one trial
    np.savez(tmp_path / "partial.npz", **{"responses/V1": a})
    with pytest.raises(DataFormatError, match="NaN for some neurons only at stimulus 1, trial 0"):
        load_neural(tmp_path / "partial.npz")
    a = np.random.default_rng(0).normal(size=(4, 3, 5))
    a[2] = np.nan                                 # no trial of stimulus 2
    np.savez(tmp_path / "nanrow.npz", **{"responses/V1": a})
    with pytest.raises(DataFormatError, match="NaN row at stimulus 2"):
        load_neural(tmp_path / "nanrow.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFormatError, match="neither an npz nor an HDF5 file"):
        load_neural(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", **{"rsm/V1": r}, stimuli=np.array(["a", 1], dtype=object))
    with pytest.raises(DataFormatError, match="without unpickling"):
        load_neural(tmp_path / "obj.npz")
    with pytest.raises(ConfigError, match="only applies to rsatoolbox"):
        np.savez(tmp_path / "ok.npz", **{"rsm/V1": r})
        load_neural(tmp_path / "ok.npz", site_descriptor="roi")


def test_images_folder_matched_by_name_with_a_blank(tmp_path):
    folder = tmp_path / "stim"
    folder.mkdir()
    Image.fromarray(np.full((10, 16), 40, np.uint8)).save(folder / "cat.png")
    Image.fromarray(np.full((12, 12), 200, np.uint8)).save(folder / "dog.jpg")
    imgs = load_stimulus_images(folder, ["dog", "blank", "cat.png"], n_stimuli=3)
    assert imgs.names == ["dog", "blank", "cat.png"] and imgs.blank == [1]
    assert imgs.arrays[0].shape == (12, 12) and imgs.arrays[2].shape == (10, 16)
    # the blank is a uniform grey at the mean intensity of the other images
    assert np.unique(imgs.arrays[1]).tolist() == [round((40 + 200) / 2)]
    assert imgs.scale == 255 and "uniform grey" in imgs.describe()
    with pytest.raises(DataFormatError, match="1 of 2 stimuli have no image.*owl"):
        load_stimulus_images(folder, ["cat", "owl"])
    with pytest.raises(DataFormatError, match="does not name its stimuli"):
        load_stimulus_images(folder, None, n_stimuli=2)
    with pytest.raises(DataFormatError, match="orders its stimuli by integer index"):
        load_stimulus_images(folder, [0, 1])
    with pytest.raises(DataFormatError, match="lists 2 stimuli but the neural data has 3"):
        load_stimulus_images(folder, ["cat", "dog"], n_stimuli=3)
    with pytest.raises(DataFormatError, match="more than once"):
        load_stimulus_images(folder, ["cat", "cat"])


def test_images_array_by_index_blank_minus_one_and_npz_names(tmp_path):
    arr = np.arange(4 * 6 * 8 * 3, dtype=np.uint8).reshape(4, 6, 8, 3)
    np.save(tmp_path / "x.npy", arr)
    imgs = load_stimulus_images(tmp_path / "x.npy", [3, -1, 0], n_stimuli=3)
    np.testing.assert_array_equal(imgs.arrays[0], arr[3])
    assert imgs.blank == [1] and imgs.arrays[1].shape == (6, 8, 3)
    ident = load_stimulus_images(tmp_path / "x.npy", None, n_stimuli=4)
    assert "row k" in ident.describe() and ident.names[2] == "image2"
    with pytest.raises(DataFormatError, match="holds 4 images but the neural data has 5"):
        load_stimulus_images(tmp_path / "x.npy", None, n_stimuli=5)
    with pytest.raises(DataFormatError, match=r"indices \[4\] are outside the 4 images"):
        load_stimulus_images(tmp_path / "x.npy", [0, 4])
    with pytest.raises(DataFormatError, match="has no names"):
        load_stimulus_images(tmp_path / "x.npy", ["a", "b"])
    np.savez(tmp_path / "named.npz", images=np.moveaxis(arr, -1, 1), names=["a", "b", "c", "d"])
    named = load_stimulus_images(tmp_path / "named.npz", ["d", "a"])   # [N, C, H, W] accepted
    np.testing.assert_array_equal(named.arrays[0], arr[3])
    np.save(tmp_path / "bad.npy", np.zeros((3, 4)))
    with pytest.raises(DataFormatError, match=r"expected a .npy array \[n, height, width\]"):
        load_stimulus_images(tmp_path / "bad.npy", None)


def test_preprocessing_crops_pad_stretch_rgb_and_scale():
    img = np.zeros((8, 16), np.uint8)
    img[:, 12:] = 255                                # a white band on the right
    spec = lambda crop: stimulus_spec("checkpoint", 8, {"mean": [0.0], "std": [1.0]}, crop=crop)
    left = preprocess_stimuli([img], spec("left"))
    assert float(left.max()) == 0.0                  # the band is outside the left square
    centre = preprocess_stimuli([img], spec("center"))
    assert float(centre.max()) == 0.0                # cols 4..11: still no band
    stretch = preprocess_stimuli([img], spec("stretch"))
    assert float(stretch[0, 0, :, -1].mean()) == pytest.approx(1.0, abs=1e-3)  # squashed in
    pad = preprocess_stimuli([img], spec("pad"))
    # padded rows take the image's mean intensity (a quarter white)
    assert float(pad[0, 0, 0, 0]) == pytest.approx(0.25, abs=0.02)
    rgb = np.zeros((2, 8, 8, 3), np.float32)
    rgb[..., 0] = 1.0
    x = preprocess_stimuli(rgb, stimulus_spec("checkpoint", 8, {"mean": [0.0] * 3, "std": [1.0] * 3}))
    assert torch.allclose(x[:, 0], torch.ones(2, 8, 8)) and float(x[:, 1:].abs().max()) == 0.0
    # differently sized images are squared and resized one by one
    mixed = preprocess_stimuli([np.zeros((8, 12), np.uint8), np.full((20, 10), 255, np.uint8)],
                               spec("center"))
    assert mixed.shape == (2, 3, 8, 8) and float(mixed[1].min()) == pytest.approx(1.0)
    assert value_scale(np.zeros(3, np.uint16)) == 65535 and value_scale([np.ones(2) * 200.0]) == 255
    with pytest.raises(Exception, match=r"\[0, 1\] or \[0, 255\]"):
        value_scale(np.array([-1.0, 2.0]))
    assert "padded to a square" in spec("pad").describe()
