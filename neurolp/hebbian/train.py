"""Layer-wise unsupervised (Hebbian) training, then a supervised head on the frozen features
(Manzali 2021, slides 35–36; biopytorch's ``bio_train`` with its off-by-one quirks fixed).

**Unsupervised phase.** Hebbian layers are trained one after the other ("sequential"): layer i sees
the output of the already-trained layers 1…i−1 (in eval mode). Per batch, ``training_step(x, lr)``
returns the convergence metric ``max_μ |Σ|W_μ|^p − 1|``. The learning rate follows a schedule:

* a number (constant);
* ``(start, end, speed)``: ``end − (end − start)·exp(−speed · batch / batches_per_epoch)``
  (the slides': convs ``(0.007, 1e-4, 0.8)``, linear ``(0.1, 0.005, 0.1)``);
* a callable ``batch -> lr``.

A layer stops after at most ``epochs`` epochs, when the metric at the end of an epoch is below
``threshold`` (converged; slides: 1e-2), or when it has not improved on its best for more than
``patience`` batches (slides: 10; ``None`` disables).

**Supervised phase.** The classifier (BatchNorm(affine=False) → Dropout → Linear) is trained by SGD
(momentum 0.9, lr 0.05, cosine annealing with warm restarts T₀ = 10, T_mult = 2, cross-entropy)
on the frozen features; the epoch with the best validation accuracy is kept and its test accuracy
reported. ``sgd{n}-amato`` models (no Hebbian layer) are trained the same way, end to end: the
control. Without augmentation the frozen features are computed once.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from neurolp.errors import ConfigError

__all__ = ["HebbianConfig", "PRESETS", "make_hebbian_config", "lr_schedule", "train_hebbian_layer",
           "train_unsupervised", "train_head", "evaluate", "HebbianResult", "run_hebbian", "config_dict"]

CONV_LR = (0.007, 1e-4, 0.8)    # slides p.36: start, end, decay speed λ (per epoch)
LINEAR_LR = (0.1, 0.005, 0.1)


@dataclass
class HebbianConfig:
    """Every knob of ``neurolp hebbian train``."""

    layers: int = 1                      # n: Hebbian layers (or SGD layers with supervised=True)
    supervised: bool = False             # train sgd{n}-amato end to end instead (the control)
    dataset: str = "digits"
    data_dir: str | None = None
    seed: int = 0
    batch_size: int = 64
    # unsupervised phase
    hebb_epochs: int = 10
    conv_lr: Any = CONV_LR
    linear_lr: Any = LINEAR_LR
    patience: int | None = 10            # batches without a new best metric (None or 0: never)
    threshold: float = 1e-2
    lebesgue_p: float | None = None      # None: the slides' Table 1 value for n layers
    ranking_param: int | None = None
    delta: float | None = None
    dropout: float | None = None
    step_norm: str | None = None         # None: per kernel for convs, global for the linear layer
    # supervised phase
    head_epochs: int = 150
    head_lr: float = 0.05
    momentum: float = 0.9
    restart_t0: int = 10
    restart_tmult: int = 2
    augment: bool | None = None          # None: on for CIFAR-10, off for digits (flips change digits)
    # data
    val_fraction: float = 0.1
    split_seed: int = 0
    max_train_samples: int | None = None
    device: str = "auto"
    preset: str = "slides"
    progress: bool = True

    def rule_overrides(self) -> dict:
        out = {"lebesgue_p": self.lebesgue_p, "ranking_param": self.ranking_param, "delta": self.delta,
               "dropout": self.dropout, "step_norm": self.step_norm}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def model_name(self) -> str:
        return f"{'sgd' if self.supervised else 'hebb'}{self.layers}-amato"


# slides: the CIFAR-10 hyper-parameters of slide 36 (625 batches an epoch). quick: digits-sized —
# 1,300 training images make 20 batches an epoch, so the slides' per-epoch decay (and a 10-batch
# patience) would stop the rule long before the weights approach the sphere: the conv schedule
# starts higher and decays 8× more slowly, no patience, and the head trains 30 epochs (10 + 20).
PRESETS: dict[str, dict] = {
    "slides": dict(hebb_epochs=10, conv_lr=CONV_LR, linear_lr=LINEAR_LR, patience=10, head_epochs=150),
    "quick": dict(hebb_epochs=10, conv_lr=(0.05, 1e-3, 0.1), linear_lr=LINEAR_LR, patience=None,
                  head_epochs=30),
}


def make_hebbian_config(preset: str = "slides", **overrides) -> HebbianConfig:
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset], "preset": preset}
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = HebbianConfig(**values)
    if not 1 <= cfg.layers <= 5:
        raise ConfigError(f"--layers must be 1..5 (the Amato network's layers), got {cfg.layers}")
    return cfg


def lr_schedule(spec, batches_per_epoch: int) -> Callable[[int], float]:
    """A learning-rate schedule ``batch -> lr`` from a number, ``(start, end, speed)`` or a callable."""
    if callable(spec):
        return spec
    if isinstance(spec, (int, float)):
        if spec <= 0:
            raise ConfigError(f"learning rate must be > 0, got {spec}")
        return lambda step: float(spec)
    if isinstance(spec, (tuple, list)) and len(spec) == 3:
        start, end, speed = map(float, spec)
        if start <= 0 or end <= 0 or speed < 0:
            raise ConfigError(f"schedule (start, end, speed) needs start, end > 0 and speed >= 0, got {spec}")
        n = max(int(batches_per_epoch), 1)
        return lambda step: end - (end - start) * math.exp(-speed * step / n)
    raise ConfigError(f"learning-rate schedule must be a number, (start, end, speed) or a callable, got {spec!r}")


def _batches(n: int, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(n, generator=generator)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


@torch.no_grad()
def train_hebbian_layer(layer: nn.Module, inputs: Callable[[torch.Tensor], torch.Tensor], n: int, *,
                        epochs: int, lr, batch_size: int = 64, patience: int | None = 10,
                        threshold: float = 1e-2, generator: torch.Generator | None = None,
                        progress: bool = False, desc: str = "hebbian") -> tuple[pd.DataFrame, str]:
    """Train one BioConv2d / BioLinear; ``inputs(idx)`` gives the layer's input for sample indices.

    Returns the per-batch history (epoch, batch, lr, convergence) and why it stopped
    (``"converged"``, ``"patience"`` or ``"epochs"``).
    """
    generator = generator or torch.Generator().manual_seed(0)
    bpe = math.ceil(n / batch_size)
    sched = lr_schedule(lr, bpe)
    rows, best, since, step, reason = [], math.inf, 0, 0, "epochs"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * bpe, desc=desc, unit="batch", leave=False)
    try:
        for epoch in range(epochs):
            metric = math.inf
            for idx in _batches(n, batch_size, generator):
                if len(idx) < 2:  # batch statistics need two samples
                    continue
                eta = sched(step)
                metric = layer.training_step(inputs(idx), eta)
                rows.append((epoch, step, eta, metric))
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(conv=f"{metric:.3g}", lr=f"{eta:.2g}")
                if metric < best:
                    best, since = metric, 0
                else:
                    since += 1
                if patience and since > patience:
                    reason = "patience"
                    break
            if reason == "patience":
                break
            if metric < threshold:
                reason = "converged"
                break
    finally:
        if bar is not None:
            bar.close()
    if not all(map(math.isfinite, (r[3] for r in rows))):
        raise ConfigError(f"{desc}: the Hebbian weights diverged (non-finite convergence metric); lower "
                          "the learning rate")
    return pd.DataFrame(rows, columns=["epoch", "batch", "lr", "convergence"]), reason


def train_unsupervised(model, x: torch.Tensor, cfg: HebbianConfig, device, generator=None) -> pd.DataFrame:
    """Train the Hebbian layers of an :class:`~neurolp.hebbian.model.AmatoNet` in order."""
    from neurolp.hebbian.data import augment_batch
    from neurolp.layers.hebbian import BioConv2d

    generator = generator or torch.Generator().manual_seed(cfg.seed)
    augment = _augment(cfg)
    tables = []
    for i, layer in enumerate(model.hebbian_layers()):
        model.eval()

        def inputs(idx, i=i):
            xb = x[idx].to(device, non_blocking=True)
            if augment:
                xb = augment_batch(xb, generator)
            return model.forward_features(xb, upto=i) if i else xb

        lr = cfg.conv_lr if isinstance(layer, BioConv2d) else cfg.linear_lr
        t0 = time.perf_counter()
        hist, reason = train_hebbian_layer(layer, inputs, len(x), epochs=cfg.hebb_epochs, lr=lr,
                                           batch_size=cfg.batch_size, patience=cfg.patience,
                                           threshold=cfg.threshold, generator=generator,
                                           progress=cfg.progress, desc=f"Hebbian layer {i + 1}")
        hist.insert(0, "layer", i + 1)
        hist["stopped"] = reason
        hist["seconds"] = time.perf_counter() - t0
        tables.append(hist)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["layer", "epoch", "batch", "lr", "convergence", "stopped", "seconds"])


def _augment(cfg: HebbianConfig) -> bool:
    return (cfg.dataset == "cifar10") if cfg.augment is None else bool(cfg.augment)


@torch.no_grad()
def _features(model, x: torch.Tensor, device, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    out = [model.pool(f) if (f := model.forward_features(x[i:i + batch_size].to(device))).dim() == 4 else f
           for i in range(0, len(x), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, device, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) of the whole model on ``(x, y)``."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
    return 100.0 * correct / max(len(x), 1)


def train_head(model, splits, cfg: HebbianConfig, device, generator=None) -> tuple[pd.DataFrame, dict]:
    """Supervised phase: the head on frozen Hebbian features, or everything for an SGD model."""
    from neurolp.hebbian.data import augment_batch

    generator = generator or torch.Generator().manual_seed(cfg.seed + 1)
    frozen = model.hebbian == model.depth
    augment = _augment(cfg)
    params = list(model.head.parameters()) if frozen else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.head_lr, momentum=cfg.momentum)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=cfg.restart_t0, T_mult=cfg.restart_tmult)
    xtr, ytr = splits.train
    cached = _features(model, xtr, device) if frozen and not augment else None
    val = splits.val if splits.val is not None else splits.test
    rows, best, best_state = [], -1.0, None
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.head_epochs, desc="supervised head" if frozen else "SGD", unit="epoch", leave=False)
    try:
        for epoch in range(cfg.head_epochs):
            model.train()
            if frozen:
                model.features.eval()
            loss_sum, correct, seen = 0.0, 0, 0
            for idx in _batches(len(xtr), cfg.batch_size, generator):
                if len(idx) < 2:
                    continue
                yb = ytr[idx].to(device)
                if cached is not None:
                    out = model.head(cached[idx])
                else:
                    xb = xtr[idx].to(device)
                    if augment:
                        xb = augment_batch(xb, generator, flip=splits.flip_ok)
                    out = model(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((out.argmax(1) == yb).sum())
                seen += len(idx)
            lr_now = opt.param_groups[0]["lr"]
            sched.step()
            val_acc = evaluate(model, *val, device)
            rows.append({"epoch": epoch + 1, "lr": lr_now, "train_loss": loss_sum / max(seen, 1),
                         "train_acc": 100.0 * correct / max(seen, 1), "val_acc": val_acc})
            if val_acc > best:
                best, best_state = val_acc, copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{rows[-1]['train_loss']:.3f}", val=f"{val_acc:.1f}")
    finally:
        if bar is not None:
            bar.close()
    hist = pd.DataFrame(rows)
    if best_state is not None:
        model.load_state_dict(best_state)
    best_epoch = int(hist.loc[hist["val_acc"].idxmax(), "epoch"]) if len(hist) else 0
    metrics = {"val_acc": best, "test_acc": evaluate(model, *splits.test, device), "best_epoch": best_epoch,
               "train_acc": float(hist.loc[best_epoch - 1, "train_acc"]) if len(hist) else float("nan")}
    return hist, metrics


@dataclass
class HebbianResult:
    model: nn.Module
    unsupervised: pd.DataFrame
    supervised: pd.DataFrame
    metrics: dict
    config: HebbianConfig
    classes: list[str]
    notes: list[str] = field(default_factory=list)


def run_hebbian(cfg: HebbianConfig) -> HebbianResult:
    """Build ``hebb{n}-amato`` (or ``sgd{n}-amato``), train it on ``cfg.dataset``, return everything."""
    from neurolp.hebbian.data import load_tensor_splits
    from neurolp.models import create_model
    from neurolp.utils import resolve_device, seed_everything

    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    splits = load_tensor_splits(cfg.dataset, cfg.data_dir, val_fraction=cfg.val_fraction,
                                split_seed=cfg.split_seed, max_train_samples=cfg.max_train_samples)
    kw = cfg.rule_overrides()
    if cfg.supervised:
        kw = {k: v for k, v in kw.items() if k == "dropout"}
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model_name, num_classes=len(splits.classes), image_size=32, **kw).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    unsup = train_unsupervised(model, splits.train[0], cfg, device, gen)
    t1 = time.perf_counter()
    sup, metrics = train_head(model, splits, cfg, device, gen)
    t2 = time.perf_counter()
    metrics.update({"unsupervised_seconds": t1 - t0, "supervised_seconds": t2 - t1,
                    "n_train": len(splits.train[0]), "n_val": 0 if splits.val is None else len(splits.val[0]),
                    "n_test": len(splits.test[0])})
    for layer_i, g in unsup.groupby("layer"):
        metrics[f"layer{layer_i}_convergence"] = float(g["convergence"].iloc[-1])
        metrics[f"layer{layer_i}_batches"] = int(len(g))
        metrics[f"layer{layer_i}_stopped"] = str(g["stopped"].iloc[0])
    return HebbianResult(model, unsup, sup, metrics, cfg, splits.classes, splits.notes)


def config_dict(cfg: HebbianConfig) -> dict:
    d = asdict(cfg)
    for k in ("conv_lr", "linear_lr"):
        if callable(d[k]):
            d[k] = repr(d[k])
    return d
