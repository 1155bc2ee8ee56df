"""The bundled training module: train, checkpoint and evaluate Lp-CNNs on CPU or GPU.

Paper §4, Table 1–2, App. A.9 (DeiT-style recipe), A.16 (p distributions), A.19.

* :mod:`~neurolp.train.config`     — :class:`TrainConfig` and the ``paper`` / ``quick`` presets;
* :mod:`~neurolp.train.data`       — CIFAR-100, TinyImageNet, CIFAR-100-C, ImageFolder, digits,
  synthetic; validation split; seeded, resumable sampling;
* :mod:`~neurolp.train.augment`    — timm transforms, Mixup/CutMix, losses, optimiser, schedule;
* :mod:`~neurolp.train.engine`     — the task-agnostic loop: :class:`Task`, :func:`fit`
  (CPU/CUDA, bf16, DDP, exact resume, checkpoints, selection, early stopping);
* :mod:`~neurolp.train.loop`       — :func:`train`, image classification as an engine task;
* :mod:`~neurolp.train.checkpoint` — :func:`save_checkpoint`, :func:`load_model` (safetensors);
* :mod:`~neurolp.train.store`      — :func:`find_checkpoint`, :func:`list_checkpoints`;
* :mod:`~neurolp.train.evaluate`   — accuracy, CIFAR-100-C per corruption, win counts;
* :mod:`~neurolp.train.tables`     — Table 1 aggregation over seeds, Tables 6–7 p distributions.

Names are imported lazily, so ``import neurolp.train`` does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config", "PRESETS": "config", "make_config": "config",
    "DATASETS": "data", "load_splits": "data", "dataset_info": "data",
    "train": "loop", "TrainResult": "engine", "ClassificationTask": "loop",
    "Task": "engine", "fit": "engine", "EngineOptions": "engine", "EngineContext": "engine",
    "StepOutput": "engine", "Selection": "engine",
    "save_checkpoint": "checkpoint", "load_model": "checkpoint", "load_weights": "checkpoint",
    "read_metadata": "checkpoint",
    "default_store": "store", "find_checkpoint": "store", "list_checkpoints": "store",
    "publish_checkpoint": "store", "resolve_checkpoint": "store",
    "evaluate": "evaluate", "evaluate_checkpoint": "evaluate",
    "evaluate_corruptions": "evaluate", "corruption_wins": "evaluate",
    "collect_runs": "tables", "classification_table": "tables", "format_table": "tables",
    "p_distribution": "tables", "p_summary": "tables", "format_p_table": "tables",
    "welch_test": "tables",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neurolp.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neurolp.train' has no attribute {name!r}")
