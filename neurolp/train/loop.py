"""The training loop: :func:`train` runs a :class:`~neurolp.train.config.TrainConfig` to the end,
checkpointing as it goes, and can resume from any of its checkpoints.

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
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.train.config import RUNTIME_FIELDS, TrainConfig

__all__ = ["train", "preflight", "TrainResult", "default_out_dir"]

STATE, LAST, BEST = "state.pt", "last.safetensors", "best.safetensors"
BAD_SAMPLES = "bad_samples.csv"   # unreadable images skipped under on_bad_sample="skip"


@dataclass
class TrainResult:
    out_dir: Path
    config: TrainConfig
    model: nn.Module                      # the weights at the end of training (not the selection)
    history: Any                          # pandas DataFrame, one row per epoch
    summary: dict[str, Any]
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    published: Path | None = None
    complete: bool = False
    notes: list[str] = field(default_factory=list)


def default_out_dir(config: TrainConfig) -> Path:
    return Path("runs") / f"{config.model}_{config.dataset}_s{config.seed}"


# --- RNG state (per process) ------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached": float(cached)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


# --- helpers ------------------------------------------------------------------------------------
def _amp_dtype(config: TrainConfig, device: torch.device):
    if config.amp == "none" or (config.amp == "auto" and device.type != "cuda"):
        return None
    if config.amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("amp=fp16 needs CUDA; use amp=bf16 or none on CPU")
        return torch.float16
    if config.amp == "auto" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


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


def _write_logs(out: Path, history: list[dict]) -> None:
    import pandas as pd

    from neurolp.utils.io import atomic_write_text, write_csv

    write_csv(pd.DataFrame(history), out / "metrics.csv")
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _check_finite(loss_sum, step: int, epoch: int) -> None:
    """Refuse to checkpoint diverged weights (checked where state is saved: no per-step sync)."""
    if not math.isfinite(float(loss_sum)):
        raise FloatingPointError(f"the training loss became {float(loss_sum)} before step {step} "
                                 f"(epoch {epoch + 1}); the last checkpoint was kept. Lower --lr, "
                                 "set --clip-grad, or check the data")


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


# --- the loop -------------------------------------------------------------------------------------
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
    from neurolp.train.distributed import init_distributed, shutdown_distributed
    from neurolp.utils.runtime import resolve_device

    config = _resolve(config)
    out = Path(out) if out else default_out_dir(config)
    config = preflight(config, out, resume=resume, store=store, publish=publish)
    device = resolve_device(config.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        return _train(config, out, resume, store, publish, on_step, device, dist)
    finally:
        shutdown_distributed(dist)


def _train(cfg: TrainConfig, out: Path, resume: bool, store, publish: bool, on_step, device, dist):
    import pandas as pd
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from neurolp.models import ARCHS, count_params, create_model, parse_model_name
    from neurolp.train.augment import (build_loss, build_mixup, build_optimizer, build_scheduler,
                                       build_transforms)
    from neurolp.train.checkpoint import DEFAULT_NORMALIZATION, load_state, save_checkpoint, save_state
    from neurolp.train.data import Augmented, EpochBatchSampler, load_splits, shard
    from neurolp.train.distributed import all_reduce_sum, barrier, broadcast_object
    from neurolp.train.evaluate import autocast_context, eval_loader, evaluate
    from neurolp.train.hooks import after_optimizer_step, epoch_metrics
    from neurolp.train.store import publish_checkpoint
    from neurolp.utils.io import atomic_write_text, write_run_record
    from neurolp.utils.runtime import seed_everything

    t_start = time.time()
    notes: list[str] = []
    main = dist.is_main
    state = None
    if (out / STATE).exists():
        if not resume:
            raise ConfigError(f"{out} already holds a training run ({STATE}); pass --resume to "
                              "continue it, or choose another --out")
        state = load_state(out / STATE)
        saved = TrainConfig.from_dict(state["config"])
        diffs = saved.differences(cfg)
        if diffs:
            listed = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in
                               ((k, *v) for k, v in diffs.items()))
            raise ConfigError(f"cannot resume {out}: the config differs from the saved run "
                              f"({listed}); only runtime options ({', '.join(RUNTIME_FIELDS)}) may "
                              "change on resume")
        if state.get("world_size", 1) != dist.world_size:
            notes.append(f"resumed with {dist.world_size} process(es) instead of "
                         f"{state.get('world_size', 1)}: the data order differs from an "
                         "uninterrupted run")
    elif resume:
        notes.append(f"nothing to resume in {out} yet: started from scratch")

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    amp_dtype = _amp_dtype(cfg, device)
    channels_last = cfg.channels_last if cfg.channels_last is not None else device.type == "cuda"

    # data
    seed_everything(cfg.seed)
    splits = load_splits(cfg)
    notes += splits.notes
    splits.log_bad_samples(out / BAD_SAMPLES)
    norm = {k: list(v) for k, v in DEFAULT_NORMALIZATION.items()}
    train_tf, eval_tf = build_transforms(cfg, splits.info, cfg.image_size, norm["mean"], norm["std"])
    train_ds = Augmented(splits.train, train_tf, seed=cfg.seed)
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"batch size {cfg.batch_size} is not divisible by the {dist.world_size} "
                          "processes")
    per_rank = cfg.batch_size // dist.world_size
    if cfg.mixing and per_rank % 2:
        raise ConfigError(f"Mixup/CutMix need an even batch per process, got {per_rank}")
    sampler = EpochBatchSampler(len(train_ds), per_rank, cfg.seed, rank=dist.rank,
                                world=dist.world_size)
    workers = _num_workers(cfg, device)
    loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))
    eval_bs = cfg.eval_batch_size or 2 * per_rank
    val_loader = (eval_loader(shard(Augmented(splits.val, eval_tf), dist.rank, dist.world_size),
                              eval_bs, workers, device) if splits.val is not None else None)
    test_loader = eval_loader(shard(Augmented(splits.test, eval_tf), dist.rank, dist.world_size),
                              eval_bs, workers, device)
    steps_per_epoch = sampler.steps_per_epoch

    # model, optimiser, schedule
    arch = ARCHS[parse_model_name(cfg.model).arch]
    drop_path = cfg.drop_path if arch.has_drop_path else 0.0
    if cfg.drop_path and not arch.has_drop_path:
        notes.append(f"{arch.name} has no stochastic depth: drop_path={cfg.drop_path} not used")
    seed_everything(cfg.seed)
    model = create_model(cfg.model, num_classes=splits.num_classes, image_size=cfg.image_size,
                         drop_path_rate=drop_path, convert_kwargs=cfg.convert_kwargs or None,
                         **cfg.model_kwargs)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    mixup, criterion = build_mixup(cfg, splits.num_classes), build_loss(cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = None
    if cfg.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    if dist.enabled:
        seed_everything(cfg.seed + 1000 * dist.rank)  # distinct mixing / drop-path streams per rank

    history: list[dict] = []
    best: dict[str, Any] = {}
    epoch, step_in_epoch, global_step = 0, 0, 0
    acc = {"loss": 0.0, "correct": 0.0, "n": 0.0, "time": 0.0}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        pos = state["position"]
        epoch, step_in_epoch, global_step = pos["epoch"], pos["step_in_epoch"], pos["global_step"]
        if main:
            acc = dict(state["accumulators"])
        history, best = list(state["history"]), dict(state["best"])
        rngs = state["rng"]
        if dist.rank < len(rngs):
            _set_rng_state(rngs[dist.rank])
        if sampler.steps_per_epoch != state.get("steps_per_epoch", steps_per_epoch):
            notes.append("steps per epoch changed since the checkpoint")

    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
        write_run_record(out, "train", cfg.to_dict(), {"status": "running", "notes": notes})

    fwd = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        fwd = torch.compile(fwd)
    published_model = (lambda: ema.module) if ema is not None else (lambda: model)

    base_meta = {"dataset": cfg.dataset, "classes": splits.classes, "normalization": norm,
                 "seed": cfg.seed, "config": cfg.to_dict(), "split_sizes": splits.sizes(),
                 "selected_on": "val" if val_loader is not None else "last epoch",
                 "run_dir": str(out.resolve()), "notes": notes, "world_size": dist.world_size}

    def snapshot(position: dict[str, int], accumulators: dict[str, float]) -> None:
        rngs = [_rng_state()]
        if dist.enabled:
            import torch.distributed as tdist

            rngs = [None] * dist.world_size
            tdist.all_gather_object(rngs, _rng_state())
        if main:
            save_state(out / STATE, {
                "config": cfg.to_dict(), "position": position, "accumulators": accumulators,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "rng": rngs,
                "history": history, "best": best, "world_size": dist.world_size,
                "steps_per_epoch": steps_per_epoch, "published": best.get("published")})

    def reduced(a: dict[str, float]) -> dict[str, float]:
        keys = ("loss", "correct", "n")
        vals = all_reduce_sum([float(a[k]) for k in keys], dist, device)
        return {**a, **dict(zip(keys, vals))}

    stopped = cfg.max_steps is not None and global_step >= cfg.max_steps
    while epoch < cfg.epochs and not stopped:
        sampler.set_epoch(epoch, step_in_epoch)
        fwd.train()
        loss_t = torch.zeros((), dtype=torch.float64, device=device)
        correct_t = torch.zeros((), dtype=torch.float64, device=device)
        n_epoch = 0
        t0 = time.time()
        bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, leave=False, dynamic_ncols=True,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and main))
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            target = y
            if mixup is not None:
                x, target = mixup(x, y)
            with autocast_context(device, amp_dtype):
                logits = fwd(x)
                loss = criterion(logits, target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            after_optimizer_step(model, global_step + 1)
            global_step += 1
            step_in_epoch += 1
            scheduler.step_update(num_updates=global_step)
            if ema is not None:
                ema.update(model, step=global_step)
            loss_t += loss.detach().double() * len(y)
            if mixup is None:
                correct_t += (logits.detach().argmax(1) == y).sum()
            n_epoch += len(y)
            bar.update(1)
            if on_step is not None:
                on_step(global_step)
            stopped = cfg.max_steps is not None and global_step >= cfg.max_steps
            mid_epoch = step_in_epoch < steps_per_epoch
            if mid_epoch and (stopped or (cfg.checkpoint_every
                                          and global_step % cfg.checkpoint_every == 0)):
                _check_finite(loss_t, global_step, epoch)
                partial = {"loss": acc["loss"] + float(loss_t), "correct": acc["correct"]
                           + float(correct_t), "n": acc["n"] + n_epoch,
                           "time": acc["time"] + time.time() - t0}
                snapshot({"epoch": epoch, "step_in_epoch": step_in_epoch,
                          "global_step": global_step}, reduced(partial) if dist.enabled else partial)
            if stopped:
                break
        bar.close()
        if step_in_epoch < steps_per_epoch:
            break  # stopped by max_steps in the middle of an epoch (state saved above)

        # epoch end: evaluate, select on val, checkpoint, log
        if dist.enabled:  # BatchNorm statistics are per process: evaluate and save rank 0's
            import torch.distributed as tdist

            for buf in list(model.buffers()) + (list(ema.module.buffers()) if ema is not None else []):
                tdist.broadcast(buf, 0)
        _check_finite(loss_t, global_step, epoch)
        tot = reduced({"loss": acc["loss"] + float(loss_t), "correct": acc["correct"]
                       + float(correct_t), "n": acc["n"] + n_epoch,
                       "time": acc["time"] + time.time() - t0})
        net = published_model()
        kw = dict(amp_dtype=amp_dtype, channels_last=channels_last, dist=dist)
        val = evaluate(net, val_loader, device, **kw) if val_loader is not None else {}
        test = evaluate(net, test_loader, device, **kw) if cfg.eval_test else {}
        row = {"epoch": epoch + 1, "step": global_step, "lr": optimizer.param_groups[0]["lr"],
               "train_loss": tot["loss"] / max(tot["n"], 1),
               "train_acc": None if mixup is not None else 100.0 * tot["correct"] / max(tot["n"], 1),
               "val_loss": val.get("loss"), "val_acc": val.get("acc"), "val_top5": val.get("top5"),
               "test_loss": test.get("loss"), "test_acc": test.get("acc"),
               "test_top5": test.get("top5"), "epoch_time_s": tot["time"],
               "train_images_per_s": tot["n"] / tot["time"] if tot["time"] > 0 else None,
               **epoch_metrics(model)}
        if ema is not None:
            row["val_acc_raw"] = (evaluate(model, val_loader, device, **kw)["acc"]
                                  if val_loader is not None else None)
        history.append(row)
        epoch, step_in_epoch = epoch + 1, 0
        acc = {"loss": 0.0, "correct": 0.0, "n": 0.0, "time": 0.0}
        meta = {**base_meta, "epoch": epoch, "step": global_step, "metrics": row,
                "complete": epoch == cfg.epochs}
        improved = (val_loader is None or not best
                    or row["val_acc"] > best["val_acc"])
        if main:
            save_checkpoint(out / LAST, net, meta, kind="last")
            if improved:
                save_checkpoint(out / BEST, net, meta, kind="best")
        if improved:
            best = {"epoch": epoch, "val_acc": row["val_acc"], "test_acc": row["test_acc"],
                    "val_loss": row["val_loss"]}
        snapshot({"epoch": epoch, "step_in_epoch": 0, "global_step": global_step}, acc)
        if main:
            _write_logs(out, history)
            if cfg.progress:
                tqdm.write(f"epoch {epoch}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                           f"val {_fmt(row['val_acc'])}%  test {_fmt(row['test_acc'])}%  "
                           f"({row['epoch_time_s']:.1f}s)")
        stopped = cfg.max_steps is not None and global_step >= cfg.max_steps

    complete = epoch >= cfg.epochs
    bad = splits.bad_samples()
    if bad:
        notes.append(f"skipped {len(bad)} unreadable image file(s) (on_bad_sample=skip; listed in "
                     f"{out / BAD_SAMPLES}), e.g. {next(iter(bad))}")
    published = Path(best["published"]) if best.get("published") else None
    # every rank takes the same branch (snapshot gathers RNG states from all of them)
    want = broadcast_object(complete and publish and published is None and (out / BEST).exists(), dist)
    if want:
        path = str(publish_checkpoint(out / BEST, store)) if main else None
        published = Path(broadcast_object(path, dist))
        best["published"] = str(published)
        snapshot({"epoch": epoch, "step_in_epoch": 0, "global_step": global_step}, acc)
    last_row = history[-1] if history else {}
    summary = {
        "model": cfg.model, "dataset": cfg.dataset, "seed": cfg.seed, "image_size": cfg.image_size,
        "params": count_params(model), "complete": complete, "epochs_done": epoch,
        "global_step": global_step, "selected_on": base_meta["selected_on"],
        "best_epoch": best.get("epoch"), "val_acc": best.get("val_acc"),
        "test_acc": best.get("test_acc"), "last_epoch_test_acc": last_row.get("test_acc"),
        "published": str(published) if published else None,
        "best_checkpoint": str(out / BEST) if best else None, "split_sizes": splits.sizes(),
        "train_time_s": time.time() - t_start, "world_size": dist.world_size, "notes": notes,
    }
    if main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
        write_run_record(out, "train", cfg.to_dict(),
                         {"status": "complete" if complete else "stopped", "summary": summary})
    barrier(dist)
    return TrainResult(out, cfg, model, pd.DataFrame(history), summary,
                       out / BEST if (out / BEST).exists() else None,
                       out / LAST if (out / LAST).exists() else None, published, complete, notes)

