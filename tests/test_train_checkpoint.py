"""Checkpoints and the checkpoint store: round trips, corruption, mismatches, lookup."""

from __future__ import annotations

import json
import os

import pytest
import torch

from neurolp.errors import CheckpointError
from neurolp.models import create_model
from neurolp.train.checkpoint import (load_model, load_state, load_weights, read_metadata,
                                      save_checkpoint, save_state)
from neurolp.train.store import (default_store, find_checkpoint, list_checkpoints,
                                 publish_checkpoint, resolve_checkpoint)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest


def _model(name="lp2-smallcnn", classes=10, size=16, seed=0):
    torch.manual_seed(seed)
    return create_model(name, num_classes=classes, image_size=size, width=8)


def _save(path, model, **meta):
    meta = {"dataset": "digits", "classes": [str(i) for i in range(10)], "seed": 3, "epoch": 2,
            "metrics": {"val_acc": 91.5, "test_acc": 90.0}, **meta}
    return save_checkpoint(path, model, meta)


def test_round_trip_rebuilds_identical_model(tmp_path):
    model = _model()
    with torch.no_grad():  # make the Lp parameters non-trivial so a rebuild from scratch would differ
        for n, p in model.named_parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = _save(tmp_path / "m.safetensors", model, config={"lr": 0.1})
    loaded, meta = load_model(path)
    assert not loaded.training
    model.eval()
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(model(x), loaded(x))
    for key in ("model", "num_classes", "image_size", "normalization", "dataset", "classes", "epoch",
                "metrics", "seed", "config", "neurolp_version", "git_commit"):
        assert key in meta
    assert meta["model"] == "lp2-smallcnn" and meta["num_classes"] == 10 and meta["image_size"] == 16
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["metrics"]["val_acc"] == 91.5 and meta["config"] == {"lr": 0.1}
    assert loaded.neurolp_spec["arch_kwargs"] == {"width": 8}
    assert read_metadata(path)["weights_sha256"] == meta["weights_sha256"]


def test_flipped_bit_in_weights_is_detected(tmp_path):
    path = _save(tmp_path / "m.safetensors", _model())
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0x01
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(blob))
    read_metadata(bad)  # the header is intact
    with pytest.raises(CheckpointError, match=r"is corrupted: the SHA-256 of its weights"):
        load_model(bad)


def test_truncated_and_garbage_files(tmp_path):
    path = _save(tmp_path / "m.safetensors", _model())
    blob = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"truncated or corrupted: \d+ bytes on disk"):
        load_model(tmp_path / "short.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(blob[:200])
    with pytest.raises(CheckpointError, match=r"truncated or not a safetensors file: its header "
                                              r"claims \d+ bytes but the file has 200"):
        load_model(tmp_path / "tiny.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="too short for a safetensors header"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.safetensors")


def _rewrite_header(src, dst, edit):
    """Copy a safetensors file with its JSON header changed by ``edit(header)``."""
    blob = src.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    dst.write_bytes(len(raw).to_bytes(8, "little") + raw + blob[8 + n:])
    return dst


def test_malformed_header_offsets_are_a_checkpoint_error(tmp_path):
    path = _save(tmp_path / "m.safetensors", _model())

    def break_offsets(h):
        name = next(k for k in h if k != "__metadata__")
        h[name]["data_offsets"] = "ab"

    (tmp_path / "store").mkdir()
    bad = _rewrite_header(path, tmp_path / "store" / "bad.safetensors", break_offsets)
    with pytest.raises(CheckpointError, match="malformed tensor offsets"):
        read_metadata(bad)
    table = list_checkpoints(tmp_path / "store")  # one broken file does not break the listing
    assert len(table) == 1 and table.iloc[0]["status"] != "ok"


def test_metadata_cannot_request_pretrained_weights(tmp_path):
    path = _save(tmp_path / "m.safetensors", _model())

    def ask_for_weights(h):
        meta = json.loads(h["__metadata__"]["neurolp"])
        meta["spec"]["arch_kwargs"] = {"weights": "DEFAULT"}  # would make torchvision download
        h["__metadata__"]["neurolp"] = json.dumps(meta)

    bad = _rewrite_header(path, tmp_path / "w.safetensors", ask_for_weights)
    with pytest.raises(CheckpointError, match="cannot build .*invalid options for smallcnn"):
        load_model(bad)


def test_foreign_safetensors_is_rejected(tmp_path):
    import safetensors.torch as st

    st.save_file({"w": torch.zeros(3)}, tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="not a neurolp checkpoint"):
        load_model(tmp_path / "foreign.safetensors")


def test_mismatched_model_names_the_difference(tmp_path):
    path = _save(tmp_path / "m.safetensors", _model("lp2-smallcnn"))
    with pytest.raises(CheckpointError, match=r"does not match the model: checkpoint holds "
                                              r"lp2-smallcnn \(10 classes, 16 px\), the model is base-smallcnn .*"
                                              r"8 unexpected \(e\.g\. 0\.0\.C, 0\.0\.log2p"):
        load_weights(_model("base-smallcnn"), path)
    other = create_model("lp2-smallcnn", num_classes=5, image_size=16, width=8)
    with pytest.raises(CheckpointError, match=r"with other shapes \(e\.g\. 3\.weight \(10, 32\) "
                                              r"vs \(5, 32\)"):
        load_weights(other, path)
    with pytest.raises(CheckpointError, match="holds lp2-smallcnn, not base-smallcnn"):
        load_model(path, expect_model="base-smallcnn")


def test_metadata_must_agree_with_model(tmp_path):
    with pytest.raises(CheckpointError, match="contradicts the model"):
        save_checkpoint(tmp_path / "m.safetensors", _model(), {"num_classes": 7})
    with pytest.raises(CheckpointError, match="3 class names for a model with 10 outputs"):
        save_checkpoint(tmp_path / "m.safetensors", _model(), {"classes": ["a", "b", "c"]})
    with pytest.raises(CheckpointError, match="needs a model built by neurolp.models.create_model"):
        save_checkpoint(tmp_path / "m.safetensors", torch.nn.Linear(2, 2), {})


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import safetensors.torch as st

    path = _save(tmp_path / "m.safetensors", _model(seed=0))
    before = path.read_bytes()
    calls = {"n": 0}
    real = st.save

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while serialising
        return real(*a, **k)

    monkeypatch.setattr(st, "save", failing)
    with pytest.raises(KeyboardInterrupt):
        _save(path, _model(seed=1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_state_round_trip_and_corruption(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "rng": [torch.get_rng_state()],
             "history": [{"epoch": 1, "val_acc": None}], "position": {"epoch": 1}}
    save_state(tmp_path / "state.pt", state)
    back = load_state(tmp_path / "state.pt")
    assert torch.equal(back["model"]["w"], torch.arange(3.0))
    assert back["history"] == [{"epoch": 1, "val_acc": None}]
    blob = (tmp_path / "state.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(CheckpointError, match=r"training state .*cut\.pt is corrupted or truncated "
                                              r"and cannot be resumed"):
        load_state(tmp_path / "cut.pt")
    # an arbitrary pickled object is refused by weights_only loading
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": "neurolp-train-state", "x": Evil()}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_state(tmp_path / "evil.pt")


def test_default_store_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROLP_CHECKPOINTS", str(tmp_path / "s"))
    assert default_store() == tmp_path / "s"
    monkeypatch.delenv("NEUROLP_CHECKPOINTS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_store() == tmp_path / "cache" / "neurolp" / "checkpoints"


def test_store_finds_newest_matching(tmp_path, monkeypatch):
    store = tmp_path / "store"
    runs = tmp_path / "runs"
    a = publish_checkpoint(_save(runs / "a.safetensors", _model(seed=1), seed=1), store)
    b = publish_checkpoint(_save(runs / "b.safetensors", _model(seed=2), seed=2), store)
    c = publish_checkpoint(_save(runs / "c.safetensors", _model("base-smallcnn"), seed=1), store)
    d = publish_checkpoint(_save(runs / "d.safetensors", _model(size=24), dataset="synthetic",
                                 classes=None), store)
    assert read_metadata(a)["kind"] == "final" and "published" in read_metadata(a)
    load_model(a)  # relabelling keeps the checksum valid
    # an in-progress snapshot is newer but never chosen
    save_checkpoint(store / "digits" / "x" / "last.safetensors", _model(seed=5),
                    {"dataset": "digits", "seed": 5}, kind="last")
    assert find_checkpoint("lp2-smallcnn", store=store, dataset="digits") == b
    assert find_checkpoint("LP2-SmallCNN", store=store, image_size=16) == b
    assert find_checkpoint("lp2-smallcnn", store=store, dataset="synthetic") == d
    assert find_checkpoint("base-smallcnn", store=store) == c
    monkeypatch.setenv("NEUROLP_CHECKPOINTS", str(store))
    assert find_checkpoint("lp2-smallcnn", image_size=24) == d
    assert resolve_checkpoint("base-smallcnn") == c
    assert resolve_checkpoint(str(a)) == a
    with pytest.raises(CheckpointError) as err:
        find_checkpoint("lp4-smallcnn", store=store, dataset="digits")
    msg = str(err.value)
    assert msg.startswith(f"no checkpoint of lp4-smallcnn (dataset=digits) in the checkpoint store {store}")
    assert "`neurolp train --model lp4-smallcnn --dataset digits --data-dir DIR`" in msg


def test_list_checkpoints_reports_broken_files(tmp_path):
    store = tmp_path / "store"
    good = publish_checkpoint(_save(tmp_path / "a.safetensors", _model()), store)
    (store / "broken.safetensors").write_bytes(good.read_bytes()[:300])
    df = list_checkpoints(store)
    assert len(df) == 2
    ok = df[df["status"] == "ok"].iloc[0]
    assert ok["model"] == "lp2-smallcnn" and ok["val_acc"] == 91.5 and ok["kind"] == "final"
    broken = df[df["status"] != "ok"].iloc[0]
    assert "truncated" in broken["status"] and broken["path"].endswith("broken.safetensors")
    with pytest.raises(CheckpointError, match=r"1 unreadable file\(s\) were ignored"):
        find_checkpoint("base-smallcnn", store=store)
    assert list_checkpoints(tmp_path / "nope").empty
    assert json.loads(json.dumps(df.to_dict("records"), default=str))  # serialisable
