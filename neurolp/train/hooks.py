"""Model hooks the training loop calls, so that a layer family can act during training without
its own loop (e.g. weight sharing every N steps, projections after each optimiser step, per-epoch
diagnostics).

Any module of the model (the root included) may define:

* ``neurolp_after_step(step: int) -> None`` — called after every optimiser step with the global
  step (after Lp-masks are projected onto p ≥ p_min by :func:`~neurolp.layers.constrain_lp_`);
* ``neurolp_epoch_metrics() -> dict[str, float]`` — called at each epoch end; the values are added
  to that epoch's row of ``metrics.csv`` (keys must be unique across modules);
* ``neurolp_check_trainable() -> None`` — called by ``neurolp train``'s preflight (on the meta
  device): raise :class:`~neurolp.errors.ConfigError` when backprop training would not train the
  model as its family means (e.g. Hebbian layers, which learn with ``neurolp hebbian train``).

Both run under ``torch.no_grad`` on every process of a DDP run, so they must be deterministic.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["after_optimizer_step", "epoch_metrics", "check_trainable"]


def _hooked(model: nn.Module, attr: str):
    for name, m in model.named_modules():
        fn = getattr(m, attr, None)
        if callable(fn):
            yield name, fn


@torch.no_grad()
def after_optimizer_step(model: nn.Module, step: int) -> None:
    """Constrain Lp-masks, then run every module's ``neurolp_after_step(step)``."""
    from neurolp.layers import constrain_lp_

    constrain_lp_(model)
    for _, fn in _hooked(model, "neurolp_after_step"):
        fn(step)


@torch.no_grad()
def epoch_metrics(model: nn.Module) -> dict[str, float]:
    """Every module's ``neurolp_epoch_metrics()``, merged; a repeated key is an error."""
    out: dict[str, float] = {}
    for name, fn in _hooked(model, "neurolp_epoch_metrics"):
        for k, v in dict(fn()).items():
            if k in out:
                raise ValueError(f"epoch metric {k!r} is reported twice (again by {name or 'the model'})")
            out[k] = float(v)
    return out


def check_trainable(model: nn.Module) -> None:
    """Run every module's ``neurolp_check_trainable()`` (each may raise ConfigError)."""
    for _, fn in _hooked(model, "neurolp_check_trainable"):
        fn()
