"""MMV1 sessions as model inputs: neuron selection, behaviour features, NaN handling, frame
normalisation, and windows with a leak-free train / validation / test split.

Follows the authors' dataset (Xu et al. 2023, ``mouse_model/data_utils_new.py``) where it is
well defined and makes explicit, as options, what it hard-codes or leaves implicit:

* **Neurons** are kept by a rule, mean rate ≥ ``min_rate_hz`` (3 Hz) over the session's training
  parts, instead of the authors' hard-coded index lists (which give 68 / 32 / 49 neurons for
  070921_J553RT / 110421_J569LT / 101521_J559NC); ``neurons=`` selects columns explicitly.
* **Behaviour modes** (per bin): ``orig`` = (speed, pitch, roll, φ, θ, pupil radius) (6); ``velo`` =
  speed and the first differences of the other five (6); ``all`` = both (11); ``*_prod`` appends
  every pairwise product x_i·x_j, i < j (21, 21, 66). Differences are taken within a file with the
  first bin's difference 0 (the authors' ``np.diff(prepend=0)`` makes it the value itself).
* **NaN** in behaviour (eye tracking drops out) is ``"zero"`` (the authors' main dataset) or
  ``"interpolate"`` (linear, constant beyond the ends: their ``...NanInterp`` dataset), per file;
  counts are reported per key and split. NaN frame pixels become 0 after normalisation (counted);
  NaN or negative spike counts are an error.
* **Frames** are normalised by min/max to [0, 1] (``frame_range="01"``) or [−1, 1] (``"pm1"``),
  per file (``frame_norm="segment"``: the authors') or with the min/max of all the session's
  training files (``"session"``); the values used are recorded. Videos stay memory-mapped; a window
  reads only its own frames.
* **Windows**: frames and behaviour of bins ``[t, t+seq_len)`` predict the spikes of bin
  ``t + seq_len − 1 + predict_offset`` (offset 1: the next bin). Each segment's training part is cut
  in time into the first ``1 − val_fraction`` (training) and the rest (validation), and windows are
  built inside each piece, so no frame or target is shared across the cut (the authors split the
  window indices, so the last training windows overlap the first validation ones). Test windows
  cover each segment's test part; their targets, in order, are the test trace.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from neurolp.errors import ConfigError, DataFormatError
from neurolp.mmv1.layout import (BEHAVIOUR_KEYS, BIN_MS, SHIFTER_KEYS, SPLITS, VIDEO_KEYS, SessionFiles,
                                 list_sessions, open_array, scan_session)

__all__ = ["BEHAV_MODES", "NAN_POLICIES", "FRAME_NORMS", "FRAME_RANGES", "DataOptions", "SessionData",
           "WindowDataset", "load_session", "load_sessions", "fill_nans", "velocity",
           "pairwise_products", "behaviour_features", "behaviour_dim", "select_neurons"]

BEHAV_MODES = ("orig", "velo", "all", "orig_prod", "velo_prod", "all_prod")
NAN_POLICIES = ("zero", "interpolate")
FRAME_NORMS = ("segment", "session")
FRAME_RANGES = ("01", "pm1")
_VELO_KEYS = BEHAVIOUR_KEYS[1:]  # differenced in velo/all modes (speed is used as is)
_CHUNK = 512  # frames per block when scanning a memory-mapped video


@dataclass(frozen=True)
class DataOptions:
    """How a session becomes windows (defaults: the paper's Table 5 set-up, seq_len 4 = 192 ms)."""

    video: str = "vid_mean"
    behav_mode: str = "all_prod"
    seq_len: int = 4
    predict_offset: int = 1
    min_rate_hz: float = 3.0
    neurons: tuple[int, ...] | None = None
    nan: str = "zero"
    frame_norm: str = "segment"
    frame_range: str = "01"
    val_fraction: float = 0.2
    bin_ms: float = BIN_MS
    segments: tuple[int, ...] | None = None  # a subset of segments (reduced-scale runs)

    def validate(self) -> "DataOptions":
        from neurolp.utils.checks import check_choice, check_float, check_int

        check_choice(self.video, "video", VIDEO_KEYS, what="video key")
        check_choice(self.behav_mode, "behav_mode", BEHAV_MODES, what="behaviour mode")
        check_choice(self.nan, "nan", NAN_POLICIES, what="NaN policy")
        check_choice(self.frame_norm, "frame_norm", FRAME_NORMS, what="frame normalisation")
        check_choice(self.frame_range, "frame_range", FRAME_RANGES, what="frame range")
        check_int(self.seq_len, "seq_len", min=1, max=1000)
        check_int(self.predict_offset, "predict_offset", min=0, max=1000)
        check_float(self.min_rate_hz, "min_rate_hz", min=0)
        check_float(self.val_fraction, "val_fraction", min=0, max=0.9, min_open=True)
        check_float(self.bin_ms, "bin_ms", min=0, min_open=True)
        if self.neurons is not None and not self.neurons:
            raise ConfigError("neurons is empty; give column indices of nsp, or None for the rate rule")
        return self

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# --- behaviour ------------------------------------------------------------------------------------
def fill_nans(x: np.ndarray, policy: str) -> tuple[np.ndarray, int]:
    """``x`` (1-D) with NaNs replaced by 0 or by linear interpolation; and how many there were."""
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    n = int(nan.sum())
    if n == 0:
        return x.copy(), 0
    if policy == "zero" or n == len(x):
        return np.where(nan, 0.0, x), n
    idx = np.arange(len(x))
    out = x.copy()
    out[nan] = np.interp(idx[nan], idx[~nan], x[~nan])
    return out, n


def velocity(x: np.ndarray) -> np.ndarray:
    """First difference per bin, the first bin's set to 0."""
    x = np.asarray(x, dtype=np.float64)
    return np.diff(x, prepend=x[:1])


def pairwise_products(x: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Columns x_i·x_j for i < j (in that order), and their names ``"a*b"``."""
    i, j = np.triu_indices(x.shape[1], k=1)
    return x[:, i] * x[:, j], [f"{names[a]}*{names[b]}" for a, b in zip(i, j)]


def behaviour_features(raw: np.ndarray, mode: str) -> tuple[np.ndarray, list[str]]:
    """Features of one file's behaviour (``raw``: T × 6 in :data:`BEHAVIOUR_KEYS` order, NaN-free)."""
    if mode not in BEHAV_MODES:
        raise ConfigError(f"unknown behaviour mode {mode!r}; valid: {', '.join(BEHAV_MODES)}")
    diffs = np.stack([velocity(raw[:, 1 + k]) for k in range(len(_VELO_KEYS))], axis=1)
    dnames = [f"d_{k}" for k in _VELO_KEYS]
    base = mode.removesuffix("_prod")
    if base == "orig":
        x, names = raw, list(BEHAVIOUR_KEYS)
    elif base == "velo":
        x, names = np.concatenate([raw[:, :1], diffs], axis=1), ["speed", *dnames]
    else:
        x, names = np.concatenate([raw, diffs], axis=1), [*BEHAVIOUR_KEYS, *dnames]
    if mode.endswith("_prod"):
        prods, pnames = pairwise_products(x, names)
        x, names = np.concatenate([x, prods], axis=1), names + pnames
    return x, names


def behaviour_dim(mode: str) -> int:
    """Features per bin: orig/velo 6, all 11, and n + n(n−1)/2 with ``_prod`` (21, 21, 66)."""
    return behaviour_features(np.zeros((1, len(BEHAVIOUR_KEYS))), mode)[0].shape[1]


def select_neurons(train_counts: np.ndarray, bin_ms: float, min_rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Columns whose mean rate (spikes per bin / bin width) is ≥ ``min_rate_hz``; and all rates."""
    rates = np.asarray(train_counts, dtype=np.float64) / (bin_ms / 1000.0)
    return np.flatnonzero(rates >= min_rate_hz), rates


# --- windows --------------------------------------------------------------------------------------
@dataclass
class _Part:
    """One contiguous stretch ``[start, stop)`` of one file, with its in-RAM per-bin arrays."""

    segment: int
    split: str
    start: int
    stop: int
    frames_path: Path
    lo: float
    scale: float
    has_nan: bool
    behav: np.ndarray      # (T_file, B) float32
    shifter: np.ndarray    # (T_file, 4) float32
    spikes: np.ndarray     # (T_file, N) float32

    def n_windows(self, block: int) -> int:
        return max(0, self.stop - self.start - block + 1)


class WindowDataset:
    """``(frames [S,1,H,W], behaviour [S,B], shifter input [S,4], spikes [N])`` per window.

    Videos are opened memory-mapped on first use in each process (and dropped when pickled for a
    DataLoader worker), so a dataset costs RAM only for its per-bin behaviour and spike arrays.
    """

    def __init__(self, parts: list[_Part], seq_len: int, predict_offset: int, frame_range: str):
        self.parts = parts
        self.seq_len, self.offset, self.frame_range = seq_len, predict_offset, frame_range
        self.block = seq_len + predict_offset
        counts = np.array([p.n_windows(self.block) for p in parts], dtype=np.int64)
        self.part_lengths = counts
        self._cum = np.concatenate([[0], np.cumsum(counts)])
        self._mm: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self._cum[-1])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_mm"] = {}
        return state

    def _frames(self, path: Path) -> np.ndarray:
        mm = self._mm.get(path)
        if mm is None:
            mm = self._mm[path] = np.load(path, mmap_mode="r", allow_pickle=False)
        return mm

    def locate(self, i: int) -> tuple[_Part, int]:
        """The part of window ``i`` and the file bin where its frames start."""
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        k = int(np.searchsorted(self._cum, i, side="right") - 1)
        part = self.parts[k]
        return part, part.start + int(i - self._cum[k])

    def target_bins(self) -> np.ndarray:
        """``(segment, file bin)`` of every window's target, in dataset order (shape [len, 2])."""
        rows = [np.stack([np.full(n, p.segment), p.start + self.block - 1 + np.arange(n)], axis=1)
                for p, n in zip(self.parts, self.part_lengths) if n > 0]
        return np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)

    def targets(self) -> np.ndarray:
        """All target spike counts in dataset order, [len, N]."""
        rows = [p.spikes[p.start + self.block - 1: p.start + self.block - 1 + n]
                for p, n in zip(self.parts, self.part_lengths) if n > 0]
        return np.concatenate(rows) if rows else np.zeros((0, self.parts[0].spikes.shape[1]), np.float32)

    def segment_lengths(self) -> list[int]:
        """Windows per segment, in order: the pieces of the concatenated test trace."""
        out: dict[int, int] = {}
        for p, n in zip(self.parts, self.part_lengths):
            out[p.segment] = out.get(p.segment, 0) + int(n)
        return [n for n in out.values() if n > 0]

    def __getitem__(self, i: int):
        import torch

        part, t = self.locate(int(i))
        x = np.asarray(self._frames(part.frames_path)[t:t + self.seq_len], dtype=np.float32)
        x = (x - np.float32(part.lo)) * np.float32(part.scale)
        if part.has_nan:
            x = np.nan_to_num(x, nan=0.0)
        if self.frame_range == "pm1":
            x = (x - 0.5) * 2.0
        y = part.spikes[t + self.block - 1]
        return (torch.from_numpy(np.ascontiguousarray(x[:, None])),
                torch.from_numpy(part.behav[t:t + self.seq_len]),
                torch.from_numpy(part.shifter[t:t + self.seq_len]),
                torch.from_numpy(np.array(y)))


# --- a session ------------------------------------------------------------------------------------
@dataclass
class SessionData:
    """One session, ready to train on: ``train``, ``val`` and ``test`` :class:`WindowDataset`-s."""

    name: str
    options: DataOptions
    neurons: np.ndarray            # kept nsp columns
    rates_hz: np.ndarray           # mean training rate of every recorded neuron
    behav_names: list[str]
    frame_size: tuple[int, int]
    segments: list[int]
    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    nan_counts: dict[str, dict[str, int]] = field(default_factory=dict)   # split -> key -> NaN bins
    bins: dict[str, int] = field(default_factory=dict)                    # split -> bins
    frame_stats: list[dict] = field(default_factory=list)                 # per video file: lo, hi, NaNs
    notes: list[str] = field(default_factory=list)

    @property
    def num_neurons(self) -> int:
        return len(self.neurons)

    @property
    def behav_dim(self) -> int:
        return len(self.behav_names)

    def describe(self) -> dict:
        """What was loaded and every choice made (for run records and summaries)."""
        return {
            "session": self.name, "options": self.options.to_dict(),
            "neurons_recorded": int(len(self.rates_hz)), "neurons_kept": int(len(self.neurons)),
            "neuron_ids": [int(n) for n in self.neurons],
            "selection": ("explicit columns" if self.options.neurons is not None else
                          f"mean training rate >= {self.options.min_rate_hz:g} Hz"),
            "segments": self.segments, "frame_size": list(self.frame_size),
            "behaviour_features": self.behav_names, "bins": self.bins,
            "windows": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "nan_bins": self.nan_counts, "nan_policy": self.options.nan,
            "frame_normalisation": {"mode": self.options.frame_norm, "range": self.options.frame_range,
                                    "files": self.frame_stats},
            "notes": self.notes,
        }


def _frame_stats(arr: np.ndarray) -> tuple[float, float, int]:
    """min, max and NaN count of a (memory-mapped) video, read in blocks."""
    lo, hi, nans = math.inf, -math.inf, 0
    floating = arr.dtype.kind == "f"
    for a in range(0, arr.shape[0], _CHUNK):
        block = np.asarray(arr[a:a + _CHUNK])
        if floating:
            nan = np.isnan(block)
            k = int(nan.sum())
            if k:
                nans += k
                if k == block.size:
                    continue
                lo, hi = min(lo, float(np.nanmin(block))), max(hi, float(np.nanmax(block)))
                continue
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi, nans


def _required_keys(opts: DataOptions) -> tuple[str, ...]:
    return ("nsp", opts.video, *BEHAVIOUR_KEYS)


def load_session(root: str | Path, session: str, options: DataOptions | None = None) -> SessionData:
    """Open, check and prepare one session of the published layout (see :mod:`neurolp.mmv1.layout`).

    Every required file is checked before anything is computed: present for every split and
    segment, readable as a numeric array of the right dimensionality, the same number of bins for
    every key of a segment, the same neurons and frame size throughout. Errors name the file.
    """
    opts = (options or DataOptions()).validate()
    files = scan_session(root, session, _required_keys(opts))
    segments = files.segments
    if opts.segments is not None:
        unknown = sorted(set(opts.segments) - set(segments))
        if unknown:
            raise ConfigError(f"segments {unknown} are not in session {session} (it has "
                              f"{segments[0]}–{segments[-1]})")
        segments = sorted(set(opts.segments))
    arrays = _open_checked(files, segments, opts)

    # neurons: rule on the training parts (or explicit columns)
    n_all = arrays[("train", segments[0])]["nsp"].shape[1]
    totals, nbins = np.zeros(n_all), 0
    for seg in segments:
        nsp = arrays[("train", seg)]["nsp"]
        totals += np.asarray(nsp, dtype=np.float64).sum(axis=0)
        nbins += nsp.shape[0]
    kept, rates = select_neurons(totals / max(nbins, 1), opts.bin_ms, opts.min_rate_hz)
    notes: list[str] = []
    if opts.neurons is not None:
        bad = [n for n in opts.neurons if not 0 <= n < n_all]
        if bad:
            raise ConfigError(f"neurons {bad} out of range: session {session} recorded {n_all} neurons "
                              f"(columns 0–{n_all - 1})")
        kept = np.array(sorted(set(int(n) for n in opts.neurons)))
    elif len(kept) == 0:
        raise DataFormatError(f"no neuron of session {session} fires at >= {opts.min_rate_hz:g} Hz on "
                              f"the training parts (highest mean rate {rates.max():.2f} Hz); lower "
                              "--min-rate")

    # frame normalisation
    stats, session_lo, session_hi = {}, math.inf, -math.inf
    for (split, seg), a in arrays.items():
        lo, hi, nans = _frame_stats(a["video"])
        if not math.isfinite(lo):
            raise DataFormatError(f"{files.path(split, opts.video, seg)} holds only NaN frames")
        stats[(split, seg)] = (lo, hi, nans)
        if split == "train":
            session_lo, session_hi = min(session_lo, lo), max(session_hi, hi)
    frame_stats = []
    norm = {}
    for key, (lo, hi, nans) in stats.items():
        if opts.frame_norm == "session":
            lo, hi = session_lo, session_hi
        rng = hi - lo
        scale = 1.0 / rng if not np.isclose(rng, 0.0) else 1.0  # a constant video stays at 0
        norm[key] = (lo, scale, nans > 0)
        frame_stats.append({"split": key[0], "segment": key[1], "file": files.path(key[0], opts.video,
                            key[1]).name, "min": lo, "max": hi, "nan_pixels": nans})
        if nans:
            notes.append(f"{files.path(key[0], opts.video, key[1]).name}: {nans} NaN pixels set to 0 "
                         "after normalisation")

    # per-file behaviour, shifter input and spikes; parts
    nan_counts = {s: {k: 0 for k in BEHAVIOUR_KEYS} for s in SPLITS}
    bins = {s: 0 for s in SPLITS}
    parts: dict[str, list[_Part]] = {"train": [], "val": [], "test": []}
    behav_names: list[str] = []
    block = opts.seq_len + opts.predict_offset
    for split in SPLITS:
        for seg in segments:
            a = arrays[(split, seg)]
            raw = []
            for k in BEHAVIOUR_KEYS:
                col, n = fill_nans(a[k], opts.nan)
                nan_counts[split][k] += n
                raw.append(col)
            raw = np.stack(raw, axis=1)
            feats, behav_names = behaviour_features(raw, opts.behav_mode)
            shifter = raw[:, [BEHAVIOUR_KEYS.index(k) for k in SHIFTER_KEYS]]
            spikes = np.asarray(a["nsp"][:, kept], dtype=np.float32)
            T = spikes.shape[0]
            bins[split] += T
            lo, scale, has_nan = norm[(split, seg)]
            common = dict(segment=seg, frames_path=files.path(split, opts.video, seg), lo=lo,
                          scale=scale, has_nan=has_nan, behav=feats.astype(np.float32),
                          shifter=shifter.astype(np.float32), spikes=spikes)
            if split == "test":
                parts["test"].append(_Part(split="test", start=0, stop=T, **common))
            else:
                cut = int(T * (1.0 - opts.val_fraction))
                parts["train"].append(_Part(split="train", start=0, stop=cut, **common))
                parts["val"].append(_Part(split="val", start=cut, stop=T, **common))
    for name, ps in parts.items():
        short = [p.segment for p in ps if p.n_windows(block) == 0]
        if short:
            notes.append(f"{name}: segment(s) {short} shorter than seq_len + predict_offset = {block} "
                         "bins give no windows")
    datasets = {k: WindowDataset(v, opts.seq_len, opts.predict_offset, opts.frame_range)
                for k, v in parts.items()}
    for k, ds in datasets.items():
        if len(ds) == 0:
            raise DataFormatError(f"session {session} has no {k} windows of seq_len + predict_offset = "
                                  f"{block} bins; use a shorter --seq-len or more segments")
    nan_total = {s: {k: v for k, v in d.items() if v} for s, d in nan_counts.items()}
    h, w = arrays[("train", segments[0])]["video"].shape[1:]
    return SessionData(session, opts, kept, rates, behav_names, (int(h), int(w)), segments,
                       datasets["train"], datasets["val"], datasets["test"], nan_total, bins,
                       frame_stats, notes)


def _open_checked(files: SessionFiles, segments: list[int], opts: DataOptions) -> dict:
    """Memory-map every required array and check shapes and lengths across keys and files."""
    arrays: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    n_neurons = frame = None
    first_nsp = first_video = None
    for split in SPLITS:
        for seg in segments:
            p = lambda key: files.path(split, key, seg)  # noqa: E731
            nsp = open_array(p("nsp"), 2, "(time bins, neurons) spike counts")
            video = open_array(p(opts.video), 3, "(time bins, height, width) frames")
            a = {"nsp": nsp, "video": video}
            for k in BEHAVIOUR_KEYS:
                x = open_array(p(k), (1, 2), "(time bins,) values")
                if x.ndim == 2:
                    if x.shape[1] != 1:
                        raise DataFormatError(f"{p(k)} has shape {x.shape}, expected (time bins,)")
                    x = x[:, 0]
                a[k] = x
            T = nsp.shape[0]
            for key, arr in [(opts.video, video), *((k, a[k]) for k in BEHAVIOUR_KEYS)]:
                if arr.shape[0] != T:
                    raise DataFormatError(f"{p(key)} has {arr.shape[0]} time bins but {p('nsp').name} "
                                          f"has {T}: every key of a segment must cover the same bins")
            if n_neurons is None:
                n_neurons, first_nsp = nsp.shape[1], p("nsp")
            elif nsp.shape[1] != n_neurons:
                raise DataFormatError(f"{p('nsp')} has {nsp.shape[1]} neurons but {first_nsp.name} has "
                                      f"{n_neurons}: every file of a session must hold the same neurons")
            if frame is None:
                frame, first_video = video.shape[1:], p(opts.video)
            elif video.shape[1:] != frame:
                raise DataFormatError(f"{p(opts.video)} has {video.shape[1]}×{video.shape[2]} frames but "
                                      f"{first_video.name} has {frame[0]}×{frame[1]}")
            counts = np.asarray(nsp, dtype=np.float64)
            if np.isnan(counts).any() or (counts < 0).any():
                raise DataFormatError(f"{p('nsp')} holds NaN or negative spike counts; spike counts "
                                      "must be finite and >= 0")
            arrays[(split, seg)] = a
    return arrays


def load_sessions(root: str | Path, sessions: Sequence[str] | None = None,
                  options: DataOptions | None = None) -> list[SessionData]:
    """:func:`load_session` for each named session (default: every session folder under ``root``)."""
    names = list(sessions) if sessions else list_sessions(root)
    return [load_session(root, s, options) for s in names]


def with_options(options: DataOptions, **changes) -> DataOptions:
    """A copy of ``options`` with ``changes`` (validated)."""
    return replace(options, **changes).validate()
