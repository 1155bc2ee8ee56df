"""`fetch_natural_scenes` with a stand-in for allensdk's BrainObservatoryCache (never the network)."""

from __future__ import annotations

import json
import sys

import pytest

from allen_fixtures import DEFAULT_CONTAINERS, SELECTED, FakeBrainObservatoryCache, make_allen_cache
from neurolp.brain import Selection, fetch_natural_scenes, load_responses
from neurolp.brain.cache import CacheLayout
from neurolp.cli import main
from neurolp.errors import OfflineError


def test_fetch_downloads_only_the_selected_natural_scene_sessions(tmp_path):
    boc = FakeBrainObservatoryCache(tmp_path)
    df = fetch_natural_scenes(tmp_path, boc=boc, progress=False)
    wanted = sorted(c.experiment_id() for c in SELECTED)
    assert sorted(df["experiment_id"]) == wanted
    assert set(df["status"]) == {"downloaded"}
    downloaded = sorted(e for kind, *rest in boc.calls if kind == "nwb" for e in rest)
    assert downloaded == wanted                  # no A/C session, no Sst, no 375 µm, no failed QC
    assert ("experiments",) not in boc.calls    # the always-online get_ophys_experiments is avoided
    recs = json.loads((tmp_path / "experiment_containers.json").read_text())
    assert recs[0]["specimen"]["donor"]["external_donor_name"] == "222001"   # raw API records
    br = load_responses(tmp_path, progress=False, use_artefact=False)
    assert sorted(br.responses) == wanted


def test_fetch_resumes_and_repairs_truncated_files(tmp_path):
    boc = FakeBrainObservatoryCache(tmp_path)
    fetch_natural_scenes(tmp_path, boc=boc, progress=False)
    layout = CacheLayout.open(tmp_path)
    with open(layout.nwb_path(5041), "r+b") as fh:      # an interrupted download
        fh.truncate(500)
    layout.events_path(5071).unlink()
    boc2 = FakeBrainObservatoryCache(tmp_path)
    df = fetch_natural_scenes(tmp_path, boc=boc2, progress=False).set_index("experiment_id")
    assert df.loc[5041, "status"] == "repaired" and "unreadable" in df.loc[5041, "problems"]
    assert df.loc[5071, "status"] == "downloaded" and df.loc[5011, "status"] == "present"
    assert sorted(boc2.calls) == [("events", 5071), ("nwb", 5041)]


def test_offline_fails_at_once_naming_cache_and_what_is_missing(tmp_path):
    boc = FakeBrainObservatoryCache(tmp_path / "c", offline=True)
    with pytest.raises(OfflineError, match=r"cache at .*c; still missing: the experiment catalog"):
        fetch_natural_scenes(tmp_path / "c", boc=boc, progress=False)
    # catalog present, files missing: the first download fails and says how many are left
    make_allen_cache(tmp_path / "p", files={SELECTED[0].container_id})
    boc = FakeBrainObservatoryCache(tmp_path / "p", offline=True)
    with pytest.raises(OfflineError, match=r"8 of 9 experiments.*ophys_experiment_data"):
        fetch_natural_scenes(tmp_path / "p", boc=boc, progress=False)
    assert len(boc.calls) == 1


def test_complete_cache_needs_no_network(tmp_path):
    make_allen_cache(tmp_path)
    boc = FakeBrainObservatoryCache(tmp_path, offline=True)
    df = fetch_natural_scenes(tmp_path, boc=boc, progress=False)
    assert set(df["status"]) == {"present"} and boc.calls == []


def test_session_types_missing_from_container_records(tmp_path):
    boc = FakeBrainObservatoryCache(tmp_path, strip_session_types=True)
    df = fetch_natural_scenes(tmp_path, Selection(areas=("VISal",)), boc=boc, progress=False)
    assert ("experiments",) in boc.calls
    assert sorted(df["experiment_id"]) == [5081, 5091]


def test_dry_run_reports_missing(tmp_path):
    make_allen_cache(tmp_path, files={501})
    df = fetch_natural_scenes(tmp_path, boc=FakeBrainObservatoryCache(tmp_path, offline=True),
                              dry_run=True, progress=False)
    assert (df["status"] == "missing").sum() == 8


def test_cli_allen_fetch_info_verify(tmp_path, monkeypatch, capsys):
    import neurolp.brain.fetch as fetch_mod

    fake = FakeBrainObservatoryCache(tmp_path, DEFAULT_CONTAINERS)
    monkeypatch.setattr(fetch_mod, "open_brain_observatory_cache", lambda root: fake)
    assert main(["allen", "fetch", "--cache", str(tmp_path), "--areas", "VISp", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 downloaded" in out
    assert main(["allen", "info", "--cache", str(tmp_path), "--areas", "VISp"]) == 0
    out = capsys.readouterr().out
    assert "4 natural-scene experiments" in out and "3 mice" in out and "L4: 1" in out
    assert main(["allen", "verify", "--cache", str(tmp_path), "--areas", "VISp"]) == 0
    assert "all files readable" in capsys.readouterr().out
    CacheLayout.open(tmp_path).events_path(5011).write_bytes(b"not a zip")
    assert main(["allen", "verify", "--cache", str(tmp_path), "--areas", "VISp"]) == 1
    assert "5011 events: unreadable" in capsys.readouterr().out
    offline = FakeBrainObservatoryCache(tmp_path / "new", offline=True)
    monkeypatch.setattr(fetch_mod, "open_brain_observatory_cache", lambda root: offline)
    assert main(["allen", "fetch", "--cache", str(tmp_path / "new"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurolp: error: cannot reach the Allen Brain Observatory API") \
        and err.count("\n") == 1


def test_real_allensdk_is_imported_lazily_and_fails_offline(tmp_path, monkeypatch):
    """The real BrainObservatoryCache offline: an OfflineError naming the cache, immediately."""
    pytest.importorskip("allensdk")
    import socket

    def no_dns(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)   # no network, whatever the machine has
    with pytest.raises(OfflineError, match=str(tmp_path)):
        fetch_natural_scenes(tmp_path, progress=False)
    assert (tmp_path / "manifest.json").is_file()
    assert "allensdk" in sys.modules
