#!/usr/bin/env python
"""What validating before working costs: `neurolp train`'s preflight (config ranges, output and
store probes, the model built on the meta device with one meta forward pass, optimiser, schedule,
augmentation, Mixup) against building the same model for real on the CPU, alternated.

Prints, per model, the median preflight time, the median real build time, and their ratio.
Usage: ``python benchmarks/bench_preflight.py [--rounds 5]``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import torch

    from neurolp.models import create_model
    from neurolp.train.config import make_config
    from neurolp.train.loop import preflight

    torch.set_num_threads(1)
    out = tempfile.mkdtemp(prefix="neurolp-bench-preflight-")
    cases = [("lp2-resnet18", 32, 100), ("lp2-alexnet", 224, 200), ("lp2-convnext_tiny", 224, 200)]
    print(f"{'model':<20} {'px':>4} {'preflight ms':>13} {'real build ms':>14} {'ratio':>6}")
    for name, size, classes in cases:
        cfg = make_config("paper", model=name, dataset="digits", image_size=size)
        pre, real = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            preflight(cfg, out, publish=False)
            pre.append(time.perf_counter() - t)
            t = time.perf_counter()
            create_model(name, num_classes=classes, image_size=size)
            real.append(time.perf_counter() - t)
        p, r = statistics.median(pre), statistics.median(real)
        print(f"{name:<20} {size:>4} {1000 * p:>13.0f} {1000 * r:>14.0f} {p / r:>6.2f}")


if __name__ == "__main__":
    main()
