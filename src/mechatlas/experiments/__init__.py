"""DOCSTRING package experiments."""
