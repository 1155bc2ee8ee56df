"""Rossi et al. 2020 loader on synthetic MAT files in the authors' layout, and the embedded table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from neurolp.errors import DataFormatError, DataNotFoundError, InputError
from neurolp.rf.rossi import COLUMNS, load_rossi, load_rossi_raw, load_rossi_table, rossi_receptive_fields

EMPTY = np.zeros((0, 0), dtype=np.uint8)  # how the published files store empty fields


def _post(nid, depth, genotype="CaMK2-GCaMP6", pref=90.0):
    return {"spaceXYZ": np.array([[0, 0, depth]], dtype=np.uint8), "visAE": np.array([[-20.5, 3.1]]),
            "prefDir": np.array([[pref]]), "prefOri": np.array([[pref % 180]]), "animal_genotype": genotype,
            "labels": "o", "r_bins": np.arange(-500, 501, 25, dtype=np.int16)[None],
            "xy_bins": np.linspace(-500, 500, 41)[None], "z_bins": np.arange(0, 701, 25, dtype=np.uint16)[None],
            "ae_bins": np.arange(-40, 41, 2, dtype=np.int16)[None], "ID": np.array([[nid]], dtype=np.uint8),
            "dirSel": np.array([[0.3]]), "tunePars": EMPTY, "aligned_tuning": EMPTY,
            "predicted_DS": np.array([[0.1]]), "ang_dir_bins": np.linspace(-np.pi, np.pi, 13)[None]}


def _pre(xyz):
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = len(xyz)
    return {"spaceXYZ": xyz if n else EMPTY, "visAE": np.ones((n, 2)) if n else EMPTY,
            "visRotated": EMPTY, "visScaled": EMPTY, "angDist": EMPTY, "predicted_ori": np.array([[np.nan]]),
            "predicted_DS": EMPTY, "templateMap": EMPTY}


def write_rossi(folder: Path, neurons: dict) -> Path:
    """neurons: id → (depth, EX xyz [n, 3], IN xyz [m, 3]) written as postSyn/spatialEX/spatialIN_NN.mat."""
    folder.mkdir(parents=True, exist_ok=True)
    for nid, (depth, ex, inh) in neurons.items():
        savemat(folder / f"postSyn_{nid:02d}.mat", _post(nid, depth, "Gad2-NLS-mCherry" if nid > 2 else "CaMK2-GCaMP6"))
        savemat(folder / f"spatialEX_{nid:02d}.mat", _pre(ex))
        savemat(folder / f"spatialIN_{nid:02d}.mat", _pre(inh))
    return folder


@pytest.fixture
def rossi_dir(tmp_path):
    rng = np.random.default_rng(0)
    pts = lambda n: np.c_[rng.normal(0, 120, (n, 2)), rng.uniform(50, 600, n)]  # noqa: E731
    return write_rossi(tmp_path / "Data", {
        1: (130, pts(12), pts(5)),
        2: (120, pts(30), pts(1)),            # one inhibitory input: stored as a 1-D array of length 3
        3: (150, pts(8), np.zeros((0, 3))),   # no inhibitory input: an empty array
    })


def test_raw_loader_reads_layout(rossi_dir):
    t = load_rossi_raw(rossi_dir)
    assert tuple(t.columns) == COLUMNS
    counts = t.groupby(["neuron", "input"]).size().to_dict()
    assert counts == {(1, "EX"): 12, (1, "IN"): 5, (2, "EX"): 30, (2, "IN"): 1, (3, "EX"): 8}
    assert set(t.loc[t.neuron == 1, "soma_depth_um"]) == {130.0}
    assert set(t.loc[t.neuron == 3, "genotype"]) == {"Gad2-NLS-mCherry"}
    # offsets are the stored x, y (soma at 0, 0); z is the presynaptic depth
    from scipy.io import loadmat

    raw = loadmat(rossi_dir / "spatialEX_01.mat", squeeze_me=True)["spaceXYZ"]
    np.testing.assert_allclose(t.loc[(t.neuron == 1) & (t.input == "EX"), ["dx_um", "dy_um", "z_um"]], raw)
    single = t[(t.neuron == 2) & (t.input == "IN")]
    raw_single = loadmat(rossi_dir / "spatialIN_02.mat", squeeze_me=True)["spaceXYZ"]
    assert raw_single.shape == (3,)                       # the real files' 1-D single-input layout
    np.testing.assert_allclose(single[["dx_um", "dy_um", "z_um"]].to_numpy()[0], raw_single)


def test_offsets_are_relative_to_soma(tmp_path):
    folder = write_rossi(tmp_path / "D", {1: (100, [[10.0, 20.0, 200.0], [30.0, 50.0, 250.0]], [[0.0, 0.0, 90.0]])})
    post = _post(1, 100)
    post["spaceXYZ"] = np.array([[5, 7, 100]], dtype=np.uint8)
    savemat(folder / "postSyn_01.mat", post)
    t = load_rossi_raw(folder)
    np.testing.assert_allclose(t.loc[t.input == "EX", "dx_um"], [5.0, 25.0])
    np.testing.assert_allclose(t.loc[t.input == "EX", "dy_um"], [13.0, 43.0])


def test_receptive_fields_selections(rossi_dir):
    t = load_rossi_raw(rossi_dir)
    allrf = rossi_receptive_fields(t, "all")
    assert list(allrf) == ["neuron01", "neuron02", "neuron03"]
    assert [len(r.points) for r in allrf.values()] == [17, 31, 8]
    ex = rossi_receptive_fields(t, "ex")
    assert [len(r.points) for r in ex.values()] == [12, 30, 8]
    with pytest.raises(InputError, match=r"neuron 02 has 1 inhibitory inputs \(spatialIN_02.mat\).*standardised"):
        rossi_receptive_fields(t, "in")
    with pytest.raises(InputError, match="unknown input selection"):
        rossi_receptive_fields(t, "both")


def test_missing_files_are_named(tmp_path, rossi_dir):
    (rossi_dir / "spatialIN_03.mat").unlink()
    with pytest.raises(DataNotFoundError, match="spatialIN_03.mat"):
        load_rossi_raw(rossi_dir)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_rossi_raw(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="no postSyn_NN.mat"):
        load_rossi_raw(tmp_path / "empty")


def test_malformed_files_are_named(rossi_dir):
    (rossi_dir / "spatialEX_02.mat").write_bytes(b"this is not a MAT file at all" * 10)
    with pytest.raises(DataFormatError, match="spatialEX_02.mat is not a readable MATLAB"):
        load_rossi_raw(rossi_dir)


def test_missing_field_wrong_shape_and_nan(rossi_dir):
    bad = _pre(np.ones((3, 3)))
    del bad["spaceXYZ"]
    savemat(rossi_dir / "spatialEX_01.mat", bad)
    with pytest.raises(DataFormatError, match="spatialEX_01.mat has no field 'spaceXYZ'"):
        load_rossi_raw(rossi_dir)
    savemat(rossi_dir / "spatialEX_01.mat", {**_pre(np.ones((3, 3))), "spaceXYZ": np.ones((4, 2))})
    with pytest.raises(DataFormatError, match=r"spatialEX_01.mat: spaceXYZ has shape \(4, 2\); expected an n×3"):
        load_rossi_raw(rossi_dir)
    xyz = np.ones((3, 3))
    xyz[1, 0] = np.nan
    savemat(rossi_dir / "spatialEX_01.mat", _pre(xyz))
    with pytest.raises(DataFormatError, match=r"spatialEX_01.mat: spaceXYZ has NaN.*rows \[1\]"):
        load_rossi_raw(rossi_dir)
    post = _post(1, 130)
    post["spaceXYZ"] = np.array([[0.0, 0.0]])
    savemat(rossi_dir / "postSyn_01.mat", post)
    with pytest.raises(DataFormatError, match="postSyn_01.mat: spaceXYZ has shape"):
        load_rossi_raw(rossi_dir)


def test_embedded_table():
    t = load_rossi()
    assert tuple(t.columns) == COLUMNS
    assert t["neuron"].nunique() == 17
    assert t.groupby("input").size().to_dict() == {"EX": 957, "IN": 543}
    assert set(t.loc[t.neuron <= 13, "genotype"]) == {"CaMK2-GCaMP6"}
    assert set(t.loc[t.neuron >= 14, "genotype"]) == {"Gad2-NLS-mCherry"}
    rfs = rossi_receptive_fields(t)
    assert len(rfs) == 17 and sum(len(r.points) for r in rfs.values()) == 1500
    # the published inputs spread over a few hundred µm around the soma
    assert 100 < t["dx_um"].std() < 200


def test_table_csv_validation(tmp_path):
    t = load_rossi()
    bad = t.copy()
    bad.loc[3, "dx_um"] = np.nan
    bad.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataFormatError, match=r"column dx_um has 1 missing or non-numeric value\(s\) \(lines \[5\]"):
        load_rossi_table(tmp_path / "t.csv")
    bad = t.astype({"dy_um": object})
    bad.loc[7, "dy_um"] = "12,5"  # a decimal comma
    bad.to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataFormatError, match=r"column dy_um .*lines \[9\], e.g. '12,5'"):
        load_rossi_table(tmp_path / "c.csv")
    t.drop(columns=["dy_um"]).to_csv(tmp_path / "u.csv", index=False)
    with pytest.raises(DataFormatError, match="lacks columns"):
        load_rossi(tmp_path / "u.csv")


def test_build_script_roundtrip(tmp_path, rossi_dir):
    spec = importlib.util.spec_from_file_location(
        "build_rossi", Path(__file__).resolve().parents[1] / "scripts" / "build_rossi2020_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "table.csv"
    assert mod.main([str(rossi_dir), "--out", str(out)]) == 0
    t = load_rossi(out)
    raw = load_rossi_raw(rossi_dir)
    np.testing.assert_allclose(t["dx_um"], raw["dx_um"], atol=0.005)
    import json

    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["counts"]["02"] == {"EX": 30, "IN": 1}
    assert set(meta["raw_files_sha256"]) == {f"{s}_{i:02d}.mat" for i in (1, 2, 3)
                                             for s in ("postSyn", "spatialEX", "spatialIN")}
