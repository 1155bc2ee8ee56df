"""`neurolp report`: three registry models side by side on a synthetic neural data set, with the
embedded mouse V1 receptive fields and the offline digits evaluation set."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from neural_fixtures import layer_rsm, make_images, noisy_copies, planted_model
from neurolp.cli import main
from neurolp.models import create_model
from neurolp.report import mpnd_of_models, ReportConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = ["base-smallcnn", "lp2-smallcnn", "large-smallcnn"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    images = make_images()
    np.save(root / "images.npy", images)
    target = layer_rsm(planted_model(0).model, images)
    np.savez(root / "v1.npz", **{"rsm/V1": noisy_copies(target, 3, 0.7, seed=0),
                                 "rsm/LM": noisy_copies(target, 3, 1.5, seed=1)},
             stimuli=np.arange(len(images)))
    out = root / "report"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["report", "--models", *MODELS, "--untrained", "--image-size", "32",
                   "--neural", str(root / "v1.npz"), "--images", str(root / "images.npy"),
                   "--bootstrap", "20", "--n-inputs", "5", "--no-progress", "--out", str(out)])
    return {"root": root, "out": out, "rc": rc, "stdout": buf.getvalue()}


def test_report_tables(world):
    assert world["rc"] == 0
    out = world["out"]
    m = pd.read_csv(out / "report.csv")
    labels = [f"{n} (untrained)" for n in MODELS]
    assert list(m.columns) == ["model", "measure", "area", "layer", "layer_index", "value",
                               "ci_low", "ci_high", "q25", "q75", "n", "detail"]
    # MPND p beside mouse V1: the embedded Rossi data give the paper's "near 2"
    v1 = m[(m["measure"] == "mpnd_p") & m["model"].str.startswith("mouse V1")].iloc[0]
    assert v1["n"] == 17 and 1.8 < v1["value"] < 2.5
    fits = pd.read_csv(out / "mpnd_fits.csv")
    for lab in labels:
        g = m[m["model"] == lab]
        p = g[g["measure"] == "mpnd_p"].iloc[0]
        assert p["n"] == 5 and p["value"] == pytest.approx(fits.loc[fits["condition"] == lab, "p"].median())
        assert len(g[g["measure"] == "mpnd_p_vs_v1_p_holm"]) == 1
        assert len(g[g["measure"] == "parameters"]) == 1
        # best-layer RSA per area, raw and normalised, with bootstrap CIs, and the layer profile
        best = g[g["measure"] == "rsa_best_normalised"].set_index("area")
        assert set(best.index) == {"V1", "LM", "all"} and best[["ci_low", "ci_high"]].notna().all().all()
        assert len(g[(g["measure"] == "rsa_best_raw")]) == 3
        assert len(g[g["measure"] == "rsa_layer_normalised"]) == 2 * 4
    # learned Lp-mask statistics only for the Lp model: p = 2 and γ = 1 at initialisation
    lp = m[m["measure"].str.startswith("lp_")]
    assert set(lp["model"]) == {"lp2-smallcnn (untrained)"}
    allp = lp[(lp["measure"] == "lp_p") & (lp["layer"] == "all")].iloc[0]
    assert allp["value"] == pytest.approx(2.0) and allp["n"] == 352
    assert lp[(lp["measure"] == "lp_theta") & (lp["layer"] == "all")]["n"].iloc[0] == 0
    # the report's RSA numbers are the rsa command's tables
    mx = pd.read_csv(out / "rsa_max.csv")
    row = mx[(mx["model"] == labels[1]) & (mx["area"] == "V1")].iloc[0]
    got = m[(m["model"] == labels[1]) & (m["measure"] == "rsa_best_normalised") & (m["area"] == "V1")]
    assert got["value"].iloc[0] == pytest.approx(row["max_normalised"])
    assert got["ci_low"].iloc[0] == pytest.approx(row["max_ci_low"])
    assert "mouse V1 L2/3 (Rossi et al. 2020): MPND p =" in world["stdout"]
    # untrained large = base with zero-padded kernels (the registry's zero_surround): identical RSA
    b = m[(m["measure"] == "rsa_layer_raw") & (m["model"] == labels[0])]["value"].to_numpy()
    c = m[(m["measure"] == "rsa_layer_raw") & (m["model"] == labels[2])]["value"].to_numpy()
    np.testing.assert_allclose(b, c, atol=1e-12)


def test_report_html_is_self_contained(world):
    html = (world["out"] / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert not re.search(r"(src|href)=\"?(https?:|//|file:)", html)
    assert "<script" not in html
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) == 8                 # MPND, masks, RSA best + profiles + max, 3 heatmaps
    assert (world["out"] / "rsa_max_tests.csv").is_file()
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    for needle in ("Summary", "lp2-smallcnn (untrained)", "Learned Lp-masks", "Accuracy",
                   "the tidy table"):
        assert needle in html
    run = json.loads((world["out"] / "run.json").read_text())
    assert run["command"] == "report" and "RSA" in run["timings"]
    assert run["rsa_selection"]["kind"] == "rsm"


def test_report_library_call_with_a_weights_file_and_no_brain_data(tmp_path):
    """--weights loads a state_dict exactly; without brain data the RSA rows are absent."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    m = create_model("base-smallcnn", num_classes=10, image_size=32)
    save_file(m.state_dict(), str(tmp_path / "w.safetensors"))
    out = tmp_path / "r"
    assert main(["report", "--models", "base-smallcnn", "lp4-smallcnn", "--weights",
                 str(tmp_path / "w.safetensors"), "-", "--image-size", "32", "--n-inputs", "3",
                 "--rf-inputs", "noise", "--eval-dataset", "digits", "--eval-batch-size", "512",
                 "--no-progress", "--out", str(out)]) == 0
    rep = pd.read_csv(out / "report.csv")
    assert not rep["measure"].str.startswith("rsa").any()
    acc = rep[rep["measure"] == "accuracy_top1"]
    assert list(acc["n"]) == [360, 360] and acc["value"].between(0, 100).all()
    assert (pd.read_csv(out / "accuracy.csv")["dataset"] == "digits").all()
    models = pd.read_csv(out / "report_models.csv")
    assert models["source"].iloc[0].startswith("weights ") and models["source"].iloc[1].startswith("untrained")
    assert "Not run: no brain data" in (out / "report.html").read_text()
    from neurolp.report import load_report_source

    src = load_report_source("base-smallcnn", weights=tmp_path / "w.safetensors", image_size=32,
                             num_classes=10)
    for k, v in m.state_dict().items():
        assert torch.equal(src.model.state_dict()[k], v)
    fits, summary, _ = mpnd_of_models([src], ReportConfig(rf_inputs="noise", n_inputs=3))
    assert list(summary["condition"]) == ["v1", "base-smallcnn"] and len(fits) == 17 + 3


def test_report_on_an_allen_cache_with_reliability_selection(tmp_path):
    """The Allen path: the RFs use the Allen scenes, the RSA the cache, neurons selected by
    split-half reliability (which works on Allen responses as on --neural ones)."""
    from allen_fixtures import make_allen_cache

    make_allen_cache(tmp_path / "allen")
    out = tmp_path / "r"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["report", "--models", "lp2-smallcnn", "--untrained", "--image-size", "32",
                   "--allen-cache", str(tmp_path / "allen"), "--areas", "VISp", "VISl",
                   "--bootstrap", "0", "--n-inputs", "3", "--reliability", "0.0",
                   "--no-progress", "--out", str(out)])
    assert rc == 0
    assert "Allen natural scenes in" in buf.getvalue()
    m = pd.read_csv(out / "report.csv")
    best = m[m["measure"] == "rsa_best_normalised"].set_index("area")
    assert set(best.index) == {"VISp", "VISl", "all"} and best["ci_low"].isna().all()
    brain = pd.read_csv(out / "brain.csv")
    assert (brain["neurons_recorded"] >= brain["neurons_used"]).all()
    assert (brain["reliability_threshold"] == 0.0).all()
    assert len(pd.read_csv(out / "reliability.csv")) == brain["neurons_recorded"].sum()
