"""Export RSMs to rsatoolbox ``RDMs`` objects (for its inference: ``eval_dual_bootstrap`` etc.).

rsatoolbox works with dissimilarities; an RSM becomes the RDM ``1 − RSM`` (``dissimilarity_measure
="1-pearson"``). Rank comparators and Pearson give the same values either way (both sides flip).
rsatoolbox is optional: ``pip install 'neurolp[rsa]'``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from neurolp.errors import ConfigError, InputError

__all__ = ["to_rsatoolbox", "brain_to_rsatoolbox", "layers_to_rsatoolbox"]


def _rsatoolbox():
    try:
        import rsatoolbox  # noqa: F401
        from rsatoolbox.rdm import RDMs
    except ImportError as exc:
        raise ConfigError("exporting to rsatoolbox needs rsatoolbox: pip install 'neurolp[rsa]' "
                          "(or pip install rsatoolbox)") from exc
    return RDMs


def to_rsatoolbox(vectors, descriptors: dict[str, Sequence] | None = None, *,
                  measure: str = "1-pearson", image_ids: Sequence[int] | None = None):
    """``RDMs`` from RSM lower-triangle vectors ``[K, n]`` (neurolp's order) or RSMs ``[K, N, N]``.

    ``descriptors`` become rdm_descriptors (one value per RSM, e.g. ``{"mouse": [...]}``); image
    ids (default 0..N−1) become the ``image`` pattern descriptor, in neurolp's order.
    """
    RDMs = _rsatoolbox()
    from neurolp.rsa.rsm import vector_to_rsm

    arr = np.asarray(vectors, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    mats = vector_to_rsm(arr) if arr.ndim == 2 else arr
    if mats.ndim != 3 or mats.shape[1] != mats.shape[2]:
        raise InputError(f"expected RSM vectors [K, n] or RSMs [K, N, N], got {arr.shape}")
    k, n_img, _ = mats.shape
    rdm = 1.0 - mats
    idx = np.arange(n_img)
    rdm[:, idx, idx] = 0.0
    desc = {}
    for key, vals in (descriptors or {}).items():
        vals = list(vals)
        if len(vals) != k:
            raise InputError(f"descriptor {key!r} has {len(vals)} values for {k} RSMs")
        desc[key] = np.asarray(vals)
    ids = np.arange(n_img) if image_ids is None else np.asarray(image_ids)
    return RDMs(rdm, dissimilarity_measure=measure, rdm_descriptors=desc or None,
                pattern_descriptors={"image": ids})


def brain_to_rsatoolbox(area_rsms) -> "object":
    """One ``RDMs`` per area dict → one object with ``mouse`` (or ``split``) and ``area`` descriptors."""
    vecs, mice, areas = [], [], []
    for area, obj in area_rsms.items():
        for v, lab in zip(obj.vectors, obj.labels):
            vecs.append(v)
            mice.append(lab)
            areas.append(area)
    if not vecs:
        raise InputError("no brain RSM to export")
    key = "mouse" if next(iter(area_rsms.values())).kind == "mouse" else "split"
    return to_rsatoolbox(np.stack(vecs), {key: mice, "area": areas})


def layers_to_rsatoolbox(layer_rsms) -> "object":
    """A :class:`~neurolp.rsa.activations.LayerRSMs` → ``RDMs`` with a ``layer`` descriptor."""
    return to_rsatoolbox(layer_rsms.vectors(), {"layer": list(layer_rsms.names)})
