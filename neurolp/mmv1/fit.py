"""Fitting MMV1 models on the shared training engine, and the Table 5 pipeline.

:class:`MMV1Task` is one session × one variant as a :class:`~neurolp.train.engine.Task`: the
engine owns the loop (devices, AMP, DDP, checkpoints, exact resume, progress, early stopping),
the task supplies the windows, the step and the metrics:

* loss = Poisson NLL of the predicted counts (``poisson_nll_loss(log_input=False)``, mean over
  bins and neurons) + ``l1`` × mean |w| of the behaviour encoder's weight (Xu et al.: ``l1 = 1``);
* Adam (lr 2e-4 in the paper preset), batches drawn by a ``(seed, epoch)``-seeded permutation;
* after each epoch the validation windows give ``val_loss`` (Poisson NLL, no L1: what the authors
  selected and early-stopped on, patience 5) and ``val_cc`` (smoothed cc per validation stretch);
* the selected epoch's weights predict the test windows once, after training, and the paper's
  metrics are computed from those predictions (:mod:`neurolp.mmv1.metrics`).

:func:`run_fit` loops over sessions and variants, writes one engine run folder per pair
(``<out>/runs/<session>/<variant>/``, resumable) and the tables and figures of the whole run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurolp.errors import ConfigError
from neurolp.mmv1 import model as _model  # noqa: F401  (registers the mmv1 architecture)
from neurolp.mmv1.data import DataOptions, SessionData, load_session
from neurolp.mmv1.metrics import SMOOTH_BINS, evaluate_traces
from neurolp.train.engine import EngineContext, EngineOptions, Selection, StepOutput, Task

__all__ = ["PRESETS", "PAPER_VARIANTS", "MMV1Config", "MMV1Task", "make_config", "predict", "fit_session",
           "run_fit", "FitOutputs"]

PAPER_VARIANTS = ("lp2", "lp4", "lp8", "lp16", "base", "large")  # Table 5's columns, in its order

#: ``paper``: Xu et al.'s recipe (Table 5's set-up); ``quick``: a small network for CPU runs.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(channels=(128, 64, 32), hidden_size=512, dropout=0.5, batch_size=256, lr=2e-4,
                  epochs=50, patience=5),
    "quick": dict(channels=(16, 16, 8), hidden_size=64, dropout=0.2, batch_size=32, lr=1e-3,
                  epochs=6, patience=3),
}
_DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataOptions))


@dataclass
class MMV1Config:
    """One MMV1 fit: which data, which variant, the recipe; saved as the run's ``config.json``."""

    data: str = ""
    session: str = ""
    model: str = "base-mmv1"
    preset: str = "quick"
    # data: DataOptions' fields, flat, with its defaults
    video: str = DataOptions.video
    behav_mode: str = DataOptions.behav_mode
    seq_len: int = DataOptions.seq_len
    predict_offset: int = DataOptions.predict_offset
    min_rate_hz: float = DataOptions.min_rate_hz
    neurons: tuple[int, ...] | None = DataOptions.neurons
    nan: str = DataOptions.nan
    frame_norm: str = DataOptions.frame_norm
    frame_range: str = DataOptions.frame_range
    val_fraction: float = DataOptions.val_fraction
    bin_ms: float = DataOptions.bin_ms
    segments: tuple[int, ...] | None = DataOptions.segments
    # model
    channels: tuple[int, ...] = (16, 16, 8)
    hidden_size: int = 64
    dropout: float = 0.2
    shifter: bool = True
    # training
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1e-3
    l1: float = 1.0
    patience: int | None = 3
    seed: int = 0
    # metrics
    smooth_bins: int = SMOOTH_BINS
    across_joins: bool = False
    # runtime (may change on resume)
    device: str = "auto"
    amp: str = "auto"
    max_steps: int | None = None
    checkpoint_every: int = 0
    num_workers: int | None = None
    eval_batch_size: int | None = None
    progress: bool = True

    RUNTIME = ("data", "device", "amp", "max_steps", "checkpoint_every", "num_workers",
               "eval_batch_size", "progress")

    def data_options(self) -> DataOptions:
        return DataOptions(**{k: getattr(self, k) for k in _DATA_FIELDS}).validate()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MMV1Config":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown MMV1 config keys {unknown}")
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**d)

    def validate(self) -> "MMV1Config":
        from neurolp.models import parse_model_name
        from neurolp.utils.checks import check_choice, check_float, check_int

        self.data_options()
        name = parse_model_name(self.model)
        if name.arch != "mmv1":
            raise ConfigError(f"model {self.model!r} is not an MMV1 variant (expected <variant>-mmv1)")
        check_choice(self.preset, "preset", list(PRESETS), what="preset")
        check_int(self.epochs, "epochs", min=1)
        check_int(self.batch_size, "batch_size", min=1)
        check_float(self.lr, "lr", min=0, min_open=True)
        check_float(self.l1, "l1", min=0)
        check_float(self.dropout, "dropout", min=0, max=1, max_open=True)
        check_int(self.hidden_size, "hidden_size", min=1)
        check_int(self.smooth_bins, "smooth_bins", min=1)
        if not self.channels or any(int(c) < 1 for c in self.channels):
            raise ConfigError(f"channels must be positive integers, got {self.channels}")
        EngineOptions(epochs=self.epochs, seed=self.seed, device=self.device, amp=self.amp,
                      max_steps=self.max_steps, checkpoint_every=self.checkpoint_every,
                      patience=self.patience)
        return self


def make_config(preset: str = "quick", **overrides) -> MMV1Config:
    """A config from a preset (``paper`` or ``quick``), then ``overrides`` (``None`` values ignored)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return MMV1Config(preset=preset, **values).validate()


class _Keyed:
    """A window dataset indexed by the ``(epoch, index)`` keys of :class:`EpochBatchSampler`."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key):
        return self.ds[key[1] if isinstance(key, tuple) else key]


def _loader(ds, batch_size: int, workers: int, device) -> "torch.utils.data.DataLoader":
    from torch.utils.data import DataLoader

    # its own generator: creating an iterator must not draw from the global RNG (exact resume)
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=torch.device(device).type == "cuda", drop_last=False,
                      generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def predict(model: nn.Module, dataset, device="cpu", *, batch_size: int = 256, num_workers: int = 0,
            amp_dtype=None) -> np.ndarray:
    """Predicted counts for every window of ``dataset``, in order: [windows, neurons] (float64)."""
    from neurolp.train.evaluate import autocast_context

    was = model.training
    model.eval()
    out = []
    try:
        for frames, behav, shift, _ in _loader(dataset, batch_size, num_workers, device):
            with autocast_context(torch.device(device), amp_dtype):
                y = model(frames.to(device), behav.to(device), shift.to(device))
            out.append(y.float().cpu().numpy())
    finally:
        model.train(was)
    return np.concatenate(out).astype(np.float64)


def _poisson_nll(pred: np.ndarray, true: np.ndarray) -> float:
    """``poisson_nll_loss(log_input=False)`` (mean): ``pred − y·log(pred + 1e-8)``."""
    return float(np.mean(pred - true * np.log(pred + 1e-8)))


class MMV1Task(Task):
    """One session, one variant: the MMV1 model on the training engine."""

    command = "mmv1 fit"
    sample_unit = "windows"
    eval_splits = {"val": "val_"}
    selection = Selection("val", "loss", "min")
    runtime_fields = MMV1Config.RUNTIME

    def __init__(self, config: MMV1Config, session: SessionData | None = None):
        self.config = config.validate()
        self.session = session
        c = config
        self.options = EngineOptions(epochs=c.epochs, seed=c.seed, device=c.device, amp=c.amp,
                                     channels_last=False, checkpoint_every=c.checkpoint_every,
                                     max_steps=c.max_steps, patience=c.patience, progress=c.progress)

    # data
    def setup(self, ctx: EngineContext) -> None:
        from torch.utils.data import DataLoader

        from neurolp.train.data import EpochBatchSampler

        c, dist = self.config, ctx.dist
        if self.session is None or self.session.options != c.data_options():
            self.session = load_session(c.data, c.session, c.data_options())
        s = self.session
        ctx.notes += [n for n in s.notes if n not in ctx.notes]
        if c.batch_size % dist.world_size:
            raise ConfigError(f"batch size {c.batch_size} is not divisible by the {dist.world_size} "
                              "processes")
        per_rank = c.batch_size // dist.world_size
        self.sampler = EpochBatchSampler(len(s.train), per_rank, c.seed, rank=dist.rank,
                                         world=dist.world_size)
        workers = c.num_workers if c.num_workers is not None else (4 if ctx.device.type == "cuda" else 0)
        self.workers = workers
        self.loader = DataLoader(_Keyed(s.train), batch_sampler=self.sampler, num_workers=workers,
                                 pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0,
                                 generator=torch.Generator().manual_seed(c.seed))
        self.steps_per_epoch = self.sampler.steps_per_epoch

    def train_batches(self, epoch: int, start_step: int):
        self.sampler.set_epoch(epoch, start_step)
        return self.loader

    # model
    def model_kwargs(self) -> dict[str, Any]:
        c, s = self.config, self.session
        return dict(behav_dim=s.behav_dim, seq_len=c.seq_len, hidden_size=c.hidden_size,
                    channels=tuple(int(x) for x in c.channels), dropout=c.dropout, shifter=c.shifter,
                    frame_size=tuple(s.frame_size))

    def build_model(self, ctx: EngineContext) -> nn.Module:
        from neurolp.models import create_model

        self.model = create_model(self.config.model, num_classes=self.session.num_neurons,
                                  **self.model_kwargs())
        return self.model

    def build_optimizer(self, model: nn.Module):
        return torch.optim.Adam(model.parameters(), lr=self.config.lr)

    # step and metrics
    def training_step(self, model: nn.Module, batch, ctx: EngineContext) -> StepOutput:
        from neurolp.train.checkpoint import unwrap_model

        frames, behav, shift, y = (t.to(ctx.device, non_blocking=True) for t in batch)
        with ctx.autocast():
            pred = model(frames, behav, shift)
        nll = F.poisson_nll_loss(pred.float(), y, log_input=False)
        l1 = unwrap_model(model).behaviour_l1()
        loss = nll + self.config.l1 * l1
        n = len(y)
        return StepOutput(loss, n, {"loss": loss.detach().double() * n, "nll": nll.detach().double() * n})

    def train_metrics(self, stats: dict[str, float], n: float) -> dict[str, Any]:
        return {"train_loss": stats["loss"] / max(n, 1), "train_nll": stats["nll"] / max(n, 1)}

    def evaluate(self, model: nn.Module, split: str, ctx: EngineContext) -> dict[str, Any]:
        ds = getattr(self.session, split)
        c = self.config
        pred = predict(model, ds, ctx.device, batch_size=c.eval_batch_size or 2 * c.batch_size,
                       num_workers=self.workers, amp_dtype=ctx.amp_dtype)
        true = ds.targets()
        ev = evaluate_traces(pred, true, ds.segment_lengths(), window=c.smooth_bins)  # per segment
        return {"loss": _poisson_nll(pred, true), "cc": float(np.nanmean(ev["cc"].to_numpy())),
                "cc_raw": float(np.nanmean(ev["cc_raw"].to_numpy()))}

    # records
    def checkpoint_metadata(self) -> dict[str, Any]:
        s = self.session
        return {"dataset": f"mmv1-{s.name}", "classes": [f"neuron{int(n)}" for n in s.neurons],
                "mmv1": {"session": s.name, "neuron_ids": [int(n) for n in s.neurons],
                         "behaviour_features": s.behav_names, "data_options": s.options.to_dict(),
                         "model_kwargs": self.model_kwargs()}}

    def summarize(self, info: dict[str, Any]) -> dict[str, Any]:
        from neurolp.models import count_params

        best = info["best_metrics"] or {}
        return {"session": self.session.name, "model": self.config.model,
                "neurons": self.session.num_neurons, "params": count_params(self.model),
                "windows": {"train": len(self.session.train), "val": len(self.session.val),
                            "test": len(self.session.test)},
                "val_loss": best.get("val_loss"), "val_cc": best.get("val_cc"), **info}

    def epoch_message(self, row: dict[str, Any]) -> str:
        return (f"{self.session.name} {self.config.model} epoch {row['epoch']}/{self.config.epochs}  "
                f"loss {row['train_loss']:.4f}  val nll {row['val_loss']:.4f}  "
                f"val cc {row['val_cc']:.3f}  ({row['epoch_time_s']:.1f}s)")


@dataclass
class FitOutputs:
    """What one session × variant produced."""

    session: str
    variant: str
    neurons: Any                 # DataFrame: neuron, neuron_id, cc, mse, cc_raw, cc_shuffled
    pred: np.ndarray
    true: np.ndarray
    segment_lengths: list[int]
    summary: dict[str, Any]
    selected: str                # which weights predicted the test set
    run_dir: Path
    notes: list[str] = field(default_factory=list)


def fit_session(config: MMV1Config, out: str | Path, session: SessionData | None = None, *,
                resume: bool = False, store=None, publish: bool = False) -> FitOutputs | None:
    """Train one variant on one session through the engine, then score the selected weights on the
    test windows. Returns ``None`` on DDP ranks other than 0 (rank 0 scores)."""
    from neurolp.mmv1.metrics import shuffled_baseline
    from neurolp.models import parse_model_name
    from neurolp.train.checkpoint import load_weights
    from neurolp.train.engine import amp_dtype_for, fit
    from neurolp.utils.runtime import resolve_device

    task = MMV1Task(config, session)
    res = fit(task, out, resume=resume, store=store, publish=publish)
    if int(res.summary.get("world_size", 1)) > 1:
        import os

        if int(os.environ.get("RANK", "0")) != 0:
            return None
    model = res.model
    notes = list(res.notes)
    if res.best_checkpoint is not None:
        load_weights(model, res.best_checkpoint)
        selected = f"epoch {res.summary['best_epoch']} (lowest validation Poisson NLL)"
    else:
        selected = f"the weights at step {res.summary['global_step']} (stopped before an epoch ended)"
        notes.append(f"{config.session} {config.model}: no finished epoch; scored {selected}")
    s = task.session
    device = resolve_device(config.device)
    pred = predict(model.to(device), s.test, device, batch_size=config.eval_batch_size or 2 * config.batch_size,
                   amp_dtype=amp_dtype_for(config.amp, device))
    true = s.test.targets().astype(np.float64)
    lengths = s.test.segment_lengths()
    kw = dict(window=config.smooth_bins, across_joins=config.across_joins)
    ev = evaluate_traces(pred, true, lengths, **kw)
    ev["cc_shuffled"] = shuffled_baseline(pred, true, lengths, **kw, seed=config.seed)
    ev.insert(1, "neuron_id", s.neurons)
    variant = str(parse_model_name(config.model)).rsplit("-mmv1", 1)[0]
    return FitOutputs(s.name, variant, ev, pred, true, lengths, res.summary, selected, Path(out), notes)


def _nan_totals(s: SessionData) -> dict[str, int]:
    out: dict[str, int] = {}
    for per_key in s.nan_counts.values():
        for k, v in per_key.items():
            out[k] = out.get(k, 0) + v
    return out


def run_fit(data: str | Path, variants: Sequence[str], out: str | Path, *, sessions: Sequence[str] | None = None,
            config: MMV1Config | None = None, resume: bool = False, store=None, publish: bool = False,
            figures: bool = True, synthetic: dict | None = None, log=print):
    """Fit every variant on every session and write the Table 5 outputs into ``out``.

    Engine run folders go to ``out/runs/<session>/<variant>/`` as training proceeds (resumable with
    ``resume=True``); the tables, predictions and figures are written through a staging folder and
    appear only when every fit finished. Returns ``(neurons, sessions, table)`` DataFrames.
    """
    import os

    import pandas as pd

    from neurolp.mmv1.layout import list_sessions
    from neurolp.mmv1.metrics import format_table5, session_summary, table5
    from neurolp.utils.io import atomic_write, staged_output, write_csv, write_run_record

    base = config or make_config("quick")
    out = Path(out)
    names = list(sessions) if sessions else list_sessions(data)
    variants = list(dict.fromkeys(variants))
    rank0 = int(os.environ.get("RANK", "0")) == 0
    if not rank0:  # under torchrun, rank 0 reports
        log = lambda *_: None  # noqa: E731
    results: list[FitOutputs] = []
    described = {}
    for name in names:
        cfg0 = dataclasses.replace(base, data=str(data), session=name)
        sdata = load_session(data, name, cfg0.data_options())
        described[name] = sdata.describe()
        log(f"{name}: {sdata.num_neurons} of {len(sdata.rates_hz)} neurons, windows train "
            f"{len(sdata.train)} / val {len(sdata.val)} / test {len(sdata.test)}, "
            f"{sdata.behav_dim} behaviour features; NaN bins ({cfg0.nan}): "
            + (", ".join(f"{k} {v}" for k, v in _nan_totals(sdata).items()) or "none"))
        oracle_cc = None  # depends on the session only: computed at its first scored variant
        for v in variants:
            cfg = dataclasses.replace(cfg0, model=f"{v}-mmv1").validate()
            r = fit_session(cfg, out / "runs" / name / v, sdata, resume=resume, store=store, publish=publish)
            if r is None:
                continue
            if synthetic is not None:
                if oracle_cc is None:
                    from neurolp.mmv1.synthetic import oracle_counts

                    oracle = oracle_counts(data, name, sdata.test, sdata.neurons)
                    oracle_cc = evaluate_traces(oracle, r.true, r.segment_lengths, window=cfg.smooth_bins,
                                                across_joins=cfg.across_joins)["cc"].to_numpy()
                r.neurons["cc_oracle"] = oracle_cc.copy()
            results.append(r)
            log(f"  {v:>6}: cc {r.neurons['cc'].mean():.3f} (shuffled {r.neurons['cc_shuffled'].mean():.3f}), "
                f"MSE {r.neurons['mse'].mean():.4f}; {r.summary['epochs_done']} epoch(s), "
                f"selected {r.selected}")
    if not rank0:
        return None
    neurons = pd.concat([r.neurons.assign(session=r.session, variant=r.variant) for r in results],
                        ignore_index=True)
    first = ["session", "variant", "neuron", "cc", "mse"]
    neurons = neurons[first + [c for c in neurons.columns if c not in first]]
    per_session = session_summary(neurons)
    extra = neurons.groupby(["session", "variant"], sort=False).agg(
        cc_shuffled=("cc_shuffled", "mean"),
        **({"cc_oracle": ("cc_oracle", "mean")} if "cc_oracle" in neurons else {})).reset_index()
    per_session = per_session.merge(extra, on=["session", "variant"])
    info = pd.DataFrame([{"session": r.session, "variant": r.variant, "best_epoch": r.summary.get("best_epoch"),
                          "epochs_done": r.summary.get("epochs_done"), "val_loss": r.summary.get("val_loss"),
                          "val_cc": r.summary.get("val_cc"), "early_stopped": r.summary.get("early_stopped"),
                          "complete": r.summary.get("complete"), "global_step": r.summary.get("global_step"),
                          "train_time_s": r.summary.get("train_time_s"), "params": r.summary.get("params"),
                          "selected": r.selected} for r in results])
    per_session = per_session.merge(info, on=["session", "variant"])
    tidy = table5(per_session, variants)
    layout = format_table5(tidy)
    with staged_output(out) as stage:
        write_csv(neurons, stage / "mmv1_neurons.csv")
        write_csv(per_session, stage / "mmv1_sessions.csv")
        write_csv(tidy, stage / "table5_mmv1_long.csv")
        write_csv(layout, stage / "table5_mmv1.csv")
        for r in results:
            with atomic_write(stage / "predictions" / f"{r.session}__{r.variant}.npz") as fh:
                np.savez_compressed(fh, pred=r.pred, true=r.true, segment_lengths=np.array(r.segment_lengths),
                                    neuron_ids=r.neurons["neuron_id"].to_numpy())
        (stage / "data.json").write_text(json.dumps(described, indent=1, default=str) + "\n")
        if figures:
            from neurolp.mmv1.plots import plot_cc, plot_traces

            plot_cc(neurons, stage / "fig_mmv1_cc.png", variants=variants)
            plot_traces(results, stage / "fig_mmv1_traces.png",
                        window=base.smooth_bins, across_joins=base.across_joins)
        cfg = {**base.to_dict(), "data": str(data), "sessions": names, "variants": variants,
               "synthetic": synthetic}
        for k in ("session", "model"):
            cfg.pop(k, None)
        write_run_record(stage, "mmv1 fit", cfg, {"notes": [n for r in results for n in r.notes],
                                                  "smoothing": "across segment joins (authors)" if base.across_joins
                                                  else "within segments (edges: mean of existing bins)"})
    return neurons, per_session, layout
