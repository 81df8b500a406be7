"""DOCSTRING package experiments.refusal_direction."""
