"""The many-model brain-likeness report (``neurolp report``).

Per model: the MPND p of its first convolution's functional receptive fields beside mouse V1, the
learned Lp-mask conformations (p, α, θ, γ), the best-layer RSA score per area (raw and
noise-normalised, bootstrap CIs) with the whole layer profile, and accuracy on an evaluation set —
as one tidy table and one self-contained HTML page. Every measure comes from the library call that
defines it (:mod:`neurolp.rf`, :mod:`neurolp.mpnd`, :mod:`neurolp.layers`, :mod:`neurolp.rsa`,
:mod:`neurolp.train`); nothing is re-implemented here.
"""

from neurolp.report.collect import (MEASURE_COLUMNS, V1_LABEL, ReportConfig, ReportResult,
                                    accuracy_of_models, load_report_source, mask_summary,
                                    measures_table, mpnd_of_models, run_report)
from neurolp.report.html import render_html, summary_table

__all__ = ["ReportConfig", "ReportResult", "run_report", "load_report_source", "mpnd_of_models",
           "mask_summary", "accuracy_of_models", "measures_table", "render_html", "summary_table",
           "MEASURE_COLUMNS", "V1_LABEL"]
