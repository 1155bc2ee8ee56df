"""The multivariate p-generalised normal distribution (MPND), the Lp-mask built from it, and fits.

``β · exp(−‖C Δs‖_p^p)`` (paper Eq. 1). The Lp-mask of an LpConv2d layer is the same kernel without
β (Eq. 2); conformation (α, θ, γ) summarises C by its SVD (App. A.6). :mod:`neurolp.mpnd.density`
has the normalised density, its sampler and bin masses; :mod:`neurolp.mpnd.fit` fits p and σ (or C)
to receptive fields, the paper's way (standardise → PMF → fit) or by maximum likelihood.
"""

import importlib

# numpy only; imported now because the function shares its submodule's name
from neurolp.mpnd.conformation import C_from_conformation, conformation

# The rest is loaded on first use (PEP 562), so that parsers can read neurolp.mpnd.defaults
# without importing torch.
_EXPORTS = {
    "C_isotropic": "density", "gennorm_cdf": "density", "gennorm_tail": "density",
    "interval_mass": "density", "log_normalizer": "density", "mpnd_log_prob": "density",
    "mpnd_prob": "density", "sample_mpnd": "density", "sigma_for_unit_variance": "density",
    "variance_1d": "density",
    "PMFBins": "fit", "ReceptiveField": "fit", "as_receptive_fields": "fit", "empirical_pmf": "fit",
    "fit_mpnd": "fit", "lattice_edges": "fit", "model_pmf": "fit", "rf_pmfs": "fit", "standardize": "fit",
    "abs_pow": "mask", "lp_mask": "mask", "offset_grid": "mask",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"neurolp.mpnd.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurolp.mpnd' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["abs_pow", "lp_mask", "offset_grid", "conformation", "C_from_conformation",
           "log_normalizer", "mpnd_log_prob", "mpnd_prob", "sample_mpnd", "gennorm_cdf", "gennorm_tail",
           "interval_mass", "variance_1d", "sigma_for_unit_variance", "C_isotropic",
           "PMFBins", "ReceptiveField", "lattice_edges", "standardize", "empirical_pmf", "model_pmf",
           "fit_mpnd", "rf_pmfs", "as_receptive_fields"]
