"""The training loop on offline data: it learns, it resumes bit for bit, it refuses bad resumes."""

from __future__ import annotations

import json

import pytest
import torch

from neurolp.errors import ConfigError
from neurolp.layers import lp_layers
from neurolp.train.augment import param_groups
from neurolp.train.checkpoint import load_model, read_metadata
from neurolp.train.config import TrainConfig, make_config
from neurolp.train.loop import train
from neurolp.models import create_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest


def _quick(model, **kw):
    base = dict(model=model, dataset="digits", image_size=16, epochs=3, batch_size=32,
                lr=3e-3, model_kwargs={"width": 8}, device="cpu", progress=False)
    return make_config("quick", **{**base, **kw})


@pytest.mark.parametrize("model", ["base-smallcnn", "lp2-smallcnn"])
def test_quick_run_learns_digits(model, tmp_path):
    res = train(_quick(model), tmp_path / "run", store=tmp_path / "store")
    s = res.summary
    assert s["complete"] and s["epochs_done"] == 3 and s["selected_on"] == "val"
    assert s["val_acc"] > 80 and s["test_acc"] > 80, s  # chance is 10 %
    h = res.history
    assert list(h["epoch"]) == [1, 2, 3] and h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]
    assert s["best_epoch"] == int(h.loc[h["val_acc"].idxmax(), "epoch"])
    assert s["test_acc"] == pytest.approx(h.loc[h["val_acc"].idxmax(), "test_acc"])
    # files of the run
    out = tmp_path / "run"
    for name in ("config.json", "run.json", "state.pt", "best.safetensors", "last.safetensors",
                 "metrics.csv", "metrics.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert TrainConfig.from_json(out / "config.json").image_size == 16
    # the published checkpoint is the validation-selected one and rebuilds by itself
    meta = read_metadata(res.published)
    assert meta["kind"] == "final" and meta["epoch"] == s["best_epoch"]
    assert meta["metrics"]["val_acc"] == pytest.approx(s["val_acc"])
    assert meta["classes"] == [str(i) for i in range(10)] and meta["dataset"] == "digits"
    model_, _ = load_model(res.published)
    if model.startswith("lp"):
        ps = torch.cat([m.p.detach() for _, m in lp_layers(model_)])
        assert ps.min() >= 1.0 and not torch.allclose(ps, torch.full_like(ps, 2.0))  # p trained


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_reproduces_uninterrupted_run(tmp_path):
    # the paper recipe in miniature: RandAugment, Mixup/CutMix, smoothing, erasing, warm-up
    cfg = make_config("paper", model="lp2-smallcnn", dataset="digits", image_size=16, epochs=2,
                      batch_size=32, max_train_samples=400, model_kwargs={"width": 8},
                      warmup_epochs=0.5, device="cpu", progress=False, checkpoint_every=4)
    full = train(cfg, tmp_path / "full", publish=False)
    assert full.summary["global_step"] == 22 and full.history["train_acc"].isna().all()

    # killed at step 15 (mid epoch 2): the last checkpoint is step 12; resume from there
    class Killed(Exception):
        pass

    def kill(step):
        if step == 15:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed", publish=False, on_step=kill)
    state = torch.load(tmp_path / "killed" / "state.pt", weights_only=True)
    assert state["position"] == {"epoch": 1, "step_in_epoch": 1, "global_step": 12}
    resumed = train(cfg, tmp_path / "killed", resume=True, publish=False)
    _assert_same(_state(full.model), _state(resumed.model))
    assert resumed.history.drop(columns=["epoch_time_s", "train_images_per_s"]).equals(
        full.history.drop(columns=["epoch_time_s", "train_images_per_s"]))

    # stopped by --max-steps in epoch 1, resumed with another runtime option
    stopped = train(cfg.replace(max_steps=7), tmp_path / "stopped", publish=False)
    assert not stopped.complete and stopped.summary["global_step"] == 7
    again = train(cfg.replace(eval_batch_size=17), tmp_path / "stopped", resume=True, publish=False)
    assert again.complete
    _assert_same(_state(full.model), _state(again.model))
    best_full, _ = load_model(tmp_path / "full" / "best.safetensors")
    best_again, _ = load_model(tmp_path / "stopped" / "best.safetensors")
    _assert_same(_state(best_full), _state(best_again))


def test_resume_guards(tmp_path):
    cfg = _quick("base-smallcnn", epochs=1, max_train_samples=200, max_steps=2)
    train(cfg, tmp_path / "r", publish=False)
    with pytest.raises(ConfigError, match=r"already holds a training run \(state.pt\); pass --resume"):
        train(cfg, tmp_path / "r", publish=False)
    with pytest.raises(ConfigError, match=r"config differs from the saved run \(lr: saved 0\.003, "
                                          r"now 0\.1\); only runtime options"):
        train(cfg.replace(lr=0.1), tmp_path / "r", resume=True, publish=False)
    fresh = train(cfg, tmp_path / "new", resume=True, publish=False)
    assert "nothing to resume" in fresh.notes[0]


def test_mask_weight_decay_policy():
    model = create_model("lp2-smallcnn", num_classes=10, image_size=16, width=8)
    conv = lp_layers(model)[0][1]

    def decayed(policy):
        groups = param_groups(model, 0.05, policy)
        return {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}

    official = decayed("C")
    assert id(conv.C) in official and id(conv.log2p) not in official and id(conv.weight) in official
    assert id(model[3].bias) not in official  # biases and 1-D parameters stay undecayed
    none = decayed("none")
    assert id(conv.C) not in none and id(conv.weight) in none
    assert id(conv.log2p) in decayed("all")
    frozen = create_model("lp256f-smallcnn", num_classes=10, image_size=16, width=8)
    names = {id(p) for g in param_groups(frozen, 0.05) for p in g["params"]}
    assert id(lp_layers(frozen)[0][1].C) not in names  # frozen parameters are not optimised


def test_config_validation_and_presets():
    paper = make_config("paper")
    assert (paper.epochs, paper.batch_size, paper.lr, paper.weight_decay) == (300, 128, 1e-3, 0.05)
    assert (paper.mixup, paper.cutmix, paper.label_smoothing, paper.re_prob) == (0.8, 1.0, 0.1, 0.25)
    assert paper.auto_augment == "rand-m9-mstd0.5-inc1" and paper.warmup_epochs == 5
    assert make_config("paper", epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match="--mask-weight-decay: unknown value 'p'; valid: C, none, all"):
        make_config(mask_weight_decay="p")
    with pytest.raises(ConfigError, match=r"--val-fraction must be in \[0, 1\), got 1"):
        make_config(val_fraction=1.0)
    with pytest.raises(ConfigError, match="--lr must be a finite number"):
        make_config(lr=float("inf"))
    with pytest.raises(ConfigError, match="--epochs must be an integer, got 2.5"):
        make_config(epochs=2.5)
    assert make_config(epochs=3.0).epochs == 3 and isinstance(make_config(epochs=3.0).epochs, int)
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        make_config(dataset="mnist")
    with pytest.raises(ConfigError, match="invalid model name"):
        make_config(model="resnet18")


def test_odd_batch_with_mixup_is_refused(tmp_path):
    cfg = _quick("base-smallcnn", mixup=0.8, batch_size=31, max_train_samples=200)
    with pytest.raises(ConfigError, match="Mixup/CutMix need an even batch per process, got 31"):
        train(cfg, tmp_path / "r", publish=False)


def test_ema_and_runs_without_validation_split(tmp_path):
    res = train(_quick("base-smallcnn", epochs=2, max_train_samples=300, ema=True, ema_decay=0.9),
                tmp_path / "ema", publish=False)
    h = res.history
    assert "val_acc_raw" in h and h["val_acc"].notna().all() and h["val_acc_raw"].notna().all()
    assert not h["val_acc"].equals(h["val_acc_raw"])  # the EMA weights are what is evaluated
    best, _ = load_model(res.best_checkpoint)
    assert best.state_dict()["3.bias"].shape == (10,)
    novl = train(_quick("base-smallcnn", epochs=2, max_train_samples=300, val_fraction=0.0,
                        eval_test=False), tmp_path / "noval", store=tmp_path / "store")
    s = novl.summary
    assert s["selected_on"] == "last epoch" and s["best_epoch"] == 2 and s["val_acc"] is None
    assert "no validation split" in " ".join(novl.notes)
    assert read_metadata(novl.published)["epoch"] == 2


def test_divergence_stops_without_overwriting_the_checkpoint(tmp_path):
    cfg = _quick("base-smallcnn", epochs=1, max_train_samples=200, lr=1e30, warmup_epochs=0)
    with pytest.raises(FloatingPointError, match=r"the training loss became nan before step 5 "
                                                 r"\(epoch 1\); the last checkpoint was kept"):
        train(cfg, tmp_path / "r", publish=False)
    assert not (tmp_path / "r" / "state.pt").exists()  # nothing diverged was saved


def test_model_hooks_run_after_every_step_and_log_epoch_metrics(tmp_path, monkeypatch):
    """Modules may define neurolp_after_step / neurolp_epoch_metrics (weight sharing, diagnostics)."""
    from neurolp.models.registry import ARCHS, ArchSpec

    calls = []

    class Hooked(torch.nn.Module):
        def __init__(self, num_classes, image_size, **_):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                           torch.nn.Flatten(), torch.nn.Linear(4, num_classes))

        def forward(self, x):
            return self.net(x)

        def neurolp_after_step(self, step):
            calls.append(step)
            self.net[0].weight.zero_()  # runs under no_grad, after the optimiser step

        def neurolp_epoch_metrics(self):
            return {"weight_abs_sum": float(self.net[0].weight.abs().sum())}

    monkeypatch.setitem(ARCHS, "hooked", ArchSpec("hooked", Hooked))
    res = train(_quick("base-hooked", epochs=2, model_kwargs={}), tmp_path / "run", publish=False)
    steps = res.summary["global_step"]
    assert calls == list(range(1, steps + 1))
    assert list(res.history["weight_abs_sum"]) == [0.0, 0.0]
