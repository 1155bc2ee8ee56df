"""Wall time of ``neurolp report`` for three untrained registry models on synthetic neural data.

Data (written to a temporary folder): 118 grey 236×294 smooth-noise stimuli (an .npy array, so
the centre crop and the resize are exercised), and a --neural file of responses
``[118 images, 10 trials, 100 neurons]`` for 5 sites × 6 subjects, each neuron a softplus of a
random site-specific projection of the downsampled image plus trial noise. The mouse V1 receptive
fields are the embedded Rossi et al. (2020) data; the functional RFs use the photographs shipped in
the installed wheels. Nothing is downloaded.

Then, in one process, the default report (1000 bootstrap samples, 17 functional RFs per model)::

    neurolp report --models base-alexnet lp2-alexnet large-alexnet --untrained --image-size 224 \\
        --neural DATA/neural.npz --images DATA/images.npy --out OUT

    python benchmarks/bench_report.py [--models ...] [--image-size 224] [--bootstrap 1000]
        [--threads N] [--keep DIR]

Prints the wall and CPU time and the per-stage timings (from run.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(root: Path, seed: int = 0, n: int = 118, sites: int = 5, subjects: int = 6,
              neurons: int = 100, trials: int = 10) -> tuple[Path, Path]:
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    raw = np.stack([gaussian_filter(rng.normal(size=(236, 294)), 4) for _ in range(n)])
    images = np.clip(128 + 50 * raw / raw.std(), 0, 255).astype(np.uint8)
    np.save(root / "images.npy", images)
    small = np.stack([zoom(im.astype(float), 16 / 236) for im in images]).reshape(n, -1)
    small = (small - small.mean(0)) / (small.std(0) + 1e-9)
    arrays = {}
    for s in range(sites):
        base = rng.normal(size=(small.shape[1], neurons)) / np.sqrt(small.shape[1])
        for m in range(subjects):
            w = base + 0.5 * rng.normal(size=base.shape) / np.sqrt(small.shape[1])
            rate = np.log1p(np.exp(2 * small @ w))                        # [images, neurons]
            resp = rate[:, None, :] + 0.8 * rng.normal(size=(n, trials, neurons))
            arrays[f"responses/site{s}/mouse{m}"] = resp.astype(np.float32)
    np.savez(root / "neural.npz", **arrays, stimuli=np.arange(n))
    return root / "neural.npz", root / "images.npy"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["base-alexnet", "lp2-alexnet", "large-alexnet"])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--keep", help="write the report here (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from neurolp.cli import main as neurolp

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        neural, images = make_data(tmp)
        print(f"synthetic data: {time.perf_counter() - t:.1f} s")
        out = Path(args.keep) if args.keep else tmp / "report"
        cmd = ["report", "--models", *args.models, "--untrained", "--image-size",
               str(args.image_size), "--neural", str(neural), "--images", str(images),
               "--bootstrap", str(args.bootstrap), "--no-progress", "--out", str(out)]
        print("neurolp " + " ".join(cmd))
        t, cpu = time.perf_counter(), time.process_time()
        rc = neurolp(cmd)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        if rc:
            return rc
        run = json.loads((out / "run.json").read_text())
        import torch

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\nreport of {len(args.models)} models: {wall:.1f} s wall, {cpu:.1f} s CPU on "
              f"{os.cpu_count()} CPU core(s), torch threads {torch.get_num_threads()}, load "
              f"average {load:.1f} at the end (other processes share the cores when > cores)")
        for k, v in run["timings"].items():
            print(f"  {k}: {v:.1f} s")
        for k, v in (run.get("rsa_timings") or {}).items():
            print(f"    RSA, {k}: {v:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
