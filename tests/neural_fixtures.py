"""Synthetic neural data sets with a planted model–brain relation, in the real on-disk formats of
``neurolp rsa --neural``: neurolp's npz/HDF5 layout and rsatoolbox's ``RDMs.save`` HDF5 layout.

rsatoolbox's layout (rsatoolbox 0.3.2, ``rsatoolbox.io.hdf5.write_dict_hdf5`` of ``RDMs.to_dict``;
checked against a file written by rsatoolbox itself): root attributes ``rsatoolbox_version`` and
``dissimilarity_measure`` (a string attribute); dataset ``dissimilarities`` ``[n_rdm, n(n−1)/2]``
float64 in scipy ``squareform`` order (upper triangle, row by row); groups ``descriptors`` (empty),
``rdm_descriptors`` and ``pattern_descriptors`` whose string descriptors are byte-string datasets
(``|S``) and which always hold an integer ``index``.

The planted relation: the brain's RSM is a noisy copy of one layer of a seeded untrained model
(``planted_model``); the responses are that layer's activations of a random subset of units plus
trial noise. A second seeded model is the control.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

N_STIM = 24
PLANTED_LAYER = "0.8"


def make_images(n: int = N_STIM, seed: int = 0, shape=(20, 28, 3)) -> np.ndarray:
    """Smooth random uint8 images (non-square, so the crop matters)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    raw = np.stack([gaussian_filter(rng.normal(size=shape), (2, 2, 0)[:len(shape)])
                    for _ in range(n)])
    return np.clip(128 + 60 * raw / raw.std(), 0, 255).astype(np.uint8)


def planted_model(seed: int = 1, name: str = "base-smallcnn"):
    from neurolp.rsa import load_model_source

    src = load_model_source(name, untrained=True, image_size=32, num_classes=10, seed=seed)
    src.label = f"{name}#seed{seed}"
    return src


def model_inputs(images: np.ndarray, crop: str = "center"):
    from neurolp.brain.stimuli import preprocess_stimuli, stimulus_spec
    from neurolp.train.checkpoint import DEFAULT_NORMALIZATION

    return preprocess_stimuli(list(images), stimulus_spec("checkpoint", 32, DEFAULT_NORMALIZATION,
                                                          crop=crop))


def layer_rsm(model, images: np.ndarray, layer: str = PLANTED_LAYER) -> np.ndarray:
    from neurolp.rsa.activations import layer_rsms

    return layer_rsms(model, model_inputs(images), [layer]).rsms[layer]


def layer_features(model, images: np.ndarray, layer: str = PLANTED_LAYER) -> np.ndarray:
    """``[images, units]`` activations of ``layer`` (eval mode, no grad)."""
    import torch

    got = {}
    mod = dict(model.named_modules())[layer]
    h = mod.register_forward_hook(lambda m, i, o: got.setdefault("x", o.detach()))
    try:
        model.eval()
        with torch.no_grad():
            model(model_inputs(images))
    finally:
        h.remove()
    return got["x"].reshape(len(images), -1).double().numpy()


def noisy_copies(rsm: np.ndarray, k: int, noise: float, seed: int = 0) -> np.ndarray:
    """``[k, n, n]`` symmetric unit-diagonal noisy copies; noise in units of the off-diagonal sd."""
    rng = np.random.default_rng(seed)
    n = rsm.shape[0]
    sd = rsm[np.tril_indices(n, -1)].std()
    out = []
    for _ in range(k):
        e = rng.normal(0, noise * sd, (n, n))
        m = rsm + (e + e.T) / np.sqrt(2)
        np.fill_diagonal(m, 1.0)
        out.append(m)
    return np.stack(out)


def planted_responses(features: np.ndarray, n_neurons: int = 60, trials: int = 6,
                      noise: float = 0.5, seed: int = 0, unreliable: int = 0) -> np.ndarray:
    """``[images, trials, neurons]``: a random subset of units plus trial noise (sd = ``noise`` ×
    each unit's sd across images); ``unreliable`` extra neurons of pure noise."""
    rng = np.random.default_rng(seed)
    live = np.flatnonzero(features.std(axis=0) > 0)
    cols = rng.choice(live, size=n_neurons, replace=False)
    f = features[:, cols]
    f = (f - f.mean(0)) / f.std(0)
    out = f[:, None, :] + noise * rng.normal(size=(f.shape[0], trials, n_neurons))
    if unreliable:
        out = np.concatenate([out, rng.normal(size=(f.shape[0], trials, unreliable))], axis=2)
    return out.astype(np.float32)


def to_rsatoolbox_vectors(rdms: np.ndarray) -> np.ndarray:
    """``[k, n, n]`` matrices → rsatoolbox's ``[k, n(n−1)/2]`` vectors (squareform order)."""
    n = rdms.shape[1]
    iu = np.triu_indices(n, 1)
    return np.stack([m[iu] for m in rdms])


def write_rsatoolbox_rdms(path: Path, dissimilarities: np.ndarray, measure: str | None,
                          rdm_descriptors: dict, pattern_descriptors: dict,
                          version: str = "0.3.2") -> Path:
    """An HDF5 file in exactly the layout ``rsatoolbox.rdm.RDMs.save(path)`` writes."""
    n_rdm, m = dissimilarities.shape
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    with h5py.File(path, "w") as f:
        f.attrs["rsatoolbox_version"] = version
        if measure is None:
            f["dissimilarity_measure"] = h5py.Empty("f")
        else:
            f.attrs["dissimilarity_measure"] = measure
        f["dissimilarities"] = np.asarray(dissimilarities, dtype=np.float64)
        f.create_group("descriptors")
        for group, desc, count in (("rdm_descriptors", rdm_descriptors, n_rdm),
                                   ("pattern_descriptors", pattern_descriptors, n)):
            g = f.create_group(group)
            for key, vals in {**desc, "index": list(range(count))}.items():
                arr = np.array(vals)
                g[key] = arr.astype("S") if arr.dtype.kind == "U" else arr
    return path
