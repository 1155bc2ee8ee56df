"""Layer activations → RSMs, in eval mode under ``torch.no_grad`` (the official code had neither).

Layers are chosen by module name; the default is every convolution (every ``nn.Conv2d``, which
includes :class:`~neurolp.layers.LpConv2d` and :class:`~neurolp.layers.LargeConv2d`), taken at the
conv output (pre-BN, pre-ReLU, as the anchor). Layers are reported in the order the forward pass
reaches them.

Memory: by default all images go through in one batch and each layer's RSM is computed inside its
forward hook from the full flattened feature map (the anchor's choice), so no activation is kept.
With ``batch_size`` smaller than the number of images, features must be kept until every image has
been seen; layers with more than ``max_features`` units are then reduced on the fly:

* ``reduce="pool"`` — adaptive average pooling of the spatial map to at most ``max_features``;
* ``reduce="project"`` — a seeded sparse random projection (CountSketch: every unit is added, with a
  random sign, to one of ``max_features`` outputs; inner products are preserved in expectation).

``max_features`` also applies in the one-batch mode when given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurolp.errors import InputError
from neurolp.rsa.rsm import pearson_rsm

__all__ = ["conv_layer_names", "resolve_layers", "LayerRSMs", "layer_rsms", "REDUCTIONS"]

REDUCTIONS = ("pool", "project")


def conv_layer_names(model) -> list[str]:
    """Names of every ``nn.Conv2d`` module (LpConv2d/LargeConv2d included) and every
    :class:`~neurolp.layers.LocallyConnected2d` (the convs of ``lc-`` models), in module order."""
    from torch import nn

    from neurolp.layers.local import LocallyConnected2d

    return [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, LocallyConnected2d)) and name]


def resolve_layers(model, layers=None) -> list[str]:
    """Validate layer names (default: every conv layer); unknown names list the valid ones."""
    convs = conv_layer_names(model)
    if layers is None or len(layers) == 0:
        if not convs:
            raise InputError(f"{type(model).__name__} has no convolution layer; pass --layers "
                             "with module names")
        return convs
    modules = dict(model.named_modules())
    unknown = [l for l in layers if l not in modules or l == ""]
    if unknown:
        raise InputError(f"unknown layer name(s) {unknown} for this model; valid convolution layers: "
                         f"{', '.join(convs)} (any module name from model.named_modules() works)")
    seen = set()
    return [l for l in layers if not (l in seen or seen.add(l))]


@dataclass
class LayerRSMs:
    """RSMs ``[N, N]`` per layer (forward order) and a table of what each one is made of."""

    names: list[str]
    rsms: dict[str, np.ndarray]
    info: pd.DataFrame = field(default_factory=pd.DataFrame)

    def vectors(self) -> np.ndarray:
        from neurolp.rsa.rsm import rsm_vector

        return np.stack([rsm_vector(self.rsms[n]) for n in self.names])


def _sketch(x, k: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    u = x.shape[1]
    idx = torch.randint(0, k, (u,), generator=g)
    sign = torch.randint(0, 2, (u,), generator=g).to(x.dtype) * 2 - 1
    out = torch.zeros(x.shape[0], k, dtype=x.dtype)
    out.index_add_(1, idx, x * sign)
    return out


def _reduce(out, max_features: int | None, reduce: str, seed: int):
    """Flattened ``[B, U']`` features of a conv output, reduced if ``U > max_features``."""
    import torch.nn.functional as F

    b = out.shape[0]
    flat_u = int(np.prod(out.shape[1:]))
    if max_features is None or flat_u <= max_features:
        return out.reshape(b, -1), "none"
    if reduce == "pool" and out.ndim == 4:
        c, h, w = out.shape[1:]
        if c <= max_features:
            side = max(1, int(np.sqrt(max_features / c)))
            oh, ow = min(h, side), min(w, side)
            return F.adaptive_avg_pool2d(out, (oh, ow)).reshape(b, -1), f"pool to {c}×{oh}×{ow}"
    x = out.reshape(b, -1).float()
    return _sketch(x, int(max_features), seed), f"project to {max_features}"


def _layer_seed(seed: int, name: str) -> int:
    return (int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) + int(seed)) % (2 ** 31)


def layer_rsms(model, inputs, layers=None, *, centre: bool = True, batch_size: int | None = None,
               max_features: int | None = None, reduce: str = "pool", seed: int = 0,
               device=None, progress: bool = False) -> LayerRSMs:
    """RSMs of the chosen layers for ``inputs`` (``[N, 3, S, S]`` tensor).

    ``model.eval()`` is set for the duration (and restored after); nothing needs gradients.
    """
    import torch

    if reduce not in REDUCTIONS:
        raise InputError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if max_features is not None and int(max_features) < 2:
        raise InputError(f"max_features must be >= 2, got {max_features}")
    names = resolve_layers(model, layers)
    modules = dict(model.named_modules())
    n = int(inputs.shape[0])
    bs = n if batch_size is None or batch_size >= n else int(batch_size)
    one_batch = bs >= n
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    fired: list[str] = []
    calls: dict[str, int] = {}  # hook calls in the current batch
    feats: dict[str, list] = {k: [] for k in names}
    rsms: dict[str, np.ndarray] = {}
    rows: dict[str, dict] = {}

    def make_hook(name):
        def hook(_mod, _inp, out):
            if not torch.is_tensor(out):
                raise InputError(f"layer {name!r} does not output a tensor; choose another layer")
            if name not in fired:
                fired.append(name)
            calls[name] = calls.get(name, 0) + 1
            if calls[name] > 1:
                raise InputError(f"layer {name!r} runs more than once per forward pass (a shared "
                                 "module), so its activations are ambiguous; choose layers that run once")
            o = out.detach()
            shape = tuple(o.shape[1:])
            red, how = _reduce(o, max_features, reduce, _layer_seed(seed, name))
            if one_batch:
                rsm, info = pearson_rsm(red.cpu(), centre=centre)
                rsms[name] = rsm
                rows[name] = {"layer": name, "module": type(modules[name]).__name__,
                              "output_shape": "×".join(map(str, shape)),
                              "n_units": info.n_units, "n_dead": info.n_dead, "n_nan": info.n_nan,
                              "n_undefined_images": info.n_undefined_images, "reduction": how}
            else:
                feats[name].append(red.float().cpu())
                rows.setdefault(name, {"layer": name, "module": type(modules[name]).__name__,
                                       "output_shape": "×".join(map(str, shape)), "reduction": how})
        return hook

    was_training = model.training
    handles = [modules[nm].register_forward_hook(make_hook(nm)) for nm in names]
    try:
        model.eval()
        with torch.no_grad():
            starts = range(0, n, bs)
            if progress and len(starts) > 1:
                from tqdm.auto import tqdm

                starts = tqdm(starts, desc="activations", unit="batch", leave=False)
            for s in starts:
                calls.clear()
                model(inputs[s:s + bs].to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = [nm for nm in names if nm not in fired]
    if missing:
        raise InputError(f"layer(s) {missing} were never reached by the forward pass; choose layers "
                         "the model actually uses")
    if not one_batch:
        for nm in names:
            rsm, info = pearson_rsm(torch.cat(feats.pop(nm)), centre=centre)
            rsms[nm] = rsm
            rows[nm].update({"n_units": info.n_units, "n_dead": info.n_dead, "n_nan": info.n_nan,
                             "n_undefined_images": info.n_undefined_images})
    order = fired  # forward order
    table = pd.DataFrame([rows[nm] for nm in order])
    table.insert(1, "layer_index", np.arange(len(order)))
    return LayerRSMs(order, {nm: rsms[nm] for nm in order}, table)
