"""Networks whose first convolution is analysed: untrained (seeded) or trained, never downloaded.

``model`` is a torchvision architecture name (``"alexnet"``, ``"resnet18"``, …) or a neurolp
registry name (``"lp2-alexnet"``, ``"base-resnet18"``: see :mod:`neurolp.models`), so the
receptive fields of Lp-converted models can be compared with the brain's the same way.

Trained weights come from, in order: an explicit file (``weights=PATH``: a ``state_dict`` saved with
``torch.save`` — read with ``weights_only=True`` — or a ``.safetensors`` file; a checkpoint dict with
a ``"state_dict"``/``"model"`` entry works too), or torchvision's ImageNet file in the torch hub cache
(``torch.hub.get_dir()/checkpoints/<file>``, e.g. ``alexnet-owt-7be5be79.pth``). Nothing is ever
downloaded: when neither exists, :func:`find_trained_weights` says exactly which file to put where.
Only the first conv layer matters here, so a partial state_dict holding that layer's tensors is
accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from neurolp.errors import CheckpointError, ConfigError
from neurolp.rf.functional import first_conv
from neurolp.train.checkpoint import state_dict_mismatch

__all__ = ["check_model_name", "hub_checkpoint_dir", "torchvision_weights_file", "find_trained_weights", "build_network",
           "load_state_dict_file", "WeightsLookup"]


def hub_checkpoint_dir() -> Path:
    """torchvision's download cache for weights: ``torch.hub.get_dir()/checkpoints`` ($TORCH_HOME aware)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _is_registry_name(name: str) -> bool:
    from neurolp.models.registry import _NAME_RE, _ensure_builtin_archs, _parse_plugin

    name = name.strip().lower()
    if _NAME_RE.match(name):
        return True
    _ensure_builtin_archs()
    try:  # plug-in variants (lc-, lcws10-, ...)
        return _parse_plugin(name) is not None
    except ConfigError:
        return True  # a plug-in prefix on an unknown architecture: parse_model_name says which


def torchvision_weights_file(arch: str) -> str | None:
    """File name of torchvision's default ImageNet weights for ``arch`` (no network needed), else None."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(arch)
    except (ValueError, KeyError):
        return None
    return Path(enum.DEFAULT.url).name


@dataclass
class WeightsLookup:
    """Where trained weights were found (``path``), or why not (``reason``)."""

    path: Path | None
    reason: str
    expected_file: str | None = None
    expected_dir: Path | None = None


def find_trained_weights(model: str = "alexnet", weights=None) -> WeightsLookup:
    """Locate trained weights for ``model`` without downloading anything."""
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise CheckpointError(f"--weights {p} does not exist (expected a state_dict file saved with "
                                  "torch.save, or a .safetensors file)")
        return WeightsLookup(p, f"weights file {p}")
    arch = model.split("-", 1)[1] if _is_registry_name(model) and "-" in model else model
    fname = torchvision_weights_file(arch)
    folder = hub_checkpoint_dir()
    if fname is None:
        return WeightsLookup(None, f"torchvision has no pretrained weights for {model!r}; pass --weights PATH")
    path = folder / fname
    if path.is_file():
        return WeightsLookup(path, f"torchvision's {fname} in {folder}", fname, folder)
    return WeightsLookup(None, f"trained weights not found: put torchvision's {fname} in {folder} (the "
                               "torch hub cache; it is not downloaded because this run is offline-safe) or "
                               "pass --weights PATH", fname, folder)


def load_state_dict_file(path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: ``.safetensors`` or a ``torch.save`` state_dict/checkpoint (weights_only)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f"cannot read weights from {path} ({type(exc).__name__}: {exc}); expected a "
                              "state_dict saved with torch.save (loaded with weights_only=True) or a "
                              ".safetensors file") from exc
    if isinstance(sd, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a dict of tensors)")
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def check_model_name(model: str) -> str:
    """``model`` if it names a neurolp registry model or a torchvision classification model."""
    import torchvision.models as tvm

    from neurolp.utils.checks import did_you_mean

    if _is_registry_name(model):
        from neurolp.models import parse_model_name

        parse_model_name(model)  # raises with the valid architectures
        return model
    names = tvm.list_models(module=tvm)
    if model not in names:
        raise ConfigError(f"--model: unknown model {model!r}{did_you_mean(model, names)}: use a torchvision "
                          f"classification model (e.g. {', '.join(n for n in ('alexnet', 'resnet18', 'vgg16') if n in names)}) "
                          "or a neurolp name such as lp2-alexnet (see `neurolp models`)")
    return model


def _construct(model: str) -> nn.Module:
    import torchvision.models as tvm

    check_model_name(model)
    if _is_registry_name(model):
        from neurolp.models import create_model

        from neurolp.models import ARCHS, parse_model_name

        # small-input architectures (resnet20, smallcnn) at 32 px: their locally connected variants
        # hold one kernel per position, and only the first conv is analysed here (the same at any size)
        size = 32 if "small-input" in ARCHS[parse_model_name(model).arch].tags else 224
        return create_model(model, num_classes=1000, image_size=size)
    return tvm.get_model(model, weights=None)


def build_network(model: str = "alexnet", *, trained: bool = False, weights=None, seed: int = 0) -> nn.Module:
    """The network in eval mode: seeded random init (``trained=False``) or with trained weights.

    ``trained=True`` needs ``weights`` or torchvision's file in the hub cache (see
    :func:`find_trained_weights`); a missing file raises :class:`CheckpointError` with the exact path.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _construct(model)
    if trained:
        found = find_trained_weights(model, weights)
        if found.path is None:
            raise CheckpointError(found.reason)
        sd = load_state_dict_file(found.path)
        name, _ = first_conv(net)
        prefix = f"{name}." if name else ""
        own = net.state_dict()
        if f"{prefix}weight" not in sd:
            raise CheckpointError(f"{found.path} has no tensor {prefix}weight for the first conv layer of "
                                  f"{model}; expected a state_dict of that architecture")
        _, unexpected, shapes = state_dict_mismatch(own, sd)  # missing tensors keep their init
        if shapes:
            raise CheckpointError(f"{found.path} does not match {model}: {shapes[0]} (file vs model "
                                  "shape)")
        if unexpected:
            raise CheckpointError(f"{found.path} has tensors that {model} lacks (e.g. {unexpected[0]}); "
                                  "expected a state_dict of that architecture")
        net.load_state_dict(sd, strict=False)
    return net.eval()
