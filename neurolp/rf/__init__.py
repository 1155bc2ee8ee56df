"""Receptive fields to fit MPNDs to: biological (Rossi et al. 2020) and artificial (functional RFs).

* :mod:`neurolp.rf.rossi` — the Rossi et al. 2020 loader (raw MAT folder or the embedded table) and
  one RF per neuron;
* :mod:`neurolp.rf.functional` — functional synapses of a first conv layer (App. A.2), exact and
  memory-light;
* :mod:`neurolp.rf.images` — Gaussian-noise and natural-image inputs (Allen, folder, wheels);
* :mod:`neurolp.rf.networks` — untrained/trained networks, offline weight lookup;
* :mod:`neurolp.rf.conditions` — the Fig. 1 conditions and :func:`run_fit_mpnd`, the whole pipeline;
* :mod:`neurolp.rf.sensitivity` — the robustness table: p across binnings, objectives and fits;
* :mod:`neurolp.rf.plots` — Fig. 1f–g, the paper fit's p-trajectory, p against the bin width.

The names below are imported lazily (``neurolp.rf.run_fit_mpnd`` loads torch only when used).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CONDITIONS": "conditions", "DEFAULT_CONDITIONS": "conditions", "Condition": "conditions",
    "FitMPNDResult": "conditions", "collect_receptive_fields": "conditions",
    "functional_receptive_fields": "conditions", "parse_conditions": "conditions",
    "run_fit_mpnd": "conditions", "summarize_fits": "conditions",
    "FunctionalCounts": "functional", "counts_to_rf": "functional", "first_conv": "functional",
    "functional_synapse_counts": "functional", "functional_synapse_counts_bruteforce": "functional",
    "load_rossi": "rossi", "load_rossi_raw": "rossi", "rossi_receptive_fields": "rossi",
    "natural_images": "images", "noise_images": "images", "build_network": "networks",
    "find_trained_weights": "networks", "plot_fig1": "plots", "plot_trajectory": "plots",
    "plot_sensitivity": "plots", "sensitivity_table": "sensitivity", "sensitivity_summary": "sensitivity",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"neurolp.rf.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'neurolp.rf' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
