"""Hebbian (Krotov–Hopfield) networks: the Amato architecture with BioConv2d / BioLinear layers,
layer-wise unsupervised training, and a supervised head on the frozen features (Manzali 2021).

The layers themselves are :mod:`neurolp.layers.hebbian`; :mod:`neurolp.hebbian.model` registers
``hebb{n}-amato`` / ``sgd{n}-amato`` with the model registry; :mod:`neurolp.hebbian.train` trains
them; ``neurolp hebbian train`` is the command.
"""
