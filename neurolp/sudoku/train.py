"""Training SudokuCNN variants on the engine (paper §5, Fig. 4b, App. A.5).

The harness follows the official code (``jeakwon/lpconv:sudoku``): input ``digit/9 − 0.5`` on
``[1, 9, 9]``, target ``solution − 1``, cross-entropy over all 81 cells, Adam (lr 1e-4), batch 100,
an 80/20 train/test split with ``train_test_split(test_size=0.2, random_state=42)`` (so the 1M CSV
splits exactly as there), and p clipped at ≥ 2 for Lp variants (App. A.5: here ``p_min = 2`` with
the projection after every optimiser step). Variants (registry names ``{variant}-sudokucnn``):

* ``base``   — 3×3 convs;
* ``large``  — 7×7 convs, no mask;
* ``lp2`` / ``lp16`` — 7×7 Lp-convs, p_init 2 / 16, C and p trainable;
* ``lp256f`` — 7×7 Lp-convs, p = 256, C and p frozen (the paper's †, a 3×3 conv in disguise).

As in the official code every conv is converted, the 1×1 head too (to 3×3), and the enlarged
kernels keep the default initialisation around the copied centre (``init="random_surround"``).

Deliberate differences, each a config field: a validation split carved from the training 80 %
(``val_fraction``) selects the published epoch (the official code had only train/test), and the
held-out evaluation per epoch can be capped (``eval_puzzles``, ``iterative_puzzles``) for speed.
``metrics.csv`` has one row per epoch with the held-out (test) metrics unprefixed — ``loss,
cell_accuracy, blank_accuracy, row_validity, column_validity, box_validity, puzzle_validity,
oneshot_solved, iterative_solved`` — and the validation metrics prefixed ``val_``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from neurolp.errors import ConfigError
from neurolp.utils.config import ConfigMixin, config_field
from neurolp.train.engine import EngineContext, EngineOptions, Selection, StepOutput, Task, TrainResult, fit

__all__ = ["SudokuConfig", "SUDOKU_PRESETS", "VARIANTS", "make_sudoku_config", "train_sudoku",
           "SudokuTask", "sudoku_model", "load_split", "model_name"]

from neurolp.sudoku.grid import VARIANTS  # noqa: E402  (torch-free, for the CLI)
PUZZLES_FILE = "puzzles.csv"


_f = config_field


@dataclass
class SudokuConfig(ConfigMixin):
    """Every knob of a Sudoku training run (``neurolp sudoku train`` options mirror these)."""

    _what = "Sudoku training"

    variant: str = _f("lp2", "model variant: base, large, lp{p} (e.g. lp2, lp16), lp{p}f (e.g. lp256f)")
    depth: int = _f(10, "number of Conv2dSame blocks (paper: 10)")
    width: int = _f(256, "channels per block (paper: 256)")
    p_min: float = _f(2.0, "floor on p of Lp variants (paper App. A.5: p >= 2)")
    init: str = _f("random_surround", "enlarged-kernel init: random_surround (official), zero_surround, fresh")
    preset: str = _f("quick", "the preset the defaults came from (quick or paper)")
    # data
    data: str | None = _f(None, "puzzle CSV (quizzes,solutions), e.g. the 1M-Sudoku sudoku.csv")
    generate: int | None = _f(None, "generate this many puzzles instead (saved as puzzles.csv in the run)")
    blanks: str = _f("40-60", "blanks per generated puzzle (a number or a range LO-HI)")
    data_seed: int = _f(0, "seed of the puzzle generator")
    max_puzzles: int | None = _f(None, "use only the first N puzzles of the data")
    test_fraction: float = _f(0.2, "held-out fraction (official harness: 0.2)")
    split_seed: int = _f(42, "seed of the train/test split (official harness: 42)")
    val_fraction: float = _f(0.02, "fraction of the training part held out for epoch selection")
    eval_puzzles: int | None = _f(None, "evaluate at most this many held-out puzzles per epoch (default all)")
    val_puzzles: int | None = _f(None, "evaluate at most this many validation puzzles per epoch")
    iterative_puzzles: int = _f(200, "puzzles solved iteratively per epoch (0: skip)")
    # optimisation
    epochs: int = _f(20, "training epochs (official: 20)")
    batch_size: int = _f(100, "batch size (official: 100)")
    lr: float = _f(1e-4, "Adam learning rate (paper: 1e-4)")
    patience: int | None = _f(None, "early stopping: epochs without a better validation cell accuracy")
    seed: int = _f(0, "seed of model init and data order")
    # runtime (may change on resume)
    device: str = _f("auto", "auto, cpu, cuda or cuda:N", runtime=True)
    amp: str = _f("auto", "mixed precision: auto (bf16 on CUDA), bf16, fp16 or none", runtime=True)
    compile: bool = _f(False, "torch.compile the model", runtime=True)
    eval_batch_size: int = _f(500, "evaluation batch size", runtime=True)
    checkpoint_every: int = _f(0, "also save state every N steps", runtime=True)
    max_steps: int | None = _f(None, "stop (resumably) after this many steps in total", runtime=True)
    progress: bool = _f(True, "show progress bars", runtime=True)

    def validate(self) -> SudokuConfig:
        from neurolp.models import parse_model_name
        from neurolp.sudoku.generate import parse_blanks

        spec = parse_model_name(model_name(self.variant))
        parse_blanks(self.blanks)
        checks = [
            (self.preset in SUDOKU_PRESETS, f"preset must be one of {', '.join(SUDOKU_PRESETS)}"),
            ((self.data is None) != (self.generate is None),
             "give exactly one of data (a puzzle CSV) or generate (a number of puzzles)"),
            (self.depth >= 1 and self.width >= 1, "depth and width must be >= 1"),
            (self.p_min >= 1, "p_min must be >= 1"),
            (self.init in ("random_surround", "zero_surround", "fresh"),
             "init must be random_surround, zero_surround or fresh"),
            (self.generate is None or self.generate >= 10, "generate must be >= 10"),
            (self.max_puzzles is None or self.max_puzzles >= 10, "max_puzzles must be >= 10"),
            (0 < self.test_fraction < 1, "test_fraction must be in (0, 1)"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1)"),
            (self.eval_puzzles is None or self.eval_puzzles >= 1, "eval_puzzles must be >= 1"),
            (self.val_puzzles is None or self.val_puzzles >= 1, "val_puzzles must be >= 1"),
            (self.iterative_puzzles >= 0, "iterative_puzzles must be >= 0"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"invalid Sudoku training config: {msg}")
        if spec.variant == "lp" and spec.p_init < self.p_min and not spec.frozen:
            raise ConfigError(f"variant {self.variant} starts below p_min = {self.p_min:g}")
        return self


RUNTIME_FIELDS = tuple(n for n, f in SudokuConfig.fields().items() if f.metadata.get("runtime"))

SUDOKU_PRESETS: dict[str, dict[str, Any]] = {
    # App. A.5 and the official main.py: 10 × 256, Adam 1e-4, batch 100, 20 epochs, the 1M CSV
    "paper": dict(depth=10, width=256, epochs=20, batch_size=100, lr=1e-4, val_fraction=0.01,
                  eval_puzzles=20000, val_puzzles=5000, iterative_puzzles=1000),
    # 2 CPU cores, <= 15 min per variant: a smaller net, a higher learning rate, generated puzzles
    # 30-50 blanks (easier than 40-60) so that a CPU-sized run learns enough of the rules for
    # row / column / box validity to be measurable
    "quick": dict(depth=6, width=48, epochs=5, batch_size=100, lr=1e-3, val_fraction=0.04,
                  eval_puzzles=1000, val_puzzles=500, iterative_puzzles=100, blanks="30-50"),
}


def make_sudoku_config(preset: str = "quick", **overrides) -> SudokuConfig:
    """A :class:`SudokuConfig` from a preset, with ``overrides`` (``None`` values are ignored)."""
    if preset not in SUDOKU_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(SUDOKU_PRESETS)}")
    values = {**SUDOKU_PRESETS[preset], "preset": preset}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SudokuConfig.from_dict(values).validate()


def model_name(variant: str) -> str:
    return f"{variant.strip().lower()}-sudokucnn"


def sudoku_model(variant: str = "lp2", depth: int = 10, width: int = 256, *, p_min: float = 2.0,
                 init: str = "random_surround") -> nn.Module:
    """A SudokuCNN variant through the registry and :func:`~neurolp.layers.lp_convert`."""
    from neurolp.models import create_model, parse_model_name

    spec = parse_model_name(model_name(variant))
    kw: dict[str, Any] = {"init": init}
    if spec.variant == "lp":
        kw["p_min"] = float(p_min)
    elif spec.variant == "base":
        kw = {}
    return create_model(str(spec), num_classes=9, image_size=9, convert_kwargs=kw or None,
                        depth=depth, width=width)


# --- data ----------------------------------------------------------------------------------------
@dataclass
class SudokuSplit:
    quizzes: np.ndarray
    solutions: np.ndarray
    train: np.ndarray          # indices
    val: np.ndarray
    test: np.ndarray
    source: dict
    notes: list[str] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def load_split(config: SudokuConfig, out: str | Path | None = None, *, write: bool = True,
               progress: bool = False) -> SudokuSplit:
    """The puzzles of a run and its train / val / test indices (the official 80/20 split first).

    Generated puzzles are written to ``out/puzzles.csv`` (when ``write``) and read back from there
    on resume or analysis, so a run's data never depends on regenerating it.
    """
    from sklearn.model_selection import train_test_split

    from neurolp.sudoku.generate import blank_histogram, generate_puzzles
    from neurolp.sudoku.puzzles import load_puzzles, save_puzzles

    notes: list[str] = []
    if config.data is not None:
        q, s = load_puzzles(config.data)
        source = {"data": str(config.data)}
    else:
        saved = Path(out) / PUZZLES_FILE if out is not None else None
        if saved is not None and saved.is_file():
            q, s = load_puzzles(saved, cache=False)
            if len(q) != config.generate:
                raise ConfigError(f"{saved} holds {len(q)} puzzles but the run generated "
                                  f"{config.generate}; it does not belong to this run")
        else:
            q, s = generate_puzzles(config.generate, config.blanks, config.data_seed,
                                    progress=progress)
            if saved is not None and write:
                save_puzzles(saved, q, s)
        hist = blank_histogram(q)
        source = {"generated": int(config.generate), "blanks": config.blanks,
                  "data_seed": config.data_seed, "blank_histogram": hist}
        notes.append(f"{len(q)} generated puzzles, {min(hist)}-{max(hist)} blanks "
                     f"(mean {np.mean((q == 0).sum(1)):.1f})")
    if config.max_puzzles is not None and config.max_puzzles < len(q):
        q, s = q[:config.max_puzzles], s[:config.max_puzzles]
        notes.append(f"using the first {len(q)} puzzles (max_puzzles)")
    idx = np.arange(len(q))
    train, test = train_test_split(idx, test_size=config.test_fraction, random_state=config.split_seed)
    val = np.array([], dtype=np.int64)
    if config.val_fraction > 0:
        train, val = train_test_split(train, test_size=config.val_fraction,
                                      random_state=config.split_seed)
    if config.eval_puzzles is not None and len(test) > config.eval_puzzles:
        notes.append(f"per-epoch evaluation on {config.eval_puzzles} of {len(test)} held-out puzzles")
        test = test[:config.eval_puzzles]
    if config.val_puzzles is not None and len(val) > config.val_puzzles:
        val = val[:config.val_puzzles]
    return SudokuSplit(q, s, np.asarray(train), np.asarray(val), np.asarray(test),
                       {**source, "n": int(len(q))}, notes)


# --- the task -------------------------------------------------------------------------------------
class SudokuTask(Task):
    """Sudoku solving with a SudokuCNN variant (see the module docstring)."""

    command = "sudoku train"
    runtime_fields = RUNTIME_FIELDS
    sample_unit = "puzzles"
    eval_splits = {"val": "val_", "test": ""}

    def __init__(self, config: SudokuConfig):
        self.config = config
        self.options = EngineOptions(
            epochs=config.epochs, seed=config.seed, device=config.device, amp=config.amp,
            channels_last=False, compile=config.compile, checkpoint_every=config.checkpoint_every,
            max_steps=config.max_steps, patience=config.patience, progress=config.progress)

    def config_differences(self, saved: dict[str, Any]) -> dict[str, tuple]:
        return SudokuConfig.from_dict(saved).differences(self.config)

    def setup(self, ctx: EngineContext) -> None:
        from neurolp.train.data import EpochBatchSampler
        from neurolp.train.distributed import barrier  # a no-op unless distributed

        cfg, dist = self.config, ctx.dist
        if not dist.is_main:
            barrier(dist)  # rank 0 generates and writes puzzles.csv first
        self.split = load_split(cfg, ctx.out, write=dist.is_main, progress=cfg.progress and dist.is_main)
        if dist.is_main:
            barrier(dist)
        ctx.notes += self.split.notes
        sp = self.split
        self.q_train = torch.from_numpy(sp.quizzes[sp.train])
        self.s_train = torch.from_numpy(sp.solutions[sp.train])
        if cfg.batch_size % dist.world_size:
            raise ConfigError(f"batch size {cfg.batch_size} is not divisible by the "
                              f"{dist.world_size} processes")
        self.sampler = EpochBatchSampler(len(sp.train), cfg.batch_size // dist.world_size, cfg.seed,
                                         rank=dist.rank, world=dist.world_size)
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.selection = Selection("val", "cell_accuracy", "max") if len(sp.val) else None

    def train_batches(self, epoch: int, start_step: int):
        self.sampler.set_epoch(epoch, start_step)
        for keys in self.sampler:
            idx = torch.tensor([i for _, i in keys])
            yield self.q_train[idx], self.s_train[idx]

    def build_model(self, ctx: EngineContext) -> nn.Module:
        cfg = self.config
        self.model = sudoku_model(cfg.variant, cfg.depth, cfg.width, p_min=cfg.p_min, init=cfg.init)
        return self.model

    def build_optimizer(self, model: nn.Module):
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=self.config.lr)

    def training_step(self, model: nn.Module, batch, ctx: EngineContext) -> StepOutput:
        q, s = batch
        x = (q.to(ctx.device).float() / 9.0 - 0.5).reshape(-1, 1, 9, 9)
        y = (s.to(ctx.device).long() - 1).reshape(-1, 9, 9)
        with ctx.autocast():
            logits = model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
        correct = (logits.detach().argmax(1) == y).sum()
        return StepOutput(loss, len(y), {"loss": loss.detach().double() * len(y), "correct": correct})

    def train_metrics(self, stats: dict[str, float], n: float) -> dict[str, Any]:
        return {"train_loss": stats["loss"] / max(n, 1),
                "train_cell_accuracy": stats.get("correct", 0.0) / max(81 * n, 1)}

    def evaluate(self, model: nn.Module, split: str, ctx: EngineContext) -> dict[str, Any]:
        from neurolp.sudoku.metrics import METRIC_COLUMNS, evaluate_puzzles

        sp = self.split
        idx = sp.val if split == "val" else sp.test
        # the iterative solver runs on the test split only
        keys = tuple(k for k in METRIC_COLUMNS if split == "test" or k != "iterative_solved")
        if len(idx) == 0:  # (every DDP rank evaluates the same puzzles: identical selection)
            return {k: None for k in keys}
        res = evaluate_puzzles(model, sp.quizzes[idx], sp.solutions[idx],
                               iterative=self.config.iterative_puzzles if split == "test" else 0,
                               batch_size=self.config.eval_batch_size, autocast=ctx.autocast)
        return {k: res[k] for k in keys}

    def checkpoint_metadata(self) -> dict[str, Any]:
        return {"dataset": "sudoku", "classes": [str(d) for d in range(1, 10)], "normalization": None,
                "in_chans": 1, "input_encoding": "digit/9 - 0.5 on [1, 9, 9] (blank 0 -> -0.5)",
                "target_encoding": "solution - 1 (classes 0-8)", "data_source": self.split.source,
                "split_sizes": self.split.sizes()}

    def summarize(self, info: dict[str, Any]) -> dict[str, Any]:
        from neurolp.models import count_params
        from neurolp.sudoku.metrics import METRIC_COLUMNS

        cfg = self.config
        best, last = info["best_metrics"] or {}, info["last_metrics"] or {}
        keep = METRIC_COLUMNS + ("val_cell_accuracy",)
        return {"model": model_name(cfg.variant), "variant": cfg.variant, "depth": cfg.depth,
                "width": cfg.width, "params": count_params(self.model), "seed": cfg.seed,
                "data": self.split.source, "split_sizes": self.split.sizes(),
                "complete": info["complete"], "early_stopped": info["early_stopped"],
                "epochs_done": info["epochs_done"], "global_step": info["global_step"],
                "selected_on": info["selected_on"], "best_epoch": info["best_epoch"],
                "best": {k: best.get(k) for k in keep}, "last": {k: last.get(k) for k in keep},
                "published": info["published"], "best_checkpoint": info["best_checkpoint"],
                "train_time_s": info["train_time_s"], "world_size": info["world_size"],
                "notes": info["notes"]}

    def epoch_message(self, row: dict[str, Any]) -> str:
        def pct(k):
            v = row.get(k)
            return "-" if v is None else f"{100 * v:.1f}"

        return (f"epoch {row['epoch']}/{self.config.epochs}  train loss {row['train_loss']:.4f}  "
                f"held-out: loss {row['loss'] if row['loss'] is None else round(row['loss'], 4)}  "
                f"cell {pct('cell_accuracy')}%  blank {pct('blank_accuracy')}%  row/col/box "
                f"{pct('row_validity')}/{pct('column_validity')}/{pct('box_validity')}%  "
                f"puzzle {pct('puzzle_validity')}%  iterative {pct('iterative_solved')}%  "
                f"({row['epoch_time_s']:.0f}s)")


def default_out_dir(config: SudokuConfig) -> Path:
    return Path("runs") / f"sudoku_{config.variant}_s{config.seed}"


def train_sudoku(config: SudokuConfig, out: str | Path | None = None, *, resume: bool = False,
                 store: str | Path | None = None, publish: bool = True,
                 on_step: Callable[[int], None] | None = None) -> TrainResult:
    """Train a SudokuCNN variant; checkpoint to ``out``; publish the selected model to ``store``.

    Same run folder, resume and publishing rules as :func:`neurolp.train.train` (see
    :mod:`neurolp.train.engine`), plus ``puzzles.csv`` for generated data.
    """
    config = config.replace(variant=config.variant.strip().lower()).validate()
    return fit(SudokuTask(config), Path(out) if out else default_out_dir(config), resume=resume,
               store=store, publish=publish, on_step=on_step)


def read_run_config(run_dir: str | Path) -> SudokuConfig:
    path = Path(run_dir) / "config.json"
    try:
        return SudokuConfig.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a readable Sudoku run config ({exc})") from exc
