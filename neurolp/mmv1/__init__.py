"""MMV1: V1 activity prediction of freely moving mice (Xu, Hou, Niell & Beyeler, NeurIPS 2023)
with Lp-CNNs (Kwon et al., ICLR 2025, §6, Table 5).

* :mod:`~neurolp.mmv1.layout`    — the published OSF layout ``<root>/<session>/{train,test}_<key>_seg_<i>.npy``;
* :mod:`~neurolp.mmv1.data`      — neuron selection, behaviour modes, NaN handling, frame
  normalisation, leak-free windows (memory-mapped);
* :mod:`~neurolp.mmv1.model`     — shifter + CNN + GRU, registered as ``{variant}-mmv1``;
* :mod:`~neurolp.mmv1.metrics`   — the paper's smoothed cc and MSE, Table 5;
* :mod:`~neurolp.mmv1.fit`       — :class:`MMV1Task` on the training engine, :func:`run_fit` (Table 5);
* :mod:`~neurolp.mmv1.synthetic` — a known stimulus → response data set in the published layout.

Importing the package registers the ``mmv1`` architecture with :mod:`neurolp.models`.
"""

from neurolp.mmv1 import model as _model  # noqa: F401  (registers "mmv1")
from neurolp.mmv1.data import DataOptions, SessionData, WindowDataset, load_session, load_sessions
from neurolp.mmv1.layout import list_sessions
from neurolp.mmv1.metrics import evaluate_traces, format_table5, session_summary, shuffled_baseline, table5
from neurolp.mmv1.model import MMV1Net
from neurolp.mmv1.synthetic import SyntheticSpec, make_synthetic_dataset
from neurolp.mmv1.fit import MMV1Config, MMV1Task, make_config, run_fit  # noqa: E402

__all__ = ["DataOptions", "SessionData", "WindowDataset", "load_session", "load_sessions", "list_sessions",
           "evaluate_traces", "session_summary", "shuffled_baseline", "table5", "format_table5", "MMV1Net",
           "SyntheticSpec", "make_synthetic_dataset", "MMV1Config", "MMV1Task", "make_config", "run_fit"]
