"""Locally connected layers vs the convolutions they replace (Pogodin et al. 2021), side by side.

For each layer shape of the CIFAR ResNet-20 at 32×32 (batch 32 by default) and for the whole
network (``base-resnet20`` vs ``lc-resnet20``), one training step — forward + backward of a sum of
squares (layers) or of the cross-entropy (networks) — is timed for

* ``conv``    the ``nn.Conv2d``;
* ``lc``      :class:`~neurolp.layers.LocallyConnected2d` computing the same function, unchunked;
* ``lc/c{n}`` the same, ``chunk_rows=n`` (n output rows at a time, recomputed in the backward pass).

Times alternate the variants round by round in one process; the table shows medians and the median
of the per-round ratios to the conv. Peak memory is the growth of the resident-set high-water mark
during one step in a fresh subprocess per variant, after a warm-up step (VmHWM reset through
``/proc/self/clear_refs``, minus VmRSS before the step; glibc's mmap threshold fixed so freed
tensors leave the RSS at once); on CUDA, ``max_memory_allocated`` growth.
Parameters (the LC kernels: H_out·W_out copies of the conv's) are allocated before the step and not
counted in the growth; their gradient is.

Run: ``PYTHONPATH=. python benchmarks/bench_local.py [--rounds 7] [--batch 32] [--chunk 4]``.
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
from torch import nn

from neurolp.layers import LocallyConnected2d
from neurolp.models import create_model

# (name, in, out, stride, input size): every distinct 3×3 conv shape of ResNet-20 after the stem
LAYERS = [("s1 16→16", 16, 16, 1, 32), ("s2 16→32/2", 16, 32, 2, 32), ("s2 32→32", 32, 32, 1, 16),
          ("s3 32→64/2", 32, 64, 2, 16), ("s3 64→64", 64, 64, 1, 8)]


def _layer(kind: str, spec, device) -> nn.Module:
    _, cin, cout, stride, size = spec
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False).to(device)
    if kind == "conv":
        return conv
    chunk = int(kind.split("/c")[1]) if "/c" in kind else None
    return LocallyConnected2d.from_conv(conv, size, chunk_rows=chunk)


def _model(kind: str, device) -> nn.Module:
    torch.manual_seed(0)
    if kind == "conv":
        return create_model("base-resnet20", 10, 32).to(device).train()
    chunk = int(kind.split("/c")[1]) if "/c" in kind else None
    return create_model("lc-resnet20", 10, 32, convert_kwargs={"chunk_rows": chunk}).to(device).train()


def _inputs(target: str, batch: int, device):
    torch.manual_seed(1)
    if target == "resnet20":
        return torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    spec = LAYERS[int(target)]
    return torch.randn(batch, spec[1], spec[4], spec[4], device=device, requires_grad=True), None


def _step(module, x, y) -> None:
    out = module(x)
    loss = nn.functional.cross_entropy(out, y) if y is not None else out.square().sum()
    loss.backward()
    module.zero_grad(set_to_none=True)
    if x.requires_grad:
        x.grad = None


def _build(target: str, kind: str, device) -> nn.Module:
    return _model(kind, device) if target == "resnet20" else _layer(kind, LAYERS[int(target)], device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _times(target: str, kinds, batch: int, rounds: int, device) -> dict[str, list[float]]:
    mods = {k: _build(target, k, device) for k in kinds}
    x, y = _inputs(target, batch, device)
    times = {k: [] for k in kinds}
    for k in kinds:  # warm-up
        _step(mods[k], x, y)
    for r in range(rounds):
        for k in (kinds if r % 2 == 0 else kinds[::-1]):
            _sync(device)
            t = time.perf_counter()
            _step(mods[k], x, y)
            _sync(device)
            times[k].append(time.perf_counter() - t)
    return times


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith(field + ":")).split()[1]) * 1024


def _peak_child(target: str, kind: str, batch: int) -> None:
    device = torch.device("cpu")
    mod = _build(target, kind, device)
    x, y = _inputs(target, batch, device)
    _step(mod, x, y)  # warm-up: lazy imports and kernel caches are not the step's memory
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
        fh.write("5")
    before = _status("VmRSS")
    _step(mod, x, y)
    print(json.dumps({"growth": _status("VmHWM") - before}))


def _peak(target: str, kind: str, batch: int, device) -> int:
    if device.type == "cuda":
        mod = _build(target, kind, device)
        x, y = _inputs(target, batch, device)
        _step(mod, x, y)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _step(mod, x, y)
        return torch.cuda.max_memory_allocated() - before
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, __file__, "--child", target, kind, "--batch", str(batch)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["growth"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=4, help="chunk_rows of the chunked variant")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _peak_child(*args.child, args.batch)
    device = torch.device(args.device)
    kinds = ["conv", "lc", f"lc/c{args.chunk}"]
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"{args.rounds} rounds; fwd+bwd time (median ms) and peak memory growth of one step (MiB)")
    head = f"{'layer':<14}" + "".join(f"{k + ' ms':>12}" for k in kinds) + "".join(
        f"{k + ' MiB':>12}" for k in kinds) + f"{'lc/conv t':>11}{'chunk/lc t':>11}{'chunk/lc mem':>13}"
    print(head)
    rows = []
    for target, name in [(str(i), spec[0]) for i, spec in enumerate(LAYERS)] + [("resnet20", "ResNet-20")]:
        t = _times(target, kinds, args.batch, args.rounds, device)
        mem = {k: _peak(target, k, args.batch, device) for k in kinds}
        med = {k: statistics.median(v) * 1e3 for k, v in t.items()}

        def ratio(a, b, t=t):
            return statistics.median(x / y for x, y in zip(t[a], t[b]))

        row = {"layer": name, **{f"{k}_ms": med[k] for k in kinds}, **{f"{k}_MiB": mem[k] / 2**20 for k in kinds},
               "lc_over_conv_time": ratio("lc", "conv"), "chunk_over_lc_time": ratio(kinds[2], "lc"),
               "chunk_over_lc_mem": mem[kinds[2]] / mem["lc"] if mem["lc"] > 0 else float("nan")}
        rows.append(row)
        print(f"{name:<14}" + "".join(f"{med[k]:12.1f}" for k in kinds)
              + "".join(f"{mem[k] / 2**20:12.1f}" for k in kinds)
              + f"{row['lc_over_conv_time']:11.1f}{row['chunk_over_lc_time']:11.2f}{row['chunk_over_lc_mem']:13.2f}",
              flush=True)


if __name__ == "__main__":
    main()
