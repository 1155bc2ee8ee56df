"""The 118 Allen Brain Observatory natural-scene images (de Vries et al., 2020).

The grey 918×1174 templates ship inside every ``three_session_B`` NWB file of an AllenSDK
``BrainObservatoryCache`` (``stimulus/templates/natural_scenes_image_stack/data``); reading them
needs only h5py, not allensdk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurolp.errors import DataFormatError, DataNotFoundError

__all__ = ["TEMPLATE_KEY", "natural_scene_templates"]

TEMPLATE_KEY = "stimulus/templates/natural_scenes_image_stack/data"


def natural_scene_templates(cache_dir: str | Path) -> np.ndarray:
    """``uint8 [n_images, H, W]`` templates (118×918×1174 in real data) from an Allen cache folder.

    ``cache_dir`` is the folder of the cache's ``manifest.json``; the first NWB file under
    ``ophys_experiment_data/`` that holds the natural-scene templates is used.
    """
    import h5py

    cache_dir = Path(cache_dir)
    nwb_dir = cache_dir / "ophys_experiment_data"
    files = sorted(nwb_dir.glob("*.nwb")) if nwb_dir.is_dir() else []
    if not files:
        raise DataNotFoundError(
            f"no Allen Brain Observatory NWB files in {nwb_dir}; the natural-scene images come with "
            "any three_session_B experiment: run `neurolp allen fetch --cache "
            f"{cache_dir}` on a machine with internet access, or point to an existing cache")
    for path in files:
        try:
            with h5py.File(path, "r") as f:
                if TEMPLATE_KEY in f:
                    stack = np.asarray(f[TEMPLATE_KEY][()])
                    break
        except OSError as exc:
            raise DataFormatError(f"{path} is not a readable NWB/HDF5 file ({exc}); delete it and "
                                  "fetch it again") from exc
    else:
        raise DataNotFoundError(
            f"none of the {len(files)} NWB files in {nwb_dir} holds natural-scene templates "
            f"({TEMPLATE_KEY}); fetch a three_session_B experiment into this cache")
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise DataFormatError(f"natural-scene templates in {path} have shape {stack.shape}; "
                              "expected [n_images, height, width]")
    return stack
