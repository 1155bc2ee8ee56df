"""Parameter and MAC counts of registry models, measured on the meta device (no memory, no time).

MACs are multiply–accumulates of one forward pass on one image (what the paper's tables, like most
vision papers, call FLOPs; Table 10: AlexNet 0.71 G at 224 px).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["count_params", "count_macs", "model_summary", "check_input_size"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _in_chans(model: nn.Module, in_chans: int | None) -> int:
    # Models with other than RGB input (SudokuCNN: one digit plane) say so in ``in_chans``.
    return getattr(model, "in_chans", 3) if in_chans is None else in_chans


def count_macs(model: nn.Module, image_size: int, in_chans: int | None = None) -> int:
    """MACs of one forward pass at ``image_size`` (counted by torch's FlopCounterMode; Lp-mask
    arithmetic is elementwise and not counted, it is O(out·l²) per layer). ``in_chans`` defaults
    to ``model.in_chans``, else 3."""
    from torch.utils.flop_counter import FlopCounterMode

    in_chans = _in_chans(model, in_chans)
    device = next(model.parameters()).device
    x = torch.zeros(1, in_chans, image_size, image_size, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def check_input_size(model: nn.Module, image_size: int, name: str = "the model",
                     in_chans: int | None = None) -> None:
    """Raise :class:`~neurolp.errors.ConfigError` when ``image_size`` inputs cannot pass through
    ``model`` (a pooling or stride that shrinks them to nothing): one forward pass of one image on
    the model's device (free on the meta device, where :func:`preflight` builds models).
    ``in_chans`` defaults to ``model.in_chans``, else 3."""
    from neurolp.errors import ConfigError

    in_chans = _in_chans(model, in_chans)
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("meta"))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_chans, image_size, image_size, device=device))
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["no message"])[0][:200]
        raise ConfigError(f"--image-size {image_size} is too small for {name} ({first}); use a larger "
                          "--image-size (the paper uses 32 for CIFAR and 224 for TinyImageNet)") from None
    finally:
        model.train(was_training)


def model_summary(name: str, num_classes: int = 1000, image_size: int = 224) -> dict:
    """Parameters (total, trainable) and MACs of a registry model, built on the meta device."""
    from neurolp.models.registry import create_model

    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, image_size=image_size)
    check_input_size(model, image_size, name)
    return {"name": name, "num_classes": num_classes, "image_size": image_size,
            "params": count_params(model), "trainable_params": count_params(model, True),
            "macs": count_macs(model, image_size)}
