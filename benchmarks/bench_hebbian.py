"""One Krotov–Hopfield update of BioConv2d vs a Conv2d forward and vs an unfold implementation.

Manzali (2021, slide 29) claims the conv-trick update is "2–3× slower than a Conv2d forward" and
"up to 5× faster than an unfold implementation, with significantly less memory". Measured here at
the first layer of the Amato network (3 → 96, 5×5), batch 64, 32×32 inputs, side by side in one
run: the methods are alternated in every repeat and the median time per call is reported.

* ``conv2d forward``: ``nn.Conv2d(3, 96, 5)`` forward, no grad (the reference, 1.00×);
* ``hebbian conv``: ``BioConv2d.training_step`` with the conv trick (input BatchNorm, currents,
  rank-k competition, Hebbian term by a second convolution, normalisation, step);
* ``hebbian wgrad``: the same with the Hebbian term as a convolution weight gradient;
* ``unfold``: the whole rule on explicitly unfolded patches (``F.unfold``: B·784 patches × 75),
  as in unfold-based implementations.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the inputs; on CPU the growth of
the peak resident set size of a fresh process running that method alone (large blocks mmap-ed, so
the peak reflects the live tensors, not the allocator's cache).

    python benchmarks/bench_hebbian.py                 # CPU, 1 thread, 15 repeats
    python benchmarks/bench_hebbian.py --device cuda --repeats 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from neurolp.layers.hebbian import BioConv2d, normalise_step, rank_activations


@torch.no_grad()
def unfold_step(layer: BioConv2d, x: torch.Tensor, lr: float) -> float:
    """The rule on unfolded patches: currents, competition and Hebbian term as matrix products."""
    xn = F.batch_norm(x, layer.bn.running_mean, layer.bn.running_var, training=True,
                      momentum=layer.bn.momentum, eps=layer.bn.eps)
    o = layer.out_channels
    patches = F.unfold(xn, layer.kernel_size, dilation=layer.dilation, padding=layer.padding,
                       stride=layer.stride)                                    # [B, C·K², L]
    patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])            # [B·L, C·K²]
    w = layer.weight.view(o, -1)
    cur = patches @ layer.lp_weight().view(o, -1).t()                          # [B·L, O]
    g = rank_activations(cur, layer.ranking_param, layer.delta, dim=1)
    dw = g.t() @ patches - (g * cur).sum(0)[:, None] * w
    layer.weight.add_(normalise_step(dw.view_as(layer.weight), layer.step_norm), alpha=lr)
    return layer.convergence()


def make(device, dtype=torch.float32):
    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32, device=device, dtype=dtype)
    conv = torch.nn.Conv2d(3, 96, 5, bias=False).to(device, dtype)
    bio = BioConv2d(3, 96, 5, lebesgue_p=2, ranking_param=9, delta=0.08).to(device, dtype)
    bio_w = BioConv2d(3, 96, 5, lebesgue_p=2, ranking_param=9, delta=0.08, hebbian="wgrad").to(device, dtype)
    return x, {
        "conv2d forward": lambda: conv(x),
        "hebbian conv": lambda: bio.training_step(x, 1e-4),
        "hebbian wgrad": lambda: bio_w.training_step(x, 1e-4),
        "unfold": lambda: unfold_step(bio, x, 1e-4),
    }


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_all(device, repeats: int, warmup: int = 3) -> dict[str, list[float]]:
    _, fns = make(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times = {k: [] for k in fns}
    for r in range(repeats):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))   # alternate A/B/C/D, D/C/B/A
        for k in order:
            _sync(device)
            t0 = time.perf_counter()
            fns[k]()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return times


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_memory(device, name: str) -> float:
    """MiB above the inputs and layers, for one method alone."""
    if device.type == "cuda":
        x, fns = make(device)
        fns[name]()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fns[name]()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    # A fresh process; after building the inputs and one warm-up call, reset the peak resident set
    # (writing 5 to /proc/self/clear_refs resets VmHWM) and read it back after three calls.
    code = ("import torch, sys; sys.path.insert(0, 'benchmarks'); torch.set_num_threads(1);"
            "from bench_hebbian import make, _status_kib; x, fns = make(torch.device('cpu'));"
            f"fns[{name!r}]();"
            "open('/proc/self/clear_refs', 'w').write('5'); base = _status_kib('VmRSS');"
            f"[fns[{name!r}]() for _ in range(3)];"
            "print((_status_kib('VmHWM') - base) / 1024)")
    # Large blocks straight from mmap, so freed tensors leave the resident set at once.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


@torch.no_grad()
def breakdown(device, repeats: int) -> dict[str, float]:
    """Median ms of the parts of one conv-trick update (same layer and batch)."""
    from neurolp.layers.hebbian import conv_hebbian

    x, _ = make(device)
    bio = BioConv2d(3, 96, 5, lebesgue_p=2, ranking_param=9, delta=0.08).to(device)
    cur = bio.currents(x)
    g = rank_activations(cur, 9, 0.08, dim=1)
    parts = {
        "currents (conv)": lambda: bio.currents(x),
        "rank-k competition": lambda: rank_activations(cur, 9, 0.08, dim=1),
        "Hebbian term, conv trick": lambda: conv_hebbian(x, g, 5, 1, 1, 1, "conv"),
        "Hebbian term, wgrad": lambda: conv_hebbian(x, g, 5, 1, 1, 1, "wgrad"),
        "Hebbian term, unfold": lambda: conv_hebbian(x, g, 5, 1, 1, 1, "unfold"),
        "normalisation term": lambda: (g * cur).sum((0, 2, 3)),
    }
    times = {k: [] for k in parts}
    for fn in parts.values():
        fn()
    for _ in range(repeats):
        for k, fn in parts.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    times = time_all(device, args.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    ref, unf = med["conv2d forward"], med["unfold"]
    rows = []
    print(f"BioConv2d(3, 96, 5), batch 64, 32×32, {args.device}, {args.threads} thread(s), "
          f"median of {args.repeats} alternated repeats")
    print(f"{'method':<16} {'ms':>9} {'× conv2d fwd':>13} {'unfold ÷ it':>12} {'peak MiB':>9}")
    for k, t in med.items():
        mem = peak_memory(device, k)
        rows.append({"method": k, "ms": 1e3 * t, "x_conv_forward": t / ref, "unfold_speedup": unf / t,
                     "peak_mib": mem})
        print(f"{k:<16} {1e3 * t:9.2f} {t / ref:13.2f} {unf / t:12.2f} {mem:9.1f}")
    print(f"targets (slides): Hebbian update ≤ 3× a Conv2d forward; ≥ 5× faster than unfold. "
          f"Measured: conv trick {med['hebbian conv'] / ref:.2f}× / {unf / med['hebbian conv']:.2f}×, "
          f"wgrad {med['hebbian wgrad'] / ref:.2f}× / {unf / med['hebbian wgrad']:.2f}×")
    parts = breakdown(device, max(3, args.repeats // 3))
    print("parts of one conv-trick update (ms): " + "; ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"methods": rows, "parts_ms": parts}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
