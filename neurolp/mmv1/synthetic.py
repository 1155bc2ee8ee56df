"""A synthetic MMV1 data set in the published layout, from a known stimulus → response model.

Used by ``neurolp mmv1 fit --synthetic`` and the tests, so the whole path (loader, model, training,
metrics, outputs) runs without the OSF data. Nothing here is meant to resemble the recorded
statistics beyond the layout and rough magnitudes.

Per session, one continuous recording of ``segments × bins_per_segment`` 48-ms bins is generated and
cut like the published data: ``segments`` consecutive pieces, each split 70 / 30 in time into
``train_*`` and ``test_*`` files.

* **Frames** (60 × 80, uint8): spatially smooth noise (white noise on a coarse grid, bilinearly
  upsampled) evolving as an AR(1) process (``frame_rho`` per bin: slow drift, as a head camera sees
  when the mouse moves), ``vid_middle`` with a little extra pixel noise, ``vid_shift_*`` the same
  frames shifted by the eye position.
* **Behaviour**: running speed ≥ 0 (slow AR(1) through a softplus, cm/s), head pitch/roll, eye φ/θ
  (deg, with NaN drop-outs as in eye tracking), pupil radius.
* **Neurons** (linear–nonlinear–Poisson with a running gain): each neuron has a Gaussian receptive
  field (ON or OFF) at a random place; its drive is the RF's dot product with the previous bin's
  frame (z-scored), and its rate is ``r0 · exp(k · drive) · (1 + g · speed / mean speed)``; spike
  counts are Poisson with mean ``rate · 48 ms``. A quarter of the neurons fire below 3 Hz (what the
  rate rule should drop). The expected counts are written as ``truth_{split}_rate_seg_<i>.npy``
  (ignored by the loader) for an oracle cc: what a perfect model would reach.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from neurolp.mmv1.layout import BIN_MS, segment_file

__all__ = ["SyntheticSpec", "make_synthetic_dataset", "SESSION_NAMES", "truth_file", "oracle_counts"]

SESSION_NAMES = ("syn01_M1", "syn02_M2", "syn03_M3")


@dataclass(frozen=True)
class SyntheticSpec:
    sessions: int = 2
    segments: int = 10
    bins_per_segment: int = 120
    neurons: int = 12
    frame_size: tuple[int, int] = (60, 80)
    frame_rho: float = 0.95        # AR(1) coefficient of the movie per bin
    rf_sigma: float = 7.0          # receptive-field width, pixels
    visual_gain: float = 0.8       # k in exp(k · drive)
    speed_gain: float = 1.0        # g in (1 + g · speed / mean speed)
    low_rate_fraction: float = 0.25
    train_fraction: float = 0.7
    nan_fraction: float = 0.02     # eye-tracking drop-outs in phi / th
    seed: int = 0


def truth_file(session_dir: str | Path, split: str, seg: int) -> Path:
    return Path(session_dir) / f"truth_{split}_rate_seg_{seg}.npy"


def _ar1(rng, n: int, shape, rho: float) -> np.ndarray:
    out = np.empty((n, *shape))
    x = rng.standard_normal(shape)
    s = np.sqrt(1 - rho ** 2)
    for t in range(n):
        x = rho * x + s * rng.standard_normal(shape)
        out[t] = x
    return out


def _upsample(coarse: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of [T, h, w] to [T, H, W] (separable linear interpolation)."""
    t, h, w = coarse.shape
    H, W = size
    ys, xs = np.linspace(0, h - 1, H), np.linspace(0, w - 1, W)
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 2)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 2)
    fy, fx = (ys - y0)[None, :, None], (xs - x0)[None, None, :]
    rows = coarse[:, y0] * (1 - fy) + coarse[:, y0 + 1] * fy
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x0 + 1] * fx


def _session(spec: SyntheticSpec, rng: np.random.Generator):
    n = spec.segments * spec.bins_per_segment
    H, W = spec.frame_size
    coarse = _ar1(rng, n, (max(2, H // 4), max(2, W // 4)), spec.frame_rho)
    movie = _upsample(coarse, (H, W))
    movie = (movie - movie.mean()) / movie.std()
    frames = np.clip(128 + 40 * movie, 0, 255)

    speed = 8.0 * np.log1p(np.exp(2.0 * _ar1(rng, n, (), 0.99) - 0.5))    # cm/s, slow bouts
    pitch = 10 * _ar1(rng, n, (), 0.97)
    roll = 8 * _ar1(rng, n, (), 0.97)
    phi = 6 * _ar1(rng, n, (), 0.9)
    th = 5 * _ar1(rng, n, (), 0.9)
    eyerad = 20 + 3 * _ar1(rng, n, (), 0.98)

    # receptive fields and LNP rates (the drive at bin t comes from the frame of bin t-1)
    yy, xx = np.mgrid[0:H, 0:W]
    cy = rng.uniform(0.2 * H, 0.8 * H, spec.neurons)
    cx = rng.uniform(0.2 * W, 0.8 * W, spec.neurons)
    sign = rng.choice([-1.0, 1.0], spec.neurons)
    rfs = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                 / (2 * spec.rf_sigma ** 2)) * sign[:, None, None]
    drive = np.einsum("thw,nhw->tn", frames / 255.0, rfs)
    drive = (drive - drive.mean(0)) / (drive.std(0) + 1e-12)
    drive = np.concatenate([drive[:1], drive[:-1]])          # one-bin latency
    low = rng.random(spec.neurons) < spec.low_rate_fraction
    r0 = np.where(low, rng.uniform(0.3, 1.2, spec.neurons), rng.uniform(4.0, 10.0, spec.neurons))
    run = np.concatenate([speed[:1], speed[:-1]]) / speed.mean()
    rate_hz = r0 * np.exp(spec.visual_gain * drive - spec.visual_gain ** 2 / 2) * \
        (1 + spec.speed_gain * run[:, None]) / (1 + spec.speed_gain)
    expected = rate_hz * BIN_MS / 1000.0
    spikes = rng.poisson(expected).astype(np.float64)

    for x in (phi, th):  # eye-tracking drop-outs: short NaN runs
        starts = rng.random(n) < spec.nan_fraction / 3
        for s in np.flatnonzero(starts):
            x[s:s + 3] = np.nan
    # eye-position-corrected frames: shift by (phi, th) in pixels
    dx = np.nan_to_num(phi).round().astype(int)
    dy = np.nan_to_num(th).round().astype(int)
    shifted = np.stack([np.roll(frames[t], (dy[t], dx[t]), axis=(0, 1)) for t in range(n)])
    middle = np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255)
    videos = {"vid_mean": frames, "vid_middle": middle, "vid_shift_mean": shifted,
              "vid_shift_middle": np.clip(shifted + (middle - frames), 0, 255)}
    arrays = {"nsp": spikes, **{k: v.astype(np.uint8) for k, v in videos.items()}, "speed": speed,
              "pitch": pitch, "roll": roll, "phi": phi, "th": th, "eyerad": eyerad}
    truth = {"rf_centre_yx": np.stack([cy, cx], 1).round(2).tolist(), "rf_sign": sign.tolist(),
             "base_rate_hz": r0.round(3).tolist(), "low_rate": low.tolist()}
    return arrays, expected, truth


def make_synthetic_dataset(root: str | Path, spec: SyntheticSpec | None = None, **kwargs) -> list[str]:
    """Write ``spec.sessions`` sessions into ``root`` in the published layout; return their names.

    ``kwargs`` override fields of ``spec`` (e.g. ``make_synthetic_dataset(d, neurons=8)``).
    ``root/synthetic.json`` records the spec and each neuron's ground truth.
    """
    from dataclasses import replace

    from neurolp.utils.io import atomic_write, atomic_write_text

    spec = replace(spec or SyntheticSpec(), **kwargs)
    if not 1 <= spec.sessions <= len(SESSION_NAMES):
        raise ValueError(f"sessions must be in [1, {len(SESSION_NAMES)}], got {spec.sessions}")
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    n_train = int(round(spec.bins_per_segment * spec.train_fraction))
    record = {"spec": asdict(spec), "sessions": {}}
    names = list(SESSION_NAMES[:spec.sessions])
    for name in names:
        arrays, expected, truth = _session(spec, rng)
        folder = root / name
        for seg in range(spec.segments):
            a = seg * spec.bins_per_segment
            cuts = {"train": slice(a, a + n_train), "test": slice(a + n_train, a + spec.bins_per_segment)}
            for split, sl in cuts.items():
                for key, arr in arrays.items():
                    with atomic_write(segment_file(folder, split, key, seg)) as fh:
                        np.save(fh, np.ascontiguousarray(arr[sl]))
                with atomic_write(truth_file(folder, split, seg)) as fh:
                    np.save(fh, expected[sl].astype(np.float32))
        record["sessions"][name] = truth
    atomic_write_text(root / "synthetic.json", json.dumps(record, indent=1) + "\n")
    return names



def oracle_counts(root: str | Path, session: str, test_dataset, neurons) -> np.ndarray:
    """The generator's expected counts at every test window's target bin, for the kept ``neurons``:
    the predictions of a perfect model (its cc is the ceiling a fitted model can approach)."""
    from neurolp.errors import DataNotFoundError

    folder = Path(root) / session
    cache: dict[int, np.ndarray] = {}
    rows = []
    for seg, b in test_dataset.target_bins():
        if seg not in cache:
            path = truth_file(folder, "test", int(seg))
            if not path.is_file():
                raise DataNotFoundError(f"{path} is missing: oracle counts exist only for data made by "
                                        "neurolp.mmv1.make_synthetic_dataset")
            cache[seg] = np.load(path, allow_pickle=False)
        rows.append(cache[seg][b])
    return np.asarray(rows, dtype=np.float64)[:, np.asarray(neurons)]
