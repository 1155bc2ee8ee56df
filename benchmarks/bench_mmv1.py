"""MMV1 training throughput and peak memory: base vs lp2 (and any other variants), side by side.

One training step = what :class:`neurolp.mmv1.fit.MMV1Task` does per batch: shifter warp, visual
encoder on every frame of the window, behaviour encoder, GRU, Poisson NLL + L1, backward, Adam
step, Lp-mask projection. Batches are fixed random tensors of the real shapes (seq_len 4, 60×80
frames, 66 behaviour features, 68 neurons: mouse 070921_J553RT), so the numbers measure the model,
not the disk; ``--loader`` adds the windows/s of the memory-mapped data path on a generated session.

Times alternate the variants round by round in one process and report medians (and the median of
per-round ratios against the first variant). CPU peak memory is the resident-set high-water mark
(VmHWM) of a fresh subprocess per variant doing one step; on CUDA ``max_memory_allocated``.

    python benchmarks/bench_mmv1.py                         # quick preset width, batch 32, CPU
    python benchmarks/bench_mmv1.py --preset paper --batch 256 --variants base lp2 large   # GPU
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

import neurolp.mmv1.model  # noqa: F401  (registers mmv1)
from neurolp.layers import constrain_lp_
from neurolp.mmv1.fit import PRESETS
from neurolp.models import count_params, create_model

N_NEURONS, BEHAV, SEQ = 68, 66, 4


def _build(variant: str, preset: str, device):
    p = PRESETS[preset]
    torch.manual_seed(0)
    m = create_model(f"{variant}-mmv1", num_classes=N_NEURONS, behav_dim=BEHAV, seq_len=SEQ,
                     channels=p["channels"], hidden_size=p["hidden_size"], dropout=p["dropout"]).to(device)
    return m.train(), torch.optim.Adam(m.parameters(), lr=p["lr"])


def _batch(n: int, device):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, SEQ, 1, 60, 80, generator=g).to(device),
            torch.randn(n, SEQ, BEHAV, generator=g).to(device),
            torch.randn(n, SEQ, 4, generator=g).to(device),
            torch.poisson(torch.full((n, N_NEURONS), 0.3), generator=g).to(device))


def _step(model, opt, batch) -> None:
    frames, behav, shift, y = batch
    loss = F.poisson_nll_loss(model(frames, behav, shift), y, log_input=False) + model.behaviour_l1()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    constrain_lp_(model)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(next(ln for ln in fh if ln.startswith(field + ":")).split()[1]) * 1024


def _peak_child(variant: str, preset: str, batch: int) -> None:
    device = torch.device("cpu")
    model, opt = _build(variant, preset, device)
    b = _batch(batch, device)
    before = _status("VmRSS")
    _step(model, opt, b)
    print(json.dumps({"before": before, "peak": _status("VmHWM")}))


def _peak(variant: str, preset: str, batch: int, device) -> dict:
    if device.type == "cuda":
        model, opt = _build(variant, preset, device)
        b = _batch(batch, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _step(model, opt, b)
        torch.cuda.synchronize()
        return {"before": before, "peak": torch.cuda.max_memory_allocated()}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, __file__, "--child", variant, "--preset", preset, "--batch",
                          str(batch)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _loader_rate(batch: int) -> float:
    import tempfile

    from torch.utils.data import DataLoader

    from neurolp.mmv1 import DataOptions, load_session, make_synthetic_dataset

    with tempfile.TemporaryDirectory() as d:
        make_synthetic_dataset(d, sessions=1, bins_per_segment=200, neurons=N_NEURONS)
        s = load_session(d, "syn01_M1", DataOptions(min_rate_hz=0))
        dl = DataLoader(s.train, batch_size=batch, shuffle=True)
        t = time.perf_counter()
        n = sum(len(b[0]) for b in dl)
        return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["base", "lp2"])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--loader", action="store_true", help="also time the memory-mapped window loader")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _peak_child(args.child, args.preset, args.batch)

    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, preset "
          f"{args.preset} {PRESETS[args.preset]['channels']}, batch {args.batch}, seq_len {SEQ}, "
          f"{N_NEURONS} neurons, {BEHAV} behaviour features, {args.rounds} rounds")
    models = {v: _build(v, args.preset, device) for v in args.variants}
    batch = _batch(args.batch, device)
    for m, o in models.values():  # warm-up
        _step(m, o, batch)
    times = {v: [] for v in models}
    for r in range(args.rounds):
        for v in (args.variants if r % 2 == 0 else list(reversed(args.variants))):
            _sync(device)
            t = time.perf_counter()
            _step(*models[v], batch)
            _sync(device)
            times[v].append(time.perf_counter() - t)
    ref = args.variants[0]
    for v in args.variants:
        med = statistics.median(times[v])
        ratio = statistics.median(tv / tr for tv, tr in zip(times[v], times[ref]))
        mem = _peak(v, args.preset, args.batch, device)
        print(f"{v:>6}: {args.batch / med:8.1f} windows/s   step {med * 1e3:8.1f} ms   time × {ratio:5.2f} vs "
              f"{ref}   peak memory {mem['peak'] / 2**20:8.1f} MiB (step adds "
              f"{(mem['peak'] - mem['before']) / 2**20:.1f})   params {count_params(models[v][0]):,}")
    if args.loader:
        print(f"loader: {_loader_rate(args.batch):.0f} windows/s (memory-mapped uint8 videos, shuffled)")


if __name__ == "__main__":
    main()
