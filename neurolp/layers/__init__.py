"""Brain-inspired layers: Lp-convolution and its conversion tools; Hebbian (Krotov–Hopfield)
layers; locally connected layers and weight sharing; DoG kernels and DoG initialisation of
depthwise convolutions (Neural Echos)."""

from neurolp.layers.convert import bake_lp, constrain_lp_, crop_lp, large_convert, lp_convert, lp_layers
from neurolp.layers.dog import (depthwise_convs, dog_centre_mask, dog_coefficients, dog_gamma_range, dog_gaussians,
                                dog_kernel, init_depthwise_dog_)
from neurolp.layers.hebbian import BioConv2d, BioLinear
from neurolp.layers.inspect import mask_table, plot_masks
from neurolp.layers.local import (LocallyConnected2d, lc_convert, lc_layers, set_weight_sharing, share_dynamic_,
                                  share_instant_, snr_w, within_class_variance)
from neurolp.layers.lpconv import LargeConv2d, LpConv2d, enlarged_kernel_size, masked_conv2d

__all__ = [
    "LpConv2d",
    "LargeConv2d",
    "masked_conv2d",
    "enlarged_kernel_size",
    "lp_convert",
    "large_convert",
    "lp_layers",
    "constrain_lp_",
    "bake_lp",
    "crop_lp",
    "mask_table",
    "plot_masks",
    "dog_kernel",
    "dog_coefficients",
    "dog_centre_mask",
    "dog_gaussians",
    "dog_gamma_range",
    "depthwise_convs",
    "init_depthwise_dog_",
    "BioConv2d",
    "BioLinear",
    "LocallyConnected2d",
    "lc_convert",
    "lc_layers",
    "set_weight_sharing",
    "share_instant_",
    "share_dynamic_",
    "snr_w",
    "within_class_variance",
]
