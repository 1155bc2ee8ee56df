"""neurolp: brain-inspired Lp-convolution.

Reproduces and extends Kwon, Lim, Song & Lee, "Brain-inspired L_p-Convolution benefits large
kernels and aligns better with visual cortex" (ICLR 2025): MPND fits to biological and artificial
receptive fields, ``LpConv2d`` / ``lp_convert``, a model registry, training, and RSA against mouse
visual cortex.

Submodules are imported lazily so that ``import neurolp`` stays cheap (no torch import).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("errors", "utils", "mpnd", "layers", "models", "rf", "stats", "train", "brain", "rsa", "cli")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"neurolp.{name}")
    raise AttributeError(f"module 'neurolp' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
