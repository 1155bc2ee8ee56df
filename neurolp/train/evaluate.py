"""Evaluation: top-1/top-5 accuracy, CIFAR-100-C per corruption × severity, Table 2 win counts.

Evaluation always runs the model in eval mode under ``torch.no_grad`` (BatchNorm running
statistics, no dropout or stochastic depth), with the checkpoint's own input size and normalisation.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterable, Sequence

import torch
from torch import nn

from neurolp.errors import ConfigError

__all__ = ["evaluate", "eval_loader", "evaluate_checkpoint", "evaluate_corruptions",
           "corruption_wins", "autocast_context"]


def autocast_context(device: torch.device, amp_dtype):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def eval_loader(dataset, batch_size: int, num_workers: int = 0, device=None):
    from torch.utils.data import DataLoader

    pin = device is not None and torch.device(device).type == "cuda"
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=pin, drop_last=False)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device="cpu", *, amp_dtype=None, channels_last: bool = False,
             dist=None, progress: bool = False, desc: str = "eval") -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (in %) of ``model`` over ``loader``.

    Under DDP (``dist`` a :class:`~neurolp.train.distributed.DistInfo`) each rank passes its shard
    and the counts are summed, so every rank returns the same numbers.
    """
    from tqdm.auto import tqdm

    from neurolp.train.distributed import all_reduce_sum

    device = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum = correct1 = correct5 = n = 0.0
    for x, y in tqdm(loader, desc=desc, leave=False, disable=not progress):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == y[:, None]
        correct1 += float(hit[:, 0].sum())
        correct5 += float(hit.any(dim=1).sum())
        n += len(y)
    model.train(was_training)
    if dist is not None:
        loss_sum, correct1, correct5, n = all_reduce_sum([loss_sum, correct1, correct5, n], dist, device)
    if n == 0:
        raise ConfigError("evaluation set is empty")
    return {"loss": loss_sum / n, "acc": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "n": int(n)}


def _meta_transform(meta: dict, info=None):
    """The evaluation transform of a checkpoint: its input size and normalisation."""
    from neurolp.train.augment import build_transforms
    from neurolp.train.config import TrainConfig
    from neurolp.train.data import DATASETS

    info = info or DATASETS.get(meta.get("dataset") or "", DATASETS["imagefolder"])
    norm = meta["normalization"]
    _, t = build_transforms(TrainConfig(), info, int(meta["image_size"]), norm["mean"], norm["std"])
    return t


def _load(checkpoint, device, store=None):
    from neurolp.train.checkpoint import load_model
    from neurolp.train.store import resolve_checkpoint

    if isinstance(checkpoint, tuple):
        return checkpoint[0], checkpoint[1], None
    path = resolve_checkpoint(checkpoint, store=store)
    model, meta = load_model(path, device)
    return model, meta, path


def evaluate_checkpoint(checkpoint, dataset: str | None = None, *, data_dir=None, split: str = "test",
                        batch_size: int = 256, device="auto", num_workers: int = 0,
                        store=None, progress: bool = True, on_bad_sample: str = "stop") -> dict:
    """Accuracy of a checkpoint (path, registry name, or ``(model, metadata)``) on a split of a
    dataset (default: the one it was trained on). ``split`` is ``test``, ``val`` or ``train``
    (val/train rebuild the run's own validation split from its config). ``on_bad_sample="skip"``
    evaluates past unreadable image files (counted in ``skipped_images``, listed in
    ``skipped_files``) instead of stopping at the first."""
    from neurolp.train.config import TrainConfig
    from neurolp.train.data import Augmented, dataset_info, load_splits
    from neurolp.utils.runtime import resolve_device

    device = resolve_device(device)
    model, meta, path = _load(checkpoint, device, store)
    dataset = dataset or meta.get("dataset")
    if dataset is None:
        raise ConfigError("the checkpoint records no dataset; pass --dataset")
    if dataset == "cifar100c":
        raise ConfigError("use evaluate_corruptions (neurolp eval --dataset cifar100c) for CIFAR-100-C")
    info = dataset_info(dataset)
    saved = {k: v for k, v in (meta.get("config") or {}).items() if k in TrainConfig.fields()}
    cfg = TrainConfig(**{**saved, "dataset": dataset, "data_dir": str(data_dir) if data_dir else None,
                         "image_size": int(meta["image_size"]), "on_bad_sample": on_bad_sample})
    if dataset != meta.get("dataset"):
        cfg = cfg.replace(max_train_samples=None)
    splits = load_splits(cfg)
    if meta.get("classes") and dataset == meta.get("dataset") and list(meta["classes"]) != splits.classes:
        raise ConfigError(f"the checkpoint's {len(meta['classes'])} classes differ from the "
                          f"dataset's ({len(splits.classes)}) in {cfg.data_dir}")
    if splits.num_classes != int(meta["num_classes"]):
        raise ConfigError(f"{dataset} has {splits.num_classes} classes but the model has "
                          f"{meta['num_classes']} outputs")
    raw = {"test": splits.test, "val": splits.val, "train": splits.train}.get(split)
    if raw is None:
        raise ConfigError(f"split must be test, val or train (and val needs val_fraction > 0), "
                          f"got {split!r}")
    ds = Augmented(raw, _meta_transform(meta, info))
    bad_log = None
    if on_bad_sample == "skip" and splits.file_datasets():
        import tempfile

        fd, bad_log = tempfile.mkstemp(prefix="neurolp-bad-samples-", suffix=".csv")
        os.close(fd)
        splits.log_bad_samples(bad_log)  # loader workers append here
    try:
        res = evaluate(model, eval_loader(ds, batch_size, num_workers, device), device,
                       progress=progress, desc=f"{split}")
        bad = splits.bad_samples()
    finally:
        if bad_log is not None:
            os.unlink(bad_log)
    return {"checkpoint": str(path) if path else None, "model": meta["model"], "dataset": dataset,
            "split": split, **res, "skipped_images": len(bad), "skipped_files": sorted(bad)}


def evaluate_corruptions(checkpoint, data_dir=None, *, corruptions: Iterable[str] | None = None,
                         severities: Sequence[int] = (1, 2, 3, 4, 5), batch_size: int = 256,
                         device="auto", num_workers: int = 0, store=None, progress: bool = True):
    """CIFAR-100-C accuracy per corruption and severity.

    Returns a DataFrame with columns model, seed, corruption, severity, n, acc, loss, top5.
    Corruptions that are requested but absent from ``data_dir`` raise; with ``corruptions=None``
    every ``.npy`` present is evaluated and known corruptions that are absent are listed in
    ``df.attrs["missing"]`` (the CLI reports them).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from neurolp.train.data import CIFAR100C_CORRUPTIONS, Augmented, DATASETS, list_corruptions, \
        load_corruption
    from neurolp.utils.runtime import resolve_device

    device = resolve_device(device)
    model, meta, _ = _load(checkpoint, device, store)
    if int(meta["num_classes"]) != 100:
        raise ConfigError(f"CIFAR-100-C needs a 100-class model; {meta['model']} has "
                          f"{meta['num_classes']} outputs")
    present = list_corruptions(data_dir)
    names = list(corruptions) if corruptions else present
    missing = [c for c in CIFAR100C_CORRUPTIONS if c not in present] if not corruptions else []
    transform = _meta_transform(meta, DATASETS["cifar100c"])
    rows = []
    for c, s in tqdm([(c, s) for c in names for s in severities], desc="CIFAR-100-C",
                     disable=not progress):
        ds = Augmented(load_corruption(data_dir, c, s), transform)
        res = evaluate(model, eval_loader(ds, batch_size, num_workers, device), device)
        rows.append({"model": meta["model"], "seed": meta.get("seed"), "corruption": c,
                     "severity": int(s), **res})
    df = pd.DataFrame(rows)
    df.attrs["missing"] = missing
    return df


def corruption_wins(df, *, group: str = "arch", method: str = "variant", severity: int | None = 1,
                    metric: str = "acc"):
    """Table 2: per ``group`` (architecture), how many corruptions each ``method`` wins.

    ``df`` has one row per (group, method, [seed,] corruption, severity) with ``metric``; seeds are
    averaged first. A corruption is won by the method with the highest mean (ties go to every
    tied method). Returns a wide DataFrame (groups × methods) with a final "Win Counts" row.
    """
    import pandas as pd

    need = {group, method, "corruption", "severity", metric}
    if not need <= set(df.columns):
        raise ConfigError(f"corruption_wins needs columns {sorted(need)}; got {sorted(df.columns)}")
    d = df if severity is None else df[df["severity"] == severity]
    mean = d.groupby([group, "corruption", "severity", method], sort=False)[metric].mean().reset_index()
    best = mean.groupby([group, "corruption", "severity"])[metric].transform("max")
    wins = mean[mean[metric] >= best - 1e-12]
    table = pd.crosstab(wins[group], wins[method])
    methods = list(dict.fromkeys(df[method]))
    table = table.reindex(columns=methods, fill_value=0).reindex(list(dict.fromkeys(df[group])),
                                                                  fill_value=0)
    table.loc["Win Counts"] = table.sum(axis=0)
    table.index.name, table.columns.name = group, None
    return table.astype(int)

