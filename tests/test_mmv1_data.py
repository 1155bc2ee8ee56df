"""neurolp.mmv1 data: the published layout, its checks, neuron selection, behaviour, NaNs, windows."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from neurolp.errors import ConfigError, DataFormatError, DataNotFoundError
from neurolp.mmv1.data import (DataOptions, behaviour_dim, behaviour_features, fill_nans, load_session,
                               load_sessions, pairwise_products, velocity)
from neurolp.mmv1.layout import ALL_KEYS, list_sessions, segment_file
from mmv1_fixtures import write_session

BIN_HZ = 1000 / 48  # spikes per bin → Hz


def opts(**kw) -> DataOptions:
    kw.setdefault("seq_len", 2)
    return DataOptions(**kw)


# --- behaviour features -----------------------------------------------------------------------------
def test_behaviour_dims_match_the_authors():
    assert [behaviour_dim(m) for m in ("orig", "velo", "all", "orig_prod", "velo_prod", "all_prod")] == \
        [6, 6, 11, 21, 21, 66]


def test_behaviour_features_by_hand():
    raw = np.array([[1.0, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12], [3, 3, 3, 3, 3, 3]])
    x, names = behaviour_features(raw, "velo")
    assert names == ["speed", "d_pitch", "d_roll", "d_phi", "d_th", "d_eyerad"]
    np.testing.assert_array_equal(x[:, 0], [1, 2, 3])                 # speed as is
    np.testing.assert_array_equal(x[:, 1], [0, 2, -1])                # pitch 2, 4, 3: first bin 0
    x, names = behaviour_features(raw, "orig_prod")
    assert names[6] == "speed*pitch" and names[-1] == "th*eyerad" and len(names) == 21
    np.testing.assert_array_equal(x[:, 6], raw[:, 0] * raw[:, 1])
    np.testing.assert_array_equal(x[:, -1], raw[:, 4] * raw[:, 5])
    p, pn = pairwise_products(np.array([[2.0, 3, 5]]), ["a", "b", "c"])
    assert pn == ["a*b", "a*c", "b*c"] and p.tolist() == [[6, 10, 15]]
    np.testing.assert_array_equal(velocity([5.0, 7, 4]), [0, 2, -3])


def test_nan_policies():
    x = np.array([np.nan, 1.0, np.nan, 3.0, np.nan])
    z, n = fill_nans(x, "zero")
    assert n == 3 and z.tolist() == [0, 1, 0, 3, 0]
    i, n = fill_nans(x, "interpolate")
    assert n == 3 and i.tolist() == [1, 1, 2, 3, 3]                  # constant beyond the ends
    assert fill_nans(np.full(3, np.nan), "interpolate")[0].tolist() == [0, 0, 0]


# --- the layout and its checks ---------------------------------------------------------------------
def test_loads_memory_mapped_and_selects_neurons_by_rate(tmp_path):
    # training rates: 0.3, 0.05, 0.2 spikes/bin = 6.25, 1.04, 4.17 Hz → columns 0 and 2 kept at 3 Hz
    write_session(tmp_path, "s1")
    s = load_session(tmp_path, "s1", opts())
    assert s.neurons.tolist() == [0, 2]
    np.testing.assert_allclose(s.rates_hz, np.array([0.3, 0.05, 0.2]) * BIN_HZ)
    assert load_session(tmp_path, "s1", opts(min_rate_hz=5)).neurons.tolist() == [0]
    assert load_session(tmp_path, "s1", opts(min_rate_hz=0)).neurons.tolist() == [0, 1, 2]
    assert load_session(tmp_path, "s1", opts(neurons=(1,))).neurons.tolist() == [1]
    part = s.train.parts[0]
    assert isinstance(s.train._frames(part.frames_path), np.memmap)
    d = s.describe()
    assert d["neurons_recorded"] == 3 and d["neurons_kept"] == 2 and d["bins"] == {"train": 40, "test": 20}
    assert d["frame_normalisation"]["mode"] == "segment" and len(d["frame_normalisation"]["files"]) == 4


def test_windows_targets_and_split_without_leakage(tmp_path):
    # frames hold their global bin index; segment 0: train bins 0–19, test 20–29; segment 1: 30–49, 50–59
    write_session(tmp_path, "s1", frame_size=(4, 5))
    s = load_session(tmp_path, "s1", opts(seq_len=3, predict_offset=1, val_fraction=0.2,
                                          frame_norm="session", min_rate_hz=0))
    lo, hi = 0.0, 49.0  # session mode: min/max of the training files
    # cut at int(20 * 0.8) = 16: train windows start 0..12 (targets 3..15), val 16 (target 19)
    assert s.train.part_lengths.tolist() == [13, 13] and s.val.part_lengths.tolist() == [1, 1]
    assert s.test.part_lengths.tolist() == [7, 7] and s.test.segment_lengths() == [7, 7]
    for ds in (s.train, s.val, s.test):
        for i in range(len(ds)):
            frames, behav, shift, y = ds[i]
            part, t = ds.locate(i)
            assert frames.shape == (3, 1, 4, 5) and behav.shape == (3, 66) and shift.shape == (3, 4)
            first_bin = frames[0, 0, 0, 0].item() * (hi - lo) + lo
            offset = 0 if part.split in ("train", "val") else 20
            assert first_bin == pytest.approx(t + (0 if part.segment == 0 else 30) + offset, abs=1e-3)
            np.testing.assert_array_equal(y.numpy(), part.spikes[t + 3])           # next bin
            assert behav[:, 0].tolist() == [float(t + b + (30 if part.segment else 0) + offset)
                                             for b in range(3)]                       # speed = bin
            if part.split == "train":
                assert t + 3 < 16      # the target stays before the cut
            if part.split == "val":
                assert t >= 16         # the first frame is after it
    tb = s.test.target_bins()
    assert tb[:, 0].tolist() == [0] * 7 + [1] * 7 and tb[:7, 1].tolist() == list(range(3, 10))
    np.testing.assert_array_equal(s.test.targets()[0], s.test[0][3].numpy())
    # shifter input is (θ, φ, pitch, roll) = behaviour keys th, phi, pitch, roll (offsets 4000, 3000, 1000, 2000)
    assert s.train[0][2][0].tolist() == [4000.0, 3000.0, 1000.0, 2000.0]


def test_frame_normalisation_modes(tmp_path):
    write_session(tmp_path, "s1", frame_size=(2, 2))
    seg = load_session(tmp_path, "s1", opts(min_rate_hz=0))
    f = seg.train[0][0]
    assert f.min().item() == 0.0                     # train seg 0: bins 0..19 → [0, 1]
    last = seg.val[len(seg.val) - 1][0]
    assert last.max().item() == pytest.approx(18 / 19)      # bin 19 is only a target
    pm1 = load_session(tmp_path, "s1", opts(min_rate_hz=0, frame_range="pm1"))
    assert pm1.train[0][0].min().item() == -1.0
    stats = seg.describe()["frame_normalisation"]["files"]
    assert {(r["split"], r["segment"], r["min"], r["max"]) for r in stats} == {
        ("train", 0, 0, 19), ("test", 0, 20, 29), ("train", 1, 30, 49), ("test", 1, 50, 59)}


def test_nan_behaviour_is_reported_and_nan_frames_zeroed(tmp_path):
    th = np.arange(20, dtype=float) + 4000
    th[[3, 4]] = np.nan
    frames = np.tile(np.arange(20, dtype=np.float32)[:, None, None], (1, 2, 2))
    frames[2, 0, 0] = np.nan
    write_session(tmp_path, "s1", frame_size=(2, 2),
                  overrides={("train", "th", 0): th, ("train", "vid_mean", 0): frames})
    s = load_session(tmp_path, "s1", opts(min_rate_hz=0, nan="interpolate"))
    assert s.nan_counts == {"train": {"th": 2}, "test": {}}
    assert s.train.parts[0].shifter[3:5, 0].tolist() == [4003.0, 4004.0]       # interpolated
    z = load_session(tmp_path, "s1", opts(min_rate_hz=0, nan="zero"))
    assert z.train.parts[0].shifter[3:5, 0].tolist() == [0.0, 0.0]
    assert any("1 NaN pixels" in n for n in z.notes)
    assert not np.isnan(z.train[1][0].numpy()).any() and z.train[1][0][1, 0, 0, 0].item() == 0.0


def test_dataset_pickles_without_its_memory_maps(tmp_path):
    write_session(tmp_path, "s1")
    ds = load_session(tmp_path, "s1", opts()).train
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._mm == {}
    for a, b in zip(ds[5], clone[5]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_sessions_and_segment_subset(tmp_path):
    write_session(tmp_path, "b")
    write_session(tmp_path, "a", segments=3)
    (tmp_path / "notes").mkdir()  # a folder without segment files is not a session
    assert list_sessions(tmp_path) == ["a", "b"]
    assert [s.name for s in load_sessions(tmp_path, None, opts())] == ["a", "b"]
    s = load_session(tmp_path, "a", opts(segments=(0, 2)))
    assert s.segments == [0, 2] and {p.segment for p in s.test.parts} == {0, 2}
    with pytest.raises(ConfigError, match=r"segments \[5\] are not in session a"):
        load_session(tmp_path, "a", opts(segments=(5,)))


@pytest.mark.parametrize("case,error,pattern", [
    ("missing_key", DataNotFoundError, r"missing file .*s1/test_speed_seg_1\.npy"),
    ("unequal", DataFormatError, r"s1/train_pitch_seg_0\.npy has 19 time bins but train_nsp_seg_0\.npy has 20"),
    ("neurons", DataFormatError, r"s1/test_nsp_seg_1\.npy has 2 neurons but train_nsp_seg_0\.npy has 3"),
    ("corrupt", DataFormatError, r"cannot read .*s1/train_roll_seg_1\.npy as a \.npy array"),
    ("nan_spikes", DataFormatError, r"s1/train_nsp_seg_0\.npy holds NaN or negative spike counts"),
    ("frame_dims", DataFormatError, r"s1/test_vid_mean_seg_0\.npy has shape \(10, 8\), expected"),
    ("no_neuron", DataFormatError, r"no neuron of session s1 fires at >= 50 Hz"),
])
def test_bad_sessions_name_the_file(tmp_path, case, error, pattern):
    overrides, kw = {}, {}
    if case == "missing_key":
        overrides[("test", "speed", 1)] = None
    elif case == "unequal":
        overrides[("train", "pitch", 0)] = np.zeros(19)
    elif case == "neurons":
        overrides[("test", "nsp", 1)] = np.zeros((10, 2))
    elif case == "nan_spikes":
        overrides[("train", "nsp", 0)] = np.full((20, 3), np.nan)
    elif case == "frame_dims":
        overrides[("test", "vid_mean", 0)] = np.zeros((10, 8))
    elif case == "no_neuron":
        kw["min_rate_hz"] = 50
    write_session(tmp_path, "s1", overrides=overrides)
    if case == "corrupt":
        segment_file(tmp_path / "s1", "train", "roll", 1).write_bytes(b"not numpy")
    with pytest.raises(error, match=pattern):
        load_session(tmp_path, "s1", opts(**kw))


def test_missing_folders_name_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"does not exist; expected <root>/<session>/"
                                                r"\{train,test\}_<key>_seg_<i>\.npy"):
        list_sessions(tmp_path / "nope")
    with pytest.raises(DataNotFoundError, match="no MMV1 session folders"):
        list_sessions(tmp_path)
    write_session(tmp_path, "s1")
    with pytest.raises(DataFormatError, match="holds segment files itself"):
        list_sessions(tmp_path / "s1")
    with pytest.raises(DataNotFoundError, match=r"session folder .*/s9 does not exist \(sessions in .*: s1\)"):
        load_session(tmp_path, "s9")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"session folder .*/empty has no segments"):
        load_session(tmp_path, "empty")


def test_only_the_keys_a_run_needs_are_required(tmp_path):
    keys = tuple(k for k in ALL_KEYS if k not in ("vid_middle", "vid_shift_mean", "vid_shift_middle"))
    write_session(tmp_path, "s1", keys=keys)
    assert load_session(tmp_path, "s1", opts()).num_neurons == 2
    with pytest.raises(DataNotFoundError, match="train_vid_shift_mean_seg_0.npy"):
        load_session(tmp_path, "s1", opts(video="vid_shift_mean"))


def test_bad_options():
    with pytest.raises(Exception, match="behaviour mode 'al_prod'.*did you mean 'all_prod'"):
        DataOptions(behav_mode="al_prod").validate()
    with pytest.raises(Exception, match="val_fraction"):
        DataOptions(val_fraction=0).validate()
