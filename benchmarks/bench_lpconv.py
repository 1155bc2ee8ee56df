"""Lp-convolution overhead, measured side by side (issue #2 targets).

ResNet-18 with CIFAR stem, 32×32 inputs, batch 32, on this machine's device:

1. training step (forward + backward): ``lp2`` vs ``large`` (same kernels)   target ≤ 1.10× time
2. peak memory of that step: ``lp2`` vs ``large``                               target ≤ 1.10×
3. inference: baked ``lp2`` vs ``large``                                        target ≤ 1.02×
4. inference: cropped ``lp16`` (eps 1e-3) vs ``base``                           target ≤ 1.20×

Times alternate the variants round by round in one process and report the median of per-round
ratios. CPU peak memory is the resident-set high-water mark of a fresh subprocess per variant
(VmHWM; glibc's mmap threshold is fixed so freed tensors leave the RSS at once); on CUDA it is
``torch.cuda.max_memory_allocated``. Run: ``python benchmarks/bench_lpconv.py [--rounds 7]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from neurolp.layers import bake_lp, crop_lp
from neurolp.models import create_model


def _build(name: str, device) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=100, image_size=32).to(device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _train_step(model, x, y) -> None:
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)


def _timed(fn, device) -> float:
    _sync(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t


def _side_by_side(fns: dict, rounds: int, device) -> dict[str, list[float]]:
    times = {k: [] for k in fns}
    for fn in fns.values():  # warm-up (allocator, oneDNN primitive caches, mask caches)
        fn()
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for k in order:
            times[k].append(_timed(fns[k], device))
    return times


def _ratio(times: dict, a: str, b: str) -> float:
    return statistics.median(ta / tb for ta, tb in zip(times[a], times[b]))


def _peak_memory_child(name: str, batch: int) -> None:
    """Run in a subprocess: one training step, print resident memory before and at peak (bytes).

    VmHWM (this process image's RSS high-water mark) rather than ru_maxrss, which Linux carries
    over from the parent across fork + exec.
    """
    def status(field: str) -> int:
        with open("/proc/self/status") as fh:
            line = next(ln for ln in fh if ln.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    device = torch.device("cpu")
    model = _build(name, device).train()
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 100, (batch,))
    before = status("VmRSS")
    _train_step(model, x, y)
    print(json.dumps({"before": before, "peak": status("VmHWM")}))


def _peak_memory(name: str, batch: int, device) -> dict:
    if device.type == "cuda":
        model = _build(name, device).train()
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 100, (batch,), device=device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _train_step(model, x, y)
        return {"before": before, "peak": torch.cuda.max_memory_allocated()}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, __file__, "--child", name, "--batch", str(batch)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _peak_memory_child(args.child, args.batch)

    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"ResNet-18 (CIFAR stem) 32×32, batch {args.batch}, {args.rounds} rounds")
    x = torch.randn(args.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (args.batch,), device=device)

    # 1. training step: lp2 vs large
    lp2, large = _build("lp2-resnet18", device).train(), _build("large-resnet18", device).train()
    t = _side_by_side({"lp2": lambda: _train_step(lp2, x, y), "large": lambda: _train_step(large, x, y)},
                      args.rounds, device)
    r_train = _ratio(t, "lp2", "large")
    print(f"train step   lp2 {statistics.median(t['lp2']) * 1e3:8.1f} ms   large "
          f"{statistics.median(t['large']) * 1e3:8.1f} ms   ratio {r_train:.3f}   (target ≤ 1.10)")

    # 2. peak memory of the training step
    m_lp2, m_large = (_peak_memory(n, args.batch, device) for n in ("lp2-resnet18", "large-resnet18"))
    r_mem = m_lp2["peak"] / m_large["peak"]
    r_mem_step = (m_lp2["peak"] - m_lp2["before"]) / (m_large["peak"] - m_large["before"])
    print(f"peak memory  lp2 {m_lp2['peak'] / 2**20:8.1f} MiB   large {m_large['peak'] / 2**20:8.1f} MiB"
          f"   ratio {r_mem:.3f}   (target ≤ 1.10; growth during the step alone: {r_mem_step:.3f})")

    # 3. inference: baked lp2 vs large;  4. cropped lp16 vs base
    baked = bake_lp(copy.deepcopy(lp2)).eval()
    large.eval()
    lp16 = _build("lp16-resnet18", device).eval()
    cropped = crop_lp(copy.deepcopy(lp16), 1e-3).eval()
    base = _build("base-resnet18", device).eval()
    del lp2, lp16

    def infer(model):
        def fn():
            with torch.no_grad():
                model(x)
        return fn

    t = _side_by_side({"baked": infer(baked), "large": infer(large), "cropped": infer(cropped),
                       "base": infer(base)}, args.rounds, device)
    r_bake, r_crop = _ratio(t, "baked", "large"), _ratio(t, "cropped", "base")
    print(f"inference    baked lp2 {statistics.median(t['baked']) * 1e3:8.1f} ms   large "
          f"{statistics.median(t['large']) * 1e3:8.1f} ms   ratio {r_bake:.3f}   (target ≤ 1.02)")
    print(f"inference    cropped lp16 {statistics.median(t['cropped']) * 1e3:8.1f} ms   base "
          f"{statistics.median(t['base']) * 1e3:8.1f} ms   ratio {r_crop:.3f}   (target ≤ 1.20)")


if __name__ == "__main__":
    main()
