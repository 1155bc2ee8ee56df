"""The multivariate p-generalised normal distribution (MPND), the Lp-mask built from it, and fits.

``β · exp(−‖C Δs‖_p^p)`` (paper Eq. 1). The Lp-mask of an LpConv2d layer is the same kernel without
β (Eq. 2); conformation (α, θ, γ) summarises C by its SVD (App. A.6). :mod:`neurolp.mpnd.density`
has the normalised density, its sampler and bin masses; :mod:`neurolp.mpnd.fit` fits p and σ (or C)
to receptive fields, the paper's way (standardise → PMF → fit) or by maximum likelihood.
"""

from neurolp.mpnd.conformation import C_from_conformation, conformation
from neurolp.mpnd.density import (C_isotropic, gennorm_cdf, gennorm_tail, interval_mass, log_normalizer,
                                  mpnd_log_prob, mpnd_prob, sample_mpnd, sigma_for_unit_variance,
                                  variance_1d)
from neurolp.mpnd.fit import (PMFBins, ReceptiveField, as_receptive_fields, empirical_pmf, fit_mpnd,
                              lattice_edges, model_pmf, rf_pmfs, standardize)
from neurolp.mpnd.mask import abs_pow, lp_mask, offset_grid

__all__ = ["abs_pow", "lp_mask", "offset_grid", "conformation", "C_from_conformation",
           "log_normalizer", "mpnd_log_prob", "mpnd_prob", "sample_mpnd", "gennorm_cdf", "gennorm_tail",
           "interval_mass", "variance_1d", "sigma_for_unit_variance", "C_isotropic",
           "PMFBins", "ReceptiveField", "lattice_edges", "standardize", "empirical_pmf", "model_pmf",
           "fit_mpnd", "rf_pmfs", "as_receptive_fields"]
