"""Brain data: Allen Brain Observatory natural scenes (download, cache reading, tidy responses,
stimuli) and any other neural data set (:func:`load_neural`, :func:`load_stimulus_images`).

Reading a populated cache needs only h5py and numpy (no allensdk, no network); allensdk is imported
only by :func:`fetch_natural_scenes`.
"""

from neurolp.brain.cache import CacheLayout, describe_cache, experiment_table, select_experiments
from neurolp.brain.fetch import fetch_natural_scenes
from neurolp.brain.responses import BrainResponses, ResponseParams, experiment_responses, load_responses
from neurolp.brain.selection import (PAPER_AREAS, PAPER_CRE_LINES, PAPER_DEPTHS, Selection,
                                     cortical_layer)
from neurolp.brain.neural import NeuralData, load_neural
from neurolp.brain.stimuli import (StimulusImages, StimulusSpec, load_stimulus_images,
                                   natural_scene_templates, preprocess_stimuli, stimulus_spec)

__all__ = ["CacheLayout", "describe_cache", "experiment_table", "select_experiments",
           "fetch_natural_scenes", "BrainResponses", "ResponseParams", "experiment_responses",
           "load_responses", "PAPER_AREAS", "PAPER_CRE_LINES", "PAPER_DEPTHS", "Selection",
           "cortical_layer", "StimulusSpec", "natural_scene_templates", "preprocess_stimuli",
           "stimulus_spec", "NeuralData", "load_neural", "StimulusImages", "load_stimulus_images"]
