"""Sudoku throughput: puzzles generated per second, and training puzzles per second per variant.

1. Generation: :func:`neurolp.sudoku.generate_puzzles` (unique solutions, seeded) for ``--n``
   puzzles with ``--blanks``, with 1 and with ``--jobs`` worker processes (median of ``--rounds``).
2. Training: one full step per iteration (forward, cross-entropy over 81 cells, backward, Adam, the
   p ≥ 2 projection for Lp variants) of SudokuCNN ``depth × width`` on a fixed batch of encoded
   puzzles; the five variants are alternated within every round (round r rotates the order) and
   each variant's rate is the median over rounds, so drifts of a shared machine hit all alike.
   Ratios are against ``base``.

    python benchmarks/bench_sudoku.py                                  # quick-preset model, CPU
    python benchmarks/bench_sudoku.py --depth 10 --width 256 --device cuda --batch-size 100
"""

from __future__ import annotations

import argparse
import statistics
import time

VARIANTS = ["base", "large", "lp2", "lp16", "lp256f"]


def bench_generation(args) -> None:
    from neurolp.sudoku.generate import generate_puzzles

    generate_puzzles(200, args.blanks, seed=99)  # warm-up
    for jobs in sorted({1, args.jobs}):
        times = []
        for r in range(args.rounds):
            t0 = time.perf_counter()
            generate_puzzles(args.n, args.blanks, seed=r, jobs=jobs)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"generation: {args.n} puzzles, blanks {args.blanks}, {jobs} job(s): "
              f"{args.n / med:.0f} puzzles/s (median of {args.rounds}; {med:.1f} s)")


def _step_fn(variant, args, device, q, s):
    import torch
    import torch.nn.functional as F

    from neurolp.layers import constrain_lp_
    from neurolp.sudoku.grid import encode_quizzes, encode_targets
    from neurolp.sudoku.train import sudoku_model

    torch.manual_seed(0)
    model = sudoku_model(variant, args.depth, args.width).to(device)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x, y = encode_quizzes(q).to(device), encode_targets(s).to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else None

    def step():
        if amp is not None:
            with amp:
                loss = F.cross_entropy(model(x).float(), y)
        else:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        constrain_lp_(model)

    return step


def bench_training(args) -> None:
    import torch

    from neurolp.sudoku.generate import generate_puzzles
    from neurolp.utils.runtime import resolve_device

    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    q, s = generate_puzzles(args.batch_size, args.blanks, seed=0)
    steps = {v: _step_fn(v, args, device, q, s) for v in args.variants}
    for v in args.variants:
        for _ in range(args.warmup):
            steps[v]()
    sync()
    rates = {v: [] for v in args.variants}
    for r in range(args.rounds):
        order = args.variants[r % len(args.variants):] + args.variants[: r % len(args.variants)]
        for v in order:
            sync()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                steps[v]()
            sync()
            rates[v].append(args.batch_size * args.steps / (time.perf_counter() - t0))
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"training: SudokuCNN {args.depth} x {args.width}, batch {args.batch_size}, {where}; "
          f"median of {args.rounds} rounds x {args.steps} steps")
    base = statistics.median(rates[args.variants[0]])
    print(f"{'variant':<10}{'puzzles/s':>12}{'ms/step':>10}{'vs ' + args.variants[0]:>12}")
    for v in args.variants:
        med = statistics.median(rates[v])
        print(f"{v:<10}{med:>12.1f}{1000 * args.batch_size / med:>10.1f}{med / base:>11.2f}x")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4096, help="puzzles per generation round")
    p.add_argument("--blanks", default="40-60")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=VARIANTS)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--width", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--skip-generation", action="store_true")
    p.add_argument("--skip-training", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.skip_generation:
        bench_generation(args)
    if not args.skip_training:
        bench_training(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
