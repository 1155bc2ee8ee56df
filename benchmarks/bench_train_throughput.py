"""Training throughput (images/s) of base vs large vs lp2 ResNet-18 at 32×32, measured side by side.

One full training step per iteration (forward, cross-entropy, backward, AdamW step, and for Lp
models the p projection `constrain_lp_`) on a fixed random batch, so data loading is not measured.
The variants are alternated within every round (round r runs them in a rotated order) and each
variant's throughput is the median over rounds, so slow drifts of a shared machine hit all of
them alike. Ratios are against `base`.

On CUDA the step runs under bf16 autocast with channels_last inputs and weights (what `neurolp
train` does there); `--compile` adds torch.compile.

    python benchmarks/bench_train_throughput.py                    # CPU (or CUDA when present)
    python benchmarks/bench_train_throughput.py --device cuda --batch-size 128 --compile
"""

from __future__ import annotations

import argparse
import statistics
import time


def _step_fn(name, args, device):
    import torch
    import torch.nn.functional as F

    from neurolp.layers import constrain_lp_
    from neurolp.models import create_model
    from neurolp.train.augment import param_groups

    torch.manual_seed(0)
    model = create_model(name, num_classes=100, image_size=args.image_size).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
    fwd = torch.compile(model) if args.compile else model
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (args.batch_size,), device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else None

    def step():
        if amp is not None:
            with amp:
                loss = F.cross_entropy(fwd(x), y)
        else:
            loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        constrain_lp_(model)

    return step


def main(argv=None) -> int:
    import torch

    from neurolp.utils.runtime import resolve_device

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--variants", nargs="+", default=["base", "large", "lp2"])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=None, help="default 32 on CPU, 128 on CUDA")
    p.add_argument("--steps", type=int, default=None, help="steps per variant per round (default 3 CPU, 20 CUDA)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--csv", help="also write the per-round measurements here")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    args.batch_size = args.batch_size or (128 if cuda else 32)
    args.steps = args.steps or (20 if cuda else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    names = [f"{v}-{args.arch}" for v in args.variants]
    steps = {n: _step_fn(n, args, device) for n in names}
    for n in names:
        for _ in range(args.warmup):
            steps[n]()
    sync()
    rates: dict[str, list[float]] = {n: [] for n in names}
    rows = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[n]()
            sync()
            dt = time.perf_counter() - t0
            rates[n].append(args.batch_size * args.steps / dt)
            rows.append({"round": r, "model": n, "seconds": dt, "images_per_s": rates[n][-1]})
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"{args.arch} training throughput at {args.image_size}×{args.image_size}, batch "
          f"{args.batch_size}, {where}{', bf16 + channels_last' if cuda else ''}"
          f"{', compiled' if args.compile else ''}; median of {args.rounds} rounds × {args.steps} steps")
    base = statistics.median(rates[names[0]])
    print(f"{'model':<20}{'images/s':>12}{'ms/step':>10}{'vs ' + names[0]:>18}")
    for n in names:
        med = statistics.median(rates[n])
        print(f"{n:<20}{med:>12.1f}{1000 * args.batch_size / med:>10.1f}{med / base:>17.2f}×")
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
