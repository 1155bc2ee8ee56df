"""Reading a synthetic Allen cache (allensdk's real layout) with h5py: metadata, responses, artefact."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from allen_fixtures import (DEFAULT_CONTAINERS, N_IMAGES, SELECTED, make_allen_cache)
from neurolp.brain import (ResponseParams, Selection, cortical_layer, describe_cache,
                           experiment_table, load_responses, natural_scene_templates)
from neurolp.brain.cache import CacheLayout
from neurolp.errors import DataFormatError, DataNotFoundError, InputError


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    """Noise-free cache: the event sum over the window equals each neuron's tuning."""
    return make_allen_cache(tmp_path_factory.mktemp("allen_exact"), noise=0.0)


def test_layers_follow_the_allen_convention():
    assert cortical_layer(175) == "L2/3" and cortical_layer(195) == "L2/3"
    assert cortical_layer(200) == "L4" and cortical_layer(275) == "L4"
    assert cortical_layer(375) == "L5" and cortical_layer(550) == "L6"
    assert cortical_layer(175, "Nr5a1-Cre") == "L4"
    assert Selection().depths == (175, 185, 195, 200, 205, 225, 250, 265, 275)


def test_experiment_table_from_raw_catalog(exact):
    t = experiment_table(exact.root)
    assert len(t) == 3 * len(DEFAULT_CONTAINERS)          # sessions A, B, C of every container
    b = t[t["session_type"] == "three_session_B"].set_index("experiment_id")
    row = b.loc[5031]
    assert (row["area"], row["depth"], row["layer"], row["cre_line"], row["mouse"],
            row["container_id"]) == ("VISp", 275, "L4", "Emx1-IRES-Cre", "222002", 503)
    assert row["reporter_line"] == "Ai93(TITL-GCaMP6f)"
    # several containers belong to one mouse
    assert b.loc[[5011, 5021], "mouse"].tolist() == ["222001", "222001"]
    assert bool(b.loc[5121, "failed"])
    assert b["has_nwb"].all() and not t.loc[t["session_type"] == "three_session_A", "has_nwb"].any()


def test_metadata_from_nwb_headers_without_a_catalog(tmp_path):
    make_allen_cache(tmp_path, DEFAULT_CONTAINERS[:3], catalog=False)
    t = experiment_table(tmp_path).set_index("experiment_id")
    assert t.loc[5021, "area"] == "VISl" and t.loc[5021, "mouse"] == "222001"
    assert t.loc[5021, "cre_line"] == "Cux2-CreERT2" and t.loc[5021, "depth"] == 175
    assert set(t["metadata_source"]) == {"nwb general/"}


def test_responses_equal_the_known_tuning(exact):
    br = load_responses(exact.root, params=ResponseParams(aggregate="sum"), progress=False,
                        use_artefact=False)
    ids = sorted(br.responses)
    assert ids == sorted(exact.selected_ids())
    for eid in ids:
        arr = br.responses[eid]
        assert arr.shape[1:] == (N_IMAGES, exact.rates[eid].shape[0])
        np.testing.assert_allclose(np.nanmean(arr, 0).T, exact.rates[eid], rtol=1e-5, atol=1e-6)
    # unequal trial counts: NaN padding, counted
    e = br.experiments.set_index("experiment_id")
    assert (e.loc[5031, "n_trials_min"], e.loc[5031, "n_trials_max"]) == (3, 5)
    assert np.isnan(br.responses[5031][:, 5]).sum() == 2 * 15
    assert e.loc[5011, "n_blank"] == 5           # blank presentations dropped and counted
    # the mean of the window equals the sum / 15
    br2 = load_responses(exact.root, progress=False, use_artefact=False)
    np.testing.assert_allclose(br2.responses[5011] * 15, br.responses[5011], rtol=1e-5, atol=1e-6)


def test_dff_signal_with_baseline(exact):
    p = ResponseParams(signal="dff", window_start=2, window_frames=4, baseline_frames=2)
    br = load_responses(exact.root, params=p, progress=False, use_artefact=False)
    m = np.nanmean(br.responses[5011], 0).T
    # ΔF/F: amplitude over frames 2..5 after onset, plus small noise, minus a ~0 baseline
    np.testing.assert_allclose(m, exact.rates[5011], atol=0.03)


def test_selection_grouping_and_summary(exact):
    br = load_responses(exact.root, progress=False, use_artefact=False)
    assert br.areas == ["VISal", "VISl", "VISp"]
    groups = br.groups("mouse")
    assert sorted(groups[("VISp", "222002")]) == [5031, 5041]   # one mouse, two depths
    s = br.summary().set_index("area")
    assert s.loc["VISp", "mice"] == 3 and s.loc["VISp", "experiments"] == 4
    assert s.loc["VISp", "layers"] == "L2/3,L4"
    assert {5101, 5111, 5121}.isdisjoint(br.responses)          # Sst, 375 µm and failed: out
    only_l23 = load_responses(exact.root, Selection(depths=(175,)), progress=False, use_artefact=False)
    assert set(only_l23.experiments["layer"]) == {"L2/3"}
    long = br.to_frame()
    assert len(long) == sum(int((~np.isnan(a)).sum()) for a in br.responses.values())
    assert set(long.columns) >= {"mouse", "area", "trial", "image", "neuron_id", "response"}


def test_artefact_is_reused_validated_and_rebuilt(tmp_path):
    syn = make_allen_cache(tmp_path, DEFAULT_CONTAINERS[:2], noise=0.0)
    sel = Selection(areas=("VISp", "VISl"))
    a = load_responses(tmp_path, sel, progress=False)
    assert not a.from_cache and a.artefact is not None and a.artefact.is_file()
    b = load_responses(tmp_path, sel, progress=False)
    assert b.from_cache
    for e in a.responses:
        np.testing.assert_array_equal(a.responses[e], b.responses[e])
    # corrupt artefact → rebuilt, not trusted
    with open(a.artefact, "r+b") as fh:
        fh.seek(200)
        fh.write(b"garbage!")
    c = load_responses(tmp_path, sel, progress=False)
    assert not c.from_cache
    np.testing.assert_array_equal(c.responses[5011], a.responses[5011])
    # stale: a source file changed → rebuilt
    ev = syn.root / "ophys_experiment_events/5011_events.npz"
    os.utime(ev, ns=(ev.stat().st_atime_ns, ev.stat().st_mtime_ns + 10**9))
    assert not load_responses(tmp_path, sel, progress=False).from_cache
    meta = json.loads(next((tmp_path / "neurolp").glob("responses-*.json")).read_text())
    assert meta["params"]["signal"] == "events" and len(meta["sha256"]) == 64


def test_templates_and_no_allensdk_import(exact):
    before = "allensdk" in sys.modules
    t = natural_scene_templates(exact.root)
    assert t.shape == (N_IMAGES, 12, 16) and t.dtype == np.uint8
    np.testing.assert_array_equal(t, exact.templates)
    load_responses(exact.root, progress=False, use_artefact=False)
    assert ("allensdk" in sys.modules) == before


def test_no_cache_empty_cache_partial_cache(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist.*neurolp allen fetch"):
        load_responses(tmp_path / "nowhere", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="empty"):
        load_responses(tmp_path / "empty", progress=False)
    part = tmp_path / "partial"
    keep = {c.container_id for c in SELECTED[:3]}
    make_allen_cache(part, files=keep)
    with pytest.raises(DataNotFoundError) as err:
        load_responses(part, progress=False)
    msg = str(err.value)
    assert "partial Allen cache" in msg and "6 of 9" in msg and "5041" in msg and "fetch" in msg
    br = load_responses(part, progress=False, allow_partial=True, use_artefact=False)
    assert sorted(br.responses) == sorted(c.experiment_id() for c in SELECTED[:3])
    assert len(br.excluded[br.excluded["reason"].str.contains("missing")]) == 6
    with pytest.raises(DataNotFoundError, match="matches the selection"):
        load_responses(part, Selection(areas=("VISam",)), progress=False)


def test_truncated_nwb_and_mismatched_events(tmp_path):
    make_allen_cache(tmp_path, DEFAULT_CONTAINERS[:1])
    layout = CacheLayout.open(tmp_path)
    np.savez(layout.events_path(5011), ev=np.zeros((3, 10), np.float32))
    with pytest.raises(DataFormatError, match="do not belong together"):
        load_responses(tmp_path, progress=False, use_artefact=False)
    with open(layout.nwb_path(5011), "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(DataFormatError, match="truncated download"):
        load_responses(tmp_path, progress=False, use_artefact=False)


def test_bad_parameters():
    with pytest.raises(InputError, match="signal"):
        ResponseParams(signal="spikes")
    with pytest.raises(InputError, match="window_frames"):
        ResponseParams(window_frames=0)
    with pytest.raises(InputError, match="unknown visual area"):
        Selection(areas=("V1",))


def test_describe_cache(exact):
    info = describe_cache(exact.root)
    assert info["n_experiments"] == 9 and info["n_mice"] == 5
    assert info["excluded_failed"] == [5121] and info["missing_nwb"] == []
    assert info["layers"] == {"L2/3": 7, "L4": 2}
