"""`neurolp rsa --neural FILE --images DIR|NPY` end to end: RSM files, rsatoolbox files and
responses with reliability selection; the output tables keep the Allen run's columns."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from neural_fixtures import (layer_features, layer_rsm, make_images, noisy_copies, planted_model,
                             planted_responses, to_rsatoolbox_vectors, write_rsatoolbox_rdms)
from neurolp.cli import main
from neurolp.models import create_model
from neurolp.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: the columns of rsa_scores.csv of an Allen run (tests/test_cli_rsa.py), which --neural keeps
ALLEN_COLUMNS = {"model", "checkpoint", "preset", "comparator", "stimuli", "layer", "layer_index",
                 "area", "n_groups", "n_neurons", "raw", "ceiling_lower", "ceiling_upper",
                 "ceiling_split_half", "normaliser", "ceiling", "normalised", "note", "raw_ci_low",
                 "raw_ci_high", "ci_low", "ci_high", "n_boot_invalid", "ci_kind", "above_ceiling",
                 "n_units", "n_dead_units"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsa_neural_cli")
    images = make_images()
    folder = root / "stim"
    folder.mkdir()
    names = [f"scene{k:02d}" for k in range(len(images))]
    for name, img in zip(names, images):
        Image.fromarray(img).save(folder / f"{name}.png")
    np.save(root / "images.npy", images)
    torch.manual_seed(1)
    planted = planted_model(1)
    ck = save_checkpoint(root / "planted.safetensors", planted.model,
                         {"dataset": "digits", "normalization": planted.normalization,
                          "image_size": 32})
    torch.manual_seed(2)
    ctrl = save_checkpoint(root / "control.safetensors", create_model("base-smallcnn", 10, 32),
                           {"dataset": "digits", "image_size": 32})
    target = layer_rsm(planted.model, images)
    return {"root": root, "images": images, "folder": folder, "names": names, "ck": ck,
            "ctrl": ctrl, "target": target, "features": layer_features(planted.model, images)}


def _run(world, *extra, out=None):
    argv = ["rsa", "--model", "base-smallcnn", "base-smallcnn", "--checkpoint", str(world["ck"]),
            str(world["ctrl"]), "--no-progress", *extra]
    if out is not None:
        argv += ["--out", str(out)]
    return main(argv)


def _max(out, k):
    mx = pd.read_csv(out / "rsa_max.csv")
    return mx[(mx["model"] == f"base-smallcnn#{k}") & (mx["area"] == "all")].iloc[0]


def test_rsm_file_with_a_blank_stimulus_and_a_folder_of_images(world, capsys):
    n = len(world["names"])
    names = world["names"] + ["blank"]
    rsm = noisy_copies(world["target"], 3, 0.7, seed=0)
    # add the blank as a 25th stimulus, similar to nothing in particular
    rng = np.random.default_rng(9)
    big = np.zeros((3, n + 1, n + 1))
    big[:, :n, :n] = rsm
    v = rng.uniform(-0.1, 0.1, (3, n))
    big[:, n, :n] = big[:, :n, n] = v
    big[:, n, n] = 1.0
    path = world["root"] / "v1.npz"
    np.savez(path, **{"rsm/VISp": big, "subjects/VISp": ["m1", "m2", "m3"]}, stimuli=names)
    out = world["root"] / "out_rsm"
    assert _run(world, "--neural", str(path), "--images", str(world["folder"]),
                "--bootstrap", "20", "--save-rsms", out=out) == 0
    text = capsys.readouterr().out
    assert "brain: neural data" in text and "25 stimuli" in text and "VISp: 3 subject(s)" in text
    assert "uniform grey" in text and "centre square crop" in text
    sc = pd.read_csv(out / "rsa_scores.csv", dtype={"layer": str})
    assert ALLEN_COLUMNS <= set(sc.columns) and set(sc["area"]) == {"VISp"}
    assert _max(out, 0)["max_raw"] > _max(out, 1)["max_raw"] + 0.05   # the planted model wins
    s = pd.read_csv(out / "rsa_samples.csv")
    assert set(s["group"]) == {"m1", "m2", "m3"}
    run = json.loads((out / "run.json").read_text())
    assert run["brain_source"] == "neural" and run["selection"]["stimuli"] == 25
    assert run["effective_config"]["crop"] == "center"
    assert "uniform grey" in run["stimuli"]["base-smallcnn#0"]
    with np.load(out / "rsms.npz") as z:
        assert z["brain/VISp"].shape == (3, 25 * 24 // 2)


def test_rsatoolbox_file_with_an_index_order_and_an_array(world, capsys):
    r = noisy_copies(world["target"], 4, 0.7, seed=1)
    perm = np.random.default_rng(0).permutation(len(world["images"]))
    # the file's conditions are the images in a shuffled order, named by their row index
    rp = r[:, perm][:, :, perm]
    path = write_rsatoolbox_rdms(world["root"] / "rdms.h5", to_rsatoolbox_vectors(1 - rp),
                                 "correlation", {"roi": ["V1", "V1", "LM", "LM"],
                                                 "subj": ["a", "b", "a", "b"]},
                                 {"stimulus": perm.tolist()})
    out = world["root"] / "out_h5"
    assert _run(world, "--neural", str(path), "--images", str(world["root"] / "images.npy"),
                "--bootstrap", "0", "--comparator", "spearman", out=out) == 0
    assert "(rsatoolbox, rsm)" in capsys.readouterr().out
    # identical to the same RSMs in the original order: the order was followed exactly
    np.savez(world["root"] / "plain.npz", **{"rsm/V1": r[:2], "rsm/LM": r[2:]})
    out2 = world["root"] / "out_plain"
    assert _run(world, "--neural", str(world["root"] / "plain.npz"), "--images",
                str(world["root"] / "images.npy"), "--bootstrap", "0", "--comparator",
                "spearman", out=out2) == 0
    a = pd.read_csv(out / "rsa_scores.csv").sort_values(["model", "area", "layer_index"])
    b = pd.read_csv(out2 / "rsa_scores.csv").sort_values(["model", "area", "layer_index"])
    np.testing.assert_allclose(a["raw"], b["raw"], atol=1e-12)
    assert _max(out, 0)["max_raw"] > _max(out, 1)["max_raw"] + 0.05


def test_responses_with_reliability_selection(world, capsys):
    arrs = {f"responses/V1/m{k}": planted_responses(world["features"], 60, 6, 0.5, seed=k,
                                                    unreliable=15) for k in range(2)}
    path = world["root"] / "resp.h5"
    import h5py

    with h5py.File(path, "w") as f:
        for k, v in arrs.items():
            f[k] = v
        f["stimuli"] = np.arange(len(world["images"]))
    out = world["root"] / "out_resp"
    assert _run(world, "--neural", str(path), "--images", str(world["root"] / "images.npy"),
                "--reliability", "0.5", "--bootstrap", "10", "--trial-splits", "2",
                out=out) == 0
    text = capsys.readouterr().out
    assert "150 neurons recorded" in text and "normalised by lower" in text
    rel = pd.read_csv(out / "reliability.csv")
    assert len(rel) == 2 * 75 and set(rel.columns) >= {"area", "mouse", "reliability", "kept"}
    brain = pd.read_csv(out / "brain.csv")
    assert (brain["neurons_recorded"] == 75).all() and (brain["neurons_used"] <= 62).all()
    assert (brain["reliability_threshold"] == 0.5).all()
    assert _max(out, 0)["max_raw"] > _max(out, 1)["max_raw"] + 0.05
