"""The task-agnostic training engine with a task that is not classification: a seeded regression
with dropout, MSE, a torch LR scheduler, selection on the minimum of a validation metric, early
stopping, and bit-exact resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.train.checkpoint import load_model, read_metadata
from neurolp.train.data import EpochBatchSampler
from neurolp.train.engine import EngineOptions, Selection, StepOutput, Task, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def toy_arch(monkeypatch):
    from neurolp.models.registry import ARCHS, ArchSpec

    def build(num_classes, image_size, **_):
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * image_size * image_size, 16), nn.ReLU(),
                             nn.Dropout(0.2), nn.Linear(16, num_classes))

    monkeypatch.setitem(ARCHS, "toyreg", ArchSpec("toyreg", build))


@dataclasses.dataclass
class ToyConfig:
    seed: int = 0
    epochs: int = 4
    lr: float = 0.02
    patience: int | None = None
    max_steps: int | None = None
    checkpoint_every: int = 0

    def to_dict(self):
        return dataclasses.asdict(self)


class Regression(Task):
    command = "toy"
    runtime_fields = ("max_steps", "checkpoint_every")
    eval_splits = {"val": "val_"}
    selection = Selection("val", "mse", "min")

    def __init__(self, config: ToyConfig):
        self.config = config
        self.options = EngineOptions(epochs=config.epochs, seed=config.seed, device="cpu",
                                     max_steps=config.max_steps, patience=config.patience,
                                     checkpoint_every=config.checkpoint_every, progress=False)

    def setup(self, ctx):
        g = torch.Generator().manual_seed(123)
        x = torch.randn(1100, 3, 8, 8, generator=g)
        y = x[:, 0, :2, :2].flatten(1).sum(1, keepdim=True) / 2.0  # 4 of 192 inputs matter
        self.train_xy, self.val_xy = (x[:1000], y[:1000]), (x[1000:], y[1000:])
        self.sampler = EpochBatchSampler(1000, 80, self.config.seed)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        ctx.notes.append("toy data")

    def build_model(self, ctx):
        from neurolp.models import create_model

        return create_model("base-toyreg", num_classes=1, image_size=8)

    def build_optimizer(self, model):
        return torch.optim.Adam(model.parameters(), lr=self.config.lr)

    def build_scheduler(self, optimizer, steps_per_epoch):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.99 ** s)

    def train_batches(self, epoch, start_step):
        self.epoch = epoch
        self.sampler.set_epoch(epoch, start_step)
        x, y = self.train_xy
        for keys in self.sampler:
            idx = torch.tensor([i for _, i in keys])
            yield x[idx], y[idx]

    def training_step(self, model, batch, ctx):
        x, y = batch
        with ctx.autocast():
            loss = nn.functional.mse_loss(model(x), y)
        return StepOutput(loss, len(y), {"loss": loss.detach() * len(y), "abs": (model(x) - y).abs().sum()})

    def train_metrics(self, stats, n):
        return {"train_mse": stats["loss"] / n, "train_mae": stats["abs"] / n}

    def evaluate(self, model, split, ctx):
        assert not model.training and not torch.is_grad_enabled()
        x, y = self.val_xy
        return {"mse": float(nn.functional.mse_loss(model(x), y))}

    def checkpoint_metadata(self):
        return {"dataset": "toy", "normalization": None, "in_chans": 3}


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_regression_task_learns_selects_the_minimum_and_checkpoints(tmp_path):
    res = fit(Regression(ToyConfig(epochs=4)), tmp_path / "run", store=tmp_path / "store")
    h, s = res.history, res.summary
    assert list(h.columns[:6]) == ["epoch", "step", "lr", "train_mse", "train_mae", "val_mse"]
    assert "train_samples_per_s" in h and list(h["step"]) == [12, 24, 36, 48]
    assert h["lr"].iloc[-1] == pytest.approx(0.02 * 0.99 ** 48)  # torch scheduler stepped per update
    assert h["val_mse"].iloc[-1] < 0.5 * h["val_mse"].iloc[0]
    assert s["selection_metric"] == "val_mse" and s["selection_mode"] == "min"
    assert s["best_epoch"] == int(h.loc[h["val_mse"].idxmin(), "epoch"])
    assert s["best_value"] == pytest.approx(h["val_mse"].min()) and s["complete"]
    assert s["notes"] == ["toy data"] and not s["early_stopped"]
    meta = read_metadata(res.published)
    assert meta["kind"] == "final" and meta["dataset"] == "toy" and meta["in_chans"] == 3
    assert meta["epoch"] == s["best_epoch"] and meta["selected_on"] == "val"
    model, _ = load_model(tmp_path / "run" / "best.safetensors")
    task = Regression(ToyConfig())
    task.setup(type("C", (), {"notes": []})())
    with torch.no_grad():
        assert task.evaluate(model, "val", None)["mse"] == pytest.approx(s["best_value"], rel=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr"] == 0.02
    assert json.loads((tmp_path / "run" / "run.json").read_text())["command"] == "toy"


def test_resume_of_a_custom_task_is_bit_exact(tmp_path):
    cfg = ToyConfig(epochs=3, checkpoint_every=5)
    full = fit(Regression(cfg), tmp_path / "full", publish=False)

    class Killed(Exception):
        pass

    def kill(step):
        if step == 17:
            raise Killed

    with pytest.raises(Killed):
        fit(Regression(cfg), tmp_path / "k", publish=False, on_step=kill)
    state = torch.load(tmp_path / "k" / "state.pt", weights_only=True)
    assert state["position"] == {"epoch": 1, "step_in_epoch": 3, "global_step": 15}
    resumed = fit(Regression(cfg), tmp_path / "k", resume=True, publish=False)
    a, b = _weights(full.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)  # dropout masks came from the restored RNG
    drop = ["epoch_time_s", "train_samples_per_s"]
    assert resumed.history.drop(columns=drop).equals(full.history.drop(columns=drop))
    # stopped by max_steps (a runtime field), resumed without it
    fit(Regression(dataclasses.replace(cfg, max_steps=7)), tmp_path / "s", publish=False)
    again = fit(Regression(cfg), tmp_path / "s", resume=True, publish=False)
    assert all(torch.equal(a[k], v) for k, v in _weights(again.model).items())
    with pytest.raises(ConfigError, match=r"config differs from the saved run \(lr: saved 0\.02, "
                                          r"now 0\.1\); only runtime options \(max_steps, "
                                          r"checkpoint_every\)"):
        fit(Regression(dataclasses.replace(cfg, lr=0.1)), tmp_path / "s", resume=True)


class Scripted(Regression):
    """Validation values from a script, to check selection and early stopping exactly."""

    script = [3.0, 2.0, 2.5, 2.6, 1.0, 0.5]

    def evaluate(self, model, split, ctx):
        return {"mse": self.script[self.epoch]}


@pytest.mark.parametrize("mode,patience,best,epochs_done", [
    ("min", 2, 2, 4),        # 2.5 and 2.6 after the best 2.0: stop after epoch 4
    ("min", 3, 6, 6),        # patience outlasts the plateau: 1.0, 0.5 win
    ("max", 2, 4, 6),        # script below: best 3.0 at epoch 4, epochs 5-6 within patience
])
def test_selection_and_early_stopping(tmp_path, mode, patience, best, epochs_done):
    class T(Scripted):
        selection = Selection("val", "mse", mode)

    if mode == "max":
        T.script = [1.0, 2.0, 1.5, 3.0, 2.9, 2.8]  # best epoch 4; epochs 5, 6 within patience 2
    res = fit(T(ToyConfig(epochs=6, patience=patience)), tmp_path / "r", store=tmp_path / "store")
    s = res.summary
    assert s["best_epoch"] == best and s["epochs_done"] == epochs_done and s["complete"]
    assert s["early_stopped"] == (epochs_done < 6)
    assert read_metadata(res.published)["epoch"] == best
    if s["early_stopped"]:
        assert any("early stop after epoch 4" in n for n in s["notes"])
        again = fit(T(ToyConfig(epochs=6, patience=patience)), tmp_path / "r", resume=True,
                    store=tmp_path / "store")
        assert again.summary["epochs_done"] == 4 and again.summary["global_step"] == 48


def test_engine_options_are_validated():
    with pytest.raises(ConfigError, match="patience must be >= 1"):
        EngineOptions(epochs=1, patience=0)
    with pytest.raises(ConfigError, match="selection mode must be 'max' or 'min'"):
        Selection("val", "acc", "best")
