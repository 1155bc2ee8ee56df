"""Full ``neurolp rsa`` timing on a synthetic Allen cache sized like the paper's selection.

Cache (written once into --cache, reused afterwards): 5 areas (VISal VISam VISl VISp VISpm),
60 mouse × area populations (16/13/11/10/10 mice per area; about half of the mice imaged at two
depths, 175 and 275 µm, i.e. two containers), 100–250 neurons per container, 50 trials of each of
the 118 images, 7-frame presentations (as the real sessions), L0 events, full-size 918×1174
templates. The Allen API cannot be reached here, so the mouse and neuron counts are estimates
(see the module constants).

Then, in one process: ``neurolp rsa --model lp2-resnet18 --untrained --image-size 64`` (the paper's
TinyImageNet input size; all 20 conv layers), default preset, 1000 bootstrap samples — first with
the response artefact being built from the NWB/event files, then again with it cached (the
steady state). Prints wall times and the per-stage timings.

    python benchmarks/bench_rsa.py [--cache DIR] [--bootstrap 1000] [--model lp2-resnet18]
        [--image-size 64] [--threads N] [--skip-first]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MICE_PER_AREA = {"VISp": 16, "VISl": 13, "VISal": 11, "VISpm": 10, "VISam": 10}
CRES = ("Cux2-CreERT2", "Emx1-IRES-Cre", "Slc17a7-IRES2-Cre")


def build_cache(root: Path, seed: int = 0) -> dict:
    from allen_fixtures import (ContainerSpec, write_catalog, write_events, write_manifest,
                                write_nwb)

    rng = np.random.default_rng(seed)
    specs = []
    cid = 600
    for area, n_mice in MICE_PER_AREA.items():
        for m in range(n_mice):
            mouse = str(300000 + len(specs) * 7 + m)
            cre = CRES[int(rng.integers(0, 3))]
            depths = (175, 275) if rng.random() < 0.5 else (int(rng.choice([175, 275])),)
            for d in depths:
                specs.append(ContainerSpec(cid, mouse, area, d, cre, int(rng.integers(100, 251))))
                cid += 1
    write_manifest(root)
    write_catalog(root, specs)
    t = time.perf_counter()
    for k, c in enumerate(specs):
        eid = c.experiment_id()
        _, ev = write_nwb(root / f"ophys_experiment_data/{eid}.nwb", c, reps=50, sweep=7,
                          noise=1.0, seed=seed, hw=(918, 1174), dff=False, with_templates=(k == 0))
        write_events(root / f"ophys_experiment_events/{eid}_events.npz", ev)
    info = {"containers": len(specs), "mouse_area_populations": sum(MICE_PER_AREA.values()),
            "neurons": int(sum(c.n_cells for c in specs)), "build_s": round(time.perf_counter() - t, 1)}
    (root / "bench_info.json").write_text(json.dumps(info))
    return info


def run_cli(cache: Path, out: Path, args) -> tuple[float, dict]:
    from neurolp.cli import main

    argv = ["rsa", "--model", args.model, "--untrained", "--image-size", str(args.image_size),
            "--allen-cache", str(cache), "--bootstrap", str(args.bootstrap), "--out", str(out),
            "--no-progress"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    t = time.perf_counter()
    rc = main(argv)
    wall = time.perf_counter() - t
    if rc != 0:
        raise SystemExit(f"neurolp rsa failed with status {rc}")
    return wall, json.loads((out / "run.json").read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", help="where the synthetic cache lives (default: a temp dir, removed)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--model", default="lp2-resnet18")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="τ threads (0: all CPUs)")
    ap.add_argument("--skip-first", action="store_true", help="only time the cached-artefact run")
    args = ap.parse_args(argv)

    tmp = None
    if args.cache:
        cache = Path(args.cache)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="neurolp_bench_rsa_"))
        cache = tmp / "allen"
    try:
        if not (cache / "bench_info.json").is_file():
            print(f"building the synthetic cache in {cache} (not timed) ...", flush=True)
            cache.mkdir(parents=True, exist_ok=True)
            info = build_cache(cache)
        else:
            info = json.loads((cache / "bench_info.json").read_text())
        print(f"cache: {info['containers']} containers, {info['mouse_area_populations']} mouse × area "
              f"populations, {info['neurons']} neurons, 118 images × 50 trials; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        import torch

        from neurolp.rsa.kendall import kernel_backend

        print(f"torch threads {torch.get_num_threads()}, Kendall kernel {kernel_backend()}")
        outs = tempfile.mkdtemp(prefix="neurolp_bench_out_")
        runs = []
        if not args.skip_first:
            from neurolp.brain.responses import clear_artefacts

            clear_artefacts(cache)
            runs.append(("first run (builds the response artefact)", *run_cli(cache, Path(outs) / "a", args)))
        runs.append(("steady state (artefact cached)", *run_cli(cache, Path(outs) / "b", args)))
        print(f"\nneurolp rsa --model {args.model} (untrained, {args.image_size} px), 5 areas, "
              f"{args.bootstrap} bootstrap samples:")
        for label, wall, run in runs:
            print(f"  {label}: {wall:.1f} s wall")
            for k, v in run["timings"].items():
                print(f"      {k:48s} {v:7.1f} s")
        shutil.rmtree(outs, ignore_errors=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
