"""Image classification on the training engine: :func:`train` runs a
:class:`~neurolp.train.config.TrainConfig` to the end, checkpointing as it goes, and can resume
from any of its checkpoints.

The loop itself (devices, AMP, DDP, checkpoints, exact resume, selection, logs) is
:mod:`neurolp.train.engine`; this module is the classification :class:`ClassificationTask`:
timm/torchvision transforms with per-sample seeding, Mixup/CutMix, the paper's optimiser and
cosine schedule, top-1/top-5 evaluation on the validation and test splits, and selection of the
epoch with the best validation accuracy.

A run folder (``out``) holds::

    config.json       the resolved config (what `--resume` continues)
    run.json          command, config, versions, git commit; updated with the summary at the end
    state.pt          everything resuming needs (weights, optimiser, scheduler, scaler, EMA, RNG
                      states per process, data position, history); torch.load(weights_only=True)
    last.safetensors  the model after the latest finished epoch        (kind "last")
    best.safetensors  the model of the epoch with the best validation accuracy (kind "best")
    metrics.csv, metrics.jsonl   one row per epoch: lr, train loss/acc, val and test loss/acc/top5
    bad_samples.csv   unreadable image files skipped with on_bad_sample="skip" (path, reason)
    summary.json      selected epoch, its val and test accuracy, the published checkpoint

A finished run copies ``best.safetensors`` into the checkpoint store (kind "final"), where
``neurolp rsa --model NAME`` and :func:`~neurolp.train.store.find_checkpoint` find it.

Resume equivalence: the data order and augmentation are functions of (seed, epoch, index) (see
:mod:`neurolp.train.data`), and ``state.pt`` restores the Python/NumPy/torch RNG streams that Mixup,
CutMix and stochastic depth draw from, so on CPU a resumed run reproduces an uninterrupted one
bit for bit (tests check this). State is saved at every epoch end, every ``checkpoint_every``
steps and when ``max_steps`` stops a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.train.config import RUNTIME_FIELDS, TrainConfig
from neurolp.train.engine import (BEST, LAST, STATE, EngineContext, EngineOptions, Selection,
                                  StepOutput, Task, TrainResult, fit)

__all__ = ["train", "preflight", "TrainResult", "ClassificationTask", "default_out_dir"]
# STATE, LAST, BEST: the run-folder file names (re-exported from the engine)
BAD_SAMPLES = "bad_samples.csv"   # unreadable images skipped under on_bad_sample="skip"


def default_out_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.model}_{config.dataset}_s{config.seed}"


# --- helpers ------------------------------------------------------------------------------------
def _num_workers(config: TrainConfig, device: torch.device) -> int:
    if config.num_workers is not None:
        return config.num_workers
    import os

    return min(8, os.cpu_count() or 1) if device.type == "cuda" else 0


def _resolve(config: TrainConfig) -> TrainConfig:
    from neurolp.models import parse_model_name
    from neurolp.train.data import resolve_image_size

    config = config.replace(model=str(parse_model_name(config.model)))
    return config.replace(image_size=resolve_image_size(config)).validate()


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"


# --- checks before any data is read -----------------------------------------------------------------
def preflight(config: TrainConfig, out: str | Path, *, resume: bool = False, store=None,
              publish: bool = True) -> TrainConfig:
    """Check everything that can go wrong before data is read and the first step is taken: the
    config's ranges, the device, the run folder and the store (probed for writing), and that the
    model (on the meta device: no memory), its optimiser, schedule, transforms and Mixup can be
    built from the options. Raises :class:`ConfigError` naming the option; returns the resolved
    config."""
    from neurolp.models import check_input_size, create_model
    from neurolp.train.augment import build_mixup, build_optimizer, build_scheduler, build_transforms
    from neurolp.train.checkpoint import DEFAULT_NORMALIZATION
    from neurolp.train.data import check_dataset_present, dataset_info
    from neurolp.train.hooks import check_trainable
    from neurolp.train.store import default_store
    from neurolp.utils.checks import check_output_dir
    from neurolp.utils.runtime import resolve_device

    config = _resolve(config)
    resolve_device(config.device)
    out = Path(out)
    check_output_dir(out, "--out")
    if publish:
        check_output_dir(store if store is not None else default_store(), "--store")
    if (out / STATE).exists() and not resume:
        raise ConfigError(f"{out} already holds a training run ({STATE}); pass --resume to "
                          "continue it, or choose another --out")
    check_dataset_present(config)
    info = dataset_info(config.dataset)
    n_classes = info.num_classes or 2
    try:
        with torch.device("meta"):
            model = create_model(config.model, num_classes=n_classes, image_size=config.image_size,
                                 drop_path_rate=config.drop_path if _has_drop_path(config) else 0.0,
                                 convert_kwargs=config.convert_kwargs or None, **config.model_kwargs)
        check_input_size(model, config.image_size, config.model)
        check_trainable(model)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to build is a bad option
        raise ConfigError(f"cannot build {config.model} with --model-kwargs "
                          f"{json.dumps(config.model_kwargs)} and --convert-kwargs "
                          f"{json.dumps(config.convert_kwargs)} ({type(exc).__name__}: "
                          f"{_first_line(exc)}); fix or drop those options") from None
    try:
        from timm.optim import list_optimizers  # timm >= 1.0.12
    except ImportError:
        list_optimizers = None
    if list_optimizers is not None and config.opt.lower() not in list_optimizers():
        from neurolp.utils.checks import did_you_mean

        raise ConfigError(f"--opt {config.opt!r} is not a timm optimizer"
                          f"{did_you_mean(config.opt, list_optimizers())}; use e.g. adamw, sgd, adam, "
                          "lamb or lion (`python -c 'import timm.optim; print(timm.optim.list_optimizers())'`)")
    try:
        optimizer = build_optimizer(model, config)
        build_scheduler(optimizer, config, 1)
    except Exception as exc:  # noqa: BLE001 - timm raises assorted errors for unknown optimisers
        raise ConfigError(f"--opt {config.opt!r} cannot be built ({type(exc).__name__}: "
                          f"{_first_line(exc)}); use a timm optimizer such as adamw, sgd, adam, lamb "
                          "or lion") from None
    try:
        norm = DEFAULT_NORMALIZATION
        build_transforms(config, info, config.image_size, norm["mean"], norm["std"])
    except Exception as exc:  # noqa: BLE001 - timm asserts on malformed policy strings
        raise ConfigError(f"--auto-augment {config.auto_augment!r} is not a timm augmentation policy "
                          f"({type(exc).__name__}: {_first_line(exc)}); use e.g. "
                          "rand-m9-mstd0.5-inc1 (RandAugment), augmix-m5-w3, trivialaugment or "
                          "original") from None
    build_mixup(config, n_classes)
    return config


def _has_drop_path(config: TrainConfig) -> bool:
    from neurolp.models import ARCHS, parse_model_name

    return ARCHS[parse_model_name(config.model).arch].has_drop_path


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "no message"



# --- the classification task ----------------------------------------------------------------------
class ClassificationTask(Task):
    """Image classification of a registry model on a :mod:`neurolp.train.data` dataset."""

    command = "train"
    runtime_fields = RUNTIME_FIELDS
    sample_unit = "images"

    def __init__(self, config: TrainConfig):
        self.config = config
        self.options = EngineOptions(
            epochs=config.epochs, seed=config.seed, device=config.device, amp=config.amp,
            channels_last=config.channels_last, compile=config.compile,
            checkpoint_every=config.checkpoint_every, max_steps=config.max_steps,
            clip_grad=config.clip_grad, ema_decay=config.ema_decay if config.ema else None,
            patience=config.patience, progress=config.progress)

    def config_differences(self, saved: dict[str, Any]) -> dict[str, tuple]:
        return TrainConfig.from_dict(saved).differences(self.config)

    # data
    def setup(self, ctx: EngineContext) -> None:
        from torch.utils.data import DataLoader

        from neurolp.train.augment import build_loss, build_mixup, build_transforms
        from neurolp.train.checkpoint import DEFAULT_NORMALIZATION
        from neurolp.train.data import Augmented, EpochBatchSampler, load_splits, shard
        from neurolp.train.evaluate import eval_loader

        cfg, dist, device = self.config, ctx.dist, ctx.device
        splits = self.splits = load_splits(cfg)
        ctx.notes += splits.notes
        self.bad_log = ctx.out / BAD_SAMPLES
        splits.log_bad_samples(self.bad_log)
        self.norm = {k: list(v) for k, v in DEFAULT_NORMALIZATION.items()}
        train_tf, eval_tf = build_transforms(cfg, splits.info, cfg.image_size, self.norm["mean"],
                                             self.norm["std"])
        train_ds = Augmented(splits.train, train_tf, seed=cfg.seed)
        if cfg.batch_size % dist.world_size:
            raise ConfigError(f"batch size {cfg.batch_size} is not divisible by the "
                              f"{dist.world_size} processes")
        per_rank = cfg.batch_size // dist.world_size
        if cfg.mixing and per_rank % 2:
            raise ConfigError(f"Mixup/CutMix need an even batch per process, got {per_rank}")
        self.sampler = EpochBatchSampler(len(train_ds), per_rank, cfg.seed, rank=dist.rank,
                                         world=dist.world_size)
        workers = _num_workers(cfg, device)
        self.loader = DataLoader(train_ds, batch_sampler=self.sampler, num_workers=workers,
                                 pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                                 generator=torch.Generator().manual_seed(cfg.seed))
        eval_bs = cfg.eval_batch_size or 2 * per_rank
        self.loaders = {
            "val": (eval_loader(shard(Augmented(splits.val, eval_tf), dist.rank, dist.world_size),
                                eval_bs, workers, device) if splits.val is not None else None),
            "test": (eval_loader(shard(Augmented(splits.test, eval_tf), dist.rank, dist.world_size),
                                 eval_bs, workers, device) if cfg.eval_test else None),
        }
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.selection = Selection("val", "acc", "max") if splits.val is not None else None
        self.mixup, self.criterion = build_mixup(cfg, splits.num_classes), build_loss(cfg)

    def train_batches(self, epoch: int, start_step: int):
        self.sampler.set_epoch(epoch, start_step)
        return self.loader

    # model
    def build_model(self, ctx: EngineContext) -> nn.Module:
        from neurolp.models import ARCHS, create_model, parse_model_name

        cfg = self.config
        arch = ARCHS[parse_model_name(cfg.model).arch]
        drop_path = cfg.drop_path if arch.has_drop_path else 0.0
        if cfg.drop_path and not arch.has_drop_path:
            ctx.notes.append(f"{arch.name} has no stochastic depth: drop_path={cfg.drop_path} not used")
        self.model = create_model(cfg.model, num_classes=self.splits.num_classes,
                                  image_size=cfg.image_size, drop_path_rate=drop_path,
                                  convert_kwargs=cfg.convert_kwargs or None, **cfg.model_kwargs)
        return self.model

    def build_optimizer(self, model: nn.Module):
        from neurolp.train.augment import build_optimizer

        return build_optimizer(model, self.config)

    def build_scheduler(self, optimizer, steps_per_epoch: int):
        from neurolp.train.augment import build_scheduler

        return build_scheduler(optimizer, self.config, steps_per_epoch)

    # step and metrics
    def training_step(self, model: nn.Module, batch, ctx: EngineContext) -> StepOutput:
        x, y = batch
        x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
        if ctx.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = y
        if self.mixup is not None:
            x, target = self.mixup(x, y)
        with ctx.autocast():
            logits = model(x)
            loss = self.criterion(logits, target)
        stats = {"loss": loss.detach().double() * len(y)}
        if self.mixup is None:
            stats["correct"] = (logits.detach().argmax(1) == y).sum()
        return StepOutput(loss, len(y), stats)

    def train_metrics(self, stats: dict[str, float], n: float) -> dict[str, Any]:
        return {"train_loss": stats["loss"] / max(n, 1),
                "train_acc": None if self.mixup is not None
                else 100.0 * stats.get("correct", 0.0) / max(n, 1)}

    def evaluate(self, model: nn.Module, split: str, ctx: EngineContext) -> dict[str, Any]:
        from neurolp.train.evaluate import evaluate

        loader = self.loaders.get(split)
        if loader is None:
            return {"loss": None, "acc": None, "top5": None}
        res = evaluate(model, loader, ctx.device, amp_dtype=ctx.amp_dtype,
                       channels_last=ctx.channels_last, dist=ctx.dist)
        return {"loss": res["loss"], "acc": res["acc"], "top5": res["top5"]}

    # records
    def checkpoint_metadata(self) -> dict[str, Any]:
        return {"dataset": self.config.dataset, "classes": self.splits.classes,
                "normalization": self.norm, "split_sizes": self.splits.sizes()}

    def summarize(self, info: dict[str, Any]) -> dict[str, Any]:
        from neurolp.models import count_params

        cfg, best, last = self.config, info["best_metrics"] or {}, info["last_metrics"] or {}
        bad = self.splits.bad_samples()
        if bad:
            info["notes"].append(f"skipped {len(bad)} unreadable image file(s) (on_bad_sample=skip; "
                                 f"listed in {self.bad_log}), e.g. {next(iter(bad))}")
        return {
            "model": cfg.model, "dataset": cfg.dataset, "seed": cfg.seed,
            "image_size": cfg.image_size, "params": count_params(self.model),
            "complete": info["complete"], "epochs_done": info["epochs_done"],
            "global_step": info["global_step"], "selected_on": info["selected_on"],
            "best_epoch": info["best_epoch"], "val_acc": best.get("val_acc"),
            "test_acc": best.get("test_acc"), "last_epoch_test_acc": last.get("test_acc"),
            "early_stopped": info["early_stopped"], "published": info["published"],
            "best_checkpoint": info["best_checkpoint"], "split_sizes": self.splits.sizes(),
            "train_time_s": info["train_time_s"], "world_size": info["world_size"],
            "notes": info["notes"],
        }

    def epoch_message(self, row: dict[str, Any]) -> str:
        return (f"epoch {row['epoch']}/{self.config.epochs}  loss {row['train_loss']:.4f}  "
                f"val {_fmt(row['val_acc'])}%  test {_fmt(row['test_acc'])}%  "
                f"({row['epoch_time_s']:.1f}s)")


def train(config: TrainConfig, out: str | Path | None = None, *, resume: bool = False,
          store: str | Path | None = None, publish: bool = True,
          on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train ``config.model`` on ``config.dataset``; checkpoint to ``out``; publish to ``store``.

    Args:
        config: the run's :class:`TrainConfig` (see :func:`~neurolp.train.config.make_config`).
        out: run folder (default ``runs/<model>_<dataset>_s<seed>``). A folder that already holds
            a run is continued only with ``resume=True``.
        resume: continue from ``out/state.pt`` (starts fresh if there is none yet). The config
            must match the saved one except for runtime fields (device, workers, max_steps, ...).
        store: checkpoint store (default :func:`~neurolp.train.store.default_store`).
        publish: copy the selected model into the store when the run finishes.
        on_step: called with the global step after every optimiser step (progress hooks, tests).

    Under ``torchrun`` every process calls this; rank 0 writes the files.
    """
    config = _resolve(config)
    out = Path(out) if out else default_out_dir(config)
    config = preflight(config, out, resume=resume, store=store, publish=publish)
    return fit(ClassificationTask(config), out, resume=resume, store=store, publish=publish,
               on_step=on_step)
