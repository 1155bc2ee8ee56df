"""Locally connected model families (Pogodin et al., NeurIPS 2021; see :mod:`neurolp.layers.local`).

Model names (any of the architectures in ``LC_ARCHS``):

* ``lc-{arch}``       — every conv replaced by a locally connected layer, except the first conv
  (the stem, as in the paper's ImageNet runs) and 1×1 convs; fresh independent kernels per position;
* ``lcws{N}-{arch}``  — the same with *instant* weight sharing every N optimiser steps (the paper's
  "LC + weight sharing every N iterations"; ``lcws1`` is nearly a conv net);
* ``lcwsd{N}-{arch}`` — *dynamic* weight sharing (the sleep phase) every N steps.

``convert_kwargs`` (``--convert-kwargs`` of ``neurolp train``) override the conversion —
``skip_first`` (1), ``keep_pointwise`` (true), ``init_eps`` (null: independent kernels; ε ≥ 0: the
conv's kernel plus ε deviations), ``chunk_rows`` (null: no chunking), ``include``/``exclude`` — and
the sleep phase — ``eta`` (0.1), ``gamma`` (1e-5), ``iters`` (100), ``n_patterns`` (128), ``seed`` (0),
the authors' values — and ``bn_restart`` (true: re-estimate the BatchNorm statistics after each
sharing event, see :class:`~neurolp.layers.local.BatchNormRefresh`). The sleep phase costs
``iters`` forward passes of ``n_patterns`` images per layer, so on a CPU use fewer (e.g.
``{"iters": 10, "n_patterns": 32}``).

The input size is fixed by ``image_size`` (each conv's real input size is traced on a dummy input);
an input of another size raises :class:`~neurolp.errors.InputError`. Every LC layer reports its
``SNR_w`` once per epoch (``snr_w.<layer>`` columns of ``metrics.csv``).
"""

from __future__ import annotations

from torch import nn

from neurolp.errors import ConfigError
from neurolp.models.registry import register_variant

__all__ = ["LC_ARCHS", "CONVERT_KEYS", "SLEEP_KEYS"]

# Architectures with LC names. LC layers hold one kernel per position, so they are meant for small
# inputs: the CIFAR ResNet-20 of Pogodin et al. (40 M weights at 32 px instead of 0.27 M) and the demo
# CNN. (Their ImageNet ResNet-18 at half width would hold ~0.5 G weights at 224 px; add an
# architecture here to allow it.)
LC_ARCHS = ("resnet20", "smallcnn")
CONVERT_KEYS = ("skip_first", "keep_pointwise", "init_eps", "chunk_rows", "include", "exclude")
SLEEP_KEYS = ("eta", "gamma", "iters", "n_patterns", "seed", "bn_restart")


def _build(mode):
    def build(name, arch, num_classes, image_size, convert_kwargs, **arch_kwargs) -> nn.Module:
        from neurolp.layers.local import lc_convert, set_weight_sharing

        unknown = sorted(set(convert_kwargs) - set(CONVERT_KEYS) - set(SLEEP_KEYS))
        if unknown:
            raise ConfigError(f"unknown convert_kwargs {unknown} for {name}; valid: "
                              f"{', '.join(CONVERT_KEYS + SLEEP_KEYS)}")
        every = int(name.params[0]) if name.params else None
        if every is not None and every < 1:
            raise ConfigError(f"{name}: weight sharing every {every} steps; use N >= 1 (e.g. lcws10)")
        model = arch.builder(num_classes=num_classes, image_size=image_size, **arch_kwargs)
        conv_kw = {k: v for k, v in convert_kwargs.items() if k in CONVERT_KEYS}
        lc_convert(model, image_size, in_chans=arch_kwargs.get("in_chans"), **conv_kw)
        if mode is not None:
            set_weight_sharing(model, mode, every, **{k: v for k, v in convert_kwargs.items() if k in SLEEP_KEYS})
        return model

    return build


register_variant("lc", r"lc", _build(None), archs=LC_ARCHS, examples=("lc-{arch}",),
                 description="locally connected (lc-resnet20)")
register_variant("lcws", r"lcws(\d+)", _build("instant"), canonical=lambda g: f"lcws{int(g[0])}",
                 archs=LC_ARCHS, examples=("lcws10-{arch}",),
                 description="locally connected + instant weight sharing every N steps (lcws10-resnet20)")
register_variant("lcwsd", r"lcwsd(\d+)", _build("dynamic"), canonical=lambda g: f"lcwsd{int(g[0])}",
                 archs=LC_ARCHS, examples=("lcwsd100-{arch}",),
                 description="locally connected + dynamic weight sharing (sleep phase) every N steps")
