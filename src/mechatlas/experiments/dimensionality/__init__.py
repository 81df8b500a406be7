"""DOCSTRING package experiments.dimensionality."""
