"""Damaged data on disk: a corrupt image in a dataset, a truncated Allen events file, a Rossi neuron
without inputs. Commands stop with one line naming the file, or skip it when asked and say so;
diagnostic commands report instead of crashing; nothing is dropped silently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from allen_fixtures import DEFAULT_CONTAINERS, make_allen_cache
from neurolp.brain.cache import CacheLayout
from neurolp.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _imagefolder(root: Path, corrupt: str | None = "train") -> Path:
    rng = np.random.default_rng(0)
    for split, k in (("train", 8), ("test", 3)):
        for c, v in (("cat", 40), ("dog", 210)):
            (root / split / c).mkdir(parents=True)
            for i in range(k):
                img = np.clip(v + rng.normal(0, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.jpg", quality=90)
    if corrupt:
        bad = root / corrupt / "dog" / "1.jpg"
        bad.write_bytes(bad.read_bytes()[:200])  # a truncated download
    return root


def _train(data, out, *extra):
    return main(["train", "--model", "base-smallcnn", "--model-kwargs", '{"width": 4}', "--dataset",
                 "imagefolder", "--data-dir", str(data), "--image-size", "16", "--epochs", "1",
                 "--batch-size", "4", "--val-fraction", "0.25", "--device", "cpu", "--no-progress",
                 "--no-publish", "--out", str(out), *extra])


def test_corrupt_jpeg_stops_with_its_name_or_is_skipped_and_reported(tmp_path, capsys):
    data = _imagefolder(tmp_path / "data")
    bad = data / "train" / "dog" / "1.jpg"
    assert _train(data, tmp_path / "stop") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot read image {bad}" in err and "--on-bad-sample skip" in err
    assert _train(data, tmp_path / "skip", "--on-bad-sample", "skip") == 0
    cap = capsys.readouterr()
    assert f"skipped unreadable image {bad}" in cap.err  # warned once, when met
    assert "note: skipped 1 unreadable image file(s)" in cap.out
    log = pd.read_csv(tmp_path / "skip" / "bad_samples.csv", header=None, names=["path", "reason"])
    assert log["path"].tolist() == [str(bad)] and "cannot read image" in log["reason"].iloc[0]
    summary = json.loads((tmp_path / "skip" / "summary.json").read_text())
    assert any("skipped 1 unreadable" in n for n in summary["notes"])
    # evaluation: the same choice, and the count is printed
    ck = tmp_path / "skip" / "best.safetensors"
    (data / "test" / "cat" / "2.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["eval", "--checkpoint", str(ck), "--data-dir", str(data), "--no-progress"]) == 2
    assert "cannot read image" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(ck), "--data-dir", str(data), "--no-progress",
                 "--on-bad-sample", "skip"]) == 0
    assert "WARNING: 1 unreadable image file(s) were skipped" in capsys.readouterr().out


def test_file_images_skip_is_deterministic_and_counted(tmp_path):
    from neurolp.errors import DataFormatError
    from neurolp.train.data import FileImages

    data = _imagefolder(tmp_path / "d", corrupt=None)
    files = sorted((data / "train" / "cat").glob("*.jpg"))[:3]
    files[1].write_bytes(b"")
    stop = FileImages([(str(f), k) for k, f in enumerate(files)])
    assert np.asarray(stop[0][0]).shape == (20, 20, 3)
    with pytest.raises(DataFormatError, match=f"cannot read image {files[1]}"):
        stop[1]
    skip = FileImages([(str(f), k) for k, f in enumerate(files)], on_bad="skip")
    img, target = skip[1]  # the next readable file stands in, with its own label
    assert target == 2 and np.array_equal(np.asarray(img), np.asarray(skip[2][0]))
    assert list(skip.bad) == [str(files[1])]


def test_truncated_events_file_is_reported_by_verify_and_refused_by_rsa(tmp_path, capsys):
    make_allen_cache(tmp_path, DEFAULT_CONTAINERS[:5])
    path = CacheLayout.open(tmp_path).events_path(5011)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut mid-download
    assert main(["allen", "verify", "--cache", str(tmp_path), "--areas", "VISp"]) == 1
    cap = capsys.readouterr()
    assert "5011 events: unreadable npz" in cap.out and "Traceback" not in cap.err + cap.out
    assert "run `neurolp allen fetch" in cap.out
    rc = main(["rsa", "--model", "base-smallcnn", "--untrained", "--image-size", "16", "--allen-cache",
               str(tmp_path), "--areas", "VISp", "--bootstrap", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path} is not a readable events file" in err and "truncated download" in err


def test_allen_info_names_selection_values_the_cache_lacks(tmp_path, capsys):
    make_allen_cache(tmp_path)
    assert main(["allen", "info", "--cache", str(tmp_path), "--areas", "VISp", "VISam"]) == 0
    out = capsys.readouterr().out
    assert "note: no natural-scene experiment in the cache has area VISam (the cache has: VISal, VISl, VISp)" in out
    assert "depths 185, 195, 200, 205, 225, 250, 265 (the cache has: 175, 275, 375)" in out


def test_rsa_warns_prominently_when_some_scores_are_undefined(tmp_path, capsys):
    make_allen_cache(tmp_path)
    rc = main(["rsa", "--model", "base-smallcnn", "--untrained", "--image-size", "16", "--allen-cache",
               str(tmp_path), "--areas", "VISl", "VISal", "--cre-lines", "Cux2-CreERT2", "--depths", "175",
               "--bootstrap", "0", "--no-progress"])  # VISl: two mice, VISal: one
    out = capsys.readouterr().out
    assert rc == 0
    assert "WARNING: " in out and "scores are undefined" in out and "one mouse only" in out


def test_rossi_neuron_without_inputs_is_reported_not_dropped(tmp_path, capsys):
    from test_rf_rossi import write_rossi

    rng = np.random.default_rng(1)
    pts = lambda n: np.c_[rng.normal(0, 100, (n, 2)), rng.uniform(50, 500, n)]  # noqa: E731
    folder = write_rossi(tmp_path / "Data", {1: (120, pts(40), pts(20)), 2: (130, pts(35), pts(25)),
                                             3: (140, np.zeros((0, 3)), np.zeros((0, 3)))})
    out = tmp_path / "out"
    assert main(["fit-mpnd", "--out", str(out), "--conditions", "v1", "--rossi-dir", str(folder),
                 "--quiet", "--no-figure"]) == 0
    text = capsys.readouterr().out
    assert "skipped v1: neuron03 left out: neuron 03 has 0 inputs" in text
    skipped = pd.read_csv(out / "mpnd_skipped.csv")
    assert skipped["condition"].tolist() == ["v1"] and "neuron03" in skipped["reason"].iloc[0]
    assert len(pd.read_csv(out / "mpnd_fits.csv")) == 2


def test_summary_counts_fits_at_each_bound_separately():
    from neurolp.cli.fit_mpnd import _summary_text
    from neurolp.rf.conditions import FitMPNDResult, summarize_fits

    fits = pd.DataFrame({"condition": ["v1"] * 3 + ["untrained-noise"] * 2, "p": [1.0, 2.0, 2.5, 64.0, 64.0],
                         "sigma": 1.0, "converged": True, "p_at_bound": [True, False, False, True, True],
                         "p_at_min": [True, False, False, False, False],
                         "p_at_max": [False, False, False, True, True]})
    summary = summarize_fits(fits)
    assert summary[["p_at_min", "p_at_max"]].values.tolist() == [[1, 0], [0, 2]]
    empty = pd.DataFrame(columns=["condition", "reason"])
    res = FitMPNDResult(fits, pd.DataFrame(columns=["group_a", "group_b", "stars"]), None, None, empty,
                        summary, [], {"objective": "pmf", "loss": "mse", "C": "isotropic", "p_max": 64.0})
    text = _summary_text(res, "out", 1.0)
    v1 = next(line for line in text.splitlines() if "Mouse V1" in line)
    assert v1.split()[-3:-1] == ["0", "1"]  # at p_max: 0, at p = 1: 1 (then: few inputs)
    assert "p = 1 is the lower bound" in text


def test_staging_stays_on_the_output_file_system(tmp_path):
    """A run into an existing folder stages inside it (same device even for a mount point); a new
    folder appears whole, with ordinary permissions, and a failure leaves no trace."""
    from neurolp.utils import staged_output

    out = tmp_path / "existing"
    out.mkdir()
    with staged_output(out) as stage:
        assert stage.parent == out and os.stat(stage).st_dev == os.stat(out).st_dev
        (stage / "a.csv").write_text("1")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]
    new = tmp_path / "deep" / "new"
    with pytest.raises(RuntimeError):
        with staged_output(new) as stage:
            (stage / "a.csv").write_text("1")
            raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]  # parents made for it removed
    with staged_output(new) as stage:
        (stage / "b.csv").write_text("2")
    mask = os.umask(0)
    os.umask(mask)
    assert (new / "b.csv").read_text() == "2" and (os.stat(new).st_mode & 0o777) == 0o777 & ~mask
    shm = Path("/dev/shm")
    if os.path.ismount(shm) and os.access(shm, os.W_OK):
        with staged_output(shm) as stage:
            assert os.stat(stage).st_dev == os.stat(shm).st_dev
            name = f"neurolp-test-{os.getpid()}.csv"
            (stage / name).write_text("x")
        assert (shm / name).read_text() == "x"
        (shm / name).unlink()
