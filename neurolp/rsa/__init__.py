"""Representational similarity analysis against mouse visual cortex (paper §6, Fig. 6, 11).

* :func:`kendall_tau` / :func:`compare_matrix` — exact Kendall τ_a/τ_b (and Spearman, Pearson),
  batched, with precomputed ranks;
* :func:`pearson_rsm` — RSMs with optional per-unit centring and dead-unit accounting;
* :func:`layer_rsms` — model layer RSMs by module name (eval mode, no_grad, memory control);
* :func:`brain_rsms` — per-mouse or pooled (anchor) brain RSMs per area;
* :func:`mice_ceiling` / :func:`split_half_ceiling` — noise ceilings;
* :func:`score_layers` — layer × area scores, bootstrap CIs, max and cross-validated layer choice;
* :func:`run_rsa` — the whole ``neurolp rsa`` pipeline; :data:`PRESETS` — ``default``, ``lpconv``;
* :func:`run_rsa_neural` — the same against any neural data set (``neurolp rsa --neural``);
* :func:`select_reliable` — neuron selection by split-half reliability (Spearman–Brown);
* :func:`to_rsatoolbox` — export to rsatoolbox ``RDMs``.
"""

from neurolp.rsa.activations import LayerRSMs, conv_layer_names, layer_rsms, resolve_layers
from neurolp.rsa.brain_rsms import AreaRSMs, brain_rsms
from neurolp.rsa.ceilings import mice_ceiling, pool_vectors, split_half_ceiling
from neurolp.rsa.compare import COMPARATORS, compare_matrix, compare_pairs, prepare
from neurolp.rsa.export import brain_to_rsatoolbox, layers_to_rsatoolbox, to_rsatoolbox
from neurolp.rsa.kendall import RankedVectors, kendall_tau, kendall_tau_matrix, kernel_backend
from neurolp.rsa.neural import default_normaliser, run_rsa_neural
from neurolp.rsa.pipeline import (PRESETS, ModelSource, RSAConfig, RSAResult, load_model_source,
                                  model_rsms, run_rsa)
from neurolp.rsa.rsm import pearson_rsm, rsm_vector, vector_to_rsm
from neurolp.rsa.reliability import neuron_reliability, select_reliable, spearman_brown
from neurolp.rsa.scores import ScoreConfig, ScoreTables, score_layers

__all__ = ["kendall_tau", "kendall_tau_matrix", "RankedVectors", "kernel_backend", "COMPARATORS",
           "compare_matrix", "compare_pairs", "prepare", "pearson_rsm", "rsm_vector",
           "vector_to_rsm", "LayerRSMs", "conv_layer_names", "layer_rsms", "resolve_layers",
           "AreaRSMs", "brain_rsms", "mice_ceiling", "pool_vectors", "split_half_ceiling",
           "ScoreConfig", "ScoreTables", "score_layers", "PRESETS", "ModelSource", "RSAConfig",
           "RSAResult", "load_model_source", "model_rsms", "run_rsa", "to_rsatoolbox",
           "brain_to_rsatoolbox", "layers_to_rsatoolbox", "run_rsa_neural", "default_normaliser",
           "select_reliable", "neuron_reliability", "spearman_brown"]
