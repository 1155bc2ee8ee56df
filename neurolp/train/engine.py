"""The task-agnostic training engine: one loop, its checkpoints and its resume, for every task.

Image classification (:func:`neurolp.train.train`), Sudoku (:mod:`neurolp.sudoku`) and any other
task differ in their data, step function, loss, metrics and selection rule; everything else is
shared and lives here: devices and mixed precision, DDP, the optimiser step (grad scaling,
clipping, model hooks, the learning-rate schedule, an optional EMA of the weights), progress bars,
``metrics.csv`` / ``metrics.jsonl``, model checkpoints (safetensors + JSON metadata), exact resume
from ``state.pt``, ``max_steps`` / ``checkpoint_every``, selection of the best epoch on a validation
metric with optional early stopping, and publishing the selected model to the checkpoint store.

A run folder (``out``) holds::

    config.json       the task's resolved config (what `--resume` continues)
    run.json          command, config, versions, git commit; updated with the summary at the end
    state.pt          everything resuming needs (weights, optimiser, scheduler, scaler, EMA, RNG
                      states per process, data position, running sums, history, selection);
                      read with torch.load(weights_only=True)
    last.safetensors  the model after the latest finished epoch      (kind "last")
    best.safetensors  the model of the selected epoch                 (kind "best")
    metrics.csv, metrics.jsonl   one row per epoch
    summary.json      selected epoch, its metrics, the published checkpoint

**The Task protocol.** Subclass :class:`Task` and supply:

* ``config`` — an object with ``to_dict()`` (JSON-able); saved in ``config.json`` / ``state.pt``;
  ``runtime_fields`` names the keys that may change on resume (device, max_steps, ...);
  override :meth:`Task.config_differences` if a saved config needs normalising first.
* ``options`` — an :class:`EngineOptions` (epochs, seed, device, amp, max_steps, checkpoint_every,
  clip_grad, ema_decay, patience, progress, ...).
* :meth:`Task.setup` — load the data (called once, after seeding with ``options.seed``); set
  ``steps_per_epoch``; append human notes to ``ctx.notes``.
* :meth:`Task.build_model` — the model (built with :func:`neurolp.models.create_model`, so that
  checkpoints rebuild it); called right after seeding with ``options.seed`` again.
* :meth:`Task.build_optimizer` and, optionally, :meth:`Task.build_scheduler` (a timm scheduler
  stepped with ``step_update(num_updates=global_step)`` or a torch scheduler stepped per
  optimiser step with ``step()``).
* :meth:`Task.train_batches` ``(epoch, start_step)`` — the batches of one epoch from batch
  ``start_step`` on. **The order must be a function of (seed, epoch, index)** (e.g.
  :class:`~neurolp.train.data.EpochBatchSampler`), so that a resumed run sees the same batches as an
  uninterrupted one; anything random inside a batch must draw from a generator seeded the same way
  or from the global RNGs (whose states ``state.pt`` restores).
* :meth:`Task.training_step` ``(model, batch, ctx)`` — move the batch to ``ctx.device``, run the
  forward pass and the loss under ``ctx.autocast()``, and return a :class:`StepOutput`: the loss to
  back-propagate, the number of samples, and running sums to accumulate over the epoch (include
  ``"loss"``: the loss summed over the batch; it is checked for NaN before any state is saved).
  The engine does the backward pass and the optimiser step.
* :meth:`Task.train_metrics` — the epoch's training columns from the summed ``stats`` (and ``n``).
* :meth:`Task.evaluate` ``(model, split)`` — a dict of metrics of one split (the model is in eval
  mode under ``no_grad``); ``eval_splits`` maps each split evaluated every epoch to its column
  prefix (default ``{"val": "val_", "test": "test_"}``). A value may be ``None`` (not evaluated).
* ``selection`` — a :class:`Selection` (split, metric, ``"max"``/``"min"``) choosing the epoch
  whose weights become ``best.safetensors`` and get published; ``None`` selects the last epoch.
  With ``options.patience`` the run stops after that many epochs without improvement.
* :meth:`Task.checkpoint_metadata` — task metadata for every checkpoint (``dataset``, ``classes``,
  ``normalization``, ...; see :func:`~neurolp.train.checkpoint.save_checkpoint`).
* optionally :meth:`Task.summarize` (the ``summary.json`` fields) and :meth:`Task.epoch_message`
  (the line printed after each epoch).

Resume equivalence: the data order is a function of (seed, epoch, index) and ``state.pt`` restores
the Python / NumPy / torch RNG streams, so on CPU a resumed run reproduces an uninterrupted one bit
for bit (tests check this). State is saved at every epoch end, every ``checkpoint_every`` steps
and when ``max_steps`` stops a run. Under ``torchrun`` every process calls :func:`fit`; rank 0
writes the files.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from neurolp.errors import ConfigError

__all__ = ["Task", "EngineOptions", "EngineContext", "StepOutput", "Selection", "TrainResult",
           "fit", "amp_dtype_for", "STATE", "LAST", "BEST"]

STATE, LAST, BEST = "state.pt", "last.safetensors", "best.safetensors"


# --- what tasks hand the engine ------------------------------------------------------------------
@dataclass
class EngineOptions:
    """The loop's knobs (a task builds these from its own config)."""

    epochs: int
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"                      # auto (bf16 on CUDA, none on CPU), bf16, fp16, none
    channels_last: bool | None = None      # default: on CUDA
    compile: bool = False
    checkpoint_every: int = 0              # also save state every N optimiser steps
    max_steps: int | None = None           # stop (resumably) after this many steps in total
    clip_grad: float | None = None         # clip the global gradient norm
    ema_decay: float | None = None         # keep an EMA of the weights, evaluate/select/publish it
    patience: int | None = None            # stop after this many epochs without improvement
    progress: bool = True

    def __post_init__(self):
        checks = [(self.epochs >= 1, "epochs must be >= 1"),
                  (self.checkpoint_every >= 0, "checkpoint_every must be >= 0"),
                  (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
                  (self.clip_grad is None or self.clip_grad > 0, "clip_grad must be > 0"),
                  (self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay must be in (0, 1)"),
                  (self.patience is None or self.patience >= 1, "patience must be >= 1"),
                  (self.amp in ("auto", "bf16", "fp16", "none"), "amp must be auto, bf16, fp16 or none")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"invalid training options: {msg}")


@dataclass(frozen=True)
class Selection:
    """Select the epoch with the best ``metric`` of ``split`` (``mode`` ``"max"`` or ``"min"``)."""

    split: str
    metric: str
    mode: str = "max"

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise ConfigError(f"selection mode must be 'max' or 'min', got {self.mode!r}")

    def better(self, new: float, old: float) -> bool:
        return new > old if self.mode == "max" else new < old


@dataclass
class StepOutput:
    """What one training step returns: the loss to back-propagate, the batch size, and sums to
    accumulate over the epoch (tensors or numbers; ``"loss"`` should be the batch's summed loss)."""

    loss: torch.Tensor
    n: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class EngineContext:
    """Runtime facts a task needs: device, mixed precision, memory format, DDP, output folder."""

    device: torch.device
    dist: Any                       # neurolp.train.distributed.DistInfo
    amp_dtype: torch.dtype | None
    channels_last: bool
    out: Path
    options: EngineOptions
    notes: list[str] = field(default_factory=list)

    def autocast(self):
        """Mixed-precision context for forward pass and loss (a no-op without AMP)."""
        from neurolp.train.evaluate import autocast_context

        return autocast_context(self.device, self.amp_dtype)

    @property
    def is_main(self) -> bool:
        return self.dist.is_main


@dataclass
class TrainResult:
    out_dir: Path
    config: Any
    model: nn.Module                      # the weights at the end of training (not the selection)
    history: Any                          # pandas DataFrame, one row per epoch
    summary: dict[str, Any]
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    published: Path | None = None
    complete: bool = False
    notes: list[str] = field(default_factory=list)


class Task:
    """Base class of a training task (see the module docstring for the protocol).

    Subclasses set ``config``, ``options``, ``command`` and ``steps_per_epoch`` (in :meth:`setup`)
    and implement the methods that raise ``NotImplementedError``.
    """

    command: str = "train"                 # the run record's command name
    runtime_fields: tuple[str, ...] = ()   # config keys that may change on resume
    sample_unit: str = "samples"           # column train_<unit>_per_s
    eval_splits: Mapping[str, str] = {"val": "val_", "test": "test_"}
    selection: Selection | None = None
    config: Any = None
    options: EngineOptions
    steps_per_epoch: int = 0

    # --- data and model ------------------------------------------------------------------------
    def setup(self, ctx: EngineContext) -> None:
        raise NotImplementedError

    def build_model(self, ctx: EngineContext) -> nn.Module:
        raise NotImplementedError

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        raise NotImplementedError

    def build_scheduler(self, optimizer, steps_per_epoch: int):
        return None

    def train_batches(self, epoch: int, start_step: int) -> Iterable:
        raise NotImplementedError

    # --- step and metrics ----------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch, ctx: EngineContext) -> StepOutput:
        raise NotImplementedError

    def train_metrics(self, stats: dict[str, float], n: float) -> dict[str, Any]:
        """Training columns of the epoch row (default: ``train_loss`` = summed loss / n)."""
        return {"train_loss": stats.get("loss", float("nan")) / max(n, 1)}

    def evaluate(self, model: nn.Module, split: str, ctx: EngineContext) -> dict[str, Any]:
        raise NotImplementedError

    # --- records -------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def config_differences(self, saved: dict[str, Any]) -> dict[str, tuple]:
        """``{key: (saved, now)}`` for non-runtime config entries that changed since ``saved``."""
        now = self.config_dict()
        out = {}
        for k in list(now) + [k for k in saved if k not in now]:
            if k in self.runtime_fields:
                continue
            a, b = saved.get(k), now.get(k)
            if a != b:
                out[k] = (a, b)
        return out

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {}

    def summarize(self, info: dict[str, Any]) -> dict[str, Any]:
        """The ``summary.json`` fields; ``info`` holds the engine's (see :func:`fit`)."""
        return info

    def epoch_message(self, row: dict[str, Any]) -> str:
        sel = self.selection
        msg = f"epoch {row['epoch']}/{self.options.epochs}  loss {row.get('train_loss', float('nan')):.4f}"
        if sel is not None:
            col = self.eval_splits.get(sel.split, f"{sel.split}_") + sel.metric
            v = row.get(col)
            msg += f"  {col} {'-' if v is None else f'{v:.4g}'}"
        return msg + f"  ({row['epoch_time_s']:.1f}s)"


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
def amp_dtype_for(amp: str, device: torch.device):
    """The autocast dtype for an ``amp`` setting on ``device`` (``None``: full precision)."""
    if amp == "none" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("amp=fp16 needs CUDA; use amp=bf16 or none on CPU")
        return torch.float16
    if amp == "auto" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _write_logs(out: Path, history: list[dict]) -> None:
    import pandas as pd

    from neurolp.utils.io import atomic_write_text, write_csv

    write_csv(pd.DataFrame(history), out / "metrics.csv")
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))


def _check_finite(loss_sum, step: int, epoch: int) -> None:
    """Refuse to checkpoint diverged weights (checked where state is saved: no per-step sync)."""
    if loss_sum is not None and not math.isfinite(float(loss_sum)):
        raise FloatingPointError(f"the training loss became {float(loss_sum)} before step {step} "
                                 f"(epoch {epoch + 1}); the last checkpoint was kept. Lower --lr, "
                                 "set --clip-grad, or check the data")


def _legacy_best(best: dict, selection: Selection | None) -> dict:
    """Selection records of states written before the engine (classification: val_acc keys)."""
    if not best or "value" in best:
        return best
    col = "val_acc" if selection is None else f"{selection.split}_{selection.metric}"
    metrics = {k: v for k, v in best.items() if k not in ("epoch", "published")}
    out = {"epoch": best.get("epoch"), "value": best.get(col), "metrics": metrics}
    if best.get("published"):
        out["published"] = best["published"]
    return out


def _scheduler_step(scheduler, global_step: int) -> None:
    if scheduler is None:
        return
    if hasattr(scheduler, "step_update"):  # timm: per optimiser update
        scheduler.step_update(num_updates=global_step)
    else:                                   # torch.optim.lr_scheduler, stepped per update
        scheduler.step()


# --- the loop -------------------------------------------------------------------------------------
def fit(task: Task, out: str | Path, *, resume: bool = False, store: str | Path | None = None,
        publish: bool = True, on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train ``task`` into the run folder ``out``; publish the selected model to ``store``.

    Args:
        task: a :class:`Task`.
        out: run folder. A folder that already holds a run is continued only with ``resume=True``.
        resume: continue from ``out/state.pt`` (starts fresh if there is none yet). The task's
            config must match the saved one except for its ``runtime_fields``.
        store: checkpoint store (default :func:`~neurolp.train.store.default_store`).
        publish: copy the selected model into the store when the run finishes.
        on_step: called with the global step after every optimiser step (progress hooks, tests).

    The summary (``summary.json``, ``TrainResult.summary``) is :meth:`Task.summarize` of the
    engine's fields: ``complete``, ``early_stopped``, ``epochs_done``, ``global_step``,
    ``selected_on``, ``selection_metric``, ``best_epoch``, ``best_value``, ``best_metrics`` (the
    selected epoch's row), ``last_metrics``, ``published``, ``best_checkpoint``, ``train_time_s``,
    ``world_size``, ``notes``.
    """
    from neurolp.train.distributed import init_distributed, shutdown_distributed
    from neurolp.utils.runtime import resolve_device

    device = resolve_device(task.options.device)
    dist = init_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        return _fit(task, Path(out), resume, store, publish, on_step, device, dist)
    finally:
        shutdown_distributed(dist)


def _fit(task: Task, out: Path, resume: bool, store, publish: bool, on_step, device, dist):
    import pandas as pd
    from tqdm.auto import tqdm

    from neurolp.train.checkpoint import load_state, save_checkpoint, save_state
    from neurolp.train.distributed import all_reduce_sum, barrier, broadcast_object
    from neurolp.train.hooks import after_optimizer_step, epoch_metrics
    from neurolp.train.store import publish_checkpoint
    from neurolp.utils.io import atomic_write_text, write_run_record
    from neurolp.utils.runtime import seed_everything

    opts = task.options
    t_start = time.time()
    notes: list[str] = []
    main = dist.is_main
    state = None
    if (out / STATE).exists():
        if not resume:
            raise ConfigError(f"{out} already holds a training run ({STATE}); pass --resume to "
                              "continue it, or choose another --out")
        state = load_state(out / STATE)
        diffs = task.config_differences(state["config"])
        if diffs:
            listed = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in
                               ((k, *v) for k, v in diffs.items()))
            raise ConfigError(f"cannot resume {out}: the config differs from the saved run "
                              f"({listed}); only runtime options ({', '.join(task.runtime_fields)}) "
                              "may change on resume")
        if state.get("world_size", 1) != dist.world_size:
            notes.append(f"resumed with {dist.world_size} process(es) instead of "
                         f"{state.get('world_size', 1)}: the data order differs from an "
                         "uninterrupted run")
    elif resume:
        notes.append(f"nothing to resume in {out} yet: started from scratch")

    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
    amp_dtype = amp_dtype_for(opts.amp, device)
    channels_last = opts.channels_last if opts.channels_last is not None else device.type == "cuda"
    ctx = EngineContext(device, dist, amp_dtype, channels_last, out, opts, notes)

    # data, model, optimiser, schedule
    seed_everything(opts.seed)
    task.setup(ctx)
    steps_per_epoch = int(task.steps_per_epoch)
    if steps_per_epoch < 1:
        raise ConfigError("the task has no training steps per epoch (training set smaller than "
                          "one batch?)")
    seed_everything(opts.seed)
    model = task.build_model(ctx)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = task.build_optimizer(model)
    scheduler = task.build_scheduler(optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = None
    if opts.ema_decay is not None:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=opts.ema_decay)
    if dist.enabled:
        seed_everything(opts.seed + 1000 * dist.rank)  # distinct random streams per rank

    selection = task.selection
    sel_col = (task.eval_splits.get(selection.split, f"{selection.split}_") + selection.metric
               if selection is not None else None)
    history: list[dict] = []
    best: dict[str, Any] = {}
    epoch, step_in_epoch, global_step = 0, 0, 0
    early_stopped = False
    acc: dict[str, float] = {"n": 0.0, "time": 0.0}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        pos = state["position"]
        epoch, step_in_epoch, global_step = pos["epoch"], pos["step_in_epoch"], pos["global_step"]
        if main:
            acc = dict(state["accumulators"])
        history, best = list(state["history"]), _legacy_best(dict(state["best"]), selection)
        early_stopped = bool(state.get("early_stopped", False))
        rngs = state["rng"]
        if dist.rank < len(rngs):
            _set_rng_state(rngs[dist.rank])
        if steps_per_epoch != state.get("steps_per_epoch", steps_per_epoch):
            notes.append("steps per epoch changed since the checkpoint")

    config_dict = task.config_dict()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(config_dict, indent=2) + "\n")
        write_run_record(out, task.command, config_dict, {"status": "running", "notes": notes})

    fwd = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if opts.compile:
        fwd = torch.compile(fwd)
    published_model = (lambda: ema.module) if ema is not None else (lambda: model)
    selected_on = selection.split if selection is not None else "last epoch"
    base_meta = {**task.checkpoint_metadata(), "seed": opts.seed, "config": config_dict,
                 "selected_on": selected_on, "run_dir": str(out.resolve()), "notes": notes,
                 "world_size": dist.world_size}

    def snapshot(position: dict[str, int], accumulators: dict[str, float]) -> None:
        rngs = [_rng_state()]
        if dist.enabled:
            import torch.distributed as tdist

            rngs = [None] * dist.world_size
            tdist.all_gather_object(rngs, _rng_state())
        if main:
            save_state(out / STATE, {
                "config": config_dict, "position": position, "accumulators": accumulators,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None, "rng": rngs,
                "history": history, "best": best, "world_size": dist.world_size,
                "steps_per_epoch": steps_per_epoch, "published": best.get("published"),
                "early_stopped": early_stopped})

    def reduced(a: dict[str, float]) -> dict[str, float]:
        keys = sorted(k for k in a if k != "time")
        vals = all_reduce_sum([float(a[k]) for k in keys], dist, device)
        return {**a, **dict(zip(keys, vals))}

    def totals(sums: dict[str, torch.Tensor], n_epoch: int, t0: float) -> dict[str, float]:
        tot = dict(acc)
        for k, v in sums.items():
            tot[k] = tot.get(k, 0.0) + float(v)
        tot["n"] = tot.get("n", 0.0) + n_epoch
        tot["time"] = tot.get("time", 0.0) + time.time() - t0
        return tot

    def stop_reached() -> bool:
        return opts.max_steps is not None and global_step >= opts.max_steps

    stopped = stop_reached()
    while epoch < opts.epochs and not stopped and not early_stopped:
        batches = task.train_batches(epoch, step_in_epoch)
        fwd.train()
        sums: dict[str, torch.Tensor] = {}
        n_epoch = 0
        t0 = time.time()
        bar = tqdm(total=steps_per_epoch, initial=step_in_epoch, leave=False, dynamic_ncols=True,
                   desc=f"epoch {epoch + 1}/{opts.epochs}", disable=not (opts.progress and main))
        for batch in batches:
            res = task.training_step(fwd, batch, ctx)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(res.loss).backward()
            if opts.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), opts.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            after_optimizer_step(model, global_step + 1)
            global_step += 1
            step_in_epoch += 1
            _scheduler_step(scheduler, global_step)
            if ema is not None:
                ema.update(model, step=global_step)
            for k, v in res.stats.items():
                if k not in sums:
                    sums[k] = torch.zeros((), dtype=torch.float64, device=device)
                sums[k] += v.detach().double() if torch.is_tensor(v) else float(v)
            n_epoch += int(res.n)
            bar.update(1)
            if on_step is not None:
                on_step(global_step)
            stopped = stop_reached()
            mid_epoch = step_in_epoch < steps_per_epoch
            if mid_epoch and (stopped or (opts.checkpoint_every
                                          and global_step % opts.checkpoint_every == 0)):
                _check_finite(sums.get("loss"), global_step, epoch)
                partial = totals(sums, n_epoch, t0)
                snapshot({"epoch": epoch, "step_in_epoch": step_in_epoch,
                          "global_step": global_step}, reduced(partial) if dist.enabled else partial)
            if stopped:
                break
        bar.close()
        if step_in_epoch < steps_per_epoch:
            break  # stopped by max_steps in the middle of an epoch (state saved above)

        # epoch end: evaluate, select, checkpoint, log
        if dist.enabled:  # BatchNorm statistics are per process: evaluate and save rank 0's
            import torch.distributed as tdist

            for buf in list(model.buffers()) + (list(ema.module.buffers()) if ema is not None else []):
                tdist.broadcast(buf, 0)
        _check_finite(sums.get("loss"), global_step, epoch)
        tot = reduced(totals(sums, n_epoch, t0))
        net = published_model()
        evals: dict[str, Any] = {}
        for split, prefix in task.eval_splits.items():
            evals.update({prefix + k: v for k, v in _evaluate(task, net, split, ctx).items()})
        row = {"epoch": epoch + 1, "step": global_step, "lr": optimizer.param_groups[0]["lr"],
               **task.train_metrics({k: v for k, v in tot.items() if k not in ("n", "time")},
                                    tot["n"]),
               **evals, "epoch_time_s": tot["time"],
               f"train_{task.sample_unit}_per_s": tot["n"] / tot["time"] if tot["time"] > 0 else None,
               **epoch_metrics(model)}
        if ema is not None:
            row[f"{sel_col or 'val_acc'}_raw"] = (
                _evaluate(task, model, selection.split, ctx).get(selection.metric)
                if selection is not None else None)
        history.append(row)
        epoch, step_in_epoch = epoch + 1, 0
        acc = {"n": 0.0, "time": 0.0}
        meta = {**base_meta, "epoch": epoch, "step": global_step, "metrics": row,
                "complete": epoch == opts.epochs}
        value = row.get(sel_col) if sel_col is not None else None
        improved = (value is None or not best or best.get("value") is None
                    or selection.better(value, best["value"]))
        if main:
            save_checkpoint(out / LAST, net, meta, kind="last")
            if improved:
                save_checkpoint(out / BEST, net, meta, kind="best")
        if improved:
            best = {"epoch": epoch, "value": value, "metrics": dict(row)}
        elif (opts.patience is not None and epoch < opts.epochs
              and epoch - best["epoch"] >= opts.patience):
            early_stopped = True
            notes.append(f"early stop after epoch {epoch}: no better {sel_col} for "
                         f"{opts.patience} epoch(s) (best: epoch {best['epoch']})")
        snapshot({"epoch": epoch, "step_in_epoch": 0, "global_step": global_step}, acc)
        if main:
            _write_logs(out, history)
            if opts.progress:
                tqdm.write(task.epoch_message(row))
        stopped = stop_reached()

    complete = epoch >= opts.epochs or early_stopped
    published = Path(best["published"]) if best.get("published") else None
    # every rank takes the same branch (snapshot gathers RNG states from all of them)
    want = broadcast_object(complete and publish and published is None and (out / BEST).exists(), dist)
    if want:
        path = str(publish_checkpoint(out / BEST, store)) if main else None
        published = Path(broadcast_object(path, dist))
        best["published"] = str(published)
        snapshot({"epoch": epoch, "step_in_epoch": 0, "global_step": global_step}, acc)
    info = {
        "complete": complete, "early_stopped": early_stopped, "epochs_done": epoch,
        "global_step": global_step, "selected_on": selected_on, "selection_metric": sel_col,
        "selection_mode": selection.mode if selection is not None else None,
        "best_epoch": best.get("epoch"), "best_value": best.get("value"),
        "best_metrics": best.get("metrics"), "last_metrics": history[-1] if history else None,
        "published": str(published) if published else None,
        "best_checkpoint": str(out / BEST) if best else None,
        "train_time_s": time.time() - t_start, "world_size": dist.world_size, "notes": notes,
    }
    summary = task.summarize(info)
    if main:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
        write_run_record(out, task.command, config_dict,
                         {"status": "complete" if complete else "stopped", "summary": summary})
    barrier(dist)
    return TrainResult(out, task.config, model, pd.DataFrame(history), summary,
                       out / BEST if (out / BEST).exists() else None,
                       out / LAST if (out / LAST).exists() else None, published, complete, notes)


def _evaluate(task: Task, model: nn.Module, split: str, ctx: EngineContext) -> dict[str, Any]:
    """``task.evaluate`` in eval mode under ``no_grad``, restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return dict(task.evaluate(model, split, ctx))
    finally:
        model.train(was_training)
