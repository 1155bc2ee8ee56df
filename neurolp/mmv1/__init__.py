"""MMV1: V1 activity prediction of freely moving mice (Xu, Hou, Niell & Beyeler, NeurIPS 2023)
with Lp-CNNs (Kwon et al., ICLR 2025, §6, Table 5).

* :mod:`~neurolp.mmv1.layout`    — the published OSF layout ``<root>/<session>/{train,test}_<key>_seg_<i>.npy``;
* :mod:`~neurolp.mmv1.data`      — neuron selection, behaviour modes, NaN handling, frame
  normalisation, leak-free windows (memory-mapped);
* :mod:`~neurolp.mmv1.model`     — shifter + CNN + GRU; importing it registers ``{variant}-mmv1``;
* :mod:`~neurolp.mmv1.metrics`   — the paper's smoothed cc and MSE, Table 5;
* :mod:`~neurolp.mmv1.fit`       — :class:`MMV1Task` on the training engine, :func:`run_fit` (Table 5);
* :mod:`~neurolp.mmv1.synthetic` — a known stimulus → response data set in the published layout.

Names are imported lazily, so ``import neurolp.mmv1`` (and ``neurolp --help``) does not import
torch; ``import neurolp.mmv1.model`` (or using :func:`run_fit`) registers the ``mmv1`` architecture.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DataOptions": "data", "SessionData": "data", "WindowDataset": "data", "load_session": "data",
    "load_sessions": "data", "list_sessions": "layout",
    "evaluate_traces": "metrics", "session_summary": "metrics", "shuffled_baseline": "metrics",
    "table5": "metrics", "format_table5": "metrics",
    "MMV1Net": "model", "SyntheticSpec": "synthetic", "make_synthetic_dataset": "synthetic",
    "MMV1Config": "fit", "MMV1Task": "fit", "make_config": "fit", "run_fit": "fit",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neurolp.mmv1.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neurolp.mmv1' has no attribute {name!r}")
