"""Tiny MMV1 sessions written in the published layout, with arrays the tests can predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurolp.mmv1.layout import ALL_KEYS, BEHAVIOUR_KEYS, VIDEO_KEYS, segment_file


def write_session(root: Path, name: str = "s1", *, segments: int = 2, t_train: int = 20, t_test: int = 10,
                  rates_per_bin=(0.3, 0.05, 0.2), frame_size=(8, 10), seed: int = 0,
                  keys=ALL_KEYS, overrides: dict | None = None) -> Path:
    """A session whose frames encode their global bin index (frame value = bin index everywhere) and
    whose spike counts have exact per-neuron means ``rates_per_bin`` on the training parts."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}
    t0 = 0
    for seg in range(segments):
        for split, t in (("train", t_train), ("test", t_test)):
            bins = np.arange(t0, t0 + t)
            t0 += t
            arrays = {}
            counts = np.zeros((t, len(rates_per_bin)))
            for j, r in enumerate(rates_per_bin):  # exactly round(r * t) spikes, placed at random
                k = int(round(r * t))
                counts[rng.choice(t, size=k, replace=False), j] = 1
            arrays["nsp"] = counts
            for v in VIDEO_KEYS:
                arrays[v] = np.broadcast_to(bins[:, None, None], (t, *frame_size)).astype(np.float32).copy()
            for i, b in enumerate(BEHAVIOUR_KEYS):
                arrays[b] = (bins + 1000 * i).astype(np.float64)
            for key in keys:
                arr = overrides.get((split, key, seg), arrays[key])
                if arr is None:
                    continue
                np.save(segment_file(folder, split, key, seg), arr)
    return folder
