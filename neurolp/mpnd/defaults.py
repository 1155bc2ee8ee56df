"""Defaults of the MPND fits that command-line parsers need without importing torch."""

FITS = ("converged", "paper")   # converged optimum, or the paper's early-stopped Adam path
PAPER_LR = 0.01                 # Adam learning rate of the paper fit (on log2 p and sigma)
PAPER_STEPS = 1000              # Adam steps of the paper fit
