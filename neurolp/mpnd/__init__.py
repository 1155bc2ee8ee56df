"""The multivariate p-generalised normal distribution (MPND) and the Lp-mask built from it.

``β · exp(−‖C Δs‖_p^p)`` (paper Eq. 1). The Lp-mask of an LpConv2d layer is the same kernel without
β (Eq. 2); conformation (α, θ, γ) summarises C by its SVD (App. A.6).
"""

from neurolp.mpnd.conformation import C_from_conformation, conformation
from neurolp.mpnd.mask import abs_pow, lp_mask, offset_grid

__all__ = ["abs_pow", "lp_mask", "offset_grid", "conformation", "C_from_conformation"]
